"""Re-export a shipped ONNX model as the graph today's exporter writes, keeping its card.

    python tools/reexport.py models/lwisp.onnx

The weights are read back from the ONNX file (``rawisp.train.loop.init_weights``, which also
reads an already packed graph), written again by ``rawisp.train.export.write_onnx`` (the
full-resolution tail on packed planes, :mod:`rawisp.train.packed`), and checked to compute the
same function as the old file with onnxruntime before the old file is replaced. The card keeps
its training record, metrics and measured tiling (the function is the same); its checksum and the
architecture's graph fields are updated. Needs the ``train`` extra (torch).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

from rawisp.engines.contract import CHANNELS
from rawisp.train.export import card_path, cost_fields, write_onnx
from rawisp.train.loop import init_weights
from rawisp.train.model import LWISP

TOLERANCE = 1e-5  # linear RGB: float rounding of a different summation order, far below a 16-bit step


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def reexport(model_path: Path) -> float:
    """Rewrite ``model_path`` and its card in place; returns the largest output difference."""
    card = json.loads(card_path(model_path).read_text())
    arch = card.get("architecture", {})
    model = LWISP.from_settings(arch)
    untouched = init_weights(model, model_path)
    if untouched:
        raise SystemExit(f"{model_path}: weights missing for {', '.join(untouched)}")
    fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=model_path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        graph = write_onnx(model, tmp)
        x = np.random.default_rng(0).random((1, CHANNELS, 96, 128), np.float32)
        x[:, 4:] *= 0.02  # noise planes: plausible standard deviations
        diff = float(np.abs(_run(model_path, x) - _run(tmp, x)).max())
        if diff > TOLERANCE:
            raise SystemExit(f"re-exported graph differs from {model_path} by {diff:.3g} (> {TOLERANCE:g})")
        card["sha256"] = hashlib.sha256(tmp.read_bytes()).hexdigest()
        card["architecture"] = {**arch, **cost_fields(model, graph)}
        tmp.replace(model_path)
    finally:
        tmp.unlink(missing_ok=True)
    card_path(model_path).write_text(json.dumps(card, indent=2) + "\n")
    return diff


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path, help="ONNX model with its .json card beside it")
    args = ap.parse_args(argv)
    if not args.model.is_file() or not card_path(args.model).is_file():
        ap.error(f"{args.model}: needs the ONNX file and its .json card beside it")
    diff = reexport(args.model)
    print(f"{args.model}: re-exported; largest output difference {diff:.2e} (linear RGB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
