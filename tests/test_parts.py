"""Temporary .part files: a run never removes one a live process is writing, and removes the ones
that killed runs left in its output folders (issue 17, items 1 and 3)."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import natural_image, part_files, summary

from rawisp.io import write
from rawisp.io.write import write_image
from rawisp.measure import synth

HOLD = """
import fcntl, sys, time
fh = open(sys.argv[1], "xb")
fh.write(b"half a picture")
fh.flush()
fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(600)
"""


@pytest.fixture
def live_part():
    """``live_part(path)``: a process writing ``path`` (created and locked, as rawisp's writer does)."""
    procs = []

    def start(path: Path) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout.readline().strip() == "locked"
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def test_stale_parts_go_live_ones_stay(tmp_path, live_part):
    from rawisp.io.write import remove_stale_parts

    live = tmp_path / f".a.png.{os.getpid() + 1}.0123abcd.part"
    writer = live_part(live)
    stale = [tmp_path / ".a.png.4242.deadbeef.part", tmp_path / ".b.jpg.0badf00d.part"]
    for path in stale:
        path.write_bytes(b"left by a killed run")
    others = [tmp_path / "download.part", tmp_path / ".a.png.notours.part", tmp_path / "a.png"]
    for path in others:
        path.write_bytes(b"not rawisp's")

    assert remove_stale_parts(tmp_path, "b.jpg") == [stale[1]]
    assert sorted(remove_stale_parts(tmp_path)) == [stale[0]]
    assert live.read_bytes() == b"half a picture"  # its writer is alive
    assert all(p.exists() for p in others)
    writer.kill()  # the kernel releases a dead writer's lock: now its file is stale
    writer.wait()
    assert remove_stale_parts(tmp_path) == [live]
    assert remove_stale_parts(tmp_path / "missing") == []


def test_stale_parts_of_one_output_go_whatever_wrote_them(tmp_path):
    """The clean-up after a killed worker names its output: the pid in the part's name is no part of it."""
    from rawisp.io.write import remove_stale_parts

    mine = [tmp_path / ".s0.png.12352.5105510a.part", tmp_path / ".s0.png.0badf00d.part"]
    theirs = [tmp_path / ".s0.png.12352.png.12352.5105510a.part", tmp_path / ".s1.png.12352.5105510a.part"]
    for path in mine + theirs:
        path.write_bytes(b"left by a killed worker")
    assert sorted(remove_stale_parts(tmp_path, "s0.png")) == sorted(mine)
    assert all(p.exists() for p in theirs)


def _dng(path: Path, seed: int = 0) -> Path:
    synth.srgb_to_dng(path, natural_image(40, 56, seed=seed))
    return path


def test_a_run_spares_another_writers_part_and_cleans_stale_ones(cli, tmp_path, live_part):
    """The part file another run is writing for this very output survives this run's start-up
    clean-up; stale parts of any output in the folder (a kill -9 of a whole batch) are removed."""
    src = _dng(tmp_path / "a.dng")
    out = tmp_path / "out"
    out.mkdir()
    live = out / f".a.png.{os.getpid() + 1}.0123abcd.part"
    live_part(live)
    stale = out / ".zz.png.4242.deadbeef.part"  # an output this run does not write
    stale.write_bytes(b"left by a killed run")

    result = cli("develop", "--engine", "classical", "--format", "png", src, "-o", out)
    assert result.exit_code == 0, result.stderr
    assert summary(result) == (1, 0, 0)
    assert live.read_bytes() == b"half a picture"
    assert not stale.exists()
    assert (out / "a.png").stat().st_size > 1000


def test_a_part_deleted_before_its_lock_is_taken_is_replaced(tmp_path, monkeypatch):
    """A clean-up may delete a new .part file in the moment before its writer locks it: the writer
    notices (the name no longer leads to its file) and starts over under a new name."""
    real_flock = fcntl.flock
    calls = []

    def flock(fd, op):
        calls.append(op)
        if len(calls) == 1:  # a clean-up got there first
            for part in tmp_path.glob(".x.png.*.part"):
                part.unlink()
        return real_flock(fd, op)

    monkeypatch.setattr(write.fcntl, "flock", flock)
    pixels = np.full((8, 8, 3), 100, np.uint8)
    write_image(tmp_path / "x.png", pixels, "png")
    assert len(calls) == 2
    assert (tmp_path / "x.png").stat().st_size > 0
    assert part_files(tmp_path) == []


def _develop(src: Path, out: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "rawisp", "develop", "--engine", "classical", "--format", "png16", "-q",
           "--overwrite", str(src), "-o", str(out)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_concurrent_runs_into_one_folder_both_succeed(tmp_path):
    """Two runs writing the same outputs at once (each with --overwrite): before, one run's
    start-up clean-up deleted the other's half-written .part file and that run failed."""
    src = tmp_path / "in"
    src.mkdir()
    for i in range(4):
        synth.srgb_to_dng(src / f"f{i}.dng", natural_image(400, 600, seed=i))
    out = tmp_path / "out"
    runs = [_develop(src, out) for _ in range(2)]
    for run in runs:
        stdout, stderr = run.communicate(timeout=300)
        assert run.returncode == 0, stderr
        assert "4 developed, 0 skipped, 0 failed" in stdout
    assert sorted(p.name for p in out.iterdir()) == [f"f{i}.png" for i in range(4)]


def test_kill_9_of_the_whole_group_then_a_run_cleans_up(cli, tmp_path):
    """kill -9 of the process group (batch and workers at once) can leave .part files; the next
    run into that folder removes them, whichever outputs it writes."""
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        synth.srgb_to_dng(src / f"f{i}.dng", natural_image(1200, 1600, seed=i))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "rawisp", "develop", "--engine", "classical", "--format", "png16", "-q",
           str(src), "-o", str(out)]
    left = []
    for attempt in range(20):  # kill while a worker writes: it holds a .part file
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 120
        while not part_files(out) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        time.sleep(0.2)
        left = part_files(out)
        if left:
            break
        for path in out.glob("*.png"):
            path.unlink()
    if not left:
        pytest.skip("no kill landed while a .part file existed")
    other = _dng(tmp_path / "other.dng")  # a different input and output, same folder
    result = cli("develop", "--engine", "classical", "--format", "png", other, "-o", out)
    assert result.exit_code == 0, result.stderr
    assert part_files(out) == []
