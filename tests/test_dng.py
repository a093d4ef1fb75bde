"""Linear DNG output (`rawisp develop --format linear-dng`): structure, pixels, colour tags, read-back by
rawisp, rawpy, darktable and RawTherapee, exiftool's validation, real camera files."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import rawpy
import tifffile
from PIL import Image

from rawisp.engines.registry import make_engine
from rawisp.io.decode import decode
from rawisp.io.dng import PREVIEW_SIDE, THUMBNAIL_SIDE, WHITE, source_preview
from rawisp.io.metadata import apply_orientation
from rawisp.io.whitebalance import white_balance_gains
from rawisp.measure import editors
from rawisp.measure.chart import make_chart
from rawisp.measure.metrics import psnr
from rawisp.stages.dng_frame import camera_frame
from rawisp.stages.normalise import normalise
from rawisp.stages.reconstruct import reconstruct
from conftest import DATA, EXIF

CHART_SIZE = (360, 240)  # small: darktable and RawTherapee take seconds per file on 2 cores
NEUTRAL = (0.55, 1.0, 0.75)


@pytest.fixture(scope="module")
def chart() -> np.ndarray:
    return make_chart(*CHART_SIZE)


@pytest.fixture(scope="module")
def chart_dngs(tmp_path_factory, chart) -> tuple[Path, dict[str, Path]]:
    """The chart as a synthetic camera DNG (turned: Orientation 6) and rawisp's DNG of it per engine."""
    from rawisp.measure.synth import srgb_to_dng

    folder = tmp_path_factory.mktemp("chart")
    source = folder / "chart.dng"
    srgb_to_dng(source, chart, neutral=NEUTRAL, orientation=6, make="rawisp", model="Chart", exif=EXIF)
    out = folder / "out"
    _develop_dng(out, source, "--engine", "both")
    return source, {name: out / f"chart.{name}.dng" for name in ("learned", "classical")}


