"""Noise a camera is known to have: darktable's per-camera, per-ISO profiles and an EXIF prior.

All noise here is rawisp's model, variance = shot * x + read**2 with x the normalised raw value
(black 0, white 1) before white balance, the same for every CFA plane.

**darktable's database** (``noiseprofiles.json``, GPL-3, installed with darktable): per maker,
model and ISO, ``a`` and ``b`` for R, G, B. They are read at run time from the file the user names
(``--noise-profiles``), else ``$RAWISP_NOISE_PROFILES``, else darktable's install location; rawisp
ships none of it. Units, as darktable's profiling tool measures them: variance = a * x + b of a
*demosaicked* frame (rawprepare's [0, 1] scale) measured as the HH band of a one-level Haar
transform, per brightness bin labelled by its lower edge. Demosaicking and the HH band shrink
the variance by a fixed factor, measured by ``tools/darktable_units.py`` (11.3 for the PPG
demosaic); R and B carry the camera's white balance (their ``a`` are about the WB gains times
green's across the database), so only green is used, as darktable's denoise module itself does.
Between profiled ISOs ``a`` and ``b`` are interpolated linearly (as darktable does); above the
highest, scaled by the ISO ratio (shot) and its square (read); below the lowest, the lowest.

**EXIF prior**: for a camera without a profile, the typical noise at its ISO, fitted across the
database by ``tools/fit_noise_prior.py``; ``PRIOR_SPREAD`` is how far cameras scatter around it.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

Noise = tuple[float, float]  # (shot, read std), normalised raw units

DARKTABLE_VARIANCE_SCALE = 11.3  # raw variance / darktable's; python tools/darktable_units.py
DARKTABLE_BINS = 300  # brightness bins of darktable's profiling tool (bin lower edge = its label)
DEFAULT_PROFILES = Path("/usr/share/darktable/noiseprofiles.json")
PROFILES_ENV = "RAWISP_NOISE_PROFILES"

# EXIF prior: ln variance at x = PRIOR_LEVELS as c0 + c1 * log2(ISO / 100), across the database's
# cameras; python tools/fit_noise_prior.py (darktable 4.2.1's noiseprofiles.json, 7045 profiles)
PRIOR_LEVELS = (0.02, 0.18)
EXIF_PRIOR = ((-14.0369, 0.6457), (-11.8770, 0.6163))
PRIOR_SPREAD = 0.91  # std of ln variance of cameras around the fit (the larger of the two levels)


class ProfileError(ValueError):
    """The noise-profile file is missing, unreadable or not in darktable's format."""


def darktable_noise(a: float, b: float) -> Noise:
    """darktable's green-channel (a, b) -> rawisp's (shot, read) (see the module docstring)."""
    shot = DARKTABLE_VARIANCE_SCALE * max(a, 0.0)
    # b's fit is noisy and often negative: read noise then counts as 0
    read2 = DARKTABLE_VARIANCE_SCALE * max(b - max(a, 0.0) / (2 * DARKTABLE_BINS), 0.0)
    return shot, math.sqrt(read2)


@dataclass(frozen=True)
class CameraProfiles:
    """One camera's profiles, sorted by ISO: green ``a`` and ``b`` in darktable's units."""

    maker: str
    model: str
    isos: tuple[float, ...]
    a: tuple[float, ...]
    b: tuple[float, ...]

    def at_iso(self, iso: float) -> Noise:
        """(shot, read) at ``iso``, interpolated between profiles or extrapolated beyond them."""
        isos = np.array(self.isos)
        if iso > isos[-1]:
            ratio = iso / isos[-1]
            shot, read = darktable_noise(self.a[-1], self.b[-1])
            return shot * ratio, read * ratio
        a = float(np.interp(iso, isos, self.a))
        b = float(np.interp(iso, isos, self.b))
        return darktable_noise(a, b)


def _key(text: str) -> str:
    """Case- and spacing-insensitive form of a maker or model name."""
    return re.sub(r"[\s_]+", " ", text).strip().casefold()


# EXIF Make strings that do not contain darktable's maker name
_MAKER_ALIASES = {"om digital solutions": "om system", "raspberry pi": "raspberrypi", "lg electronics": "lge"}


