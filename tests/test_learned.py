"""Acceptance tests of the learned engine: tiling, torch/ONNX agreement, model validation, quality
against the classical engine, the --denoise setting and the default engine of ``rawisp develop``.

They use the bundled model but none of its exact weights or metrics: they must keep passing when
it is replaced by another trained model.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import natural_image, read_image

from rawisp.colour import srgb_decode
from rawisp.engines.classical import Classical
from rawisp.engines.learned import Learned, ModelError, default_model_path, denoise_strength, plan_tiling, tile_margin
from rawisp.engines.noise_net import NoiseNet
from rawisp.io.decode import decode
from rawisp.measure import synth
from rawisp.measure.chart import make_chart
from rawisp.measure.metrics import psnr
from rawisp.pipeline.compose import RenderOptions, render_picture
from rawisp.stages.normalise import normalise
from rawisp.stages.reconstruct import EngineOptions

NOISE = (2e-3, 1e-3)  # (shot, read): sigma planes that are not zero, so they are tiled too
# tiles cut with the card's measured margin may differ from the whole frame, by less than this
TILED_TOLERANCE = 1 / 65535  # one 16-bit step of linear output


def load(**options) -> Learned:
    return Learned.load(EngineOptions(threads=1, **options))


def counting(engine: Learned) -> list[tuple[int, ...]]:
    """Record the input shape of every network run of ``engine`` (one per tile)."""
    calls: list[tuple[int, ...]] = []
    run = engine.run

    def counted(x: np.ndarray) -> np.ndarray:
        calls.append(x.shape)
        return run(x)

    engine.run = counted
    return calls


def packed_dng(path: Path, srgb: np.ndarray, **kwargs):
    """Write a synthetic DNG, decode and normalise it: (raw, packed, ground truth)."""
    truth = synth.srgb_to_dng(path, srgb, **kwargs)
    raw = decode(path)
    return raw, normalise(raw), truth


# --- tiling -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("margin,stride", [(80, 4), (40, 4), (12, 4), (20, 8), (0, 4)])
def test_planned_tile_cores_cover_every_pixel_once(margin, stride):
    """For every requested tile and frame size, the kept cores cover the frame edge to edge, once;
    tiles are multiples of the stride, no larger than asked (unless below the smallest tile)."""
    for requested in range(16, 520, 12):
        t = plan_tiling((requested, requested + 8), margin, stride)
        for length in (1, 7, requested - 1, 3 * requested + 5):
            for tile in (t.height, t.width):
                size, core = t.core(length, tile)
                assert size % stride == 0 and core % stride == 0 and core > 0
                assert size <= max(tile, 2 * margin + stride) and size == core + 2 * margin
                covered = np.zeros(-(-length // core) * core, int)
                for y0 in range(0, length, core):
                    covered[y0:y0 + core] += 1
                assert (covered == 1).all() and len(covered) - length < core, (t, length)


@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_reflected_indices_extend_like_numpy_pad(n):
    from rawisp.engines.learned import _reflected

    axis = np.arange(n)
    for pad in (0, 1, 3, 9):
        want = np.pad(axis, pad, mode="reflect")
        np.testing.assert_array_equal(axis[_reflected(-pad, n + 2 * pad, n)], want)
        np.testing.assert_array_equal(axis[_reflected(-pad, n + pad, n)], want[:n + pad])  # one side only


def test_tile_margin_is_the_measured_one_else_the_receptive_field():
    card = {"margin": 80}
    assert tile_margin(card) == 80
    assert tile_margin({**card, "tiling": {"margin": 40}}) == 40


def test_an_8_bit_output_is_cut_with_the_margin_measured_below_an_8_bit_step():
    from rawisp.engines.learned import output_step_in_linear

    errors = {"0": 0.4, "8": 0.016, "16": 0.0037, "24": 4.7e-4, "32": 1.7e-5, "40": 5.4e-7, "48": 6e-7, "80": 0.0}
    card = {"margin": 80, "stride": 4, "tiling": {"margin": 40, "error_by_margin": errors}}
    assert output_step_in_linear(8) == pytest.approx(1.52e-4, rel=0.01)
    assert tile_margin(card, 16) == 40 and tile_margin(card) == 40
    assert tile_margin(card, 8) == 32
    # a margin whose error is small but rises again further out is not trusted
    rising = {"margin": 56, "error_by_margin": {**errors, "40": 2e-4, "48": 1e-6, "56": 1e-7}}
    assert tile_margin({**card, "tiling": rising}, 8) == 48
    assert tile_margin({"margin": 80, "stride": 4, "tiling": {"margin": 40}}, 8) == 40  # no table: the strict one
    shipped = json.loads(default_model_path().with_suffix(".json").read_text())
    assert tile_margin(shipped, 8) < tile_margin(shipped, 16)


def test_8_bit_tiles_stay_within_a_tenth_of_an_8_bit_step_of_the_whole_frame(tmp_path):
    from rawisp.colour import srgb_encode

    _, packed, _ = packed_dng(tmp_path / "t.dng", natural_image(301, 389, seed=4), cfa="RGGB", noise=NOISE)
    whole = load(tile=4096)(packed)
    engine = load(tile=160, output_bits=8)
    assert engine.tiling.margin < load(tile=160).tiling.margin
    calls = counting(engine)
    tiled = engine(packed)
    assert len(calls) >= 4
    diff = np.abs(srgb_encode(np.clip(tiled, 0, 1)) - srgb_encode(np.clip(whole, 0, 1))).max() * 255
    assert diff < 0.1, f"8-bit tiles differ from the whole frame by {diff:.3f} of an 8-bit step"


# odd and even sizes in every CFA phase, so every packing offset goes through the tiles; tiles
# are given as the core they keep (tile side less both margins), so they are several per frame
TILE_CASES = [("RGGB", 151, 229, (32, 64)), ("BGGR", 150, 231, (32, 64)),
              ("GRBG", 149, 230, (32, 64)), ("GBRG", 151, 421, (64, 96))]


@pytest.mark.parametrize("cfa,h,w,tiles", TILE_CASES, ids=[c[0] for c in TILE_CASES])
def test_tiled_equals_single_tile(tmp_path, cfa, h, w, tiles):
    _, packed, _ = packed_dng(tmp_path / "t.dng", natural_image(h, w, seed=2), cfa=cfa, noise=NOISE)
    single = load(tile=4096)
    calls = counting(single)
    whole = single(packed)
    assert len(calls) == 1 and whole.shape == (h, w, 3)
    for core in tiles:
        tile = 2 * single.tiling.margin + core
        engine = load(tile=tile)
        calls = counting(engine)
        tiled = engine(packed)
        assert len(calls) >= 2, f"tile {tile} gave a single tile: the test would prove nothing"
        diff = float(np.abs(tiled - whole).max())
        assert diff <= TILED_TOLERANCE, f"tile {tile} ({len(calls)} tiles): max |tiled - whole| = {diff:.2e}"


def test_smallest_tile_equals_single_tile(tmp_path):
    """The CLI's smallest --tile (64) is raised to the smallest valid tile: many tiles, same answer."""
    _, packed, _ = packed_dng(tmp_path / "t.dng", natural_image(97, 123, seed=3), cfa="GRBG", noise=NOISE)
    whole = load(tile=4096)(packed)
    engine = load(tile=64)
    t = engine.tiling
    assert t.height == t.width == max(64, 2 * t.margin + t.stride)  # a core of one stride at least
    calls = counting(engine)
    tiled = engine(packed)
    assert len(calls) >= 9
    diff = float(np.abs(tiled - whole).max())
    assert diff <= TILED_TOLERANCE, f"smallest tile {t.height} ({len(calls)} tiles): max |tiled - whole| = {diff:.2e}"


