"""Procedural training images: what the photo sets lack (saturated colour, regular fine structure).

Every generator returns an sRGB-encoded float32 image ``(size, size, 3)`` in [0, 1], drawn at
twice the size and area-downscaled by 2, so edges are anti-aliased the way a lens and a sensor's
pixel aperture soften them (a hard, aliased edge is not something a camera can record).

- ``dead_leaves``: occluding discs and rectangles of random size (power-law radii, the scale
  statistics of natural images), strongly saturated flat colours, some carrying a grating or a
  noise texture. Achddou et al. 2021, "Synthetic images as a regularity prior for image
  restoration neural networks".
- ``grating``: sinusoidal or square stripes at any orientation, frequencies up to the full-
  resolution Nyquist limit, between two random (often saturated) colours.
- ``grid``: facade-like rows and columns of rectangles (windows, tiles) with thin joints.
- ``text``: lines of random characters at random sizes and colours.
- ``flat``: one colour with a faint ramp, mostly dark (not in ``GENERATORS``: drawn by its own
  training fraction). Flat dark noisy areas are where a denoiser leaves isolated specks and a
  demosaicker's Bayer-phase bias shows as a fine pattern; photos hold few such areas.
- ``texture``: low-contrast natural texture, a random field with a 1/f^beta power spectrum
  (gravel, foliage, mortar, fabric at a distance), mostly dark (its own training fraction too).
  The training photos are JPEGs, whose quantisation removes exactly this kind of texture, so
  without it the network learns that fine low-contrast detail is noise.

``colour_augment`` decorrelates the colour channels of photos (saturation boost, hue rotation
about the grey axis, channel permutation), so low inter-channel correlation is common in training.
"""

from __future__ import annotations

import string

import numpy as np
from PIL import Image, ImageDraw, ImageFont

SUPERSAMPLE = 2  # draw at 2x and area-downscale: anti-aliased edges


def _downscale(img: np.ndarray) -> np.ndarray:
    s = SUPERSAMPLE
    h, w, c = img.shape
    return img.reshape(h // s, s, w // s, s, c).mean(axis=(1, 3)).astype(np.float32)


def saturated_colour(rng: np.random.Generator, n: int = 1,
                     saturation: tuple[float, float] | None = None) -> np.ndarray:
    """``n`` sRGB colours ``(n, 3)`` in [0, 1], mostly strongly saturated (HSV saturation ~ Beta(3, 1),
    or uniform in the range ``saturation``)."""
    hue = rng.random(n)
    sat = rng.beta(3.0, 1.0, n) if saturation is None else rng.uniform(*saturation, n)
    val = rng.uniform(0.15, 1.0, n)
    # HSV -> RGB: each channel is val * (1 - sat * clip(...)) of the hue's distance to its primary
    k = (np.array([5.0, 3.0, 1.0])[None, :] + hue[:, None] * 6.0) % 6.0
    return val[:, None] * (1.0 - sat[:, None] * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0))


