"""Acceptance tests of the learned blind noise estimate (models/noise_net.onnx) through the real path:
synthetic DNG without a NoiseProfile -> decode -> normalise -> estimate; and of its training code.

What matters is the noise std at mid-grey, sigma(0.18) = sqrt(shot * 0.18 + read^2), the level the
choice of sources compares (rawisp.noise_choice).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import natural_image
from test_noise import packed_capture, textured_scene

from rawisp import synth
from rawisp.colour import srgb_decode
from rawisp.noise import estimate_noise
from rawisp.noise_net import NoiseNet

MID = 0.18


def sigma(noise, x=MID) -> float:
    return math.sqrt(noise[0] * x + noise[1] ** 2)


@pytest.fixture(scope="module")
def net():
    return NoiseNet(threads=1)


def natural_cam(seed: int) -> np.ndarray:
    """conftest's natural image as linear camera RGB (strong pixel-scale texture everywhere)."""
    return srgb_decode(natural_image(384, 512, seed=seed)) @ synth.DEFAULT_CAM_FROM_SRGB.T


@pytest.mark.parametrize("shot,read", [(1e-3, 5e-4), (6e-3, 2e-3)])
def test_estimate_on_textured_frames(tmp_path, net, shot, read):
    """Mid and high noise (the evaluation's levels) on textured scenes: within 40% at mid-grey
    (measured: 0.97-1.37 of the truth; the calibration fitted on photos reads these smoother
    scenes up to a third high at mid noise)."""
    for seed, cam in enumerate((textured_scene(0), natural_cam(1), natural_cam(2))):
        estimate = net(packed_capture(tmp_path, cam, shot, read, seed=seed))
        assert sigma(estimate) == pytest.approx(sigma((shot, read)), rel=0.4), (seed, estimate)


def test_weak_noise_on_natural_texture(tmp_path, net):
    """Weak noise (shot 1e-4, read 5e-4: ISO ~800) under conftest's busy natural texture: the
    hand-made estimate reads 2.2-2.4 times the noise, the learned one within a factor 2 (measured
    0.50-1.09), and closer than the hand-made one on the natural scenes."""
    truth = sigma((1e-4, 5e-4))
    for seed, cam in enumerate((textured_scene(0), natural_cam(1), natural_cam(2))):
        packed = packed_capture(tmp_path, cam, 1e-4, 5e-4, seed=seed)
        learned, hand = sigma(net(packed)) / truth, sigma(estimate_noise(packed)) / truth
        assert 0.45 < learned < 2, (seed, learned)
        if seed:
            assert abs(math.log(learned)) < abs(math.log(hand)), (seed, learned, hand)


def test_texture_is_not_read_as_noise(tmp_path, net):
    """On clean, busily textured frames the hand-made estimate reads the texture as strong noise
    (sigma about 1e-2 at mid-grey); the learned one reads about 2e-3, which costs nothing
    measurable when the model is told it (docs/noise.md)."""
    for seed in (1, 2):
        packed = packed_capture(tmp_path, natural_cam(seed), 0.0, 0.0)
        learned, hand = sigma(net(packed)), sigma(estimate_noise(packed))
        assert learned < 2.5e-3 and hand > 4 * learned, (seed, learned, hand)


def test_tiny_frames_give_no_noise(net):
    from rawisp.normalise import Packed

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