def test_rows_on_demand_equal_the_whole_frame(tmp_path):
    """engine.rows(packed) gives the same rows as engine(packed), whatever slices are asked, in any
    order and from several threads at once; read in order, each tile is computed once."""
    from concurrent.futures import ThreadPoolExecutor

    _, packed, _ = packed_dng(tmp_path / "t.dng", natural_image(181, 97, seed=5), cfa="GBRG", noise=NOISE)
    engine = load(tile=2 * load().tiling.margin + 16)  # cores of 16 packed px: rows of 32 output px
    whole = engine(packed)
    rows = engine.rows(packed)
    assert rows.shape == whole.shape and rows.dtype == whole.dtype
    for y0, y1 in [(0, 1), (0, 181), (30, 95), (31, 32), (180, 181), (5, 5), (100, 60)]:
        np.testing.assert_array_equal(rows[y0:y1], whole[y0:y1])
    calls = counting(engine)
    rows = engine.rows(packed)
    parts = [rows[y:y + 7] for y in range(0, 181, 7)]  # in order, as rendering reads
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    assert len(calls) == engine.stats["tiles"] and len(rows.bands) <= 2  # each tile once, two rows of tiles held
    rows = engine.rows(packed)
    with ThreadPoolExecutor(3) as pool:  # strips asked from several threads, maybe out of order
        parts = list(pool.map(rows.__getitem__, [slice(y, y + 7) for y in range(0, 181, 7)]))
    np.testing.assert_array_equal(np.concatenate(parts), whole)


