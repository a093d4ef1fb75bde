"""The Python API (``rawisp.develop``, ``develop_file``, ``info``): the command line's pixels, files,
records and error lines, from the same composer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from conftest import EXIF, lines_naming, natural_image, patch_image, patch_means, read_image, sha256, summary

import rawisp
from rawisp.stages.render import render

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dngs(tmp_path_factory) -> dict[str, Path]:
    """A natural scene stored sideways (orientation 6, with EXIF) and an upright ColorChecker."""
    from rawisp.measure import synth

    root = tmp_path_factory.mktemp("api")
    side = root / "side.dng"
    synth.srgb_to_dng(side, natural_image(40, 64, seed=3), cfa="GRBG", orientation=6, exif=EXIF)
    chart = root / "chart.dng"
    synth.srgb_to_dng(chart, patch_image()[0], cfa="BGGR")
    return {"side": side, "chart": chart}


def _cli_output(cli, source: Path, out: Path, *args: object) -> Path:
    result = cli("develop", *args, source, "-o", out)
    assert result.exit_code == 0, result.stderr
    assert summary(result) == (1, 0, 0)
    [made] = [p for p in out.iterdir() if p.is_file()]
    return made


@pytest.mark.parametrize("engine", ["classical", "learned"])
def test_develop_gives_the_pixels_the_command_line_writes(cli, dngs, tmp_path, engine):
    png = _cli_output(cli, dngs["side"], tmp_path / "png", "--engine", engine, "--format", "png")
    pixels = rawisp.develop(dngs["side"], engine)
    assert pixels.dtype == np.uint8 and pixels.shape == (64, 40, 3)  # stored 40x64, turned upright
    assert np.array_equal(pixels, read_image(png))
    tif = _cli_output(cli, dngs["side"], tmp_path / "tiff16", "--engine", engine, "--format", "tiff16",
                        "--exposure", "0.5", "--tone", "linear")
    deep = rawisp.develop(str(dngs["side"]), engine=engine, bits=16, exposure=0.5, tone="linear")
    assert deep.dtype == np.uint16
    assert np.array_equal(deep, tifffile.imread(tif))


@pytest.mark.parametrize("wb", ["daylight", "1.5,1,1.2"])
def test_white_balance_is_the_command_lines(cli, dngs, tmp_path, wb):
    png = _cli_output(cli, dngs["chart"], tmp_path / "png", "--engine", "classical", "--format", "png", "--wb", wb)
    gains = wb if wb == "daylight" else tuple(float(g) for g in wb.split(","))
    pixels = rawisp.develop(dngs["chart"], "classical", wb=gains)
    assert np.array_equal(pixels, read_image(png))
    assert not np.array_equal(pixels, rawisp.develop(dngs["chart"], "classical"))  # as shot differs
    with pytest.raises(rawisp.OptionError, match="^--wb 'purple': white balance must be one of"):
        rawisp.develop(dngs["chart"], wb="purple")


def test_develop_file_writes_the_command_lines_file(cli, dngs, tmp_path):
    tif = _cli_output(cli, dngs["side"], tmp_path / "cli", "--engine", "classical", "--format", "tiff16")
    made = rawisp.develop_file(dngs["side"], tmp_path / "api" / "side.tif", "classical")
    assert made == tmp_path / "api" / "side.tif"
    assert sha256(made) == sha256(tif)  # pixels, EXIF, ICC profile: byte for byte
    assert tifffile.imread(made).shape == (64, 40, 3)
    dng = _cli_output(cli, dngs["side"], tmp_path / "cli_dng", "--engine", "classical", "--format", "dng")
    assert sha256(rawisp.develop_file(dngs["side"], tmp_path / "api" / "side.dng", "classical")) == sha256(dng)
    jpeg = _cli_output(cli, dngs["side"], tmp_path / "cli_jpeg", "--engine", "classical", "--quality", "80")
    assert sha256(rawisp.develop_file(dngs["side"], tmp_path / "q.jpeg", "classical", quality=80)) == sha256(jpeg)


def test_linear_camera_rgb_is_upright_float_and_renders_to_the_srgb_result(dngs):
    colours = patch_image()[1]
    rgb = rawisp.develop(dngs["chart"], "classical", linear=True)
    assert rgb.dtype == np.float32 and rgb.shape == (4 * 32 + 1, 6 * 32 + 1, 3)
    # the synthetic camera: white-balanced camera RGB = linear sRGB @ cam_from_srgb.T
    from rawisp.colour import srgb_decode
    from rawisp.measure.synth import DEFAULT_CAM_FROM_SRGB

    truth = srgb_decode(colours / 255.0) @ DEFAULT_CAM_FROM_SRGB.T
    assert np.abs(patch_means(rgb) - truth).max() < 2e-3
    record = rawisp.info(dngs["chart"])
    rendered = render(rgb, np.array(record["srgb_from_cam"]), tone="linear", bits=8)
    srgb = rawisp.develop(dngs["chart"], "classical", tone="linear")
    assert np.abs(patch_means(rendered) - patch_means(srgb)).max() < 0.5  # the matrix is rounded in info
    assert np.abs(patch_means(srgb) - colours).max() < 1.5
    sideways = rawisp.develop(dngs["side"], "learned", linear=True)
    assert sideways.shape == (64, 40, 3) and np.isfinite(sideways).all()


def test_info_is_the_record_of_info_json(cli, dngs):
    result = cli("info", "--json", dngs["side"])
    assert result.exit_code == 0
    assert [rawisp.info(dngs["side"])] == json.loads(result.stdout)
    assert rawisp.info(str(dngs["side"]))["orientation"] == 6


def test_errors_are_typed_and_read_as_the_command_lines_lines(cli, dngs, tmp_path):
    bad = tmp_path / "bad.dng"
    bad.write_bytes(b"\0" * 1000)
    result = cli("develop", "--engine", "classical", bad, "-o", tmp_path / "out")
    [line] = lines_naming(result.stderr, bad)
    for call in (lambda: rawisp.develop(bad), lambda: rawisp.info(bad),
                 lambda: rawisp.develop_file(bad, tmp_path / "x.jpg", "classical")):
        with pytest.raises(rawisp.DecodeError) as caught:
            call()
        assert f"rawisp: {caught.value}" == line
        assert caught.value.path == bad and isinstance(caught.value, rawisp.RawispError)

    model = tmp_path / "broken.onnx"
    model.write_bytes(b"not a model")
    result = cli("develop", "--model", model, dngs["side"], "-o", tmp_path / "out")
    assert result.exit_code == 1
    with pytest.raises(rawisp.ModelError) as caught:
        rawisp.develop(dngs["side"], model=model)
    assert f"rawisp: {caught.value}" == result.stderr.strip()

    out = tmp_path / "exists.png"
    rawisp.develop_file(dngs["side"], out, "classical", exposure=1)
    kept = out.read_bytes()
    with pytest.raises(rawisp.OutputExistsError) as caught:
        rawisp.develop_file(dngs["side"], out, "classical")
    assert isinstance(caught.value, FileExistsError) and out.read_bytes() == kept
    assert rawisp.develop_file(dngs["side"], out, "classical", overwrite=True).read_bytes() != kept
    out.write_bytes(b"keep me")  # a file rawisp did not write: never replaced
    for overwrite in (False, True):
        with pytest.raises(rawisp.OutputExistsError, match="rawisp did not write it"):
            rawisp.develop_file(dngs["side"], out, "classical", overwrite=overwrite)
        assert out.read_bytes() == b"keep me"

    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        result = cli("develop", "--engine", "classical", "--format", "png", dngs["side"], "-o", locked)
        with pytest.raises(rawisp.OutputError) as caught:
            rawisp.develop_file(dngs["side"], locked / "side.png", "classical")
        assert f"rawisp: {caught.value}" in result.stderr
    blocked = tmp_path / "a_file"
    blocked.write_text("a file, not a folder")
    with pytest.raises(rawisp.OutputError) as caught:
        rawisp.develop_file(dngs["side"], blocked / "side.png", "classical")
    assert str(caught.value).startswith(f"{dngs['side']}: cannot write output")


def test_noise_profiles_are_the_command_lines(cli, tmp_path, monkeypatch):
    """``noise_profiles=`` is ``--noise-profiles``: a camera the file names gets its profile's noise
    (the same pixels as the command line), which differs from what the frame's own estimate gives;
    a missing file is an OptionError with the command line's reason."""
    from test_camera_noise import profile_capture, write_profiles

    monkeypatch.delenv("RAWISP_NOISE_PROFILES", raising=False)
    profiles = tmp_path / "profiles.json"
    write_profiles(profiles)
    source = tmp_path / "d9000.dng"  # ISO 3200: the profile says ~20x the variance drawn
    profile_capture(source, "NIKON CORPORATION", "NIKON D9000", 3200, (2e-5, 2e-4), seed=0)
    png = _cli_output(cli, source, tmp_path / "png", "--format", "png", "--noise-profiles", profiles)
    with_profile = rawisp.develop(source, noise_profiles=profiles)
    assert np.array_equal(with_profile, read_image(png))
    assert rawisp.info(source, noise_profiles=profiles)["noise_source"].startswith("camera profile: Nikon D9000")
    without = rawisp.develop(source)  # made-up camera: in no installed database either
    assert np.abs(with_profile.astype(int) - without).mean() > 0.5
    out = rawisp.develop_file(source, tmp_path / "api.png", noise_profiles=str(profiles))
    assert np.array_equal(read_image(out), with_profile)
    with pytest.raises(rawisp.OptionError, match="noise-profile file not found"):
        rawisp.develop(source, noise_profiles=tmp_path / "missing.json")


