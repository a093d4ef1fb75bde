"""Synthetic DNG writer and test chart: round trips through rawpy/LibRaw, tifffile, exiv2, exiftool."""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import rawpy
import tifffile
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import EXIF, rational, read_exif
from rawisp.colour import BAYER_PATTERNS, SRGB_TO_XYZ, srgb_decode, srgb_encode
from rawisp.measure import synth
from rawisp.measure.chart import COLORCHECKER_SRGB8, make_chart

BLACK = [250, 262, 255, 258]  # per 2x2 position, row-major
EXAMPLE = Path(__file__).parents[1] / "examples" / "chart.dng"


def _expected_dn(raw_norm: np.ndarray, black: list[int], white: int) -> np.ndarray:
    """Reference quantisation, pixel by pixel."""
    dn = np.empty(raw_norm.shape, dtype=np.int64)
    for (y, x), v in np.ndenumerate(raw_norm):
        b = black[(y % 2) * 2 + x % 2]
        dn[y, x] = min(max(round(b + v * (white - b)), 0), white)
    return dn


def test_srgb_transfer_round_trip():
    v = np.linspace(0, 1, 101)
    assert np.allclose(srgb_encode(srgb_decode(v)), v, atol=1e-12)
    assert srgb_decode(np.array(0.5)) == pytest.approx(0.21404, abs=1e-5)


def test_matrices():
    assert np.allclose(SRGB_TO_XYZ @ np.ones(3), [0.95047, 1.0, 1.08883], atol=1e-4)
    cam = synth.DEFAULT_CAM_FROM_SRGB
    assert np.allclose(cam.sum(axis=1), 1) and (cam > 0).all()
    assert ((np.diag(cam) >= 0.6) & (np.diag(cam) <= 0.8)).all()


@settings(deadline=None)
@given(st.sampled_from(BAYER_PATTERNS), st.integers(1, 9), st.integers(1, 9))
def test_mosaic_picks_cfa_channel(cfa, h, w):
    cam = np.arange(h * w * 3).reshape(h, w, 3)
    out = synth.mosaic(cam, cfa)
    assert out.shape == (h, w)
    for y in range(h):
        for x in range(w):
            assert out[y, x] == cam[y, x, "RGB".index(cfa[(y % 2) * 2 + x % 2])]


@pytest.mark.parametrize("cfa", BAYER_PATTERNS)
@pytest.mark.parametrize("shape", [(22, 24), (23, 27)])
def test_rawpy_round_trip(tmp_path, cfa, shape):
    raw = np.random.default_rng(1).uniform(-0.1, 1.1, shape)  # out of range on purpose
    path = tmp_path / "x.dng"
    synth.write_dng(path, raw, cfa=cfa, black=BLACK, white=4095, neutral=(0.5, 1.0, 0.8))
    with rawpy.imread(str(path)) as r:
        assert np.array_equal(r.raw_image_visible, _expected_dn(raw, BLACK, 4095))
        for y in range(2):
            for x in range(2):
                c = r.raw_pattern[y, x]
                assert chr(r.color_desc[c]) == cfa[y * 2 + x]
                assert r.black_level_per_channel[c] == BLACK[y * 2 + x]
        assert r.white_level == 4095
        wb = np.array(r.camera_whitebalance[:3]) / r.camera_whitebalance[1]
        assert np.allclose(wb, [1 / 0.5, 1, 1 / 0.8], rtol=1e-5)
        assert np.allclose(r.color_matrix[:, :3], np.linalg.inv(synth.DEFAULT_CAM_FROM_SRGB), atol=1e-3)
        assert r.sizes.flip == 0


def test_other_matrix_and_14_bit(tmp_path):
    cam = np.array([[0.62, 0.30, 0.08], [0.20, 0.70, 0.10], [0.02, 0.18, 0.80]])
    path = tmp_path / "x.dng"
    synth.write_dng(path, np.full((24, 24), 0.5), black=1024, white=16383, cam_from_srgb=cam)
    with rawpy.imread(str(path)) as r:
        assert np.allclose(r.color_matrix[:, :3], np.linalg.inv(cam), atol=1e-3)
        assert r.white_level == 16383
        assert list(r.black_level_per_channel) == [1024] * 4
        assert (r.raw_image_visible == round(1024 + 0.5 * (16383 - 1024))).all()


def test_matrix_rows_must_sum_to_one(tmp_path):
    with pytest.raises(ValueError, match="sum to 1"):
        synth.write_dng(tmp_path / "x.dng", np.zeros((24, 24)), cam_from_srgb=np.eye(3) * 0.9)


