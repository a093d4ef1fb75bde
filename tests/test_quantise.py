"""tools/quantise.py: the int8 model it writes (QDQ around the body convolutions only) and its card."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

pytest.importorskip("torch")  # the tool scores on the training's validation set (rawisp.train)

import quantise  # noqa: E402  (tools/, on the tests' pythonpath)

from rawisp.engines.learned import Learned, default_model_path, load_card  # noqa: E402
from rawisp.measure.margin import probe_frames  # noqa: E402
from rawisp.stages.reconstruct import EngineOptions  # noqa: E402


def test_sensitive_convolutions_stay_fp32():
    model = onnx.load(str(default_model_path()))
    kept = set(quantise.fp32_nodes(model, quantise.KEEP_FP32))
    convs = {n.name for n in model.graph.node if n.op_type == "Conv"}
    assert {"/base_packed/Conv", "/head/head.0/Conv", "/refine_packed/refine_packed.0/Conv"} <= kept
    assert all(name in kept for name in convs if "/attention/" in name)
    assert not kept & {"/enc2/body/body.0/Conv", "/bottom/body/body.2/Conv", "/expand/Conv", "/down1/Conv"}


@pytest.mark.slow
def test_int8_model_quantises_the_body_and_stays_close_to_fp32(tmp_path):
    src, dst = default_model_path(), tmp_path / "lwisp_int8.onnx"
    frames = np.stack(probe_frames(side=64, seeds=(0, 1)))  # clean / mid / high noise, 2 scenes
    quantise.quantise(src, dst, [frames[:3], frames[3:]])
    model = onnx.load(str(dst))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QuantizeLinear") >= 10 and ops.count("DequantizeLinear") >= 20
    producer = {out: n for n in model.graph.node for out in n.output}
    convs = {n.name: n for n in model.graph.node if n.op_type == "Conv"}

    def int8_weights(name: str) -> bool:
        weights = producer.get(convs[name].input[1])
        return weights is not None and weights.op_type == "DequantizeLinear"

    assert int8_weights("/enc1/body/body.0/Conv") and int8_weights("/bottom/body/body.2/Conv")
    assert not int8_weights("/head/head.0/Conv") and not int8_weights("/refine_packed/refine_packed.2/Conv")

    card = quantise.write_card(src, dst, {"loss_db": {"clean": 1.0}})
    assert card["precision"] == "int8" and card["onnx"] == dst.name and card["tiling"] == load_card(src).get("tiling")
    assert json.loads(dst.with_suffix(".json").read_text()) == card
    fp32 = Learned.load(EngineOptions(model=str(src), threads=1))
    int8 = Learned.load(EngineOptions(model=str(dst), threads=1))  # its card is accepted
    x = frames[4:5]
    a, b = fp32.run(x), int8.run(x)
    psnr = 10 * np.log10(1 / np.mean((a - b) ** 2))
    assert 25 < psnr < 80, psnr  # close, yet not the same model
