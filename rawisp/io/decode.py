"""Decode a camera RAW file with LibRaw (rawpy) into a mosaic plus the metadata that matters.

Bayer sensors give the visible mosaic in DN; anything else LibRaw can read (X-Trans, linear
DNG, 4-colour data) is demosaicked by LibRaw itself into linear, white-balanced camera RGB so
the colour rendering downstream stays the same.
"""

from __future__ import annotations

import mmap
import os
import stat
import struct
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rawpy
import tifffile

from rawisp.colour import BAYER_PATTERNS, SRGB_TO_XYZ
from rawisp.io.metadata import LibRawFacts, Metadata, flip_to_orientation, libraw_facts, read_metadata
from rawisp.io.tiff import NOISE_PROFILE
from rawisp.io.whitebalance import WhiteBalanceChoice, white_balance



class DecodeError(Exception):
    """The file cannot be developed; the message is the reason, for one line of output."""


@dataclass
class RawImage:
    """A decoded RAW frame.

    Exactly one of ``mosaic`` (Bayer, DN) and ``rgb`` (already demosaicked by LibRaw; linear,
    white-balanced camera RGB, 1.0 = white level) is set.
    """

    path: str
    mosaic: np.ndarray | None  # (H, W) uint16 DN, visible area
    rgb: np.ndarray | None  # (H, W, 3) float32 linear white-balanced camera RGB
    cfa: str  # colours of the 2x2 at (0,0), (0,1), (1,0), (1,1), e.g. "RGGB"
    black: np.ndarray  # (2, 2) float black level in DN at each 2x2 position
    white: float  # DN
    wb: np.ndarray  # (3,) white-balance gains R, G, B with G = 1 (see rawisp.io.whitebalance)
    srgb_from_cam: np.ndarray  # (3, 3) white-balanced camera RGB -> linear sRGB, rows sum to 1 (synth: cam_from_srgb)
    orientation: int  # EXIF orientation 1..8 of the stored pixels
    noise: tuple[float, float] | None  # (shot, read std) in normalised raw units, if the file says
    metadata: Metadata = field(default_factory=Metadata)
    warnings: list[str] = field(default_factory=list)
    wb_source: str = "as-shot"  # where ``wb`` came from: as-shot, LibRaw auto, daylight, user, unity

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of the stored (not yet rotated) frame in pixels."""
        data = self.mosaic if self.mosaic is not None else self.rgb
        return data.shape[:2]


def decode(path: str | Path, wb: WhiteBalanceChoice = "camera") -> RawImage:
    """Read ``path`` with the white balance ``wb`` (see rawisp.io.whitebalance); raise DecodeError
    with a one-line reason when it cannot be developed."""
    path = Path(path)
    _check_file(path)
    try:
        with _libraw_quiet(), rawpy.imread(str(path)) as raw:
            image = _from_libraw(raw, path, wb)
            facts = libraw_facts(raw)  # rawpy unpacks the frame for these: after the size check
    except DecodeError:
        raise
    except rawpy.LibRawFileUnsupportedError:
        raise DecodeError(_not_raw(path) or _damage(path) or _unsupported(path)) from None
    except (rawpy.LibRawUnsufficientMemoryError, rawpy.LibRawMemPoolOverflowError):
        raise DecodeError("LibRaw ran out of memory decoding it") from None
    except (rawpy.LibRawIOError, rawpy.LibRawDataError):
        raise DecodeError(_not_raw(path) or _damage(path, whole=False)
                          or "truncated or corrupt file (LibRaw could not read the image data)") from None
    except rawpy.LibRawError as exc:
        raise DecodeError(f"LibRaw refused it: {_libraw_message(exc)}") from None
    except PermissionError:
        raise DecodeError("permission denied") from None
    image.metadata = read_metadata(path, facts)
    image.warnings += image.metadata.warnings
    image.noise = _dng_noise_profile(path)
    return image


# signatures of files people mistake for RAW files (a camera's JPEG, a renamed export...)
_NOT_RAW_SIGNATURES = {
    b"\xff\xd8\xff": "a JPEG picture",
    b"\x89PNG\r\n\x1a\n": "a PNG picture",
    b"GIF8": "a GIF picture",
    b"%PDF-": "a PDF document",
    b"PK\x03\x04": "a ZIP archive",
}
_TEXT_CONTROLS = set(range(32)) - {9, 10, 12, 13}  # bytes that do not occur in text (tab, LF, FF, CR do)


def _not_raw(path: Path) -> str | None:
    """"not a RAW file (what it is)" when a file LibRaw refused is recognisably something else,
    else None (then it may well be a damaged RAW file)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return None
    for signature, kind in _NOT_RAW_SIGNATURES.items():
        if head.startswith(signature):
            return f"not a RAW file ({kind})"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not just a character cut at the end of the sample
            return None
    if head and not _TEXT_CONTROLS.intersection(head):
        return "not a RAW file (it holds text)"
    return None


