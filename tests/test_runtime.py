"""The learned engine's runtime and precision (``rawisp.engines.runtime``): OpenVINO on the CPU
where installed, onnxruntime for CUDA and as the fallback; f32 unless bf16 is both allowed (by
the model's card or by asking) and possible (OpenVINO, a CPU with bf16 units); no telemetry; the
compiled model kept per tile shape; per-tile progress for the batch's bar.

Timings are never tested; what the choice is, and what the output is, are.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from batch_tasks import InParts

from rawisp.batch import runner
from rawisp.batch.runner import Finished, Job, Outcome, Status, run_batch
from rawisp.engines import runtime
from rawisp.engines.contract import model_input
from rawisp.engines.learned import Learned, ModelError, default_model_path, load_card
from rawisp.engines.runtime import (DeviceError, bf16_output_bits, choose_precision, choose_runtime, from_environment,
                                    open_session)
from rawisp.stages.normalise import Packed
from rawisp.stages.reconstruct import EngineOptions, set_progress_hook

has_openvino = runtime.openvino_version() is not None
needs_openvino = pytest.mark.skipif(not has_openvino, reason="openvino is not installed (pip install \".[openvino]\")")
ROOT = Path(__file__).resolve().parents[1]


def tile(side: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    planes = rng.uniform(0, 1, (4, side, side)).astype(np.float32)
    return model_input(planes, np.array([2.0, 1, 1, 1.5], np.float32), 1e-3, 2e-3)


@pytest.fixture
def bf16_cpu(monkeypatch):
    """A CPU with bf16 units, whatever this one has."""
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: True)


@pytest.fixture
def no_bf16_cpu(monkeypatch):
    """A CPU without bf16 units, whatever this one has."""
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: False)


@pytest.fixture
def no_openvino(monkeypatch):
    """A machine where openvino cannot be imported."""
    monkeypatch.setattr(runtime, "openvino_version", lambda: None)


@pytest.fixture(autouse=True)
def no_environment(monkeypatch):
    monkeypatch.delenv(runtime.RUNTIME_ENV, raising=False)
    monkeypatch.delenv(runtime.PRECISION_ENV, raising=False)


# --- which runtime -----------------------------------------------------------------------------

@needs_openvino
def test_openvino_runs_the_cpu_where_installed():
    assert choose_runtime("auto", "auto") == ("onnxruntime" if runtime._ort_has_cuda() else "openvino")
    assert choose_runtime("auto", "cpu") == "openvino"
    assert choose_runtime("onnxruntime", "cpu") == "onnxruntime"


def test_without_openvino_onnxruntime_runs_the_cpu(no_openvino):
    assert choose_runtime("auto", "cpu") == "onnxruntime"
    assert choose_runtime("auto", "auto") == "onnxruntime"
    with pytest.raises(DeviceError, match=r"OpenVINO is not installed \(pip install \"rawisp\[openvino\]\"\)"):
        choose_runtime("openvino", "cpu")
    engine = Learned.load(EngineOptions(threads=1))
    assert engine.runtime.startswith("onnxruntime ") and engine.precision == "f32"
    with pytest.raises(ModelError, match="OpenVINO is not installed"):
        Learned.load(EngineOptions(threads=1, runtime="openvino"))


def test_a_failing_openvino_import_falls_back_to_onnxruntime():
    """openvino installed but unimportable (here: its import made to fail) is no openvino."""
    code = ("import sys; sys.modules['openvino'] = None\n"
            "from rawisp.engines.learned import Learned; from rawisp.stages.reconstruct import EngineOptions\n"
            "e = Learned.load(EngineOptions(threads=1)); print(e.runtime, e.precision)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True).stdout
    assert out.startswith("onnxruntime ") and out.split()[-1] == "f32", out


def test_cuda_is_onnxruntime_s():
    with pytest.raises(DeviceError, match="--device cuda runs on onnxruntime"):
        choose_runtime("openvino", "cuda")
    with pytest.raises(DeviceError, match="unknown runtime 'tensorrt'"):
        choose_runtime("tensorrt", "cpu")


def test_the_environment_sets_what_auto_means(monkeypatch):
    monkeypatch.setenv(runtime.RUNTIME_ENV, "onnxruntime")
    monkeypatch.setenv(runtime.PRECISION_ENV, "BF16")
    assert from_environment("auto", "auto") == ("onnxruntime", "bf16")
    assert from_environment("openvino", "f32") == ("openvino", "f32")  # what is asked for wins
    engine = Learned.load(EngineOptions(threads=1))
    assert engine.runtime.startswith("onnxruntime ") and engine.precision == "f32"


# --- which precision ---------------------------------------------------------------------------

def test_the_shipped_model_runs_in_f32_even_where_bf16_is_possible(bf16_cpu):
    card = load_card(default_model_path())
    assert bf16_output_bits(card) == 0  # its card records no bf16 verdict: bf16 moved saturated colours
    for bits in (8, 16):
        assert choose_precision("auto", "openvino", bits, bf16_output_bits(card)) == "f32"


def test_bf16_by_default_only_where_the_card_allows_it_and_for_outputs_no_deeper(bf16_cpu):
    card = {"precision": {"bf16": {"output_bits": 8}}}
    assert choose_precision("auto", "openvino", 8, bf16_output_bits(card)) == "bf16"
    assert choose_precision("auto", "openvino", 16, bf16_output_bits(card)) == "f32"  # 16-bit and the DNG
    assert choose_precision("f32", "openvino", 8, bf16_output_bits(card)) == "f32"
    assert choose_precision("auto", "onnxruntime", 8, bf16_output_bits(card)) == "f32"
    for mangled in ({"precision": {"bf16": {"output_bits": True}}}, {"precision": "bf16"}, {}):
        assert bf16_output_bits(mangled) == 0


def test_asking_for_bf16_gets_it_only_where_it_can_run(bf16_cpu):
    assert choose_precision("bf16", "openvino") == "bf16"
    assert choose_precision("bf16", "onnxruntime") == "f32"
    with pytest.raises(DeviceError, match="unknown precision 'fp8'"):
        choose_precision("fp8", "openvino")


def test_no_bf16_units_no_bf16(no_bf16_cpu):
    card = {"precision": {"bf16": {"output_bits": 16}}}
    for precision in ("auto", "bf16"):
        assert choose_precision(precision, "openvino", 8, bf16_output_bits(card)) == "f32"


@needs_openvino
def test_the_engine_says_what_it_runs_on(no_bf16_cpu):
    engine = Learned.load(EngineOptions(threads=1, runtime="openvino", precision="bf16"))
    assert engine.runtime == f"OpenVINO {runtime.openvino_version()} CPU" and engine.precision == "f32"
    assert runtime.runtime_summary(runtime="openvino", precision="bf16").endswith(", f32 (bf16 units: no)")
    reference = Learned.load(EngineOptions(threads=1, runtime="onnxruntime"))
    assert reference.runtime.startswith("onnxruntime ") and reference.precision == "f32"


# --- OpenVINO: same output, compiled once per shape, nothing sent ------------------------------

@needs_openvino
def test_openvino_f32_gives_onnxruntime_s_output():
    path = default_model_path()
    ov = open_session(path, "cpu", 1, "openvino", "f32")
    ort = open_session(path, "cpu", 1, "onnxruntime")
    x = tile(96)
    got, want = ov.run(None, {"packed": x})[0], ort.run(None, {"packed": x})[0]
    assert got.shape == want.shape == (1, 3, 192, 192)
    assert np.abs(got - want).max() < 1e-5  # float rounding: summation order differs


@needs_openvino
def test_the_model_is_compiled_once_per_tile_shape(monkeypatch):
    session = open_session(default_model_path(), "cpu", 1, "openvino", "f32")
    compiled = []
    compile_model = session.core.compile_model
    monkeypatch.setattr(session.core, "compile_model", lambda *a, **k: compiled.append(1) or compile_model(*a, **k))
    for side in (32, 32, 48, 32, 64, 64):
        session.run(None, {"packed": tile(side)})
    assert len(compiled) == 3  # 32, 48, 64: each shape once while it is kept
    assert session.compiled_shapes() == [(1, 8, 32, 32), (1, 8, 64, 64)]  # the last two shapes used


@needs_openvino
def test_openvino_sends_nothing_and_loads_no_telemetry(tmp_path):
    """Developing on OpenVINO neither imports its telemetry package nor opens a socket, and writes
    no consent or client-id file (``~/intel``)."""
    code = """
