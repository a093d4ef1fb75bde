"""The blind noise estimate: a tiny CNN (``models/noise_net.onnx``) reads the noise level of a frame.

It maps the packed planes (normalised raw units, before white balance) to ln(variance +
VAR_FLOOR) of the green noise at every packed pixel and a weight logit per pixel; it was trained on
synthetic raw frames of known noise made from the training photos (``tools/train_noise_net.py``),
so it has seen what texture looks like next to noise. The frame's noise is then pooled the way
the network was trained to be pooled: pixels near clipping and tile borders are left out, and the
softmax of the weight logits over the whole frame weighs each pixel's (ln variance - ln model
variance at its brightness); the shot noise that makes that weighted mean 0 is the estimate, with
read noise from a fixed share of it (READ_SHARE). The trusted pixels are mostly flat shadows, so
the estimate at brighter levels rests on the physics (variance rising linearly with the signal),
not on the network's readings there, which were never trained to be unbiased.
"""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path

import numpy as np
import onnxruntime as ort


from rawisp.stages.normalise import Packed

MODEL_NAME = "noise_net.onnx"
VAR_FLOOR = 1e-6  # the network's floor (rawisp.train.noise_net.VAR_FLOOR)
TILE = 128  # packed pixels a side
MAX_TILES = 32  # bigger frames are sampled on a regular grid of tiles
EDGE = 4  # packed pixels at each tile edge left out (padding reaches in there)
# read^2 = READ_SHARE x shot: the median over darktable's profiles at ISO 100-12800 (9e-4; a
# quarter of them 0, a quarter above 3.5e-3). At the shadows the pooling trusts (x ~ 0.02) it is a
# few per cent of the variance, so its error moves sigma(0.18) by a few per cent at most.
READ_SHARE = 1e-3
MIN_WEIGHT = 1e-6  # pixels whose pooling weight is below this fraction of the largest are dropped
# fewer usable packed pixels than this (a frame under about 100x100 pixels) tell nothing: clean.
# As the per-brightness fit before it required; texture and noise cannot be told apart on so few.
MIN_PIXELS = 2500
SHOT_RANGE = (1e-10, 1.0)  # where the pooled shot noise is searched; below it counts as clean
# sigma scale that corrects the pooled estimate's bias: the median of sigma_true / sigma_estimate
# over noisy frames of the validation photos (python tools/calibrate_noise_net.py); one number, not
# a curve: a 10-knot curve fitted on half of those photos did worse on the other half than none
SIGMA_GAIN = 1.058


def default_path() -> Path:
    """The estimator shipped inside the package (``rawisp.models``, the project's ``models/``)."""
    try:
        return Path(str(resources.files("rawisp.models") / MODEL_NAME))
    except ModuleNotFoundError:  # a source checkout imported without installing it
        return Path(__file__).resolve().parents[2] / "models" / MODEL_NAME


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
        if not self.calibrated:
            return shot, read
        return shot * SIGMA_GAIN**2, read * SIGMA_GAIN

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
        return pool(np.concatenate(levels), np.concatenate(log_vars), np.concatenate(logits), clip_level)


def pool(level: np.ndarray, log_var: np.ndarray, logit: np.ndarray, clip_level: float = 1.0) -> tuple[float, float]:
    """(shot, read std) of a frame from the network's per-pixel maps.

    ``level``: green signal (normalised raw units, before white balance), ``log_var``: ln(variance
    + VAR_FLOOR), ``logit``: pooling weight logits, all flat arrays of the same length. The shot
    noise s solves sum w (log_var - ln(s (level + READ_SHARE) + VAR_FLOOR)) = 0 with w the softmax
    of ``logit`` over pixels below ``clip_level``: the pooled error the network was trained to
    bring to 0 (``rawisp.train.noise_net.pooled_error``)."""
    usable = level < clip_level
    if usable.sum() < MIN_PIXELS:
        return 0.0, 0.0
    weight = np.exp(logit[usable] - logit[usable].max())
    keep = weight > MIN_WEIGHT
    weight, x, log_var = weight[keep] / weight[keep].sum(), np.maximum(level[usable][keep], 0), log_var[usable][keep]
    target = float(np.sum(weight * log_var))

    def pooled_error(log_shot: float) -> float:
        return target - float(np.sum(weight * np.log(math.exp(log_shot) * (x + READ_SHARE) + VAR_FLOOR)))

    lo, hi = (math.log(v) for v in SHOT_RANGE)
    if pooled_error(lo) <= 0:  # no more than the floor: a clean frame
        return 0.0, 0.0
    if pooled_error(hi) >= 0:
        return SHOT_RANGE[1], math.sqrt(READ_SHARE * SHOT_RANGE[1])
    # bisection: pooled_error falls as log_shot rises, and ~17 halvings reach 1e-4 of ln(shot) (a
    # root finder from scipy would add a dependency and half a second of import to every develop)
    while hi - lo > 1e-4:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if pooled_error(mid) > 0 else (lo, mid)
    shot = math.exp(0.5 * (lo + hi))
    return shot, math.sqrt(READ_SHARE * shot)


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
