"""The render stage of ``--format dng``: the engine's output as the frame a linear DNG stores, and
the DNG's thumbnail.

Instead of a look, a linear DNG keeps camera RGB before white balance (:func:`camera_frame`), so
that a RAW editor applies its own; its IFD0 carries a small sRGB rendering of that frame
(:func:`thumbnail`). :func:`rawisp.io.dng.write_dng` writes both.
"""

from __future__ import annotations

import numpy as np

from rawisp.io.decode import RawImage
from rawisp.io.dng import THUMBNAIL_SIDE, WHITE
from rawisp.io.whitebalance import white_balance_gains
from rawisp.stages.render import render

STRIP_ROWS = 256  # rows of the engine output converted at a time


def camera_frame(rgb, wb: np.ndarray) -> np.ndarray:
    """Engine output -> the stored frame: (H, W, 3) uint16 linear camera RGB before white balance,
    0 = black, :data:`WHITE` = the source's white level (values outside clipped).

    rgb: (H, W, 3) linear white-balanced camera RGB as the engines give it (1.0 = white after the
    gains of :func:`rawisp.io.whitebalance.white_balance_gains`), or rows on demand (see
    :func:`rawisp.stages.render.render`)."""
    scale = (WHITE / white_balance_gains(wb)).astype(np.float32)
    h = rgb.shape[0]
    frame = np.empty((h, rgb.shape[1], 3), np.uint16)
    for y in range(0, h, STRIP_ROWS):
        strip = np.asarray(rgb[y:y + STRIP_ROWS], np.float32) * scale
        frame[y:y + STRIP_ROWS] = np.clip(np.rint(strip), 0, WHITE)
    return frame


def thumbnail(raw: RawImage, frame: np.ndarray) -> np.ndarray:
    """An 8-bit sRGB rendering of ``frame``, long side at most :data:`THUMBNAIL_SIDE`, not turned
    (the Orientation tag applies to it as to the raw image)."""
    step = -(-max(frame.shape[:2]) // THUMBNAIL_SIDE)
    h, w = frame.shape[0] // step * step, frame.shape[1] // step * step
    if h == 0 or w == 0:  # a frame thinner than one step: one row or column of samples
        small = frame[::step, ::step].astype(np.float32)
    else:
        small = frame[:h, :w].reshape(h // step, step, w // step, step, 3).mean(axis=(1, 3), dtype=np.float32)
    rgb = small * (white_balance_gains(raw.wb) / WHITE).astype(np.float32)
    return render(rgb, raw.srgb_from_cam, threads=1)
