"""The Python API: ``rawisp.develop``, ``rawisp.develop_file`` and ``rawisp.info``.

A thin layer over the composer the command line uses (:mod:`rawisp.pipeline.compose`,
:mod:`rawisp.pipeline.files`): the same options under the same names (``rawisp develop --format
png16 --exposure 0.5`` is ``develop_file(path, out, format="png16", exposure=0.5)``), the same
pixels, and errors as typed exceptions whose text is the line the command line prints after ``rawisp:``.

Unlike ``rawisp develop``, these functions run in the calling process: a file that crashes LibRaw
takes the caller down with it. Engines are built once per process and set of options, so a script
developing many files loads the model once.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from os import PathLike
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rawisp.batch.runner import write_failure
from rawisp.engines.learned import ModelError as _ModelError
from rawisp.engines.registry import ENGINES, cached_engine
from rawisp.io.decode import DecodeError as _DecodeError
from rawisp.io.decode import RawImage, decode
from rawisp.io.dng import FORMATS as DNG_FORMATS
from rawisp.io.metadata import Metadata, apply_orientation
from rawisp.io.whitebalance import WhiteBalanceChoice, parse_wb
from rawisp.io.write import FORMAT_ALIASES, FORMATS, ForeignFileError, format_name, output_bits
from rawisp.pipeline.compose import RenderOptions, raw_to_pixels, raw_to_rgb
from rawisp.pipeline.files import develop_file as _develop_file
from rawisp.stages.reconstruct import DEVELOP_GRAIN, Engine, EngineOptions, develop_grain
from rawisp.stages.render import TONES
from rawisp.threads import thread_count

StrPath = str | PathLike[str]
DNG = DNG_FORMATS  # written by rawisp.io.dng rather than rawisp.io.write: "dng", "linear-dng"
DEFAULT_TILE = EngineOptions.tile  # as rawisp develop --tile
_DEVICES = ("auto", "cpu", "cuda")


class RawispError(Exception):
    """Base of the API's errors; ``str(error)`` is the line ``rawisp`` prints after ``rawisp: ``."""


class OptionError(RawispError, ValueError):
    """A keyword option has a value the command line would refuse too."""


class ModelError(RawispError):
    """The model file or its card is missing, corrupt or does not match (learned engine)."""


