"""Scaling developed pictures down (``rawisp develop --long-edge``): area averaging in linear light.

Scaling happens after rendering, on the finished picture, as darktable's and RawTherapee's export
sizes do: its sRGB values are decoded to linear light, each output pixel is the area-weighted mean
of the input pixels it covers (Pillow's box filter, which weighs partly covered pixels by the part
covered), and the result is encoded to sRGB again and quantised with one LSB of seeded dither, as
rendering does. Averaging light rather than sRGB code values keeps fine bright detail (stars,
backlit leaves, text) as bright as at full size: a 0/255 checkerboard becomes about 188, not 128.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from PIL import Image

from rawisp.colour import srgb_decode, srgb_encode


def scaled_size(height: int, width: int, long_edge: int) -> tuple[int, int]:
    """(height, width) with the longer side ``long_edge`` pixels and the aspect ratio kept (the short
    side rounded, at least 1); the size unchanged when it is already no longer."""
    if max(height, width) <= long_edge:
        return height, width
    scale = long_edge / max(height, width)
    if height >= width:
        return long_edge, max(1, round(width * scale))
    return max(1, round(height * scale)), long_edge


@cache
def _linear_table() -> np.ndarray:
    """Linear light [0, 1] (float32) of each 16-bit sRGB code."""
    return srgb_decode(np.arange(65536) / 65535).astype(np.float32)


def downscale(pixels: np.ndarray, long_edge: int, bits: int, seed: int = 0) -> np.ndarray:
    """Scale sRGB pixels ``(H, W, 3)`` uint16 down to a long edge of ``long_edge`` pixels.

    Returns sRGB ``uint8`` (``bits`` 8) or ``uint16`` (``bits`` 16) pixels ``(h, w, 3)``; a picture
    already no longer is only requantised. The same input and seed give the same pixels.
    """
    if pixels.dtype != np.uint16 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"expected (H, W, 3) uint16 sRGB pixels, got {pixels.dtype} {pixels.shape}")
    if bits not in (8, 16):
        raise ValueError("bits must be 8 or 16")
    height, width = scaled_size(*pixels.shape[:2], long_edge)
    table = _linear_table()
    linear = np.empty((height, width, 3), np.float32)
    for c in range(3):  # one float plane at a time: 4 bytes a pixel, not 12
        plane = Image.fromarray(table[pixels[..., c]])  # float32: mode "F"
        linear[..., c] = np.asarray(plane.resize((width, height), Image.Resampling.BOX))
    top = (1 << bits) - 1
    value = srgb_encode(linear) * top + np.random.default_rng(seed).random(linear.shape)  # +-0.5 LSB dither
    return np.minimum(value, top).astype(np.uint8 if bits == 8 else np.uint16)
