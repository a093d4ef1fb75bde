"""Fit the learned noise estimate's calibration (``noise_net.SIGMA_GAIN``) on the validation photos.

The 40 validation photos carved from the training photos (``noise_frames.load_splits``; the
network never trained on them; the 40 held-out photos and Kodak24 are never used), each at six
noise draws: shot log-uniform 1e-5..1e-2, read = sqrt(shot) x 0.01..0.03. SIGMA_GAIN is the
median of sigma_true / sigma_estimate at mid-grey over the frames with sigma_true above 2e-3
(weaker noise costs nothing measurable either way, docs/noise.md). Also prints a two-fold check on
these photos (gain fitted on the odd photos, scored on the even ones, and back): the median
|ln(sigma_estimate / sigma_true)| without and with the gain.

    python tools/calibrate_noise_net.py [--model runs/noise/noise_net.onnx]      # ~1 minute
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from rawisp.engines.noise_net import NoiseNet  # noqa: E402
from rawisp.train.noise_frames import estimates, load_splits, sigma  # noqa: E402

DRAWS, NOISY = 6, 2e-3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    args = parser.parse_args()
    _, val, _ = load_splits()
    rng = np.random.default_rng(0)
    photos, noises, index = [], [], []
    for _draw in range(DRAWS):
        for i, photo in enumerate(val):
            shot = float(np.exp(rng.uniform(np.log(1e-5), np.log(1e-2))))
            photos.append(photo)
            noises.append((shot, math.sqrt(shot) * float(rng.uniform(0.01, 0.03))))
            index.append(i)
    est = estimates({"net": NoiseNet(args.model, threads=1, calibrated=False)}, photos, noises)["net"]
    true = np.array([sigma(n) for n in noises])
    noisy = true > NOISY
    error = np.log(np.maximum(est, 1e-9) / true)  # ln(estimate / truth)
    odd = np.array(index) % 2 == 1
    before, after = [], []
    for fit, score in ((odd, ~odd), (~odd, odd)):
        gain = -np.median(error[fit & noisy])
        before.append(np.abs(error[score & noisy]))
        after.append(np.abs(error[score & noisy] + gain))
    print(f"{noisy.sum()} noisy frames of {len(est)}; two-fold check, median |ln ratio|: "
          f"{np.median(np.concatenate(before)):.3f} without, {np.median(np.concatenate(after)):.3f} with the gain")
    print(f"SIGMA_GAIN = {math.exp(-np.median(error[noisy])):.3f}")


if __name__ == "__main__":
    main()
