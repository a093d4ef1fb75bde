"""Dead-leaves texture measure: texture MTF and residual noise, what a photographer sees at 100%.

A dead-leaves chart (Lee, Mumford & Huang 2001; Cao, Guichard & Hornung 2010, "Dead leaves
model for measuring texture quality on a digital camera", SPIE 7537; IEEE 1858 "Camera Phone
Image Quality") is a stack of occluding grey disks whose radii follow a power law (density
~ r^-3, the scale statistics of natural images). Edges of every size and orientation give it a
broad spectrum, so a denoiser that smooths fine texture (gravel, foliage, brick) shows up here
while a slanted edge, which it keeps sharp, does not.

Targets (``target``; grey, R = G = B, sRGB-encoded float64 in [0, 1]). Each leaf has one linear
luminance drawn uniformly from the target's range (``TARGETS``):

- ``normal``: linear 0.04-0.40 (mean 0.22, 10:1), a normally lit scene;
- ``dark``: dark, low contrast, linear 0.025-0.075 (mean 0.05, sRGB ~0.25; 3:1): texture in the
  shade (gravel, bark, brick mortar), where the noise is strongest relative to the signal and a
  denoiser is tempted to wipe it. RMS contrast 27% of the mean (15% within 0.1-0.3 cycles/px,
  11% above 0.2).

Radii 1-``size``/2 output pixels (disks drawn 4x supersampled and area-averaged: anti-aliased
edges), front-to-back until the frame is covered, a fixed seed: the same image every time.

The measure (``measure``), on linear luminance (Rec. 709 weights of linear sRGB), each image
divided by its own mean and the mean subtracted (relative contrast, so a brightness scale of
either image changes nothing), a border left out and a Hann window applied:

- **texture MTF** per radial frequency band (cycles per pixel; 0.5 = Nyquist along an axis):
  ``|sum X* Y| / sum |X|^2`` over the band's Fourier bins, X the truth, Y the output: the
  cross-spectrum estimate of Cao et al. 2010. Noise independent of the truth averages out of the
  numerator (an unbiased estimate, unlike the ratio of power spectra, which noise inflates).
  Summary ``mtf``: the mean over the bands within 0.1-0.3 cycles/px (1 = all the texture kept).
- **residual noise**: the part of Y incoherent with X, i.e. Y less the best linear prediction
  from X with one complex gain per band (its energy is ``(1 - coherence^2) |Y|^2`` per band),
  restricted to frequencies above 0.2 cycles/px (radius, corners included), as an RMS in % of
  the mean level. White noise of standard deviation s on a mean level m reads
  ``100 s / m * sqrt(1 - pi 0.2^2) = 93.5 s / m``. Whatever else the output adds that the truth
  does not explain linearly (demosaicking artefacts, aliasing) counts as noise too.

Numpy only (no torch): used by ``rawisp train``'s validation and ``tools/model_defects.py``.
"""

from __future__ import annotations

import functools

import numpy as np

from rawisp.colour import srgb_decode, srgb_encode

TARGETS: dict[str, tuple[float, float]] = {"normal": (0.04, 0.40), "dark": (0.025, 0.075)}
"""Linear luminance range of the leaves of each target (uniform within it)."""

SEED = 1858  # the targets' fixed seed (IEEE 1858)
SUPERSAMPLE = 4
BAND = 0.025  # width of the radial frequency bands, cycles per pixel
MTF_BAND = (0.1, 0.3)  # cycles per pixel: the texture MTF's summary range
NOISE_ABOVE = 0.2  # cycles per pixel: residual noise is measured above this
BORDER = 16  # pixels left out at each edge
LUMA = np.array([0.2126, 0.7152, 0.0722])  # Rec. 709 / sRGB luminance of linear RGB


def leaves(size: int, lo: float, hi: float, seed: int = SEED, r_min: float = 1.0,
           r_max: float | None = None) -> np.ndarray:
    """A dead-leaves image ``(size, size)`` of linear values, leaves uniform in [lo, hi].

    Disks with radii from ``r_min`` to ``r_max`` (default ``size / 2``) output pixels, density
    ~ r^-3, centres uniform over the frame extended by the radius, stacked front to back until
    every subpixel of the ``SUPERSAMPLE``-times larger frame is covered, then area-averaged.
    """
    rng = np.random.default_rng(seed)
    s = SUPERSAMPLE
    big = size * s
    r_min, r_max = r_min * s, (r_max if r_max is not None else size / 2) * s
    img = np.zeros((big, big))
    free = np.ones((big, big), bool)  # not yet covered by a nearer leaf
    left = big * big
    coords = np.arange(big, dtype=np.float64) + 0.5
    while left:
        u = rng.random(4096)
        radii = (r_min ** -2 - u * (r_min ** -2 - r_max ** -2)) ** -0.5  # inverse CDF of r^-3
        centres = rng.random((4096, 2))
        values = rng.uniform(lo, hi, 4096)
        for r, (cy, cx), v in zip(radii, centres, values):
            cy, cx = cy * (big + 2 * r) - r, cx * (big + 2 * r) - r
            y0, y1 = max(int(cy - r), 0), min(int(cy + r) + 1, big)
            x0, x1 = max(int(cx - r), 0), min(int(cx + r) + 1, big)
            if y0 >= y1 or x0 >= x1:
                continue
            disk = (coords[y0:y1, None] - cy) ** 2 + (coords[None, x0:x1] - cx) ** 2 <= r * r
            new = disk & free[y0:y1, x0:x1]
            count = int(new.sum())
            if count:
                img[y0:y1, x0:x1][new] = v
                free[y0:y1, x0:x1][new] = False
                left -= count
                if not left:
                    break
    return img.reshape(size, s, size, s).mean(axis=(1, 3))


