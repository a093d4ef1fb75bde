"""Metadata of the source RAW -> metadata of the developed output, read and written with exiv2.

`read_metadata` collects what a developed picture should say about its shot: the source's EXIF
(IFD0 descriptions, the Exif and GPS IFDs; maker notes only where they give ISO, lens, serial,
metering mode, white balance mode or exposure compensation: see rawisp.io.makernotes), its XMP and
the XMP sidecar beside it, LibRaw's own readings where exiv2 finds nothing, and as the last resort
the headers neither reads (Sigma X3F, Kyocera RAW: see rawisp.io.vendorheaders).
`embed_metadata` / `write_metadata` put such a record into a JPEG, PNG or TIFF-based file with
Orientation 1 (pixels are turned upright before writing), Software = rawisp, the picture's own
dimensions and colour space sRGB. `apply_orientation` / `flip_to_orientation` turn stored pixels
upright.

The binding is ``exiv2`` (python-exiv2, by Jim Easterbrook) rather than ``pyexiv2``: both install
as wheels carrying libexiv2 0.28 (CRW, CR3/ISO-BMFF, RAF, MRW, RW2, ORF and every TIFF-based RAW;
neither reads Sigma X3F, which libexiv2 does not know), but python-exiv2 exposes the library
itself: typed values, the "easy access" look-ups that find ISO and serial numbers in maker notes,
in-memory images (outputs are encoded in memory and written atomically), and what was read from a
truncated file before the error, where pyexiv2 hands out dictionaries of strings.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction
from os import PathLike
from pathlib import Path

import exiv2
import numpy as np

from rawisp.io.makernotes import maker_note_exif
from rawisp.io.vendorheaders import HeaderFacts, read_vendor_header

log = logging.getLogger(__name__)
exiv2.LogMsg.setLevel(exiv2.LogMsg.Level.mute)  # failures are reported by rawisp, in one line

# IFD0 tags that describe the shot (the rest of a RAW's IFD0 describes its raw data or preview).
_IFD0_KEPT = ("Make", "Model", "ImageDescription", "Artist", "Copyright", "DateTime")
# Exif-IFD tags that would be wrong in the output: maker notes hold offsets into the RAW, the
# Interoperability pointer is rebuilt by exiv2, rawisp writes the image's own tags itself, and the
# tags that describe the sensor's colour filter mosaic describe no demosaicked picture (a TIFF-EP
# RAW's IFD0 CFAPattern, moved to the Exif IFD, even lacks the size header EXIF's has there).
_EXIF_DROPPED = {"MakerNote", "InteroperabilityTag", "PixelXDimension", "PixelYDimension", "ColorSpace",
                 "ComponentsConfiguration", "CompressedBitsPerPixel", "Gamma", "CFAPattern", "CFARepeatPatternDim"}
# date-time tags and their form: "YYYY:MM:DD HH:MM:SS" (a blank or malformed one is left out)
_DATE_TAGS = {"Exif.Image.DateTime", "Exif.Photo.DateTimeOriginal", "Exif.Photo.DateTimeDigitized"}
_DATE = re.compile(r"(\d{4}):(0[1-9]|1[0-2]):(0[1-9]|[12]\d|3[01]) ([01]\d|2[0-3]):[0-5]\d:[0-5]\d")
# XMP of the RAW file itself rather than of the shot: another program's development settings,
# the RAW's document identity, its layout and format.
_XMP_DROPPED_PREFIXES = ("Xmp.crs.", "Xmp.crd.", "Xmp.darktable.", "Xmp.xmpMM.")
_XMP_DROPPED = {"Xmp.tiff.Orientation", "Xmp.tiff.ImageWidth", "Xmp.tiff.ImageLength", "Xmp.tiff.BitsPerSample",
                "Xmp.tiff.Compression", "Xmp.tiff.PhotometricInterpretation", "Xmp.tiff.SamplesPerPixel",
                "Xmp.tiff.PlanarConfiguration", "Xmp.tiff.NativeDigest", "Xmp.exif.PixelXDimension",
                "Xmp.exif.PixelYDimension", "Xmp.exif.NativeDigest", "Xmp.dc.format",
                "Xmp.photoshop.SidecarForExtension"}
# Maker-note tags of ISO, lens and serial number, tried in this order when the Exif IFD has none
# (exiv2 prints them as numbers and names). The lists follow exiv2's easyaccess.cpp: its own
# functions crash through the binding when a file has none of the tags.
_MAKER_ISO_KEYS = ("Exif.CanonSi.ISOSpeed", "Exif.CanonCs.ISOSpeed", "Exif.Nikon1.ISOSpeed", "Exif.Nikon2.ISOSpeed",
                   "Exif.Nikon3.ISOSpeed", "Exif.Nikon3.ISOSettings", "Exif.NikonIi.ISO", "Exif.MinoltaCsNew.ISOSetting",
                   "Exif.MinoltaCsOld.ISOSetting", "Exif.MinoltaCs5D.ISOSpeed", "Exif.MinoltaCs7D.ISOSpeed",
                   "Exif.Sony1Cs.ISOSetting", "Exif.Sony2Cs.ISOSetting", "Exif.Pentax.ISO", "Exif.PentaxDng.ISO",
                   "Exif.Olympus.ISOSpeed", "Exif.Samsung2.ISO", "Exif.Casio.ISO", "Exif.Casio2.ISO")
# (Canon's serial number is formatted per model by rawisp.io.makernotes)
_MAKER_SERIAL_KEYS = ("Exif.Image.CameraSerialNumber", "Exif.Nikon3.SerialNumber",
                      "Exif.Nikon3.SerialNO", "Exif.Fujifilm.SerialNumber", "Exif.Olympus.SerialNumber2",
                      "Exif.OlympusEq.SerialNumber", "Exif.Pentax.SerialNumber", "Exif.PentaxDng.SerialNumber",
                      "Exif.Sigma.SerialNumber", "Exif.Panasonic.InternalSerialNumber")
_MAKER_LENS_KEYS = ("Exif.Canon.LensModel", "Exif.CanonCs.LensType", "Exif.NikonLd3.LensIDNumber",
                    "Exif.NikonLd4.LensID", "Exif.Pentax.LensType", "Exif.PentaxDng.LensType",
                    "Exif.Sony1.LensID", "Exif.Sony2.LensID", "Exif.Minolta.LensID", "Exif.OlympusEq.LensType",
                    "Exif.Panasonic.LensType")
_ISO_SATURATED = 65535  # ISOSpeedRatings is a SHORT; higher ISOs live in RecommendedExposureIndex
_ASCII = int(exiv2.TypeId.asciiString)

ExifValue = tuple[int, str]
"""(exiv2 TypeId, value as exiv2 writes it: "1/250", "2024:05:06 07:08:09", "48 50 51 50")."""


@dataclass
class LibRawFacts:
    """What LibRaw read from the file's headers (its own vendor parsers); None means unknown.

    Units: exposure_time in seconds, f_number the f-stop, focal_length in mm, iso the ISO speed,
    timestamp as EXIF text "YYYY:MM:DD HH:MM:SS", lens the lens model.
    """

    iso: float | None = None
    exposure_time: float | None = None
    f_number: float | None = None
    focal_length: float | None = None
    timestamp: str | None = None
    lens: str | None = None


def libraw_facts(raw) -> LibRawFacts:
    """The LibRawFacts of an open rawpy.RawPy (rawpy unpacks the frame to give them)."""
    other = raw.other

    def known(value: float) -> float | None:
        return float(value) if value and math.isfinite(value) and value > 0 else None

    stamp = other.timestamp
    return LibRawFacts(iso=known(other.iso_speed), exposure_time=known(other.shutter_speed),
                       f_number=known(other.aperture), focal_length=known(other.focal_length),
                       timestamp=stamp.strftime("%Y:%m:%d %H:%M:%S") if stamp and stamp.year > 1970 else None,
                       lens=raw.lens.model.strip() or None)


@dataclass
class Metadata:
    """Metadata of one source RAW, as it is to be written into its developed pictures.

    ``exif``: exiv2 key ("Exif.Image.Make", "Exif.Photo.ExposureTime", "Exif.GPSInfo.GPSLatitude",
    ...) -> (type, text), already in the output's layout (maker-note and LibRaw readings moved to
    their standard tags; nothing that points into the RAW). ``xmp``: the XMP packet (the file's
    own XMP with its sidecar's properties on top), "" when there is none; ``xmp_values`` the same
    properties as exiv2 key -> text. ``orientation``: the source's EXIF orientation 1..8.
    ``warnings``: one line each (metadata only partly readable). The properties below read common
    fields (None when unknown).
    """

    exif: dict[str, ExifValue] = field(default_factory=dict)
    xmp: str = ""
    xmp_values: dict[str, str] = field(default_factory=dict)
    orientation: int = 1
    warnings: list[str] = field(default_factory=list)

    def text(self, key: str) -> str | None:
        """The value of an EXIF key as text, None when absent or blank."""
        value = self.exif.get(key)
        return (value[1].strip(" \0") or None) if value else None

    def _fraction(self, key: str) -> Fraction | None:
        return _parse_fraction(self.text(key))

    @property
    def make(self) -> str | None:
        return self.text("Exif.Image.Make")

    @property
    def model(self) -> str | None:
        return self.text("Exif.Image.Model")

    @property
    def lens_model(self) -> str | None:
        return self.text("Exif.Photo.LensModel")

    @property
    def artist(self) -> str | None:
        return self.text("Exif.Image.Artist")

    @property
    def copyright(self) -> str | None:
        return self.text("Exif.Image.Copyright")

    @property
    def serial_number(self) -> str | None:
        return self.text("Exif.Photo.BodySerialNumber")

    @property
    def datetime_original(self) -> str | None:
        """DateTimeOriginal, "YYYY:MM:DD HH:MM:SS"."""
        return self.text("Exif.Photo.DateTimeOriginal")

    @property
    def date(self) -> str | None:
        """When the shot was taken as best known: DateTimeOriginal, else CreateDate, else ModifyDate."""
        keys = ("Exif.Photo.DateTimeOriginal", "Exif.Photo.DateTimeDigitized", "Exif.Image.DateTime")
        return next((t for t in map(self.text, keys) if t), None)

    @property
    def exposure_time(self) -> Fraction | None:
        """Seconds."""
        return self._fraction("Exif.Photo.ExposureTime")

    @property
    def f_number(self) -> Fraction | None:
        return self._fraction("Exif.Photo.FNumber")

    @property
    def focal_length(self) -> Fraction | None:
        """Millimetres."""
        return self._fraction("Exif.Photo.FocalLength")

    @property
    def iso(self) -> int | None:
        """ISOSpeedRatings, or RecommendedExposureIndex / ISOSpeed when that is saturated at 65535."""
        iso = _parse_int(self.text("Exif.Photo.ISOSpeedRatings"))
        for key in ("Exif.Photo.RecommendedExposureIndex", "Exif.Photo.ISOSpeed"):
            if iso is None or iso == _ISO_SATURATED:
                iso = _parse_int(self.text(key)) or iso
        return iso

    @property
    def gps(self) -> dict[str, str] | None:
        """GPS tags by exiv2 key, None when there are none."""
        gps = {k: v[1] for k, v in self.exif.items() if k.startswith("Exif.GPSInfo.")}
        return gps or None


def _parse_fraction(text: str | None) -> Fraction | None:
    """First value of exiv2 rational text ("10/4", "28 10") as a Fraction; None for 0 and 0/0."""
    if not text:
        return None
    try:
        value = Fraction(text.split()[0])
    except (ValueError, ZeroDivisionError):
        return None
    return value or None  # cameras write 0 for "unknown"


def _parse_int(text: str | None) -> int | None:
    try:
        value = int(text.split()[0]) if text else 0
    except ValueError:
        return None
    return value or None


# --- reading ---------------------------------------------------------------------------------------


def read_metadata(path: str | PathLike[str], libraw: LibRawFacts | None = None) -> Metadata:
    """Read the metadata of `path` (any RAW LibRaw opens) and of its XMP sidecar.

    exiv2 reads the file's EXIF and XMP; what it read before an error in a truncated or damaged
    file is kept (a warning is logged). Missing ISO, lens and serial number are taken from the
    maker notes where exiv2 decodes them (and metering mode, white balance mode, exposure
    compensation from Canon's), then from `libraw` (LibRaw's readings: ISO, exposure time,
    f-number, focal length, date, lens), which also overrides an exposure time, f-number or
    focal length that differs from LibRaw's by more than a factor of 2 (exiv2 decodes CRW long
    exposures as 1 s). When neither gives a make or model, an X3F or Kyocera RAW header read by
    rawisp.io.vendorheaders fills in make, model, serial, date, ISO and exposure. The sidecar is
    ``NAME.xmp`` or ``NAME.EXT.xmp`` beside the file; its properties (rating, label, title,
    description, keywords, GPS, ...) win over the file's own, and its GPS position replaces the
    file's EXIF GPS. Files exiv2 cannot open give a Metadata
    with only LibRaw's (or the vendor header's) readings.
    """
    warnings: list[str] = []
    image = _read_exiv2(Path(path), warnings)
    exif, xmp = (image.exifData(), image.xmpData()) if image is not None else (None, None)
    out = _output_exif(exif) if exif is not None else {}
    if exif is not None:
        _maker_note_fallbacks(exif, out)
    if libraw is not None:
        _libraw_fallbacks(libraw, out)
    if "Exif.Image.Make" not in out and "Exif.Image.Model" not in out:
        header = read_vendor_header(path)
        if header is not None:
            _header_fallbacks(header, out)
    sidecar_image = _read_sidecar(Path(path), warnings)
    sidecar = sidecar_image.xmpData() if sidecar_image is not None else None
    if sidecar is not None:
        _sidecar_gps(sidecar, out)
    merged = _merged_xmp(xmp, sidecar)
    packet = _xmp_packet(merged) if merged is not None and merged.count() else ""
    orientation = _parse_int(_stored_text(exif, "Exif.Image.Orientation")) or 1
    return Metadata(exif=dict(sorted(out.items())), xmp=packet,
                    xmp_values={d.key(): d.toString() for d in merged} if merged is not None else {},
                    orientation=orientation if orientation in range(1, 9) else 1, warnings=warnings)


def read_software(path: str | PathLike[str]) -> str | None:
    """The EXIF Software tag of `path` (IFD0), None when it has none or exiv2 cannot read it."""
    image = _read_exiv2(Path(path), [])
    return _stored_text(image.exifData(), "Exif.Image.Software") if image is not None else None


def _read_exiv2(path: Path, warnings: list[str]) -> exiv2.Image | None:
    """The file opened by exiv2 with its metadata read, or None when exiv2 cannot open it; a
    warning is added to `warnings` when only part of the metadata could be read."""
    try:
        image = exiv2.ImageFactory.open(str(path))
    except exiv2.Exiv2Error as exc:
        log.info("exiv2 cannot open %s: %s", path, exc)
        return None
    try:
        image.readMetadata()
    except exiv2.Exiv2Error as exc:  # keep what was read before the damage
        warnings.append(f"metadata partly read ({exc.args[-1] if exc.args else exc})")
    return image


def _has(exif: exiv2.ExifData, key: str) -> bool:
    return exif.findKey(exiv2.ExifKey(key)) != exif.end()


def _output_exif(exif: exiv2.ExifData) -> dict[str, ExifValue]:
    """Source EXIF in the output's layout: the kept IFD0 tags, the Exif IFD less _EXIF_DROPPED
    and tags exiv2 does not name, the GPS IFD; exposure tags a RAW keeps in IFD0 (TIFF-EP, e.g.
    Kodak) move to the Exif IFD."""
    out: dict[str, ExifValue] = {}
    moved: dict[str, ExifValue] = {}
    for datum in exif:
        group, name = datum.groupName(), datum.tagName()
        value = (int(datum.typeId()), datum.toString())
        if name.startswith("0x") or not _writable(value) or not _valid(datum.key(), value):
            continue
        if group == "Image" and name in _IFD0_KEPT:
            out[datum.key()] = value
        elif group == "Image" and _photo_key(name):
            moved[_photo_key(name)] = value
        elif group == "Photo" and name not in _EXIF_DROPPED:
            out[datum.key()] = value
        elif group == "GPSInfo":
            out[datum.key()] = value
    return {**moved, **out}


def _valid(key: str, value: ExifValue) -> bool:
    """Whether a source tag says anything the output should repeat: not blank text (a camera's
    empty Artist, the Canon Kiss X4 DNG's empty dates), no date that is not a date."""
    if value[0] != _ASCII:
        return True
    text = value[1].strip(" \0")
    if key in _DATE_TAGS or key.replace("Exif.Image.", "Exif.Photo.", 1) in _DATE_TAGS:
        return _DATE.fullmatch(text) is not None
    return bool(text)


def _writable(value: ExifValue) -> bool:
    """Whether exiv2 can parse `value` back: text from a damaged file can hold bytes that are not
    UTF-8 (Python gives them as surrogates, which the binding refuses) or not fit its type."""
    try:
        return exiv2.Value.create(exiv2.TypeId(value[0])).read(value[1]) == 0
    except (TypeError, ValueError, exiv2.Exiv2Error):
        return False


def _photo_key(name: str) -> str | None:
    """"Exif.Photo.<name>" when the Exif IFD has a tag of that name (and it is not dropped)."""
    if name in _EXIF_DROPPED:
        return None
    try:
        return exiv2.ExifKey(f"Exif.Photo.{name}").key()
    except exiv2.Exiv2Error:
        return None


def _maker_note_fallbacks(exif: exiv2.ExifData, out: dict[str, ExifValue]) -> None:
    """ISO, lens model, serial number, metering mode, white balance mode and exposure
    compensation from maker notes (exiv2's decoders) when the Exif IFD has none."""
    if "Exif.Photo.ISOSpeedRatings" not in out:
        iso = next(filter(None, (_parse_int(_printed(exif, k)) for k in _MAKER_ISO_KEYS)), None)
        if iso:
            out["Exif.Photo.ISOSpeedRatings"] = (int(exiv2.TypeId.unsignedShort), str(min(iso, _ISO_SATURATED)))
            if iso > _ISO_SATURATED:
                _put_rei(out, iso)
    if "Exif.Photo.LensModel" not in out:
        for key in _MAKER_LENS_KEYS:
            lens = _printed(exif, key)
            if lens and _is_name(lens):
                out["Exif.Photo.LensModel"] = (_ASCII, lens)
                break
    stored = {d.key(): d.toString() for d in exif}
    for key, value in maker_note_exif(stored).items():
        out.setdefault(key, value)
    if "Exif.Photo.BodySerialNumber" not in out:
        # one number or text: a serial of several numbers is formatted per model by each vendor
        serial = next((s for s in (_printed(exif, k) for k in _MAKER_SERIAL_KEYS) if s and " " not in s), None)
        if serial:
            out["Exif.Photo.BodySerialNumber"] = (_ASCII, serial)


def _stored_text(exif: exiv2.ExifData | None, key: str) -> str | None:
    """The stored value of `key` as text, None when absent."""
    if exif is None or not _has(exif, key):
        return None
    return exif.findKey(exiv2.ExifKey(key)).toString()


def _printed(exif: exiv2.ExifData, key: str) -> str | None:
    """exiv2's interpretation of `key` ("100", "Canon EF 50mm f/1.8"), None when absent or not
    writable text."""
    it = exif.findKey(exiv2.ExifKey(key))
    if it == exif.end():
        return None
    text = it.print(exif).strip(" \0")
    return text if text and _writable((_ASCII, text)) else None


def _is_name(text: str) -> bool:
    """A lens name, not exiv2's placeholder for an unknown id ("n/a", "Unknown Lens (251)", "(0)")."""
    return not (text.lower() in ("n/a", "none") or text.startswith(("Unknown", "(")) or text.isdigit())


def _put_rei(out: dict[str, ExifValue], iso: int) -> None:
    out["Exif.Photo.SensitivityType"] = (int(exiv2.TypeId.unsignedShort), "2")  # recommended exposure index
    out["Exif.Photo.RecommendedExposureIndex"] = (int(exiv2.TypeId.unsignedLong), str(iso))


def _libraw_fallbacks(facts: LibRawFacts | HeaderFacts, out: dict[str, ExifValue]) -> None:
    """LibRaw's (or a vendor header's) readings where exiv2 found nothing (or, for the three
    optics values, something more than a factor of 2 away from them)."""
    rational = int(exiv2.TypeId.unsignedRational)
    for key, value, text in (
        ("Exif.Photo.ExposureTime", facts.exposure_time, _exposure_text),
        ("Exif.Photo.FNumber", facts.f_number, _tenths_text),
        ("Exif.Photo.FocalLength", facts.focal_length, _tenths_text),
    ):
        known = _parse_fraction(out[key][1]) if key in out else None
        # a 0 in the file means "unknown" and stays: LibRaw then reports APEX 0 (1 s, f/1)
        if value is not None and (key not in out or known is not None and not 0.5 <= float(known) / value <= 2):
            if known is not None:
                log.info("%s: exiv2 read %s, LibRaw %s; LibRaw's is written", key, known, value)
            out[key] = (rational, text(value))
    if facts.iso and "Exif.Photo.ISOSpeedRatings" not in out:
        iso = round(facts.iso)
        out["Exif.Photo.ISOSpeedRatings"] = (int(exiv2.TypeId.unsignedShort), str(min(iso, _ISO_SATURATED)))
        if iso > _ISO_SATURATED:
            _put_rei(out, iso)
    dates = ("Exif.Photo.DateTimeOriginal", "Exif.Photo.DateTimeDigitized", "Exif.Image.DateTime")
    if facts.timestamp and not any(k in out for k in dates):
        out["Exif.Photo.DateTimeOriginal"] = (_ASCII, facts.timestamp)
    if facts.lens and "Exif.Photo.LensModel" not in out:
        out["Exif.Photo.LensModel"] = (_ASCII, facts.lens)


def _header_fallbacks(header: HeaderFacts, out: dict[str, ExifValue]) -> None:
    """A vendor header's make, model and serial number, then its shot readings as LibRaw's are
    used, where `out` has none."""
    for key, text in (("Exif.Image.Make", header.make), ("Exif.Image.Model", header.model),
                      ("Exif.Photo.BodySerialNumber", header.serial)):
        if text and key not in out and _writable((_ASCII, text)):
            out[key] = (_ASCII, text)
    _libraw_fallbacks(header, out)


def _exposure_text(seconds: float) -> str:
    """Seconds as EXIF rational text: "1/250" below 1 s (LibRaw's 0.004000000189 is 1/250 s),
    tenths of a second above."""
    if seconds < 1:
        return f"1/{round(1 / seconds)}"
    return _tenths_text(seconds)


def _tenths_text(value: float) -> str:
    frac = Fraction(round(value * 10), 10)
    return f"{frac.numerator}/{frac.denominator}"


def _read_sidecar(path: Path, warnings: list[str]) -> exiv2.Image | None:
    """NAME.EXT.xmp or NAME.xmp beside `path` (either case of ".xmp") opened by exiv2, if any."""
    for candidate in (path.with_name(path.name + ".xmp"), path.with_name(path.name + ".XMP"),
                      path.with_suffix(".xmp"), path.with_suffix(".XMP")):
        if candidate.is_file():
            image = _read_exiv2(candidate, warnings)
            if image is not None:
                return image
    return None


def _sidecar_gps(sidecar: exiv2.XmpData, out: dict[str, ExifValue]) -> None:
    """A sidecar's GPS position (Xmp.exif.GPSLatitude/GPSLongitude "DDD,MM.mmmmR" or "DDD,MM,SSR",
    GPSAltitude, GPSAltitudeRef) replaces the file's EXIF GPS. (The binding lacks exiv2's
    copyXmpToExif, hence this conversion of the XMP specification's coordinate text.)"""
    values = {d.key().removeprefix("Xmp.exif."): d.toString() for d in sidecar if d.key().startswith("Xmp.exif.GPS")}
    coordinates = {name: _xmp_coordinate(values.get(name, "")) for name in ("GPSLatitude", "GPSLongitude")}
    if None in coordinates.values():
        return
    for key in [k for k in out if k.startswith("Exif.GPSInfo.")]:
        del out[key]
    rational, byte = int(exiv2.TypeId.unsignedRational), int(exiv2.TypeId.unsignedByte)
    out["Exif.GPSInfo.GPSVersionID"] = (byte, "2 3 0 0")
    for name, (ref, dms) in coordinates.items():
        out[f"Exif.GPSInfo.{name}Ref"] = (_ASCII, ref)
        out[f"Exif.GPSInfo.{name}"] = (rational, dms)
    altitude = _parse_fraction(values.get("GPSAltitude"))
    if altitude is not None:
        out["Exif.GPSInfo.GPSAltitude"] = (rational, f"{altitude.numerator}/{altitude.denominator}")
        out["Exif.GPSInfo.GPSAltitudeRef"] = (byte, "1" if values.get("GPSAltitudeRef") == "1" else "0")


def _xmp_coordinate(text: str) -> tuple[str, str] | None:
    """XMP GPS coordinate "48,51.504N" / "48,51,30.24N" -> ("N", EXIF rational text "48/1 51504/1000 0/1")."""
    match = re.fullmatch(r"(\d+),(\d+(?:\.\d+)?)(?:,(\d+(?:\.\d+)?))?([NSEW])", text.strip())
    if match is None:
        return None
    degrees, minutes, seconds, ref = match.groups()
    parts = [Fraction(degrees), Fraction(minutes), Fraction(seconds or "0")]
    return ref, " ".join(f"{p.numerator}/{p.denominator}" for p in parts)


def _merged_xmp(xmp: exiv2.XmpData | None, sidecar: exiv2.XmpData | None) -> exiv2.XmpData | None:
    """The file's XMP with the sidecar's properties on top, less _XMP_DROPPED(_PREFIXES)."""
    if xmp is None and sidecar is None:
        return None
    merged = exiv2.XmpData()
    sidecar_keys = {d.key() for d in sidecar} if sidecar is not None else set()
    for source, skip in ((xmp, sidecar_keys), (sidecar, set())):
        for datum in source if source is not None else ():
            key = datum.key()
            if key not in skip and key not in _XMP_DROPPED and not key.startswith(_XMP_DROPPED_PREFIXES):
                merged.add(datum)
    merged.sortByKey()
    return merged


def _xmp_packet(xmp: exiv2.XmpData) -> str:
    rc, packet = exiv2.XmpParser.encode(xmp)
    if rc != 0:
        log.warning("XMP could not be encoded (exiv2 error %s); left out", rc)
        return ""
    return packet


# --- writing ---------------------------------------------------------------------------------------


def embed_metadata(data: bytes, meta: Metadata, software: str, *, picture: bool = True) -> bytes:
    """An encoded JPEG, PNG or TIFF (bytes) with `meta` written into it by exiv2.

    Writes every tag of ``meta.exif`` and the XMP packet and Software = `software`; for a finished
    `picture` (sRGB pixels turned upright) also Orientation = 1, PixelXDimension/PixelYDimension =
    the picture's size and ColorSpace = sRGB, which a raw file (a linear DNG: camera RGB, its own
    Orientation) leaves as it has them. The image data, its ICC profile and a TIFF's own structure
    tags are kept. Deterministic: the same inputs give the same bytes.
    """
    image = exiv2.ImageFactory.open(data)
    _write(image, meta, software, picture)
    io = image.io()
    data = bytes(io.mmap())
    io.munmap()
    return data


def write_metadata(path: str | PathLike[str], meta: Metadata, software: str) -> None:
    """Write `meta` into an existing TIFF-based file (TIFF, DNG) in place, as `embed_metadata`
    does; the file's image data and structure (IFD0 layout, SubIFDs, DNG tags) are kept."""
    image = exiv2.ImageFactory.open(str(path))
    _write(image, meta, software)


def _write(image: exiv2.Image, meta: Metadata, software: str, picture: bool = True) -> None:
    image.readMetadata()
    exif = image.exifData()
    for key, (type_id, text) in meta.exif.items():
        value = exiv2.Value.create(exiv2.TypeId(type_id))
        if _writable((type_id, text)) and value.read(text) == 0:
            exif[key] = value
    if not _has(exif, "Exif.Photo.ExifVersion"):
        version = exiv2.Value.create(exiv2.TypeId.undefined)
        version.read("48 50 51 50")  # "0232"
        exif["Exif.Photo.ExifVersion"] = version
    exif["Exif.Image.Software"] = exiv2.AsciiValue(software)
    if picture:
        exif["Exif.Image.Orientation"] = exiv2.UShortValue(1)
        exif["Exif.Photo.PixelXDimension"] = exiv2.ULongValue(image.pixelWidth())
        exif["Exif.Photo.PixelYDimension"] = exiv2.ULongValue(image.pixelHeight())
        exif["Exif.Photo.ColorSpace"] = exiv2.UShortValue(1)  # sRGB: outputs are sRGB-encoded
        _required_tags(exif, image.mimeType())
    if meta.xmp:
        image.setXmpPacket(meta.xmp)
    image.writeMetadata()


# tags EXIF requires of a JPEG (and of a TIFF: FlashpixVersion), as exiftool -validate checks them;
# the JPEG's values say what the encoder writes: 72 dpi, YCbCr components, centred chroma
_REQUIRED = {
    "Exif.Photo.FlashpixVersion": (exiv2.TypeId.undefined, "48 49 48 48"),  # "0100"
}
_REQUIRED_JPEG = {
    "Exif.Image.XResolution": (exiv2.TypeId.unsignedRational, "72/1"),
    "Exif.Image.YResolution": (exiv2.TypeId.unsignedRational, "72/1"),
    "Exif.Image.ResolutionUnit": (exiv2.TypeId.unsignedShort, "2"),  # inches
    "Exif.Image.YCbCrPositioning": (exiv2.TypeId.unsignedShort, "1"),  # centred
    "Exif.Photo.ComponentsConfiguration": (exiv2.TypeId.undefined, "1 2 3 0"),  # Y, Cb, Cr
}


def _required_tags(exif: exiv2.ExifData, mime: str) -> None:
    """The tags EXIF requires of a finished picture's format that it lacks; in a TIFF with GPS the
    GPSProcessingMethod exiftool requires there, "GPS" (a position from the file itself)."""
    required = {**_REQUIRED, **(_REQUIRED_JPEG if mime == "image/jpeg" else {})}
    if mime == "image/tiff" and any(d.groupName() == "GPSInfo" for d in exif):
        required["Exif.GPSInfo.GPSProcessingMethod"] = (exiv2.TypeId.comment, "charset=Ascii GPS")
    for key, (type_id, text) in required.items():
        if not _has(exif, key):
            value = exiv2.Value.create(type_id)
            value.read(text)
            exif[key] = value


# --- orientation -----------------------------------------------------------------------------------

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
