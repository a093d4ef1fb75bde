"""The ``rawisp`` command line."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

# NumPy asks for transparent huge pages for arrays of 4 MB and more. Where the kernel's THP defrag
# policy is "madvise" (a common default), touching a fresh array can stall on memory compaction
# once memory is fragmented: 0.65 s instead of 0.13 s for a 288 MB array here, and 24 MP classical
# develops of 0.72-1.18 s instead of 0.65-0.70 s. The command line opts out before NumPy is first
# imported (the variable is read then), for itself and its child processes, unless the user set it.
os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")

import click

from rawisp import __version__
from tqdm import tqdm

from rawisp.batch.runner import (BatchError, Job, Outcome, Status, check_output_dir, collect_inputs, default_memory_gib,
                                 merge_jobs, plan_jobs, run_batch, subfolder_hint)
from rawisp.colour import BAYER_PATTERNS
from rawisp.engines.registry import ENGINES, make_engine
from rawisp.io import naming
from rawisp.io.dng import FORMATS as DNG_FORMATS, SUFFIX as DNG_SUFFIX
from rawisp.io.write import FORMAT_ALIASES, FORMATS, format_name, output_bits, output_suffix
from rawisp.measure.protocol import CAMERAS, DEFAULT_CAMERA
from rawisp.stages.reconstruct import DEVELOP_GRAIN, EngineOptions, develop_grain
from rawisp.stages.render import TONES
from rawisp.threads import share_of_cpus



class Finite(click.FloatRange):
    """A number in [min, max]: click's FloatRange lets "nan" through (every comparison with NaN is
    false), and "inf" wherever a bound is open; both are refused here with the usual error."""

    name = "number"

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


class FormatChoice(click.ParamType):
    """An output format by its name or a usual alias (jpg, tif, tiff; any case): the format's name.
    ``extra`` formats are written by other modules than rawisp.io.write (develop's "dng")."""

    name = "format"

    def __init__(self, extra: tuple[str, ...] = ()) -> None:
        self.extra = extra

    def get_metavar(self, param, ctx=None) -> str:
        return "[" + "|".join([*FORMATS, *self.extra, *FORMAT_ALIASES]) + "]"

    def convert(self, value, param, ctx):
        if value.lower() in self.extra:
            return value.lower()
        try:
            return format_name(value)
        except ValueError:
            self.fail(f"{value!r} is not one of {', '.join([*FORMATS, *self.extra, *FORMAT_ALIASES])}.", param, ctx)


# upper bounds of options whose natural range is open: far beyond any real use, low enough that
# the value cannot overflow what it feeds (setrlimit, float arithmetic, allocation sizes)
MAX_TIMEOUT_S = 7 * 24 * 3600.0
MAX_MEMORY_GIB = 65536.0
MAX_EV = 10.0


def _stack(*decorators):
    """Apply click option decorators in the order written (top first), as if stacked by hand."""
    def apply(func):
        for decorator in reversed(decorators):
            func = decorator(func)
        return func
    return apply


def _device_option(dest: str = "device", help: str | None = None):
    """The --device option: where the engine (or training) runs."""
    return click.option("--device", dest, type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
                        show_default=True, help=help or "Where the learned engine runs: cuda (an NVIDIA GPU, with "
                        "onnxruntime-gpu), cpu, or auto (cuda when onnxruntime-gpu finds a GPU, else cpu).")


_learned_options = _stack(
    click.option("--model", type=click.Path(exists=True, dir_okay=False), help="ONNX model for the learned engine."),
    click.option("--denoise", default="auto", show_default=True, callback=lambda ctx, param, value: _check_denoise(
                     ctx, param, value),
                 help="Learned engine noise level: auto (file, camera profile, EXIF prior or estimate; see "
                      "rawisp info), off, or a strength multiplier of it."),
    click.option("--grain", type=Finite(0, 1), default=None, metavar="AMOUNT",
                 help="Share of the noise the learned engine removes that it puts back as neutral fine grain, "
                      "and the fine texture with it: 0 the strongest noise reduction (rawisp eval's), 1 all of "
                      f"the luminance noise kept (colour noise stays removed) [default: {DEVELOP_GRAIN:g}; 0 for "
                      "a DNG]."),
    click.option("--noise-profiles", type=click.Path(exists=True, dir_okay=False), default=None,
                 help="darktable's noiseprofiles.json [default: $RAWISP_NOISE_PROFILES, else darktable's "
                      "installed file, if any]."),
    _device_option(),
    click.option("--tile", type=click.IntRange(64, 4096), default=768, show_default=True,
                 help="Learned engine tile side in packed pixels."),
)
_wb_option = click.option(
    "--wb", default="camera", show_default=True, callback=lambda ctx, param, value: _parse_wb(ctx, param, value),
    help="White balance: camera (as shot; LibRaw's choice when the file has none), auto (LibRaw's), daylight, "
         "or R,G,B gains.")
_batch_options = _stack(
    click.option("-r", "--recursive", is_flag=True, help="Descend into sub-folders of folder inputs."),
    click.option("-j", "--jobs", type=click.IntRange(1, 64), default=1, show_default=True, help="Parallel workers."),
    click.option("--overwrite", is_flag=True, help="Replace existing outputs (default: skip them)."),
    click.option("--timeout", type=Finite(1, MAX_TIMEOUT_S), default=900, show_default=True,
                 help="Seconds allowed per file."),
    click.option("--max-memory", type=Finite(0.5, MAX_MEMORY_GIB), default=None,
                 help="GiB of address space per worker [default: 80% of RAM / jobs, at least 4]."),
    click.option("-q", "--quiet", is_flag=True, help="No progress bar."),
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rawisp")
def main() -> None:
    """rawisp: develop camera RAW files with a learned ISP (or a classical pipeline)."""


@main.command(short_help="Develop RAW files into sRGB pictures (or linear DNGs).")
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder (sub-folders of folder inputs are recreated inside it) [default: beside each "
                   "input].")
@click.option("--engine", type=click.Choice([*ENGINES, "both"]), default="learned", show_default=True,
              help="both: NAME.learned.EXT and NAME.classical.EXT from one decode.")
@click.option("--side-by-side", is_flag=True,
              help="With --engine both, also write NAME.compare.jpg (see rawisp compare).")
@click.option("--format", "fmt", type=FormatChoice(extra=DNG_FORMATS), default="jpeg", show_default=True,
              help="jpg = jpeg; tif and tiff = tiff16 (TIFF is written 16-bit); dng: a DNG to go on editing in a RAW "
                   "editor, for a Bayer sensor a Bayer DNG (the denoised mosaic, developed by the editor as the "
                   "camera's file; --engine classical: the source's mosaic unchanged), else a linear DNG; "
                   "linear-dng: a linear DNG (demosaicked, denoised camera RGB); --exposure, --tone and --long-edge "
                   "do not apply to them.")
@click.option("--quality", type=click.IntRange(1, 100), default=92, show_default=True, help="JPEG quality.")
@click.option("--name", "template", default=None, metavar="TEMPLATE",
              help="Output file name, extension added: fields " + ", ".join(f"{{{f}}}" for f in naming.FIELDS)
                   + f" [default: {naming.DEFAULT}; with --engine both {naming.DEFAULT_BOTH}].")
@click.option("--long-edge", type=click.IntRange(16, 65535), default=None, metavar="PIXELS",
              help="Scale down (never up) to this long edge, area-averaged in linear light after rendering.")
@click.option("--exposure", type=Finite(-MAX_EV, MAX_EV), default=0.0, show_default=True,
              help="Exposure change in EV.")
@click.option("--tone", type=click.Choice(TONES), default="default", show_default=True,
              help="default: gentle S-curve, highlights pushed by --exposure roll off; linear: plain sRGB.")
@_wb_option
@_learned_options
@_batch_options
@click.option("--scheduler", envvar="RAWISP_SCHEDULER", metavar="tcp://HOST:PORT",
              help="Develop on the workers of this Dask cluster instead of -j local processes (env "
                   "RAWISP_SCHEDULER; needs the cluster extra, and inputs and OUT at the same paths on every worker).")
def develop(inputs, out_dir, engine, side_by_side, model, fmt, quality, template, long_edge, exposure, tone, wb, denoise,
            grain, noise_profiles, device, tile, recursive, jobs, overwrite, timeout, max_memory, quiet, scheduler) -> None:
    """Develop RAW files (files, globs or folders) into sRGB pictures, in OUT or beside each input."""
    from rawisp.batch.tasks import DevelopBothTask, DevelopTask
    from rawisp.pipeline.compose import RenderOptions

    if side_by_side and engine != "both":
        raise click.UsageError("--side-by-side needs --engine both")
    template = template or (naming.DEFAULT_BOTH if engine == "both" else naming.DEFAULT)
    try:
        naming.check_template(template, engines=2 if engine == "both" else 1)
    except naming.TemplateError as exc:
        raise click.BadParameter(str(exc), param_hint="'--name'") from None
    files = collect_inputs(inputs, recursive)
    if not files:
        raise click.UsageError("no RAW files found in the given inputs" + ("" if recursive else subfolder_hint(inputs)))
    suffix = DNG_SUFFIX if fmt in DNG_FORMATS else output_suffix(fmt)
    outputs = [(e, fmt, suffix) for e in (("learned", "classical") if engine == "both" else (engine,))]
    outputs += [("compare", "jpeg", ".jpg")] * side_by_side

    def names(rel: Path, stem: str) -> list[str]:
        return [naming.output_name(template, rel, stem, e, f, x) for e, f, x in outputs]

    try:
        jobs_list, notices = plan_jobs(files, out_dir, names)
    except BatchError as exc:
        raise click.UsageError(str(exc)) from None
    jobs_list = merge_jobs(jobs_list)
    # one clear line now, rather than one per file after the work
    folders = [out_dir] if out_dir is not None else [f for f in dict.fromkeys(j.output.parent for j in jobs_list)
                                                      if f.is_dir()]
    try:
        for folder in folders:
            check_output_dir(folder)
    except BatchError as exc:
        click.echo(f"rawisp: {exc}" + ("" if out_dir else " (outputs go beside their inputs; -o names another folder)"),
                   err=True)
        sys.exit(1)
    for notice in notices:
        click.echo(f"rawisp: {notice}", err=True)
    threads = share_of_cpus(jobs)
    engine_options = EngineOptions(model=model, device=device, threads=threads, tile=tile, denoise=denoise,
                                   grain=develop_grain(grain, fmt), noise_profiles=noise_profiles,
                                   output_bits=16 if fmt in DNG_FORMATS else output_bits(fmt))
    options = RenderOptions(fmt=fmt, quality=quality, exposure=exposure, tone=tone, overwrite=overwrite,
                            threads=threads, long_edge=long_edge, wb=wb)
    if engine in ("learned", "both"):
        _check_engine(engine_options)
    if engine == "both":
        task = DevelopBothTask(engine_options, options, side_by_side)
    else:
        task = DevelopTask(engine, engine_options, options)
    _run(jobs_list, task, jobs, timeout, max_memory, overwrite, quiet, scheduler=scheduler)


def _check_engine(options: EngineOptions) -> None:
    """Build the learned engine once in the parent, so a bad model or setting fails before any file."""
    from rawisp.engines.learned import ModelError

    try:
        make_engine("learned", options)
    except (ModelError, ValueError) as exc:
        click.echo(f"rawisp: {exc}", err=True)
        sys.exit(1)


def _run(jobs_list: list[Job], task, workers: int, timeout: float, max_memory: float | None, overwrite: bool,
         quiet: bool, verb: str = "developed", on_done=None, scheduler: str | None = None) -> None:
    """Run a batch (on the Dask cluster at ``scheduler`` if given), print one line per failure and a
    summary; exit 1 if any file failed.

    ``on_done(outcome)`` is called for each finished file (to print what it produced)."""
    progress = not quiet and sys.stderr.isatty()
    counts = dict.fromkeys(Status, 0)

    def say(line: str) -> None:
        tqdm.write(line, file=sys.stderr)  # above the progress bar, which is then drawn again

    def report(outcome: Outcome) -> None:
        counts[outcome.status] += 1
        if outcome.status == Status.FAILED:
            say(f"rawisp: {outcome.job.source}: {outcome.message}")
        elif outcome.status == Status.SKIPPED:
            say(f"rawisp: {outcome.job.source}: skipped, {outcome.job.output} exists (--overwrite replaces it)")
        for warning in outcome.warnings:
            say(f"rawisp: {outcome.job.source}: warning: {warning}")
        if outcome.status == Status.DONE and on_done is not None:
            on_done(outcome)

    def tally() -> str:
        return f"{counts[Status.DONE]} {verb}, {counts[Status.SKIPPED]} skipped, {counts[Status.FAILED]} failed"

    start = time.perf_counter()
    try:
        if scheduler:
            _run_on_cluster(jobs_list, task, scheduler, timeout, max_memory, overwrite, progress, report)
        else:
            memory = max_memory if max_memory is not None else default_memory_gib(workers)
            run_batch(jobs_list, task, workers=workers, timeout=timeout, memory_bytes=int(memory * 2**30),
                      overwrite=overwrite, progress=progress, report=report)
    except KeyboardInterrupt:
        left = len(jobs_list) - sum(counts.values())
        click.echo(f"rawisp: interrupted: {tally()}, {left} not done; finished outputs are kept, unfinished ones "
                   "were removed", err=True)
        sys.exit(130)
    click.echo(f"{tally()} in {time.perf_counter() - start:.1f} s")
    sys.exit(1 if counts[Status.FAILED] else 0)


def _run_on_cluster(jobs_list, task, scheduler, timeout, max_memory, overwrite, progress, report) -> list[Outcome]:
    """:func:`rawisp.batch.cluster.run_on_cluster`, with one line and exit 1 when it cannot start."""
    try:
        from rawisp.batch.cluster import run_on_cluster
    except ImportError as exc:
        click.echo(f"rawisp: --scheduler needs the cluster extra (pip install 'rawisp[cluster]'): {exc}", err=True)
        sys.exit(1)

    def notice(line: str) -> None:
        click.echo(f"rawisp: {line}", err=True)

    try:
        return run_on_cluster(jobs_list, task, scheduler, timeout=timeout, max_memory=max_memory, overwrite=overwrite,
                              progress=progress, report=report, notice=notice)
    except BatchError as exc:
        click.echo(f"rawisp: {exc}", err=True)
        sys.exit(1)


def _parse_crop(ctx, param, values):
    from rawisp.compare.crops import parse_rect

    try:
        return tuple(parse_rect(v) for v in values)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@main.command(short_help="Classical and learned developments side by side.")
@click.argument("inputs", nargs=-1)
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Output folder: NAME.compare.jpg (or .png) per input.")
@click.option("--ground-truth", "truths", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="Ground-truth sRGB image (or folder of them), repeatable: made into a synthetic DNG "
                   "as rawisp eval does; PSNR/SSIM of each side are printed and shown.")
@click.option("--noise", default="mid", show_default=True,
              help="Noise of the synthetic DNG: clean, mid, high or SHOT:READ (as rawisp eval).")
@click.option("--camera", default=None, metavar="NAME",
              help="Camera matrix of the synthetic DNG, as rawisp eval --camera [default: rawisp eval's].")
@click.option("--format", "fmt", type=click.Choice(["jpeg", "png"]), default="jpeg", show_default=True, help="Format of the comparison picture.")
@click.option("--quality", type=click.IntRange(1, 100), default=92, show_default=True, help="JPEG quality.")
@click.option("--crop", "crops", multiple=True, callback=_parse_crop, metavar="X,Y,W,H",
              help="Crop to show, in upright output pixels (repeatable); replaces the automatic choice.")
@click.option("--crops", "crop_count", type=click.IntRange(0, 6), default=3, show_default=True,
              help="How many detailed regions to pick automatically.")
@click.option("--crop-size", type=click.IntRange(16, 2048), default=384, show_default=True,
              help="Side of the automatic crops in output pixels.")
@click.option("--zoom", type=click.IntRange(1, 8), default=1, show_default=True,
              help="Enlarge crops by pixel repetition (1: 100%).")
@click.option("--view-width", type=click.IntRange(64, 8000), default=1200, show_default=True,
              help="Width of each downscaled full view.")
@click.option("--diff", is_flag=True, help="Add a column with |learned - classical| amplified.")
@click.option("--diff-gain", type=Finite(1, 255), default=8, show_default=True,
              help="Amplification of the difference map.")
@click.option("--exposure", type=Finite(-MAX_EV, MAX_EV), default=0.0, show_default=True,
              help="Exposure change in EV (RAW inputs).")
@click.option("--tone", type=click.Choice(TONES), default="default", show_default=True,
              help="Tone of RAW inputs (ground-truth inputs use linear, as rawisp eval).")
@_wb_option
@_learned_options
@_batch_options
def compare(inputs, out_dir, truths, noise, camera, fmt, quality, crops, crop_count, crop_size, zoom, view_width, diff,
            diff_gain, exposure, tone, wb, model, denoise, grain, noise_profiles, device, tile, recursive, jobs, overwrite,
            timeout, max_memory, quiet) -> None:
    """Classical and learned development of each RAW side by side, in one labelled picture.

    Each picture shows both full views (crop boxes marked), 100% crops of the most detailed regions
    (or --crop), reconstruct timings, and with --diff the amplified difference. One line per input
    tells the crops (as --crop values) and, for --ground-truth inputs, PSNR/SSIM of each side.
    """
    from rawisp.batch.tasks import CompareTask
    from rawisp.compare.crops import CompareError
    from rawisp.compare.picture import CompareOptions
    from rawisp.measure.ground_truth import eval_camera
    from rawisp.measure.protocol import EvalError, find_images, parse_noise
    from rawisp.pipeline.compose import RenderOptions

    if not inputs and not truths:
        raise click.UsageError("give RAW files and/or --ground-truth images")
    try:
        eval_camera(camera)
    except CompareError as exc:
        raise click.BadParameter(str(exc), param_hint="'--camera'") from None
    try:
        levels = parse_noise(noise)
    except EvalError as exc:
        raise click.BadParameter(str(exc), param_hint="'--noise'") from None
    if len(levels) != 1:
        raise click.BadParameter("give one noise level", param_hint="'--noise'")
    files = collect_inputs(inputs, recursive) if inputs else []
    truth_files = []
    for truth in truths:
        try:
            found = find_images(truth)
        except EvalError as exc:
            raise click.UsageError(str(exc)) from None
        if not found:
            raise click.UsageError(f"{truth}: no PNG, TIFF or JPEG images")
        truth_files += [(p, p.parent) for p in found]
    if not files and not truth_files:
        raise click.UsageError("no RAW files found in the given inputs")
    suffix = output_suffix(fmt)
    try:
        jobs_list, notices = plan_jobs(files + truth_files, out_dir, lambda rel, stem: [stem + ".compare" + suffix])
    except BatchError as exc:
        raise click.UsageError(str(exc)) from None
    for notice in notices:
        click.echo(f"rawisp: {notice}", err=True)
    threads = share_of_cpus(jobs)
    engine_options = EngineOptions(model=model, device=device, threads=threads, tile=tile, denoise=denoise,
                                   grain=develop_grain(grain, fmt), noise_profiles=noise_profiles)
    _check_engine(engine_options)
    render = RenderOptions(fmt=fmt, quality=quality, exposure=exposure, tone=tone, overwrite=overwrite,
                           threads=threads, wb=wb)
    options = CompareOptions(view_width=view_width, crop_count=crop_count, crop_size=crop_size, crops=crops,
                             zoom=zoom, diff=diff, diff_gain=diff_gain)
    task = CompareTask(engine_options, render, options, frozenset(str(p.absolute()) for p, _ in truth_files), noise,
                       camera)

    def done(outcome: Outcome) -> None:
        click.echo(f"{outcome.job.output}: {outcome.message}")

    _run(jobs_list, task, jobs, timeout, max_memory, overwrite, quiet, verb="compared", on_done=done)


@main.command("eval", short_help="Score engines on synthetic DNGs made from known images.")
@click.argument("gt_dir", type=click.Path(exists=True, path_type=Path))
@click.option("--engine", "engines", multiple=True, metavar="NAME",
              help="Engine row, repeatable: learned, classical, oracle (ground truth: the harness's own ceiling) "
                   "or LibRaw's libraw-ahd, libraw-dht, libraw-dcb, libraw-vng, libraw-ppg, libraw-linear, "
                   "libraw-aahd. [default: learned and classical, unless --model is given]")
@click.option("--model", "models", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Learned engine with this ONNX model (a row of its own), repeatable.")
@click.option("--noise", default="clean,mid,high", show_default=True, callback=lambda ctx, param, value: _check_noise(
    ctx, param, value), help="Noise levels: presets clean, mid, high and/or SHOT:READ (variance = SHOT*x + READ^2).")
@click.option("--cfa", type=click.Choice(BAYER_PATTERNS), default="RGGB", show_default=True, help="Colour filter pattern of the synthetic DNGs.")
@click.option("--camera", type=click.Choice(list(CAMERAS)), default=DEFAULT_CAMERA, show_default=True,
              help="Camera matrix of the synthetic camera: identity (camera RGB = linear sRGB, as the published "
                   "reference figures are measured) or a realistic synthetic camera matrix.")
@click.option("--noise-profile/--no-noise-profile", default=True, show_default=True,
              help="Write the noise into each DNG's NoiseProfile (clean: its 1-DN rounding), as cameras do; "
                   "without it the learned engine chooses the noise as for vendor RAW files.")
@click.option("--noise-profiles", type=click.Path(exists=True, dir_okay=False), default=None,
              help="darktable's noiseprofiles.json for the learned engine (the protocol's camera is in none).")
@click.option("--border", type=click.IntRange(0, 1000), default=10, show_default=True,
              help="Pixels left out of the scores at each edge.")
@click.option("--per-image", is_flag=True, help="One row per image as well as the means.")
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the table to FILE (.csv or .json).")
@click.option("--keep", type=click.Path(file_okay=False, path_type=Path),
              help="Keep the synthetic DNGs in this folder (default: a temporary folder).")
@_device_option()
@click.option("-j", "--jobs", type=click.IntRange(1, 64), default=1, show_default=True, help="Worker processes.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def eval_command(gt_dir, engines, models, noise, cfa, camera, noise_profile, noise_profiles, border, per_image,
                 out_file, keep, device, jobs, quiet) -> None:
    """Score engines on synthetic DNGs made from the ground-truth sRGB images in GT_DIR."""
    from rawisp.measure.eval_report import check_report_path, format_table, write_report
    from rawisp.measure.evaluate import engine_specs, evaluate
    from rawisp.measure.protocol import EvalError, find_images, parse_noise

    start = time.perf_counter()
    try:
        noises = parse_noise(noise)
        if out_file is not None:
            check_report_path(out_file)
        images = find_images(gt_dir)
        if not images:
            raise EvalError(f"{gt_dir}: no PNG, TIFF or JPEG images")
        names = engines or (() if models else ("learned", "classical"))
        threads = share_of_cpus(jobs)
        specs = engine_specs(names, models, EngineOptions(device=device, threads=threads,
                                                          noise_profiles=noise_profiles))
        rows = evaluate(images, specs, noises, cfa=cfa, border=border, camera=camera, keep=keep, jobs=jobs,
                        progress=not quiet, noise_profile=noise_profile)
        click.echo(f"{len(images)} ground-truth image{'s' * (len(images) != 1)} from {gt_dir}, CFA {cfa}, "
                   f"camera matrix {camera}, {'a' if noise_profile else 'no'} NoiseProfile, "
                   f"{border}-pixel border left out\n")
        click.echo(format_table(rows, per_image))
        if out_file is not None:
            write_report(out_file, rows, per_image, noises, cfa, border, camera, noise_profile)
    except EvalError as exc:
        click.echo(f"rawisp: {exc}", err=True)
        sys.exit(1)
    click.echo(f"{len(images)} image{'s' * (len(images) != 1)} x {len(noises)} noise level"
               f"{'s' * (len(noises) != 1)} x {len(specs)} engine{'s' * (len(specs) != 1)} "
               f"in {time.perf_counter() - start:.1f} s", err=True)


def _check_noise(ctx, param, value: str) -> str:
    """eval's --noise refused as click refuses a bad value (read again by the command)."""
    from rawisp.measure.protocol import EvalError, parse_noise

    try:
        parse_noise(value)
    except EvalError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None
    return value


def _parse_size(ctx, param, value):
    if value is None:
        return None
    try:
        width, height = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter("expected WIDTHxHEIGHT, e.g. 6000x4000") from None
    if width < 16 or height < 16:
        raise click.BadParameter("the frame must be at least 16x16 pixels")
    if width > 64000 or height > 64000:  # LibRaw's limit
        raise click.BadParameter("the frame must be at most 64000 pixels a side")
    return width, height


@main.command(short_help="Speed and peak memory of developing a file.")
@click.argument("file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--engine", "engines", multiple=True, type=click.Choice(ENGINES),
              help="Engine to measure (repeatable) [default: classical and learned].")
@click.option("--repeat", type=click.IntRange(1, 100), default=3, show_default=True,
              help="Runs per engine, each in a fresh process; median and min-max are reported.")
@click.option("--warmup", type=click.IntRange(0, 10), default=0, show_default=True, help="Untimed runs first.")
@click.option("--format", "fmt", type=FormatChoice(), default="jpeg", show_default=True, help="Output format developed.")
@click.option("--quality", type=click.IntRange(1, 100), default=92, show_default=True, help="JPEG quality.")
@click.option("--tile", "tiles", multiple=True, type=click.IntRange(64, 4096),
              help="Learned engine tile side (repeatable: one row per tile size) [default: as rawisp develop, 768].")
@click.option("--threads", type=click.IntRange(0, 1024), default=0, show_default=True,
              help="Engine threads; 0: all CPUs, as rawisp develop with one job.")
@_device_option()
@click.option("--model", "models", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="ONNX model for the learned engine (repeatable: one row per model, e.g. fp32 and int8).")
@click.option("--runtime", "runtimes", multiple=True, type=click.Choice(["auto", "onnxruntime", "openvino"]),
              help="Learned engine runtime (repeatable: one row each) [default: auto, OpenVINO on the CPU where "
                   "installed, else onnxruntime].")
@click.option("--precision", "precisions", multiple=True, type=click.Choice(["auto", "f32", "bf16"]),
              help="Learned engine precision (repeatable: one row each) [default: auto, as rawisp develop; "
                   "bf16 needs OpenVINO and a CPU with bf16 units].")
@click.option("--compare-peers", is_flag=True,
              help="Also time rawpy postprocess (LibRaw AHD) + JPEG write, darktable-cli and rawtherapee-cli.")
@click.option("--size", callback=_parse_size, metavar="WxH",
              help="Size of the synthetic frame used without FILE [default: 6000x4000].")
@click.option("--cache", "cache_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder of the cached synthetic frame [default: ~/.cache/rawisp].")
@click.option("--timeout", type=Finite(1, MAX_TIMEOUT_S), default=900, show_default=True,
              help="Seconds allowed per run.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write the report here.")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines on stderr.")
def bench(file, engines, repeat, warmup, fmt, quality, tiles, threads, device, models, runtimes, precisions,
          compare_peers, size, cache_dir, timeout, json_path, quiet) -> None:
    """Measure speed and peak memory of developing FILE (default: a synthetic 24 MP frame, cached).

    Prints per-stage seconds, total, MP/s and peak resident memory per engine, each run in a fresh process.
    """
    from rawisp.measure.bench import DEFAULT_SIZE, BenchConfig, BenchError, RowStatus, run_bench
    from rawisp.measure.bench_report import format_report

    if file is not None and size is not None:
        raise click.UsageError("--size only applies to the synthetic frame; give FILE or --size, not both")
    config = BenchConfig(source=file, size=size or DEFAULT_SIZE, cache_dir=cache_dir,
                         engines=tuple(engines) or ("classical", "learned"), tiles=tuple(tiles), fmt=fmt,
                         quality=quality, repeat=repeat, warmup=warmup, threads=threads, device=device, models=models,
                         runtimes=runtimes, precisions=precisions,
                         compare_peers=compare_peers, timeout=timeout)
    progress = None if quiet else (lambda message: click.echo(f"rawisp bench: {message}", err=True))
    try:
        report = run_bench(config, progress=progress)
    except BenchError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(format_report(report))
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report, indent=2) + "\n")
    ok = [r for r in report["results"] if r["status"] == RowStatus.OK]
    failed = [r for r in report["results"] if r["status"] == RowStatus.FAILED]
    sys.exit(1 if failed or not ok else 0)


def _parse_wb(ctx, param, value: str):
    from rawisp.io.whitebalance import WB_MODES, parse_wb

    try:
        return parse_wb(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not {', '.join(WB_MODES)} or three positive gains R,G,B.", ctx,
                                 param) from None


def _check_denoise(ctx, param, value: str) -> str:
    """--denoise refused as click refuses a bad value (the strength is read again by the engine)."""
    if value in ("off", "auto"):
        return value
    from rawisp.engines.learned import MAX_DENOISE, denoise_strength

    try:
        denoise_strength(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not off, auto or a number from 0 to {MAX_DENOISE:g}.", ctx,
                                 param) from None
    return value


@main.command(short_help="What the decoder sees in RAW files, and their noise.")
@click.argument("inputs", nargs=-1, required=True)
@click.option("-r", "--recursive", is_flag=True, help="Descend into sub-folders of folder inputs.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--denoise", default="auto", show_default=True, callback=lambda ctx, param, value: _check_denoise(
    ctx, param, value), help="As for develop: the noise the learned engine uses.")
@click.option("--noise-profiles", type=click.Path(exists=True, dir_okay=False), default=None,
              help="darktable's noiseprofiles.json [default: $RAWISP_NOISE_PROFILES, else darktable's installed file].")
def info(inputs, recursive, as_json, denoise, noise_profiles) -> None:
    """Print the decoded metadata of RAW files (files, globs or folders, as rawisp develop) and the
    noise the learned engine would use, with its source.

    A file whose frame cannot be decoded still gets a record of its header (shot fields only,
    with the reason under "error") when its metadata can be read; the exit status is then 1.
    """
    from rawisp.api import describe, describe_noise, describe_shot
    from rawisp.engines.camera_noise import ProfileError, profiles_path
    from rawisp.engines.learned import denoise_strength
    from rawisp.engines.noise_net import NoiseNet
    from rawisp.io.decode import DecodeError, decode, read_header

    try:
        strength = denoise_strength(denoise)
        profiles = profiles_path(noise_profiles)
    except (ProfileError, ValueError) as exc:
        click.echo(f"rawisp: {exc}", err=True)
        sys.exit(1)
    estimator = NoiseNet(threads=os.cpu_count() or 1)

    files = [path for path, _ in collect_inputs(inputs, recursive)]
    if not files:
        raise click.UsageError("no RAW files found in the given inputs" + ("" if recursive else subfolder_hint(inputs)))
    records, failed = [], 0
    for path in files:
        try:
            raw = decode(path)
        except DecodeError as exc:
            click.echo(f"rawisp: {path}: {exc}", err=True)
            failed += 1
            meta = read_header(path) if path.is_file() else None
            if meta is not None and (meta.make or meta.model or meta.date):
                records.append({"file": str(path), "error": str(exc), **describe_shot(meta)})
            continue
        records.append({**describe(raw), **describe_noise(raw, estimator, profiles, strength)})
    if as_json:
        click.echo(json.dumps(records, indent=2))
    else:
        for rec in records:
            click.echo(rec["file"])
            for key, value in rec.items():
                if key != "file":
                    click.echo(f"  {key:<15} {value}")
    sys.exit(1 if failed else 0)


@main.command(short_help="Train the LW-ISP model (needs the train extra).")
@click.option("--data", "data", multiple=True, required=True, type=click.Path(exists=True, file_okay=False),
              help="Folder of sRGB training photos (repeatable). Never the test sets.")
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="ONNX file to write (card beside it).")
@click.option("--run-dir", type=click.Path(file_okay=False), default=None,
              help="Checkpoints and log [default: runs/<out name>]; an existing checkpoint is resumed.")
