#!/usr/bin/env bash
# Hard-mining A/B: fine-tune the same weights for the same budget and seed with and without
# --hard-fraction 0.5, then score both with rawisp eval on the held-out validation photos
# (written by tools/experiments/loss_ab.sh to runs/loss_ab/val; never Kodak24).
#   tools/experiments/mining_ab.sh runs/s2/checkpoint.pt runs/mine_ab 3000
set -euo pipefail
init=${1:?checkpoint to start from}; out=${2:-runs/mine_ab}; iters=${3:-3000}
val=${4:-runs/loss_ab/val}
data=../shared/data/train
D="--data $data/cbsd432 --data $data/imagenet_sample_1000 --data $data/sun_hays80"
common="--init $init --iterations $iters --lr 3e-4 --clean-fraction 0.3 --seed 5 --val-every 1500"
for hf in 0 0.5; do
  rawisp train $D $common --hard-fraction $hf --run-dir "$out/h$hf" --out "$out/h$hf.onnx"
done
rawisp eval "$val" --model "$out/h0.onnx" --model "$out/h0.5.onnx" --out "$out/val.json" -j 2 -q
