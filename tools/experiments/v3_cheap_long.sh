#!/usr/bin/env bash
# The cheap network's long run (issues #25 and #27): model v3's long run (v3_long.sh, the same data,
# losses, moving average, one thread and 36000 CPU-s) with widths 16,32,64, one convolution a block
# and no attention at packed resolution: 0.41x the time per tile of today's network. From scratch
# at --lr 1e-3 and bf16 forward passes throughout (v3's long run ran its first 8000 iterations at
# 2e-3 in f32). Resumes runs/v3cheap/checkpoint.pt, or the committed checkpoints/v3-cheap.pt.
#   tools/experiments/v3_cheap_long.sh       # log: runs/v3cheap/train.log
RUN=${RUN:-runs/v3cheap} START=${START:-checkpoints/v3-cheap.pt} \
  exec "$(dirname "$0")/v3_long.sh" --widths 16,32,64 --block-convs 1 --no-packed-attention "$@"
