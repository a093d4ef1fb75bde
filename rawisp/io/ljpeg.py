"""Lossless JPEG (ITU T.81 process 14, "LJ92") encoding of 16-bit mosaic tiles, as camera DNGs
store their raw data (DNG Compression 7).

A tile of W x H samples is coded as Adobe's converter codes a CFA tile: a frame of W/2 x H pixels
of two interleaved components (so that each component is one column parity of the mosaic and the
left neighbour a sample predicts from has the same colour in a Bayer row), predictor 1 (the
left neighbour; the sample above at the start of a row), point transform 0, one Huffman table
fitted to the tile. Pure NumPy: the bit stream is assembled by vectorised operations per tile.
"""

from __future__ import annotations

import struct

import numpy as np

PRECISION = 16  # bits per sample the frame header states (the data are 16-bit DN)
_BIT_LENGTH = np.array([int(v).bit_length() for v in range(32769)], np.int64)  # SSSS of each |difference|


def encode_tile(tile: np.ndarray) -> bytes:
    """The lossless JPEG stream of one (H, W) uint16 tile, W even (see the module docstring)."""
    h, w = tile.shape
    if w % 2:
        raise ValueError(f"tile width must be even, got {w}")
    x = tile.astype(np.int64).reshape(h, w // 2, 2)
    pred = np.empty_like(x)
    pred[:, 1:] = x[:, :-1]  # predictor 1: the left pixel's same component
    pred[1:, 0] = x[:-1, 0]  # the first pixel of a row: the one above
    pred[0, 0] = 1 << (PRECISION - 1)  # the first pixel of the frame: half the range
    diff = (x - pred).ravel()  # the sample order of the scan: row by row, components interleaved
    diff = (diff + 32768) % 65536 - 32768  # modulo 2^16 into -32768 .. 32767 (T.81 H.1.2.1)
    ssss = _BIT_LENGTH[np.abs(diff)]  # |-32768| is 16 bits: the one 16-bit difference, no extra bits
    extra = np.where(diff < 0, diff - 1, diff) & ((1 << ssss) - 1)
    extra = np.where(ssss == 16, 0, extra)
    extra_bits = np.where(ssss == 16, 0, ssss)
    table = _huffman_table(np.bincount(ssss, minlength=17))
    codes, lengths = _codes(*table)
    code = codes[ssss]
    code_bits = lengths[ssss]
    word = (code << extra_bits) | extra  # the Huffman code, then the extra bits, at most 32 bits
    bits = code_bits + extra_bits
    data = _pack_bits(word, bits)
    header = _headers(h, w // 2, *table)
    return header + _stuff(data) + b"\xff\xd9"


def _huffman_table(counts: np.ndarray) -> tuple[list[int], list[int]]:
    """The Huffman table of the SSSS categories with ``counts`` (17,), as T.81 Annex K.2 makes it:
    BITS (how many codes of each length 1..16) and HUFFVAL (the categories in code order), with the
    all-ones code left free and no code longer than 16 bits."""
    freq = [int(c) for c in counts] + [1]  # a reserved symbol (K.2) keeps the all-ones code free
    size = [0] * len(freq)
    others = [-1] * len(freq)
    while True:
        live = [v for v in range(len(freq)) if freq[v] > 0]
        if len(live) < 2:
            break
        v1 = min(live, key=lambda v: (freq[v], -v))
        v2 = min((v for v in live if v != v1), key=lambda v: (freq[v], -v))
        freq[v1] += freq[v2]
        freq[v2] = 0
        for v in (v1, v2):
            size[v] += 1
            while others[v] != -1:
                v = others[v]
                size[v] += 1
        v = v1
        while others[v] != -1:
            v = others[v]
        others[v] = v2
    bits = [0] * 33
    for n in size:
        if n:
            bits[n] += 1
    for i in range(32, 16, -1):  # Adjust_BITS (K.3): no code longer than 16 bits
        while bits[i] > 0:
            j = i - 2
            while bits[j] == 0:
                j -= 1
            bits[i] -= 2
            bits[i - 1] += 1
            bits[j + 1] += 2
            bits[j] -= 1
    i = 16
    while bits[i] == 0:
        i -= 1
    bits[i] -= 1  # the reserved symbol's code
    values = sorted((v for v in range(17) if size[v]), key=lambda v: (size[v], v))
    return bits[1:17], values


def _codes(bits: list[int], values: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Code and code length (17,) of each category of a table (T.81 Annex C); 0 where unused."""
    codes, lengths = np.zeros(17, np.int64), np.zeros(17, np.int64)
    code, k = 0, 0
    for n in range(1, 17):
        for _ in range(bits[n - 1]):
            codes[values[k]], lengths[values[k]] = code, n
            code += 1
            k += 1
        code <<= 1
    return codes, lengths


def _pack_bits(word: np.ndarray, bits: np.ndarray) -> bytes:
    """The bit stream of ``word`` values of ``bits`` bits each (1 to 32, most significant first),
    padded with one bits to a whole byte (T.81 F.1.2.3).

    The stream is built as 32-bit words: a value starting at bit ``o`` of word ``k`` puts its
    leading bits in word k and any rest at the top of word k + 1; values never share a bit, so each
    word is the sum of what lands in it (exact in float64, below 2^32)."""
    end = np.cumsum(bits)
    start = end - bits
    total = int(end[-1]) if len(end) else 0
    k, spill = start // 32, start % 32 + bits - 32  # spill > 0: bits that go on into word k + 1
    head = np.where(spill <= 0, word << np.maximum(-spill, 0), word >> np.maximum(spill, 0))
    tail = np.where(spill > 0, (word << np.maximum(32 - spill, 0)) & 0xFFFFFFFF, 0)
    words = -(-total // 32) + 1
    stream = (np.bincount(k, weights=head, minlength=words) + np.bincount(k + 1, weights=tail, minlength=words))
    data = bytearray(stream.astype(">u4").tobytes()[:(total + 7) // 8])
    if total % 8:
        data[-1] |= 0xFF >> (total % 8)  # pad the last byte with ones
    return bytes(data)


def _stuff(data: bytes) -> bytes:
    """Byte stuffing: a zero byte after every 0xFF of the entropy-coded data."""
    return data.replace(b"\xff", b"\xff\x00")


def _headers(lines: int, width: int, bits: list[int], values: list[int]) -> bytes:
    """SOI, the lossless frame (SOF3: two components), the Huffman table (DHT) and the scan header
    (SOS: predictor 1, point transform 0)."""
    sof = struct.pack(">BHHB", PRECISION, lines, width, 2) + bytes((1, 0x11, 0, 2, 0x11, 0))
    dht = bytes((0x00,)) + bytes(bits) + bytes(values)
    sos = bytes((2, 1, 0x00, 2, 0x00, 1, 0, 0))

    def segment(marker: int, body: bytes) -> bytes:
        return struct.pack(">BBH", 0xFF, marker, len(body) + 2) + body

    return b"\xff\xd8" + segment(0xC3, sof) + segment(0xC4, dht) + segment(0xDA, sos)