import socket, sys, json
opened = []
def refuse(self, *args, **kwargs):
    opened.append(repr(args))
    raise OSError("no network in this test")
socket.socket.connect = socket.socket.connect_ex = refuse
import numpy as np
from rawisp.engines.learned import Learned
from rawisp.engines.contract import model_input
from rawisp.stages.reconstruct import EngineOptions
engine = Learned.load(EngineOptions(threads=1, runtime="openvino"))
planes = np.random.default_rng(0).uniform(0, 1, (4, 32, 32)).astype(np.float32)
engine.run(model_input(planes, np.ones(4, np.float32), 1e-3, 1e-3))
print(json.dumps({"runtime": engine.runtime, "opened": opened,
                  "telemetry": sorted(m for m in sys.modules if "telemetry" in m or m.startswith("openvino.tools"))}))
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env,
                         cwd=tmp_path, check=True).stdout
    result = json.loads(out.splitlines()[-1])
    assert result["runtime"].startswith("OpenVINO ")
    assert result == {**result, "opened": [], "telemetry": []}
    assert not (tmp_path / "intel").exists()


def test_the_converter_is_blocked_only_while_openvino_is_imported(monkeypatch):
    """import_openvino leaves sys.modules as it found it, apart from openvino itself."""
    monkeypatch.delitem(sys.modules, "openvino", raising=False)
    seen = {}

    def fake_import(name, *args, **kwargs):
        if name == "openvino":
            seen["blocked"] = sys.modules.get("openvino.tools.ovc", "absent")
            raise ImportError("no openvino here")
        return real_import(name, *args, **kwargs)

    real_import = __builtins__["__import__"] if isinstance(__builtins__, dict) else __builtins__.__import__
    monkeypatch.setattr("builtins.__import__", fake_import)
    with pytest.raises(ImportError):
        runtime.import_openvino()
    assert seen["blocked"] is None  # the converter's import fails while openvino's __init__ runs
    assert "openvino.tools.ovc" not in sys.modules


