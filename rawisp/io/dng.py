"""DNG output: the engine's development handed back to a RAW editor, as a Bayer or a linear DNG.

``--format dng`` of a Bayer source writes a **Bayer (CFA) DNG**: one 16-bit sample per pixel, the
denoised mosaic in the sensor's units (its black levels per 2x2 site, white level and CFA phase),
made by :func:`rawisp.stages.dng_frame.bayer_frame`, with a NoiseProfile stating the noise left in
it; an editor demosaics it and applies its own corrections and look as for the camera's file. It
is stored as camera DNGs are, in lossless JPEG tiles of :data:`TILE` pixels
(:mod:`rawisp.io.ljpeg`), which LibRaw 0.22 decodes bit for bit and darktable 4.2 and RawTherapee
5.9 develop exactly as the uncompressed file (integer Deflate none of them reads); a mosaic
narrower than a tile is stored uncompressed in strips (LibRaw and RawTherapee misread a tile
wider than the image).
``--format linear-dng`` (and ``dng`` of a non-Bayer source) writes the **linear DNG** below. Both
share IFD0 (thumbnail, DNG and colour tags, Orientation), the source's preview, default crop and
EXIF/XMP; only the raw IFD differs (:func:`raw_ifd_tags` / :func:`cfa_ifd_tags`).

Linear DNG:

The file is a DNG 1.4 as Adobe's converter lays it out: IFD0 is a small 8-bit sRGB thumbnail
(NewSubFileType 1) carrying the DNG and colour tags, its first SubIFD holds the full-resolution
LinearRaw image (PhotometricInterpretation 34892, 3 samples of 16 bits, NewSubFileType 0) and,
when the source has an embedded preview (the camera's JPEG), a second SubIFD holds that preview
(8-bit sRGB, long side at most :data:`PREVIEW_SIDE`). The
pixels are the engine's output with the white-balance gains taken out: linear camera RGB,
0 = black, 65535 = the source's white level, stored as the sensor saw them (not turned; the
Orientation tag says how to show them). The colour calibration is the source's (its DNG colour
and profile tags verbatim, else LibRaw's XYZ -> camera matrix), so an editor applies its own
white balance, exposure and look as it would to the original.

The image is uncompressed, in strips: the one layout LibRaw 0.22, darktable 4.2 and
RawTherapee 5.9 all read right (measured on the synthetic chart and the Canon Kiss X4 file;
see docs/dng.md). Integer Deflate fails in LibRaw and darktable; floating-point Deflate renders black
in RawTherapee ("demosaiced float dng files are not supported"); lossless JPEG tiles make
RawTherapee read a camera it has constants for 2 EV too bright, lossless JPEG strips break LibRaw
and RawTherapee; uncompressed tiles make RawTherapee's colours wrong. Black is 0 because darktable
and RawTherapee ignore BlackLevel in a LinearRaw image (a neutral offset turns magenta).

Previews: RawTherapee's default raw profile ("Auto-Matched Curve") fits its tone curve to the
file's largest embedded preview, and skips that when the preview has fewer than 19200 pixels
(rtengine/histmatching.cc). So the DNG carries the source's own preview (the curve is fitted to
the camera's JPEG, as for the original) and rawisp's rendering only as a thumbnail below that size
(a source without a preview gets no fitted curve, as the original does); a 256-pixel rendering
made RawTherapee fit its curve to rawisp's look instead (mean CIEDE2000 5.0 against 2.7 on the
360x240 synthetic chart).
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import tifffile

from rawisp import __version__
from rawisp.colour import colour_matrix_from
from rawisp.io.decode import RawImage
from rawisp.io.ljpeg import encode_tile
from rawisp.io.metadata import embed_metadata
from rawisp.io.tiff import ASCII, BYTE, DOUBLE, LONG, NOISE_PROFILE, RATIONAL, SHORT, SRATIONAL, UNDEFINED
from rawisp.io.write import write_file
from rawisp.threads import thread_count

SUFFIX = ".dng"
BAYER, LINEAR = "dng", "linear-dng"  # the output formats: a Bayer DNG where the source is Bayer, a linear DNG
FORMATS = (BAYER, LINEAR)
WHITE = 65535  # white level of the stored frame: 1.0 of the source's normalised raw
STRIP_BYTES = 1 << 20  # uncompressed bytes per strip of the linear raw image (about 1 MiB)
TILE = 256  # side of the Bayer DNG's lossless JPEG tiles in pixels, as Adobe's converter writes them
THUMBNAIL_SIDE = 128  # long side of the IFD0 thumbnail in pixels: at most 16384 pixels (see above)
PREVIEW_SIDE = 1024  # long side of the source's preview as the DNG carries it, in pixels
LINEAR_RAW = 34892  # PhotometricInterpretation of demosaicked raw data
CFA = 32803  # PhotometricInterpretation of mosaicked (colour filter array) raw data

_D65 = 21  # EXIF LightSource code of the CalibrationIlluminant
_PREVIEW_COLOR_SPACE, _SRGB = 50970, 2  # DNG PreviewColorSpace tag and its sRGB value

# DNG tags copied verbatim from a DNG source's IFD0: they describe the camera's colour response
# (matrices, calibration, profile, white balance, exposure) and stay true of the same camera RGB
COLOUR_TAGS = {
    50708: "UniqueCameraModel", 50721: "ColorMatrix1", 50722: "ColorMatrix2", 50723: "CameraCalibration1",
    50724: "CameraCalibration2", 50727: "AnalogBalance", 50728: "AsShotNeutral", 50729: "AsShotWhiteXY",
    50730: "BaselineExposure", 50778: "CalibrationIlluminant1", 50779: "CalibrationIlluminant2",
    50931: "CameraCalibrationSignature", 50932: "ProfileCalibrationSignature", 50936: "ProfileName",
    50937: "ProfileHueSatMapDims", 50938: "ProfileHueSatMapData1", 50939: "ProfileHueSatMapData2",
    50940: "ProfileToneCurve", 50941: "ProfileEmbedPolicy", 50942: "ProfileCopyright",
    50964: "ForwardMatrix1", 50965: "ForwardMatrix2", 50981: "ProfileLookTableDims",
    50982: "ProfileLookTableData", 51108: "ProfileLookTableEncoding", 51109: "BaselineExposureOffset",
    51110: "DefaultBlackRender", 52529: "ProfileHueSatMapEncoding",
}
_DEFAULT_CROP_ORIGIN, _DEFAULT_CROP_SIZE = 50719, 50720
_COMPRESSION, _LJPEG = 259, 7  # TIFF Compression tag and its JPEG value (lossless JPEG in DNG)
# DNG opcode lists a DNG source's raw IFD may hold that apply to the linear data as the Bayer DNG
# stores it (the active area): OpcodeList2 (e.g. a GainMap for lens shading), OpcodeList3 (lens
# geometry). OpcodeList1 applies to the stored data before linearisation and cropping: left out.
OPCODE_LISTS = {51009: "OpcodeList2", 51022: "OpcodeList3"}

Tag = tuple[int, int, int, object, bool]  # tifffile extratag: code, type, count, value, write once


def write_dng(path: str | os.PathLike, raw: RawImage, frame: np.ndarray, thumbnail: np.ndarray, *,
              noise_profile: tuple[float, float] | None = None, overwrite: bool = False, threads: int = 0) -> Path:
    """Write ``frame`` of ``raw`` as a DNG at ``path``, atomically, with ``thumbnail`` in IFD0.

    ``frame``: a Bayer DNG's (H, W) uint16 mosaic in the source's DN (its CFA phase, black and white
    levels), with ``noise_profile`` (shot, read variance) of the DNG NoiseProfile model; or a
    linear DNG's (H, W, 3) uint16 linear camera RGB before white balance, 0 = black, :data:`WHITE` =
    the source's white level. Both as stored (not turned). ``thumbnail``: its 8-bit sRGB rendering,
    long side at most :data:`THUMBNAIL_SIDE`. All are made by the render stage
    (:mod:`rawisp.stages.dng_frame`). ``threads``: for the lossless JPEG tiles (0: all CPUs).

    Raises OutputExistsError / OSError as :func:`rawisp.io.write.write_file` does.
    """
    # the sensor's EXIF CFAPattern describes the source's whole sensor, not the frame stored here
    # (the raw IFD's CFA tags do). (exiv2's rewrite also types the SubIFDs entry LONG, as Adobe
    # does; tifffile's type IFD is legal but exiftool flags it.)
    meta = replace(raw.metadata, exif={k: v for k, v in raw.metadata.exif.items() if k != "Exif.Photo.CFAPattern"})
    data = embed_metadata(encode_dng(raw, frame, thumbnail, noise_profile, threads), meta, f"rawisp {__version__}",
                          picture=False)
    return write_file(path, data, overwrite=overwrite)


def encode_dng(raw: RawImage, frame: np.ndarray, thumbnail: np.ndarray,
               noise_profile: tuple[float, float] | None = None, threads: int = 0) -> bytes:
    """The DNG file of ``frame`` and its ``thumbnail`` (see :func:`write_dng`) with the colour metadata
    of ``raw``."""
    buf = io.BytesIO()
    h, w = frame.shape[:2]
    preview = source_preview(raw.path)
    # LibRaw and RawTherapee misread a tile wider than the image: narrower mosaics go uncompressed
    compressed = frame.ndim == 2 and w >= TILE
    with tifffile.TiffWriter(buf, byteorder="<", bigtiff=False) as tif:
        tif.write(thumbnail, photometric="rgb", subfiletype=1, subifds=1 + (preview is not None),
                  metadata=None, software=f"rawisp {__version__}", extratags=ifd0_tags(raw))
        if compressed:  # lossless JPEG tiles, handed to tifffile as they are (see _mark_ljpeg)
            tif.write(_ljpeg_tiles(frame, threads), shape=frame.shape, dtype=frame.dtype, tile=(TILE, TILE),
                      photometric=CFA, subfiletype=0, metadata=None, software=False,
                      extratags=cfa_ifd_tags(raw, (h, w), noise_profile))
        else:
            bayer = frame.ndim == 2
            tif.write(frame, photometric=CFA if bayer else LINEAR_RAW, subfiletype=0, metadata=None, software=False,
                      rowsperstrip=max(1, STRIP_BYTES // (frame.itemsize * frame[0].size)),
                      extratags=cfa_ifd_tags(raw, (h, w), noise_profile) if bayer else raw_ifd_tags(raw, (h, w)))
        if preview is not None:
            tif.write(preview, photometric="rgb", subfiletype=1, metadata=None, software=False,
                      extratags=[(_PREVIEW_COLOR_SPACE, LONG, 1, (_SRGB,), True)])
    data = buf.getvalue()
    return _mark_ljpeg(data) if compressed else data


def _ljpeg_tiles(mosaic: np.ndarray, threads: int = 0) -> Iterator[bytes]:
    """The lossless JPEG streams of the :data:`TILE`-pixel tiles of ``mosaic``, row by row, encoded
    on ``threads`` threads (0: all CPUs; NumPy releases the GIL); edge tiles padded by repeating the
    last row and column (readers crop them to the image)."""
    h, w = mosaic.shape
    padded = np.pad(mosaic, ((0, -h % TILE), (0, -w % TILE)), mode="edge")
    corners = [(y, x) for y in range(0, h, TILE) for x in range(0, w, TILE)]
    with ThreadPoolExecutor(thread_count(threads)) as pool:
        yield from pool.map(lambda yx: encode_tile(padded[yx[0]:yx[0] + TILE, yx[1]:yx[1] + TILE]), corners)


def _mark_ljpeg(data: bytes) -> bytes:
    """``data`` with the raw IFD's Compression set to 7 (JPEG; lossless by its SOF3 marker).

    tifffile writes encoded tiles it is given as they are, but states a compression only for codecs
    it has (imagecodecs, not a dependency): the tiles are written as "uncompressed" and the tag's
    inline value is changed here."""
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        offset = tif.pages.first.pages[0].tags[_COMPRESSION].valueoffset
    out = bytearray(data)
    struct.pack_into("<H", out, offset, _LJPEG)
    return bytes(out)


def source_preview(path: str) -> np.ndarray | None:
    """The source's embedded preview as LibRaw finds it (the largest: usually the camera's JPEG),
    decoded to (H, W, 3) uint8 sRGB and shrunk to a long side of at most :data:`PREVIEW_SIDE`, as
    stored (not turned); None when the file has none LibRaw can read."""
    import rawpy
    from PIL import Image

    try:
        with rawpy.imread(path) as source:
            thumb = source.extract_thumb()
        if thumb.format == rawpy.ThumbFormat.JPEG:
            image = Image.open(io.BytesIO(thumb.data)).convert("RGB")
        else:
            image = Image.fromarray(np.asarray(thumb.data, np.uint8)).convert("RGB")
    except (rawpy.LibRawError, OSError, ValueError):  # no preview, or one that does not decode
        return None
    image.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE), Image.Resampling.LANCZOS)
    return np.asarray(image)


def ifd0_tags(raw: RawImage) -> list[Tag]:
    """DNG version, camera, orientation and colour tags of IFD0 (the thumbnail's IFD)."""
    meta = raw.metadata
    colour = source_colour_tags(raw.path) or libraw_colour_tags(raw)
    make, model = meta.make or "", meta.model or ""
    tags: list[Tag] = [
        (50706, BYTE, 4, (1, 4, 0, 0), True),  # DNGVersion
        (50707, BYTE, 4, (1, 3, 0, 0), True),  # DNGBackwardVersion: readers of 1.3 read it all
        (274, SHORT, 1, (raw.orientation,), True),
    ]
    if not any(tag[0] == 50708 for tag in colour):
        tags.append((50708, ASCII, 0, f"{make} {model}".strip() or "rawisp", True))  # UniqueCameraModel
    for code, text in ((271, make), (272, model)):  # the rest of the EXIF comes by exiv2
        if text:
            tags.append((code, ASCII, 0, text, True))
    return tags + colour


def raw_ifd_tags(raw: RawImage, shape: tuple[int, int]) -> list[Tag]:
    """Levels and default crop of the LinearRaw IFD."""
    return [
        (50713, SHORT, 2, (1, 1), True),  # BlackLevelRepeatDim
        (50714, SHORT, 3, (0, 0, 0), True),  # BlackLevel per sample
        (50717, SHORT, 3, (WHITE,) * 3, True),  # WhiteLevel per sample
        *_default_crop_tags(raw, shape),
    ]


def cfa_ifd_tags(raw: RawImage, shape: tuple[int, int], noise_profile: tuple[float, float] | None) -> list[Tag]:
    """CFA layout, levels (the source's: black per 2x2 site, white), default crop, NoiseProfile
    (shot, read variance: the same for the three colour planes) and a DNG source's opcode lists
    of the Bayer DNG's raw IFD."""
    black = np.asarray(raw.black, np.float64).ravel()
    if np.array_equal(black, np.rint(black)):
        black_tag: Tag = (50714, LONG, 4, tuple(int(v) for v in black), True)
    else:  # fractional levels (none that LibRaw reports so far) as RATIONALs
        black_tag = (50714, RATIONAL, 4, _rationals(black), True)
    tags: list[Tag] = [
        (33421, SHORT, 2, (2, 2), True),  # CFARepeatPatternDim
        (33422, BYTE, 4, tuple("RGB".index(c) for c in raw.cfa), True),  # CFAPattern
        (50710, BYTE, 3, (0, 1, 2), True),  # CFAPlaneColor: R, G, B
        (50711, SHORT, 1, (1,), True),  # CFALayout: rectangular
        (50713, SHORT, 2, (2, 2), True),  # BlackLevelRepeatDim: a level per 2x2 site
        black_tag,
        (50717, LONG, 1, (int(round(raw.white)),), True),  # WhiteLevel
        *_default_crop_tags(raw, shape),
    ]
    if noise_profile is not None:
        tags.append((NOISE_PROFILE, DOUBLE, 6, tuple(float(v) for v in noise_profile) * 3, True))
    return tags + source_opcode_tags(raw.path, shape)


def _default_crop_tags(raw: RawImage, shape: tuple[int, int]) -> list[Tag]:
    """DefaultCropOrigin/Size: the DNG source's, else the whole frame."""
    origin, size = _source_default_crop(raw.path, shape) or ((0, 0), (shape[1], shape[0]))
    return [(_DEFAULT_CROP_ORIGIN, LONG, 2, origin, True), (_DEFAULT_CROP_SIZE, LONG, 2, size, True)]


def source_opcode_tags(path: str, shape: tuple[int, int]) -> list[Tag]:
    """The :data:`OPCODE_LISTS` of a DNG source's raw IFD, verbatim, when its active area is the
    frame stored (``shape``: rows, columns): their coordinates are the active area's."""
    pages = _dng_pages(path)
    if pages is None:
        return []
    tags = pages[1].tags
    area = tags.valueof(50829)  # ActiveArea: top, left, bottom, right
    h, w = (area[2] - area[0], area[3] - area[1]) if area is not None else pages[1].shape[:2]
    if (h, w) != tuple(shape):
        return []
    return [(tag.code, UNDEFINED, len(tag.value), bytes(tag.value), True) for tag in tags
            if tag.code in OPCODE_LISTS and isinstance(tag.value, bytes)]


def libraw_colour_tags(raw: RawImage) -> list[Tag]:
    """Colour tags of a non-DNG source: LibRaw's XYZ -> camera matrix (D65, Adobe's tables), or
    one made from rawisp's camera -> sRGB matrix when LibRaw has none; AsShotNeutral = 1 / gains."""
    import rawpy

    cam_xyz = np.zeros((3, 3))
    try:
        with rawpy.imread(raw.path) as source:
            cam_xyz = np.asarray(source.rgb_xyz_matrix, np.float64)[:3]
    except (rawpy.LibRawError, OSError):  # a source that is no longer readable: rawisp's matrix
        pass
    if not (np.isfinite(cam_xyz).all() and np.abs(cam_xyz).sum() > 0):
        cam_xyz = colour_matrix_from(np.linalg.inv(raw.srgb_from_cam))
    neutral = 1.0 / np.asarray(raw.wb, np.float64)
    return [
        (50721, SRATIONAL, 9, _rationals(cam_xyz.ravel()), True),  # ColorMatrix1
        (50778, SHORT, 1, (_D65,), True),  # CalibrationIlluminant1
        (50728, RATIONAL, 3, _rationals(neutral / neutral[1]), True),  # AsShotNeutral
    ]


def _rationals(values: np.ndarray, denominator: int = 1_000_000) -> tuple[int, ...]:
    """Flat (numerator, denominator, ...) pairs of (S)RATIONALs, six decimal places."""
    return tuple(int(v) for x in values for v in (round(float(x) * denominator), denominator))


def _dng_pages(path: str) -> tuple[tifffile.TiffPage, tifffile.TiffPage] | None:
    """(IFD0, the full-resolution raw IFD) of a DNG file; None for anything else."""
    try:
        with tifffile.TiffFile(path) as tif:
            ifd0 = tif.pages.first
            if 50706 not in ifd0.tags:  # no DNGVersion: not a DNG
                return None
            pages = [ifd0, *(ifd0.pages or [])]
            main = next((p for p in pages if p.tags.valueof(254, 0) == 0), ifd0)
            for page in pages:  # read every value while the file is open
                for tag in page.tags:
                    _ = tag.value
            return ifd0, main
    except Exception:  # a file LibRaw reads but tifffile does not: no DNG tags to copy
        return None


def source_colour_tags(path: str) -> list[Tag]:
    """The :data:`COLOUR_TAGS` of a DNG source's IFD0, as stored (empty for other files)."""
    pages = _dng_pages(path)
    if pages is None:
        return []
    tags = []
    for tag in pages[0].tags:
        if tag.code in COLOUR_TAGS and not _undefined(tag):
            value = tag.value
            if isinstance(value, np.ndarray):
                value = value.ravel().tolist()
            elif not isinstance(value, (str, bytes, tuple, list)):
                value = (value,)
            tags.append((tag.code, int(tag.dtype), 0 if tag.dtype == ASCII else tag.count, value, True))
    return tags


def _undefined(tag: tifffile.TiffTag) -> bool:
    """A (S)RATIONAL with a zero denominator: "unknown", as some converters write BaselineExposure."""
    return tag.dtype in (RATIONAL, SRATIONAL) and 0 in np.ravel(tag.value)[1::2]


def _source_default_crop(path: str, shape: tuple[int, int]) -> tuple[tuple, tuple] | None:
    """A DNG source's DefaultCropOrigin/Size when they fit ``shape`` (rows, columns), else None.

    The DNG default crop is relative to the active area, which is the frame LibRaw decodes."""
    pages = _dng_pages(path)
    if pages is None:
        return None
    tags = pages[1].tags
    if _DEFAULT_CROP_ORIGIN not in tags or _DEFAULT_CROP_SIZE not in tags:
        return None
    origin = [_number(v) for v in _pairs(tags[_DEFAULT_CROP_ORIGIN])]
    size = [_number(v) for v in _pairs(tags[_DEFAULT_CROP_SIZE])]
    h, w = shape
    if min(origin) < 0 or min(size) <= 0 or origin[0] + size[0] > w or origin[1] + size[1] > h:
        return None
    return tuple(round(v) for v in origin), tuple(round(v) for v in size)


def _pairs(tag: tifffile.TiffTag) -> list:
    """A two-value tag's values; RATIONALs as (numerator, denominator) pairs."""
    value = list(np.ravel(tag.value))
    return [tuple(value[i:i + 2]) for i in range(0, 4, 2)] if len(value) == 4 else value


def _number(value) -> float:
    return value[0] / value[1] if isinstance(value, tuple) else float(value)
