"""Develop one RAW file end to end: decode -> normalise -> reconstruct -> render -> write."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from rawisp import __version__
from rawisp.batch import Job, Outcome
from rawisp.decode import RawImage, decode
from rawisp.dng import write_dng
from rawisp.metadata import apply_orientation, exif_bytes
from rawisp.normalise import normalise
from rawisp.reconstruct import Classical, Engine, EngineOptions, make_engine, reconstruct
from rawisp.render import render
from rawisp.write import write_image

BITS = {"jpeg": 8, "png": 8, "png16": 16, "tiff16": 16}


@dataclass
class RenderOptions:
    """Look and output format of developed pictures (``fmt`` "dng": a linear DNG, no look applied)."""

    fmt: str = "jpeg"
    quality: int = 92
    exposure: float = 0.0
    tone: str = "default"
    overwrite: bool = False
    threads: int = 0  # rendering threads (0: all CPUs); the CLI gives each of -j workers its share


@dataclass
class Developed:
    """What one development produced: the output path, per-stage seconds and warnings."""

    output: Path
    seconds: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


class _Clock:
    """Accumulates wall-clock seconds per stage."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - self._t
        self._t = now


def render_picture(raw: RawImage, rgb: np.ndarray, options: RenderOptions) -> np.ndarray:
    """Camera RGB (an array, or rows on demand: see :func:`rawisp.render.render`) -> upright sRGB
    pixels in the output format's bit depth."""
    pixels = render(rgb, raw.cam_to_srgb, exposure=options.exposure, tone=options.tone, bits=BITS[options.fmt],
                    threads=options.threads)
    return apply_orientation(pixels, raw.orientation)


def save_picture(raw: RawImage, pixels: np.ndarray, output: Path, options: RenderOptions) -> Path:
    """Write upright pixels with the source's EXIF (Orientation 1, Software rawisp)."""
    exif = exif_bytes(raw.metadata, f"rawisp {__version__}")
    return write_image(output, pixels, options.fmt, quality=options.quality, exif=exif, overwrite=options.overwrite)


def develop_file(source: Path, output: Path, engine: Engine, options: RenderOptions) -> Developed:
    """Develop ``source`` into ``output`` with ``engine``; raises DecodeError / OSError on failure."""
    clock = _Clock()
    raw = decode(source)
    clock.lap("decode")
    packed = normalise(raw, options.threads) if raw.mosaic is not None else None
    clock.lap("normalise")
    if packed is not None and isinstance(engine, Classical):
        # bilinear needs only a row of context: rendering demosaics each strip as it reads it, so
        # the float frame (12 bytes a pixel) is never held; its time is counted under render
        rgb = engine.rows(packed)
    else:
        rgb = reconstruct(raw, engine, packed)
        clock.lap("reconstruct")
    if options.fmt == "dng":
        path = write_dng(output, raw, rgb, overwrite=options.overwrite)  # the look is the editor's
    else:
        pixels = render_picture(raw, rgb, options)
        del rgb, packed
        clock.lap("render")
        path = save_picture(raw, pixels, output, options)
    clock.lap("write")
    warnings = list(raw.warnings)
    if raw.rgb is not None:
        warnings.append(f"not a Bayer sensor: LibRaw's demosaic used instead of the {engine.name} engine")
    return Developed(output=path, seconds=clock.seconds, warnings=warnings)


@dataclass
class DevelopTask:
    """A picklable batch task: develop one Job with a named engine (built in the worker)."""

    engine: str
    engine_options: EngineOptions
    render: RenderOptions

    def __call__(self, job: Job) -> Outcome:
        result = develop_file(job.source, job.output, make_engine(self.engine, self.engine_options), self.render)
        return Outcome(job, "done", seconds=result.seconds, warnings=result.warnings)


def develop_engines(source: Path, outputs: dict[str, Path], engines: list[Engine], options: RenderOptions,
                    compare_output: Path | None = None, compare_options=None) -> Developed:
    """Develop ``source`` with several engines from one decode and one Packed.

    ``outputs`` maps each engine's name to its output; ``compare_output`` (optional) gets the
    side-by-side picture of the developments (JPEG, see :mod:`rawisp.compare`). Outputs that exist
    are kept unless ``options.overwrite`` (FileExistsError when every output exists).
    """
    from rawisp.compare import CompareOptions, build_picture, develop_side

    def wanted(path: Path | None) -> bool:
        return path is not None and (options.overwrite or not path.exists())

    side_by_side = wanted(compare_output)
    todo = [e for e in engines if side_by_side or wanted(outputs[e.name])]
    if not todo:
        raise FileExistsError("every output exists")
    clock = _Clock()
    raw = decode(source)
    clock.lap("decode")
    packed = normalise(raw, options.threads) if raw.mosaic is not None else None
    clock.lap("normalise")
    eight_bit = replace(options, fmt="jpeg")
    sides, written = [], []
    for engine in todo:
        side, rgb = develop_side(raw, packed, engine)
        clock.seconds[f"reconstruct {engine.name}"] = side.seconds
        clock.lap("other")
        if wanted(outputs[engine.name]) and options.fmt == "dng":
            written.append(write_dng(outputs[engine.name], raw, rgb, overwrite=options.overwrite))
            clock.lap("write")
        elif wanted(outputs[engine.name]):
            pixels = render_picture(raw, rgb, options)
            clock.lap("render")
            written.append(save_picture(raw, pixels, outputs[engine.name], options))
            clock.lap("write")
            if side_by_side and BITS[options.fmt] == 8:
                side.pixels = pixels
        if side_by_side and side.pixels.size == 0:
            side.pixels = render_picture(raw, rgb, eight_bit)
            clock.lap("render")
        del rgb
        sides.append(side)
    del packed
    clock.seconds.pop("other", None)
    warnings = list(raw.warnings)
    if side_by_side:
        order = {"classical": 0, "learned": 1}
        sides.sort(key=lambda s: order.get(s.engine, 2))
        pixels, _, _, more = build_picture(raw, sides, compare_options or CompareOptions(), options)
        written.append(save_picture(raw, pixels, compare_output, eight_bit))
        clock.lap("compare")
        warnings += more
    if raw.rgb is not None:
        warnings.append("not a Bayer sensor: LibRaw's demosaic used instead of the engines")
    return Developed(output=written[0], seconds=clock.seconds, warnings=warnings)


@dataclass
class DevelopBothTask:
    """A picklable batch task for ``--engine both``: one decode, the learned and the classical
    development (``job.output`` and ``job.also[0]``), and with ``side_by_side`` the comparison
    picture (``job.also[1]``)."""

    engine_options: EngineOptions
    render: RenderOptions
    side_by_side: bool = False
    compare: object = None  # rawisp.compare.CompareOptions of the side-by-side picture

    def __call__(self, job: Job) -> Outcome:
        outputs = job.outputs
        engines = [make_engine("learned", self.engine_options), make_engine("classical")]
        result = develop_engines(job.source, {"learned": outputs[0], "classical": outputs[1]}, engines, self.render,
                                 outputs[2] if self.side_by_side else None, self.compare)
        return Outcome(job, "done", seconds=result.seconds, warnings=result.warnings)
