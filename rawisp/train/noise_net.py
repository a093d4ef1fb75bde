"""A tiny CNN that reads the noise level of a raw frame (the noise-estimation branch of CBDNet,
Guo et al. 2019, for raw Poisson-Gaussian noise), trained on the same unprocessed photos as the
model and exported to ONNX for ``rawisp.noise_net``.

Input ``(N, 4, h, w)``: RGGB planes in normalised raw units *before* white balance. Output
``(N, 2, h, w)``: ln(variance + VAR_FLOOR) of the green noise at each packed pixel's signal level,
and a pooling weight logit (how far to trust that pixel's reading: the robust pooling).
Fixed layers first turn the planes into local statistics (log energy of each plane's high-pass
and of the green-diagonal residual, which cancels the signal up to its curvature; correlations
between planes and between neighbours, high for texture and near 0 for noise; log brightness);
four 3x3 convolutions then learn how much of the energy is noise. The prediction is a residual
over the green-diagonal energy, so an untrained network is the classic residual estimator.
The frame's (shot, read) come from a robust per-brightness pooling of the map (``noise_net``).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rawisp.train.data import pack_rggb, random_cam_from_srgb, srgb_decode

# variances below this count as clean: sigma 1e-3 at mid-grey costs nothing measurable on clean
# frames (told to the model, held-out photos). A lower floor made the clean crops' errors (texture
# read as noise: ln 1e-5 against ln 1e-8) dominate the loss, and the network learned to read every
# frame low (half the sigma at mid and high noise).
VAR_FLOOR = 1e-6
EPS = 1e-12
FEATURES = 11


def _box(x: torch.Tensor, size: int) -> torch.Tensor:
    """Mean over a size x size window, same shape (edges replicated)."""
    pad = size // 2
    return F.avg_pool2d(F.pad(x, (pad, pad, pad, pad), mode="replicate"), size, stride=1)


def _corr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Local (5x5) correlation of two zero-mean maps."""
    return _box(a * b, 5) / torch.sqrt(_box(a * a, 5) * _box(b * b, 5) + EPS)


def features(raw: torch.Tensor) -> torch.Tensor:
    """Planes ``(N, 4, h, w)`` -> local statistics ``(N, FEATURES, h, w)`` (see the module)."""
    high = raw - _box(raw, 3)
    energy = torch.log(_box(high * high, 5) + EPS)
    g1, g2 = raw[:, 1:2], raw[:, 2:3]
    # G1 (i, j) sits at full resolution (2i, 2j+1); its diagonal neighbours are G2 (i-1|i, j|j+1)
    g2p = F.pad(g2, (0, 1, 1, 0), mode="replicate")
    around = (g2p[:, :, :-1, :-1] + g2p[:, :, :-1, 1:] + g2p[:, :, 1:, :-1] + g2p[:, :, 1:, 1:]) / 4
    diag = g1 - around
    diag_energy = torch.log(_box(diag * diag, 5) / 1.25 + EPS)
    h = high
    right = F.pad(h[:, 1:2, :, 1:], (0, 1, 0, 0), mode="replicate")
    down = F.pad(h[:, 1:2, 1:, :], (0, 0, 0, 1), mode="replicate")
    corr = torch.cat([_corr(h[:, 1:2], h[:, 2:3]), _corr(h[:, 0:1], h[:, 1:2]), _corr(h[:, 3:4], h[:, 2:3]),
                      _corr(h[:, 1:2], right), _corr(h[:, 1:2], down)], dim=1)
    level = torch.log(_box((g1 + g2) / 2, 3).clamp_min(0) + 1e-3)
    return torch.cat([energy, diag_energy, corr, level], dim=1)


class NoiseNet(nn.Module):
    """Statistics -> four 3x3 convolutions (dilated 1, 2, 4, 1: a 17-pixel view of the texture
    around each pixel) -> two maps: ln(green noise variance + VAR_FLOOR) per pixel, and a pooling
    weight (logit): how much each pixel's reading should count in the frame's estimate."""

    def __init__(self, width: int = 24) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = FEATURES
        for dilation in (1, 2, 4):
            layers += [nn.Conv2d(channels, width, 3, padding=dilation, dilation=dilation, padding_mode="replicate"),
                       nn.ReLU()]
            channels = width
        layers.append(nn.Conv2d(width, 2, 3, padding=1, padding_mode="replicate"))
        self.body = nn.Sequential(*layers)

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        f = features(raw)
        base = torch.log(torch.exp(f[:, 4:5]) + VAR_FLOOR)  # the green-diagonal residual's energy
        out = self.body(f)
        return torch.cat([base + out[:, :1], out[:, 1:]], dim=1)


