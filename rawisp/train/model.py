"""The LW-ISP network: a small U-Net on packed Bayer planes with fine-grained attention.

Input  ``(N, 8, h, w)`` (see :mod:`rawisp.contract`): 4 packed planes (R, G1, G2, B; linear, white-balanced, 1.0 = clip)
followed by 4 planes of the noise standard deviation of each packed value (same units).
Output ``(N, 3, 2h, 2w)``: linear, white-balanced camera RGB at full resolution.

The network predicts a residual over a fixed bilinear demosaic computed inside the graph, so an
untrained network already demosaicks and training only has to learn the correction.
Every operation is local (no global pooling), so tiled inference with enough overlap gives the
same answer as whole-frame inference; ``h`` and ``w`` must be multiples of ``rawisp.contract.STRIDE``.
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from rawisp.contract import CHANNELS, SCALE


def bilinear_demosaic(packed: torch.Tensor) -> torch.Tensor:
    """Bilinear demosaic of RGGB-packed planes ``(N, 4, h, w)`` -> ``(N, 3, 2h, 2w)``.

    Zero padding at the border (the runtime pads frames by reflection before it gets here).
    """
    mosaic = F.pixel_shuffle(packed, 2)  # (N, 1, 2h, 2w), RGGB Bayer
    n, _, hh, ww = mosaic.shape
    mask = packed.new_zeros(1, 3, 2, 2)
    mask[0, 0, 0, 0] = 1.0
    mask[0, 1, 0, 1] = 1.0
    mask[0, 1, 1, 0] = 1.0
    mask[0, 2, 1, 1] = 1.0
    sparse = mosaic * mask.repeat(1, 1, hh // 2, ww // 2)
    k_rb = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 4.0
    k_g = torch.tensor([[0.0, 1.0, 0.0], [1.0, 4.0, 1.0], [0.0, 1.0, 0.0]]) / 4.0
    weight = torch.stack([k_rb, k_g, k_rb])[:, None].to(packed)
    return F.conv2d(sparse, weight, padding=1, groups=3)


class FineGrainedAttention(nn.Module):
    """Channel then spatial attention, both computed from a local neighbourhood.

    Channel attention uses a ``window``-sized average instead of global pooling so that tiles
    agree with the whole frame; spatial attention is CBAM-style (mean and max over channels).
    """

    def __init__(self, channels: int, reduction: int = 4, window: int = 7) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(window, stride=1, padding=window // 2, count_include_pad=False)
        self.channel = nn.Sequential(
            nn.Conv2d(channels, channels // reduction, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels // reduction, channels, 1),
            nn.Sigmoid(),
        )
        self.spatial = nn.Sequential(nn.Conv2d(2, 1, 5, padding=2), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * self.channel(self.pool(x))
        stats = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * self.spatial(stats)


class AttentionBlock(nn.Module):
    """Residual block: conv-act-conv, fine-grained attention, identity skip."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1),
        )
        self.attention = FineGrainedAttention(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.attention(self.body(x))


class Up(nn.Module):
    """Sub-pixel (depth-to-space) upsampling by 2 followed by a skip addition."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, 4 * c_out, 1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(self.conv(x), 2) + skip


class UpsamplingBlock(nn.Module):
    """The plug-and-play block that goes from packed (half) to full resolution.

    Depth-to-space of learned features, then a learned refinement at full resolution that also
    sees the bilinear estimate; outputs a residual to add to it.
    """

    def __init__(self, channels: int, full_channels: int = 8) -> None:
        super().__init__()
        self.expand = nn.Conv2d(channels, SCALE**2 * full_channels, 3, padding=1)
        self.refine = nn.Sequential(
            nn.Conv2d(full_channels + 3, full_channels, 3, padding=1),
            nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(full_channels, 3, 3, padding=1),
        )
        # start as the plain bilinear demosaic: the residual is zero until training moves it
        nn.init.zeros_(self.refine[-1].weight)
        nn.init.zeros_(self.refine[-1].bias)

    def forward(self, feats: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        full = F.pixel_shuffle(self.expand(feats), SCALE)
        return self.refine(torch.cat([full, base], dim=1))


class LWISP(nn.Module):
    """LW-ISP-style U-Net; ``widths`` are the channels at 1/2, 1/4 and 1/8 of full resolution."""

    def __init__(self, widths: tuple[int, int, int] = (24, 48, 96), in_channels: int = CHANNELS) -> None:
        super().__init__()
        c1, c2, c3 = widths
        self.widths = tuple(widths)
        self.head = nn.Sequential(nn.Conv2d(in_channels, c1, 3, padding=1), nn.LeakyReLU(0.1, inplace=True))
        self.enc1 = AttentionBlock(c1)
        self.down1 = nn.Conv2d(c1, c2, 3, stride=2, padding=1)
        self.enc2 = AttentionBlock(c2)
        self.down2 = nn.Conv2d(c2, c3, 3, stride=2, padding=1)
        self.bottom = AttentionBlock(c3)
        self.up2 = Up(c3, c2)
        self.dec2 = AttentionBlock(c2)
        self.up1 = Up(c2, c1)
        self.dec1 = AttentionBlock(c1)
        self.upsample = UpsamplingBlock(c1)

    def forward(self, x: torch.Tensor, return_features: bool = False):
        base = bilinear_demosaic(x[:, :4])
        e1 = self.enc1(self.head(x))
        e2 = self.enc2(self.down1(e1))
        b = self.bottom(self.down2(e2))
        d2 = self.dec2(self.up2(b, e2))
        d1 = self.dec1(self.up1(d2, e1))
        out = base + self.upsample(d1, base)
        if return_features:
            return out, (e2, b, d1)
        return out


def count_params(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def gflop_per_mp(model: nn.Module, size: int = 64) -> float:
    """Multiply-adds x2 of convolutions per output megapixel (GFLOP/MP), by hooking Conv2d."""
    total = 0

    def hook(mod: nn.Conv2d, _inp, out: torch.Tensor) -> None:
        nonlocal total
        k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
        total += 2 * k * out.numel()

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model(torch.zeros(1, CHANNELS, size, size))
    for h in handles:
        h.remove()
    out_pixels = (2 * size) ** 2
    # the fixed bilinear conv of the graph is included: it runs at inference too
    total += 2 * 9 * 3 * out_pixels
    return total / out_pixels * 1e6 / 1e9
