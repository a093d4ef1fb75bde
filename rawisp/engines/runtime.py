"""What runs the learned engine's network: OpenVINO on the CPU where it is installed, onnxruntime
for CUDA and everywhere else; and in which floating-point precision.

- **OpenVINO** (the ``openvino`` extra: ``pip install "rawisp[openvino]"``) runs the same ONNX graph
  on the CPU in about 0.75x onnxruntime's time per tile, with the same output to float rounding
  (8.3e-7 linear at most on the bench's tiles): ``docs/speed.md``. Its model is compiled once
  per tile shape (a frame's tiles all have one shape) and the last few compiled shapes are kept.
- **onnxruntime** runs CUDA (``--device cuda``, or ``auto`` with onnxruntime-gpu and a GPU) and the
  CPU where OpenVINO is not installed (or with ``runtime="onnxruntime"``).

Precision: OpenVINO can run the graph in bf16 on a CPU with bf16 units (AVX512_BF16 or AMX; about
twice as fast again), never on one without. By default (``auto``) it does so only for a model
whose card says bf16 passed every check for that output depth (:func:`choose_precision`,
``tools/precision_check.py``). The shipped model's card does not: in saturated, out-of-gamut
colours its coarse levels carry activations up to ~180, where bf16's step is 1, and the 24 MP
bench frame's 8-bit output then moves by up to 100 codes (``docs/speed.md``); no choice of parts
kept in f32 that leaves a useful share of the work in bf16 passes, so it runs in f32. bf16 can
still be asked for (``precision="bf16"``, ``rawisp bench --precision bf16``).

No network access, ever: ``import openvino`` imports OpenVINO's model converter, whose import
sends a usage event through the ``openvino-telemetry`` package unless the user has opted out;
rawisp reads ONNX through the runtime's own frontend and never needs the converter, so
:func:`import_openvino` keeps it (and with it the telemetry package) from being imported.
"""

from __future__ import annotations

import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import NamedTuple

import numpy as np

from rawisp.threads import thread_count

RUNTIMES = ("auto", "onnxruntime", "openvino")
RUNTIME_ENV, PRECISION_ENV = "RAWISP_RUNTIME", "RAWISP_PRECISION"  # what ``auto`` means, where set
PRECISIONS = ("auto", "f32", "bf16")
DEVICES = ("auto", "cpu", "cuda")

# OpenVINO's model converter (``openvino.convert_model``, ``ovc``): its import sends telemetry
TELEMETRY_MODULES = ("openvino.tools.ovc", "openvino_telemetry")
_COMPILED_SHAPES = 2  # compiled tile shapes kept per model (a frame needs one; a batch of mixed cameras a few)


class DeviceError(Exception):
    """The device or runtime asked for is not available here (the message says what to install)."""


class Port(NamedTuple):
    """A graph input or output as the model declares it: name and shape (None: any size)."""

    name: str
    shape: tuple[int | None, ...]


def import_openvino() -> ModuleType:
    """``import openvino`` without its model converter, so that nothing is ever sent: the
    converter's import calls ``openvino_telemetry`` (Google Analytics), and openvino's
    ``__init__`` imports the converter inside ``try/except ImportError``. A ``None`` entry in
    ``sys.modules`` makes that import fail; the entry is removed again afterwards. ImportError
    when openvino is not installed."""
    if "openvino" in sys.modules:  # imported before, by rawisp (converter blocked) or by the host program
        return sys.modules["openvino"]
    blocked = TELEMETRY_MODULES[0]
    placed = blocked not in sys.modules
    if placed:
        sys.modules[blocked] = None  # type: ignore[assignment]
    try:
        import openvino
    finally:
        if placed and sys.modules.get(blocked, False) is None:
            del sys.modules[blocked]
    return openvino


@lru_cache(maxsize=1)
def openvino_version() -> str | None:
    """The installed OpenVINO's version (``2026.4.1``), or None when it cannot be imported."""
    try:
        return import_openvino().__version__.split("-")[0]
    except ImportError:
        return None
    except Exception:  # noqa: BLE001 - a broken install (missing shared library...) is no OpenVINO
        return None


@lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """Whether OpenVINO can run bf16 kernels on this CPU (AVX512_BF16 or AMX): it lists
    ``BF16`` among the CPU's optimisation capabilities."""
    if openvino_version() is None:
        return False
    try:
        return "BF16" in import_openvino().Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:  # noqa: BLE001 - no CPU plugin: no bf16
        return False


