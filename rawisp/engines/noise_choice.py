"""Which noise the learned engine is told: the best source a frame has, checked against the frame.

Sources, best first:

1. **file**: the DNG's own NoiseProfile, as the camera or converter wrote it; used as is.
2. **camera profile**: darktable's profile of the camera (EXIF Make and Model) at the frame's
   ISO (``camera_noise``). The blind estimate replaces it only when the frame clearly holds more
   noise (sigma at mid-grey over RAISE = 3 times the profile's: a pushed or underexposed shot);
   texture can only make the estimate higher, so it is never allowed to lower a profile.
3. **EXIF prior**: a camera without a profile, with an ISO: the typical noise of cameras at that
   ISO. Cameras scatter around it (``PRIOR_SPREAD``), so the blind estimate decides within that
   scatter: it is used when above PRIOR_FLOOR of the prior (variance at mid-grey, two standard
   deviations of the cameras' scatter), else the prior is lowered to that floor; above the prior
   it is used as is (a pushed shot).
4. **estimate**: nothing known (no ISO): the blind estimate alone.

All values are (shot, read std) in normalised raw units before white balance.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rawisp.engines.camera_noise import PRIOR_SPREAD, Camera, Noise, exif_prior, load_database
from rawisp.stages.normalise import Packed

MID_GREY = 0.18  # normalised raw level where noises are compared
RAISE = 3.0  # sigma ratio above a camera profile that counts as a noisier (pushed) frame (see docs/noise.md)
PRIOR_FLOOR = math.exp(-2 * PRIOR_SPREAD)  # lowest variance ratio to the EXIF prior an estimate may set


@dataclass(frozen=True)
class NoiseChoice:
    """The noise a frame is developed with, where it came from, and what was consulted."""

    shot: float
    read: float
    source: str  # "file", "camera profile", "EXIF prior" or "estimate"
    detail: str  # which camera / ISO, and how the estimate was used
    reference: Noise | None = None  # the camera profile or EXIF prior at the frame's ISO
    estimate: Noise | None = None  # the blind estimate, when it was made

    @property
    def noise(self) -> Noise:
        return self.shot, self.read


def variance(noise: Noise, x: float = MID_GREY) -> float:
    """Noise variance at normalised raw level ``x``."""
    return noise[0] * x + noise[1] ** 2


def choose_noise(packed: Packed, estimate: Callable[[Packed], Noise],
                 profiles: Path | None = None) -> NoiseChoice:
    """The noise for ``packed`` (see the module docstring); ``estimate`` is the blind estimator,
    called only when needed; ``profiles`` the darktable profile file (``camera_noise.profiles_path``)."""
    if packed.noise is not None:
        return NoiseChoice(*packed.noise, source="file", detail="DNG NoiseProfile")
    camera = packed.camera or Camera()
    profile = camera.profile(load_database(profiles) if profiles else None)
    if profile is not None:
        found, reference = profile
        measured = estimate(packed)
        if variance(measured) > RAISE**2 * variance(reference):
            return NoiseChoice(*measured, source="estimate", reference=reference, estimate=measured,
                               detail=f"frame noisier than the {found} profile at ISO {camera.iso:g}")
        return NoiseChoice(*reference, source="camera profile", reference=reference, estimate=measured,
                           detail=f"{found} at ISO {camera.iso:g} (darktable)")
    measured = estimate(packed)
    if camera.iso:
        reference = exif_prior(camera.iso)
        floor = PRIOR_FLOOR * variance(reference)
        if variance(measured) >= floor:
            return NoiseChoice(*measured, source="estimate", reference=reference, estimate=measured,
                               detail=f"within the range of cameras at ISO {camera.iso:g}")
        scale = math.sqrt(PRIOR_FLOOR)
        return NoiseChoice(reference[0] * PRIOR_FLOOR, reference[1] * scale, source="EXIF prior",
                           reference=reference, estimate=measured,
                           detail=f"the quietest cameras at ISO {camera.iso:g} (estimate lower)")
    return NoiseChoice(*measured, source="estimate", estimate=measured, detail="no ISO in the file")
