"""A long-lived child process that develops files one after another, for a cluster worker.

The local batch (:mod:`rawisp.batch.runner`) develops every file in a fresh child, so a LibRaw crash, a hang
or runaway memory costs only that file. A Dask worker gets the same safety from a sandbox: a child
process started once (``python -m rawisp.batch.sandbox``, not forked from the worker, whose threads a
fork would copy half-way), fed one job at a time over a socket. It keeps its engine between files,
so the model is loaded once, not per file. When a file crashes or overruns the sandbox, the
worker reports that file as the local batch does and starts a fresh sandbox for the next one.
The sandbox holds the memory limit, ends itself (removing its temporary output) when its worker
dies, and runs in a session of its own, so Ctrl-C on the worker's terminal reaches the worker only
(which ends its sandboxes as it stops).
"""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection

from rawisp.batch.runner import Job, Outcome, Status, _crash_reason, _remove_partial, exit_with_parent, run_task

Task = Callable[[Job], Outcome]


class Sandbox:
    """One sandbox process, started on the first job and again after a crash or a timeout.

    ``run`` is called from one thread at a time; ``close`` may be called from another meanwhile
    (the batch stopped): it kills the process, and the job in hand fails.
    """

    def __init__(self, task: Task, memory_bytes: int = 0) -> None:
        self.task = task
        self.memory_bytes = memory_bytes
        self.process: subprocess.Popen | None = None
        self.conn: Connection | None = None
        self.job: Job | None = None
        self.closed = False
        self.lock = threading.Lock()

    def run(self, job: Job, timeout: float) -> Outcome:
        """Develop ``job`` in the sandbox; a crash or overrun ends as a failed Outcome, like the local batch."""
        with self.lock:
            if self.closed:
                return Outcome(job, Status.FAILED, "the batch was stopped")
            if self.process is None:
                self._start()
            process, conn, self.job = self.process, self.conn, job
        try:
            conn.send(job)
            if conn.poll(timeout):  # True on an answer, and at the end of the stream (a crash)
                outcome = conn.recv()
                with self.lock:
                    self.job = None
                return outcome
        except (EOFError, OSError):  # the sandbox died, on this file or (killed from outside) before it
            process.wait()
            reason = _crash_reason(process.returncode)
        else:
            process.kill()
            process.wait()
            reason = f"timed out after {timeout:g} s (see --timeout)"
        self._discard(process)
        return Outcome(job, Status.FAILED, reason)

    def close(self) -> None:
        """Kill the process, if any, and remove the temporary output of the job it had in hand."""
        with self.lock:
            self.closed = True
            process = self.process
        if process is not None:
            process.kill()
            process.wait()
            self._discard(process)

    def _discard(self, process: subprocess.Popen) -> None:
        """Forget the ended ``process`` (once); remove what it left of the job it had in hand (its
        temporary files, no longer locked by their writer)."""
        with self.lock:
            if self.process is not process:
                return
            job = self.job
            self.conn.close()
            self.process = self.conn = self.job = None
        for output in job.outputs if job is not None else ():
            _remove_partial(output)

    def _start(self) -> None:
        ours, theirs = socket.socketpair()
        # the sandbox imports what its worker imports (tasks are pickled by reference)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        env.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")  # as rawisp.cli sets it for its children (see there)
        self.process = subprocess.Popen([sys.executable, "-m", "rawisp.batch.sandbox", str(theirs.fileno())],
                                        pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, env=env, start_new_session=True)
        theirs.close()
        self.conn = Connection(ours.detach())
        self.conn.send((self.task, self.memory_bytes))


def serve(conn: Connection) -> None:
    """The sandbox's side: develop each job received until the worker closes the connection."""
    task, memory_bytes = conn.recv()  # a task that cannot be unpickled here says why in the worker's log
    # LibRaw prints its own diagnostics to stderr; the worker reports one line per file instead
    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
    if memory_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    exit_with_parent(conn)  # removes the temporary file it is writing, when the worker dies
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        for output in job.outputs:  # what a sandbox killed on this file before left behind
            _remove_partial(output)
        conn.send(run_task(task, job, memory_bytes))


if __name__ == "__main__":
    serve(Connection(int(sys.argv[1])))
