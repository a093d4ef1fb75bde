"""The batch runner: many inputs, one child process per file, errors that never stop the batch.

Each file is developed in its own child process (forked from a clean fork server, so no
OpenMP or onnxruntime threads of the parent are copied), so a crash inside LibRaw (segfault, abort,
runaway memory) or a hang costs only that file: the parent reports it and goes on. Outputs are
written atomically by the child; the parent removes the temporary file of a child it had to kill,
and before any work the temporary files that killed runs left in the output folders (never one a
live process is writing: see :func:`rawisp.io.write.remove_stale_parts`).
"""

from __future__ import annotations

import glob
import multiprocessing as mp
import os
import resource
import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from enum import StrEnum
from multiprocessing.connection import wait
from pathlib import Path

from tqdm import tqdm

from rawisp.io.decode import DecodeError
from rawisp.io.write import (ForeignFileError, case_folded_names, claim_output, discard_own_parts, fold_case,
                             remove_stale_parts)
from rawisp.stages.reconstruct import set_progress_hook

# suffixes picked up when a folder is given (files named explicitly are always tried)
RAW_SUFFIXES = {
    ".3fr", ".ari", ".arw", ".bay", ".cap", ".cr2", ".cr3", ".crw", ".dcr", ".dcs", ".dng", ".drf", ".eip",
    ".erf", ".fff", ".gpr", ".iiq", ".k25", ".kdc", ".mdc", ".mef", ".mos", ".mrw", ".nef", ".nrw", ".orf",
    ".pef", ".ptx", ".pxn", ".r3d", ".raf", ".raw", ".rw2", ".rwl", ".rwz", ".sr2", ".srf", ".srw", ".x3f",
}


class BatchError(Exception):
    """A problem with the batch as a whole, found before any work starts."""


@dataclass
class Job:
    """One input file and where its output goes (``also``: further outputs the same task writes
    from one decode, e.g. ``develop --engine both``)."""

    source: Path
    output: Path
    also: tuple[Path, ...] = ()

    @property
    def outputs(self) -> tuple[Path, ...]:
        return (self.output, *self.also)


class Status(StrEnum):
    """How one job ended."""

    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass
class Outcome:
    """The end of one job."""

    job: Job
    status: Status
    message: str = ""
    seconds: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@dataclass
class Progress:
    """A running job's share done (0 to 1), sent by its worker as the engine goes (per tile)."""

    fraction: float


def collect_inputs(inputs: Iterable[str], recursive: bool) -> list[tuple[Path, Path]]:
    """Expand files, globs and folders into (file, base folder) pairs, in a stable order.

    The base folder is the folder the user named (its sub-folder layout is kept under the
    output folder) or the file's own folder. Missing inputs are returned as files so that
    they fail with a clear message rather than vanish.
    """
    found: list[tuple[Path, Path]] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            files = sorted(p for p in path.glob(pattern) if p.suffix.lower() in RAW_SUFFIXES and not p.is_dir())
            found += [(p, path) for p in files]
        elif not path.exists() and glob.has_magic(item):
            matches = sorted(Path(p) for p in glob.glob(item, recursive=recursive))
            found += [(p, p.parent) for p in matches if not p.is_dir() or p.suffix.lower() in RAW_SUFFIXES]
        else:
            found.append((path, path.parent))
    unique: dict[Path, tuple[Path, Path]] = {}
    for file, base in found:
        unique.setdefault(file.absolute(), (file, base))
    return list(unique.values())


