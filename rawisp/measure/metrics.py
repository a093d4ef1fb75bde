"""Image quality metrics of developed pictures against their ground truth: PSNR, SSIM, CIELAB and
CIEDE2000.

Images are uint8, uint16 (scaled to 8-bit units) or float in [0, 1], sRGB-encoded, (H, W, 3) or
(H, W); scores are taken over the image less ``border`` pixels at each edge.
"""

from __future__ import annotations

import math

import numpy as np

from rawisp.colour import SRGB_TO_XYZ, XYZ_WHITE, srgb_decode

__all__ = ["BORDER", "psnr", "ssim", "srgb_to_lab", "ciede2000", "mean_delta_e00", "score"]

BORDER = 10
"""Pixels left out at each edge by default (demosaickers differ most at borders, which say little)."""


def _as_float(img: np.ndarray) -> np.ndarray:
    """uint8 / uint16 / float [0, 1] image -> float64 in 8-bit units [0, 255]."""
    img = np.asarray(img)
    if img.dtype == np.uint8:
        return img.astype(np.float64)
    if img.dtype == np.uint16:
        return img * (255.0 / 65535.0)
    return img.astype(np.float64) * 255.0


def _crop(img: np.ndarray, border: int) -> np.ndarray:
    if border <= 0:
        return img
    if img.shape[0] <= 2 * border or img.shape[1] <= 2 * border:
        raise ValueError(f"image {img.shape[1]}x{img.shape[0]} is too small for a {border}-pixel border")
    return img[border:-border, border:-border]


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} and {b.shape}")


def psnr(a: np.ndarray, b: np.ndarray, border: int = BORDER) -> float:
    """Colour PSNR in dB (peak 255, MSE over all channels) of the image less ``border`` pixels.

    Images are uint8, uint16 (scaled to 8-bit units) or float in [0, 1]; identical images give inf.
    """
    _check_pair(a, b)
    diff = _crop(_as_float(a), border) - _crop(_as_float(b), border)
    mse = float(np.mean(diff * diff))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  # Gaussian window of 11 x 11 pixels
SSIM_K1, SSIM_K2 = 0.01, 0.03


def ssim(a: np.ndarray, b: np.ndarray, border: int = BORDER) -> float:
    """Mean SSIM (Wang et al. 2004) over channels of the image less ``border`` pixels.

    Gaussian window sigma 1.5 (11 x 11), K1 = 0.01, K2 = 0.03, dynamic range 255 (8-bit units),
    no sample-covariance correction; the mean is over windows lying wholly inside the region
    (as scikit-image's ``structural_similarity(gaussian_weights=True, use_sample_covariance=False)``).
    """
    _check_pair(a, b)
    x, y = _crop(_as_float(a), border), _crop(_as_float(b), border)
    if x.ndim == 2:
        x, y = x[..., None], y[..., None]
    c1, c2 = (SSIM_K1 * 255.0) ** 2, (SSIM_K2 * 255.0) ** 2
    radius = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)
    if min(x.shape[:2]) <= 2 * radius:
        raise ValueError(f"image region {x.shape[1]}x{x.shape[0]} is too small for the SSIM window")
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / SSIM_SIGMA) ** 2)
    taps /= taps.sum()

    def window_mean(v: np.ndarray) -> np.ndarray:
        """Gaussian-weighted mean of every whole window (separable, 'valid': no padding)."""
        rows = sum(t * v[i:v.shape[0] - 2 * radius + i] for i, t in enumerate(taps))
        return sum(t * rows[:, i:v.shape[1] - 2 * radius + i] for i, t in enumerate(taps))

    scores = []
    for ch in range(x.shape[2]):
        xc, yc = x[..., ch], y[..., ch]
        mx, my = window_mean(xc), window_mean(yc)
        vx = window_mean(xc * xc) - mx * mx
        vy = window_mean(yc * yc) - my * my
        cov = window_mean(xc * yc) - mx * my
        smap = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
        scores.append(smap.mean())
    return float(np.mean(scores))


