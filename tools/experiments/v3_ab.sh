#!/usr/bin/env bash
# Equal-CPU A/B from scratch for model v3 (issue #27): each arm trains from scratch with the v2
# data mix, flat crops and the pattern loss from the start, for the same process CPU seconds, one
# thread, two arms at a time. docs/model.md ("Equal-CPU A/B from scratch") has the results.
#   tools/experiments/v3_ab.sh runs/ab3 1200 1        # output folder, CPU budget, seed
#   A today's graph; B --domain log; D B + --widths 30,40,64; F B + --texture-fraction 0.15;
#   Bbf B + --precision bf16 (forward passes in bfloat16)
# Then: python tools/make_val_sets.py runs/val; rawisp eval runs/val/photos --model runs/ab3/B1/lwisp.onnx
set -euo pipefail
out=${1:-runs/ab3}; budget=${2:-1200}; seed=${3:-1}
data=../shared/data/train
D="--data $data/cbsd432 --data $data/imagenet_sample_1000 --data $data/sun_hays80"
common="--cpu-budget $budget --seed $seed --clean-fraction 0.3 --procedural-fraction 0.15 --colour-fraction 0.2
        --neutral-above-green 0.05 --flat-fraction 0.2 --pattern-weight 2 --threads 1"
mkdir -p "$out"
run() {  # name, arm flags; waits while two arms run
  while [ "$(pgrep -fc 'rawisp train')" -ge 2 ]; do sleep 30; done
  nohup rawisp train $D $common $2 --out "$out/$1$seed/lwisp.onnx" --run-dir "$out/$1$seed" \
      > "$out/$1$seed.out" 2>&1 &
  sleep 5
}
run A ""
run B "--domain log"
run D "--domain log --widths 30,40,64"
run F "--domain log --texture-fraction 0.15"
run Bbf "--domain log --precision bf16"
wait