@click.option("--iterations", type=click.IntRange(1, 10**8), default=9000, show_default=True, help="Training steps (unless --cpu-budget).")
@click.option("--batch", type=click.IntRange(1, 4096), default=16, show_default=True, help="Crops per training step.")
@click.option("--patch", type=click.IntRange(32, 4096), default=128, show_default=True, help="Full-resolution crop side.")
@click.option("--lr", type=Finite(0, 1, min_open=True), default=2e-3, show_default=True, help="Peak learning rate (Adam).")
@click.option("--loss", type=click.Choice(["l1", "msssim", "lab"]), default="l1", show_default=True, help="l1: L1 in sRGB and in linear camera RGB; msssim: L1 + (1 - MS-SSIM) in sRGB; lab: CIELAB L1 with MS-SSIM of L.")
@click.option("--widths", default="24,48,96", show_default=True, help="U-Net channels at 1/2, 1/4, 1/8 resolution.")
@click.option("--teacher", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Teacher checkpoint for heterogeneous distillation.")
@click.option("--as-teacher", is_flag=True, help="Train a teacher: it sees the clean mosaic.")
@click.option("--init", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Start from this checkpoint's (or .onnx model's) weights, and a checkpoint's optimiser "
                   "state where it fits (fine-tuning).")
@click.option("--skip", type=click.Choice(["subpixel", "bilinear"]), default="subpixel", show_default=True,
              help="Decoder upsampling before each U-Net skip.")