@pytest.mark.parametrize("call, message", [
    (lambda p: rawisp.develop(p, "magic"), "--engine 'magic': expected one of learned, classical"),
    (lambda p: rawisp.develop(p, denoise="lots"), "--denoise 'lots': expected off, auto or a number from 0 to 10"),
    (lambda p: rawisp.develop(p, bits=12), "--bits 12: expected 8 or 16"),
    (lambda p: rawisp.develop(p, tone="punchy"), "--tone 'punchy': expected one of default, linear"),
    (lambda p: rawisp.develop_file(p, "x.gif"), "x.gif: cannot tell the format from the suffix"),
    (lambda p: rawisp.develop_file(p, "x.jpg", quality=0), "--quality 0: expected 1..100"),
])
def test_bad_options_are_option_errors(dngs, call, message):
    with pytest.raises(rawisp.OptionError, match="^" + message.replace(".", r"\.").replace("(", r"\(")) as caught:
        call(dngs["side"])
    assert isinstance(caught.value, ValueError)


def test_the_model_is_loaded_once_for_many_files(dngs, monkeypatch):
    from rawisp.engines import registry as engines
    from rawisp.engines.learned import Learned

    engines._cached_engine.cache_clear()
    loads = []
    real = Learned.load.__func__
    monkeypatch.setattr(Learned, "load", classmethod(lambda cls, options: loads.append(options) or real(cls, options)))
    first = rawisp.develop(dngs["side"], tile=128)
    assert np.array_equal(rawisp.develop(dngs["side"], tile=128), first)
    rawisp.develop(dngs["chart"], tile=128)
    assert len(loads) == 1
    rawisp.develop(dngs["chart"], tile=256)  # other options: another engine
    assert len(loads) == 2


def test_import_in_a_fresh_process_matches_the_command_line(tmp_path):
    """The README's example, in a fresh interpreter: the bundled chart, as ``rawisp develop`` writes it."""
    chart = ROOT / "examples" / "chart.dng"
    code = ("import sys, numpy, rawisp; a = rawisp.develop(sys.argv[1], 'classical'); print(a.shape, a.dtype); "
            "numpy.save(sys.argv[2], a)")
    result = subprocess.run([sys.executable, "-c", code, str(chart), str(tmp_path / "a.npy")], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(1600, 2400, 3) uint8"
    cli = subprocess.run([sys.executable, "-m", "rawisp", "develop", "--engine", "classical", "--format", "png",
                          str(chart), "-o", str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stderr
    assert np.array_equal(np.load(tmp_path / "a.npy"), read_image(tmp_path / "out" / "chart.png"))
