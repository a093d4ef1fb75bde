"""Procedural training images and colour decorrelation: what they must add to the training data."""

import numpy as np
import pytest

from rawisp.train.procedural import GENERATORS, colour_augment, dead_leaves, flat, grating, procedural, saturated_colour


def _saturation(img: np.ndarray) -> float:
    """Mean HSV saturation of an sRGB image (h, w, 3) in [0, 1]."""
    hi, lo = img.max(axis=-1), img.min(axis=-1)
    return float(np.mean((hi - lo) / np.maximum(hi, 1e-6)))


def _channel_correlation(img: np.ndarray) -> float:
    """Mean absolute correlation between the three channels' pixel values."""
    c = np.corrcoef(img.reshape(-1, 3).T)
    return float(np.mean(np.abs(c[np.triu_indices(3, 1)])))


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_generators_give_srgb_images_of_the_asked_size(name):
    rng = np.random.default_rng(0)
    img = GENERATORS[name](rng, 96)
    assert img.shape == (96, 96, 3) and img.dtype == np.float32
    assert img.min() >= 0.0 and img.max() <= 1.0
    assert img.std() > 0.02  # a picture, not a flat field
    again = GENERATORS[name](np.random.default_rng(0), 96)
    assert np.array_equal(img, again)  # seeded: the same image for the same seed


def test_colours_are_strongly_saturated():
    colours = saturated_colour(np.random.default_rng(1), 2000)
    hi, lo = colours.max(axis=1), colours.min(axis=1)
    saturation = (hi - lo) / hi
    assert np.median(saturation) > 0.75  # Beta(3, 1): median 0.79
    # every hue: the dominant channel is R, G and B about equally often
    assert np.all(np.bincount(colours.argmax(axis=1), minlength=3) > 500)


def test_dead_leaves_are_saturated_and_decorrelated_and_have_edges():
    rng = np.random.default_rng(2)
    images = [dead_leaves(rng, 128) for _ in range(8)]
    assert np.mean([_saturation(i) for i in images]) > 0.5
    assert np.mean([_channel_correlation(i) for i in images]) < 0.5
    # shapes of every scale: many sharp steps between neighbouring pixels
    steps = np.mean([np.mean(np.abs(np.diff(i, axis=1)).max(axis=-1) > 0.2) for i in images])
    assert steps > 0.02


def test_gratings_reach_close_to_nyquist():
    """Over many draws, some gratings have a period under 3 pixels (what demosaickers alias)."""
    rng = np.random.default_rng(3)
    finest = []
    for _ in range(40):
        img = grating(rng, 128).mean(axis=-1)
        spectrum = np.abs(np.fft.rfft2(img - img.mean()))
        fy, fx = np.unravel_index(spectrum.argmax(), spectrum.shape)
        fy = min(fy, 128 - fy)
        finest.append(128 / max(np.hypot(fy, fx), 1e-6))  # period in pixels
    assert min(finest) < 3.0 and max(finest) > 10.0


def test_colour_augment_decorrelates_a_photo_like_image():
    rng = np.random.default_rng(4)
    y, x = np.mgrid[0:64, 0:64] / 64
    luminance = 0.4 + 0.3 * np.sin(6 * x) * np.cos(4 * y)
    photo = np.clip(np.stack([luminance * 1.1, luminance, luminance * 0.8], -1), 0, 1).astype(np.float32)
    assert _channel_correlation(photo) > 0.99
    augmented = [colour_augment(photo, rng) for _ in range(20)]
    assert all(a.shape == photo.shape and a.min() >= 0 and a.max() <= 1 for a in augmented)
    assert np.mean([_saturation(a) for a in augmented]) > 1.5 * _saturation(photo)  # boosts of x1-2.5, some clipped


def test_procedural_draws_every_generator():
    rng = np.random.default_rng(5)
    # a grating is nearly constant along its stripes, dead leaves are not: the mix holds both kinds
    images = [procedural(rng, 64) for _ in range(40)]
    assert len({img.tobytes() for img in images}) == 40


def test_flat_crops_are_flat_mostly_dark_and_of_every_hue():
    rng = np.random.default_rng(5)
    crops = np.stack([flat(rng, 64) for _ in range(200)])
    assert crops.shape == (200, 64, 64, 3) and crops.dtype == np.float32
    mean = crops.mean(axis=(1, 2))  # (200, 3)
    # a ramp of at most +-5% about the mean: no texture a denoiser should keep
    assert np.all(crops.std(axis=(1, 2)) <= 0.035 * mean + 1e-6)
    value = mean.max(axis=1)
    assert value.min() >= 0.03 * 0.95 and value.max() <= 0.6 * 1.05
    assert np.median(value) < 0.35  # mostly dark: sRGB 0.35 is 0.1 linear
    sat = (mean.max(axis=1) - mean.min(axis=1)) / mean.max(axis=1)
    assert (sat < 0.1).mean() > 0.3 and (sat > 0.6).mean() > 0.05  # mostly near-grey, some strong colours
