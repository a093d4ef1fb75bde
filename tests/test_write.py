"""Tests for rawisp.io.write (output files) and rawisp.io.metadata (EXIF, orientation)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import struct
import subprocess
import sys
import time
import zlib
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import tifffile
from conftest import DATA, assert_srgb_profile, read_exif
from PIL import Image, ImageOps

from rawisp import __version__
from rawisp.io.metadata import (Metadata, apply_orientation, flip_to_orientation, read_metadata)
from rawisp.io.write import FORMATS, output_suffix, srgb_icc, write_image

KISSX4 = DATA / "real" / "canon_kissx4_colorchart_crop.tinydng.dng"
GOPRO = DATA / "derived" / "gopro_hero8.from_gpr.dng"
KODAK = DATA / "real" / "kodak_dc50.rawpy.KDC"
SOFTWARE = f"rawisp {__version__}"

_ASCII, _SHORT, _LONG, _RATIONAL, _SRATIONAL, _UNDEFINED, _BYTE = 2, 3, 4, 5, 10, 7, 1
FULL = Metadata(
    exif={
        "Exif.Image.Make": (_ASCII, "Canon"),
        "Exif.Image.Model": (_ASCII, "Canon EOS 6D"),
        "Exif.Image.Artist": (_ASCII, "Ansel Adams"),
        "Exif.Image.Copyright": (_ASCII, "(c) 2019 Ansel Adams"),
        "Exif.Image.DateTime": (_ASCII, "2019:06:07 08:00:00"),
        "Exif.Image.ImageDescription": (_ASCII, "Loch at dawn"),
        "Exif.Photo.LensModel": (_ASCII, "EF24-105mm f/4L IS USM"),
        "Exif.Photo.DateTimeOriginal": (_ASCII, "2019:06:06 07:29:51"),
        "Exif.Photo.DateTimeDigitized": (_ASCII, "2019:06:06 07:29:51"),
        "Exif.Photo.SubSecTimeOriginal": (_ASCII, "42"),
        "Exif.Photo.ExposureTime": (_RATIONAL, "1/60"),
        "Exif.Photo.FNumber": (_RATIONAL, "28/5"),
        "Exif.Photo.ISOSpeedRatings": (_SHORT, "1000"),
        "Exif.Photo.FocalLength": (_RATIONAL, "65/1"),
        "Exif.Photo.BodySerialNumber": (_ASCII, "033024001432"),
        "Exif.Photo.LensSpecification": (_RATIONAL, "24/1 105/1 4/1 4/1"),
        "Exif.Photo.ExposureBiasValue": (_SRATIONAL, "-2/3"),
        "Exif.Photo.ExposureProgram": (_SHORT, "3"),
        "Exif.Photo.MeteringMode": (_SHORT, "5"),
        "Exif.Photo.Flash": (_SHORT, "16"),
        "Exif.Photo.WhiteBalance": (_SHORT, "0"),
        "Exif.Photo.FocalLengthIn35mmFilm": (_SHORT, "65"),
        "Exif.GPSInfo.GPSVersionID": (_BYTE, "2 2 0 0"),
        "Exif.GPSInfo.GPSLatitudeRef": (_ASCII, "N"),
        "Exif.GPSInfo.GPSLatitude": (_RATIONAL, "56/1 17/1 679557/12500"),
        "Exif.GPSInfo.GPSLongitudeRef": (_ASCII, "W"),
        "Exif.GPSInfo.GPSLongitude": (_RATIONAL, "10/1 8/1 148791/3125"),
        "Exif.GPSInfo.GPSAltitudeRef": (_BYTE, "1"),
        "Exif.GPSInfo.GPSAltitude": (_RATIONAL, "394/5"),
        "Exif.GPSInfo.GPSTimeStamp": (_RATIONAL, "4/1 47/1 27/1"),
        "Exif.GPSInfo.GPSDateStamp": (_ASCII, "2019:06:06"),
    },
    orientation=6,
)


def _image(fmt: str, h: int = 40, w: int = 56) -> np.ndarray:
    """Smooth, asymmetric RGB test image in the format's dtype (full range)."""
    y, x = np.mgrid[0:h, 0:w] / np.array([h - 1, w - 1])[:, None, None]
    rgb = np.stack([x, y, (x * y) ** 0.5], axis=-1)
    top = 255 if fmt in ("jpeg", "png") else 65535
    return np.round(rgb * top).astype(np.uint8 if top == 255 else np.uint16)


def _write(tmp_path: Path, fmt: str, meta: Metadata = FULL, **kw) -> tuple[Path, np.ndarray]:
    img = _image(fmt)
    path = tmp_path / f"out{output_suffix(fmt)}"
    return write_image(path, img, fmt, metadata=meta, **kw), img