# RAW containers that one vendor's cameras write and LibRaw reads whatever the model: a file of one
# that LibRaw refuses is damaged, not of an unsupported camera. (Generic TIFF-based RAW files, DNG,
# NEF, ARW, PEF..., come in variants LibRaw may not read: a whole one it refuses is unsupported.)
_VENDOR_CONTAINERS = ("CR2", "CRW", "CR3", "RAF", "ORF", "RW2", "MRW")
# DNG compressions LibRaw decodes (uncompressed, lossless JPEG, Deflate, lossy JPEG), and names of others
_DNG_COMPRESSIONS = {1, 7, 8, 34892}
_COMPRESSION_NAMES = {9: "GoPro VC-5", 52546: "JPEG XL"}


def _container(head: bytes) -> str | None:
    """The RAW container a file starting with ``head`` (16 bytes or more) is: one of
    _VENDOR_CONTAINERS, "X3F", "TIFF" (any other TIFF-based RAW), or None."""
    if head[6:14] == b"HEAPCCDR" and head[:2] in (b"II", b"MM"):
        return "CRW"
    if head[4:11] == b"ftypcrx":
        return "CR3"
    for signature, kind in ((b"FUJIFILMCCD-RAW", "RAF"), (b"\0MRM", "MRW"), (b"FOVb", "X3F"), (b"IIRO", "ORF"),
                            (b"IIRS", "ORF"), (b"MMOR", "ORF"), (b"IIU\0", "RW2")):
        if head.startswith(signature):
            return kind
    if head[:4] in (b"II*\0", b"MM\0*"):
        return "CR2" if head[8:10] == b"CR" else "TIFF"
    return None


def _damage(path: Path, whole: bool = True) -> str | None:
    """Why a file LibRaw refused is damaged, when its container is one LibRaw knows: truncated (its
    structure refers to bytes past its end), its index does not hold together, or (with ``whole``:
    a vendor's own container that looks whole) unreadable all the same; None when it looks whole,
    or is no RAW container."""
    try:
        with _mapped(path) as data:
            kind = _container(data[:16])
            if kind is None:
                return None
            name = kind if kind in (*_VENDOR_CONTAINERS, "X3F") else (path.suffix[1:].upper() or "TIFF-based")
            try:
                end = _STRUCTURE_END[kind](data) if kind in _STRUCTURE_END else None
            except (struct.error, ValueError):  # a length or offset that leads nowhere inside the file
                return f"truncated or damaged {name} file: its structure does not fit in its {len(data)} bytes"
            if end is not None and end > len(data):
                return (f"truncated or damaged {name} file: {len(data)} bytes, its structure refers to data up to "
                        f"byte {end}")
    except OSError:
        return None
    if whole and kind in _VENDOR_CONTAINERS:
        return f"damaged {name} file: LibRaw reads {name} files but cannot read this one"
    return None


