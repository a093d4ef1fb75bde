"""The learned engine: the LW-ISP ONNX model run tile by tile.

Tiles are cut from the packed frame (extended by reflection at its edges) with a margin on every
side that is computed as context and thrown away; the kept cores tile the frame edge to edge. The
margin is
the one measured for the model (card ``tiling.margin``: beyond it a tile's edge changes the
output by less than a 16-bit output step) or else its whole receptive field (card ``margin``:
tiles then compute exactly what the whole frame would). Memory depends on the tile size, not the
frame size.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from rawisp.engines.camera_noise import load_database, profiles_path
from rawisp.engines.contract import CARD_FORMAT, CHANNELS, PACKED_PLANES, SCALE, model_input
from rawisp.engines.grain import keep_grain
from rawisp.engines.noise_choice import NoiseChoice, choose_noise
from rawisp.engines.noise_net import NoiseNet
from rawisp.engines.runtime import DeviceError, bf16_output_bits, describe_session, open_session
from rawisp.stages.normalise import Packed
from rawisp.stages.reconstruct import EngineOptions, report_progress

DEFAULT_MODEL = "lwisp.onnx"
MAX_DENOISE = 10.0  # largest --denoise multiplier: 10x the noise std is far beyond any use


_CARD_FIELDS = {"name": str, "stride": int, "margin": int, "input": dict, "output": dict}


class ModelError(Exception):
    """The model file or its card is missing, corrupt or does not match."""


def default_model_path() -> Path:
    """The model shipped inside the package (``rawisp.models``, the project's ``models/``)."""
    try:
        return Path(str(resources.files("rawisp.models") / DEFAULT_MODEL))
    except ModuleNotFoundError:  # a source checkout imported without installing it
        return Path(__file__).resolve().parents[2] / "models" / DEFAULT_MODEL


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
    tiling = card.get("tiling", {})
    tiled = tiling.get("margin", 0) if isinstance(tiling, dict) else None
    if not bad and not (isinstance(tiled, int) and 0 <= tiled <= card["margin"] and tiled % card["stride"] == 0):
        bad = ["tiling.margin"]
    if not bad and "error_by_margin" in tiling and not _error_table_ok(tiling["error_by_margin"]):
        bad = ["tiling.error_by_margin"]
    if bad:
        raise ModelError(f"{card_file}: model card lacks or mangles {', '.join(bad)}")
    digest = hashlib.sha256(model_path.read_bytes()).hexdigest()
    if card.get("sha256") not in (None, digest):
        raise ModelError(f"{model_path}: file does not match its card (sha256 differs; corrupt or replaced)")
    return card


def _error_table_ok(table: object) -> bool:
    """A card's ``tiling.error_by_margin``: margins (decimal text) -> finite errors >= 0."""
    if not isinstance(table, dict) or not table:
        return False
    for margin, error in table.items():
        if not (isinstance(margin, str) and margin.isdigit()):
            return False
        if isinstance(error, bool) or not isinstance(error, (int, float)) or not 0 <= error < math.inf:
            return False
    return True


def _check_graph(session, card: dict, model_path: Path) -> None:
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


def check_grain(amount: float) -> float:
    """The --grain amount (share of the removed noise put back, :mod:`rawisp.engines.grain`), checked
    to lie in [0, 1]."""
    if not 0 <= amount <= 1:  # also refuses NaN
        raise ValueError(f"--grain {amount!r}: expected a number from 0 to 1")
    return float(amount)


@dataclass
class Tiling:
    """Tile geometry in packed pixels: ``height`` x ``width`` tiles of which a ``margin`` on every
    side is computed only as context and thrown away (all multiples of the model stride)."""

    height: int
    width: int
    margin: int
    stride: int = 1

    def core(self, length: int, tile: int) -> tuple[int, int]:
        """(tile length, kept core length) along an axis of ``length`` packed pixels: the tile is
        shrunk so that equal cores cover the axis with as little overhang as the stride allows."""
        n = -(-length // (tile - 2 * self.margin))
        core = _round_up(-(-length // n), self.stride)
        return core + 2 * self.margin, core


def plan_tiling(tile: int | tuple[int, int], margin: int, stride: int) -> Tiling:
    """Round the requested tile side(s) up to the stride, and up to the smallest tile that keeps a
    core of one stride inside the margins."""
    height, width = (tile, tile) if isinstance(tile, int) else tile
    smallest = 2 * margin + stride
    return Tiling(height=max(_round_up(height, stride), smallest), width=max(_round_up(width, stride), smallest),
                  margin=margin, stride=stride)


def output_step_in_linear(bits: int) -> float:
    """One step of a ``bits``-bit sRGB output as a linear error, at the steepest point of the sRGB
    curve (slope 12.92 near black) with a camera matrix that amplifies errors up to 2x: a linear
    error below this cannot move an output value by a whole step anywhere."""
    return 1 / ((2**bits - 1) * 12.92 * 2)


def margin_for_output(tiling: dict, bits: int) -> int | None:
    """The smallest margin of a card's measured ``tiling.error_by_margin`` whose error, and every
    larger margin's, stays below one step of a ``bits``-bit output; None without such a table.

    For 8-bit outputs (JPEG, PNG) this is smaller than the 16-bit margin the card records: at
    margin 32 the shipped model's tiles differ from the whole frame by at most 1.7e-5 in linear
    light, a ninth of an 8-bit step (still below one after +3 EV of exposure).
    """
    errors = tiling.get("error_by_margin")
    if not isinstance(errors, dict) or not errors:
        return None
    step = output_step_in_linear(bits)
    margins = sorted((int(m), float(e)) for m, e in errors.items())
    ok = [m for i, (m, _) in enumerate(margins) if all(e < step for _, e in margins[i:])]
    return ok[0] if ok else None


def tile_margin(card: dict, output_bits: int = 16) -> int:
    """The margin tiles are cut with: the card's measured effective margin (``tiling.margin``: where
    a tile's edge no longer changes the output by a 16-bit step, see :mod:`rawisp.measure.margin`), or for
    an output of fewer bits the smaller one measured to stay below a step of that output; else
    the whole receptive field (``margin``: tiles then equal the whole frame exactly)."""
    tiling = card.get("tiling", {})
    strict = tiling.get("margin", card["margin"])
    if output_bits >= 16:
        return strict
    coarse = margin_for_output(tiling, output_bits)
    return strict if coarse is None or coarse % card["stride"] else min(coarse, strict)


def _round_up(n: int, stride: int) -> int:
    return int(math.ceil(n / stride) * stride)


class Learned:
    """The learned engine; call it on a Packed frame to get full-resolution camera RGB."""

    name = "learned"

    def __init__(self, session, card: dict, options: EngineOptions) -> None:
        self.session = session  # onnxruntime's InferenceSession, or one like it (rawisp.engines.runtime)
        self.card = card
        self.version = f"{card['name']} ({card.get('training', {}).get('iterations', '?')} it)"
        self.provider = session.get_providers()[0]
        self.runtime, self.precision = describe_session(session)  # "OpenVINO 2026.4.1 CPU", "f32"
        self.threads = options.threads
        self.strength = denoise_strength(options.denoise)
        self.grain = check_grain(options.grain)
        self.tiling = plan_tiling(options.tile, tile_margin(card, options.output_bits), card["stride"])
        self.stats: dict[str, float] = {}  # figures of the last frame: see reconstruct_padded
        self.profiles = profiles_path(options.noise_profiles)
        if self.profiles is not None:
            load_database(self.profiles)  # a bad file fails here, before any frame
        self._estimator: NoiseNet | None = None

    @classmethod
    def load(cls, options: EngineOptions) -> "Learned":
        """Load and validate the model named by ``options.model`` (default: the bundled one)."""
        path = Path(options.model) if options.model else default_model_path()
        card = load_card(path)
        try:
            session = open_session(path, options.device, options.threads, options.runtime, options.precision,
                                   options.output_bits, bf16_output_bits(card))
        except DeviceError as exc:  # not the model's fault: the device or runtime asked for is missing
            raise ModelError(str(exc)) from None
        except Exception as exc:  # the runtimes raise their own exception types for bad files
            raise ModelError(f"{path}: not a valid ONNX model ({str(exc).splitlines()[0]})") from None
        _check_graph(session, card, path)
        return cls(session, card, options)

    def estimate(self, packed: Packed) -> tuple[float, float]:
        """The blind noise estimate of a frame (the estimator is loaded on first use)."""
        if self._estimator is None:
            self._estimator = NoiseNet(threads=self.threads or 1)
        return self._estimator(packed)

    def choose_noise(self, packed: Packed) -> NoiseChoice:
        """Where the frame's noise comes from and its values (see ``rawisp.engines.noise_choice``)."""
        return choose_noise(packed, self.estimate, self.profiles)

    def noise(self, packed: Packed) -> tuple[float, float]:
        """(shot, read std) to feed the model, after the --denoise setting."""
        if self.strength == 0:
            return 0.0, 0.0
        shot, read = self.choose_noise(packed).noise
        return shot * self.strength**2, read * self.strength

    def run(self, x: np.ndarray) -> np.ndarray:
        """Run the network on packed input ``(N, 8, h, w)`` -> ``(N, 3, 2h, 2w)``."""
        return self.session.run(None, {self.card["input"]["name"]: x})[0]

    def __call__(self, packed: Packed) -> np.ndarray:
        return packed.crop(self.reconstruct_padded(packed))

    def reconstruct_padded(self, packed: Packed) -> np.ndarray:
        """Full-resolution RGB ``(2h, 2w, 3)`` of the whole packed frame, tile by tile."""
        plan = self.plan(packed)
        out = np.empty((SCALE * plan.h, SCALE * plan.w, 3), np.float32)
        for iy in range(plan.ny):
            band = self.band(plan, iy)
            out[SCALE * iy * plan.core_h:][:len(band)] = band
        return out

    def rows(self, packed: Packed) -> "TileRows":
        """The same camera RGB as ``self(packed)``, computed a row of tiles at a time as rendering
        reads it, so the 12-bytes-a-pixel float frame is never held."""
        return TileRows(self, packed)

    def plan(self, packed: Packed) -> "TilePlan":
        """The tiles of ``packed``: tiles that overlap by twice the margin so that their kept cores
        meet edge to edge, the frame extended by reflection where they reach beyond it."""
        t = self.tiling
        m = t.margin
        _, h, w = packed.planes.shape
        th, core_h = t.core(h, t.height)
        tw, core_w = t.core(w, t.width)
        ny, nx = -(-h // core_h), -(-w // core_w)
        self.stats = {"tiles": ny * nx, "tile": f"{th}x{tw}", "margin": m, "network_s": 0.0,
                      "margin_share": 1 - h * w / (ny * nx * th * tw)}
        return TilePlan(packed.planes, packed.gains, *self.noise(packed), m, h, w, th, tw, core_h, core_w, ny, nx)

    def band(self, plan: "TilePlan", iy: int) -> np.ndarray:
        """Full-resolution rows ``(rows, 2w, 3)`` of tile row ``iy`` of the packed frame (the last
        row of tiles may overhang the frame: only the frame's rows are returned)."""
        p, m = plan, plan.margin
        y0 = iy * p.core_h
        rows = SCALE * min(p.core_h, p.h - y0)
        out = np.empty((rows, SCALE * p.w, 3), np.float32)
        r = _reflected(y0 - m, p.th, p.h)
        for ix, x0 in enumerate(range(0, p.w, p.core_w)):
            x = model_input(_window(p.planes, r, _reflected(x0 - m, p.tw, p.w)), p.gains, p.shot, p.read)
            start = time.perf_counter()
            pred = self.run(x)[0]
            self.stats["network_s"] += time.perf_counter() - start
            # on the whole tile: the grain's local means then reach into the margin, not past the core
            pred = keep_grain(pred, x[0, :len(PACKED_PLANES)], x[0, len(PACKED_PLANES):], self.grain)
            cols = SCALE * min(p.core_w, p.w - x0)
            core = pred[:, SCALE * m:SCALE * m + rows, SCALE * m:SCALE * m + cols]
            out[:, SCALE * x0:SCALE * x0 + cols] = core.transpose(1, 2, 0)
            report_progress(iy * p.nx + ix + 1, p.ny * p.nx)  # the batch's progress bar moves per tile
        # one pass, no temporary array: a NaN or infinity anywhere makes the sum non-finite
        if not np.isfinite(out.sum(dtype=np.float64)):
            raise ValueError(f"the {self.name} engine produced NaN or infinite values")
        return out


def _reflected(start: int, length: int, n: int) -> slice | np.ndarray:
    """Indices ``start .. start + length`` of an axis of ``n`` extended by reflection (as
    ``np.pad(mode="reflect")``): a slice where they stay inside, else an index array."""
    if start >= 0 and start + length <= n:
        return slice(start, start + length)
    if n == 1:
        return np.zeros(length, np.intp)
    period = 2 * (n - 1)
    i = np.abs(np.arange(start, start + length)) % period
    return np.where(i >= n, period - i, i)


def _window(planes: np.ndarray, rows: slice | np.ndarray, cols: slice | np.ndarray) -> np.ndarray:
    """``planes[:, rows][:, :, cols]`` without copying more than the window itself (the frame is
    reflected only at its edges: the other axis is then a slice, taken first as a view)."""
    if isinstance(cols, slice):
        return planes[:, :, cols][:, rows]
    if isinstance(rows, slice):
        return planes[:, rows][:, :, cols]
    return planes[:, rows[:, None], cols]


@dataclass
class TilePlan:
    """One frame cut into tiles (packed pixels): the packed planes, their gains and noise
    (shot, read), the margin, the frame's ``h`` x ``w``, the tile and core sides, tiles per axis."""

    planes: np.ndarray
    gains: np.ndarray
    shot: float
    read: float
    margin: int
    h: int
    w: int
    th: int
    tw: int
    core_h: int
    core_w: int
    ny: int
    nx: int


class TileRows:
    """The learned development of a frame as rows computed on demand: ``rows[y0:y1]`` gives the
    camera RGB ``(y1 - y0, W, 3)`` float32 of those output rows, equal to the same rows of
    ``engine(packed)``.

    Rendering reads strips of rows in order, from several threads: each row of tiles is computed
    under a lock when a strip first needs it and dropped when a strip below it is asked for, so
    at most the two rows of tiles a strip straddles are held.
    """

    dtype = np.dtype(np.float32)

    def __init__(self, engine: Learned, packed: Packed) -> None:
        self.engine = engine
        self.packed = packed
        self.shape = (*packed.shape, 3)
        self.plan = engine.plan(packed)
        self.bands: dict[int, np.ndarray] = {}
        self.lock = threading.Lock()

    def __getitem__(self, rows: slice) -> np.ndarray:
        y0, y1, step = rows.indices(self.shape[0])
        if step != 1:
            raise IndexError("TileRows takes contiguous row slices")
        (top, left), width = self.packed.offset, self.shape[1]
        band_rows = SCALE * self.plan.core_h
        a, b = y0 + top, max(y1, y0) + top  # rows of the padded full-resolution frame
        first, last = a // band_rows, max(a, b - 1) // band_rows
        parts = []
        with self.lock:
            # rows are asked in order: bands above this strip are done with (a strip that was
            # slow to ask would recompute its band, which is correct, only slower)
            for iy in [k for k in self.bands if k < first]:
                del self.bands[iy]
            for iy in range(first, last + 1):
                if iy not in self.bands:
                    self.bands[iy] = self.engine.band(self.plan, iy)
                start = iy * band_rows
                parts.append(self.bands[iy][max(a, start) - start:max(b, a) - start, left:left + width])
        return parts[0] if len(parts) == 1 else np.concatenate(parts)
