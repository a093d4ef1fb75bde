"""Noise left and detail kept on real camera files: the classical engine against the learned one.

Each file is developed by both engines as ``rawisp compare`` renders them (``rawisp.develop``,
16-bit sRGB, camera white balance, default tone). On the classical result two 64x64 regions are
chosen: the flattest dark one (tiles darker than the median, away from black; the least
structure at coarse scales, Gaussian 2 - Gaussian 6 on luma) and the most detailed one (the most
coarse structure, away from clipping). In both engines' results the same regions are measured on
sRGB luma in 8-bit units (0..255): the std of the fine high-pass (luma - Gaussian 1) in the flat
region (noise left) and in the detailed region, and the std of the band Gaussian 1 - Gaussian 3
in the detailed region (detail at the scale of a few pixels, where noise weighs less).

    python tools/measure_real_noise.py ../shared/data/raw/real/*.CRW ../shared/data/raw/real/*.dng \
        ../shared/data/raw/derived/*.dng

Needs SciPy (``pip install scipy``; its Gaussian filters), which rawisp itself does not.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import rawisp  # noqa: E402

TILE = 64


def luma(pixels: np.ndarray) -> np.ndarray:
    """Rec. 709 luma of 16-bit sRGB-encoded pixels, in 8-bit units."""
    return (pixels.astype(np.float64) / 257) @ np.array([0.2126, 0.7152, 0.0722])


def regions(y: np.ndarray) -> tuple[tuple[int, int], tuple[int, int]]:
    """(flat dark, detailed) tiles' top-left corners, chosen on the classical result's luma ``y``."""
    coarse = gaussian_filter(y, 2) - gaussian_filter(y, 6)
    step = TILE // 2
    tiles = [(r, c) for r in range(0, y.shape[0] - TILE + 1, step) for c in range(0, y.shape[1] - TILE + 1, step)]
    mean = np.array([y[r:r + TILE, c:c + TILE].mean() for r, c in tiles])
    structure = np.array([coarse[r:r + TILE, c:c + TILE].std() for r, c in tiles])
    dark = (mean < np.median(mean)) & (mean > 8)
    bright_ok = mean < 230
    flat = tiles[int(np.argmin(np.where(dark, structure, np.inf)))]
    detailed = tiles[int(np.argmax(np.where(bright_ok, structure, -np.inf)))]
    return flat, detailed


def measure(path: Path, threads: int) -> list[str]:
    """Table rows for one file."""
    ys = {engine: luma(rawisp.develop(path, engine, bits=16, threads=threads)) for engine in ("classical", "learned")}
    (fr, fc), (dr, dc) = regions(ys["classical"])
    rows = []
    for engine, y in ys.items():
        fine = y - gaussian_filter(y, 1)
        band = gaussian_filter(y, 1) - gaussian_filter(y, 3)
        flat = fine[fr:fr + TILE, fc:fc + TILE]
        detail = (slice(dr, dr + TILE), slice(dc, dc + TILE))
        rows.append(f"| {path.name} | {engine} | {y[fr:fr + TILE, fc:fc + TILE].mean():.0f} at ({fc}, {fr}) | "
                    f"{flat.std():.2f} | ({dc}, {dr}) | {fine[detail].std():.2f} | {band[detail].std():.2f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    print("| file | engine | flat region: luma at (x, y) | noise left (fine std) | detailed region (x, y) "
          "| fine std | band std |")
    print("|---|---|---|---|---|---|---|")
    for path in args.files:
        for row in measure(path, args.threads):
            print(row, flush=True)


if __name__ == "__main__":
    main()
