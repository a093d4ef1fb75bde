"""Colour constants, the sRGB transfer functions, the default tone curve and the DNG colour matrix of
a camera matrix, in one place for the whole project."""

from __future__ import annotations

import numpy as np

SRGB_TO_XYZ: np.ndarray = np.array([[0.4124564, 0.3575761, 0.1804375],
                                    [0.2126729, 0.7151522, 0.0721750],
                                    [0.0193339, 0.1191920, 0.9503041]])
"""Linear sRGB (D65) -> CIE XYZ (D65, Y of white = 1)."""

XYZ_WHITE: np.ndarray = SRGB_TO_XYZ.sum(axis=1)
"""CIE XYZ of sRGB white (D65, Y = 1)."""

BAYER_PATTERNS = ("RGGB", "BGGR", "GRBG", "GBRG")
"""The four Bayer colour filter array phases: colours of the 2x2 at (0,0), (0,1), (1,0), (1,1)."""

CHANNEL_INDEX = {"R": 0, "G": 1, "B": 2}
"""Index of each colour in an RGB triple."""


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """Linear light [0, 1] -> sRGB-encoded [0, 1] (IEC 61966-2-1), clipping outside [0, 1]. float64.

    The inverse is :func:`srgb_decode`."""
    v = np.clip(np.asarray(linear, dtype=np.float64), 0.0, 1.0)
    return np.where(v <= 0.0031308, 12.92 * v, 1.055 * np.power(v, 1 / 2.4) - 0.055)


def srgb_decode(encoded: np.ndarray) -> np.ndarray:
    """sRGB-encoded [0, 1] -> linear light [0, 1] (IEC 61966-2-1), clipping outside [0, 1]. float64.

    The inverse is :func:`srgb_encode`."""
    v = np.clip(np.asarray(encoded, dtype=np.float64), 0.0, 1.0)
    return np.where(v <= 0.04045, v / 12.92, np.power((v + 0.055) / 1.055, 2.4))


def tone_curve(encoded: np.ndarray) -> np.ndarray:
    """The default look, on sRGB-encoded values [0, 1] -> [0, 1].

    ``y = x - k sin(2 pi x) / (2 pi)`` with k = 0.15: contrast +15% at mid-grey (0.5 encoded),
    a softer toe and shoulder, 0 and 1 fixed, monotonic. No shadows or highlights are clipped.
    """
    x = np.asarray(encoded, dtype=np.float64)
    return x - 0.15 * np.sin(2 * np.pi * x) / (2 * np.pi)


def colour_matrix_from(cam_from_srgb: np.ndarray) -> np.ndarray:
    """ColorMatrix1 (XYZ -> camera, D65) making LibRaw's rgb_cam equal inv(cam_from_srgb)."""
    cam_from_srgb = np.asarray(cam_from_srgb, dtype=np.float64)
    if not np.allclose(cam_from_srgb.sum(axis=1), 1, atol=1e-6):
        raise ValueError("cam_from_srgb rows must sum to 1 (sRGB white -> camera white)")
    return cam_from_srgb @ np.linalg.inv(SRGB_TO_XYZ)
