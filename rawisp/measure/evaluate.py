"""Quality evaluation on synthetic RAW: ground-truth sRGB -> DNG (the protocol of
:mod:`rawisp.measure.protocol`) -> develop -> PSNR / SSIM / CIEDE2000 (:mod:`rawisp.measure.metrics`).

The DNG is decoded and developed exactly as ``rawisp develop`` does (:func:`rawisp.pipeline.compose.raw_to_pixels`,
here with the protocol's linear tone and 8-bit output), and the 8-bit sRGB result is scored against
the ground truth over the image less a border. LibRaw's own demosaics are reference rows
(:mod:`rawisp.measure.libraw_reference`). ``oracle`` is an engine that returns the noise-free ground-truth
camera RGB: its row measures the harness itself (render quantisation), not a demosaicker.
"""

from __future__ import annotations

import multiprocessing
import tempfile
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from rawisp.colour import BAYER_PATTERNS
from rawisp.engines.registry import make_engine
from rawisp.io.decode import decode
from rawisp.measure.libraw_reference import LIBRAW_ENGINES, LibRawReference
from rawisp.measure.metrics import BORDER, score
from rawisp.measure.protocol import CAMERAS, DEFAULT_CAMERA, RENDER, EvalError, Noise, load_image, synthesise
from rawisp.pipeline.compose import raw_to_pixels
from rawisp.stages.reconstruct import Engine, EngineOptions


class Oracle:
    """The identity engine: returns the noise-free ground-truth camera RGB of the current image.

    The harness sets ``truth`` (what :func:`rawisp.measure.synth.srgb_to_dng` returned) before each
    development, so its row measures the harness (rendering, quantisation), not a demosaicker.
    """

    name = "oracle"

    def __init__(self, truth: np.ndarray | None = None) -> None:
        self.truth = truth

    def __call__(self, packed) -> np.ndarray:
        if self.truth is None:
            raise RuntimeError("the oracle engine has no ground truth")
        return self.truth


@dataclass(frozen=True)
class EngineSpec:
    """How to build one row's engine, by name, in whichever process runs it (picklable)."""

    label: str
    name: str  # "learned", "classical", "oracle" or a libraw-* name
    options: EngineOptions = field(default_factory=EngineOptions)

    def build(self) -> Engine | LibRawReference:
        if self.name in LIBRAW_ENGINES:
            return LibRawReference(self.name)
        if self.name == "oracle":
            return Oracle()
        return make_engine(self.name, self.options)


ENGINE_NAMES = ("learned", "classical", "oracle", *LIBRAW_ENGINES)

EngineLike = str | EngineSpec | Engine


def _spec(item: EngineLike) -> EngineSpec | Engine:
    if isinstance(item, str):
        if item not in ENGINE_NAMES:
            raise EvalError(f"unknown engine {item!r}; choose from {', '.join(ENGINE_NAMES)}")
        return EngineSpec(item, item)
    return item


def _label(item: EngineSpec | Engine) -> str:
    return item.label if isinstance(item, EngineSpec) else item.name


def develop_dng(path: Path, engine: Engine | LibRawReference) -> np.ndarray:
    """Develop a DNG into upright 8-bit sRGB as ``rawisp develop`` does (linear tone, no file)."""
    if isinstance(engine, LibRawReference):
        return engine.postprocess(path)
    [picture] = raw_to_pixels(decode(path), [engine], [RENDER])
    return picture.pixels[0]


@dataclass
class Task:
    """One ground-truth image at one noise level, developed by every engine (picklable)."""

    index: int
    image: Path
    noise: Noise
    engines: list[EngineSpec | Engine]
    dng_dir: Path
    cfa: str
    border: int
    camera: str = DEFAULT_CAMERA
    keep_dng: bool = True
    noise_profile: bool = True


_BUILT: dict[str, Engine | LibRawReference] = {}  # engines built in this process, by repr(spec)


def _engine(item: EngineSpec | Engine) -> Engine | LibRawReference:
    if not isinstance(item, EngineSpec):
        return item
    key = repr(item)
    if key not in _BUILT:
        _BUILT[key] = item.build()
    return _BUILT[key]


