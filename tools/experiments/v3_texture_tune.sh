#!/usr/bin/env bash
# Texture crops joining the long run (issue #27 item 3): the long run's checkpoint resumed with 15%
# low-contrast texture crops, everything else (lr, schedule, seed, data mix) as the long run; the
# long run itself, going on from the same checkpoint, is the other arm. Compare the two logs'
# validations at equal CPU seconds, and both exports with tools/model_defects.py --only texture.
#   tools/experiments/v3_texture_tune.sh CHECKPOINT     # log: runs/v3tex/train.log
set -euo pipefail
run=runs/v3tex
mkdir -p "$run"
[ -e "$run/checkpoint.pt" ] || cp "$1" "$run/checkpoint.pt"
data=../shared/data/train
nohup nice -n 2 rawisp train --data $data/cbsd432 --data $data/imagenet_sample_1000 --data $data/sun_hays80 \
  --out "$run/lwisp.onnx" --run-dir "$run" --domain log --cpu-budget 36000 --ema 0.999 --seed 3 \
  --clean-fraction 0.3 --procedural-fraction 0.15 --colour-fraction 0.2 --neutral-above-green 0.05 \
  --flat-fraction 0.2 --pattern-weight 2 --threads 1 --lr 1e-3 --precision bf16 \
  --texture-fraction 0.15 >> "$run.out" 2>&1 &
echo "training in the background (pid $!); tail -f $run/train.log"