def test_tile_larger_than_frame_is_shrunk_to_fit(tmp_path):
    """A tile far larger than the frame runs one network pass no larger than the padded frame."""
    _, packed, _ = packed_dng(tmp_path / "t.dng", natural_image(41, 67, seed=4), cfa="BGGR")
    engine = load(tile=4096)
    calls = counting(engine)
    engine(packed)
    (_, _, th, tw), = calls
    pad = 2 * engine.tiling.margin
    _, h, w = packed.planes.shape
    assert h + pad <= th < h + pad + engine.card["stride"] and w + pad <= tw < w + pad + engine.card["stride"]


# --- torch and ONNX agree ---------------------------------------------------------------------------


LEGACY_EXPORT = pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript:DeprecationWarning",
                                          "ignore:The feature will be removed:DeprecationWarning",
                                          "ignore::UserWarning")


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
    """A small LWISP with random weights (residual branch switched on), exported to ONNX."""
    torch = pytest.importorskip("torch", reason="torch is needed to build and export a model")
    from rawisp.train.export import export
    from rawisp.train.model import LWISP

    torch.manual_seed(0)
    model = LWISP(widths=(8, 16, 32))
    with torch.no_grad():  # the last refine conv starts at zero: give the residual a voice
        torch.nn.init.normal_(model.upsample.refine[-1].weight, std=0.2)
        torch.nn.init.normal_(model.upsample.refine[-1].bias, std=0.05)
    path = tmp_path_factory.mktemp("tiny") / "tiny.onnx"
    card = export(model.eval(), path, training={"iterations": 0, "note": "test"})
    return torch, model, path, card


@LEGACY_EXPORT
@pytest.mark.parametrize("shape", [(1, 8, 64, 64), (2, 8, 36, 52)], ids=["export-size", "other-size"])
def test_torch_and_onnx_agree(tiny_export, shape):
    torch, model, path, card = tiny_export
    from rawisp.train.model import bilinear_demosaic

    assert card["input"]["channels"] == 8 and card["margin"] > 0
    engine = load(model=str(path))
    rng = np.random.default_rng(1)
    x = rng.random(shape, dtype=np.float32)
    x[:, 4:] *= 0.05  # noise planes: small positive stds
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
        base = bilinear_demosaic(torch.from_numpy(x[:, :4])).numpy()
    assert np.abs(ref - base).mean() > 1e-2  # the network adds a real residual to the bilinear base
    got = engine.run(x)
    assert got.shape == ref.shape == (shape[0], 3, 2 * shape[2], 2 * shape[3])
    assert float(np.abs(got - ref).max()) <= 1e-4


# --- bad models are refused -------------------------------------------------------------------------


