"""The training speed-ups of issue #27 compute the same function, and their policies hold:
pooling after the reduction, the packed tail, channels-last, the optimiser state an --init lends,
the warm-up, and OpenMP threads that sleep instead of spinning."""

import subprocess
import sys

import pytest

torch = pytest.importorskip("torch", reason="training needs the 'train' extra (torch)")

from torch import nn  # noqa: E402

from rawisp.train.loop import init_optimiser, warmup_factor  # noqa: E402
from rawisp.train.model import LWISP, FineGrainedAttention, local_mean  # noqa: E402
from train_throughput import as_written, pool_first_attention  # noqa: E402  (tools/)


def _random(model: nn.Module, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():  # refine's last layer starts at zero: give every weight a value
            p.add_(0.1 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("shape", [(2, 5, 9, 13), (1, 3, 4, 3), (1, 2, 20, 7)])
def test_local_mean_is_the_clipped_7x7_average(shape):
    x = torch.rand(shape)
    expected = nn.AvgPool2d(7, stride=1, padding=3, count_include_pad=False)(x)
    assert torch.allclose(local_mean(x, 7), expected, atol=1e-6)


def test_pooling_after_the_reduction_is_the_same_attention():
    module = _random(FineGrainedAttention(24))
    x = torch.randn(2, 24, 17, 11)
    assert torch.allclose(module(x), pool_first_attention(module, x), atol=2e-6)


@pytest.mark.parametrize("skip,base", [("subpixel", "bilinear"), ("bilinear", "mhc")])
def test_the_trained_graph_is_the_network_as_written_with_its_gradients(skip, base):
    model = _random(LWISP((8, 16, 32), skip=skip, base=base))
    reference = LWISP((8, 16, 32), skip=skip, base=base)
    reference.load_state_dict(model.state_dict())
    reference = as_written(reference)
    x = torch.rand(2, 8, 24, 16)
    y = torch.rand(2, 3, 48, 32)
    fast = model(x.contiguous(memory_format=torch.channels_last))
    slow = reference(x)
    assert fast.shape == slow.shape == (2, 3, 48, 32)
    assert (fast - slow).abs().max() < 1e-5
    (fast - y).abs().mean().backward()
    (slow - y).abs().mean().backward()
    for (name, a), b in zip(model.named_parameters(), reference.parameters()):
        assert torch.allclose(a.grad, b.grad, rtol=1e-3, atol=1e-6), name


def test_the_base_demosaic_is_not_a_weight():
    model = LWISP()
    assert not any(k.startswith("base_") for k in model.state_dict())
    assert all(not b.requires_grad for b in (model.base_weight, model.base_bias))


def _checkpoint(path, model):
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    model(torch.rand(1, 8, 16, 16)).mean().backward()
    opt.step()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "config": {}, "history": [],
                "iteration": 1}, path)
    return opt


def test_an_init_checkpoint_lends_its_optimiser_state_where_it_fits(tmp_path):
    saved = _checkpoint(tmp_path / "c.pt", LWISP((8, 16, 32)))
    opt = torch.optim.Adam(LWISP((8, 16, 32)).parameters(), 1e-3)
    assert init_optimiser(opt, tmp_path / "c.pt")
    first = next(iter(opt.state.values()))
    assert torch.equal(first["exp_avg_sq"], next(iter(saved.state.values()))["exp_avg_sq"])
    other = torch.optim.Adam(LWISP((8, 16, 24)).parameters(), 1e-3)
    assert not init_optimiser(other, tmp_path / "c.pt") and not other.state  # other widths: fresh
    assert not init_optimiser(opt, tmp_path / "model.onnx")  # an exported model has no optimiser


