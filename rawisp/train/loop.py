"""The training loop: resumable checkpoints, a log, validation PSNR, ONNX export at the end."""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel
from tqdm import tqdm

from rawisp.measure.protocol import NOISE_PRESETS
from rawisp.measure.texture import measure as texture_measure, target as texture_target
from rawisp.train.data import Sampler, load_photos, random_cam_from_srgb, srgb_decode, synthesise
from rawisp.train.losses import pattern_loss, psnr, reconstruction_loss, render_srgb
from rawisp.train.model import LWISP
from rawisp.train.procedural import colour_augment, colour_edges, procedural
from rawisp.train.packed import unpack_state

VAL_NOISE = NOISE_PRESETS  # validation at the evaluation protocol's clean / mid / high (normalised units)
VAL_SETS = (*VAL_NOISE, "saturated", "procedural", "edges")  # every validation PSNR, in report order
VAL_CROP = 128  # side of the validation centre crops (full resolution)
PRECISIONS = ("f32", "bf16")  # of the training forward pass (autocast)
VAL_TEXTURE = ("mid", "high")  # presets of the texture MTF of the dark dead leaves, texture_PRESET in the history
VAL_TEXTURE_SIZE = 256  # side of that dead-leaves target (full resolution)
PATTERN_BATCH, PATTERN_PATCH = 4, 96  # the pattern loss's flat crops per iteration and their side (px)


@dataclass
class TrainConfig:
    """Everything that defines a training run (stored in checkpoints and the model card)."""

    data: list[str]
    out: str
    run_dir: str
    iterations: int = 9000
    batch: int = 16
    patch: int = 128  # full-resolution crop side, multiple of 8
    lr: float = 2e-3
    loss: str = "l1"
    widths: tuple[int, int, int] = (24, 48, 96)
    seed: int = 0
    threads: int = 1  # CPU threads; 0: torch's default (every core). 1 costs the least CPU per step
    val_every: int = 250
    teacher: str | None = None  # checkpoint of a teacher for heterogeneous distillation
    teacher_mode: bool = False  # train a teacher: sees the clean mosaic
    init: str | None = None  # start from this checkpoint's (or shipped .onnx model's) weights, and its optimiser state
    distill_weight: float = 0.5
    val_holdout: int = 40
    clean_fraction: float = 0.2  # share of training crops without noise
    hard_fraction: float = 0.0  # share of training crops mined for demosaicking difficulty
    device: str = "auto"  # auto: CUDA when torch sees a GPU, else CPU
    skip: str = "subpixel"  # decoder upsampling before each skip: subpixel | bilinear (model.Up)
    base: str = "bilinear"  # fixed demosaic the network corrects: bilinear | mhc (model.BASES)
    domain: str = "linear"  # where the network works: linear | log (ratios; model.LWISP)
    block_convs: int = 2  # 3x3 convolutions per attention block (1: a cheaper network)
    packed_attention: bool = True  # attention in the blocks at packed resolution
    full_channels: int = 8  # features per full-resolution pixel in the upsampling block (4: a cheaper tail)
    procedural_fraction: float = 0.0  # share of crops replaced by procedural images
    colour_fraction: float = 0.0  # share of photo crops with decorrelated colours
    neutral_above_green: float = 0.0  # share of crops whose as-shot neutral has R or B above G
    flat_fraction: float = 0.0  # share of crops replaced by flat, mostly dark colours
    texture_fraction: float = 0.0  # share of crops replaced by low-contrast 1/f texture
    pattern_weight: float = 0.0  # weight of the pattern loss on an extra batch of noise-free flat crops
    mse_weight: float = 0.0  # weight of an sRGB mean-squared-error term added to the loss
    overstated_noise: float = 0.0  # share of clean crops whose noise planes state weak noise never added
    cpu_budget: float = 0.0  # stop after this many seconds of process CPU time (0: after `iterations`)
    ema: float = 0.0  # per-iteration decay of a moving average of the weights (0: none); validated and exported
    warmup: int = 250  # iterations of linear learning-rate warm-up when Adam starts without state
    precision: str = "f32"  # bf16: forward passes under autocast (weights, gradients, Adam and validation f32)


