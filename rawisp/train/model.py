"""The LW-ISP network: a small U-Net on packed Bayer planes with fine-grained attention.

Input  ``(N, 8, h, w)`` (see :mod:`rawisp.contract`): 4 packed planes (R, G1, G2, B; linear, white-balanced, 1.0 = clip)
followed by 4 planes of the noise standard deviation of each packed value (same units).
Output ``(N, 3, 2h, 2w)``: linear, white-balanced camera RGB at full resolution.

The network predicts a residual over a fixed demosaic computed inside the graph (bilinear, or
Malvar-He-Cutler's gradient-corrected one), so an untrained network already demosaicks and
training only has to learn the correction.
Every operation is local (no global pooling), so tiled inference with enough overlap gives the
same answer as whole-frame inference; ``h`` and ``w`` must be multiples of ``rawisp.contract.STRIDE``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
import torch.nn.functional as F

from rawisp.engines.contract import CHANNELS, SCALE


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


# Malvar, He and Cutler 2004, "High-quality linear interpolation for demosaicing of Bayer-patterned
# color images": 5x5 filters (in eighths) that add a scaled Laplacian of the known channel to the
# bilinear estimate of a missing one.
_MHC_G_AT_RB = [[0, 0, -1, 0, 0], [0, 0, 2, 0, 0], [-1, 2, 4, 2, -1], [0, 0, 2, 0, 0], [0, 0, -1, 0, 0]]
# R at a green site of a red row (B at a green site of a blue row): neighbours left and right
_MHC_ROW = [[0, 0, 0.5, 0, 0], [0, -1, 0, -1, 0], [-1, 4, 5, 4, -1], [0, -1, 0, -1, 0], [0, 0, 0.5, 0, 0]]
_MHC_DIAG = [[0, 0, -1.5, 0, 0], [0, 2, 0, 2, 0], [-1.5, 0, 6, 0, -1.5], [0, 2, 0, 2, 0], [0, 0, -1.5, 0, 0]]


def mhc_demosaic(packed: torch.Tensor) -> torch.Tensor:
    """Malvar-He-Cutler demosaic of RGGB-packed planes ``(N, 4, h, w)`` -> ``(N, 3, 2h, 2w)``.

    Linear in the input (so the runtime's reflection padding works as for bilinear); zero
    padding at the border of what it is given.
    """
    mosaic = F.pixel_shuffle(packed, 2)  # (N, 1, 2h, 2w)
    row = torch.tensor(_MHC_ROW)
    kernels = torch.stack([torch.tensor(_MHC_G_AT_RB, dtype=torch.float32), row, row.T,
                           torch.tensor(_MHC_DIAG)])[:, None] / 8.0
    g_rb, at_row, at_col, diag = F.conv2d(mosaic, kernels.to(packed), padding=2).unbind(1)
    m = mosaic[:, 0]
    red = _from_sites(m, at_row, at_col, diag)
    green = _from_sites(g_rb, m, m, g_rb)
    blue = _from_sites(diag, at_col, at_row, m)
    return torch.cat([red, green, blue], dim=1)


def _from_sites(at_r: torch.Tensor, at_g1: torch.Tensor, at_g2: torch.Tensor, at_b: torch.Tensor) -> torch.Tensor:
    """One full-resolution channel ``(N, 1, H, W)`` taking each RGGB site's value from its own map ``(N, H, W)``."""
    sites = [at_r[:, 0::2, 0::2], at_g1[:, 0::2, 1::2], at_g2[:, 1::2, 0::2], at_b[:, 1::2, 1::2]]
    return F.pixel_shuffle(torch.stack(sites, dim=1), 2)


BASES = {"bilinear": bilinear_demosaic, "mhc": mhc_demosaic}
DOMAINS = ("linear", "log")  # where the network works: on values, or on ratios (model.LWISP)

# The log domain's offset, log(x + offset): a floor that keeps the log finite at black, plus the
# noise's standard deviation, so that where noise swamps the signal the log does not magnify it
# (normalised linear units: 1 = white level).
LOG_FLOOR = 1e-3


# Packed planes and full resolution: full-resolution channel ``c`` at Bayer phase ``(i, j)`` is
# packed channel ``4c + 2i + j`` (``pixel_shuffle``'s order). A convolution on the depth-to-space
# of packed planes is a convolution on the packed planes themselves, and running the network's
# full-resolution tail that way is the same function at a third of its cost: no depth-to-space
# of wide features, no concatenation at full resolution, and 44 -> 32 -> 12 channels, which fill
# vector units, instead of 11 -> 8 -> 3.

def _phase_map() -> torch.Tensor:
    """0/1 tensor ``(9, 4, 4, 9)``: full-resolution 3x3 tap, output phase, input phase, packed 3x3 tap.

    An output at phase ``(i, j)`` of packed pixel ``(Y, X)`` reads full-resolution tap ``(dy, dx)``
    at ``(2Y + i + dy, 2X + j + dx)``: packed pixel ``Y + (i + dy) // 2`` at phase ``(i + dy) % 2``.
    """
    m = torch.zeros(3, 3, SCALE, SCALE, SCALE, SCALE, 3, 3)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            for i in range(SCALE):
                for j in range(SCALE):
                    m[dy + 1, dx + 1, i, j, (i + dy) % 2, (j + dx) % 2, (i + dy) // 2 + 1, (j + dx) // 2 + 1] = 1.0
    return m.reshape(9, SCALE**2, SCALE**2, 9)


_PHASES = _phase_map()


def packed_kernel(weight: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A full-resolution 3x3 convolution (padding 1) as the packed 3x3 one (padding 1) on its
    input's space-to-depth: ``(c_out, c_in, 3, 3)``, ``(c_out,)`` -> ``(4 c_out, 4 c_in, 3, 3)``,
    ``(4 c_out,)``. Differentiable, so training runs the packed form of full-resolution weights."""
    c_out, c_in = weight.shape[:2]
    packed = torch.einsum("oik,kpqt->opiqt", weight.reshape(c_out, c_in, 9), _PHASES.to(weight))
    return packed.reshape(c_out * SCALE**2, c_in * SCALE**2, 3, 3), bias.repeat_interleave(SCALE**2)


def packed_linear(fn, in_channels: int, out_channels: int) -> nn.Conv2d:
    """The packed 3x3 convolution equal to ``fn``: an affine, translation-equivariant map from
    packed planes ``(N, in_channels, h, w)`` to a full-resolution image ``(N, out_channels, 2h, 2w)``
    whose kernel is at most 5x5 full-resolution pixels (the base demosaics).

    Built by probing ``fn`` with unit impulses (its bias from a zero input); ValueError if ``fn``
    reaches beyond one packed neighbour (it is then not such a map).
    """
    probe = 8  # packed side of the impulse probes: the 3x3 packed support fits well inside
    c = probe // 2
    zero = torch.zeros(1, in_channels, probe, probe)
    with torch.no_grad():
        bias = F.pixel_unshuffle(fn(zero), SCALE)[0]  # (out_channels * 4, probe, probe)
        weight = torch.zeros(out_channels * SCALE**2, in_channels, 3, 3)
        for ci in range(in_channels):
            impulse = zero.clone()
            impulse[0, ci, c, c] = 1.0
            response = F.pixel_unshuffle(fn(impulse), SCALE)[0] - bias
            # an output at packed (c - dy, c - dx) sees the impulse through tap (1 + dy, 1 + dx)
            near = response[:, c - 1:c + 2, c - 1:c + 2].flip(1, 2)
            if (response.abs().sum() - near.abs().sum()).item() > 1e-6 * (1.0 + near.abs().sum().item()):
                raise ValueError("the map reaches beyond one packed neighbour: not a <= 5x5 full-resolution kernel")
            weight[:, ci] = near
    conv = nn.Conv2d(in_channels, out_channels * SCALE**2, 3, padding=1)
    conv.weight.data.copy_(weight)
    conv.bias.data.copy_(bias[:, c, c])
    return conv


class FineGrainedAttention(nn.Module):
    """Channel then spatial attention, both computed from a local neighbourhood.

    Channel attention uses a ``window``-sized average instead of global pooling so that tiles
    agree with the whole frame; spatial attention is CBAM-style (mean and max over channels).

    The average is taken after the first 1x1 reduction and as two 1-D passes, which is the same
    function as averaging first (a quarter of the channels to pool, 14 taps instead of 49):
    the 1x1 convolution is affine and the average is a convex combination, so they commute; and
    the mean over a window clipped to the frame (``count_include_pad=False``) is the mean over its
    rows of the mean over its columns, since a clipped square is a product of clipped intervals.
    Pooling was a quarter of a training step before this (``tools/train_throughput.py``).
    """

    def __init__(self, channels: int, reduction: int = 4, window: int = 7) -> None:
        super().__init__()
        self.window = window
        self.channel = nn.Sequential(
            nn.Conv2d(channels, channels // reduction, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels // reduction, channels, 1),
            nn.Sigmoid(),
        )
        self.spatial = nn.Sequential(nn.Conv2d(2, 1, 5, padding=2), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        reduce, relu, expand, sigmoid = self.channel
        x = x * sigmoid(expand(relu(local_mean(reduce(x), self.window))))
        stats = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * self.spatial(stats)


def local_mean(x: torch.Tensor, window: int) -> torch.Tensor:
    """Mean of each ``window`` x ``window`` neighbourhood ``(N, C, h, w)`` -> same shape, over the
    part inside the frame (equal to ``AvgPool2d(window, 1, window // 2, count_include_pad=False)``)."""
    pad = window // 2
    x = F.avg_pool2d(x, (window, 1), stride=1, padding=(pad, 0), count_include_pad=False)
    return F.avg_pool2d(x, (1, window), stride=1, padding=(0, pad), count_include_pad=False)


class AttentionBlock(nn.Module):
    """Residual block: conv-act-conv (``convs=2``) or conv-act (``convs=1``), fine-grained
    attention (or none: ``attention=False``), identity skip."""

    def __init__(self, channels: int, convs: int = 2, attention: bool = True) -> None:
        super().__init__()
        if convs not in (1, 2):
            raise ValueError(f"an attention block has 1 or 2 convolutions, not {convs}")
        layers = [nn.Conv2d(channels, channels, 3, padding=1), nn.LeakyReLU(0.1, inplace=True)]
        if convs == 2:
            layers.append(nn.Conv2d(channels, channels, 3, padding=1))
        self.body = nn.Sequential(*layers)
        self.attention = FineGrainedAttention(channels) if attention else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.attention(self.body(x))


class Up(nn.Module):
    """Upsampling by 2 followed by a skip addition.

    ``subpixel``: a 1x1 convolution to 4x the channels, then depth-to-space; each coarse feature
    paints its own 2x2 block, and three such levels leave an 8-pixel period in flat areas.
    ``bilinear``: a 1x1 convolution at the coarse level, then bilinear upsampling, which has no
    period and costs a quarter of the multiply-adds.
    """

    def __init__(self, c_in: int, c_out: int, mode: str = "subpixel") -> None:
        super().__init__()
        if mode not in ("subpixel", "bilinear"):
            raise ValueError(f"unknown skip upsampling {mode!r}")
        self.mode = mode
        self.conv = nn.Conv2d(c_in, (4 if mode == "subpixel" else 1) * c_out, 1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        if self.mode == "subpixel":
            return F.pixel_shuffle(self.conv(x), 2) + skip
        return F.interpolate(self.conv(x), scale_factor=2, mode="bilinear", align_corners=False) + skip


class UpsamplingBlock(nn.Module):
    """The plug-and-play block that goes from packed (half) to full resolution.

    Depth-to-space of learned features, then a learned refinement at full resolution that also
    sees the fixed base estimate; outputs a residual to add to it. The refinement's weights are
    full-resolution 3x3 kernels; :meth:`forward` runs them in packed form (the same function,
    see :func:`packed_kernel`), :meth:`full_resolution` as written.
    """

    def __init__(self, channels: int, full_channels: int = 8) -> None:
        super().__init__()
        self.expand = nn.Conv2d(channels, SCALE**2 * full_channels, 3, padding=1)
        self.refine = nn.Sequential(
            nn.Conv2d(full_channels + 3, full_channels, 3, padding=1),
            nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(full_channels, 3, 3, padding=1),
        )
        # start as the plain base demosaic: the residual is zero until training moves it
        nn.init.zeros_(self.refine[-1].weight)
        nn.init.zeros_(self.refine[-1].bias)

    def forward(self, feats: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        """Features ``(N, c1, h, w)`` and the packed base ``(N, 12, h, w)`` -> packed residual ``(N, 12, h, w)``."""
        first, act, last = self.refine
        # packed channel order 4c + phase: [expand, base] is the full-resolution [features, base]
        x = torch.cat([self.expand(feats), base], dim=1)  # (N, 4 * (full_channels + 3), h, w): 44 at 8
        x = act(F.conv2d(x, *packed_kernel(first.weight, first.bias), padding=1))  # (N, 4 * full_channels, h, w)
        return F.conv2d(x, *packed_kernel(last.weight, last.bias), padding=1)  # (N, 12, h, w)

    def full_resolution(self, feats: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        """The same function at full resolution: base ``(N, 3, 2h, 2w)`` -> residual ``(N, 3, 2h, 2w)``."""
        full = F.pixel_shuffle(self.expand(feats), SCALE)
        return self.refine(torch.cat([full, base], dim=1))


def log_offset(x: torch.Tensor) -> torch.Tensor:
    """The log domain's offset for input ``(N, C, h, w)``: ``LOG_FLOOR`` plus each packed value's
    noise standard deviation (its noise planes; none: the floor alone), ``(N, 4, h, w)``."""
    floor = torch.full_like(x[:, :4], LOG_FLOOR)
    return floor + x[:, 4:8] if x.shape[1] >= 8 else floor


def to_log(x: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """The log domain's network input: ``log(max(x, 0) + offset)`` of the 4 planes, and each
    noise plane relative to ``max(x, 0) + offset`` (the noise of the log, to first order)."""
    lifted = x[:, :4].clamp_min(0) + offset
    return torch.cat([lifted.log(), x[:, 4:] / lifted], dim=1)


class LWISP(nn.Module):
    """LW-ISP-style U-Net on packed Bayer planes.

    widths: channels at 1/2, 1/4 and 1/8 of full resolution (the packed level first).
    in_channels: 4 packed planes, plus 4 noise planes when the model denoises (``CHANNELS``).
    skip: how the decoder upsamples before each skip addition (``Up``): subpixel | bilinear.
    base: the fixed demosaic the network corrects (``BASES``): bilinear | mhc.
    domain: ``linear``, the network sees the planes and adds its output to the base; ``log``,
    it works on ratios: it sees ``log(x + offset)`` and the noise relative to ``x + offset``, and
    its output multiplies the base, ``(base + offset) * exp(out) - offset`` (the offset is
    ``LOG_FLOOR`` plus the noise's standard deviation). Colour differences between channels
    become ratios, which do not depend on brightness (as LibRaw's DHT interpolates).
    block_convs: 3x3 convolutions in each attention block (2, or 1 for a cheaper network).
    packed_attention: whether the two blocks at packed resolution have attention (its pooling
    and reductions cost a tenth of a tile there, whatever the widths; docs/speed.md).
    full_channels: feature channels per full-resolution pixel in the upsampling block (8; 4 halves
    the full-resolution tail, which does not shrink with the widths).
    """

    def __init__(self, widths: tuple[int, int, int] = (24, 48, 96), in_channels: int = CHANNELS,
                 skip: str = "subpixel", base: str = "bilinear", domain: str = "linear",
                 block_convs: int = 2, packed_attention: bool = True, full_channels: int = 8) -> None:
        super().__init__()
        if domain not in DOMAINS:
            raise ValueError(f"unknown domain {domain!r}; choose from {', '.join(DOMAINS)}")
        c1, c2, c3 = widths
        self.widths = tuple(widths)
        self.skip, self.base, self.domain = skip, base, domain
        self.block_convs, self.packed_attention, self.full_channels = block_convs, packed_attention, full_channels
        self.demosaic = BASES[base]
        self.head = nn.Sequential(nn.Conv2d(in_channels, c1, 3, padding=1), nn.LeakyReLU(0.1, inplace=True))
        self.enc1 = AttentionBlock(c1, block_convs, packed_attention)
        self.down1 = nn.Conv2d(c1, c2, 3, stride=2, padding=1)
        self.enc2 = AttentionBlock(c2, block_convs)
        self.down2 = nn.Conv2d(c2, c3, 3, stride=2, padding=1)
        self.bottom = AttentionBlock(c3, block_convs)
        self.up2 = Up(c3, c2, skip)
        self.dec2 = AttentionBlock(c2, block_convs)
        self.up1 = Up(c2, c1, skip)
        self.dec1 = AttentionBlock(c1, block_convs, packed_attention)
        self.upsample = UpsamplingBlock(c1, full_channels)
        # the fixed base demosaic as a packed convolution; not weights (not saved, not trained)
        base_conv = packed_linear(self.demosaic, 4, 3)
        self.register_buffer("base_weight", base_conv.weight.detach(), persistent=False)
        self.register_buffer("base_bias", base_conv.bias.detach(), persistent=False)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> LWISP:
        """The network a run's configuration or a card's ``architecture`` describes; settings it
        does not name (older runs and cards) take the defaults."""
        names = ("skip", "base", "domain", "block_convs", "packed_attention", "full_channels")
        return cls(tuple(settings.get("widths", (24, 48, 96))), **{k: settings[k] for k in names if k in settings})

    def forward(self, x: torch.Tensor, return_features: bool = False, packed: bool = True):
        """Input ``(N, 8, h, w)`` -> linear camera RGB ``(N, 3, 2h, 2w)``; ``packed=False`` runs
        the full-resolution tail as written (the same function, slower: for tests and op counts)."""
        offset = log_offset(x) if self.domain == "log" else None  # (N, 4, h, w)
        e1 = self.enc1(self.head(x if offset is None else to_log(x, offset)))  # (N, c1, h, w)
        e2 = self.enc2(self.down1(e1))  # (N, c2, h/2, w/2)
        b = self.bottom(self.down2(e2))  # (N, c3, h/4, w/4)
        d2 = self.dec2(self.up2(b, e2))  # (N, c2, h/2, w/2)
        d1 = self.dec1(self.up1(d2, e1))  # (N, c1, h, w)
        if packed:
            def demosaic(planes: torch.Tensor) -> torch.Tensor:  # (N, 4, h, w) -> packed (N, 12, h, w)
                return F.conv2d(planes, self.base_weight, self.base_bias, padding=1)
            tail, finish = self.upsample, lambda y: F.pixel_shuffle(y, SCALE)
        else:
            demosaic, tail, finish = self.demosaic, self.upsample.full_resolution, lambda y: y
        base = demosaic(x[:, :4])
        if offset is None:
            out = base + tail(d1, base)
        else:
            lifted = base.clamp_min(0) + demosaic(offset)  # > 0: the base demosaic's ratios
            out = lifted * torch.exp(tail(d1, lifted.log())) - demosaic(offset)
        out = finish(out)
        if return_features:
            return out, (e2, b, d1)
        return out

    def load_compatible(self, state: dict[str, torch.Tensor]) -> list[str]:
        """Load weights of any variant of the same widths; returns the names left at their initial values.

        A sub-pixel skip convolution ``(4c, c_in)`` becomes a bilinear one ``(c, c_in)`` by
        averaging its four sub-pixel phases (the mean of what it painted into each 2x2 block).
        ValueError when a weight of the same name has another shape (other widths).
        """
        own = self.state_dict()
        loaded, clashes = {}, []
        for name, value in state.items():
            if name not in own:
                continue
            if value.shape != own[name].shape and name.startswith(("up1.conv", "up2.conv")) \
                    and value.shape[0] == 4 * own[name].shape[0]:
                value = value.reshape(own[name].shape[0], 4, *value.shape[1:]).mean(dim=1)
            if value.shape != own[name].shape:
                clashes.append(name)
            loaded[name] = value
        if clashes:
            raise ValueError(f"weights of another shape ({clashes[0]}: {tuple(state[clashes[0]].shape)} "
                             f"against {tuple(own[clashes[0]].shape)}): another widths setting")
        self.load_state_dict(loaded, strict=False)
        return sorted(set(own) - set(loaded))


def count_params(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def gflop_per_mp(model: nn.Module, size: int = 64) -> float:
    """Multiply-adds x2 of convolutions per output megapixel (GFLOP/MP), by hooking Conv2d and
    ConvTranspose2d (each input pixel of a transposed convolution meets its whole kernel)."""
    total = 0

    def hook(mod: nn.Conv2d | nn.ConvTranspose2d, inp: tuple[torch.Tensor], out: torch.Tensor) -> None:
        nonlocal total
        k = mod.kernel_size[0] * mod.kernel_size[1] // mod.groups
        if isinstance(mod, nn.ConvTranspose2d):
            total += 2 * k * mod.out_channels * inp[0].numel()
        else:
            total += 2 * k * mod.in_channels * out.numel()

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    # LWISP's nominal tail (full resolution) is what its figure counts; the packed form it runs
    # costs more multiply-adds (zero taps) and is counted on the exported graph
    kwargs = {"packed": False} if isinstance(model, LWISP) else {}
    with torch.no_grad():
        model(torch.zeros(1, CHANNELS, size, size), **kwargs)
    for h in handles:
        h.remove()
    out_pixels = (2 * size) ** 2
    # LWISP's fixed demosaic runs at inference too, as graph operations, not Conv2d modules (the
    # exported PackedLWISP has it as a Conv2d, counted by the hook, and no ``base`` attribute)
    base = getattr(model, "base", None)
    if base is not None:
        total += 2 * out_pixels * (9 * 3 if base == "bilinear" else 25 * 4)
    return total / out_pixels * 1e6 / 1e9