def _read_png16(path: Path) -> np.ndarray:
    """Minimal independent 16-bit RGB PNG reader (filter types 0 and 1)."""
    data, pos, idat = path.read_bytes(), 8, b""
    while pos < len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + size]
        assert zlib.crc32(kind + body) == struct.unpack(">I", data[pos + 8 + size : pos + 12 + size])[0]
        if kind == b"IHDR":
            w, h, depth, colour = struct.unpack(">IIBB", body[:10])
            assert (depth, colour) == (16, 2)
        idat += body if kind == b"IDAT" else b""
        pos += 12 + size
    rows = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 1 + w * 6)
    assert set(np.unique(rows[:, 0])) <= {0, 1}
    pix = rows[:, 1:].reshape(h, w, 6).astype(np.int64)
    sub = rows[:, 0] == 1
    pix[sub] = np.cumsum(pix[sub], axis=1) % 256
    return pix.astype(np.uint8).reshape(h, w * 6).view(">u2").reshape(h, w, 3).astype(np.uint16)


def _read_pixels(path: Path, fmt: str) -> np.ndarray:
    if fmt == "tiff16":
        return tifffile.imread(path)
    if fmt == "png16":
        return _read_png16(path)
    with Image.open(path) as im:
        return np.asarray(im)


# --- pixels, ICC, EXIF -------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_pixels_round_trip(tmp_path, fmt):
    path, img = _write(tmp_path, fmt)
    back = _read_pixels(path, fmt)
    assert back.shape == img.shape and back.dtype == img.dtype
    if fmt == "jpeg":
        err = np.abs(back.astype(int) - img)
        assert err.mean() < 1.5 and err.max() <= 12
    else:
        np.testing.assert_array_equal(back, img)


def test_png16_readable_by_pillow(tmp_path):
    """Pillow decodes 16-bit RGB PNG to 8 bits by keeping the high byte."""
    path, img = _write(tmp_path, "png16")
    with Image.open(path) as im:
        np.testing.assert_array_equal(np.asarray(im), (img >> 8).astype(np.uint8))


@pytest.mark.parametrize("fmt", FORMATS)
def test_icc_profile_embedded(tmp_path, fmt):
    path, _ = _write(tmp_path, fmt)
    if fmt == "tiff16":
        with tifffile.TiffFile(path) as tif:
            icc = tif.pages[0].tags[34675].value
    else:
        with Image.open(path) as im:
            icc = im.info["icc_profile"]
    assert_srgb_profile(icc)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("meta", [FULL, Metadata()], ids=["full", "empty"])
def test_exif_round_trip_exiv2(tmp_path, fmt, meta):
    path, img = _write(tmp_path, fmt, meta)
    back = read_metadata(path)
    assert {k: back.exif.get(k) for k in meta.exif} == meta.exif
    assert back.orientation == 1
    tags = read_exif(path)
    assert str(tags["Image Software"]) == SOFTWARE
    assert tags["Image Orientation"] == "1"
    assert (tags["EXIF PixelXDimension"], tags["EXIF PixelYDimension"]) == (str(img.shape[1]), str(img.shape[0]))
    assert tags["EXIF ColorSpace"] == "1"


@pytest.mark.parametrize("fmt", FORMATS)
def test_writing_is_reproducible(tmp_path, fmt):
    one, _ = _write(tmp_path / "a", fmt)
    two, _ = _write(tmp_path / "b", fmt)
    assert one.read_bytes() == two.read_bytes()


