"""The exported graph computes LWISP's function, with its full-resolution tail on packed planes."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from torch import nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from rawisp.engines.learned import default_model_path  # noqa: E402
from rawisp.train.export import write_onnx  # noqa: E402
from rawisp.train.loop import init_weights  # noqa: E402
from rawisp.train.model import LWISP, bilinear_demosaic, mhc_demosaic  # noqa: E402
from rawisp.train.model import Up  # noqa: E402
from rawisp.train.packed import PackedLWISP, TransposedUp, pack_conv, packed_linear, unpack_conv, untranspose_up  # noqa: E402


def _random_model(skip: str, base: str, seed: int = 0) -> LWISP:
    torch.manual_seed(seed)
    model = LWISP(skip=skip, base=base)
    with torch.no_grad():
        for p in model.parameters():  # refine's last layer starts at zero: give every weight a value
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


@pytest.mark.parametrize("fn", [bilinear_demosaic, mhc_demosaic])
def test_packed_base_demosaic_equals_the_full_resolution_one_borders_included(fn):
    x = torch.rand(2, 4, 12, 10)
    conv = packed_linear(fn, 4, 3)
    assert conv.weight.shape == (12, 4, 3, 3)
    with torch.no_grad():
        assert torch.allclose(F.pixel_shuffle(conv(x), 2), fn(x), atol=1e-6)


def test_pack_and_unpack_conv_are_mirrors():
    torch.manual_seed(1)
    conv = nn.Conv2d(11, 8, 3, padding=1)
    packed = pack_conv(conv)
    assert packed.weight.shape == (32, 44, 3, 3)
    x = torch.rand(1, 44, 9, 7)
    with torch.no_grad():
        assert torch.allclose(F.pixel_shuffle(packed(x), 2), conv(F.pixel_shuffle(x, 2)), atol=1e-5)
    weight, bias = unpack_conv(packed.weight.data, packed.bias.data)
    assert torch.allclose(weight, conv.weight.data, atol=1e-7) and torch.allclose(bias, conv.bias.data, atol=1e-7)
    # a Bayer phase pair meets in 1, 2 or 4 of the 9 packed taps: a quarter are non-zero, the
    # price of the packed form (4x the multiply-adds of the full-resolution convolution)
    assert (packed.weight.data != 0).float().mean().item() == pytest.approx(1 / 4, abs=0.01)


def test_a_subpixel_skip_is_a_transposed_convolution_and_back():
    torch.manual_seed(3)
    up = Up(48, 24, "subpixel")
    up.conv.bias.data.normal_()  # a bias that differs between the four phases
    transposed = TransposedUp(up)
    x, skip = torch.rand(2, 48, 5, 6), torch.rand(2, 24, 10, 12)
    with torch.no_grad():
        assert torch.allclose(transposed(x, skip), up(x, skip), atol=1e-5)
    weight, bias = untranspose_up(transposed.conv.weight.data)
    assert torch.equal(weight, up.conv.weight.data) and torch.equal(bias, up.conv.bias.data)


def test_a_map_wider_than_one_packed_neighbour_is_refused():
    wide = nn.Conv2d(1, 1, 7, padding=3)
    with pytest.raises(ValueError, match="beyond one packed neighbour"):
        packed_linear(lambda p: wide(F.pixel_shuffle(p, 2)), 4, 1)


@pytest.mark.parametrize("skip,base", [("subpixel", "bilinear"), ("bilinear", "bilinear"), ("bilinear", "mhc")])
def test_packed_graph_equals_the_model(skip, base):
    model = _random_model(skip, base)
    x = torch.rand(2, 8, 40, 48) * torch.tensor([1, 1, 1, 1, 0.05, 0.05, 0.05, 0.05])[:, None, None]
    with torch.no_grad():
        want, got = model(x), PackedLWISP(model)(x)
    assert got.shape == want.shape == (2, 3, 80, 96)
    assert (got - want).abs().max().item() < 1e-5


def test_exported_onnx_runs_the_same_function_and_gives_back_the_weights(tmp_path):
    model = _random_model("subpixel", "bilinear", seed=2)
    path = tmp_path / "m.onnx"
    write_onnx(model, path)
    x = np.random.default_rng(0).random((1, 8, 48, 56), np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    assert np.abs(got - want).max() < 1e-5
    # fine-tuning from the exported file starts from exactly the trained weights
    again = LWISP()
    assert init_weights(again, path) == []
    for name, value in model.state_dict().items():
        assert torch.allclose(again.state_dict()[name], value, atol=1e-7), name


def test_the_shipped_model_is_exported_packed():
    card = json.loads(default_model_path().with_suffix(".json").read_text())
    arch = card["architecture"]
    assert arch["graph"].startswith("packed tail")
    # the zero taps cost multiply-adds: the card says both figures
    assert arch["gflop_per_output_mp"] < arch["graph_gflop_per_output_mp"] < 1.25 * arch["gflop_per_output_mp"]
    import onnx

    ops = [n.op_type for n in onnx.load(str(default_model_path())).graph.node]
    assert ops.count("DepthToSpace") == 1  # the final 3-channel output only
    assert ops.count("ConvTranspose") == 2  # the sub-pixel skips
