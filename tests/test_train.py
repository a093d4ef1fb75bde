"""The training pipeline end to end on a tiny photo folder: train, resume, distil, export."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

torch = pytest.importorskip("torch", reason="training needs the 'train' extra (torch)")

from rawisp.cli import main  # noqa: E402
from rawisp.engines.learned import Learned, load_card  # noqa: E402
from rawisp.stages.reconstruct import EngineOptions  # noqa: E402
from rawisp.train.data import Sampler, bilinear_error, srgb_encode, srgb_decode  # noqa: E402
from rawisp.train.model import LWISP, bilinear_demosaic  # noqa: E402


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i in range(6):
        base = rng.random((1, 1, 3)) * 0.6 + 0.2
        ramp = np.linspace(0, 1, 320)[None, :, None] * rng.random((1, 1, 3)) * 0.3
        img = np.clip(base + ramp + rng.normal(0, 0.05, (300, 320, 3)), 0, 1)
        Image.fromarray((img * 255).astype(np.uint8)).save(folder / f"p{i}.jpg", quality=95)
    Image.fromarray(np.full((300, 320), 128, np.uint8)).save(folder / "grey.jpg")  # skipped: greyscale
    return folder


def _train(photos, out, *extra):
    args = ["train", "--data", str(photos), "--out", str(out), "--iterations", "4", "--batch", "2",
            "--patch", "32", "--widths", "8,16,32", "--threads", "1", "--val-every", "2", "--val-holdout", "2",
            *map(str, extra)]
    return CliRunner().invoke(main, args)


def test_train_resume_and_export(photos, tmp_path):
    out = tmp_path / "m.onnx"
    run = tmp_path / "run"
    result = _train(photos, out, "--run-dir", run)
    assert result.exit_code == 0, result.output
    log = (run / "train.log").read_text()
    assert "photos: 4 train, 2 validation" in log  # the greyscale photo was skipped
    assert f"device {'cuda' if torch.cuda.is_available() else 'cpu'}" in log  # --device auto
    card = load_card(out)
    assert card["training"]["iterations"] == 4 and card["architecture"]["widths"] == [8, 16, 32]
    assert set(card["metrics"]["validation_psnr"]) == {"clean", "mid", "high", "saturated", "procedural", "edges"}
    assert card["margin"] % card["stride"] == 0 and card["margin"] > 0
    # resuming a finished run trains nothing more and exports the same weights
    again = _train(photos, tmp_path / "m2.onnx", "--run-dir", run, "--iterations", "4")
    assert again.exit_code == 0, again.output
    assert "resumed at iteration 4" in (run / "train.log").read_text()
    engine = Learned.load(EngineOptions(model=str(out), threads=1))
    x = np.random.default_rng(1).random((1, 8, 16, 16), np.float32)
    assert engine.run(x).shape == (1, 3, 32, 32)


def test_fine_tune_card_counts_every_stage(photos, tmp_path):
    """--init chains: the card adds up iterations and lists each stage's reproducing command."""
    assert _train(photos, tmp_path / "a.onnx", "--run-dir", tmp_path / "a").exit_code == 0
    result = _train(photos, tmp_path / "b.onnx", "--run-dir", tmp_path / "b",
                    "--init", tmp_path / "a" / "checkpoint.pt", "--iterations", "3",
                    "--hard-fraction", "0.5", "--lr", "5e-4")
    assert result.exit_code == 0, result.output
    training = load_card(tmp_path / "b.onnx")["training"]
    assert training["iterations"] == 7 and [s["iterations"] for s in training["stages"]] == [4, 3]
    first, second = (s["command"] for s in training["stages"])
    assert "--init" not in first and f"--run-dir {tmp_path / 'a'}" in first and "--iterations 4" in first
    assert f"--init {tmp_path / 'a' / 'checkpoint.pt'}" in second
    assert "--hard-fraction 0.5" in second and "--lr 0.0005" in second and "--widths 8,16,32" in second
    assert set(training["stages"][0]["validation_psnr"]) == {"clean", "mid", "high", "saturated", "procedural", "edges"}
    # b recorded the stages behind its --init when it started: a damaged ancestor changes nothing
    (tmp_path / "a" / "checkpoint.pt").write_bytes(b"not a checkpoint")
    from rawisp.train.loop import export_run

    card = export_run(tmp_path / "b" / "checkpoint.pt", tmp_path / "c.onnx")
    assert card["training"]["iterations"] == 7 and len(card["training"]["stages"]) == 2
    # a checkpoint without that record is followed by path: an unreadable ancestor ends the chain
    old = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)
    del old["init_stages"]
    torch.save(old, tmp_path / "old.pt")
    card = export_run(tmp_path / "old.pt", tmp_path / "e.onnx")
    assert card["training"]["iterations"] == 3 and len(card["training"]["stages"]) == 1
    # ...and as --init it is one clear line, not a traceback; nothing is exported
    bad = _train(photos, tmp_path / "d.onnx", "--run-dir", tmp_path / "d", "--init", tmp_path / "a" / "checkpoint.pt")
    assert bad.exit_code == 1 and "not a rawisp training checkpoint" in bad.output
    assert "Traceback" not in bad.output and not (tmp_path / "d.onnx").exists()