@contextmanager
def _mapped(path: Path) -> Iterator[mmap.mmap]:
    """The file's bytes, mapped read-only (a damaged file may be large); OSError when it cannot be."""
    with open(path, "rb") as fh:
        try:
            data = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError as exc:  # an empty file
            raise OSError(str(exc)) from None
        with data:
            yield data


def _unsupported(path: Path) -> str:
    """Why a whole file LibRaw refused is unsupported: a DNG's compression it cannot decode (GoPro's
    VC-5 in a GPR), else that LibRaw cannot read the format."""
    try:
        with _mapped(path) as data:
            ifds = _tiff_ifds(data)[1] if _container(data[:16]) == "TIFF" else []
    except (OSError, struct.error, ValueError):
        ifds = []
    if ifds and 50706 in ifds[0]:  # DNGVersion
        raw = [ifd.get(259, (1,))[0] for ifd in ifds if ifd.get(254, (0,))[0] == 0]  # NewSubFileType 0
        odd = [c for c in raw if c not in _DNG_COMPRESSIONS]
        if odd:
            known = f" ({_COMPRESSION_NAMES[odd[0]]})" if odd[0] in _COMPRESSION_NAMES else ""
            return f"unsupported format: DNG compression {odd[0]}{known}, which LibRaw cannot decode"
    return "unsupported format (LibRaw cannot read it)"


_TIFF_TYPE_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8}
_TIFF_INTEGERS = {1: "B", 3: "H", 4: "I", 13: "I"}  # BYTE, SHORT, LONG, IFD
_DATA_TAGS = ((273, 279), (324, 325), (513, 514))  # strips, tiles, JPEG thumbnail: (offsets, byte counts)


def _tiff_ifds(data: bytes) -> tuple[int, list[dict[int, tuple[int, ...]]]]:
    """Walk a classic TIFF's IFDs (chain, SubIFDs, Exif IFD): (the farthest byte its structure and
    data refer to, past the end of a truncated file; the integer tags of each IFD read whole)."""
    order = "<" if data[:2] == b"II" else ">"
    todo, seen, ifds, end = [struct.unpack_from(order + "I", data, 4)[0]], set(), [], 8
    while todo and len(seen) < 256:
        offset = todo.pop(0)
        if offset == 0 or offset in seen:
            continue
        seen.add(offset)
        if offset + 2 > len(data):  # an IFD past the end: the file is cut before it
            end = max(end, offset + 2)
            continue
        count = struct.unpack_from(order + "H", data, offset)[0]
        end = max(end, offset + 6 + 12 * count)
        if offset + 6 + 12 * count > len(data):
            continue
        tags: dict[int, tuple[int, ...]] = {}
        for at in range(offset + 2, offset + 2 + 12 * count, 12):
            code, kind, n = struct.unpack_from(order + "HHI", data, at)
            size = _TIFF_TYPE_SIZE.get(kind, 1) * n
            where = at + 8 if size <= 4 else struct.unpack_from(order + "I", data, at + 8)[0]
            end = max(end, where + size)
            if kind in _TIFF_INTEGERS and where + size <= len(data) and n <= 65536:
                tags[code] = struct.unpack_from(f"{order}{n}{_TIFF_INTEGERS[kind]}", data, where)
        ifds.append(tags)
        for offsets, counts in _DATA_TAGS:
            end = max([end, *(o + c for o, c in zip(tags.get(offsets, ()), tags.get(counts, ())))])
        todo += [*tags.get(330, ()), *tags.get(34665, ())]  # SubIFDs, Exif IFD
        todo.append(struct.unpack_from(order + "I", data, offset + 2 + 12 * count)[0])
    return end, ifds


def _ciff_end(data: bytes) -> int:
    """The end of a Canon CRW (CIFF)'s root heap as its index says; ValueError when the index (at
    the heap's end) or a record's data does not fit inside it."""
    order = "<" if data[:2] == b"II" else ">"
    start = struct.unpack_from(order + "I", data, 2)[0]
    _ciff_heap(data, order, start, len(data) - start, 0)
    return len(data)


