"""Camera noise profiles (darktable's database format), the EXIF prior, and how the learned engine
chooses its noise: unit tests on a profile file built here, and acceptance tests through real
synthetic DNGs (EXIF Make, Model, ISO; noise drawn from the profile) and the engine itself.

The test against darktable's own database skips when it is not installed (CI has none).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import natural_image

from rawisp.colour import srgb_decode
from rawisp.engines.camera_noise import (DARKTABLE_BINS, DARKTABLE_VARIANCE_SCALE, DEFAULT_PROFILES, PROFILES_ENV,
                                         Camera, ProfileDatabase, ProfileError, darktable_noise, exif_prior,
                                         profiles_path)
from rawisp.engines.learned import Learned
from rawisp.engines.noise_choice import MID_GREY, PRIOR_FLOOR, RAISE, choose_noise, variance
from rawisp.io.decode import decode
from rawisp.measure import synth
from rawisp.stages.normalise import normalise
from rawisp.stages.reconstruct import EngineOptions

# green a, b of two made-up cameras, darktable's units (R and B differ: they carry white balance)
PROFILES = {
    "Nikon": {"D9000": [(100, 1.5e-6, 2e-9), (400, 5e-6, 1e-8), (1600, 2e-5, 5e-8), (3200, 4e-5, -1e-8)]},
    "Canon": {"EOS 99D": [(100, 2e-6, 3e-9), (200, 4e-6, 4e-9), (800, 9e-6, 2e-8, True), (6400, 8e-5, 3e-7)]},
}


def write_profiles(path, profiles=PROFILES) -> None:
    """A profile file in darktable's format (version 0)."""
    makers = []
    for maker, models in profiles.items():
        entries = []
        for model, rows in models.items():
            entries.append({"comment": "made by the tests", "model": model, "profiles": [
                {"name": f"{model} iso {row[0]}", "iso": row[0], "a": [2 * row[1], row[1], 1.5 * row[1]],
                 "b": [row[2], row[2], row[2]], **({"skip": True} if len(row) > 3 else {})} for row in rows]})
        makers.append({"maker": maker, "models": entries})
    path.write_text(json.dumps({"version": 0, "noiseprofiles": makers}))


@pytest.fixture
def db(tmp_path):
    write_profiles(tmp_path / "profiles.json")
    return ProfileDatabase.load(tmp_path / "profiles.json")


def test_darktable_units_to_raw_units():
    """Green a and b scale by the measured demosaic factor; b loses the bin-edge offset; negative
    b (common in the database) is no read noise."""
    a, b = 4e-6, 2e-8
    shot, read = darktable_noise(a, b)
    assert shot == pytest.approx(DARKTABLE_VARIANCE_SCALE * a)
    assert read**2 == pytest.approx(DARKTABLE_VARIANCE_SCALE * (b - a / (2 * DARKTABLE_BINS)))
    assert darktable_noise(a, -1e-7) == (pytest.approx(DARKTABLE_VARIANCE_SCALE * a), 0.0)


@pytest.mark.parametrize("make,model,found", [
    ("NIKON CORPORATION", "NIKON D9000", "D9000"), ("Nikon", "D9000", "D9000"), ("nikon", "d9000", "D9000"),
    ("Canon", "Canon EOS 99D", "EOS 99D"), ("Canon", "Canon  EOS 99D ", "EOS 99D"),
    ("Canon", "EOS 9D", None), ("Sony", "D9000", None), (None, "D9000", None), ("Canon", None, None),
])
def test_camera_matching(db, make, model, found):
    camera = db.find(make, model)
    assert (camera.model if camera else None) == found


def test_iso_interpolation_and_extrapolation(db):
    nikon = db.find("Nikon", "D9000")
    assert nikon.at_iso(400) == darktable_noise(5e-6, 1e-8)
    assert nikon.at_iso(1000) == pytest.approx(darktable_noise(1.25e-5, 3e-8))  # halfway, linear as darktable
    assert nikon.at_iso(50) == darktable_noise(1.5e-6, 2e-9)  # below the lowest: the lowest
    shot, read = darktable_noise(4e-5, -1e-8)
    assert nikon.at_iso(12800) == pytest.approx((4 * shot, 4 * read))  # above: scaled by the ISO ratio
    canon = db.find("Canon", "Canon EOS 99D")
    assert canon.isos == (100, 200, 6400)  # the "skip" profile is left out, as darktable does
    assert canon.at_iso(800)[0] == pytest.approx(darktable_noise(4e-6 + (8e-5 - 4e-6) * 600 / 6200, 0)[0])


