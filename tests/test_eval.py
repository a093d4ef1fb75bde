"""The evaluation harness: protocol round trip, noise presets, metrics, and the ``rawisp eval`` command."""

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from rawisp.cli import main
from rawisp.colour import BAYER_PATTERNS
from rawisp.io.decode import decode
from rawisp.measure.eval_report import summarise
from rawisp.measure.evaluate import Oracle, develop_dng, evaluate
from rawisp.measure.libraw_reference import LibRawReference, one_openmp_thread, openmp_of_rawpy
from rawisp.measure.metrics import ciede2000, mean_delta_e00, psnr, srgb_to_lab, ssim
from rawisp.measure.protocol import (BLACK, NEUTRAL, NOISE_PRESETS, WHITE, EvalError, Noise, load_image, noise_seed,
                                     parse_noise)
from rawisp.measure.synth import DEFAULT_CAM_FROM_SRGB, srgb_to_dng


# Sharma, Wu & Dalal (2005), Table 1: L1 a1 b1  L2 a2 b2  dE00, all 34 pairs
SHARMA = """
50.0000 2.6772 -79.7751 50.0000 0.0000 -82.7485 2.0425
50.0000 3.1571 -77.2803 50.0000 0.0000 -82.7485 2.8615
50.0000 2.8361 -74.0200 50.0000 0.0000 -82.7485 3.4412
50.0000 -1.3802 -84.2814 50.0000 0.0000 -82.7485 1.0000
50.0000 -1.1848 -84.8006 50.0000 0.0000 -82.7485 1.0000
50.0000 -0.9009 -85.5211 50.0000 0.0000 -82.7485 1.0000
50.0000 0.0000 0.0000 50.0000 -1.0000 2.0000 2.3669
50.0000 -1.0000 2.0000 50.0000 0.0000 0.0000 2.3669
50.0000 2.4900 -0.0010 50.0000 -2.4900 0.0009 7.1792
50.0000 2.4900 -0.0010 50.0000 -2.4900 0.0010 7.1792
50.0000 2.4900 -0.0010 50.0000 -2.4900 0.0011 7.2195
50.0000 2.4900 -0.0010 50.0000 -2.4900 0.0012 7.2195
50.0000 -0.0010 2.4900 50.0000 0.0009 -2.4900 4.8045
50.0000 -0.0010 2.4900 50.0000 0.0010 -2.4900 4.8045
50.0000 -0.0010 2.4900 50.0000 0.0011 -2.4900 4.7461
50.0000 2.5000 0.0000 50.0000 0.0000 -2.5000 4.3065
50.0000 2.5000 0.0000 73.0000 25.0000 -18.0000 27.1492
50.0000 2.5000 0.0000 61.0000 -5.0000 29.0000 22.8977
50.0000 2.5000 0.0000 56.0000 -27.0000 -3.0000 31.9030
50.0000 2.5000 0.0000 58.0000 24.0000 15.0000 19.4535
50.0000 2.5000 0.0000 50.0000 3.1736 0.5854 1.0000
50.0000 2.5000 0.0000 50.0000 3.2972 0.0000 1.0000
50.0000 2.5000 0.0000 50.0000 1.8634 0.5757 1.0000
50.0000 2.5000 0.0000 50.0000 3.2592 0.3350 1.0000
60.2574 -34.0099 36.2677 60.4626 -34.1751 39.4387 1.2644
63.0109 -31.0961 -5.8663 62.8187 -29.7946 -4.0864 1.2630
61.2901 3.7196 -5.3901 61.4292 2.2480 -4.9620 1.8731
35.0831 -44.1164 3.7933 35.0232 -40.0716 1.5901 1.8645
22.7233 20.0904 -46.6940 23.0331 14.9730 -42.5619 2.0373
36.4612 47.8580 18.3852 36.2715 50.5065 21.2231 1.4146
90.8027 -2.0831 1.4410 91.1528 -1.6435 0.0447 1.4441
90.9257 -0.5406 -0.9208 88.6381 -0.8985 -0.7239 1.5381
6.7747 -0.2908 -2.4247 5.8714 -0.0985 -2.2286 0.6377
2.0776 0.0795 -1.1350 0.9033 -0.0636 -0.5514 0.9082
"""


