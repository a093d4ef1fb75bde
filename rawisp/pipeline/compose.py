"""The pipeline composed: a decoded RAW -> packed planes -> camera RGB -> upright pixels.

One function per stage, in order (packages under rawisp/)::

    io.decode.decode              file -> RawImage (mosaic in DN, levels, white balance, matrix, EXIF/XMP)
    stages.normalise.normalise    RawImage -> Packed (RGGB planes at half resolution, white-balanced)
    stages.reconstruct.reconstruct  Packed -> camera RGB (H, W, 3), by an engine (engines.classical
                                  or engines.learned)
    stages.render.render          camera RGB -> sRGB pixels; scaled down (stages.resize.downscale,
                                  --long-edge); then turned upright (io.metadata.apply_orientation)
    io.write.write_image          pixels + ICC -> file, EXIF/XMP put in by exiv2
                                  (or stages.dng_frame, io.dng.write_dng: the denoised mosaic ->
                                  Bayer DNG; camera RGB before white balance -> linear DNG)

:func:`raw_to_pixels` runs the middle three for one or several engines from one normalise; the
whole-file developments (:mod:`rawisp.pipeline.files`), the comparison picture
(:mod:`rawisp.compare.picture`) and the evaluation harness (:mod:`rawisp.measure.evaluate`) all go
through it. A :class:`Stopwatch` records the seconds of each stage and tells a hook about each.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rawisp.io.decode import RawImage
from rawisp.io.dng import BAYER, FORMATS as DNG_FORMATS, write_dng
from rawisp.io.metadata import apply_orientation
from rawisp.io.whitebalance import WhiteBalanceChoice
from rawisp.io.write import write_image
from rawisp.stages.dng_frame import BayerFrame, DngNoise, bayer_frame, camera_frame, engine_noise, thumbnail, wants_bayer
from rawisp.stages.normalise import normalise
from rawisp.stages.reconstruct import Engine, reconstruct
from rawisp.stages.render import render
from rawisp.stages.resize import downscale

BITS = {"jpeg": 8, "png": 8, "png16": 16, "tiff16": 16, **dict.fromkeys(DNG_FORMATS, 16)}


@dataclass
class RenderOptions:
    """Look and output format of developed pictures (``fmt`` "dng": a Bayer DNG of a Bayer source, else a
    linear DNG; "linear-dng": a linear DNG; no look applied to either)."""

    fmt: str = "jpeg"
    quality: int = 92
    exposure: float = 0.0
    tone: str = "default"
    overwrite: bool = False
    threads: int = 0  # rendering threads (0: all CPUs); the CLI gives each of -j workers its share
    wb: WhiteBalanceChoice = "camera"  # "camera", "auto", "daylight" or (R, G, B) gains: rawisp.io.whitebalance
    long_edge: int | None = None  # scale down to this long edge in pixels (see rawisp.stages.resize); None: full size


class Stopwatch:
    """Wall-clock seconds per stage, accumulated; ``hook(stage, seconds)`` hears of every lap."""

    def __init__(self, hook: Callable[[str, float], None] | None = None) -> None:
        self.seconds: dict[str, float] = {}
        self.hook = hook
        self._t = time.perf_counter()

    def lap(self, stage: str) -> float:
        """Charge the time since the last lap (or the start) to ``stage``; returns those seconds."""
        now = time.perf_counter()
        spent, self._t = now - self._t, now
        self.seconds[stage] = self.seconds.get(stage, 0.0) + spent
        if self.hook is not None:
            self.hook(stage, spent)
        return spent


@dataclass
class Picture:
    """One engine's development of a frame: upright pixels per requested look, and the seconds its
    reconstruction took (0 when it streamed into rendering)."""

    engine: Engine
    pixels: list[np.ndarray] = field(default_factory=list)
    seconds: float = 0.0


def render_picture(raw: RawImage, rgb: np.ndarray, options: RenderOptions,
                   noise: DngNoise | None = None) -> np.ndarray | BayerFrame:
    """Camera RGB (an array, or rows on demand: see :func:`rawisp.stages.render.render`) -> upright sRGB
    pixels in the output format's bit depth (uint8 or uint16), scaled down to ``options.long_edge``
    when longer (:mod:`rawisp.stages.resize`). For the DNG formats no look is rendered: the frame
    the DNG stores, not turned: a Bayer DNG's mosaic (:func:`rawisp.stages.dng_frame.bayer_frame`,
    with ``noise``: the frame's and what the engine was told) or a linear DNG's camera RGB
    (:func:`rawisp.stages.dng_frame.camera_frame`)."""
    if wants_bayer(raw, options.fmt):
        return bayer_frame(raw, rgb, noise or DngNoise())
    if options.fmt in DNG_FORMATS:
        return camera_frame(rgb, raw.wb)
    bits = BITS[options.fmt]
    smaller = options.long_edge is not None and max(rgb.shape[:2]) > options.long_edge
    # a picture to be scaled is rendered at 16 bits: quantising twice to 8 would add error
    pixels = render(rgb, raw.srgb_from_cam, exposure=options.exposure, tone=options.tone, bits=16 if smaller else bits,
                    threads=options.threads)
    if smaller:
        pixels = downscale(pixels, options.long_edge, bits)
    return apply_orientation(pixels, raw.orientation)


def save_picture(raw: RawImage, pixels: np.ndarray | BayerFrame, output: Path, options: RenderOptions) -> Path:
    """Write upright pixels with the source's EXIF and XMP (Orientation 1, Software rawisp), or a
    DNG frame as a Bayer or linear DNG (:func:`rawisp.io.dng.write_dng`)."""
    if isinstance(pixels, BayerFrame):
        return write_dng(output, raw, pixels.mosaic, thumbnail(raw, pixels), noise_profile=pixels.noise_profile,
                         overwrite=options.overwrite, threads=options.threads)
    if options.fmt in DNG_FORMATS:
        return write_dng(output, raw, pixels, thumbnail(raw, pixels), overwrite=options.overwrite)
    return write_image(output, pixels, options.fmt, quality=options.quality, metadata=raw.metadata,
                       overwrite=options.overwrite)


def raw_to_rgb(raw: RawImage, engine: Engine, threads: int = 0) -> np.ndarray:
    """raw -> packed -> linear white-balanced camera RGB ``(H, W, 3)`` float32 as stored (not turned
    upright), 1.0 = white level, by ``engine``; non-Bayer frames give LibRaw's demosaic."""
    if raw.mosaic is None:
        return raw.rgb
    return reconstruct(normalise(raw, threads), engine)


