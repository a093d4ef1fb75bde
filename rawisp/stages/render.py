"""Colour rendering: white-balanced camera RGB -> display-ready sRGB pixels.

Steps, in order: camera-to-sRGB matrix -> exposure -> tone curve and sRGB transfer (one lookup
table) -> dithered quantisation. Highlights need no step here: normalisation already clipped
every channel at the lowest saturation level (see ``normalise.Packed``). Rendering runs in strips
of rows, so memory beyond the input and output stays small whatever the frame size.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numpy as np

from rawisp.colour import srgb_encode, tone_curve
from rawisp.threads import thread_count

TONES = ("default", "linear")
LUT_SIZE = 1 << 16
STRIP_ROWS = 256


SHOULDER_KNEE = 0.8  # linear value where the default tone's highlight shoulder begins


def shoulder(linear: np.ndarray, peak: float, knee: float = SHOULDER_KNEE) -> np.ndarray:
    """Roll linear values in [knee, peak] smoothly into [knee, 1]; identity when peak <= 1.

    Above the knee, ``t = x - knee`` becomes ``t / (1 + t / c)`` with ``c`` chosen so that ``peak``
    maps to exactly 1: slope 1 at the knee, monotonic, gradual over the whole range, so an
    exposure push compresses highlights instead of clipping them, and white stays white.
    """
    if peak <= 1.0:
        return linear
    span = peak - knee
    c = span / (span / (1 - knee) - 1)
    t = np.maximum(linear - knee, 0.0)
    return np.where(linear > knee, knee + t / (1 + t / c), linear)


@lru_cache(maxsize=8)
def _encode_lut(tone: str, exposure_ev: float, white: float) -> np.ndarray:
    """Lookup table over linear [0, white] -> final encoded value [0, 1] (float32)."""
    linear = np.linspace(0.0, white, LUT_SIZE) * 2.0**exposure_ev
    if tone == "default":
        return tone_curve(srgb_encode(shoulder(linear, white * 2.0**exposure_ev))).astype(np.float32)
    if tone == "linear":
        return srgb_encode(linear).astype(np.float32)
    raise ValueError(f"unknown tone {tone!r}; choose from {', '.join(TONES)}")


def _interpolate(lut: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Linear interpolation of the table at fractional positions ``pos`` in [0, len(lut) - 1]:
    16-bit output, exact on sRGB's linear toe and smooth above. (8-bit output takes the nearest
    entry, exact to 0.05 LSB as the table step is 1/65535 of the linear range.)"""
    index = np.minimum(pos.astype(np.int32), len(lut) - 2)
    pos -= index
    value = lut[index]
    value += pos * (lut[index + 1] - value)
    return value


def _fixed8(lut: np.ndarray) -> np.ndarray:
    """An encode table in 8-bit units with 8 fractional bits (uint16: at most 255 * 256)."""
    return np.round(lut * (255 * 256)).astype(np.uint16)


def render(rgb: np.ndarray, srgb_from_cam: np.ndarray, *, exposure: float = 0.0, tone: str = "default",
           bits: int = 8, seed: int = 0, threads: int = 0) -> np.ndarray:
    """Render linear white-balanced camera RGB ``(H, W, 3)`` to sRGB ``uint8``/``uint16``.

    ``rgb`` is an array, or anything with ``shape`` whose row slices ``rgb[y0:y1]`` give those rows
    as one (such as :class:`rawisp.engines.classical.BilinearRows`, which computes them on demand).
    exposure: EV added before the tone curve. Quantisation adds rectangular dither of one LSB
    (seeded per strip, so the same input gives the same file however many ``threads`` render
    it; 0: all CPUs), which hides banding in smooth gradients.
    """
    if bits not in (8, 16):
        raise ValueError("bits must be 8 or 16")
    top = 2.0 ** max(0.0, -exposure)  # highest linear input still distinguishable after exposure
    lut = _encode_lut(tone, float(exposure), top)
    out = np.empty(rgb.shape, np.uint8 if bits == 8 else np.uint16)
    # the matrix also scales linear [0, top] to table positions [0, LUT_SIZE - 1]
    matrix = (np.asarray(srgb_from_cam, np.float64).T * ((LUT_SIZE - 1) / top)).astype(np.float32)
    lut8 = _fixed8(lut) if bits == 8 else None

    def strip(y: int) -> None:
        rows = slice(y, y + STRIP_ROWS)
        pos = np.asarray(rgb[rows], dtype=np.float32) @ matrix
        np.maximum(pos, 0, out=pos)  # in place: np.clip would allocate and is slower
        np.minimum(pos, LUT_SIZE - 1, out=pos)
        rng = np.random.default_rng((seed, y))
        if bits == 8:
            # integer path, the 8-bit default: nearest table entry in 1/256 LSB, plus a random
            # byte (dither of one LSB in 1/256 steps), >> 8 floors; 255 * 256 + 255 fits uint16
            pos += 0.5
            value = lut8[pos.astype(np.uint16)]
            value += np.frombuffer(rng.bytes(value.size), np.uint8).reshape(value.shape)
            value >>= 8
            out[rows] = value
            return
        value = _interpolate(lut, pos) * 65535
        value += rng.random(value.shape, np.float32)  # +-0.5 LSB dither, floor
        np.minimum(value, 65535, out=value)
        out[rows] = value.astype(out.dtype)

    # numpy releases the GIL in these operations, so strips render in parallel
    with ThreadPoolExecutor(thread_count(threads)) as pool:
        list(pool.map(strip, range(0, rgb.shape[0], STRIP_ROWS)))
    return out