def plan_jobs(files: list[tuple[Path, Path]], out_dir: Path | None,
              names: Callable[[Path, str], list[str]]) -> tuple[list[Job], list[str]]:
    """One job per input and output name, plus notices about renamed outputs.

    ``out_dir`` None puts each output beside its input; else the input's path below its base
    folder is kept below ``out_dir``. ``names(rel, stem)`` gives the output file names of the
    input at ``rel`` (below its base) when named ``stem``, normally ``rel.stem``. Inputs that would
    write the same output (IMG_1.CR2 and IMG_1.dng...) keep their source suffix in the stem instead
    (IMG_1.CR2.jpg); if even that collides (two folders given side by side, both holding
    IMG_1.CR2), later inputs get a counter (IMG_1.CR2-2.jpg). No output is named as an input. Names
    are compared as disks that ignore case compare them (IMG_1.jpg is img_1.JPG: see
    :func:`rawisp.write.fold_case`). Names depend only on the inputs and their order, so running the
    same command again finds them.
    """
    places = []
    for file, base in files:
        rel = file.relative_to(base) if file.is_relative_to(base) else Path(file.name)
        places.append((file, rel, file.parent if out_dir is None else out_dir / rel.parent))

    def key(path: Path) -> str:
        return fold_case(os.path.normcase(str(path.absolute())))

    taken: dict[str, int] = {}
    for _, rel, folder in places:
        for name in names(rel, rel.stem):
            taken[key(folder / name)] = taken.get(key(folder / name), 0) + 1
    owners = {key(file): file for file, _, _ in places}  # never write over an input
    jobs, notices = [], []
    for file, rel, folder in places:
        clash = any(taken[key(folder / name)] > 1 for name in names(rel, rel.stem))
        stem = base = rel.name if clash else rel.stem
        count = 1
        while any(key(folder / name) in owners for name in names(rel, stem)):
            count += 1
            stem = f"{base}-{count}"
        if stem != rel.stem:
            notices.append(f"{file}: another input has the same name; output named {names(rel, stem)[0]}")
        for name in names(rel, stem):
            output = folder / name
            owners[key(output)] = file
            jobs.append(Job(file, output))
    return jobs, notices


def merge_jobs(jobs: list[Job]) -> list[Job]:
    """One job per input: consecutive jobs of the same source (plan_jobs with several suffixes)
    become one job whose first output is ``output`` and the rest ``also``."""
    merged: list[Job] = []
    for job in jobs:
        if merged and merged[-1].source == job.source:
            last = merged[-1]
            merged[-1] = Job(last.source, last.output, (*last.also, job.output, *job.also))
        else:
            merged.append(job)
    return merged


def default_memory_gib(workers: int) -> float:
    """GiB of address space for each of ``workers`` files developed at once on this machine: 80% of
    its memory shared among them, at least 4."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return round(max(4.0, 0.8 * total / max(workers, 1)), 1)


def check_output_dir(out_dir: Path) -> None:
    """Raise BatchError when the output folder cannot be made or written to.

    The folders it has to create for the test are removed again: outputs create their folders as
    they are written, so a batch whose every input fails leaves no empty folder behind.
    """
    missing = [p for p in (out_dir, *out_dir.parents) if not p.exists()]
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # mkdir's error when a parent is a file
        raise BatchError(f"{out_dir}: cannot create the output folder (a parent is a file)") from None
    except OSError as exc:
        raise BatchError(f"{out_dir}: cannot create the output folder ({exc.strerror or exc})") from None
    writable = os.access(out_dir, os.W_OK | os.X_OK)
    for folder in missing:  # deepest first; one a concurrent run has written into stays
        with suppress(OSError):
            folder.rmdir()
    if not writable:
        raise BatchError(f"{out_dir}: the output folder is not writable")


def subfolder_hint(inputs: Iterable[str]) -> str:
    """Why a non-recursive look found nothing, when a folder input has sub-folders: a hint to add -r."""
    for item in inputs:
        path = Path(item)
        if path.is_dir() and any(p.is_dir() for p in path.iterdir()):
            return f"; {path} has sub-folders: add -r (--recursive) to look inside them"
    return ""


def exit_with_parent(conn) -> None:
    """End this worker (removing its temporary file) as soon as the batch process is gone.

    A killed batch process (kill -9, SIGTERM, a crash) would otherwise leave its workers running
    on, with no timeout. A thread waits on a copy of the pipe to the parent: the kernel reports an
    error on it once the parent's end is closed, which happens only when the parent dies.
    """
    fd = os.dup(conn.fileno())
    poller = select.poll()
    poller.register(fd, 0)  # POLLERR and POLLHUP are always reported

    def watch() -> None:
        if any(event & (select.POLLERR | select.POLLHUP) for _, event in poller.poll()):
            discard_own_parts()
            os._exit(1)

    threading.Thread(target=watch, name="rawisp-parent-watch", daemon=True).start()


def _child(task: Callable[[Job], Outcome], job: Job, conn, memory_bytes: int) -> None:
    """Run one job in the child process and send its Outcome back."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what Ctrl-C means
    exit_with_parent(conn)
    # LibRaw prints its own diagnostics to stderr; the parent prints one line per file instead
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    if memory_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    set_progress_hook(_progress_sender(conn))
    outcome = run_task(task, job, memory_bytes)
    set_progress_hook(None)
    conn.send(outcome)
    conn.close()


