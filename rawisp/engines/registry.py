"""The reconstruction engines by name: what ``--engine`` chooses from."""

from __future__ import annotations

from dataclasses import astuple
from functools import lru_cache

from rawisp.engines.classical import Classical
from rawisp.stages.reconstruct import Engine, EngineOptions

ENGINES = ("learned", "classical")


def make_engine(name: str, options: EngineOptions | None = None) -> Engine:
    """Build the engine called ``name`` (one of ENGINES)."""
    options = options or EngineOptions()
    if name == "classical":
        return Classical(options.threads)
    if name == "learned":
        from rawisp.engines.learned import Learned  # onnxruntime is only loaded when needed

        return Learned.load(options)
    raise ValueError(f"unknown engine {name!r}; choose from {', '.join(ENGINES)}")


def cached_engine(name: str, options: EngineOptions | None = None) -> Engine:
    """The engine :func:`make_engine` builds, built once per process and set of options and then
    reused: a cluster worker's sandbox or a script developing many files loads the model once, not
    per file. Engines keep no state between frames (an onnxruntime session may run from several
    threads)."""
    return _cached_engine(name, astuple(options or EngineOptions()))


@lru_cache(maxsize=4)
def _cached_engine(name: str, fields: tuple) -> Engine:
    return make_engine(name, EngineOptions(*fields))
