"""rawisp: a camera RAW developer with a learned image signal processor.

Flow (one module per stage, plain dataclasses between them; the packages by concern)::

    io.decode -> stages.normalise -> stages.reconstruct (engines.classical | engines.learned)
        -> stages.render -> io.write      composed by pipeline.compose, whole files by pipeline.files

Layers, imports going down only: cli, api -> batch -> measure, train -> pipeline, compare ->
stages, engines -> io, colour, threads (tests/test_structure.py).

The Python API (:mod:`rawisp.api`)::

    import rawisp
    pixels = rawisp.develop("IMG.DNG")                  # upright sRGB, (H, W, 3) uint8
    rawisp.develop_file("IMG.DNG", "out/IMG.jpg", engine="classical", exposure=0.5)
    rawisp.info("IMG.DNG")["wb_gains"]
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_API = ("develop", "develop_file", "info", "RawispError", "OptionError", "ModelError", "DecodeError", "OutputError",
        "OutputExistsError")
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    # The API is imported on first use, not with the package: `rawisp.cli` must set
    # NUMPY_MADVISE_HUGEPAGE before NumPy is first imported, and importing any rawisp module
    # imports this package first. (By name, so the package does not depend on the API that imports
    # its modules; type checkers find the signatures in rawisp.api.)
    if name in _API:
        return getattr(importlib.import_module("rawisp.api"), name)
    raise AttributeError(f"module 'rawisp' has no attribute {name!r}")
