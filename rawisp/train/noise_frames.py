"""Frames of known noise for measuring, choosing and calibrating the blind noise estimator.

A photo becomes a real 12-bit DNG without NoiseProfile (``rawisp.synth``: realistic camera matrix,
as-shot neutral (0.55, 1, 0.75)), is decoded and normalised as ``rawisp develop`` does, and an
estimator reads its noise. What is compared is the noise std at mid-grey,
sigma(0.18) = sqrt(shot x 0.18 + read^2) in normalised raw units, the level the choice of sources
compares (``rawisp.noise_choice``).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from rawisp.io.decode import decode
from rawisp.measure import synth
from rawisp.stages.normalise import Packed, normalise

TRAIN_ROOT = Path("../shared/data/train")  # relative to the project root, where the tools run
FOLDERS = ("cbsd432", "imagenet_sample_1000", "sun_hays80")  # the model's training photos
# (shot, read) in normalised raw units; ISO-like levels from a typical camera, mid and high as rawisp eval's
LEVELS = {"clean": (0.0, 0.0), "iso100": (2e-5, 1.5e-4), "iso400": (8e-5, 3e-4), "iso1600": (3e-4, 6e-4),
          "mid": (1e-3, 5e-4), "iso6400": (1.2e-3, 1.5e-3), "high": (6e-3, 2e-3)}
MID = 0.18

Noise = tuple[float, float]


def photo_splits(photos: list[np.ndarray], holdout: int = 40) -> tuple[list, list, list]:
    """(fit, validation, held-out) photos for the noise estimator.

    held-out: the 40 photos ``rawisp train`` validates on (``split_photos``), which the noise
    tools only report on; validation: ``holdout`` more carved from the rest the same way, for
    choosing a checkpoint and fitting the calibration; fit: what the network trains on.
    Needs the 'train' extra (torch), as the loading does."""
    from rawisp.train.loop import split_photos

    train, heldout = split_photos(photos, holdout)
    fit, val = split_photos(train, holdout)
    return fit, val, heldout


def load_splits(root: Path = TRAIN_ROOT) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """``photo_splits`` of the model's training photos under ``root`` (loaded as ``rawisp train`` does)."""
    from rawisp.train.data import load_photos

    return photo_splits(load_photos([root / d for d in FOLDERS], min_side=128))


def sigma(noise: Noise, x: float = MID) -> float:
    """Noise std at normalised raw level ``x``."""
    return math.sqrt(noise[0] * x + noise[1] ** 2)


def estimates(estimators: dict[str, Callable[[Packed], Noise]], photos: list[np.ndarray],
              noises: list[Noise]) -> dict[str, np.ndarray]:
    """sigma(0.18) each estimator reads on each photo captured with the matching noise (seeded by index)."""
    out: dict[str, list[float]] = {name: [] for name in estimators}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "frame.dng"
        for i, (photo, noise) in enumerate(zip(photos, noises)):
            synth.srgb_to_dng(path, photo, noise=noise, seed=i, noise_profile=False)
            packed = normalise(decode(path))
            for name, estimate in estimators.items():
                out[name].append(sigma(estimate(packed)))
    return {name: np.array(v) for name, v in out.items()}


def log_errors(estimate: Callable[[Packed], Noise], photos: list[np.ndarray],
               levels: tuple[str, ...] = ("iso400", "iso1600", "mid", "iso6400", "high")) -> dict[str, np.ndarray]:
    """Per level, ln(sigma_estimate / sigma_true) at mid-grey on every photo."""
    return {label: np.log(np.maximum(estimates({"e": estimate}, photos, [LEVELS[label]] * len(photos))["e"], 1e-9)
                          / sigma(LEVELS[label])) for label in levels}
