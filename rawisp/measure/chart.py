"""A procedural resolution and colour test chart, drawn with numpy (text with Pillow).

Layout (fractions of the chart, 3:2 by default): ColorChecker-like patches
and a grey wedge, a zone plate and a Siemens star on top; smooth and stepped
grey ramps, hue ramps and a text panel in the middle; natural-ish textures,
slanted edges and pixel-aligned bar patterns at the bottom. Everything is
anti-aliased to about one pixel so the chart itself does not alias.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# ColorChecker Classic, 8-bit sRGB (BabelColor averages), row by row.
COLORCHECKER_SRGB8: np.ndarray = np.array(
    [
        [115, 82, 68], [194, 150, 130], [98, 122, 157], [87, 108, 67], [133, 128, 177], [103, 189, 170],
        [214, 126, 44], [80, 91, 166], [193, 90, 99], [94, 60, 108], [157, 188, 64], [224, 163, 46],
        [56, 61, 150], [70, 148, 73], [175, 54, 60], [231, 199, 31], [187, 86, 149], [8, 133, 161],
        [243, 243, 242], [200, 200, 200], [160, 160, 160], [122, 122, 121], [85, 85, 85], [52, 52, 52],
    ],
    dtype=np.uint8,
)
"""The 24 ColorChecker patches as (24, 3) uint8 sRGB, in chart reading order."""

_BACKGROUND = 0.46  # sRGB-encoded 18 % grey
_PANGRAM = "The quick brown fox jumps over the lazy dog."
_GLYPHS = "0123456789 ABCDEFGHIJKLMNOPQRSTUVWXYZ !?@#%&*()[]{}"
Box = tuple[int, int, int, int]  # y0, y1, x0, x1 in pixels


def make_chart(width: int = 3000, height: int = 2000, seed: int = 0) -> np.ndarray:
    """Draw the test chart as (height, width, 3) float32 sRGB-encoded values in [0, 1].

    `seed` drives the random textures; everything else is deterministic.
    Width and height must be at least 60 and 40 pixels.
    """
    if width < 60 or height < 40:
        raise ValueError(f"chart must be at least 60x40 pixels, got {width}x{height}")
    rng = np.random.default_rng(seed)
    img = np.full((height, width, 3), _BACKGROUND, dtype=np.float32)

    def box(y0: float, y1: float, x0: float, x1: float) -> Box:
        return round(y0 * height), round(y1 * height), round(x0 * width), round(x1 * width)

    _paste(img, box(0.02, 0.46, 0.02, 0.42), _patches)
    _paste(img, _square(box(0.02, 0.46, 0.44, 0.70)), _zone_plate)
    _paste(img, _square(box(0.02, 0.46, 0.72, 0.98)), _siemens_star)
    _paste(img, box(0.49, 0.71, 0.02, 0.60), _gradients)
    _paste(img, box(0.49, 0.98, 0.62, 0.98), _text_panel)
    for i in range(4):
        x0 = 0.02 + 0.1 * i
        _paste(img, box(0.74, 0.98, x0, x0 + 0.09), lambda h, w, i=i: _texture(h, w, i, rng))
    _paste(img, box(0.74, 0.86, 0.43, 0.51), lambda h, w: _slanted_edge(h, w, 5.0))
    _paste(img, box(0.86, 0.98, 0.43, 0.51), lambda h, w: _slanted_edge(h, w, -85.0))
    _paste(img, box(0.74, 0.98, 0.52, 0.60), _bar_patterns)
    return img


def _paste(img: np.ndarray, box: Box, draw) -> None:
    """Fill `box` of `img` with ``draw(h, w)``, an (h, w, 3) array in [0, 1]."""
    y0, y1, x0, x1 = box
    if y1 > y0 and x1 > x0:
        img[y0:y1, x0:x1] = np.clip(draw(y1 - y0, x1 - x0), 0, 1)


def _square(box: Box) -> Box:
    """The largest square centred in `box`."""
    y0, y1, x0, x1 = box
    side = min(y1 - y0, x1 - x0)
    top, left = y0 + (y1 - y0 - side) // 2, x0 + (x1 - x0 - side) // 2
    return top, top + side, left, left + side


def _grey(v: np.ndarray) -> np.ndarray:
    """Grey levels of any shape -> the same shape plus a trailing RGB axis."""
    return np.repeat(np.asarray(v)[..., None], 3, axis=-1)


def _hsv_to_rgb(hue: np.ndarray, sat: np.ndarray, val: np.ndarray) -> np.ndarray:
    """HSV in [0, 1] (broadcastable arrays) -> (..., 3) RGB in [0, 1]."""
    hue, sat, val = np.broadcast_arrays(hue, sat, val)
    offsets = np.array([0.0, 4.0, 2.0])
    ramp = np.clip(np.abs((6 * hue[..., None] + offsets) % 6 - 3) - 1, 0, 1)
    return val[..., None] * (1 - sat[..., None] + sat[..., None] * ramp)


def _patches(h: int, w: int) -> np.ndarray:
    """6x4 ColorChecker patches over a 12-step grey wedge, on a black surround."""
    out = np.full((h, w, 3), 0.08)
    rows = [COLORCHECKER_SRGB8[r * 6:(r + 1) * 6] / 255 for r in range(4)]
    rows.append(_grey(np.linspace(1, 0, 12)))
    for r, colours in enumerate(rows):
        ys = np.linspace(0, h, len(rows) + 1).round().astype(int)
        xs = np.linspace(0, w, len(colours) + 1).round().astype(int)
        gap = max(1, (ys[1] - ys[0]) // 12)
        for c, colour in enumerate(colours):
            out[ys[r] + gap:ys[r + 1] - gap, xs[c] + gap:xs[c + 1] - gap] = colour
    return out


def _centred_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (y, x) relative to the middle of an h x w box."""
    return np.mgrid[0:h, 0:w] - np.array([(h - 1) / 2, (w - 1) / 2])[:, None, None]


