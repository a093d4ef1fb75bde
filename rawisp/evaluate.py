"""Quality evaluation on synthetic RAW: ground-truth sRGB -> DNG -> develop -> PSNR / SSIM / CIEDE2000.

The protocol, per ground-truth image and noise level (see :func:`rawisp.synth.srgb_to_dng`):
linearise the sRGB values, map them to camera RGB with a fixed matrix (the identity by default,
camera RGB = linear sRGB, as the published reference figures are measured; or a realistic camera
matrix, ``camera="synthetic"``, DEFAULT_CAM_FROM_SRGB), multiply by the as-shot neutral (undoing
the white balance), mosaic through the CFA, add noise of variance ``shot * x + read**2``
(normalised raw units, seeded per image index and noise level) and write a real 12-bit DNG (black
256, white 4095) with a NoiseProfile stating that noise (for the clean level, its 1-DN rounding),
as a camera's DNG does; ``noise_profile=False`` leaves it out, so the learned engine estimates the
noise from the pixels as it must for vendor RAW files. The DNG is decoded and developed exactly as
``rawisp develop`` does (decode -> normalise -> reconstruct -> render, here with the linear tone
and 8-bit output, the look closest to the ground truth), and the 8-bit sRGB result is scored
against the ground truth over the image less a border.

LibRaw's own demosaic algorithms (``libraw-ahd``, ``libraw-dht``, ...) are reference rows: the same
DNG developed by rawpy's postprocess with the as-shot white balance, sRGB output, no brightening and
no rescaling to the data maximum. ``oracle`` is an engine that returns the noise-free ground-truth
camera RGB: its row measures the harness itself (render quantisation), not a demosaicker.
"""

from __future__ import annotations

import csv
import io
import json
import math
import multiprocessing
import tempfile
import zlib
from contextlib import contextmanager
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image

from rawisp import __version__
from rawisp.decode import decode
from rawisp.develop import RenderOptions, render_picture
from rawisp.normalise import normalise
from rawisp.reconstruct import Engine, EngineOptions, make_engine, reconstruct
from rawisp.synth import DEFAULT_CAM_FROM_SRGB, SRGB_TO_XYZ, srgb_to_dng, srgb_to_linear

NOISE_PRESETS: dict[str, tuple[float, float]] = {
    "clean": (0.0, 0.0),
    "mid": (1e-3, 5e-4),
    "high": (6e-3, 2e-3),
}
"""(shot, read) per preset: noise variance = shot * x + read**2, x in normalised raw units."""

IMAGE_SUFFIXES = {".png", ".tif", ".tiff", ".jpg", ".jpeg"}
BORDER = 10
CFAS = ("RGGB", "BGGR", "GRBG", "GBRG")
# the camera model of the protocol (srgb_to_dng's defaults, written out so reports can state them)
BLACK, WHITE = 256, 4095
NEUTRAL = (0.55, 1.0, 0.75)
CAMERAS = {"identity": np.eye(3), "synthetic": DEFAULT_CAM_FROM_SRGB}
"""Camera matrices (linear sRGB -> camera RGB) the protocol can use. "identity" is the default: it is
how the published reference figures (bilinear 29.86, LibRaw DHT 35.41 dB clean...) were measured;
"synthetic" (DEFAULT_CAM_FROM_SRGB) adds a realistic camera matrix, whose inverse amplifies errors."""
RENDER = RenderOptions(fmt="png", tone="linear")  # 8-bit sRGB, plain sRGB encoding
LIBRAW_GAMMA = (2.4, 12.92)  # sRGB's power and toe slope

METRICS = ("psnr", "ssim", "delta_e00")
COLUMNS = ("noise", "shot", "read", "engine", "image", "psnr", "ssim", "delta_e00")
DIGITS = {"shot": 8, "read": 8, "psnr": 4, "ssim": 6, "delta_e00": 4}


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


class EvalError(Exception):
    """The evaluation cannot run; the message is the reason, for one line of output."""


# --------------------------------------------------------------------------------------------- noise


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


# ------------------------------------------------------------------------------------------- metrics


def _as_float(img: np.ndarray) -> np.ndarray:
    """uint8 / uint16 / float [0, 1] image -> float64 in 8-bit units [0, 255]."""
    img = np.asarray(img)
    if img.dtype == np.uint8:
        return img.astype(np.float64)
    if img.dtype == np.uint16:
        return img * (255.0 / 65535.0)
    return img.astype(np.float64) * 255.0


