"""Measure the learned engine's known defects (issue #16) on synthetic DNGs, through `rawisp develop`.

    python tools/model_defects.py [--model FILE.onnx] [--json OUT]

- pattern: a noise-free flat grey at 0.02 and 0.17 linear, developed to 16-bit TIFF with linear
  tone; for periods 2, 4 and 8, the peak-to-peak of the mean over each position mod the period
  (both axes), as a share of the mean (%, worst channel). Judge: <= 0.1%.
- specks: a flat dark grey (0.02 linear) at the eval presets' mid and high noise, developed to
  8-bit; isolated pixels whose luminance is 8 or more levels (of 255) below the median of their
  5x5 neighbourhood while none of their 8 neighbours is, per megapixel. Judge: none. Beside it the
  deep ones, 14 or more levels below (8 levels is about 4.5 standard deviations of the noise the
  model leaves there, so a few of the shallow ones are that noise's tail; 14 levels is 8).
- hue: a chart of strongly saturated patches (12 hues, and yellow at full saturation), clean,
  developed to 8-bit; mean and worst CIEDE2000 of the patch interiors against the truth.
- texture: the 512-px grey dead-leaves targets of ``rawisp.measure.texture`` (normal; dark low-contrast,
  mean 0.05 linear, 3:1) at each noise preset (clean, mid, high), developed to 16-bit TIFF with
  linear tone and otherwise default settings (``--denoise auto``: the DNG's NoiseProfile; ``--grain``
  0.3);
  texture MTF (mean over 0.1-0.3 cycles/px, 1 = all kept) and residual noise above 0.2
  cycles/px (% of the mean level) of the linear luminance, as ``rawisp.measure.texture.measure`` defines them.
- colour_edges: the first 8 images of ``tools/make_val_sets.py``'s ``edges`` set (saturated colour
  dead leaves, 384 px), clean and mid, as ``rawisp eval`` makes and scores them (its camera, seeds,
  8-bit PNG with linear tone, 10-pixel border): mean sRGB PSNR (dB) against the truth.

``--setting "OPTIONS"`` (repeatable) develops with those options (``"--grain 0.5"``);
``--engine classical`` measures the classical engine the same way; ``--only SECTION`` (repeatable)
runs some sections only.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from rawisp.measure import texture
from rawisp.colour import srgb_encode
from rawisp.measure.metrics import ciede2000, psnr, srgb_to_lab
from rawisp.measure.protocol import NOISE_PRESETS, Noise, synthesise
from rawisp.measure.synth import srgb_to_dng
from rawisp.train.procedural import colour_edges

SIZE = 256
NOISE = {"mid": (1e-3, 5e-4), "high": (6e-3, 2e-3)}
WHITE, BLACK = 16383, 512
DEEP = 14.0  # levels (of 255) below the 5x5 median from which a speck counts as deep
SECTIONS = ("pattern", "specks", "hue", "texture", "colour_edges")
TEXTURE_SIZE = 512  # side of the dead-leaves targets
EDGES, EDGES_SIZE, EDGES_SEED = 8, 384, 27  # the first 8 images of make_val_sets' edges set
EDGES_BORDER = 10  # rawisp eval's default border


def develop(dng: Path, out: Path, model: str | None, *extra: str, engine: str = "learned") -> Path:
    """Develop one DNG with ``engine`` (the learned one by default) via the command line; returns the output file."""
    args = [sys.executable, "-m", "rawisp", "develop", str(dng), "-o", str(out), "-q", "--overwrite", *extra]
    if engine != "learned":
        args += ["--engine", engine]
    if model:
        args += ["--model", model]
    subprocess.run(args, check=True, capture_output=True, text=True)
    return next(p for p in out.iterdir() if p.stem == dng.stem)


def flat(level: float) -> np.ndarray:
    """A flat grey sRGB image at ``level`` linear, float in [0, 1]."""
    return np.full((SIZE, SIZE, 3), float(srgb_encode(np.float64(level))))


def periodic_peak_to_peak(img: np.ndarray, period: int, border: int = 32) -> float:
    """Worst channel's peak-to-peak of the per-position means mod ``period``, as % of the mean."""
    core = img[border:-border, border:-border].astype(np.float64)
    h, w = (s - s % period for s in core.shape[:2])
    cells = core[:h, :w].reshape(h // period, period, w // period, period, -1).mean(axis=(0, 2))
    return float(np.max((cells.max(axis=(0, 1)) - cells.min(axis=(0, 1))) / core.mean(axis=(0, 1))) * 100)


def count_specks(img: np.ndarray, drop: float = 8.0) -> float:
    """Isolated dark pixels per megapixel in an 8-bit image (see the module docstring)."""
    lum = img.astype(np.float64) @ np.array([0.2126, 0.7152, 0.0722])
    pad = np.pad(lum, 2, mode="reflect")
    windows = np.lib.stride_tricks.sliding_window_view(pad, (5, 5))
    dark = (np.median(windows, axis=(2, 3)) - lum) >= drop
    padded = np.pad(dark, 1)
    neighbours = sum(np.roll(np.roll(padded, dy, 0), dx, 1) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                     if dy or dx)[1:-1, 1:-1]
    return float(np.sum(dark & (neighbours == 0)) / lum.size * 1e6)


def saturated_chart(patch: int = 48) -> np.ndarray:
    """13 saturated patches in a row: 12 hues (HSV saturation 0.9, value 0.85) and pure yellow."""
    hues = np.arange(12) / 12
    k = (np.array([5.0, 3.0, 1.0])[None, :] + hues[:, None] * 6.0) % 6.0
    colours = 0.85 * (1.0 - 0.9 * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0))
    colours = np.vstack([colours, [0.95, 0.9, 0.05]])
    return np.repeat(np.repeat(colours[None], patch, axis=0), patch, axis=1).reshape(patch, -1, 3)