def run_task(task: Task) -> list[dict]:
    """Synthesise the DNG of one image and noise level, develop it with each engine, score it."""
    truth_srgb = load_image(task.image)
    if min(truth_srgb.shape[:2]) <= 2 * task.border + 12:
        raise EvalError(f"{task.image}: {truth_srgb.shape[1]}x{truth_srgb.shape[0]} is too small "
                        f"for a {task.border}-pixel border")
    noise = task.noise
    dng = task.dng_dir / f"{task.index:03d}_{task.image.stem}_{noise.label.replace(':', '_')}.dng"
    truth_cam = synthesise(truth_srgb, dng, task.index, noise, cfa=task.cfa, camera=task.camera,
                           noise_profile=task.noise_profile)
    rows = []
    for item in task.engines:
        engine = _engine(item)
        if isinstance(engine, Oracle):
            engine.truth = truth_cam
        try:
            pixels = develop_dng(dng, engine)
        except Exception as exc:  # one line naming the image, noise level and engine, not a traceback
            raise EvalError(f"{task.image} ({noise.label}): engine {_label(item)} failed: {exc}") from exc
        finally:
            if isinstance(engine, Oracle):
                engine.truth = None
        if pixels.shape != truth_srgb.shape:
            raise EvalError(f"{task.image}: engine {_label(item)} gave {pixels.shape[1]}x{pixels.shape[0]} "
                            f"pixels for a {truth_srgb.shape[1]}x{truth_srgb.shape[0]} image")
        rows.append({"noise": noise.label, "shot": noise.shot, "read": noise.read, "engine": _label(item),
                     "image": task.image.name, **score(pixels, truth_srgb, task.border)})
    if not task.keep_dng:
        dng.unlink()
    return rows


def evaluate(images: Sequence[Path], engines: Sequence[EngineLike], noises: Sequence[Noise], *,
             cfa: str = "RGGB", border: int = BORDER, camera: str = DEFAULT_CAMERA, keep: Path | None = None,
             jobs: int = 1, progress: bool = False, noise_profile: bool = True) -> list[dict]:
    """Score every engine on every image at every noise level; one row per (noise, engine, image).

    ``engines``: names (see ENGINE_NAMES), EngineSpecs, or Engine objects (an :class:`Oracle` gets
    each image's ground truth). With ``jobs`` > 1 the (image, noise) tasks run in worker processes,
    which need picklable engines (names and EngineSpecs always are). ``camera`` names the camera
    matrix (see CAMERAS); ``noise_profile`` whether the DNGs carry one. DNGs are written to a
    temporary folder, or to ``keep``.
    """
    from tqdm import tqdm

    if cfa not in BAYER_PATTERNS:
        raise EvalError(f"unknown CFA {cfa!r}; choose from {', '.join(BAYER_PATTERNS)}")
    if camera not in CAMERAS:
        raise EvalError(f"unknown camera matrix {camera!r}; choose from {', '.join(CAMERAS)}")
    specs = [_spec(e) for e in engines]
    labels = [_label(s) for s in specs]
    if not specs:
        raise EvalError("no engine given")
    if len(set(labels)) != len(labels):
        raise EvalError(f"an engine is given twice: {', '.join(labels)}")
    if not images:
        raise EvalError("no ground-truth images")
    for spec in specs:  # fail fast on an engine that cannot be built (missing model, ...)
        try:
            _engine(spec)
        except EvalError:
            raise
        except Exception as exc:
            raise EvalError(f"engine {_label(spec)} cannot be built: {exc}") from None

    with tempfile.TemporaryDirectory(prefix="rawisp-eval-") as tmp:
        dng_dir = Path(keep) if keep is not None else Path(tmp)
        try:
            dng_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EvalError(f"{dng_dir}: cannot make the DNG folder ({exc.strerror or exc})") from None
        tasks = [Task(i, Path(image), noise, specs, dng_dir, cfa, border, camera, keep is not None,
                      noise_profile)
                 for noise in noises for i, image in enumerate(images)]
        bar = tqdm(total=len(tasks), desc="rawisp eval", unit="image", disable=not progress, dynamic_ncols=True)
        results: list[list[dict]] = []
        try:
            if jobs > 1 and len(tasks) > 1:
                # forkserver: workers do not inherit the parent's onnxruntime / OpenMP threads
                context = multiprocessing.get_context("forkserver")
                with ProcessPoolExecutor(max_workers=min(jobs, len(tasks)), mp_context=context) as pool:
                    for rows in pool.map(run_task, tasks):
                        results.append(rows)
                        bar.update()
            else:
                for task in tasks:
                    results.append(run_task(task))
                    bar.update()
        finally:
            bar.close()
    # order: noise level, engine, image
    flat = [row for rows in results for row in rows]
    order = {label: k for k, label in enumerate(labels)}
    noise_order = {n.label: k for k, n in enumerate(noises)}
    return sorted(flat, key=lambda r: (noise_order[r["noise"]], order[r["engine"]]))


def engine_specs(names: Sequence[str], models: Sequence[str], options: EngineOptions) -> list[EngineSpec]:
    """CLI engines: each name, then the learned engine once per model (labelled learned:<file>)."""
    specs = []
    for name in names:
        if name not in ENGINE_NAMES:
            raise EvalError(f"unknown engine {name!r}; choose from {', '.join(ENGINE_NAMES)}")
        specs.append(EngineSpec(name, name, options))
    for model in models:
        specs.append(EngineSpec(f"learned:{Path(model).name}", "learned", replace(options, model=str(model))))
    return specs