@click.option("--base", type=click.Choice(["bilinear", "mhc"]), default="bilinear", show_default=True,
              help="Fixed demosaic the network corrects (mhc: Malvar-He-Cutler).")
@click.option("--domain", type=click.Choice(["linear", "log"]), default="linear", show_default=True,
              help="Where the network works: on values, or on their logarithms (ratios between channels).")
@click.option("--block-convs", type=click.IntRange(1, 2), default=2, show_default=True,
              help="3x3 convolutions in each attention block (1: a cheaper network).")
@click.option("--packed-attention/--no-packed-attention", default=True, show_default=True,
              help="Attention in the two blocks at packed resolution (off: a cheaper network).")
@click.option("--full-channels", type=click.IntRange(1, 64), default=8, show_default=True,
              help="Features per full-resolution pixel in the upsampling block (4: a cheaper tail).")
@click.option("--procedural-fraction", type=Finite(0, 1), default=0.0, show_default=True,
              help="Share of crops replaced by procedural images (dead leaves, gratings, grids, text).")
@click.option("--colour-fraction", type=Finite(0, 1), default=0.0, show_default=True,
              help="Share of photo crops with decorrelated colours (saturation, hue, channel order).")
@click.option("--neutral-above-green", type=Finite(0, 1), default=0.0, show_default=True,
              help="Share of crops whose as-shot neutral has R or B above G.")
