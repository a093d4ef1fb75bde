"""rawisp.measure.texture: the dead-leaves targets and the texture MTF / residual noise measure, on known filters."""

import numpy as np
import pytest

from rawisp.measure import texture
from rawisp.colour import srgb_decode


@pytest.fixture(scope="module")
def dark():
    """The dark low-contrast target's linear luminance, 256 px."""
    return texture.luminance(texture.target("dark", 256), "srgb")


def _gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Periodic Gaussian blur, exact in the Fourier domain: transfer exp(-2 pi^2 sigma^2 f^2)."""
    fy, fx = np.meshgrid(np.fft.fftfreq(img.shape[0]), np.fft.fftfreq(img.shape[1]), indexing="ij")
    return np.fft.ifft2(np.fft.fft2(img) * np.exp(-2 * np.pi ** 2 * sigma ** 2 * (fy ** 2 + fx ** 2))).real


def test_targets_are_seeded_grey_dead_leaves_of_the_stated_levels():
    img = texture.target("dark", 128)
    assert img.shape == (128, 128, 3) and np.array_equal(img, texture.target("dark", 128))
    assert np.array_equal(img[..., 0], img[..., 1]) and np.array_equal(img[..., 1], img[..., 2])  # grey
    assert not np.array_equal(img, texture.target("dark", 128, seed=7))
    for kind, (lo, hi) in texture.TARGETS.items():
        lum = srgb_decode(texture.target(kind, 256)[..., 0])
        assert lum.min() >= lo - 1e-9 and lum.max() <= hi + 1e-9  # area-averaged leaves stay in range
        assert lum.mean() == pytest.approx((lo + hi) / 2, rel=0.12)
    assert texture.TARGETS["dark"] == (0.025, 0.075)  # the documented mean 0.05 and contrast 3:1
    # leaves of every size: many distinct levels and sharp steps between neighbours
    lum = srgb_decode(img[..., 0])
    assert len(np.unique(np.round(lum, 6))) > 200
    with pytest.raises(ValueError, match="unknown target"):
        texture.target("bright")


def test_power_law_radii_give_a_broad_spectrum(dark):
    """Power-law leaves: energy at every scale, falling roughly as 1/f^2 (neither flat nor all low)."""
    x = dark / dark.mean() - 1
    power = np.abs(np.fft.fft2(x * np.outer(np.hanning(256), np.hanning(256)))) ** 2
    radius = np.hypot(*np.meshgrid(np.fft.fftfreq(256), np.fft.fftfreq(256), indexing="ij"))
    low = power[(radius > 0.05) & (radius < 0.1)].mean()
    high = power[(radius > 0.2) & (radius < 0.4)].mean()
    slope = np.log(high / low) / np.log(0.3 / 0.075)
    assert -3.5 < slope < -1.5


def test_identity_keeps_all_the_texture_and_adds_no_noise(dark):
    m = texture.measure(dark, dark)
    assert m["mtf"] == pytest.approx(1.0, abs=1e-9)
    assert m["noise_percent"] < 1e-4
    assert np.allclose(m["band_mtf"], 1.0)
    assert m["frequencies"][0] == pytest.approx(texture.BAND / 2) and max(m["frequencies"]) < 0.5


@pytest.mark.parametrize("sigma", [0.7, 1.0, 1.5])
def test_gaussian_blur_reads_its_analytic_transfer(dark, sigma):
    m = texture.measure(dark, _gaussian_blur(dark, sigma))
    f = np.array(m["frequencies"])
    analytic = np.exp(-2 * np.pi ** 2 * sigma ** 2 * f ** 2)
    in_band = (f > 0.1) & (f < 0.3) & (analytic > 0.05)
    assert np.array(m["band_mtf"])[in_band] == pytest.approx(analytic[in_band], rel=0.04)
    expected = analytic[(f > 0.1) & (f < 0.3)].mean()
    assert m["mtf"] == pytest.approx(expected, rel=0.04, abs=0.01)
    assert m["noise_percent"] < 0.5  # a linear filter adds nothing incoherent


@pytest.mark.parametrize("sigma", [0.002, 0.005, 0.02])
def test_white_noise_of_known_sigma_is_measured(dark, sigma):
    noisy = dark + sigma * np.random.default_rng(3).standard_normal(dark.shape)
    m = texture.measure(dark, noisy)
    # white noise above 0.2 cycles/px: sqrt(1 - pi 0.2^2) of its RMS, in % of the mean level
    expected = 100 * sigma / dark.mean() * np.sqrt(1 - np.pi * 0.2 ** 2)
    assert m["noise_percent"] == pytest.approx(expected, rel=0.1)
    assert m["mtf"] == pytest.approx(1.0, abs=0.1 if sigma > 0.01 else 0.03)  # noise does not inflate it


def test_blur_and_noise_are_told_apart(dark):
    blurred = _gaussian_blur(dark, 1.0)
    noisy = blurred + 0.004 * np.random.default_rng(4).standard_normal(dark.shape)
    m, clean = texture.measure(dark, noisy), texture.measure(dark, blurred)
    assert m["mtf"] == pytest.approx(clean["mtf"], abs=0.03)
    assert m["noise_percent"] == pytest.approx(100 * 0.004 / dark.mean() * np.sqrt(1 - np.pi * 0.04), rel=0.1)


def test_a_brightness_scale_changes_nothing(dark):
    out = _gaussian_blur(dark, 0.8) + 0.003 * np.random.default_rng(5).standard_normal(dark.shape)
    m = texture.measure(dark, out)
    for scaled in (texture.measure(dark, 2.5 * out), texture.measure(0.3 * dark, out)):
        assert scaled["mtf"] == pytest.approx(m["mtf"], rel=1e-9)
        assert scaled["noise_percent"] == pytest.approx(m["noise_percent"], rel=1e-9)
        assert scaled["band_mtf"] == pytest.approx(m["band_mtf"], abs=1e-4)


def test_rgb_and_srgb_inputs():
    img = texture.target("normal", 128)
    assert texture.measure(img, img, encoding="srgb")["mtf"] == pytest.approx(1.0)
    lum = texture.luminance(img, "srgb")
    assert lum.shape == (128, 128) and np.allclose(lum, srgb_decode(img[..., 0]))
    assert np.allclose(texture.luminance(np.ones((4, 4, 3)) * [1.0, 0, 0]), 0.2126)
    with pytest.raises(ValueError, match="differ in size"):
        texture.measure(img, img[:64])
    with pytest.raises(ValueError, match="encoding"):
        texture.luminance(img, "gamma")
    with pytest.raises(ValueError, match="mean level"):
        texture.measure(lum, np.zeros_like(lum))
