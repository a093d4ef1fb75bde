"""Output file names from a template such as ``{stem}_{engine}`` (``rawisp develop --name``)."""

from __future__ import annotations

import string
from pathlib import Path

FIELDS = {
    "stem": "input file name without its extension (IMG_0001)",
    "ext": "input file extension without the dot, as written (CR2)",
    "engine": "engine that developed it (learned, classical; compare for --side-by-side)",
    "format": "output format (jpeg, png, png16, tiff16)",
}
DEFAULT = "{stem}"
DEFAULT_BOTH = "{stem}.{engine}"  # --engine both: one output per engine


class TemplateError(ValueError):
    """A template that cannot name files; the message says why, for one line of output."""


def check_template(template: str, engines: int = 1) -> None:
    """Raise TemplateError unless ``template`` names files: known fields only, no folder separators,
    and with several engines a ``{engine}`` field (else their outputs would share one name)."""
    try:
        used = {field for _, field, _, _ in string.Formatter().parse(template) if field is not None}
    except ValueError as exc:  # an unmatched brace
        raise TemplateError(f"{template!r}: {exc}") from None
    unknown = sorted(used - FIELDS.keys())
    if unknown:
        raise TemplateError(f"{template!r}: unknown field {{{unknown[0]}}}; use {', '.join(f'{{{f}}}' for f in FIELDS)}")
    if any(sep in template for sep in ("/", "\\", "\0")):
        raise TemplateError(f"{template!r}: a name cannot hold a folder separator (use -o for the folder)")
    if engines > 1 and "engine" not in used:
        raise TemplateError(f"{template!r}: with --engine both the name needs {{engine}}, or both outputs get one name")
    if not template.format(stem="x", ext="x", engine="x", format="x").strip(". "):
        raise TemplateError(f"{template!r}: gives an empty name")


def output_name(template: str, source: Path, stem: str, engine: str, fmt: str, suffix: str) -> str:
    """The output file name for ``source`` (``stem``: its stem, or the name planned instead when
    another input has the same stem), extension ``suffix`` (".jpg") appended."""
    return template.format(stem=stem, ext=source.suffix.lstrip("."), engine=engine, format=fmt) + suffix
