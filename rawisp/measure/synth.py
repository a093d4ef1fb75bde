"""Synthetic Bayer DNGs: the ground-truth side of tests, evaluation and examples.

An sRGB image is pushed backwards through a simple camera model (linearise,
camera matrix, white-balance gains, CFA sampling, Poisson-Gaussian noise,
quantisation) and written as an uncompressed 16-bit CFA DNG (DNG 1.4 tags)
that LibRaw/rawpy reads with exactly the black/white levels, white balance,
colour matrix and orientation used to make it.

Units: "normalised raw" means 0 = black level, 1 = white level; DN are the
integer sensor values stored in the file.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np
import tifffile

from rawisp.colour import BAYER_PATTERNS, CHANNEL_INDEX, colour_matrix_from, srgb_decode
from rawisp.io.tiff import (ASCII, BYTE, DOUBLE, EXIF_IFD, GPS_IFD, LONG, NOISE_PROFILE, RATIONAL, SHORT, SRATIONAL,
                            TYPE_FORMAT, UNDEFINED)

DEFAULT_CAM_FROM_SRGB: np.ndarray = np.array(
    [
        [0.70, 0.22, 0.08],
        [0.12, 0.76, 0.12],
        [0.05, 0.30, 0.65],
    ]
)
"""Linear sRGB -> white-balanced camera RGB; rows sum to 1 (white stays white)."""

# tifffile refuses to write the EXIF/GPS IFD pointers, so free neighbouring
# codes hold their place (same sort position) and are renamed afterwards.
_PLACEHOLDER = {EXIF_IFD: EXIF_IFD - 1, GPS_IFD: GPS_IFD - 1}

Tag = tuple[int, int, Sequence[Any] | bytes]
"""(code, field type, values) of one TIFF entry; rationals as flat int pairs,
ASCII and UNDEFINED as bytes."""


def cfa_channels(cfa: str) -> np.ndarray:
    """2x2 array of channel indices (R=0, G=1, B=2) for a CFA name like "RGGB"."""
    if cfa not in BAYER_PATTERNS:
        raise ValueError(f"cfa must be one of {BAYER_PATTERNS}, got {cfa!r}")
    return np.array([CHANNEL_INDEX[c] for c in cfa]).reshape(2, 2)


def mosaic(cam: np.ndarray, cfa: str = "RGGB") -> np.ndarray:
    """Sample an (H, W, 3) image through a Bayer CFA, giving (H, W).

    `cfa` names the colours at (0,0), (0,1), (1,0), (1,1): RGGB, BGGR, GRBG or
    GBRG. Any H and W, odd ones included; values and dtype pass through.
    """
    h, w = cam.shape[:2]
    tile = cfa_channels(cfa)
    index = np.tile(tile, ((h + 1) // 2, (w + 1) // 2))[:h, :w]
    return np.take_along_axis(cam, index[..., None], axis=2)[..., 0]


def add_noise(x: np.ndarray, shot: float, read: float, rng: np.random.Generator) -> np.ndarray:
    """Add heteroscedastic Gaussian noise approximating Poisson-Gaussian noise.

    `x` is in normalised raw units (0 = black, 1 = white); the noise variance
    is ``shot * max(x, 0) + read**2`` in the same units. Returns float64.
    """
    x = np.asarray(x, dtype=np.float64)
    sigma = np.sqrt(shot * np.maximum(x, 0) + read**2)
    return x + sigma * rng.standard_normal(x.shape)


def _rational(value: float | Fraction, signed: bool = False, max_den: int = 1_000_000) -> tuple[int, int]:
    """A float as a (numerator, denominator) pair that fits a TIFF (S)RATIONAL."""
    limit = 2**31 - 1 if signed else 2**32 - 1
    frac = Fraction(value).limit_denominator(max_den)
    while abs(frac.numerator) > limit:
        max_den //= 10
        frac = Fraction(value).limit_denominator(max_den)
    return frac.numerator, frac.denominator


def _rationals(values: Sequence[float | Fraction], signed: bool = False) -> list[int]:
    """Flat [num, den, num, den, ...] list for a TIFF (S)RATIONAL array."""
    return [n for v in values for n in _rational(v, signed)]


def _ascii(text: object) -> bytes:
    """NUL-terminated ASCII bytes for a TIFF ASCII field."""
    return str(text).encode("ascii", "replace") + b"\0"


def _count(ftype: int, values: Sequence[Any] | bytes) -> int:
    """Number of TIFF values in `values` (rationals come as flat pairs)."""
    return len(values) // 2 if ftype in (RATIONAL, SRATIONAL) else len(values)


def _pack(ftype: int, values: Sequence[Any] | bytes) -> bytes:
    """Little-endian bytes of one entry's values."""
    if isinstance(values, bytes):
        return values
    return struct.pack(f"<{len(values)}{TYPE_FORMAT[ftype]}", *values)