def split_photos(photos: list[np.ndarray], holdout: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Deterministic train/validation split: every k-th photo is held out for validation."""
    if len(photos) < 2 * holdout:
        raise ValueError(f"{len(photos)} usable photos: too few to hold out {holdout} for validation")
    step = max(len(photos) // max(holdout, 1), 1)
    val = photos[::step][:holdout]
    val_ids = {id(p) for p in val}
    return [p for p in photos if id(p) not in val_ids], val


def validation_set(photos: list[np.ndarray], size: int = VAL_CROP, seed: int = 1234) -> dict:
    """Fixed validation batches: centre crops per noise preset, plus three clean sets for what photos lack.

    ``saturated``: the same crops with decorrelated colours (``colour_augment``, seeded);
    ``procedural``: seeded procedural images (dead leaves, gratings, grids, text);
    ``edges``: seeded saturated colour dead leaves (``colour_edges``: sharp colour edges).
    Also ``texture_mid`` and ``texture_high``: the dark low-contrast dead-leaves target of
    ``rawisp.measure.texture`` (one ``VAL_TEXTURE_SIZE`` image) at those presets (see :func:`validate`).
    """
    crops = []
    for p in photos:
        y, x = (p.shape[0] - size) // 2, (p.shape[1] - size) // 2
        crops.append(p[y:y + size, x:x + size])
    srgb = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255.0
    rng = np.random.default_rng(seed)
    saturated = np.stack([colour_augment(c.astype(np.float32) / 255.0, rng) for c in crops])
    generated = np.stack([procedural(rng, size) for _ in crops])
    edges_rng = np.random.default_rng(seed + 1)  # its own stream: the other sets stay as they were
    edges = np.stack([colour_edges(edges_rng, size) for _ in crops])
    n = len(crops)
    gen = torch.Generator().manual_seed(seed)
    m = random_cam_from_srgb(n, gen)
    neutral = torch.tensor([[0.5, 1.0, 0.7]]).repeat(n, 1)
    cases = [(name, srgb, shot, read) for name, (shot, read) in VAL_NOISE.items()]
    cases += [(name, torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), 0.0, 0.0)
              for name, images in (("saturated", saturated), ("procedural", generated), ("edges", edges))]
    leaves = torch.from_numpy(texture_target("dark", VAL_TEXTURE_SIZE)).permute(2, 0, 1)[None].float()
    cases += [(f"texture_{name}", leaves, *VAL_NOISE[name]) for name in VAL_TEXTURE]
    sets = {}
    for name, images, shot, read in cases:
        k = len(images)
        batch = synthesise(srgb_decode(images), m[:k], neutral[:k], torch.full((k,), shot), torch.full((k,), read),
                           torch.full((k,), 3839.0), torch.Generator().manual_seed(seed))
        sets[name] = (batch, images)
    return sets


def lr_factor(progress: float) -> float:
    """Cosine decay from 1 to 0.02 over training ``progress`` in [0, 1] (iterations or CPU time)."""
    return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))) * 0.98 + 0.02


def ema_decay(decay: float, updates: int) -> float:
    """The moving average's decay after ``updates`` updates: ``min(decay, (1 + n) / (10 + n))``.

    Warmed up as TensorFlow's ExponentialMovingAverage does with its update count: from scratch,
    a fixed 0.999 would keep half of the untrained weights in the average after 700 iterations,
    and an average of weights from such different stages of training is no network at all.
    """
    return min(decay, (1 + updates) / (10 + updates))


def ema_update(decay: float):
    """AveragedModel's ``multi_avg_fn``: the moving average of each weight, with :func:`ema_decay`."""
    def update(averages: list[torch.Tensor], current: list[torch.Tensor], updates: torch.Tensor) -> None:
        d = ema_decay(decay, int(updates))
        torch._foreach_lerp_(averages, current, 1 - d)
    return update


def warmup_factor(iteration: int, warmup: int) -> float:
    """Linear warm-up of the learning rate, (iteration + 1) / warmup, up to 1 (0-based iterations)."""
    return min(1.0, (iteration + 1) / warmup) if warmup else 1.0


def init_weights(model: LWISP, path: str | Path) -> list[str]:
    """Initialise ``model`` from a checkpoint or a shipped ONNX model; returns names left untouched.

    ValueError (one line) when the file is neither, or shares no weight with ``model``.
    """
    if Path(path).suffix == ".onnx":
        import onnx
        from onnx import numpy_helper

        try:
            graph = onnx.load(str(path)).graph
        except Exception as exc:  # protobuf raises its own DecodeError for foreign bytes
            raise ValueError(f"{path}: not an ONNX model ({type(exc).__name__})") from None
        state = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in graph.initializer}
        state = unpack_state(state)  # an exported graph's packed tail -> LWISP's weights
    else:
        state = checkpoint_weights(read_checkpoint(path))
    try:
        untouched = model.load_compatible(state)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    if len(untouched) == len(model.state_dict()):
        raise ValueError(f"{path}: shares no weights with this model (another architecture or widths)")
    return untouched


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """A batch ``(N, C, h, w)`` in the memory layout the model is kept in (same values)."""
    return x.contiguous(memory_format=torch.channels_last)