class DecodeError(RawispError):
    """The RAW file cannot be developed. ``path`` is the file, ``reason`` the one-line why."""

    def __init__(self, path: StrPath, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class OutputError(RawispError):
    """The output file cannot be written (no permission, disk full, a parent that is a file...)."""


class OutputExistsError(OutputError, FileExistsError):
    """The output exists and ``overwrite`` was not given (``rawisp develop`` skips such files), or
    its name is taken by a file rawisp did not write (a camera's JPEG, an edit), which ``overwrite``
    never replaces, or by one whose name differs from it only by case (the same file on FAT/exFAT
    cards, macOS and Windows)."""


def develop(path: StrPath, engine: str = "learned", *, linear: bool = False, bits: Literal[8, 16] = 8,
            exposure: float = 0.0, tone: str = "default", wb: WhiteBalanceChoice = "camera",
            long_edge: int | None = None, model: StrPath | None = None, denoise: str = "auto",
            grain: float = DEVELOP_GRAIN, noise_profiles: StrPath | None = None, device: str = "auto", tile: int = DEFAULT_TILE,
            threads: int = 0) -> np.ndarray:
    """Develop the RAW file ``path`` into an upright ``(H, W, 3)`` array.

    Default: sRGB-encoded pixels, ``uint8`` (0..255, ``bits=8``) or ``uint16`` (0..65535,
    ``bits=16``), the very pixels ``rawisp develop --format png`` (or ``png16``) writes, dither
    included. ``linear=True``: linear white-balanced camera RGB, ``float32``, 0 = black, 1.0 = the
    sensor's white level, before the colour matrix, exposure and tone; ``bits``, ``exposure`` and
    ``tone`` do not apply. Scene-referred and not clipped: values go a little below 0 (noise around
    black; the learned engine's overshoot at hard edges, down to -0.44 on the bundled chart, 1.3%
    of its values below 0) and above 1 (highlights the learned engine reconstructs, up to 1.56 on
    the Canon D30's lamps; overshoot): clip to [0, 1] (``np.clip``) for display-referred use.

    engine: "learned" (the network) or "classical" (bilinear). exposure: EV added before the tone
    curve. tone: "default" (gentle S-curve with a highlight shoulder) or "linear" (plain sRGB).
    wb: white balance, "camera" (as shot), "auto" (LibRaw's), "daylight", or (R, G, B) gains (or
    "R,G,B"), applied before the engine, so it changes the linear result too. long_edge: scale the
    sRGB result down to this many pixels on its long edge (area average in linear light; None: full
    size; not for ``linear``). model: an ONNX model with its card beside it (default: the bundled one). denoise: "auto"
    (noise from the file), "off" or a strength multiplier such as "0.5" of the noise the learned engine
    is told. grain: the share (0 to 1) of the noise it removes that it puts back as neutral fine
    grain, fine texture with it (0: its strongest noise reduction, as ``rawisp eval`` scores it; the
    default is ``rawisp develop``'s). noise_profiles: darktable's
    noiseprofiles.json for cameras whose files carry no noise profile (as ``--noise-profiles``;
    default: $RAWISP_NOISE_PROFILES, else darktable's installed file). device: "auto", "cpu" or
    "cuda". tile: learned engine tile side in packed (half-resolution) pixels, 64..4096. threads:
    CPU threads, 0 = all. Raises DecodeError, ModelError or OptionError.
    """
    if bits not in (8, 16):
        raise OptionError(f"--bits {bits!r}: expected 8 or 16")
    options = _render_options("png" if bits == 8 else "png16", 92, exposure, tone, wb, long_edge, False, threads)
    built = _engine(engine, model, denoise, grain, noise_profiles, device, tile, options.threads, 16 if linear else bits)
    with _decode_errors(path):
        raw = decode(path, options.wb)
        if linear:
            return apply_orientation(raw_to_rgb(raw, built, options.threads), raw.orientation)
        [picture] = raw_to_pixels(raw, [built], [options], stream=True)
        return picture.pixels[0]


def develop_file(path: StrPath, output: StrPath, engine: str = "learned", *, format: str | None = None,
                 quality: int = 92, exposure: float = 0.0, tone: str = "default", wb: WhiteBalanceChoice = "camera",
                 long_edge: int | None = None, model: StrPath | None = None, denoise: str = "auto",
                 grain: float | None = None, noise_profiles: StrPath | None = None, device: str = "auto", tile: int = DEFAULT_TILE,
                 overwrite: bool = False, threads: int = 0) -> Path:
    """Develop ``path`` into the picture file ``output``, as ``rawisp develop`` does; returns its path.

    format: "jpeg", "png" (8-bit), "png16" or "tiff16" (16-bit), or an alias ("jpg", "tif",
    "tiff"), or "dng" (for a RAW editor: a Bayer DNG of the denoised mosaic for a Bayer source, with
    engine="classical" the source's mosaic unchanged; else a linear DNG) or "linear-dng" (a linear
    DNG); no exposure, tone or long_edge for them; default: from the suffix of ``output``
    (.jpg/.jpeg, .png, .tif/.tiff, .dng: "dng"). quality: JPEG quality 1..100. The file carries
    the sRGB ICC profile and the source's EXIF, upright (Orientation 1), and is written atomically
    (a hidden ``.NAME.*.part`` file renamed into place). Raises OutputExistsError when ``output``
    exists unless ``overwrite``, and always when a file rawisp did not write (no EXIF Software
    "rawisp": a camera's JPEG, an edit) has its name or one that differs only by case (``IMG.JPG``
    for ``IMG.jpg``: one file on FAT/exFAT cards, macOS and Windows); a file of rawisp's whose name
    differs only by case is the output (returned, replaced with ``overwrite``). OutputError when it
    cannot be written; DecodeError, ModelError or OptionError as :func:`develop`. The other options
    are those of :func:`develop`, but ``grain`` defaults to 0 for a DNG (raw material for an editor).
    """
    output = Path(output)
    fmt = format
    if fmt is None:
        try:
            fmt = _format(output.suffix[1:])  # .jpg, .png, .tif, .dng... as the format's aliases
        except ValueError:
            raise OptionError(f"{output}: cannot tell the format from the suffix; give format= "
                              f"({', '.join([*FORMATS, *DNG])})") from None
    if not 1 <= quality <= 100:
        raise OptionError(f"--quality {quality!r}: expected 1..100")
    options = _render_options(fmt, quality, exposure, tone, wb, long_edge, overwrite, threads)
    bits = 16 if options.fmt in DNG else output_bits(options.fmt)
    built = _engine(engine, model, denoise, develop_grain(grain, options.fmt), noise_profiles, device, tile,
                    options.threads, bits)
    try:
        with _decode_errors(path):
            return _develop_file(Path(path), output, built, options).output
    except ForeignFileError as exc:
        raise OutputExistsError(f"{path}: {exc.strerror}; rawisp never replaces such a file, not even with "
                                "overwrite=True: choose another output name") from None
    except FileExistsError:
        raise OutputExistsError(f"{path}: output exists ({output}); give overwrite=True") from None
    except OSError as exc:
        raise OutputError(f"{path}: {write_failure(exc, output)}") from None


def info(path: StrPath, denoise: str = "auto", noise_profiles: StrPath | None = None) -> dict[str, Any]:
    """What the decoder sees in ``path``: the record ``rawisp info --json`` prints for it.

    Keys: file, size ("WxH", stored orientation), sensor, black (DN per 2x2 site), white (DN),
    wb_gains (R, G, B, G = 1), wb_source, srgb_from_cam (3x3: white-balanced camera RGB -> linear
    sRGB), orientation (EXIF 1..8), noise_profile ((shot, read std) in normalised units, or None),
    make, model, lens, date, exposure_s, f_number, iso, focal_mm, serial, gps (bool), rating,
    label, title, keywords, warnings; and the noise the learned engine would use with ``denoise``
    and darktable's ``noise_profiles``, and what it would run on (see :func:`describe_noise`).
    Raises DecodeError.
    """
    from rawisp.engines.camera_noise import profiles_path
    from rawisp.engines.learned import denoise_strength
    from rawisp.engines.noise_net import NoiseNet

    strength = denoise_strength(denoise)
    profiles = profiles_path(str(noise_profiles) if noise_profiles is not None else None)
    with _decode_errors(path):
        raw = decode(path)
    return {**describe(raw), **describe_noise(raw, NoiseNet(threads=thread_count(0)), profiles, strength)}


def describe(raw: RawImage) -> dict[str, Any]:
    """A JSON-friendly summary of a decoded RawImage (the record of ``rawisp info --json``)."""
    h, w = raw.shape
    return {
        "file": raw.path,
        "size": f"{w}x{h}",
        "sensor": f"Bayer {raw.cfa}" if raw.mosaic is not None else "non-Bayer (LibRaw demosaic)",
        "black": [float(v) for v in raw.black.ravel()],
        "white": raw.white,
        "wb_gains": [round(float(v), 4) for v in raw.wb],
        "wb_source": raw.wb_source,
        "srgb_from_cam": [[round(float(v), 4) for v in row] for row in raw.srgb_from_cam],
        "orientation": raw.orientation,
        "noise_profile": list(raw.noise) if raw.noise else None,
        **describe_shot(raw.metadata),
        "warnings": raw.warnings,
    }


def describe_noise(raw: RawImage, estimator, profiles: Path | None, strength: float = 1.0) -> dict[str, Any]:
    """The noise the learned engine would use for ``raw`` and where it comes from: noise_source
    ("file", "camera profile", "EXIF prior" or "estimate", with details), noise (after the
    --denoise ``strength``), noise_reference (the camera profile or EXIF prior), noise_estimate
    (the blind estimate); each {shot, read std, sigma_mid_grey} in normalised raw units before
    white balance (mid-grey = 0.18 of white), or None; and learned_runtime, the runtime and
    precision it would run in here (``OpenVINO 2026.4.1 CPU, f32 (bf16 units: yes)``, see
    :mod:`rawisp.engines.runtime`)."""
    from rawisp.engines.noise_choice import MID_GREY, choose_noise, variance
    from rawisp.engines.runtime import runtime_summary
    from rawisp.stages.normalise import normalise

    if raw.mosaic is None:
        return {"noise_source": "none (non-Bayer: demosaicked by LibRaw, the learned engine is not used)"}
    choice = choose_noise(normalise(raw), estimator, profiles)
    noise = (choice.shot * strength**2, choice.read * strength)

    def values(n: tuple[float, float] | None) -> dict[str, float] | None:
        return None if n is None else {"shot": float(f"{n[0]:.3g}"), "read": float(f"{n[1]:.3g}"),
                                       "sigma_mid_grey": float(f"{math.sqrt(variance(n, MID_GREY)):.3g}")}

    scaled = "" if strength == 1 else f"; --denoise x{strength:g}"
    return {"noise_source": f"{choice.source}: {choice.detail}{scaled}", "noise": values(noise),
            "noise_reference": values(choice.reference), "noise_estimate": values(choice.estimate),
            "learned_runtime": runtime_summary()}


def describe_shot(meta: Metadata) -> dict[str, Any]:
    """A JSON-friendly summary of a Metadata record ("date": DateTimeOriginal, else CreateDate, else
    ModifyDate)."""
    xmp = meta.xmp_values
    return {
        "make": meta.make,
        "model": meta.model,
        "lens": meta.lens_model,
        "date": meta.date,
        "exposure_s": str(meta.exposure_time) if meta.exposure_time else None,
        "f_number": float(meta.f_number) if meta.f_number else None,
        "iso": meta.iso,
        "focal_mm": float(meta.focal_length) if meta.focal_length else None,
        "serial": meta.serial_number,
        "gps": bool(meta.gps),
        "rating": xmp.get("Xmp.xmp.Rating"),
        "label": xmp.get("Xmp.xmp.Label"),
        "title": xmp.get("Xmp.dc.title"),
        "keywords": xmp.get("Xmp.dc.subject"),
    }


def _render_options(fmt: str, quality: int, exposure: float, tone: str, wb: WhiteBalanceChoice,
                    long_edge: int | None, overwrite: bool, threads: int) -> RenderOptions:
    try:
        fmt = _format(fmt)
    except ValueError:
        raise OptionError(f"--format {fmt!r}: expected one of {', '.join([*FORMATS, *FORMAT_ALIASES, *DNG])}") from None
    _choose("tone", tone, TONES)
    if long_edge is not None and not 16 <= long_edge <= 65535:
        raise OptionError(f"--long-edge {long_edge!r}: expected 16..65535")
    try:  # the command line's parser, also for gains given as numbers
        wb = parse_wb(wb if isinstance(wb, str) else ",".join(str(g) for g in wb))
    except (TypeError, ValueError) as exc:
        raise OptionError(f"--wb {wb!r}: {exc}") from None
    if threads < 0:
        raise OptionError(f"--threads {threads!r}: expected 0 (all CPUs) or more")
    # 0 means all CPUs, given explicitly as rawisp develop -j 1 does (onnxruntime's own default differs)
    return RenderOptions(fmt=fmt, quality=quality, exposure=float(exposure), tone=tone, overwrite=overwrite,
                         threads=thread_count(threads), long_edge=long_edge, wb=wb)


def _engine(name: str, model: StrPath | None, denoise: str, grain: float, noise_profiles: StrPath | None,
            device: str, tile: int, threads: int, bits: int) -> Engine:
    """The engine, cached; ``bits``: of the output it feeds (linear float results count as 16)."""
    _choose("engine", name, ENGINES)
    _choose("device", device, _DEVICES)
    if not 64 <= tile <= 4096:
        raise OptionError(f"--tile {tile!r}: expected 64..4096")
    if not 0 <= grain <= 1:
        raise OptionError(f"--grain {grain!r}: expected a number from 0 to 1")
    options = EngineOptions(model=str(model) if model is not None else None, device=device, threads=threads,
                            tile=tile, denoise=str(denoise), grain=float(grain), output_bits=bits,
                            noise_profiles=str(noise_profiles) if noise_profiles is not None else None)
    try:
        return cached_engine(name, options)
    except _ModelError as exc:
        raise ModelError(str(exc)) from None
    except ValueError as exc:  # --denoise, --grain, a missing or malformed noise-profile file (camera_noise.ProfileError)
        raise OptionError(str(exc)) from None


def _format(name: str) -> str:
    """The output format called ``name``: one of rawisp.io.write's (or an alias), "dng" or "linear-dng"."""
    return name.lower() if name.lower() in DNG else format_name(name)


def _choose(option: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise OptionError(f"--{option} {value!r}: expected one of {', '.join(choices)}")


@contextmanager
def _decode_errors(path: StrPath) -> Iterator[None]:
    """Raise the decoder's DecodeError as the API's, naming ``path``."""
    try:
        yield
    except _DecodeError as exc:
        raise DecodeError(path, str(exc)) from None