def raw_to_pixels(raw: RawImage, engines: Sequence[Engine], looks: Sequence[RenderOptions], *,
                  watch: Stopwatch | None = None, stream: bool = False) -> Iterator[Picture]:
    """raw -> packed -> camera RGB -> upright pixels: one :class:`Picture` per engine, in order,
    rendered once per look, from one normalise.

    Yields each engine's picture as soon as it is made, so the caller can write it before the next
    engine runs (one camera RGB frame in memory at a time). Non-Bayer frames (demosaicked by LibRaw
    at decode) skip the engines: each picture is LibRaw's. With ``stream``, an engine that can
    compute rows on demand (``engine.rows``: classical strips, learned rows of tiles) is read by the
    renderer, never holding the float frame; its time is then counted under render. Stages are
    timed on ``watch``: normalise, reconstruct (``reconstruct NAME`` with several engines), render.
    A Bayer DNG look is told each engine's noise (:func:`rawisp.stages.dng_frame.engine_noise`).
    """
    watch = watch or Stopwatch()
    packed = normalise(raw, looks[0].threads) if raw.mosaic is not None else None
    watch.lap("normalise")
    for engine in engines:
        seconds = 0.0
        if packed is None:
            rgb = raw.rgb
        elif stream and hasattr(engine, "rows"):
            rgb = engine.rows(packed)
        else:
            rgb = reconstruct(packed, engine)
            seconds = watch.lap("reconstruct" if len(engines) == 1 else f"reconstruct {engine.name}")
        bayer = packed is not None and any(look.fmt == BAYER for look in looks)
        noise = engine_noise(engine, packed) if bayer else None
        picture = Picture(engine, [render_picture(raw, rgb, look, noise) for look in looks], seconds)
        del rgb
        watch.lap("render")
        yield picture