def autocast(device: torch.device, precision: str):
    """The forward pass's precision: ``bf16`` runs convolutions and matrix products in bfloat16 (CPUs with
    bf16 units, AVX512_BF16 or AMX, and GPUs; 0.70x the CPU time of an f32 step here), ``f32`` as written."""
    if precision not in PRECISIONS:
        raise ValueError(f"--precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def init_optimiser(opt: torch.optim.Optimizer, path: str | Path) -> bool:
    """Load the Adam state of the checkpoint ``path`` into ``opt`` when it fits (an ``.onnx`` model
    has none; another architecture's does not fit); returns whether it was loaded."""
    if Path(path).suffix == ".onnx":
        return False
    saved = read_checkpoint(path).get("opt")
    if not saved or len(saved["param_groups"]) != len(opt.param_groups):
        return False
    params = [p for group in opt.param_groups for p in group["params"]]
    states = saved["state"]
    if len(states) != len(params) or any(
            states[i]["exp_avg"].shape != p.shape for i, p in enumerate(params) if i in states):
        return False
    opt.load_state_dict(saved)
    return True


def training_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: torch sees no CUDA GPU (a CPU-only torch build, or no driver)")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {name!r}; choose from auto, cpu, cuda")
    return torch.device(name)


@torch.no_grad()
def validate(model: nn.Module, sets: dict, clean_input: bool = False, border: int = 8) -> dict[str, float]:
    """sRGB PSNR (dB) per set, over each crop less ``border`` pixels (on the model's device); for a
    ``texture_PRESET`` set its texture MTF (0.1-0.3 cycles/px, ``rawisp.measure.texture.measure``)
    instead, and its residual noise (% of the mean level) as ``texture_noise_PRESET``: a falling MTF
    reads as lost texture or as noise removed only beside the noise left."""
    model.eval()
    device = next(model.parameters()).device
    scores = {}
    for name, (batch, srgb) in sets.items():
        batch = batch.to(device)
        pred = model(channels_last(batch.x_clean if clean_input else batch.x))
        out = render_srgb(pred, batch.m).cpu()
        if name.startswith("texture_"):
            found = texture_measure(srgb[0].permute(1, 2, 0).numpy(), out[0].permute(1, 2, 0).numpy(),
                                    encoding="srgb")
            scores[name] = found["mtf"]
            scores[name.replace("texture_", "texture_noise_")] = found["noise_percent"]
            continue
        b = slice(border, -border)
        scores[name] = float(np.mean([psnr(out[i:i + 1, :, b, b], srgb[i:i + 1, :, b, b]) for i in range(len(out))]))
    model.train()
    return scores


