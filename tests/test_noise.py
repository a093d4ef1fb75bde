"""Acceptance tests of the noise estimate that feeds the learned engine when a file has no NoiseProfile.

Frames go through the real path (synthetic DNG without a profile -> decode -> normalise), with 16-bit
data so that quantisation adds nothing measurable. What the model is told is the noise std at each
signal level, sigma(x) = sqrt(shot * x + read^2), so that is what is checked, over the levels the
frame actually has; shot and read separately only where the frame can tell them apart.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import natural_image

from rawisp.colour import srgb_decode
from rawisp.engines.contract import sigma_planes
from rawisp.engines.noise import estimate_noise
from rawisp.io.decode import decode
from rawisp.measure import synth
from rawisp.measure.chart import pink_noise
from rawisp.stages.normalise import Packed, normalise

H, W = 384, 512


def textured_scene(seed: int, texture: float = 0.03) -> np.ndarray:
    """Linear camera RGB (H, W, 3): smooth 1/f^2.5 colour fields from deep shadow to 0.8, four
    discs with 1-px edges, and a +-``texture`` 1/f^1.5 texture multiplied over everything."""
    rng = np.random.default_rng(seed)
    lin = 0.01 + 0.8 * np.stack([pink_noise(H, W, rng, 2.5) for _ in range(3)], axis=-1) ** 2
    y, x = np.mgrid[0:H, 0:W]
    for _ in range(4):
        cy, cx, radius = rng.uniform(0, H), rng.uniform(0, W), rng.uniform(0.05, 0.2) * min(H, W)
        alpha = np.clip(radius - np.hypot(y - cy, x - cx) + 0.5, 0, 1)[..., None]
        lin = lin * (1 - alpha) + rng.uniform(0.005, 0.8, 3) * alpha
    return lin * (1 + 2 * texture * (pink_noise(H, W, rng, 1.5)[..., None] - 0.5))


def packed_capture(tmp_path, cam: np.ndarray, shot: float, read: float, seed: int = 0, cfa: str = "RGGB",
                   neutral=(0.55, 1.0, 0.75)):
    """Mosaic + Poisson-Gaussian noise -> 16-bit DNG without a NoiseProfile -> decode -> normalise."""
    neutral = np.asarray(neutral)
    mosaic = synth.add_noise(synth.mosaic(cam * neutral, cfa), shot, read, np.random.default_rng(seed))
    path = tmp_path / f"{cfa}_{seed}.dng"
    synth.write_dng(path, mosaic, cfa=cfa, neutral=neutral, black=1024, white=65535, noise=None)
    raw = decode(path)
    assert raw.noise is None
    return normalise(raw)


def sigma(noise: tuple[float, float], x: np.ndarray) -> np.ndarray:
    shot, read = noise
    return np.sqrt(shot * x + read**2)


def green_levels(packed) -> np.ndarray:
    """The 5th, 50th and 95th percentile of the green signal, in normalised raw units."""
    green = packed.planes[1] / packed.gains[1]
    return np.quantile(green, [0.05, 0.5, 0.95])


@pytest.mark.parametrize("shot,read", [(2e-3, 1e-3), (1e-4, 5e-4), (1e-2, 2e-3)])
@pytest.mark.parametrize("seed", [0, 1])
def test_estimate_on_textured_scene(tmp_path, shot, read, seed):
    packed = packed_capture(tmp_path, textured_scene(seed), shot, read, seed=seed)
    estimate = estimate_noise(packed)
    levels = green_levels(packed)
    assert levels[0] < 0.05 and levels[2] > 0.3  # from shadows to highlights
    error = sigma(estimate, levels) / sigma((shot, read), levels) - 1
    # measured: within 6 % at the median and 95th percentile, up to 17 % at the 5th (read noise is
    # the weakly determined intercept of the fit)
    assert np.all(np.abs(error) < 0.25), (estimate, levels, error)
    assert np.abs(error[1:]).max() < 0.1, (estimate, levels, error)
    assert estimate[0] == pytest.approx(shot, rel=0.25)


@pytest.mark.parametrize("cfa,neutral", [("GBRG", (0.55, 1.0, 0.75)), ("BGGR", (1.25, 1.0, 0.8))])
def test_estimate_in_raw_units_for_any_phase_and_gains(tmp_path, cfa, neutral):
    """The estimate is in normalised raw units before white balance, whatever the green gain
    (with R brighter than G the greens are the ones amplified) and the CFA phase."""
    shot, read = 2e-3, 1e-3
    packed = packed_capture(tmp_path, textured_scene(2), shot, read, cfa=cfa, neutral=neutral)
    if neutral[0] > 1:
        assert packed.gains[1] > 1.2
    estimate = estimate_noise(packed)
    levels = green_levels(packed)
    error = sigma(estimate, levels) / sigma((shot, read), levels) - 1
    assert np.all(np.abs(error) < 0.25), (estimate, levels, error)


def test_estimate_is_unbiased_on_pure_noise(tmp_path):
    """On a texture-free ramp the residual is pure noise: the statistics themselves add no bias
    (a flatness selection that shares noise with the residual would read low here)."""
    ramp = np.linspace(0.02, 0.9, W)[None, :, None] * np.ones((H, 1, 3))
    errors = []
    for seed in range(3):
        packed = packed_capture(tmp_path, ramp, 2e-3, 1e-3, seed=seed)
        errors.append(sigma(estimate_noise(packed), np.array([0.3, 0.7])) / sigma((2e-3, 1e-3), np.array([0.3, 0.7])))
    assert np.abs(np.mean(errors) - 1) < 0.02, errors


def test_clean_frames_give_next_to_no_noise(tmp_path):
    """Noise-free frames: what is left is signal the estimator mistakes for noise. It must stay far
    below the weakest noise worth telling the model about (sigma(0.5) = 7e-3 for shot 1e-4)."""
    ramp = np.linspace(0.02, 0.9, W)[None, :, None] * np.ones((H, 1, 3))
    assert sigma(estimate_noise(packed_capture(tmp_path, ramp, 0, 0)), 0.5) < 1e-4
    for seed in (0, 1):
        estimate = estimate_noise(packed_capture(tmp_path, textured_scene(seed), 0, 0, seed=seed))
        assert sigma(estimate, 0.5) < 1.5e-3, estimate


def test_estimate_on_natural_texture_at_moderate_noise(tmp_path):
    """conftest's natural_image has a strong pixel-scale 1/f texture everywhere. Measured bias of
    sigma: +10..13 % at shot 2e-3 (tested here), but +110..140 % at shot 1e-4 / read 5e-4, where the
    texture (sigma ~1e-2 at mid grey when clean) outweighs the noise: a single frame cannot tell them
    apart, so weak noise on busy scenes is overestimated (files with a NoiseProfile are unaffected)."""
    cam = srgb_decode(natural_image(H, W, seed=1)) @ synth.DEFAULT_CAM_FROM_SRGB.T
    packed = packed_capture(tmp_path, cam, 2e-3, 1e-3)
    levels = green_levels(packed)
    error = sigma(estimate_noise(packed), levels) / sigma((2e-3, 1e-3), levels) - 1
    assert np.all(np.abs(error) < 0.25), error


def test_tiny_and_flat_frames(tmp_path):
    """Too little data to fit a line: zero noise, no exception."""
    flat = np.full((24, 30, 3), 0.3)
    assert estimate_noise(packed_capture(tmp_path, flat, 0, 0)) == (0.0, 0.0)
    for shape in ((2, 2), (2, 40), (40, 1)):  # too small for LibRaw: packed planes made here
        planes = np.random.default_rng(0).uniform(0.2, 0.4, (4, *shape)).astype(np.float32)
        packed = Packed(planes=planes, gains=np.ones(4, np.float32), noise=None, offset=(0, 0),
                        shape=(2 * shape[0], 2 * shape[1]))
        assert estimate_noise(packed) == (0.0, 0.0)


def test_sigma_planes_follow_the_model():
    planes = np.array([0.0, 0.25, 0.5, 1.0], np.float32)[:, None, None] * np.ones((4, 2, 3), np.float32)
    planes[0, 0, 0] = -0.01  # below black: read noise only
    gains = np.array([2.0, 1.0, 1.0, 1.5], np.float32)
    out = sigma_planes(planes, gains, 4e-3, 2e-3)
    g = gains[:, None, None]
    np.testing.assert_allclose(out, np.sqrt(4e-3 * g * np.maximum(planes, 0) + (g * 2e-3) ** 2), rtol=1e-6)
    assert out.dtype == np.float32 and out[0, 0, 0] == pytest.approx(2 * 2e-3)
