#!/usr/bin/env bash
# Architecture A/B for model v2 at equal CPU time (issue #16): three variants fine-tuned from the
# shipped weights (models/lwisp.onnx; the bilinear skip convolutions start as the mean of the
# sub-pixel ones) on the same data mix and seed, each for the same process CPU seconds, one thread
# each, run side by side at low priority:
#   A subpixel skips + bilinear base (today's graph)
#   B bilinear skips + bilinear base
#   C bilinear skips + Malvar-He-Cutler base
# Scored on the validation sets training logs (held-out photos at three noise levels, the same
# crops colour-decorrelated, procedural images); `rawisp eval` on the held-out photos after.
#   tools/experiments/arch_ab.sh runs/arch_ab 700
set -euo pipefail
out=${1:-runs/arch_ab}; budget=${2:-700}
data=../shared/data/train
D="--data $data/cbsd432 --data $data/imagenet_sample_1000 --data $data/sun_hays80"
common="--init models/lwisp.onnx --cpu-budget $budget --lr 5e-4 --clean-fraction 0.3 --procedural-fraction 0.25
        --colour-fraction 0.25 --neutral-above-green 0.05 --seed 5 --threads 1 --val-every 200"
mkdir -p "$out"
run() {  # name, model flags
  nohup nice -n 2 rawisp train $D $common $2 --out "$out/$1.onnx" --run-dir "$out/$1" \
      > "$out/$1.out" 2>&1 &
  echo $! >> "$out/pids"
}
run A "--skip subpixel --base bilinear"
run B "--skip bilinear --base bilinear"
run C "--skip bilinear --base mhc"
wait
