#!/usr/bin/env bash
# Texture crops joining the long run (issue #27 item 3): the long run's checkpoint resumed with 15%
# low-contrast texture crops, everything else (lr, schedule, seed, data mix) as the long run; the
# long run itself, going on from the same checkpoint, is the other arm. Compare the two logs'
# validations at equal CPU seconds, and both exports with tools/model_defects.py --only texture.
#   tools/experiments/v3_texture_tune.sh CHECKPOINT     # log: runs/v3tex/train.log
set -euo pipefail
RUN=runs/v3tex START="${1:-}" exec "$(dirname "$0")/v3_long.sh" --texture-fraction 0.15