def _crop(img: np.ndarray, border: int) -> np.ndarray:
    if border <= 0:
        return img
    if img.shape[0] <= 2 * border or img.shape[1] <= 2 * border:
        raise ValueError(f"image {img.shape[1]}x{img.shape[0]} is too small for a {border}-pixel border")
    return img[border:-border, border:-border]


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} and {b.shape}")


def psnr(a: np.ndarray, b: np.ndarray, border: int = BORDER) -> float:
    """Colour PSNR in dB (peak 255, MSE over all channels) of the image less ``border`` pixels.

    Images are uint8, uint16 (scaled to 8-bit units) or float in [0, 1]; identical images give inf.
    """
    _check_pair(a, b)
    diff = _crop(_as_float(a), border) - _crop(_as_float(b), border)
    mse = float(np.mean(diff * diff))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  # Gaussian window of 11 x 11 pixels
SSIM_K1, SSIM_K2 = 0.01, 0.03


def ssim(a: np.ndarray, b: np.ndarray, border: int = BORDER) -> float:
    """Mean SSIM (Wang et al. 2004) over channels of the image less ``border`` pixels.

    Gaussian window sigma 1.5 (11 x 11), K1 = 0.01, K2 = 0.03, dynamic range 255 (8-bit units),
    no sample-covariance correction; the mean is over windows lying wholly inside the region
    (as scikit-image's ``structural_similarity(gaussian_weights=True, use_sample_covariance=False)``).
    """
    _check_pair(a, b)
    x, y = _crop(_as_float(a), border), _crop(_as_float(b), border)
    if x.ndim == 2:
        x, y = x[..., None], y[..., None]
    c1, c2 = (SSIM_K1 * 255.0) ** 2, (SSIM_K2 * 255.0) ** 2
    radius = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)
    if min(x.shape[:2]) <= 2 * radius:
        raise ValueError(f"image region {x.shape[1]}x{x.shape[0]} is too small for the SSIM window")
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / SSIM_SIGMA) ** 2)
    taps /= taps.sum()

    def window_mean(v: np.ndarray) -> np.ndarray:
        """Gaussian-weighted mean of every whole window (separable, 'valid': no padding)."""
        rows = sum(t * v[i:v.shape[0] - 2 * radius + i] for i, t in enumerate(taps))
        return sum(t * rows[:, i:v.shape[1] - 2 * radius + i] for i, t in enumerate(taps))

    scores = []
    for ch in range(x.shape[2]):
        xc, yc = x[..., ch], y[..., ch]
        mx, my = window_mean(xc), window_mean(yc)
        vx = window_mean(xc * xc) - mx * mx
        vy = window_mean(yc * yc) - my * my
        cov = window_mean(xc * yc) - mx * my
        smap = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
        scores.append(smap.mean())
    return float(np.mean(scores))


_XYZ_WHITE = SRGB_TO_XYZ.sum(axis=1)  # D65 white of sRGB, Y = 1


def srgb_to_lab(img: np.ndarray) -> np.ndarray:
    """sRGB image (uint8 / uint16 / float [0, 1]) -> CIELAB (D65 white), float64 (..., 3)."""
    xyz = srgb_to_linear(_as_float(img) / 255.0) @ SRGB_TO_XYZ.T
    t = xyz / _XYZ_WHITE
    delta = 6.0 / 29.0
    f = np.where(t > delta**3, np.cbrt(t), t / (3 * delta**2) + 4.0 / 29.0)
    return np.stack([116.0 * f[..., 1] - 16.0, 500.0 * (f[..., 0] - f[..., 1]), 200.0 * (f[..., 1] - f[..., 2])],
                    axis=-1)