def from_environment(runtime: str, precision: str) -> tuple[str, str]:
    """``auto`` runtime and precision as ``$RAWISP_RUNTIME`` and ``$RAWISP_PRECISION`` say, where
    set (``RAWISP_RUNTIME=onnxruntime`` keeps an installed OpenVINO unused; ``RAWISP_PRECISION=bf16``
    asks for bf16 from every command); other settings are kept."""
    if runtime == "auto":
        runtime = os.environ.get(RUNTIME_ENV, "").strip().lower() or "auto"
    if precision == "auto":
        precision = os.environ.get(PRECISION_ENV, "").strip().lower() or "auto"
    return runtime, precision


def choose_runtime(runtime: str, device: str) -> str:
    """``onnxruntime`` or ``openvino`` for the ``runtime`` asked for (``auto``: OpenVINO for the CPU
    where installed) on ``device`` (auto, cpu, cuda). CUDA is onnxruntime's; DeviceError when the
    device or runtime asked for is not available."""
    if runtime not in RUNTIMES:
        raise DeviceError(f"unknown runtime {runtime!r}; choose from {', '.join(RUNTIMES)}")
    if device not in DEVICES:
        raise DeviceError(f"unknown device {device!r}; choose from {', '.join(DEVICES)}")
    if device == "cuda" and runtime == "openvino":
        raise DeviceError("--device cuda runs on onnxruntime (onnxruntime-gpu), not OpenVINO")
    if device == "cuda" or (device == "auto" and runtime != "openvino" and _ort_has_cuda()):
        _ort_providers(device)  # DeviceError for --device cuda without a CUDA provider
        return "onnxruntime"
    if runtime == "openvino" and openvino_version() is None:
        raise DeviceError("runtime openvino: OpenVINO is not installed (pip install \"rawisp[openvino]\")")
    if runtime == "auto":
        return "openvino" if openvino_version() is not None else "onnxruntime"
    return runtime


def choose_precision(precision: str, runtime: str, output_bits: int = 16, bf16_bits: int = 0) -> str:
    """The precision the network runs in: ``bf16`` only on OpenVINO on a CPU with bf16 units, and
    only when asked for (``precision`` bf16) or, with ``auto``, when the model's card says bf16 is
    invisible in outputs of up to ``bf16_bits`` bits (``precision.bf16.output_bits``, written by
    ``tools/precision_check.py`` after every check passed) and the output has no more
    (``output_bits``); f32 otherwise. The shipped model's card says nothing: bf16 moves its
    saturated colours visibly, so ``auto`` is f32 for it."""
    if precision not in PRECISIONS:
        raise DeviceError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    wanted = precision == "bf16" or (precision == "auto" and 0 < output_bits <= bf16_bits)
    return "bf16" if wanted and runtime == "openvino" and cpu_has_bf16() else "f32"


def bf16_output_bits(card: dict) -> int:
    """The most output bits a model's card says bf16 is invisible in (0: none, or no such record)."""
    record = card.get("precision", {}).get("bf16", {}) if isinstance(card.get("precision"), dict) else {}
    bits = record.get("output_bits", 0) if isinstance(record, dict) else 0
    return bits if isinstance(bits, int) and not isinstance(bits, bool) else 0


def open_session(path: Path, device: str, threads: int, runtime: str = "auto", precision: str = "auto",
                 output_bits: int = 16, bf16_bits: int = 0):
    """A session for the model at ``path`` on the chosen runtime (:func:`choose_runtime`) and
    precision (:func:`choose_precision`): onnxruntime's ``InferenceSession`` or an
    :class:`OpenVinoSession`, both with ``run(None, {name: x})``, ``get_inputs()``,
    ``get_outputs()`` and ``get_providers()``; ``auto`` settings as :func:`from_environment` says.
    DeviceError when the device or runtime is not available; the runtime's own exception for a
    bad model file."""
    runtime, precision = from_environment(runtime, precision)
    chosen = choose_runtime(runtime, device)
    if chosen == "openvino":
        return OpenVinoSession(path, threads, choose_precision(precision, chosen, output_bits, bf16_bits))
    choose_precision(precision, chosen)  # an unknown precision is an error on every runtime
    import onnxruntime as ort

    providers = _ort_providers(device)  # before the file: a missing provider is not the model's fault
    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
    so.log_severity_level = 3
    # onnxruntime's memory pattern plans one block for all of a tile's intermediates and keeps
    # it: without it a 768-px tile peaks 357 MB lower (+537 MB instead of +894) at the same speed
    so.enable_mem_pattern = False
    return ort.InferenceSession(str(path), so, providers=providers)