class Distiller(nn.Module):
    """Heterogeneous distillation: 1x1 adapters map the student's features to the teacher's widths."""

    def __init__(self, student: LWISP, teacher: LWISP) -> None:
        super().__init__()
        self.adapters = nn.ModuleList(
            nn.Conv2d(s, t, 1) for s, t in zip(_feature_widths(student), _feature_widths(teacher))
        )

    def loss(self, s_feats, t_feats, s_out, t_out) -> torch.Tensor:
        feat = sum((a(s) - t).abs().mean() for a, s, t in zip(self.adapters, s_feats, t_feats))
        return feat / len(self.adapters) + (s_out - t_out).abs().mean()


def _feature_widths(model: LWISP) -> tuple[int, int, int]:
    c1, c2, c3 = model.widths
    return (c2, c3, c1)  # matches the features returned by LWISP.forward: (e2, bottom, d1)


def load_checkpoint_model(path: str | Path) -> tuple[LWISP, dict]:
    """Rebuild a model from a training checkpoint (its averaged weights under ``--ema``); returns
    (model, checkpoint dict)."""
    ckpt = read_checkpoint(path)
    cfg = ckpt["config"]
    model = LWISP.from_settings(cfg)
    model.load_state_dict(checkpoint_weights(ckpt))
    return model, ckpt


def checkpoint_weights(ckpt: dict) -> dict[str, torch.Tensor]:
    """The weights a checkpoint stands for: the moving average when the run kept one (``--ema``),
    else the trained weights. Resuming restores both; everything else (export, ``--init``) uses these."""
    if "ema" not in ckpt:
        return ckpt["model"]
    # AveragedModel's state: the wrapped model's under "module.", and its update count
    return {k.removeprefix("module."): v for k, v in ckpt["ema"].items() if k.startswith("module.")}


