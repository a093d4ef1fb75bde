"""Reports of ``rawisp eval``: means per noise level and engine, a plain-text table, CSV and JSON."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from rawisp import __version__
from rawisp.measure.protocol import BLACK, CAMERAS, DEFAULT_CAMERA, EXIF, NEUTRAL, WHITE, EvalError, Noise

METRICS = ("psnr", "ssim", "delta_e00")
COLUMNS = ("noise", "shot", "read", "engine", "image", "psnr", "ssim", "delta_e00")
DIGITS = {"shot": 8, "read": 8, "psnr": 4, "ssim": 6, "delta_e00": 4}


def summarise(rows: Iterable[dict]) -> list[dict]:
    """Mean of each metric over images, per (noise, engine), in first-seen order; image = "mean"."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["noise"], row["engine"]), []).append(row)
    means = []
    for (noise, engine), group in groups.items():
        mean = {"noise": noise, "shot": group[0]["shot"], "read": group[0]["read"], "engine": engine,
                "image": "mean", "images": len(group)}
        for metric in METRICS:
            mean[metric] = float(np.mean([r[metric] for r in group]))
        means.append(mean)
    return means


def _rounded(row: dict) -> dict:
    out = {}
    for key in COLUMNS:
        value = row[key]
        if key in DIGITS and isinstance(value, float) and math.isfinite(value):
            value = round(value, DIGITS[key])
        out[key] = value
    return out


def report_rows(rows: list[dict], per_image: bool) -> list[dict]:
    """What a report holds: per noise level, the means, then (``per_image``) every image's row."""
    means = summarise(rows)
    if not per_image:
        return means
    out = []
    for mean in means:
        out.append(mean)
        out += [r for r in rows if r["noise"] == mean["noise"] and r["engine"] == mean["engine"]]
    return out


def format_table(rows: list[dict], per_image: bool = False) -> str:
    """Plain-text tables, one per noise level: engine (and image), PSNR, SSIM, mean CIEDE2000."""
    lines: list[str] = []
    shown = report_rows(rows, per_image)
    width = max([len(r["engine"]) for r in shown] + [6])
    iwidth = max([len(r["image"]) for r in shown] + [5]) if per_image else 0
    for noise in dict.fromkeys(r["noise"] for r in shown):
        group = [r for r in shown if r["noise"] == noise]
        count = next(r["images"] for r in group if r["image"] == "mean")
        lines.append(f"noise {noise} (shot {group[0]['shot']:g}, read {group[0]['read']:g}), "
                     f"mean over {count} image{'s' * (count != 1)}")
        head = f"  {'engine':<{width}}" + (f"  {'image':<{iwidth}}" if per_image else "")
        lines.append(head + f"  {'PSNR dB':>8}  {'SSIM':>7}  {'dE00':>6}")
        for r in group:
            line = f"  {r['engine']:<{width}}" + (f"  {r['image']:<{iwidth}}" if per_image else "")
            lines.append(line + f"  {r['psnr']:8.2f}  {r['ssim']:7.4f}  {r['delta_e00']:6.3f}")
        lines.append("")
    return "\n".join(lines)


def protocol_settings(noises: Sequence[Noise], cfa: str, border: int, camera: str = DEFAULT_CAMERA,
             noise_profile: bool = True) -> dict:
    """The settings a report's numbers depend on."""
    return {
        "cfa": cfa, "black": BLACK, "white": WHITE, "neutral": list(NEUTRAL),
        "camera": camera, "cam_from_srgb": CAMERAS[camera].tolist(), "border": border,
        "noise": [{"label": n.label, "shot": n.shot, "read": n.read} for n in noises],
        "seed": "crc32('rawisp-eval/<image index>/<noise label>')",
        "noise_profile": "in the DNG (clean: 1-DN rounding)" if noise_profile
                         else "none: chosen by rawisp.engines.noise_choice",
        "exif": {"make": "rawisp", "model": "Synthetic", **{k.lower(): v for k, v in EXIF.items()}},
        "render": "tone linear, 8-bit sRGB (rawisp render, +-0.5 LSB dither)",
        "libraw": "postprocess: as-shot WB, sRGB, no_auto_bright, adjust_maximum_thr=0, gamma (2.4, 12.92), 8-bit, "
                  "one OpenMP thread",
    }


def write_report(path: Path, rows: list[dict], per_image: bool, noises: Sequence[Noise], cfa: str,
                 border: int, camera: str = DEFAULT_CAMERA, noise_profile: bool = True) -> None:
    """Write the report as CSV or JSON, chosen by the suffix of ``path``."""
    path = Path(path)
    shown = [_rounded(r) for r in report_rows(rows, per_image)]
    suffix = path.suffix.lower()
    if suffix == ".csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(shown)
        text = buffer.getvalue()
    elif suffix == ".json":
        for row in shown:  # JSON has no infinity: PSNR of identical pictures is written as null
            row.update({k: None for k, v in row.items() if isinstance(v, float) and not math.isfinite(v)})
        settings = protocol_settings(noises, cfa, border, camera, noise_profile)
        text = json.dumps({"rawisp": __version__, "protocol": settings, "rows": shown}, indent=1) + "\n"
    else:
        raise EvalError(f"{path}: the report must be .csv or .json")
    try:
        path.write_text(text)
    except OSError as exc:
        raise EvalError(f"{path}: cannot write the report ({exc.strerror or exc})") from None


def check_report_path(path: Path) -> None:
    """Refuse a report path with the wrong suffix or a missing folder before any work starts."""
    path = Path(path)
    if path.suffix.lower() not in (".csv", ".json"):
        raise EvalError(f"{path}: the report must be .csv or .json")
    if not path.parent.is_dir():
        raise EvalError(f"{path}: no such folder {path.parent}")
