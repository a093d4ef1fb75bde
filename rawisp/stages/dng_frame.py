"""The render stage of ``--format dng``: the engine's output as the frame a DNG stores, and the
DNG's thumbnail.

Instead of a look, a DNG keeps the data a RAW editor develops itself. A Bayer source gets a
**Bayer DNG** (:func:`bayer_frame`): the engine's output sampled at the source's CFA sites, white
balance taken out, back in the sensor's DN, with the noise left in it measured
(:func:`residual_noise`); anything else, or ``--format linear-dng``, a **linear DNG**
(:func:`camera_frame`: camera RGB before white balance). IFD0 carries a small sRGB rendering
(:func:`thumbnail`). :func:`rawisp.io.dng.write_dng` writes them.

How the denoised mosaic is made, per site (normalised units, 0 = black, 1 = white, before white
balance): the engine's value is its estimate of the clean signal, the source's is the clean signal
plus noise of the frame's known variance ``shot * x + read**2`` (:class:`DngNoise`). The DNG takes
the source less the correction the engine makes, that correction bounded to :data:`BOUND` standard
deviations of the noise the engine was told: what the engine changes beyond what noise can explain
is the network's own error (at edges, in fine texture), not noise, and is not written into the
sensor's data. So a noise-free frame comes back within a DN, ``--denoise off`` (told no noise) and
the classical engine (which does not denoise) give the source's mosaic unchanged, and ``--denoise
S`` scales the bound with the noise the engine is told. Sites the engine saw clipped (at or above
the white level after white balance) keep the source's value: clipped highlights stay at the
white level, and a channel's range above the lowest channel's clip, which the engines do not
reconstruct, is kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rawisp.engines.camera_noise import profiles_path
from rawisp.engines.noise import fit_by_level
from rawisp.engines.noise_choice import choose_noise
from rawisp.io.decode import RawImage
from rawisp.io.dng import BAYER, THUMBNAIL_SIDE, WHITE
from rawisp.io.whitebalance import white_balance_gains
from rawisp.stages.normalise import Packed, pack, plane_values
from rawisp.stages.render import render

STRIP_ROWS = 256  # rows of the engine output converted at a time
BOUND = 3.0  # the largest correction written, in standard deviations of the noise the engine was told
RESIDUAL_SAMPLES = 2_000_000  # sites the noise left is measured on (a regular subsample of larger frames)


@dataclass(frozen=True)
class DngNoise:
    """The noise of a frame as the Bayer DNG needs it, (shot, read std) in normalised raw units
    before white balance (variance = shot * x + read**2): ``frame``, the frame's own (the engine's
    choice at --denoise auto: the file's NoiseProfile, a camera profile, the EXIF prior or the
    blind estimate), and ``told``, what the engine was told after ``--denoise`` (none: an engine
    that does not denoise, or ``--denoise off``)."""

    frame: tuple[float, float] = (0.0, 0.0)
    told: tuple[float, float] = (0.0, 0.0)


@dataclass
class BayerFrame:
    """What a Bayer DNG stores: the (H, W) uint16 mosaic in the source's DN, as stored (not
    turned), and its NoiseProfile (shot S, read variance O; the DNG model variance = S x + O)."""

    mosaic: np.ndarray
    noise_profile: tuple[float, float]


def wants_bayer(raw: RawImage, fmt: str) -> bool:
    """Whether ``fmt`` gives ``raw`` a Bayer DNG: ``dng`` of a Bayer source (else a linear DNG)."""
    return fmt == BAYER and raw.mosaic is not None


def engine_noise(engine, packed: Packed) -> DngNoise:
    """The frame's noise and the noise ``engine`` is told for ``packed`` (see :class:`DngNoise`).

    The learned engine says both (``choose_noise``, ``strength``: the same choice it makes for the
    pictures); an engine without them (classical) denoises nothing and is told no noise, and the
    frame's noise is chosen as the learned engine would at --denoise auto."""
    choose = getattr(engine, "choose_noise", None)
    if choose is None:
        from rawisp.engines.noise_net import NoiseNet

        frame = choose_noise(packed, NoiseNet(threads=1), profiles_path(None)).noise
        return DngNoise(frame, (0.0, 0.0))
    frame = choose(packed).noise
    strength = float(getattr(engine, "strength", 1.0))
    return DngNoise(frame, (frame[0] * strength**2, frame[1] * strength))