def ciede2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 colour difference (kL = kC = kH = 1) of CIELAB arrays ``(..., 3)``.

    Follows Sharma, Wu & Dalal (2005), "The CIEDE2000 color-difference formula: implementation
    notes, supplementary test data, and mathematical observations", equations (1)-(17).
    """
    lab1, lab2 = np.asarray(lab1, np.float64), np.asarray(lab2, np.float64)
    l1, a1, b1 = lab1[..., 0], lab1[..., 1], lab1[..., 2]
    l2, a2, b2 = lab2[..., 0], lab2[..., 1], lab2[..., 2]
    c_mean = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    c7 = c_mean**7
    g = 0.5 * (1 - np.sqrt(c7 / (c7 + 25.0**7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360.0  # atan2(0, 0) = 0, as the paper asks
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360.0

    chroma_product = c1p * c2p
    achromatic = chroma_product == 0
    dlp = l2 - l1
    dcp = c2p - c1p
    dh = h2p - h1p
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(achromatic, 0.0, dh)
    dhp = 2 * np.sqrt(chroma_product) * np.sin(np.radians(dh) / 2)

    lp_mean = (l1 + l2) / 2
    cp_mean = (c1p + c2p) / 2
    h_sum = h1p + h2p
    hp_mean = np.where(np.abs(h1p - h2p) <= 180, h_sum / 2,
                       np.where(h_sum < 360, (h_sum + 360) / 2, (h_sum - 360) / 2))
    hp_mean = np.where(achromatic, h_sum, hp_mean)

    t = (1 - 0.17 * np.cos(np.radians(hp_mean - 30)) + 0.24 * np.cos(np.radians(2 * hp_mean))
         + 0.32 * np.cos(np.radians(3 * hp_mean + 6)) - 0.20 * np.cos(np.radians(4 * hp_mean - 63)))
    d_theta = 30 * np.exp(-(((hp_mean - 275) / 25) ** 2))
    cp7 = cp_mean**7
    r_c = 2 * np.sqrt(cp7 / (cp7 + 25.0**7))
    l50 = (lp_mean - 50) ** 2
    s_l = 1 + 0.015 * l50 / np.sqrt(20 + l50)
    s_c = 1 + 0.045 * cp_mean
    s_h = 1 + 0.015 * cp_mean * t
    r_t = -np.sin(np.radians(2 * d_theta)) * r_c
    tl, tc, th = dlp / s_l, dcp / s_c, dhp / s_h
    return np.sqrt(np.maximum(tl * tl + tc * tc + th * th + r_t * tc * th, 0.0))


def mean_delta_e00(a: np.ndarray, b: np.ndarray, border: int = BORDER) -> float:
    """Mean CIEDE2000 between two sRGB images over the image less ``border`` pixels."""
    _check_pair(a, b)
    return float(ciede2000(srgb_to_lab(_crop(np.asarray(a), border)), srgb_to_lab(_crop(np.asarray(b), border))).mean())


def score(output: np.ndarray, truth: np.ndarray, border: int = BORDER) -> dict[str, float]:
    """PSNR, SSIM and mean CIEDE2000 of a developed picture against its ground truth."""
    return {"psnr": psnr(output, truth, border), "ssim": ssim(output, truth, border),
            "delta_e00": mean_delta_e00(output, truth, border)}


# ------------------------------------------------------------------------------------------ engines


class Oracle:
    """The identity engine: returns the noise-free ground-truth camera RGB of the current image.

    The harness sets ``truth`` (what :func:`rawisp.synth.srgb_to_dng` returned) before each
    development, so its row measures the harness (rendering, quantisation), not a demosaicker.
    """

    name = "oracle"

    def __init__(self, truth: np.ndarray | None = None) -> None:
        self.truth = truth

    def __call__(self, packed) -> np.ndarray:
        if self.truth is None:
            raise RuntimeError("the oracle engine has no ground truth")
        return self.truth


def _openmp_of_rawpy():
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
def _one_openmp_thread():
    """Run LibRaw's OpenMP loops on one thread: its DHT demosaic is not deterministic on several
    (a race: a few dozen pixels change from run to run), and reruns must give the same numbers."""
    lib = _openmp_of_rawpy()
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

    def develop(self, path: Path) -> np.ndarray:
        """Upright 8-bit sRGB of the DNG: as-shot WB, no auto-brightening, white level kept."""
        import rawpy

        with rawpy.imread(str(path)) as raw, _one_openmp_thread():
            return raw.postprocess(demosaic_algorithm=self.algorithm, use_camera_wb=True,
                                   output_color=rawpy.ColorSpace.sRGB, no_auto_bright=True,
                                   adjust_maximum_thr=0.0, gamma=LIBRAW_GAMMA, output_bps=8)


@dataclass(frozen=True)
class EngineSpec:
    """How to build one row's engine, by name, in whichever process runs it (picklable)."""

    label: str
    name: str  # "learned", "classical", "oracle" or a libraw-* name
    options: EngineOptions = field(default_factory=EngineOptions)

    def build(self) -> Engine | LibRawReference:
        if self.name in LIBRAW_ENGINES:
            return LibRawReference(self.name)
        if self.name == "oracle":
            return Oracle()
        return make_engine(self.name, self.options)