def _ifd_bytes(tags: list[Tag], offset: int) -> bytes:
    """Serialise an IFD (entries, next-IFD 0, then its out-of-line data) placed at `offset`."""
    tags = sorted(tags, key=lambda t: t[0])
    data_offset = offset + 2 + 12 * len(tags) + 4
    entries, data = [struct.pack("<H", len(tags))], b""
    for code, ftype, values in tags:
        payload = _pack(ftype, values)
        if len(payload) <= 4:
            field = payload.ljust(4, b"\0")
        else:
            field = struct.pack("<I", data_offset + len(data))
            data += payload + b"\0" * (len(payload) % 2)
        entries.append(struct.pack("<HHI", code, ftype, _count(ftype, values)) + field)
    return b"".join(entries) + struct.pack("<I", 0) + data


def _exif_tags(exif: dict[str, Any]) -> list[Tag]:
    """EXIF-IFD entries for the exposure keys of `exif` (see write_dng)."""
    tags: list[Tag] = [(36864, UNDEFINED, b"0231")]  # ExifVersion
    if "ExposureTime" in exif:
        tags.append((33434, RATIONAL, _rationals([exif["ExposureTime"]])))
    if "FNumber" in exif:
        tags.append((33437, RATIONAL, _rationals([exif["FNumber"]])))
    if "ISO" in exif:
        tags.append((34855, SHORT, [int(exif["ISO"])]))  # PhotographicSensitivity
    if "DateTimeOriginal" in exif:
        tags.append((36867, ASCII, _ascii(exif["DateTimeOriginal"])))
    if "FocalLength" in exif:
        tags.append((37386, RATIONAL, _rationals([exif["FocalLength"]])))
    if "LensModel" in exif:
        tags.append((42036, ASCII, _ascii(exif["LensModel"])))
    for key, (code, ftype) in _MORE_EXIF.items():
        if key in exif:
            value = exif[key]
            if ftype == ASCII:
                tags.append((code, ftype, _ascii(value)))
            elif ftype in (RATIONAL, SRATIONAL):
                values = value if isinstance(value, (list, tuple)) else [value]
                tags.append((code, ftype, _rationals(values, signed=ftype == SRATIONAL)))
            else:
                tags.append((code, ftype, [int(value)]))
    return tags


# further Exif-IFD keys of write_dng's `exif` (exiftool's names): (tag, type)
_MORE_EXIF = {
    "CreateDate": (36868, ASCII), "SubSecTimeOriginal": (37521, ASCII), "SerialNumber": (42033, ASCII),
    "LensInfo": (42034, RATIONAL), "ExposureCompensation": (37380, SRATIONAL), "ExposureProgram": (34850, SHORT),
    "MeteringMode": (37383, SHORT), "Flash": (37385, SHORT), "WhiteBalance": (41987, SHORT),
    "FocalLengthIn35mmFormat": (41989, SHORT),
}