def _progress_sender(conn) -> Callable[[int, int], None]:
    """The engine's progress hook in a worker: each finished part of the frame goes to the parent."""
    lock = threading.Lock()  # parts may finish on rendering threads

    def send(done: int, total: int) -> None:
        if total > 0:
            with lock:
                conn.send(Progress(min(done / total, 1.0)))

    return send


def run_task(task: Callable[[Job], Outcome], job: Job, memory_bytes: int = 0) -> Outcome:
    """Run ``task`` on ``job`` in this process; every exception ends as a failed or skipped Outcome
    with a one-line message (``memory_bytes``: the address-space limit set, named when out of memory)."""
    try:
        return task(job)
    except DecodeError as exc:
        return Outcome(job, Status.FAILED, str(exc))
    except ForeignFileError as exc:
        return Outcome(job, Status.FAILED, foreign_file(exc))
    except FileExistsError:
        return Outcome(job, Status.SKIPPED, "output exists")
    except MemoryError:
        return Outcome(job, Status.FAILED, _out_of_memory(memory_bytes))
    except OSError as exc:
        return Outcome(job, Status.FAILED, write_failure(exc, job.output))
    except Exception as exc:  # any other bug must still end as one line, never kill the batch
        text = " ".join(str(exc).split())
        if any(sign in text for sign in _ALLOCATION_FAILED):  # native code (onnxruntime) out of memory
            return Outcome(job, Status.FAILED, _out_of_memory(memory_bytes))
        return Outcome(job, Status.FAILED, f"internal error: {type(exc).__name__}: {text[:500]}")


def foreign_file(exc: ForeignFileError) -> str:
    """The one-line reason for an output whose name a file rawisp did not write has taken, with
    what to do instead."""
    return (f"not developed: {exc.strerror}; rawisp never replaces such a file, not even with --overwrite: name "
            'the outputs apart with --name "{stem}_rawisp" or write them elsewhere with -o FOLDER')


def check_outputs(job: Job, overwrite: bool, listings: dict[Path, dict] | None = None) -> Outcome | None:
    """The end of ``job`` decided before any work, or None (develop it): failed when an output's
    name is taken by a file rawisp did not write (or differs from one's only by case: see
    :func:`rawisp.write.claim_output`); skipped when every output exists and not ``overwrite``.
    ``listings``: folder -> its case-folded names, filled as folders are first listed."""
    listings = {} if listings is None else listings
    exist = []
    for output in job.outputs:
        if output.parent not in listings:
            listings[output.parent] = case_folded_names(output.parent)
        try:
            claim_output(output, overwrite=True, names=listings[output.parent])
        except ForeignFileError as exc:
            return Outcome(job, Status.FAILED, foreign_file(exc))
        exist.append(fold_case(output.name) in listings[output.parent])
    if not overwrite and all(exist):
        return Outcome(job, Status.SKIPPED, "output exists")
    return None


def write_failure(exc: OSError, output: Path) -> str:
    """The one-line reason for an output that could not be written: ``cannot write output: ... (PATH)``."""
    reason = exc.strerror or str(exc)
    if not reason.startswith("cannot write output"):  # rawisp.io.write's errors already say so
        reason = f"cannot write output: {reason}"
    return f"{reason} ({exc.filename or output})"


# how native libraries word a failed allocation in the exceptions they raise through Python
_ALLOCATION_FAILED = ("Failed to allocate memory", "bad_alloc")


def _out_of_memory(memory_bytes: int) -> str:
    limit = f"limit {memory_bytes / 2**30:.1f} GiB, see --max-memory" if memory_bytes else "no limit set"
    return f"out of memory ({limit})"


def _remove_partial(output: Path) -> None:
    """Delete temporary files a killed child left beside ``output`` (named ``.NAME.*.part``)."""
    remove_stale_parts(output.parent, output.name)


def _crash_reason(exitcode: int | None) -> str:
    if exitcode == -signal.SIGKILL:  # nothing in rawisp sends it: the kernel's out-of-memory killer
        return "killed (SIGKILL), probably by the system running out of memory (see --max-memory)"
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        return f"decoder crashed ({name}); file is probably corrupt"
    return f"worker exited unexpectedly (code {exitcode})"


class _FileBar(tqdm):
    """A progress bar of files that also moves by parts of a file: the count shows whole files."""

    @property
    def format_dict(self) -> dict:
        values = super().format_dict
        values["files"] = int(values["n"] + 1e-6)
        return values


