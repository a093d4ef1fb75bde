"""The learned engine: the LW-ISP ONNX model run tile by tile with overlap blending.

Tiles are cut from the packed frame (padded by reflection) with a margin at least the model's
receptive field on every side and a blend band where neighbouring tiles cross-fade with linear
ramps that sum to one. Within the margin every tile computes exactly what the whole frame would,
so tiling does not change the answer; memory depends on the tile size, not the frame size.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import onnxruntime as ort

from rawisp.contract import CARD_FORMAT, CHANNELS, SCALE, model_input
from rawisp.noise import estimate_noise
from rawisp.normalise import Packed
from rawisp.reconstruct import EngineOptions

DEFAULT_MODEL = "lwisp.onnx"
BLEND = 16  # packed pixels of cross-fade between tiles
MAX_DENOISE = 10.0  # largest --denoise multiplier: 10x the noise std is far beyond any use


_CARD_FIELDS = {"name": str, "stride": int, "margin": int, "input": dict, "output": dict}


class ModelError(Exception):
    """The model file or its card is missing, corrupt or does not match."""


def default_model_path() -> Path:
    """The model shipped inside the package (``rawisp.models``, the project's ``models/``)."""
    try:
        return Path(str(resources.files("rawisp.models") / DEFAULT_MODEL))
    except ModuleNotFoundError:  # a source checkout imported without installing it
        return Path(__file__).resolve().parent.parent / "models" / DEFAULT_MODEL


def load_card(model_path: Path) -> dict:
    """Read and check the JSON card beside ``model_path`` (same name, .json)."""
    card_file = model_path.with_suffix(".json")
    if not model_path.is_file():
        raise ModelError(f"{model_path}: model file not found")
    if not card_file.is_file():
        raise ModelError(f"{model_path}: no model card ({card_file.name}) beside it")
    try:
        card = json.loads(card_file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{card_file}: unreadable model card ({exc})") from None
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
        found = card.get("format") if isinstance(card, dict) else type(card).__name__
        raise ModelError(f"{card_file}: model card format {found!r}, expected {CARD_FORMAT!r}")
    bad = [k for k, kind in _CARD_FIELDS.items() if not isinstance(card.get(k), kind)]
    bad += [f"{part}.{k}" for part in ("input", "output") if isinstance(card.get(part), dict)
            for k, kind in (("name", str), ("channels", int)) if not isinstance(card[part].get(k), kind)]
    if not bad and (card["stride"] < 1 or card["margin"] < 0):
        bad = ["stride" if card["stride"] < 1 else "margin"]
    if bad:
        raise ModelError(f"{card_file}: model card lacks or mangles {', '.join(bad)}")
    digest = hashlib.sha256(model_path.read_bytes()).hexdigest()
    if card.get("sha256") not in (None, digest):
        raise ModelError(f"{model_path}: file does not match its card (sha256 differs; corrupt or replaced)")
    return card


def _check_graph(session: ort.InferenceSession, card: dict, model_path: Path) -> None:
    """Refuse a model whose inputs/outputs differ from what its card declares."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    want_in, want_out = card["input"], card["output"]
    problems = []
    if len(inputs) != 1 or inputs[0].name != want_in["name"]:
        problems.append(f"input {[i.name for i in inputs]} != {want_in['name']!r}")
    elif inputs[0].shape[1] != want_in["channels"]:
        problems.append(f"input channels {inputs[0].shape[1]} != {want_in['channels']}")
    if len(outputs) != 1 or outputs[0].name != want_out["name"]:
        problems.append(f"output {[o.name for o in outputs]} != {want_out['name']!r}")
    elif outputs[0].shape[1] != want_out["channels"]:
        problems.append(f"output channels {outputs[0].shape[1]} != {want_out['channels']}")
    if want_out.get("scale") != SCALE or want_in["channels"] != CHANNELS:
        problems.append(f"only {CHANNELS}-plane packed input and {SCALE}x output are supported")
    if problems:
        raise ModelError(f"{model_path}: model does not match its card: {'; '.join(problems)}")


def _providers(device: str) -> list[str]:
    available = ort.get_available_providers()
    if device == "cuda" and "CUDAExecutionProvider" not in available:
        raise ModelError("--device cuda: this onnxruntime has no CUDA provider (it has "
                         f"{', '.join(p.removesuffix('ExecutionProvider') for p in available)}; for an NVIDIA GPU: "
                         "pip uninstall onnxruntime && pip install onnxruntime-gpu, with NVIDIA's CUDA and cuDNN)")
    if device in ("cuda", "auto") and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def denoise_strength(setting: str) -> float:
    """The --denoise setting as a multiplier of the noise std: off 0, auto 1, else a number in
    [0, MAX_DENOISE]."""
    if setting in ("off", "auto"):
        return 0.0 if setting == "off" else 1.0
    try:
        strength = float(setting)
    except (TypeError, ValueError):
        strength = -1.0
    if not 0 <= strength <= MAX_DENOISE:  # also refuses NaN
        raise ValueError(f"--denoise {setting!r}: expected off, auto or a number from 0 to {MAX_DENOISE:g}")
    return strength


@dataclass
class Tiling:
    """Tile geometry in packed pixels (all multiples of the model stride)."""

    tile: int
    margin: int
    blend: int

    @property
    def step(self) -> int:
        return self.tile - 2 * self.margin - self.blend


def plan_tiling(tile: int, margin: int, stride: int, blend: int = BLEND) -> Tiling:
    """Round the requested tile up to the stride and make sure the step is positive and at least
    the blend band (neighbours' ramps must not overlap a third tile, or they do not sum to one)."""
    tile = _round_up(tile, stride)
    blend = _round_up(blend, stride)
    tile = max(tile, 2 * margin + blend + max(blend, stride))
    return Tiling(tile=tile, margin=margin, blend=blend)


def _round_up(n: int, stride: int) -> int:
    return int(math.ceil(n / stride) * stride)


def tile_weights(length: int, margin: int, blend: int, scale: int) -> np.ndarray:
    """1-D tile weight at ``scale`` x packed resolution: 0 in the margins, linear ramps of
    ``blend`` that sum to 1 with the neighbour's, 1 in between."""
    m, b, n = margin * scale, blend * scale, length * scale
    w = np.zeros(n, np.float32)
    w[m:n - m] = 1.0
    ramp = (np.arange(b, dtype=np.float32) + 0.5) / b
    w[m:m + b] = ramp
    w[n - m - b:n - m] = ramp[::-1]
    return w


class Learned:
    """The learned engine; call it on a Packed frame to get full-resolution camera RGB."""

    name = "learned"

    def __init__(self, session: ort.InferenceSession, card: dict, options: EngineOptions) -> None:
        self.session = session
        self.card = card
        self.version = f"{card['name']} ({card.get('training', {}).get('iterations', '?')} it)"
        self.provider = session.get_providers()[0]
        self.threads = options.threads
        self.strength = denoise_strength(options.denoise)
        self.tiling = plan_tiling(options.tile, card["margin"], card["stride"])

    @classmethod
    def load(cls, options: EngineOptions) -> "Learned":
        """Load and validate the model named by ``options.model`` (default: the bundled one)."""
        path = Path(options.model) if options.model else default_model_path()
        card = load_card(path)
        so = ort.SessionOptions()
        if options.threads:
            so.intra_op_num_threads = options.threads
            so.inter_op_num_threads = 1
        so.log_severity_level = 3
        providers = _providers(options.device)  # outside the try: a missing provider is not the model's fault
        try:
            session = ort.InferenceSession(str(path), so, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types for bad files
            raise ModelError(f"{path}: not a valid ONNX model ({str(exc).splitlines()[0]})") from None
        _check_graph(session, card, path)
        return cls(session, card, options)

    def noise(self, packed: Packed) -> tuple[float, float]:
        """(shot, read std) to feed the model, after the --denoise setting."""
        if self.strength == 0:
            return 0.0, 0.0
        shot, read = packed.noise if packed.noise is not None else estimate_noise(packed)
        return shot * self.strength**2, read * self.strength

    def run(self, x: np.ndarray) -> np.ndarray:
        """Run the network on packed input ``(N, 8, h, w)`` -> ``(N, 3, 2h, 2w)``."""
        return self.session.run(None, {self.card["input"]["name"]: x})[0]

    def __call__(self, packed: Packed) -> np.ndarray:
        rgb = self.reconstruct_padded(packed)
        return packed.crop(rgb)

    def reconstruct_padded(self, packed: Packed) -> np.ndarray:
        """Full-resolution RGB ``(2h, 2w, 3)`` of the whole packed frame, tile by tile."""
        t = self.tiling
        shot, read = self.noise(packed)
        _, h, w = packed.planes.shape
        pad = t.margin + t.blend
        # a tile larger than the padded frame only computes padding: shrink it (per axis) to fit
        th = min(t.tile, _round_up(h + 2 * pad, self.card["stride"]))
        tw = min(t.tile, _round_up(w + 2 * pad, self.card["stride"]))
        ny = max(1, math.ceil((h + 2 * pad - th) / t.step) + 1)
        nx = max(1, math.ceil((w + 2 * pad - tw) / t.step) + 1)
        total_h, total_w = (ny - 1) * t.step + th, (nx - 1) * t.step + tw
        padded = np.pad(packed.planes, ((0, 0), (pad, total_h - h - pad), (pad, total_w - w - pad)), mode="reflect")
        out = np.zeros((SCALE * h, SCALE * w, 3), np.float32)
        wy = tile_weights(th, t.margin, t.blend, SCALE)
        wx = tile_weights(tw, t.margin, t.blend, SCALE)
        for iy in range(ny):
            for ix in range(nx):
                y0, x0 = iy * t.step, ix * t.step
                planes = padded[:, y0:y0 + th, x0:x0 + tw]
                pred = self.run(model_input(planes, packed.gains, shot, read))[0].transpose(1, 2, 0)
                pred *= wy[:, None, None] * wx[None, :, None]
                _accumulate(out, pred, SCALE * (y0 - pad), SCALE * (x0 - pad))
        return out


def _accumulate(out: np.ndarray, pred: np.ndarray, y: int, x: int) -> None:
    """Add ``pred`` into ``out`` at full-resolution offset (y, x), clipped to ``out``'s extent."""
    h, w = out.shape[:2]
    ys, xs = max(0, -y), max(0, -x)
    ye, xe = min(pred.shape[0], h - y), min(pred.shape[1], w - x)
    if ye > ys and xe > xs:
        out[y + ys:y + ye, x + xs:x + xe] += pred[ys:ye, xs:xe]
