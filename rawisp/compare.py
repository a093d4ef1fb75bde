"""Side by side: the classical and the learned development of one RAW in one labelled picture.

The RAW is decoded and normalised once; each engine reconstructs the same Packed frame and both
results go through the same :func:`rawisp.develop.render_picture` with the same options, so the
only differences left are demosaicking and denoising.

Layout (all sizes in pixels of the output picture; ``M`` = MARGIN, ``G`` = GAP, ``t`` = TILE_GAP)::

    +---------------------------------------------------------------------------+
    | title band: file, camera, size, shot; render settings, view and crop scale |
    +-------------------------+ G +-------------------------+ G +---------------+
    | classical               |   | learned                 |   | |L - C| x 8   |  label bands (same height)
    | bilinear, timing        |   | model version, timing   |   | scale         |
    | full view (crop boxes)  |   | full view (crop boxes)  |   | full view     |  ~1200 px wide
    +-------------------------+   +-------------------------+   +---------------+
    | 1 classical | 1 learned | 1 |L-C| |  G  | 2 classical | 2 learned | 2 ... |  caption bands
    | [crop 1]  t [crop 1]  t [crop 1]  |     | [crop 2]    [crop 2]    [crop 2]|  100% crops (x zoom)
    +---------------------------------------------------------------------------+

Top: one column per side, classical, learned, then the ground truth (``--ground-truth``), then the
difference map (``--diff``), each ``C = max(min(view_width, W), MIN_COLUMN)`` wide, the full view
being the development downscaled (Lanczos) to ``min(view_width, W)`` pixels wide (never enlarged).
Below: one group per crop, the crop of every column side by side (``t`` apart, same order as the
columns) so the sides of one region are next to each other; each tile is the 100% crop (enlarged
by whole-pixel repetition with ``zoom`` > 1) under a caption band. Groups are packed left to right
in rows as wide as the columns (a row holds at least one group), ``G`` apart.

Picture width = ``2 M + max(n C + (n - 1) G, widest group)``; height = ``2 M`` + title band + ``G``
+ label band + view height + (for each row of groups: ``G`` + caption band + its tallest tile).

Crops are chosen on the classical development (so they do not move when the model changes): on
its luminance, box-downscaled so the long side is at most ANALYSIS_SIDE, the absolute Laplacian is
summed over every crop-sized window and the best windows are taken greedily, each one not
overlapping those taken before.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from rawisp import __version__
from rawisp.batch import Job, Outcome
from rawisp.decode import RawImage, decode
from rawisp.develop import RenderOptions, render_picture, save_picture
from rawisp.normalise import normalise
from rawisp.reconstruct import Engine, EngineOptions, make_engine, reconstruct

MARGIN = 16
GAP = 16
MIN_COLUMN = 400
PAD = 6  # padding inside label and title bands
TITLE_SIZE, HEADING_SIZE, LABEL_SIZE, CAPTION_SIZE = 22, 30, 20, 16
TILE_GAP = 4  # between the tiles of one crop group
ANALYSIS_SIDE = 1024
BACKGROUND = (36, 36, 40)
BAND = (24, 24, 28)
TEXT = (236, 236, 236)
DIM = (170, 170, 176)
CROP_COLOURS = [(255, 90, 80), (70, 200, 255), (255, 215, 60), (120, 240, 120), (240, 120, 255), (255, 160, 60)]


class CompareError(Exception):
    """A problem with one file's comparison (a crop outside the picture, a bad image); one line."""


@dataclass(frozen=True)
class Rect:
    """A rectangle in upright output pixel coordinates: left x, top y, width w, height h."""

    x: int
    y: int
    w: int
    h: int

    def slices(self) -> tuple[slice, slice]:
        return slice(self.y, self.y + self.h), slice(self.x, self.x + self.w)

    def __str__(self) -> str:
        return f"{self.x},{self.y},{self.w},{self.h}"


