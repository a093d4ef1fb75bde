"""The model contract (rawisp.engines.contract) holds on both sides: the training synthesis and the runtime
(DNG -> decode -> normalise -> sigma planes) build the same 8 input planes for one capture, and the
shipped model's card says what the contract says."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rawisp.engines import contract
from rawisp.engines.learned import default_model_path
from rawisp.io.decode import decode
from rawisp.measure import synth
from rawisp.stages.normalise import normalise

BLACK, LEVELS = 256, 3839  # DN of black, and white - black (a 12-bit camera)
SHOT, READ = 2e-3, 1e-3  # the noise the capture's NoiseProfile states (normalised raw units)


def capture(neutral: tuple[float, float, float], h: int = 32, w: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """Camera RGB (h, w, 3) whose every mosaic sample lands on a whole DN (some clipped, some below
    black), and the DN offsets from black (h, w, 3) it is made of."""
    rng = np.random.default_rng(4)
    dn = rng.integers(-20, LEVELS + 1, (h, w, 3))
    dn[:4, :4] = LEVELS  # a clipped corner: after white balance above 1, clipped to 1 on both sides
    return dn / LEVELS / np.asarray(neutral), dn


def runtime_planes(tmp_path, cam: np.ndarray, neutral) -> np.ndarray:
    """The runtime's input: a DNG of the capture (NoiseProfile SHOT, READ) -> decode -> normalise ->
    packed planes and their sigma planes, (1, 8, h/2, w/2)."""
    path = tmp_path / "capture.dng"
    mosaic = synth.mosaic(cam * np.asarray(neutral), "RGGB")
    synth.write_dng(path, mosaic, cfa="RGGB", black=BLACK, white=BLACK + LEVELS, cam_from_srgb=np.eye(3),
                    neutral=neutral, noise=(SHOT, READ))
    packed = normalise(decode(path))
    assert packed.noise == pytest.approx((SHOT, READ))
    return contract.model_input(packed.planes, packed.gains, *packed.noise)


@pytest.mark.parametrize("neutral", [(0.55, 1.0, 0.75), (1.25, 1.0, 0.6)])
def test_training_and_runtime_build_the_same_input(tmp_path, neutral):
    """G the largest value of the as-shot neutral (green gain 1, most daylight captures), and R above
    G: both sides normalise the gains so that the smallest is 1 (green's gain is then 1.25)."""
    torch = pytest.importorskip("torch", reason="the training side needs torch")
    from rawisp.train.data import noise_sigma, synthesise

    cam, dn = capture(neutral)
    lin = torch.from_numpy(cam.transpose(2, 0, 1)[None].astype(np.float32))
    zero = torch.zeros(1)
    # the clean capture through the training synthesis (identity camera matrix: lin is camera RGB)
    batch = synthesise(lin, torch.eye(3)[None], torch.tensor([neutral], dtype=torch.float32), zero, zero,
                       torch.tensor([float(LEVELS)]), torch.Generator().manual_seed(0))
    packed = batch.x[:, :4]
    gains = max(neutral) / torch.tensor([neutral], dtype=torch.float32)[:, list(contract.PLANE_CHANNEL)]
    sigma = noise_sigma(packed, gains, torch.tensor([SHOT]), torch.tensor([READ]))
    training = torch.cat([packed, sigma], dim=1).numpy()

    runtime = runtime_planes(tmp_path, cam, neutral)
    assert training.shape == runtime.shape == (1, contract.CHANNELS, 16, 24)
    # the expected packed planes, written out from the DN: R G1 G2 B sites of each 2x2, white-balanced
    expected = np.stack([dn[0::2, 0::2, 0], dn[0::2, 1::2, 1], dn[1::2, 0::2, 1], dn[1::2, 1::2, 2]]) / LEVELS
    expected = np.minimum(expected * max(neutral) / np.asarray(neutral)[[0, 1, 1, 2], None, None], 1.0)
    np.testing.assert_allclose(runtime[0, :4], expected, rtol=1e-5, atol=1e-7)
    assert (runtime[0, :4] == 1).sum() >= 4 and (runtime[0, :4] < 0).any()  # clipped and below-black values
    np.testing.assert_allclose(training, runtime, rtol=1e-5, atol=1e-7)
    assert runtime[0, 4:].min() > 0  # the noise planes are there (READ > 0)


def test_shipped_card_follows_the_contract():
    card = json.loads(default_model_path().with_suffix(".json").read_text())
    assert card["format"] == contract.CARD_FORMAT
    assert card["stride"] == contract.STRIDE
    assert card["input"] == contract.card_io()["input"]
    assert card["output"] == contract.card_io()["output"]
    assert card["input"]["planes"] == ["R", "G1", "G2", "B", "sigma_R", "sigma_G1", "sigma_G2", "sigma_B"]


def test_sigma_formula():
    planes = np.array([0.0, 0.25, 1.0, -0.1], np.float32).reshape(4, 1, 1)
    gains = np.array([2.0, 1.0, 1.0, 1.5], np.float32)
    sigma = contract.sigma_planes(planes, gains, 0.01, 0.002).ravel()
    # sqrt(shot * g * max(x, 0) + (g * read)^2), worked out by hand
    np.testing.assert_allclose(sigma, [0.004, np.sqrt(0.0025 + 4e-6), np.sqrt(0.01 + 4e-6), 0.003], rtol=1e-6)
