"""Command-line options as a new user types them (issue 17): numbers, formats, names, sizes, places."""

from __future__ import annotations

import subprocess
import shutil
import sys
from pathlib import Path

import click
import numpy as np
import pytest
from conftest import natural_image, read_image, summary
from PIL import Image

from rawisp import synth
from rawisp.cli import main

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
    assert result.exit_code == 1
    assert result.stderr.strip() == f"rawisp: --denoise {value!r}: expected off, auto or a number from 0 to 10"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("noise", ["nan:0", "0:inf", "2:0", "0:1e300"])
def test_noise_levels_out_of_range_are_refused(cli, tmp_path, noise):
    result = cli("eval", tmp_path, "--noise", noise)
    assert result.exit_code == 1
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