def read_checkpoint(path: str | Path) -> dict:
    """A training checkpoint's contents; ValueError (one line) if the file is not one."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises pickle, zip and runtime errors for foreign files
        raise ValueError(f"{path}: not a rawisp training checkpoint ({type(exc).__name__})") from None
    if not isinstance(ckpt, dict) or not {"model", "config", "history", "iteration"} <= ckpt.keys():
        raise ValueError(f"{path}: not a rawisp training checkpoint (missing model, config or history)")
    return ckpt


def train(cfg: TrainConfig, log=print) -> Path:
    """Run (or resume) a training; returns the path of the final checkpoint."""
    run = Path(cfg.run_dir)
    run.mkdir(parents=True, exist_ok=True)
    device = training_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.set_flush_denormal(True)  # denormal floats in small gradients can slow CPU training 10x
    torch.manual_seed(cfg.seed)
    photos = load_photos([Path(d) for d in cfg.data], min_side=max(cfg.patch, VAL_CROP))
    train_photos, val_photos = split_photos(photos, cfg.val_holdout)
    log(f"photos: {len(train_photos)} train, {len(val_photos)} validation; device {device}")
    val_sets = validation_set(val_photos)
    model = LWISP.from_settings(asdict(cfg))
    init_stages: list[dict] | None = []  # the stages behind --init, as they were when this run started
    if cfg.init:
        untouched = init_weights(model, cfg.init)
        log(f"initialised from {cfg.init}" + (f"; new: {', '.join(untouched)}" if untouched else ""))
        init_stages = init_lineage(cfg.init)
    teacher = distiller = None
    if cfg.teacher:
        teacher, _ = load_checkpoint_model(cfg.teacher)
        teacher.to(device).eval().requires_grad_(False)
        distiller = Distiller(model, teacher).to(device)
    # channels-last: the layout oneDNN's convolutions work in, so none of them reorders its
    # input and output (a fifth of a CPU step otherwise)
    model.to(device, memory_format=torch.channels_last)
    params = list(model.parameters()) + (list(distiller.parameters()) if distiller else [])
    opt = torch.optim.Adam(params, lr=cfg.lr)
    # Adam without state takes full-size steps in directions it knows nothing about: trained
    # weights lose dB (0.6 in 250 iterations of stage 12) and need thousands of iterations back.
    # An --init checkpoint lends its state; otherwise the rate warms up.
    warm_start = bool(cfg.init) and not distiller and init_optimiser(opt, cfg.init)
    if warm_start:
        log(f"optimiser state from {cfg.init}")
    # the average of the weights over about the last 1/(1 - ema) iterations: smooths the noise of
    # small-batch steps, as image-restoration networks are commonly trained (e.g. SwinIR, NAFNet)
    averaged = AveragedModel(model, multi_avg_fn=ema_update(cfg.ema)) if cfg.ema else None
    sampler = Sampler(train_photos, cfg.patch, cfg.seed, cfg.clean_fraction, cfg.hard_fraction,
                      procedural_fraction=cfg.procedural_fraction, colour_fraction=cfg.colour_fraction,
                      neutral_above_green=cfg.neutral_above_green, flat_fraction=cfg.flat_fraction,
                      overstated_noise=cfg.overstated_noise, texture_fraction=cfg.texture_fraction)
    # the pattern loss's own sampler: noise-free flat crops, seeded apart from the main batches
    flats = Sampler(train_photos, PATTERN_PATCH, cfg.seed + 1, clean_fraction=1.0,
                    flat_fraction=1.0) if cfg.pattern_weight else None
    start, history, cpu_before, best = 0, [], 0.0, None
    ckpt_path = run / "checkpoint.pt"
    if ckpt_path.exists():
        ckpt = read_checkpoint(ckpt_path)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["opt"])
        if averaged and "ema" in ckpt:
            averaged.load_state_dict(ckpt["ema"])
        if distiller and "distiller" in ckpt:
            distiller.load_state_dict(ckpt["distiller"])
        sampler.rng.bit_generator.state = ckpt["np_rng"]
        sampler.gen.set_state(ckpt["torch_gen"])
        if flats and "flat_np_rng" in ckpt:
            flats.rng.bit_generator.state = ckpt["flat_np_rng"]
            flats.gen.set_state(ckpt["flat_torch_gen"])
        start, history = ckpt["iteration"], ckpt["history"]
        cpu_before, best = ckpt.get("cpu_seconds", 0.0), resumed_best(history)
        warm_start = ckpt.get("warm_start", False)
        # None: a checkpoint from before runs recorded them; its lineage goes on following paths
        init_stages = ckpt.get("init_stages")
        stored = ckpt.get("config", {})  # a field it lacks was added since: it ran with the default
        changed = [f"{f.name} {stored.get(f.name, f.default)!r} -> {getattr(cfg, f.name)!r}" for f in fields(cfg)
                   if f.name != "widths" and stored.get(f.name, f.default) != getattr(cfg, f.name)]
        log(f"resumed at iteration {start}" + (f"; changed: {', '.join(changed)}" if changed else ""))
    t0, cpu0 = time.time(), time.process_time()

    def progress(iteration: int) -> float:
        if cfg.cpu_budget:
            return (cpu_before + time.process_time() - cpu0) / cfg.cpu_budget
        return iteration / cfg.iterations

    total = None if cfg.cpu_budget else cfg.iterations
    bar = tqdm(initial=start, total=total, dynamic_ncols=True)
    it = start
    while progress(it) < 1.0:
        for group in opt.param_groups:
            group["lr"] = cfg.lr * lr_factor(progress(it)) * (1.0 if warm_start else warmup_factor(it, cfg.warmup))
        batch = sampler.batch(cfg.batch).to(device)
        x = channels_last(batch.x_clean if cfg.teacher_mode else batch.x)
        with autocast(device, cfg.precision):
            if distiller:
                out, feats = model(x, return_features=True)
                with torch.no_grad():
                    t_out, t_feats = teacher(batch.x_clean, return_features=True)
                loss = reconstruction_loss(cfg.loss, out.float(), batch.y, batch.m, cfg.mse_weight)
                loss = loss + cfg.distill_weight * distiller.loss(feats, t_feats, out, t_out)
            else:
                out = model(x)
                loss = reconstruction_loss(cfg.loss, out.float(), batch.y, batch.m, cfg.mse_weight)
            if flats:
                flat = flats.batch(PATTERN_BATCH).to(device)
                loss = loss + cfg.pattern_weight * pattern_loss(model(channels_last(flat.x_clean)).float(), flat.y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if averaged:
            averaged.update_parameters(model)
        it += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}")
        if it % cfg.val_every == 0 or progress(it) >= 1.0:
            scores = validate(averaged.module if averaged else model, val_sets, clean_input=cfg.teacher_mode)
            cpu = cpu_before + time.process_time() - cpu0
            history.append({"iteration": it, "loss": loss.item(), "seconds": time.time() - t0,
                            "cpu_seconds": round(cpu, 1), **scores})
            bar.set_postfix(loss=f"{loss.item():.4f}", val_psnr="/".join(f"{v:.2f}" for v in scores.values()))
            log(json.dumps(history[-1]))
            state = {"model": model.state_dict(), "opt": opt.state_dict(),
                     "np_rng": sampler.rng.bit_generator.state, "torch_gen": sampler.gen.get_state(),
                     "iteration": it, "history": history, "config": asdict(cfg), "cpu_seconds": cpu,
                     "warm_start": warm_start}
            if init_stages is not None:
                state["init_stages"] = init_stages
            if distiller:
                state["distiller"] = distiller.state_dict()
            if averaged:
                state["ema"] = averaged.state_dict()
            if flats:
                state["flat_np_rng"] = flats.rng.bit_generator.state
                state["flat_torch_gen"] = flats.gen.get_state()
            score = validation_score(scores)
            if best is None or score > best:
                best = score
                torch.save({**state, "best": best}, run / "best.tmp")
                (run / "best.tmp").replace(run / "best.pt")
            state["best"] = best
            torch.save(state, run / "checkpoint.tmp")
            (run / "checkpoint.tmp").replace(ckpt_path)
    bar.close()
    return ckpt_path


def validation_score(scores: dict[str, float]) -> float:
    """The one number that picks the best checkpoint: mean validation PSNR over every set (dB)."""
    return float(np.mean([v for k, v in scores.items() if not k.startswith("texture_")]))


def resumed_best(history: list[dict]) -> float | None:
    """The best validation score of a resumed run's history, over the entries that scored every
    set validated now (a run from before a set was added compares like with like; None: none did)."""
    scores = [validation_score({k: h[k] for k in VAL_SETS}) for h in history if all(k in h for k in VAL_SETS)]
    return max(scores, default=None)


def training_seconds(history: list[dict]) -> float:
    """Wall-clock seconds of training over all resumed segments (each restarts its clock)."""
    total, previous = 0.0, 0.0
    for entry in history:
        if entry["seconds"] < previous:  # a resume started a new segment
            total += previous
        previous = entry["seconds"]
    return total + previous


def lineage(checkpoint: str | Path) -> list[dict]:
    """The training stages that led to ``checkpoint``, oldest first, following each run's ``--init``.

    Each stage: its command line, iterations, seconds and final validation PSNR (dB). A checkpoint
    that recorded the stages behind its ``--init`` when its run started (``init_stages``) is
    followed no further: the file at that path may since have been replaced (``models/lwisp.onnx``
    is, each time a model ships). Older checkpoints are followed by path: a stage whose ``--init``
    checkpoint is gone, unreadable or already listed is the oldest one listed; an ``--init`` ONNX
    model contributes the stages its card lists.
    """
    path = Path(checkpoint)
    ckpt, stages, seen = read_checkpoint(path), [], set()
    while True:
        seen.add(path.resolve())
        cfg = ckpt["config"]
        last = ckpt["history"][-1] if ckpt["history"] else {}
        stages.append({"command": command_line(cfg), "iterations": ckpt["iteration"],
                       "seconds": round(training_seconds(ckpt["history"])),
                       "validation_psnr": {k: round(last[k], 2) for k in VAL_SETS if k in last}})
        if "init_stages" in ckpt:
            stages.extend(ckpt["init_stages"][::-1])
            break
        init = Path(cfg["init"]) if cfg.get("init") else None
        if init is None or not init.is_file() or init.resolve() in seen:
            break
        if init.suffix == ".onnx":
            stages.extend(_card_stages(init)[::-1])
            break
        try:
            ckpt, path = read_checkpoint(init), init
        except ValueError:
            break
    return stages[::-1]


def init_lineage(init: str | Path) -> list[dict]:
    """The stages behind an ``--init`` file: its card's for an ONNX model, else its lineage."""
    path = Path(init)
    if path.suffix == ".onnx":
        return _card_stages(path)
    try:
        return lineage(path)
    except ValueError:
        return []


