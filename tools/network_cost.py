"""What a smaller network would save at inference: seconds per tile of candidate designs.

    python tools/network_cost.py                       # the designs of docs/speed.md's table
    python tools/network_cost.py --design 16,32,64:1:off --design 24,48,96:2:on --threads 2

Each design (WIDTHS:CONVS_PER_BLOCK:PACKED_ATTENTION[:FULL_CHANNELS], the ``rawisp train`` options
``--widths``, ``--block-convs``, ``--[no-]packed-attention`` and ``--full-channels``) is built with
random weights in model v3's ratio domain, exported as the shipped graph is
(``rawisp.train.export.write_onnx``: packed tail, transposed skips) and run on OpenVINO in f32
(onnxruntime where OpenVINO is not installed) on one packed tile of the 24 MP develop's size, all
designs interleaved, median of ``--repeat`` runs. Prints GFLOP per output MP (the model's and the
exported graph's) and each design's time relative to the first. Times depend on what else the
machine runs; the ratios are what to read.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from rawisp.engines.contract import INPUT_NAME
from rawisp.engines.runtime import open_session
from rawisp.train.export import write_onnx
from rawisp.train.model import LWISP, gflop_per_mp

DESIGNS = ["24,48,96:2:on", "20,40,80:2:on", "17,34,68:2:on", "16,48,96:2:on", "16,32,64:2:on",
           "12,32,64:2:on", "24,48,96:2:off", "24,48,96:1:on", "16,32,64:1:on", "16,32,64:1:off",
           "16,32,64:1:off:4", "12,24,48:1:off:4"]
TILE = (664, 736)  # packed pixels: the 24 MP develop's tiles at the default 768, margins included


def build(design: str) -> LWISP:
    """The network a design names, with small random weights (its cost does not depend on them)."""
    widths, convs, attention, *full = design.split(":")
    model = LWISP(tuple(int(w) for w in widths.split(",")), domain="log", block_convs=int(convs),
                  packed_attention=attention == "on", full_channels=int(full[0]) if full else 8)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=generator))
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--design", action="append", help="WIDTHS:CONVS:on|off[:FULL] (repeatable; default: the table's)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    designs = args.design or DESIGNS
    x = np.random.default_rng(0).random((1, 8, *TILE), dtype=np.float32) * 0.5
    x[:, 4:] = 0.01  # noise planes: standard deviations
    sessions, costs = {}, {}
    with tempfile.TemporaryDirectory(prefix="rawisp-cost-") as tmp:
        for i, design in enumerate(designs):
            model = build(design)
            path = Path(tmp) / f"design{i}.onnx"
            graph = write_onnx(model, path)
            costs[design] = (gflop_per_mp(model), gflop_per_mp(graph))
            sessions[design] = open_session(path, "cpu", args.threads, "auto", "f32")
            sessions[design].run(None, {INPUT_NAME: x})  # compile and warm up
        times: dict[str, list[float]] = {d: [] for d in designs}
        for _ in range(args.repeat):
            for design in designs:
                start = time.perf_counter()
                sessions[design].run(None, {INPUT_NAME: x})
                times[design].append(time.perf_counter() - start)
    first = statistics.median(times[designs[0]])
    print(f"{'design (widths:convs per block:packed attention[:full channels])':50s} GFLOP/MP model / graph   s per tile   relative")
    for design in designs:
        median = statistics.median(times[design])
        model_cost, graph_cost = costs[design]
        print(f"{design:50s} {model_cost:6.1f} / {graph_cost:5.1f}          {median:6.3f}      {median / first:.2f}")


if __name__ == "__main__":
    main()
