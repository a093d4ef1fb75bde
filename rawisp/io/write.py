"""Output files: JPEG, 8/16-bit PNG and 16-bit TIFF, written atomically.

Every format embeds the sRGB ICC profile and, when given, the source's EXIF and
XMP (`rawisp.io.metadata.embed_metadata`, exiv2). Files are encoded in memory, written to a hidden
``.<name>.<pid>.<random>.part`` file next to the target, fsynced, then moved
into place, so the final name never holds a partial file. The writer holds an
exclusive ``flock`` on its ``.part`` file until it is gone; the kernel drops
the lock when the writer dies, however it dies, so :func:`remove_stale_parts`
can tell a file another process is still writing from one a killed writer
left behind.
"""

from __future__ import annotations

import errno
import fcntl
import io
import os
import re
import secrets
import struct
import unicodedata
import zlib
from collections.abc import Callable
from typing import BinaryIO
from contextlib import suppress
from functools import cache
from os import PathLike
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms
from PIL.TiffImagePlugin import ImageFileDirectory_v2

from rawisp import __version__
from rawisp.io.metadata import Metadata, embed_metadata, read_software

FORMATS = ("jpeg", "png", "png16", "tiff16")
# names users type for a format (darktable-cli/rawtherapee-cli habits) -> the format written;
# rawisp writes TIFF only as 16-bit
FORMAT_ALIASES = {"jpg": "jpeg", "tif": "tiff16", "tiff": "tiff16"}
_SUFFIX = {"jpeg": ".jpg", "png": ".png", "png16": ".png", "tiff16": ".tif"}
_DTYPE = {"jpeg": np.uint8, "png": np.uint8, "png16": np.uint16, "tiff16": np.uint16}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TIFF_HEADER = b"II*\x00\x08\x00\x00\x00"  # little-endian, IFD0 right after
_TIFF_STRIP_BYTES = 1 << 18  # uncompressed bytes per TIFF strip (~256 KiB)
_NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP}


class OutputExistsError(FileExistsError):
    """The output file exists and overwriting was not allowed."""


class ForeignFileError(OutputExistsError):
    """The output's name is taken by a file rawisp did not write (a camera's JPEG, a user's edit),
    or differs only by case from the name of one (one file on FAT/exFAT cards, macOS and Windows):
    such a file is never replaced, not even when overwriting. ``filename`` is that file."""


# the first word of the EXIF Software tag of every file rawisp writes ("rawisp 0.1.0"): how it
# knows its own outputs, the only files it replaces
SOFTWARE = "rawisp"


# ICC header bytes 24..35: the profile's creation date and time (six big-endian uint16). LittleCMS
# stamps the moment the profile is made; a fixed one keeps outputs byte-reproducible.
_ICC_DATE = slice(24, 36)
_ICC_FIXED_DATE = struct.pack(">6H", 2024, 1, 1, 0, 0, 0)


@cache
def srgb_icc() -> bytes:
    """The sRGB ICC profile (LittleCMS's built-in sRGB) as bytes, dated 2024-01-01 00:00:00.

    Its profile ID (bytes 84..99, an MD5 that would cover the date) is left zero by LittleCMS,
    which the ICC specification allows ("not calculated").
    """
    icc = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    icc[_ICC_DATE] = _ICC_FIXED_DATE
    assert not any(icc[84:100]), "profile ID set: it would have to be recomputed"
    return bytes(icc)


def format_name(name: str) -> str:
    """The format called ``name`` (a format of FORMATS or an alias such as "jpg" or "TIFF")."""
    key = name.lower()
    key = FORMAT_ALIASES.get(key, key)
    _check_format(key)
    return key


def output_suffix(fmt: str) -> str:
    """File suffix for `fmt`: ".jpg", ".png", ".png" or ".tif"."""
    _check_format(fmt)
    return _SUFFIX[fmt]


