"""``rawisp bench``: wall time per stage and peak memory of developing one RAW file on this machine.

Every repetition of every engine (and of every peer, with ``compare_peers``) runs in a fresh child
process (:mod:`rawisp.measure.bench_child`), so one engine's imports, thread pools and peak memory cannot
leak into another's figures. Repetitions are interleaved (round-robin over the variants), so slow
drift of a busy machine affects all of them alike and the ratios between them stay fair. With no
file, the synthetic 24 MP frame of :mod:`rawisp.measure.bench_scene` is used; :mod:`rawisp.measure.bench_report`
prints the report.

This module imports only the standard library at load time: the children import exactly what
they measure.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import StrEnum
from pathlib import Path

from rawisp import __version__
from rawisp.measure.bench_child import STAGES
from rawisp.measure.bench_scene import DEFAULT_SIZE, bench_frame
from rawisp.stages.reconstruct import DEVELOP_GRAIN
from rawisp.threads import thread_count


class RowStatus(StrEnum):
    """Whether a row of the report was measured."""

    OK = "ok"
    UNAVAILABLE = "unavailable"  # a peer not installed, an engine that cannot be built
    FAILED = "failed"


@dataclass
class BenchConfig:
    """One bench run. ``source`` None means the cached synthetic frame of ``size`` (width, height)."""

    source: Path | None = None
    size: tuple[int, int] = DEFAULT_SIZE
    cache_dir: Path | None = None
    engines: tuple[str, ...] = ("classical", "learned")
    tiles: tuple[int, ...] = ()
    fmt: str = "jpeg"
    quality: int = 92
    repeat: int = 3
    warmup: int = 0
    threads: int = 0  # engine threads; 0 = all CPUs, as ``rawisp develop`` with one job
    device: str = "auto"
    models: tuple[str, ...] = ()  # learned engine models (one row each); empty: the bundled one
    runtimes: tuple[str, ...] = ()  # learned engine runtimes (one row each): auto, onnxruntime, openvino
    precisions: tuple[str, ...] = ()  # learned engine precisions (one row each): auto, f32, bf16
    compare_peers: bool = False
    timeout: float = 600.0


@dataclass
class Variant:
    """One row of the report: a rawisp engine (with a tile size) or a peer developer."""

    name: str
    kind: str  # "rawisp", "rawpy" or "cli"
    engine: str | None = None
    tile: int | None = None
    model: str | None = None
    runtime: str = "auto"
    precision: str = "auto"
    argv: list[str] | None = None  # for "cli": the command, with {src} and {out} placeholders
    status: RowStatus = RowStatus.OK
    error: str | None = None
    runs: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def plan_variants(config: BenchConfig) -> list[Variant]:
    """The rows to measure, in order: engines (learned: one per model, tile size, runtime and
    precision), then peers."""
    variants = []
    for engine in dict.fromkeys(config.engines):
        if engine == "learned":
            models = list(dict.fromkeys(config.models)) or [None]
            runtimes = list(dict.fromkeys(config.runtimes)) or ["auto"]
            precisions = list(dict.fromkeys(config.precisions)) or ["auto"]
            for model, tile, runtime, precision in itertools.product(
                    models, list(dict.fromkeys(config.tiles)) or [None], runtimes, precisions):
                if runtime == "onnxruntime" and precision == "bf16":
                    continue  # onnxruntime runs f32 only: the row would repeat its f32 one
                name = " ".join(["learned"] + ([Path(model).stem] if len(models) > 1 else [])
                                + ([f"tile={tile}"] if tile else []) + ([runtime] if len(runtimes) > 1 else [])
                                + ([precision] if len(precisions) > 1 else []))
                variants.append(Variant(name, "rawisp", engine, tile=tile, model=model, runtime=runtime,
                                        precision=precision))
        else:
            variants.append(Variant(engine, "rawisp", engine))
            if engine == "classical":
                variants[-1].notes.append("bilinear demosaic runs inside render, strip by strip (no reconstruct stage)")
    if config.compare_peers:
        rawpy_peer = Variant("rawpy postprocess", "rawpy")
        rawpy_peer.notes.append("LibRaw AHD, default parameters; postprocess() counted under reconstruct; "
                                "Pillow writes the output (JPEG 4:4:4 like rawisp)")
        variants.append(rawpy_peer)
        variants += [_cli_peer("darktable-cli", config), _cli_peer("rawtherapee-cli", config)]
    return variants


def _cli_peer(name: str, config: BenchConfig) -> Variant:
    """darktable-cli / rawtherapee-cli on the same file, unavailable when not installed."""
    variant = Variant(name, "cli")
    exe = shutil.which(name)
    if exe is None:
        variant.status, variant.error = RowStatus.UNAVAILABLE, f"not installed ({name} not on PATH)"
        return variant
    variant.notes.append("whole process (start-up included); one untimed warm-up run first")
    bits16 = config.fmt in ("png16", "tiff16")
    if name == "darktable-cli":
        conf = {"jpeg": [f"plugins/imageio/format/jpeg/quality={config.quality}"],
                "png": ["plugins/imageio/format/png/bpp=8"], "png16": ["plugins/imageio/format/png/bpp=16"],
                "tiff16": ["plugins/imageio/format/tiff/bpp=16"]}[config.fmt]
        variant.argv = [exe, "{src}", "{out}", "--core", "--configdir", "{state}/darktable",
                        "--library", ":memory:"] + [a for c in conf for a in ("--conf", c)]
    else:
        fmt_args = {"jpeg": [f"-j{config.quality}", "-js3"], "png": ["-n", "-b8"], "png16": ["-n", "-b16"],
                    "tiff16": ["-t", "-b16"]}[config.fmt]
        variant.argv = [exe, "-q", "-Y", "-d", "-o", "{out}"] + fmt_args + ["-c", "{src}"]
        if bits16 or config.fmt == "png":
            variant.notes.append("RawTherapee default processing profile")
    return variant


class BenchError(Exception):
    """The bench cannot run at all (e.g. the file is not one LibRaw reads); the message says why."""


def frame_size(path: Path) -> tuple[int, int]:
    """(width, height) of the visible frame of a RAW file, as LibRaw reads it."""
    import rawpy

    try:
        with rawpy.imread(str(path)) as raw:
            return raw.sizes.width, raw.sizes.height
    except (rawpy.LibRawError, OSError) as exc:
        raise BenchError(f"{path}: LibRaw cannot read it ({type(exc).__name__}: {exc})") from None


def run_bench(config: BenchConfig, progress: Callable[[str], None] | None = None) -> dict:
    """Measure every variant ``config.repeat`` times in fresh child processes; the JSON-ready report."""
    from rawisp.io.write import output_bits, output_suffix

    say = progress or (lambda message: None)
    synthetic = config.source is None
    source = bench_frame(config.cache_dir, config.size, progress=say) if synthetic else Path(config.source)
    width, height = frame_size(source)
    variants = plan_variants(config)
    threads = thread_count(config.threads)
    load_before = _loadavg()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    counter = itertools.count(1)
    with tempfile.TemporaryDirectory(prefix="rawisp-bench-") as tmp:
        state = Path(tmp) / "state"
        state.mkdir()

        def spec_for(variant: Variant, out: Path) -> dict:
            common = {"src": str(source), "out": str(out), "fmt": config.fmt, "quality": config.quality}
            if variant.kind == "rawisp":
                options = {"model": variant.model, "device": config.device, "threads": threads,
                           "tile": variant.tile, "denoise": "auto", "grain": DEVELOP_GRAIN,
                           "output_bits": output_bits(config.fmt),
                           "runtime": variant.runtime, "precision": variant.precision}
                return {"kind": "rawisp", "engine": variant.engine, "engine_options": options, **common}
            if variant.kind == "rawpy":
                return {"kind": "rawpy", **common}
            argv = [a.format(src=source, out=out, state=state) for a in variant.argv]
            return {"kind": "cli", "argv": argv, **common}

        def measure(variant: Variant, label: str) -> dict:
            out = Path(tmp) / f"out{next(counter)}_{variant.kind}{output_suffix(config.fmt)}"
            result = run_child(spec_for(variant, out), config.timeout)
            for leftover in Path(tmp).glob(f"{out.stem}*"):  # darktable may add _01 suffixes
                leftover.unlink()
            if result.get("error"):
                say(f"{variant.name} {label}: {result['error']}")
            else:
                say(f"{variant.name} {label}: {result['total']:.2f} s, peak {_mb(result.get('peak_rss_bytes'))} MB")
            return result

        for variant in variants:  # warm-ups; a peer that cannot run here is reported unavailable
            if variant.status != RowStatus.OK:
                continue
            warmups = config.warmup + (1 if variant.kind == "cli" else 0)
            for i in range(warmups):
                result = measure(variant, f"warm-up {i + 1}/{warmups}")
                if result.get("error"):
                    variant.status, variant.error = _failure_status(variant, result), result["error"]
                    break
        for rep in range(config.repeat):
            for variant in variants:
                if variant.status != RowStatus.OK:
                    continue
                result = measure(variant, f"run {rep + 1}/{config.repeat}")
                if result.get("error"):
                    first = not variant.runs
                    variant.status = _failure_status(variant, result) if first else RowStatus.FAILED
                    variant.error = result["error"]
                    continue
                variant.runs.append(result)
    load_after = _loadavg()
    cpus = thread_count()
    report = {
        "rawisp_version": __version__,
        "started": started,
        "file": str(source),
        "synthetic": synthetic,
        "width": width,
        "height": height,
        "megapixels": round(width * height / 1e6, 3),
        "format": config.fmt,
        "quality": config.quality,
        "repeat": config.repeat,
        "warmup": config.warmup,
        "engine_threads": threads,
        "machine": _machine(),
        "load_before": load_before,
        "load_after": load_after,
        "contended": bool(load_before and load_before[0] >= 0.5 * cpus),
        "results": [],
    }
    report["results"] = [_summarise(variant, width * height / 1e6) for variant in variants]
    for key, peer in (("vs_rawpy", "rawpy postprocess"), ("vs_rawtherapee", "rawtherapee-cli")):
        base = next((r["median"]["total"] for r in report["results"]
                     if r["name"] == peer and r["status"] == RowStatus.OK), None)
        for row in report["results"]:
            row[key] = round(row["median"]["total"] / base, 3) if base and row["status"] == RowStatus.OK else None
    return report


def _failure_status(variant: Variant, result: dict) -> RowStatus:
    """A rawisp engine that cannot be built, or a peer that cannot run at all, is unavailable."""
    if variant.kind == "rawisp" and result.get("stage") != "load":
        return RowStatus.FAILED
    return RowStatus.UNAVAILABLE


def _summarise(variant: Variant, megapixels: float) -> dict:
    """Median, min and max of every figure of a variant's runs."""
    row = {"name": variant.name, "kind": variant.kind, "engine": variant.engine, "tile": variant.tile,
           "status": variant.status if variant.runs or variant.status != RowStatus.OK else RowStatus.FAILED,
           "error": variant.error, "notes": variant.notes, "runs": variant.runs}
    if not variant.runs:
        return row
    keys = [s for s in STAGES if any(s in r["seconds"] for r in variant.runs)] + ["total", "process"]

    def values(key: str) -> list[float]:
        return [r["seconds"][key] if key in STAGES else r[key] for r in variant.runs
                if (key in r["seconds"] if key in STAGES else r.get(key) is not None)]

    row["median"] = {k: round(statistics.median(values(k)), 4) for k in keys if values(k)}
    row["min"] = {k: round(min(values(k)), 4) for k in keys if values(k)}
    row["max"] = {k: round(max(values(k)), 4) for k in keys if values(k)}
    row["mp_per_s"] = round(megapixels / row["median"]["total"], 3) if row["median"]["total"] > 0 else None
    peaks = [r["peak_rss_bytes"] for r in variant.runs if r.get("peak_rss_bytes")]
    row["peak_rss_mb"] = ({"median": round(statistics.median(peaks) / 2**20, 1), "min": round(min(peaks) / 2**20, 1),
                           "max": round(max(peaks) / 2**20, 1)} if peaks else None)
    cpu = [r["cpu_s"] / r["total"] for r in variant.runs if r.get("cpu_s") is not None and r["total"] > 0]
    row["cpu_per_wall"] = round(statistics.median(cpu), 2) if cpu else None
    cpu_s = [r["cpu_s"] for r in variant.runs if r.get("cpu_s") is not None]
    row["cpu_s"] = round(statistics.median(cpu_s), 3) if cpu_s else None  # steadier than wall time on a busy machine
    last = variant.runs[-1]
    row["threads"] = last.get("engine_threads") or last.get("os_threads")
    row["os_threads"] = last.get("os_threads")
    row["provider"] = last.get("provider")
    row["runtime"] = last.get("runtime")  # the learned engine's: "OpenVINO 2026.4.1 CPU", "onnxruntime 1.32.0 CPU"
    row["precision"] = last.get("precision")
    row["load_s"] = round(statistics.median([r["load_s"] for r in variant.runs]), 4) if "load_s" in last else None
    row["output_bytes"] = last.get("output_bytes")
    engine_stats = [r["engine_stats"] for r in variant.runs if r.get("engine_stats")]
    if engine_stats:  # the learned engine: its tiles, the share of network pixels in margins, network time
        network_s = statistics.median(e["network_s"] for e in engine_stats)
        row["network"] = {"tiles": engine_stats[-1]["tiles"], "tile": engine_stats[-1]["tile"],
                         "margin": engine_stats[-1]["margin"], "margin_share": round(engine_stats[-1]["margin_share"], 3),
                         "network_s": round(network_s, 3),
                         "network_mp_per_s": round(megapixels / network_s, 3) if network_s > 0 else None}
    warnings = sorted({w for r in variant.runs for w in r.get("warnings", [])})
    if warnings:
        row["warnings"] = warnings
    return row


