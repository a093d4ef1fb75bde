"""``rawisp bench``: wall time per stage and peak memory of developing one RAW file on this machine.

Every repetition of every engine (and of every peer, with ``compare_peers``) runs in a fresh child
process (``python -m rawisp.bench SPEC RESULT``), so one engine's imports, thread pools and peak
memory cannot leak into another's figures. The child measures itself and writes a JSON result:

- per-stage seconds from :func:`rawisp.develop.develop_file` (decode, normalise, reconstruct,
  render, write) plus model loading, CPU seconds of those stages and its own thread count;
- its peak resident memory, ``VmHWM`` of ``/proc/self/status`` (not ``ru_maxrss`` of a waited-for
  child: on Linux that also counts the parent's resident memory at the fork/exec, which would
  charge the bench's own memory to every child).

Repetitions are interleaved (round-robin over the variants), so slow drift of a busy machine
affects all of them alike and the ratios between them stay fair.

With no file, a synthetic 24 MP frame (6000x4000 14-bit RGGB DNG with mild noise and camera-like
EXIF) of natural-looking content is made once and cached (see :func:`bench_frame`).

This module imports only the standard library at load time: the children import exactly what
they measure.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path

from rawisp import __version__

STAGES = ("decode", "normalise", "reconstruct", "render", "write")
DEFAULT_SIZE = (6000, 4000)
SCENE_VERSION = 1  # bump when the synthetic frame changes, so cached frames are remade
PEERS = ("rawpy", "darktable-cli", "rawtherapee-cli")

# the synthetic camera: 14-bit, daylight white balance, ISO 400-like noise (normalised units)
BENCH_CFA = "RGGB"
BENCH_BLACK = 512
BENCH_WHITE = 16383
BENCH_NEUTRAL = (0.52, 1.0, 0.70)
BENCH_NOISE = (8e-5, 4e-4)  # shot variance per unit signal, read std
BENCH_EXIF = {
    "ExposureTime": Fraction(1, 250),
    "FNumber": 5.6,
    "ISO": 400,
    "FocalLength": 35.0,
    "DateTimeOriginal": "2024:06:01 12:00:00",
    "LensModel": "rawisp Synthetic 35mm F1.8",
    "Artist": "rawisp bench",
}


# --------------------------------------------------------------------------------------------
# The synthetic frame


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/rawisp``, else ``~/.cache/rawisp``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rawisp"


def bench_frame(cache_dir: Path | None = None, size: tuple[int, int] = DEFAULT_SIZE, seed: int = 0,
                progress: Callable[[str], None] | None = None) -> Path:
    """The cached synthetic DNG of ``size`` (width, height); made (atomically) when missing."""
    width, height = size
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache_dir / f"bench_{width}x{height}_s{seed}_v{SCENE_VERSION}.dng"
    if path.is_file() and path.stat().st_size > 0:
        return path
    cache_dir.mkdir(parents=True, exist_ok=True)
    if progress:
        progress(f"making the synthetic {width}x{height} frame {path} (once) ...")
    part = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        write_bench_dng(part, width, height, seed)
        os.replace(part, path)
    finally:
        part.unlink(missing_ok=True)
    return path


def write_bench_dng(path: str | os.PathLike, width: int, height: int, seed: int = 0) -> None:
    """Write the synthetic bench frame: :func:`synth_scene` through the camera model of
    :func:`rawisp.synth.srgb_to_dng` (14-bit, mild noise, EXIF), in strips of rows to bound memory."""
    import numpy as np

    from rawisp import synth

    img = synth_scene(width, height, seed)
    raw = np.empty((height, width), np.float64)
    cam = synth.DEFAULT_CAM_FROM_SRGB
    neutral = np.asarray(BENCH_NEUTRAL)
    rng = np.random.default_rng(seed + 1)
    strip = 256  # even, so every strip starts on the same CFA phase
    for y in range(0, height, strip):
        truth = synth.srgb_to_linear(img[y:y + strip]) @ cam.T
        truth *= neutral
        raw[y:y + strip] = synth.add_noise(synth.mosaic(truth, BENCH_CFA), *BENCH_NOISE, rng)
    del img, truth
    synth.write_dng(path, raw, cfa=BENCH_CFA, black=BENCH_BLACK, white=BENCH_WHITE, cam_from_srgb=cam,
                    neutral=BENCH_NEUTRAL, noise=BENCH_NOISE, exif=BENCH_EXIF, make="rawisp",
                    model="Bench 24MP")


def synth_scene(width: int, height: int, seed: int = 0):
    """Natural-looking sRGB content ``(height, width, 3)`` float32 in [0, 1] for benchmarks.

    The test chart (mirror-extended to fill the frame: edges, text, fine patterns, saturated
    colours) is blended through a soft random mask with textured surfaces (1/f noise over smooth
    random colours), then lit by a smooth random illumination field that leaves deep shadows and
    a few clipped highlights, plus fine grain. There is no flat area anywhere, so demosaicking,
    rendering and JPEG coding work as hard as on a photograph.
    """
    import numpy as np

    from rawisp.chart import make_chart

    if width < 16 or height < 16:
        raise ValueError(f"bench frame must be at least 16x16 pixels, got {width}x{height}")
    rng = np.random.default_rng(seed)
    chart = make_chart(max(60, (width + 1) // 2), max(40, (height + 1) // 2), seed=seed)
    img = _mirror_fill(chart, height, width)
    del chart
    side = max(width, height)
    tile = min(1024, 1 << (side - 1).bit_length())
    grain = _mirror_fill(_pink_noise(tile, rng, 1.0), height, width)
    colour = 0.12 + 0.8 * _smooth_field(height, width, side / 10, rng, 3)
    colour *= (0.45 + 0.55 * grain)[..., None]
    mask = np.clip((_smooth_field(height, width, side / 6, rng) - 0.3) * 2.5, 0, 1)
    img *= ((0.8 + 0.4 * grain) * mask)[..., None]  # the chart's flat background gets texture too
    colour *= (1 - mask)[..., None]
    img += colour
    del colour, mask
    light = 0.35 + 0.95 * _smooth_field(height, width, side / 4, rng)
    img *= light[..., None]
    del light
    fine = _mirror_fill(_pink_noise(tile // 2, rng, 0.5), height, width)
    img += (0.05 * (fine - 0.5))[..., None]
    np.clip(img, 0, 1, out=img)
    return img


def _mirror_fill(tile, height: int, width: int):
    """Extend ``tile`` (h, w[, c]) to (height, width[, c]) by mirror tiling (no seams), then crop."""
    import numpy as np

    pad = [(0, max(0, height - tile.shape[0])), (0, max(0, width - tile.shape[1]))]
    pad += [(0, 0)] * (tile.ndim - 2)
    return np.pad(tile, pad, mode="symmetric")[:height, :width].astype(np.float32, copy=True)


def _pink_noise(side: int, rng, beta: float):
    """A (side, side) float32 field with a 1/f^beta spectrum, scaled to about [0, 1]."""
    import numpy as np

    f = np.hypot(np.fft.fftfreq(side)[:, None], np.fft.rfftfreq(side)[None])
    f[0, 0] = 1.0
    spectrum = np.fft.rfft2(rng.standard_normal((side, side))) / f**beta
    spectrum[0, 0] = 0
    field = np.fft.irfft2(spectrum, s=(side, side))
    lo, hi = np.percentile(field, [1, 99])
    return np.clip((field - lo) / (hi - lo + 1e-12), 0, 1).astype(np.float32)


def _smooth_field(height: int, width: int, cell: float, rng, channels: int = 1):
    """Random values on a grid of ``cell``-pixel cells, bicubically upsampled: (h, w[, c]) in [0, 1]."""
    import numpy as np
    from PIL import Image

    gh, gw = max(2, round(height / cell) + 1), max(2, round(width / cell) + 1)
    grid = rng.random((channels, gh, gw)).astype(np.float32)
    out = np.stack([np.asarray(Image.fromarray(g, "F").resize((width, height), Image.BICUBIC)) for g in grid], -1)
    np.clip(out, 0, 1, out=out)
    return out[..., 0] if channels == 1 else out


# --------------------------------------------------------------------------------------------
# What to measure


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
    argv: list[str] | None = None  # for "cli": the command, with {src} and {out} placeholders
    status: str = "ok"  # "ok", "unavailable" or "failed"
    error: str | None = None
    runs: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def plan_variants(config: BenchConfig) -> list[Variant]:
    """The rows to measure, in order: engines (one per tile size for learned), then peers."""
    variants = []
    for engine in dict.fromkeys(config.engines):
        if engine == "learned":
            models = list(dict.fromkeys(config.models)) or [None]
            for model, tile in itertools.product(models, list(dict.fromkeys(config.tiles)) or [None]):
                name = " ".join(["learned"] + ([Path(model).stem] if len(models) > 1 else [])
                                + ([f"tile={tile}"] if tile else []))
                variants.append(Variant(name, "rawisp", engine, tile=tile, model=model))
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
        variant.status, variant.error = "unavailable", f"not installed ({name} not on PATH)"
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
    from rawisp.write import output_suffix

    say = progress or (lambda message: None)
    synthetic = config.source is None
    source = bench_frame(config.cache_dir, config.size, progress=say) if synthetic else Path(config.source)
    width, height = frame_size(source)
    variants = plan_variants(config)
    threads = config.threads or os.cpu_count() or 1
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
                           "tile": variant.tile, "denoise": "auto"}
                return {"kind": "rawisp", "engine": variant.engine, "engine_options": options, **common}
            if variant.kind == "rawpy":
                return {"kind": "rawpy", **common}
            argv = [a.format(src=source, out=out, state=state) for a in variant.argv]
            return {"kind": "cli", "argv": argv, **common}

        def measure(variant: Variant, label: str) -> dict:
            out = Path(tmp) / f"out{next(counter)}_{variant.kind}{output_suffix(config.fmt)}"
            result = _run_child(spec_for(variant, out), config.timeout)
            for leftover in Path(tmp).glob(f"{out.stem}*"):  # darktable may add _01 suffixes
                leftover.unlink()
            if result.get("error"):
                say(f"{variant.name} {label}: {result['error']}")
            else:
                say(f"{variant.name} {label}: {result['total']:.2f} s, peak {_mb(result.get('peak_rss_bytes'))} MB")
            return result

        for variant in variants:  # warm-ups; a peer that cannot run here is reported unavailable
            if variant.status != "ok":
                continue
            warmups = config.warmup + (1 if variant.kind == "cli" else 0)
            for i in range(warmups):
                result = measure(variant, f"warm-up {i + 1}/{warmups}")
                if result.get("error"):
                    variant.status, variant.error = _failure_status(variant, result), result["error"]
                    break
        for rep in range(config.repeat):
            for variant in variants:
                if variant.status != "ok":
                    continue
                result = measure(variant, f"run {rep + 1}/{config.repeat}")
                if result.get("error"):
                    first = not variant.runs
                    variant.status = _failure_status(variant, result) if first else "failed"
                    variant.error = result["error"]
                    continue
                variant.runs.append(result)
    load_after = _loadavg()
    cpus = os.cpu_count() or 1
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
        base = next((r["median"]["total"] for r in report["results"] if r["name"] == peer and r["status"] == "ok"),
                    None)
        for row in report["results"]:
            row[key] = round(row["median"]["total"] / base, 3) if base and row["status"] == "ok" else None
    return report


def _failure_status(variant: Variant, result: dict) -> str:
    """A rawisp engine that cannot be built, or a peer that cannot run at all, is "unavailable"."""
    if variant.kind == "rawisp":
        return "unavailable" if result.get("stage") == "load" else "failed"
    return "unavailable"


def _summarise(variant: Variant, megapixels: float) -> dict:
    """Median, min and max of every figure of a variant's runs."""
    row = {"name": variant.name, "kind": variant.kind, "engine": variant.engine, "tile": variant.tile,
           "status": variant.status if variant.runs or variant.status != "ok" else "failed",
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
    row["load_s"] = round(statistics.median([r["load_s"] for r in variant.runs]), 4) if "load_s" in last else None
    row["output_bytes"] = last.get("output_bytes")
    engine_stats = [r["engine_stats"] for r in variant.runs if r.get("engine_stats")]
    if engine_stats:  # the learned engine: its tiles, the share of network pixels in margins, network time
        network_s = statistics.median(e["network_s"] for e in engine_stats)
        row["network"] = {"tiles": engine_stats[-1]["tiles"], "tile": engine_stats[-1]["tile"],
                         "margin_share": round(engine_stats[-1]["margin_share"], 3), "network_s": round(network_s, 3),
                         "network_mp_per_s": round(megapixels / network_s, 3) if network_s > 0 else None}
    warnings = sorted({w for r in variant.runs for w in r.get("warnings", [])})
    if warnings:
        row["warnings"] = warnings
    return row


def _run_child(spec: dict, timeout: float) -> dict:
    """Run one measurement in a fresh ``python -m rawisp.bench`` process; its JSON result."""
    with tempfile.NamedTemporaryFile(prefix="rawisp-bench-", suffix=".json", delete=False) as handle:
        result_path = Path(handle.name)
    cmd = [sys.executable, "-m", "rawisp.bench", json.dumps(spec), str(result_path)]
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
    for package in ("numpy", "rawpy", "pillow", "onnxruntime"):
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


# --------------------------------------------------------------------------------------------
# The report as text


def format_report(report: dict) -> str:
    """The plain-text table printed by ``rawisp bench``."""
    lines = []
    kind = "synthetic Bayer DNG" if report["synthetic"] else "RAW file"
    quality = f" q{report['quality']}" if report["format"] == "jpeg" else ""
    lines.append(f"rawisp bench {report['rawisp_version']}: {report['file']}")
    lines.append(f"  {report['width']}x{report['height']} ({report['megapixels']:.1f} MP) {kind} -> "
                 f"{report['format']}{quality}; {report['repeat']} run{'s' if report['repeat'] > 1 else ''} each, "
                 f"a fresh process per run; "
                 f"seconds, median of runs")
    machine = report["machine"]
    load = report["load_before"]
    busy = "  BUSY: timings are contended" if report["contended"] else ""
    load_text = f", load average {load[0]:.2f} before / {report['load_after'][0]:.2f} after" if load else ""
    lines.append(f"  {machine['cpus']} CPUs ({machine['cpu']}){load_text}{busy}")
    lines.append("")
    header = (f"{'':<22}" + "".join(f"{s:>12}" for s in STAGES)
              + f"{'total':>9} {'[min-max]':<14}{'MP/s':>6}{'process':>9}{'peak MB':>9} {'[min-max]':<12}"
              + f"{'threads':>8}{'cpu/wall':>9}{'vs rawpy':>9}{'vs RT':>7}  provider")
    lines.append(header)
    for row in report["results"]:
        name = row["name"]
        if row["status"] != "ok" and not row["runs"]:
            lines.append(f"{name:<22}{row['status']}: {row['error']}")
            continue
        med, lo, hi = row["median"], row["min"], row["max"]
        cells = "".join(f"{_sec(med.get(s)):>12}" for s in STAGES)
        spread = f"[{lo['total']:.2f}-{hi['total']:.2f}]"
        peak = row["peak_rss_mb"]
        peak_text = f"{peak['median']:>9.0f} [{peak['min']:.0f}-{peak['max']:.0f}]" if peak else f"{'?':>9}"
        vs = f"{row['vs_rawpy']:.2f}x" if row.get("vs_rawpy") else "-"
        vs_rt = f"{row['vs_rawtherapee']:.2f}x" if row.get("vs_rawtherapee") else "-"
        lines.append(f"{name:<22}{cells}{med['total']:>9.2f} {spread:<14}{_num(row['mp_per_s'], 1):>6}"
                     f"{_sec(med.get('process')):>9}{peak_text:<22}{_num(row['threads'], 0):>8}"
                     f"{_num(row['cpu_per_wall'], 2):>9}{vs:>9}{vs_rt:>7}  {row['provider'] or '-'}")
        if row["status"] != "ok":
            lines.append(f"{'':<22}{row['status']} after {len(row['runs'])} runs: {row['error']}")
    staged = [r for r in report["results"] if r["runs"] and r["kind"] != "cli"]
    if staged:
        lines.append("")
        lines.append(f"{'spread [min-max]':<22}" + "".join(f" {s:>13}" for s in STAGES))
        for row in staged:
            lines.append(f"{row['name']:<22}" + "".join(
                f" {_range(row['min'].get(s), row['max'].get(s)):>13}" for s in STAGES))
    notes = [f"{r['name']}: {n}" for r in report["results"] for n in r["notes"] if r["status"] == "ok"]
    notes += [f"{r['name']}: network {e['network_s']:.2f} s ({e['network_mp_per_s']:.2f} MP/s) in {e['tiles']} tiles of "
              f"{e['tile']} packed px; margins {100 * e['margin_share']:.0f}% of the pixels it computes"
              for r in report["results"] if r["status"] == "ok" and (e := r.get("network"))]
    notes += [f"{r['name']}: model load {r['load_s']:.2f} s (not in total)" for r in report["results"]
              if r.get("load_s") and r["load_s"] >= 0.05]
    notes += [f"{r['name']}: warning: {w}" for r in report["results"] for w in r.get("warnings", [])]
    lines.append("")
    lines.append("total: sum of the stages; process: the whole child process (interpreter start-up, imports, "
                 "model load); peak: the developing process's peak resident memory (VmHWM);")
    lines.append("threads: the engine's thread setting, else the OS threads of the process; cpu/wall: CPU seconds "
                 "per wall second over the stages (cores kept busy);")
    lines.append("vs rawpy, vs RT: total time relative to rawpy postprocess + write and to rawtherapee-cli's "
                 "whole process, measured in this same run.")
    lines += [f"note: {n}" for n in notes]
    return "\n".join(lines)


def _sec(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _range(lo: float | None, hi: float | None) -> str:
    return "-" if lo is None else f"{lo:.2f}-{hi:.2f}"


# --------------------------------------------------------------------------------------------
# The child side: ``python -m rawisp.bench SPEC_JSON RESULT_PATH``


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _status_field(name: str) -> int | None:
    """A numeric field of /proc/self/status (kB values as bytes), or None off Linux."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(name + ":"):
                    parts = line.split()
                    return int(parts[1]) * (1024 if len(parts) > 2 and parts[2] == "kB" else 1)
    except OSError:
        pass
    return None


def _self_peak() -> int:
    """This process's peak resident memory in bytes (VmHWM; ru_maxrss where /proc is missing)."""
    peak = _status_field("VmHWM")
    if peak is None:
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak = maxrss if sys.platform == "darwin" else maxrss * 1024
    return peak


def _child_rawisp(spec: dict) -> dict:
    """Develop the file with a rawisp engine, as ``rawisp develop`` does in its worker."""
    start = time.perf_counter()
    from rawisp.develop import RenderOptions, develop_file
    from rawisp.reconstruct import EngineOptions, make_engine

    imported = time.perf_counter()
    try:
        options = {k: v for k, v in spec["engine_options"].items() if v is not None}  # None: the default
        engine = make_engine(spec["engine"], EngineOptions(**options))
    except Exception as exc:  # noqa: BLE001 - any failure to build the engine makes it unavailable
        return {"error": f"{type(exc).__name__}: {exc}", "stage": "load"}
    loaded = time.perf_counter()
    cpu = _cpu_seconds()
    options = RenderOptions(fmt=spec["fmt"], quality=spec["quality"], overwrite=True,
                            threads=spec.get("engine_options", {}).get("threads") or 0)
    result = develop_file(Path(spec["src"]), Path(spec["out"]), engine, options)
    cpu = _cpu_seconds() - cpu
    seconds = {k: round(v, 4) for k, v in result.seconds.items()}
    return {"seconds": seconds, "total": round(sum(result.seconds.values()), 4), "cpu_s": round(cpu, 3),
            "import_s": round(imported - start, 4), "load_s": round(loaded - imported, 4),
            "engine_threads": getattr(engine, "threads", None), "provider": getattr(engine, "provider", None),
            "engine_stats": getattr(engine, "stats", None) or None,
            "output_bytes": result.output.stat().st_size, "warnings": result.warnings,
            "os_threads": _status_field("Threads")}


def _child_rawpy(spec: dict) -> dict:
    """rawpy/LibRaw with default parameters (AHD), then Pillow writes the output."""
    import numpy as np
    import rawpy
    from PIL import Image

    seconds = {}
    cpu = _cpu_seconds()
    t = time.perf_counter()
    raw = rawpy.imread(spec["src"])
    raw.unpack()
    seconds["decode"] = time.perf_counter() - t
    t = time.perf_counter()
    bits16 = spec["fmt"] in ("png16", "tiff16")
    rgb = raw.postprocess(output_bps=16) if bits16 else raw.postprocess()
    raw.close()
    seconds["reconstruct"] = time.perf_counter() - t
    t = time.perf_counter()
    out = Path(spec["out"])
    if spec["fmt"] == "jpeg":
        Image.fromarray(rgb).save(out, "JPEG", quality=spec["quality"], subsampling=0)
    elif spec["fmt"] == "png":
        Image.fromarray(rgb).save(out, "PNG")
    else:  # Pillow cannot write 16-bit RGB; use rawisp's writer (no EXIF)
        from rawisp.write import write_image

        write_image(out, np.ascontiguousarray(rgb), spec["fmt"], overwrite=True)
    seconds["write"] = time.perf_counter() - t
    cpu = _cpu_seconds() - cpu
    return {"seconds": {k: round(v, 4) for k, v in seconds.items()}, "total": round(sum(seconds.values()), 4),
            "cpu_s": round(cpu, 3), "output_bytes": out.stat().st_size, "os_threads": _status_field("Threads")}


def _child_cli(spec: dict) -> dict:
    """Run a peer's command line; its wall time, CPU time and peak memory from wait4()."""
    start = time.perf_counter()
    proc = subprocess.Popen(spec["argv"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    outs = sorted(Path(spec["out"]).parent.glob(Path(spec["out"]).stem + "*"))
    if proc.returncode != 0 or not outs:
        tail = output.decode(errors="replace").strip().splitlines()[-2:]
        return {"error": f"{Path(spec['argv'][0]).name} exited with status {proc.returncode}"
                         f"{'' if outs else ' and wrote nothing'}: {' / '.join(tail) or 'no output'}"}
    # ru_maxrss also counts this small helper's resident memory at the exec (a few MB)
    return {"seconds": {}, "total": round(wall, 4), "process": round(wall, 4),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 3), "peak_rss_bytes": usage.ru_maxrss * 1024,
            "output_bytes": outs[0].stat().st_size}


_CHILDREN = {"rawisp": _child_rawisp, "rawpy": _child_rawpy, "cli": _child_cli}


def _child_main(argv: Sequence[str]) -> int:
    spec, result_path = json.loads(argv[0]), Path(argv[1])
    try:
        result = _CHILDREN[spec["kind"]](spec)
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which goes on
        result = {"error": f"{type(exc).__name__}: {exc}", "stage": "develop"}
    result.setdefault("peak_rss_bytes", _self_peak())
    result_path.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