def output_bits(fmt: str) -> int:
    """Bits per sample that `fmt` stores: 8 for "jpeg" and "png", 16 for "png16", "tiff16" and
    "dng" (the linear DNG, written by :mod:`rawisp.io.dng`)."""
    if fmt == "dng":
        return 16
    _check_format(fmt)
    return np.iinfo(_DTYPE[fmt]).bits


def write_image(
    path: str | PathLike[str],
    img: np.ndarray,
    fmt: str,
    *,
    quality: int = 92,
    metadata: Metadata | None = None,
    overwrite: bool = False,
) -> Path:
    """Encode `img` as `fmt` and write it to `path` atomically; returns the path.

    img: (H, W, 3) upright, sRGB-encoded pixels; uint8 (0..255) for "jpeg" and
    "png", uint16 (0..65535) for "png16" and "tiff16". quality: JPEG quality
    1..100 (ignored by the lossless formats). metadata: the source's record
    (`rawisp.io.metadata.read_metadata`), written with Orientation 1 and Software
    "rawisp <version>"; None writes no tags of a source, only those (Software is how rawisp knows
    its own files: see `claim_output`). JPEGs use
    4:4:4 chroma at quality >= 90 and 4:2:0 below. Parent
    directories are created. Raises ValueError for a bad image/format/quality,
    OutputExistsError (a FileExistsError) when `path` exists and `overwrite`
    is False, ForeignFileError (an OutputExistsError) when its name is taken by
    a file rawisp did not write (see `claim_output`), and OSError naming `path`
    when it cannot be written (no permission, disk full, a parent that is a
    file, ...).
    """
    data = _encode(img, fmt, quality)
    data = embed_metadata(data, metadata if metadata is not None else Metadata(), f"{SOFTWARE} {__version__}")
    return write_file(path, data, overwrite=overwrite)


def write_file(path: str | PathLike[str], data: bytes, *, overwrite: bool = False) -> Path:
    """Write the encoded file `data` to `path` atomically; returns the path written (that of
    rawisp's own file whose name differs from `path` only by case, when there is one: see
    `claim_output`). Errors as `write_image`."""
    path = claim_output(Path(path), overwrite)
    try:
        _store(path, data, overwrite)
    except OutputExistsError:
        raise
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise OSError(exc.errno, f"cannot write output ({reason})", str(path)) from exc
    return path


def claim_output(path: Path, overwrite: bool = False, names: dict[str, tuple[str, ...]] | None = None) -> Path:
    """The name to write the output `path` under, or the reason not to write it.

    A file whose name equals `path`'s but for case (``IMG_0001.JPG`` for ``IMG_0001.jpg``) is the
    same file on FAT/exFAT cards, macOS and Windows, so it counts as `path`'s file, and no second
    name differing only by case is ever made. When there is no such file: `path`. When rawisp wrote
    it (EXIF Software "rawisp ..."): its name, with `overwrite`; else OutputExistsError. When
    rawisp did not write it (a camera's JPEG, a user's edit, anything without that tag):
    ForeignFileError, also with `overwrite`. ``names``: `case_folded_names` of the folder, when
    the caller already has them."""
    taken = taken_name(path, names)
    if taken is None:
        return path
    if not written_by_rawisp(taken):
        reason = f"{taken} exists and rawisp did not write it (a camera's JPEG, an edit?)"
        if taken.name != path.name:
            reason += f"; {path.name} would be the same file on FAT/exFAT cards, macOS and Windows"
        raise ForeignFileError(errno.EEXIST, reason, str(taken))
    if not overwrite:
        raise _exists(taken)
    return taken


def taken_name(path: Path, names: dict[str, tuple[str, ...]] | None = None) -> Path | None:
    """The existing entry of `path`'s folder whose name is `path`'s but for case (`path` itself
    when it exists), or None. ``names``: `case_folded_names` of the folder, else it is listed now."""
    if names is None:
        names = case_folded_names(path.parent)
    variants = names.get(fold_case(path.name), ())
    if path.name in variants:
        return path
    return path.with_name(variants[0]) if variants else None


