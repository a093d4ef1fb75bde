"""Command-line options as a new user types them (issue 17): numbers, formats, names, sizes, places."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import click
import numpy as np
import pytest
import tifffile
from conftest import natural_image, summary
from PIL import Image

from rawisp.cli import main
from rawisp.measure import synth

# --- numbers -----------------------------------------------------------------------------------------


def _numeric_options() -> list[tuple[str, str]]:
    """(command, option) for every option of every command that takes a number."""
    found = []
    for name, command in main.commands.items():
        for param in command.params:
            if isinstance(param, click.Option) and not param.is_flag and isinstance(
                    param.type, (click.types.FloatParamType, click.types.IntParamType)):
                found.append((name, max(param.opts, key=len)))
    return found


NUMERIC = _numeric_options()


def test_numeric_options_are_found():
    assert ("develop", "--exposure") in NUMERIC and ("train", "--lr") in NUMERIC
    assert len(NUMERIC) >= 25


@pytest.mark.parametrize(("command", "option"), NUMERIC)
def test_every_numeric_option_is_bounded(command, option):
    """A bound on both sides (besides refusing NaN and infinity, in the next test)."""
    [param] = [p for p in main.commands[command].params if option in p.opts]
    assert isinstance(param.type, (click.FloatRange, click.IntRange)), param.type
    assert param.type.min is not None and param.type.max is not None


@pytest.mark.parametrize(("command", "option"), NUMERIC)
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e308", "-1e308", str(10**30)])
def test_non_finite_and_absurd_numbers_are_refused(cli, command, option, value):
    result = cli(command, f"{option}={value}")
    assert result.exit_code == 2, (result.stdout, result.stderr)
    [error] = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert "Invalid value for " in error and f"'{option}'" in error, error
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "11", "1e300"])
def test_denoise_strength_out_of_range_is_one_line(cli, tmp_path, value):
    path = tmp_path / "a.dng"
    synth.srgb_to_dng(path, natural_image(32, 32))
    result = cli("develop", "--denoise", value, path, "-o", tmp_path / "out")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (f"Error: Invalid value for '--denoise': {value!r} is not off, auto or a "
                                              "number from 0 to 10.")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("noise", ["nan:0", "0:inf", "2:0", "0:1e300"])
def test_noise_levels_out_of_range_are_refused(cli, tmp_path, noise):
    result = cli("eval", tmp_path, "--noise", noise)
    assert result.exit_code == 2
    assert "Error: Invalid value for '--noise': " in result.stderr
    assert "shot and read must be numbers from 0 to 1" in result.stderr


# --- devices -----------------------------------------------------------------------------------------


def test_device_cuda_without_a_cuda_provider_says_so(cli, tmp_path):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has a CUDA provider")
    path = tmp_path / "a.dng"
    synth.srgb_to_dng(path, natural_image(32, 32))
    result = cli("develop", "--device", "cuda", path, "-o", tmp_path / "out")
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("rawisp: --device cuda: this onnxruntime has no CUDA provider (it has "), line
    assert "pip install onnxruntime-gpu" in line and "ONNX model" not in line


# --- sizes -------------------------------------------------------------------------------------------

EXIF = {"DateTimeOriginal": "2024:05:06 07:08:09", "LensModel": "Test Lens 35mm F2.8", "ISO": 400}


def _exiftool(path: Path) -> dict:
    import json

    out = subprocess.run(["exiftool", "-j", "-n", str(path)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)[0]


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool not installed")
@pytest.mark.parametrize(("fmt", "name"), [("jpg", "r.jpg"), ("png16", "r.png"), ("tiff", "r.tif")])
def test_long_edge_scales_down_with_exif_and_icc_intact(cli, tmp_path, fmt, name):
    """A 160x240 frame stored sideways (orientation 6): upright 240 tall, 160 wide; --long-edge 100
    gives 100 tall, 67 wide."""
    path = tmp_path / "r.dng"
    synth.srgb_to_dng(path, natural_image(160, 240, seed=3), orientation=6, exif=EXIF, make="Acme",
                      model="Model 1")
    result = cli("develop", "--engine", "classical", "--format", fmt, "--long-edge", 100, path,
                 "-o", tmp_path / "out")
    assert result.exit_code == 0, result.stderr
    tags = _exiftool(tmp_path / "out" / name)
    assert (tags["ImageWidth"], tags["ImageHeight"]) == (67, 100)
    for key in ("ExifImageWidth", "ExifImageHeight"):  # absent, or the size written
        assert tags.get(key) in (None, 67, 100)
    assert (tags["Make"], tags["Model"], tags["LensModel"], tags["ISO"]) == ("Acme", "Model 1", EXIF["LensModel"], 400)
    assert tags["DateTimeOriginal"] == EXIF["DateTimeOriginal"] and tags["Orientation"] == 1
    assert "sRGB" in tags["ProfileDescription"]


def test_long_edge_is_an_area_average_in_linear_light(cli, tmp_path):
    """With a whole factor (4) each output pixel is the mean linear light of a 4x4 block of the
    full-size development, within the two roundings to 16 bits."""
    from rawisp.colour import srgb_decode, srgb_encode

    path = tmp_path / "a.dng"
    synth.srgb_to_dng(path, natural_image(200, 320, seed=4))
    for extra, out in (((), "full"), (("--long-edge", 80), "small")):
        result = cli("develop", "--engine", "classical", "--format", "tiff16", *extra, path, "-o", tmp_path / out)
        assert result.exit_code == 0, result.stderr
    full = tifffile.imread(tmp_path / "full" / "a.tif").astype(np.float64)
    small = tifffile.imread(tmp_path / "small" / "a.tif").astype(np.float64)
    assert full.shape == (200, 320, 3) and small.shape == (50, 80, 3)
    linear = srgb_decode(full / 65535).reshape(50, 4, 80, 4, 3).mean(axis=(1, 3))
    expected = srgb_encode(linear) * 65535
    assert np.abs(small - expected).max() <= 3
    naive = full.reshape(50, 4, 80, 4, 3).mean(axis=(1, 3))  # averaging sRGB codes: darker on detail
    assert np.abs(small - naive).max() > 100


def test_downscale_averages_light_not_codes():
    from rawisp.stages.resize import downscale, scaled_size

    board = np.zeros((64, 96, 3), np.uint16)
    board[::2, ::2] = board[1::2, 1::2] = 65535  # a black-and-white checkerboard
    small = downscale(board, 24, bits=8)
    assert small.shape == (16, 24, 3) and small.dtype == np.uint8
    assert set(np.unique(small)) <= {187, 188}  # linear 0.5 is sRGB 187.5; averaging codes gives 128
    assert downscale(board, 500, bits=16).shape == board.shape  # never up
    assert scaled_size(4000, 6000, 2048) == (1365, 2048) and scaled_size(6000, 4000, 2048) == (2048, 1365)


# --- names and places --------------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "suffix", "kind"), [
    ("jpg", ".jpg", "JPEG"), ("JPEG", ".jpg", "JPEG"), ("tif", ".tif", "TIFF"), ("tiff", ".tif", "TIFF"),
    ("TIFF16", ".tif", "TIFF"), ("png", ".png", "PNG"), ("png16", ".png", "PNG")])
def test_format_aliases(cli, tmp_path, fmt, suffix, kind):
    path = tmp_path / "a.dng"
    synth.srgb_to_dng(path, natural_image(32, 40))
    result = cli("develop", "--engine", "classical", "--format", fmt, path, "-o", tmp_path / "out")
    assert result.exit_code == 0, result.stderr
    with Image.open(tmp_path / "out" / f"a{suffix}") as im:
        assert im.format == kind


def test_unknown_format_lists_the_choices(cli, tmp_path):
    result = cli("develop", "--format", "webp", tmp_path, "-o", tmp_path / "out")
    assert result.exit_code == 2
    assert "'webp' is not one of jpeg, png, png16, tiff16, dng, linear-dng, jpg, tif, tiff." in result.stderr


def test_name_template(cli, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("IMG_1.dng", "IMG_2.DNG"):
        synth.srgb_to_dng(src / name, natural_image(32, 40))
    out = tmp_path / "out"
    result = cli("develop", "--engine", "classical", "--name", "{stem}_{engine}_{ext}", src, "-o", out)
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["IMG_1_classical_dng.jpg", "IMG_2_classical_DNG.jpg"]
    both = cli("develop", "--engine", "both", "--name", "web/{engine}-{stem}", src, "-o", out)
    assert both.exit_code == 2 and "folder separator" in both.stderr
    both = cli("develop", "--engine", "both", "--name", "{engine}-{stem}", "--format", "png", "--side-by-side",
               src / "IMG_1.dng", "-o", tmp_path / "both")
    assert both.exit_code == 0, both.stderr
    assert sorted(p.name for p in (tmp_path / "both").iterdir()) == [
        "classical-IMG_1.png", "compare-IMG_1.jpg", "learned-IMG_1.png"]


@pytest.mark.parametrize(("template", "reason"), [
    ("{stem}_{iso}", "unknown field {iso}"), ("{stem", "expected '}'"), ("..", "gives an empty name"),
    ("{stem}", "needs {engine}")])
def test_bad_name_templates(cli, tmp_path, template, reason):
    engine = "both" if reason == "needs {engine}" else "classical"
    result = cli("develop", "--engine", engine, "--name", template, tmp_path, "-o", tmp_path / "out")
    assert result.exit_code == 2
    assert reason in result.stderr and "Invalid value for '--name'" in result.stderr


def test_without_out_each_output_goes_beside_its_input(cli, tmp_path):
    card = tmp_path / "card"
    for name in ("a.dng", "sub/b.dng", "sub/deeper/c.dng"):
        (card / name).parent.mkdir(parents=True, exist_ok=True)
        synth.srgb_to_dng(card / name, natural_image(32, 40))
    result = cli("develop", "--engine", "classical", "-r", card)
    assert result.exit_code == 0, result.stderr
    assert summary(result) == (3, 0, 0)
    assert sorted(p.relative_to(card).as_posix() for p in card.rglob("*.jpg")) == [
        "a.jpg", "sub/b.jpg", "sub/deeper/c.jpg"]
    again = cli("develop", "--engine", "classical", card / "sub" / "b.dng")
    assert again.exit_code == 0 and summary(again) == (0, 1, 0)


def test_an_output_is_never_named_as_an_input(tmp_path):
    from rawisp.batch.runner import plan_jobs

    files = [(tmp_path / "a.dng", tmp_path), (tmp_path / "a.dng.dng", tmp_path)]
    jobs, notices = plan_jobs(files, None, lambda rel, stem: [stem + ".dng"])
    assert [j.output.name for j in jobs] == ["a-2.dng", "a.dng-2.dng"]
    assert len(notices) == 2
