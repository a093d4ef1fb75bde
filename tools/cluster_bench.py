"""Benchmark: files per second of the local pool and of a Dask cluster of the same size.

    python tools/cluster_bench.py [--files 12] [--size 1200x800] [--engine classical] [--workers 2]
    python tools/cluster_bench.py --scheduler tcp://HOST:8786 --dir /shared/bench   # a real cluster

Writes ``--files`` synthetic DNGs (``rawisp.measure.synth``: colour waves with grain and noise) to ``--dir`` (default a
temporary folder; on a real cluster a folder every worker sees at the same path), then develops
them to JPEG into fresh output folders with the local pool (``rawisp develop -j WORKERS``'s
runner: one child process per file) and on a cluster: by default a local one of the same size
started here (``dask.distributed.LocalCluster``: WORKERS worker processes of one thread each), or
the one at ``--scheduler``, ``--repeat`` times each, alternating (so a busy machine's load falls on
both alike). For each it prints the medians of files per second, of the mean seconds a file spent
developing (decode to write, measured inside the worker) and of the overhead per file:
(slots x wall time - the sum of those seconds) / files, i.e. what each file cost on top of its
development (process start, model load, scheduling, transfers, idle slots at the end).
The cluster's own start is not timed; registering the batch's plugin is. Needs the cluster extra.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

# as the command line does for itself and its workers (see rawisp/cli.py), before NumPy is imported
os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")

import numpy as np  # noqa: E402

from rawisp.batch.runner import Job, Status, run_batch
from rawisp.batch.tasks import DevelopTask
from rawisp.measure import synth
from rawisp.pipeline.compose import RenderOptions
from rawisp.stages.reconstruct import EngineOptions
from rawisp.threads import share_of_cpus


def make_inputs(folder: Path, count: int, width: int, height: int) -> list[Path]:
    """``count`` DNGs of tinted colour waves with grain and mid-level sensor noise (reused if there)."""
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


def measure(outcomes, wall: float, slots: int) -> tuple[float, float, float]:
    """(files per second, mean develop seconds per file, overhead seconds per file) of one run."""
    done = [o for o in outcomes if o.status == Status.DONE]
    if len(done) != len(outcomes):
        failed = [f"{o.job.source}: {o.message}" for o in outcomes if o.status != Status.DONE]
        sys.exit(f"{len(failed)} files not developed: {failed[:3]}")
    busy = sum(sum(o.seconds.values()) for o in done)
    return len(done) / wall, busy / len(done), (slots * wall - busy) / len(done)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=12)
    parser.add_argument("--size", default="1200x800", help="WIDTHxHEIGHT of the synthetic frames")
    parser.add_argument("--engine", choices=("classical", "learned"), default="classical")
    parser.add_argument("--workers", type=int, default=2, help="local pool size, and workers of the local cluster")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each, alternating; medians are reported")
    parser.add_argument("--scheduler", help="use this cluster instead of starting a local one")
    parser.add_argument("--dir", type=Path, help="folder of the inputs and outputs (default: a temporary one)")
    args = parser.parse_args()
    from distributed import Client, LocalCluster

    from rawisp.batch.cluster import run_on_cluster

    width, height = (int(v) for v in args.size.lower().split("x"))
    root = args.dir or Path(tempfile.mkdtemp(prefix="rawisp-cluster-bench-"))
    sources = make_inputs(root / "in", args.files, width, height)
    task = DevelopTask(args.engine, EngineOptions(threads=share_of_cpus(args.workers)),
                       RenderOptions(threads=share_of_cpus(args.workers)))  # the cluster sets its workers' own
    if args.scheduler is None:
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, dashboard_address=None)
        address, name = cluster.scheduler_address, f"local Dask cluster ({args.workers}x1)"
    else:
        cluster, address, name = None, args.scheduler, f"cluster at {args.scheduler}"
    with Client(address) as client:
        slots = sum(w["nthreads"] for w in client.scheduler_info()["workers"].values())
    runners = {name: lambda jobs: run_on_cluster(jobs, task, address, progress=False)}
    if args.scheduler is None:
        runners = {f"local pool (-j {args.workers})":
                   lambda jobs: run_batch(jobs, task, workers=args.workers, progress=False), **runners}
    print(f"{args.files} files of {width}x{height}, {args.engine} engine, JPEG q92, in {root}; "
          f"{args.repeat} runs of each, alternating")
    print(f"{'runner':<28} {'files/s':>8} {'develop s':>10} {'overhead s':>10}   (medians; per run: files/s)")
    runs: dict[str, list[tuple[float, float, float]]] = {runner: [] for runner in runners}
    try:
        for r in range(args.repeat):
            for runner, run in runners.items():
                jobs = [Job(s, root / f"out-{r}-{runner.split()[0]}" / f"{s.stem}.jpg") for s in sources]
                for job in jobs:
                    job.output.unlink(missing_ok=True)
                start = time.perf_counter()
                outcomes = run(jobs)
                runs[runner].append(measure(outcomes, time.perf_counter() - start,
                                            args.workers if runner.startswith("local pool") else slots))
    finally:
        if cluster is not None:
            cluster.close()
    for runner, figures in runs.items():
        rate, develop, overhead = (statistics.median(column) for column in zip(*figures))
        each = " ".join(f"{f[0]:.2f}" for f in figures)
        print(f"{runner:<28} {rate:>8.2f} {develop:>10.3f} {overhead:>10.3f}   ({each})")


if __name__ == "__main__":
    main()
