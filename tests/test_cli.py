"""Acceptance tests of the ``rawisp`` command line: batches, errors, EXIF, info, real camera files."""

from __future__ import annotations

import json
import shutil
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rawpy
import tifffile
from conftest import (
    DATA,
    EXIF,
    assert_srgb_profile,
    lines_naming,
    natural_image,
    part_files,
    read_exif,
    read_image,
    sha256,
    summary,
)
from PIL import Image

from rawisp import __version__
from rawisp.batch.runner import RAW_SUFFIXES
from rawisp.io.write import srgb_icc

CLASSICAL = ("--engine", "classical")


def develop_args(*inputs: object, out: Path, fmt: str = "png", extra: tuple = ()) -> list:
    return ["develop", *CLASSICAL, "--format", fmt, *extra, *inputs, "-o", out]


@pytest.fixture
def scene() -> np.ndarray:
    return natural_image(36, 50, seed=5)


def outputs(root: Path) -> list[str]:
    """Files under ``root`` as sorted relative POSIX paths."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


# --- batches ---------------------------------------------------------------------------------------


def test_folders_recursive_keep_layout_then_skip_then_overwrite(cli, make_dng, scene, tmp_path):
    src = tmp_path / "card"
    for name in ("a.dng", "sub/b.dng", "sub/deeper/c.DNG"):
        make_dng(f"card/{name}", scene, cfa="BGGR")
    (src / "notes.txt").write_text("not a raw file")
    (src / "sub" / "preview.jpg").write_bytes(b"\xff\xd8 not a raw file either")
    hashes = {p: sha256(p) for p in src.rglob("*") if p.is_file()}
    out = tmp_path / "out"

    result = cli(*develop_args(src, out=out, extra=("--recursive",)))
    assert result.exit_code == 0, result.stderr
    assert summary(result) == (3, 0, 0)
    assert outputs(out) == ["a.png", "sub/b.png", "sub/deeper/c.png"]
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}

    again = cli(*develop_args(src, out=out, extra=("-r",)))
    assert again.exit_code == 0 and summary(again) == (0, 3, 0)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == stamps  # untouched

    shutil.copyfile(out / "a.png", out / "sub" / "b.png")  # stale: another output of rawisp's
    forced = cli(*develop_args(src, out=out, extra=("-r", "--overwrite")))
    assert forced.exit_code == 0 and summary(forced) == (3, 0, 0)
    assert read_image(out / "sub" / "b.png").shape == (36, 50, 3)

    flat = cli(*develop_args(src, out=tmp_path / "flat"))  # no --recursive: top level only
    assert flat.exit_code == 0 and outputs(tmp_path / "flat") == ["a.png"]
    assert {p: sha256(p) for p in hashes} == hashes  # inputs never modified
    assert part_files(tmp_path) == []


def test_files_and_globs(cli, make_dng, scene, tmp_path):
    for name in ("x/one.dng", "x/two.dng", "x/three.dng", "y/four.dng"):
        make_dng(name, scene, cfa="GRBG")
    out = tmp_path / "out"
    result = cli(*develop_args(tmp_path / "x" / "t*.dng", tmp_path / "y" / "four.dng", out=out))
    assert result.exit_code == 0, result.stderr
    assert summary(result) == (2 + 1, 0, 0)
    assert outputs(out) == ["four.png", "three.png", "two.png"]
    rec = cli(*develop_args(str(tmp_path) + "/**/*.dng", out=tmp_path / "rec", extra=("-r",)))
    assert rec.exit_code == 0 and summary(rec) == (4, 0, 0)


def test_bad_files_one_line_each_and_the_batch_goes_on(cli, make_dng, scene, tmp_path):
    src = tmp_path / "in"
    good, _ = make_dng("in/good.dng", scene)
    data = good.read_bytes()
    (src / "truncated.dng").write_bytes(data[: len(data) // 2])
    (src / "header_only.dng").write_bytes(data[:400])
    (src / "text.dng").write_text("hello, I am not a raw file\n" * 20)
    (src / "empty.dng").write_bytes(b"")
    (src / "x.dng").mkdir()
    make_dng("in/zz_last.dng", scene)  # after the bad ones in order: the batch must go on
    hashes = {p: sha256(p) for p in src.iterdir() if p.is_file()}
    out = tmp_path / "out"

    result = cli(*develop_args(str(src / "*.dng"), out=out))
    assert result.exit_code == 1
    assert summary(result) == (2, 0, 5)
    bad = ["truncated.dng", "header_only.dng", "text.dng", "empty.dng", "x.dng"]
    for name in bad:
        lines = lines_naming(result.stderr, src / name)
        assert len(lines) == 1, (name, result.stderr)
    assert len(result.stderr.strip().splitlines()) == len(bad)  # nothing else on stderr
    assert "directory" in lines_naming(result.stderr, src / "x.dng")[0]
    assert "empty" in lines_naming(result.stderr, src / "empty.dng")[0]
    assert outputs(out) == ["good.png", "zz_last.png"]
    assert {p: sha256(p) for p in hashes} == hashes
    assert part_files(tmp_path) == []

    # exit code 0 only when every file succeeded
    only_good = cli(*develop_args(good, src / "zz_last.dng", out=tmp_path / "out2"))
    assert only_good.exit_code == 0 and summary(only_good) == (2, 0, 0)
    missing = cli(*develop_args(good, tmp_path / "nowhere.dng", out=tmp_path / "out3"))
    assert missing.exit_code == 1 and summary(missing) == (1, 0, 1)
    assert len(lines_naming(missing.stderr, tmp_path / "nowhere.dng")) == 1


def test_skipped_files_do_not_fail_the_batch(cli, make_dng, scene, tmp_path):
    path, _ = make_dng("a.dng", scene)
    assert cli(*develop_args(path, out=tmp_path / "out")).exit_code == 0
    kept = (tmp_path / "out" / "a.png").read_bytes()
    result = cli(*develop_args(path, out=tmp_path / "out"))
    assert result.exit_code == 0 and summary(result) == (0, 1, 0)
    assert (tmp_path / "out" / "a.png").read_bytes() == kept


def test_same_name_inputs_get_distinct_outputs(cli, make_dng, tmp_path):
    pictures = {}
    for i, name in enumerate(["same/IMG.cr2", "same/IMG.dng", "same/a.dng", "same/a.DNG",
                              "d1/b.dng", "d2/b.dng"]):
        pictures[name] = natural_image(30, 40 + 2 * i, seed=i)  # widths tell the outputs apart
        make_dng(name, pictures[name])  # a DNG named .cr2: LibRaw goes by content
    out = tmp_path / "out"
    inputs = [tmp_path / "same", tmp_path / "d1", tmp_path / "d2"]
    result = cli(*develop_args(*inputs, out=out))
    assert result.exit_code == 0, result.stderr
    assert summary(result) == (6, 0, 0)
    produced = outputs(out)
    assert len(produced) == 6, produced
    widths = sorted(read_image(out / p).shape[1] for p in produced)
    assert widths == sorted(p.shape[1] for p in pictures.values())  # each input has its own output
    # the same command again finds every output: names are stable
    again = cli(*develop_args(*inputs, out=out))
    assert again.exit_code == 0 and summary(again) == (0, 6, 0)


def test_parallel_jobs_give_the_same_pictures(cli, make_dng, tmp_path):
    for i, cfa in enumerate(["RGGB", "BGGR", "GRBG", "GBRG"]):
        make_dng(f"in/{cfa}.dng", natural_image(33, 47, seed=i), cfa=cfa)
    one = cli(*develop_args(tmp_path / "in", out=tmp_path / "j1"))
    two = cli(*develop_args(tmp_path / "in", out=tmp_path / "j2", extra=("-j", "2")))
    assert one.exit_code == two.exit_code == 0
    assert summary(two) == (4, 0, 0)
    assert outputs(tmp_path / "j1") == outputs(tmp_path / "j2")
    for name in outputs(tmp_path / "j1"):
        np.testing.assert_array_equal(read_image(tmp_path / "j1" / name), read_image(tmp_path / "j2" / name))


# --- EXIF ------------------------------------------------------------------------------------------

EXIF_NAMES = ["Image Make", "Image Model", "EXIF LensModel", "EXIF DateTimeOriginal", "EXIF ExposureTime",
              "EXIF FNumber", "EXIF ISOSpeedRatings", "EXIF FocalLength", "Image Artist", "Image Copyright",
              "GPS GPSLatitudeRef", "GPS GPSLatitude", "GPS GPSLongitudeRef", "GPS GPSLongitude",
              "GPS GPSAltitudeRef", "GPS GPSAltitude"]
EXIFTOOL_NAMES = ["Make", "Model", "LensModel", "DateTimeOriginal", "ExposureTime", "FNumber", "ISO",
                  "FocalLength", "Artist", "Copyright", "GPSLatitude", "GPSLongitude", "GPSAltitude",
                  "GPSLatitudeRef", "GPSLongitudeRef", "GPSAltitudeRef"]
FORMAT_FILES = {"jpeg": "e.jpg", "png": "e.png", "png16": "e.png", "tiff16": "e.tif"}


def _exiftool(path: Path) -> dict:
    out = subprocess.run(["exiftool", "-j", "-n", str(path)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)[0]


@pytest.fixture
def developed_with_exif(cli, make_dng, tmp_path) -> tuple[Path, dict[str, Path]]:
    """One DNG with full EXIF, developed to every output format."""
    source, _ = make_dng("e.dng", natural_image(30, 44, seed=7), exif=EXIF, make="Acme", model="Model 1",
                         orientation=6)
    before = sha256(source)
    files = {}
    for fmt, name in FORMAT_FILES.items():
        result = cli(*develop_args(source, out=tmp_path / fmt, fmt=fmt))
        assert result.exit_code == 0, result.stderr
        files[fmt] = tmp_path / fmt / name
    assert sha256(source) == before
    return source, files


@pytest.mark.parametrize("fmt", list(FORMAT_FILES))
def test_exif_copied_from_the_source(developed_with_exif, fmt):
    source, files = developed_with_exif
    src_tags, tags = read_exif(source), read_exif(files[fmt])
    for name in EXIF_NAMES:
        assert name in src_tags, name
        assert name in tags, (fmt, name)
        assert str(tags[name]) == str(src_tags[name]), (fmt, name, str(tags[name]), str(src_tags[name]))
    assert str(tags["Image Make"]) == "Acme" and str(tags["EXIF LensModel"]) == EXIF["LensModel"]
    assert str(tags["Image Software"]) == f"rawisp {__version__}"
    assert tags["Image Orientation"] == "1"  # source said 6; the pixels are upright now
    if fmt == "tiff16":
        with tifffile.TiffFile(files[fmt]) as tif:
            icc = tif.pages[0].tags[34675].value
            assert tif.pages[0].shape == (44, 30, 3)
    else:
        with Image.open(files[fmt]) as im:
            icc = im.info.get("icc_profile")
            assert im.size == (30, 44)
    assert_srgb_profile(icc)
    assert icc == srgb_icc()  # the same bytes in every output: its date is fixed


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool not installed")
@pytest.mark.parametrize("fmt", list(FORMAT_FILES))
def test_exif_copied_from_the_source_exiftool(developed_with_exif, fmt):
    source, files = developed_with_exif
    src, out = _exiftool(source), _exiftool(files[fmt])
    expected = {name: src[name] for name in EXIFTOOL_NAMES}
    assert {name: out.get(name) for name in EXIFTOOL_NAMES} == expected
    assert out["GPSLatitude"] == pytest.approx(-33.856784, abs=1e-6)
    assert out["ExposureTime"] == pytest.approx(1 / 250) and out["ISO"] == 400
    assert out["Software"] == f"rawisp {__version__}" and out["Orientation"] == 1
    assert out["ProfileDescription"]  # ICC profile present
    assert (out["ImageWidth"], out["ImageHeight"]) == (30, 44)


# --- info and version ------------------------------------------------------------------------------


def test_info_json(cli, make_dng, tmp_path):
    path, _ = make_dng("i.dng", natural_image(31, 45, seed=2), cfa="GBRG", black=[510, 520, 530, 540],
                       white=16383, neutral=(0.5, 1.0, 0.8), orientation=8, exif=EXIF)
    before = sha256(path)
    result = cli("info", "--json", path)
    assert result.exit_code == 0, result.stderr
    [rec] = json.loads(result.stdout)
    assert rec["file"] == str(path) and rec["size"] == "45x31"
    assert rec["sensor"] == "Bayer GBRG"
    assert rec["black"] == [510, 520, 530, 540] and rec["white"] == 16383
    assert rec["wb_gains"] == pytest.approx([2.0, 1.0, 1.25], abs=1e-3)
    assert rec["orientation"] == 8
    assert rec["iso"] == 400 and rec["f_number"] == 2.8 and rec["gps"] is True
    assert sha256(path) == before

    bad = tmp_path / "bad.dng"
    bad.write_text("nope")
    mixed = cli("info", "--json", path, bad)
    assert mixed.exit_code == 1 and len(json.loads(mixed.stdout)) == 1
    assert len(lines_naming(mixed.stderr, bad)) == 1


def test_python_m_rawisp_version():
    result = subprocess.run([sys.executable, "-m", "rawisp", "--version"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0
    assert result.stdout.strip() == f"rawisp, version {__version__}"


def test_python_m_rawisp_develops(make_dng, scene, tmp_path):
    """The real entry point, with real stderr: one line per bad file, outputs, exit status."""
    good, _ = make_dng("in/good.dng", scene)
    (tmp_path / "in" / "bad.dng").write_bytes(b"\0" * 1000)
    result = subprocess.run([sys.executable, "-m", "rawisp", *map(str, develop_args(
        tmp_path / "in", out=tmp_path / "out", fmt="jpeg"))], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == lines_naming(result.stderr, tmp_path / "in" / "bad.dng")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "1 developed, 0 skipped, 1 failed" in result.stdout
    assert outputs(tmp_path / "out") == ["good.jpg"]


# --- real camera files -----------------------------------------------------------------------------

needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"real RAW files not available ({DATA})")
NOT_BAYER = {"canon_eos_6d_linear.photoprism.dng", "kodak_c330_yrgb.kimageformats.raw"}


def _expected_size(path: Path) -> tuple[int, int]:
    """(height, width) of the upright picture as LibRaw's own sizes describe it."""
    with rawpy.imread(str(path)) as raw:
        s = raw.sizes
        return (s.width, s.height) if s.flip & 4 else (s.height, s.width)


