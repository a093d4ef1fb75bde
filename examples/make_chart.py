"""Regenerate examples/chart.dng: the procedural test chart as a 12-bit synthetic DNG.

Usage: python examples/make_chart.py [OUTPUT.dng]
"""

import sys
from fractions import Fraction
from pathlib import Path

from rawisp.measure.chart import make_chart
from rawisp.measure.synth import srgb_to_dng

EXIF = {
    "ExposureTime": Fraction(1, 125),
    "FNumber": 5.6,
    "ISO": 100,
    "FocalLength": 50,
    "DateTimeOriginal": "2024:06:01 12:00:00",
    "LensModel": "rawisp Virtual 50mm F1.8",
    "Artist": "rawisp",
    "Copyright": "CC0 1.0",
    "GPS": {"lat": 48.858370, "lon": 2.294481, "alt": 35.0},
}


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("chart.dng")
    srgb_to_dng(out, make_chart(2400, 1600, seed=0), black=256, white=4095,
                noise=(1e-4, 1e-3), seed=0, orientation=1, exif=EXIF,
                make="rawisp", model="Synthetic Chart")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