@click.option("--flat-fraction", type=Finite(0, 1), default=0.0, show_default=True,
              help="Share of crops replaced by flat, mostly dark colours (where specks and Bayer patterns show).")
@click.option("--texture-fraction", type=Finite(0, 1), default=0.0, show_default=True,
              help="Share of crops replaced by low-contrast texture (1/f random fields), which JPEG photos lack.")
@click.option("--pattern-weight", type=Finite(0, 1000), default=0.0, show_default=True,
              help="Weight of a loss on the periodic part of the error over extra noise-free flat crops.")
@click.option("--mse-weight", type=Finite(0, 10**6), default=0.0, show_default=True,
              help="Weight of an sRGB squared-error term beside --loss (weights rare large errors, e.g. specks).")
@click.option("--overstated-noise", type=Finite(0, 1), default=0.0, show_default=True,
              help="Share of clean crops whose noise planes state weak noise never added (a blind estimate's error).")
@click.option("--ema", type=Finite(0, 0.99999), default=0.0, show_default=True,
              help="Validate, keep and export a moving average of the weights with this decay per iteration "
                   "(e.g. 0.999; 0: the weights as trained).")
@click.option("--cpu-budget", type=Finite(0, 10**7), default=0.0, show_default=True,
              help="Train for this many seconds of process CPU time instead of --iterations (equal-cost A/B).")
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True, help="Random seed of the training run.")
@click.option("--threads", type=click.IntRange(0, 1024), default=1, show_default=True,
              help="CPU threads (0: every core). One costs the least CPU per step; more finish sooner.")