def _card_stages(onnx_path: Path) -> list[dict]:
    """The training stages an exported model's card lists (none if it has no readable card)."""
    card = onnx_path.with_suffix(".json")
    try:
        return list(json.loads(card.read_text())["training"]["stages"])
    except (OSError, ValueError, KeyError, TypeError):
        return []


def command_line(cfg: dict) -> str:
    """The ``rawisp train`` command that reproduces a stored run configuration."""
    words = ["rawisp train", *(f"--data {d}" for d in cfg["data"]),
             f"--out {cfg['out']}", f"--run-dir {cfg['run_dir']}"]
    # boolean fields appear only when they differ from the default, so a True default needs its "no" flag
    flags = {"teacher_mode": "--as-teacher", "device": "--device", "packed_attention": "--no-packed-attention"}
    for f in fields(TrainConfig):
        value = cfg.get(f.name, f.default)
        if f.name == "widths":  # stored as a list after a round trip through the checkpoint
            value = ",".join(map(str, value))
            if value == ",".join(map(str, f.default)):
                continue
        if f.name in ("data", "out", "run_dir") or value == f.default:
            continue
        flag = flags.get(f.name, "--" + f.name.replace("_", "-"))
        words.append(flag if isinstance(value, bool) else f"{flag} {value}")
    return " ".join(words)


