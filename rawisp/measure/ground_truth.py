"""``rawisp compare --ground-truth``: a known image made into a synthetic DNG by the ``rawisp eval``
protocol (:mod:`rawisp.measure.protocol`), developed by each engine and drawn side by side with the
truth (:func:`rawisp.compare.picture.compare_raw`), each side labelled with its PSNR and SSIM
(:mod:`rawisp.measure.metrics`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from rawisp.compare.crops import CompareError
from rawisp.compare.picture import CompareOptions, Compared, compare_raw, render_line
from rawisp.io.decode import decode
from rawisp.measure.metrics import psnr, ssim
from rawisp.measure.protocol import CAMERAS, DEFAULT_CAMERA, RENDER, EvalError, load_image, parse_noise, synthesise
from rawisp.pipeline.compose import RenderOptions, Stopwatch
from rawisp.stages.reconstruct import Engine


def scores(pixels: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """PSNR and SSIM of a side's 8-bit pixels against the 8-bit ground truth."""
    return {"psnr": psnr(pixels, truth), "ssim": ssim(pixels, truth)}


def eval_camera(camera: str | None = None) -> tuple[str, np.ndarray]:
    """(name, matrix) of a camera of the ``rawisp eval`` protocol; None: the one eval uses by default."""
    camera = DEFAULT_CAMERA if camera is None else camera
    if camera not in CAMERAS:
        raise CompareError(f"unknown camera matrix {camera!r}; choose from {', '.join(CAMERAS)}")
    return camera, np.asarray(CAMERAS[camera])


def compare_ground_truth(image: Path, output: Path, engines: Sequence[Engine], render: RenderOptions,
                         options: CompareOptions, noise: str = "mid", cfa: str = "RGGB",
                         camera: str | None = None) -> Compared:
    """The synthetic path: ground-truth sRGB -> DNG (the ``rawisp eval`` protocol, seed of image 0,
    its camera matrix ``camera``, default as eval) -> both developments (linear tone, as the
    protocol) -> picture with PSNR / SSIM in the labels."""
    try:
        levels = parse_noise(noise)
        truth = load_image(image)
    except EvalError as exc:
        raise CompareError(str(exc)) from None
    if len(levels) != 1:
        raise CompareError(f"give one noise level, not {noise!r}")
    level = levels[0]
    if truth.dtype == np.uint16:
        truth8 = ((truth.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    else:
        truth8 = truth
    if min(truth.shape[:2]) < 32:
        raise CompareError(f"{truth.shape[1]}x{truth.shape[0]} is too small (at least 32x32)")
    camera, _ = eval_camera(camera)
    protocol = replace(render, tone=RENDER.tone, exposure=0.0)
    watch = Stopwatch()
    with tempfile.TemporaryDirectory(prefix="rawisp-compare-") as tmp:
        dng = Path(tmp) / f"{image.stem}.dng"
        synthesise(truth, dng, 0, level, cfa=cfa, camera=camera)
        watch.lap("synthesise")
        raw = decode(dng)
        watch.lap("decode")
    noise_text = f"noise {level.label} (shot {level.shot:g}, read {level.read:g})"
    h, w = truth.shape[:2]
    title = [f"{image.name} (ground truth)  |  synthetic DNG, {cfa}, {noise_text}, camera {camera}  |  {w}x{h}",
             render_line(protocol) + " (the rawisp eval protocol)"]
    return compare_raw(raw, output, engines, protocol, options, truth=truth8, scores=scores, title=title,
                       truth_lines=[image.name, noise_text], watch=watch)
