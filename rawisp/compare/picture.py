"""Side by side: several developments of one RAW (classical, learned) in one labelled picture.

The RAW is decoded and normalised once; each engine reconstructs the same Packed frame and every
result is rendered the same way (:func:`rawisp.pipeline.compose.raw_to_pixels`), so the only
differences left are demosaicking and denoising. The crops come from :mod:`rawisp.compare.crops`,
the geometry from :mod:`rawisp.compare.layout`, the drawing from :mod:`rawisp.compare.drawing`.
``--ground-truth`` inputs are made into DNGs by the evaluation protocol and scored by
:mod:`rawisp.measure.ground_truth`, which draws its picture with :func:`compare_raw`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from rawisp import __version__
from rawisp.compare.crops import Rect, clip_crops, plan_crops
from rawisp.compare.drawing import Column, compose, difference_column
from rawisp.compare.layout import Layout
from rawisp.io.decode import RawImage, decode
from rawisp.pipeline.compose import Picture, RenderOptions, Stopwatch, raw_to_pixels, save_picture
from rawisp.stages.reconstruct import Engine

@dataclass
class CompareOptions:
    """What the side-by-side picture shows."""

    view_width: int = 1200
    crop_count: int = 3
    crop_size: int = 384
    crops: tuple[Rect, ...] = ()  # given crops (replace the automatic choice)
    zoom: int = 1
    diff: bool = False
    diff_gain: float = 8.0


@dataclass
class Side:
    """One development shown as a column: engine, its version and timing, upright 8-bit pixels."""

    engine: str
    version: str
    seconds: float
    pixels: np.ndarray
    device: str = ""
    note: str = ""
    scores: dict[str, float] | None = None

    @classmethod
    def of(cls, picture: Picture, raw: RawImage, pixels: np.ndarray) -> Side:
        """The side of an engine's development (``pixels``: its upright 8-bit rendering)."""
        note = "not Bayer: LibRaw's demosaic (engine unused)" if raw.rgb is not None else ""
        engine = picture.engine
        return cls(engine.name, getattr(engine, "version", ""), picture.seconds, pixels, device=_device(engine),
                   note=note)

    def label(self) -> list[str]:
        lines = [self.engine, self.version or "-"]
        timing = f"reconstruct {self.seconds:.2f} s"
        if self.device:
            timing += f" on {self.device}"
        lines.append(timing)
        if self.scores:
            lines.append(f"PSNR {self.scores['psnr']:.2f} dB   SSIM {self.scores['ssim']:.4f}")
        if self.note:
            lines.append(self.note)
        return lines


def _device(engine: Engine) -> str:
    provider = getattr(engine, "provider", "")
    if not provider:
        return "CPU (numpy)" if engine.name == "classical" else ""
    name = provider.removesuffix("ExecutionProvider")
    threads = getattr(engine, "threads", 0)
    return f"{name}, {threads} threads" if threads and name == "CPU" else name


def describe(raw: RawImage, render: RenderOptions) -> list[str]:
    """Title lines for a real RAW: file, camera, size and shot; rawisp and render settings."""
    meta = raw.metadata
    h, w = raw.shape if raw.orientation < 5 else raw.shape[::-1]
    parts = [Path(raw.path).name]
    make, model = meta.make or "", meta.model or ""
    camera = model if make and model.lower().startswith(make.lower()) else f"{make} {model}".strip()
    if camera:
        parts.append(camera)
    parts.append(f"{w}x{h}")
    shot = []
    if meta.iso:
        shot.append(f"ISO {meta.iso}")
    if meta.exposure_time:
        t = meta.exposure_time
        shot.append(f"1/{round(1 / t)} s" if t < 0.5 else f"{float(t):.3g} s")
    if meta.f_number:
        shot.append(f"f/{float(meta.f_number):g}")
    if shot:
        parts.append(", ".join(shot))
    if raw.mosaic is not None:
        parts.append(f"Bayer {raw.cfa}")
    return ["  |  ".join(parts), render_line(render)]


def render_line(render: RenderOptions) -> str:
    return (f"rawisp {__version__}  |  same rendering on every side: tone {render.tone}, "
            f"exposure {render.exposure:+g} EV")