def describe_session(session) -> tuple[str, str]:
    """(runtime, precision) of a session: ``("onnxruntime 1.32.0 CPU", "f32")``,
    ``("OpenVINO 2026.4.1 CPU", "bf16")``; a stand-in session: its first provider, f32."""
    if isinstance(session, OpenVinoSession):
        return f"OpenVINO {openvino_version()} CPU", session.precision
    provider = session.get_providers()[0].removesuffix("ExecutionProvider")
    if type(session).__module__.startswith("onnxruntime"):
        import onnxruntime as ort

        return f"onnxruntime {ort.__version__} {provider}", "f32"
    return provider, "f32"


def runtime_summary(device: str = "auto", runtime: str = "auto", precision: str = "auto") -> str:
    """What the learned engine would run on here, in words (``rawisp info``), without loading a
    model (the shipped model's choice): ``OpenVINO 2026.4.1 CPU, f32 (bf16 units: yes)``."""
    runtime, precision = from_environment(runtime, precision)
    try:
        chosen = choose_runtime(runtime, device)
    except DeviceError as exc:
        return f"unavailable ({exc})"
    if chosen == "onnxruntime":
        import onnxruntime as ort

        where = "CUDA" if device != "cpu" and _ort_has_cuda() else "CPU"
        return f"onnxruntime {ort.__version__} {where}, f32"
    units = "yes" if cpu_has_bf16() else "no"
    return f"OpenVINO {openvino_version()} CPU, {choose_precision(precision, chosen)} (bf16 units: {units})"


def _ort_has_cuda() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


def _ort_providers(device: str) -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device == "cuda" and "CUDAExecutionProvider" not in available:
        raise DeviceError("--device cuda: this onnxruntime has no CUDA provider (it has "
                          f"{', '.join(p.removesuffix('ExecutionProvider') for p in available)}; for an NVIDIA GPU: "
                          "pip uninstall onnxruntime && pip install onnxruntime-gpu, with NVIDIA's CUDA and cuDNN)")
    if device in ("cuda", "auto") and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OpenVinoSession:
    """An ONNX model on OpenVINO's CPU plugin, with the part of onnxruntime's session interface the
    learned engine uses. The model is compiled for each input shape it meets (0.1-0.4 s), and the
    last :data:`_COMPILED_SHAPES` compiled shapes are kept. Calls from several threads take turns
    (each call already uses every thread it was given)."""

    def __init__(self, path: Path | None, threads: int, precision: str = "f32", model=None) -> None:
        ov = import_openvino()
        self.core = ov.Core()
        self.model = model if model is not None else self.core.read_model(str(path))  # model: an ov.Model given
        self.precision = precision
        self.config = {
            "INFERENCE_PRECISION_HINT": precision,  # OpenVINO's default on a bf16 CPU is bf16: always say
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": thread_count(threads),
            # several worker processes each run a model: pinned threads of one would sit on the
            # cores the other's are pinned to
            "ENABLE_CPU_PINNING": False,
        }
        self._requests: OrderedDict[tuple[int, ...], object] = OrderedDict()
        self._lock = threading.Lock()

    def get_inputs(self) -> list[Port]:
        return [_port(p) for p in self.model.inputs]

    def get_outputs(self) -> list[Port]:
        return [_port(p) for p in self.model.outputs]

    def get_providers(self) -> list[str]:
        return ["OpenVINO CPU"]

    def run(self, output_names: Sequence[str] | None, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """The first output for the one input in ``feeds`` (as ``InferenceSession.run``)."""
        (x,) = feeds.values()
        with self._lock:
            request = self._request(tuple(x.shape))
            return [request.infer({0: x}, share_inputs=True)[0]]

    def compiled_shapes(self) -> list[tuple[int, ...]]:
        """The input shapes compiled and kept, oldest first."""
        return list(self._requests)

    def _request(self, shape: tuple[int, ...]):
        request = self._requests.get(shape)
        if request is not None:
            self._requests.move_to_end(shape)
            return request
        while len(self._requests) >= _COMPILED_SHAPES:
            self._requests.popitem(last=False)  # its compiled model and buffers go with it
        model = self.model.clone()
        model.reshape({0: list(shape)})
        request = self.core.compile_model(model, "CPU", self.config).create_infer_request()
        self._requests[shape] = request
        return request


def _port(port) -> Port:
    shape = tuple(d.get_length() if d.is_static else None for d in port.get_partial_shape())
    return Port(port.get_any_name(), shape)
