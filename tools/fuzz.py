"""Mutation fuzzing of ``rawisp develop``: broken RAW files must give one clear line each, never a
crash of the batch, a hang, a partial output or a garbage picture.

    python tools/fuzz.py [-n 2000] [--seed 0] [--learned-every 20] [--timeout 30] [--work DIR]
                          [--corpus ../shared/data/raw | --no-corpus]

Seeds are the bad-input corpus (``bad_inputs/`` and ``unsupported/`` under ``--corpus``, by default
``../shared/data/raw`` from the working directory, when present) and a few small synthetic DNGs
(every CFA phase, 12 to 16 bits, per-site black levels, orientations, a NoiseProfile). Each mutant
applies one or two mutations of :mod:`tiff_mutations`:

- ``flip``: overwrite 1 to 16 random bytes;
- ``truncate``: cut the file at a random offset;
- ``splice``: delete or insert a random run of bytes;
- ``tag``: give one TIFF tag an absurd value (huge or zero ImageWidth/ImageLength, zero or huge
  WhiteLevel, BlackLevel above WhiteLevel, CFA colours out of range, NaN NoiseProfile, zero
  AsShotNeutral, a colour matrix of zeros, offsets past the end of the file, huge counts, ...).

All mutants are developed in one batch by the real command line (a child process) with
``--engine classical``; every ``learned_every``-th one again with the learned engine. The checks:
the batch ends with status 0 or 1 (no crash, no hang: each file has ``--timeout``), stderr holds
nothing but ``rawisp: FILE: reason`` lines, each mutant has exactly one of a failure line and an
output, no failed file has an output, every output decodes completely and is not constant, and no
``.part`` file is left. Worker crashes and timeouts are counted: they are contained, as designed.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tiff_mutations import mutate

DATA = Path("../shared/data/raw")  # the command's default --corpus, relative to the working directory
CORPUS_FOLDERS = ("bad_inputs", "unsupported")
LINE = re.compile(r"^rawisp: (?P<path>[^:]+): (?P<message>.+)$")

# --- seeds ---------------------------------------------------------------------------------------

SYNTHETIC = [  # (name, height, width, cfa, black, white, orientation, noise)
    ("syn_rggb.dng", 48, 64, "RGGB", 256, 4095, 1, (1e-4, 1e-3)),
    ("syn_bggr.dng", 61, 77, "BGGR", [510, 520, 530, 540], 16383, 6, None),
    ("syn_grbg.dng", 40, 40, "GRBG", 0, 65535, 3, (5e-4, 2e-3)),
    ("syn_gbrg.dng", 96, 128, "GBRG", 1024, 16383, 8, (2e-5, 5e-4)),
]


def procedural_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A cheap natural-ish sRGB image (h, w, 3) in [0, 1]: gradients, a disc, waves and grain."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([0.2 + 0.6 * x / max(w - 1, 1), 0.2 + 0.6 * y / max(h - 1, 1),
                    0.5 + 0.3 * np.sin(x / 5.0) * np.cos(y / 7.0)], axis=-1)
    disc = np.hypot(y - h * 0.5, x - w * 0.4) < min(h, w) * 0.3
    img[disc] = rng.uniform(0.1, 0.9, 3)
    img += rng.normal(0, 0.02, img.shape)
    return np.clip(img, 0, 1)


def make_seeds(folder: Path, corpus: Path | None = None) -> list[Path]:
    """Write the synthetic seed DNGs into ``folder``; return them plus the files of ``corpus``
    (a folder holding ``bad_inputs/`` and ``unsupported/``; None or missing: synthetic only)."""
    from rawisp.measure import synth

    folder.mkdir(parents=True, exist_ok=True)
    seeds = []
    for i, (name, h, w, cfa, black, white, orientation, noise) in enumerate(SYNTHETIC):
        path = folder / name
        synth.srgb_to_dng(path, procedural_image(h, w, i), cfa=cfa, black=black, white=white,
                          orientation=orientation, noise=noise or (0.0, 0.0), seed=i)
        seeds.append(path)
    if corpus is not None and corpus.is_dir():
        for sub in CORPUS_FOLDERS:
            if (corpus / sub).is_dir():
                seeds += sorted(p for p in (corpus / sub).iterdir() if p.is_file())
    return seeds


# --- the run -------------------------------------------------------------------------------------


@dataclass
class Report:
    """Counts of one fuzz run; ``problems`` lists every broken promise (empty: all good)."""

    cases: int = 0
    errors: int = 0  # clear one-line refusals
    outputs: int = 0  # valid pictures
    crashes: int = 0  # workers that crashed (contained: one line, the batch went on)
    timeouts: int = 0  # workers that hung (contained by --timeout)
    out_of_memory: int = 0
    batch_crashes: int = 0  # the batch process itself died or hung
    partial_or_garbage: int = 0  # outputs that do not decode completely, or are constant
    seconds: float = 0.0
    reasons: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    def add(self, other: Report) -> None:
        for name in ("cases", "errors", "outputs", "crashes", "timeouts", "out_of_memory", "batch_crashes",
                     "partial_or_garbage"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.seconds += other.seconds
        self.reasons.update(other.reasons)
        self.problems += other.problems

    def text(self, title: str) -> str:
        lines = [f"{title}: {self.cases} cases in {self.seconds:.0f} s: {self.errors} clear errors, "
                 f"{self.outputs} valid outputs; worker crashes {self.crashes}, timeouts {self.timeouts}, "
                 f"out of memory {self.out_of_memory} (all contained); batch crashes/hangs {self.batch_crashes}, "
                 f"partial or garbage outputs {self.partial_or_garbage}, problems {len(self.problems)}"]
        lines += [f"  {count:5d}  {reason}" for reason, count in self.reasons.most_common()]
        lines += [f"  PROBLEM: {p}" for p in self.problems[:40]]
        return "\n".join(lines)


def _reason(message: str) -> str:
    """A failure message with numbers and file names generalised, for counting."""
    message = re.sub(r"\([^()]*/[^()]*\)", "(PATH)", message)
    return re.sub(r"-?\d+(\.\d+)?", "N", message)


def check_output(path: Path) -> str | None:
    """None if ``path`` is a complete, non-constant picture; else what is wrong with it."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            pixels = np.asarray(im.convert("RGB"))
    except Exception as exc:  # noqa: BLE001 - any decoding failure means a broken output
        return f"does not decode ({type(exc).__name__}: {exc})"
    if pixels.size == 0:
        return "empty picture"
    if int(pixels.max()) == int(pixels.min()):
        return f"constant picture (every value {int(pixels.min())})"
    return None