def _zone_plate(h: int, w: int) -> np.ndarray:
    """Circular chirp cos(k r^2) rising from 0 to 0.5 cycles/pixel at the rim."""
    y, x = _centred_grid(h, w)
    radius = min(h, w) / 2
    r2 = x**2 + y**2
    plate = 0.5 + 0.45 * np.cos(np.pi / (2 * radius) * r2)
    edge = np.clip(radius - np.sqrt(r2), 0, 1)  # 1-pixel anti-aliased rim
    return _grey(edge * plate + (1 - edge) * _BACKGROUND)


def _siemens_star(h: int, w: int, spokes: int = 36) -> np.ndarray:
    """Siemens star of `spokes` black/white cycles, edges anti-aliased to ~1 pixel."""
    y, x = _centred_grid(h, w)
    r, theta = np.hypot(x, y), np.arctan2(y, x)
    distance = np.sin(spokes * theta) * r / spokes  # approx. signed distance to an edge
    star = 0.05 + 0.9 * np.clip(0.5 + distance, 0, 1)
    edge = np.clip(min(h, w) / 2 - r, 0, 1)
    return _grey(edge * star + (1 - edge) * _BACKGROUND)


def _gradients(h: int, w: int) -> np.ndarray:
    """Stacked ramps: smooth grey, 32-step grey, saturated hue, hue x saturation."""
    ys = np.linspace(0, h, 5).round().astype(int)
    x = np.linspace(0, 1, w)[None]
    out = np.empty((h, w, 3))
    out[ys[0]:ys[1]] = _grey(x)
    out[ys[1]:ys[2]] = _grey(np.floor(x * 31.999) / 31)
    out[ys[2]:ys[3]] = _hsv_to_rgb(x, np.ones(1), np.ones(1))
    sat = np.linspace(1, 0, ys[4] - ys[3])[:, None]
    out[ys[3]:ys[4]] = _hsv_to_rgb(x, sat, np.full(1, 0.9))
    return out


def _text_panel(h: int, w: int) -> np.ndarray:
    """Black text at growing sizes on white, then white and coloured text on dark."""
    image = Image.new("RGB", (w, h), (245, 245, 245))
    draw = ImageDraw.Draw(image)
    scale = h / 980
    margin = max(1, round(10 * scale))

    def write(y: int, bottom: int, size: float, colour: tuple[int, int, int]) -> int:
        font = ImageFont.load_default(size=max(1.0, size))
        step = max(2, round(size * 1.25))
        for line in (f"{round(size)} px  {_PANGRAM}", _GLYPHS):
            if y + step > bottom:
                break
            while len(line) > 1 and draw.textlength(line, font=font) > w - 2 * margin:
                line = line[:-1]
            draw.text((margin, y), line, fill=colour, font=font)
            y += step
        return y

    split = int(h * 0.7)
    y = margin
    for size in (7, 8, 9, 10, 12, 14, 18, 24, 32, 48, 64):
        y = write(y, split, size * scale, (0, 0, 0))
    draw.rectangle((0, split, w, h), fill=(25, 25, 30))
    y = split + margin
    on_dark = {10: (255, 255, 255), 14: (230, 40, 40), 20: (60, 110, 255), 28: (240, 220, 40)}
    for size, colour in on_dark.items():
        y = write(y, h, size * scale, colour)
    return np.asarray(image, dtype=np.float64) / 255