@pytest.fixture
def model_copy(tmp_path) -> Path:
    """A copy of the bundled model and its card under tmp_path, to be damaged."""
    src = default_model_path()
    dst = tmp_path / "m.onnx"
    shutil.copyfile(src, dst)
    shutil.copyfile(src.with_suffix(".json"), dst.with_suffix(".json"))
    return dst


def edit_card(model: Path, **changes) -> None:
    card_file = model.with_suffix(".json")
    card = json.loads(card_file.read_text())
    for key, value in changes.items():
        if value is None:
            del card[key]
        else:
            card[key] = value
    card_file.write_text(json.dumps(card))


def match_sha(model: Path) -> None:
    """Make the card's sha256 agree with the (damaged) model, so only the model itself can fail."""
    edit_card(model, sha256=hashlib.sha256(model.read_bytes()).hexdigest())


def flip_byte(model: Path) -> None:
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))


def truncate(model: Path) -> None:
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    match_sha(model)


def not_onnx(model: Path) -> None:
    model.write_bytes(np.random.default_rng(0).bytes(5000))
    match_sha(model)


def card_input(model: Path, **changes) -> None:
    card = json.loads(model.with_suffix(".json").read_text())
    edit_card(model, input={**card["input"], **changes})


DAMAGE = {
    "no card": (lambda m: m.with_suffix(".json").unlink(), "onnx", "no model card"),
    "card not json": (lambda m: m.with_suffix(".json").write_text("{not json"), "json", "unreadable"),
    "card is a list": (lambda m: m.with_suffix(".json").write_text("[1, 2]"), "json", "format"),
    "card wrong format": (lambda m: edit_card(m, format="rawisp-lwisp/0"), "json", "format"),
    "card without input": (lambda m: edit_card(m, input=None), "json", "input"),
    "card with bad margin": (lambda m: edit_card(m, margin="80"), "json", "margin"),
    "tiling margin above the receptive field": (lambda m: edit_card(m, tiling={"margin": 10**6}), "json", "tiling"),
    "tiling margin off the stride": (lambda m: edit_card(m, tiling={"margin": 41}), "json", "tiling"),
    "tiling error table mangled": (lambda m: edit_card(m, tiling={"margin": 40, "error_by_margin": {"x": "1e-5"}}),
                                   "json", "error_by_margin"),
    "tiling error table not finite": (lambda m: edit_card(m, tiling={"margin": 40, "error_by_margin": {"32": None}}),
                                      "json", "error_by_margin"),
    "byte flipped": (flip_byte, "onnx", "sha256"),
    "truncated onnx": (truncate, "onnx", "not a valid ONNX"),
    "not onnx": (not_onnx, "onnx", "not a valid ONNX"),
    "card input channels": (lambda m: card_input(m, channels=4), "onnx", "channels"),
    "card input name": (lambda m: card_input(m, name="raw"), "onnx", "input"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_bad_model_is_refused(model_copy, damage):
    spoil, named, words = DAMAGE[damage]
    spoil(model_copy)
    with pytest.raises(ModelError) as info:
        load(model=str(model_copy))
    message = str(info.value)
    named_file = model_copy if named == "onnx" else model_copy.with_suffix(".json")
    assert message.startswith(f"{named_file}: "), message
    assert words in message and "\n" not in message, message


@LEGACY_EXPORT
def test_model_whose_graph_has_other_input_channels_is_refused(tiny_export, tmp_path):
    """A real ONNX graph taking 4 planes, with a card (and sha256) that says 8: refused."""
    torch, _, _, card = tiny_export
    from rawisp.train.model import LWISP

    path = tmp_path / "four.onnx"
    model = LWISP(widths=(8, 16, 32), in_channels=4).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(model, (torch.rand(1, 4, 32, 32),), str(path), input_names=["packed"], output_names=["rgb"],
                          dynamic_axes={"packed": {0: "n", 2: "h", 3: "w"}, "rgb": {0: "n", 2: "h2", 3: "w2"}},
                          opset_version=17, dynamo=False)
    card = {**card, "name": "four", "onnx": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    path.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match=r"input channels 4 != 8") as info:
        load(model=str(path))
    assert str(info.value).startswith(f"{path}: ")



def test_cli_refuses_bad_model_with_one_line(tmp_path):
    source = tmp_path / "x.dng"
    synth.srgb_to_dng(source, natural_image(40, 60, seed=1))
    bad = tmp_path / "BAD.onnx"
    bad.write_bytes(np.random.default_rng(0).bytes(3000))
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "rawisp", "develop", "--model", str(bad), str(source), "-o", str(out)],
                            capture_output=True, text=True, timeout=120)
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and len(lines) == 1, result.stderr
    assert str(bad) in lines[0] and "model card" in lines[0], lines[0]
    assert not out.exists() or not any(out.rglob("*"))