@click.option("--precision", "train_precision", type=click.Choice(["f32", "bf16"]), default="f32", show_default=True,
              help="Precision of the forward pass: bf16 runs it under autocast (CPUs with bf16 units: 0.7x the CPU "
                   "per step; weights, gradients, optimiser and validation stay f32).")
@click.option("--warmup", type=click.IntRange(0, 10**8), default=250, show_default=True,
              help="Iterations of learning-rate warm-up when the optimiser starts without state "
                   "(from scratch, or an --init without one).")
@click.option("--val-every", type=click.IntRange(1, 10**8), default=250, show_default=True,
              help="Validate and checkpoint every N iterations.")
@_device_option("train_device", help="auto: CUDA when torch sees a GPU.")
@click.option("--clean-fraction", type=Finite(0, 1), default=0.2, show_default=True,
              help="Share of training crops without noise.")
@click.option("--hard-fraction", type=Finite(0, 1), default=0.0, show_default=True,
              help="Share of training crops mined: the hardest of 4 random crops for a bilinear demosaic.")
@click.option("--val-holdout", type=click.IntRange(1, 100000), default=40, show_default=True,
              help="Photos held out of training for validation.")
def train(data, out, run_dir, iterations, batch, patch, lr, loss, widths, teacher, as_teacher, init, seed,
          threads, val_every, train_device, clean_fraction, hard_fraction, val_holdout, skip, base,
          procedural_fraction, colour_fraction, neutral_above_green, flat_fraction, pattern_weight, mse_weight,
          overstated_noise, ema, cpu_budget, train_precision, warmup, domain, texture_fraction, block_convs,
          packed_attention, full_channels) -> None:
    """Train the LW-ISP model on synthetic RAW made from sRGB photos and export it to ONNX."""
    try:
        from rawisp.train.loop import TrainConfig, export_run, train as run_training
    except ImportError as exc:
        raise click.ClickException(f"training needs the 'train' extra (pip install 'rawisp[train]'): {exc}")
    run_dir = run_dir or str(Path("runs") / Path(out).stem)
    cfg = TrainConfig(data=list(data), out=out, run_dir=run_dir, iterations=iterations, batch=batch, patch=patch,
                      lr=lr, loss=loss, widths=tuple(int(w) for w in widths.split(",")), teacher=teacher,
                      teacher_mode=as_teacher, init=init, seed=seed, threads=threads, val_every=val_every,
                      val_holdout=val_holdout, clean_fraction=clean_fraction, hard_fraction=hard_fraction,
                      device=train_device, skip=skip, base=base, procedural_fraction=procedural_fraction,
                      colour_fraction=colour_fraction, neutral_above_green=neutral_above_green,
                      flat_fraction=flat_fraction, pattern_weight=pattern_weight, mse_weight=mse_weight,
                      overstated_noise=overstated_noise, ema=ema, cpu_budget=cpu_budget, warmup=warmup,
                      domain=domain, texture_fraction=texture_fraction, precision=train_precision,
                      block_convs=block_convs, packed_attention=packed_attention, full_channels=full_channels)
    log_file = Path(run_dir) / "train.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)

    def log(line: str) -> None:
        with open(log_file, "a") as fh:
            fh.write(line + "\n")
        click.echo(line, err=True)

    try:
        checkpoint = run_training(cfg, log=log)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    card = export_run(checkpoint, out)
    click.echo(f"wrote {out} and its card; validation PSNR {card['metrics'].get('validation_psnr')}")
