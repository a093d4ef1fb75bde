"""EXIF tags derived from vendor maker-note values, for sources whose Exif IFD lacks them.

A Canon CRW (CIFF container) has no Exif IFD at all: its metering mode, white balance mode,
exposure compensation and body serial number exist only in Canon's own records, which exiv2
decodes as Exif.CanonCs.*, Exif.CanonSi.* and Exif.Canon.* in Canon's codes. `maker_note_exif`
turns them into the standard Exif-IFD tags (exiv2 key -> (TypeId, text)), following the value
tables of exiftool's Canon and CanonRaw modules:

- MeteringMode: Canon 1 Spot, 2 Average, 3 Evaluative, 4 Partial, 5 Center-weighted average ->
  EXIF 3, 1, 5 (multi-segment/pattern), 6, 2; Canon 0 ("default") stays unknown.
- WhiteBalance: Canon's mode 0 (Auto) -> EXIF 0 (auto); any other mode (a preset, custom or
  Kelvin setting) -> EXIF 1 (manual).
- ExposureBiasValue: Canon's signed 16-bit "EV code" in 1/32 EV, with the thirds coded as 12/32
  and 20/32 (-20 is -2/3 EV) -> a signed rational in EV.
- BodySerialNumber: the body number as Canon prints it: for the EOS D30 (CRW only) the high 16
  bits in hex and the low 16 bits as 5 decimals ("1235-02474"), for the EOS-1D family 6 digits,
  for other EOS bodies 10 digits. PowerShot CRW files hold another number in that record and
  give none.
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction

import exiv2

_USHORT = int(exiv2.TypeId.unsignedShort)
_SRATIONAL = int(exiv2.TypeId.signedRational)
_ASCII = int(exiv2.TypeId.asciiString)

_CANON_METERING_TO_EXIF = {1: 3, 2: 1, 3: 5, 4: 6, 5: 2}
_CANON_WB_AUTO = 0
_CANON_EV_THIRDS = {0x0C: Fraction(0x20, 3), 0x14: Fraction(0x40, 3)}  # 1/3 and 2/3 EV, in 1/32 EV


def maker_note_exif(stored: Mapping[str, str]) -> dict[str, tuple[int, str]]:
    """Exif-IFD tags (MeteringMode, WhiteBalance, ExposureBiasValue, BodySerialNumber) derived
    from the maker notes of a source, given as exiv2 key -> stored value as text ("65516",
    "305465770 4269800191"); only those the maker notes give."""
    out: dict[str, tuple[int, str]] = {}
    metering = _CANON_METERING_TO_EXIF.get(_first_int(stored, "Exif.CanonCs.MeteringMode"))
    if metering is not None:
        out["Exif.Photo.MeteringMode"] = (_USHORT, str(metering))
    wb = _first_int(stored, "Exif.CanonSi.WhiteBalance")
    if wb is not None:
        out["Exif.Photo.WhiteBalance"] = (_USHORT, "0" if wb == _CANON_WB_AUTO else "1")
    ev = _first_int(stored, "Exif.CanonSi.ExposureCompensation")
    if ev is not None:
        bias = canon_ev(ev - 0x10000 if ev >= 0x8000 else ev)  # stored unsigned, meant signed
        out["Exif.Photo.ExposureBiasValue"] = (_SRATIONAL, f"{bias.numerator}/{bias.denominator}")
    serial = canon_serial(_first_int(stored, "Exif.Canon.SerialNumber"), stored.get("Exif.Image.Model"))
    if serial is not None:
        out["Exif.Photo.BodySerialNumber"] = (_ASCII, serial)
    return out


def canon_ev(code: int) -> Fraction:
    """Canon's signed EV code (1/32 EV; fractional parts 12 and 20 mean 1/3 and 2/3) -> EV."""
    sign, code = (-1, -code) if code < 0 else (1, code)
    fraction = code & 0x1F
    return sign * ((code - fraction) + _CANON_EV_THIRDS.get(fraction, Fraction(fraction))) / 0x20


def canon_serial(number: int | None, model: str | None) -> str | None:
    """A Canon body serial number as Canon prints it for `model` (see the module notes)."""
    if number is None or not model or "EOS" not in model:
        return None
    if "EOS D30" in model:
        return f"{number >> 16:x}-{number & 0xFFFF:05d}"
    if "EOS-1D" in model:
        return f"{number:06d}"
    return f"{number:010d}"


def _first_int(stored: Mapping[str, str], key: str) -> int | None:
    """The first number stored under `key`, None when absent or not a number."""
    try:
        return int(stored[key].split()[0])
    except (KeyError, IndexError, ValueError):
        return None