def build_picture(raw: RawImage, sides: Sequence[Side], options: CompareOptions, render: RenderOptions,
                  title: Sequence[str] | None = None, truth: Column | None = None
                  ) -> tuple[np.ndarray, list[Rect], Layout, list[str]]:
    """Crops (given or planned on the first side), columns and the composed picture.

    -> (picture pixels, crops, layout, warnings)."""
    shape = sides[0].pixels.shape
    warnings: list[str] = []
    if options.crops:
        crops, warnings = clip_crops(options.crops, shape)
    else:
        crops = plan_crops(sides[0].pixels, options.crop_count, options.crop_size)
    columns = [Column(s.label(), s.pixels) for s in sides]
    if truth is not None:
        columns.append(truth)
    if options.diff and len(sides) >= 2:
        columns.append(difference_column(sides[1].pixels, sides[0].pixels, options.diff_gain, options.view_width,
                                         (sides[1].engine, sides[0].engine)))
    title = list(title or describe(raw, render))
    how = "chosen by detail" if not options.crops else "given"
    view_w = min(options.view_width, shape[1])
    title[-1] += (f"  |  full views {100 * view_w / shape[1]:.0f}%, crops {100 * options.zoom}% "
                  f"({how})")
    pixels, layout = compose(columns, crops, title, view_width=options.view_width, zoom=options.zoom)
    return pixels, crops, layout, warnings


@dataclass
class Compared:
    """What one comparison produced (sides keep their 8-bit developments, for tests and callers)."""

    output: Path
    crops: list[Rect]
    layout: Layout
    sides: list[Side]
    seconds: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line: the crops (as --crop values) and, with a ground truth, each side's scores."""
        parts = ["crops " + (" ".join(str(c) for c in self.crops) or "none")]
        for s in self.sides:
            if s.scores:
                parts.append(f"{s.engine} PSNR {s.scores['psnr']:.2f} dB SSIM {s.scores['ssim']:.4f}")
        return "; ".join(parts)


Scores = Callable[[np.ndarray, np.ndarray], dict[str, float]]
"""(a side's 8-bit pixels, the ground truth) -> that side's scores ("psnr", "ssim")."""


def compare_raw(raw: RawImage, output: Path, engines: Sequence[Engine], render: RenderOptions,
                options: CompareOptions, *, truth: np.ndarray | None = None, scores: Scores | None = None,
                title: Sequence[str] | None = None, truth_lines: Sequence[str] = (),
                watch: Stopwatch | None = None) -> Compared:
    """Develop a decoded RAW with each engine from one Packed, compose and write the picture.

    With ``truth`` (upright 8-bit sRGB) the picture gets a ground-truth column and each side the
    ``scores`` of its pixels against it."""
    watch = watch or Stopwatch()
    eight_bit = replace(render, fmt=render.fmt if render.fmt in ("jpeg", "png") else "png")
    sides = [Side.of(picture, raw, picture.pixels[0])
             for picture in raw_to_pixels(raw, engines, [eight_bit], watch=watch)]
    truth_column = None
    if truth is not None:
        for side in sides:
            side.scores = scores(side.pixels, truth) if scores is not None else None
        truth_column = Column(["ground truth", *truth_lines], truth, name="truth")
    pixels, crops, layout, warnings = build_picture(raw, sides, options, render, title, truth_column)
    watch.lap("compose")
    path = save_picture(raw, pixels, output, eight_bit)
    watch.lap("write")
    warnings = list(raw.warnings) + warnings
    if raw.rgb is not None:
        warnings.append("not a Bayer sensor: both sides are LibRaw's demosaic")
    return Compared(path, crops, layout, sides, watch.seconds, warnings)


def compare_file(source: Path, output: Path, engines: Sequence[Engine], render: RenderOptions,
                 options: CompareOptions) -> Compared:
    """Decode ``source`` once and write its comparison picture to ``output``."""
    watch = Stopwatch()
    raw = decode(source, render.wb)
    watch.lap("decode")
    return compare_raw(raw, output, engines, render, options, watch=watch)