def test_warmup_is_linear_then_flat():
    assert [warmup_factor(i, 4) for i in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert warmup_factor(0, 0) == 1.0


def test_openmp_threads_sleep_when_training_is_imported():
    code = "import os; import rawisp.train; print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in __import__("os").environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == "PASSIVE"


def test_the_log_domain_runs_the_same_function_packed_as_written_and_exported():
    from rawisp.train.packed import PackedLWISP

    model = _random(LWISP((8, 16, 32), domain="log")).eval()
    x = torch.rand(2, 8, 16, 24)
    x[:, 4:] *= 0.02  # noise planes: standard deviations
    with torch.no_grad():
        out = model(x)
        assert (out - model(x, packed=False)).abs().max() < 1e-5
        assert (out - PackedLWISP(model)(x)).abs().max() < 1e-5


def test_an_untrained_log_model_is_the_base_demosaic_above_zero():
    from rawisp.train.model import bilinear_demosaic

    model = LWISP((8, 16, 32), domain="log").eval()
    x = torch.rand(1, 8, 16, 16)
    x[:, 4:] *= 0.02
    with torch.no_grad():
        assert torch.allclose(model(x), bilinear_demosaic(x[:, :4]).clamp_min(0), atol=1e-5)


def test_a_log_model_trains_and_its_card_says_so(tmp_path):
    from click.testing import CliRunner
    from PIL import Image
    import numpy as np

    from rawisp.cli import main
    from rawisp.engines.learned import load_card

    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray((rng.random((300, 320, 3)) * 255).astype(np.uint8)).save(tmp_path / f"p{i}.png")
    out = tmp_path / "m.onnx"
    result = CliRunner().invoke(main, ["train", "--data", str(tmp_path), "--out", str(out), "--iterations", "2",
                                       "--batch", "2", "--patch", "32", "--widths", "8,16,32", "--val-every", "2",
                                       "--val-holdout", "2", "--domain", "log", "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    card = load_card(out)
    assert card["architecture"]["domain"] == "log"
    assert "--domain log" in card["training"]["stages"][-1]["command"]


def test_a_resumed_run_compares_its_best_over_the_sets_validated_now():
    from rawisp.train.loop import VAL_SETS, resumed_best

    old = {"iteration": 250, **{k: 30.0 for k in VAL_SETS if k != "edges"}}  # before the edges set
    new = {"iteration": 500, **{k: 25.0 for k in VAL_SETS}, "texture_mid": 0.5}
    assert resumed_best([old]) is None
    assert resumed_best([old, new]) == 25.0


def test_the_moving_average_warms_up_so_untrained_weights_leave_it():
    from torch.optim.swa_utils import AveragedModel

    from rawisp.train.loop import ema_decay, ema_update

    assert ema_decay(0.999, 0) == 0.1 and ema_decay(0.999, 10**6) == 0.999
    assert ema_decay(0.999, 100) < 0.95  # a fixed 0.999 would still hold 90% of the first weights
    model = nn.Linear(1, 1, bias=False)
    averaged = AveragedModel(model, multi_avg_fn=ema_update(0.999))
    for value in [0.0] + [1.0] * 300:
        with torch.no_grad():
            model.weight.fill_(value)
        averaged.update_parameters(model)
    assert averaged.module.weight.item() > 0.99  # the untrained 0 has all but left the average


def test_a_cheaper_network_runs_the_same_function_packed_and_costs_less():
    """One convolution a block and no attention at packed resolution (issue #25's budget):
    fewer weights and multiply-adds, and still the same function packed as written."""
    from rawisp.train.model import gflop_per_mp
    from rawisp.train.packed import PackedLWISP

    full = LWISP((16, 32, 64), domain="log")
    cheap = _random(LWISP((16, 32, 64), domain="log", block_convs=1, packed_attention=False)).eval()
    assert gflop_per_mp(cheap) < 0.7 * gflop_per_mp(full)
    assert not any(n.startswith(("enc1.attention", "dec1.attention", "enc1.body.2")) for n, _ in cheap.named_parameters())
    assert any(n.startswith("enc2.attention") for n, _ in cheap.named_parameters())
    x = torch.rand(1, 8, 16, 24)
    x[:, 4:] *= 0.02
    with torch.no_grad():
        out = cheap(x)  # random weights without attention's damping: outputs up to ~10, so relative
        assert torch.allclose(out, cheap(x, packed=False), rtol=1e-5, atol=1e-5)
        assert torch.allclose(out, PackedLWISP(cheap)(x), rtol=1e-5, atol=1e-5)
    # half the features per full-resolution pixel: a smaller tail, the same function packed as written
    cheaper = _random(LWISP((16, 32, 64), domain="log", block_convs=1, packed_attention=False,
                            full_channels=4)).eval()
    assert cheaper.upsample.expand.out_channels == 16 and gflop_per_mp(cheaper) < 0.85 * gflop_per_mp(cheap)
    with torch.no_grad():
        out = cheaper(x)
        assert torch.allclose(out, cheaper(x, packed=False), rtol=1e-5, atol=1e-5)
        assert torch.allclose(out, PackedLWISP(cheaper)(x), rtol=1e-5, atol=1e-5)


def test_settings_a_run_or_card_does_not_name_take_the_defaults():
    """Checkpoints and cards from before an architecture option existed rebuild as they ran."""
    old = LWISP.from_settings({"widths": [8, 16, 32], "domain": "log", "name": "LW-ISP", "parameters": 1})
    assert (old.widths, old.domain, old.block_convs, old.packed_attention, old.full_channels) == \
        ((8, 16, 32), "log", 2, True, 8)


def test_a_cheaper_network_trains_resumes_and_its_card_says_so(tmp_path):
    from click.testing import CliRunner
    from PIL import Image
    import numpy as np

    from rawisp.cli import main
    from rawisp.engines.learned import load_card
    from rawisp.train.loop import load_checkpoint_model

    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray((rng.random((300, 320, 3)) * 255).astype(np.uint8)).save(tmp_path / f"p{i}.png")
    out = tmp_path / "m.onnx"
    args = ["train", "--data", str(tmp_path), "--out", str(out), "--batch", "2", "--patch", "32",
            "--widths", "8,16,32", "--val-every", "2", "--val-holdout", "2", "--block-convs", "1",
            "--no-packed-attention", "--full-channels", "4", "--run-dir", str(tmp_path / "run")]
    assert CliRunner().invoke(main, [*args, "--iterations", "2"]).exit_code == 0
    resumed = CliRunner().invoke(main, [*args, "--iterations", "4"])
    assert resumed.exit_code == 0, resumed.output
    log = (tmp_path / "run" / "train.log").read_text()
    assert "resumed at iteration 2; changed: iterations 2 -> 4" in log  # the architecture did not change
    card = load_card(out)
    architecture = card["architecture"]
    assert (architecture["block_convs"], architecture["packed_attention"], architecture["full_channels"]) == (1, False, 4)
    command = card["training"]["stages"][-1]["command"]
    assert "--block-convs 1" in command and "--no-packed-attention" in command and "--full-channels 4" in command
    model, _ = load_checkpoint_model(tmp_path / "run" / "checkpoint.pt")
    assert model.block_convs == 1 and not model.packed_attention and model.full_channels == 4
