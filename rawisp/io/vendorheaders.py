"""Shot metadata from RAW headers that neither exiv2 nor LibRaw reads: Sigma/Foveon X3F and
Kyocera Contax N Digital RAW.

These are the last resort of `rawisp.io.metadata.read_metadata`, used only when exiv2 and LibRaw
found no make or model. Each reader returns a `HeaderFacts`, or None when the file is not of its
format; the Kyocera reader takes the file's first 156 bytes, the X3F reader the open file (it reads
the section directory at the end and the property sections only). A header cut short gives what
was read before the cut.

X3F (little-endian; layout as in Sigma's X3F format notes and exiftool's SigmaRaw module): the file
starts with "FOVb"; its last 4 bytes give the offset of the section directory "SECd" (version,
entry count, then per entry: offset, length, 4-character type). A "PROP" section is a property
list: "SECp", version, entry count, character format (0: UTF-16LE), reserved, length in
characters, then per entry the character offsets of its name and its value, then the
NUL-terminated UTF-16 strings. Names used: CAMMANUF, CAMMODEL, CAMSERIAL, TIME (Unix seconds,
UTC), ISO, SHUTTER (seconds), APERTURE (f-number), FLENGTH (mm).

Kyocera RAW (big-endian, text stored byte-reversed; offsets as in exiftool's KyoceraRaw module):
"ARECOYK" ("KYOCERA" reversed) at byte 25 identifies it; Model at 12 (12 bytes), Make at 25
(7), DateTimeOriginal at 33 (20), ISO code at 52 (7..19 -> ISO 25..400 in third stops),
exposure code at 56 (2^(code/8)/16000 s), f-number code at 88 (2^(code/16)), focal length at 112
(mm), lens name at 124 (32 bytes, not reversed).
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass
from datetime import datetime, timezone
from os import PathLike
from typing import BinaryIO


@dataclass
class HeaderFacts:
    """What a vendor header says about the shot; None means unknown.

    Same units as `rawisp.io.metadata.LibRawFacts`: exposure_time in seconds, f_number the f-stop,
    focal_length in mm, iso the ISO speed, timestamp EXIF text "YYYY:MM:DD HH:MM:SS".
    """

    make: str | None = None
    model: str | None = None
    serial: str | None = None
    timestamp: str | None = None
    iso: float | None = None
    exposure_time: float | None = None
    f_number: float | None = None
    focal_length: float | None = None
    lens: str | None = None


_KYOCERA_SIGNATURE = (25, b"ARECOYK")
_KYOCERA_ISO = (25, 32, 40, 50, 64, 80, 100, 125, 160, 200, 250, 320, 400)  # codes 7..19
_KYOCERA_ISO_FIRST_CODE = 7
_YEAR_10000 = 253402300800  # Unix seconds; later TIME values are damage
_KYOCERA_MAX_CODE = 255  # exposure and f-number codes are one byte's worth; larger ones are damage
_X3F_MAX_PROPERTY_BYTES = 1 << 20  # a property list is a few kB; a damaged length must not read the file


def read_vendor_header(path: str | PathLike[str]) -> HeaderFacts | None:
    """The HeaderFacts of an X3F or Kyocera RAW file, None for other files or unreadable ones."""
    try:
        with open(path, "rb") as fh:
            start = fh.read(156)
            if start[:4] == b"FOVb":
                return x3f_facts(fh)
    except OSError:
        return None
    return kyocera_facts(start)


# --- Sigma X3F -------------------------------------------------------------------------------------


def x3f_facts(fh: BinaryIO) -> HeaderFacts | None:
    """HeaderFacts from the PROP sections of an open X3F file; None if not X3F."""
    fh.seek(0)
    if fh.read(4) != b"FOVb":
        return None
    props = x3f_properties(fh)
    timestamp = None
    seconds = _number(props.get("TIME"))
    if seconds is not None and seconds < _YEAR_10000:
        timestamp = datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y:%m:%d %H:%M:%S")
    return HeaderFacts(make=props.get("CAMMANUF"), model=props.get("CAMMODEL"), serial=props.get("CAMSERIAL"),
                       timestamp=timestamp, iso=_number(props.get("ISO")),
                       exposure_time=_number(props.get("SHUTTER")), f_number=_number(props.get("APERTURE")),
                       focal_length=_number(props.get("FLENGTH")))


def x3f_properties(fh: BinaryIO) -> dict[str, str]:
    """Name -> value of every property in the PROP sections of an open X3F file (blank values
    left out); {} when the directory cannot be found."""
    props: dict[str, str] = {}
    try:
        fh.seek(-4, os.SEEK_END)
        (directory,) = struct.unpack("<I", fh.read(4))
        fh.seek(directory)
        head = fh.read(12)
        if head[:4] != b"SECd":
            return props
        (count,) = struct.unpack_from("<I", head, 8)
        entries = fh.read(12 * count)
        for index in range(count):
            offset, length, kind = struct.unpack_from("<II4s", entries, 12 * index)
            if kind == b"PROP":
                fh.seek(offset)
                props.update(_x3f_property_list(fh.read(min(length, _X3F_MAX_PROPERTY_BYTES))))
    except (struct.error, OSError):  # cut short (or a seek before the start): keep what was read
        pass
    return props


def _x3f_property_list(section: bytes) -> dict[str, str]:
    if section[:4] != b"SECp":
        return {}
    count, char_format = struct.unpack_from("<II", section, 8)
    if char_format != 0:  # only UTF-16 is defined
        return {}
    chars_at = 24 + 8 * count
    text = section[chars_at:].decode("utf-16-le", errors="replace")
    props = {}
    for index in range(count):
        name_at, value_at = struct.unpack_from("<II", section, 24 + 8 * index)
        name, value = _c_string(text, name_at), _c_string(text, value_at).strip()
        if name and value:
            props[name] = value
    return props


def _c_string(text: str, start: int) -> str:
    end = text.find("\0", start)
    return text[start:end if end >= 0 else len(text)]


def _number(text: str | None) -> float | None:
    """A positive, finite number, else None (damaged text, or 0 for "unknown")."""
    try:
        value = float(text) if text else 0.0
    except ValueError:
        return None
    return value if math.isfinite(value) and value > 0 else None


# --- Kyocera RAW -----------------------------------------------------------------------------------


def kyocera_facts(data: bytes) -> HeaderFacts | None:
    """HeaderFacts from the first 156 bytes of a Kyocera Contax N Digital RAW; None if not one."""
    at, signature = _KYOCERA_SIGNATURE
    if len(data) < 156 or data[at:at + len(signature)] != signature:
        return None
    iso_code, exposure_code = struct.unpack_from(">II", data, 52)
    (f_code,) = struct.unpack_from(">I", data, 88)
    (focal,) = struct.unpack_from(">I", data, 112)
    iso_index = iso_code - _KYOCERA_ISO_FIRST_CODE
    plausible = range(1, _KYOCERA_MAX_CODE + 1)
    return HeaderFacts(make=_reversed_text(data, 25, 7), model=_reversed_text(data, 12, 12),
                       timestamp=_reversed_text(data, 33, 20),
                       iso=_KYOCERA_ISO[iso_index] if 0 <= iso_index < len(_KYOCERA_ISO) else None,
                       exposure_time=2 ** (exposure_code / 8) / 16000 if exposure_code in plausible else None,
                       f_number=2 ** (f_code / 16) if f_code in plausible else None, focal_length=focal or None,
                       lens=_text(data[124:156]))


def _reversed_text(data: bytes, start: int, length: int) -> str | None:
    return _text(data[start:start + length][::-1])


def _text(raw: bytes) -> str | None:
    return raw.decode("latin-1").strip("\0 ") or None