def parse_rect(text: str) -> Rect:
    """``"X,Y,W,H"`` -> Rect; ValueError for anything else (W and H at least 1)."""
    try:
        x, y, w, h = (int(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        raise ValueError(f"expected X,Y,W,H (four integers), got {text!r}") from None
    if x < 0 or y < 0 or w < 1 or h < 1:
        raise ValueError(f"{text!r}: X and Y must be >= 0, W and H >= 1")
    return Rect(x, y, w, h)


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


@dataclass
class Column:
    """What one column shows: label lines, full-resolution pixels (crops), optional own full view."""

    lines: list[str]
    pixels: np.ndarray
    view: np.ndarray | None = None
    name: str = ""  # short name for the crop captions (default: the heading)


# ------------------------------------------------------------------------------------------ crops


def luminance(pixels: np.ndarray) -> np.ndarray:
    """Rec. 709 luma of sRGB-encoded pixels (uint8 / uint16 / float), float32 in [0, 1]."""
    scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(pixels.dtype, 1.0)
    weights = np.array([0.2126, 0.7152, 0.0722], np.float32) / np.float32(scale)
    return pixels.astype(np.float32) @ weights


def detail_map(pixels: np.ndarray, side: int = ANALYSIS_SIDE) -> tuple[np.ndarray, int]:
    """High-frequency energy of a picture and its scale factor ``f``: |Laplacian| of the luminance
    box-downscaled by ``f`` (at least 2, so pixel noise averages out; long side <= ``side``)."""
    lum = luminance(pixels)
    h, w = lum.shape
    f = max(2, math.ceil(max(h, w) / side))
    hs, ws = max(1, h // f), max(1, w // f)
    if h >= f and w >= f:
        small = lum[:hs * f, :ws * f].reshape(hs, f, ws, f).mean(axis=(1, 3))
    else:
        small = np.full((hs, ws), lum.mean(), np.float32)
    p = np.pad(small, 1, mode="edge")
    lap = 4 * p[1:-1, 1:-1] - p[:-2, 1:-1] - p[2:, 1:-1] - p[1:-1, :-2] - p[1:-1, 2:]
    return np.abs(lap), f


def plan_crops(pixels: np.ndarray, count: int = 3, size: int = 384) -> list[Rect]:
    """The ``count`` most detailed, mutually non-overlapping ``size`` x ``size`` windows of an
    upright picture (clipped to the picture), most detailed first; fewer when they do not fit.

    With ``count`` > 1 the side is at most a third of the long side, so that two crops fit."""
    h, w = pixels.shape[:2]
    if count <= 0 or h == 0 or w == 0:
        return []
    if count > 1:  # small pictures: smaller crops, so that at least two fit
        size = min(size, max(16, max(h, w) // 3))
    cw, ch = min(size, w), min(size, h)
    energy, f = detail_map(pixels)
    hs, ws = energy.shape
    wc, hc = max(1, min(ws, round(cw / f))), max(1, min(hs, round(ch / f)))
    table = np.zeros((hs + 1, ws + 1), np.float64)
    table[1:, 1:] = energy.cumsum(0).cumsum(1)
    sums = table[hc:, wc:] - table[:-hc, wc:] - table[hc:, :-wc] + table[:-hc, :-wc]
    taken: list[Rect] = []
    while len(taken) < count:
        best = np.unravel_index(int(np.argmax(sums)), sums.shape)
        if not np.isfinite(sums[best]):
            break
        y0, x0 = int(best[0]), int(best[1])
        x, y = min(x0 * f, w - cw), min(y0 * f, h - ch)
        rect = Rect(x, y, cw, ch)
        # windows whose full-resolution rectangle would overlap this one are out
        ylo, yhi = max(0, -(-(y - ch + 1) // f)), min(sums.shape[0], (y + ch - 1) // f + 1)
        xlo, xhi = max(0, -(-(x - cw + 1) // f)), min(sums.shape[1], (x + cw - 1) // f + 1)
        sums[ylo:yhi, xlo:xhi] = -np.inf
        sums[y0, x0] = -np.inf
        if any(_overlap(rect, r) for r in taken):
            continue
        taken.append(rect)
    return taken


def _overlap(a: Rect, b: Rect) -> bool:
    return a.x < b.x + b.w and b.x < a.x + a.w and a.y < b.y + b.h and b.y < a.y + a.h


def clip_crops(crops: Sequence[Rect], shape: tuple[int, int]) -> tuple[list[Rect], list[str]]:
    """Given crops clipped to a picture of ``shape`` (H, W); CompareError if one lies outside."""
    h, w = shape[:2]
    out, warnings = [], []
    for r in crops:
        if r.x >= w or r.y >= h:
            raise CompareError(f"crop {r} lies outside the {w}x{h} picture")
        c = Rect(r.x, r.y, min(r.w, w - r.x), min(r.h, h - r.y))
        if c != r:
            warnings.append(f"crop {r} clipped to {c} (the picture is {w}x{h})")
        out.append(c)
    return out, warnings


# ----------------------------------------------------------------------------------------- layout


@dataclass
class ColumnLayout:
    """Where one column's parts lie in the picture: label band, full view, and its tile (and the
    tile's caption band) in each crop group."""

    x: int
    label: Rect
    view: Rect
    tiles: list[Rect]
    captions: list[Rect]


@dataclass
class Layout:
    """The geometry of a whole comparison picture."""

    width: int
    height: int
    title: Rect
    columns: list[ColumnLayout]
    column_width: int
    view_scale: float  # full-view pixels per picture pixel
    zoom: int


@lru_cache(maxsize=16)
def font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's default font at ``size`` pixels (the bitmap font on Pillow < 10.1)."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has no sized default font
        return ImageFont.load_default()


def line_height(size: int) -> int:
    return round(size * 1.3)


def title_height(lines: int) -> int:
    return 2 * PAD + lines * line_height(TITLE_SIZE)


def label_height(lines: int) -> int:
    """Label band: a heading line (HEADING_SIZE) and ``lines - 1`` lines of LABEL_SIZE."""
    return 2 * PAD + line_height(HEADING_SIZE) + (lines - 1) * line_height(LABEL_SIZE)


def caption_height() -> int:
    return line_height(CAPTION_SIZE) + 4


def plan_layout(shape: tuple[int, int], crops: Sequence[Rect], columns: int, *, title_lines: int,
                label_lines: int, view_width: int = 1200, zoom: int = 1) -> Layout:
    """The picture's geometry for an upright development of ``shape`` (H, W); see the module doc."""
    h, w = shape[:2]
    vw = max(1, min(view_width, w))
    vh = max(1, round(h * vw / w))
    cw = max(vw, MIN_COLUMN)
    top_width = columns * cw + (columns - 1) * GAP
    tiles = [(c.w * zoom, c.h * zoom) for c in crops]
    group_widths = [columns * tw + (columns - 1) * TILE_GAP for tw, _ in tiles]
    inner = max([top_width] + group_widths)
    title = Rect(MARGIN, MARGIN, inner, title_height(title_lines))
    top = title.y + title.h + GAP
    lh = label_height(label_lines)
    view_top = top + lh
    bottom = view_top + vh
    cap = caption_height()
    cols = [ColumnLayout(x=MARGIN + i * (cw + GAP), label=Rect(MARGIN + i * (cw + GAP), top, cw, lh),
                         view=Rect(MARGIN + i * (cw + GAP), view_top, vw, vh), tiles=[], captions=[])
            for i in range(columns)]
    if tiles:
        x, y, row = 0, bottom + GAP, 0
        for (tw, th), gw in zip(tiles, group_widths):
            if x > 0 and x + gw > inner:
                x, y, row = 0, y + row + GAP, 0
            for i, col in enumerate(cols):
                tx = MARGIN + x + i * (tw + TILE_GAP)
                col.captions.append(Rect(tx, y, tw, cap))
                col.tiles.append(Rect(tx, y + cap, tw, th))
            x += gw + GAP
            row = max(row, cap + th)
        bottom = y + row
    return Layout(width=inner + 2 * MARGIN, height=bottom + MARGIN, title=title, columns=cols, column_width=cw,
                  view_scale=vw / w, zoom=zoom)


# ---------------------------------------------------------------------------------------- drawing


def _fit(draw: ImageDraw.ImageDraw, text: str, fnt, width: int) -> str:
    """``text`` shortened with an ellipsis until it fits ``width`` pixels."""
    if draw.textlength(text, font=fnt) <= width:
        return text
    while len(text) > 1 and draw.textlength(text + "…", font=fnt) > width:
        text = text[:-1]
    return text + "…"


def _band(rect: Rect, lines: Sequence[str], sizes: Sequence[int], colours: Sequence[tuple[int, int, int]],
          pad: int = PAD) -> Image.Image:
    """A filled band with ``lines`` of text (font size and colour per line, the last repeated),
    clipped to the band."""
    band = Image.new("RGB", (max(1, rect.w), max(1, rect.h)), BAND)
    draw = ImageDraw.Draw(band)
    y = pad
    for i, text in enumerate(lines):
        size = sizes[min(i, len(sizes) - 1)]
        fnt = font(size)
        draw.text((pad, y), _fit(draw, text, fnt, rect.w - 2 * pad), font=fnt, fill=colours[min(i, len(colours) - 1)])
        y += line_height(size)
    return band


def full_view(pixels: np.ndarray, width: int) -> np.ndarray:
    """A development downscaled (Lanczos) to ``width`` pixels wide, 8-bit; unchanged if not wider."""
    h, w = pixels.shape[:2]
    if width >= w:
        return pixels
    height = max(1, round(h * width / w))
    image = Image.fromarray(pixels).resize((width, height), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return np.asarray(image)


def _mark_crops(view: Image.Image, crops: Sequence[Rect], scale: float) -> None:
    """Draw each crop's rectangle and number onto a full view."""
    draw = ImageDraw.Draw(view)
    fnt = font(CAPTION_SIZE)
    thick = 3 if min(view.size) >= 300 else 1
    for i, c in enumerate(crops):
        colour = CROP_COLOURS[i % len(CROP_COLOURS)]
        x0, y0 = math.floor(c.x * scale), math.floor(c.y * scale)
        x1, y1 = max(x0, math.ceil((c.x + c.w) * scale) - 1), max(y0, math.ceil((c.y + c.h) * scale) - 1)
        draw.rectangle((x0, y0, x1, y1), outline=colour, width=thick)
        tag = str(i + 1)
        tw = draw.textlength(tag, font=fnt)
        lh = line_height(CAPTION_SIZE)
        if y0 >= lh + 2:
            ty = y0 - lh - 2  # above the box
        elif y1 + 2 + lh < view.size[1]:
            ty = y1 + 2  # below it
        else:
            ty = y0 + thick  # inside it
        draw.rectangle((x0, ty, x0 + tw + 6, ty + line_height(CAPTION_SIZE)), fill=colour)
        draw.text((x0 + 3, ty), tag, font=fnt, fill=(0, 0, 0))


def compose(columns: Sequence[Column], crops: Sequence[Rect], title: Sequence[str],
            options: CompareOptions) -> tuple[np.ndarray, Layout]:
    """Draw the comparison picture of ``columns`` (all of the same upright size) -> (pixels, layout)."""
    shape = columns[0].pixels.shape
    label_lines = max(len(c.lines) for c in columns)
    layout = plan_layout(shape, crops, len(columns), title_lines=len(title), label_lines=label_lines,
                         view_width=options.view_width, zoom=options.zoom)
    canvas = Image.new("RGB", (layout.width, layout.height), BACKGROUND)
    canvas.paste(_band(layout.title, title, [TITLE_SIZE], [TEXT, DIM]), (layout.title.x, layout.title.y))
    zoom = options.zoom
    scale = "100%" if zoom == 1 else f"{100 * zoom}%"
    for k, (column, place) in enumerate(zip(columns, layout.columns)):
        canvas.paste(_band(place.label, column.lines, [HEADING_SIZE, LABEL_SIZE], [TEXT, DIM]),
                     (place.label.x, place.label.y))
        view = column.view if column.view is not None else full_view(column.pixels, place.view.w)
        image = Image.fromarray(np.ascontiguousarray(view[:place.view.h, :place.view.w]))
        _mark_crops(image, crops, layout.view_scale)
        canvas.paste(image, (place.view.x, place.view.y))
        for i, (crop, tile, cap) in enumerate(zip(crops, place.tiles, place.captions)):
            colour = CROP_COLOURS[i % len(CROP_COLOURS)]
            text = f"{i + 1} {column.name or column.lines[0]}"
            if k == 0:
                text += f"  {crop.x},{crop.y} {crop.w}x{crop.h} {scale}"
            canvas.paste(_band(cap, [text], [CAPTION_SIZE], [colour], pad=2), (cap.x, cap.y))
            part = column.pixels[crop.slices()]
            if zoom > 1:
                part = np.repeat(np.repeat(part, zoom, axis=0), zoom, axis=1)
            canvas.paste(Image.fromarray(np.ascontiguousarray(part)), (tile.x, tile.y))
    return np.asarray(canvas), layout


def difference_column(a: np.ndarray, b: np.ndarray, gain: float, view_width: int,
                      names: tuple[str, str] = ("learned", "classical")) -> Column:
    """|a - b| of two 8-bit developments times ``gain``: full resolution for the crops and an area
    (box) downscaled full view, with its scale in the label."""
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16)).astype(np.uint8)
    amplified = np.clip(diff.astype(np.float32) * gain, 0, 255).astype(np.uint8)
    h, w = diff.shape[:2]
    vw = min(view_width, w)
    if vw < w:
        small = Image.fromarray(diff).resize((vw, max(1, round(h * vw / w))), Image.Resampling.BOX)
        view = np.clip(np.asarray(small).astype(np.float32) * gain, 0, 255).astype(np.uint8)
    else:
        view = amplified
    full = 255 / gain
    lines = [f"|{names[0]} - {names[1]}| x {gain:g}",
             f"white = {full:.3g}+ levels (of 255), per channel",
             f"mean {diff.mean():.2f} levels, 99th pct {np.percentile(diff.max(axis=2), 99):.0f}",
             "full view: area mean; crops: per pixel"]
    return Column(lines, amplified, view, name=f"|{names[0][0].upper()}-{names[1][0].upper()}| x{gain:g}")


# -------------------------------------------------------------------------------------- developing


def _device(engine: Engine) -> str:
    provider = getattr(engine, "provider", "")
    if not provider:
        return "CPU (numpy)" if engine.name == "classical" else ""
    name = provider.removesuffix("ExecutionProvider")
    threads = getattr(engine, "threads", 0)
    return f"{name}, {threads} threads" if threads and name == "CPU" else name


def develop_side(raw: RawImage, packed, engine: Engine) -> tuple[Side, np.ndarray]:
    """Reconstruct with ``engine``, timed -> (its Side, pixels not rendered yet; linear camera RGB)."""
    start = time.perf_counter()
    rgb = reconstruct(raw, engine, packed)
    seconds = time.perf_counter() - start
    note = "not Bayer: LibRaw's demosaic (engine unused)" if raw.rgb is not None else ""
    side = Side(engine.name, getattr(engine, "version", ""), seconds, np.empty((0, 0, 3), np.uint8),
                device=_device(engine), note=note)
    return side, rgb


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
    pixels, layout = compose(columns, crops, title, options)
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


def compare_raw(raw: RawImage, output: Path, engines: Sequence[Engine], render: RenderOptions,
                options: CompareOptions, *, truth: np.ndarray | None = None,
                title: Sequence[str] | None = None, truth_lines: Sequence[str] = ()) -> Compared:
    """Develop a decoded RAW with each engine from one Packed, compose and write the picture."""
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    packed = normalise(raw) if raw.mosaic is not None else None
    seconds["normalise"] = time.perf_counter() - t0
    eight_bit = replace(render, fmt=render.fmt if render.fmt in ("jpeg", "png") else "png")
    sides = []
    for engine in engines:
        side, rgb = develop_side(raw, packed, engine)
        seconds[f"reconstruct {engine.name}"] = side.seconds
        t0 = time.perf_counter()
        side.pixels = render_picture(raw, rgb, eight_bit)
        del rgb
        seconds["render"] = seconds.get("render", 0.0) + time.perf_counter() - t0
        sides.append(side)
    del packed
    truth_column = None
    if truth is not None:
        from rawisp.evaluate import psnr, ssim

        for side in sides:
            side.scores = {"psnr": psnr(side.pixels, truth), "ssim": ssim(side.pixels, truth)}
        truth_column = Column(["ground truth", *truth_lines], truth, name="truth")
    t0 = time.perf_counter()
    pixels, crops, layout, warnings = build_picture(raw, sides, options, render, title, truth_column)
    seconds["compose"] = time.perf_counter() - t0
    path = save_picture(raw, pixels, output, eight_bit)
    seconds["write"] = time.perf_counter() - t0 - seconds["compose"]
    warnings = list(raw.warnings) + warnings
    if raw.rgb is not None:
        warnings.append("not a Bayer sensor: both sides are LibRaw's demosaic")
    return Compared(path, crops, layout, sides, seconds, warnings)


def compare_file(source: Path, output: Path, engines: Sequence[Engine], render: RenderOptions,
                 options: CompareOptions) -> Compared:
    """Decode ``source`` once and write its comparison picture to ``output``."""
    t0 = time.perf_counter()
    raw = decode(source)
    decoded = time.perf_counter() - t0
    result = compare_raw(raw, output, engines, render, options)
    result.seconds = {"decode": decoded, **result.seconds}
    return result


def eval_camera(camera: str | None = None) -> tuple[str, np.ndarray]:
    """(name, matrix) of a camera of the ``rawisp eval`` protocol; None: the one eval uses by default."""
    import inspect

    from rawisp import evaluate

    cameras = getattr(evaluate, "CAMERAS", None)
    if not cameras:
        return "default", evaluate.DEFAULT_CAM_FROM_SRGB
    if camera is None:
        camera = inspect.signature(evaluate.evaluate).parameters["camera"].default
    if camera not in cameras:
        raise CompareError(f"unknown camera matrix {camera!r}; choose from {', '.join(cameras)}")
    return camera, np.asarray(cameras[camera])


def compare_ground_truth(image: Path, output: Path, engines: Sequence[Engine], render: RenderOptions,
                         options: CompareOptions, noise: str = "mid", cfa: str = "RGGB",
                         camera: str | None = None) -> Compared:
    """The synthetic path: ground-truth sRGB -> DNG (the ``rawisp eval`` protocol, seed of image 0,
    its camera matrix ``camera``, default as eval) -> both developments (linear tone, as the
    protocol) -> picture with PSNR / SSIM in the labels."""
    from rawisp.evaluate import BLACK, NEUTRAL, RENDER, WHITE, EvalError, load_image, noise_seed, parse_noise
    from rawisp.synth import srgb_to_dng

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
    camera, cam_from_srgb = eval_camera(camera)
    protocol = replace(render, tone=RENDER.tone, exposure=0.0)
    with tempfile.TemporaryDirectory(prefix="rawisp-compare-") as tmp:
        dng = Path(tmp) / f"{image.stem}.dng"
        t0 = time.perf_counter()
        srgb_to_dng(dng, truth, cfa=cfa, black=BLACK, white=WHITE, cam_from_srgb=cam_from_srgb,
                    neutral=NEUTRAL, noise=(level.shot, level.read), seed=noise_seed(0, level))
        synthesised = time.perf_counter() - t0
        raw = decode(dng)
    noise_text = f"noise {level.label} (shot {level.shot:g}, read {level.read:g})"
    h, w = truth.shape[:2]
    title = [f"{image.name} (ground truth)  |  synthetic DNG, {cfa}, {noise_text}, camera {camera}  |  {w}x{h}",
             render_line(protocol) + " (the rawisp eval protocol)"]
    result = compare_raw(raw, output, engines, protocol, options, truth=truth8, title=title,
                         truth_lines=[image.name, noise_text])
    result.seconds = {"synthesise": synthesised, **result.seconds}
    return result


@dataclass
class CompareTask:
    """A picklable batch task: one comparison picture per job (RAW, or ground-truth image)."""

    engine_options: EngineOptions
    render: RenderOptions
    options: CompareOptions
    ground_truth: frozenset[str] = frozenset()  # absolute paths of the ground-truth images
    noise: str = "mid"
    camera: str | None = None  # camera matrix of the synthetic DNGs (None: as rawisp eval)

    def engines(self) -> list[Engine]:
        return [make_engine("classical"), make_engine("learned", self.engine_options)]

    def __call__(self, job: Job) -> Outcome:
        engines = self.engines()
        try:
            if str(Path(job.source).absolute()) in self.ground_truth:
                result = compare_ground_truth(job.source, job.output, engines, self.render, self.options,
                                              self.noise, camera=self.camera)
            else:
                result = compare_file(job.source, job.output, engines, self.render, self.options)
        except CompareError as exc:
            return Outcome(job, "failed", str(exc))
        return Outcome(job, "done", result.summary(), seconds=result.seconds, warnings=result.warnings)
