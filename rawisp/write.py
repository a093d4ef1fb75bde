"""Output files: JPEG, 8/16-bit PNG and 16-bit TIFF, written atomically.

Every format embeds the sRGB ICC profile and, when given, the EXIF block from
`rawisp.metadata.exif_bytes` (JPEG APP1, PNG eXIf chunk, TIFF IFD0 tags plus
Exif and GPS sub-IFDs). Files are encoded in memory, written to a hidden
``.<name>.<random>.part`` file next to the target, fsynced, then moved into
place, so the final name never holds a partial file.
"""

from __future__ import annotations

import errno
import io
import os
import secrets
import struct
import zlib
from collections.abc import Callable
from contextlib import suppress
from functools import cache
from os import PathLike
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms
from PIL.TiffImagePlugin import ImageFileDirectory_v2

FORMATS = ("jpeg", "png", "png16", "tiff16")
_SUFFIX = {"jpeg": ".jpg", "png": ".png", "png16": ".png", "tiff16": ".tif"}
_DTYPE = {"jpeg": np.uint8, "png": np.uint8, "png16": np.uint16, "tiff16": np.uint16}
_EXIF_HEADER = b"Exif\x00\x00"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TIFF_HEADER = b"II*\x00\x08\x00\x00\x00"  # little-endian, IFD0 right after
_TIFF_STRIP_BYTES = 1 << 18  # uncompressed bytes per TIFF strip (~256 KiB)
_NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP}


class OutputExistsError(FileExistsError):
    """The output file exists and overwriting was not allowed."""


