"""Ship a trained model: copy its ONNX into models/ and complete its card with measured figures.

`rawisp train` exports an ONNX file and a card with the recipe, the stages and the validation
PSNR. The figures measured afterwards (Kodak24 eval, 24 MP bench) and the A/B studies of the
experiments (tools/experiments/: distil_ab.sh, loss_ab.sh, mining_ab.sh) are added here, from the JSON
reports the commands wrote:

    rawisp eval ../shared/data/test/kodak24 --engine learned --engine classical \\
        --engine libraw-ahd --engine libraw-dht --engine libraw-dcb --engine libraw-aahd \\
        --engine libraw-vng --engine libraw-ppg --model runs/s3/lwisp.onnx --per-image \\
        --out runs/kodak24.json -j 2
    rawisp eval ../shared/data/test/kodak24 --model runs/s3/lwisp.onnx --no-noise-profile \\
        --out runs/kodak24_est.json -j 2
    python tools/tile_margin.py runs/s3/lwisp.onnx     # the tile margin these weights need
    rawisp bench --engine classical --engine learned --model runs/s3/lwisp.onnx \\
        --compare-peers --repeat 3 --json runs/bench.json
    python tools/update_card.py runs/s3/lwisp.onnx --row learned:lwisp.onnx \\
        --kodak runs/kodak24.json --kodak-no-profile runs/kodak24_est.json --bench runs/bench.json

The A/B results, the known defects and the note on the training device are carried over from
the card being replaced (models/lwisp.json) unless given anew.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rawisp.measure.margin import measure_tiling
from rawisp.stages.reconstruct import EngineOptions

MODELS = Path(__file__).resolve().parents[1] / "models"
KODAK_COMMAND = ("rawisp eval ../shared/data/test/kodak24 --engine learned --engine classical --engine libraw-ahd "
                 "--engine libraw-dht --engine libraw-dcb --engine libraw-aahd --engine libraw-vng --engine libraw-ppg "
                 "--per-image --out kodak24.json -j 2")
KODAK_PROTOCOL = ("rawisp eval defaults: identity camera matrix, neutral (0.55, 1, 0.75), RGGB, 12-bit DNG "
                  "black 256 white 4095 with a NoiseProfile stating the added noise (clean: the 1-DN rounding), "
                  "noise clean (0,0) / mid (1e-3, 5e-4) / high (6e-3, 2e-3), linear tone, 8-bit sRGB, 10-pixel "
                  "border; reporting only, never used for training or tuning")
NO_PROFILE_MEANING = ("vendor RAW (no NoiseProfile): the same DNGs without NoiseProfile, EXIF of a camera no "
                      "profile database knows at ISO 400 at every level; the noise is chosen by "
                      "rawisp.engines.noise_choice (camera profile, EXIF prior, learned blind estimate), here the "
                      "estimate within the ISO 400 prior's range")


def means(report: dict, shipped: str) -> dict:
    """engine -> noise preset -> {psnr, ssim, delta_e00} from the mean rows of an eval report.

    The row named ``shipped`` (the model being shipped, e.g. ``learned:lwisp.onnx`` when it was
    measured with ``--model``) becomes the ``learned`` row; the replaced model's row is dropped.
    """
    out: dict = {}
    for row in report["rows"]:
        name = "learned" if row["engine"] == shipped else row["engine"]
        if row["image"] == "mean" and (name != "learned" or row["engine"] == shipped):
            out.setdefault(name, {})[row["noise"]] = {k: row[k] for k in ("psnr", "ssim", "delta_e00")}
    return out


def speed(bench: dict) -> dict:
    """The learned engine's 24 MP figures from a bench report (run with the shipped model), and
    rawtherapee-cli's from the same run when the bench compared peers."""
    row = next(r for r in bench["results"] if r["name"] == "learned")
    machine = bench["machine"]
    figures = {"command": "rawisp bench --engine classical --engine learned --compare-peers --repeat 3",
               "machine": f"{machine['cpus']}-core {machine['cpu']}, {machine['memory_gib']:.0f} GiB",
               "learned_total_s": round(row["median"]["total"], 2),
               "learned_process_s": round(row["median"]["process"], 2),
               "learned_cpu_s": row["cpu_s"],
               "learned_network_s": row["network"]["network_s"],
               "margin": row["network"].get("margin"),
               "margin_share": row["network"]["margin_share"],
               "tiles": f"{row['network']['tiles']} of {row['network']['tile']} packed px",
               "learned_peak_mb": round(row["peak_rss_mb"]["median"]),
               "tile": row["tile"] or EngineOptions.tile, "threads": row["threads"]}
    rt = next((r for r in bench["results"] if r["name"] == "rawtherapee-cli" and r["status"] == "ok"), None)
    if rt is not None:
        figures.update({"rawtherapee_process_s": round(rt["median"]["process"], 2), "rawtherapee_cpu_s": rt["cpu_s"],
                        "vs_rawtherapee_process": round(row["median"]["process"] / rt["median"]["process"], 2)})
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("onnx", type=Path, help="the exported model (its card beside it)")
    parser.add_argument("--kodak", type=Path, required=True, help="eval report, with NoiseProfile, all engines")
    parser.add_argument("--kodak-no-profile", type=Path, required=True, help="eval report, --no-noise-profile")
    parser.add_argument("--bench", type=Path, required=True, help="bench report (--json)")
    parser.add_argument("--row", default="learned",
                        help="the eval and bench rows of the shipped model [default: learned]")
    parser.add_argument("--known-defect", action="append", default=None,
                        help="replaces the previous card's list of known defects (repeatable)")
    args = parser.parse_args()

    try:
        card = complete_card(args)
    except (OSError, ValueError, KeyError, StopIteration) as exc:  # missing or foreign reports
        parser.error(f"cannot complete the card: {type(exc).__name__}: {exc}")
    # both files are staged first, so a failure leaves models/ as it was
    staged = {MODELS / "lwisp.onnx": args.onnx.read_bytes(),
              MODELS / "lwisp.json": (json.dumps(card, indent=2) + "\n").encode()}
    try:
        for path, data in staged.items():
            path.with_name(path.name + ".part").write_bytes(data)
        for path in staged:
            path.with_name(path.name + ".part").replace(path)
    except OSError as exc:
        parser.error(f"cannot write {MODELS}: {exc}")
    print(json.dumps({"kodak24_learned": card["metrics"]["kodak24"]["mean"]["learned"],
                      "speed": card["metrics"]["speed_24mp_cpu"]}))