def develop_batch(folder: Path, out: Path, engine: str, timeout: float, extra: tuple[str, ...] = ()) -> Report:
    """Develop every file of ``folder`` in one ``rawisp develop`` run and check the promises."""
    files = sorted(p for p in folder.iterdir() if p.is_file())
    report = Report(cases=len(files))
    cmd = [sys.executable, "-m", "rawisp", "develop", "--engine", engine, "-q", "--timeout", str(timeout),
           "--max-memory", "4", "--format", "jpeg", "--quality", "80", *extra, str(folder), "-o", str(out)]
    start = time.perf_counter()
    try:
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=60 + len(files) * (timeout + 5))
    except subprocess.TimeoutExpired:
        report.batch_crashes += 1
        report.problems.append(f"{engine}: the batch process hung")
        return report
    report.seconds = time.perf_counter() - start
    out.parent.joinpath(f"{out.name}.stderr.txt").write_text(run.stderr)  # every line, for inspection
    if run.returncode not in (0, 1):
        report.batch_crashes += 1
        report.problems.append(f"{engine}: the batch ended with status {run.returncode}: {run.stderr[-2000:]}")
    failures: dict[str, list[str]] = {}
    for line in run.stderr.splitlines():
        m = LINE.match(line)
        if not m:
            report.problems.append(f"{engine}: stray stderr line: {line[:300]}")
            continue
        if m["message"].startswith("warning: "):
            continue
        failures.setdefault(Path(m["path"]).name, []).append(m["message"])
    for path in files:
        messages = failures.pop(path.name, [])
        output = out / f"{path.stem}.jpg"
        if len(messages) > 1:
            report.problems.append(f"{engine}: {path.name}: {len(messages)} lines: {messages}")
        if messages:
            message = messages[0]
            report.errors += 1
            report.reasons[_reason(message)] += 1
            report.crashes += "crashed" in message or "killed" in message or "exited unexpectedly" in message
            report.timeouts += "timed out" in message
            report.out_of_memory += "out of memory" in message
            if "internal error" in message:
                report.problems.append(f"{engine}: {path.name}: {message}")
            if output.exists():
                report.problems.append(f"{engine}: {path.name}: refused ({message}) but has an output")
        elif output.exists():
            problem = check_output(output)
            if problem:
                report.partial_or_garbage += 1
                report.problems.append(f"{engine}: {path.name}: output {problem}")
            else:
                report.outputs += 1
        else:
            report.problems.append(f"{engine}: {path.name}: neither an error line nor an output")
    for name, messages in failures.items():
        report.problems.append(f"{engine}: lines about an unknown file {name}: {messages}")
    leftovers = [p.name for p in out.rglob("*") if p.name.endswith(".part")] if out.exists() else []
    if leftovers:
        report.problems.append(f"{engine}: temporary files left: {leftovers[:5]}")
    return report


