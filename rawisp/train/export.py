"""Export a trained LW-ISP checkpoint to ONNX, with the JSON model card the runtime checks."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import subprocess
import warnings
from pathlib import Path

import torch

from rawisp.engines.contract import CARD_FORMAT, CHANNELS, INPUT_NAME, OUTPUT_NAME, STRIDE, card_io
from rawisp.train.model import LWISP, count_params, gflop_per_mp
from rawisp.train.packed import PackedLWISP


def receptive_margin(model: LWISP, size: int = 192) -> int:
    """Receptive-field radius in packed pixels, rounded up to the U-Net stride.

    Measured, not derived: the gradient of one output pixel with respect to the input is
    non-zero exactly inside the receptive field.
    """
    model = model.eval()
    x = torch.rand(1, CHANNELS, size, size, requires_grad=True)
    out = model(x)
    c = size  # a full-resolution pixel at the centre
    out[0, :, c, c].sum().backward()
    support = x.grad[0].abs().sum(0) > 0
    rows = support.any(1).nonzero().flatten()
    cols = support.any(0).nonzero().flatten()
    radius = max(c // 2 - rows.min().item(), rows.max().item() - c // 2,
                 c // 2 - cols.min().item(), cols.max().item() - c // 2)
    if radius >= size // 2 - 1:
        raise RuntimeError("receptive field larger than the probe; raise `size`")
    return int(math.ceil((radius + 1) / STRIDE) * STRIDE)


def git_commit() -> str | None:
    """The current git commit of the project, if any."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def export(model: LWISP, out: str | Path, training: dict, metrics: dict | None = None, opset: int = 17) -> dict:
    """Write ``out`` (ONNX) and ``out`` with suffix .json (model card); return the card."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    graph = write_onnx(model, out, opset)
    card = {
        "format": CARD_FORMAT,
        "name": out.stem,
        "onnx": out.name,
        "sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
        **card_io(),
        "stride": STRIDE,
        "margin": receptive_margin(model),
        "architecture": {"name": "LW-ISP U-Net with fine-grained attention and sub-pixel upsampling block",
                         "widths": list(model.widths), "skip": model.skip, "base": model.base,
                         "domain": model.domain, "block_convs": model.block_convs,
                         "packed_attention": model.packed_attention, "full_channels": model.full_channels,
                         "parameters": count_params(model),
                         **cost_fields(model, graph)},
        "training": {**training, "commit": git_commit(),
                     "exported": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")},
        "metrics": metrics or {},
    }
    card_path(out).write_text(json.dumps(card, indent=2) + "\n")
    return card


def cost_fields(model: LWISP, graph: PackedLWISP) -> dict:
    """The card's cost entries: GFLOP per output MP of the model, and of the exported graph (its
    full-resolution tail on packed planes: the zero taps of its kernels add multiply-adds but run faster)."""
    return {"gflop_per_output_mp": round(gflop_per_mp(model), 2),
            "graph": "packed tail, transposed skips (rawisp.train.packed)",
            "graph_gflop_per_output_mp": round(gflop_per_mp(graph), 2)}


def write_onnx(model: LWISP, out: Path, opset: int = 17) -> PackedLWISP:
    """Write ``model``'s function to ``out`` as the ONNX graph the runtime runs (its full-resolution
    tail on packed planes, see :mod:`rawisp.train.packed`); returns that graph's module."""
    graph = PackedLWISP(model.eval()).eval()  # the same function, faster on CPU
    dummy = torch.rand(1, CHANNELS, 64, 64)
    # The TorchScript exporter (dynamo=False) needs no onnxscript and handles this graph exactly;
    # it warns that it is legacy, and its tracer warns about constants that are meant to be constant.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(graph, (dummy,), str(out), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "n", 2: "h", 3: "w"}, OUTPUT_NAME: {0: "n", 2: "h2", 3: "w2"}},
                          opset_version=opset, dynamo=False)
    return graph


def card_path(onnx_path: str | Path) -> Path:
    """The model card that sits beside an ONNX file."""
    return Path(onnx_path).with_suffix(".json")