class Finished:
    """Called with each finished job's Outcome: keeps it, advances the progress bar, calls ``report``.
    :meth:`advance` moves the bar by a running job's progress (a big file's tiles)."""

    def __init__(self, total: int, progress: bool, report: Callable[[Outcome], None]) -> None:
        self.outcomes: list[Outcome] = []
        self.bar = _FileBar(total=total, unit="file", disable=not progress, file=sys.stderr, dynamic_ncols=True,
                            bar_format="{l_bar}{bar}| {files}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]")
        self.report = report
        self.shares: dict[Path, float] = {}  # the part of each running job the bar shows already

    def advance(self, job: Job, fraction: float) -> None:
        """``job`` is ``fraction`` done: the bar moves by what is new (never back, and never a whole
        file before its Outcome)."""
        shown = self.shares.get(job.output, 0.0)
        fraction = min(fraction, 0.99)
        if fraction > shown:
            self.bar.update(fraction - shown)
            self.shares[job.output] = fraction

    def __call__(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)
        self.bar.update(1 - self.shares.pop(outcome.job.output, 0.0))
        self.report(outcome)


def remove_stale_outputs(jobs: list[Job]) -> None:
    """Remove the temporary files that earlier runs, killed, left in the jobs' output folders
    (kill -9 of a whole batch, a power cut)."""
    for folder in dict.fromkeys(output.parent for job in jobs for output in job.outputs):
        remove_stale_parts(folder)


@dataclass
class _Running:
    job: Job
    process: mp.Process
    conn: object
    started: float


def run_batch(jobs: list[Job], task: Callable[[Job], Outcome], *, workers: int = 1, timeout: float = 900.0,
              memory_bytes: int = 0, overwrite: bool = False, progress: bool = True,
              report: Callable[[Outcome], None] = lambda o: None) -> list[Outcome]:
    """Run ``task`` on every job in child processes, ``workers`` at a time.

    Jobs whose output exists are skipped unless ``overwrite``, and those whose output's name a
    file rawisp did not write has taken fail (see :func:`check_outputs`). ``report`` is called for every
    finished job (for error lines). Ctrl-C stops the batch: running children are killed, their
    temporary files removed, and KeyboardInterrupt propagates.
    """
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["rawisp.batch.tasks"])  # children start with the pipeline imported
    pending = list(jobs)
    running: list[_Running] = []
    finish = Finished(len(jobs), progress, report)
    remove_stale_outputs(jobs)
    listings: dict[Path, dict] = {}
    try:
        while pending or running:
            while pending and len(running) < workers:
                job = pending.pop(0)
                decided = check_outputs(job, overwrite, listings)
                if decided is not None:
                    finish(decided)
                    continue
                parent_conn, child_conn = ctx.Pipe(duplex=False)
                proc = ctx.Process(target=_child, args=(task, job, child_conn, memory_bytes), daemon=True)
                proc.start()
                child_conn.close()
                running.append(_Running(job, proc, parent_conn, time.monotonic()))
            if not running:
                continue
            wait([r.process.sentinel for r in running] + [r.conn for r in running], timeout=0.5)
            for r in list(running):
                outcome = _poll(r, timeout, finish.advance)
                if outcome is not None:
                    running.remove(r)
                    finish(outcome)
    except KeyboardInterrupt:
        for r in running:
            with suppress(EOFError):
                while r.conn.poll():  # finished just now: report it before stopping the rest
                    message = r.conn.recv()
                    if isinstance(message, Outcome):
                        finish(message)
            r.process.kill()
            r.process.join()
            for output in r.job.outputs:
                _remove_partial(output)
        raise
    finally:
        finish.bar.close()
    return finish.outcomes


def _poll(r: _Running, timeout: float,
          advance: Callable[[Job, float], None] = lambda job, fraction: None) -> Outcome | None:
    """The Outcome of a running child if it has ended (or overrun its time), else None; its
    progress messages on the way go to ``advance``."""
    crashed = False
    while r.conn.poll():
        try:
            message = r.conn.recv()
        except EOFError:  # the child died without a word (a crash): its pipe closed
            crashed = True
            break
        if isinstance(message, Progress):
            advance(r.job, message.fraction)
            continue
        r.process.join()
        return message
    if not crashed and r.process.is_alive():
        if time.monotonic() - r.started <= timeout:
            return None
        r.process.kill()
        r.process.join()
        for output in r.job.outputs:
            _remove_partial(output)
        return Outcome(r.job, Status.FAILED, f"timed out after {timeout:g} s (see --timeout)")
    r.process.join()
    for output in r.job.outputs:  # what the crashed writer left
        _remove_partial(output)
    return Outcome(r.job, Status.FAILED, _crash_reason(r.process.exitcode))
