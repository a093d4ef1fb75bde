"""Bad input, crashes and interruptions: rawisp keeps working and loses nothing.

Crashes, hangs and runaway memory inside a worker (injected with the tasks of ``batch_tasks``),
inputs that are not files, unwritable output folders, Ctrl-C and kill -9 of a running batch, the
writer/reader round trip and the tiling of the learned engine under random sizes, and a small
mutation fuzz run of the whole command line.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import fuzz
import tiff_mutations
from batch_tasks import Misbehave
from conftest import DATA, lines_naming, part_files, sha256, summary
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rawisp.batch.runner import Job, Status, run_batch
from rawisp.colour import BAYER_PATTERNS
from rawisp.engines.learned import Learned
from rawisp.io.decode import decode
from rawisp.io.tiff import LONG, SHORT
from rawisp.measure import synth
from rawisp.stages.normalise import Packed
from rawisp.stages.reconstruct import EngineOptions

TESTS = Path(__file__).resolve().parent
GIB = 1 << 30

# --- crashes inside a worker take down only that file ----------------------------------------------

EXPECTED = {
    "segv": "decoder crashed (SIGSEGV)",
    "abort": "decoder crashed (SIGABRT)",
    "reserve": "out of memory (limit 0.5 GiB, see --max-memory)",
    "grow": "out of memory (limit 0.5 GiB, see --max-memory)",
    "onnx": "out of memory (limit 0.5 GiB, see --max-memory)",
    "hang": "timed out after 5 s (see --timeout)",
    "exit": "worker exited unexpectedly (code 3)",
    "bug": "internal error: ValueError: first line second line",
    "partial": "decoder crashed (SIGSEGV)",
}


def test_crashes_hangs_and_memory_hogs_cost_only_their_file(tmp_path):
    names = ["ok1", *EXPECTED, "ok2", "ok3"]
    jobs = [Job(tmp_path / "in" / f"{name}.dng", tmp_path / "out" / f"{name}.png") for name in names]
    reported = []
    start = time.monotonic()
    outcomes = run_batch(jobs, Misbehave(), workers=2, timeout=5, memory_bytes=GIB // 2, progress=False,
                         report=reported.append)
    assert time.monotonic() - start < 60
    assert len(outcomes) == len(reported) == len(jobs)
    by_name = {o.job.source.stem: o for o in outcomes}
    for name in ("ok1", "ok2", "ok3"):
        assert by_name[name].status == Status.DONE, by_name[name]
        assert (tmp_path / "out" / f"{name}.png").is_file()
    for name, message in EXPECTED.items():
        outcome = by_name[name]
        assert outcome.status == Status.FAILED, (name, outcome)
        assert outcome.message.startswith(message), (name, outcome.message)
        assert "\n" not in outcome.message
        assert not (tmp_path / "out" / f"{name}.png").exists()
    assert part_files(tmp_path) == []  # the parent removed what the crashed writer left


def test_memory_limit_is_what_stops_the_runaway_worker(tmp_path):
    """Without RLIMIT_AS the same tasks succeed: the limit, not chance, made them fail above."""
    jobs = [Job(tmp_path / "reserve.dng", tmp_path / "reserve.png")]
    [outcome] = run_batch(jobs, Misbehave(), timeout=60, memory_bytes=0, progress=False)
    assert outcome.status == Status.DONE and "no memory limit" in outcome.message


def test_killed_batch_takes_its_workers_down(tmp_path):
    """kill -9 of the batch process: a worker stuck in a file (here: sleeping an hour) ends too."""
    script = (f"import sys; sys.path.insert(0, {str(TESTS)!r}); from pathlib import Path; "
              "from batch_tasks import Misbehave; from rawisp.batch.runner import Job, run_batch; "
              f"run_batch([Job(Path('hang.dng'), Path({str(tmp_path / 'hang.png')!r}))], Misbehave(), "
              "timeout=3600, progress=False)")
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        def forked() -> list[int]:  # the fork server and the worker it forked
            found = [p for p in _descendants(proc.pid) if "forkserver" in _cmdline(p)]
            return found if len(found) >= 2 else []

        workers = _wait_for(forked, 60)
        assert workers, "no worker started"
        proc.kill()
        proc.wait(timeout=30)
        assert _wait_for(lambda: not any(_alive(p) for p in workers), 20), "workers outlived the batch"
    finally:
        proc.kill()


# --- inputs that are not RAW files; outputs that cannot be written -----------------------------------


def test_special_inputs_one_line_each(cli, tmp_path):
    src = tmp_path / "in"
    good, _ = _dng(src / "good.dng")
    os.mkfifo(src / "pipe.dng")
    (src / "loop.dng").symlink_to(src / "loop.dng")
    (src / "dangling.dng").symlink_to(src / "nowhere.dng")
    expected = {"pipe.dng": "not a regular file", "loop.dng": "symbolic links", "dangling.dng": "no such file"}
    unreadable = Path("/proc/sys/vm/drop_caches")  # write-only, even for root
    try:
        unreadable.open("rb").close()
    except PermissionError:
        (src / "unreadable.dng").symlink_to(unreadable)
        expected["unreadable.dng"] = "cannot read it (permission denied)"
    except OSError:
        pass
    before = sha256(good)
    result = cli("develop", "--engine", "classical", "--format", "png", *[src / n for n in expected], good,
                 "-o", tmp_path / "out")
    assert result.exit_code == 1
    assert summary(result) == (1, 0, len(expected))
    for name, reason in expected.items():
        [line] = lines_naming(result.stderr, src / name)
        assert reason in line, line
    assert len(result.stderr.strip().splitlines()) == len(expected)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.png"]
    assert sha256(good) == before


@pytest.mark.parametrize("where", ["proc", "under_a_file"])
def test_unwritable_output_folder_is_one_line_before_any_work(cli, tmp_path, where):
    good, _ = _dng(tmp_path / "good.dng")
    (tmp_path / "file").write_bytes(b"x")
    out = Path("/proc/rawisp-test/out") if where == "proc" else tmp_path / "file" / "out"
    result = cli("develop", "--engine", "classical", good, good.with_name("other.dng"), "-o", out)
    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"rawisp: {out}: cannot create the output folder ("), line
    assert result.stdout == ""  # no summary: nothing was started


def test_output_folder_that_is_a_file_is_a_usage_error(cli, tmp_path):
    good, _ = _dng(tmp_path / "good.dng")
    (tmp_path / "out").write_bytes(b"x")
    result = cli("develop", "--engine", "classical", good, "-o", tmp_path / "out")
    assert result.exit_code == 2
    assert "is a file" in result.stderr and "Traceback" not in result.stderr
    assert (tmp_path / "out").read_bytes() == b"x"


@pytest.mark.parametrize(("width", "height", "reason"), [
    (12000, 8400, "cannot hold a 100.8 MP frame"),
    (30000, 30000, "cannot hold a 900.0 MP frame"),
    (60000, 60000, "cannot hold a 3600.0 MP frame"),
    (65535, 65535, "unsupported format"),  # LibRaw's own limit is 64000 a side
    (0xFFFFFFFF, 100, "unsupported format"),
])
def test_absurd_dimensions_are_refused_before_any_allocation(cli, tmp_path, width, height, reason):
    """A header claiming a huge frame in a small file is refused from the file size, before LibRaw
    allocates for it: even under a 0.5 GiB address-space limit the reason is the size, not memory."""
    path, _ = _dng(tmp_path / "huge.dng")
    data = bytearray(path.read_bytes())
    entries = {e.code: e for e in tiff_mutations.tiff_entries(bytes(data))}
    tiff_mutations.set_tag(data, entries[256], LONG, [width])
    tiff_mutations.set_tag(data, entries[257], LONG, [height])
    path.write_bytes(data)
    result = cli("develop", "--engine", "classical", "--max-memory", "0.5", path, "-o", tmp_path / "out")
    assert result.exit_code == 1
    [line] = lines_naming(result.stderr, path)
    assert reason in line, line
    assert not (tmp_path / "out").exists()  # nothing was written, so no folder either


# --- Ctrl-C and kill -9 in the middle of a batch ---------------------------------------------------

N_FILES = 6


@pytest.fixture(scope="module")
def batch_inputs(tmp_path_factory) -> tuple[Path, dict[Path, str]]:
    """Six DNGs of 1.4 MP: each takes a noticeable moment, so a batch can be stopped in between."""
    src = tmp_path_factory.mktemp("batch") / "in"
    src.mkdir()
    for i in range(N_FILES):
        synth.srgb_to_dng(src / f"f{i}.dng", np.roll(fuzz.procedural_image(1000, 1400, 1), 40 * i, axis=1),
                          noise=(1e-4, 1e-3), seed=i)
    return src, {p: sha256(p) for p in src.iterdir()}


def _start(src: Path, out: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "rawisp", "develop", "--engine", "classical", "--format", "jpeg", "-q",
           str(src), "-o", str(out)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _finished_outputs(out: Path) -> list[Path]:
    """The outputs with final names, each checked to decode completely and not to be constant."""
    found = sorted(out.glob("*.jpg")) if out.exists() else []
    for path in found:
        assert fuzz.check_output(path) is None, f"{path.name}: {fuzz.check_output(path)}"
    return found


def _stop_after_first_output(proc: subprocess.Popen, out: Path, send) -> None:
    assert _wait_for(lambda: list(out.glob("*.jpg")) or proc.poll() is not None, 120)
    assert proc.poll() is None, "the batch finished before it could be interrupted"
    send(proc)


def _rerun_continues(cli, src: Path, out: Path, done: int) -> None:
    stale = out / ".f5.jpg.0badf00d.part"  # what a killed writer would leave
    stale.write_bytes(b"half a picture")
    again = cli("develop", "--engine", "classical", "--format", "jpeg", src, "-o", out)
    assert again.exit_code == 0, again.stderr
    assert summary(again) == (N_FILES - done, done, 0)
    assert len(_finished_outputs(out)) == N_FILES
    assert part_files(out) == []


@pytest.mark.parametrize("target", ["process", "group"])
def test_ctrl_c_mid_batch_keeps_finished_outputs_and_a_rerun_continues(cli, batch_inputs, tmp_path, target):
    """SIGINT to the batch process, or to its whole process group as a terminal's Ctrl-C does."""
    src, hashes = batch_inputs
    out = tmp_path / "out"
    proc = _start(src, out)
    send = (lambda p: os.kill(p.pid, signal.SIGINT)) if target == "process" else \
        (lambda p: os.killpg(p.pid, signal.SIGINT))
    _stop_after_first_output(proc, out, send)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    done = len(_finished_outputs(out))
    assert 1 <= done < N_FILES
    assert part_files(out) == []
    _rerun_continues(cli, src, out, done)
    assert {p: sha256(p) for p in src.iterdir()} == hashes


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_kill_9_mid_batch_leaves_no_partial_output_and_a_rerun_continues(cli, batch_inputs, tmp_path, sig):
    """kill -9 or kill (SIGTERM) of the batch process alone; its workers see it gone and end."""
    src, hashes = batch_inputs
    out = tmp_path / "out"
    proc = _start(src, out)
    tree: list[int] = []

    def kill(p: subprocess.Popen) -> None:
        tree.extend(_descendants(p.pid))
        p.send_signal(sig)

    _stop_after_first_output(proc, out, kill)
    proc.communicate(timeout=60)
    assert proc.returncode == -sig
    assert _wait_for(lambda: not any(_alive(p) for p in tree), 30), "processes outlived the batch"
    done = len(_finished_outputs(out))  # no final name holds a partial file
    assert 1 <= done < N_FILES
    assert part_files(out) == []  # the worker's parent watch removed its temporary file
    _rerun_continues(cli, src, out, done)
    assert {p: sha256(p) for p in src.iterdir()} == hashes