def test_fine_tune_from_an_onnx_model_with_another_skip(photos, tmp_path):
    """--init from a shipped .onnx: weights carried over into the bilinear-skip variant, the card lists
    the ONNX model's stages before the new one, and the validation curve of the new stage."""
    assert _train(photos, tmp_path / "a.onnx", "--run-dir", tmp_path / "a").exit_code == 0
    result = _train(photos, tmp_path / "b.onnx", "--run-dir", tmp_path / "b", "--init", tmp_path / "a.onnx",
                    "--skip", "bilinear", "--procedural-fraction", "0.5", "--colour-fraction", "0.5")
    assert result.exit_code == 0, result.output
    assert f"initialised from {tmp_path / 'a.onnx'}" in (tmp_path / "b" / "train.log").read_text()
    card = load_card(tmp_path / "b.onnx")
    assert card["architecture"]["skip"] == "bilinear" and card["architecture"]["base"] == "bilinear"
    stages = card["training"]["stages"]
    assert [s["iterations"] for s in stages] == [4, 4] and card["training"]["iterations"] == 8
    assert "--skip bilinear" in stages[1]["command"] and "--skip" not in stages[0]["command"]
    curve = card["metrics"]["validation_curve"]
    assert [c["iteration"] for c in curve] == [2, 4] and all(c["cpu_seconds"] > 0 for c in curve)
    # another model shipped under a.onnx's name later (as models/lwisp.onnx is replaced): b's stages
    # are still those a.onnx had when b started
    from rawisp.train.loop import export_run

    shipped = json.loads((tmp_path / "a.json").read_text())
    shipped["training"]["stages"] *= 3
    (tmp_path / "a.json").write_text(json.dumps(shipped))
    again = export_run(tmp_path / "b" / "checkpoint.pt", tmp_path / "b2.onnx")
    assert [s["iterations"] for s in again["training"]["stages"]] == [4, 4]
    # resuming a checkpoint from before that record does not record today's (replaced) card as its past
    old = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)
    del old["init_stages"]
    (tmp_path / "r").mkdir()
    torch.save(old, tmp_path / "r" / "checkpoint.pt")
    resumed = _train(photos, tmp_path / "r.onnx", "--run-dir", tmp_path / "r", "--init", tmp_path / "a.onnx",
                     "--skip", "bilinear", "--procedural-fraction", "0.5", "--colour-fraction", "0.5",
                     "--iterations", "6")
    assert resumed.exit_code == 0, resumed.output
    assert "init_stages" not in torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=False)


def test_a_bad_onnx_init_is_one_line(photos, tmp_path):
    """A corrupt .onnx, or one of other widths, given to --init: one line, exit 1, nothing written."""
    (tmp_path / "bad.onnx").write_bytes(b"garbage")
    bad = _train(photos, tmp_path / "x.onnx", "--run-dir", tmp_path / "x", "--init", tmp_path / "bad.onnx")
    assert bad.exit_code == 1 and "bad.onnx: not an ONNX model" in bad.output and "Traceback" not in bad.output
    assert _train(photos, tmp_path / "a.onnx", "--run-dir", tmp_path / "a").exit_code == 0
    other = _train(photos, tmp_path / "y.onnx", "--run-dir", tmp_path / "y", "--init", tmp_path / "a.onnx",
                   "--widths", "16,32,64")
    assert other.exit_code == 1 and "a.onnx: weights of another shape" in other.output
    assert not (tmp_path / "x.onnx").exists() and not (tmp_path / "y.onnx").exists()