ENGINE_NAMES = ("learned", "classical", "oracle", *LIBRAW_ENGINES)

EngineLike = str | EngineSpec | Engine


def _spec(item: EngineLike) -> EngineSpec | Engine:
    if isinstance(item, str):
        if item not in ENGINE_NAMES:
            raise EvalError(f"unknown engine {item!r}; choose from {', '.join(ENGINE_NAMES)}")
        return EngineSpec(item, item)
    return item


def _label(item: EngineSpec | Engine) -> str:
    return item.label if isinstance(item, EngineSpec) else item.name


def develop_dng(path: Path, engine: Engine | LibRawReference) -> np.ndarray:
    """Develop a DNG into upright 8-bit sRGB as ``rawisp develop`` does (linear tone, no file)."""
    if isinstance(engine, LibRawReference):
        return engine.develop(path)
    raw = decode(path)
    packed = normalise(raw) if raw.mosaic is not None else None
    rgb = reconstruct(raw, engine, packed)
    del packed
    return render_picture(raw, rgb, RENDER)


# ---------------------------------------------------------------------------------------- the runs


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


@dataclass
class Task:
    """One ground-truth image at one noise level, developed by every engine (picklable)."""

    index: int
    image: Path
    noise: Noise
    engines: list[EngineSpec | Engine]
    dng_dir: Path
    cfa: str
    border: int
    camera: str = "identity"
    keep_dng: bool = True
    noise_profile: bool = True


_BUILT: dict[str, Engine | LibRawReference] = {}  # engines built in this process, by repr(spec)


def _engine(item: EngineSpec | Engine) -> Engine | LibRawReference:
    if not isinstance(item, EngineSpec):
        return item
    key = repr(item)
    if key not in _BUILT:
        _BUILT[key] = item.build()
    return _BUILT[key]


def run_task(task: Task) -> list[dict]:
    """Synthesise the DNG of one image and noise level, develop it with each engine, score it."""
    truth_srgb = load_image(task.image)
    if min(truth_srgb.shape[:2]) <= 2 * task.border + 12:
        raise EvalError(f"{task.image}: {truth_srgb.shape[1]}x{truth_srgb.shape[0]} is too small "
                        f"for a {task.border}-pixel border")
    noise = task.noise
    dng = task.dng_dir / f"{task.index:03d}_{task.image.stem}_{noise.label.replace(':', '_')}.dng"
    truth_cam = srgb_to_dng(dng, truth_srgb, cfa=task.cfa, black=BLACK, white=WHITE,
                            cam_from_srgb=CAMERAS[task.camera], neutral=NEUTRAL,
                            noise=(noise.shot, noise.read), seed=noise_seed(task.index, noise),
                            noise_profile=task.noise_profile)
    rows = []
    for item in task.engines:
        engine = _engine(item)
        if isinstance(engine, Oracle):
            engine.truth = truth_cam
        try:
            pixels = develop_dng(dng, engine)
        except Exception as exc:  # one line naming the image, noise level and engine, not a traceback
            raise EvalError(f"{task.image} ({noise.label}): engine {_label(item)} failed: {exc}") from exc
        finally:
            if isinstance(engine, Oracle):
                engine.truth = None
        if pixels.shape != truth_srgb.shape:
            raise EvalError(f"{task.image}: engine {_label(item)} gave {pixels.shape[1]}x{pixels.shape[0]} "
                            f"pixels for a {truth_srgb.shape[1]}x{truth_srgb.shape[0]} image")
        rows.append({"noise": noise.label, "shot": noise.shot, "read": noise.read, "engine": _label(item),
                     "image": task.image.name, **score(pixels, truth_srgb, task.border)})
    if not task.keep_dng:
        dng.unlink()
    return rows


