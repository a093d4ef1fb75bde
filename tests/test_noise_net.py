"""Acceptance tests of the learned blind noise estimate (models/noise_net.onnx) through the real path:
synthetic DNG without a NoiseProfile -> decode -> normalise -> estimate; and of its training code.

What matters is the noise std at mid-grey, sigma(0.18) = sqrt(shot * 0.18 + read^2), the level the
choice of sources compares (rawisp.engines.noise_choice).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from conftest import natural_image
from test_noise import packed_capture, textured_scene

from rawisp.colour import srgb_decode
from rawisp.engines.noise import estimate_noise
from rawisp.engines.noise_net import NoiseNet
from rawisp.io.decode import decode
from rawisp.measure import synth
from rawisp.stages.normalise import normalise

MID = 0.18


def sigma(noise, x=MID) -> float:
    return math.sqrt(noise[0] * x + noise[1] ** 2)


@pytest.fixture(scope="module")
def net():
    return NoiseNet(threads=1)


def natural_cam(seed: int) -> np.ndarray:
    """conftest's natural image as linear camera RGB (strong pixel-scale texture everywhere)."""
    return srgb_decode(natural_image(384, 512, seed=seed)) @ synth.DEFAULT_CAM_FROM_SRGB.T


def test_estimate_on_textured_frames(tmp_path, net):
    """Mid and high noise (the evaluation's levels) on textured scenes: within 15% at mid-grey
    (measured: 0.97-1.03 of the truth)."""
    for shot, read in [(1e-3, 5e-4), (6e-3, 2e-3)]:
        for seed, cam in enumerate((textured_scene(0), natural_cam(1), natural_cam(2))):
            estimate = net(packed_capture(tmp_path, cam, shot, read, seed=seed))
            assert sigma(estimate) == pytest.approx(sigma((shot, read)), rel=0.15), (seed, estimate)


def test_weak_noise_on_natural_texture(tmp_path, net):
    """Weak noise (shot 1e-4, read 5e-4: ISO ~800) under conftest's busy natural texture: the
    hand-made estimate reads 2.2-2.4 times the noise, the learned one 1.12-1.32 times (weak noise
    reads somewhat high: the texture still weighs), and closer than the hand-made one on the
    natural scenes."""
    truth = sigma((1e-4, 5e-4))
    for seed, cam in enumerate((textured_scene(0), natural_cam(1), natural_cam(2))):
        packed = packed_capture(tmp_path, cam, 1e-4, 5e-4, seed=seed)
        learned, hand = sigma(net(packed)) / truth, sigma(estimate_noise(packed)) / truth
        assert 0.8 < learned < 1.5, (seed, learned)
        if seed:
            assert abs(math.log(learned)) < abs(math.log(hand)), (seed, learned, hand)


def test_texture_is_not_read_as_noise(tmp_path, net):
    """On clean, busily textured frames the hand-made estimate reads the texture as strong noise
    (sigma 8.6e-3 and 9.0e-3 at mid-grey); the learned one reads 2.7e-3 and 3.5e-3, which costs
    0.05-0.1 dB when the model is told it (docs/noise.md: 0.003 costs 0.05 dB, 0.005 0.21 dB)."""
    for seed in (1, 2):
        packed = packed_capture(tmp_path, natural_cam(seed), 0.0, 0.0)
        learned, hand = sigma(net(packed)), sigma(estimate_noise(packed))
        assert learned < 4e-3 and hand > 2 * learned, (seed, learned, hand)


def test_tiny_frames_give_no_noise(net):
    from rawisp.stages.normalise import Packed

    planes = np.random.default_rng(0).uniform(0.2, 0.4, (4, 6, 40)).astype(np.float32)
    packed = Packed(planes=planes, gains=np.ones(4, np.float32), noise=None, offset=(0, 0), shape=(12, 80))
    assert net(packed) == (0.0, 0.0)


def test_training_code_exports_a_model_the_runtime_reads(tmp_path):
    """A few iterations of tools/train_noise_net.py's training on random photos: the loss is
    finite, the ONNX file loads in the runtime and maps a frame to finite noise."""
    torch = pytest.importorskip("torch", reason="training needs the 'train' extra (torch)")
    from rawisp.train.noise_net import export_onnx, synthesise, train_noise_net

    photos = [(natural_image(160, 160, seed=s) * 255).astype(np.uint8) for s in range(3)]
    raw, target, mask = synthesise(torch.from_numpy(photos[0][None] / 255.0).permute(0, 3, 1, 2).float(),
                                   torch.Generator().manual_seed(0))
    assert raw.shape == (1, 4, 80, 80) and target.shape == mask.shape == (1, 1, 80, 80)
    lines = []
    model = train_noise_net(photos, iterations=4, batch=2, patch=64, seed=0, log=lines.append)
    assert lines and math.isfinite(float(lines[-1].split("loss ")[1]))
    export_onnx(model, str(tmp_path / "n.onnx"))
    packed = packed_capture(tmp_path, textured_scene(0), 1e-3, 5e-4)
    shot, read = NoiseNet(tmp_path / "n.onnx")(packed)
    assert math.isfinite(shot) and math.isfinite(read)


