#!/usr/bin/env bash
# Heterogeneous-distillation A/B: fine-tune the same starting weights for the same budget, once
# plainly and once guided by a teacher (the starting network fed the clean mosaic: feature and
# reconstruction losses through 1x1 adapters), then compare validation PSNR in the two cards.
#   tools/experiments/distil_ab.sh runs/main/checkpoint.pt runs/ab 400
set -euo pipefail
init=${1:?checkpoint to start from}; out=${2:-runs/ab}; iters=${3:-400}
data=../shared/data/train
D="--data $data/cbsd432 --data $data/imagenet_sample_1000 --data $data/sun_hays80"
common="--iterations $iters --lr 5e-4 --threads 1 --val-every 200 --init $init"
rawisp train $D $common --out "$out/plain.onnx" --run-dir "$out/plain"
rawisp train $D $common --out "$out/distil.onnx" --run-dir "$out/distil" --teacher "$init"
python - "$out" <<'PY'
import json, sys
for name in ("plain", "distil"):
    card = json.load(open(f"{sys.argv[1]}/{name}.json"))
    print(name, card["metrics"]["validation_psnr"])
PY