def srgb_to_lab(img: np.ndarray) -> np.ndarray:
    """sRGB image (uint8 / uint16 / float [0, 1]) -> CIELAB (D65 white), float64 (..., 3)."""
    xyz = srgb_decode(_as_float(img) / 255.0) @ SRGB_TO_XYZ.T
    t = xyz / XYZ_WHITE
    delta = 6.0 / 29.0
    f = np.where(t > delta**3, np.cbrt(t), t / (3 * delta**2) + 4.0 / 29.0)
    return np.stack([116.0 * f[..., 1] - 16.0, 500.0 * (f[..., 0] - f[..., 1]), 200.0 * (f[..., 1] - f[..., 2])],
                    axis=-1)


def ciede2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 colour difference (kL = kC = kH = 1) of CIELAB arrays ``(..., 3)``.

    Follows Sharma, Wu & Dalal (2005), "The CIEDE2000 color-difference formula: implementation
    notes, supplementary test data, and mathematical observations", equations (1)-(17).
    """
    lab1, lab2 = np.asarray(lab1, np.float64), np.asarray(lab2, np.float64)
    l1, a1, b1 = lab1[..., 0], lab1[..., 1], lab1[..., 2]
    l2, a2, b2 = lab2[..., 0], lab2[..., 1], lab2[..., 2]
    c_mean = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    c7 = c_mean**7
    g = 0.5 * (1 - np.sqrt(c7 / (c7 + 25.0**7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360.0  # atan2(0, 0) = 0, as the paper asks
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360.0

    chroma_product = c1p * c2p
    achromatic = chroma_product == 0
    dlp = l2 - l1
    dcp = c2p - c1p
    dh = h2p - h1p
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(achromatic, 0.0, dh)
    dhp = 2 * np.sqrt(chroma_product) * np.sin(np.radians(dh) / 2)

    lp_mean = (l1 + l2) / 2
    cp_mean = (c1p + c2p) / 2
    h_sum = h1p + h2p
    hp_mean = np.where(np.abs(h1p - h2p) <= 180, h_sum / 2,
                       np.where(h_sum < 360, (h_sum + 360) / 2, (h_sum - 360) / 2))
    hp_mean = np.where(achromatic, h_sum, hp_mean)

    t = (1 - 0.17 * np.cos(np.radians(hp_mean - 30)) + 0.24 * np.cos(np.radians(2 * hp_mean))
         + 0.32 * np.cos(np.radians(3 * hp_mean + 6)) - 0.20 * np.cos(np.radians(4 * hp_mean - 63)))
    d_theta = 30 * np.exp(-(((hp_mean - 275) / 25) ** 2))
    cp7 = cp_mean**7
    r_c = 2 * np.sqrt(cp7 / (cp7 + 25.0**7))
    l50 = (lp_mean - 50) ** 2
    s_l = 1 + 0.015 * l50 / np.sqrt(20 + l50)
    s_c = 1 + 0.045 * cp_mean
    s_h = 1 + 0.015 * cp_mean * t
    r_t = -np.sin(np.radians(2 * d_theta)) * r_c
    tl, tc, th = dlp / s_l, dcp / s_c, dhp / s_h
    return np.sqrt(np.maximum(tl * tl + tc * tc + th * th + r_t * tc * th, 0.0))


def mean_delta_e00(a: np.ndarray, b: np.ndarray, border: int = BORDER) -> float:
    """Mean CIEDE2000 between two sRGB images over the image less ``border`` pixels."""
    _check_pair(a, b)
    return float(ciede2000(srgb_to_lab(_crop(np.asarray(a), border)), srgb_to_lab(_crop(np.asarray(b), border))).mean())


def score(output: np.ndarray, truth: np.ndarray, border: int = BORDER) -> dict[str, float]:
    """PSNR, SSIM and mean CIEDE2000 of a developed picture against its ground truth."""
    return {"psnr": psnr(output, truth, border), "ssim": ssim(output, truth, border),
            "delta_e00": mean_delta_e00(output, truth, border)}
