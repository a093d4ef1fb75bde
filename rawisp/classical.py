"""The classical engine: bilinear demosaicking of RGGB-packed planes, vectorised."""

from __future__ import annotations

import numpy as np

from rawisp.normalise import Packed


def bilinear(planes: np.ndarray) -> np.ndarray:
    """Bilinear demosaic: RGGB planes ``(4, h, w)`` -> full-resolution RGB ``(2h, 2w, 3)`` float32.

    Works in the packed domain: each missing value is the mean of its nearest 2 or 4 same-colour
    neighbours. Edge padding of the planes equals reflection of the mosaic, so borders behave
    like the rest of the frame.
    """
    r, g1, g2, b = (np.pad(p.astype(np.float32, copy=False), 1, mode="edge") for p in planes)
    h, w = planes.shape[1:]
    c = (slice(1, h + 1), slice(1, w + 1))

    def at(p: np.ndarray, dy: int, dx: int) -> np.ndarray:
        return p[1 + dy:h + 1 + dy, 1 + dx:w + 1 + dx]

    out = np.empty((2 * h, 2 * w, 3), np.float32)
    # R sites (even row, even column)
    out[0::2, 0::2, 0] = r[c]
    out[0::2, 0::2, 1] = (g1[c] + at(g1, 0, -1) + g2[c] + at(g2, -1, 0)) * 0.25
    out[0::2, 0::2, 2] = (b[c] + at(b, -1, 0) + at(b, 0, -1) + at(b, -1, -1)) * 0.25
    # G1 sites (even row, odd column)
    out[0::2, 1::2, 0] = (r[c] + at(r, 0, 1)) * 0.5
    out[0::2, 1::2, 1] = g1[c]
    out[0::2, 1::2, 2] = (b[c] + at(b, -1, 0)) * 0.5
    # G2 sites (odd row, even column)
    out[1::2, 0::2, 0] = (r[c] + at(r, 1, 0)) * 0.5
    out[1::2, 0::2, 1] = g2[c]
    out[1::2, 0::2, 2] = (b[c] + at(b, 0, -1)) * 0.5
    # B sites (odd row, odd column)
    out[1::2, 1::2, 0] = (r[c] + at(r, 1, 0) + at(r, 0, 1) + at(r, 1, 1)) * 0.25
    out[1::2, 1::2, 1] = (g1[c] + at(g1, 1, 0) + g2[c] + at(g2, 0, 1)) * 0.25
    out[1::2, 1::2, 2] = b[c]
    return out


def develop(packed: Packed) -> np.ndarray:
    """Classical reconstruction: linear white-balanced camera RGB ``(H, W, 3)`` at full resolution."""
    return packed.crop(bilinear(packed.planes))