def test_pooling_inverts_the_noise_model():
    """Maps that read exactly ln(shot x level + read^2 + VAR_FLOOR) give back the shot noise (read
    from READ_SHARE), whatever the weights; pixels with near-zero weight (texture) do not count,
    however high they read; a map at the floor is a clean frame."""
    from rawisp.engines.noise_net import READ_SHARE, VAR_FLOOR, pool

    rng = np.random.default_rng(0)
    level = rng.uniform(0.005, 0.6, 20000)
    for shot in (1e-5, 1e-3, 6e-3):
        log_var = np.log(shot * (level + READ_SHARE) + VAR_FLOOR)
        logit = rng.normal(0, 2, level.size)
        textured = rng.random(level.size) < 0.5
        log_var[textured] += 3.0  # read as e^3 times the noise
        logit[textured] = -40.0
        got, read = pool(level, log_var, logit)
        assert got == pytest.approx(shot, rel=1e-3) and read == pytest.approx(math.sqrt(READ_SHARE * shot), rel=1e-3)
    assert pool(level, np.full(level.size, math.log(VAR_FLOOR)), np.zeros(level.size)) == (0.0, 0.0)


def test_pooling_leaves_out_pixels_near_clipping_and_small_frames():
    """Pixels at or above the clip level (greens that may have clipped after white balance) carry
    no information about the noise and are left out; with fewer than MIN_PIXELS left (a frame under
    about 100x100 pixels) the frame reads clean: too few pixels to tell texture from noise."""
    from rawisp.engines.noise_net import MIN_PIXELS, READ_SHARE, VAR_FLOOR, pool

    level = np.linspace(0.01, 0.99, 4 * MIN_PIXELS)
    log_var = np.log(1e-3 * (level + READ_SHARE) + VAR_FLOOR)
    log_var[level >= 0.5] = math.log(VAR_FLOOR)  # clipped: flat, no noise
    assert pool(level, log_var, np.zeros(level.size), clip_level=0.5)[0] == pytest.approx(1e-3, rel=1e-3)
    assert pool(level, log_var, np.zeros(level.size), clip_level=0.2) == (0.0, 0.0)  # 19% of the pixels
    small = slice(0, MIN_PIXELS - 1)
    assert pool(level[small], log_var[small], np.zeros(MIN_PIXELS - 1)) == (0.0, 0.0)


def test_photo_splits_keep_held_out_photos_apart():
    """The estimator trains on ``fit``, is chosen and calibrated on ``validation`` and reported on
    ``held-out``: three disjoint sets, the held-out ones those rawisp train validates on."""
    pytest.importorskip("torch", reason="the photo split lives with the training code (the 'train' extra)")
    from rawisp.train.loop import split_photos
    from rawisp.train.noise_frames import photo_splits

    photos = [np.full((4, 4, 3), i, np.uint8) for i in range(200)]
    fit, val, heldout = photo_splits(photos, 40)
    ids = [{int(p[0, 0, 0]) for p in s} for s in (fit, val, heldout)]
    assert [len(s) for s in ids] == [120, 40, 40] and len(set.union(*ids)) == 200
    assert ids[2] == {int(p[0, 0, 0]) for p in split_photos(photos, 40)[1]}


SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
GOPRO = [SHARED / "raw" / "derived" / name
         for name in ("gopro_hero8.from_gpr.dng", "gopro_fusion_GPFR7066.from_gpr.dng")]
GOPRO_TOLERANCE = 1.6  # sigma ratio either way
HELDOUT_MEDIAN = (0.85, 1.2)  # median sigma_estimate / sigma_true
HELDOUT_P90 = {"iso400": 1.3, "mid": 0.35, "high": 0.3}  # 90th percentile of |ratio - 1|


@pytest.mark.skipif(not all(p.is_file() for p in GOPRO), reason="the GoPro DNGs (../shared/data/raw) are not present")
def test_estimate_reads_real_sensor_noise(net):
    """Two real cameras (GoPro DNGs decoded from GPR: real sensor noise, real optics) whose files state
    their noise: the blind estimate, ignoring that NoiseProfile, reads sigma at mid-grey within
    GOPRO_TOLERANCE of it (measured: HERO8 (ISO 317) 0.92, Fusion (ISO 100) 1.49 of the profile: weak
    noise reads high, as on the held-out photos; the estimator shipped before read 0.27 and 0.70)."""
    for path in GOPRO:
        packed = normalise(decode(path))
        assert packed.noise is not None
        ratio = sigma(net(packed)) / sigma(packed.noise)
        assert abs(math.log(ratio)) < math.log(GOPRO_TOLERANCE), (path.name, ratio)


@pytest.mark.skipif(not (SHARED / "train" / "cbsd432").is_dir(),
                    reason="the training photos (../shared/data/train) are not present")
def test_estimate_on_held_out_photos(net):
    """The acceptance figure of docs/noise.md on the photos the estimator was never trained, chosen
    or calibrated on (the first 20 of the 40 held-out ones): median sigma_estimate / sigma_true at
    mid-grey near 1 from ISO-400-like to high noise, and 90th percentile of the error bounded
    (measured: median 1.10 / 0.93 / 0.97, 90th percentile 1.11 / 0.24 / 0.22; the estimator shipped
    before: median 0.56 / 0.83 / 0.82 on all 40)."""
    pytest.importorskip("torch", reason="loading the training photos needs the 'train' extra (torch)")
    from rawisp.train.noise_frames import LEVELS, estimates, load_splits
    from rawisp.train.noise_frames import sigma as true_sigma

    _, _, heldout = load_splits(SHARED / "train")
    for label in ("iso400", "mid", "high"):
        ratio = estimates({"net": net}, heldout[:20], [LEVELS[label]] * 20)["net"] / true_sigma(LEVELS[label])
        assert HELDOUT_MEDIAN[0] < np.median(ratio) < HELDOUT_MEDIAN[1], (label, np.median(ratio))
        assert np.quantile(np.abs(ratio - 1), 0.9) < HELDOUT_P90[label], (label, np.quantile(np.abs(ratio - 1), 0.9))
