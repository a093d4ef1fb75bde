"""Training throughput: CPU seconds per training step, and where they go.

    python tools/train_throughput.py                      # the model as trained today
    python tools/train_throughput.py --as-written         # the same function as first written
    python tools/train_throughput.py --threads 2          # CPU cost of a second thread

A step is what ``rawisp train`` does per iteration with the stage-11 recipe: 16 crops of 128 px
(30% clean, 15% procedural, 20% colour-decorrelated, 20% flat) through forward, L1 loss and
backward, plus the pattern loss's 4 flat crops of 96 px, then Adam. Times are process CPU time
(every thread's), so they are what ``--cpu-budget`` pays; the first two steps are left out.

``--as-written`` runs the network as it was before the throughput work of issue #27, the same
function (tests/test_train_speed.py checks it): the attention's 7x7 average pooled before the
1x1 reduction, the tail at full resolution, tensors in the default (channels-first) layout.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch import nn
import torch.nn.functional as F

from rawisp.train.data import Sampler, load_photos
from rawisp.train.losses import pattern_loss, reconstruction_loss
from rawisp.train.loop import PATTERN_BATCH, PATTERN_PATCH
from rawisp.train.model import LWISP, FineGrainedAttention

PHOTOS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "train" / "sun_hays80"


def pool_first_attention(module: FineGrainedAttention, x: torch.Tensor) -> torch.Tensor:
    """``module``'s function as first written: the 7x7 local mean of every channel, then the 1x1 reduction."""
    pad = module.window // 2
    pooled = F.avg_pool2d(x, module.window, stride=1, padding=pad, count_include_pad=False)
    x = x * module.channel(pooled)
    stats = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
    return x * module.spatial(stats)


def as_written(model: LWISP) -> LWISP:
    """``model`` running as first written (same weights, same function, slower)."""
    for m in model.modules():
        if isinstance(m, FineGrainedAttention):
            m.forward = lambda x, m=m: pool_first_attention(m, x)
    plain = model.forward
    model.forward = lambda x, **kw: plain(x, packed=False, **kw)
    return model


def measure(model: nn.Module, sampler: Sampler, flats: Sampler, steps: int, layout: torch.memory_format) -> dict:
    """Mean CPU seconds per step of data, forward, backward and optimiser over ``steps`` steps."""
    model = model.to(memory_format=layout)
    opt = torch.optim.Adam(model.parameters(), 1e-4)
    parts = dict.fromkeys(("data", "forward", "backward", "optimiser"), 0.0)
    for step in range(steps + 2):
        t0 = time.process_time()
        batch, flat = sampler.batch(16), flats.batch(PATTERN_BATCH)
        x, x_flat = (t.contiguous(memory_format=layout) for t in (batch.x, flat.x_clean))
        t1 = time.process_time()
        loss = reconstruction_loss("l1", model(x), batch.y, batch.m) + 2 * pattern_loss(model(x_flat), flat.y)
        t2 = time.process_time()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t3 = time.process_time()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        t4 = time.process_time()
        if step >= 2:  # the first steps allocate and pick kernels
            for key, dt in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                parts[key] += dt / steps
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--as-written", action="store_true", help="the network as first written (same function)")
    parser.add_argument("--photos", type=Path, default=PHOTOS, help="folder of sRGB photos [%(default)s]")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    photos = load_photos([args.photos], min_side=128)
    sampler = Sampler(photos, 128, 0, 0.3, procedural_fraction=0.15, colour_fraction=0.2, flat_fraction=0.2)
    flats = Sampler(photos, PATTERN_PATCH, 1, clean_fraction=1.0, flat_fraction=1.0)
    model = as_written(LWISP()) if args.as_written else LWISP()
    layout = torch.contiguous_format if args.as_written else torch.channels_last
    parts = measure(model, sampler, flats, args.steps, layout)
    total = sum(parts.values())
    print(f"{'as written' if args.as_written else 'as trained'}, {args.threads} thread(s): "
          f"{total:.3f} CPU-s per step, {1 / total:.2f} iterations per CPU-second")
    print("  " + ", ".join(f"{k} {v:.3f}" for k, v in parts.items()))


if __name__ == "__main__":
    main()
