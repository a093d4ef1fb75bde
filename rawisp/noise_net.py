"""The blind noise estimate: a tiny CNN (``models/noise_net.onnx``) reads the noise level of a frame.

It maps the packed planes (normalised raw units, before white balance) to ln(variance +
VAR_FLOOR) of the green noise at every packed pixel and a weight logit per pixel; it was trained on
synthetic raw frames of known noise made from the training photos (``tools/train_noise_net.py``),
so it has seen what texture looks like next to noise. The frame's (shot, read) are then fitted:
pixels near clipping and tile borders are left out, the rest are binned by brightness; each bin's
softmax-weighted mean of ln variance (the robust pooling it was trained with: flat, noise-only
pixels count, texture does not) goes into the same non-negative line fit as ``rawisp.noise``.
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
VAR_FLOOR = 1e-6  # the network's floor (rawisp.train.noise_net.VAR_FLOOR)
TILE = 128  # packed pixels a side
MAX_TILES = 32  # bigger frames are sampled on a regular grid of tiles
EDGE = 4  # packed pixels at each tile edge left out (padding reaches in there)
MID_GREY = 0.18
# ln sigma(0.18) as estimated -> as it was, median over training photos (python tools/calibrate_noise_net.py);
# between knots linear, beyond them the end knots' offsets
CALIBRATION = (
    (-6.519, -5.907, -5.676, -5.439, -5.216, -4.943, -4.662, -4.318, -4.076, -3.711),
    (-6.908, -6.188, -6.146, -5.666, -5.082, -4.734, -4.245, -3.895, -3.684, -3.415),
)


def default_path() -> Path:
    """The estimator shipped inside the package (``rawisp.models``, the project's ``models/``)."""
    try:
        return Path(str(resources.files("rawisp.models") / MODEL_NAME))
    except ModuleNotFoundError:  # a source checkout imported without installing it
        return Path(__file__).resolve().parent.parent / "models" / MODEL_NAME


class NoiseNet:
    """Call it on a Packed frame to get (shot, read std) in normalised raw units."""

    def __init__(self, path: Path | None = None, threads: int = 1, calibrated: bool = True) -> None:
        self.calibrated = calibrated
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path or default_path()), options, providers=["CPUExecutionProvider"])

    def __call__(self, packed: Packed) -> tuple[float, float]:
        shot, read = self.pooled(packed)
        if not self.calibrated or shot == read == 0:
            return shot, read
        log_sigma = 0.5 * math.log(shot * MID_GREY + read**2)
        gain = math.exp(calibrate(log_sigma) - log_sigma)  # sigma scale
        return shot * gain**2, read * gain

    def pooled(self, packed: Packed) -> tuple[float, float]:
        """The network's (shot, read) before calibration."""
        raw = packed.planes / packed.gains[:, None, None]
        clip_level = 0.9 / float(packed.gains[1])  # greens this bright may be clipped after WB
        levels, log_vars, logits = [], [], []
        for y, x, h, w in _tiles(raw.shape[1:]):
            tile = np.ascontiguousarray(raw[None, :, y:y + h, x:x + w], dtype=np.float32)
            out = self.session.run(None, {"raw": tile})[0][0]
            green = _box3((tile[0, 1] + tile[0, 2]) / 2)
            inner = (slice(EDGE, h - EDGE), slice(EDGE, w - EDGE))
            levels.append(green[inner].ravel())
            log_vars.append(out[0][inner].ravel())
            logits.append(out[1][inner].ravel())
        if not levels:
            return 0.0, 0.0
        level, log_var, logit = np.concatenate(levels), np.concatenate(log_vars), np.concatenate(logits)

        def pooled_variance(sel: np.ndarray) -> tuple[float, float, float]:
            # the pooling the network was trained for: softmax-weighted mean of ln variance
            weight = np.exp(logit[sel] - logit[sel].max())
            v = math.exp(float(np.sum(weight * log_var[sel]) / np.sum(weight))) - VAR_FLOOR
            return float(np.mean(level[sel])), max(v, 0.0), float(sel.sum())

        return fit_by_level(level, level < clip_level, pooled_variance)


def calibrate(log_sigma: float) -> float:
    """CALIBRATION applied to ln sigma(0.18)."""
    xs, ys = CALIBRATION
    if log_sigma <= xs[0]:
        return log_sigma + ys[0] - xs[0]
    if log_sigma >= xs[-1]:
        return log_sigma + ys[-1] - xs[-1]
    return float(np.interp(log_sigma, xs, ys))


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
