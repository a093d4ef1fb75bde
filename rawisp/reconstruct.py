"""Reconstruction engines: packed Bayer planes -> linear white-balanced camera RGB, full resolution.

Every engine returns the same thing, so rendering is shared and comparisons are fair.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from rawisp import classical
from rawisp.decode import RawImage
from rawisp.normalise import Packed, normalise

ENGINES = ("learned", "classical")


class Engine(Protocol):
    """Anything that turns packed planes into ``(H, W, 3)`` float32 camera RGB."""

    name: str

    def __call__(self, packed: Packed) -> np.ndarray: ...


class Classical:
    """Bilinear demosaicking (the fallback and the comparison baseline)."""

    name = "classical"
    version = "bilinear"

    def __init__(self, threads: int = 0) -> None:
        self.threads = threads

    def __call__(self, packed: Packed) -> np.ndarray:
        return classical.develop(packed, self.threads)

    def rows(self, packed: Packed) -> classical.BilinearRows:
        """The same camera RGB, computed strip by strip as rendering reads it."""
        return classical.BilinearRows(packed)


@dataclass
class EngineOptions:
    """How to build an engine: model file, onnxruntime device and threads, denoise override."""

    model: str | None = None
    device: str = "auto"
    threads: int = 0
    tile: int = 768  # packed px: the fastest tile whose 24 MP develop peaks below 1.2 GB (docs/speed.md)
    denoise: str = "auto"


def make_engine(name: str, options: EngineOptions | None = None) -> Engine:
    """Build the engine called ``name`` (one of ENGINES)."""
    options = options or EngineOptions()
    if name == "classical":
        return Classical(options.threads)
    if name == "learned":
        from rawisp.learned import Learned  # onnxruntime is only loaded when needed

        return Learned.load(options)
    raise ValueError(f"unknown engine {name!r}; choose from {', '.join(ENGINES)}")


def reconstruct(raw: RawImage, engine: Engine, packed: Packed | None = None) -> np.ndarray:
    """Full-resolution linear white-balanced camera RGB ``(H, W, 3)`` of a decoded frame.

    Non-Bayer frames were demosaicked by LibRaw at decode time and pass through unchanged.
    """
    if raw.rgb is not None:
        return raw.rgb
    rgb = engine(packed if packed is not None else normalise(raw))
    # one pass, no temporary array: a NaN or infinity anywhere makes the sum non-finite
    if not np.isfinite(rgb.sum(dtype=np.float64)):
        raise ValueError(f"the {engine.name} engine produced NaN or infinite values")
    return rgb