def _texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A multiplicative texture ``(h, w)`` around 1: a grating, noise, or nothing."""
    kind = rng.integers(3)
    if kind == 0:
        return np.ones((h, w), np.float32)
    if kind == 1:
        theta, period = rng.uniform(0, np.pi), rng.uniform(2.2, 16.0) * SUPERSAMPLE
        yy, xx = np.mgrid[0:h, 0:w]
        phase = (xx * np.cos(theta) + yy * np.sin(theta)) * 2 * np.pi / period
        return (1.0 + rng.uniform(0.2, 0.6) * np.sin(phase)).astype(np.float32)
    return (1.0 + rng.uniform(0.1, 0.4) * rng.standard_normal((h, w))).astype(np.float32)


def dead_leaves(rng: np.random.Generator, size: int, radii: tuple[float, float] | None = None,
                saturation: tuple[float, float] | None = None, textured: bool = True,
                leaves: int | None = None) -> np.ndarray:
    """Dead-leaves image: occluding shapes with power-law radii (r^-3 density), saturated colours.

    ``radii``: the smallest and largest radius in output pixels (default 1 to ``size / 2``);
    ``saturation``: HSV saturation range of the colours (default Beta(3, 1), see saturated_colour);
    ``textured=False``: flat colours only (no gratings or noise on the shapes): sharp colour edges;
    ``leaves``: how many power-law shapes fall on the few large ones (default 80-200).
    """
    big = size * SUPERSAMPLE
    img = np.empty((big, big, 3), np.float32)
    img[:] = saturated_colour(rng, saturation=saturation)[0]
    r_min, r_max = (1.0 * SUPERSAMPLE, big / 2) if radii is None else (radii[0] * SUPERSAMPLE, radii[1] * SUPERSAMPLE)
    yy, xx = np.mgrid[0:big, 0:big]
    # a few large shapes cover the background first, then power-law ones fall on top
    large = rng.uniform(min(big / 6, r_max), r_max, int(rng.integers(4, 10)))
    # inverse-CDF samples of p(r) ~ r^-3 on [r_min, r_max]
    u = rng.random(int(rng.integers(80, 200)) if leaves is None else leaves)
    radii = np.concatenate([large, (r_min ** -2 - u * (r_min ** -2 - r_max ** -2)) ** -0.5])
    for r in radii:
        cy, cx = rng.uniform(-r, big + r, 2)
        y0, y1 = max(int(cy - r), 0), min(int(cy + r) + 1, big)
        x0, x1 = max(int(cx - r), 0), min(int(cx + r) + 1, big)
        if y0 >= y1 or x0 >= x1:
            continue
        sy, sx = yy[y0:y1, x0:x1] - cy, xx[y0:y1, x0:x1] - cx
        if rng.random() < 0.6:
            mask = sy * sy + sx * sx <= r * r
        else:  # a rotated rectangle of aspect up to 4
            a = rng.uniform(0, np.pi)
            u_, v_ = sx * np.cos(a) + sy * np.sin(a), -sx * np.sin(a) + sy * np.cos(a)
            mask = (np.abs(u_) <= r) & (np.abs(v_) <= r / rng.uniform(1, 4))
        colour = saturated_colour(rng, saturation=saturation)[0]
        texture = _texture(rng, y1 - y0, x1 - x0) if textured else np.ones((y1 - y0, x1 - x0), np.float32)
        patch = colour[None, None, :] * texture[..., None]
        img[y0:y1, x0:x1][mask] = patch[mask]
    return np.clip(_downscale(img), 0.0, 1.0)


def grating(rng: np.random.Generator, size: int) -> np.ndarray:
    """Stripes at a random orientation, period 2.05-24 full-resolution pixels, two colours."""
    big = size * SUPERSAMPLE
    theta = rng.uniform(0, np.pi)
    # log-uniform period, weighted towards the fine end where demosaicking aliases
    period = np.exp(rng.uniform(np.log(2.05), np.log(24.0))) * SUPERSAMPLE
    yy, xx = np.mgrid[0:big, 0:big].astype(np.float32)
    wave = np.sin((xx * np.cos(theta) + yy * np.sin(theta)) * 2 * np.pi / period + rng.uniform(0, 2 * np.pi))
    if rng.random() < 0.5:  # square wave
        wave = np.sign(wave)
    t = (0.5 + 0.5 * wave)[..., None]
    a, b = saturated_colour(rng, 2)
    return np.clip(_downscale(a * t + b * (1 - t)), 0.0, 1.0)


def grid(rng: np.random.Generator, size: int) -> np.ndarray:
    """A facade: rectangles (windows, tiles) on a regular lattice, joints 1-3 px, slight rotation."""
    big = size * SUPERSAMPLE
    pitch_y, pitch_x = rng.uniform(3.0, 24.0, 2) * SUPERSAMPLE
    joint = rng.uniform(0.8, 3.0) * SUPERSAMPLE
    a = rng.normal(0, 0.05)  # radians: facades are rarely perfectly aligned with the sensor
    yy, xx = np.mgrid[0:big, 0:big].astype(np.float32)
    u, v = xx * np.cos(a) + yy * np.sin(a), -xx * np.sin(a) + yy * np.cos(a)
    inside = ((u % pitch_x) > joint) & ((v % pitch_y) > joint)
    wall, pane = saturated_colour(rng, 2)
    img = np.where(inside[..., None], pane, wall).astype(np.float32)
    return np.clip(_downscale(img), 0.0, 1.0)


def text(rng: np.random.Generator, size: int) -> np.ndarray:
    """Lines of random characters (Pillow's default font) at random sizes and colours."""
    big = size * SUPERSAMPLE
    bg, fg = (np.round(c * 255).astype(int) for c in saturated_colour(rng, 2))
    im = Image.new("RGB", (big, big), tuple(bg))
    draw = ImageDraw.Draw(im)
    y = int(rng.integers(-4, 4))
    while y < big:
        px = int(rng.integers(6, 28)) * SUPERSAMPLE // 2
        font = ImageFont.load_default(size=px)
        line = "".join(rng.choice(list(string.ascii_letters + string.digits + "  .,"), 40))
        draw.text((int(rng.integers(-20, 5)), y), line, fill=tuple(fg), font=font)
        y += int(px * rng.uniform(1.0, 1.6))
    return _downscale(np.asarray(im, np.float32) / 255.0)


def flat(rng: np.random.Generator, size: int) -> np.ndarray:
    """A flat colour ``(size, size, 3)``, sRGB value 0.03-0.6 (linear ~0.002-0.3), with a ramp of up to ±5%."""
    hue = saturated_colour(rng)[0]
    mix = rng.random() ** 2  # 0: grey, 1: the saturated colour; 40% of draws nearly grey
    colour = ((1.0 - mix) + mix * hue / max(hue.max(), 1e-3)) * rng.uniform(0.03, 0.6)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    theta = rng.uniform(0, 2 * np.pi)
    ramp = 1.0 + rng.uniform(0.0, 0.1) * (xx * np.cos(theta) + yy * np.sin(theta))
    return np.clip(colour[None, None, :] * ramp[..., None], 0.0, 1.0).astype(np.float32)


def texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """Low-contrast texture ``(size, size, 3)``, sRGB in [0, 1]: a colour (as ``flat``'s, sRGB value
    0.03-0.6) modulated by a zero-mean random field of power spectrum 1/f^beta (beta 1-2.5: the
    range of natural textures) at 2-30% contrast (standard deviation over mean); a third of the
    draws add a second, independent field on one colour channel (coloured texture)."""
    big = size * SUPERSAMPLE
    f = np.fft.fftfreq(big)
    radius = np.hypot(*np.meshgrid(f, f, indexing="ij"))
    radius[0, 0] = 1.0

    def field() -> np.ndarray:
        amplitude = radius ** (-rng.uniform(1.0, 2.5) / 2)  # power = amplitude^2 ~ 1/f^beta
        amplitude[0, 0] = 0.0  # zero mean
        spectrum = amplitude * (rng.standard_normal((big, big)) + 1j * rng.standard_normal((big, big)))
        values = np.fft.ifft2(spectrum).real
        return values / values.std()

    base = flat(rng, big)  # the colour and its faint ramp, drawn at the supersampled size
    modulation = np.repeat((1.0 + np.exp(rng.uniform(np.log(0.02), np.log(0.3))) * field())[..., None], 3, axis=2)
    if rng.random() < 1 / 3:
        modulation[..., rng.integers(3)] += rng.uniform(0.02, 0.15) * field()
    return np.clip(_downscale((base * modulation).astype(np.float32)), 0.0, 1.0)


def colour_edges(rng: np.random.Generator, size: int) -> np.ndarray:
    """Saturated colour dead leaves ``(size, size, 3)`` (sRGB in [0, 1]): flat colours of HSV
    saturation 0.6-1 whose R, G and B do not move together across the sharp edges, radii 2-120 px,
    one power-law shape per 32 px² (they cover the frame about three times over: edges everywhere).
    The validation set ``edges`` (not a training generator)."""
    return dead_leaves(rng, size, radii=(2.0, 120.0), saturation=(0.6, 1.0), textured=False,
                       leaves=size * size // 32)


GENERATORS = {"dead_leaves": dead_leaves, "grating": grating, "grid": grid, "text": text}
WEIGHTS = {"dead_leaves": 0.55, "grating": 0.2, "grid": 0.15, "text": 0.1}


def procedural(rng: np.random.Generator, size: int) -> np.ndarray:
    """One procedural sRGB image ``(size, size, 3)`` in [0, 1], generator drawn by ``WEIGHTS``."""
    names = list(GENERATORS)
    name = names[rng.choice(len(names), p=[WEIGHTS[n] for n in names])]
    return GENERATORS[name](rng, size)


def colour_augment(srgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Decorrelate an sRGB image's channels ``(h, w, 3)`` in [0, 1]: returns the same shape, clipped.

    Saturation x1-2.5 about the mean of the channels, a random hue rotation about the grey axis
    (Rodrigues' formula), and half the time a random permutation of R, G, B.
    """
    grey = srgb.mean(axis=-1, keepdims=True)
    out = grey + rng.uniform(1.0, 2.5) * (srgb - grey)
    angle = rng.uniform(0, 2 * np.pi)
    k = np.array([[0, -1, 1], [1, 0, -1], [-1, 1, 0]], np.float32) / np.sqrt(3)  # cross-product with (1,1,1)/sqrt3
    rot = np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)
    out = out @ rot.T.astype(np.float32)
    if rng.random() < 0.5:
        out = out[..., rng.permutation(3)]
    return np.clip(out, 0.0, 1.0).astype(np.float32)
