"""Where to look: the crops of a comparison picture, chosen by detail or given.

Crops are chosen on one development (the classical one, so they do not move when the model
changes): on its luminance, box-downscaled so the long side is at most ANALYSIS_SIDE, the absolute
Laplacian is summed over every crop-sized window and the best windows are taken greedily, each one
not overlapping those taken before.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

ANALYSIS_SIDE = 1024


class CompareError(Exception):
    """A problem with one file's comparison (a crop outside the picture, a bad image); one line."""


@dataclass(frozen=True)
class Rect:
    """A rectangle in upright output pixel coordinates: left x, top y, width w, height h."""

    x: int
    y: int
    w: int
    h: int

    def slices(self) -> tuple[slice, slice]:
        return slice(self.y, self.y + self.h), slice(self.x, self.x + self.w)

    def __str__(self) -> str:
        return f"{self.x},{self.y},{self.w},{self.h}"


def parse_rect(text: str) -> Rect:
    """``"X,Y,W,H"`` -> Rect; ValueError for anything else (W and H at least 1)."""
    try:
        x, y, w, h = (int(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        raise ValueError(f"expected X,Y,W,H (four integers), got {text!r}") from None
    if x < 0 or y < 0 or w < 1 or h < 1:
        raise ValueError(f"{text!r}: X and Y must be >= 0, W and H >= 1")
    return Rect(x, y, w, h)


def luminance(pixels: np.ndarray) -> np.ndarray:
    """Rec. 709 luma of sRGB-encoded pixels (uint8 / uint16 / float), float32 in [0, 1]."""
    scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(pixels.dtype, 1.0)
    weights = np.array([0.2126, 0.7152, 0.0722], np.float32) / np.float32(scale)
    return pixels.astype(np.float32) @ weights


def detail_map(pixels: np.ndarray, side: int = ANALYSIS_SIDE) -> tuple[np.ndarray, int]:
    """High-frequency energy of a picture and its scale factor ``f``: |Laplacian| of the luminance
    box-downscaled by ``f`` (at least 2, so pixel noise averages out; long side <= ``side``)."""
    lum = luminance(pixels)
    h, w = lum.shape
    f = max(2, math.ceil(max(h, w) / side))
    hs, ws = max(1, h // f), max(1, w // f)
    if h >= f and w >= f:
        small = lum[:hs * f, :ws * f].reshape(hs, f, ws, f).mean(axis=(1, 3))
    else:
        small = np.full((hs, ws), lum.mean(), np.float32)
    p = np.pad(small, 1, mode="edge")
    lap = 4 * p[1:-1, 1:-1] - p[:-2, 1:-1] - p[2:, 1:-1] - p[1:-1, :-2] - p[1:-1, 2:]
    return np.abs(lap), f


def plan_crops(pixels: np.ndarray, count: int = 3, size: int = 384) -> list[Rect]:
    """The ``count`` most detailed, mutually non-overlapping ``size`` x ``size`` windows of an
    upright picture (clipped to the picture), most detailed first; fewer when they do not fit.

    With ``count`` > 1 the side is at most a third of the long side, so that two crops fit."""
    h, w = pixels.shape[:2]
    if count <= 0 or h == 0 or w == 0:
        return []
    if count > 1:  # small pictures: smaller crops, so that at least two fit
        size = min(size, max(16, max(h, w) // 3))
    cw, ch = min(size, w), min(size, h)
    energy, f = detail_map(pixels)
    hs, ws = energy.shape
    wc, hc = max(1, min(ws, round(cw / f))), max(1, min(hs, round(ch / f)))
    table = np.zeros((hs + 1, ws + 1), np.float64)
    table[1:, 1:] = energy.cumsum(0).cumsum(1)
    sums = table[hc:, wc:] - table[:-hc, wc:] - table[hc:, :-wc] + table[:-hc, :-wc]
    taken: list[Rect] = []
    while len(taken) < count:
        best = np.unravel_index(int(np.argmax(sums)), sums.shape)
        if not np.isfinite(sums[best]):
            break
        y0, x0 = int(best[0]), int(best[1])
        x, y = min(x0 * f, w - cw), min(y0 * f, h - ch)
        rect = Rect(x, y, cw, ch)
        # windows whose full-resolution rectangle would overlap this one are out
        ylo, yhi = max(0, -(-(y - ch + 1) // f)), min(sums.shape[0], (y + ch - 1) // f + 1)
        xlo, xhi = max(0, -(-(x - cw + 1) // f)), min(sums.shape[1], (x + cw - 1) // f + 1)
        sums[ylo:yhi, xlo:xhi] = -np.inf
        sums[y0, x0] = -np.inf
        if any(_overlap(rect, r) for r in taken):
            continue
        taken.append(rect)
    return taken


def _overlap(a: Rect, b: Rect) -> bool:
    return a.x < b.x + b.w and b.x < a.x + a.w and a.y < b.y + b.h and b.y < a.y + a.h


def clip_crops(crops: Sequence[Rect], shape: tuple[int, int]) -> tuple[list[Rect], list[str]]:
    """Given crops clipped to a picture of ``shape`` (H, W); CompareError if one lies outside."""
    h, w = shape[:2]
    out, warnings = [], []
    for r in crops:
        if r.x >= w or r.y >= h:
            raise CompareError(f"crop {r} lies outside the {w}x{h} picture")
        c = Rect(r.x, r.y, min(r.w, w - r.x), min(r.h, h - r.y))
        if c != r:
            warnings.append(f"crop {r} clipped to {c} (the picture is {w}x{h})")
        out.append(c)
    return out, warnings
