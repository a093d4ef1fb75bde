"""The bench's synthetic frame: a 24 MP 14-bit RGGB DNG of natural-looking content, made once and
cached (:func:`bench_frame`), so ``rawisp bench`` needs no file.

Imports numpy and the rest only when a frame is made (the bench parent stays light).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

DEFAULT_SIZE = (6000, 4000)
SCENE_VERSION = 1  # bump when the synthetic frame changes, so cached frames are remade

# the synthetic camera: 14-bit, daylight white balance, ISO 400-like noise (normalised units)
BENCH_CFA = "RGGB"
BENCH_BLACK = 512
BENCH_WHITE = 16383
BENCH_NEUTRAL = (0.52, 1.0, 0.70)
BENCH_NOISE = (8e-5, 4e-4)  # shot variance per unit signal, read std
BENCH_EXIF = {
    "ExposureTime": Fraction(1, 250),
    "FNumber": 5.6,
    "ISO": 400,
    "FocalLength": 35.0,
    "DateTimeOriginal": "2024:06:01 12:00:00",
    "LensModel": "rawisp Synthetic 35mm F1.8",
    "Artist": "rawisp bench",
}


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/rawisp``, else ``~/.cache/rawisp``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rawisp"


def bench_frame(cache_dir: Path | None = None, size: tuple[int, int] = DEFAULT_SIZE, seed: int = 0,
                progress: Callable[[str], None] | None = None) -> Path:
    """The cached synthetic DNG of ``size`` (width, height); made (atomically) when missing."""
    width, height = size
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache_dir / f"bench_{width}x{height}_s{seed}_v{SCENE_VERSION}.dng"
    if path.is_file() and path.stat().st_size > 0:
        return path
    cache_dir.mkdir(parents=True, exist_ok=True)
    if progress:
        progress(f"making the synthetic {width}x{height} frame {path} (once) ...")
    part = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        write_bench_dng(part, width, height, seed)
        os.replace(part, path)
    finally:
        part.unlink(missing_ok=True)
    return path


def write_bench_dng(path: str | os.PathLike, width: int, height: int, seed: int = 0) -> None:
    """Write the synthetic bench frame: :func:`synth_scene` through the camera model of
    :func:`rawisp.measure.synth.srgb_to_dng` (14-bit, mild noise, EXIF), in strips of rows to bound memory."""
    import numpy as np

    from rawisp.colour import srgb_decode
    from rawisp.measure import synth

    img = synth_scene(width, height, seed)
    raw = np.empty((height, width), np.float64)
    cam = synth.DEFAULT_CAM_FROM_SRGB
    neutral = np.asarray(BENCH_NEUTRAL)
    rng = np.random.default_rng(seed + 1)
    strip = 256  # even, so every strip starts on the same CFA phase
    for y in range(0, height, strip):
        truth = srgb_decode(img[y:y + strip]) @ cam.T
        truth *= neutral
        raw[y:y + strip] = synth.add_noise(synth.mosaic(truth, BENCH_CFA), *BENCH_NOISE, rng)
    del img, truth
    synth.write_dng(path, raw, cfa=BENCH_CFA, black=BENCH_BLACK, white=BENCH_WHITE, cam_from_srgb=cam,
                    neutral=BENCH_NEUTRAL, noise=BENCH_NOISE, exif=BENCH_EXIF, make="rawisp",
                    model="Bench 24MP")


def synth_scene(width: int, height: int, seed: int = 0):
    """Natural-looking sRGB content ``(height, width, 3)`` float32 in [0, 1] for benchmarks.

    The test chart (mirror-extended to fill the frame: edges, text, fine patterns, saturated
    colours) is blended through a soft random mask with textured surfaces (1/f noise over smooth
    random colours), then lit by a smooth random illumination field that leaves deep shadows and
    a few clipped highlights, plus fine grain. There is no flat area anywhere, so demosaicking,
    rendering and JPEG coding work as hard as on a photograph.
    """
    import numpy as np

    from rawisp.measure.chart import make_chart, pink_noise

    if width < 16 or height < 16:
        raise ValueError(f"bench frame must be at least 16x16 pixels, got {width}x{height}")
    rng = np.random.default_rng(seed)
    chart = make_chart(max(60, (width + 1) // 2), max(40, (height + 1) // 2), seed=seed)
    img = _mirror_fill(chart, height, width)
    del chart
    side = max(width, height)
    tile = min(1024, 1 << (side - 1).bit_length())
    grain = _mirror_fill(pink_noise(tile, tile, rng, 1.0), height, width)
    colour = 0.12 + 0.8 * _smooth_field(height, width, side / 10, rng, 3)
    colour *= (0.45 + 0.55 * grain)[..., None]
    mask = np.clip((_smooth_field(height, width, side / 6, rng) - 0.3) * 2.5, 0, 1)
    img *= ((0.8 + 0.4 * grain) * mask)[..., None]  # the chart's flat background gets texture too
    colour *= (1 - mask)[..., None]
    img += colour
    del colour, mask
    light = 0.35 + 0.95 * _smooth_field(height, width, side / 4, rng)
    img *= light[..., None]
    del light
    fine = _mirror_fill(pink_noise(tile // 2, tile // 2, rng, 0.5), height, width)
    img += (0.05 * (fine - 0.5))[..., None]
    np.clip(img, 0, 1, out=img)
    return img


def _mirror_fill(tile, height: int, width: int):
    """Extend ``tile`` (h, w[, c]) to (height, width[, c]) by mirror tiling (no seams), then crop."""
    import numpy as np

    pad = [(0, max(0, height - tile.shape[0])), (0, max(0, width - tile.shape[1]))]
    pad += [(0, 0)] * (tile.ndim - 2)
    return np.pad(tile, pad, mode="symmetric")[:height, :width].astype(np.float32, copy=True)


def _smooth_field(height: int, width: int, cell: float, rng, channels: int = 1):
    """Random values on a grid of ``cell``-pixel cells, bicubically upsampled: (h, w[, c]) in [0, 1]."""
    import numpy as np
    from PIL import Image

    gh, gw = max(2, round(height / cell) + 1), max(2, round(width / cell) + 1)
    grid = rng.random((channels, gh, gw)).astype(np.float32)
    out = np.stack([np.asarray(Image.fromarray(g, "F").resize((width, height), Image.BICUBIC)) for g in grid], -1)
    np.clip(out, 0, 1, out=out)
    return out[..., 0] if channels == 1 else out
