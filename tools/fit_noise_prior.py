"""Fit rawisp's EXIF noise prior (noise against ISO for a camera it has no profile for).

Reads darktable's noise-profile database (GPL-3, read here at run time, never copied), converts
every profile's green channel to rawisp's raw units (``camera_noise.darktable_noise``) and fits,
across all cameras, log variance at two signal levels (x = 0.02, shadows, and x = 0.18, mid-grey)
as a line in log2(ISO / 100). Prints the coefficients that ``camera_noise.EXIF_PRIOR`` stores
and the spread of the cameras around the fit (std of log variance), which sets how far a blind
estimate may move the prior.

    python tools/fit_noise_prior.py [/usr/share/darktable/noiseprofiles.json]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from rawisp.engines.camera_noise import PRIOR_LEVELS, ProfileDatabase, darktable_noise  # noqa: E402

ISO_RANGE = (50, 25600)  # beyond it cameras extrapolate digitally, or too few profiles


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/usr/share/darktable/noiseprofiles.json")
    db = ProfileDatabase.load(path)
    iso, var = [], []
    for camera in db.cameras:
        for p_iso, a, b in zip(camera.isos, camera.a, camera.b):
            if ISO_RANGE[0] <= p_iso <= ISO_RANGE[1]:
                shot, read = darktable_noise(a, b)
                iso.append(p_iso)
                var.append([shot * x + read**2 for x in PRIOR_LEVELS])
    t = np.log2(np.array(iso, float) / 100)
    design = np.stack([np.ones_like(t), t], axis=1)
    print(f"{len(db.cameras)} cameras, {len(iso)} profiles with ISO {ISO_RANGE[0]}-{ISO_RANGE[1]}")
    for k, x in enumerate(PRIOR_LEVELS):
        y = np.log(np.maximum(np.array(var)[:, k], 1e-12))
        coef = np.linalg.lstsq(design, y, rcond=None)[0]
        spread = np.std(y - design @ coef)
        print(f"x = {x}: ln variance = {coef[0]:.4f} + {coef[1]:.4f} * log2(ISO/100); "
              f"spread (std of ln variance) {spread:.3f}")


if __name__ == "__main__":
    main()