def test_iso_above_65535_round_trips(tmp_path):
    meta = Metadata(exif={"Exif.Photo.ISOSpeedRatings": (_SHORT, "65535"),
                          "Exif.Photo.SensitivityType": (_SHORT, "2"),
                          "Exif.Photo.RecommendedExposureIndex": (_LONG, "204800")})
    path, _ = _write(tmp_path, "png", meta)
    assert read_metadata(path).iso == 204800


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool not installed")
@pytest.mark.parametrize("fmt", FORMATS)
def test_exif_round_trip_exiftool(tmp_path, fmt):
    path, _ = _write(tmp_path, fmt)
    out = subprocess.run(
        ["exiftool", "-j", "-n", "-G1", str(path)], capture_output=True, check=True, text=True
    )
    tags = json.loads(out.stdout)[0]
    expected = {
        "IFD0:Make": "Canon",
        "IFD0:Model": "Canon EOS 6D",
        "IFD0:Software": SOFTWARE,
        "IFD0:Artist": FULL.artist,
        "IFD0:Copyright": FULL.copyright,
        "IFD0:Orientation": 1,
        "IFD0:ModifyDate": "2019:06:07 08:00:00",
        "IFD0:ImageDescription": "Loch at dawn",
        "ExifIFD:LensModel": FULL.lens_model,
        "ExifIFD:DateTimeOriginal": FULL.datetime_original,
        "ExifIFD:CreateDate": "2019:06:06 07:29:51",
        "ExifIFD:SubSecTimeOriginal": 42,
        "ExifIFD:SerialNumber": "033024001432",
        "ExifIFD:LensInfo": "24 105 4 4",
        "ExifIFD:ExposureCompensation": pytest.approx(-2 / 3),
        "ExifIFD:ExposureProgram": 3,
        "ExifIFD:MeteringMode": 5,
        "ExifIFD:Flash": 16,
        "ExifIFD:WhiteBalance": 0,
        "ExifIFD:FocalLengthIn35mmFormat": 65,
        "ExifIFD:ISO": 1000,
        "ExifIFD:FNumber": 5.6,
        "ExifIFD:FocalLength": 65,
        "GPS:GPSLatitudeRef": "N",
        "GPS:GPSLongitudeRef": "W",
        "GPS:GPSAltitudeRef": 1,
        "GPS:GPSDateStamp": "2019:06:06",
    }
    assert {k: tags.get(k) for k in expected} == expected
    assert tags["ExifIFD:ExposureTime"] == pytest.approx(1 / 60)
    assert tags["GPS:GPSLatitude"] == pytest.approx(56 + 17 / 60 + 679557 / 12500 / 3600)
    assert tags["GPS:GPSLongitude"] == pytest.approx(10 + 8 / 60 + 148791 / 3125 / 3600)
    assert tags["GPS:GPSAltitude"] == pytest.approx(78.8)


# --- orientation -------------------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
def test_apply_orientation_matches_pillow(orientation):
    stored = _image("png", 5, 7)
    im = Image.fromarray(stored)
    im.getexif()[0x0112] = orientation
    expected = np.asarray(ImageOps.exif_transpose(im))
    np.testing.assert_array_equal(apply_orientation(stored, orientation), expected)


@pytest.mark.parametrize("bad", [0, 9])
def test_apply_orientation_rejects_out_of_range(bad):
    with pytest.raises(ValueError):
        apply_orientation(_image("png", 2, 3), bad)


def test_flip_to_orientation_inverts_librarys_table():
    libraw_exif_to_flip = "50132467"  # LibRaw tiff.cpp: flip = table[exif & 7]
    for exif in range(1, 9):
        assert flip_to_orientation(int(libraw_exif_to_flip[exif & 7])) == exif


@pytest.mark.skipif(not KODAK.exists(), reason=f"{KODAK} not available")
@pytest.mark.parametrize("flip", range(8))
def test_flip_to_orientation_matches_rawpy(flip):
    """rawpy's postprocess(user_flip=k) equals the unflipped image turned
    upright by apply_orientation(flip_to_orientation(k))."""
    rawpy = pytest.importorskip("rawpy")

    def develop(user_flip: int) -> np.ndarray:
        with rawpy.imread(str(KODAK)) as raw:
            return raw.postprocess(user_flip=user_flip, half_size=True, no_auto_bright=True)

    expected = apply_orientation(develop(0), flip_to_orientation(flip))
    np.testing.assert_array_equal(develop(flip), expected)


# --- atomicity and errors ----------------------------------------------------


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".part"))


def test_failure_mid_write_leaves_nothing(tmp_path, monkeypatch):
    target = tmp_path / "sub" / "out.png"
    seen = []

    def full_disk(fd):
        seen.extend(_leftovers(target.parent))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left") as info:
        write_image(target, _image("png"), "png")
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(target)
    assert str(target) in str(info.value)
    assert len(seen) == 1 and seen[0].startswith(".out.png.")
    assert not target.exists() and _leftovers(target.parent) == []


def test_failed_overwrite_keeps_old_file(tmp_path, monkeypatch):
    target = tmp_path / "out.png"
    target.write_bytes(b"old")

    def io_error(fd):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", io_error)
    with pytest.raises(OSError):
        write_image(target, _image("png"), "png", overwrite=True)
    assert target.read_bytes() == b"old" and _leftovers(tmp_path) == []


def test_exists_without_overwrite_then_overwrite(tmp_path):
    target = tmp_path / "out.jpg"
    write_image(target, _image("jpeg", 8, 8), "jpeg")  # an earlier output of rawisp's
    old = target.read_bytes()
    with pytest.raises(FileExistsError) as info:
        write_image(target, _image("jpeg"), "jpeg")
    assert info.value.filename == str(target) and target.read_bytes() == old
    assert write_image(target, _image("jpeg"), "jpeg", overwrite=True) == target
    with Image.open(target) as im:
        assert im.format == "JPEG"
    assert _leftovers(tmp_path) == []