def pooled_error(out: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per crop ``(N,)``: the weighted mean of (ln variance - target), weights softmax(logit) over
    the crop's valid pixels: the error of the frame estimate the runtime pools the same way."""
    logit = out[:, 1:].masked_fill(mask == 0, -1e4).flatten(1)
    weight = torch.softmax(logit, dim=1)
    return (weight * (out[:, :1] - target).flatten(1)).sum(dim=1)


EXPOSURE = (0.1, 2.0)  # range of the exposure scale (log-uniform) applied to the linear photos


def synthesise(srgb: torch.Tensor, gen: torch.Generator,
               exposure_range: tuple[float, float] = EXPOSURE) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Noisy raw planes, their target map and a validity mask from sRGB crops ``(N, 3, H, W)``.

    As rawisp.train.data unprocesses (inverse sRGB, random camera matrix, as-shot neutral, RGGB),
    with a wider range of exposure (``exposure_range``, default 0.1-2.0: pushed, dark frames too) and of noise (shot
    3e-6..3e-2 log-uniform, read = sqrt(shot) x 0.003..0.1, 15% clean), 10-, 12- or 14-bit
    quantisation, and the white-balance clip at 1 that ``normalise`` applies.
    """
    n = srgb.shape[0]
    lo, hi = (math.log(e) for e in exposure_range)
    exposure = torch.exp(torch.empty(n).uniform_(lo, hi, generator=gen))
    lin = srgb_decode(srgb) * exposure[:, None, None, None]
    cam = torch.einsum("nij,njhw->nihw", random_cam_from_srgb(n, gen), lin)
    neutral = torch.stack([torch.empty(n).uniform_(0.3, 0.95, generator=gen), torch.ones(n),
                           torch.empty(n).uniform_(0.3, 0.95, generator=gen)], dim=1)[:, [0, 1, 1, 2]]
    clean = (pack_rggb(cam) * neutral[:, :, None, None]).clamp(0, 1)
    shot = torch.exp(torch.empty(n).uniform_(math.log(3e-6), math.log(3e-2), generator=gen))
    read = shot.sqrt() * torch.exp(torch.empty(n).uniform_(math.log(0.003), math.log(0.1), generator=gen))
    is_clean = torch.rand(n, generator=gen) < 0.15
    shot, read = torch.where(is_clean, 0.0, shot), torch.where(is_clean, 0.0, read)
    levels = torch.tensor([1023.0, 3839.0, 16383.0])[torch.randint(0, 3, (n,), generator=gen)]
    s, r, q = shot[:, None, None, None], read[:, None, None, None], levels[:, None, None, None]
    raw = clean + torch.sqrt(s * clean + r * r) * torch.randn(clean.shape, generator=gen)
    raw = torch.round(raw * q) / q
    gains = 1 / neutral[:, :, None, None]
    raw = (raw * gains).clamp(max=1.0) / gains  # normalise's clip at 1 after white balance
    green = (clean[:, 1:2] + clean[:, 2:3]) / 2
    target = torch.log(s * green + r * r + 1 / (12 * q * q) + VAR_FLOOR)
    mask = (green * gains[:, 1:2] < 0.9).float()
    return raw, target, mask


def train_noise_net(photos: list[np.ndarray], iterations: int, batch: int, patch: int, seed: int,
                    lr: float = 2e-3, log=print, snapshot=None, every: int = 250,
                    exposure_range: tuple[float, float] = EXPOSURE) -> NoiseNet:
    """Train on random crops of ``photos`` (uint8 sRGB).

    Loss: per crop, |pooled error| (``pooled_error``: the frame estimate pools the map with the
    learned weights, so the network learns to trust flat, noise-only pixels and to distrust texture:
    a plain mean over the map came out up to e^2 off on detailed photos, texture swamping the noise)
    plus the per-pixel L1 / 4 (which keeps the map itself meaningful).
    ``snapshot(net, iteration)``, if given, is called every ``every`` iterations (in eval mode, then
    back), for choosing a checkpoint on validation photos afterwards."""
    from rawisp.train.data import Sampler

    torch.manual_seed(seed)
    sampler = Sampler(photos, patch, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    net = NoiseNet()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=iterations, pct_start=0.1)
    running = 0.0
    for it in range(1, iterations + 1):
        raw, target, mask = synthesise(sampler.crops(batch), gen, exposure_range)
        out = net(raw)
        pixel_error = (out[:, :1] - target).abs() * mask
        loss = pooled_error(out, target, mask).abs().mean() + 0.25 * pixel_error.sum() / mask.sum().clamp_min(1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        running = 0.98 * running + 0.02 * loss.item() if it > 1 else loss.item()
        if it % 100 == 0 or it == iterations:
            log(f"iteration {it}: loss {running:.3f}")
        if snapshot is not None and it % every == 0:
            snapshot(net.eval(), it)
            net.train()
    return net.eval()


def export_onnx(net: NoiseNet, path: str) -> None:
    """Write the network as ONNX with free batch, height and width (input "raw", output "noise")."""
    dummy = torch.rand(1, 4, 64, 64) * 0.5
    torch.onnx.export(net, dummy, path, input_names=["raw"], output_names=["noise"], opset_version=17,
                      dynamic_axes={"raw": {0: "n", 2: "h", 3: "w"}, "noise": {0: "n", 2: "h", 3: "w"}},
                      dynamo=False)