# --- property tests: the DNG writer and reader, tiling ------------------------------------------------


@settings(deadline=None, max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(h=st.integers(22, 48), w=st.integers(22, 48), cfa=st.sampled_from(BAYER_PATTERNS),
       bits=st.sampled_from([10, 12, 14, 16]), black=st.lists(st.integers(0, 600), min_size=4, max_size=4),
       orientation=st.integers(1, 8), noise=st.one_of(st.none(), st.tuples(st.floats(1e-6, 0.05),
                                                                            st.floats(1e-5, 0.05))),
       seed=st.integers(0, 2**32 - 1))
def test_dng_round_trip(tmp_path, h, w, cfa, bits, black, orientation, noise, seed):
    white = (1 << bits) - 1
    rng = np.random.default_rng(seed)
    raw_norm = rng.uniform(-0.05, 1.05, (h, w))
    path = tmp_path / f"r{seed}.dng"
    synth.write_dng(path, raw_norm, cfa=cfa, black=black, white=white, orientation=orientation, noise=noise)
    image = decode(path)
    # DN = black of the site + value * (white - that black), rounded, within [0, white]
    black_map = np.tile(np.reshape(black, (2, 2)), ((h + 1) // 2, (w + 1) // 2))[:h, :w]
    expected = np.clip(np.round(black_map + raw_norm * (white - black_map)), 0, white).astype(np.uint16)
    np.testing.assert_array_equal(image.mosaic, expected)
    assert image.cfa == cfa and image.white == white and image.orientation == orientation
    np.testing.assert_array_equal(image.black, np.reshape(black, (2, 2)))
    if noise is None:
        assert image.noise is None
    else:
        assert image.noise == pytest.approx(noise, rel=1e-9)
    assert image.shape == (h, w)


class _BoxModel:
    """A stand-in ONNX session: 3x3 box blur of the packed planes, nearest 2x upsampling to RGB.

    Its receptive field (1 packed pixel) is far inside any margin, so tiling must not change it.
    """

    def get_providers(self):
        return ["CPUExecutionProvider"]

    def run(self, _, feeds):
        (x,) = feeds.values()
        p = np.pad(x[:, :4], ((0, 0), (0, 0), (1, 1), (1, 1)), mode="edge")
        h, w = x.shape[2:]
        blur = sum(p[:, :, dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)) / 9
        rgb = np.stack([blur[:, 0], (blur[:, 1] + blur[:, 2]) / 2, blur[:, 3]], axis=1)
        rgb += 0.01 * x[:, 4:7]  # the sigma planes reach the output too
        return [rgb.repeat(2, axis=2).repeat(2, axis=3).astype(np.float32)]


@settings(deadline=None, max_examples=30)
@given(h=st.integers(1, 90), w=st.integers(1, 90), tile=st.integers(8, 200), margin=st.sampled_from([4, 8, 12]),
       stride=st.sampled_from([1, 2, 4]), seed=st.integers(0, 2**32 - 1))
def test_tiled_output_is_finite_right_shaped_and_tile_independent(h, w, tile, margin, stride, seed):
    rng = np.random.default_rng(seed)
    planes = rng.uniform(-0.02, 1.0, (4, h, w)).astype(np.float32)
    packed = Packed(planes=planes, gains=np.array([2.0, 1, 1, 1.5], np.float32), noise=(1e-3, 2e-3),
                    offset=(int(rng.integers(2)), int(rng.integers(2))), shape=(2 * h - 1, 2 * w - 1))
    card = {"name": "box", "input": {"name": "packed"}, "margin": margin, "stride": stride}

    def engine(tile_size: int) -> Learned:
        return Learned(_BoxModel(), card, EngineOptions(tile=tile_size, threads=1))

    tiled = engine(tile)(packed)
    assert tiled.shape == (2 * h - 1, 2 * w - 1, 3) and tiled.dtype == np.float32
    assert np.isfinite(tiled).all()
    whole = engine(4096)(packed)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


# --- mutation fuzzing --------------------------------------------------------------------------------


@pytest.mark.slow
def test_fuzz_mutants_give_one_line_or_a_valid_picture(tmp_path):
    """50 mutants of the bad-input corpus and of small synthetic DNGs, through the command line."""
    classical, learned = fuzz.fuzz(50, tmp_path, seed=7, learned_every=10, timeout=60, corpus=DATA,
                                   log=lambda _: None)
    for report in (classical, learned):
        assert report.problems == [], report.text("fuzz")
        assert report.batch_crashes == 0 and report.partial_or_garbage == 0
    assert classical.cases == classical.errors + classical.outputs == 50
    assert learned.cases == learned.errors + learned.outputs == 5
    assert classical.errors > 0 and classical.outputs > 0  # both kinds of mutant really occur
    if DATA.is_dir():
        assert len(fuzz.make_seeds(tmp_path / "s", DATA)) > len(fuzz.SYNTHETIC)


@pytest.mark.slow
def test_absurd_tag_values_are_refused_or_developed(tmp_path):
    """Absurd values of every interesting tag of a 12-bit and a 16-bit synthetic DNG.

    (BitsPerSample=1 under the 16-bit white level once gave a constant black picture.)
    """
    seeds = fuzz.make_seeds(tmp_path / "seed", corpus=None)
    folder = tmp_path / "mutants"
    folder.mkdir()
    rng = np.random.default_rng(0)
    count = 0
    for seed in (seeds[0], seeds[2]):
        data = seed.read_bytes()
        for entry in tiff_mutations.tiff_entries(data):
            if entry.code not in tiff_mutations.INTERESTING:
                continue
            for _ in range(3):
                mutant = bytearray(data)
                ftype, values, _ = tiff_mutations.absurd_value(entry, data, tiff_mutations.tiff_entries(data), rng)
                tiff_mutations.set_tag(mutant, entry, ftype, values)
                (folder / f"t{count:03d}.dng").write_bytes(mutant)
                count += 1
        mutant = bytearray(data)
        tiff_mutations.set_tag(mutant, {e.code: e for e in tiff_mutations.tiff_entries(data)}[258], SHORT, [1])
        (folder / f"t{count:03d}_bits1.dng").write_bytes(mutant)
        count += 1
    report = fuzz.develop_batch(folder, tmp_path / "out", "classical", timeout=60)
    assert report.problems == [], report.text("tags")
    assert report.cases == count == report.errors + report.outputs


# --- helpers -------------------------------------------------------------------------------------------


def _dng(path: Path) -> tuple[Path, np.ndarray]:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path, synth.srgb_to_dng(path, fuzz.procedural_image(36, 50))


def _wait_for(condition, seconds: float):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    return condition()


def _ppid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _descendants(root: int) -> list[int]:
    parents = {int(p): _ppid(int(p)) for p in os.listdir("/proc") if p.isdigit()}
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        children = [p for p, pp in parents.items() if pp == pid]
        found += children
        todo += children
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
