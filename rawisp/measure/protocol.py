"""The evaluation protocol: the synthetic camera that turns a ground-truth sRGB image into a DNG.

Per ground-truth image and noise level (see :func:`rawisp.measure.synth.srgb_to_dng`): linearise the sRGB
values, map them to camera RGB with a fixed matrix (the identity by default, camera RGB = linear
sRGB, as the published reference figures are measured; or a realistic camera matrix,
``camera="synthetic"``, DEFAULT_CAM_FROM_SRGB), multiply by the as-shot neutral (undoing the white
balance), mosaic through the CFA, add noise of variance ``shot * x + read**2`` (normalised raw
units, seeded per image index and noise level) and write a real 12-bit DNG (black 256, white 4095)
with a NoiseProfile stating that noise (for the clean level, its 1-DN rounding), as a camera's DNG
does; ``noise_profile=False`` leaves it out, so the learned engine chooses the noise as it must
for vendor RAW files. Every DNG's EXIF names a camera no noise-profile database knows (Make
"rawisp", Model "Synthetic") shot at ISO 400, whatever its noise: without a NoiseProfile the EXIF
prior alone is wrong at every level and the blind estimate has to do the work (see
:mod:`rawisp.engines.noise_choice`). Developments are rendered with RENDER (linear tone, 8-bit), the look
closest to the ground truth.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from rawisp.measure.synth import DEFAULT_CAM_FROM_SRGB, srgb_to_dng
from rawisp.pipeline.compose import RenderOptions

NOISE_PRESETS: dict[str, tuple[float, float]] = {
    "clean": (0.0, 0.0),
    "mid": (1e-3, 5e-4),
    "high": (6e-3, 2e-3),
}
"""(shot, read) per preset: noise variance = shot * x + read**2, x in normalised raw units."""

IMAGE_SUFFIXES = {".png", ".tif", ".tiff", ".jpg", ".jpeg"}

# the camera model of the protocol (srgb_to_dng's defaults, written out so reports can state them)
BLACK, WHITE = 256, 4095
NEUTRAL = (0.55, 1.0, 0.75)
EXIF = {"ISO": 400}  # an unknown camera (srgb_to_dng's Make and Model) at ISO 400, at every noise level
CAMERAS = {"identity": np.eye(3), "synthetic": DEFAULT_CAM_FROM_SRGB}
"""Camera matrices (linear sRGB -> camera RGB) the protocol can use. "identity" is the default: it is
how the published reference figures (bilinear 29.86, LibRaw DHT 35.41 dB clean...) were measured;
"synthetic" (DEFAULT_CAM_FROM_SRGB) adds a realistic camera matrix, whose inverse amplifies errors."""
DEFAULT_CAMERA = "identity"
RENDER = RenderOptions(fmt="png", tone="linear")  # 8-bit sRGB, plain sRGB encoding


class EvalError(Exception):
    """The evaluation cannot run; the message is the reason, for one line of output."""


@dataclass(frozen=True)
class Noise:
    """A noise level: a label and (shot, read) in normalised raw units."""

    label: str
    shot: float
    read: float


def parse_noise(spec: str) -> list[Noise]:
    """``"clean,mid,high"`` or custom ``"SHOT:READ"`` items (``"2e-3:1e-3"``) -> noise levels."""
    levels: list[Noise] = []
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        if item in NOISE_PRESETS:
            levels.append(Noise(item, *NOISE_PRESETS[item]))
            continue
        try:
            shot, read = (float(v) for v in item.split(":"))
        except ValueError:
            raise EvalError(f"bad noise level {item!r}: use {', '.join(NOISE_PRESETS)} or SHOT:READ") from None
        if not (0 <= shot <= 1 and 0 <= read <= 1):  # also refuses NaN; 1 is full-scale noise
            raise EvalError(f"bad noise level {item!r}: shot and read must be numbers from 0 to 1")
        levels.append(Noise(f"{shot:g}:{read:g}", shot, read))
    if not levels:
        raise EvalError("no noise level given")
    if len({n.label for n in levels}) != len(levels):
        raise EvalError("a noise level is given twice")
    return levels


def noise_seed(index: int, noise: Noise) -> int:
    """The noise seed of image ``index`` at a noise level: fixed, so reruns give the same numbers."""
    return zlib.crc32(f"rawisp-eval/{index}/{noise.label}".encode())


def find_images(folder: Path) -> list[Path]:
    """Ground-truth images (PNG, TIFF, JPEG) of a folder, sorted by name; or the one file given."""
    folder = Path(folder)
    if folder.is_file():
        return [folder]
    if not folder.is_dir():
        raise EvalError(f"{folder}: no such folder")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def load_image(path: Path) -> np.ndarray:
    """A ground-truth image as (H, W, 3) uint8 or uint16 sRGB (alpha dropped, grey expanded)."""
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            img = tifffile.imread(path)
        else:
            with Image.open(path) as im:
                if im.mode not in ("RGB", "L", "I;16"):
                    im = im.convert("RGB")
                img = np.asarray(im)
    except Exception as exc:
        raise EvalError(f"{path}: cannot read the image ({exc})") from None
    if img.dtype not in (np.uint8, np.uint16):
        if img.dtype.kind == "f":
            img = np.round(np.clip(img, 0, 1) * 65535).astype(np.uint16)
        else:
            raise EvalError(f"{path}: unsupported pixel type {img.dtype}")
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] not in (3, 4):
        raise EvalError(f"{path}: not an RGB image (shape {img.shape})")
    return np.ascontiguousarray(img[..., :3])


def synthesise(image: np.ndarray, dng: Path, index: int, noise: Noise, *, cfa: str = "RGGB",
               camera: str = DEFAULT_CAMERA, noise_profile: bool = True) -> np.ndarray:
    """Write the protocol's DNG of ground-truth image number ``index`` at a noise level; returns
    the noise-free white-balanced camera RGB a perfect demosaicker would reconstruct."""
    return srgb_to_dng(dng, image, cfa=cfa, black=BLACK, white=WHITE, cam_from_srgb=CAMERAS[camera],
                       neutral=NEUTRAL, noise=(noise.shot, noise.read), seed=noise_seed(index, noise),
                       noise_profile=noise_profile, exif=EXIF)
