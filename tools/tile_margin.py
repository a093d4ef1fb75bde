"""Measure the tile margin a model really needs and record it in its card (``tiling``).

    python tools/tile_margin.py models/lwisp.onnx

Runs the model on the bench's synthetic scene (two seeds, clean / mid / high noise) whole and as
one tile, and finds the smallest margin (packed pixels, a multiple of the stride) at which the
tile differs from the whole frame by less than ``--tolerance`` (default: a linear error that
cannot move a 16-bit sRGB output value by one step; see :mod:`rawisp.measure.margin`). The runtime then
cuts tiles with that margin instead of the full receptive field (the card's ``margin``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rawisp.measure.margin import LSB16_SRGB_IN_LINEAR, measure_tiling


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path, help="ONNX model with its .json card beside it")
    ap.add_argument("--tolerance", type=float, default=LSB16_SRGB_IN_LINEAR,
                    help="largest tolerated |tiled - whole| in linear RGB")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dry-run", action="store_true", help="print, do not write the card")
    args = ap.parse_args(argv)
    tiling = measure_tiling(args.model, args.tolerance, args.threads)
    print(json.dumps(tiling, indent=2))
    if not args.dry_run:
        card_file = args.model.with_suffix(".json")
        card = json.loads(card_file.read_text())
        card["tiling"] = tiling
        card_file.write_text(json.dumps(card, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