@pytest.mark.parametrize(("orientation", "flip"), [(1, 0), (3, 3), (6, 6), (8, 5)])
def test_orientation_flip(tmp_path, orientation, flip):
    path = tmp_path / "x.dng"
    synth.write_dng(path, np.full((24, 30), 0.3), orientation=orientation)
    with rawpy.imread(str(path)) as r:
        assert r.sizes.flip == flip
        assert r.raw_image_visible.shape == (24, 30)  # pixels stay as the sensor saw them


def test_noise_profile_tag(tmp_path):
    synth.write_dng(tmp_path / "n.dng", np.zeros((24, 24)), noise=(2e-3, 4e-3))
    synth.write_dng(tmp_path / "none.dng", np.zeros((24, 24)))
    with tifffile.TiffFile(tmp_path / "n.dng") as tif:
        assert np.allclose(tif.pages[0].tags[51041].value, [2e-3, 1.6e-5] * 3)
    with tifffile.TiffFile(tmp_path / "none.dng") as tif:
        assert 51041 not in tif.pages[0].tags


def test_add_noise_variance():
    x = np.repeat([[-0.2], [0.0], [0.5]], 200_000, axis=1)
    noisy = synth.add_noise(x, shot=1e-2, read=0.05, rng=np.random.default_rng(0))
    assert np.allclose(noisy.mean(axis=1), x[:, 0], atol=1e-3)
    assert np.allclose(noisy.var(axis=1), [0.0025, 0.0025, 0.0075], rtol=0.02)


def test_flat_field_noise_through_dng(tmp_path):
    shot, read, white, black = 2e-3, 4e-3, 4095, 256
    path = tmp_path / "flat.dng"
    truth = synth.srgb_to_dng(path, np.full((128, 128, 3), 0.6), noise=(shot, read), seed=3,
                              black=black, white=white)
    level = truth[0, 0] * np.array([0.55, 1.0, 0.75])  # raw level of each channel
    with rawpy.imread(str(path)) as r:
        x = (r.raw_image_visible.astype(np.float64) - black) / (white - black)
        colours = np.where(r.raw_colors_visible == 3, 1, r.raw_colors_visible)  # G2 -> G
    for c in range(3):
        values = x[colours == c]
        expected = shot * level[c] + read**2 + 1 / (12 * (white - black) ** 2)
        assert values.mean() == pytest.approx(level[c], abs=1e-3)
        assert values.var() == pytest.approx(expected, rel=0.1)
    with tifffile.TiffFile(path) as tif:
        assert np.allclose(tif.pages[0].tags[51041].value, [shot, read**2] * 3)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_srgb_to_dng_ground_truth(tmp_path, dtype):
    rng = np.random.default_rng(2)
    unit = rng.random((23, 25, 3))
    srgb = (unit * np.iinfo(dtype).max).round().astype(dtype) if dtype != np.float32 else unit
    path = tmp_path / "x.dng"
    truth = synth.srgb_to_dng(path, srgb, cfa="GRBG")
    scale = np.iinfo(dtype).max if dtype != np.float32 else 1
    lin = srgb_decode(srgb.astype(np.float64) / scale)
    assert truth.dtype == np.float32 and truth.shape == (23, 25, 3)
    assert np.allclose(truth, lin @ synth.DEFAULT_CAM_FROM_SRGB.T, atol=1e-6)
    expected = synth.mosaic(truth * np.array([0.55, 1.0, 0.75]), "GRBG") * (4095 - 256) + 256
    with rawpy.imread(str(path)) as r:
        assert np.abs(r.raw_image_visible - expected).max() <= 0.5 + 1e-3
    rounding = 1 / (12 * (4095 - 256) ** 2)  # noise (0, 0): the profile states the 1-DN rounding
    with tifffile.TiffFile(path) as tif:
        assert tif.pages[0].tags[51041].value == pytest.approx((rounding, rounding) * 3)  # per colour
    synth.srgb_to_dng(path, srgb, cfa="GRBG", noise_profile=False)
    with tifffile.TiffFile(path) as tif:
        assert 51041 not in tif.pages[0].tags


