"""Black/white normalisation, white balance, and packing of any Bayer phase into RGGB planes
(the packed planes of the model contract, :mod:`rawisp.engines.contract`)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from rawisp.engines.camera_noise import Camera
from rawisp.engines.contract import PLANE_CHANNEL
from rawisp.io.decode import RawImage
from rawisp.io.whitebalance import white_balance_gains
from rawisp.threads import thread_count

# where R sits in the 2x2 of each CFA phase, as (row, column); the rest follows
_R_SITE = {"RGGB": (0, 0), "GRBG": (0, 1), "GBRG": (1, 0), "BGGR": (1, 1)}


@dataclass
class Packed:
    """White-balanced Bayer data packed into RGGB planes at half resolution.

    ``planes`` (4, h, w) float32, order R, G1 (right of R), G2 (below R), B: linear, black
    subtracted, divided by (white - black), multiplied by ``gains`` and clipped above at 1.0.
    The gains are normalised so the smallest is 1: every channel's saturation level lands at 1.0
    or above, so after the clip a sensor-clipped channel is the brightest of its pixel. Blown
    highlights come out white, never magenta (the pink-highlight bug of WB applied after clipping).
    Negative values (noise below black) are kept.
    The RGGB mosaic of ``planes`` is the original frame padded by ``offset`` rows/columns at the
    top/left (and up to even size at the bottom/right) with CFA-preserving reflection;
    ``shape`` is the original (H, W).
    """

    planes: np.ndarray
    gains: np.ndarray  # (4,) gain applied to each plane (R, G1, G2, B), min 1
    noise: tuple[float, float] | None  # (shot, read std) in normalised raw units (before gains)
    offset: tuple[int, int]
    shape: tuple[int, int]
    camera: Camera | None = None  # make, model and ISO from the EXIF (for noise profiles)

    def crop(self, full: np.ndarray) -> np.ndarray:
        """Crop a full-resolution array of the padded frame ``(2h, 2w, ...)`` to the original."""
        (top, left), (h, w) = self.offset, self.shape
        return full[top:top + h, left:left + w]


def rggb_padding(cfa: str, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """Rows/columns (top, bottom, left, right) to add so the mosaic is RGGB with even sides."""
    if cfa not in _R_SITE:
        raise ValueError(f"not a Bayer pattern: {cfa!r}")
    top, left = _R_SITE[cfa]
    bottom = (top + shape[0]) % 2
    right = (left + shape[1]) % 2
    return top, bottom, left, right


def pack(mosaic: np.ndarray, cfa: str) -> tuple[np.ndarray, tuple[int, int]]:
    """Any-phase mosaic ``(H, W)`` -> RGGB planes ``(4, h, w)`` and the (top, left) offset.

    Padding uses reflection, which repeats the colour of the site two steps inside and so keeps
    the CFA consistent. The inverse is :func:`unpack`.
    """
    views, offset = _plane_views(mosaic, cfa)
    return np.stack(views), offset


def _plane_views(mosaic: np.ndarray, cfa: str) -> tuple[list[np.ndarray], tuple[int, int]]:
    """The four RGGB planes as strided views of the (padded if needed) mosaic, and the offset."""
    top, bottom, left, right = rggb_padding(cfa, mosaic.shape)
    padded = np.pad(mosaic, ((top, bottom), (left, right)), mode="reflect") if top + bottom + left + right else mosaic
    return [padded[0::2, 0::2], padded[0::2, 1::2], padded[1::2, 0::2], padded[1::2, 1::2]], (top, left)


def unpack(planes: np.ndarray, offset: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    """Exact inverse of :func:`pack`: RGGB planes -> the original-phase mosaic ``shape``."""
    _, h, w = planes.shape
    mosaic = np.empty((2 * h, 2 * w), planes.dtype)
    mosaic[0::2, 0::2], mosaic[0::2, 1::2], mosaic[1::2, 0::2], mosaic[1::2, 1::2] = planes
    top, left = offset
    return mosaic[top:top + shape[0], left:left + shape[1]]


def plane_values(per_site: np.ndarray, cfa: str) -> np.ndarray:
    """Reorder a per-2x2-site array ``(2, 2)`` of a CFA phase to RGGB plane order ``(4,)``."""
    top, left = _R_SITE[cfa]
    rolled = np.roll(np.roll(np.asarray(per_site), -top, axis=0), -left, axis=1)
    return rolled.reshape(4)


def normalise(raw: RawImage, threads: int = 0) -> Packed:
    """Black/white-normalise, white-balance and pack a Bayer frame (see :class:`Packed`).

    The four planes are processed on ``threads`` threads (0: all CPUs).
    """
    views, offset = _plane_views(raw.mosaic, raw.cfa)
    black = plane_values(raw.black, raw.cfa).astype(np.float32)
    gains = white_balance_gains(raw.wb)[list(PLANE_CHANNEL)].astype(np.float32)
    scale = gains / (np.float32(raw.white) - black)
    out = np.empty((4, *views[0].shape), np.float32)

    def one_plane(i: int) -> None:  # one pass per plane, no uint16 copy
        np.subtract(views[i], black[i], out=out[i], dtype=np.float32)
        out[i] *= scale[i]
        np.minimum(out[i], 1.0, out=out[i])

    with ThreadPoolExecutor(min(4, thread_count(threads))) as pool:  # numpy releases the GIL
        list(pool.map(one_plane, range(4)))
    meta = raw.metadata
    return Packed(planes=out, gains=gains, noise=raw.noise, offset=offset, shape=raw.shape,
                  camera=Camera(meta.make, meta.model, meta.iso))

