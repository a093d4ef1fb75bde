"""The plain-text table printed by ``rawisp bench``, from the report :func:`rawisp.measure.bench.run_bench` returns."""

from __future__ import annotations

from rawisp.measure.bench import RowStatus
from rawisp.measure.bench_child import STAGES


def format_report(report: dict) -> str:
    """The plain-text table printed by ``rawisp bench``."""
    lines = []
    kind = "synthetic Bayer DNG" if report["synthetic"] else "RAW file"
    quality = f" q{report['quality']}" if report["format"] == "jpeg" else ""
    lines.append(f"rawisp bench {report['rawisp_version']}: {report['file']}")
    lines.append(f"  {report['width']}x{report['height']} ({report['megapixels']:.1f} MP) {kind} -> "
                 f"{report['format']}{quality}; {report['repeat']} run{'s' if report['repeat'] > 1 else ''} each, "
                 f"a fresh process per run; "
                 f"seconds, median of runs")
    machine = report["machine"]
    load = report["load_before"]
    busy = "  BUSY: timings are contended" if report["contended"] else ""
    load_text = f", load average {load[0]:.2f} before / {report['load_after'][0]:.2f} after" if load else ""
    lines.append(f"  {machine['cpus']} CPUs ({machine['cpu']}){load_text}{busy}")
    lines.append("")
    header = (f"{'':<22}" + "".join(f"{s:>12}" for s in STAGES)
              + f"{'total':>9} {'[min-max]':<14}{'MP/s':>6}{'process':>9}{'peak MB':>9} {'[min-max]':<12}"
              + f"{'threads':>8}{'cpu/wall':>9}{'vs rawpy':>9}{'vs RT':>7}  runtime")
    lines.append(header)
    for row in report["results"]:
        name = row["name"]
        if row["status"] != RowStatus.OK and not row["runs"]:
            lines.append(f"{name:<22}{row['status']}: {row['error']}")
            continue
        med, lo, hi = row["median"], row["min"], row["max"]
        cells = "".join(f"{_sec(med.get(s)):>12}" for s in STAGES)
        spread = f"[{lo['total']:.2f}-{hi['total']:.2f}]"
        peak = row["peak_rss_mb"]
        peak_text = f"{peak['median']:>9.0f} [{peak['min']:.0f}-{peak['max']:.0f}]" if peak else f"{'?':>9}"
        vs = f"{row['vs_rawpy']:.2f}x" if row.get("vs_rawpy") else "-"
        vs_rt = f"{row['vs_rawtherapee']:.2f}x" if row.get("vs_rawtherapee") else "-"
        lines.append(f"{name:<22}{cells}{med['total']:>9.2f} {spread:<14}{_num(row['mp_per_s'], 1):>6}"
                     f"{_sec(med.get('process')):>9}{peak_text:<22}{_num(row['threads'], 0):>8}"
                     f"{_num(row['cpu_per_wall'], 2):>9}{vs:>9}{vs_rt:>7}  {_runtime(row)}")
        if row["status"] != RowStatus.OK:
            lines.append(f"{'':<22}{row['status']} after {len(row['runs'])} runs: {row['error']}")
    staged = [r for r in report["results"] if r["runs"] and r["kind"] != "cli"]
    if staged:
        lines.append("")
        lines.append(f"{'spread [min-max]':<22}" + "".join(f" {s:>13}" for s in STAGES))
        for row in staged:
            lines.append(f"{row['name']:<22}" + "".join(
                f" {_range(row['min'].get(s), row['max'].get(s)):>13}" for s in STAGES))
    notes = [f"{r['name']}: {n}" for r in report["results"] for n in r["notes"] if r["status"] == RowStatus.OK]
    notes += [f"{r['name']}: network {e['network_s']:.2f} s ({e['network_mp_per_s']:.2f} MP/s) in {e['tiles']} "
              f"tiles of {e['tile']} packed px (margin {e['margin']}); margins {100 * e['margin_share']:.0f}% of the "
              "pixels it computes"
              for r in report["results"] if r["status"] == RowStatus.OK and (e := r.get("network"))]
    notes += [f"{r['name']}: model load {r['load_s']:.2f} s (not in total)" for r in report["results"]
              if r.get("load_s") and r["load_s"] >= 0.05]
    notes += [f"{r['name']}: warning: {w}" for r in report["results"] for w in r.get("warnings", [])]
    lines.append("")
    lines.append("total: sum of the stages; process: the whole child process (interpreter start-up, imports, "
                 "model load); peak: the developing process's peak resident memory (VmHWM);")
    lines.append("threads: the engine's thread setting, else the OS threads of the process; cpu/wall: CPU seconds "
                 "per wall second over the stages (cores kept busy);")
    lines.append("vs rawpy, vs RT: total time relative to rawpy postprocess + write and to rawtherapee-cli's "
                 "whole process, measured in this same run.")
    lines += [f"note: {n}" for n in notes]
    return "\n".join(lines)


def _runtime(row: dict) -> str:
    """What ran the network and in which precision (``OpenVINO 2026.4.1 CPU bf16``), else the
    provider a row names, else ``-``."""
    if row.get("runtime"):
        return f"{row['runtime']} {row.get('precision') or ''}".strip()
    return row.get("provider") or "-"


def _sec(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _range(lo: float | None, hi: float | None) -> str:
    return "-" if lo is None else f"{lo:.2f}-{hi:.2f}"
