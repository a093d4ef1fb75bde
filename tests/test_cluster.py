"""The batch on a real Dask cluster: a scheduler and two workers started here on localhost.

Outputs equal the local pool's byte for byte; a killed worker loses nothing and leaves nothing
partial; crashes, hangs and memory hogs cost only their file, with the local batch's lines; a
file that kills every worker it touches fails with one line; Ctrl-C cancels what has not started.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from batch_tasks import Counting, Misbehave, Slow
from conftest import lines_naming, natural_image, part_files, read_image, summary

from rawisp.batch.runner import Job, run_batch
from rawisp.measure import synth

TESTS = Path(__file__).resolve().parent
needs_dask = pytest.mark.skipif(importlib.util.find_spec("distributed") is None,
                                reason="the cluster extra is not installed (pip install 'rawisp[cluster]')")


@dataclass
class Cluster:
    address: str
    client: object  # distributed.Client

    def worker_pids(self) -> dict[str, int]:
        """Process id of each worker (not its nanny), by worker address."""
        return self.client.run(os.getpid)

    def wait_for_two_workers(self) -> None:
        """Until two workers run and answer: one the scheduler still lists after its process died
        (a worker just killed, not yet noticed) would take a file and charge its death to it."""
        deadline = time.monotonic() + 120
        while True:
            self.client.wait_for_workers(2, timeout=120)
            try:
                if len(set(self.client.run(os.getpid, on_error="raise").values())) >= 2:
                    return
            except Exception:  # noqa: BLE001 - a listed worker that no longer answers: wait for its successor
                pass
            assert time.monotonic() < deadline, "timed out waiting for two live workers"
            time.sleep(0.2)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    """End a process this test started and everything in its process group (a nanny's worker)."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    """``dask scheduler`` and two ``dask worker`` (one thread each, with nannies) on free ports.

    The scheduler charges a dead worker's death to the file it was running only (worker-saturation
    1.0: no file waits on a worker) and gives up on a file after two workers died on it.
    """
    from distributed import Client

    logs = tmp_path_factory.mktemp("cluster_logs")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "1",
           "DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION": "1.0",
           "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    procs: list[subprocess.Popen] = []

    def start(name: str, *args: str) -> None:
        with open(logs / f"{name}.log", "wb") as log:
            procs.append(subprocess.Popen([sys.executable, "-m", *args], stdout=log, stderr=subprocess.STDOUT,
                                          env=env, cwd=logs, start_new_session=True))

    client = None
    try:
        start("scheduler", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port),
              "--no-dashboard")
        for i in (1, 2):
            start(f"worker{i}", "distributed.cli.dask_worker", address, "--nthreads", "1", "--host", "127.0.0.1",
                  "--no-dashboard", "--name", f"w{i}")
        deadline = time.monotonic() + 60
        while client is None:
            try:
                client = Client(address, timeout=5, set_as_default=False)
            except OSError:
                if time.monotonic() > deadline:
                    raise
        found = Cluster(address, client)
        found.wait_for_two_workers()
        yield found
    finally:
        if client is not None:
            client.close()
        for proc in reversed(procs):
            _stop(proc)


def _dngs(folder: Path, count: int, size: tuple[int, int] = (120, 160)) -> list[Path]:
    paths = []
    for i in range(count):
        path = folder / f"img{i}.dng"
        path.parent.mkdir(parents=True, exist_ok=True)
        synth.srgb_to_dng(path, natural_image(*size, seed=i), cfa=("RGGB", "BGGR", "GRBG")[i % 3],
                          orientation=(1, 6, 3)[i % 3], noise=(1e-3, 5e-4), seed=i)
        paths.append(path)
    return paths


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@needs_dask
def test_cluster_batch_equals_the_local_batch_byte_for_byte(cli, cluster, tmp_path, monkeypatch):
    _dngs(tmp_path / "in", 5)
    _dngs(tmp_path / "in" / "sub", 1)
    bad = tmp_path / "in" / "broken.dng"
    bad.write_bytes(b"\0" * 1000)
    local = cli("develop", "-r", "-j", "2", "--format", "png", tmp_path / "in", "-o", tmp_path / "local")
    remote = cli("develop", "-r", "--format", "png", tmp_path / "in", "-o", tmp_path / "remote",
                 "--scheduler", cluster.address)
    assert local.exit_code == remote.exit_code == 1
    assert summary(local) == summary(remote) == (6, 0, 1)
    assert lines_naming(remote.stderr, bad) == lines_naming(local.stderr, bad) != []
    made = _files(tmp_path / "remote")
    assert sorted(made) == [f"img{i}.png" for i in range(5)] + ["sub/img0.png"]
    assert made == _files(tmp_path / "local")
    assert read_image(tmp_path / "remote" / "img1.png").shape == (160, 120, 3)  # orientation 6: upright

    monkeypatch.setenv("RAWISP_SCHEDULER", cluster.address)  # the same through the environment
    again = cli("develop", "-r", "--format", "png", tmp_path / "in", "-o", tmp_path / "remote")
    assert summary(again) == (0, 6, 1) and again.exit_code == 1
    redo = cli("develop", "-r", "--format", "png", "--overwrite", tmp_path / "in" / "sub", "-o", tmp_path / "remote")
    assert summary(redo) == (1, 0, 0) and redo.exit_code == 0
    assert _files(tmp_path / "remote") == made
    assert not part_files(tmp_path)


@needs_dask
def test_each_worker_keeps_one_sandbox_for_many_files(cluster, tmp_path):
    from rawisp.batch.cluster import run_on_cluster

    jobs = [Job(tmp_path / f"f{i}.dng", tmp_path / "out" / f"f{i}.png") for i in range(8)]
    outcomes = run_on_cluster(jobs, Counting(), cluster.address, progress=False)
    assert [o.status for o in outcomes] == ["done"] * 8
    counts: dict[str, list[int]] = {}
    for outcome in outcomes:
        pid, count = outcome.message.split()
        counts.setdefault(pid, []).append(int(count))
    assert len(counts) <= 2  # one sandbox per worker thread (both workers have one): 8 files, 2 processes at most
    for seen in counts.values():
        assert sorted(seen) == list(range(1, len(seen) + 1))  # each process ran its files one after another
    assert not _sandboxes()  # all ended with the batch


def test_batch_tasks_build_their_engine_once_per_process(tmp_path, monkeypatch):
    """What a sandbox keeps: the tasks of rawisp develop reuse the engine they built."""
    from rawisp.batch.tasks import DevelopTask
    from rawisp.engines import registry as engines
    from rawisp.engines.learned import Learned
    from rawisp.pipeline.compose import RenderOptions
    from rawisp.stages.reconstruct import EngineOptions

    engines._cached_engine.cache_clear()
    loads = []
    real = Learned.load.__func__
    monkeypatch.setattr(Learned, "load", classmethod(lambda cls, options: loads.append(options) or real(cls, options)))
    task = DevelopTask("learned", EngineOptions(tile=128), RenderOptions(fmt="png"))
    for source in _dngs(tmp_path / "in", 2, size=(40, 48)):
        assert task(Job(source, tmp_path / "out" / f"{source.stem}.png")).status == "done"
    assert len(loads) == 1 and len(list((tmp_path / "out").iterdir())) == 2


@needs_dask
def test_crashes_hangs_and_hogs_cost_only_their_file_with_the_local_lines(cluster, tmp_path):
    from rawisp.batch.cluster import run_on_cluster

    kinds = ["segv", "abort", "exit", "bug", "hang", "partial", "reserve", "ok1", "ok2"]
    before = cluster.worker_pids()

    def outcomes(run, out: Path) -> dict[str, tuple[str, str]]:
        jobs = [Job(tmp_path / f"{kind}.dng", out / f"{kind}.png") for kind in kinds]
        return {o.job.source.stem: (o.status, o.message) for o in run(jobs)}

    task = Misbehave()
    local = outcomes(lambda jobs: run_batch(jobs, task, workers=2, timeout=4, memory_bytes=2 << 30, progress=False),
                     tmp_path / "local")
    remote = outcomes(lambda jobs: run_on_cluster(jobs, task, cluster.address, timeout=4, max_memory=2.0,
                                                  progress=False), tmp_path / "remote")
    assert remote == local
    assert remote["segv"] == ("failed", "decoder crashed (SIGSEGV); file is probably corrupt")
    assert remote["hang"] == ("failed", "timed out after 4 s (see --timeout)")
    assert remote["reserve"] == ("failed", "out of memory (limit 2.0 GiB, see --max-memory)")
    assert remote["ok1"][0] == remote["ok2"][0] == "done"
    assert sorted(_files(tmp_path / "remote")) == ["ok1.png", "ok2.png"]
    assert not part_files(tmp_path)
    assert cluster.worker_pids() == before  # no worker died for any of it


@needs_dask
def test_a_worker_killed_mid_file_leaves_no_partial_and_its_file_is_done_elsewhere(cluster, tmp_path):
    from rawisp.batch.cluster import run_on_cluster

    cluster.wait_for_two_workers()
    out = tmp_path / "out"
    out.mkdir()
    jobs = [Job(tmp_path / f"s{i}.dng", out / f"s{i}.png") for i in range(4)]
    result: list = []
    thread = threading.Thread(target=lambda: result.append(run_on_cluster(jobs, Slow(3.0), cluster.address,
                                                                          progress=False)))
    thread.start()
    _wait_for(lambda: len(part_files(out)) == 2, 60)  # both workers half-way through a file
    victim_address, victim = next(iter(cluster.worker_pids().items()))
    os.kill(victim, signal.SIGKILL)
    thread.join(120)
    assert not thread.is_alive()
    [outcomes] = result
    assert sorted((o.job.output.name, o.status) for o in outcomes) == [(f"s{i}.png", "done") for i in range(4)]
    assert sorted(_files(out)) == [f"s{i}.png" for i in range(4)]
    assert all(read_image(out / f"s{i}.png").shape == (8, 8, 3) for i in range(4))
    assert not part_files(tmp_path)
    assert victim not in cluster.worker_pids().values()  # it did die; a fresh worker took its place


@needs_dask
def test_killing_a_worker_mid_batch_loses_nothing(cli, cluster, tmp_path):
    """The CLI on real files: a worker dies mid-batch; the outputs are the local batch's, all of them."""
    cluster.wait_for_two_workers()
    _dngs(tmp_path / "in", 4, size=(320, 480))
    local = cli("develop", "-j", "2", "--format", "png", tmp_path / "in", "-o", tmp_path / "local")
    assert summary(local) == (4, 0, 0)
    out = tmp_path / "remote"
    proc = subprocess.Popen([sys.executable, "-m", "rawisp", "develop", "--format", "png", str(tmp_path / "in"),
                             "-o", str(out), "--scheduler", cluster.address], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: out.is_dir() and any(p.suffix == ".png" for p in out.iterdir()), 120)
    victim_address, victim = next(iter(cluster.worker_pids().items()))
    os.kill(victim, signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    # a file finished by the killed worker but not yet reported is developed again and found there
    assert "4 developed, 0 skipped, 0 failed" in stdout or "3 developed, 1 skipped, 0 failed" in stdout
    assert _files(out) == _files(tmp_path / "local")
    assert not part_files(tmp_path)


@needs_dask
def test_ctrl_c_cancels_what_has_not_started(cluster, tmp_path):
    cluster.wait_for_two_workers()
    _dngs(tmp_path / "in", 6, size=(320, 480))
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "rawisp", "develop", "--format", "png", str(tmp_path / "in"),
                             "-o", str(out), "--scheduler", cluster.address], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: out.is_dir() and any(p.suffix == ".png" for p in out.iterdir()), 120)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("rawisp: interrupted: ") and last.endswith(
        "not done; finished outputs are kept, unfinished ones were removed")
    _wait_for(lambda: not _sandboxes() and not any(cluster.client.processing().values()), 30)
    kept = sorted(_files(out))
    time.sleep(2)
    assert 1 <= len(kept) < 6 and kept == sorted(_files(out))  # nothing went on after the interruption
    assert not part_files(tmp_path)
    for name in kept:
        assert read_image(out / name).shape in ((480, 320, 3), (320, 480, 3))


