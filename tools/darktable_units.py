"""Measure how darktable's noise-profile numbers relate to the raw noise they describe.

darktable's profiles (``noiseprofiles.json``, variance = a * x + b per channel) are not fitted on
the raw mosaic: its profiling tool exports each shot demosaicked (rawprepare's [0, 1] scale, unit
camera RGB, no colour matrix), takes a one-level Haar transform over 2x2 blocks, reads the noise
std per brightness bin (300 bins of the LL band) as the MAD of the HH band, and fits the variance
against brightness by weighted least squares. Demosaicking and the HH band both shrink the noise,
so darktable's ``a`` and ``b`` are a fixed fraction of the raw mosaic's variance. Each bin is
labelled with its lower edge, which adds a/(2*300) to the fitted ``b``; ``b`` is a small
intercept, so its fit is far noisier than ``a`` (and negative for many cameras in the database).
The ratio is the same in the shadows as in the midtones (printed), as it must be for a linear
filter: rawisp scales ``a`` and ``b`` alike.

This script repeats that measurement on synthetic Bayer frames of known Poisson-Gaussian noise
(smooth grey ramp, 16-bit DNG, LibRaw's PPG demosaic: darktable's default demosaic when most
profiles were made, the same algorithm) and prints raw variance / darktable variance for the green
channel (darktable itself uses only green, times the white-balance gain). rawisp multiplies the
database's green ``a`` and ``b`` by the printed median (``camera_noise.DARKTABLE_VARIANCE_SCALE``).

    python tools/darktable_units.py            # about 20 s
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import rawpy

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from rawisp.measure import synth  # noqa: E402

H, W = 1200, 1600
BINS = 300
NOISES = [(2e-5, 3e-4), (1e-4, 5e-4), (5e-4, 1e-3), (2e-3, 2e-3)]  # (shot, read), normalised units


def demosaicked_capture(shot: float, read: float, algorithm: str, seed: int, folder: Path) -> np.ndarray:
    """A grey ramp (0.005-0.85) with raw noise, demosaicked by LibRaw: (H, W, 3) in [0, 1], WB 1."""
    level = np.linspace(0.005, 0.85, W)[None, :] * (0.9 + 0.1 * np.cos(np.linspace(0, 3, H)))[:, None]
    cam = np.repeat(level[..., None], 3, axis=2)
    mosaic = synth.add_noise(synth.mosaic(cam, "RGGB"), shot, read, np.random.default_rng(seed))
    path = folder / "ramp.dng"
    synth.write_dng(path, mosaic, cfa="RGGB", black=1024, white=65535, neutral=(1, 1, 1), cam_from_srgb=np.eye(3))
    with rawpy.imread(str(path)) as raw:
        rgb = raw.postprocess(demosaic_algorithm=getattr(rawpy.DemosaicAlgorithm, algorithm),
                              output_color=rawpy.ColorSpace.raw, gamma=(1, 1), user_wb=[1, 1, 1, 1],
                              no_auto_bright=True, output_bps=16, user_flip=0,
                              highlight_mode=rawpy.HighlightMode.Clip)
    return rgb.astype(np.float64) / 65535


def darktable_fit(img: np.ndarray, channel: int, x_max: float = 0.8) -> tuple[float, float]:
    """(a, b) as darktable's profiling tool measures them on one channel of a demosaicked image."""
    c = img[: img.shape[0] // 2 * 2, : img.shape[1] // 2 * 2, channel]
    p00, p01, p10, p11 = c[0::2, 0::2], c[0::2, 1::2], c[1::2, 0::2], c[1::2, 1::2]
    ll = ((p00 + p01 + p10 + p11) / 4).ravel()
    hh = np.abs((p00 - p01 - p10 + p11) / 4).ravel()  # one level of lifting Haar: HH band
    index = np.clip((ll * BINS).astype(int), 0, BINS - 1)
    xs, var, weight = [], [], []
    for k in np.unique(index):
        values = hh[index == k]
        if k / BINS <= x_max and len(values) > 20:
            xs.append(k / BINS)
            var.append((np.median(values) / 0.6745) ** 2)
            weight.append(len(values))  # gnuplot's "1/max(0.01, count)" errors: weight count^2
    xs, var, w = np.array(xs), np.array(var), np.array(weight, float)
    a, b = np.linalg.lstsq(np.stack([xs, np.ones_like(xs)], 1) * w[:, None], var * w, rcond=None)[0]
    return float(a), float(b)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for algorithm in ("PPG", "AHD"):
            scales = []
            for seed, (shot, read) in enumerate(NOISES):
                img = demosaicked_capture(shot, read, algorithm, seed, Path(tmp))
                a, b = darktable_fit(img, channel=1)
                scales.append(shot / a)
                dark = darktable_fit(img, channel=1, x_max=0.03)  # where read noise weighs most
                print(f"{algorithm} shot {shot:.0e} read {read:.0e}: darktable a {a:.3e} b {b:.3e}; "
                      f"raw/darktable variance {shot / a:.2f} (at x = 0.01: "
                      f"{(shot * 0.01 + read**2) / (dark[0] * 0.01 + dark[1]):.2f})")
            print(f"{algorithm}: median scale {np.median(scales):.2f}")


if __name__ == "__main__":
    main()