def _ciff_heap(data: bytes, order: str, start: int, length: int, depth: int) -> None:
    table = struct.unpack_from(order + "I", data, start + length - 4)[0]
    count = struct.unpack_from(order + "H", data, start + table)[0]
    if depth > 8 or table + 2 + 10 * count + 4 > length:
        raise ValueError("CIFF index outside its heap")
    for at in range(start + table + 2, start + table + 2 + 10 * count, 10):
        tag, size, offset = struct.unpack_from(order + "HII", data, at)
        if tag >> 14:  # the value is in the record itself
            continue
        if offset + size > table:
            raise ValueError("CIFF record outside its heap")
        if (tag >> 8) & 0x38 in (0x28, 0x30):  # a sub-heap
            _ciff_heap(data, order, start + offset, size, depth + 1)


def _bmff_end(data: bytes) -> int:
    """The end of the last top-level box of an ISO base media file (CR3)."""
    at = 0
    while at + 8 <= len(data):
        size, = struct.unpack_from(">I", data, at)
        if size == 1:
            size, = struct.unpack_from(">Q", data, at + 8)
        elif size == 0:  # to the end of the file
            return len(data)
        if size < 8:
            raise ValueError("box shorter than its header")
        at += size
    return at


def _raf_end(data: bytes) -> int:
    """The end of a Fujifilm RAF's embedded JPEG, CFA header and CFA data, as its header says."""
    parts = struct.unpack_from(">6I", data, 84)
    return max(offset + length for offset, length in zip(parts[::2], parts[1::2]))


def _x3f_end(data: bytes) -> int:
    """A Sigma X3F's directory (its offset is the file's last 4 bytes) must start with "SECd"."""
    directory, = struct.unpack_from("<I", data, len(data) - 4)
    if data[directory:directory + 4] != b"SECd":
        raise ValueError("no X3F directory where the file says")
    return len(data)


_STRUCTURE_END = {"TIFF": lambda data: _tiff_ifds(data)[0], "CR2": lambda data: _tiff_ifds(data)[0],
                  "ORF": lambda data: _tiff_ifds(data)[0], "RW2": lambda data: _tiff_ifds(data)[0],
                  "CRW": _ciff_end, "CR3": _bmff_end, "RAF": _raf_end, "X3F": _x3f_end}


def read_header(path: str | Path) -> Metadata:
    """The metadata of ``path`` without its pixels, for files whose frame cannot be decoded: exiv2's
    reading plus LibRaw's where LibRaw can open the file."""
    facts: LibRawFacts | None = None
    try:
        with _libraw_quiet(), rawpy.imread(str(path)) as raw:
            _check_size(Path(path), raw.sizes.width * raw.sizes.height)  # rawpy unpacks for the facts
            facts = libraw_facts(raw)
    except (rawpy.LibRawError, OSError, DecodeError):
        pass
    return read_metadata(path, facts)


def _check_file(path: Path) -> None:
    """Refuse what is not a readable, non-empty regular file, with the reason."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise DecodeError("no such file") from None
    except OSError as exc:  # a symbolic link loop, a name too long, a folder without permission...
        raise DecodeError((exc.strerror or str(exc)).lower()) from None
    if stat.S_ISDIR(info.st_mode):
        raise DecodeError("is a directory")
    if not stat.S_ISREG(info.st_mode):
        raise DecodeError("not a regular file (a pipe, socket or device)")
    try:
        with open(path, "rb"):  # LibRaw would call an unreadable file corrupt
            pass
    except OSError as exc:
        raise DecodeError(f"cannot read it ({(exc.strerror or str(exc)).lower()})") from None
    if info.st_size == 0:
        raise DecodeError("empty file")


@contextmanager
def _libraw_quiet() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null meanwhile: LibRaw prints its own diagnostics there
    ("Unexpected end of file"), and rawisp reports the problem in one line of its own."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
    except (OSError, ValueError):  # no usable stderr: nothing to silence
        yield
        return
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _libraw_message(exc: Exception) -> str:
    """LibRaw's error text without the bytes-literal wrapping rawpy gives it."""
    arg = exc.args[0] if exc.args else exc
    return (arg.decode(errors="replace") if isinstance(arg, bytes) else str(arg)).rstrip(".").lower()


