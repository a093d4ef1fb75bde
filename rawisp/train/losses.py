"""Training losses, all comparing a prediction with its target in white-balanced camera RGB.

Losses that look at pictures (sRGB L1, MS-SSIM, Lab) first render both through the batch's
camera matrices to sRGB, so errors are weighted the way a viewer (and the sRGB PSNR) sees them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rawisp.colour import SRGB_TO_XYZ, XYZ_WHITE
from rawisp.train.data import srgb_encode

LOSSES = ("l1", "msssim", "lab")

_SRGB_TO_XYZ = torch.tensor(SRGB_TO_XYZ, dtype=torch.float32)
_D65 = torch.tensor(XYZ_WHITE, dtype=torch.float32)


def render_srgb(cam: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Camera RGB ``(N, 3, H, W)`` -> sRGB-encoded [0, 1] through ``inv(m)`` (``m``: camera from sRGB)."""
    lin = torch.einsum("nij,njhw->nihw", torch.linalg.inv(m), cam)
    return srgb_encode(lin)


def _gaussian(size: int = 7, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - size // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _ssim_terms(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    c = a.shape[1]
    g = _gaussian().to(a)
    w = (g[:, None] * g[None, :]).expand(c, 1, -1, -1)
    blur = lambda t: F.conv2d(t, w, groups=c)  # noqa: E731  (valid conv, no padding bias)
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    cs = (2 * cov + c2) / (var_a + var_b + c2)
    lum = (2 * mu_a * mu_b + c1) / (mu_a**2 + mu_b**2 + c1)
    return lum.mean(), cs.clamp_min(1e-6).mean()


def ms_ssim(a: torch.Tensor, b: torch.Tensor, scales: int = 3) -> torch.Tensor:
    """Multi-scale SSIM of images in [0, 1] (3 scales: training patches are small)."""
    weights = torch.tensor([0.2, 0.3, 0.5])[:scales]
    weights = weights / weights.sum()
    value = a.new_ones(())
    for i in range(scales):
        lum, cs = _ssim_terms(a, b)
        value = value * (cs if i < scales - 1 else lum * cs) ** weights[i]
        a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
    return value


def srgb_to_lab(srgb: torch.Tensor) -> torch.Tensor:
    """sRGB-encoded [0, 1] ``(N, 3, H, W)`` -> CIELAB (L in [0, 100])."""
    lin = torch.where(srgb <= 0.04045, srgb / 12.92, ((srgb.clamp_min(0.04045) + 0.055) / 1.055) ** 2.4)
    xyz = torch.einsum("ij,njhw->nihw", _SRGB_TO_XYZ.to(srgb), lin) / _D65.to(srgb)[:, None, None]
    eps = 216 / 24389
    f = torch.where(xyz > eps, xyz.clamp_min(eps) ** (1 / 3), (24389 / 27 * xyz + 16) / 116)
    return torch.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], dim=1)


def reconstruction_loss(kind: str, pred: torch.Tensor, target: torch.Tensor, m: torch.Tensor,
                        mse_weight: float = 0.0) -> torch.Tensor:
    """The selectable reconstruction loss, plus ``mse_weight`` times the sRGB mean squared error.

    ``l1``: L1 on the sRGB rendering plus L1 in linear camera RGB;
    ``msssim``: DeepISP's L1 + (1 - MS-SSIM), both on the sRGB rendering;
    ``lab``: (1 - a) * |Lab - Lab'|_1 / 100 + a * (1 - MS-SSIM(L, L')), a = 0.5.
    The squared error (what PSNR scores) weights rare large errors, such as an isolated speck
    several noise deviations below its surroundings, by their size instead of by their count.
    """
    p, t = render_srgb(pred, m), render_srgb(target, m)
    mse = mse_weight * (p - t).square().mean() if mse_weight else 0.0
    if kind == "l1":
        return (p - t).abs().mean() + (pred - target).abs().mean() + mse
    if kind == "msssim":
        return 0.84 * (1 - ms_ssim(p, t)) + 0.16 * (p - t).abs().mean() + mse
    if kind == "lab":
        lp, lt = srgb_to_lab(p), srgb_to_lab(t)
        alpha = 0.5
        lab = (1 - alpha) * (lp - lt).abs().mean() / 100 + alpha * (1 - ms_ssim(lp[:, :1] / 100, lt[:, :1] / 100))
        return lab + mse
    raise ValueError(f"unknown loss {kind!r}; choose from {', '.join(LOSSES)}")


def pattern_loss(pred: torch.Tensor, target: torch.Tensor, period: int = 8, border: int = 16) -> torch.Tensor:
    """The periodic part of the error, as a share of the target's mean (a fraction, not %).

    ``pred``, ``target``: ``(N, 3, H, W)`` linear camera RGB of flat crops, ``H - 2 * border`` and
    ``W - 2 * border`` multiples of ``period`` (the crop origin is on the Bayer grid, so the cells
    line up with the packed planes and the decoder's 2x2, 4x4 and 8x8 blocks).

    For each position modulo ``period`` (both axes) the mean error over the crop, less the mean
    error of the whole crop, divided by the crop's mean per channel: the per-pixel L1 loss barely
    sees a 0.5% pattern on a dark grey (a twentieth of an 8-bit step), this term sees only it.
    Working on the error rather than the output leaves a flat crop's faint ramp out of it; an
    error that is itself a slope across the crop reads as a small second-order term (a 3% gain
    error on a crop with a ±10% ramp: 0.02%).
    Mean absolute value over positions, channels and crops.
    """
    b = slice(border, -border)
    err = (pred - target)[:, :, b, b]
    n, c, h, w = err.shape
    cells = err.reshape(n, c, h // period, period, w // period, period).mean(dim=(2, 4))  # (N, 3, p, p)
    periodic = cells - cells.mean(dim=(2, 3), keepdim=True)
    scale = target[:, :, b, b].mean(dim=(2, 3)).clamp_min(1e-4)[:, :, None, None]
    return (periodic / scale).abs().mean()


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two images in [0, 1]."""
    mse = F.mse_loss(a, b).item()
    return 10 * torch.log10(torch.tensor(1.0 / max(mse, 1e-12))).item()