def test_distillation_runs_and_is_recorded(photos, tmp_path):
    teacher_run = tmp_path / "teacher"
    assert _train(photos, tmp_path / "t.onnx", "--run-dir", teacher_run, "--as-teacher").exit_code == 0
    result = _train(photos, tmp_path / "s.onnx", "--run-dir", tmp_path / "student",
                    "--teacher", teacher_run / "checkpoint.pt", "--widths", "8,8,16")
    assert result.exit_code == 0, result.output
    card = json.loads((tmp_path / "s.json").read_text())
    assert card["training"]["distillation"] is True


def test_training_device(photos, tmp_path):
    """--device cpu trains on the CPU; --device cuda without a GPU is one clear error, no traceback."""
    result = _train(photos, tmp_path / "c.onnx", "--run-dir", tmp_path / "c", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "device cpu" in (tmp_path / "c" / "train.log").read_text()
    if not torch.cuda.is_available():
        result = _train(photos, tmp_path / "g.onnx", "--run-dir", tmp_path / "g", "--device", "cuda")
        assert result.exit_code == 1 and "torch sees no CUDA GPU" in result.output
        assert not (tmp_path / "g.onnx").exists()


def test_sampler_is_deterministic_and_consistent(photos):
    from rawisp.train.data import load_photos

    imgs = load_photos([photos], min_side=64)
    a, b = Sampler(imgs, 32, seed=3).batch(4), Sampler(imgs, 32, seed=3).batch(4)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    # the clean input is the white-balanced mosaic of the target: bilinear of it is close to it
    base = bilinear_demosaic(a.x_clean[:, :4])
    assert torch.allclose(base[:, :, 2:-2, 2:-2].mean(), a.y[:, :, 2:-2, 2:-2].mean(), atol=0.02)
    # noise planes match the noise actually added (std of input minus clean, per plane)
    resid = (a.x[:, :4] - a.x_clean[:, :4]).std(dim=(2, 3))
    sigma = a.x[:, 4:].mean(dim=(2, 3))
    assert torch.allclose(resid, sigma, rtol=0.35, atol=2e-3)


def test_overstated_noise_states_weak_noise_on_clean_crops(photos):
    from rawisp.engines.noise_net import READ_SHARE
    from rawisp.train.data import load_photos

    imgs = load_photos([photos], min_side=64)
    plain = Sampler(imgs, 32, seed=5, clean_fraction=1.0).batch(6)
    assert torch.all(plain.x[:, 4:] == 0)  # a clean crop states no noise
    batch = Sampler(imgs, 32, seed=5, clean_fraction=1.0, overstated_noise=1.0).batch(6)
    # nothing was added: the input is the clean mosaic but for 12- or 14-bit rounding (x WB gain <= 1.4/0.3)
    assert (batch.x[:, :4] - batch.x_clean[:, :4]).abs().max() <= 0.5 / 3839 * 1.4 / 0.3
    # the planes state sigma^2 = shot*g*x + g^2*READ_SHARE*shot: an affine fit of sigma^2 on x per plane
    # gives slope a = shot*g and intercept b = g^2*READ_SHARE*shot, so shot = READ_SHARE*a^2/b
    x = batch.x[:, :4].flatten(2).double()
    var = batch.x[:, 4:].flatten(2).double() ** 2
    xc = x - x.mean(dim=2, keepdim=True)
    a = (xc * var).sum(dim=2) / (xc * xc).sum(dim=2)
    b = var.mean(dim=2) - a * x.mean(dim=2)
    shot = READ_SHARE * a**2 / b  # (6, 4): one value per crop, the same on its four planes
    assert torch.allclose(shot, shot[:, :1].expand(-1, 4), rtol=1e-3)
    assert torch.all((shot > 2e-5 * 0.999) & (shot < 5e-4 * 1.001))


def test_flat_fraction_replaces_crops_with_flat_colours(photos):
    from rawisp.train.data import load_photos

    imgs = load_photos([photos], min_side=64)
    crops = Sampler(imgs, 32, seed=3, flat_fraction=1.0).crops(6)  # (6, 3, 32, 32) sRGB
    spread = crops.amax(dim=(2, 3)) - crops.amin(dim=(2, 3))
    assert torch.all(spread <= 0.1 * crops.mean(dim=(2, 3)) + 1e-6)
    photo_crops = Sampler(imgs, 32, seed=3).crops(6)
    assert (photo_crops.amax(dim=(2, 3)) - photo_crops.amin(dim=(2, 3))).mean() > 0.1


def test_texture_fraction_replaces_crops_with_low_contrast_1_over_f_texture(photos):
    from rawisp.train.data import load_photos
    from rawisp.train.procedural import texture

    imgs = load_photos([photos], min_side=64)
    crops = Sampler(imgs, 64, seed=3, texture_fraction=1.0).crops(8)  # (8, 3, 64, 64) sRGB
    assert torch.equal(crops, Sampler(imgs, 64, seed=3, texture_fraction=1.0).crops(8))  # seeded
    mean = crops.mean(dim=(2, 3))
    contrast = crops.std(dim=(2, 3)) / mean
    assert torch.all(mean < 0.75) and torch.all(contrast < 0.6) and contrast.median() > 0.01
    # a 1/f spectrum: most of the variance is coarse, but the finest octave still carries some
    img = texture(np.random.default_rng(5), 128).mean(axis=2)
    power = np.abs(np.fft.fft2(img - img.mean())) ** 2
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(128), np.fft.fftfreq(128), indexing="ij"))
    coarse, fine = power[(f > 0) & (f < 0.06)].sum(), power[f > 0.25].sum()
    assert coarse > fine > 1e-4 * coarse


