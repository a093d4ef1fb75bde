"""Mutations of RAW files for the fuzzer (:mod:`fuzz`): flipped bytes, truncations, splices, and TIFF
tags given absurd values (huge or zero sizes, zero or huge WhiteLevel, BlackLevel above white,
CFA colours out of range, NaN NoiseProfile, zero AsShotNeutral, a colour matrix of zeros, offsets
past the end of the file, huge counts, ...). Tolerant of garbage: it mutates mutants too.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np

from rawisp.io.tiff import (BYTE, DOUBLE, EXIF_IFD, IFD, LONG, NOISE_PROFILE, RATIONAL, SHORT, SRATIONAL, SUB_IFDS,
                            TYPE_FORMAT, TYPE_SIZE)

# --- TIFF structure ------------------------------------------------------------------------------



@dataclass
class Entry:
    """One 12-byte IFD entry of a classic TIFF file."""

    code: int
    ftype: int
    count: int
    at: int  # file offset of the entry
    order: str  # "<" or ">"

    @property
    def size(self) -> int:
        return TYPE_SIZE.get(self.ftype, 1) * self.count

    def value_offset(self, data: bytes) -> int:
        """Where the values are: inside the entry (4 bytes or fewer) or at the offset it holds."""
        if self.size <= 4:
            return self.at + 8
        return struct.unpack_from(self.order + "I", data, self.at + 8)[0]

    def values(self, data: bytes) -> list:
        fmt = TYPE_FORMAT.get(self.ftype)
        n = self.count * (2 if self.ftype in (RATIONAL, SRATIONAL) else 1)
        start = self.value_offset(data)
        if fmt is None or n > 4096 or start + n * struct.calcsize(fmt) > len(data):
            return []
        return list(struct.unpack_from(f"{self.order}{n}{fmt}", data, start))


def tiff_entries(data: bytes, max_ifds: int = 16) -> list[Entry]:
    """The entries of every IFD reachable from the header (chain, SubIFDs, Exif IFD); [] if the
    data is not a classic TIFF. Tolerant of garbage: out-of-range offsets are skipped."""
    if len(data) < 8 or data[:4] not in (b"II*\0", b"MM\0*"):
        return []
    order = "<" if data[:2] == b"II" else ">"
    todo, seen, entries = [struct.unpack_from(order + "I", data, 4)[0]], set(), []
    while todo and len(seen) < max_ifds:
        offset = todo.pop(0)
        if offset in seen or offset < 8 or offset + 2 > len(data):
            continue
        seen.add(offset)
        n = struct.unpack_from(order + "H", data, offset)[0]
        if offset + 2 + 12 * n + 4 > len(data):
            continue
        for i in range(n):
            at = offset + 2 + 12 * i
            code, ftype, count = struct.unpack_from(order + "HHI", data, at)
            entry = Entry(code, ftype, count, at, order)
            entries.append(entry)
            if code in (SUB_IFDS, EXIF_IFD) and ftype in (LONG, IFD):
                todo += entry.values(data)[:8]
        todo.append(struct.unpack_from(order + "I", data, offset + 2 + 12 * n)[0])
    return entries


def set_tag(data: bytearray, entry: Entry, ftype: int, values: list) -> None:
    """Rewrite ``entry`` to hold ``values`` of ``ftype`` (rationals as flat pairs); values that do
    not fit in the entry are appended at the end of the file."""
    fmt = TYPE_FORMAT[ftype]
    payload = struct.pack(f"{entry.order}{len(values)}{fmt}", *values)
    count = len(values) // 2 if ftype in (RATIONAL, SRATIONAL) else len(values)
    if len(payload) <= 4:
        field_bytes = payload.ljust(4, b"\0")
    else:
        data += b"\0" * (len(data) % 2)
        field_bytes = struct.pack(entry.order + "I", len(data))
        data += payload
    struct.pack_into(entry.order + "HI", data, entry.at + 2, ftype, count)
    data[entry.at + 8:entry.at + 12] = field_bytes


# --- mutations -----------------------------------------------------------------------------------

HUGE = (0, 1, 65535, 65536, 100_000, 0x7FFFFFFF, 0xFFFFFFFF)


def _white_of(data: bytes, entries: list[Entry]) -> int:
    for e in entries:
        if e.code == 50717 and e.values(data):
            return int(e.values(data)[0])
    return 4095


def absurd_value(entry: Entry, data: bytes, entries: list[Entry], rng: np.random.Generator) -> tuple[int, list, str]:
    """(type, values, description) of an absurd value for ``entry``."""
    def pick(options):
        return options[int(rng.integers(len(options)))]

    code, n = entry.code, max(1, min(entry.count, 16))
    if code in (256, 257):  # ImageWidth, ImageLength
        v = pick(HUGE)
        return LONG, [v], f"{'ImageWidth' if code == 256 else 'ImageLength'}={v}"
    if code == 258:
        v = pick((0, 1, 7, 17, 32, 64, 255))
        return SHORT, [v] * n, f"BitsPerSample={v}"
    if code == 259:
        v = pick((0, 2, 5, 7, 8, 34713, 65535))
        return SHORT, [v], f"Compression={v}"
    if code == 262:
        v = pick((0, 2, 32803, 34892, 65535))
        return SHORT, [v], f"PhotometricInterpretation={v}"
    if code in (273, 279, 324, 325):  # strip/tile offsets and byte counts
        v = pick((0, 1, len(data) + 1000, 0x7FFFFFFF, 0xFFFFFFFF))
        return LONG, [v] * n, f"tag {code}={v}"
    if code in (277, 278, 322, 323):
        v = pick((0, 4, 65535, 0xFFFFFFFF))
        return LONG, [v], f"tag {code}={v}"
    if code == 274:
        v = pick((0, 9, 65535))
        return SHORT, [v], f"Orientation={v}"
    if code in (33421, 50713):  # CFARepeatPatternDim, BlackLevelRepeatDim
        v = pick(([0, 0], [1, 1], [255, 255], [2, 65535], [16, 16]))
        return SHORT, v, f"tag {code}={v}"
    if code == 33422:  # CFAPattern
        v = [int(x) for x in rng.integers(0, 256, entry.count or 4)][:64]
        v[int(rng.integers(len(v)))] = int(rng.integers(3, 256))
        return BYTE, v, f"CFAPattern={v[:8]}"
    if code == 50714:  # BlackLevel
        white = _white_of(data, entries)
        v = pick((white, white + 1, white + 1000, 0xFFFFFFFF))
        return LONG, [v] * n, f"BlackLevel={v} (white {white})"
    if code == 50717:  # WhiteLevel
        v = pick((0, 1, 65536, 0x7FFFFFFF, 0xFFFFFFFF))
        return LONG, [v], f"WhiteLevel={v}"
    if code == NOISE_PROFILE:
        v = pick((math.nan, math.inf, -math.inf, -1.0, 1e300, 0.0))
        return DOUBLE, [v] * max(2, n), f"NoiseProfile={v}"
    if code in (50728, 50729):  # AsShotNeutral, AsShotWhiteXY
        v = pick(([0, 1] * 3, [1, 0] * 3, [0xFFFFFFFF, 1] * 3, [1, 0xFFFFFFFF, 1, 1, 0, 1]))
        return RATIONAL, v, f"tag {code}={v[:6]}"
    if code in (50721, 50722, 50723, 50724, 50964, 50965):  # colour and forward matrices, calibration
        v = pick(([0, 1] * 9, [1, 0] * 9, [0x7FFFFFFF, 1] * 9, [-0x7FFFFFFF, 1] * 9))
        return SRATIONAL, v, f"matrix tag {code}={v[:2]}..."
    if code in (50706, 50707):
        v = pick(([9, 9, 9, 9], [0, 0, 0, 0], [1, 0, 0, 0]))
        return BYTE, v, f"DNGVersion={v}"
    if code in (50829, 50719, 50720, 50718):  # ActiveArea, DefaultCrop*, DefaultScale
        v = pick((0, 1, 65535, 0x7FFFFFFF))
        return LONG, [v] * max(2, n), f"tag {code}={v}"
    # any other tag: a huge count pointing past the end, or a type the reader does not expect
    if rng.random() < 0.5:
        return LONG, [0xFFFFFFFF] * n, f"tag {code}=0xFFFFFFFF"
    return DOUBLE, [math.nan] * n, f"tag {code}=NaN"


INTERESTING = (256, 257, 258, 259, 262, 273, 274, 277, 278, 279, 33421, 33422, 50713, 50714, 50717, 51041, 50728,
               50721, 50706, 50829, 50719, 50720)


def mutate_tag(data: bytearray, rng: np.random.Generator) -> str | None:
    entries = tiff_entries(bytes(data))
    if not entries:
        return None
    interesting = [e for e in entries if e.code in INTERESTING]
    entry = interesting[int(rng.integers(len(interesting)))] if interesting and rng.random() < 0.85 else \
        entries[int(rng.integers(len(entries)))]
    if entry.code not in INTERESTING and rng.random() < 0.3:  # a count bomb
        struct.pack_into(entry.order + "I", data, entry.at + 4, 0x3FFFFFFF)
        return f"count of tag {entry.code}=0x3FFFFFFF"
    ftype, values, what = absurd_value(entry, bytes(data), entries, rng)
    set_tag(data, entry, ftype, values)
    return what


def mutate_flip(data: bytearray, rng: np.random.Generator) -> str:
    k = int(rng.integers(1, 17))
    # half the time stay in the first 4 KiB, where the headers are
    limit = min(len(data), 4096) if rng.random() < 0.5 else len(data)
    for pos in rng.integers(0, limit, k):
        data[int(pos)] = int(rng.integers(256))
    return f"flip {k} bytes"


def mutate_truncate(data: bytearray, rng: np.random.Generator) -> str:
    at = int(rng.integers(0, len(data)))
    del data[at:]
    return f"truncate at {at}"


def mutate_splice(data: bytearray, rng: np.random.Generator) -> str:
    at = int(rng.integers(0, len(data)))
    n = int(rng.integers(1, 4097))
    if rng.random() < 0.5:
        del data[at:at + n]
        return f"delete {n} bytes at {at}"
    data[at:at] = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
    return f"insert {n} bytes at {at}"


def mutate(seed: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    """A mutant of ``seed`` and what was done to it."""
    data = bytearray(seed)
    tiff = bool(tiff_entries(seed))
    done = []
    for _ in range(1 + int(rng.random() < 0.25)):
        if not data:
            break
        r = rng.random()
        if tiff and r < 0.55:
            what = mutate_tag(data, rng)
        elif r < 0.8:
            what = mutate_flip(data, rng)
        elif r < 0.92:
            what = mutate_truncate(data, rng)
        else:
            what = mutate_splice(data, rng)
        if what:
            done.append(what)
    return bytes(data), "; ".join(done) or "unchanged"
