"""TIFF field types and the tags the project writes or reads by number (TIFF 6.0, DNG 1.4)."""

from __future__ import annotations

BYTE, ASCII, SHORT, LONG, RATIONAL, SBYTE, UNDEFINED, SSHORT, SLONG, SRATIONAL, FLOAT, DOUBLE = range(1, 13)
IFD, LONG8 = 13, 16

TYPE_SIZE = {BYTE: 1, ASCII: 1, SHORT: 2, LONG: 4, RATIONAL: 8, SBYTE: 1, UNDEFINED: 1, SSHORT: 2, SLONG: 4,
             SRATIONAL: 8, FLOAT: 4, DOUBLE: 8, IFD: 4, LONG8: 8}
"""Bytes of one value of each field type."""

TYPE_FORMAT = {BYTE: "B", SHORT: "H", LONG: "I", RATIONAL: "I", SSHORT: "h", SLONG: "i", SRATIONAL: "i",
               FLOAT: "f", DOUBLE: "d"}
"""The struct format of one number of a numeric field type (rationals as two numbers)."""

SUB_IFDS = 330
EXIF_IFD = 34665
GPS_IFD = 34853
NOISE_PROFILE = 51041