def test_pattern_loss_sees_only_the_periodic_error():
    from rawisp.train.losses import pattern_loss

    ramp = torch.linspace(0.9, 1.1, 64)[None, None, None, :]  # a flat crop's faint ramp
    target = torch.tensor([0.02, 0.04, 0.01])[None, :, None, None] * ramp.expand(2, 3, 64, 64)
    assert pattern_loss(target.clone(), target) == 0
    assert pattern_loss(target + 0.001, target) < 1e-6  # an offset is no pattern
    # a gain error on the ramp is a slope within each cell: second order (0.02% for 3% on +-10%)
    assert pattern_loss(target * 1.03, target) == pytest.approx(2e-4, rel=0.1)
    checker = torch.ones(64, 64)
    checker[::2, ::2] = checker[1::2, 1::2] = -1  # period 2, both axes
    means = target[:, :, 16:-16, 16:-16].mean(dim=(2, 3))[:, :, None, None]
    pred = target + 0.005 * means * checker  # +-0.5% of each channel's mean
    assert pattern_loss(pred, target) == pytest.approx(0.005, rel=1e-3)
    assert pattern_loss(pred * 10, target * 10) == pytest.approx(0.005, rel=1e-3)  # a share, not linear units


def test_mse_weight_adds_the_squared_error_psnr_scores():
    from rawisp.train.losses import psnr, reconstruction_loss, render_srgb

    gen = torch.Generator().manual_seed(0)
    target = torch.rand((2, 3, 64, 64), generator=gen)
    pred = target + 0.01 * torch.randn((2, 3, 64, 64), generator=gen)
    m = torch.eye(3).expand(2, 3, 3)
    for kind in ("l1", "msssim", "lab"):
        mse = (reconstruction_loss(kind, pred, target, m, 2.0) - reconstruction_loss(kind, pred, target, m)) / 2
        assert psnr(render_srgb(pred, m), render_srgb(target, m)) == pytest.approx(-10 * torch.log10(mse).item(), abs=1e-3)


def test_pattern_and_mse_weights_train_record_and_resume(photos, tmp_path):
    run = tmp_path / "run"
    weights = ("--pattern-weight", 5, "--mse-weight", 2)
    result = _train(photos, tmp_path / "m.onnx", "--run-dir", run, *weights)
    assert result.exit_code == 0, result.output
    ckpt = torch.load(run / "checkpoint.pt", weights_only=False)
    assert ckpt["config"]["pattern_weight"] == 5 and ckpt["config"]["mse_weight"] == 2 and "flat_np_rng" in ckpt
    command = load_card(tmp_path / "m.onnx")["training"]["stages"][-1]["command"]
    assert "--pattern-weight 5" in command and "--mse-weight 2" in command
    again = _train(photos, tmp_path / "m2.onnx", "--run-dir", run, *weights, "--iterations", 6)
    assert again.exit_code == 0, again.output
    assert "resumed at iteration 4" in (run / "train.log").read_text()


