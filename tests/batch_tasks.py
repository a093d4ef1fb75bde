"""Batch tasks that misbehave on purpose, for the crash-containment tests of ``rawisp.batch.runner``.

They live in a module of their own (not in a test file) so the batch's forkserver children can
unpickle them by name: the job's source file name says what the task does in the child.
"""

from __future__ import annotations

import fcntl
import os
import resource
import signal
import time
from dataclasses import dataclass

import numpy as np

from rawisp.batch.runner import Job, Outcome, Status
from rawisp.io.write import write_image

GIB = 1 << 30


@dataclass
class Misbehave:
    """Crash, hang, hog memory or fail as the job's source stem says; else write a small picture."""

    grow_cap: int = 3 * GIB  # "grow" stops here and reports "done" if no memory limit stopped it

    def __call__(self, job: Job) -> Outcome:
        kind = job.source.stem
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core files from the crashes below
        if kind == "segv":
            os.kill(os.getpid(), signal.SIGSEGV)
        elif kind == "abort":
            os.abort()
        elif kind == "reserve":  # 3 GiB of address space, never touched: fails only under RLIMIT_AS
            block = np.empty(3 * GIB, np.uint8)
            return Outcome(job, Status.DONE, f"reserved {block.nbytes} bytes: no memory limit")
        elif kind == "grow":  # runaway memory, touched 64 MiB at a time
            chunks, total = [], 0
            while total < self.grow_cap:
                chunks.append(np.ones(64 << 20, np.uint8))
                total += chunks[-1].nbytes
            return Outcome(job, Status.DONE, f"grew to {total} bytes: no memory limit")
        elif kind == "onnx":  # how onnxruntime reports a failed allocation
            raise RuntimeError("[ONNXRuntimeError] : 1 : FAIL : bfc_arena.cc:360 Failed to allocate memory "
                               "for requested buffer of size 150994944\n")
        elif kind == "hang":
            time.sleep(3600)
        elif kind == "exit":
            os._exit(3)
        elif kind == "bug":
            raise ValueError("first line\nsecond line")
        elif kind == "killworker":  # kills the process that runs it (a cluster worker's sandbox: the worker)
            os.kill(os.getppid(), signal.SIGKILL)
            time.sleep(60)
        elif kind == "partial":  # dies in the middle of writing its output
            job.output.parent.mkdir(parents=True, exist_ok=True)
            (job.output.parent / f".{job.output.name}.dead0001.part").write_bytes(b"half a picture")
            os.kill(os.getpid(), signal.SIGSEGV)
        write_image(job.output, np.full((8, 8, 3), 128, np.uint8), "png")
        return Outcome(job, Status.DONE)


_calls = 0  # jobs this process has run (Counting)


@dataclass
class Counting:
    """Write a small picture and say which process developed it and how many jobs it had run."""

    def __call__(self, job: Job) -> Outcome:
        global _calls
        _calls += 1
        write_image(job.output, np.full((8, 8, 3), 64, np.uint8), "png")
        return Outcome(job, Status.DONE, f"{os.getpid()} {_calls}")


@dataclass
class Slow:
    """Spend ``seconds`` half-way through writing the output (a temporary file beside it), then
    finish it: a worker killed meanwhile leaves a partial file unless something removes it."""

    seconds: float = 3.0

    def __call__(self, job: Job) -> Outcome:
        # named and locked as rawisp.io.write names and locks its temporary files while writing them
        part = job.output.parent / f".{job.output.name}.{os.getpid()}.5105510a.part"
        with open(part, "wb") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            fh.write(b"half a picture")
            fh.flush()
            time.sleep(self.seconds)
            write_image(job.output, np.full((8, 8, 3), 200, np.uint8), "png")
            part.unlink()
        return Outcome(job, Status.DONE, str(os.getpid()))


@dataclass
class InParts:
    """Report four parts of a frame done, as an engine does per tile, then write a small picture."""

    def __call__(self, job: Job) -> Outcome:
        from rawisp.stages.reconstruct import report_progress

        for done in range(1, 5):
            report_progress(done, 4)
            time.sleep(0.05)
        write_image(job.output, np.full((8, 8, 3), 128, np.uint8), "png")
        return Outcome(job, Status.DONE)
