"""The grain control (``--grain``, :mod:`rawisp.engines.grain`): the share of the noise the learned
engine removes that it puts back, as neutral grain, on a straight line between the network's full
noise reduction and all of its luminance noise kept."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from rawisp import api
from rawisp.cli import main
from rawisp.engines.contract import PLANE_CHANNEL
from rawisp.engines.grain import BOUND, MEAN_RADIUS, SITES, box_mean, grain, keep_grain
from rawisp.engines.learned import Learned
from rawisp.measure import synth, texture
from rawisp.stages.reconstruct import DEVELOP_GRAIN, EngineOptions, develop_grain


def frame(seed: int = 0, h: int = 24, w: int = 32, noise: float = 0.01):
    """A network output ``(3, 2h, 2w)``, the packed planes it was given (its own values at each site
    plus white noise of std ``noise``) and their sigmas (0.05), and that noise ``(4, h, w)``."""
    rng = np.random.default_rng(seed)
    rgb = rng.uniform(0.1, 0.6, (3, 2 * h, 2 * w)).astype(np.float32)
    noise = rng.normal(0, noise, (4, h, w)).astype(np.float32)
    planes = np.stack([rgb[c, dy::2, dx::2] for (dy, dx), c in zip(SITES, PLANE_CHANNEL)]) + noise
    return rgb, planes, np.full((4, h, w), 0.05, np.float32), noise


def test_grain_is_the_noise_removed_at_each_site_less_its_local_mean():
    rgb, planes, sigma, noise = frame()
    g = grain(rgb, planes, sigma)
    assert g.shape == rgb.shape[1:]
    for plane, (dy, dx) in enumerate(SITES):  # R, G1, G2, B
        np.testing.assert_allclose(g[dy::2, dx::2], noise[plane] - box_mean(noise[plane], MEAN_RADIUS), atol=1e-6)


def test_an_offset_of_the_network_at_one_kind_of_site_is_not_put_back():
    rgb, planes, sigma, _ = frame(1, noise=0.0)
    planes += np.array([0.004, 0.0, 0.0, -0.003], np.float32)[:, None, None]  # R and B sites offset
    assert np.abs(grain(rgb, planes, sigma)).max() < 1e-6  # no 2x2 pattern drawn on flat areas


def test_grain_moves_all_channels_alike_on_a_straight_line():
    rgb, planes, sigma, _ = frame(2)
    assert keep_grain(rgb, planes, sigma, 0.0) is rgb
    full = keep_grain(rgb, planes, sigma, 1.0)
    moved = full - rgb
    assert np.abs(moved).max() > 0.01
    np.testing.assert_allclose(moved[0], moved[1], atol=1e-6)  # neutral: no colour is added
    np.testing.assert_allclose(moved[1], moved[2], atol=1e-6)
    half = keep_grain(rgb, planes, sigma, 0.5)
    np.testing.assert_allclose(half, (rgb + full) / 2, atol=1e-6)


def test_differences_beyond_the_noise_are_not_put_back():
    rgb, planes, sigma, _ = frame(3, noise=0.0)
    planes[0, 10, 10] += 0.3  # 6 sigma at one R site, below the clip: the network's own correction
    g = grain(rgb, planes, sigma)
    np.testing.assert_allclose(g[20, 20], BOUND * 0.05 * (1 - 1 / (2 * MEAN_RADIUS + 1) ** 2), rtol=1e-5)
    rgb, planes, sigma, _ = frame(4)
    assert not grain(rgb, planes, np.zeros_like(sigma)).any()  # told no noise: nothing to put back
    planes[3] = 1.0  # clipped blue sites: nothing known
    assert not grain(rgb, planes, sigma)[1::2, 1::2].any()


def test_box_mean_is_the_mean_of_the_reflected_square():
    a = np.random.default_rng(5).random((12, 17)).astype(np.float32)
    padded = np.pad(a, 3, mode="reflect")
    expected = [[padded[i:i + 7, j:j + 7].mean() for j in range(17)] for i in range(12)]
    np.testing.assert_allclose(box_mean(a, 3), expected, atol=1e-6)


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


def test_tiles_with_grain_meet_without_seams(dark_leaves):
    """The grain's local means reach into each tile's margin, so tiles give the whole frame's grain."""
    from rawisp.io.decode import decode
    from rawisp.stages.normalise import normalise

    packed = normalise(decode(dark_leaves[0]))
    whole = Learned.load(EngineOptions(threads=1, grain=0.5, tile=4096))(packed)
    tiled = Learned.load(EngineOptions(threads=1, grain=0.5, tile=96))(packed)
    assert Learned.load(EngineOptions(threads=1, tile=96)).plan(packed).ny > 1
    assert np.abs(tiled - whole).max() < 1 / 65535  # a 16-bit step of linear output
