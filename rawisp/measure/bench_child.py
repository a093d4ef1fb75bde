"""One bench measurement, in a fresh process: ``python -m rawisp.measure.bench_child SPEC_JSON RESULT_PATH``.

The child develops the file as the spec says (a rawisp engine as ``rawisp develop`` does in its
worker, rawpy's postprocess, or a peer's command line), measures itself and writes a JSON result:
per-stage seconds, CPU seconds, its thread count, and its peak resident memory (``VmHWM`` of
``/proc/self/status``, not ``ru_maxrss`` of a waited-for child: on Linux that also counts the
parent's resident memory at the fork/exec). It imports only what it measures.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

STAGES = ("decode", "normalise", "reconstruct", "render", "write")


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
    from rawisp.engines.registry import make_engine
    from rawisp.pipeline.compose import RenderOptions
    from rawisp.pipeline.files import develop_file
    from rawisp.stages.reconstruct import EngineOptions

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
            "runtime": getattr(engine, "runtime", None), "precision": getattr(engine, "precision", None),
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
        from rawisp.io.write import write_image

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


def main(argv: Sequence[str]) -> int:
    """Run the measurement ``argv[0]`` (JSON) describes and write its result to ``argv[1]``."""
    spec, result_path = json.loads(argv[0]), Path(argv[1])
    try:
        result = _CHILDREN[spec["kind"]](spec)
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which goes on
        result = {"error": f"{type(exc).__name__}: {exc}", "stage": "develop"}
    result.setdefault("peak_rss_bytes", _self_peak())
    result_path.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