def smooth_image(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth, colourful 8-bit sRGB test picture (low-frequency waves, full range)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    channels = []
    for _ in range(3):
        fy, fx, phase = rng.uniform(0.3, 1), rng.uniform(0.3, 1), rng.uniform(0, 2 * np.pi)
        channels.append(0.5 + 0.45 * np.sin(2 * np.pi * (fy * y + fx * x) + phase))
    return np.round(np.stack(channels, axis=-1) * 255).astype(np.uint8)


def textured_image(h: int, w: int, seed: int) -> np.ndarray:
    """8-bit sRGB with detail at every scale (random blocks over a gradient): hard to demosaic."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (h // 4 + 1, w // 4 + 1, 3)).repeat(4, 0).repeat(4, 1)[:h, :w]
    grad = np.linspace(0, 255, w)[None, :, None]
    return np.round(0.6 * blocks + 0.4 * grad).astype(np.uint8)


def _save(folder: Path, img: np.ndarray, name: str = "gt.png") -> Path:
    Image.fromarray(img).save(folder / name)
    return folder / name


@pytest.fixture
def gt_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "gt"
    folder.mkdir()
    Image.fromarray(textured_image(48, 64, 1)).save(folder / "a.png")
    Image.fromarray(smooth_image(56, 40, 2)).save(folder / "b.png")
    (folder / "notes.txt").write_text("not an image")
    return folder


# ------------------------------------------------------------------------------------------ protocol


@pytest.mark.parametrize("cfa", BAYER_PATTERNS)
def test_identity_engine_reproduces_ground_truth(tmp_path, cfa):
    """Noise-free round trip through a perfect engine: the harness itself loses nothing."""
    gt = textured_image(37, 50, 3)  # odd sizes: the CFA padding and cropping are exercised too
    path = tmp_path / "x.dng"
    truth = srgb_to_dng(path, gt, cfa=cfa)

    class Identity:
        name = "identity"

        def __call__(self, packed):
            return truth

    out = develop_dng(path, Identity())
    assert out.dtype == np.uint8 and out.shape == gt.shape
    assert psnr(out, gt, border=0) > 50
    assert np.abs(out.astype(int) - gt).max() <= 1


def test_oracle_row_through_the_harness(tmp_path):
    """evaluate() hands each image's ground truth to an Oracle engine: its row is the harness ceiling."""
    images = [_save(tmp_path, textured_image(40, 44, i), f"{i}.png") for i in range(2)]
    rows = evaluate(images, [Oracle(), "classical"], parse_noise("clean"), border=4)
    oracle = [r for r in rows if r["engine"] == "oracle"]
    assert len(oracle) == 2
    assert all(r["psnr"] > 50 and r["ssim"] > 0.999 and r["delta_e00"] < 0.05 for r in oracle)
    classical = [r for r in rows if r["engine"] == "classical"]
    assert all(r["psnr"] < 45 for r in classical)  # a real demosaicker is measured, not the truth


KODAK = Path(__file__).resolve().parents[2] / "shared" / "data" / "test" / "kodak24"


def test_libraw_runs_on_one_openmp_thread():
    lib = openmp_of_rawpy()
    if lib is None:
        pytest.skip("rawpy's OpenMP runtime not found")
    before = lib.omp_get_max_threads()
    with one_openmp_thread():
        assert lib.omp_get_max_threads() == 1
    assert lib.omp_get_max_threads() == before


@pytest.mark.skipif(not (KODAK / "kodim18.png").is_file(), reason="Kodak24 (../shared/data) not present")
def test_libraw_dht_is_repeatable(tmp_path):
    """LibRaw's DHT changed a few dozen pixels of kodim18 from run to run on several OpenMP threads."""
    path = tmp_path / "k.dng"
    srgb_to_dng(path, load_image(KODAK / "kodim18.png"))
    dht = LibRawReference("libraw-dht")
    first = dht.postprocess(path)
    assert all(np.array_equal(dht.postprocess(path), first) for _ in range(12))


def test_develop_dng_follows_the_protocol(tmp_path):
    """The DNG holds the protocol's camera: black 256, white 4095, neutral, 12-bit values, CFA."""
    path = tmp_path / "x.dng"
    srgb_to_dng(path, smooth_image(32, 32, 0), cfa="GRBG")
    raw = decode(path)
    assert raw.cfa == "GRBG" and raw.white == WHITE and np.all(raw.black == BLACK)
    assert np.allclose(raw.wb, 1 / np.asarray(NEUTRAL), rtol=1e-4)
    assert raw.mosaic.max() <= WHITE


def test_failing_engine_is_named(tmp_path):
    class Broken:
        name = "broken"

        def __call__(self, packed):
            raise MemoryError("out of memory")

    with pytest.raises(EvalError, match=r"gt.png \(mid\): engine broken failed: out of memory"):
        evaluate([_save(tmp_path, smooth_image(40, 40, 0))], [Broken()], parse_noise("mid"))


@pytest.mark.parametrize("cfa", BAYER_PATTERNS)
@pytest.mark.parametrize("engine", ["classical", "libraw-linear", "libraw-ahd"])
def test_engines_handle_every_cfa_phase(tmp_path, cfa, engine):
    """A smooth picture demosaics well whatever the CFA phase: the harness gets the phase right."""
    gt = smooth_image(48, 52, 5)
    rows = evaluate([_save(tmp_path, gt)], [engine], parse_noise("clean"), cfa=cfa, border=6)
    assert rows[0]["psnr"] > 38, rows


@pytest.mark.parametrize("preset", ["mid", "high"])
def test_noise_presets_have_the_stated_variance(tmp_path, preset):
    """Flat field through the DNG: variance of normalised raw = shot * x + read^2 (+ 12-bit rounding)."""
    shot, read = NOISE_PRESETS[preset]
    grey = np.full((256, 256, 3), 150, np.uint8)
    path = tmp_path / "flat.dng"
    truth = srgb_to_dng(path, grey, noise=(shot, read), seed=noise_seed(0, Noise(preset, shot, read)))
    raw = decode(path)
    assert raw.noise == pytest.approx((shot, read))  # the NoiseProfile the learned engine reads
    norm = (raw.mosaic.astype(np.float64) - BLACK) / (WHITE - BLACK)
    x = truth[0, 0] * np.asarray(NEUTRAL)  # normalised raw level of R, G, B sites
    sites = {0: norm[0::2, 0::2], 1: np.concatenate([norm[0::2, 1::2], norm[1::2, 0::2]]), 2: norm[1::2, 1::2]}
    for channel, values in sites.items():
        expected = shot * x[channel] + read**2 + 1 / (12 * (WHITE - BLACK) ** 2)
        assert values.mean() == pytest.approx(x[channel], abs=4 * math.sqrt(expected / values.size) + 1e-4)
        assert values.var() == pytest.approx(expected, rel=0.05), (preset, channel)


def test_clean_preset_states_its_rounding_noise(tmp_path):
    """A clean capture's DNG says so: its NoiseProfile is the 1-DN rounding (variance 1/12 DN^2),
    so the learned engine is told "no noise" instead of estimating it from busy pixels; without a
    profile the file has none."""
    path = tmp_path / "flat.dng"
    truth = srgb_to_dng(path, np.full((32, 32, 3), 100, np.uint8), noise=NOISE_PRESETS["clean"])
    raw = decode(path)
    rounding = 1 / (12 * (WHITE - BLACK) ** 2)
    assert raw.noise == pytest.approx((rounding, math.sqrt(rounding)))
    expected = np.round(BLACK + truth[0, 0, 1] * (WHITE - BLACK))
    assert np.all(raw.mosaic[0::2, 1::2] == expected)
    for preset in ("clean", "mid"):
        srgb_to_dng(path, np.full((32, 32, 3), 100, np.uint8), noise=NOISE_PRESETS[preset], noise_profile=False)
        assert decode(path).noise is None


def test_parse_noise():
    assert parse_noise("clean,mid,high") == [Noise("clean", 0, 0), Noise("mid", 1e-3, 5e-4),
                                             Noise("high", 6e-3, 2e-3)]
    assert parse_noise("2e-3:1e-3") == [Noise("0.002:0.001", 2e-3, 1e-3)]
    for bad in ("loud", "1:2:3", "-1:0", "", "mid,mid"):
        with pytest.raises(EvalError):
            parse_noise(bad)


def test_seeds_differ_per_image_and_noise():
    mid, high = Noise("mid", 1e-3, 5e-4), Noise("high", 6e-3, 2e-3)
    seeds = {noise_seed(i, n) for i in range(24) for n in (mid, high)}
    assert len(seeds) == 48
    assert noise_seed(3, mid) == noise_seed(3, Noise("mid", 1e-3, 5e-4))


# ------------------------------------------------------------------------------------------- metrics


def test_ciede2000_sharma_pairs():
    data = np.array([[float(v) for v in line.split()] for line in SHARMA.strip().splitlines()])
    assert data.shape == (34, 7)
    lab1, lab2, expected = data[:, :3], data[:, 3:6], data[:, 6]
    assert np.allclose(ciede2000(lab1, lab2), expected, atol=1e-4)
    assert np.allclose(ciede2000(lab2, lab1), expected, atol=1e-4)  # symmetric
    assert np.all(ciede2000(lab1, lab1) == 0)


def test_srgb_to_lab_references():
    lab = srgb_to_lab(np.array([[[255, 255, 255], [0, 0, 0], [255, 0, 0], [128, 128, 128]]], np.uint8))[0]
    assert np.allclose(lab[0], [100, 0, 0], atol=1e-6)
    assert np.allclose(lab[1], [0, 0, 0], atol=1e-9)
    assert np.allclose(lab[2], [53.2408, 80.0925, 67.2032], atol=2e-2)  # sRGB red, D65
    assert lab[3, 0] == pytest.approx(53.585, abs=1e-2) and np.allclose(lab[3, 1:], 0, atol=1e-6)


def test_mean_delta_e00_of_images():
    a = smooth_image(30, 30, 0)
    assert mean_delta_e00(a, a, border=5) == 0
    b = a.copy()
    b[5:-5, 5:-5] = np.clip(b[5:-5, 5:-5].astype(int) + 10, 0, 255)
    assert mean_delta_e00(a, b, border=5) > 1
    assert mean_delta_e00(a, b, border=0) < mean_delta_e00(a, b, border=5)


def test_ssim():
    a = textured_image(40, 40, 0)
    assert ssim(a, a, border=10) == pytest.approx(1.0, abs=1e-12)
    assert ssim(a.astype(np.float32) / 255, a, border=10) == pytest.approx(1.0, abs=1e-12)
    noisy = np.clip(a + np.random.default_rng(0).normal(0, 20, a.shape), 0, 255).astype(np.uint8)
    assert 0 < ssim(a, noisy, border=10) < 0.9
    assert ssim(a, noisy) == pytest.approx(ssim(noisy, a))
    # a constant offset only touches luminance: (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1)
    flat = np.full((40, 40, 3), 100, np.uint8)
    c1 = (0.01 * 255) ** 2
    assert ssim(flat, flat + 20, border=10) == pytest.approx((2 * 100 * 120 + c1) / (100**2 + 120**2 + c1))


def test_psnr_known_values():
    a = np.zeros((30, 30, 3), np.uint8)
    assert psnr(a, a + 1) == pytest.approx(20 * math.log10(255))  # MSE 1: 48.13 dB
    assert psnr(a, a + 16) == pytest.approx(20 * math.log10(255 / 16))  # 24.05 dB
    b = a.copy()
    b[0, 0] = 255  # in the border only
    assert psnr(a, b, border=10) == math.inf
    assert psnr(a, b, border=0) == pytest.approx(10 * math.log10(30 * 30))  # MSE 255^2 * 3 / (30 * 30 * 3)
    half = a.copy()
    half[10:20, 10:20, 0] = 10  # MSE over the 10x10x3 region = 100 / 3
    assert psnr(a, half) == pytest.approx(10 * math.log10(255**2 * 3 / 100))
    assert psnr(a.astype(np.uint16), (a + 1).astype(np.uint16) * 257) == pytest.approx(20 * math.log10(255))


def test_summarise_means_over_images():
    rows = [{"noise": "clean", "shot": 0.0, "read": 0.0, "engine": "e", "image": f"{i}", "psnr": p, "ssim": 0.5,
             "delta_e00": 1.0} for i, p in enumerate((30.0, 40.0))]
    (mean,) = summarise(rows)
    assert mean["psnr"] == 35.0 and mean["images"] == 2 and mean["image"] == "mean"


def test_load_image_forms(tmp_path):
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8)
    Image.fromarray(grey).save(tmp_path / "g.png")
    Image.fromarray(np.dstack([grey] * 3 + [grey]), "RGBA").save(tmp_path / "rgba.png")
    assert np.array_equal(load_image(tmp_path / "g.png"), np.dstack([grey] * 3))
    assert np.array_equal(load_image(tmp_path / "rgba.png"), np.dstack([grey] * 3))
    (tmp_path / "bad.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(EvalError, match="bad.png"):
        load_image(tmp_path / "bad.png")


# ------------------------------------------------------------------------------------------------ CLI


def _eval(args):
    result = CliRunner().invoke(main, ["eval", *map(str, args)])
    return result


def test_cli_writes_csv_and_json_with_identical_numbers(gt_dir, tmp_path):
    engines = ["--engine", "classical", "--engine", "libraw-dht", "--engine", "oracle"]
    first = _eval([gt_dir, *engines, "--noise", "clean,mid,3e-3:1e-3", "--per-image", "--out",
                   tmp_path / "r.csv", "-q"])
    assert first.exit_code == 0, first.output
    assert "noise mid (shot 0.001, read 0.0005), mean over 2 images" in first.output
    with open(tmp_path / "r.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["noise", "shot", "read", "engine", "image", "psnr", "ssim", "delta_e00"]
    assert len(rows) == 3 * 3 * 3  # noise levels x engines x (mean + 2 images)
    assert {r["image"] for r in rows} == {"mean", "a.png", "b.png"}
    assert {r["noise"] for r in rows} == {"clean", "mid", "0.003:0.001"}

    second = _eval([gt_dir, *engines, "--noise", "clean,mid,3e-3:1e-3", "--per-image", "--out",
                    tmp_path / "r.json", "-q"])
    assert second.exit_code == 0, second.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["protocol"]["black"] == 256 and report["protocol"]["white"] == 4095
    assert len(report["rows"]) == len(rows)
    for c, j in zip(rows, report["rows"]):
        assert (c["noise"], c["engine"], c["image"]) == (j["noise"], j["engine"], j["image"])
        for metric in ("psnr", "ssim", "delta_e00"):  # same numbers in both runs (JSON has null for inf)
            assert float(c[metric]) == (math.inf if j[metric] is None else j[metric]), (c, j)
    mid = {r["engine"]: float(r["psnr"]) for r in rows if r["noise"] == "mid" and r["image"] == "mean"}
    clean = {r["engine"]: float(r["psnr"]) for r in rows if r["noise"] == "clean" and r["image"] == "mean"}
    # the oracle bounds every engine; noise costs every engine
    assert clean["oracle"] > max(clean["libraw-dht"], clean["classical"])
    assert clean["classical"] > mid["classical"] and clean["libraw-dht"] > mid["libraw-dht"]


def test_cli_means_only_and_kept_dngs(gt_dir, tmp_path):
    result = _eval([gt_dir, "--engine", "classical", "--noise", "high", "--keep", tmp_path / "dngs",
                    "--out", tmp_path / "m.json", "-q"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "m.json").read_text())
    assert [(r["noise"], r["engine"], r["image"]) for r in report["rows"]] == [("high", "classical", "mean")]
    assert report["protocol"]["camera"] == "identity"
    assert sorted(p.name for p in (tmp_path / "dngs").iterdir()) == ["000_a_high.dng", "001_b_high.dng"]

    assert report["protocol"]["cam_from_srgb"] == np.eye(3).tolist()
    synthetic = _eval([gt_dir, "--engine", "classical", "--noise", "high", "--camera", "synthetic",
                       "--out", tmp_path / "i.json", "-q"])
    assert synthetic.exit_code == 0, synthetic.output
    assert "camera matrix synthetic" in synthetic.output
    other = json.loads((tmp_path / "i.json").read_text())
    assert other["protocol"]["cam_from_srgb"] == DEFAULT_CAM_FROM_SRGB.tolist()
    assert other["rows"][0]["psnr"] != report["rows"][0]["psnr"]


def test_cli_noise_profile_switch(gt_dir, tmp_path):
    """--no-noise-profile: the DNGs carry no NoiseProfile, the report says so, classical is unchanged
    (it ignores noise) and the learned engine, now choosing the noise itself, stays close."""
    scores = {}
    for flag in ("--noise-profile", "--no-noise-profile"):
        keep = tmp_path / flag
        result = _eval([gt_dir, "--engine", "classical", "--engine", "learned", "--noise", "clean", flag,
                        "--keep", keep, "--out", tmp_path / f"{flag}.json", "-q"])
        assert result.exit_code == 0, result.output
        assert ("a NoiseProfile" if flag == "--noise-profile" else "no NoiseProfile") in result.output
        report = json.loads((tmp_path / f"{flag}.json").read_text())
        assert report["protocol"]["noise_profile"].startswith("in the DNG" if flag == "--noise-profile" else "none")
        assert all((decode(p).noise is None) == (flag == "--no-noise-profile") for p in keep.iterdir())
        scores[flag] = {r["engine"]: r["psnr"] for r in report["rows"]}
    assert scores["--noise-profile"]["classical"] == scores["--no-noise-profile"]["classical"]
    # clean frames of an unknown camera at ISO 400: the chosen noise (the prior's floor or the blind
    # estimate) costs little (measured: 0.16 dB better here than the rounding-only NoiseProfile)
    assert abs(scores["--noise-profile"]["learned"] - scores["--no-noise-profile"]["learned"]) < 0.5


def test_cli_jobs_give_the_same_numbers(gt_dir, tmp_path):
    args = [gt_dir, "--engine", "classical", "--noise", "mid", "--per-image", "-q"]
    one, two = _eval([*args, "--out", tmp_path / "1.csv"]), _eval([*args, "-j", "2", "--out", tmp_path / "2.csv"])
    assert one.exit_code == 0 and two.exit_code == 0, (one.output, two.output)
    assert (tmp_path / "1.csv").read_text() == (tmp_path / "2.csv").read_text()


@pytest.mark.parametrize("args, message, code", [
    (["--engine", "magic"], "unknown engine 'magic'", 1),
    (["--noise", "loud"], "Invalid value for '--noise': bad noise level 'loud'", 2),  # click's, as every option's
    (["--out", "r.txt"], "must be .csv or .json", 1),
    (["--engine", "classical", "--engine", "classical"], "given twice", 1),
])
def test_cli_errors(gt_dir, args, message, code):
    result = _eval([gt_dir, *args, "-q"])
    assert result.exit_code == code and message in result.output


def test_cli_empty_folder(tmp_path):
    result = _eval([tmp_path, "--engine", "classical"])
    assert result.exit_code == 1 and "no PNG, TIFF or JPEG images" in result.output