def complete_card(args: argparse.Namespace) -> dict:
    """The exported card with the eval, bench and carried-over entries added."""
    card = json.loads(args.onnx.with_suffix(".json").read_text())
    previous = json.loads((MODELS / "lwisp.json").read_text())
    for key in ("device", "distillation_ab", "loss_ab", "mining_ab", "architecture_ab"):
        if key in previous["training"]:
            card["training"][key] = previous["training"][key]
    card["metrics"]["kodak24"] = {
        "protocol": KODAK_PROTOCOL,
        "command": KODAK_COMMAND,
        "mean": means(json.loads(args.kodak.read_text()), args.row),
        "learned_without_noise_profile": {
            "command": "rawisp eval ../shared/data/test/kodak24 --engine learned --no-noise-profile -j 2",
            "meaning": NO_PROFILE_MEANING,
            "mean": means(json.loads(args.kodak_no_profile.read_text()), args.row)["learned"],
        },
    }
    card["metrics"]["speed_24mp_cpu"] = speed(json.loads(args.bench.read_text()))
    if "tiling" not in card:  # the effective tile margin of these weights (tools/tile_margin.py)
        card["tiling"] = measure_tiling(args.onnx)
    # the command as it applies to the shipped copy (the weights measured, under their shipped name)
    card["tiling"]["command"] = "python tools/tile_margin.py models/lwisp.onnx"
    card["known_defects"] = args.known_defect or previous.get("known_defects", [])
    card["name"], card["onnx"] = "lwisp", "lwisp.onnx"
    return card


if __name__ == "__main__":
    main()
