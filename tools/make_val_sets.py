"""Write the model's own validation sets as PNG ground truth for `rawisp eval` (never Kodak24).

    python tools/make_val_sets.py runs/val

- ``photos/``: the 40 photos `rawisp train` holds out of training (same split, same 2x downscale);
- ``saturated/``: the same photos with decorrelated colours (saturation, hue, channel order;
  seeded), standing in for flowers, fabrics and painted objects;
- ``procedural/``: 24 seeded 384-px procedural images (dead leaves, gratings, facades, text);
- ``edges/``: 24 seeded 384-px saturated colour dead leaves (``colour_edges``: flat colours of
  saturation 0.6-1, sharp edges whose R, G and B do not move together, radii 2-120 px).

Then, for example: ``rawisp eval runs/val/saturated --model models/lwisp.onnx -j 2``, or
``rawisp eval runs/val/edges --engine learned --engine libraw-dht --engine classical --noise clean,mid``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from rawisp.train.data import load_photos
from rawisp.train.loop import VAL_CROP, TrainConfig, split_photos
from rawisp.train.procedural import colour_augment, colour_edges, procedural

DATA = "../shared/data/train"
FOLDERS = ("cbsd432", "imagenet_sample_1000", "sun_hays80")


def edges_set(n: int, size: int = 384, seed: int = 27) -> list[np.ndarray]:
    """The ``edges`` set: ``n`` seeded saturated colour dead leaves, sRGB float ``(size, size, 3)``
    (its own seed: the other sets stay as they were)."""
    rng = np.random.default_rng(seed)
    return [colour_edges(rng, size) for _ in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--data", default=DATA, help="folder holding the training photo folders")
    parser.add_argument("--procedural", type=int, default=24, help="number of procedural images")
    parser.add_argument("--edges", type=int, default=24, help="number of colour-edge images")
    args = parser.parse_args()
    cfg = TrainConfig(data=[], out="", run_dir="")
    photos = load_photos([Path(args.data) / f for f in FOLDERS], min_side=max(cfg.patch, VAL_CROP))
    _, val = split_photos(photos, cfg.val_holdout)
    rng = np.random.default_rng(2024)
    sets = {
        "photos": val,
        "saturated": [colour_augment(p.astype(np.float32) / 255.0, rng) for p in val],
        "procedural": [procedural(rng, 384) for _ in range(args.procedural)],
        "edges": edges_set(args.edges),
    }
    for name, images in sets.items():
        folder = args.out / name
        folder.mkdir(parents=True, exist_ok=True)
        for i, img in enumerate(images):
            if img.dtype != np.uint8:
                img = np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)
            Image.fromarray(img).save(folder / f"{name}{i:02d}.png")
        print(f"{folder}: {len(images)} images")


if __name__ == "__main__":
    main()