def _dms(degrees: float) -> list[int]:
    """|degrees| as three RATIONALs: degrees, minutes, seconds (1e-4 s)."""
    seconds = round(abs(degrees) * 3600 * 10_000)
    d, rest = divmod(seconds, 3600 * 10_000)
    m, s = divmod(rest, 60 * 10_000)
    return [d, 1, m, 1, s, 10_000]


def _gps_tags(gps: dict[str, float]) -> list[Tag]:
    """GPS-IFD entries for {"lat": deg, "lon": deg, "alt": m} (all optional)."""
    tags: list[Tag] = [(0, BYTE, [2, 3, 0, 0])]  # GPSVersionID
    if "lat" in gps:
        tags += [(1, ASCII, b"N\0" if gps["lat"] >= 0 else b"S\0"), (2, RATIONAL, _dms(gps["lat"]))]
    if "lon" in gps:
        tags += [(3, ASCII, b"E\0" if gps["lon"] >= 0 else b"W\0"), (4, RATIONAL, _dms(gps["lon"]))]
    if "alt" in gps:
        tags += [(5, BYTE, [int(gps["alt"] < 0)]), (6, RATIONAL, _rationals([abs(gps["alt"])]))]
    return tags


def _black_pattern(black: int | Sequence[int]) -> np.ndarray:
    """Black level per 2x2 CFA position (row-major) as a (2, 2) int array of DN."""
    levels = np.broadcast_to(np.asarray(black, dtype=np.int64).ravel(), (4,))
    return levels.reshape(2, 2).copy()


