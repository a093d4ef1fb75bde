"""EXIF of the source RAW -> EXIF of the developed output.

`read_metadata` pulls the photographic facts out of a TIFF-based RAW with
exifread, `exif_bytes` writes them back as an EXIF block for the output file,
and `apply_orientation` / `flip_to_orientation` turn the stored pixels upright
so that the output always carries Orientation = 1.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction
from os import PathLike
from typing import Any

import exifread
import numpy as np
from exifread.tags.exif import GPS_TAGS
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

log = logging.getLogger(__name__)

GpsValue = str | bytes | int | Fraction | tuple[int | Fraction, ...]

# EXIF tag ids written by `exif_bytes`.
_IFD0 = {"make": 0x010F, "model": 0x0110, "artist": 0x013B, "copyright": 0x8298}
_ORIENTATION, _SOFTWARE = 0x0112, 0x0131
_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825
_EXPOSURE_TIME, _F_NUMBER, _ISO = 0x829A, 0x829D, 0x8827
_SENSITIVITY_TYPE, _REI = 0x8830, 0x8832
_DATETIME_ORIGINAL, _FOCAL_LENGTH, _LENS_MODEL = 0x9003, 0x920A, 0xA434
_EXIF_VERSION, _COLOR_SPACE = 0x9000, 0xA001
_GPS_IDS = {(v[0] if isinstance(v, tuple) else v): k for k, v in GPS_TAGS.items()}

# EXIF field types as exifread reports them (`IfdTag.field_type`).
_BYTE, _ASCII, _UNDEFINED, _RATIONAL, _SRATIONAL = 1, 2, 7, 5, 10
_ISO_SATURATED = 65535  # ISOSpeedRatings is a SHORT; higher ISOs live elsewhere


@dataclass
class Metadata:
    """Photographic metadata of one source RAW; None means unknown.

    Units: exposure_time in seconds, focal_length in mm, f_number is the
    f-stop (2.8 for f/2.8), iso the ISO speed. ``datetime_original`` is the
    EXIF text "YYYY:MM:DD HH:MM:SS". ``gps`` maps exifread's GPS tag names
    ("GPSLatitudeRef", "GPSLatitude", "GPSAltitude", ...) to their values as
    stored: str for ASCII, Fraction / tuple of Fractions for rationals, int /
    tuple of ints for integers, bytes for BYTE arrays and UNDEFINED.
    ``orientation`` is the source's EXIF orientation 1..8 (1 when unknown).
    """

    make: str | None = None
    model: str | None = None
    lens_model: str | None = None
    datetime_original: str | None = None
    exposure_time: Fraction | None = None
    f_number: Fraction | None = None
    iso: int | None = None
    focal_length: Fraction | None = None
    gps: dict[str, GpsValue] | None = None
    artist: str | None = None
    copyright: str | None = None
    orientation: int = 1


def read_metadata(path: str | PathLike[str]) -> Metadata:
    """Read the EXIF of a TIFF-based RAW (DNG, CR2, NEF, ARW, PEF, ...).

    Uses exifread with details=False (no MakerNote). Files exifread cannot
    parse (CRW, CR3, RAF, X3F, ...) or with damaged EXIF give a Metadata with
    unknown fields; only an unreadable path raises (OSError). Zero and 0/0
    values, which cameras write for "unknown", are read as None.
    """
    with open(path, "rb") as fh:
        try:
            tags = exifread.process_file(fh, details=False, extract_thumbnail=False)
        except Exception as exc:  # exifread fails in many ways on damaged files
            log.warning("no EXIF read from %s: %s", path, exc)
            tags = {}
    return Metadata(
        make=_text(tags, "Make"),
        model=_text(tags, "Model"),
        lens_model=_text(tags, "LensModel"),
        datetime_original=_text(tags, "DateTimeOriginal"),
        exposure_time=_ratio(tags, "ExposureTime"),
        f_number=_ratio(tags, "FNumber"),
        iso=_iso(tags),
        focal_length=_ratio(tags, "FocalLength"),
        gps=_gps(tags),
        artist=_text(tags, "Artist"),
        copyright=_text(tags, "Copyright"),
        orientation=_orientation(tags),
    )


def _tag(tags: dict[str, Any], name: str) -> Any:
    """The exifread tag `name` from the Exif IFD or else IFD0 (some RAWs,
    e.g. Kodak KDC, put exposure tags in IFD0); None when absent."""
    tag = tags.get(f"EXIF {name}")
    return tags.get(f"Image {name}") if tag is None else tag


def _text(tags: dict[str, Any], name: str) -> str | None:
    tag = _tag(tags, name)
    if tag is None or tag.field_type != _ASCII:
        return None
    return str(tag.values).strip(" \0") or None


def _first_number(tags: dict[str, Any], name: str) -> Any:
    tag = _tag(tags, name)
    if tag is None or isinstance(tag.values, (str, bytes)) or not tag.values:
        return None
    return tag.values[0]


def _fraction(value: Any) -> Fraction | None:
    """exifread Ratio (or int) -> Fraction; None for 0/0."""
    try:
        return Fraction(value.numerator, value.denominator)
    except ZeroDivisionError:
        return None


def _ratio(tags: dict[str, Any], name: str) -> Fraction | None:
    value = _first_number(tags, name)
    frac = None if value is None else _fraction(value)
    return frac if frac else None  # 0 means unknown


def _iso(tags: dict[str, Any]) -> int | None:
    """ISOSpeedRatings, or the full value from RecommendedExposureIndex /
    ISOSpeed when the SHORT field is missing or saturated at 65535."""
    iso = _first_number(tags, "ISOSpeedRatings")
    for name in ("RecommendedExposureIndex", "ISOSpeed"):
        if iso is None or iso == _ISO_SATURATED:
            iso = _first_number(tags, name) or iso
    return int(iso) if iso else None


def _orientation(tags: dict[str, Any]) -> int:
    value = tags.get("Image Orientation")
    code = value.values[0] if value is not None and value.values else 1
    return code if code in range(1, 9) else 1


def _gps(tags: dict[str, Any]) -> dict[str, GpsValue] | None:
    """GPS IFD tags by exifread name; tags that cannot be written back
    (unknown to exifread, or rationals 0/0) are dropped."""
    gps = {}
    for key, tag in tags.items():
        name = key.removeprefix("GPS ")
        if key.startswith("GPS ") and name in _GPS_IDS:
            value = _gps_value(tag)
            if value is not None:
                gps[name] = value
    return gps or None


def _gps_value(tag: Any) -> GpsValue | None:
    values = tag.values
    if tag.field_type == _ASCII:
        return str(values).strip("\0")
    if tag.field_type in (_BYTE, _UNDEFINED):
        return bytes(values) if len(values) > 1 or tag.field_type == _UNDEFINED else values[0]
    if tag.field_type in (_RATIONAL, _SRATIONAL):
        values = [_fraction(v) for v in values]
        if None in values:
            return None
    return tuple(values) if len(values) > 1 else values[0]


def exif_bytes(meta: Metadata, software: str) -> bytes:
    """EXIF block ("Exif\\0\\0" + TIFF header and IFDs) for `meta`.

    IFD0: Make, Model, Artist, Copyright, Software = `software` and
    Orientation = 1 (outputs are written upright). Exif IFD: ExposureTime,
    FNumber, ISOSpeedRatings (plus SensitivityType/RecommendedExposureIndex
    above 65535), FocalLength, DateTimeOriginal, LensModel, plus ExifVersion
    0232 and ColorSpace sRGB. GPS IFD: `meta.gps` unchanged. Unknown (None)
    fields are left out.
    """
    exif = Image.Exif()
    for field, tag in _IFD0.items():
        _put(exif, tag, getattr(meta, field))
    exif[_SOFTWARE] = software
    exif[_ORIENTATION] = 1
    _fill_exif_ifd(exif.get_ifd(_EXIF_IFD), meta)
    if meta.gps:
        gps = exif.get_ifd(_GPS_IFD)
        for name, value in meta.gps.items():
            _put(gps, _GPS_IDS[name], value)
    return exif.tobytes()


def _put(ifd: Any, tag: int, value: Any) -> None:
    """Set `tag` unless `value` is None; Fractions become Pillow rationals
    (Pillow only knows the types of IFD0 and GPS tags, so a plain Fraction
    in the Exif IFD would be written as UNDEFINED)."""
    if value is not None:
        ifd[tag] = _pil_value(value)


def _pil_value(value: Any) -> Any:
    if isinstance(value, Fraction):
        return IFDRational(value.numerator, value.denominator)
    if isinstance(value, tuple):
        return tuple(_pil_value(v) for v in value)
    return value


def _fill_exif_ifd(ifd: dict[int, Any], meta: Metadata) -> None:
    ifd[_EXIF_VERSION] = b"0232"  # mandatory in EXIF
    ifd[_COLOR_SPACE] = 1  # sRGB: outputs are sRGB-encoded
    _put(ifd, _EXPOSURE_TIME, meta.exposure_time)
    _put(ifd, _F_NUMBER, meta.f_number)
    _put(ifd, _FOCAL_LENGTH, meta.focal_length)
    _put(ifd, _DATETIME_ORIGINAL, meta.datetime_original)
    _put(ifd, _LENS_MODEL, meta.lens_model)
    if meta.iso is not None:
        ifd[_ISO] = min(meta.iso, _ISO_SATURATED)
        if meta.iso > _ISO_SATURATED:
            ifd[_SENSITIVITY_TYPE] = 2  # "Recommended exposure index"
            ifd[_REI] = meta.iso


# EXIF orientation -> numpy ops on the stored (H, W, C) array that make it upright.
_UPRIGHT = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],  # mirror horizontal
    3: lambda a: a[::-1, ::-1],  # rotate 180
    4: lambda a: a[::-1],  # mirror vertical
    5: lambda a: a.swapaxes(0, 1),  # transpose (mirror about the main diagonal)
    6: lambda a: np.rot90(a, -1),  # rotate 90 CW to view
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),  # transverse (anti-diagonal)
    8: lambda a: np.rot90(a, 1),  # rotate 90 CCW to view
}

# LibRaw sizes.flip (dcraw bit field: 1 mirror columns, 2 mirror rows,
# 4 transpose first) -> EXIF orientation.
_FLIP_TO_ORIENTATION = {0: 1, 1: 2, 2: 4, 3: 3, 4: 5, 5: 8, 6: 6, 7: 7}


def apply_orientation(img: np.ndarray, orientation: int) -> np.ndarray:
    """Turn an (H, W, C) array as stored into the upright view described by
    EXIF `orientation` (1..8; 5-8 swap H and W). Returns a contiguous copy
    (the input itself for 1). Raises ValueError outside 1..8."""
    if orientation not in _UPRIGHT:
        raise ValueError(f"EXIF orientation must be 1..8, got {orientation!r}")
    if orientation == 1:
        return img
    return np.ascontiguousarray(_UPRIGHT[orientation](img))


def flip_to_orientation(flip: int) -> int:
    """EXIF orientation 1..8 for LibRaw's ``sizes.flip`` 0..7.

    flip is dcraw's bit field, not an EXIF code: output pixel (r, c) is read
    from the unflipped image after swapping r/c when bit 4 is set, mirroring
    rows for bit 2 and columns for bit 1 (LibRaw ``flip_index``). This is the
    inverse of LibRaw's own EXIF -> flip table ``"50132467"[exif & 7]``
    (tiff.cpp, tag 0x0112): 0->1, 1->2 (mirror horizontal), 2->4 (mirror
    vertical), 3->3 (180), 4->5 (transpose), 5->8 (90 CCW to view),
    6->6 (90 CW to view), 7->7 (transverse). LibRaw normalises its degree
    values (90/180/270) to 6/3/5 when opening, so ``sizes.flip`` is in 0..7.
    Verified against rawpy ``postprocess(user_flip=k)`` in the tests.
    """
    if flip not in _FLIP_TO_ORIENTATION:
        raise ValueError(f"LibRaw flip must be 0..7, got {flip!r}")
    return _FLIP_TO_ORIENTATION[flip]
