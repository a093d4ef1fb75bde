"""Big-frame stress check: develop a synthetic 100 MP DNG with ``rawisp develop`` and report the
peak memory of the worker that developed it, and the wall time.

    python tools/stress.py [--size 12000x8400] [--engine learned] [--limit-gib 4] [--check]

The DNG (16-bit RGGB, 14-bit levels, a procedural scene with gradients, waves, discs and noise) is
written once with ``rawisp.measure.synth.write_dng`` to ``/tmp/rawisp-stress-WxH.dng`` and reused. The
command line runs as a child process exactly as a user would run it; this script samples ``/proc``
every 20 ms for every process of that run and keeps, per process, the kernel's own high-water mark
of resident memory (``VmHWM``, exact whatever the sampling rate, read until the process exits).
The worker is the process that develops the file (a child of the batch's fork server); the report
also gives the batch process itself and the largest sum of resident memory over the whole run.

``/usr/bin/time -v`` is no substitute: its "Maximum resident set size" is ``ru_maxrss`` of the
command and of the descendants it waited for, and the fork server and its workers are not waited
for by ``rawisp``, so it reports only the batch process (about 100 MB).

With ``--check`` the exit status is 1 when the worker's peak exceeds ``--limit-gib``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

GIB = 1 << 30


def make_dng(path: Path, width: int, height: int) -> None:
    """A procedural RGGB mosaic written in one go (peak about 4 GB for 100 MP, once)."""
    from rawisp.measure import synth

    rng = np.random.default_rng(0)
    raw = np.empty((height, width), np.float64)
    x = np.arange(width, dtype=np.float64)
    cfa = synth.cfa_channels("RGGB")
    discs = [(rng.uniform(0, height), rng.uniform(0, width), rng.uniform(100, 900), rng.uniform(0.05, 0.9, 3))
             for _ in range(40)]
    for y0 in range(0, height, 512):
        y = np.arange(y0, min(height, y0 + 512), dtype=np.float64)[:, None]
        base = 0.05 + 0.5 * (x / width) * (0.4 + 0.6 * y / height)
        waves = 0.08 * np.sin(x / (7 + y / 900)) * np.cos(y / 11.0)
        strip = np.empty((len(y), width))
        for c in range(3):  # each CFA colour gets its own tint of the scene
            value = base * (0.6 + 0.2 * c) + waves
            for cy, cx, r, colour in discs:
                if abs(cy - y0) < r + 512:
                    value = np.where((y - cy) ** 2 + (x - cx) ** 2 < r * r, colour[c], value)
            mask = cfa[(y.astype(int) % 2), (x.astype(int) % 2)[None]] == c
            strip[mask] = np.broadcast_to(value, strip.shape)[mask]
        strip += rng.normal(0, 0.004, strip.shape)
        raw[y0:y0 + len(y)] = strip
    part = path.with_name(f".{path.name}.{os.getpid()}.part")
    synth.write_dng(part, raw, cfa="RGGB", black=512, white=16383, noise=(8e-5, 4e-4), model="Stress 100MP")
    os.replace(part, path)


def _status(pid: int) -> dict[str, int]:
    """VmHWM and VmRSS (bytes) and PPid of a process, {} once it is gone."""
    fields = {}
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key in ("VmHWM", "VmRSS"):
                    fields[key] = int(value.split()[0]) * 1024
                elif key == "PPid":
                    fields[key] = int(value)
    except (OSError, ValueError):
        return {}
    return fields


def _descendants(root: int) -> set[int]:
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            ppid = _status(int(entry)).get("PPid")
            if ppid is not None:
                parents[int(entry)] = ppid
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        children = [p for p, pp in parents.items() if pp == pid and p not in found]
        found.update(children)
        todo += children
    return found


def measure(cmd: list[str]) -> dict:
    """Run ``cmd``; peak VmHWM per process of its tree, the largest sum of VmRSS, wall time."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peaks: dict[int, int] = {}
    names: dict[int, str] = {}
    total_peak = 0
    tree: set[int] = set()
    last_scan = 0.0
    while proc.poll() is None:
        now = time.perf_counter()
        if now - last_scan > 0.5:  # new processes appear rarely: rescan the tree twice a second
            tree = _descendants(proc.pid) | {proc.pid}
            last_scan = now
        total = 0
        for pid in tree:
            status = _status(pid)
            if status:
                peaks[pid] = max(peaks.get(pid, 0), status.get("VmHWM", 0))
                total += status.get("VmRSS", 0)
                if pid not in names:
                    try:
                        names[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:80]
                    except OSError:
                        names[pid] = "?"
        total_peak = max(total_peak, total)
        time.sleep(0.02)
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - start
    batch = peaks.pop(proc.pid, 0)
    workers = {pid: peak for pid, peak in peaks.items() if "forkserver" in names.get(pid, "")}
    return {"returncode": proc.returncode, "wall_s": wall, "stdout": stdout, "stderr": stderr,
            "batch_peak": batch, "worker_peak": max(workers.values(), default=0), "tree_peak": total_peak,
            "processes": {f"{pid} {'worker' if pid in workers and peak == max(workers.values()) else ''} "
                          f"{names.get(pid, '?')}": peak for pid, peak in peaks.items()}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="12000x8400", help="WIDTHxHEIGHT of the synthetic frame")
    parser.add_argument("--engine", default="learned", choices=("learned", "classical"))
    parser.add_argument("--format", default="jpeg")
    parser.add_argument("--tile", type=int, default=None, help="learned engine tile (default: rawisp's)")
    parser.add_argument("--limit-gib", type=float, default=4.0)
    parser.add_argument("--check", action="store_true", help="exit 1 when the worker's peak exceeds the limit")
    parser.add_argument("--dir", type=Path, default=Path("/tmp"), help="where the DNG and the output go")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    src = args.dir / f"rawisp-stress-{width}x{height}.dng"
    if not src.is_file():
        print(f"writing {src} ({width * height / 1e6:.0f} MP, once) ...", flush=True)
        t = time.perf_counter()
        make_dng(src, width, height)
        print(f"  {src.stat().st_size / 1e6:.0f} MB in {time.perf_counter() - t:.0f} s", flush=True)
    out = args.dir / f"rawisp-stress-out-{args.engine}"
    cmd = [sys.executable, "-m", "rawisp", "develop", str(src), "-o", str(out), "--engine", args.engine,
           "--format", args.format, "--overwrite", "-q", "--timeout", "7200"]
    if args.tile:
        cmd += ["--tile", str(args.tile)]
    print("running:", " ".join(cmd), flush=True)
    result = measure(cmd)
    print(result["stdout"].strip())
    if result["stderr"].strip():
        print(result["stderr"].strip())
    outputs = sorted(out.glob(f"{src.stem}.*"))
    if outputs:
        from PIL import Image

        Image.MAX_IMAGE_PIXELS = None
        with Image.open(outputs[0]) as im:
            im.load()
            print(f"output {outputs[0]}: {im.size[0]}x{im.size[1]}, {outputs[0].stat().st_size / 1e6:.1f} MB, "
                  f"decodes completely")
    mp = width * height / 1e6
    print(f"frame {width}x{height} ({mp:.1f} MP), engine {args.engine}: wall {result['wall_s']:.1f} s "
          f"({mp / result['wall_s']:.2f} MP/s), exit status {result['returncode']}")
    print(f"peak resident memory: worker {result['worker_peak'] / GIB:.2f} GiB, batch process "
          f"{result['batch_peak'] / GIB:.2f} GiB, all processes together {result['tree_peak'] / GIB:.2f} GiB")
    for name, peak in result["processes"].items():
        print(f"  {peak / GIB:6.2f} GiB  {name}")
    ok = result["returncode"] == 0 and 0 < result["worker_peak"] <= args.limit_gib * GIB
    print(f"{'OK' if ok else 'FAILED'}: worker peak {'within' if ok else 'above'} {args.limit_gib:g} GiB"
          if result["returncode"] == 0 else "FAILED: the develop run failed")
    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
