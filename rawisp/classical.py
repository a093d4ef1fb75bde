"""The classical engine: bilinear demosaicking of RGGB-packed planes, vectorised."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from rawisp.normalise import Packed

BLOCK_ROWS = 256  # packed rows per work item; numpy releases the GIL, so blocks run in parallel


def bilinear(planes: np.ndarray, threads: int = 0) -> np.ndarray:
    """Bilinear demosaic: RGGB planes ``(4, h, w)`` -> full-resolution RGB ``(2h, 2w, 3)`` float32.

    Works in the packed domain: each missing value is the mean of its nearest 2 or 4 same-colour
    neighbours. Edge padding of the planes equals reflection of the mosaic, so borders behave
    like the rest of the frame. Blocks of rows run on ``threads`` threads (0: all CPUs).
    """
    padded = [np.pad(p.astype(np.float32, copy=False), 1, mode="edge") for p in planes]
    h, w = planes.shape[1:]
    out = np.empty((2 * h, 2 * w, 3), np.float32)
    blocks = [(y, min(y + BLOCK_ROWS, h)) for y in range(0, h, BLOCK_ROWS)]
    with ThreadPoolExecutor(threads or os.cpu_count() or 1) as pool:
        list(pool.map(lambda rows: _bilinear_rows(padded, out, *rows), blocks))
    return out


def _bilinear_rows(padded: list[np.ndarray], full: np.ndarray, y0: int, y1: int) -> None:
    """Fill full-resolution rows ``2*y0 .. 2*y1`` of ``full`` from edge-padded planes."""
    r, g1, g2, b = padded
    w = padded[0].shape[1] - 2
    c = (slice(1 + y0, 1 + y1), slice(1, w + 1))

    def at(p: np.ndarray, dy: int, dx: int) -> np.ndarray:
        return p[1 + y0 + dy:1 + y1 + dy, 1 + dx:w + 1 + dx]

    out = full[2 * y0:2 * y1]
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


def develop(packed: Packed, threads: int = 0) -> np.ndarray:
    """Classical reconstruction: linear white-balanced camera RGB ``(H, W, 3)`` at full resolution."""
    return packed.crop(bilinear(packed.planes, threads))