def _from_libraw(raw: rawpy.RawPy, path: Path, choice: WhiteBalanceChoice) -> RawImage:
    # before anything that unpacks the pixels: a header claiming a huge frame in a small file
    # must not make LibRaw allocate for it
    _check_size(path, raw.sizes.width * raw.sizes.height)
    # the Bayer frame is read before the white balance: LibRaw's auto white balance runs a
    # half-size processing, after which LibRaw reports another pattern and another visible frame
    cfa = _bayer_pattern(raw)
    frame = _bayer_frame(raw) if cfa is not None else None
    srgb_from_cam, matrix_warning = _colour_matrix(raw)
    balance, warnings = white_balance(raw, choice, None if frame is None else (frame[0], cfa, *frame[1:]),
                                      srgb_from_cam)
    wb = balance.gains
    warnings += matrix_warning
    common = dict(path=str(path), wb=wb, srgb_from_cam=srgb_from_cam, wb_source=balance.source,
                  orientation=flip_to_orientation(raw.sizes.flip), noise=None, warnings=warnings)
    if frame is None:
        rgb = _libraw_demosaic(raw, wb)
        return RawImage(mosaic=None, rgb=rgb, cfa="", black=np.zeros((2, 2)), white=1.0, **common)
    mosaic, black, white = frame
    return RawImage(mosaic=mosaic, rgb=None, cfa=cfa, black=black, white=white, **common)


def _bayer_frame(raw: rawpy.RawPy) -> tuple[np.ndarray, np.ndarray, float]:
    """The visible mosaic (H, W) uint16 DN, the black level (2, 2) DN of each site, and the white
    level DN of a Bayer frame; DecodeError when they make no picture."""
    mosaic = np.array(raw.raw_image_visible, dtype=np.uint16)
    if mosaic.ndim != 2 or min(mosaic.shape) < 2:
        raise DecodeError("no image data (empty raw frame)")
    colours = raw.raw_colors_visible[:2, :2]
    black = np.asarray(raw.black_level_per_channel, dtype=np.float64)[colours]
    white = float(raw.white_level)
    if not white > black.max():
        raise DecodeError(f"white level {white:g} is not above black level {black.max():g}")
    _check_content(mosaic, black, white)
    return mosaic, black, white


def _bayer_pattern(raw: rawpy.RawPy) -> str | None:
    """The 2x2 CFA string of the visible area, or None for non-Bayer data."""
    if raw.raw_type != rawpy.RawType.Flat or raw.num_colors != 3:
        return None
    pattern = raw.raw_pattern
    if pattern is None or pattern.shape != (2, 2):
        return None
    desc = raw.color_desc.decode("ascii")
    cfa = "".join(desc[c] for c in raw.raw_colors_visible[:2, :2].ravel())
    return cfa if cfa in BAYER_PATTERNS else None  # e.g. "GGBR" of a corrupt CFAPattern is not Bayer


def _colour_matrix(raw: rawpy.RawPy) -> tuple[np.ndarray, list[str]]:
    """Camera (white-balanced) -> linear sRGB from LibRaw's rgb_cam or its XYZ matrix."""
    rgb_cam = np.asarray(raw.color_matrix, dtype=np.float64)[:, :3]
    if np.abs(rgb_cam).sum() > 0 and _usable(rgb_cam):
        return rgb_cam, []
    cam_xyz = np.asarray(raw.rgb_xyz_matrix, dtype=np.float64)[:3]
    if np.abs(cam_xyz).sum() > 0 and _usable(cam_xyz):
        cam_rgb = cam_xyz @ SRGB_TO_XYZ
        with np.errstate(all="ignore"):
            cam_rgb /= cam_rgb.sum(axis=1, keepdims=True)
        if _usable(cam_rgb):
            return np.linalg.inv(cam_rgb), []
    return np.eye(3), ["no usable colour matrix in the file; colours are camera RGB"]


