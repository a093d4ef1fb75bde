"""Train and export rawisp's blind noise estimator (models/noise_net.onnx).

Uses the model's own training photos and its train/validation split (the 40 held-out photos are
never seen), one CPU thread. Reproduce the shipped file:

    nice -n 10 python tools/train_noise_net.py --out models/noise_net.onnx      # ~15 CPU-minutes
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from rawisp.train.data import load_photos  # noqa: E402
from rawisp.train.loop import split_photos  # noqa: E402
from rawisp.train.noise_net import export_onnx, train_noise_net  # noqa: E402

DATA = ["../shared/data/train/cbsd432", "../shared/data/train/imagenet_sample_1000", "../shared/data/train/sun_hays80"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", action="append", default=None, help="photo folder (repeatable)")
    parser.add_argument("--out", default="models/noise_net.onnx")
    parser.add_argument("--iterations", type=int, default=2500)
    parser.add_argument("--batch", type=int, default=12)
    parser.add_argument("--patch", type=int, default=128, help="crop side, full resolution")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    photos = load_photos([Path(d) for d in args.data or DATA], min_side=128)
    train, _ = split_photos(photos, 40)  # the same split as rawisp train's validation
    print(f"{len(train)} training photos", flush=True)
    start = time.time()
    net = train_noise_net(train, args.iterations, args.batch, args.patch, args.seed,
                          log=lambda m: print(f"{m} ({time.time() - start:.0f} s)", flush=True),
                          snapshot=lambda n: export_onnx(n, args.out))  # a usable file all along
    export_onnx(net, args.out)
    print(f"wrote {args.out} after {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
