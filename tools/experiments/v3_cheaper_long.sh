#!/usr/bin/env bash
# The cheap network with half the full-resolution tail (issues #25 and #27): v3_cheap_long.sh plus
# --full-channels 4, 0.32x the time per tile of today's network (the cheap one: 0.44x), so that the
# learned develop can reach rawtherapee-cli's time in f32. Same data, losses, seed, moving average,
# one thread and 36000 CPU-s, from scratch; compare its log with runs/v3cheap/train.log at equal
# cpu_seconds. Resumes runs/v3cheaper/checkpoint.pt, or the committed checkpoints/v3-cheaper.pt.
#   tools/experiments/v3_cheaper_long.sh     # log: runs/v3cheaper/train.log
RUN=${RUN:-runs/v3cheaper} START=${START:-checkpoints/v3-cheaper.pt} \
  exec "$(dirname "$0")/v3_cheap_long.sh" --full-channels 4 "$@"
