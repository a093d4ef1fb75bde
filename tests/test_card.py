"""A photographer's card as it really is (issue 26; docs/workflow.md).

1. The camera's JPEGs beside the RAW files: rawisp never makes a name that differs from an existing
   file's only by case (``IMG_0001.jpg`` beside ``IMG_0001.JPG`` is one file on FAT/exFAT cards,
   macOS and Windows), and never replaces a file it did not write, with or without ``--overwrite``.
2. Damaged files say "truncated or damaged", not "unsupported format"; unsupported ones say why.
3. A file without as-shot white balance takes the balance of the camera's JPEG it carries.
4. No sensor-only tags in a finished picture: ``exiftool -validate`` finds nothing a plain output lacks.
5. Smaller things: the linear array's range as documented, option errors in click's words, help.
"""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
from collections import Counter
from pathlib import Path

import click
import exiv2
import numpy as np
import pytest
import tifffile
from conftest import EXIF, lines_naming, natural_image, sha256, summary
from PIL import Image

import rawisp
from rawisp.measure import synth
from rawisp.colour import srgb_decode, srgb_encode
from rawisp.io.write import write_image


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


# --- white balance from the camera's JPEG (item 3) -------------------------------------------------


def _linear_mid_tone_ratios(pixels: np.ndarray) -> tuple[float, float]:
    """R/G and B/G of the mean linear light of the mid-tone pixels (mean sRGB value 32..224) of an
    8-bit sRGB picture: how its colour balance is judged."""
    encoded = pixels.astype(np.float64)
    mid = (encoded.mean(axis=2) > 32) & (encoded.mean(axis=2) < 224)
    r, g, b = srgb_decode(encoded / 255)[mid].mean(axis=0)
    return r / g, b / g


def _dng_with_camera_jpeg(path: Path, scene: np.ndarray, jpeg: np.ndarray | None) -> None:
    """A synthetic DNG of ``scene`` without AsShotNeutral (the camera recorded no white balance),
    carrying ``jpeg`` (sRGB pixels) as the camera's JPEG: a second IFD, as LibRaw finds previews."""
    synth.srgb_to_dng(path, scene)
    data = bytearray(path.read_bytes())
    ifd0 = struct.unpack_from("<I", data, 4)[0]
    count = struct.unpack_from("<H", data, ifd0)[0]
    for at in range(ifd0 + 2, ifd0 + 2 + 12 * count, 12):
        if struct.unpack_from("<H", data, at)[0] == 50728:  # AsShotNeutral -> a private tag nobody reads
            struct.pack_into("<H", data, at, 65001)
    if jpeg is not None:
        buf = io.BytesIO()
        Image.fromarray(jpeg).save(buf, "JPEG", quality=95)
        data += b"\0" * (len(data) % 2)
        start = len(data)
        data += buf.getvalue() + b"\0" * (len(buf.getvalue()) % 2)
        at, (h, w) = len(data), jpeg.shape[:2]
        tags = [(254, 4, 1, 1), (256, 4, 1, w), (257, 4, 1, h), (258, 3, 3, at + 2 + 12 * 10 + 4),  # 8, 8, 8 after
                (259, 3, 1, 7), (262, 3, 1, 6), (273, 4, 1, start), (277, 3, 1, 3), (278, 4, 1, h),
                (279, 4, 1, len(buf.getvalue()))]  # a JPEG-compressed YCbCr strip
        data += struct.pack("<H", len(tags)) + b"".join(struct.pack("<HHII", *t) for t in tags)
        data += struct.pack("<I3H", 0, 8, 8, 8)
        struct.pack_into("<I", data, ifd0 + 2 + 12 * count, at)  # IFD0's next IFD
    path.write_bytes(bytes(data))


def test_no_recorded_white_balance_takes_the_cameras_jpeg(cli, tmp_path):
    """The camera recorded no white balance; its JPEG shows the scene warmer than neutral (its
    choice). The development takes that balance: mid-tones within 5% of the JPEG's R/G and B/G."""
    scene = natural_image(120, 180, seed=3)
    warm = srgb_encode(np.clip(srgb_decode(scene) * [1.35, 1.0, 0.7], 0, 1))
    camera = (warm * 255).round().astype(np.uint8)
    path = tmp_path / "IMG_0001.dng"
    _dng_with_camera_jpeg(path, scene, camera)
    record = rawisp.info(path)
    assert record["wb_source"] == "camera JPEG"
    assert record["warnings"] == ["no as-shot white balance; using the balance of the camera's JPEG in the file"]
    want = _linear_mid_tone_ratios(camera)
    for engine in ("classical", "learned"):
        got = _linear_mid_tone_ratios(rawisp.develop(path, engine))
        assert got == pytest.approx(want, rel=0.05), engine
    # --wb auto is still LibRaw's grey world, not the camera's choice
    auto = rawisp.develop(path, "classical", wb="auto")
    assert _linear_mid_tone_ratios(auto) != pytest.approx(want, rel=0.05)


