"""How rawpy, darktable and RawTherapee develop rawisp's linear DNG against the original.

    python tools/dng_editors.py [--size 600x400] [--real FILE ...] [--work DIR]

Makes the synthetic chart DNG (Orientation 6), writes rawisp's DNG of it with each engine, then
develops original and DNG with every installed editor, with its defaults and with its look switched
off (see rawisp.measure.editors), and RawTherapee also with its defaults less the raw CA correction it
applies to Bayer data only, and prints the mean CIEDE2000 over the chart's flat regions. Each --real
FILE gets the same rows with the mean CIEDE2000 of 16x16-pixel block means (the classical engine's
DNG). The table of docs/dng.md comes from this script.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from rawisp.io.metadata import apply_orientation
from rawisp.measure import editors
from rawisp.measure.chart import make_chart
from rawisp.measure.synth import srgb_to_dng


def develop_dng(out: Path, engine: str, *sources: Path) -> None:
    subprocess.run([sys.executable, "-m", "rawisp", "develop", "--format", "dng", "-q", "--engine", engine,
                    "-o", str(out), *map(str, sources)], check=True)


def rows(source: Path, dng: Path, work: Path, score) -> list[str]:
    lines = []
    for editor in editors.EDITORS:
        if reason := editors.missing(editor):
            lines.append(f"  {editor:<12} skipped: {reason}")
            continue
        looks = {"default": {}, "neutral": {"neutral": True}}
        if editor == "rawtherapee":
            looks["default less raw CA"] = {"raw_ca": False}
        cells = []
        for look, options in looks.items():
            reference = editors.develop_with(editor, source, work / "ref", **options)
            candidate = editors.develop_with(editor, dng, work / "dng", **options)
            size = "x".join(map(str, candidate.shape[1::-1]))
            cells.append(f"{look} {score(reference, candidate):6.2f} ({size})")
        lines.append(f"  {editor:<12} " + "   ".join(cells))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="600x400", help="chart WIDTHxHEIGHT")
    parser.add_argument("--real", nargs="*", type=Path, default=[], help="real RAW files to compare as well")
    parser.add_argument("--work", type=Path, help="keep the files here (default: a temporary folder)")
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        chart = make_chart(width, height)
        source = work / "chart.dng"
        srgb_to_dng(source, chart, orientation=6, make="rawisp", model="Chart")
        mask = apply_orientation(np.repeat(editors.flat_mask(chart)[..., None], 3, axis=2), 6)[..., 0]
        print(f"mean CIEDE2000, editor's development of rawisp's DNG vs of the original (output size)")
        for engine in ("classical", "learned"):
            develop_dng(work / engine, engine, source)
            print(f"chart {width}x{height}, Orientation 6, flat regions, {engine} engine's DNG:")
            print("\n".join(rows(source, work / engine / "chart.dng", work,
                                 lambda a, b: editors.flat_delta_e(a, b, mask))))
        for path in args.real:
            develop_dng(work / "real", "classical", path)
            print(f"{path.name}, 16x16 block means, classical engine's DNG:")
            print("\n".join(rows(path, work / "real" / f"{path.stem}.dng", work, editors.block_delta_e)))


if __name__ == "__main__":
    main()