def test_target_created_during_write_is_not_clobbered(tmp_path, monkeypatch):
    target = tmp_path / "out.png"
    real_fsync = os.fsync

    def racing_fsync(fd):
        target.write_bytes(b"theirs")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", racing_fsync)
    with pytest.raises(FileExistsError):
        write_image(target, _image("png"), "png")
    assert target.read_bytes() == b"theirs" and _leftovers(tmp_path) == []


def test_filesystem_without_hard_links(tmp_path, monkeypatch):
    def no_link(src, dst):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_link)
    path, img = _write(tmp_path, "png")
    np.testing.assert_array_equal(_read_pixels(path, "png"), img)
    with pytest.raises(FileExistsError):
        _write(tmp_path, "png")
    assert _leftovers(tmp_path) == []


def test_new_file_mode_follows_umask(tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    path, _ = _write(tmp_path, "png")
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_parent_is_a_file_gives_oserror_naming_path(tmp_path):
    (tmp_path / "file").write_bytes(b"")
    target = tmp_path / "file" / "out.png"
    with pytest.raises(NotADirectoryError) as info:
        write_image(target, _image("png"), "png")
    assert str(target) in str(info.value)


def test_unwritable_directory_gives_oserror_naming_path(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("directory permissions are not enforced (running as root?)")
        target = locked / "out.png"
        with pytest.raises(PermissionError) as info:
            write_image(target, _image("png"), "png")
        assert str(target) in str(info.value)
    finally:
        locked.chmod(0o700)


@pytest.mark.parametrize(
    ("img", "fmt", "kw"),
    [
        (np.zeros((4, 4, 3), np.uint16), "jpeg", {}),
        (np.zeros((4, 4, 3), np.uint8), "tiff16", {}),
        (np.zeros((4, 4), np.uint8), "png", {}),
        (np.zeros((4, 4, 4), np.uint8), "png", {}),
        (np.zeros((4, 4, 3), np.uint8), "webp", {}),
        (np.zeros((4, 4, 3), np.uint8), "jpeg", {"quality": 0}),
    ],
)
def test_bad_arguments_raise_value_error(tmp_path, img, fmt, kw):
    with pytest.raises(ValueError):
        write_image(tmp_path / "x", img, fmt, **kw)
    assert list(tmp_path.iterdir()) == []


# --- read_metadata on real files ---------------------------------------------


@pytest.mark.skipif(not KISSX4.exists(), reason=f"{KISSX4} not available")
def test_read_metadata_canon_dng():
    meta = read_metadata(KISSX4)
    assert (meta.make, meta.model) == ("Canon", "Canon EOS Kiss X4")
    assert meta.orientation == 1
    # this DNG stores zeros and empty strings, which mean "unknown"
    assert meta.exposure_time is None and meta.iso is None and meta.artist is None


@pytest.mark.skipif(not GOPRO.exists(), reason=f"{GOPRO} not available")
def test_read_metadata_gopro_dng():
    meta = read_metadata(GOPRO)
    assert (meta.make, meta.model) == ("GoPro", "HERO8 Black")
    assert meta.orientation == 2
    assert meta.exposure_time == Fraction(1, 240) and meta.iso == 317
    assert meta.gps["Exif.GPSInfo.GPSLatitudeRef"] == "N" and len(meta.gps["Exif.GPSInfo.GPSLatitude"].split()) == 3


def test_read_metadata_without_exif(tmp_path):
    path = tmp_path / "noexif.bin"
    path.write_bytes(b"\0" * 64)
    assert read_metadata(path) == Metadata()


@pytest.mark.skipif(not (DATA / "bad_inputs").is_dir(), reason="bad_inputs not available")
def test_read_metadata_never_raises_on_bad_inputs():
    for path in sorted((DATA / "bad_inputs").iterdir()):
        assert 1 <= read_metadata(path).orientation <= 8


def test_icc_profile_is_the_same_in_every_process():
    """LittleCMS dates the profile it makes; outputs a second apart must still be the same bytes."""
    code = "import sys; from rawisp.io.write import srgb_icc; sys.stdout.buffer.write(srgb_icc())"
    first = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True, timeout=60).stdout
    time.sleep(1.1)
    second = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True, timeout=60).stdout
    assert first == second == srgb_icc()
    assert struct.unpack(">6H", first[24:36]) == (2024, 1, 1, 0, 0, 0)
    assert_srgb_profile(first)