def test_bad_profile_files(tmp_path):
    bad = {"not json": "{", "wrong version": json.dumps({"version": 1, "noiseprofiles": []}),
           "missing a": json.dumps({"version": 0, "noiseprofiles": [{"maker": "X", "models": [
               {"model": "Y", "profiles": [{"iso": 100, "b": [0, 0, 0]}]}]}]})}
    for name, text in bad.items():
        path = tmp_path / f"{name}.json"
        path.write_text(text)
        with pytest.raises(ProfileError, match=str(path)):
            ProfileDatabase.load(path)
    with pytest.raises(ProfileError, match="not found"):
        profiles_path(str(tmp_path / "absent.json"))


def test_profile_file_from_option_environment_or_darktable(tmp_path, monkeypatch):
    path = tmp_path / "p.json"
    write_profiles(path)
    monkeypatch.setenv(PROFILES_ENV, str(path))
    assert profiles_path(None) == path
    assert profiles_path(str(path)) == path
    monkeypatch.delenv(PROFILES_ENV)
    assert profiles_path(None) == (DEFAULT_PROFILES if DEFAULT_PROFILES.is_file() else None)


def test_exif_prior_grows_with_iso():
    sigmas = [math.sqrt(variance(exif_prior(iso))) for iso in (100, 400, 1600, 6400)]
    assert all(b / a > 1.6 for a, b in zip(sigmas, sigmas[1:]))  # about x2 per two stops
    assert 2e-3 < sigmas[1] < 8e-3  # ISO 400, mid-grey: what cameras have, in normalised units


class Fixed:
    """A stand-in blind estimator that returns a fixed answer and counts its calls."""

    def __init__(self, noise):
        self.noise, self.calls = noise, 0

    def __call__(self, packed):
        self.calls += 1
        return self.noise


def packed_frame(tmp_path, make="Nikon", model="D9000", iso=400, noise=(1e-4, 5e-4), profile=False):
    img = (natural_image(64, 96, seed=3) * 255).astype(np.uint8)
    exif = {"ISO": iso} if iso else {}
    synth.srgb_to_dng(tmp_path / "f.dng", img, noise=noise, noise_profile=profile, exif=exif, make=make, model=model)
    return normalise(decode(tmp_path / "f.dng"))


def test_choice_file_profile_wins(tmp_path, db):
    estimator = Fixed((1e-2, 1e-2))
    choice = choose_noise(packed_frame(tmp_path, profile=True), estimator, db.path)
    assert (choice.source, choice.noise) == ("file", pytest.approx((1e-4, 5e-4)))
    assert estimator.calls == 0


def test_choice_camera_profile_raised_only_by_clearly_more_noise(tmp_path, db):
    packed = packed_frame(tmp_path)
    profile = db.find("Nikon", "D9000").at_iso(400)
    for factor, source in ((0.2, "camera profile"), (1.2, "camera profile"), (RAISE**2 * 1.1, "estimate")):
        estimate = (profile[0] * factor, profile[1] * math.sqrt(factor))
        choice = choose_noise(packed, Fixed(estimate), db.path)
        assert choice.source == source
        assert choice.noise == pytest.approx(profile if source == "camera profile" else estimate)
        assert choice.reference == pytest.approx(profile)


def test_choice_exif_prior_bounds_the_estimate_from_below(tmp_path, db):
    packed = packed_frame(tmp_path, make="Acme", model="One")
    prior = exif_prior(400)
    low = choose_noise(packed, Fixed((0.0, 0.0)), db.path)
    assert low.source == "EXIF prior"
    assert variance(low.noise) == pytest.approx(PRIOR_FLOOR * variance(prior))
    for factor in (PRIOR_FLOOR * 1.5, 1.0, 30.0):  # within the cameras' scatter, or a pushed shot
        estimate = (prior[0] * factor, prior[1] * math.sqrt(factor))
        choice = choose_noise(packed, Fixed(estimate), db.path)
        assert (choice.source, choice.noise) == ("estimate", pytest.approx(estimate))
    no_iso = choose_noise(packed_frame(tmp_path, iso=None), Fixed((3e-3, 1e-3)), db.path)
    assert (no_iso.source, no_iso.reference, no_iso.noise) == ("estimate", None, (3e-3, 1e-3))


