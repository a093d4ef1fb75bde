"""Check a runtime and precision against onnxruntime's f32 output, and record in the model's card
whether bf16 may run by default (``precision.bf16.output_bits``).

    python tools/precision_check.py                                  # OpenVINO bf16, the shipped model
    python tools/precision_check.py --precision f32 --fmt png16 --fmt dng
    python tools/precision_check.py --keep-f32 '^/(head|enc1|dec1|up1)/' FILE.dng   # parts kept in f32
    python tools/precision_check.py --model runs/new.onnx --write    # record the verdict in its card

Develops every file (default: the bench's synthetic 24 MP frame, the Bayer files of
``../shared/data/raw/real`` and ``derived``, and Kodak24 as ``rawisp eval`` makes it into DNGs at
its three noise levels) with onnxruntime in f32 and with OpenVINO in the precision asked for,
through rawisp's own path with default settings, and prints how far each output is from the
reference (:mod:`rawisp.measure.precision`: 8-bit outputs >= 99.9% of values within 1 code and none
more than 4; 16-bit outputs and DNGs at most 1 code). Kodak24's scores are checked with ``rawisp
eval`` under ``RAWISP_PRECISION=bf16`` against ``RAWISP_RUNTIME=onnxruntime`` (within 0.02 dB at
every level). With ``--write`` (bf16, nothing kept in f32, the default files) the card records the
deepest output format whose every check passed, which makes bf16 the default there on CPUs with
bf16 units; or removes the record when none passed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from rawisp.engines.learned import default_model_path
from rawisp.measure.bench_scene import bench_frame
from rawisp.measure.precision import check_files
from rawisp.measure.protocol import find_images, load_image, parse_noise, synthesise
from rawisp.pipeline.compose import BITS

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def default_files(scratch: Path) -> list[Path]:
    """The bench frame, the real camera files beside the project and Kodak24's DNGs (written into
    ``scratch``) at the evaluation's noise levels, those that are there."""
    files = [bench_frame()]
    for folder in ("real", "derived"):
        files += sorted(p for p in (DATA / "raw" / folder).glob("*") if p.suffix.lower() != ".jpg" and p.is_file())
    kodak = DATA / "test" / "kodak24"
    for index, image in enumerate(find_images(kodak) if kodak.is_dir() else []):
        pixels = load_image(image)
        for noise in parse_noise("clean,mid,high"):
            files.append(scratch / f"{image.stem}_{noise.label}.dng")
            synthesise(pixels, files[-1], index, noise)
    return files


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="*", type=Path, help="RAW files [default: the bench frame and ../shared/data/raw]")
    ap.add_argument("--model", type=Path, default=None, help="ONNX model with its card [default: the shipped one]")
    ap.add_argument("--precision", choices=["f32", "bf16"], default="bf16")
    ap.add_argument("--keep-f32", default=None, help="regular expression of ONNX node names kept in f32")
    ap.add_argument("--fmt", action="append", choices=["png", "png16", "dng"], help="outputs [default: png]")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--write", action="store_true", help="record the bf16 verdict in the model's card")
    args = ap.parse_args(argv)
    if args.write and (args.precision != "bf16" or args.keep_f32 or args.files):
        ap.error("--write records whole-graph bf16 on the default files only (--precision bf16, no --keep-f32, "
                 "no FILES)")
    fmts = args.fmt or ["png"]
    candidate = {"precision": args.precision, "keep_f32": args.keep_f32}
    failed_bits = set()
    with tempfile.TemporaryDirectory(prefix="rawisp-precision-") as scratch:
        files = args.files or default_files(Path(scratch))
        for _, diff in check_files(files, fmts, {"candidate": candidate}, model=args.model, threads=args.threads):
            print(diff.line(), flush=True)
            if not diff.passes():
                failed_bits.add(BITS[diff.fmt])
    passed = sorted({BITS[f] for f in fmts} - failed_bits)
    print(f"passed: {', '.join(f'{b}-bit' for b in passed) or 'nothing'}")
    if args.write:
        card_file = (args.model or default_model_path()).with_suffix(".json")
        card = json.loads(card_file.read_text())
        record = card.setdefault("precision", {})
        # bf16 is invisible up to the deepest output that passed, if every shallower one passed too
        bits = passed[0] if passed and passed[0] == 8 else 0
        if bits == 8 and 16 in passed:
            bits = 16
        if bits:
            record["bf16"] = {"output_bits": bits, "command": "python tools/precision_check.py --write"}
        else:
            record.pop("bf16", None)
        if not record:
            card.pop("precision")
        card_file.write_text(json.dumps(card, indent=2) + "\n")
    return 0 if not failed_bits else 1


if __name__ == "__main__":
    sys.exit(main())