@cache
def srgb_icc() -> bytes:
    """The sRGB ICC profile (LittleCMS's built-in sRGB) as bytes."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def output_suffix(fmt: str) -> str:
    """File suffix for `fmt`: ".jpg", ".png", ".png" or ".tif"."""
    _check_format(fmt)
    return _SUFFIX[fmt]


def write_image(
    path: str | PathLike[str],
    img: np.ndarray,
    fmt: str,
    *,
    quality: int = 92,
    exif: bytes | None = None,
    overwrite: bool = False,
) -> Path:
    """Encode `img` as `fmt` and write it to `path` atomically; returns the path.

    img: (H, W, 3) upright, sRGB-encoded pixels; uint8 (0..255) for "jpeg" and
    "png", uint16 (0..65535) for "png16" and "tiff16". quality: JPEG quality
    1..100 (ignored by the lossless formats). exif: block from `exif_bytes`
    (with or without the "Exif\\0\\0" header), or None for none. JPEGs use
    4:4:4 chroma at quality >= 90 and 4:2:0 below. Parent
    directories are created. Raises ValueError for a bad image/format/quality,
    OutputExistsError (a FileExistsError) when `path` exists and `overwrite`
    is False, and OSError naming `path` when it cannot be written (no
    permission, disk full, a parent that is a file, ...).
    """
    return write_file(path, _encode(img, fmt, quality, exif), overwrite=overwrite)


def write_file(path: str | PathLike[str], data: bytes, *, overwrite: bool = False,
               finish: Callable[[Path], None] | None = None) -> Path:
    """Write the encoded file `data` to `path` atomically; returns the path.

    finish: called with the hidden .part file once `data` is in it and before it gets its final
    name (e.g. to add metadata in place). Errors as `write_image`.
    """
    path = Path(path)
    if not overwrite and path.exists():
        raise _exists(path)
    try:
        _store(path, data, overwrite, finish)
    except OutputExistsError:
        raise
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise OSError(exc.errno, f"cannot write output ({reason})", str(path)) from exc
    return path


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"unknown output format {fmt!r}; expected one of {FORMATS}")


def _encode(img: np.ndarray, fmt: str, quality: int, exif: bytes | None) -> bytes:
    _check_format(fmt)
    if img.ndim != 3 or img.shape[2] != 3 or 0 in img.shape:
        raise ValueError(f"expected an (H, W, 3) image, got shape {img.shape}")
    if img.dtype != _DTYPE[fmt]:
        raise ValueError(f"{fmt} needs {np.dtype(_DTYPE[fmt])} pixels, got {img.dtype}")
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be 1..100, got {quality}")
    tiff = exif.removeprefix(_EXIF_HEADER) if exif else None
    return _ENCODERS[fmt](img, tiff, quality)


def _pillow(img: np.ndarray, exif: bytes | None, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    extra = {"exif": _EXIF_HEADER + exif} if exif else {}
    Image.fromarray(img).save(buf, fmt, icc_profile=srgb_icc(), **extra, **options)
    return buf.getvalue()


def _jpeg(img: np.ndarray, exif: bytes | None, quality: int) -> bytes:
    subsampling = "4:4:4" if quality >= 90 else "4:2:0"
    return _pillow(img, exif, "JPEG", quality=quality, subsampling=subsampling)


def _png(img: np.ndarray, exif: bytes | None, quality: int) -> bytes:
    return _pillow(img, exif, "PNG")


def _png16(img: np.ndarray, exif: bytes | None, quality: int) -> bytes:
    """16-bit RGB PNG built chunk by chunk (Pillow has no 48-bit RGB mode):
    IHDR, iCCP, eXIf, one IDAT with every row "Sub"-filtered, IEND."""
    h, w, _ = img.shape
    raw = img.astype(">u2").view(np.uint8).reshape(h, w * 6)
    sub = raw.copy()
    sub[:, 6:] -= raw[:, :-6]  # Sub filter: byte minus same byte of the previous pixel
    rows = np.hstack([np.ones((h, 1), np.uint8), sub])  # filter type 1 per row
    chunks = [
        (b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)),
        (b"iCCP", b"sRGB\x00\x00" + zlib.compress(srgb_icc())),
        *([(b"eXIf", exif)] if exif else []),
        (b"IDAT", zlib.compress(rows.tobytes())),
        (b"IEND", b""),
    ]
    return _PNG_SIGNATURE + b"".join(_png_chunk(kind, body) for kind, body in chunks)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body)
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def _tiff16(img: np.ndarray, exif: bytes | None, quality: int) -> bytes:
    """16-bit RGB TIFF, Deflate with horizontal predictor, in strips; IFD0
    built with Pillow's ImageFileDirectory_v2 so the EXIF's IFD0 tags, Exif
    IFD and GPS IFD are written as real TIFF sub-IFDs."""
    h, w, _ = img.shape
    rows = max(1, _TIFF_STRIP_BYTES // (w * 6))
    strips = [zlib.compress(_predict(img[y : y + rows]).tobytes()) for y in range(0, h, rows)]
    sizes = [len(s) for s in strips]
    ifd = ImageFileDirectory_v2(ifh=_TIFF_HEADER)
    if exif:
        _copy_exif(ifd, exif)
    for tag, value in {
        256: w, 257: h, 258: (16, 16, 16), 259: 8, 262: 2, 277: 3, 278: rows,
        282: 72, 283: 72, 284: 1, 296: 2, 317: 2, 34675: srgb_icc(),  # 72 dpi
        273: tuple(int(o) for o in np.cumsum([0, *sizes[:-1]])),  # Pillow adds the IFD's end
        279: tuple(sizes),
    }.items():
        ifd[tag] = value
    return _TIFF_HEADER + ifd.tobytes(len(_TIFF_HEADER)) + b"".join(strips)


def _predict(img: np.ndarray) -> np.ndarray:
    """TIFF predictor 2: each sample minus the same sample of the previous
    pixel in its row (mod 2**16), as little-endian uint16."""
    diff = img.astype("<u2")
    diff[:, 1:] -= img[:, :-1]
    return diff


def _copy_exif(ifd: ImageFileDirectory_v2, exif: bytes) -> None:
    """IFD0 tags of the EXIF block into `ifd`, with Exif/GPS IFDs as dicts."""
    parsed = Image.Exif()
    parsed.load(_EXIF_HEADER + exif)
    for tag, value in parsed.items():
        ifd[tag] = parsed.get_ifd(tag) if tag in (0x8769, 0x8825) else value


_ENCODERS: dict[str, Callable[[np.ndarray, bytes | None, int], bytes]] = {
    "jpeg": _jpeg, "png": _png, "png16": _png16, "tiff16": _tiff16,
}


def _exists(path: Path) -> OutputExistsError:
    return OutputExistsError(errno.EEXIST, "output exists (overwrite not allowed)", str(path))


def _store(path: Path, data: bytes, overwrite: bool, finish: Callable[[Path], None] | None = None) -> None:
    """Write `data` to a hidden .part file beside `path`, let `finish` edit it, fsync, move it in."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # mkdir's error when the parent is a file
        raise NotADirectoryError(errno.ENOTDIR, "Not a directory") from None
    part = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
    try:
        with open(part, "xb") as fh:  # O_EXCL; mode 0o666 minus umask
            fh.write(data)
        if finish is not None:
            finish(part)
        with open(part, "rb+") as fh:
            os.fsync(fh.fileno())
        _commit(part, path, overwrite)
    finally:
        part.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def _commit(part: Path, path: Path, overwrite: bool) -> None:
    """Give `part` the final name: os.replace when overwriting, else a hard
    link, which fails instead of clobbering a file created meanwhile. Where
    hard links are unsupported (FAT/exFAT cards, some network shares) it
    falls back to check-then-replace."""
    if overwrite:
        os.replace(part, path)
        return
    try:
        os.link(part, path)
    except FileExistsError:
        raise _exists(path) from None
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
        if path.exists():
            raise _exists(path) from None
        os.replace(part, path)


def _fsync_dir(directory: Path) -> None:
    """Persist the rename; best effort (not every OS/filesystem allows it)."""
    with suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
