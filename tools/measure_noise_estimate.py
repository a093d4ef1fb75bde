"""Compare the blind noise estimators on the 40 held-out training photos (never Kodak24).

Each photo becomes a real 12-bit DNG without NoiseProfile (rawisp.measure.synth, realistic camera
matrix, as-shot neutral (0.55, 1, 0.75)) at each noise level, is decoded and normalised as
``rawisp develop`` does, and both estimators read its noise: the hand-made one
(``rawisp.engines.noise.estimate_noise``) and the learned one (``rawisp.engines.noise_net``). Prints, per level,
the median and 90th percentile of |sigma_estimate / sigma_true - 1| at mid-grey (0.18) and the
share of photos within 15%; for clean frames, the sigma at mid-grey each estimator reads.
``--write DIR`` also saves the held-out photos as PNG for ``rawisp eval DIR``.

    python tools/measure_noise_estimate.py [--write runs/heldout]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from rawisp.engines.noise import estimate_noise  # noqa: E402
from rawisp.engines.noise_net import NoiseNet  # noqa: E402
from rawisp.train.noise_frames import LEVELS, MID, estimates, load_splits, sigma  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, help="also save the held-out photos as PNG here")
    parser.add_argument("--model", type=Path, default=None, help="noise_net ONNX [default: the shipped one]")
    parser.add_argument("--levels", default=",".join(LEVELS), help="comma-separated subset of the levels")
    parser.add_argument("--learned-only", action="store_true", help="skip the hand-made estimator")
    args = parser.parse_args()
    _, _, photos = load_splits()
    if args.write:
        args.write.mkdir(parents=True, exist_ok=True)
        for i, photo in enumerate(photos):
            Image.fromarray(photo).save(args.write / f"val{i:02d}.png")
    net = NoiseNet(args.model, threads=1)
    estimators = {"learned": net} if args.learned_only else {"hand-made": estimate_noise, "learned": net}
    print(f"{len(photos)} held-out photos; sigma at mid-grey ({MID}) vs truth")
    for label in args.levels.split(","):
        noise = LEVELS[label]
        for name, v in estimates(estimators, photos, [noise] * len(photos)).items():
            if noise == (0.0, 0.0):
                print(f"{label:8s} {name:9s} sigma read: median {np.median(v):.2e}, 90th pct "
                      f"{np.quantile(v, 0.9):.2e} (truth: 12-bit rounding, 7.5e-05)")
            else:
                err = np.abs(v / sigma(noise) - 1)
                print(f"{label:8s} {name:9s} |error| median {np.median(err):6.1%}, 90th pct "
                      f"{np.quantile(err, 0.9):6.1%}, within 15%: {np.mean(err < 0.15):5.0%}"
                      f"  (median ratio {np.median(v / sigma(noise)):.2f})", flush=True)


if __name__ == "__main__":
    main()