def test_bad_denoise_setting_is_refused():
    assert [denoise_strength(s) for s in ("off", "auto", "0", "1.5")] == [0.0, 1.0, 0.0, 1.5]
    for setting in ("-1", "strong", "nan", "inf", ""):
        with pytest.raises(ValueError, match="--denoise"):
            denoise_strength(setting)
        with pytest.raises(ValueError, match="--denoise"):
            load(denoise=setting)


def test_cli_refuses_bad_denoise_setting(tmp_path):
    source = tmp_path / "x.dng"
    synth.srgb_to_dng(source, natural_image(40, 60, seed=1))
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "rawisp", "develop", "--denoise=-2", str(source), "-o", str(out)],
                            capture_output=True, text=True, timeout=120)
    [error] = [line for line in result.stderr.splitlines() if line.startswith("Error:")]  # click's usage error
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and error.startswith("Error: Invalid value for '--denoise': "), result.stderr
    assert not out.exists() or not any(out.rglob("*"))


# --- quality against the classical engine -----------------------------------------------------------


@pytest.mark.parametrize("scene", ["chart", "natural"])
def test_learned_beats_classical_on_clean_scene(tmp_path, scene):
    """Noise-free synthetic capture: the learned engine is closer to the ground truth than bilinear."""
    srgb = make_chart(400, 300) if scene == "chart" else natural_image(300, 400, seed=3)
    raw, packed, truth = packed_dng(tmp_path / "c.dng", srgb, cfa="GRBG")
    assert raw.noise[1] < 1e-4  # the DNG says: clean
    learned, classical = load()(packed), Classical()(packed)
    linear = psnr(learned, truth, border=0), psnr(classical, truth, border=0)
    assert linear[0] > linear[1], f"{scene}, linear camera RGB: learned {linear[0]:.2f} dB, classical {linear[1]:.2f} dB"
    # rendered, tone linear (sRGB encoding weighs the shadows more); shipped model: +10 dB chart, +1.7 dB natural
    options = RenderOptions(fmt="png16", tone="linear")
    want = render_picture(raw, truth, options)
    rendered = [psnr(render_picture(raw, rgb, options), want, border=0) for rgb in (learned, classical)]
    margin = {"chart": 3.0, "natural": 0.5}[scene]
    assert rendered[0] > rendered[1] + margin, f"{scene}, sRGB: learned {rendered[0]:.2f}, classical {rendered[1]:.2f}"


# --- --denoise ---------------------------------------------------------------------------------------


def test_denoise_setting_scales_the_noise_fed_to_the_model(tmp_path):
    """With a NoiseProfile the profile is used; off gives zero; a strength multiplies the stds."""
    raw, packed, _ = packed_dng(tmp_path / "n.dng", natural_image(60, 80, seed=5), noise=(4e-3, 2e-3))
    assert raw.noise == pytest.approx((4e-3, 2e-3), rel=1e-9)
    assert load(denoise="auto").noise(packed) == pytest.approx((4e-3, 2e-3), rel=1e-9)
    assert load(denoise="off").noise(packed) == (0.0, 0.0)
    assert load(denoise="0").noise(packed) == (0.0, 0.0)
    # a strength scales the noise std at every level: shot by s^2, read by s
    assert load(denoise="2").noise(packed) == pytest.approx((16e-3, 4e-3), rel=1e-9)
    assert load(denoise="0.5").noise(packed) == pytest.approx((1e-3, 1e-3), rel=1e-9)


