"""The tile margin a model really needs: how far a tile's edge still changes its output.

A model card's ``margin`` is the receptive field (every input pixel that has any influence at
all). The influence of the far part of the field is tiny: a tile cut with a smaller margin gives
an answer that differs from the whole frame's by less than an output quantisation step. This
module measures that difference as a function of the distance from the tile's edge, so the
runtime can cut tiles with the *effective* margin (card ``tiling.margin``) and waste less work.

Units: packed pixels (half the full resolution) for distances, linear camera RGB (1.0 = clip)
for errors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from rawisp.colour import srgb_decode
from rawisp.engines.contract import model_input
from rawisp.engines.learned import load_card, output_step_in_linear
from rawisp.measure import synth
from rawisp.measure.bench_scene import BENCH_NEUTRAL, synth_scene
from rawisp.stages.normalise import pack

LSB16_SRGB_IN_LINEAR = output_step_in_linear(16)

Run = Callable[[np.ndarray], np.ndarray]  # packed input (8, h, w) -> full-resolution RGB (3, 2h, 2w)


def edge_error_profile(run: Run, frame: np.ndarray, tile: int, offset: int) -> np.ndarray:
    """Max |tile - whole frame| of the output at each distance (packed px) from a tile's edge.

    ``frame`` ``(8, H, W)`` is run whole and as one ``tile`` x ``tile`` crop at (``offset``,
    ``offset``), which must lie at least the receptive field inside the frame so that only the
    tile's edge (not the frame's) makes the difference. Entry ``d`` of the result is the largest
    error over output pixels at least ``d`` packed pixels from the tile edge: the error of tiles
    cut with margin ``d``. Length ``tile // 2``.
    """
    whole = run(frame)
    part = run(frame[:, offset:offset + tile, offset:offset + tile])
    o, t = 2 * offset, 2 * tile
    err = np.abs(part - whole[:, o:o + t, o:o + t]).max(axis=0)
    yy, xx = np.mgrid[:t, :t]
    dist = np.minimum.reduce([yy, xx, t - 1 - yy, t - 1 - xx]) // 2
    worst = np.zeros(tile // 2)
    np.maximum.at(worst, dist.ravel(), err.ravel())
    return np.maximum.accumulate(worst[::-1])[::-1]


def effective_margin(profile: np.ndarray, tolerance: float, stride: int) -> int:
    """Smallest multiple of ``stride`` at which the error ``profile`` stays below ``tolerance``."""
    below = np.nonzero(profile < tolerance)[0]
    if not len(below):
        raise ValueError(f"the error never falls below {tolerance:.1e} within {len(profile)} packed px")
    return int(-(-below[0] // stride) * stride)


def probe_frames(side: int = 640, seeds: Iterable[int] = (0, 1),
                 noise: Iterable[tuple[float, float]] = ((0.0, 0.0), (1e-3, 5e-4), (6e-3, 2e-3))) -> list[np.ndarray]:
    """Network inputs ``(8, side, side)`` (packed planes and their noise std) of the bench's
    synthetic scene (edges, text, textures, clipped highlights) through the synthetic camera,
    at the evaluation's clean / mid / high noise levels (shot, read in normalised units)."""
    frames = []
    cam = synth.DEFAULT_CAM_FROM_SRGB
    gains = 1 / np.asarray(BENCH_NEUTRAL, np.float32)[[0, 1, 1, 2]]
    for seed in seeds:
        truth = srgb_decode(synth_scene(2 * side, 2 * side, seed)) @ cam.T * np.asarray(BENCH_NEUTRAL)
        for shot, read in noise:
            rng = np.random.default_rng(seed)
            mosaic = synth.add_noise(synth.mosaic(truth, "RGGB"), shot, read, rng)
            planes = np.minimum(pack(mosaic.astype(np.float32), "RGGB")[0] * gains[:, None, None], 1.0)
            frames.append(model_input(planes, gains, shot, read)[0])
    return frames


def measure_tiling(model: str | Path, tolerance: float = LSB16_SRGB_IN_LINEAR, threads: int = 2) -> dict:
    """The card's ``tiling`` entry of ``model`` (ONNX with its card): the effective margin, the
    error at it and at every other margin, measured on :func:`probe_frames`."""
    import onnxruntime as ort


    card = load_card(Path(model))
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    session = ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])
    name = card["input"]["name"]

    def run(x: np.ndarray) -> np.ndarray:
        return session.run(None, {name: np.ascontiguousarray(x[None], np.float32)})[0][0]

    receptive, stride = card["margin"], card["stride"]
    tile = 4 * receptive + 8 * stride  # room for every distance up to the receptive field
    side = tile + 2 * (receptive + stride)
    offset = side // 2 - tile // 2 // stride * stride
    profile = np.max([edge_error_profile(run, f, tile, offset) for f in probe_frames(side)], axis=0)
    margin = effective_margin(profile, tolerance, stride)
    return {
        "margin": margin,
        "max_error": float(f"{profile[margin]:.3g}"),
        "tolerance": float(f"{tolerance:.3g}"),
        "error_by_margin": {str(m): float(f"{profile[m]:.2g}") for m in range(0, receptive + 1, 2 * stride)},
        "measured_on": "bench synthetic scene, 2 seeds x clean/mid/high noise, one tile against the whole frame",
        "command": f"python tools/tile_margin.py {model}",
    }
