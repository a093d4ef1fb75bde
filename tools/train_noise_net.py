"""Train and export rawisp's blind noise estimator (models/noise_net.onnx).

Uses the model's own training photos less its 40 held-out photos (never seen) and less 40 more
for validation (``noise_frames.photo_splits``), one CPU thread. Writes a snapshot every 250
iterations beside ``--out`` (``NAME_ITERATION.onnx``) for ``tools/select_noise_net.py`` to choose
from. Reproduce the shipped file (the 1750-iteration snapshot; docs/noise.md):

    nice -n 10 python tools/train_noise_net.py --out runs/noise/b.onnx     # ~8 minutes on one core
    python tools/select_noise_net.py runs/noise/b_*.onnx                   # then calibrate_noise_net.py
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from rawisp.train.data import load_photos  # noqa: E402
from rawisp.train.noise_frames import FOLDERS, TRAIN_ROOT, photo_splits  # noqa: E402
from rawisp.train.noise_net import EXPOSURE, export_onnx, train_noise_net  # noqa: E402

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", action="append", default=None, help="photo folder (repeatable)")
    parser.add_argument("--out", default="models/noise_net.onnx")
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=12)
    parser.add_argument("--patch", type=int, default=128, help="crop side, full resolution")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--exposure", default=",".join(map(str, EXPOSURE)),
                        help="LOW,HIGH exposure scale (log-uniform)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    photos = load_photos([Path(d) for d in args.data] if args.data else [TRAIN_ROOT / f for f in FOLDERS], min_side=128)
    train, _, _ = photo_splits(photos)
    print(f"{len(train)} training photos", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    start = time.time()
    net = train_noise_net(train, args.iterations, args.batch, args.patch, args.seed,
                          log=lambda m: print(f"{m} ({time.time() - start:.0f} s)", flush=True),
                          exposure_range=tuple(float(e) for e in args.exposure.split(",")),
                          snapshot=lambda n, it: export_onnx(n, str(out.with_name(f"{out.stem}_{it}.onnx"))))
    export_onnx(net, args.out)
    print(f"wrote {args.out} after {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
