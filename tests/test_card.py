"""A photographer's card as it really is: the camera's JPEGs beside the RAW files (issue 26, item 1).

rawisp never makes a name that differs from an existing file's only by case (``IMG_0001.jpg``
beside ``IMG_0001.JPG`` is one file on FAT/exFAT cards, macOS and Windows), and never replaces a
file it did not write, with or without ``--overwrite``.
"""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import numpy as np
import tifffile
import pytest
from conftest import lines_naming, natural_image, sha256, summary
from PIL import Image

import rawisp
from rawisp import synth


def _camera_jpeg(path: Path, seed: int = 0) -> None:
    """A JPEG as a camera writes it beside its RAW file: EXIF with the camera's own Software tag."""
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0131] = "Canon", "Canon EOS D30", "Firmware Version 1.0.4"
    pixels = (natural_image(40, 56, seed=seed) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(path, "JPEG", quality=90, exif=exif)


def _card(root: Path) -> Path:
    """IMG_0001 (RAW + the camera's IMG_0001.JPG), IMG_0002 (RAW only), IMG_0003 (RAW + a JPEG
    named exactly as rawisp would name its output, as some phones and cameras write them)."""
    card = root / "DCIM"
    card.mkdir(parents=True)
    for n in (1, 2, 3):
        synth.srgb_to_dng(card / f"IMG_000{n}.dng", natural_image(40, 56, seed=n))
    _camera_jpeg(card / "IMG_0001.JPG", 1)
    _camera_jpeg(card / "IMG_0003.jpg", 3)
    return card


def _case_twins(folder: Path) -> list[str]:
    """Names in ``folder`` that another name there equals but for case."""
    folded = Counter(p.name.casefold() for p in folder.iterdir())
    return sorted(p.name for p in folder.iterdir() if folded[p.name.casefold()] > 1)


RUNS = {  # the runs, and whether their outputs' names are the camera's
    "beside": ((), True),
    "overwrite": (("--overwrite",), True),
    "jobs": (("--overwrite", "-j", "2"), True),
    "both": (("--engine", "both", "--side-by-side", "--overwrite"), False),  # IMG_0001.learned.jpg...
    "png": (("--format", "png", "--overwrite"), False),
    "jpeg again": (("--overwrite", "--quality", "80"), True),
}


def test_a_card_with_the_cameras_jpegs(cli, tmp_path):
    card = _card(tmp_path)
    cameras = {name: sha256(card / name) for name in ("IMG_0001.JPG", "IMG_0003.jpg")}
    for label, (extra, clash) in RUNS.items():
        engine = () if "--engine" in extra else ("--engine", "classical")
        result = cli("develop", card, *engine, *extra)
        assert _case_twins(card) == [], label
        assert {name: sha256(card / name) for name in cameras} == cameras, label
        if not clash:
            assert result.exit_code == 0 and summary(result) == (3, 0, 0), result.stderr
            continue
        assert result.exit_code == 1, (label, result.stderr)
        for n in (1, 3):
            [line] = lines_naming(result.stderr, card / f"IMG_000{n}.dng")
            assert "rawisp did not write it" in line and '--name "{stem}_rawisp"' in line and "-o FOLDER" in line
        if label == "beside":
            assert "IMG_0001.jpg would be the same file on FAT/exFAT cards" in result.stderr
            assert summary(result) == (1, 0, 2)
    # the way out the lines give
    result = cli("develop", card, "--engine", "classical", "--name", "{stem}_rawisp")
    assert result.exit_code == 0 and summary(result) == (3, 0, 0), result.stderr
    assert sorted(p.name for p in card.glob("*_rawisp.jpg")) == [f"IMG_000{n}_rawisp.jpg" for n in (1, 2, 3)]
    assert _case_twins(card) == [] and {name: sha256(card / name) for name in cameras} == cameras


def test_rawisps_own_output_under_another_case_is_the_output(cli, tmp_path):
    """An output of rawisp's named IMG_0002.JPG (written on a card that kept another case) is the
    output IMG_0002.jpg: skipped, replaced with --overwrite, never given a twin."""
    card = _card(tmp_path)
    assert cli("develop", card / "IMG_0002.dng", "--engine", "classical", "--exposure", "1").exit_code == 0
    (card / "IMG_0002.jpg").rename(card / "IMG_0002.JPG")
    before = sha256(card / "IMG_0002.JPG")
    again = cli("develop", card / "IMG_0002.dng", "--engine", "classical")
    assert again.exit_code == 0 and summary(again) == (0, 1, 0)
    forced = cli("develop", card / "IMG_0002.dng", "--engine", "classical", "--overwrite")
    assert forced.exit_code == 0 and summary(forced) == (1, 0, 0)
    assert _case_twins(card) == [] and sha256(card / "IMG_0002.JPG") != before


def test_inputs_whose_outputs_differ_only_by_case_get_names_apart(cli, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    synth.srgb_to_dng(folder / "IMG_1.dng", natural_image(24, 32, seed=1))
    synth.srgb_to_dng(folder / "img_1.DNG", natural_image(24, 32, seed=2))
    result = cli("develop", folder, "--engine", "classical", "-o", tmp_path / "out")
    assert result.exit_code == 0 and summary(result) == (2, 0, 0), result.stderr
    # IMG_1.dng.jpg and img_1.DNG.jpg would be one file too
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["IMG_1.dng.jpg", "img_1.DNG-2.jpg"]


def test_the_python_api_keeps_the_cameras_jpeg(tmp_path):
    card = _card(tmp_path)
    camera = sha256(card / "IMG_0001.JPG")
    for output in ("IMG_0001.jpg", "IMG_0001.JPG"):
        for overwrite in (False, True):
            with pytest.raises(rawisp.OutputExistsError, match="rawisp did not write it"):
                rawisp.develop_file(card / "IMG_0001.dng", card / output, "classical", overwrite=overwrite)
    assert _case_twins(card) == [] and sha256(card / "IMG_0001.JPG") == camera
    # its own output under another case is the output: returned under the name it has
    first = rawisp.develop_file(card / "IMG_0002.dng", card / "IMG_0002.JPG", "classical")
    again = rawisp.develop_file(card / "IMG_0002.dng", card / "IMG_0002.jpg", "classical", exposure=1, overwrite=True)
    assert again == first == card / "IMG_0002.JPG" and _case_twins(card) == []
    with Image.open(io.BytesIO(again.read_bytes())) as im:
        assert im.getexif()[0x0131].startswith("rawisp ")


# --- damaged files (item 2) ------------------------------------------------------------------------

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "raw"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data/raw not available")


def _arw_like(path: Path) -> None:
    """A TIFF-based RAW laid out as ARW, NEF and DNG files are: IFD0 a small RGB preview with the
    camera's Make and Model, the Bayer frame in a SubIFD after it. LibRaw reads it whole; cut
    before its SubIFD it finds no frame and calls the file unsupported."""
    rng = np.random.default_rng(0)
    with tifffile.TiffWriter(path, byteorder="<") as tif:
        tif.write((rng.random((16, 24, 3)) * 255).astype(np.uint8), photometric="rgb", subfiletype=1, subifds=1,
                  metadata=None, extratags=[(271, 2, 5, "SONY", True), (272, 2, 9, "ILCE-7M3", True)])
        tif.write((rng.random((64, 96)) * 3000 + 500).astype(np.uint16), photometric=32803, subfiletype=0,
                  metadata=None, extratags=[(33421, 3, 2, (2, 2), True), (33422, 1, 4, (0, 1, 1, 2), True)])


def _reason(cli, path: Path) -> str:
    result = cli("develop", "--engine", "classical", path, "-o", path.parent / "out")
    assert result.exit_code == 1
    [line] = lines_naming(result.stderr, path)
    return line.removeprefix(f"rawisp: {path}: ")


def test_a_truncated_raw_file_says_truncated_not_unsupported(cli, tmp_path):
    whole = tmp_path / "DSC00001.ARW"
    _arw_like(whole)
    assert rawisp.develop(whole, "classical").shape == (64, 96, 3)
    cut = tmp_path / "DSC00002.ARW"
    cut.write_bytes(whole.read_bytes()[:1000])  # the SubIFD, and the frame after it, are gone
    assert _reason(cli, cut).startswith("truncated or damaged ARW file: 1000 bytes, its structure refers to data "
                                        "up to byte ")
    dng = tmp_path / "IMG_0001.dng"  # LibRaw fails to read a cut DNG's frame: the reason says why
    synth.srgb_to_dng(dng, natural_image(40, 56))
    dng.write_bytes(dng.read_bytes()[:4000])
    assert _reason(cli, dng).startswith("truncated or damaged DNG file: 4000 bytes, its structure refers to data ")
    noise = tmp_path / "IMG_0002.CR2"
    noise.write_bytes(np.random.default_rng(1).integers(0, 256, 100_000, np.uint8).tobytes())
    assert _reason(cli, noise) == "unsupported format (LibRaw cannot read it)"


@needs_data
@pytest.mark.parametrize(("name", "reason"), [
    ("bad_inputs/imagemeta_truncated.canon-1dsmk3.CR2",
     "truncated or damaged CR2 file: 339216 bytes, its structure refers to data up to byte 20859768"),
    ("bad_inputs/file-type_truncated.sony-zv-e10.arw",
     "truncated or damaged ARW file: 100000 bytes, its structure refers to data up to byte 754577"),
    ("bad_inputs/exiftool_stub.CanonRaw.cr2", "damaged CR2 file: LibRaw reads CR2 files but cannot read this one"),
    ("unsupported/gopro_hero6_GOPR0024.GPR",
     "unsupported format: DNG compression 9 (GoPro VC-5), which LibRaw cannot decode"),
])
def test_real_damaged_files_say_so_and_unsupported_ones_say_why(cli, tmp_path, name, reason):
    copy = tmp_path / Path(name).name  # outputs beside it would go to the read-only data otherwise
    copy.write_bytes((DATA / name).read_bytes())
    assert _reason(cli, copy) == reason


@needs_data
def test_a_truncated_canon_crw_says_so(cli, tmp_path):
    cut = tmp_path / "CRW_0001.CRW"  # head -c 1500000 of the D30's file
    cut.write_bytes((DATA / "real" / "canon_eos_d30.imagemeta.CRW").read_bytes()[:1_500_000])
    assert _reason(cli, cut) == "truncated or damaged CRW file: its structure does not fit in its 1500000 bytes"
