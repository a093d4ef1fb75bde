"""Fit the calibration of the learned noise estimate (``noise_net.CALIBRATION``) on training photos.

The network's pooled estimate still reads some texture as noise on weak noise and reads strong
noise somewhat low. This maps ln sigma_estimate(0.18) to the median ln sigma_true(0.18) of frames
that gave that estimate: photos of the training split (every 6th; the 40 held-out photos and
Kodak24 are never used) as real DNGs through decode and normalise, noise shot log-uniform
1e-5..1e-2 with read = sqrt(shot) x 0.01..0.03, one frame in six clean (truth: sigma 1e-3, what
counts as clean). Knots: medians of 10 equal-count bins of the estimate, made non-decreasing.

    python tools/calibrate_noise_net.py [--model runs/noise_net.onnx]      # ~5 minutes
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from rawisp import synth  # noqa: E402
from rawisp.decode import decode  # noqa: E402
from rawisp.noise_net import NoiseNet  # noqa: E402
from rawisp.normalise import normalise  # noqa: E402
from rawisp.train.data import load_photos  # noqa: E402
from rawisp.train.loop import split_photos  # noqa: E402

DATA = ["../shared/data/train/cbsd432", "../shared/data/train/imagenet_sample_1000", "../shared/data/train/sun_hays80"]
MID, CLEAN_SIGMA, KNOTS = 0.18, 1e-3, 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    args = parser.parse_args()
    train, _ = split_photos(load_photos([Path(d) for d in DATA], min_side=128), 40)
    net = NoiseNet(args.model, threads=1, calibrated=False)
    rng = np.random.default_rng(0)
    est, true = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i, photo in enumerate(train[::6]):
            if i % 6 == 0:
                shot = read = 0.0
            else:
                shot = float(np.exp(rng.uniform(np.log(1e-5), np.log(1e-2))))
                read = math.sqrt(shot) * float(rng.uniform(0.01, 0.03))
            path = Path(tmp) / "f.dng"
            synth.srgb_to_dng(path, photo, noise=(shot, read), seed=i, noise_profile=False)
            s, r = net(normalise(decode(path)))
            est.append(math.log(max(math.sqrt(s * MID + r * r), 1e-4)))
            true.append(math.log(max(math.sqrt(shot * MID + read * read), CLEAN_SIGMA)))
    est, true = np.array(est), np.array(true)
    edges = np.quantile(est, np.linspace(0, 1, KNOTS + 1))
    xs, ys = [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (est >= lo) & (est <= hi)
        xs.append(float(np.median(est[sel])))
        ys.append(float(np.median(true[sel])))
    ys = list(np.maximum.accumulate(ys))
    print(f"{len(est)} frames; CALIBRATION = (")
    print(f"    ({', '.join(f'{x:.3f}' for x in xs)}),")
    print(f"    ({', '.join(f'{y:.3f}' for y in ys)}),\n)")


if __name__ == "__main__":
    main()
