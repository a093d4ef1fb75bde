#!/usr/bin/env bash
# Everything issue #27 judges a candidate model on, at one thread, in one folder of reports:
#   tools/experiments/judge_model.sh MODEL.onnx OUT_DIR [SECTIONS]
# SECTIONS (default all): heldout kodak defects precision editors.
#   heldout    rawisp eval on the held-out sets (python tools/make_val_sets.py runs/val)
#   kodak      Kodak24 with and without a NoiseProfile (reporting only, never for tuning)
#   defects    tools/model_defects.py at --grain 0 (the network) and at develop's defaults
#   precision  OpenVINO bf16 against onnxruntime f32 (tools/precision_check.py)
#   editors    the Bayer DNG through rawpy, darktable and RawTherapee (tools/dng_editors.py)
# Each report is OUT_DIR/NAME.json (or .out) and each section's wall time goes to OUT_DIR/times.
set -euo pipefail
model=$1
out=$2
sections=${3:-heldout kodak defects precision editors}
val=${VAL:-runs/val}
kodak=../shared/data/test/kodak24
export OMP_NUM_THREADS=1
[ -f "$model" ] || { echo "judge_model.sh: no model file $model" >&2; exit 2; }
[ -d "$val" ] || { echo "judge_model.sh: no held-out sets in $val (python tools/make_val_sets.py $val)" >&2; exit 2; }
mkdir -p "$out"
timed() {  # NAME COMMAND...: run it, log its output, wall time and exit status (a failed check is a result)
  local name=$1 rc=0
  shift
  local t0=$SECONDS
  "$@" > "$out/$name.out" 2>&1 || rc=$?
  echo "$name $((SECONDS - t0)) s, exit $rc" >> "$out/times"
}
for section in $sections; do
  case $section in
    heldout)
      for set in photos saturated procedural edges; do
        timed "heldout_$set" rawisp eval "$val/$set" --model "$model" -j 1 -q --out "$out/heldout_$set.json"
      done ;;
    kodak)
      timed kodak rawisp eval "$kodak" --model "$model" -j 1 -q --out "$out/kodak.json"
      timed kodak_no_profile rawisp eval "$kodak" --model "$model" -j 1 -q --no-noise-profile \
        --out "$out/kodak_no_profile.json" ;;
    defects)
      timed defects python tools/model_defects.py --model "$model" --setting "--grain 0" --setting "" \
        --json "$out/defects.json" ;;
    precision)
      timed precision python tools/precision_check.py --model "$model" --precision bf16 ;;
    editors)
      timed editors python tools/dng_editors.py --model "$model" \
        --kodak $kodak/kodim01.png $kodak/kodim05.png $kodak/kodim23.png ;;
    *) echo "unknown section: $section" >&2; exit 2 ;;
  esac
done