def sigma_used(engine: Learned, path) -> float:
    """The noise std at mid-grey the engine feeds its model for a file."""
    return math.sqrt(variance(engine.noise(normalise(decode(path))), MID_GREY))


def profile_capture(path, make: str, model: str, iso: int, noise, seed: int) -> None:
    """A textured natural scene whose noise is drawn from ``noise``; EXIF Make/Model/ISO; no NoiseProfile."""
    img = natural_image(256, 384, seed=seed)
    truth = srgb_decode(img) @ synth.DEFAULT_CAM_FROM_SRGB.T * 0.8
    neutral = np.array([0.5, 1.0, 0.7])
    raw = synth.add_noise(synth.mosaic(truth * neutral, "RGGB"), *noise, np.random.default_rng(seed))
    synth.write_dng(path, raw, black=512, white=16383, neutral=neutral, noise=None, exif={"ISO": iso},
                    make=make, model=model)


def test_engine_uses_the_camera_profile_from_a_profile_file(tmp_path, cli):
    """End to end with a profile file named on the command line: the sigma the engine uses at
    mid-grey is the profile's at the file's ISO (within 15%), the texture does not raise it."""
    profiles = tmp_path / "profiles.json"
    write_profiles(profiles)
    engine = Learned.load(EngineOptions(threads=1, noise_profiles=str(profiles)))
    db = ProfileDatabase.load(profiles)
    for seed, (make, model, iso) in enumerate([("NIKON CORPORATION", "NIKON D9000", 200),
                                               ("Canon", "Canon EOS 99D", 3200)]):
        truth = db.find(make, model).at_iso(iso)
        path = tmp_path / f"{seed}.dng"
        profile_capture(path, make, model, iso, truth, seed)
        assert sigma_used(engine, path) == pytest.approx(math.sqrt(variance(truth)), rel=0.15)
    result = cli("info", "--json", "--noise-profiles", profiles, tmp_path / "0.dng")
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)[0]
    assert record["noise_source"].startswith("camera profile: Nikon D9000 at ISO 200")
    expected = math.sqrt(variance(db.find("Nikon", "D9000").at_iso(200)))
    assert record["noise"]["sigma_mid_grey"] == pytest.approx(expected, rel=0.01)


# EXIF Make and Model as the cameras write them; darktable's database has all of them
REAL_CAMERAS = [("Canon", "Canon EOS 6D"), ("NIKON CORPORATION", "NIKON D750"), ("SONY", "ILCE-7M3"),
                ("FUJIFILM", "X-T3"), ("OLYMPUS CORPORATION", "E-M1MarkII"), ("Panasonic", "DC-G9")]


@pytest.mark.skipif(not DEFAULT_PROFILES.is_file(),
                    reason=f"darktable's database is not installed ({DEFAULT_PROFILES})")
def test_real_database_cameras_at_every_iso(tmp_path):
    """Six makers, ISO 100 to 12800: noise drawn from the camera's darktable profile; the engine's
    sigma at mid-grey is within 15% of it (it reads the profile; the texture never raises it)."""
    db = ProfileDatabase.load(DEFAULT_PROFILES)
    engine = Learned.load(EngineOptions(threads=1))
    errors = {}
    for c, (make, model) in enumerate(REAL_CAMERAS):
        camera = db.find(make, model)
        assert camera is not None, (make, model)
        for k, iso in enumerate((100, 200, 400, 800, 1600, 3200, 6400, 12800)):
            truth = Camera(make, model, iso).profile(db)[1]
            path = tmp_path / "f.dng"
            profile_capture(path, make, model, iso, truth, seed=8 * c + k)
            errors[make, iso] = sigma_used(engine, path) / math.sqrt(variance(truth)) - 1
    assert max(abs(e) for e in errors.values()) < 0.15, errors