def export_run(checkpoint: str | Path, out: str | Path) -> dict:
    """Export a finished run's checkpoint to ONNX with a filled-in model card.

    The card's iterations and seconds count every stage of the run's ``--init`` chain.
    """
    from rawisp.train.export import export

    model, ckpt = load_checkpoint_model(checkpoint)
    cfg = ckpt["config"]
    last = ckpt["history"][-1] if ckpt["history"] else {}
    stages = lineage(checkpoint)
    training = {
        "data": [Path(d).name for d in cfg["data"]],
        "data_recipe": "unprocessing (Brooks et al. 2019): 2x area downscale, random crop/flip/rot90, inverse sRGB, "
                       "random camera matrix, exposure 0.5-1.4x (15% of crops x1.8: clipped highlights), "
                       "neutral R,B in 0.3-0.85 (--neutral-above-green of crops: R or B 1-1.4, gains normalised to min 1), RGGB mosaic, Poisson-Gaussian noise "
                       "(shot 3e-5..1.5e-2 log-uniform, read = sqrt(shot) x 0.005..0.05; --clean-fraction of "
                       "crops without noise), 12- or 14-bit quantisation; --hard-fraction of crops mined: "
                       "the hardest of 4 for a bilinear demosaic; --procedural-fraction of crops procedural (dead leaves, "
                       "gratings, grids, text); --colour-fraction of photo crops colour-decorrelated; --flat-fraction of "
                       "crops a flat, mostly dark colour; --texture-fraction of crops low-contrast 1/f texture",
        "loss": cfg["loss"],
        "distillation": bool(cfg["teacher"]),
        "teacher_mode": cfg["teacher_mode"],
        "iterations": sum(s["iterations"] for s in stages),
        "batch": cfg["batch"],
        "patch": cfg["patch"],
        "seconds": sum(s["seconds"] for s in stages),
        "stages": stages,
    }
    curve = [{"iteration": h["iteration"], "cpu_seconds": h.get("cpu_seconds"),
              **{k: round(h[k], 2) for k in VAL_SETS if k in h}} for h in ckpt["history"]]
    metrics = {"validation_psnr": {k: round(last[k], 2) for k in VAL_SETS if k in last},
               "validation_curve": curve,
               "validation_set": f"{cfg['val_holdout']} held-out training-folder photos, 128 px centre crops "
                                 "(clean, mid, high noise; saturated: the same crops colour-decorrelated, clean); "
                                 "procedural: as many seeded procedural images, clean; edges: as many seeded "
                                 "saturated colour dead leaves, clean"}
    return export(model, out, training, metrics)