def pink_noise(h: int, w: int, rng: np.random.Generator, beta: float, stretch: float = 1.0) -> np.ndarray:
    """Gaussian noise with a 1/f^beta spectrum (h, w) float64, features elongated `stretch`-fold
    along y, scaled to [0, 1] (1st..99th percentile, clipped): the 1/f field of the project's
    synthetic scenes (chart textures, bench frame, test images)."""
    fy = np.fft.fftfreq(h)[:, None] * stretch
    fx = np.fft.rfftfreq(w)[None] / stretch
    f = np.hypot(fy, fx)
    f[0, 0] = 1.0
    spectrum = np.fft.rfft2(rng.standard_normal((h, w))) / f**beta
    spectrum[0, 0] = 0
    noise = np.fft.irfft2(spectrum, s=(h, w))
    lo, hi = np.percentile(noise, [1, 99])
    return np.clip((noise - lo) / (hi - lo + 1e-12), 0, 1)


def _texture(h: int, w: int, kind: int, rng: np.random.Generator) -> np.ndarray:
    """Natural-ish textures: 0 foliage, 1 wood grain, 2 woven fabric, 3 stone."""
    if kind == 0:
        n = pink_noise(h, w, rng, 1.0)
        return _mix((0.10, 0.20, 0.05), (0.55, 0.70, 0.20), n)
    if kind == 1:
        n = pink_noise(h, w, rng, 1.2, stretch=4.0)  # streaks along y
        return _mix((0.30, 0.22, 0.10), (0.80, 0.72, 0.40), n)
    if kind == 2:
        return _weave(h, w, rng)
    n = 0.7 * pink_noise(h, w, rng, 1.6) + 0.3 * pink_noise(h, w, rng, 0.5)
    return _mix((0.35, 0.33, 0.30), (0.78, 0.74, 0.66), n)


def _weave(h: int, w: int, rng: np.random.Generator, period: float = 4.0) -> np.ndarray:
    """Basket weave of red horizontal and blue vertical threads, `period` px apart."""
    y, x = np.mgrid[0:h, 0:w] / period
    y = y + 0.3 * pink_noise(h, w, rng, 2.0)  # slightly wavy threads
    warp_on_top = (np.floor(x) + np.floor(y)) % 2 == 0
    warp = (0.45 + 0.55 * np.sin(np.pi * (y % 1)))[..., None] * np.array([0.75, 0.12, 0.15])
    weft = (0.45 + 0.55 * np.sin(np.pi * (x % 1)))[..., None] * np.array([0.20, 0.30, 0.80])
    return np.where(warp_on_top[..., None], warp, weft)


def _mix(dark, light, t: np.ndarray) -> np.ndarray:
    """Blend two sRGB colours by t in [0, 1] -> (h, w, 3)."""
    dark, light = np.asarray(dark), np.asarray(light)
    return dark + (light - dark) * t[..., None]


def _slanted_edge(h: int, w: int, degrees: float) -> np.ndarray:
    """A dark square tilted by `degrees` on a light field (4:1 contrast), ISO 12233 style."""
    y, x = _centred_grid(h, w)
    a = np.deg2rad(degrees)
    u, v = x * np.cos(a) + y * np.sin(a), -x * np.sin(a) + y * np.cos(a)
    distance = np.maximum(np.abs(u), np.abs(v)) - min(h, w) * 0.3
    inside = np.clip(0.5 - distance, 0, 1)
    return _grey(0.8 - 0.6 * inside)


def _bar_patterns(h: int, w: int) -> np.ndarray:
    """Pixel-aligned black/white bars 1-4 px wide: vertical (left), horizontal (right)."""
    yy, xx = np.mgrid[0:h, 0:w]
    band = yy * 4 // h  # bar width - 1
    bars = np.where(xx < w // 2, xx // (band + 1), yy // (band + 1)) % 2
    same_band = (np.maximum(yy - 2, 0) * 4 // h) == (np.minimum(yy + 2, h - 1) * 4 // h)
    inner = same_band & (yy > 1) & (yy < h - 2) & (xx > 1) & (xx < w - 2) & (np.abs(xx - w // 2) > 1)
    return _grey(np.where(inner, 0.05 + 0.9 * bars, _BACKGROUND))