def _site_map(values: np.ndarray, y: int, shape: tuple[int, int]) -> np.ndarray:
    """A per-2x2-site array (2, 2) laid over the rows ``y .. y + shape[0]`` of the frame."""
    rows, cols = shape
    tiled = np.tile(np.roll(values, -(y % 2), axis=0), ((rows + 1) // 2, (cols + 1) // 2))
    return tiled[:rows, :cols]


def bayer_frame(raw: RawImage, rgb, noise: DngNoise) -> BayerFrame:
    """Engine output -> the Bayer DNG's mosaic (see the module docstring) and its NoiseProfile.

    rgb: (H, W, 3) linear white-balanced camera RGB as the engines give it, or rows on demand (see
    :func:`rawisp.stages.render.render`); ``raw``: the Bayer source it was developed from."""
    h, w = raw.shape
    gains = white_balance_gains(raw.wb).astype(np.float32)
    channel = np.array(["RGB".index(c) for c in raw.cfa]).reshape(2, 2)
    black = np.asarray(raw.black, np.float32)
    white = np.float32(raw.white)
    shot, read = (np.float32(v) for v in noise.told)
    mosaic = np.empty((h, w), np.uint16)
    for y in range(0, h, STRIP_ROWS):
        strip = np.asarray(rgb[y:y + STRIP_ROWS], np.float32)
        rows = strip.shape[0]
        ch = _site_map(channel, y, (rows, w))
        blk = _site_map(black, y, (rows, w))
        span = white - blk
        source = raw.mosaic[y:y + rows].astype(np.float32)
        gain = gains[ch]
        clean = np.take_along_axis(strip, ch[..., None], axis=2)[..., 0] / gain  # normalised, before WB
        bound = np.float32(BOUND) * np.sqrt(shot * np.maximum(clean, 0) + read * read) * span
        out = source - np.clip(source - (blk + clean * span), -bound, bound)
        clipped = (source - blk) * (gain / span) >= 1  # as normalise clips
        out = np.where(clipped, source, out)
        mosaic[y:y + rows] = np.clip(np.rint(out), 0, min(float(white), 65535))
    return BayerFrame(mosaic, residual_noise(raw, mosaic, noise.frame))


def residual_noise(raw: RawImage, mosaic: np.ndarray, frame_noise: tuple[float, float]) -> tuple[float, float]:
    """The noise left in a denoised ``mosaic`` of ``raw``, measured: the DNG NoiseProfile (S, O),
    variance = S x + O in normalised units (x: 0 = black, 1 = white, before white balance).

    For a denoiser that gives the expected clean value (the learned engine is trained towards it),
    the error left is orthogonal to its input, so at each level x the removed part d = source -
    output has E[d^2] = sigma^2(x) - E[error^2]: the error left is the frame's noise variance less the
    mean square of what was removed. Per brightness bin of the output (as
    :func:`rawisp.engines.noise.fit_by_level` bins the blind estimate), variance = max(sigma^2 -
    mean d^2, 0), and a non-negative line through them gives S and O; a frame too small for bins
    gets the frame's noise scaled by the overall ratio. Sites the engine saw clipped (kept as in
    the source) are left out. O is at least the 1-DN rounding of the stored values (1/12 DN^2). On
    Kodak frames through the evaluation protocol, at mid-grey and --denoise auto, this is 0.8 to 1.4
    times the true mean square error at the mid preset, 0.9 to 2.2 at the high one (docs/dng.md); a
    --denoise above 1 over-smooths, which reads as little noise left."""
    h, w = mosaic.shape
    step = max(1, int(np.sqrt(h * w / RESIDUAL_SAMPLES)))
    step += 1 - step % 2  # odd: every colour of the 2x2 is sampled
    black = _site_map(np.asarray(raw.black, np.float64), 0, (h, w))[::step, ::step]
    span = raw.white - black
    source = (raw.mosaic[::step, ::step] - black) / span
    out = (mosaic[::step, ::step] - black) / span
    ch = _site_map(np.array(["RGB".index(c) for c in raw.cfa]).reshape(2, 2), 0, (h, w))[::step, ::step]
    usable = (source * white_balance_gains(raw.wb)[ch] < 1) & (out < 0.95)
    level, removed = out[usable].ravel(), ((source - out)[usable] ** 2).ravel()
    shot, read = frame_noise
    expected = shot * np.maximum(level, 0) + read**2
    rounding = 1 / (12 * float(np.max(span)) ** 2)

    def left(sel: np.ndarray) -> tuple[float, float, float]:
        return float(level[sel].mean()), max(float(expected[sel].mean() - removed[sel].mean()), 0.0), float(sel.sum())

    fitted = fit_by_level(level, np.ones(level.shape, bool), left) if level.size else (0.0, 0.0)
    if fitted == (0.0, 0.0) and level.size and expected.mean() > 0:  # too few sites for bins: one ratio
        ratio = max(1 - removed.mean() / expected.mean(), 0.0)
        fitted = (shot * ratio, read * np.sqrt(ratio))
    return float(fitted[0]), max(float(fitted[1]) ** 2, rounding)


def camera_frame(rgb, wb: np.ndarray) -> np.ndarray:
    """Engine output -> the linear DNG's frame: (H, W, 3) uint16 linear camera RGB before white
    balance, 0 = black, :data:`WHITE` = the source's white level (values outside clipped).

    rgb: (H, W, 3) linear white-balanced camera RGB as the engines give it (1.0 = white after the
    gains of :func:`rawisp.io.whitebalance.white_balance_gains`), or rows on demand (see
    :func:`rawisp.stages.render.render`)."""
    scale = (WHITE / white_balance_gains(wb)).astype(np.float32)
    h = rgb.shape[0]
    frame = np.empty((h, rgb.shape[1], 3), np.uint16)
    for y in range(0, h, STRIP_ROWS):
        strip = np.asarray(rgb[y:y + STRIP_ROWS], np.float32) * scale
        frame[y:y + STRIP_ROWS] = np.clip(np.rint(strip), 0, WHITE)
    return frame


def thumbnail(raw: RawImage, frame: np.ndarray | BayerFrame) -> np.ndarray:
    """An 8-bit sRGB rendering of a DNG's frame (a linear DNG's (H, W, 3), or a Bayer DNG's mosaic
    seen as half-size RGB: R, mean G, B of each 2x2), long side at most :data:`THUMBNAIL_SIDE`,
    not turned (the Orientation tag applies to it as to the raw image)."""
    if isinstance(frame, BayerFrame):
        planes, _ = pack(frame.mosaic, raw.cfa)  # RGGB planes, half size
        black = plane_values(raw.black, raw.cfa)
        means = [_block_mean(plane, _step(plane.shape)) for plane in planes]
        small = np.stack([means[0] - black[0], (means[1] + means[2] - black[1] - black[2]) / 2, means[3] - black[3]],
                         axis=-1) * np.float32(WHITE / (raw.white - black.mean()))
    else:
        small = _block_mean(frame, _step(frame.shape))
    rgb = small * (white_balance_gains(raw.wb) / WHITE).astype(np.float32)
    return render(rgb, raw.srgb_from_cam, threads=1)


def _step(shape: tuple[int, ...]) -> int:
    """The block side that brings a frame's long side to at most :data:`THUMBNAIL_SIDE`."""
    return -(-max(shape[:2]) // THUMBNAIL_SIDE)


def _block_mean(frame: np.ndarray, step: int) -> np.ndarray:
    """Means of ``step`` x ``step`` blocks of a (H, W, ...) array, float32 (remainder rows and
    columns left out; a frame thinner than a block: every ``step``-th sample)."""
    h, w = frame.shape[0] // step * step, frame.shape[1] // step * step
    if h == 0 or w == 0:
        return frame[::step, ::step].astype(np.float32)
    blocks = frame[:h, :w].reshape(h // step, step, w // step, step, *frame.shape[2:])
    return blocks.mean(axis=(1, 3), dtype=np.float32)
