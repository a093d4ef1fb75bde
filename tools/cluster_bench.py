"""Benchmark: files per second of the local pool and of a Dask cluster of the same size.

    python tools/cluster_bench.py [--files 12] [--size 1200x800] [--engine classical] [--workers 2]
    python tools/cluster_bench.py --scheduler tcp://HOST:8786 --dir /shared/bench   # a real cluster

Writes ``--files`` synthetic DNGs (``rawisp.synth``, natural-looking content) to ``--dir`` (default a
temporary folder; on a real cluster a folder every worker sees at the same path), then develops
them to JPEG twice into fresh output folders: with the local pool (``rawisp develop -j WORKERS``'s
runner: one child process per file) and on a cluster: by default a local one of the same size
started here (``dask.distributed.LocalCluster``: WORKERS worker processes of one thread each), or
the one at ``--scheduler``. For each it prints the wall time, files per second, the mean seconds a
file spent developing (decode to write, measured inside the worker) and the overhead per file:
(slots x wall time - the sum of those seconds) / files, i.e. what each file cost on top of its
development (process start, model load, scheduling, transfers, idle slots at the end).
The cluster's own start is not timed; registering the batch's plugin is. Needs the cluster extra.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from rawisp import synth
from rawisp.batch import Job, Status, run_batch
from rawisp.pipeline import RenderOptions
from rawisp.reconstruct import EngineOptions
from rawisp.tasks import DevelopTask


def make_inputs(folder: Path, count: int, width: int, height: int) -> list[Path]:
    """``count`` DNGs of smooth colour fields, discs and fine texture with mid-level noise (reused if there)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"bench{i:03d}_{width}x{height}.dng"
        if not path.exists():
            rng = np.random.default_rng(i)
            y, x = np.mgrid[0:height, 0:width] / max(width, height)
            base = 0.5 + 0.3 * np.sin(2 * np.pi * (x * rng.uniform(1, 3) + y * rng.uniform(1, 3)))[..., None]
            srgb = np.clip(base * rng.uniform(0.4, 1.0, 3) + 0.08 * rng.standard_normal((height, width, 3)), 0, 1)
            synth.srgb_to_dng(path, srgb, noise=(1e-3, 5e-4), seed=i)
        paths.append(path)
    return paths


def report(name: str, outcomes, wall: float, slots: int) -> None:
    done = [o for o in outcomes if o.status == Status.DONE]
    if len(done) != len(outcomes):
        failed = [f"{o.job.source}: {o.message}" for o in outcomes if o.status != Status.DONE]
        sys.exit(f"{name}: {len(failed)} files not developed: {failed[:3]}")
    busy = sum(sum(o.seconds.values()) for o in done)
    print(f"{name:<28} {len(done):>5} {wall:>8.2f} {len(done) / wall:>8.2f} {busy / len(done):>10.3f} "
          f"{(slots * wall - busy) / len(done):>10.3f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=12)
    parser.add_argument("--size", default="1200x800", help="WIDTHxHEIGHT of the synthetic frames")
    parser.add_argument("--engine", choices=("classical", "learned"), default="classical")
    parser.add_argument("--workers", type=int, default=2, help="local pool size, and workers of the local cluster")
    parser.add_argument("--scheduler", help="use this cluster instead of starting a local one")
    parser.add_argument("--dir", type=Path, help="folder of the inputs and outputs (default: a temporary one)")
    args = parser.parse_args()
    from distributed import Client, LocalCluster

    from rawisp.cluster import run_on_cluster

    width, height = (int(v) for v in args.size.lower().split("x"))
    root = args.dir or Path(tempfile.mkdtemp(prefix="rawisp-cluster-bench-"))
    sources = make_inputs(root / "in", args.files, width, height)
    stamp = time.strftime("%Y%m%d-%H%M%S")

    def jobs(runner: str) -> list[Job]:
        return [Job(s, root / f"out-{runner}-{stamp}" / f"{s.stem}.jpg") for s in sources]

    def task(threads: int) -> DevelopTask:
        return DevelopTask(args.engine, EngineOptions(threads=threads), RenderOptions(threads=threads))

    print(f"{args.files} files of {width}x{height}, {args.engine} engine, JPEG q92, in {root}")
    print(f"{'runner':<28} {'files':>5} {'wall s':>8} {'files/s':>8} {'develop s':>10} {'overhead s':>10}")
    if args.scheduler is None:
        start = time.perf_counter()
        outcomes = run_batch(jobs("local"), task(max(1, (os.cpu_count() or 1) // args.workers)),
                             workers=args.workers, progress=False)
        report(f"local pool (-j {args.workers})", outcomes, time.perf_counter() - start, args.workers)
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, dashboard_address=None)
        address, name = cluster.scheduler_address, f"local Dask cluster ({args.workers}x1)"
    else:
        cluster, address, name = None, args.scheduler, f"cluster at {args.scheduler}"
    try:
        with Client(address) as client:
            slots = sum(w["nthreads"] for w in client.scheduler_info()["workers"].values())
        start = time.perf_counter()
        outcomes = run_on_cluster(jobs("cluster"), task(1), address, progress=False)
        report(name, outcomes, time.perf_counter() - start, slots)
    finally:
        if cluster is not None:
            cluster.close()


if __name__ == "__main__":
    main()
