"""Noise level of a raw frame: from the file's noise profile or estimated from the data itself.

The model is the usual heteroscedastic one: variance = shot * x + read^2, with x the normalised
raw value (0 = black, 1 = white) before white balance; the learned model is fed its standard
deviation per packed value, :func:`rawisp.engines.contract.sigma_planes`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rawisp.stages.normalise import Packed

BINS = 12
MIN_SAMPLES = 200


def estimate_noise(packed: Packed) -> tuple[float, float]:
    """Estimate (shot, read std) from the two green planes of a packed frame.

    Each G1 value minus the mean of its four diagonal G2 neighbours (the nearest greens, placed
    symmetrically around it) cancels the signal up to its curvature and leaves noise of variance
    1.25 sigma^2; a plain G1 - G2 difference keeps the local gradient, which reads as noise on
    textured scenes. Samples are binned by brightness (the 5-green mean, uncorrelated with the
    residual); per bin, the flattest half by the R and B gradients (noise independent of the
    greens, so the selection does not favour small residuals) gives a robust (MAD) standard
    deviation; a non-negative least-squares line through the variances gives shot and read^2.
    """
    r, g1, g2, b = (packed.planes[i] / packed.gains[i] for i in range(4))
    h, w = g1.shape
    if h < 3 or w < 2:
        return 0.0, 0.0
    step = max(1, int(np.sqrt(g1.size / 2e6)))  # about 2 M samples are plenty
    # G1 (i, j) sits at full-resolution (2i, 2j+1); its diagonal neighbours are G2 (i-1|i, j|j+1)
    ii, jj = np.arange(1, h - 1, step)[:, None], np.arange(0, w - 1, step)[None, :]
    centre = g1[ii, jj]
    around = g2[ii - 1, jj] + g2[ii - 1, jj + 1] + g2[ii, jj] + g2[ii, jj + 1]
    diff = ((centre - around / 4) / np.sqrt(1.25)).ravel()
    level = ((centre + around) / 5).ravel()
    texture = (np.abs(r[ii, jj + 1] - r[ii, jj]) + np.abs(r[ii + 1, jj] - r[ii, jj])
               + np.abs(b[ii, jj + 1] - b[ii, jj]) + np.abs(b[ii + 1, jj] - b[ii, jj])).ravel()

    def flat_half(sel: np.ndarray) -> tuple[float, float, float]:
        flat = sel & (texture <= np.median(texture[sel]))
        d = diff[flat]
        sigma = 1.4826 * np.median(np.abs(d - np.median(d)))
        return float(np.mean(level[flat])), sigma**2, float(flat.sum())

    return fit_by_level(level, level < 0.95, flat_half)


def fit_by_level(level: np.ndarray, usable: np.ndarray,
                 variance_of: Callable[[np.ndarray], tuple[float, float, float]]) -> tuple[float, float]:
    """(shot, read std) from noise variances measured per brightness bin.

    ``level`` (n,) is each sample's signal in normalised raw units; samples are cut into BINS
    bins of equal count (2nd to 98th percentile); ``variance_of(selection)`` returns a bin's
    (mean level, noise variance, weight). Bins with fewer than MIN_SAMPLES usable samples are
    skipped; with fewer than two bins the answer is (0, 0).
    """
    edges = np.quantile(level, np.linspace(0.02, 0.98, BINS + 1))
    xs, vs, ws = [], [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (level >= lo) & (level < hi) & usable
        if sel.sum() < MIN_SAMPLES:
            continue
        x, v, w = variance_of(sel)
        xs.append(x)
        vs.append(v)
        ws.append(w)
    if len(xs) < 2:
        return 0.0, 0.0
    return _fit_line(np.array(xs), np.array(vs), np.array(ws))


def _fit_line(x: np.ndarray, var: np.ndarray, weight: np.ndarray) -> tuple[float, float]:
    """Weighted least squares var = shot * x + read^2 with shot, read^2 >= 0."""
    a = np.stack([x, np.ones_like(x)], axis=1) * np.sqrt(weight)[:, None]
    b = var * np.sqrt(weight)
    shot, read2 = np.linalg.lstsq(a, b, rcond=None)[0]
    if shot < 0:
        shot, read2 = 0.0, float(np.average(var, weights=weight))
    if read2 < 0:
        shot, read2 = float(np.sum(weight * x * var) / np.sum(weight * x * x)), 0.0
    return float(shot), float(np.sqrt(read2))