def test_without_profile_the_noise_is_estimated(tmp_path):
    """No NoiseProfile and no ISO: the learned blind estimate feeds the model (rawisp.engines.noise_choice),
    --denoise scales it, and it finds the noise that was added at mid and bright levels (measured:
    1.17x the truth's sigma at 0.2, 1.06x at 0.5; at 0.05 1.6x: the read-noise intercept of the
    fit is the weakly determined part on this busy scene)."""
    shot, read = 3e-3, 1e-3
    cam = srgb_decode(natural_image(240, 320, seed=6)) @ synth.DEFAULT_CAM_FROM_SRGB.T
    neutral = np.array([0.55, 1.0, 0.75])
    mosaic = synth.add_noise(synth.mosaic(cam * neutral, "BGGR"), shot, read, np.random.default_rng(0))
    path = tmp_path / "n.dng"
    synth.write_dng(path, mosaic, cfa="BGGR", neutral=neutral, white=16383, noise=None)
    raw = decode(path)
    assert raw.noise is None
    packed = normalise(raw)
    engine = load(denoise="auto")
    choice = engine.choose_noise(packed)
    estimate = NoiseNet()(packed)
    assert (choice.source, choice.noise) == ("estimate", estimate)
    assert engine.noise(packed) == estimate
    assert load(denoise="2").noise(packed) == pytest.approx((4 * estimate[0], 2 * estimate[1]))
    for x in (0.2, 0.5):  # the noise std the model is told, at mid and bright signal levels
        sigma = np.sqrt(estimate[0] * x + estimate[1] ** 2)
        assert sigma == pytest.approx(np.sqrt(shot * x + read**2), rel=0.25), (x, estimate)


def test_denoise_changes_the_output_and_auto_helps_on_a_noisy_frame(tmp_path):
    _, packed, truth = packed_dng(tmp_path / "n.dng", natural_image(120, 160, seed=4), noise=(1e-2, 3e-3), seed=1)
    outputs = {setting: load(denoise=setting, tile=4096)(packed) for setting in ("off", "auto", "3")}
    assert np.abs(outputs["auto"] - outputs["off"]).mean() > 1e-4
    assert np.abs(outputs["3"] - outputs["auto"]).mean() > 1e-4
    scores = {k: psnr(v, truth, border=0) for k, v in outputs.items()}
    assert scores["auto"] > scores["off"], scores


def test_denoise_option_reaches_the_engine(cli, tmp_path):
    source = tmp_path / "n.dng"
    synth.srgb_to_dng(source, natural_image(48, 64, seed=7), noise=(1e-2, 3e-3))
    pictures = {}
    for setting in ("off", "auto", "3"):
        result = cli("develop", "--format", "png", "--denoise", setting, source, "-o", tmp_path / setting)
        assert result.exit_code == 0, result.stderr
        pictures[setting] = read_image(tmp_path / setting / "n.png").astype(int)
    assert np.abs(pictures["off"] - pictures["auto"]).max() > 0
    assert np.abs(pictures["3"] - pictures["auto"]).max() > 0


# --- the default engine -------------------------------------------------------------------------------


def test_develop_uses_the_learned_engine_by_default(cli, tmp_path):
    source = tmp_path / "s.dng"
    synth.srgb_to_dng(source, natural_image(48, 64, seed=8), cfa="GBRG")
    pictures = {}
    for name, extra in (("default", ()), ("learned", ("--engine", "learned")), ("classical", ("--engine", "classical"))):
        result = cli("develop", "--format", "png", *extra, source, "-o", tmp_path / name)
        assert result.exit_code == 0, result.stderr
        pictures[name] = read_image(tmp_path / name / "s.png")
    assert np.array_equal(pictures["default"], pictures["learned"])
    assert not np.array_equal(pictures["default"], pictures["classical"])
