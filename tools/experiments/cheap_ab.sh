#!/usr/bin/env bash
# A cheaper network for issue #25's speed budget, equal CPU from scratch (issue #27's protocol, as
# the Bbf arms of v3_ab.sh: ratio domain, bf16 forward passes, lr 2e-3, 1200 CPU-s, one thread),
# one arm at a time. docs/model.md ("A cheaper network: pilot") has the results.
#   tools/experiments/cheap_ab.sh runs/ab3 1200 1        # output folder, CPU budget, seed
#   S: widths 16,32,64 (0.58x the time per tile); T: S + one convolution a block and no attention
#   at packed resolution (0.41x). The baseline is v3_ab.sh's Bbf arm of the same seed.
# Then: rawisp eval runs/val/photos --model runs/ab3/T1/lwisp.onnx (sets: tools/make_val_sets.py)
set -euo pipefail
out=${1:-runs/ab3}; budget=${2:-1200}; seed=${3:-1}
data=../shared/data/train
D="--data $data/cbsd432 --data $data/imagenet_sample_1000 --data $data/sun_hays80"
common="--cpu-budget $budget --seed $seed --clean-fraction 0.3 --procedural-fraction 0.15 --colour-fraction 0.2
        --neutral-above-green 0.05 --flat-fraction 0.2 --pattern-weight 2 --threads 1 --domain log --precision bf16"
mkdir -p "$out"
run() {  # name, arm flags
  nice -n 2 rawisp train $D $common $2 --out "$out/$1$seed/lwisp.onnx" --run-dir "$out/$1$seed" > "$out/$1$seed.out" 2>&1
}
run S "--widths 16,32,64"
run T "--widths 16,32,64 --block-convs 1 --no-packed-attention"