def fuzz(n: int, work: Path, seed: int = 0, learned_every: int = 20, timeout: float = 30.0,
         corpus: Path | None = None, log=print) -> tuple[Report, Report]:
    """Make ``n`` mutants in ``work`` (seeds: see ``make_seeds``) and develop them;
    (classical report, learned report)."""
    rng = np.random.default_rng(seed)
    seeds = make_seeds(work / "seeds", corpus)
    seed_bytes = [p.read_bytes() for p in seeds]
    mutants, learned = work / "mutants", work / "mutants_learned"
    for folder in (mutants, learned):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    manifest = []
    synthetic = len(SYNTHETIC)
    for i in range(n):  # most mutants start from a valid file: they get further into the pipeline
        k = int(rng.integers(synthetic)) if rng.random() < 0.6 else int(rng.integers(len(seeds)))
        data, what = mutate(seed_bytes[k], rng)
        suffix = seeds[k].suffix.lower() if seeds[k].suffix.lower() != ".gpr" else ".dng"
        name = f"m{i:05d}_{seeds[k].stem.replace('.', '_')}{suffix}"
        (mutants / name).write_bytes(data)
        if learned_every and i % learned_every == 0:
            (learned / name).write_bytes(data)
        manifest.append(f"{name}\t{seeds[k].name}\t{what}")
    (work / "manifest.tsv").write_text("\n".join(manifest) + "\n")
    log(f"{n} mutants of {len(seeds)} seeds in {mutants} (manifest.tsv says what was done to each)")
    classical = develop_batch(mutants, work / "out_classical", "classical", timeout)
    log(classical.text("classical"))
    learned_report = Report()
    if any(learned.iterdir()):
        learned_report = develop_batch(learned, work / "out_learned", "learned", timeout, ("--tile", "256"))
        log(learned_report.text("learned"))
    return classical, learned_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tools/fuzz.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=2000, help="number of mutants")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--learned-every", type=int, default=20, help="every Nth mutant also with the learned engine")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per file")
    parser.add_argument("--work", type=Path, help="working folder (default: a temporary one, removed)")
    parser.add_argument("--corpus", type=Path, default=DATA,
                        help="folder with bad_inputs/ and unsupported/ (default: %(default)s)")
    parser.add_argument("--no-corpus", action="store_true", help="synthetic seeds only")
    args = parser.parse_args(argv)
    if not args.no_corpus and not args.corpus.is_dir():
        print(f"fuzz: no corpus folder {args.corpus}: synthetic seeds only", file=sys.stderr)
    work = args.work or Path(tempfile.mkdtemp(prefix="rawisp-fuzz-"))
    try:
        classical, learned = fuzz(args.n, work, args.seed, args.learned_every, args.timeout,
                                  None if args.no_corpus else args.corpus)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    total = Report()
    total.add(classical)
    total.add(learned)
    print(total.text("total"))
    return 1 if total.problems else 0


if __name__ == "__main__":
    sys.exit(main())
