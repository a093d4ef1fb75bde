"""The batch on a Dask cluster (``rawisp develop --scheduler tcp://HOST:8786``; the ``cluster`` extra).

The submitting machine plans the jobs as for the local batch, skips files whose outputs exist, and
sends one Dask future per remaining file; it shows the progress bar and gathers the same Outcomes,
so the summary, error lines and exit codes are those of the local batch. Inputs and the output
folder must be at the same paths on the submitting machine and on every worker (a shared
filesystem).

On each worker a plugin (:class:`SandboxPlugin`, registered for this batch and removed at its end)
keeps one :class:`rawisp.batch.sandbox.Sandbox` per worker thread: a child process that keeps the engine
(the model is loaded once per worker thread, not per file) and gives every file the local batch's
safety: a crash, a hang (``--timeout``) or runaway memory (``--max-memory``) costs that file alone,
with the local batch's line, and never a partial output.

Dask's own resilience covers the worker itself: when a worker dies (``kill -9``, a lost machine),
the scheduler runs its files again on other workers; a file that was running on
``distributed.scheduler.allowed-failures`` + 1 workers that all died (3 + 1 by default) fails with
one line instead of looping. Ctrl-C cancels the files not yet started and stops the running ones
(their temporary files removed), as in the local batch.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import replace

from distributed import Client, KilledWorker, WorkerPlugin, as_completed, get_worker
from distributed.comm import get_address_host

from rawisp.batch.runner import (BatchError, Finished, Job, Outcome, Status, check_outputs, default_memory_gib,
                                 remove_stale_outputs)
from rawisp.batch.sandbox import Sandbox, Task
from rawisp.threads import share_of_cpus


class SandboxPlugin(WorkerPlugin):
    """Per worker: sandboxes for one batch's task, with this machine's memory limit and threads."""

    def __init__(self, name: str, task: Task, timeout: float, max_memory: float | None,
                 slots_per_host: dict[str, int]) -> None:
        self.name = name
        self.task = task
        self.timeout = timeout
        self.max_memory = max_memory
        self.slots_per_host = slots_per_host

    def setup(self, worker) -> None:
        # the machine's CPUs and memory are shared by every worker thread on it, as -j shares them locally
        slots = self.slots_per_host.get(get_address_host(worker.address), worker.state.nthreads)
        memory = self.max_memory if self.max_memory is not None else default_memory_gib(slots)
        self.memory_bytes = int(memory * 2**30)
        self.threads = share_of_cpus(slots)
        self.idle: list[Sandbox] = []
        self.started: list[Sandbox] = []
        self.lock = threading.Lock()
        self.closed = False

    def teardown(self, worker) -> None:
        with self.lock:
            self.closed = True
            sandboxes = list(self.started)
        for sandbox in sandboxes:  # also those running a file (Ctrl-C on the submitting machine)
            sandbox.close()

    def run(self, job: Job) -> Outcome:
        """Develop ``job`` in an idle sandbox of this worker (a new one when all are busy)."""
        with self.lock:
            if self.closed:
                return Outcome(job, Status.FAILED, "the batch was stopped")
            if self.idle:
                sandbox = self.idle.pop()
            else:
                sandbox = Sandbox(_with_threads(self.task, self.threads), self.memory_bytes)
                self.started.append(sandbox)
        try:
            return sandbox.run(job, self.timeout)
        finally:
            with self.lock:
                self.idle.append(sandbox)


def develop_on_worker(job: Job, plugin: str) -> Outcome:
    """The Dask task: one file, in a sandbox of the batch's plugin on this worker."""
    return get_worker().plugins[plugin].run(job)


def run_on_cluster(jobs: list[Job], task: Task, scheduler: str, *, timeout: float = 900.0,
                   max_memory: float | None = None, overwrite: bool = False, progress: bool = True,
                   report: Callable[[Outcome], None] = lambda o: None,
                   notice: Callable[[str], None] = lambda line: None) -> list[Outcome]:
    """Run ``task`` on every job on the workers of the Dask cluster at ``scheduler``.

    As :func:`rawisp.batch.runner.run_batch`: jobs whose outputs exist are skipped unless ``overwrite``
    (those whose output's name a file rawisp did not write has taken fail),
    ``report`` is called for every finished job, Ctrl-C raises KeyboardInterrupt after cancelling
    what has not started and stopping what runs. ``max_memory``: GiB of address space per file
    (default: 80% of each worker machine's memory shared by its worker threads, at least 4).
    Raises BatchError when the scheduler cannot be reached.
    """
    try:
        client = Client(scheduler, set_as_default=False)  # gives up after distributed.comm.timeouts.connect
    except (OSError, TimeoutError, ValueError) as exc:
        raise BatchError(f"cannot reach the Dask scheduler at {scheduler} ({exc})") from None
    with client:
        workers = client.scheduler_info()["workers"].values()
        if not workers:
            notice(f"the cluster at {scheduler} has no workers yet; files wait for one")
        slots: dict[str, int] = {}
        for worker in workers:
            slots[worker["host"]] = slots.get(worker["host"], 0) + worker["nthreads"]
        name = f"rawisp-{uuid.uuid4().hex[:12]}"
        client.register_plugin(SandboxPlugin(name, task, timeout, max_memory, slots), name=name)
        finish = Finished(len(jobs), progress, report)
        futures = {}
        remove_stale_outputs(jobs)
        listings: dict = {}
        try:
            for i, job in enumerate(jobs):
                decided = check_outputs(job, overwrite, listings)
                if decided is not None:
                    finish(decided)
                    continue
                future = client.submit(develop_on_worker, job, name, key=f"rawisp-develop-{i}-{name}", pure=False)
                futures[future] = job
            # results are gathered as each file ends: one held on a worker that dies before it is
            # gathered is lost to Dask, which develops the file again (and finds its output there)
            for future, result in as_completed(futures, loop=client.loop, with_results=True, raise_errors=False):
                finish(result if future.status == "finished" else _failure(future, futures[future]))
        except KeyboardInterrupt:
            client.cancel(list(futures))
            raise
        finally:
            finish.bar.close()
            client.unregister_worker_plugin(name)  # ends every sandbox (running files' temporaries removed)
    return finish.outcomes


def _failure(future, job: Job) -> Outcome:
    """The one line for a file whose future failed: one Dask gave up on, or a bug."""
    error = future.exception()
    if isinstance(error, KilledWorker):
        return Outcome(job, Status.FAILED, f"{error.allowed_failures + 1} Dask workers died while developing it "
                                           "(distributed.scheduler.allowed-failures); the file probably crashes "
                                           "or exhausts the worker")
    text = " ".join(str(error).split())
    return Outcome(job, Status.FAILED, f"internal error: {type(error).__name__}: {text[:500]}")


def _with_threads(task: Task, threads: int) -> Task:
    """``task`` with the engine and render threads of this worker's machine (the tasks of
    :mod:`rawisp.batch.tasks` carry them in ``engine_options`` and ``render``)."""
    changes = {field: replace(getattr(task, field), threads=threads)
               for field in ("engine_options", "render") if hasattr(task, field)}
    return replace(task, **changes) if changes else task
