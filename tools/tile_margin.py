"""Measure the tile margin a model really needs and record it in its card (``tiling``).

    python tools/tile_margin.py models/lwisp.onnx

Runs the model on the bench's synthetic scene (two seeds, clean / mid / high noise) whole and as
one tile, and finds the smallest margin (packed pixels, a multiple of the stride) at which the
tile differs from the whole frame by less than ``--tolerance`` (default: a linear error that
cannot move a 16-bit sRGB output value by one step; see :mod:`rawisp.margin`). The runtime then
cuts tiles with that margin instead of the full receptive field (the card's ``margin``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

from rawisp.learned import load_card
from rawisp.margin import LSB16_SRGB_IN_LINEAR, edge_error_profile, effective_margin, probe_frames


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path, help="ONNX model with its .json card beside it")
    ap.add_argument("--tolerance", type=float, default=LSB16_SRGB_IN_LINEAR,
                    help="largest tolerated |tiled - whole| in linear RGB")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dry-run", action="store_true", help="print, do not write the card")
    args = ap.parse_args(argv)
    card = load_card(args.model)
    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    session = ort.InferenceSession(str(args.model), so, providers=["CPUExecutionProvider"])
    name = card["input"]["name"]

    def run(x: np.ndarray) -> np.ndarray:
        return session.run(None, {name: np.ascontiguousarray(x[None], np.float32)})[0][0]

    receptive = card["margin"]
    tile = 4 * receptive + 8 * card["stride"]  # room for every distance up to the receptive field
    side = tile + 2 * (receptive + card["stride"])
    offset = side // 2 - tile // 2 // card["stride"] * card["stride"]
    profile = np.max([edge_error_profile(run, f, tile, offset) for f in probe_frames(side)], axis=0)
    margin = effective_margin(profile, args.tolerance, card["stride"])
    tiling = {
        "margin": margin,
        "max_error": float(f"{profile[margin]:.3g}"),
        "tolerance": float(f"{args.tolerance:.3g}"),
        "error_by_margin": {str(m): float(f"{profile[m]:.2g}") for m in range(0, receptive + 1, 2 * card["stride"])},
        "measured_on": "bench synthetic scene, 2 seeds x clean/mid/high noise, one tile against the whole frame",
        "command": f"python tools/tile_margin.py {args.model}",
    }
    print(json.dumps(tiling, indent=2))
    if not args.dry_run:
        card["tiling"] = tiling
        args.model.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
