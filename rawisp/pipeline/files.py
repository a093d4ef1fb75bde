"""Develop whole RAW files: decode -> (pipeline: normalise -> reconstruct -> render) -> write.

:func:`develop_file` develops one file with one engine; :func:`develop_engines` one file with
several engines from one decode (``rawisp develop --engine both``), optionally with the
side-by-side picture of :mod:`rawisp.compare.picture`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from rawisp.compare.picture import CompareOptions, Side, build_picture
from rawisp.io.decode import decode
from rawisp.io.dng import BAYER
from rawisp.io.write import taken_name
from rawisp.pipeline.compose import BITS, RenderOptions, Stopwatch, raw_to_pixels, save_picture
from rawisp.stages.reconstruct import Engine

NOT_BAYER = "not a Bayer sensor: LibRaw's demosaic used instead of the {}"
NOT_BAYER_DNG = "not a Bayer sensor: a linear DNG of LibRaw's demosaic written instead of a Bayer DNG"


def not_bayer(engines: str, fmt: str) -> str:
    """The one line said of a non-Bayer source (developed by LibRaw's demosaic, not the engines)."""
    return NOT_BAYER_DNG if fmt == BAYER else NOT_BAYER.format(engines)


@dataclass
class Developed:
    """What one development produced: the first output path, per-stage seconds and warnings."""

    output: Path
    seconds: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def develop_file(source: Path, output: Path, engine: Engine, options: RenderOptions,
                 watch: Stopwatch | None = None) -> Developed:
    """Develop ``source`` into ``output`` with ``engine``; raises DecodeError / OSError on failure.

    Stages are timed on ``watch`` (decode, normalise, reconstruct, render, write); an engine that
    streams (classical: strips; learned: rows of tiles) is computed inside render, so it has no
    reconstruct figure.
    """
    watch = watch or Stopwatch()
    raw = decode(source, options.wb)
    watch.lap("decode")
    # running the generator to its end frees the packed planes before the write
    [picture] = raw_to_pixels(raw, [engine], [options], watch=watch, stream=True)
    path = save_picture(raw, picture.pixels[0], output, options)
    watch.lap("write")
    warnings = list(raw.warnings)
    if raw.rgb is not None:
        warnings.append(not_bayer(f"{engine.name} engine", options.fmt))
    return Developed(output=path, seconds=watch.seconds, warnings=warnings)


def develop_engines(source: Path, outputs: dict[str, Path], engines: list[Engine], options: RenderOptions,
                    compare_output: Path | None = None, watch: Stopwatch | None = None) -> Developed:
    """Develop ``source`` with several engines from one decode and one normalise.

    ``outputs`` maps each engine's name to its output; ``compare_output`` (optional) gets the
    side-by-side picture of the developments (JPEG, default :class:`rawisp.compare.picture.CompareOptions`).
    Outputs that exist (by a name that differs only by case too: see
    :func:`rawisp.io.write.claim_output`) are kept unless ``options.overwrite`` (FileExistsError when
    every output exists).
    """
    def wanted(path: Path | None) -> bool:
        return path is not None and (options.overwrite or taken_name(path) is None)

    side_by_side = wanted(compare_output)
    todo = [e for e in engines if side_by_side or wanted(outputs[e.name])]
    if not todo:
        raise FileExistsError("every output exists")
    watch = watch or Stopwatch()
    raw = decode(source, options.wb)
    watch.lap("decode")
    eight_bit = replace(options, fmt="jpeg", long_edge=None)  # the side-by-side picture: full size
    own_look = BITS[options.fmt] != 8 or options.long_edge is not None
    looks = [options] + ([eight_bit] if side_by_side and own_look else [])
    sides, written = [], []
    for picture in raw_to_pixels(raw, todo, looks, watch=watch):
        engine = picture.engine
        if wanted(outputs[engine.name]):
            written.append(save_picture(raw, picture.pixels[0], outputs[engine.name], options))
            watch.lap("write")
        if side_by_side:
            sides.append(Side.of(picture, raw, picture.pixels[-1]))
    warnings = list(raw.warnings)
    if side_by_side:
        order = {"classical": 0, "learned": 1}
        sides.sort(key=lambda s: order.get(s.engine, 2))
        pixels, _, _, more = build_picture(raw, sides, CompareOptions(), options)
        written.append(save_picture(raw, pixels, compare_output, eight_bit))
        watch.lap("compare")
        warnings += more
    if raw.rgb is not None:
        warnings.append(not_bayer("engines", options.fmt))
    return Developed(output=written[0], seconds=watch.seconds, warnings=warnings)
