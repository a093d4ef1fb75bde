"""The learned model's contract: what the network is fed and what it returns, for the runtime
(``engines/learned.py``, ``stages/normalise.py``, ``engines/noise.py``) and the training code
(``train/``) alike.

numpy only (no torch), so the runtime can import it; the training side computes the same
formula in torch but takes every constant and name from here, and a test checks that both sides
build the same input for one capture.

Input ``(N, CHANNELS, h, w)``, packed at half resolution:

- ``PACKED_PLANES``: the white-balanced Bayer mosaic as RGGB planes (R at (0, 0), G1 at (0, 1),
  G2 at (1, 0), B at (1, 1) of each 2x2), linear, (DN - black) / (white - black) times the
  white-balance gain of the plane (gains normalised so the smallest is 1), clipped above at 1.0,
  negatives kept;
- ``SIGMA_PLANES``: the noise standard deviation of each of those values, :func:`sigma_planes`.

Output ``(N, OUTPUT_CHANNELS, SCALE h, SCALE w)``: linear white-balanced camera RGB at full
resolution (1.0 = clip). Tile sides are multiples of ``STRIDE`` (the U-Net's total downsampling).
"""

from __future__ import annotations

import numpy as np

PACKED_PLANES = ("R", "G1", "G2", "B")
SIGMA_PLANES = tuple(f"sigma_{p}" for p in PACKED_PLANES)
PLANES = PACKED_PLANES + SIGMA_PLANES
CHANNELS = len(PLANES)  # 8
OUTPUT_CHANNELS = 3
SCALE = 2  # output pixels per packed pixel, each axis
STRIDE = 4  # packed pixels: the U-Net downsamples by 2 twice below the packed resolution
INPUT_NAME = "packed"
OUTPUT_NAME = "rgb"
CARD_FORMAT = "rawisp-lwisp/1"
PLANE_CHANNEL = (0, 1, 1, 2)  # the RGB channel (R 0, G 1, B 2) of each packed plane

PACKING = "RGGB at half resolution: R (0,0), G1 (0,1), G2 (1,0), B (1,1) of each 2x2"
NORMALISATION = ("linear; (DN - black) / (white - black) per site, times white-balance gains (min gain 1), "
                 "clipped above at 1.0; negatives kept")
NOISE = ("sigma = sqrt(shot * g * x + (g * read)^2) per plane, x the packed value clipped at 0, g the plane's "
         "gain, (shot, read) in normalised raw units before white balance")
MEANING = "linear white-balanced camera RGB at full resolution (1.0 = clip)"


def sigma_planes(planes: np.ndarray, gains: np.ndarray, shot: float, read: float) -> np.ndarray:
    """Noise std of each white-balanced packed value, ``(4, h, w)`` float32 in the planes' units.

    Raw noise has variance ``shot * x_raw + read**2`` (normalised raw units, before white
    balance); multiplied by a plane's gain ``g`` it becomes ``shot * g * x + (g * read)**2`` for
    the white-balanced value ``x`` (clipped at 0). ``gains`` (4,) in PACKED_PLANES order.
    """
    g = np.asarray(gains, np.float32)[:, None, None]
    var = np.float32(shot) * g * np.maximum(planes, 0) + (g * np.float32(read)) ** 2
    return np.sqrt(var, dtype=np.float32)


def model_input(planes: np.ndarray, gains: np.ndarray, shot: float, read: float) -> np.ndarray:
    """The network input of one frame or tile: packed planes ``(4, h, w)`` and their sigma planes
    -> ``(1, CHANNELS, h, w)`` float32, contiguous."""
    x = np.concatenate([planes, sigma_planes(planes, gains, shot, read)])[None]
    return np.ascontiguousarray(x, dtype=np.float32)


def card_io() -> dict:
    """The ``input``/``output`` sections of a model card, as the exporter writes them."""
    return {
        "input": {"name": INPUT_NAME, "layout": "NCHW", "channels": CHANNELS, "planes": list(PLANES),
                  "packing": PACKING, "normalisation": NORMALISATION, "noise": NOISE},
        "output": {"name": OUTPUT_NAME, "channels": OUTPUT_CHANNELS, "scale": SCALE, "meaning": MEANING},
    }