def test_libraw_develops_back_to_linear_srgb(tmp_path):
    """End to end: LibRaw's own WB + rgb_cam undo the camera model exactly."""
    patches = np.repeat(np.repeat(COLORCHECKER_SRGB8[None], 24, axis=0), 24, axis=1)  # 24 x 576
    path = tmp_path / "cc.dng"
    synth.srgb_to_dng(path, patches, cfa="BGGR")
    with rawpy.imread(str(path)) as r:
        out = r.postprocess(use_camera_wb=True, no_auto_bright=True, gamma=(1, 1), output_bps=16,
                            adjust_maximum_thr=0.0, demosaic_algorithm=rawpy.DemosaicAlgorithm.LINEAR)
    got = out[8:16].reshape(8, 24, 24, 3)[:, :, 8:16].mean(axis=(0, 2)) / 65535
    assert np.allclose(got, srgb_decode(COLORCHECKER_SRGB8 / 255), atol=2e-3)


def test_exif_with_exiv2(tmp_path):
    path = tmp_path / "x.dng"
    synth.write_dng(path, np.zeros((24, 24)), exif=EXIF, make="Acme", model="Model 1")
    tags = read_exif(path)
    assert str(tags["Image Make"]) == "Acme" and str(tags["Image Model"]) == "Model 1"
    assert str(tags["Image Artist"]) == EXIF["Artist"]
    assert str(tags["Image Copyright"]) == EXIF["Copyright"]
    assert str(tags["EXIF ExposureTime"]) == "1/250"
    assert rational(tags["EXIF FNumber"]) == 2.8
    assert tags["EXIF ISOSpeedRatings"] == "400"
    assert rational(tags["EXIF FocalLength"]) == 35.0
    assert str(tags["EXIF DateTimeOriginal"]) == EXIF["DateTimeOriginal"]
    assert str(tags["EXIF LensModel"]) == EXIF["LensModel"]
    d, m, s = (rational(tags["GPS GPSLatitude"], i) for i in range(3))
    assert str(tags["GPS GPSLatitudeRef"]) == "S"
    assert d + m / 60 + s / 3600 == pytest.approx(33.856784, abs=1e-6)
    assert str(tags["GPS GPSLongitudeRef"]) == "E"
    assert tags["GPS GPSAltitudeRef"] == "1"
    assert rational(tags["GPS GPSAltitude"]) == 12.5


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool not installed")
def test_exif_with_exiftool(tmp_path):
    path = tmp_path / "x.dng"
    synth.write_dng(path, np.zeros((24, 24)), exif=EXIF, noise=(1e-3, 1e-3), orientation=6)

    def exiftool(*args: str) -> dict:
        out = subprocess.run(["exiftool", "-j", "-n", *args, str(path)],
                             capture_output=True, text=True, check=True)
        return json.loads(out.stdout)[0]

    assert exiftool("-validate", "-warning", "-a")["Validate"] == "0 0 0"  # errors warnings minor
    info = exiftool()
    assert info["FileType"] == "DNG" and info["DNGVersion"] == "1 4 0 0"
    assert info["ExposureTime"] == pytest.approx(1 / 250)
    assert info["FNumber"] == 2.8 and info["ISO"] == 400 and info["FocalLength"] == 35
    assert info["DateTimeOriginal"] == EXIF["DateTimeOriginal"]
    assert info["LensModel"] == EXIF["LensModel"] and info["Artist"] == EXIF["Artist"]
    assert info["GPSLatitude"] == pytest.approx(-33.856784, abs=1e-6)
    assert info["GPSLongitude"] == pytest.approx(151.215297, abs=1e-6)
    assert info["GPSAltitude"] == pytest.approx(-12.5)
    assert info["Orientation"] == 6 and info["CalibrationIlluminant1"] == 21


def test_chart():
    chart = make_chart(300, 200, seed=0)
    assert chart.shape == (200, 300, 3) and chart.dtype == np.float32
    assert chart.min() >= 0 and chart.max() <= 1 and chart.std() > 0.1
    assert np.array_equal(chart, make_chart(300, 200, seed=0))
    assert not np.array_equal(chart, make_chart(300, 200, seed=1))
    assert make_chart(61, 41).shape == (41, 61, 3)
    with pytest.raises(ValueError):
        make_chart(50, 30)


def test_example_chart_dng():
    with rawpy.imread(str(EXAMPLE)) as r:
        assert r.raw_image_visible.shape == (1600, 2400)
        assert r.white_level == 4095 and r.sizes.flip == 0
    tags = read_exif(EXAMPLE)
    assert str(tags["Image Model"]) == "Synthetic Chart" and "GPS GPSLatitude" in tags
