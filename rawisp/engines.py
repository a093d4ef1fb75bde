"""The reconstruction engines by name: what ``--engine`` chooses from."""

from __future__ import annotations

from rawisp.classical import Classical
from rawisp.reconstruct import Engine, EngineOptions

ENGINES = ("learned", "classical")


def make_engine(name: str, options: EngineOptions | None = None) -> Engine:
    """Build the engine called ``name`` (one of ENGINES)."""
    options = options or EngineOptions()
    if name == "classical":
        return Classical(options.threads)
    if name == "learned":
        from rawisp.learned import Learned  # onnxruntime is only loaded when needed

        return Learned.load(options)
    raise ValueError(f"unknown engine {name!r}; choose from {', '.join(ENGINES)}")
