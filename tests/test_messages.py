"""What rawisp says when something is off, and how (issue 17, items 8 and 9)."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import lines_naming, natural_image, summary

from rawisp.batch.runner import Job, Outcome, Status
from rawisp.measure import synth


def _dng(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    synth.srgb_to_dng(path, natural_image(32, 40, seed=seed))
    return path


@pytest.mark.parametrize("command", ["develop", "info"])
def test_a_folder_of_sub_folders_hints_at_recursive(cli, tmp_path, command):
    _dng(tmp_path / "card" / "DCIM" / "a.dng")
    result = cli(command, tmp_path / "card", *(("-o", tmp_path / "out") if command == "develop" else ()))
    assert result.exit_code == 2
    assert (f"no RAW files found in the given inputs; {tmp_path / 'card'} has sub-folders: add -r (--recursive) "
            "to look inside them") in result.stderr
    assert not (tmp_path / "out").exists()


def test_info_takes_folders_like_develop(cli, tmp_path):
    for name in ("a.dng", "sub/b.dng"):
        _dng(tmp_path / "card" / name)
    result = cli("info", "--json", tmp_path / "card")
    assert result.exit_code == 0, result.stderr
    assert [Path(r["file"]).name for r in json.loads(result.stdout)] == ["a.dng"]
    deep = cli("info", "--json", "-r", tmp_path / "card")
    assert [Path(r["file"]).name for r in json.loads(deep.stdout)] == ["a.dng", "b.dng"]


def test_skips_say_why(cli, tmp_path):
    path = _dng(tmp_path / "a.dng")
    assert cli("develop", "--engine", "classical", path, "-o", tmp_path / "out").exit_code == 0
    result = cli("develop", "--engine", "classical", path, "-o", tmp_path / "out")
    assert result.exit_code == 0 and summary(result) == (0, 1, 0)
    [line] = lines_naming(result.stderr, path)
    assert line.endswith(f"skipped, {tmp_path / 'out' / 'a.jpg'} exists (--overwrite replaces it)")


@pytest.mark.parametrize("overwrite", [(), ("--overwrite",)], ids=["plain", "overwrite"])
def test_a_file_rawisp_did_not_write_is_never_replaced_and_the_line_says_what_to_do(cli, tmp_path, overwrite):
    path = _dng(tmp_path / "a.dng")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.jpg").write_bytes(b"kept")
    result = cli("develop", "--engine", "classical", path, "-o", tmp_path / "out", *overwrite)
    assert result.exit_code == 1 and summary(result) == (0, 0, 1)
    [line] = lines_naming(result.stderr, path)
    assert line == (f"rawisp: {path}: not developed: {tmp_path / 'out' / 'a.jpg'} exists and rawisp did not write "
                    "it (a camera's JPEG, an edit?); rawisp never replaces such a file, not even with --overwrite: "
                    'name the outputs apart with --name "{stem}_rawisp" or write them elsewhere with -o FOLDER')
    assert (tmp_path / "out" / "a.jpg").read_bytes() == b"kept"


@pytest.mark.parametrize(("content", "reason"), [
    (b"hello, I am a shopping list\n" * 40, "not a RAW file (it holds text)"),
    ("Zürich, 3 €\n".encode() * 400, "not a RAW file (it holds text)"),
    (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(3000), "not a RAW file (a JPEG picture)"),
    (b"\x89PNG\r\n\x1a\n" + bytes(3000), "not a RAW file (a PNG picture)"),
], ids=["ascii", "utf8", "jpeg", "png"])
def test_a_renamed_non_raw_file_is_not_a_raw_file(cli, tmp_path, content, reason):
    path = tmp_path / "DSC_0001.NEF"
    path.write_bytes(content)
    result = cli("develop", "--engine", "classical", path, "-o", tmp_path / "out")
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert line == f"rawisp: {path}: {reason}"


def test_no_output_folder_when_every_input_fails(cli, tmp_path):
    (tmp_path / "bad.dng").write_bytes(b"text, not a picture\n")
    out = tmp_path / "new" / "out"
    result = cli("develop", "--engine", "classical", tmp_path / "bad.dng", tmp_path / "missing.dng", "-o", out)
    assert result.exit_code == 1 and summary(result) == (0, 0, 2)
    assert not (tmp_path / "new").exists()


class Warns:
    """A batch task whose every file succeeds with a warning."""

    def __call__(self, job: Job) -> Outcome:
        time.sleep(0.05)
        return Outcome(job, Status.DONE, warnings=["something to know"])


def test_warnings_print_above_the_progress_bar(monkeypatch, tmp_path):
    """Each warning line starts a line of its own; before, it was glued to the bar's last drawing."""
    from rawisp import cli

    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    monkeypatch.setattr(stderr, "isatty", lambda: True, raising=False)
    jobs = [Job(tmp_path / f"f{i}.dng", tmp_path / f"f{i}.jpg") for i in range(3)]
    with pytest.raises(SystemExit) as exit_:
        cli._run(jobs, Warns(), 1, 60, None, False, False)
    assert exit_.value.code == 0
    text = stderr.getvalue()
    assert "%|" in text  # the bar was drawn
    pieces = [p for p in text.replace("\r", "\n").split("\n") if "warning" in p]
    assert len(pieces) == 3 and all(p.startswith("rawisp: ") for p in pieces), pieces


def test_ctrl_c_tells_what_finished(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(6):
        synth.srgb_to_dng(src / f"f{i}.dng", natural_image(900, 1200, seed=i))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "rawisp", "develop", "--engine", "classical", "-q", str(src), "-o", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(out.glob("*.jpg")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)  # the worker has told the batch by now
    assert proc.poll() is None, "the batch finished before it could be interrupted"
    os.kill(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    on_disk = len(list(out.glob("*.jpg")))
    [line] = [l for l in stderr.splitlines() if "interrupted" in l]
    found = re.match(r"rawisp: interrupted: (\d+) developed, 0 skipped, 0 failed, (\d+) not done; ", line)
    assert found, line
    told, left = int(found[1]), int(found[2])
    # a worker may finish its file in the moment of the Ctrl-C, before it could tell the batch
    assert 1 <= told <= on_disk <= told + 1 and told + left == 6, (line, on_disk)
