"""Quantise the learned engine's ONNX model to int8 (static, QDQ, per-channel weights).

    python tools/quantise.py models/lwisp.onnx models/lwisp_int8.onnx

Calibration uses training crops synthesised by :mod:`rawisp.train.data` from the training photos
(``../shared/data/train``; never Kodak24 or anything under ``test/``). The same held-out photos
the training validates on are left out of calibration; the tool reports the sRGB PSNR of the fp32
and int8 models on them at the three validation noise levels and writes the int8 model's card
beside it (the fp32 card plus ``precision``, ``quantisation`` and the measured figures, among them
whether it stays within 0.1 dB of fp32 at every noise level: the condition for shipping it).

Only the convolutions of the U-Net body are quantised. These stay fp32, because int8 there costs
quality for little time (each is measured: see ``--keep``):

- the in-graph base demosaic (``base_packed``) and the head convolution: their input is the raw data itself,
  which 8 bits cannot carry (a 14-bit raw file has 64x finer steps);
- the attention convolutions (1x1 and the 5x5 spatial one): tiny, and they feed sigmoids;
- the full-resolution refinement (``refine_packed``, run on packed planes: ``rawisp.train.packed``):
  its output is added to the base estimate as is.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                      quant_pre_process, quantize_static)

from rawisp.train.data import Sampler, load_photos
from rawisp.train.loop import VAL_CROP, VAL_SETS, split_photos, validation_set
from rawisp.train.losses import psnr, render_srgb

TRAIN = ["../shared/data/train/cbsd432", "../shared/data/train/imagenet_sample_1000",
         "../shared/data/train/sun_hays80"]
# node-name fragments kept fp32 by default (see the module docstring)
KEEP_FP32 = ("/base_packed/", "/head/", "/attention/", "/refine_packed/")
ACTIVATION = {"u8": QuantType.QUInt8, "s8": QuantType.QInt8}


class Crops(CalibrationDataReader):
    """Calibration batches: packed network inputs ``(n, 8, p/2, p/2)`` of synthesised training crops."""

    def __init__(self, batches: list[np.ndarray], input_name: str) -> None:
        self.batches = iter(batches)
        self.input_name = input_name

    def get_next(self) -> dict | None:
        batch = next(self.batches, None)
        return None if batch is None else {self.input_name: batch}


def calibration_batches(photos: list[np.ndarray], crops: int, patch: int, seed: int, batch: int = 8) -> list[np.ndarray]:
    """``crops`` training crops of ``patch`` full-resolution pixels, as the training samples them
    (random camera, exposure, white balance and noise; 20% clean)."""
    sampler = Sampler(photos, patch, seed, clean_fraction=0.2)
    return [sampler.batch(min(batch, crops - i)).x.numpy() for i in range(0, crops, batch)]


def fp32_nodes(model: onnx.ModelProto, keep: tuple[str, ...]) -> list[str]:
    """Names of the Conv nodes to leave in fp32: those whose name contains a fragment of ``keep``."""
    return [n.name for n in model.graph.node if n.op_type == "Conv" and any(k in n.name for k in keep)]


def quantise(src: Path, dst: Path, batches: list[np.ndarray], activation: str = "s8",
             keep: tuple[str, ...] = KEEP_FP32) -> None:
    """Write the int8 QDQ model of ``src`` to ``dst``, calibrated (min-max) on ``batches``."""
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        model = onnx.load(str(pre))
        input_name = model.graph.input[0].name
        quantize_static(str(pre), str(dst), Crops(batches, input_name), quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=["Conv"], per_channel=True, activation_type=ACTIVATION[activation],
                        weight_type=QuantType.QInt8, nodes_to_exclude=fp32_nodes(model, keep),
                        calibrate_method=CalibrationMethod.MinMax)


def session(path: Path, threads: int) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def validation_psnr(path: Path, sets: dict, threads: int, border: int = 8) -> dict[str, float]:
    """sRGB PSNR (dB) per validation noise preset, as the training's validation computes it."""
    s = session(path, threads)
    name = s.get_inputs()[0].name
    scores = {}
    for preset, (batch, srgb) in sets.items():
        pred = torch.from_numpy(s.run(None, {name: batch.x.numpy()})[0])
        out = render_srgb(pred, batch.m)
        b = slice(border, -border)
        scores[preset] = round(float(np.mean([psnr(out[i:i + 1, :, b, b], srgb[i:i + 1, :, b, b])
                                              for i in range(len(out))])), 3)
    return scores