def test_hard_mining_picks_crops_bilinear_gets_wrong():
    # half flat grey, half fine colour stripes: mined crops must be mostly the stripes
    flat = np.full((96, 96, 3), 128, np.uint8)
    stripes = np.zeros((96, 96, 3), np.uint8)
    stripes[:, ::2, 0] = 255
    stripes[:, 1::2, 2] = 255
    photos = [flat, stripes]
    random_err = bilinear_error(Sampler(photos, 32, seed=5).crops(64))
    mined = Sampler(photos, 32, seed=5, hard_fraction=1.0).crops(64)
    mined_err = bilinear_error(mined)
    assert mined.shape == (64, 3, 32, 32)
    assert (mined_err > 0.1).float().mean() > 0.85  # P(all 4 candidates flat) = 1/16
    assert 0.3 < (random_err > 0.1).float().mean() < 0.7
    assert float(bilinear_error(torch.full((1, 3, 32, 32), 0.5))) < 1e-6  # flat: bilinear is exact


def test_srgb_transfer_roundtrip():
    v = torch.linspace(0, 1, 101)
    assert torch.allclose(srgb_encode(srgb_decode(v)), v, atol=1e-6)


def test_untrained_model_is_bilinear():
    model = LWISP((8, 16, 32)).eval()
    x = torch.rand(1, 8, 16, 16)
    with torch.no_grad():
        assert torch.allclose(model(x), bilinear_demosaic(x[:, :4]), atol=1e-6)


def test_ema_keeps_exports_and_resumes_the_average(photos, tmp_path):
    from rawisp.train.loop import checkpoint_weights, init_weights

    run, out = tmp_path / "run", tmp_path / "m.onnx"
    result = _train(photos, out, "--run-dir", run, "--ema", 0.5, "--lr", 0.01)
    assert result.exit_code == 0, result.output
    ckpt = torch.load(run / "checkpoint.pt", weights_only=False)
    assert int(ckpt["ema"]["n_averaged"]) == 4  # one update per iteration
    averaged, trained = checkpoint_weights(ckpt), ckpt["model"]
    assert averaged.keys() == trained.keys()
    assert any(not torch.equal(averaged[k], trained[k]) for k in trained)  # an average, not the last step
    # the exported graph and --init carry the average, not the last step's weights
    for source in (out, run / "checkpoint.pt"):
        model = LWISP((8, 16, 32))
        init_weights(model, source)
        assert all(torch.allclose(model.state_dict()[k], averaged[k], atol=1e-6) for k in averaged)
    assert "--ema 0.5" in load_card(out)["training"]["stages"][-1]["command"]
    again = _train(photos, tmp_path / "m2.onnx", "--run-dir", run, "--ema", 0.5, "--lr", 0.01, "--iterations", 6)
    assert again.exit_code == 0, again.output
    resumed = torch.load(run / "checkpoint.pt", weights_only=False)
    assert int(resumed["ema"]["n_averaged"]) == 6  # the average went on, it did not start again


def test_bf16_forward_passes_train_in_bfloat16_and_are_recorded(photos, tmp_path):
    from rawisp.train.loop import autocast

    model = LWISP(widths=(8, 16, 32))
    x = torch.rand(1, 8, 16, 16)
    cpu = torch.device("cpu")
    with autocast(cpu, "bf16"):
        assert model.head(x).dtype == torch.bfloat16  # convolutions run in bfloat16
    with autocast(cpu, "f32"):
        assert model.head(x).dtype == torch.float32
    with pytest.raises(ValueError, match="--precision"):
        autocast(cpu, "fp8")
    result = _train(photos, tmp_path / "m.onnx", "--run-dir", tmp_path / "run", "--precision", "bf16")
    assert result.exit_code == 0, result.output
    assert all(p.dtype == torch.float32 for p in torch.load(tmp_path / "run" / "checkpoint.pt",
                                                               weights_only=False)["model"].values())
    assert "--precision bf16" in load_card(tmp_path / "m.onnx")["training"]["stages"][-1]["command"]
