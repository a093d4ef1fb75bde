"""White balance of a RAW frame: the gains that make a neutral surface neutral in camera RGB.

The default, "camera", is the file's as-shot multipliers (LibRaw's ``use_camera_wb``). A file
without them often still carries the camera's own JPEG (a Canon EOS D30 CRW shot on Auto: LibRaw
flags the multipliers unknown, ``cam_mul[0] == -1``, but the file holds the JPEG the camera made):
then the gains are fitted that make the developed mid-tones match that JPEG's
(:func:`camera_jpeg_balance`), the balance the camera chose. Without a JPEG that fits, LibRaw's
auto white balance when the camera recorded Auto, else the camera's daylight multipliers; unity
gains as the last resort. "auto" is always LibRaw's auto white balance (a grey-world average over
8x8 blocks without clipped pixels), "daylight" the camera's daylight multipliers, and three
numbers are the user's R, G, B gains.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import rawpy

from rawisp.colour import srgb_decode, srgb_encode, tone_curve

WB_MODES = ("camera", "auto", "daylight")
WhiteBalanceChoice = str | tuple[float, float, float]
"""One of WB_MODES, or (R, G, B) gains."""

BayerFrame = tuple[np.ndarray, str, np.ndarray, float]
"""(mosaic (H, W) DN, CFA "RGGB"..., black (2, 2) DN per site, white DN) of a decoded Bayer frame."""


@dataclass(frozen=True)
class WhiteBalance:
    """Gains (R, G, B) with G = 1, applied to camera RGB, and where they came from:
    "as-shot", "camera JPEG", "LibRaw auto", "daylight", "user" or "unity"."""

    gains: np.ndarray
    source: str


def parse_wb(text: str) -> WhiteBalanceChoice:
    """"camera", "auto", "daylight" or "R,G,B" (three positive numbers) -> a WhiteBalanceChoice;
    ValueError otherwise."""
    if text in WB_MODES:
        return text
    parts = text.split(",")
    try:
        gains = tuple(float(p) for p in parts)
    except ValueError:
        gains = ()
    if len(gains) != 3 or not all(np.isfinite(g) and g > 0 for g in gains):
        raise ValueError(f"white balance must be one of {', '.join(WB_MODES)} or three positive gains R,G,B; "
                         f"got {text!r}")
    return gains


def white_balance(raw: rawpy.RawPy, choice: WhiteBalanceChoice = "camera", frame: BayerFrame | None = None,
                  srgb_from_cam: np.ndarray | None = None) -> tuple[WhiteBalance, list[str]]:
    """The white balance `choice` for an open rawpy.RawPy, and warnings (one line each) when the
    file cannot give what was asked and another source was used. ``frame`` (a Bayer frame) and
    ``srgb_from_cam`` (its colour matrix) let a file without as-shot multipliers take the balance
    of the camera's JPEG it carries."""
    if not isinstance(choice, str):
        return WhiteBalance(_normalised(np.asarray(choice, dtype=np.float64)), "user"), []
    if choice == "auto":
        return WhiteBalance(libraw_auto(raw), "LibRaw auto"), []
    if choice == "daylight":
        daylight = _usable(raw.daylight_whitebalance)
        if daylight is not None:
            return WhiteBalance(daylight, "daylight"), []
        return WhiteBalance(np.ones(3), "unity"), ["no daylight white balance for this camera; using unity gains"]
    if choice != "camera":
        raise ValueError(f"unknown white balance {choice!r}")
    as_shot = _usable(raw.camera_whitebalance)
    if as_shot is not None:
        return WhiteBalance(as_shot, "as-shot"), []
    recorded_auto = raw.camera_whitebalance[0] == -1  # LibRaw's flag: the camera's own auto, not recorded
    none = "no as-shot white balance (the camera recorded Auto)" if recorded_auto else "no as-shot white balance"
    fitted, why = (None, "") if frame is None or srgb_from_cam is None else camera_jpeg_balance(
        raw, frame, srgb_from_cam)
    if fitted is not None:
        return WhiteBalance(fitted, "camera JPEG"), [f"{none}; using the balance of the camera's JPEG in the file"]
    why = f" ({why})" if why else ""
    if recorded_auto:
        return WhiteBalance(libraw_auto(raw), "LibRaw auto"), [f"{none}; using LibRaw's auto white balance{why}"]
    daylight = _usable(raw.daylight_whitebalance)
    if daylight is not None:
        return WhiteBalance(daylight, "daylight"), [f"{none}; using the camera's daylight{why}"]
    return WhiteBalance(np.ones(3), "unity"), [f"no white balance in the file; using unity gains{why}"]


