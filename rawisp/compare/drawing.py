"""Drawing a comparison picture: text bands, downscaled full views with the crops marked, the crop
tiles, and the difference column (geometry from :mod:`rawisp.compare.layout`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from rawisp.compare.crops import Rect
from rawisp.compare.layout import (CAPTION_SIZE, HEADING_SIZE, LABEL_SIZE, PAD, TITLE_SIZE, Layout, line_height,
                                   plan_layout)

BACKGROUND = (36, 36, 40)
BAND = (24, 24, 28)
TEXT = (236, 236, 236)
DIM = (170, 170, 176)
CROP_COLOURS = [(255, 90, 80), (70, 200, 255), (255, 215, 60), (120, 240, 120), (240, 120, 255), (255, 160, 60)]


@dataclass
class Column:
    """What one column shows: label lines, full-resolution pixels (crops), optional own full view."""

    lines: list[str]
    pixels: np.ndarray
    view: np.ndarray | None = None
    name: str = ""  # short name for the crop captions (default: the heading)


@lru_cache(maxsize=16)
def font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's default font at ``size`` pixels (the bitmap font on Pillow < 10.1)."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has no sized default font
        return ImageFont.load_default()


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


def compose(columns: Sequence[Column], crops: Sequence[Rect], title: Sequence[str], *, view_width: int = 1200,
            zoom: int = 1) -> tuple[np.ndarray, Layout]:
    """Draw the comparison picture of ``columns`` (all of the same upright size) -> (pixels, layout)."""
    shape = columns[0].pixels.shape
    label_lines = max(len(c.lines) for c in columns)
    layout = plan_layout(shape, crops, len(columns), title_lines=len(title), label_lines=label_lines,
                         view_width=view_width, zoom=zoom)
    canvas = Image.new("RGB", (layout.width, layout.height), BACKGROUND)
    canvas.paste(_band(layout.title, title, [TITLE_SIZE], [TEXT, DIM]), (layout.title.x, layout.title.y))
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
