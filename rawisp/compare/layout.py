"""The geometry of a comparison picture: where the title, the columns, their full views and the
crop tiles lie.

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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rawisp.compare.crops import Rect

MARGIN = 16
GAP = 16
MIN_COLUMN = 400
PAD = 6  # padding inside label and title bands
TITLE_SIZE, HEADING_SIZE, LABEL_SIZE, CAPTION_SIZE = 22, 30, 20, 16
TILE_GAP = 4  # between the tiles of one crop group




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