def white_balance_gains(wb: np.ndarray) -> np.ndarray:
    """The (R, G, B) gains normalisation applies: the as-shot ``wb`` scaled so the smallest is 1."""
    return np.asarray(wb, np.float64) / np.min(wb)


def libraw_auto(raw: rawpy.RawPy) -> np.ndarray:
    """LibRaw's auto white balance gains (R, G, B), G = 1.

    LibRaw computes it inside its processing; a half-size run (no demosaic) gives the same
    multipliers as a full one and costs about a third (0.26 s for 3 MP). Afterwards LibRaw
    reports the half-size frame (pattern, visible mosaic): read the Bayer frame before this.
    """
    raw.postprocess(use_auto_wb=True, half_size=True, no_auto_bright=True, output_bps=8, user_flip=0)
    pre_mul = np.asarray(raw.auto_whitebalance[:3], dtype=np.float64)
    return _normalised(pre_mul)


def _usable(values) -> np.ndarray | None:
    """Gains normalised to G = 1 when all three are positive, finite and not all equal (a
    placeholder), else None."""
    gains = np.asarray(values[:3], dtype=np.float64)
    if np.all(np.isfinite(gains)) and np.all(gains > 0) and not np.allclose(gains, gains[1]):
        return gains / gains[1]
    return None


def _normalised(gains: np.ndarray) -> np.ndarray:
    return gains / gains[1]


# --- the balance of the camera's JPEG --------------------------------------------------------------

GRID_ROWS = 48  # rows of the grid of blocks the frame and the JPEG are compared on
MID_TONES = (40 / 255, 215 / 255)  # sRGB-encoded brightness of the JPEG's blocks that are fitted
MIN_BLOCKS = 0.05  # share of the grid that must be fitted mid-tones
MIN_CORRELATION = 0.9  # of the blocks' log brightness, JPEG against the frame: one picture, one framing
CLIPPED = 0.97  # share of the range from black to white above which a raw value counts as clipped
MAX_FROM_DAYLIGHT = 4.0  # a fitted gain further than this factor from the camera's daylight one is refused


def camera_jpeg_balance(raw: rawpy.RawPy, frame: BayerFrame, srgb_from_cam: np.ndarray) -> tuple[np.ndarray | None, str]:
    """The white-balance gains (R, G, B), G = 1, under which rawisp's rendering of ``frame`` has the
    mid-tone colour of the camera's JPEG embedded in the file (LibRaw's thumbnail); (None, why not)
    when it has none, or one that fails a check ("" when there is no JPEG at all).

    The JPEG is decoded from sRGB to linear light; the frame is taken at half size (one RGB pixel a
    2x2 site, black-subtracted, 1.0 = white); both are averaged over one grid of blocks
    (:data:`GRID_ROWS` rows, sizes matched whatever the JPEG's resolution). Fitted are the blocks the
    JPEG shows as mid-tones (:data:`MID_TONES`, no clipped JPEG pixel) where the sensor clipped
    nothing and recorded light. The gains are solved in closed form through the colour matrix
    (mean linear sRGB of the fitted blocks proportional to the JPEG's), then corrected three times
    through rawisp's own rendering (tone curve included) until the rendered mid-tones' R/G and B/G
    are the JPEG's. Checks: a JPEG of at least 64 pixels a side, of the frame's aspect ratio (or
    turned by 90 degrees), not monochrome; enough fitted blocks (:data:`MIN_BLOCKS`); the blocks'
    brightness correlated with the frame's (:data:`MIN_CORRELATION`: the same picture); gains
    positive and within a factor :data:`MAX_FROM_DAYLIGHT` of the camera's daylight ones.
    """
    jpeg = _embedded_jpeg(raw)
    if jpeg is None:
        return None, ""
    if min(jpeg.shape[:2]) < 64:
        return None, "the camera's JPEG in the file is too small to fit"
    camera = _half_size(*frame)
    aspect = jpeg.shape[1] / jpeg.shape[0]
    turns = [0] if abs(camera.shape[1] / camera.shape[0] / aspect - 1) < 0.05 else \
        [1, 3] if abs(camera.shape[0] / camera.shape[1] / aspect - 1) < 0.05 else []
    if not turns:
        return None, "the camera's JPEG in the file is framed otherwise"
    rows = GRID_ROWS
    cols = max(1, round(rows * aspect))
    encoded = jpeg / 255.0
    target = _blocks(srgb_decode(encoded), rows, cols)
    brightness = _blocks(encoded, rows, cols).mean(axis=2)
    clipped = _blocks((jpeg.max(axis=2) >= 250).astype(np.float64), rows, cols) > 0
    chroma = np.ptp(target, axis=2) / np.maximum(target.mean(axis=2), 1e-6)
    if np.median(chroma) < 0.02:
        return None, "the camera's JPEG in the file is monochrome"
    best = None
    for turn in turns:
        blocks = _blocks(np.rot90(camera, turn), rows, cols)
        fit = (brightness > MID_TONES[0]) & (brightness < MID_TONES[1]) & ~clipped & (blocks[..., 3] == 0) \
            & (blocks[..., :3].min(axis=2) > 1e-3)
        if fit.mean() < MIN_BLOCKS:
            continue
        correlation = np.corrcoef(np.log(blocks[..., :3][fit].mean(axis=1)), np.log(target[fit].mean(axis=1)))[0, 1]
        if best is None or correlation > best[0]:
            best = (correlation, blocks[..., :3][fit], target[fit])
    if best is None:
        return None, "too few mid-tones in the camera's JPEG in the file"
    correlation, camera_rgb, jpeg_rgb = best
    if not correlation >= MIN_CORRELATION:
        return None, "the camera's JPEG in the file does not match the picture"
    gains = _fit_gains(camera_rgb, jpeg_rgb, np.asarray(srgb_from_cam, np.float64))
    daylight = _usable(raw.daylight_whitebalance)
    reference = daylight if daylight is not None else np.ones(3)
    if not (np.all(np.isfinite(gains)) and np.all(gains > 0)
            and np.all(np.abs(np.log(gains / reference)) <= np.log(MAX_FROM_DAYLIGHT))):
        return None, "the balance fitted to the camera's JPEG in the file is implausible"
    return gains, ""