# --- progress per tile ---------------------------------------------------------------------------

class _Flat:
    """A stand-in session: the packed planes' mean, at full resolution."""

    def get_providers(self):
        return ["CPUExecutionProvider"]

    def run(self, _, feeds):
        (x,) = feeds.values()
        grey = x[:, :4].mean(axis=1, keepdims=True).repeat(3, axis=1)
        return [grey.repeat(2, axis=2).repeat(2, axis=3)]


def test_the_engine_reports_each_tile_of_a_frame():
    planes = np.random.default_rng(1).uniform(0, 1, (4, 100, 150)).astype(np.float32)
    packed = Packed(planes=planes, gains=np.ones(4, np.float32), noise=(1e-3, 1e-3), offset=(0, 0), shape=(200, 300))
    engine = Learned(_Flat(), {"name": "flat", "input": {"name": "packed"}, "margin": 4, "stride": 4},
                     EngineOptions(tile=48, threads=1))
    heard = []
    set_progress_hook(lambda done, total: heard.append((done, total)))
    try:
        engine(packed)
    finally:
        set_progress_hook(None)
    total = engine.stats["tiles"]
    assert total > 4 and heard == [(k, total) for k in range(1, total + 1)]


def test_the_bar_moves_by_parts_of_a_file_and_ends_on_whole_files():
    finish = Finished(2, progress=False, report=lambda o: None)
    moves = []
    finish.bar.update = moves.append
    a, b = Job(Path("a.dng"), Path("a.jpg")), Job(Path("b.dng"), Path("b.jpg"))
    finish.advance(a, 0.25)
    finish.advance(a, 0.1)  # never back
    finish.advance(b, 1.0)  # never a whole file before its outcome
    assert sum(moves) == pytest.approx(0.25 + 0.99)
    finish(Outcome(a, Status.DONE))
    finish(Outcome(b, Status.FAILED, "x"))
    assert sum(moves) == pytest.approx(2) and not finish.shares
    assert runner._FileBar(total=3, disable=True).format_dict["files"] == 0


