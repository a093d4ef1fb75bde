"""The grain control (``--grain``, :mod:`rawisp.engines.grain`): the share of the noise the learned
engine removes that it puts back, as neutral grain, on a straight line between the network's full
noise reduction and all of its luminance noise kept."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from rawisp import api
from rawisp.cli import main
from rawisp.engines.grain import BOUND, grain, keep_grain
from rawisp.engines.learned import Learned
from rawisp.measure import synth, texture
from rawisp.stages.reconstruct import DEVELOP_GRAIN, EngineOptions, develop_grain


def frame(seed: int = 0, h: int = 6, w: int = 8):
    """A network output ``(3, 2h, 2w)``, packed planes ``(4, h, w)`` and their sigmas."""
    rng = np.random.default_rng(seed)
    rgb = rng.uniform(0.1, 0.6, (3, 2 * h, 2 * w)).astype(np.float32)
    planes = rng.uniform(0.1, 0.6, (4, h, w)).astype(np.float32)
    sigma = np.full((4, h, w), 0.05, np.float32)
    return rgb, planes, sigma


def test_grain_is_what_the_site_recorded_less_the_network_value_of_its_channel():
    rgb, planes, sigma = frame()
    sigma[:] = 1.0  # no bound reached
    g = grain(rgb, planes, sigma)
    assert g.shape == rgb.shape[1:]
    np.testing.assert_allclose(g[0::2, 0::2], planes[0] - rgb[0, 0::2, 0::2])  # R
    np.testing.assert_allclose(g[0::2, 1::2], planes[1] - rgb[1, 0::2, 1::2])  # G1
    np.testing.assert_allclose(g[1::2, 0::2], planes[2] - rgb[1, 1::2, 0::2])  # G2
    np.testing.assert_allclose(g[1::2, 1::2], planes[3] - rgb[2, 1::2, 1::2])  # B


def test_all_grain_puts_each_site_back_to_its_recording_and_moves_all_channels_alike():
    rgb, planes, sigma = frame(1)
    sigma[:] = 1.0
    full = keep_grain(rgb, planes, sigma, 1.0)
    np.testing.assert_allclose(full[0, 0::2, 0::2], planes[0], atol=1e-6)
    np.testing.assert_allclose(full[2, 1::2, 1::2], planes[3], atol=1e-6)
    moved = full - rgb
    np.testing.assert_allclose(moved[0], moved[1], atol=1e-6)  # neutral: no colour is added
    np.testing.assert_allclose(moved[1], moved[2], atol=1e-6)


def test_amount_is_a_straight_line_from_the_network_output():
    rgb, planes, sigma = frame(2)
    assert keep_grain(rgb, planes, sigma, 0.0) is rgb
    half = keep_grain(rgb, planes, sigma, 0.5)
    np.testing.assert_allclose(half, (rgb + keep_grain(rgb, planes, sigma, 1.0)) / 2, atol=1e-6)


def test_differences_beyond_the_noise_are_not_put_back():
    rgb, planes, sigma = frame(3)
    planes[0] = rgb[0, 0::2, 0::2] + 0.3  # 6 sigma, below the clip: the network's own correction
    g = grain(rgb, planes, sigma)
    np.testing.assert_allclose(g[0::2, 0::2], BOUND * 0.05, rtol=1e-6)
    assert not grain(rgb, planes, np.zeros_like(sigma)).any()  # told no noise: nothing to put back
    planes[3] = 1.0  # clipped blue sites: nothing known
    assert not grain(rgb, planes, np.ones_like(sigma))[1::2, 1::2].any()


@pytest.fixture(scope="module")
def dark_leaves(tmp_path_factory):
    """A noisy DNG of the dark low-contrast dead-leaves target (high preset) and its truth."""
    truth = texture.target("dark", 192)
    path = tmp_path_factory.mktemp("grain") / "leaves.dng"
    synth.srgb_to_dng(path, truth, black=512, white=16383, noise=(6e-3, 2e-3), seed=1)
    return path, truth


def developed(path, amount: float) -> np.ndarray:
    return api.develop(path, bits=16, tone="linear", grain=amount, threads=1).astype(np.float64) / 65535


def test_every_amount_lies_between_the_ends_in_texture_and_noise(dark_leaves):
    path, truth = dark_leaves
    scores = [texture.measure(truth, developed(path, a), encoding="srgb") for a in (0.0, 0.5, 1.0)]
    mtf = [s["mtf"] for s in scores]
    noise = [s["noise_percent"] for s in scores]
    assert mtf[0] < mtf[1] < mtf[2], mtf  # grain brings the texture the network wiped back
    assert noise[0] < noise[1] < noise[2], noise
    assert mtf[2] - mtf[0] > 0.1, mtf


def test_grain_adds_no_colour(dark_leaves):
    path, _ = dark_leaves
    none, full = (api.develop(path, linear=True, grain=a, threads=1) for a in (0.0, 1.0))
    assert np.abs(full - none).max() > 0.01  # it moved...
    chroma = lambda rgb: rgb - rgb.mean(axis=2, keepdims=True)  # noqa: E731
    np.testing.assert_allclose(chroma(full), chroma(none), atol=2e-6)  # ...all channels alike


def test_eval_scores_the_full_noise_reduction_and_develop_keeps_some_grain():
    assert EngineOptions().grain == 0.0  # rawisp eval builds its engines with the defaults
    assert 0 < DEVELOP_GRAIN < 1
    options = EngineOptions(threads=1, grain=0.4)
    assert Learned.load(options).grain == 0.4


def test_out_of_range_grain_is_refused_in_the_cli_and_the_api(dark_leaves):
    path, _ = dark_leaves
    result = CliRunner().invoke(main, ["develop", str(path), "--grain", "1.5"])
    assert result.exit_code == 2
    assert "Invalid value for '--grain'" in result.output
    with pytest.raises(api.OptionError, match="--grain"):
        api.develop(path, grain=-0.1)


def test_a_dng_keeps_no_grain_unless_asked():
    assert develop_grain(None, "jpeg") == develop_grain(None, "png16") == DEVELOP_GRAIN
    assert develop_grain(None, "dng") == develop_grain(None, "linear-dng") == 0  # the editor's choice
    assert develop_grain(0.6, "dng") == develop_grain(0.6, "jpeg") == 0.6