def _fit_gains(camera: np.ndarray, target: np.ndarray, srgb_from_cam: np.ndarray) -> np.ndarray:
    """Gains (G = 1) making the rendered mean of ``camera`` (N, 3 camera RGB) have the R/G and B/G
    of ``target`` (N, 3 linear sRGB)."""
    mean_camera, mean_target = camera.mean(axis=0), target.mean(axis=0)
    want = mean_target / mean_target[1]
    with np.errstate(all="ignore"):
        gains = np.linalg.solve(srgb_from_cam, mean_target) / mean_camera
        for _ in range(3):  # through the tone curve, which changes the ratios a little
            # rawisp's default rendering at exposure 0: matrix, sRGB encoding, tone curve
            scaled = (camera * (gains / np.min(gains))) @ srgb_from_cam.T
            rendered = srgb_decode(tone_curve(srgb_encode(scaled))).mean(axis=0)
            correction = want / (rendered / rendered[1])
            gains = np.linalg.solve(srgb_from_cam, srgb_from_cam @ (gains * mean_camera) * correction) / mean_camera
    return gains / gains[1]


def _embedded_jpeg(raw: rawpy.RawPy) -> np.ndarray | None:
    """The camera's JPEG in the file (LibRaw's thumbnail when it is a JPEG), as stored (not turned),
    (H, W, 3) uint8; None when there is none that decodes."""
    from PIL import Image

    try:
        thumb = raw.extract_thumb()
        if thumb.format != rawpy.ThumbFormat.JPEG:
            return None
        with Image.open(io.BytesIO(thumb.data)) as image:
            return np.asarray(image.convert("RGB"))
    except (rawpy.LibRawError, OSError, ValueError):
        return None


def _half_size(mosaic: np.ndarray, cfa: str, black: np.ndarray, white: float) -> np.ndarray:
    """(H/2, W/2, 4): camera R, G (mean of both), B of each 2x2 site, black-subtracted and 1.0 =
    white, and 1 where a value of the site is clipped (:data:`CLIPPED`), else 0."""
    h, w = mosaic.shape[0] // 2 * 2, mosaic.shape[1] // 2 * 2
    out = np.zeros((h // 2, w // 2, 4), np.float64)
    for site, colour in enumerate(cfa):
        dy, dx = divmod(site, 2)
        plane = mosaic[dy:h:2, dx:w:2]
        channel = "RGB".index(colour)
        out[..., channel] += (plane - black[dy, dx]) / (white - black[dy, dx]) / (2 if colour == "G" else 1)
        out[..., 3] = np.maximum(out[..., 3], plane >= black[dy, dx] + CLIPPED * (white - black[dy, dx]))
    return out


def _blocks(image: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Means of ``image`` (H, W) or (H, W, C) over a grid of rows x cols blocks of (nearly) equal size."""
    ys = np.linspace(0, image.shape[0], rows + 1).astype(int)
    xs = np.linspace(0, image.shape[1], cols + 1).astype(int)
    sums = np.add.reduceat(np.add.reduceat(image.astype(np.float64), ys[:-1], axis=0), xs[:-1], axis=1)
    areas = np.diff(ys)[:, None] * np.diff(xs)[None, :]
    return sums / (areas if image.ndim == 2 else areas[..., None])
