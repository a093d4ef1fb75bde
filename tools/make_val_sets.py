"""Write the model's own validation sets as PNG ground truth for `rawisp eval` (never Kodak24).

    python tools/make_val_sets.py runs/val

- ``photos/``: the 40 photos `rawisp train` holds out of training (same split, same 2x downscale);
- ``saturated/``: the same photos with decorrelated colours (saturation, hue, channel order;
  seeded), standing in for flowers, fabrics and painted objects;
- ``procedural/``: 24 seeded 384-px procedural images (dead leaves, gratings, facades, text).

Then, for example: ``rawisp eval runs/val/saturated --model models/lwisp.onnx -j 2``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from rawisp.train.data import load_photos
from rawisp.train.loop import VAL_CROP, TrainConfig, split_photos
from rawisp.train.procedural import colour_augment, procedural

DATA = "../shared/data/train"
FOLDERS = ("cbsd432", "imagenet_sample_1000", "sun_hays80")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--data", default=DATA, help="folder holding the training photo folders")
    parser.add_argument("--procedural", type=int, default=24, help="number of procedural images")
    args = parser.parse_args()
    cfg = TrainConfig(data=[], out="", run_dir="")
    photos = load_photos([Path(args.data) / f for f in FOLDERS], min_side=max(cfg.patch, VAL_CROP))
    _, val = split_photos(photos, cfg.val_holdout)
    rng = np.random.default_rng(2024)
    sets = {
        "photos": val,
        "saturated": [colour_augment(p.astype(np.float32) / 255.0, rng) for p in val],
        "procedural": [procedural(rng, 384) for _ in range(args.procedural)],
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
