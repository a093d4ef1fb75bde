"""Choose a noise-estimator checkpoint on the validation photos (never the held-out ones).

Each checkpoint (uncalibrated) reads the noise of the 40 validation photos carved from the
training photos (``noise_frames.load_splits``; the network never trained on them) at ISO 400-like
to high noise. Prints per checkpoint the median ratio sigma_estimate / sigma_true at mid-grey per
level; the score, the mean over all frames of min(|ln ratio|, 1) (lower is better; an estimate
off by more than e counts as e, so a few failed frames do not outweigh the rest); the 90th
percentile of |ln ratio|; and the median sigma read on clean frames. Then the best checkpoint.

    python tools/select_noise_net.py runs/noise/b_*.onnx      # ~20 s a checkpoint
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from rawisp.engines.noise_net import NoiseNet  # noqa: E402
from rawisp.train.noise_frames import LEVELS, estimates, load_splits, log_errors  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path)
    args = parser.parse_args()
    _, val, _ = load_splits()
    scores = {}
    for model in args.models:
        net = NoiseNet(model, threads=1, calibrated=False)
        errors = log_errors(net, val)
        clean = estimates({"net": net}, val, [LEVELS["clean"]] * len(val))["net"]
        error = np.abs(np.concatenate(list(errors.values())))
        scores[model] = float(np.mean(np.minimum(error, 1.0)))
        ratios = " ".join(f"{label} {np.exp(np.median(e)):.2f}" for label, e in errors.items())
        print(f"{model}: {ratios}; score {scores[model]:.3f}, 90th pct |ln ratio| {np.quantile(error, 0.9):.2f}; "
              f"clean sigma {np.median(clean):.1e}",
              flush=True)
    print(f"best: {min(scores, key=scores.get)}")


if __name__ == "__main__":
    main()