def _usable(matrix: np.ndarray) -> bool:
    """A finite, well-conditioned 3x3 matrix (a corrupt file can give NaN or a singular one)."""
    return bool(np.all(np.isfinite(matrix))) and np.linalg.cond(matrix) < 1e6


def _libraw_demosaic(raw: rawpy.RawPy, wb: np.ndarray) -> np.ndarray:
    """Non-Bayer data: LibRaw's demosaic to linear camera RGB, white-balanced, 1.0 = white."""
    rgb = raw.postprocess(output_color=rawpy.ColorSpace.raw, gamma=(1, 1), no_auto_bright=True,
                          output_bps=16, user_wb=[float(wb[0]), 1.0, float(wb[2]), 1.0],
                          highlight_mode=rawpy.HighlightMode.Clip, user_flip=0)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise DecodeError("not a colour image (monochrome sensors are not supported)")
    if rgb.max() == 0:
        raise DecodeError("no image data (all pixels black)")
    return rgb.astype(np.float32) / 65535.0


# Even lossy raw codecs (GoPro VC-5) spend over 1 bit a pixel; a file far smaller than that
# cannot hold the frame its header announces, whatever LibRaw returns for it.
MIN_BITS_PER_PIXEL = 0.25


def _check_size(path: Path, pixels: int) -> None:
    """Refuse a file too small to hold ``pixels`` pixels (a stub or a truncated copy)."""
    size = path.stat().st_size
    if size * 8 < pixels * MIN_BITS_PER_PIXEL:
        raise DecodeError(f"truncated file: {size} bytes cannot hold a {pixels / 1e6:.1f} MP frame")


def _check_content(mosaic: np.ndarray, black: np.ndarray, white: float) -> None:
    """Refuse frames that hold no picture: all at or below black, all clipped, or constant.

    Looks at a regular sample of about 512x512 pixels; LibRaw returns such frames for stubs and
    pruned files instead of failing. (Dark frames are kept: their noise lifts them above black.)
    """
    sample = mosaic[:: max(1, mosaic.shape[0] // 512), :: max(1, mosaic.shape[1] // 512)]
    # a signal of 1/10000 of the range renders black: such data does not match the file's levels
    # (a corrupt BitsPerSample: 1-bit data under a 16-bit white level); real dark frames' noise is higher
    floor = black.min() + 1e-4 * (white - black.min())
    if sample.max() <= floor:
        raise DecodeError("no image data (every pixel is at or below the black level)" if sample.max() <= black.min()
                          else f"no image data (every pixel is within {floor - black.min():.1f} DN of the black level)")
    if sample.min() >= white:
        raise DecodeError("no image data (every pixel is clipped)")
    if sample.min() == sample.max():
        raise DecodeError(f"no image data (every pixel has the value {int(sample.min())})")


def _dng_noise_profile(path: Path) -> tuple[float, float] | None:
    """(shot, read std) from a DNG NoiseProfile tag (variance = S*x + O, x normalised), in IFD0 or a
    SubIFD (the raw IFD of Adobe's layout, where rawisp's DNGs have it)."""
    if path.suffix.lower() != ".dng":
        return None
    try:
        with tifffile.TiffFile(path) as tif:
            for page in (p for top in tif.pages for p in (top, *(top.pages or []))):
                tag = page.tags.get(NOISE_PROFILE)
                if tag is not None:
                    s, o = float(tag.value[0]), float(tag.value[1])
                    if not (s <= 1.0 and o <= 1.0):  # NaN, or noise above the full range: corrupt
                        return None  # the learned engine estimates the noise from the pixels instead
                    return (max(s, 0.0), float(np.sqrt(max(o, 0.0))))
    except Exception:  # a DNG that LibRaw reads but tifffile does not: no profile, not an error
        return None
    return None
