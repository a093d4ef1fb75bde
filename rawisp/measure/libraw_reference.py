"""LibRaw's own demosaic algorithms as reference rows of the evaluation (``libraw-ahd``,
``libraw-dht``, ...): a DNG developed by rawpy's postprocess with the as-shot white balance, sRGB
output, no brightening and no rescaling to the data maximum, on one OpenMP thread."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np

from rawisp.measure.protocol import EvalError

LIBRAW_GAMMA = (2.4, 12.92)  # sRGB's power and toe slope


def _libraw_algorithms() -> dict[str, object]:
    """``libraw-<name>`` -> rawpy.DemosaicAlgorithm, for the algorithms this LibRaw build supports."""
    import rawpy

    found = {}
    for algorithm in rawpy.DemosaicAlgorithm:
        try:
            supported = algorithm.isSupported
        except Exception:  # rawpy could not tell: leave it out
            supported = False
        if supported:
            found["libraw-" + algorithm.name.lower().replace("_", "-")] = algorithm
    return found


LIBRAW_ENGINES = _libraw_algorithms()


def openmp_of_rawpy():
    """The OpenMP runtime rawpy's LibRaw runs on (ctypes handle), or None when it cannot be found."""
    import ctypes
    import ctypes.util

    import rawpy

    package = Path(rawpy.__file__).parent
    candidates = [p for folder in (package.parent / "rawpy.libs", package / ".dylibs", package)
                  for p in sorted(folder.glob("*omp*")) if ".so" in p.name or p.suffix == ".dylib"]
    candidates += [name for name in (ctypes.util.find_library("gomp"), ctypes.util.find_library("omp")) if name]
    for candidate in candidates:
        try:
            lib = ctypes.CDLL(str(candidate))
            lib.omp_get_max_threads, lib.omp_set_num_threads  # noqa: B018 (both must exist)
            return lib
        except (OSError, AttributeError):
            continue
    return None


@contextmanager
def one_openmp_thread():
    """Run LibRaw's OpenMP loops on one thread: its DHT demosaic is not deterministic on several
    (a race: a few dozen pixels change from run to run), and reruns must give the same numbers."""
    lib = openmp_of_rawpy()
    if lib is None:
        yield
        return
    before = lib.omp_get_max_threads()
    lib.omp_set_num_threads(1)
    try:
        yield
    finally:
        lib.omp_set_num_threads(before)


class LibRawReference:
    """A reference row: LibRaw's own demosaic of the DNG through rawpy's postprocess."""

    def __init__(self, name: str) -> None:
        if name not in LIBRAW_ENGINES:
            raise EvalError(f"unknown LibRaw algorithm {name!r}; choose from {', '.join(LIBRAW_ENGINES)}")
        self.name = name
        self.algorithm = LIBRAW_ENGINES[name]

    def postprocess(self, path: Path) -> np.ndarray:
        """Upright 8-bit sRGB of the DNG: as-shot WB, no auto-brightening, white level kept."""
        import rawpy

        with rawpy.imread(str(path)) as raw, one_openmp_thread():
            return raw.postprocess(demosaic_algorithm=self.algorithm, use_camera_wb=True,
                                   output_color=rawpy.ColorSpace.sRGB, no_auto_bright=True,
                                   adjust_maximum_thr=0.0, gamma=LIBRAW_GAMMA, output_bps=8)
