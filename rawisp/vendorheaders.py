"""Shot metadata from RAW headers that neither exiv2 nor LibRaw reads: Sigma/Foveon X3F and
Kyocera Contax N Digital RAW.

These are the last resort of `rawisp.metadata.read_metadata`, used only when exiv2 and LibRaw
found no make or model. Each reader takes the file's first bytes (X3F: the whole file, whose
section directory is at its end) and returns a `HeaderFacts`, or None when the bytes are not of
its format. A header cut short gives what was read before the cut.

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

import struct
from dataclasses import dataclass
from datetime import datetime, timezone
from os import PathLike
from pathlib import Path


@dataclass
class HeaderFacts:
    """What a vendor header says about the shot; None means unknown.

    Same units as `rawisp.metadata.LibRawFacts`: exposure_time in seconds, f_number the f-stop,
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
_X3F_MAX_BYTES = 1 << 30  # X3F sections are found from the end: read whole files up to this size


def read_vendor_header(path: str | PathLike[str]) -> HeaderFacts | None:
    """The HeaderFacts of an X3F or Kyocera RAW file, None for other files or unreadable ones."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            start = fh.read(156)
            if start[:4] == b"FOVb" and path.stat().st_size <= _X3F_MAX_BYTES:
                return x3f_facts(start + fh.read())
    except OSError:
        return None
    return kyocera_facts(start)


# --- Sigma X3F -------------------------------------------------------------------------------------


def x3f_facts(data: bytes) -> HeaderFacts | None:
    """HeaderFacts from the PROP sections of an X3F file's bytes; None if not X3F."""
    if data[:4] != b"FOVb":
        return None
    props = x3f_properties(data)
    timestamp = None
    seconds = _number(props.get("TIME"))
    if seconds is not None and seconds > 0:
        timestamp = datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y:%m:%d %H:%M:%S")
    return HeaderFacts(make=props.get("CAMMANUF"), model=props.get("CAMMODEL"), serial=props.get("CAMSERIAL"),
                       timestamp=timestamp, iso=_number(props.get("ISO")),
                       exposure_time=_number(props.get("SHUTTER")), f_number=_number(props.get("APERTURE")),
                       focal_length=_number(props.get("FLENGTH")))


def x3f_properties(data: bytes) -> dict[str, str]:
    """Name -> value of every property in the PROP sections of an X3F file's bytes (blank values
    left out); {} when the directory cannot be found."""
    props: dict[str, str] = {}
    try:
        (directory,) = struct.unpack_from("<I", data, len(data) - 4)
        if data[directory:directory + 4] != b"SECd":
            return props
        (count,) = struct.unpack_from("<I", data, directory + 8)
        for index in range(count):
            offset, length, kind = struct.unpack_from("<II4s", data, directory + 12 + 12 * index)
            if kind == b"PROP":
                props.update(_x3f_property_list(data[offset:offset + length]))
    except struct.error:  # cut short: keep what was read
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
    try:
        return float(text) if text else None
    except ValueError:
        return None


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
    return HeaderFacts(make=_reversed_text(data, 25, 7), model=_reversed_text(data, 12, 12),
                       timestamp=_reversed_text(data, 33, 20),
                       iso=_KYOCERA_ISO[iso_index] if 0 <= iso_index < len(_KYOCERA_ISO) else None,
                       exposure_time=2 ** (exposure_code / 8) / 16000 if exposure_code else None,
                       f_number=2 ** (f_code / 16) if f_code else None, focal_length=focal or None,
                       lens=_text(data[124:156]))


def _reversed_text(data: bytes, start: int, length: int) -> str | None:
    return _text(data[start:start + length][::-1])


def _text(raw: bytes) -> str | None:
    return raw.decode("latin-1").strip("\0 ") or None
