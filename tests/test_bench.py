"""``rawisp bench``: figures per stage and engine, peaks, JSON, synthetic frame, unavailable engines.

Small frames only; timings are never asserted (only that they are there and not negative).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import rawpy
from click.testing import CliRunner

from conftest import read_exif

from rawisp.cli import main
from rawisp.measure import bench, bench_scene
from rawisp.measure.bench import BenchConfig, run_bench, run_child
from rawisp.measure.bench_child import STAGES
from rawisp.measure.bench_report import format_report
from rawisp.measure.bench_scene import bench_frame

SIZE = (320, 240)
MB = 2**20


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bench-cache")


def _invoke(*args: str):
    return CliRunner().invoke(main, ["bench", "-q", *args], catch_exceptions=False)


def test_classical_figures_table_and_json(cache, tmp_path):
    report_path = tmp_path / "out" / "bench.json"
    result = _invoke("--size", "320x240", "--cache", str(cache), "--engine", "classical", "--repeat", "2",
                     "--json", str(report_path))
    assert result.exit_code == 0, result.output
    out = result.stdout
    for word in (*STAGES, "total", "MP/s", "process", "peak MB", "threads", "cpu/wall", "classical", "320x240"):
        assert word in out
    assert "learned" not in out

    report = json.loads(report_path.read_text())
    for key in ("rawisp_version", "file", "synthetic", "width", "height", "megapixels", "format", "quality",
                "repeat", "machine", "load_before", "contended", "results"):
        assert key in report
    assert (report["width"], report["height"], report["format"], report["quality"]) == (320, 240, "jpeg", 92)
    assert report["synthetic"] and Path(report["file"]).parent == cache
    (row,) = report["results"]
    assert row["name"] == "classical" and row["status"] == "ok" and row["error"] is None
    assert len(row["runs"]) == 2
    stages = set(STAGES) - {"reconstruct"}  # classical: bilinear is computed strip by strip inside render
    assert "bilinear demosaic runs inside render" in out
    for run in row["runs"]:
        assert set(run["seconds"]) == stages
        assert all(v >= 0 for v in run["seconds"].values())
        assert 50 * MB < run["peak_rss_bytes"] < 4096 * MB
        assert run["output_bytes"] > 1000
    for stat in ("median", "min", "max"):
        assert set(row[stat]) == {*stages, "total", "process"}
    assert row["min"]["total"] <= row["median"]["total"] <= row["max"]["total"]
    assert row["mp_per_s"] > 0
    assert 50 < row["peak_rss_mb"]["min"] <= row["peak_rss_mb"]["median"] <= row["peak_rss_mb"]["max"] < 4096
    assert row["threads"] >= 1 and row["cpu_per_wall"] >= 0
    assert row["vs_rawpy"] is None


def test_file_argument_and_peers(cache, tmp_path, monkeypatch):
    """A given FILE is measured as is; rawpy is timed, peer CLIs that are missing are reported so."""
    source = bench_frame(cache, SIZE)
    monkeypatch.setattr(bench.shutil, "which", lambda name: None)
    report_path = tmp_path / "bench.json"
    result = _invoke(str(source), "--engine", "classical", "--repeat", "1", "--compare-peers",
                     "--json", str(report_path))
    assert result.exit_code == 0, result.output
    report = json.loads(report_path.read_text())
    assert report["file"] == str(source)
    rows = {r["name"]: r for r in report["results"]}
    assert list(rows) == ["classical", "rawpy postprocess", "darktable-cli", "rawtherapee-cli"]
    peer = rows["rawpy postprocess"]
    assert peer["status"] == "ok" and set(peer["runs"][0]["seconds"]) == {"decode", "reconstruct", "write"}
    assert 20 * MB < peer["runs"][0]["peak_rss_bytes"] < 4096 * MB
    assert peer["vs_rawpy"] == 1.0 and rows["classical"]["vs_rawpy"] > 0
    for name in ("darktable-cli", "rawtherapee-cli"):
        assert rows[name]["status"] == "unavailable" and "not installed" in rows[name]["error"]
        assert f"{name}" in result.stdout
    assert "unavailable: not installed" in result.stdout


def test_unusable_learned_engine_is_reported_unavailable(cache):
    """make_engine("learned") failing (here: no such model) marks it unavailable; the rest goes on."""
    config = BenchConfig(size=SIZE, cache_dir=cache, engines=("learned", "classical"), tiles=(256, 512),
                         models=(str(cache / "no-such-model.onnx"),), repeat=2)
    report = run_bench(config)
    rows = {r["name"]: r for r in report["results"]}
    assert list(rows) == ["learned tile=256", "learned tile=512", "classical"]
    for name in ("learned tile=256", "learned tile=512"):
        assert rows[name]["status"] == "unavailable" and rows[name]["error"] and not rows[name]["runs"]
    assert rows["classical"]["status"] == "ok" and len(rows["classical"]["runs"]) == 2
    text = format_report(report)
    assert "learned tile=256" in text and "unavailable:" in text and "classical" in text


def test_learned_rows_per_model_with_network_figures(cache, tmp_path):
    """One learned row per --model (e.g. fp32 and int8), each with its tiles, margin share and
    network time; the margin share is what the tiling computes beyond the frame."""
    from rawisp.engines.learned import default_model_path

    second = tmp_path / "copy.onnx"
    for suffix in (".onnx", ".json"):
        second.with_suffix(suffix).write_bytes(default_model_path().with_suffix(suffix).read_bytes())
    report = run_bench(BenchConfig(size=SIZE, cache_dir=cache, engines=("learned",), tiles=(128,),
                                   models=(str(default_model_path()), str(second)), repeat=1, threads=1))
    rows = {r["name"]: r for r in report["results"]}
    assert list(rows) == ["learned lwisp tile=128", "learned copy tile=128"]
    for row in rows.values():
        assert row["status"] == "ok", row["error"]
        net = row["network"]
        th, tw = (int(v) for v in net["tile"].split("x"))
        assert th <= 128 and tw <= 128 and net["tiles"] >= 4  # a 160x120 packed frame in several tiles
        assert net["margin_share"] == pytest.approx(1 - 160 * 120 / (net["tiles"] * th * tw), abs=1e-3)
        assert 0 < net["network_s"] <= row["median"]["total"] and net["network_mp_per_s"] > 0
    assert "margins" in format_report(report) and "MP/s" in format_report(report)


def test_learned_rows_per_runtime_and_precision_say_what_ran(cache):
    """--runtime and --precision give a learned row each (bf16 not asked of onnxruntime, which runs
    f32 only); each row says which runtime and precision ran the network."""
    from rawisp.engines.runtime import cpu_has_bf16, openvino_version

    config = BenchConfig(size=SIZE, cache_dir=cache, engines=("learned",), runtimes=("onnxruntime", "openvino"),
                         precisions=("f32", "bf16"), repeat=1, threads=1)
    names = [v.name for v in bench.plan_variants(config)]
    assert names == ["learned onnxruntime f32", "learned openvino f32", "learned openvino bf16"]
    if openvino_version() is None:
        pytest.skip("openvino is not installed")
    report = run_bench(config)
    rows = {r["name"]: r for r in report["results"]}
    assert all(r["status"] == "ok" for r in rows.values()), [r["error"] for r in rows.values()]
    assert rows["learned onnxruntime f32"]["runtime"].startswith("onnxruntime ")
    assert rows["learned openvino f32"]["runtime"] == f"OpenVINO {openvino_version()} CPU"
    assert rows["learned openvino f32"]["precision"] == "f32"
    assert rows["learned openvino bf16"]["precision"] == ("bf16" if cpu_has_bf16() else "f32")
    assert report["machine"]["openvino"] == openvino_version()
    assert f"OpenVINO {openvino_version()} CPU f32" in format_report(report)


def test_bench_frame_is_cached_realistic_14_bit(cache):
    path = bench_frame(cache, SIZE)
    stamp = path.stat().st_mtime_ns
    assert bench_frame(cache, SIZE) == path and path.stat().st_mtime_ns == stamp  # not remade
    assert not list(cache.glob(".*.part"))
    with rawpy.imread(str(path)) as raw:
        assert (raw.sizes.width, raw.sizes.height) == SIZE
        assert raw.white_level == bench_scene.BENCH_WHITE
        assert list(raw.black_level_per_channel) == [bench_scene.BENCH_BLACK] * 4
        mosaic = raw.raw_image_visible.astype(np.float64)
    tags = read_exif(path)
    assert str(tags["EXIF ISOSpeedRatings"]) == "400" and "EXIF ExposureTime" in tags
    # content everywhere: every 32x32 block of the green sites varies more than noise alone would
    green = mosaic[0::2, 1::2]
    blocks = green[: green.shape[0] // 16 * 16, : green.shape[1] // 16 * 16].reshape(
        green.shape[0] // 16, 16, green.shape[1] // 16, 16)
    spread = blocks.std(axis=(1, 3))
    assert np.median(spread) > 20  # DN; read noise alone is about 6.4 DN
    assert green.max() >= bench_scene.BENCH_WHITE - 1  # a few clipped highlights
    # colour: the red/blue ratio varies across the frame (not a grey chart only)
    r, b = mosaic[0::2, 0::2], mosaic[1::2, 1::2]
    ratio = (r[:64, :64].mean() / b[:64, :64].mean(), r[-64:, -64:].mean() / b[-64:, -64:].mean())
    assert len({round(v, 1) for v in ratio}) == 2 or np.std(r / np.maximum(b, 1)) > 0.1


def test_scene_has_no_flat_areas():
    img = bench_scene.synth_scene(400, 300, seed=3)
    assert img.shape == (300, 400, 3) and img.dtype == np.float32
    assert 0 <= img.min() and img.max() <= 1
    tiles = img[:288, :384].reshape(9, 32, 12, 32, 3)  # 32x32 tiles
    assert (tiles.std(axis=(1, 3)).max(axis=-1) > 0.01).all()


def test_usage_errors(cache, tmp_path):
    source = bench_frame(cache, SIZE)
    result = CliRunner().invoke(main, ["bench", str(source), "--size", "320x240"])
    assert result.exit_code == 2 and "--size" in result.output
    result = CliRunner().invoke(main, ["bench", "--size", "big"])
    assert result.exit_code == 2 and "WIDTHxHEIGHT" in result.output


def test_report_text_for_failures():
    report = {"rawisp_version": "0", "file": "x.dng", "synthetic": False, "width": 10, "height": 10,
              "megapixels": 0.0001, "format": "png", "quality": 92, "repeat": 1,
              "machine": {"cpus": 2, "cpu": "cpu"}, "load_before": None, "load_after": None, "contended": False,
              "results": [{"name": "learned", "kind": "rawisp", "status": "unavailable", "error": "ModelError: gone",
                           "runs": [], "notes": []}]}
    text = format_report(report)
    assert "learned" in text and "unavailable: ModelError: gone" in text


def test_unreadable_file_is_a_clean_error(tmp_path):
    bad = tmp_path / "not-raw.dng"
    bad.write_bytes(b"this is not a raw file" * 100)
    result = CliRunner().invoke(main, ["bench", "-q", str(bad), "--engine", "classical", "--repeat", "1"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "not-raw.dng" in result.output and "LibRaw" in result.output


def process_state(pid: int) -> str:
    """The state letter of a process in /proc (R, S, Z...), or "gone"."""
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0]
    except FileNotFoundError:
        return "gone"


def test_timeout_ends_the_child_and_what_it_started(tmp_path):
    pidfile = tmp_path / "pid"
    spec = {"kind": "cli", "argv": ["sh", "-c", f"echo $$ > {pidfile}; exec sleep 60"], "out": str(tmp_path / "o.jpg")}
    result = run_child(spec, timeout=6)
    assert "timed out" in result["error"]
    pid_text = pidfile.read_text().strip() if pidfile.exists() else ""
    assert pid_text, "the command never wrote its pid: nothing was checked"
    pid = int(pid_text)
    # SIGKILL is delivered asynchronously: the process may still be running for a moment
    deadline = time.monotonic() + 10
    while process_state(pid) not in ("gone", "Z") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert process_state(pid) in ("gone", "Z")