def tile_seconds(paths: dict[str, Path], threads: int, side: int = 512, repeat: int = 5) -> dict[str, float]:
    """Best-of-``repeat`` seconds of one ``side`` x ``side`` packed tile per model, the models run
    in turn (interleaved) so that a busy machine slows them alike."""
    x = np.random.default_rng(0).random((1, 8, side, side), np.float32) * 0.5
    x[:, 4:] *= 0.02
    sessions = {k: session(p, threads) for k, p in paths.items()}
    best = {k: float("inf") for k in paths}
    for round_ in range(repeat + 1):
        for k, s in sessions.items():
            t = time.perf_counter()
            s.run(None, {s.get_inputs()[0].name: x})
            if round_:  # round 0 warms up
                best[k] = min(best[k], time.perf_counter() - t)
    return {k: round(v, 3) for k, v in best.items()}


def write_card(src: Path, dst: Path, report: dict) -> dict:
    """The int8 model's card: the fp32 card (the same graph, so the same tile margin) with this
    file's name and digest and the report."""
    card = json.loads(src.with_suffix(".json").read_text())
    card.update(name=dst.stem, onnx=dst.name, sha256=hashlib.sha256(dst.read_bytes()).hexdigest(),
                precision="int8", quantisation=report)
    dst.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    return card


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src", type=Path, help="fp32 model (its .json card beside it)")
    ap.add_argument("dst", type=Path, help="int8 model to write (card written beside it)")
    ap.add_argument("--data", action="append", default=None, help="training photo folder (repeatable)")
    ap.add_argument("--activation", choices=sorted(ACTIVATION), default="s8",
                    help="activation type: s8 (s8s8, measured better here) or u8 (u8s8)")
    ap.add_argument("--keep", action="append", default=None,
                    help=f"node-name fragment kept fp32 (repeatable; default {' '.join(KEEP_FP32)})")
    ap.add_argument("--crops", type=int, default=64, help="calibration crops")
    ap.add_argument("--patch", type=int, default=256, help="calibration crop side, full-resolution pixels")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--holdout", type=int, default=40, help="held-out photos (as the training's --val-holdout)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    keep = tuple(args.keep) if args.keep is not None else KEEP_FP32
    folders = [Path(d) for d in (args.data or TRAIN)]
    missing = [str(d) for d in folders if not d.is_dir()]
    if missing:
        print(f"quantise: training photo folder(s) not found: {', '.join(missing)}", file=sys.stderr)
        return 2
    photos = load_photos(folders, min_side=max(args.patch, VAL_CROP))
    train, held_out = split_photos(photos, args.holdout)
    t0 = time.perf_counter()
    quantise(args.src, args.dst, calibration_batches(train, args.crops, args.patch, args.seed),
             args.activation, keep)
    seconds = time.perf_counter() - t0
    sets = {k: v for k, v in validation_set(held_out).items() if k in VAL_SETS}  # the PSNR sets
    fp32, int8 = (validation_psnr(p, sets, args.threads) for p in (args.src, args.dst))
    loss = {k: round(fp32[k] - int8[k], 3) for k in fp32}
    tiles = tile_seconds({"fp32": args.src, "int8": args.dst}, args.threads)
    report = {
        "command": "python tools/quantise.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "format": "onnxruntime static QDQ, per-channel int8 weights, "
                  f"{'uint8' if args.activation == 'u8' else 'int8'} activations, min-max calibration",
        "fp32_nodes": keep,
        "calibration": f"{args.crops} synthesised training crops of {args.patch} px (seed {args.seed}), "
                       f"from {', '.join(d.name for d in folders)} less the {args.holdout} held-out photos",
        "validation_psnr_fp32": fp32,
        "validation_psnr_int8": int8,
        "tile_seconds_512": tiles,
        "loss_db": loss,
        "within_0.1_db": max(loss.values()) <= 0.1,
        "onnxruntime": ort.__version__,
        "quantise_seconds": round(seconds, 1),
    }
    write_card(args.src, args.dst, report)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