def _quantise(raw_norm: np.ndarray, black: np.ndarray, white: int) -> np.ndarray:
    """Normalised raw (0 = black, 1 = white) -> uint16 DN in [0, white]."""
    h, w = raw_norm.shape
    black_map = np.tile(black, ((h + 1) // 2, (w + 1) // 2))[:h, :w]
    dn = np.round(black_map + raw_norm * (white - black_map))
    return np.clip(dn, 0, min(white, 65535)).astype(np.uint16)


def _dng_tags(
    cfa: str, black: np.ndarray, white: int, cam_from_srgb: np.ndarray,
    neutral: Sequence[float], noise: tuple[float, float] | None, orientation: int,
    exif: dict[str, Any], make: str, model: str,
) -> list[Tag]:
    """IFD0 entries besides the image structure that tifffile writes itself."""
    tags: list[Tag] = [
        (271, ASCII, _ascii(make)),
        (272, ASCII, _ascii(model)),
        (274, SHORT, [orientation]),
        (33421, SHORT, [2, 2]),  # CFARepeatPatternDim
        (33422, BYTE, cfa_channels(cfa).ravel().tolist()),  # CFAPattern
        (50706, BYTE, [1, 4, 0, 0]),  # DNGVersion
        (50707, BYTE, [1, 3, 0, 0]),  # DNGBackwardVersion
        (50708, ASCII, _ascii(f"{make} {model}")),  # UniqueCameraModel
        (50710, BYTE, [0, 1, 2]),  # CFAPlaneColor
        (50711, SHORT, [1]),  # CFALayout: rectangular
        (50713, SHORT, [2, 2]),  # BlackLevelRepeatDim
        (50714, LONG, black.ravel().tolist()),  # BlackLevel
        (50717, LONG, [white]),  # WhiteLevel
        (50721, SRATIONAL, _rationals(colour_matrix_from(cam_from_srgb).ravel(), signed=True)),
        (50728, RATIONAL, _rationals(neutral)),  # AsShotNeutral
        (50778, SHORT, [21]),  # CalibrationIlluminant1: D65
        (_PLACEHOLDER[EXIF_IFD], LONG, [0]),
    ]
    if noise is not None:
        shot, read = noise
        tags.append((NOISE_PROFILE, DOUBLE, [float(shot), float(read) ** 2] * 3))  # NoiseProfile
    for key, code in (("Artist", 315), ("Copyright", 33432), ("ModifyDate", 306), ("ImageDescription", 270)):
        if key in exif:
            tags.append((code, ASCII, _ascii(exif[key])))
    if "XMP" in exif:
        tags.append((700, BYTE, exif["XMP"].encode()))  # XMLPacket
    if "GPS" in exif:
        tags.append((_PLACEHOLDER[GPS_IFD], LONG, [0]))
    return tags


def _append_ifd(fh, code: int, tags: list[Tag], pointer_offset: int) -> None:
    """Append an IFD at the end of `fh` and point the entry at `pointer_offset` to it."""
    fh.seek(0, os.SEEK_END)
    fh.write(b"\0" * (fh.tell() % 2))  # IFDs start on a word boundary
    offset = fh.tell()
    fh.write(_ifd_bytes(tags, offset))
    fh.seek(pointer_offset - 8)  # entry = code, type, count, value
    fh.write(struct.pack("<HHII", code, LONG, 1, offset))


def write_dng(
    path: str | os.PathLike,
    raw_norm: np.ndarray,
    *,
    cfa: str = "RGGB",
    black: int | Sequence[int] = 256,
    white: int = 4095,
    cam_from_srgb: np.ndarray = DEFAULT_CAM_FROM_SRGB,
    neutral: Sequence[float] = (0.55, 1.0, 0.75),
    noise: tuple[float, float] | None = None,
    orientation: int = 1,
    exif: dict[str, Any] | None = None,
    make: str = "rawisp",
    model: str = "Synthetic",
) -> None:
    """Write a CFA mosaic as an uncompressed 16-bit DNG 1.4.

    raw_norm: (H, W) mosaic in normalised raw units (0 = black, 1 = white),
        noise included; stored as DN = round(black + raw_norm * (white - black))
        clipped to [0, white] (values below black are kept, as real sensors do).
    cfa: colours of the 2x2 tile at (0,0), (0,1), (1,0), (1,1).
    black: black level in DN, a scalar or 4 values per 2x2 position (row-major).
    white: white (saturation) level in DN, at most 65535.
    cam_from_srgb: 3x3 linear sRGB -> camera RGB, rows summing to 1; written as
        ColorMatrix1 = cam_from_srgb @ inv(SRGB_TO_XYZ) with D65 illuminant, so
        LibRaw's rgb_cam (rawpy ``color_matrix[:, :3]``) is inv(cam_from_srgb).
    neutral: AsShotNeutral, the camera RGB of white (G = 1); WB gains = 1/neutral.
    noise: (shot, read) written as NoiseProfile (S, O) = (shot, read**2) for each
        CFA plane: variance = S * x + O, x normalised. None writes no profile.
    orientation: TIFF Orientation 1..8 (how to display the stored pixels).
    exif: optional "ExposureTime" (s, float or Fraction), "FNumber", "ISO",
        "FocalLength" (mm), "DateTimeOriginal" ("YYYY:MM:DD HH:MM:SS"),
        "LensModel", "Artist", "Copyright", "GPS" ({"lat": deg, "lon": deg,
        "alt": m}; south/west/below sea level negative), "ModifyDate",
        "ImageDescription", "XMP" (an XMP packet, str), and the Exif-IFD tags
        named in _MORE_EXIF ("LensInfo": 4 numbers; "ExposureCompensation" EV).
    make, model: Make and Model; UniqueCameraModel is "make model".
    """
    raw_norm = np.asarray(raw_norm, dtype=np.float64)
    if raw_norm.ndim != 2:
        raise ValueError(f"raw_norm must be (H, W), got shape {raw_norm.shape}")
    if not 1 <= orientation <= 8:
        raise ValueError(f"orientation must be 1..8, got {orientation}")
    exif = exif or {}
    black_2x2 = _black_pattern(black)
    tags = _dng_tags(cfa, black_2x2, white, cam_from_srgb, neutral, noise,
                     orientation, exif, make, model)
    tifffile.imwrite(
        path, _quantise(raw_norm, black_2x2, white), byteorder="<", bigtiff=False,
        photometric=tifffile.PHOTOMETRIC.CFA, subfiletype=0, metadata=None,
        software=False, extratags=[(code, ftype, _count(ftype, v), v, True)
                                   for code, ftype, v in tags],
    )
    with tifffile.TiffFile(path) as tif:
        pointers = {c: t.valueoffset for c, t in tif.pages[0].tags.items()}
    with open(path, "r+b") as fh:
        _append_ifd(fh, EXIF_IFD, _exif_tags(exif), pointers[_PLACEHOLDER[EXIF_IFD]])
        if "GPS" in exif:
            _append_ifd(fh, GPS_IFD, _gps_tags(exif["GPS"]), pointers[_PLACEHOLDER[GPS_IFD]])


def _to_unit_float(srgb: np.ndarray) -> np.ndarray:
    """uint8 / uint16 / float image -> float64 in [0, 1]."""
    srgb = np.asarray(srgb)
    if srgb.dtype == np.uint8:
        return srgb / 255.0
    if srgb.dtype == np.uint16:
        return srgb / 65535.0
    return np.clip(srgb.astype(np.float64), 0, 1)


def srgb_to_dng(
    path: str | os.PathLike,
    srgb: np.ndarray,
    *,
    cfa: str = "RGGB",
    black: int | Sequence[int] = 256,
    white: int = 4095,
    cam_from_srgb: np.ndarray = DEFAULT_CAM_FROM_SRGB,
    neutral: Sequence[float] = (0.55, 1.0, 0.75),
    noise: tuple[float, float] = (0.0, 0.0),
    seed: int = 0,
    orientation: int = 1,
    exif: dict[str, Any] | None = None,
    make: str = "rawisp",
    model: str = "Synthetic",
    noise_profile: bool = True,
) -> np.ndarray:
    """Simulate a camera capture of an sRGB image and write it as a DNG.

    The evaluation protocol: srgb (H, W, 3; uint8, uint16 or float in [0, 1])
    -> linear sRGB -> camera RGB = lin @ cam_from_srgb.T -> times `neutral`
    (undoing the white balance, G = 1) -> CFA mosaic -> noise of variance
    shot * x + read**2 (normalised units, rng seeded with `seed`) -> write_dng.
    With `noise_profile` the DNG states its noise, as a camera's DNG does:
    NoiseProfile (S, O) = (shot, read**2); a noise-free capture still has its
    rounding to whole DN (variance 1/12 DN^2), written as O with an equally
    negligible shot term S = O, so readers know it is clean instead of
    estimating noise from the pixels. Without it, no NoiseProfile.
    Other arguments as in write_dng.

    Returns the ground truth a perfect demosaicker reconstructs after white
    balance: white-balanced linear camera RGB (H, W, 3) float32, nominally [0, 1].
    """
    lin = srgb_decode(_to_unit_float(srgb))
    cam_from_srgb = np.asarray(cam_from_srgb, dtype=np.float64)
    truth = lin @ cam_from_srgb.T
    raw = mosaic(truth * np.asarray(neutral, dtype=np.float64), cfa)
    shot, read = noise
    raw = add_noise(raw, shot, read, np.random.default_rng(seed))
    if not noise_profile:
        profile = None
    elif shot == read == 0:
        span = white - np.max(black)  # no span (levels a test wants broken): no profile to state
        rounding = 1 / (12 * span**2) if span > 0 else None  # normalised variance of 1-DN rounding
        profile = None if rounding is None else (rounding, float(np.sqrt(rounding)))
    else:
        profile = (shot, read)
    write_dng(path, raw, cfa=cfa, black=black, white=white, cam_from_srgb=cam_from_srgb,
              neutral=neutral, noise=profile,
              orientation=orientation, exif=exif, make=make, model=model)
    return truth.astype(np.float32)
