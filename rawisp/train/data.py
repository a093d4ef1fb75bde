"""Synthetic RAW training data by unprocessing sRGB photos (Brooks et al. 2019).

sRGB photo -> area downscale x2 (hide the JPEG and in-camera demosaic artefacts) -> random crop,
flip, rotation (some crops colour-augmented, some replaced by procedural images: procedural.py)
-> inverse sRGB transfer -> random camera matrix -> exposure -> multiply by a random
as-shot neutral -> RGGB mosaic -> Poisson-Gaussian noise and quantisation -> white balance ->
packed planes + noise planes (the network input) with the clean white-balanced camera RGB as target.
All units are normalised linear (0 = black, 1 = white level) unless stated otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from rawisp.engines.contract import PLANE_CHANNEL
from rawisp.engines.noise_net import READ_SHARE
from rawisp.train.model import bilinear_demosaic
from rawisp.train.procedural import colour_augment, flat, procedural, texture

EXTENSIONS = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp"}


def load_photos(folders: list[Path], min_side: int, downscale: int = 2) -> list[np.ndarray]:
    """Load RGB photos as uint8 ``(H, W, 3)``, area-downscaled by ``downscale``.

    Greyscale images and images whose short side is below ``min_side`` after downscaling are skipped.
    """
    photos = []
    for folder in folders:
        for path in sorted(Path(folder).rglob("*")):
            if path.suffix.lower() not in EXTENSIONS:
                continue
            with Image.open(path) as im:
                if im.mode != "RGB":
                    continue
                im = im.reduce(downscale)
                arr = np.asarray(im)
            if min(arr.shape[:2]) < min_side or _is_grey(arr):
                continue
            photos.append(arr)
    return photos


def _is_grey(arr: np.ndarray) -> bool:
    a = arr.astype(np.int16)
    return bool(np.abs(a[..., 0] - a[..., 1]).mean() < 1 and np.abs(a[..., 2] - a[..., 1]).mean() < 1)


def srgb_decode(v: torch.Tensor) -> torch.Tensor:
    """sRGB-encoded [0, 1] -> linear [0, 1]."""
    return torch.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def srgb_encode(v: torch.Tensor) -> torch.Tensor:
    """Linear -> sRGB-encoded; input clamped to [0, 1] (gradient-safe near 0)."""
    v = v.clamp(0.0, 1.0)
    return torch.where(v <= 0.0031308, v * 12.92, 1.055 * v.clamp_min(0.0031308) ** (1 / 2.4) - 0.055)


def random_cam_from_srgb(n: int, gen: torch.Generator) -> torch.Tensor:
    """Random plausible camera matrices ``(n, 3, 3)``: camera RGB = M @ linear sRGB.

    Positive entries, diagonal in [0.45, 0.9], rows summing to 1 (white stays white after white
    balance), the form of real camera matrices expressed against sRGB primaries.
    """
    diag = 0.45 + 0.45 * torch.rand(n, 3, generator=gen)
    split = torch.rand(n, 3, generator=gen)
    m = torch.zeros(n, 3, 3)
    for i in range(3):
        j, k = (i + 1) % 3, (i + 2) % 3
        m[:, i, i] = diag[:, i]
        m[:, i, j] = (1 - diag[:, i]) * split[:, i]
        m[:, i, k] = (1 - diag[:, i]) * (1 - split[:, i])
    return m


def noise_sigma(packed: torch.Tensor, gains: torch.Tensor, shot: torch.Tensor, read: torch.Tensor) -> torch.Tensor:
    """Noise standard deviation of each white-balanced packed value.

    Raw noise has variance ``shot * x_raw + read**2``; after multiplying by the white-balance gain
    ``g`` this is ``shot * g * x + (g * read)**2`` for a white-balanced value ``x``.
    packed ``(N, 4, h, w)``; gains ``(N, 4)``; shot, read ``(N,)``.
    """
    g = gains[:, :, None, None]
    var = shot[:, None, None, None] * g * packed.clamp_min(0) + (g * read[:, None, None, None]) ** 2
    return var.sqrt()


@dataclass
class Batch:
    """Network input ``x`` (N, 8, h, w), target ``y`` (N, 3, 2h, 2w) white-balanced camera RGB,
    camera matrices ``m`` (N, 3, 3), and the clean input ``x_clean`` (for the teacher)."""

    x: torch.Tensor
    y: torch.Tensor
    m: torch.Tensor
    x_clean: torch.Tensor

    def to(self, device: torch.device) -> Batch:
        """The same batch on ``device`` (batches are synthesised on the CPU, seeded)."""
        return Batch(*(t.to(device, non_blocking=True) for t in (self.x, self.y, self.m, self.x_clean)))


def pack_rggb(img: torch.Tensor) -> torch.Tensor:
    """Full-resolution camera RGB ``(N, 3, H, W)`` -> RGGB-packed mosaic ``(N, 4, H/2, W/2)``."""
    return torch.stack(
        [img[:, 0, 0::2, 0::2], img[:, 1, 0::2, 1::2], img[:, 1, 1::2, 0::2], img[:, 2, 1::2, 1::2]], dim=1
    )


def synthesise(lin: torch.Tensor, m: torch.Tensor, neutral: torch.Tensor, shot: torch.Tensor,
               read: torch.Tensor, levels: torch.Tensor, gen: torch.Generator | None,
               stated: tuple[torch.Tensor, torch.Tensor] | None = None) -> Batch:
    """Make a batch from linear sRGB crops ``lin`` (N, 3, H, W).

    neutral ``(N, 3)`` raw value of white (G = 1; R or B may exceed 1); shot, read ``(N,)`` noise parameters in
    normalised raw units; levels ``(N,)`` white minus black in DN (quantisation step 1/levels).
    stated: the (shot, read) the noise planes state, when not the noise added (a mis-estimate).
    """
    cam = torch.einsum("nij,njhw->nihw", m, lin)
    n4 = neutral[:, list(PLANE_CHANNEL)]
    # The runtime's gains are normalised so the smallest is 1 (normalise.py): when a neutral value
    # exceeds green's, every gain, and so the white-balanced picture, is scaled up by k.
    k = n4.amax(dim=1)
    target = (cam * k[:, None, None, None]).clamp(0.0, 1.0)
    raw_clean = pack_rggb(cam) * n4[:, :, None, None]
    noise = torch.randn(raw_clean.shape, generator=gen) if gen is not None else torch.randn_like(raw_clean)
    std = (shot[:, None, None, None] * raw_clean.clamp_min(0) + read[:, None, None, None] ** 2).sqrt()
    raw = raw_clean + std * noise
    q = levels[:, None, None, None]
    raw = (torch.round(raw * q) / q).clamp(max=1.0)
    gains = k[:, None] / n4
    packed = (raw * gains[:, :, None, None]).clamp(max=1.0)
    clean = (raw_clean.clamp(max=1.0) * gains[:, :, None, None]).clamp(max=1.0)
    sigma = noise_sigma(packed, gains, *(stated or (shot, read)))
    x = torch.cat([packed, sigma], dim=1)
    x_clean = torch.cat([clean, torch.zeros_like(sigma)], dim=1)
    return Batch(x=x, y=target, m=m, x_clean=x_clean)


def bilinear_error(srgb: torch.Tensor) -> torch.Tensor:
    """Mean absolute sRGB error ``(N,)`` of a bilinear demosaic of sRGB crops ``(N, 3, H, W)`` in [0, 1].

    The crop itself stands in for camera RGB (no matrix, no noise): a cheap score of how hard
    a crop is to demosaic, used to mine training crops. The border (zero padding) is left out.
    """
    demosaicked = bilinear_demosaic(pack_rggb(srgb_decode(srgb)))
    error = (srgb_encode(demosaicked) - srgb).abs()[:, :, 2:-2, 2:-2]
    return error.mean(dim=(1, 2, 3))


class Sampler:
    """Draws random training batches from in-memory photos; deterministic given ``seed``.

    clean_fraction: share of crops without noise.
    hard_fraction: share of crops mined for demosaicking difficulty (see ``crops``).
    procedural_fraction: share of crops replaced by procedural images (procedural.py).
    colour_fraction: share of photo crops whose colours are decorrelated (``colour_augment``).
    neutral_above_green: share of crops whose as-shot neutral has R or B above G.
    flat_fraction: share of crops replaced by flat, mostly dark colours (``procedural.flat``).
    texture_fraction: share of crops replaced by low-contrast texture (``procedural.texture``).
    overstated_noise: share of the clean crops whose noise planes state weak noise that was never
        added (shot 2e-5 to 5e-4, read² = 1e-3·shot): what a blind estimate reads on a clean,
        detailed photo without a NoiseProfile, so the network learns not to smooth such a photo.
    Fractions at 0 draw no random numbers, so older runs' batches stay reproducible.
    """

    def __init__(self, photos: list[np.ndarray], patch: int, seed: int, clean_fraction: float = 0.2,
                 hard_fraction: float = 0.0, hard_candidates: int = 4, procedural_fraction: float = 0.0,
                 colour_fraction: float = 0.0, neutral_above_green: float = 0.0,
                 flat_fraction: float = 0.0, overstated_noise: float = 0.0, texture_fraction: float = 0.0) -> None:
        self.photos = photos
        self.patch = patch
        self.clean_fraction = clean_fraction
        self.hard_fraction = hard_fraction
        self.hard_candidates = hard_candidates
        self.procedural_fraction = procedural_fraction
        self.colour_fraction = colour_fraction
        self.neutral_above_green = neutral_above_green
        self.flat_fraction = flat_fraction
        self.overstated_noise = overstated_noise
        self.texture_fraction = texture_fraction
        self.rng = np.random.default_rng(seed)
        self.gen = torch.Generator().manual_seed(seed)

    def _random_crops(self, n: int) -> torch.Tensor:
        out = np.empty((n, self.patch, self.patch, 3), np.float32)
        for i in range(n):
            if self.procedural_fraction and self.rng.random() < self.procedural_fraction:
                out[i] = procedural(self.rng, self.patch)
                continue
            if self.flat_fraction and self.rng.random() < self.flat_fraction:
                out[i] = flat(self.rng, self.patch)
                continue
            if self.texture_fraction and self.rng.random() < self.texture_fraction:
                out[i] = texture(self.rng, self.patch)
                continue
            img = self.photos[self.rng.integers(len(self.photos))]
            y = self.rng.integers(img.shape[0] - self.patch + 1)
            x = self.rng.integers(img.shape[1] - self.patch + 1)
            crop = img[y:y + self.patch, x:x + self.patch]
            # augmentation happens before mosaicking, so the Bayer phase stays RGGB
            crop = np.rot90(crop, self.rng.integers(4))
            if self.rng.random() < 0.5:
                crop = crop[:, ::-1]
            crop = crop.astype(np.float32) / 255.0
            if self.colour_fraction and self.rng.random() < self.colour_fraction:
                crop = colour_augment(crop, self.rng)
            out[i] = crop
        return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()

    def crops(self, n: int) -> torch.Tensor:
        """``n`` crops ``(n, 3, patch, patch)`` sRGB in [0, 1], randomly flipped/rotated.

        A ``hard_fraction`` of them is mined (Gharbi et al. 2016): the crop that a bilinear
        demosaic gets most wrong out of ``hard_candidates`` random ones, so fine detail and
        colour edges, where demosaickers differ, are seen more often than in random crops.
        """
        n_hard = int(round(n * self.hard_fraction))
        out = self._random_crops(n)
        if n_hard:
            candidates = self._random_crops(n_hard * self.hard_candidates)
            error = bilinear_error(candidates).view(n_hard, self.hard_candidates)
            pick = error.argmax(dim=1) + torch.arange(n_hard) * self.hard_candidates
            out[:n_hard] = candidates[pick]
        return out

    def batch(self, n: int) -> Batch:
        g = self.gen
        lin = srgb_decode(self.crops(n))
        exposure = torch.exp(torch.empty(n).uniform_(np.log(0.5), np.log(1.4), generator=g))
        bright = torch.rand(n, generator=g) < 0.15  # some frames with clipped highlights
        exposure = torch.where(bright, exposure * 1.8, exposure)
        lin = lin * exposure[:, None, None, None]
        m = random_cam_from_srgb(n, g)
        neutral = torch.stack([torch.empty(n).uniform_(0.3, 0.85, generator=g), torch.ones(n),
                               torch.empty(n).uniform_(0.3, 0.85, generator=g)], dim=1)
        if self.neutral_above_green:
            above = torch.rand(n, generator=g) < self.neutral_above_green
            channel = torch.where(torch.rand(n, generator=g) < 0.5, 0, 2)
            value = torch.empty(n).uniform_(1.0, 1.4, generator=g)
            neutral[above, channel[above]] = value[above]
        shot = torch.exp(torch.empty(n).uniform_(np.log(3e-5), np.log(1.5e-2), generator=g))
        read = shot.sqrt() * torch.exp(torch.empty(n).uniform_(np.log(0.005), np.log(0.05), generator=g))
        clean = torch.rand(n, generator=g) < self.clean_fraction
        shot = torch.where(clean, torch.zeros_like(shot), shot)
        read = torch.where(clean, torch.zeros_like(read), read)
        levels = torch.where(torch.rand(n, generator=g) < 0.5, torch.full((n,), 3839.0), torch.full((n,), 14000.0))
        stated = None
        if self.overstated_noise:
            over = clean & (torch.rand(n, generator=g) < self.overstated_noise)
            weak = torch.exp(torch.empty(n).uniform_(np.log(2e-5), np.log(5e-4), generator=g))
            stated = (torch.where(over, weak, shot), torch.where(over, (READ_SHARE * weak).sqrt(), read))
        return synthesise(lin, m, neutral, shot, read, levels, g, stated)