def evaluate(images: Sequence[Path], engines: Sequence[EngineLike], noises: Sequence[Noise], *,
             cfa: str = "RGGB", border: int = BORDER, camera: str = "identity", keep: Path | None = None,
             jobs: int = 1, progress: bool = False, noise_profile: bool = True) -> list[dict]:
    """Score every engine on every image at every noise level; one row per (noise, engine, image).

    ``engines``: names (see ENGINE_NAMES), EngineSpecs, or Engine objects (an :class:`Oracle` gets
    each image's ground truth). With ``jobs`` > 1 the (image, noise) tasks run in worker processes,
    which need picklable engines (names and EngineSpecs always are). ``camera`` names the camera
    matrix (see CAMERAS); ``noise_profile`` whether the DNGs carry one. DNGs are written to a
    temporary folder, or to ``keep``.
    """
    from tqdm import tqdm

    if cfa not in CFAS:
        raise EvalError(f"unknown CFA {cfa!r}; choose from {', '.join(CFAS)}")
    if camera not in CAMERAS:
        raise EvalError(f"unknown camera matrix {camera!r}; choose from {', '.join(CAMERAS)}")
    specs = [_spec(e) for e in engines]
    labels = [_label(s) for s in specs]
    if not specs:
        raise EvalError("no engine given")
    if len(set(labels)) != len(labels):
        raise EvalError(f"an engine is given twice: {', '.join(labels)}")
    if not images:
        raise EvalError("no ground-truth images")
    for spec in specs:  # fail fast on an engine that cannot be built (missing model, ...)
        try:
            _engine(spec)
        except EvalError:
            raise
        except Exception as exc:
            raise EvalError(f"engine {_label(spec)} cannot be built: {exc}") from None

    with tempfile.TemporaryDirectory(prefix="rawisp-eval-") as tmp:
        dng_dir = Path(keep) if keep is not None else Path(tmp)
        try:
            dng_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EvalError(f"{dng_dir}: cannot make the DNG folder ({exc.strerror or exc})") from None
        tasks = [Task(i, Path(image), noise, specs, dng_dir, cfa, border, camera, keep is not None,
                      noise_profile)
                 for noise in noises for i, image in enumerate(images)]
        bar = tqdm(total=len(tasks), desc="rawisp eval", unit="image", disable=not progress, dynamic_ncols=True)
        results: list[list[dict]] = []
        try:
            if jobs > 1 and len(tasks) > 1:
                # forkserver: workers do not inherit the parent's onnxruntime / OpenMP threads
                context = multiprocessing.get_context("forkserver")
                with ProcessPoolExecutor(max_workers=min(jobs, len(tasks)), mp_context=context) as pool:
                    for rows in pool.map(run_task, tasks):
                        results.append(rows)
                        bar.update()
            else:
                for task in tasks:
                    results.append(run_task(task))
                    bar.update()
        finally:
            bar.close()
    # order: noise level, engine, image
    flat = [row for rows in results for row in rows]
    order = {label: k for k, label in enumerate(labels)}
    noise_order = {n.label: k for k, n in enumerate(noises)}
    return sorted(flat, key=lambda r: (noise_order[r["noise"]], order[r["engine"]]))


def summarise(rows: Iterable[dict]) -> list[dict]:
    """Mean of each metric over images, per (noise, engine), in first-seen order; image = "mean"."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["noise"], row["engine"]), []).append(row)
    means = []
    for (noise, engine), group in groups.items():
        mean = {"noise": noise, "shot": group[0]["shot"], "read": group[0]["read"], "engine": engine,
                "image": "mean", "images": len(group)}
        for metric in METRICS:
            mean[metric] = float(np.mean([r[metric] for r in group]))
        means.append(mean)
    return means


# ------------------------------------------------------------------------------------------- output


def _rounded(row: dict) -> dict:
    out = {}
    for key in COLUMNS:
        value = row[key]
        if key in DIGITS and isinstance(value, float) and math.isfinite(value):
            value = round(value, DIGITS[key])
        out[key] = value
    return out


def report_rows(rows: list[dict], per_image: bool) -> list[dict]:
    """What a report holds: per noise level, the means, then (``per_image``) every image's row."""
    means = summarise(rows)
    if not per_image:
        return means
    out = []
    for mean in means:
        out.append(mean)
        out += [r for r in rows if r["noise"] == mean["noise"] and r["engine"] == mean["engine"]]
    return out