@pytest.mark.parametrize(("jpeg", "why"), [
    (None, ""),
    ("other", " (the camera's JPEG in the file does not match the picture)"),
    ("grey", " (the camera's JPEG in the file is monochrome)"),
])
def test_a_camera_jpeg_that_does_not_fit_is_not_used(tmp_path, jpeg, why):
    scene = natural_image(120, 180, seed=3)
    pixels = {"other": (natural_image(120, 180, seed=9) * 255).astype(np.uint8),
              "grey": np.repeat((scene.mean(axis=2, keepdims=True) * 255).astype(np.uint8), 3, axis=2)}.get(jpeg)
    path = tmp_path / "IMG_0001.dng"
    _dng_with_camera_jpeg(path, scene, pixels)
    record = rawisp.info(path)
    assert record["wb_source"] == "unity"  # the synthetic camera has no daylight multipliers either
    assert record["warnings"] == [f"no white balance in the file; using unity gains{why}"]


@needs_data
def test_the_canon_d30_takes_the_balance_of_its_own_jpeg(cli, tmp_path):
    """The D30 recorded Auto without multipliers; its JPEG (the one in the file, also given beside
    it) has mid-tones R/G 1.73, B/G 0.55. Developed, within 15% (was 0.97 and 0.74)."""
    source = DATA / "real" / "canon_eos_d30.imagemeta.CRW"
    with Image.open(DATA / "real" / "canon_eos_d30.imagemeta.embedded_JpgFromRaw.jpg") as im:
        want = _linear_mid_tone_ratios(np.asarray(im.convert("RGB")))
    assert want == pytest.approx((1.73, 0.55), abs=0.01)
    record = rawisp.info(source)
    assert record["wb_source"] == "camera JPEG"
    assert record["warnings"][0] == ("no as-shot white balance (the camera recorded Auto); using the balance of the "
                                     "camera's JPEG in the file")
    got = _linear_mid_tone_ratios(rawisp.develop(source, "classical"))
    assert got == pytest.approx(want, rel=0.15)
    result = cli("develop", "--engine", "classical", source, "-o", tmp_path)
    assert "using the balance of the camera's JPEG in the file" in result.stderr


# --- no sensor tags in a finished picture; exiftool -validate clean (item 4) -----------------------

needs_exiftool = pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool not installed "
                                    "(apt-get install libimage-exiftool-perl)")
PICTURES = {"jpeg": ".jpg", "png": ".png", "png16": ".png", "tiff16": ".tif", "dng": ".dng"}
# exiftool's notice that it left large arrays undecoded (a DNG's copied camera profile), not a finding
NOT_A_FINDING = "[Minor] Not decoding some large array(s). Ignore minor errors to decode"


def _validate(path: Path) -> set[str]:
    """The warnings of ``exiftool -validate -warning`` on ``path``."""
    out = subprocess.run(["exiftool", "-validate", "-warning", "-a", "-s", "-s", "-s", str(path)], capture_output=True,
                         text=True, check=True).stdout.splitlines()
    return {line for line in out[1:] if line != NOT_A_FINDING}  # the first line is the count, or OK


def _plain(tmp_path: Path, fmt: str) -> set[str]:
    """The warnings of a plain output of ``fmt``: rawisp's pixels with no source's metadata (a linear
    DNG: of a synthetic DNG that has none)."""
    folder = tmp_path / "plain"
    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "dng":
        synth.srgb_to_dng(folder / "plain.dng", natural_image(32, 48))
        return _validate(rawisp.develop_file(folder / "plain.dng", folder / "out.dng", "classical"))
    pixels = (natural_image(32, 48) * (255 if fmt in ("jpeg", "png") else 65535))
    pixels = pixels.astype(np.uint8 if fmt in ("jpeg", "png") else np.uint16)
    return _validate(write_image(folder / f"plain{PICTURES[fmt]}", pixels, fmt))


def _exif_keys(path: Path) -> set[str]:
    image = exiv2.ImageFactory.open(str(path))
    image.readMetadata()
    return {d.key() for d in image.exifData()}


@pytest.mark.parametrize("fmt", ["jpeg", "png", "png16", "tiff16"])
def test_a_picture_carries_no_sensor_tags(tmp_path, fmt):
    """A synthetic DNG carries CFAPattern and CFARepeatPatternDim in IFD0, as TIFF-EP RAW files
    do; the demosaicked picture carries neither (the CFAPattern was moved to the Exif IFD, without
    the size header EXIF's form has), nor the source's blank dates."""
    source = tmp_path / "IMG_0001.dng"
    synth.srgb_to_dng(source, natural_image(32, 48), exif={"ModifyDate": "    ", "Artist": "Ada"})
    assert {"Exif.Image.CFAPattern", "Exif.Image.CFARepeatPatternDim", "Exif.Image.DateTime"} <= _exif_keys(source)
    output = rawisp.develop_file(source, tmp_path / f"IMG_0001{PICTURES[fmt]}", "classical", format=fmt)
    keys = _exif_keys(output)
    assert not {k for k in keys if "CFA" in k}, keys
    assert "Exif.Image.DateTime" not in keys and "Exif.Image.Artist" in keys


