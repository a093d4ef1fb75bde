"""The Python API in a few lines: develop the bundled chart into arrays and a file, read its metadata.

    python examples/python_api.py [RAW_FILE] [-o OUT_DIR]

Prints what the decoder sees, the shape and type of the sRGB and linear arrays, the mean colour
of the centre of the picture, and writes OUT_DIR/NAME.jpg (default: out/python_api/, so the
set-up's out/chart.jpg is left as it is). The classical engine keeps it quick; drop
``engine="classical"`` for the learned one (the default).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import rawisp

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("raw", nargs="?", default=HERE / "chart.dng", type=Path)
    parser.add_argument("-o", "--out", default=Path("out") / "python_api", type=Path)
    args = parser.parse_args()

    try:
        meta = rawisp.info(args.raw)
    except rawisp.DecodeError as exc:  # the line `rawisp develop` would print, after "rawisp: "
        raise SystemExit(f"rawisp: {exc}")
    print(f"{meta['file']}: {meta['size']} {meta['sensor']}, white balance {meta['wb_gains']}")

    srgb = rawisp.develop(args.raw, engine="classical", exposure=0.3)  # upright sRGB, uint8
    linear = rawisp.develop(args.raw, engine="classical", linear=True)  # linear camera RGB, float32
    h, w = srgb.shape[:2]
    centre = srgb[h // 2 - 8:h // 2 + 8, w // 2 - 8:w // 2 + 8].reshape(-1, 3).mean(axis=0)
    print(f"sRGB {srgb.shape} {srgb.dtype}, centre mean {centre.round(1).tolist()}; "
          f"linear {linear.shape} {linear.dtype}, max {float(linear.max()):.3f}")

    output = rawisp.develop_file(args.raw, args.out / f"{args.raw.stem}.jpg", engine="classical", quality=95,
                                 overwrite=True)
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