@needs_data
def test_real_files_develop(cli, tmp_path):
    sources = sorted(p for folder in ("real", "derived") for p in (DATA / folder).iterdir()
                     if p.suffix.lower() in RAW_SUFFIXES)
    assert len(sources) >= 7
    out = tmp_path / "out"
    result = cli("develop", *CLASSICAL, "--format", "jpeg", "--quality", "85", DATA / "real", DATA / "derived",
                 "-o", out, "-j", "2")
    assert result.exit_code == 0, result.stderr
    assert summary(result) == (len(sources), 0, 0)
    for path in sources:
        lines = lines_naming(result.stderr, path)
        assert all(": warning: " in line for line in lines), lines  # warnings only, no failure
        if path.name in NOT_BAYER:
            assert any("LibRaw's demosaic" in line for line in lines), path.name
        img = read_image(out / f"{path.stem}.jpg")
        assert img.shape[:2] == _expected_size(path), path.name
        assert 5 < img.mean() < 250 and img.std() > 5, (path.name, img.mean(), img.std())  # not black, not constant
    chart = read_image(out / "canon_kissx4_colorchart_crop.tinydng.jpg")
    assert 30 < chart.mean() < 200
    assert part_files(tmp_path) == []

    # the HERO8 file is tagged Orientation 2 (mirror): its output matches LibRaw's own oriented
    # rendering, not the mirror image of it
    gopro = DATA / "derived" / "gopro_hero8.from_gpr.dng"
    img = read_image(out / "gopro_hero8.from_gpr.jpg")
    assert img.shape == (3000, 4000, 3)
    with rawpy.imread(str(gopro)) as raw:
        assert raw.sizes.flip == 1
        ref = raw.postprocess(half_size=True, use_camera_wb=True, no_auto_bright=True)  # LibRaw flips it
    small = img.reshape(1500, 2, 2000, 2, 3).mean(axis=(1, 3)).mean(axis=-1)
    ref = ref[:1500, :2000].astype(np.float64).mean(axis=-1)
    upright, mirrored = _correlation(small, ref), _correlation(small[:, ::-1], ref)
    assert upright > 0.9 and upright > mirrored + 0.2, f"correlation {upright:.3f}, mirrored {mirrored:.3f}"


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))