@needs_exiftool
@pytest.mark.parametrize("fmt", list(PICTURES))
def test_exiftool_validates_outputs_of_a_synthetic_raw(tmp_path, fmt):
    """Every format, from a source with every tag rawisp carries (GPS included): nothing exiftool
    does not say of a plain output; JPEG, PNG and the linear DNG validate OK."""
    source = tmp_path / "IMG_0001.dng"
    synth.srgb_to_dng(source, natural_image(32, 48), exif={**EXIF, "ModifyDate": ""})
    output = rawisp.develop_file(source, tmp_path / f"out{PICTURES[fmt]}", "classical", format=fmt)
    plain = _plain(tmp_path, fmt)
    assert _validate(output) <= plain
    if fmt != "tiff16":  # Deflate (compression 8) and the pixel dimensions are not EXIF's TIFF: see docs
        assert plain == set()


REAL = ["real/canon_kissx4_colorchart_crop.tinydng.dng", "real/canon_eos_d30.imagemeta.CRW",
        "real/canon_eos_6d_linear.photoprism.dng", "real/kodak_dc50.rawpy.KDC",
        "real/kodak_c330_yrgb.kimageformats.raw", "derived/gopro_hero8.from_gpr.dng",
        "derived/gopro_fusion_GPFR7066.from_gpr.dng"]


@needs_data
@needs_exiftool
@pytest.mark.parametrize("fmt", [pytest.param(f, marks=pytest.mark.slow) if f in ("png", "png16", "tiff16") else f
                                 for f in PICTURES])
def test_exiftool_validates_every_output_of_every_real_file(cli, tmp_path, fmt):
    """Every real file, every format: nothing exiftool does not say of a plain output of the format
    (before: "Invalid CFAPattern" from the Bayer DNGs, invalid empty dates from the Kiss X4, a
    missing GPSProcessingMethod in the GoPro TIFFs)."""
    plain = _plain(tmp_path, fmt)
    sources = [DATA / name for name in REAL]
    result = cli("develop", "--engine", "classical", "--format", fmt, "-q", *sources, "-o", tmp_path / "out")
    assert result.exit_code == 0, result.stderr
    found = {path.name: _validate(tmp_path / "out" / (path.stem + PICTURES[fmt])) - plain for path in sources}
    assert found == {path.name: set() for path in sources}


# --- smaller things a user meets (item 5) ----------------------------------------------------------

CHART = Path(__file__).resolve().parents[1] / "examples" / "chart.dng"


def test_the_linear_array_is_as_documented():
    """Scene-referred, not clipped, and said so: the learned engine goes below 0 and above 1 on
    the bundled chart, and the API's documentation and the README say it does."""
    lin = rawisp.develop(CHART, "learned", linear=True)
    assert lin.dtype == np.float32 and lin.min() < -0.1 and lin.max() > 1.1
    assert 0.001 < (lin < 0).mean() < 0.05
    doc = " ".join(rawisp.develop.__doc__.split())
    assert "not clipped" in doc and "below 0" in doc and "above 1" in doc
    readme = " ".join((CHART.parents[1] / "README.md").read_text().split())
    assert "1.0 = white, not clipped" in readme and "not clipped, so a little below 0" in readme


@pytest.mark.parametrize("args", [
    ("develop", "--wb", "foo"), ("develop", "--wb", "1,2"), ("develop", "--denoise", "lots"),
    ("develop", "--denoise", "nan"), ("develop", "--exposure", "nan"), ("info", "--denoise", "11"),
    ("compare", "-o", "OUT", "--wb", "0,1,1"), ("compare", "-o", "OUT", "--camera", "nope"),
    ("compare", "-o", "OUT", "--noise", "nan:1"), ("eval", "GT", "--noise", "2:0"),
], ids=lambda a: " ".join(a))
def test_option_errors_quote_the_option_as_click_does(cli, tmp_path, args):
    args = [str(tmp_path) if a in ("OUT", "GT") else a for a in args]
    command, rest = args[0], args[1:]
    result = cli(command, *([] if command == "eval" else [CHART]), *rest)
    option = next(a for a in reversed(rest) if a.startswith("--"))
    assert result.exit_code == 2, result.stderr
    [error] = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert error.startswith(f"Error: Invalid value for '{option}': "), error


def test_every_option_has_help_and_the_command_list_is_whole(cli):
    from rawisp.cli import main

    for name, command in main.commands.items():
        for param in command.params:
            if isinstance(param, click.Option) and param.name not in ("help",):
                assert param.help, (name, param.opts)
    listing = cli("--help").stdout.split("Commands:")[1]
    assert "..." not in listing
    assert {line.split()[0] for line in listing.splitlines() if line.startswith("  ") and line[2] != " "} \
        == set(main.commands)