def test_a_worker_s_tiles_reach_the_parent_s_bar(tmp_path, monkeypatch):
    heard = []
    advance = Finished.advance
    monkeypatch.setattr(Finished, "advance", lambda self, job, f: heard.append(f) or advance(self, job, f))
    jobs = [Job(tmp_path / "frame.dng", tmp_path / "frame.png")]
    [outcome] = run_batch(jobs, InParts(), timeout=60, progress=False)
    assert outcome.status == Status.DONE and (tmp_path / "frame.png").is_file()
    assert heard == [0.25, 0.5, 0.75, 1.0]
    assert runner.Progress(0.5).fraction == 0.5


# --- the accuracy check behind the precision choice -------------------------------------------

def test_the_precision_check_s_limits():
    from rawisp.measure.precision import difference

    ref = np.full(1000, 100, np.uint8)
    off = ref.copy()
    off[0] = 102  # 1 value of 1000 over 1 code: 99.9% within 1
    assert difference("a", "png", ref, off).passes()
    off[1] = 98
    assert not difference("a", "png", ref, off).passes()  # 99.8%
    off = ref.copy()
    off[0] = 105  # more than 4 codes anywhere
    d = difference("a", "png", ref, off)
    assert (d.over_four, d.max_codes, d.passes()) == (1, 5, False) and "FAILS" in d.line()
    ref16 = np.full(1000, 30000, np.uint16)
    assert difference("a", "png16", ref16, ref16 + 1).passes()
    assert not difference("a", "dng", ref16, ref16 + 2).passes()
    assert difference("a", "dng", ref16, ref16 + 2).delta_e is None  # linear camera data: no colour


def test_the_precision_check_reports_the_largest_colour_difference():
    from rawisp.measure.precision import difference

    ref = np.full((4, 5, 3), 128, np.uint8)
    got = ref.copy()
    got[1, 2] = (128, 128, 140)  # grey 128 against a slightly blue grey: CIEDE2000 6.39
    got[3, 4] = (129, 128, 128)  # one code of red: 0.58
    d = difference("a", "png", ref, got)
    assert d.delta_e == pytest.approx(6.39, abs=0.01)
    assert "CIEDE2000 max 6.39 (6.39 where > 4 codes)" in d.line()
    got[1, 2] = (128, 128, 131)  # now no value is more than 4 codes off
    d = difference("a", "png", ref, got)
    assert d.over_four == 0 and d.delta_e_over_four == 0.0 and "where" not in d.line()
    assert difference("a", "png", ref, ref).delta_e == 0.0


@needs_openvino
def test_parts_of_the_graph_can_be_kept_in_f32():
    from rawisp.measure.precision import keep_in_f32

    ov = runtime.import_openvino()
    model = keep_in_f32(ov.Core().read_model(str(default_model_path())), r"^/bottom/")
    # the IR's "precise" reads back as DisablePrecisionConversion in newer OpenVINO
    marked = {op.get_friendly_name() for op in model.get_ordered_ops()
              if any(k.startswith(("precise", "DisablePrecisionConversion")) for k in op.get_rt_info().keys())}
    assert marked and all(name.startswith("/bottom/") for name in marked)