@needs_data
def test_bad_and_unsupported_files_fail_with_one_line(cli, tmp_path):
    sources = sorted(p for folder in ("bad_inputs", "unsupported") for p in (DATA / folder).iterdir())
    out = tmp_path / "out"
    result = cli("develop", *CLASSICAL, "--format", "jpeg", DATA / "bad_inputs", DATA / "unsupported", "-o", out)
    assert result.exit_code == 1
    assert summary(result) == (0, 0, len(sources))
    for path in sources:
        failures = [line for line in lines_naming(result.stderr, path) if "another input has the same name" not in line]
        assert len(failures) == 1, (path.name, failures)
    assert not out.exists() or outputs(out) == []
    gpr = lines_naming(result.stderr, DATA / "unsupported" / "gopro_hero6_GOPR0024.GPR")
    assert "unsupported" in gpr[0]


@needs_data
def test_info_on_bad_files_one_line_each():
    """``rawisp info`` decodes in-process: LibRaw's own messages ("Unexpected end of file") must not
    reach stderr beside rawisp's one line per file."""
    sources = sorted((DATA / "bad_inputs").iterdir())
    result = subprocess.run([sys.executable, "-m", "rawisp", "info", *map(str, sources)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == len(sources), result.stderr
    for path in sources:
        assert len(lines_naming(result.stderr, path)) == 1, path.name


def test_cli_opts_out_of_numpy_huge_pages_unless_the_user_chose():
    """The command line sets NUMPY_MADVISE_HUGEPAGE=0 before NumPy is imported (for itself and its
    workers: first touches of big arrays can stall on memory compaction), keeping a user's value."""
    code = ("import rawisp.cli, os, numpy; "
            "m = numpy._core.multiarray if hasattr(numpy, '_core') else numpy.core.multiarray; "  # NumPy 2 / 1
            "print(os.environ['NUMPY_MADVISE_HUGEPAGE'], m._set_madvise_hugepage(False))")
    for preset, expected in ((None, "0 False"), ("1", "1 True")):
        env = {k: v for k, v in os.environ.items() if k != "NUMPY_MADVISE_HUGEPAGE"}
        if preset is not None:
            env["NUMPY_MADVISE_HUGEPAGE"] = preset
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert out.stdout.split() == expected.split(), out.stdout