@needs_dask
def test_a_file_that_kills_every_worker_fails_with_one_line(cluster, tmp_path):
    from rawisp.batch.cluster import run_on_cluster

    cluster.wait_for_two_workers()
    jobs = [Job(tmp_path / f"{kind}.dng", tmp_path / "out" / f"{kind}.png") for kind in ("killworker", "ok1", "ok2")]
    outcomes = {o.job.source.stem: o for o in run_on_cluster(jobs, Misbehave(), cluster.address, progress=False)}
    assert (outcomes["killworker"].status, outcomes["killworker"].message) == (
        "failed", "2 Dask workers died while developing it (distributed.scheduler.allowed-failures); the file "
                  "probably crashes or exhausts the worker")
    # a result held by a worker that died before the client gathered it is developed again, and its
    # output found there: "skipped" (the messages are compared too, so that a failure says why)
    fine = [("done", ""), ("skipped", "output exists")]
    assert {stem: (outcomes[stem].status, outcomes[stem].message) for stem in ("ok1", "ok2")} in [
        {"ok1": a, "ok2": b} for a in fine for b in fine]
    assert sorted(_files(tmp_path / "out")) == ["ok1.png", "ok2.png"]
    cluster.wait_for_two_workers()  # the nannies brought the workers back


def test_scheduler_needs_the_extra_and_a_reachable_scheduler(cli, tmp_path, monkeypatch):
    [source] = _dngs(tmp_path / "in", 1)
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if the extra were not installed
    monkeypatch.delitem(sys.modules, "rawisp.batch.cluster", raising=False)
    result = cli("develop", source, "-o", tmp_path / "out", "--scheduler", "tcp://127.0.0.1:1")
    assert result.exit_code == 1
    assert result.stderr.startswith("rawisp: --scheduler needs the cluster extra (pip install 'rawisp[cluster]')")
    assert not (tmp_path / "out" / "img0.jpg").exists()


@needs_dask
def test_unreachable_scheduler_is_one_line(cli, tmp_path):
    import dask

    [source] = _dngs(tmp_path / "in", 1)
    address = f"tcp://127.0.0.1:{_free_port()}"
    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):  # Dask's own setting (30 s)
        result = cli("develop", "--engine", "classical", source, "-o", tmp_path / "out", "--scheduler", address)
    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"rawisp: cannot reach the Dask scheduler at {address} (")


def _sandboxes() -> list[int]:
    """Process ids of the ``rawisp.batch.sandbox`` processes running on this machine."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and b"rawisp.batch.sandbox" in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _wait_for(condition, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)
