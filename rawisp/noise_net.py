"""The blind noise estimate: a tiny CNN (``models/noise_net.onnx``) reads the noise level of a frame.

It maps the packed planes (normalised raw units, before white balance) to ln(variance +
VAR_FLOOR) of the green noise at every packed pixel; it was trained on synthetic raw frames of
known noise made from the training photos (``tools/train_noise_net.py``), so it has seen what
texture looks like next to noise. The frame's (shot, read) are then fitted robustly: pixels near
clipping and tile borders are left out, the rest are binned by brightness and each bin's median
predicted variance goes into the same non-negative line fit as ``rawisp.noise``.
"""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path

import numpy as np
import onnxruntime as ort

from rawisp.noise import fit_by_level
from rawisp.normalise import Packed

MODEL_NAME = "noise_net.onnx"
VAR_FLOOR = 1e-8  # the network's floor (rawisp.train.noise_net.VAR_FLOOR)
TILE = 128  # packed pixels a side
MAX_TILES = 32  # bigger frames are sampled on a regular grid of tiles
EDGE = 4  # packed pixels at each tile edge left out (padding reaches in there)


def default_path() -> Path:
    """The estimator shipped inside the package (``rawisp.models``, the project's ``models/``)."""
    try:
        return Path(str(resources.files("rawisp.models") / MODEL_NAME))
    except ModuleNotFoundError:  # a source checkout imported without installing it
        return Path(__file__).resolve().parent.parent / "models" / MODEL_NAME


class NoiseNet:
    """Call it on a Packed frame to get (shot, read std) in normalised raw units."""

    def __init__(self, path: Path | None = None, threads: int = 1) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path or default_path()), options, providers=["CPUExecutionProvider"])

    def __call__(self, packed: Packed) -> tuple[float, float]:
        raw = packed.planes / packed.gains[:, None, None]
        clip_level = 0.9 / float(packed.gains[1])  # greens this bright may be clipped after WB
        levels, variances = [], []
        for y, x, h, w in _tiles(raw.shape[1:]):
            tile = np.ascontiguousarray(raw[None, :, y:y + h, x:x + w], dtype=np.float32)
            log_var = self.session.run(None, {"raw": tile})[0][0, 0]
            green = _box3((tile[0, 1] + tile[0, 2]) / 2)
            inner = (slice(EDGE, h - EDGE), slice(EDGE, w - EDGE))
            levels.append(green[inner].ravel())
            variances.append(np.maximum(np.exp(log_var[inner].ravel()) - VAR_FLOOR, 0.0))
        if not levels:
            return 0.0, 0.0
        level, variance = np.concatenate(levels), np.concatenate(variances)

        def median_variance(sel: np.ndarray) -> tuple[float, float, float]:
            return float(np.mean(level[sel])), float(np.median(variance[sel])), float(sel.sum())

        return fit_by_level(level, level < clip_level, median_variance)


def _tiles(shape: tuple[int, int]) -> list[tuple[int, int, int, int]]:
    """(y, x, h, w) of up to MAX_TILES tiles spread evenly over a packed frame ``shape``."""
    h, w = shape
    if min(h, w) <= 2 * EDGE + 2:
        return []
    th, tw = min(TILE, h), min(TILE, w)
    ny, nx = math.ceil(h / th), math.ceil(w / tw)
    while ny * nx > MAX_TILES:  # sample the grid: fewer rows and columns of tiles
        ny, nx = max(1, ny - (ny >= nx)), max(1, nx - (nx > ny))
    ys = np.linspace(0, h - th, ny).round().astype(int)
    xs = np.linspace(0, w - tw, nx).round().astype(int)
    return [(int(y), int(x), th, tw) for y in ys for x in xs]


def _box3(a: np.ndarray) -> np.ndarray:
    """3x3 mean with replicated edges (the brightness the network's statistics use)."""
    p = np.pad(a, 1, mode="edge")
    return sum(p[i:i + a.shape[0], j:j + a.shape[1]] for i in range(3) for j in range(3)) / 9