def edges_images(n: int = EDGES) -> list[np.ndarray]:
    """The first ``n`` images of the ``edges`` validation set as its PNGs hold them (uint8 sRGB)."""
    rng = np.random.default_rng(EDGES_SEED)
    return [np.round(np.clip(colour_edges(rng, EDGES_SIZE), 0, 1) * 255).astype(np.uint8) for _ in range(n)]


def texture_report(truth: np.ndarray, output: np.ndarray) -> dict:
    """Texture MTF (0.1-0.3 cycles/px) and residual noise (% of the mean) of a 16-bit sRGB output."""
    m = texture.measure(truth, output.astype(np.float64) / 65535.0, encoding="srgb")
    return {"mtf": round(m["mtf"], 3), "noise_percent": round(m["noise_percent"], 2)}


def measure(model: str | None, engine: str = "learned", sections: tuple[str, ...] = SECTIONS,
            setting: tuple[str, ...] = ()) -> dict:
    """The measurements of ``sections`` for one model (None: the shipped one) or engine, developed with
    ``rawisp develop``'s defaults and the options ``setting`` (such as ``("--grain", "0.5")``)."""
    report: dict = {}
    if "pattern" in sections:
        report["pattern_percent"] = {}
    if "specks" in sections:
        report.update(specks_per_mp={}, deep_specks_per_mp={})
    if "hue" in sections:
        report["hue"] = {}

    def dev(dng: Path, *extra: str) -> Path:
        return develop(dng, tmp / "out", model, *extra, *setting, engine=engine)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for level in (0.02, 0.17) if "pattern" in sections else ():
            dng = tmp / f"flat{level}.dng"
            srgb_to_dng(dng, flat(level), black=BLACK, white=WHITE)
            img = tifffile.imread(dev(dng, "--format", "tiff16", "--tone", "linear"))
            report["pattern_percent"][str(level)] = {p: round(periodic_peak_to_peak(img, p), 3) for p in (2, 4, 8)}
        for name, noise in NOISE.items() if "specks" in sections else ():
            dng = tmp / f"dark_{name}.dng"
            srgb_to_dng(dng, np.tile(flat(0.02), (4, 4, 1)), black=BLACK, white=WHITE, noise=noise, seed=1)
            img = np.asarray(Image.open(dev(dng, "--format", "png", "--tone", "linear")))
            report["specks_per_mp"][name] = round(count_specks(img), 1)
            report["deep_specks_per_mp"][name] = round(count_specks(img, DEEP), 1)
        if "hue" in sections:
            chart = saturated_chart()
            dng = tmp / "chart.dng"
            srgb_to_dng(dng, chart, black=BLACK, white=WHITE)
            img = np.asarray(Image.open(dev(dng, "--format", "png", "--tone", "linear")))
            patch = chart.shape[0]
            de = ciede2000(srgb_to_lab(img.astype(np.float64) / 255), srgb_to_lab(chart))
            per_patch = [float(de[8:-8, i * patch + 8:(i + 1) * patch - 8].mean())
                         for i in range(chart.shape[1] // patch)]
            yellow = img[8:-8, -patch + 8:-8].reshape(-1, 3).mean(axis=0)
            report["hue"] = {"mean_delta_e00": round(float(np.mean(per_patch)), 2),
                             "worst_delta_e00": round(float(np.max(per_patch)), 2),
                             "yellow_rgb": [round(float(v), 1) for v in yellow],
                             "yellow_truth": [round(float(v) * 255, 1) for v in chart[0, -1]]}
        if "texture" in sections:
            report["texture"] = {}
            for kind in texture.TARGETS:
                truth = texture.target(kind, TEXTURE_SIZE)
                report["texture"][kind] = {}
                for name, noise in NOISE_PRESETS.items():
                    dng = tmp / f"leaves_{kind}_{name}.dng"
                    srgb_to_dng(dng, truth, black=BLACK, white=WHITE, noise=noise, seed=1)
                    img = tifffile.imread(dev(dng, "--format", "tiff16", "--tone", "linear"))
                    report["texture"][kind][name] = texture_report(truth, img)
        if "colour_edges" in sections:
            scores: dict[str, list[float]] = {"clean": [], "mid": []}
            for i, truth in enumerate(edges_images()):
                for name in scores:
                    dng = tmp / f"edges{i:02d}_{name}.dng"
                    synthesise(truth, dng, i, Noise(name, *NOISE_PRESETS[name]))
                    img = np.asarray(Image.open(dev(dng, "--format", "png", "--tone", "linear")))
                    scores[name].append(psnr(img, truth, EDGES_BORDER))
            report["colour_edges"] = {f"{name}_psnr_db": round(float(np.mean(v)), 2) for name, v in scores.items()}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", default=None, help="ONNX model (repeatable; default: shipped)")
    parser.add_argument("--engine", choices=("learned", "classical"), default="learned",
                        help="engine to measure (default: learned; classical ignores --model)")
    parser.add_argument("--setting", action="append", default=None, metavar='"OPTIONS"',
                        help='develop options to measure, such as "--grain 0.5" (repeatable: a report each; '
                             "default: develop's defaults)")
    parser.add_argument("--only", action="append", choices=SECTIONS, help="run this section only (repeatable)")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args()
    sections = tuple(args.only or SECTIONS)
    if args.engine == "classical":
        reports = {"classical": measure(None, "classical", sections)}
    else:
        reports = {f"{m or 'shipped'} {s}".strip(): measure(m, "learned", sections, tuple(s.split()))
                   for m in (args.model or [None]) for s in (args.setting or [""])}
    print(json.dumps(reports, indent=1))
    if args.json:
        args.json.write_text(json.dumps(reports, indent=1) + "\n")


if __name__ == "__main__":
    main()
