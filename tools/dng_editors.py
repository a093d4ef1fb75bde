"""How rawpy, darktable and RawTherapee develop rawisp's DNGs against the original.

    python tools/dng_editors.py [--size 600x400] [--real FILE ...] [--work DIR]
    python tools/dng_editors.py --kodak IMAGE [IMAGE ...] [--noise mid] [--work DIR] [--model FILE]
    python tools/dng_editors.py --bayer-real FILE [FILE ...] [--work DIR]

Linear DNGs (--format linear-dng): makes the synthetic chart DNG (Orientation 6), writes rawisp's
linear DNG of it with each engine, then develops original and DNG with every installed editor, with
its defaults and with its look switched off (see rawisp.measure.editors), and RawTherapee also with
its defaults less the raw CA correction it applies to Bayer data only, and prints the mean
CIEDE2000 over the chart's flat regions. Each --real FILE gets the same rows with the mean
CIEDE2000 of 16x16-pixel block means (the classical engine's DNG).

Bayer DNGs (--kodak): each ground-truth IMAGE goes through rawisp's synthetic DNG protocol
(rawisp.measure.protocol) clean and at --noise; rawisp writes the Bayer DNG (--format dng) of the
noisy one with the learned engine and, for comparison, the linear DNG; each editor develops all
four with its defaults, and the PSNR of each development against the editor's own development of
the clean DNG is printed (centre crop to a common size). Each --bayer-real FILE gets the learned
engine's Bayer DNG: what rawpy reads (CFA, levels), the NoiseProfile, the problems exiftool -validate
finds that the source does not have, and each editor's development with its defaults against its
development of the original (size, mean CIEDE2000 of 16x16-pixel block means). The tables of
docs/dng.md come from this script.
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


def develop_dng(out: Path, engine: str, *sources: Path, fmt: str = "linear-dng", model: Path | None = None) -> None:
    """``rawisp develop`` of ``sources`` into ``out``; ``model``: the learned engine's ONNX file."""
    chosen = ["--model", str(model)] if model and engine == "learned" else []
    subprocess.run([sys.executable, "-m", "rawisp", "develop", "--format", fmt, "-q", "--engine", engine,
                    *chosen, "-o", str(out), *map(str, sources)], check=True)


def kodak_rows(image: Path, noise: str, work: Path, scores: dict, model: Path | None = None) -> list[str]:
    """PSNR against each editor's development of the clean DNG: the noisy DNG, rawisp's Bayer DNG
    and linear DNG of it (learned engine); and how far each is from the noisy original. Each score
    is also appended to ``scores[(editor, label)]``."""
    from rawisp.measure.metrics import psnr
    from rawisp.measure.protocol import find_images, load_image, parse_noise, synthesise

    [level] = parse_noise(noise)
    index = find_images(image.parent).index(image) if image.parent.is_dir() else 0
    folder = work / image.stem
    folder.mkdir(parents=True, exist_ok=True)
    picture = load_image(image)
    synthesise(picture, folder / "clean.dng", index, parse_noise("clean")[0])
    synthesise(picture, folder / "noisy.dng", index, level)
    develop_dng(folder / "bayer", "learned", folder / "noisy.dng", fmt="dng", model=model)
    develop_dng(folder / "linear", "learned", folder / "noisy.dng", fmt="linear-dng", model=model)
    files = {"noisy original": folder / "noisy.dng", "Bayer DNG": folder / "bayer" / "noisy.dng",
             "linear DNG": folder / "linear" / "noisy.dng"}
    lines = []
    for editor in editors.EDITORS:
        if reason := editors.missing(editor):
            lines.append(f"  {editor:<12} skipped: {reason}")
            continue
        reference = editors.develop_with(editor, folder / "clean.dng", folder / editor)
        cells = []
        for label, path in files.items():
            candidate = editors.develop_with(editor, path, folder / editor / label.replace(" ", "_"))
            shape = tuple(min(a, b) for a, b in zip(reference.shape[:2], candidate.shape[:2]))
            score = psnr(editors.centre_crop(reference, shape), editors.centre_crop(candidate, shape), border=0)
            size = "x".join(map(str, candidate.shape[1::-1]))
            cells.append(f"{label} {score:6.2f} dB ({size})")
            scores.setdefault((editor, label), []).append(score)
        lines.append(f"  {editor:<12} " + "   ".join(cells))
    return lines


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