def target(kind: str = "dark", size: int = 512, seed: int = SEED) -> np.ndarray:
    """The grey dead-leaves target ``kind`` (a key of ``TARGETS``): sRGB-encoded ``(size, size, 3)``
    float64 in [0, 1], R = G = B (write it with ``rawisp.measure.synth.srgb_to_dng`` or as a PNG)."""
    if kind not in TARGETS:
        raise ValueError(f"unknown target {kind!r}; choose from {', '.join(TARGETS)}")
    return np.repeat(_encoded(size, *TARGETS[kind], seed)[..., None], 3, axis=2)


@functools.lru_cache(maxsize=8)
def _encoded(size: int, lo: float, hi: float, seed: int) -> np.ndarray:
    """``leaves`` sRGB-encoded, kept: a training run builds its validation target once per start."""
    encoded = srgb_encode(leaves(size, lo, hi, seed=seed))
    encoded.flags.writeable = False
    return encoded


def luminance(img: np.ndarray, encoding: str = "linear") -> np.ndarray:
    """Linear luminance ``(h, w)`` of an image ``(h, w)`` or ``(h, w, 3)``; ``encoding`` ``srgb``:
    the values are sRGB-encoded in [0, 1] (decoded first), ``linear``: linear light already."""
    img = np.asarray(img, dtype=np.float64)
    if encoding == "srgb":
        img = srgb_decode(img)
    elif encoding != "linear":
        raise ValueError(f"unknown encoding {encoding!r}; choose from srgb, linear")
    return img @ LUMA if img.ndim == 3 else img


def _spectrum(lum: np.ndarray, window: np.ndarray) -> np.ndarray:
    mean = lum.mean()
    if not mean > 0:
        raise ValueError("an image with no positive mean level has no relative contrast to measure")
    return np.fft.fft2((lum / mean - 1.0) * window)


def measure(truth: np.ndarray, output: np.ndarray, encoding: str = "linear", border: int = BORDER) -> dict:
    """Texture MTF and residual noise of ``output`` against ``truth`` (same shape; see the module
    docstring). Returns ``mtf`` (0.1-0.3 cycles/px mean), ``noise_percent`` (RMS above 0.2
    cycles/px, % of the mean level), and per band ``frequencies`` (band centres, cycles/px, up to
    Nyquist) and ``band_mtf``."""
    x, y = luminance(truth, encoding), luminance(output, encoding)
    if x.shape != y.shape:
        raise ValueError(f"truth {x.shape} and output {y.shape} differ in size")
    if border:
        x, y = x[border:-border, border:-border], y[border:-border, border:-border]
    h, w = x.shape
    window = np.outer(np.hanning(h), np.hanning(w))
    big_x, big_y = _spectrum(x, window), _spectrum(y, window)
    radius = np.hypot(*np.meshgrid(np.fft.fftfreq(h), np.fft.fftfreq(w), indexing="ij"))
    band = (radius / BAND).astype(int)
    n = band.max() + 1
    cross = np.bincount(band.ravel(), (np.conj(big_x) * big_y).ravel().real, n) \
        + 1j * np.bincount(band.ravel(), (np.conj(big_x) * big_y).ravel().imag, n)
    power_x = np.bincount(band.ravel(), (np.abs(big_x) ** 2).ravel(), n)
    power_y = np.bincount(band.ravel(), (np.abs(big_y) ** 2).ravel(), n)
    with np.errstate(invalid="ignore", divide="ignore"):
        gain = np.where(power_x > 0, cross / power_x, 0.0)  # the best complex gain per band
    centres = (np.arange(n) + 0.5) * BAND
    in_range = (centres > MTF_BAND[0]) & (centres < MTF_BAND[1])
    # Y's energy that the per-band linear prediction from X leaves: |Y|^2 - |X* Y|^2 / |X|^2
    incoherent = np.maximum(power_y - np.abs(gain) ** 2 * power_x, 0.0)
    high = centres - BAND / 2 >= NOISE_ABOVE - 1e-12
    # Parseval: the variance of the band-limited part is its energy / (h w)^2, windowed: / mean(w^2)
    variance = incoherent[high].sum() / (h * w) ** 2 / np.mean(window ** 2)
    nyquist = centres < 0.5
    return {"mtf": float(np.mean(np.abs(gain[in_range]))),
            "noise_percent": float(100 * np.sqrt(variance)),
            "frequencies": centres[nyquist].round(4).tolist(),
            "band_mtf": np.abs(gain[nyquist]).round(4).tolist()}
