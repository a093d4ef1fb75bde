"""Mutation fuzzing of ``rawisp develop``: broken RAW files must give one clear line each, never a
crash of the batch, a hang, a partial output or a garbage picture.

    python -m rawisp.fuzz [-n 2000] [--seed 0] [--learned-every 20] [--timeout 30] [--work DIR]
                          [--corpus ../shared/data/raw | --no-corpus]

Seeds are the bad-input corpus (``bad_inputs/`` and ``unsupported/`` under ``--corpus``, by default
``../shared/data/raw`` from the working directory, when present) and a few small synthetic DNGs
(every CFA phase, 12 to 16 bits, per-site black levels, orientations, a NoiseProfile). Each mutant
applies one or two of:

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
import math
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

DATA = Path("../shared/data/raw")  # the command's default --corpus, relative to the working directory
CORPUS_FOLDERS = ("bad_inputs", "unsupported")
LINE = re.compile(r"^rawisp: (?P<path>[^:]+): (?P<message>.+)$")

# --- TIFF structure ------------------------------------------------------------------------------

TYPE_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8}
TYPE_FORMAT = {1: "B", 3: "H", 4: "I", 5: "I", 8: "h", 9: "i", 10: "i", 11: "f", 12: "d"}
BYTE, SHORT, LONG, RATIONAL, SRATIONAL, DOUBLE = 1, 3, 4, 5, 10, 12
SUB_IFDS, EXIF_IFD = 330, 34665


@dataclass
class Entry:
    """One 12-byte IFD entry of a classic TIFF file."""

    code: int
    ftype: int
    count: int
    at: int  # file offset of the entry
    order: str  # "<" or ">"

    @property
    def size(self) -> int:
        return TYPE_SIZE.get(self.ftype, 1) * self.count

    def value_offset(self, data: bytes) -> int:
        """Where the values are: inside the entry (4 bytes or fewer) or at the offset it holds."""
        if self.size <= 4:
            return self.at + 8
        return struct.unpack_from(self.order + "I", data, self.at + 8)[0]

    def values(self, data: bytes) -> list:
        fmt = TYPE_FORMAT.get(self.ftype)
        n = self.count * (2 if self.ftype in (RATIONAL, SRATIONAL) else 1)
        start = self.value_offset(data)
        if fmt is None or n > 4096 or start + n * struct.calcsize(fmt) > len(data):
            return []
        return list(struct.unpack_from(f"{self.order}{n}{fmt}", data, start))


def tiff_entries(data: bytes, max_ifds: int = 16) -> list[Entry]:
    """The entries of every IFD reachable from the header (chain, SubIFDs, Exif IFD); [] if the
    data is not a classic TIFF. Tolerant of garbage: out-of-range offsets are skipped."""
    if len(data) < 8 or data[:4] not in (b"II*\0", b"MM\0*"):
        return []
    order = "<" if data[:2] == b"II" else ">"
    todo, seen, entries = [struct.unpack_from(order + "I", data, 4)[0]], set(), []
    while todo and len(seen) < max_ifds:
        offset = todo.pop(0)
        if offset in seen or offset < 8 or offset + 2 > len(data):
            continue
        seen.add(offset)
        n = struct.unpack_from(order + "H", data, offset)[0]
        if offset + 2 + 12 * n + 4 > len(data):
            continue
        for i in range(n):
            at = offset + 2 + 12 * i
            code, ftype, count = struct.unpack_from(order + "HHI", data, at)
            entry = Entry(code, ftype, count, at, order)
            entries.append(entry)
            if code in (SUB_IFDS, EXIF_IFD) and ftype in (LONG, 13):
                todo += entry.values(data)[:8]
        todo.append(struct.unpack_from(order + "I", data, offset + 2 + 12 * n)[0])
    return entries


def set_tag(data: bytearray, entry: Entry, ftype: int, values: list) -> None:
    """Rewrite ``entry`` to hold ``values`` of ``ftype`` (rationals as flat pairs); values that do
    not fit in the entry are appended at the end of the file."""
    fmt = TYPE_FORMAT[ftype]
    payload = struct.pack(f"{entry.order}{len(values)}{fmt}", *values)
    count = len(values) // 2 if ftype in (RATIONAL, SRATIONAL) else len(values)
    if len(payload) <= 4:
        field_bytes = payload.ljust(4, b"\0")
    else:
        data += b"\0" * (len(data) % 2)
        field_bytes = struct.pack(entry.order + "I", len(data))
        data += payload
    struct.pack_into(entry.order + "HI", data, entry.at + 2, ftype, count)
    data[entry.at + 8:entry.at + 12] = field_bytes


# --- mutations -----------------------------------------------------------------------------------

HUGE = (0, 1, 65535, 65536, 100_000, 0x7FFFFFFF, 0xFFFFFFFF)


def _white_of(data: bytes, entries: list[Entry]) -> int:
    for e in entries:
        if e.code == 50717 and e.values(data):
            return int(e.values(data)[0])
    return 4095


def _absurd(entry: Entry, data: bytes, entries: list[Entry], rng: np.random.Generator) -> tuple[int, list, str]:
    """(type, values, description) of an absurd value for ``entry``."""
    def pick(options):
        return options[int(rng.integers(len(options)))]

    code, n = entry.code, max(1, min(entry.count, 16))
    if code in (256, 257):  # ImageWidth, ImageLength
        v = pick(HUGE)
        return LONG, [v], f"{'ImageWidth' if code == 256 else 'ImageLength'}={v}"
    if code == 258:
        v = pick((0, 1, 7, 17, 32, 64, 255))
        return SHORT, [v] * n, f"BitsPerSample={v}"
    if code == 259:
        v = pick((0, 2, 5, 7, 8, 34713, 65535))
        return SHORT, [v], f"Compression={v}"
    if code == 262:
        v = pick((0, 2, 32803, 34892, 65535))
        return SHORT, [v], f"PhotometricInterpretation={v}"
    if code in (273, 279, 324, 325):  # strip/tile offsets and byte counts
        v = pick((0, 1, len(data) + 1000, 0x7FFFFFFF, 0xFFFFFFFF))
        return LONG, [v] * n, f"tag {code}={v}"
    if code in (277, 278, 322, 323):
        v = pick((0, 4, 65535, 0xFFFFFFFF))
        return LONG, [v], f"tag {code}={v}"
    if code == 274:
        v = pick((0, 9, 65535))
        return SHORT, [v], f"Orientation={v}"
    if code in (33421, 50713):  # CFARepeatPatternDim, BlackLevelRepeatDim
        v = pick(([0, 0], [1, 1], [255, 255], [2, 65535], [16, 16]))
        return SHORT, v, f"tag {code}={v}"
    if code == 33422:  # CFAPattern
        v = [int(x) for x in rng.integers(0, 256, entry.count or 4)][:64]
        v[int(rng.integers(len(v)))] = int(rng.integers(3, 256))
        return BYTE, v, f"CFAPattern={v[:8]}"
    if code == 50714:  # BlackLevel
        white = _white_of(data, entries)
        v = pick((white, white + 1, white + 1000, 0xFFFFFFFF))
        return LONG, [v] * n, f"BlackLevel={v} (white {white})"
    if code == 50717:  # WhiteLevel
        v = pick((0, 1, 65536, 0x7FFFFFFF, 0xFFFFFFFF))
        return LONG, [v], f"WhiteLevel={v}"
    if code == 51041:  # NoiseProfile
        v = pick((math.nan, math.inf, -math.inf, -1.0, 1e300, 0.0))
        return DOUBLE, [v] * max(2, n), f"NoiseProfile={v}"
    if code in (50728, 50729):  # AsShotNeutral, AsShotWhiteXY
        v = pick(([0, 1] * 3, [1, 0] * 3, [0xFFFFFFFF, 1] * 3, [1, 0xFFFFFFFF, 1, 1, 0, 1]))
        return RATIONAL, v, f"tag {code}={v[:6]}"
    if code in (50721, 50722, 50723, 50724, 50964, 50965):  # colour and forward matrices, calibration
        v = pick(([0, 1] * 9, [1, 0] * 9, [0x7FFFFFFF, 1] * 9, [-0x7FFFFFFF, 1] * 9))
        return SRATIONAL, v, f"matrix tag {code}={v[:2]}..."
    if code in (50706, 50707):
        v = pick(([9, 9, 9, 9], [0, 0, 0, 0], [1, 0, 0, 0]))
        return BYTE, v, f"DNGVersion={v}"
    if code in (50829, 50719, 50720, 50718):  # ActiveArea, DefaultCrop*, DefaultScale
        v = pick((0, 1, 65535, 0x7FFFFFFF))
        return LONG, [v] * max(2, n), f"tag {code}={v}"
    # any other tag: a huge count pointing past the end, or a type the reader does not expect
    if rng.random() < 0.5:
        return LONG, [0xFFFFFFFF] * n, f"tag {code}=0xFFFFFFFF"
    return DOUBLE, [math.nan] * n, f"tag {code}=NaN"


INTERESTING = (256, 257, 258, 259, 262, 273, 274, 277, 278, 279, 33421, 33422, 50713, 50714, 50717, 51041, 50728,
               50721, 50706, 50829, 50719, 50720)


def mutate_tag(data: bytearray, rng: np.random.Generator) -> str | None:
    entries = tiff_entries(bytes(data))
    if not entries:
        return None
    interesting = [e for e in entries if e.code in INTERESTING]
    entry = interesting[int(rng.integers(len(interesting)))] if interesting and rng.random() < 0.85 else \
        entries[int(rng.integers(len(entries)))]
    if entry.code not in INTERESTING and rng.random() < 0.3:  # a count bomb
        struct.pack_into(entry.order + "I", data, entry.at + 4, 0x3FFFFFFF)
        return f"count of tag {entry.code}=0x3FFFFFFF"
    ftype, values, what = _absurd(entry, bytes(data), entries, rng)
    set_tag(data, entry, ftype, values)
    return what


def mutate_flip(data: bytearray, rng: np.random.Generator) -> str:
    k = int(rng.integers(1, 17))
    # half the time stay in the first 4 KiB, where the headers are
    limit = min(len(data), 4096) if rng.random() < 0.5 else len(data)
    for pos in rng.integers(0, limit, k):
        data[int(pos)] = int(rng.integers(256))
    return f"flip {k} bytes"


def mutate_truncate(data: bytearray, rng: np.random.Generator) -> str:
    at = int(rng.integers(0, len(data)))
    del data[at:]
    return f"truncate at {at}"


def mutate_splice(data: bytearray, rng: np.random.Generator) -> str:
    at = int(rng.integers(0, len(data)))
    n = int(rng.integers(1, 4097))
    if rng.random() < 0.5:
        del data[at:at + n]
        return f"delete {n} bytes at {at}"
    data[at:at] = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
    return f"insert {n} bytes at {at}"


def mutate(seed: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    """A mutant of ``seed`` and what was done to it."""
    data = bytearray(seed)
    tiff = bool(tiff_entries(seed))
    done = []
    for _ in range(1 + int(rng.random() < 0.25)):
        if not data:
            break
        r = rng.random()
        if tiff and r < 0.55:
            what = mutate_tag(data, rng)
        elif r < 0.8:
            what = mutate_flip(data, rng)
        elif r < 0.92:
            what = mutate_truncate(data, rng)
        else:
            what = mutate_splice(data, rng)
        if what:
            done.append(what)
    return bytes(data), "; ".join(done) or "unchanged"


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
    from rawisp import synth

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
    parser = argparse.ArgumentParser(prog="python -m rawisp.fuzz", description=__doc__.split("\n\n")[0])
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
        print(f"rawisp.fuzz: no corpus folder {args.corpus}: synthetic seeds only", file=sys.stderr)
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