@dataclass(frozen=True)
class ProfileDatabase:
    """darktable's noise-profile database, as read from one file."""

    path: Path
    cameras: tuple[CameraProfiles, ...]

    @classmethod
    def load(cls, path: Path) -> "ProfileDatabase":
        """Read and check a file in darktable's format (version 0)."""
        try:
            data = json.loads(Path(path).read_text())
        except OSError as exc:
            raise ProfileError(f"{path}: cannot read noise profiles ({exc.strerror or exc})") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ProfileError(f"{path}: not a JSON noise-profile file ({exc})") from None
        if not isinstance(data, dict) or data.get("version") != 0 or not isinstance(data.get("noiseprofiles"), list):
            raise ProfileError(f"{path}: not darktable's noise-profile format (version 0, 'noiseprofiles')")
        cameras = []
        try:
            for maker in data["noiseprofiles"]:
                for model in maker["models"]:
                    rows = sorted((float(p["iso"]), float(p["a"][1]), float(p["b"][1]))
                                  for p in model["profiles"] if not p.get("skip", False))
                    rows = [r for r in rows if all(map(math.isfinite, r)) and r[0] > 0]
                    if rows:
                        isos, a, b = zip(*rows)
                        cameras.append(CameraProfiles(str(maker["maker"]), str(model["model"]), isos, a, b))
        except (KeyError, TypeError, IndexError, ValueError) as exc:
            raise ProfileError(f"{path}: malformed noise profile ({type(exc).__name__}: {exc})") from None
        return cls(Path(path), tuple(cameras))

    def find(self, make: str | None, model: str | None) -> CameraProfiles | None:
        """The profiles of the camera an EXIF Make and Model name, or None.

        As darktable matches: the database's maker must appear in the camera's maker name
        ("NIKON CORPORATION" is Nikon) and the model must be the same; EXIF models that repeat
        the maker ("Canon EOS 5D Mark II", "NIKON D800", "PENTAX K-1") are compared without it.
        Case and spacing do not matter. Regional aliases (EOS Kiss X4 = EOS 550D) are not known.
        """
        if not make or not model:
            return None
        make_key, model_key = _key(make), _key(model)
        make_key = _MAKER_ALIASES.get(make_key, make_key)
        for camera in self.cameras:
            maker = _key(camera.maker)
            if maker not in make_key and not model_key.startswith(maker + " "):
                continue
            wanted = _key(camera.model)
            if wanted in (model_key, _strip_maker(model_key, maker), _strip_maker(model_key, make_key.split()[0])):
                return camera
        return None


def _strip_maker(model: str, maker: str) -> str:
    return model[len(maker) + 1:] if model.startswith(maker + " ") else model


@dataclass(frozen=True)
class Camera:
    """What the file's EXIF says about the shot (None: unknown)."""

    make: str | None = None
    model: str | None = None
    iso: float | None = None

    def profile(self, db: ProfileDatabase | None) -> tuple[str, Noise] | None:
        """("Maker Model", (shot, read)) from ``db`` at this ISO, or None without a match or ISO."""
        if db is None or not self.iso:
            return None
        found = db.find(self.make, self.model)
        return None if found is None else (f"{found.maker} {found.model}", found.at_iso(self.iso))


def profiles_path(option: str | None = None) -> Path | None:
    """The profile file to use: the option, else $RAWISP_NOISE_PROFILES, else darktable's if
    installed, else None. A named file that does not exist is an error, not silently skipped."""
    named = option or os.environ.get(PROFILES_ENV)
    if named:
        if not Path(named).is_file():
            raise ProfileError(f"{named}: noise-profile file not found")
        return Path(named)
    return DEFAULT_PROFILES if DEFAULT_PROFILES.is_file() else None


@lru_cache(maxsize=4)
def load_database(path: Path) -> ProfileDatabase:
    """The database in ``path``, read once per process."""
    return ProfileDatabase.load(path)


def exif_prior(iso: float) -> Noise:
    """Typical (shot, read) of a camera at ``iso`` (fit across darktable's database)."""
    t = math.log2(max(iso, 1.0) / 100)
    low, mid = (math.exp(c0 + c1 * t) for c0, c1 in EXIF_PRIOR)
    (x0, x1) = PRIOR_LEVELS
    shot = max((mid - low) / (x1 - x0), 0.0)
    return shot, math.sqrt(max(low - shot * x0, 0.0))