def format_table(rows: list[dict], per_image: bool = False) -> str:
    """Plain-text tables, one per noise level: engine (and image), PSNR, SSIM, mean CIEDE2000."""
    lines: list[str] = []
    shown = report_rows(rows, per_image)
    width = max([len(r["engine"]) for r in shown] + [6])
    iwidth = max([len(r["image"]) for r in shown] + [5]) if per_image else 0
    for noise in dict.fromkeys(r["noise"] for r in shown):
        group = [r for r in shown if r["noise"] == noise]
        count = next(r["images"] for r in group if r["image"] == "mean")
        lines.append(f"noise {noise} (shot {group[0]['shot']:g}, read {group[0]['read']:g}), "
                     f"mean over {count} image{'s' * (count != 1)}")
        head = f"  {'engine':<{width}}" + (f"  {'image':<{iwidth}}" if per_image else "")
        lines.append(head + f"  {'PSNR dB':>8}  {'SSIM':>7}  {'dE00':>6}")
        for r in group:
            line = f"  {r['engine']:<{width}}" + (f"  {r['image']:<{iwidth}}" if per_image else "")
            lines.append(line + f"  {r['psnr']:8.2f}  {r['ssim']:7.4f}  {r['delta_e00']:6.3f}")
        lines.append("")
    return "\n".join(lines)


def protocol(noises: Sequence[Noise], cfa: str, border: int, camera: str = "identity",
             noise_profile: bool = True) -> dict:
    """The settings a report's numbers depend on."""
    return {
        "cfa": cfa, "black": BLACK, "white": WHITE, "neutral": list(NEUTRAL),
        "camera": camera, "cam_from_srgb": CAMERAS[camera].tolist(), "border": border,
        "noise": [{"label": n.label, "shot": n.shot, "read": n.read} for n in noises],
        "seed": "crc32('rawisp-eval/<image index>/<noise label>')",
        "noise_profile": "in the DNG (clean: 1-DN rounding)" if noise_profile else "none: estimated from the pixels",
        "render": "tone linear, 8-bit sRGB (rawisp render, +-0.5 LSB dither)",
        "libraw": "postprocess: as-shot WB, sRGB, no_auto_bright, adjust_maximum_thr=0, gamma (2.4, 12.92), 8-bit, "
                  "one OpenMP thread",
    }


def write_report(path: Path, rows: list[dict], per_image: bool, noises: Sequence[Noise], cfa: str,
                 border: int, camera: str = "identity", noise_profile: bool = True) -> None:
    """Write the report as CSV or JSON, chosen by the suffix of ``path``."""
    path = Path(path)
    shown = [_rounded(r) for r in report_rows(rows, per_image)]
    suffix = path.suffix.lower()
    if suffix == ".csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(shown)
        text = buffer.getvalue()
    elif suffix == ".json":
        for row in shown:  # JSON has no infinity: PSNR of identical pictures is written as null
            row.update({k: None for k, v in row.items() if isinstance(v, float) and not math.isfinite(v)})
        settings = protocol(noises, cfa, border, camera, noise_profile)
        text = json.dumps({"rawisp": __version__, "protocol": settings, "rows": shown}, indent=1) + "\n"
    else:
        raise EvalError(f"{path}: the report must be .csv or .json")
    try:
        path.write_text(text)
    except OSError as exc:
        raise EvalError(f"{path}: cannot write the report ({exc.strerror or exc})") from None


def check_report_path(path: Path) -> None:
    """Refuse a report path with the wrong suffix or a missing folder before any work starts."""
    path = Path(path)
    if path.suffix.lower() not in (".csv", ".json"):
        raise EvalError(f"{path}: the report must be .csv or .json")
    if not path.parent.is_dir():
        raise EvalError(f"{path}: no such folder {path.parent}")


def engine_specs(names: Sequence[str], models: Sequence[str], options: EngineOptions) -> list[EngineSpec]:
    """CLI engines: each name, then the learned engine once per model (labelled learned:<file>)."""
    specs = []
    for name in names:
        if name not in ENGINE_NAMES:
            raise EvalError(f"unknown engine {name!r}; choose from {', '.join(ENGINE_NAMES)}")
        specs.append(EngineSpec(name, name, options))
    for model in models:
        specs.append(EngineSpec(f"learned:{Path(model).name}", "learned", replace(options, model=str(model))))
    return specs
