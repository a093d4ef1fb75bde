#!/usr/bin/env bash
# Loss A/B: fine-tune the same starting weights for the same budget with each reconstruction loss
# (l1: L1 on sRGB + L1 linear; msssim: DeepISP's L1 + MS-SSIM; lab: LW-ISP's LAB loss), then score
# the three models with rawisp eval on the held-out validation photos (the training split's own
# hold-out, never Kodak24): PSNR, SSIM and CIEDE2000 at the clean / mid / high noise levels.
#   tools/experiments/loss_ab.sh runs/s2/checkpoint.pt runs/loss_ab 1200
set -euo pipefail
init=${1:?checkpoint to start from}; out=${2:-runs/loss_ab}; iters=${3:-1200}
data=../shared/data/train
D="--data $data/cbsd432 --data $data/imagenet_sample_1000 --data $data/sun_hays80"
common="--iterations $iters --lr 2e-4 --val-every 600 --seed 2 --init $init"
for loss in l1 msssim lab; do
  rawisp train $D $common --loss $loss --out "$out/$loss.onnx" --run-dir "$out/$loss"
done
python - "$out/val" $D <<'PY'
import sys
from pathlib import Path
from PIL import Image
from rawisp.train.data import load_photos
from rawisp.train.loop import TrainConfig, VAL_CROP, split_photos
folders = [Path(p) for p in sys.argv[2:] if p != "--data"]
cfg = TrainConfig(data=[], out="", run_dir="")
_, val = split_photos(load_photos(folders, min_side=max(cfg.patch, VAL_CROP)), cfg.val_holdout)
Path(sys.argv[1]).mkdir(parents=True, exist_ok=True)
for i, photo in enumerate(val):
    Image.fromarray(photo).save(Path(sys.argv[1]) / f"val{i:02d}.png")
PY
rawisp eval "$out/val" --model "$out/l1.onnx" --model "$out/msssim.onnx" --model "$out/lab.onnx" \
    --out "$out/loss_ab.json" -j 2 -q
