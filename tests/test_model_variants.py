"""Model variants of issue #16: bilinear skips (no coarse-block pattern), the Malvar-He-Cutler base,
weights carried over from the shipped model, and training inputs that match the runtime's gains."""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the model variants need the 'train' extra (torch)")

from rawisp.engines.learned import default_model_path  # noqa: E402
from rawisp.train.data import pack_rggb, synthesise  # noqa: E402
from rawisp.train.loop import init_weights, lr_factor  # noqa: E402
from rawisp.train.model import LWISP, bilinear_demosaic, gflop_per_mp, mhc_demosaic  # noqa: E402


def _smooth_scene(size: int = 64) -> torch.Tensor:
    y, x = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                          indexing="ij")
    f = 0.5 + 0.3 * torch.sin(x / 3 + y / 4)
    return torch.stack([0.8 * f, f, 0.6 * f])[None]  # correlated channels, as in most photos


def test_mhc_is_exact_on_flat_colour_and_beats_bilinear_on_correlated_detail():
    flat = torch.tensor([0.2, 0.5, 0.9])[None, :, None, None].expand(1, 3, 16, 16)
    assert (mhc_demosaic(pack_rggb(flat)) - flat)[..., 3:-3, 3:-3].abs().max() < 1e-6
    scene = _smooth_scene()
    err = {f.__name__: (f(pack_rggb(scene)) - scene)[..., 4:-4, 4:-4].abs().mean().item()
           for f in (bilinear_demosaic, mhc_demosaic)}
    assert err["mhc_demosaic"] < 0.8 * err["bilinear_demosaic"]


def _periodic_residue(out: torch.Tensor, period: int) -> float:
    """Peak-to-peak of the mean over positions mod ``period`` (both axes), period-2 part removed."""
    interior = out[0, :, 96:160, 96:160]  # far from the borders (receptive field 84 packed px)
    means = interior.reshape(3, 64 // period, period, 64 // period, period).mean(dim=(1, 3))
    even = means[:, 0::2, 0::2]  # the same Bayer site in every 2x2: only periods above 2 remain
    return float((even.amax(dim=(1, 2)) - even.amin(dim=(1, 2))).max())


def test_bilinear_skips_paint_no_coarse_blocks():
    """On a flat input, sub-pixel skips leave a period-8 pattern (each 1/8 feature paints a block);
    bilinear skips leave none, whatever the weights."""
    torch.manual_seed(0)
    flat = torch.full((1, 8, 128, 128), 0.1)
    flat[:, 4:] = 0.01
    residues = {}
    for skip in ("subpixel", "bilinear"):
        model = LWISP(skip=skip).eval()
        torch.nn.init.normal_(model.upsample.refine[-1].weight, std=0.1)  # untrained: zero residual
        with torch.no_grad():
            residues[skip] = _periodic_residue(model(flat), 8)
    assert residues["subpixel"] > 1e-3
    assert residues["bilinear"] < 1e-5


def test_shipped_weights_carry_over_to_every_variant():
    shipped = LWISP().eval()
    assert init_weights(shipped, default_model_path()) == []
    for skip, base in (("bilinear", "bilinear"), ("bilinear", "mhc")):
        model = LWISP(skip=skip, base=base).eval()
        assert init_weights(model, default_model_path()) == []  # every tensor starts from the shipped one
        w = shipped.up1.conv.weight
        expected = w.reshape(w.shape[0] // 4, 4, *w.shape[1:]).mean(dim=1)
        assert torch.equal(model.up1.conv.weight, expected)
        assert torch.equal(model.enc1.body[0].weight, shipped.enc1.body[0].weight)
    # cost: bilinear skips are cheaper than sub-pixel ones; MHC's 5x5 base adds 0.15 GFLOP/MP
    assert gflop_per_mp(LWISP(skip="bilinear")) < gflop_per_mp(shipped) <= 40
    assert gflop_per_mp(LWISP(skip="bilinear", base="mhc")) - gflop_per_mp(LWISP(skip="bilinear")) == \
        pytest.approx(2 * (25 * 4 - 9 * 3) / 1e3)


def test_neutral_above_green_gives_the_runtime_gains():
    """With R's neutral above G's, gains are normalised so the smallest is 1 (as normalise.py does),
    and the target is the white-balanced picture scaled by the same factor."""
    lin = torch.full((1, 3, 8, 8), 0.3)
    m = torch.eye(3)[None]
    neutral = torch.tensor([[1.25, 1.0, 0.5]])
    zero = torch.zeros(1)
    batch = synthesise(lin, m, neutral, zero, zero, torch.tensor([1e6]), torch.Generator().manual_seed(0))
    wb = 1 / neutral[0]  # the file's white-balance multipliers
    runtime_gains = (wb / wb.min())[[0, 1, 1, 2]]
    raw = 0.3 * neutral[0, [0, 1, 1, 2]]
    assert torch.allclose(batch.x[0, :4, 0, 0], raw * runtime_gains, atol=1e-5)
    assert torch.allclose(batch.y, torch.full_like(batch.y, 0.3 * 1.25))


def test_learning_rate_decays_by_progress():
    assert lr_factor(0.0) == pytest.approx(1.0)
    assert lr_factor(0.5) == pytest.approx(0.51)
    assert lr_factor(1.0) == lr_factor(2.0) == pytest.approx(0.02)