def case_folded_names(folder: Path) -> dict[str, tuple[str, ...]]:
    """The names in `folder` (sorted) by their `fold_case` form; empty when it cannot be listed (a
    folder not made yet)."""
    try:
        listed = sorted(os.listdir(folder))
    except OSError:
        return {}
    names: dict[str, tuple[str, ...]] = {}
    for name in listed:
        names[fold_case(name)] = (*names.get(fold_case(name), ()), name)
    return names


def fold_case(name: str) -> str:
    """`name` as disks that ignore case and Unicode normalisation compare it (FAT/exFAT, NTFS on
    Windows, APFS and HFS+ on macOS): composed, then case-folded."""
    return unicodedata.normalize("NFC", name).casefold()


def written_by_rawisp(path: Path) -> bool:
    """Whether `path` is a file rawisp wrote: its EXIF Software tag is "rawisp" or "rawisp VERSION"
    (every output carries it). An edit saved by another program (which writes its own Software),
    a camera's JPEG, a file without EXIF or one exiv2 cannot read are not."""
    software = read_software(path)
    return software is not None and software.split(" ")[0] == SOFTWARE


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"unknown output format {fmt!r}; expected one of {FORMATS}")


def _encode(img: np.ndarray, fmt: str, quality: int) -> bytes:
    _check_format(fmt)
    if img.ndim != 3 or img.shape[2] != 3 or 0 in img.shape:
        raise ValueError(f"expected an (H, W, 3) image, got shape {img.shape}")
    if img.dtype != _DTYPE[fmt]:
        raise ValueError(f"{fmt} needs {np.dtype(_DTYPE[fmt])} pixels, got {img.dtype}")
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be 1..100, got {quality}")
    return _ENCODERS[fmt](img, quality)


def _pillow(img: np.ndarray, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, fmt, icc_profile=srgb_icc(), **options)
    return buf.getvalue()


def _jpeg(img: np.ndarray, quality: int) -> bytes:
    subsampling = "4:4:4" if quality >= 90 else "4:2:0"
    return _pillow(img, "JPEG", quality=quality, subsampling=subsampling)


def _png(img: np.ndarray, quality: int) -> bytes:
    return _pillow(img, "PNG")


