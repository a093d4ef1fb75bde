"""The exported graph: LWISP's function with its full-resolution stage computed in packed space.

A convolution on a full-resolution image that is the depth-to-space of packed planes is itself
a convolution on the packed planes: full-resolution channel ``c`` at Bayer phase ``(i, j)`` is
packed channel ``4c + 2i + j`` (``pixel_shuffle``'s order), and a full-resolution kernel of up to
5x5 reaches packed neighbours at most one away, so it becomes a 3x3 packed kernel (with zero
taps where a phase pair does not meet). Zero padding of 1 or 2 full-resolution pixels is zero
padding of one packed pixel, so borders agree too.

Likewise a sub-pixel skip (1x1 convolution to 4C channels, then depth-to-space) is a transposed
convolution with a 2x2 kernel and stride 2 (:class:`TransposedUp`).

Why: onnxruntime's depth-to-space is a slow memory shuffle and forces layout reorders, and it
runs the full-resolution tail of LWISP (depth-to-space of 32 channels, a concatenation with the
base demosaic, two 3x3 convolutions of 11 -> 8 -> 3 channels) on narrow tensors that fill its
16-wide vector blocks badly; on packed planes (44 -> 32 -> 12 channels) the tail runs faster
although its zero taps add 6 GFLOP/MP of multiply-adds. Per 704x704 packed tile on the 2-core
machine (median of 8): 0.690 s as trained, 0.643 s with the packed tail, 0.527 s with transposed
skips as well. The output is the same function (to float rounding): ``tests/test_packed_export.py``.

Mirrors: :func:`pack_conv` turns a full-resolution ``Conv2d`` into the packed one and
:func:`unpack_conv` recovers it; :func:`unpack_state` turns an exported graph's weights back into
LWISP's (fine-tuning from an exported model).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rawisp.engines.contract import SCALE
from rawisp.train.model import LWISP, log_offset, packed_linear, to_log  # noqa: F401 (packed_linear: part of this module's surface)

PHASES = SCALE * SCALE  # Bayer phases: packed channels per full-resolution channel


def pack_conv(conv: nn.Conv2d) -> nn.Conv2d:
    """The packed 3x3 convolution equal to full-resolution ``conv`` (stride 1, odd kernel <= 5,
    'same' zero padding) applied to the depth-to-space of its input."""
    if conv.stride != (1, 1) or conv.groups != 1 or conv.kernel_size[0] > 5 or conv.padding[0] != conv.kernel_size[0] // 2:
        raise ValueError(f"cannot pack {conv}")
    return packed_linear(lambda p: conv(F.pixel_shuffle(p, SCALE)), conv.in_channels * PHASES, conv.out_channels)


def unpack_conv(weight: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mirror of :func:`pack_conv` for a full-resolution 3x3 kernel: packed weights
    ``(4 c_out, 4 c_in, 3, 3)`` and bias ``(4 c_out,)`` -> full-resolution ``(c_out, c_in, 3, 3)``, ``(c_out,)``.

    Bayer phase (0, 0) of each output sees every full-resolution tap: tap ``d`` (-1..1) along an
    axis is packed offset ``d // 2`` at input phase ``d % 2``.
    """
    c_out, c_in = weight.shape[0] // PHASES, weight.shape[1] // PHASES
    packed = weight.reshape(c_out, PHASES, c_in, SCALE, SCALE, 3, 3)[:, 0]  # (c_out, c_in, i', j', qy, qx)
    full = torch.empty(c_out, c_in, 3, 3, dtype=weight.dtype)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            full[:, :, dy + 1, dx + 1] = packed[:, :, dy % 2, dx % 2, dy // 2 + 1, dx // 2 + 1]
    return full, bias.reshape(c_out, PHASES)[:, 0].clone()


class TransposedUp(nn.Module):
    """A sub-pixel ``model.Up`` as one transposed convolution: ``pixel_shuffle(conv1x1(x)) + skip``.

    Output channel ``c`` at phase ``(i, j)`` of the depth-to-space is conv channel ``4c + 2i + j``:
    the transposed kernel ``(c_in, c, 2, 2)`` holds those weights. The conv's bias differs between
    the four phases, which a transposed convolution's per-channel bias cannot say, so it is the
    weight of an extra input channel of ones.
    """

    def __init__(self, up: nn.Module) -> None:
        super().__init__()
        weight, bias = up.conv.weight.data[:, :, 0, 0], up.conv.bias.data  # (4C, c_in), (4C,)
        c = weight.shape[0] // PHASES
        kernel = weight.reshape(c, SCALE, SCALE, -1).permute(3, 0, 1, 2)  # (c_in, C, 2, 2)
        self.conv = nn.ConvTranspose2d(kernel.shape[0] + 1, c, SCALE, stride=SCALE, bias=False)
        self.conv.weight.data.copy_(torch.cat([kernel, bias.reshape(1, c, SCALE, SCALE)]))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        ones = torch.ones_like(x[:, :1])  # (N, 1, h, w): carries the bias
        return self.conv(torch.cat([x, ones], dim=1)) + skip


def untranspose_up(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mirror of :class:`TransposedUp`: its weight ``(c_in + 1, C, 2, 2)`` -> the sub-pixel
    conv's weight ``(4C, c_in, 1, 1)`` and bias ``(4C,)``."""
    c = weight.shape[1]
    conv = weight[:-1].permute(1, 2, 3, 0).reshape(PHASES * c, -1)
    return conv[:, :, None, None].contiguous(), weight[-1].reshape(PHASES * c).clone()


class PackedLWISP(nn.Module):
    """``model``'s function for export: same input ``(N, 8, h, w)`` and output ``(N, 3, 2h, 2w)``.

    The U-Net runs as in ``model`` (its modules are shared, under the same names), sub-pixel
    skips as :class:`TransposedUp`; the base demosaic and the upsampling block's refinement run
    on packed planes (``base_packed``, ``upsample.refine_packed``) and only the final 3-channel
    sum is depth-to-spaced.
    """

    def __init__(self, model: LWISP) -> None:
        super().__init__()
        for name in ("head", "enc1", "down1", "enc2", "down2", "bottom", "dec2", "dec1"):
            setattr(self, name, getattr(model, name))
        for name in ("up2", "up1"):
            up = getattr(model, name)
            setattr(self, name, TransposedUp(up) if up.mode == "subpixel" else up)
        up = model.upsample
        self.upsample = nn.Module()
        self.upsample.expand = up.expand  # (N, 4 * full_channels, h, w) is already the packed form
        self.upsample.refine_packed = nn.Sequential(pack_conv(up.refine[0]), up.refine[1], pack_conv(up.refine[2]))
        self.base_packed = packed_linear(model.demosaic, 4, 3)
        self.domain = model.domain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        offset = log_offset(x) if self.domain == "log" else None  # (N, 4, h, w)
        e1 = self.enc1(self.head(x if offset is None else to_log(x, offset)))  # (N, c1, h, w)
        e2 = self.enc2(self.down1(e1))  # (N, c2, h/2, w/2)
        b = self.bottom(self.down2(e2))  # (N, c3, h/4, w/4)
        d1 = self.dec1(self.up1(self.dec2(self.up2(b, e2)), e1))  # (N, c1, h, w)
        base = self.base_packed(x[:, :4])  # (N, 12, h, w): the base demosaic, packed
        if offset is not None:  # LWISP's log domain: the tail sees and scales the lifted base
            lifted_offset = self.base_packed(offset)
            base = base.clamp_min(0) + lifted_offset
        # packed channel order 4c + phase: concatenating [expand, base] is the full-resolution
        # concatenation [features, base] that the refinement was trained on
        tail_base = base if offset is None else base.log()
        residual = self.upsample.refine_packed(torch.cat([self.upsample.expand(d1), tail_base], dim=1))
        out = base + residual if offset is None else base * torch.exp(residual) - lifted_offset
        return F.pixel_shuffle(out, SCALE)  # (N, 3, 2h, 2w)


def unpack_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Weights of an exported graph -> LWISP's names and shapes (``base_packed`` dropped: the base
    demosaic has no weights in LWISP). Other states pass through unchanged."""
    if "upsample.refine_packed.0.weight" not in state:
        return state
    out = {k: v for k, v in state.items() if not k.startswith(("upsample.refine_packed.", "base_packed."))}
    for i in (0, 2):
        w, b = unpack_conv(state[f"upsample.refine_packed.{i}.weight"], state[f"upsample.refine_packed.{i}.bias"])
        out[f"upsample.refine.{i}.weight"], out[f"upsample.refine.{i}.bias"] = w, b
    for name in ("up1", "up2"):
        weight = out[f"{name}.conv.weight"]
        if f"{name}.conv.bias" not in out:  # a TransposedUp: (c_in + 1, C, 2, 2), no bias of its own
            out[f"{name}.conv.weight"], out[f"{name}.conv.bias"] = untranspose_up(weight)
    return out
