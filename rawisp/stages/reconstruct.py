"""Reconstruction: packed Bayer planes -> linear white-balanced camera RGB at full resolution.

Every engine returns the same thing, so rendering is shared and comparisons are fair. The engines
are :class:`rawisp.engines.classical.Classical` and :class:`rawisp.engines.learned.Learned`;
:mod:`rawisp.engines.registry` builds them by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from rawisp.io.dng import FORMATS as DNG_FORMATS
from rawisp.stages.normalise import Packed


class Engine(Protocol):
    """Anything that turns packed planes into ``(H, W, 3)`` float32 camera RGB (full resolution)."""

    name: str
    version: str

    def __call__(self, packed: Packed) -> np.ndarray: ...


DEVELOP_GRAIN = 0.3
"""``rawisp develop``'s --grain for pictures (and the API's): chosen on the dead-leaves texture and
noise measures, docs/quality.md ("Noise reduction and texture"). A DNG gets none unless asked: it
is raw material for an editor, whose own noise reduction and grain then decide."""


def develop_grain(grain: float | None, fmt: str) -> float:
    """The --grain of a develop to ``fmt``: ``grain`` where given, else :data:`DEVELOP_GRAIN` for a
    picture and 0 for a DNG (``dng``, ``linear-dng``)."""
    if grain is not None:
        return grain
    return 0.0 if fmt in DNG_FORMATS else DEVELOP_GRAIN


@dataclass
class EngineOptions:
    """How to build an engine: model file, device (auto, cpu, cuda) and threads (0: all CPUs), tile side
    in packed pixels, denoise override (off, auto or a strength), darktable's noise-profile file
    (None: ``$RAWISP_NOISE_PROFILES`` or darktable's if installed), the bits per sample of
    the output the result is written to (8: the learned engine may cut tiles with a smaller
    margin whose seams stay below one 8-bit step, :func:`rawisp.engines.learned.tile_margin`), and
    the learned engine's runtime (auto, onnxruntime, openvino) and precision (auto, f32, bf16):
    :mod:`rawisp.engines.runtime`, and the share of the noise it removed that it puts back as
    neutral grain (0 to 1, :mod:`rawisp.engines.grain`; 0, the default here, is the network's full
    noise reduction that ``rawisp eval`` scores; ``develop`` defaults to :data:`DEVELOP_GRAIN`)."""

    model: str | None = None
    device: str = "auto"
    threads: int = 0
    tile: int = 768  # packed px: the fastest tile whose 24 MP develop peaks below 1.2 GB (docs/speed.md)
    denoise: str = "auto"
    noise_profiles: str | None = None
    output_bits: int = 16
    runtime: str = "auto"  # auto: OpenVINO on the CPU where installed, else onnxruntime
    precision: str = "auto"  # auto: f32 (bf16 moves saturated colours visibly: docs/speed.md)
    grain: float = 0.0  # share of the removed noise put back (rawisp.engines.grain); 0: rawisp eval's


def reconstruct(packed: Packed, engine: Engine) -> np.ndarray:
    """Full-resolution linear white-balanced camera RGB ``(H, W, 3)`` of a packed frame;
    ValueError when the engine produced NaN or infinite values."""
    rgb = engine(packed)
    # one pass, no temporary array: a NaN or infinity anywhere makes the sum non-finite
    if not np.isfinite(rgb.sum(dtype=np.float64)):
        raise ValueError(f"the {engine.name} engine produced NaN or infinite values")
    return rgb


# How far an engine that works in parts (the learned engine: tiles) is through a frame, for the
# batch's progress bar: the batch worker sets the hook (rawisp.batch.runner), the engine reports.
_progress_hook: Callable[[int, int], None] | None = None


def set_progress_hook(hook: Callable[[int, int], None] | None) -> None:
    """Call ``hook(done, total)`` as engines in this process finish parts of a frame (None: stop)."""
    global _progress_hook
    _progress_hook = hook


def report_progress(done: int, total: int) -> None:
    """An engine has finished ``done`` of the ``total`` parts of the frame it is reconstructing."""
    hook = _progress_hook
    if hook is not None:
        hook(done, total)
