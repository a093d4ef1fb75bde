#!/usr/bin/env bash
# The long from-scratch run of model v3 (issue #27), in the background at one thread; resumes
# runs/v3long/checkpoint.pt, or checkpoints/v3-long.pt when runs/ is empty. The run finished in
# session 12 (iteration 62586, not shipped); its checkpoint left the tree: git show
# f844e34:checkpoints/v3-long.pt > checkpoints/v3-long.pt brings it back for a fine-tune arm.
#   tools/experiments/v3_long.sh            # log: runs/v3long/train.log
# Iterations 0-8000 ran at --lr 2e-3 in f32; from 8000 on at --lr 1e-3 (the clean validation kept
# dipping by 2-5 dB and recovering) with the forward passes in bf16 (0.72x the CPU per iteration).
# A fine-tune A/B arm of the same run: RUN=runs/NAME START=CHECKPOINT tools/experiments/v3_long.sh
# EXTRA OPTIONS (v3_texture_tune.sh is one).
set -euo pipefail
run=${RUN:-runs/v3long}
start=${START:-checkpoints/v3-long.pt}
mkdir -p "$run"
if [ ! -e "$run/checkpoint.pt" ] && [ -e "$start" ]; then
  cp "$start" "$run/checkpoint.pt"
fi
data=../shared/data/train
nohup nice -n 2 rawisp train --data $data/cbsd432 --data $data/imagenet_sample_1000 --data $data/sun_hays80 \
  --out "$run/lwisp.onnx" --run-dir "$run" --domain log --cpu-budget 36000 --ema 0.999 --seed 3 \
  --clean-fraction 0.3 --procedural-fraction 0.15 --colour-fraction 0.2 --neutral-above-green 0.05 \
  --flat-fraction 0.2 --pattern-weight 2 --threads 1 --lr 1e-3 --precision bf16 "$@" >> "$run.out" 2>&1 &
echo "training in the background (pid $!); tail -f $run/train.log"