def run_child(spec: dict, timeout: float) -> dict:
    """Run one measurement in a fresh ``python -m rawisp.measure.bench_child`` process; its JSON result
    (``{"error": ...}`` when it failed or overran ``timeout`` seconds: then it and every process it
    started are killed)."""
    with tempfile.NamedTemporaryFile(prefix="rawisp-bench-", suffix=".json", delete=False) as handle:
        result_path = Path(handle.name)
    cmd = [sys.executable, "-m", "rawisp.measure.bench_child", json.dumps(spec), str(result_path)]
    start = time.perf_counter()
    # its own session, so a timeout also ends what it started (a peer's command line)
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
        process = time.perf_counter() - start
        text = result_path.read_text() if result_path.stat().st_size else ""
        if not text:
            tail = (stderr or stdout).decode(errors="replace").strip().splitlines()[-3:]
            return {"error": f"child exited with status {proc.returncode}: {' / '.join(tail) or 'no output'}"}
        result = json.loads(text)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return {"error": f"timed out after {timeout:g} s"}
    except BaseException:  # KeyboardInterrupt: do not leave the child running
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    finally:
        result_path.unlink(missing_ok=True)
    result.setdefault("process", round(process, 4))
    return result


def _loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def _machine() -> dict:
    """What the figures were measured on."""
    from importlib import metadata

    versions = {}
    for package in ("numpy", "rawpy", "pillow", "onnxruntime", "openvino"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), cpu)
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else None
    return {"cpus": os.cpu_count(), "cpu": cpu, "memory_gib": round(memory / 2**30, 1) if memory else None,
            "platform": platform.platform(), "python": platform.python_version(), **versions}


def _mb(nbytes: float | None) -> str:
    return "?" if not nbytes else f"{nbytes / 2**20:.0f}"
