"""Grain kept: a share of the noise the learned engine removed, put back as neutral fine grain.

The network told the frame's noise returns its estimate of the clean signal. Told less
(``--denoise`` below 1) it keeps more texture but leaves isolated dark specks in flat shadows (300
deep ones per MP at 0.85 of the noise, against 7.6), and told more than it was trained on it breaks
down, so that strength is no way to keep texture (docs/quality.md). This is the control a
photographer moves instead (Lightroom's and DxO's luminance noise-reduction amount): at each photosite, what the sensor recorded less what the
network made of that site's own channel is the noise removed there (and any fine texture removed
with it); a share ``amount`` of it is added back to all three channels of that pixel.

- Neutral grain: added equally to R, G and B of white-balanced camera RGB it has no colour (the
  camera matrix maps equal values to grey), so the colour noise stays removed; on luminance the
  texture measure sees it whole.
- Linear in ``amount``: the output moves on a straight line from the network's full noise reduction
  (0, ``rawisp eval``'s setting) to all of the removed luminance noise back (1), so every amount
  lies between the two in texture (a linear measure) and in noise.
- Noise only: each kind of site's local mean is taken out of the difference, so an offset of the
  network's never comes back as a pattern.
- Bounded: a difference beyond :data:`BOUND` standard deviations of the noise the engine was told is
  the network's own correction of the mosaic (at a saturated edge, where one channel's site says
  little of the others), not noise, and only the bound is put back; told no noise (``--denoise
  off``), nothing is. Sites the engine saw clipped get none.
"""

from __future__ import annotations

import numpy as np

from rawisp.engines.contract import PLANE_CHANNEL

BOUND = 3.0  # the largest difference put back, in standard deviations of the noise the engine was told
MEAN_RADIUS = 4  # packed pixels: a 9x9 local mean (18 output pixels), below 0.05 cycles per output pixel
SITES = ((0, 0), (0, 1), (1, 0), (1, 1))  # (row, column) of each packed plane (R, G1, G2, B) in its 2x2


def grain(rgb: np.ndarray, planes: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """The noise the network removed at each photosite, bounded, ``(2h, 2w)`` float32.

    rgb: ``(3, 2h, 2w)`` the network's linear white-balanced camera RGB at full resolution;
    planes: ``(4, h, w)`` the packed white-balanced mosaic it was given (normalised, 1.0 = clip);
    sigma: ``(4, h, w)`` the noise std the engine was told for each of those values (same units).
    Each plane's local mean (:data:`MEAN_RADIUS`) is taken out: noise has none, and an offset of the
    network at one kind of site (R against B), put back on all three channels, would draw a 2x2
    pattern on flat areas.
    """
    out = np.empty(rgb.shape[1:], np.float32)
    for plane, ((dy, dx), channel) in enumerate(zip(SITES, PLANE_CHANNEL)):
        bound = np.float32(BOUND) * sigma[plane]
        removed = np.clip(planes[plane] - rgb[channel, dy::2, dx::2], -bound, bound)
        removed -= box_mean(removed, MEAN_RADIUS)
        out[dy::2, dx::2] = np.where(planes[plane] >= 1, 0, removed)  # clipped: nothing known to put back
    return out


def keep_grain(rgb: np.ndarray, planes: np.ndarray, sigma: np.ndarray, amount: float) -> np.ndarray:
    """``rgb`` ``(3, 2h, 2w)`` with the share ``amount`` (0 to 1) of :func:`grain` added to every
    channel: 0 gives ``rgb`` itself, the network's full noise reduction."""
    if amount == 0:
        return rgb
    return rgb + np.float32(amount) * grain(rgb, planes, sigma)[None]


def box_mean(a: np.ndarray, radius: int) -> np.ndarray:
    """The mean of ``a`` ``(h, w)`` over the ``(2 radius + 1)``-pixel square around each pixel, the
    array extended by reflection at its edges (float32, by running sums along each axis)."""
    side = 2 * radius + 1
    sums = np.cumsum(np.pad(a.astype(np.float32), radius, mode="reflect"), axis=0)
    rows = sums[side - 1:].copy()
    rows[1:] -= sums[:-side]  # each row: the sum of the `side` rows ending there
    sums = np.cumsum(rows, axis=1)
    square = sums[:, side - 1:].copy()
    square[:, 1:] -= sums[:, :-side]
    return square / np.float32(side * side)