def exiftool_problems(path: Path) -> set[str]:
    """The warnings and errors of ``exiftool -validate``, one string each."""
    out = subprocess.run(["exiftool", "-validate", "-warning", "-a", str(path)], capture_output=True, text=True)
    return {" ".join(line.split(None, 2)[::2]) for line in out.stdout.splitlines()
            if line.startswith(("Warning", "Error"))}


def bayer_real_rows(path: Path, work: Path, model: Path | None = None) -> list[str]:
    """The learned engine's Bayer DNG of a real file: rawpy's reading, NoiseProfile, exiftool, editors."""
    import rawpy

    import rawisp
    from rawisp.io.decode import decode

    out = work / "bayer_real"
    develop_dng(out, "learned", path, fmt="dng", model=model)
    dng = out / f"{path.stem}.dng"
    with rawpy.imread(str(path)) as src, rawpy.imread(str(dng)) as raw:
        same = (np.array_equal(raw.raw_colors_visible, src.raw_colors_visible)
                and list(raw.black_level_per_channel) == list(src.black_level_per_channel)
                and raw.white_level == src.white_level)
        pattern = "".join(raw.color_desc.decode()[c] for c in raw.raw_colors_visible[:2, :2].ravel())
    chosen, left = rawisp.info(path), decode(dng).noise
    lines = [f"  rawpy reads a {pattern} CFA, source's colours and levels: {same}; noise (shot, read std): "
             f"source {chosen['noise']} ({chosen['noise_source']}), DNG's NoiseProfile "
             f"{tuple(float(f'{v:.3g}') for v in left)}; {dng.stat().st_size / 1e6:.1f} MB",
             f"  exiftool -validate, new against the source: {sorted(exiftool_problems(dng) - exiftool_problems(path))}"]
    for editor in editors.EDITORS:
        if reason := editors.missing(editor):
            lines.append(f"  {editor:<12} skipped: {reason}")
            continue
        candidate = editors.develop_with(editor, dng, work / "dng")
        size = "x".join(map(str, candidate.shape[1::-1]))
        try:
            reference = editors.develop_with(editor, path, work / "ref")
        except RuntimeError:  # an original the editor cannot read (darktable: Kodak's KDC)
            lines.append(f"  {editor:<12} {size} (the original does not open)")
            continue
        lines.append(f"  {editor:<12} {size} (original {'x'.join(map(str, reference.shape[1::-1]))}), "
                     f"block CIEDE2000 {editors.block_delta_e(reference, candidate):.2f}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="600x400", help="chart WIDTHxHEIGHT")
    parser.add_argument("--real", nargs="*", type=Path, default=[], help="real RAW files to compare as well")
    parser.add_argument("--work", type=Path, help="keep the files here (default: a temporary folder)")
    parser.add_argument("--kodak", nargs="*", type=Path, default=[],
                        help="ground-truth images: measure the Bayer DNG through the editors instead (see above)")
    parser.add_argument("--noise", default="mid", help="noise preset of --kodak (clean, mid, high or SHOT:READ)")
    parser.add_argument("--bayer-real", nargs="*", type=Path, default=[],
                        help="real Bayer RAW files: check the learned engine's Bayer DNG of each (see above)")
    parser.add_argument("--model", type=Path, help="ONNX model of the learned engine [default: the shipped one]")
    args = parser.parse_args()
    if args.model and not args.model.is_file():
        parser.error(f"--model {args.model}: no such file")
    if args.bayer_real:
        with tempfile.TemporaryDirectory() as tmp:
            work = args.work or Path(tmp)
            for path in args.bayer_real:
                print(f"{path.name}, learned engine's Bayer DNG:")
                print("\n".join(bayer_real_rows(path, work, args.model)))
        return
    if args.kodak:
        with tempfile.TemporaryDirectory() as tmp:
            work = args.work or Path(tmp)
            print(f"PSNR against the editor's development of the clean DNG, defaults, noise {args.noise}")
            scores: dict[tuple[str, str], list[float]] = {}
            for image in args.kodak:
                print(f"{image.name}:")
                print("\n".join(kodak_rows(image, args.noise, work, scores, args.model)))
            print(f"mean over {len(args.kodak)} images:")
            for editor in dict.fromkeys(editor for editor, _ in scores):
                cells = {label: float(np.mean(v)) for (e, label), v in scores.items() if e == editor}
                gain = cells["Bayer DNG"] - cells["noisy original"]
                print(f"  {editor:<12} " + "   ".join(f"{label} {v:6.2f} dB" for label, v in cells.items())
                      + f"   Bayer DNG gain {gain:+.2f} dB")
        return
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