def _png16(img: np.ndarray, quality: int) -> bytes:
    """16-bit RGB PNG built chunk by chunk (Pillow has no 48-bit RGB mode):
    IHDR, iCCP, one IDAT with every row "Sub"-filtered, IEND."""
    h, w, _ = img.shape
    raw = img.astype(">u2").view(np.uint8).reshape(h, w * 6)
    sub = raw.copy()
    sub[:, 6:] -= raw[:, :-6]  # Sub filter: byte minus same byte of the previous pixel
    rows = np.hstack([np.ones((h, 1), np.uint8), sub])  # filter type 1 per row
    chunks = [
        (b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)),
        (b"iCCP", b"sRGB\x00\x00" + zlib.compress(srgb_icc())),
        (b"IDAT", zlib.compress(rows.tobytes())),
        (b"IEND", b""),
    ]
    return _PNG_SIGNATURE + b"".join(_png_chunk(kind, body) for kind, body in chunks)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body)
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def _tiff16(img: np.ndarray, quality: int) -> bytes:
    """16-bit RGB TIFF, Deflate with horizontal predictor, in strips; IFD0
    built with Pillow's ImageFileDirectory_v2."""
    h, w, _ = img.shape
    rows = max(1, _TIFF_STRIP_BYTES // (w * 6))
    strips = [zlib.compress(_predict(img[y : y + rows]).tobytes()) for y in range(0, h, rows)]
    sizes = [len(s) for s in strips]
    ifd = ImageFileDirectory_v2(ifh=_TIFF_HEADER)
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


_ENCODERS: dict[str, Callable[[np.ndarray, int], bytes]] = {
    "jpeg": _jpeg, "png": _png, "png16": _png16, "tiff16": _tiff16,
}


def _exists(path: Path) -> OutputExistsError:
    return OutputExistsError(errno.EEXIST, "output exists (overwrite not allowed)", str(path))


def _store(path: Path, data: bytes, overwrite: bool) -> None:
    """Write `data` to a hidden, locked .part file beside `path`, fsync, move it in."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # mkdir's error when the parent is a file
        raise NotADirectoryError(errno.ENOTDIR, "Not a directory") from None
    fh, part = _open_part(path)
    _OWN_PARTS.add(part)
    try:
        with fh:
            try:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
                _commit(part, path, overwrite)
            finally:
                part.unlink(missing_ok=True)  # while still locked
    finally:
        _OWN_PARTS.discard(part)
    _fsync_dir(path.parent)


# .part files this process is writing now (see discard_own_parts)
_OWN_PARTS: set[Path] = set()
# .NAME.PID.TOKEN.part, and .NAME.TOKEN.part as rawisp 0.x before the pid wrote them
# (the name is matched lazily: greedily it would swallow the pid, and no output's name would match)
_PART_NAME = re.compile(r"^\.(?P<name>.+?)\.(?:\d+\.)?[0-9a-f]{8}\.part$")


def _open_part(path: Path) -> tuple[BinaryIO, Path]:
    """Create and lock a new ``.part`` file for `path`; returns (open binary file, its path).

    Between creating the file and locking it another process's clean-up could lock and delete it
    (to that process the file is not locked, so not in use): after the lock is taken, the name
    must still lead to this very file, else a new name is tried."""
    for attempt in range(_ATTEMPTS):
        part = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.part")
        try:
            fh = open(part, "xb")  # O_EXCL; mode 0o666 minus umask
        except FileNotFoundError:  # the folder went (another run removing an empty folder): again
            if attempt == _ATTEMPTS - 1:
                raise
            path.parent.mkdir(parents=True, exist_ok=True)
            continue
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)  # waits only while a clean-up holds it
            if os.stat(part).st_ino == os.fstat(fh.fileno()).st_ino:
                return fh, part
        except FileNotFoundError:  # deleted by a clean-up before the lock: try another name
            pass
        except BaseException:
            fh.close()
            part.unlink(missing_ok=True)
            raise
        fh.close()
    raise OSError(errno.EAGAIN, f"no temporary file survived {_ATTEMPTS} attempts", str(path))


_ATTEMPTS = 5  # tries at a .part file that other runs' clean-ups keep away (each needs a rare race)


def remove_stale_parts(folder: Path, output_name: str | None = None) -> list[Path]:
    """Delete the ``.part`` files in `folder` that no live process is writing; returns them.

    A killed writer (``kill -9``, a crash, a power cut) leaves its ``.part`` file behind; a
    writer still at work holds a lock on it, and its file is left alone. ``output_name``
    limits the clean-up to the temporary files of that output. Missing folders are no error.
    """
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        match = _PART_NAME.match(name)
        if match is None or (output_name is not None and match["name"] != output_name):
            continue
        part = Path(folder) / name
        if _remove_if_unlocked(part):
            removed.append(part)
    return removed


def _remove_if_unlocked(part: Path) -> bool:
    try:
        fd = os.open(part, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:  # gone meanwhile (its writer finished), or not ours to read
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # locked: a live writer
            return False
        try:
            if os.stat(part).st_ino != os.fstat(fd).st_ino:  # renamed or replaced meanwhile
                return False
        except FileNotFoundError:
            return False
        part.unlink(missing_ok=True)
        return True
    finally:
        os.close(fd)


def discard_own_parts() -> None:
    """Delete the ``.part`` files this process is writing (for a worker about to exit abruptly:
    its own lock would keep :func:`remove_stale_parts` from them)."""
    for part in list(_OWN_PARTS):
        part.unlink(missing_ok=True)


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