def _develop_dng(out: Path, *args) -> None:
    """``rawisp develop --format linear-dng ARGS -o OUT`` (a fresh process, as a user runs it)."""
    result = subprocess.run(["rawisp", "develop", "--format", "linear-dng", "-q", *map(str, args), "-o", str(out)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr


def _raw_page(path: Path) -> tuple[tifffile.TiffPage, tifffile.TiffPage]:
    tif = tifffile.TiffFile(path)
    return tif.pages.first, tif.pages.first.pages[0]


def test_layout_and_tags(chart_dngs):
    """IFD0: thumbnail + DNG/colour tags; SubIFD: full-resolution 16-bit LinearRaw, levels, crop."""
    source, dngs = chart_dngs
    ifd0, main = _raw_page(dngs["classical"])
    tags = ifd0.tags
    assert tags.valueof(254) == 1 and max(ifd0.shape[:2]) <= THUMBNAIL_SIDE and ifd0.dtype == np.uint8
    assert ifd0.shape[0] * ifd0.shape[1] < 19200  # below what RawTherapee fits its tone curve to
    assert len(ifd0.pages) == 1  # the source has no preview: none is carried
    assert tags.valueof(50706) == bytes((1, 4, 0, 0)) and tags.valueof(50707) == bytes((1, 3, 0, 0))
    assert tags.valueof(274) == 6  # Orientation as a tag: the pixels are not turned
    assert tags.valueof(305).startswith("rawisp ")  # Software
    assert tags.valueof(50708) == "rawisp Chart"  # UniqueCameraModel
    with tifffile.TiffFile(source) as src:  # colour tags: the source's, verbatim
        for code in (50721, 50728, 50778):
            assert tags.valueof(code) == src.pages.first.tags.valueof(code)
    assert main.tags.valueof(254) == 0 and main.tags.valueof(262) == 34892
    assert main.shape == (CHART_SIZE[1], CHART_SIZE[0], 3) and main.dtype == np.uint16
    assert main.tags.valueof(50714) == (0, 0, 0) and main.tags.valueof(50717) == (WHITE,) * 3
    assert main.tags.valueof(50719) == (0, 0) and main.tags.valueof(50720) == CHART_SIZE


def test_source_exif_is_carried(chart_dngs):
    """The source's EXIF (exposure, lens, date, GPS, artist) is in the DNG, its Orientation kept."""
    source, dngs = chart_dngs
    original, copy = decode(source).metadata, decode(dngs["learned"]).metadata
    for key in ("Exif.Photo.ExposureTime", "Exif.Photo.FNumber", "Exif.Photo.LensModel",
                "Exif.Photo.DateTimeOriginal", "Exif.Image.Artist", "Exif.GPSInfo.GPSLatitude"):
        assert copy.exif[key] == original.exif[key], key
    assert copy.orientation == 6 and "Exif.Photo.ColorSpace" not in copy.exif


@pytest.mark.parametrize("engine", ["classical", "learned"])
def test_pixels_are_the_engine_output_before_white_balance(chart_dngs, engine):
    """Stored frame == engine output / white-balance gains, in 16 bits (max error half a step)."""
    source, dngs = chart_dngs
    raw = decode(source)
    rgb = reconstruct(normalise(raw), make_engine(engine))
    _, main = _raw_page(dngs[engine])
    stored = main.asarray().astype(np.float64) / WHITE
    expected = np.clip(rgb / white_balance_gains(raw.wb), 0, 1)
    assert np.abs(stored - expected).max() <= 0.5 / WHITE + 1e-7
    assert np.array_equal(main.asarray(), camera_frame(rgb, raw.wb))


def test_rawisp_and_rawpy_read_it_back(chart_dngs):
    """LibRaw reads the DNG as linear camera RGB with the source's white balance, matrix and
    orientation; rawisp info shows the same colour data as for the original."""
    source, dngs = chart_dngs
    original, copy = decode(source), decode(dngs["classical"])
    assert copy.mosaic is None and copy.shape == original.shape and copy.orientation == 6
    assert np.allclose(copy.wb, original.wb, atol=1e-4)
    assert np.allclose(copy.srgb_from_cam, original.srgb_from_cam, atol=1e-4)
    info = subprocess.run(["rawisp", "info", "--json", str(dngs["classical"])], capture_output=True, text=True)
    assert info.returncode == 0 and json.loads(info.stdout)[0]["sensor"] == "non-Bayer (LibRaw demosaic)"
    with rawpy.imread(str(dngs["classical"])) as raw:
        assert raw.raw_type == rawpy.RawType.Stack and raw.sizes.flip == 6


@pytest.mark.parametrize("engine", ["classical", "learned"])
def test_redeveloping_the_dng_gives_the_same_picture(chart_dngs, tmp_path, engine):
    """rawisp develop --engine classical of the DNG == rawisp develop --engine E of the original
    (E the engine that wrote the DNG): PSNR >= 45 dB on 16-bit PNG."""
    source, dngs = chart_dngs
    for path, name in ((source, engine), (dngs[engine], "classical")):
        result = subprocess.run(["rawisp", "develop", "-q", "--format", "png16", "--engine", name,
                                 "-o", str(tmp_path / name / path.stem), str(path)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    first = np.asarray(Image.open(tmp_path / engine / source.stem / "chart.png")).astype(np.float64)
    second = np.asarray(Image.open(tmp_path / "classical" / dngs[engine].stem / f"{dngs[engine].stem}.png"))
    assert first.shape == second.shape == (CHART_SIZE[0], CHART_SIZE[1], 3)  # upright (Orientation 6)
    assert psnr(first / 65535, second.astype(np.float64) / 65535, border=0) >= 45


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool is not installed")
def test_exiftool_validates(chart_dngs):
    for path in chart_dngs[1].values():
        out = subprocess.run(["exiftool", "-validate", "-warning", "-a", str(path)], capture_output=True, text=True)
        assert "Validate                        : OK" in out.stdout, out.stdout


@pytest.mark.slow
@pytest.mark.parametrize("editor", editors.EDITORS)
def test_editors_develop_the_dng_like_the_original(chart_dngs, chart, tmp_path, editor):
    """Each editor, its look switched off, develops rawisp's DNG of the chart as it develops the
    original: mean CIEDE2000 < 2 over the chart's flat regions, same orientation and size (less
    the border an editor trims from a Bayer frame).

    With their defaults two editors apply to the Bayer original a step they never apply to a
    demosaicked image, whatever the DNG's tags (see rawisp.measure.editors): darktable 4.2 switches filmic
    rgb on only for CFA images (fixed in darktable 4.4), and RawTherapee 5.9 corrects chromatic
    aberration on Bayer data only: mean CIEDE2000 2.43 and 2.31 on the 600x400 chart (docs/dng.md). The
    test below checks the rest of RawTherapee's default look."""
    if reason := editors.missing(editor):
        pytest.skip(reason)
    source, dngs = chart_dngs
    mask = apply_orientation(np.repeat(editors.flat_mask(chart)[..., None], 3, axis=2), 6)[..., 0]
    reference = editors.develop_with(editor, source, tmp_path, neutral=True)
    candidate = editors.develop_with(editor, dngs["classical"], tmp_path, neutral=True)
    assert candidate.shape == (CHART_SIZE[0], CHART_SIZE[1], 3)  # upright
    assert 0 <= candidate.shape[0] - reference.shape[0] <= 8 and 0 <= candidate.shape[1] - reference.shape[1] <= 8
    assert editors.flat_delta_e(reference, candidate, mask) < 2


@pytest.mark.slow
def test_rawtherapee_default_look_matches_but_its_bayer_only_step(chart_dngs, chart, tmp_path):
    """RawTherapee's default raw profile (Auto-Matched Curve: tone curve fitted to the embedded
    preview, highlight recovery, capture sharpening...) without its Bayer-only raw CA correction
    develops the DNG like the original: mean CIEDE2000 < 2 over the flat regions. Neither file
    has a preview it fits a curve to (the source has none, rawisp's thumbnail is below its
    19200-pixel threshold)."""
    if reason := editors.missing("rawtherapee"):
        pytest.skip(reason)
    source, dngs = chart_dngs
    mask = apply_orientation(np.repeat(editors.flat_mask(chart)[..., None], 3, axis=2), 6)[..., 0]
    reference, *candidates = (editors.develop_with("rawtherapee", path, tmp_path, raw_ca=False)
                              for path in (source, dngs["classical"], dngs["learned"]))
    for candidate in candidates:
        assert editors.flat_delta_e(reference, candidate, mask) < 2


REAL = ["real/canon_kissx4_colorchart_crop.tinydng.dng", "real/canon_eos_d30.imagemeta.CRW",
        "real/canon_eos_6d_linear.photoprism.dng", "real/kodak_dc50.rawpy.KDC",
        "real/kodak_c330_yrgb.kimageformats.raw", "derived/gopro_hero8.from_gpr.dng"]


@pytest.fixture(scope="module")
def real_dngs(tmp_path_factory) -> dict[str, tuple[Path, Path, Path, Path]]:
    """Per real file: (source, its DNG, the source and the DNG developed by the classical engine to
    16-bit PNG)."""
    sources = [DATA / name for name in REAL if (DATA / name).exists()]
    if not sources:
        pytest.skip(f"no real camera files under {DATA}")
    out = tmp_path_factory.mktemp("real")
    _develop_dng(out, "--engine", "classical", *sources)
    dngs = [out / f"{src.stem}.dng" for src in sources]
    for folder, inputs in ((out / "from_source", sources), (out / "from_dng", dngs)):
        result = subprocess.run(["rawisp", "develop", "-q", "--format", "png16", "--engine", "classical",
                                 "-o", str(folder), *map(str, inputs)], capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr
    return {src.name: (src, dng, out / "from_source" / f"{src.stem}.png", out / "from_dng" / f"{dng.stem}.png")
            for src, dng in zip(sources, dngs)}


def _exiftool_problems(path: Path) -> set[str]:
    """The warnings and errors of ``exiftool -validate``, one string each."""
    out = subprocess.run(["exiftool", "-validate", "-warning", "-a", str(path)], capture_output=True, text=True)
    return {" ".join(line.split(None, 2)[::2]) for line in out.stdout.splitlines()
            if line.startswith(("Warning", "Error"))}


@pytest.mark.slow
@pytest.mark.parametrize("name", [Path(n).name for n in REAL])
def test_real_files_round_trip(real_dngs, name):
    """From every real file: a DNG that exiftool validates, that rawisp reads back with the source's
    size, orientation, white balance and colour matrix and re-develops to the same picture
    (PSNR >= 45 dB), that carries the source's preview (the camera's JPEG, as LibRaw decodes it),
    and that LibRaw develops like the original (mean CIEDE2000 of 16x16-pixel block means < 2:
    demosaicking differs, colour and exposure must not) where the file has its own white balance
    and matrix (else the DNG holds rawisp's fallback, which LibRaw does not use)."""
    if name not in real_dngs:
        pytest.skip(f"{name} is not under {DATA}")
    source, dng, developed_source, developed_dng = real_dngs[name]
    original, copy = decode(source), decode(dng)
    assert copy.shape == original.shape and copy.orientation == original.orientation
    assert np.allclose(copy.wb, original.wb, rtol=1e-3)
    assert np.allclose(copy.srgb_from_cam, original.srgb_from_cam, atol=2e-3)
    if shutil.which("exiftool"):  # no problem the source does not have (its own EXIF's, e.g. odd dates)
        new = _exiftool_problems(dng) - _exiftool_problems(source)
        assert new <= {"Warning [Minor] Not decoding some large array(s). Ignore minor errors to decode"}, new
    preview = source_preview(str(source))  # the camera's preview is carried, as LibRaw decodes it
    subifds = _raw_page(dng)[0].pages
    if preview is None:
        assert len(subifds) == 1
    else:
        assert max(preview.shape[:2]) <= PREVIEW_SIDE and np.array_equal(subifds[1].asarray(), preview)
    first, second = (np.asarray(Image.open(p)).astype(np.float64) / 65535 for p in (developed_source, developed_dng))
    assert psnr(first, second, border=0) >= 45
    if not original.warnings:
        a, b = (editors.develop_with("rawpy", p, dng.parent) for p in (source, dng))
        assert a.shape == b.shape
        assert editors.block_delta_e(a, b) < 2


@pytest.mark.slow
@pytest.mark.parametrize("editor", ["darktable", "rawtherapee"])
def test_editors_open_dngs_of_real_files(real_dngs, tmp_path, editor):
    """darktable and RawTherapee open the DNG of every real file (the small ones; the 12 MP GoPro
    frame is left to rawpy) and develop it to the original's upright size."""
    if reason := editors.missing(editor):
        pytest.skip(reason)
    for source, dng, *_ in real_dngs.values():
        if dng.stat().st_size > 40e6:
            continue
        picture = editors.develop_with(editor, dng, tmp_path)
        original = decode(source)
        upright = original.shape if original.orientation < 5 else original.shape[::-1]
        assert all(0 <= a - b <= 8 for a, b in zip(upright, picture.shape)), (dng, picture.shape)
        assert picture.std() > 0.01, dng
