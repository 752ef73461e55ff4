"""README tables from GPU verification runs (the verification.json of gpu_verify).

    python bench/gpu_report.py bench/gpu_results/h200 bench/gpu_results/h100 [--update-readme]

Each argument is a run's output folder (or its verification.json). The tables: the
calibration of each card, every verified group (rates count bytes read plus bytes
written), and, for runs that hold them, the kernel variants of the first group and the
cost of each grid barrier. ``--update-readme`` replaces what stands between
``<!-- gpu-tables:begin -->`` and ``<!-- gpu-tables:end -->`` in README.md; without
it the Markdown is printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report_text import replace_section  # noqa: E402

README = Path(__file__).resolve().parent.parent / "README.md"
BEGIN, END = "<!-- gpu-tables:begin -->", "<!-- gpu-tables:end -->"
MIB = 2**20


def load(path: str | Path) -> dict[str, Any]:
    """A run's verification.json (``path`` is the file or its folder)."""
    file = Path(path)
    if file.is_dir():
        file = file / "verification.json"
    try:
        result: dict[str, Any] = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SystemExit(f"gpu_report: cannot read {file}: {exc}") from exc
    if not isinstance(result, dict) or "environment" not in result:
        raise SystemExit(f"gpu_report: {file} is not a verification.json of gpu_verify")
    return result


def card_label(result: dict[str, Any]) -> str:
    """The card's short name: "H200" for "NVIDIA H200", "H100" for "NVIDIA H100 80GB HBM3"."""
    name = result["environment"]["device"]["name"]
    words = name.split()
    return words[1] if words[:1] == ["NVIDIA"] and len(words) > 1 else name


def _tbps(rate: float | None) -> str:
    return "-" if rate is None else f"{rate / 1e12:.2f} TB/s"


def _mib(size: float | None) -> str:
    return "-" if size is None else f"{size / MIB:.1f} MiB"


def _times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _rate(run: dict[str, Any] | None) -> float | None:
    return None if run is None else run.get("bandwidth_bytes_per_s")


def stream_access(cal: dict[str, Any]) -> str:
    """The calibration stream's access: ``quad`` (16-byte loads) or ``scalar`` (4-byte
    loads; runs written before the choice existed used it, and name no access)."""
    method = cal.get("meta", {}).get("method") or cal.get("method") or {}  # a file's, or a curve without a knee's
    access = method.get("access")
    return access if access in ("quad", "scalar") else "scalar"


def calibration_table(results: Sequence[dict[str, Any]]) -> list[str]:
    """One row per timed calibration of each run: the one that judged its groups, then
    the comparison stream where the run holds one."""
    lines = ["| card | stream | L2 (device) | plateau | at | HBM rate | knee | knee / L2 | copy |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for result in results:
        groups = result.get("groups")
        copy = _rate(groups[0]["runs"].get("device_copy")) if groups else None
        for key, role in (("calibration", ""), ("calibration_scalar", " (comparison)")):
            cal = result.get(key, {})
            if not cal.get("timed"):
                continue
            name = cal.get("device_name", result["environment"]["device"]["name"])
            stream = f"{stream_access(cal)}{role}"
            if "knee_bytes" not in cal:  # a curve without a cache step
                lines.append(f"| {name} | {stream} | {_mib(cal['l2_bytes'])} | - | - | - "
                             f"| no knee | - | {_tbps(copy)} |")
                continue
            lines.append(
                f"| {name} | {stream} | {_mib(cal['l2_bytes'])} "
                f"| {_tbps(cal['plateau_bytes_per_s'])} | {_mib(cal['meta']['plateau_size_bytes'])} "
                f"| {_tbps(cal['hbm_bytes_per_s'])} | {_mib(cal['knee_bytes'])} "
                f"| {cal['knee_bytes'] / cal['l2_bytes']:.2f} | {_tbps(copy)} |")
    return lines


def _group_name(name: str) -> str:
    return f"plan {name}" if name.startswith("group ") else name


def _other_barriers(runs: dict[str, Any]) -> str:
    """The speedup of the planned chunk with each compared barrier (``planned_<barrier>``
    runs): layer-by-layer time over its time."""
    control = (runs.get("layer_by_layer") or {}).get("seconds")
    parts = []
    for name, run in runs.items():
        if name.startswith("planned_"):
            seconds = run.get("seconds")
            speedup = control / seconds if control and seconds else None
            parts.append(f"{name.removeprefix('planned_')} {_times(speedup)}")
    return ", ".join(parts) or "-"


def groups_table(results: Sequence[dict[str, Any]]) -> list[str]:
    lines = ["| card | group | layers | working set | planned | 2x cache | 4x cache | layer by layer "
             "| speedup | other barrier | predicted | verdict |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for result in results:
        card = card_label(result)
        for report in result.get("groups", []):
            group, runs = report["group"], report["runs"]
            lines.append(
                f"| {card} | {_group_name(group['name'])} | {len(group['layers'])} "
                f"| {_mib(group['working_set_bytes'])} | {_tbps(_rate(runs.get('planned')))} "
                f"| {_tbps(_rate(runs.get('2x_cache')))} | {_tbps(_rate(runs.get('4x_cache')))} "
                f"| {_tbps(_rate(runs.get('layer_by_layer')))} | {_times(report['measured_speedup'])} "
                f"| {_other_barriers(runs)} | {_times(report['predicted_speedup'])} | {report['verdict']} |")
    return lines


def variants_table(results: Sequence[dict[str, Any]]) -> list[str]:
    """The kernel variants of each run that swept them (speedup: over layer by layer with
    the same packs in flight; vs best: over the fastest layer by layer)."""
    swept = [result for result in results if result.get("variants", {}).get("runs")]
    if not swept:
        return []
    lines = ["| card | group | barrier | packs | chunked | layer by layer | speedup | vs best "
             "| correct |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for result in swept:
        runs = result["variants"]["runs"]
        controls = [run["control"]["seconds"] for run in runs if run["control"]["seconds"]]
        fastest = min(controls) if controls else None
        for run in runs:
            seconds = run["chunked"]["seconds"]
            vs_best = fastest / seconds if fastest and seconds else None
            correct = all(_correct(part, result) for part in (run["chunked"], run["control"]))
            lines.append(
                f"| {card_label(result)} | {result['variants']['group']} | {run['barrier']} "
                f"| {run['packs_in_flight']} | {_tbps(_rate(run['chunked']))} "
                f"| {_tbps(_rate(run['control']))} | {_times(run['speedup'])} "
                f"| {_times(vs_best)} | {'yes' if correct else 'NO'} |")
    return lines


def _correct(run: dict[str, Any], result: dict[str, Any]) -> bool:
    groups = result.get("groups")
    tolerance = result["variants"].get("tolerance", groups[0]["tolerance"] if groups else None)
    error = run.get("relative_error")
    return (error is not None and tolerance is not None and error <= tolerance
            and run.get("unwritten") == 0 and run.get("barrier_timeouts", 0) == 0
            and run.get("mismatches") in (None, 0))


def barrier_table(results: Sequence[dict[str, Any]]) -> list[str]:
    timed = [result for result in results if result.get("barrier_costs")]
    if not timed:
        return []
    lines = ["| card | barrier | blocks | us per barrier | timeouts |",
             "| --- | --- | --- | --- | --- |"]
    for result in timed:
        for cost in result["barrier_costs"]:
            seconds = cost.get("seconds_per_barrier")
            lines.append(f"| {card_label(result)} | {cost['barrier']} | {cost['blocks']} "
                         f"| {'-' if seconds is None else f'{seconds * 1e6:.2f}'} "
                         f"| {cost.get('timeouts', 0)} |")
    return lines


def render(results: Sequence[dict[str, Any]]) -> str:
    """The Markdown of every table, each under a one-line heading."""
    sections = [
        ("Calibration (rates count bytes read plus bytes written; stream: `quad` moves 16 "
         "bytes per load, as the group kernels do, `scalar` 4; a `(comparison)` row judged "
         "nothing; `copy` is a device-to-device copy of the first group's activations):",
         calibration_table(results)),
        ("Groups (speedup = layer by layer time / chunked time at the planned chunk; "
         "predicted = the plan's, or the calibration's two-rate model for A and B):",
         groups_table(results)),
        ("Kernel variants of the first group at its planned chunk:", variants_table(results)),
        ("Grid barriers alone:", barrier_table(results)),
    ]
    # A table with no row under its header and separator is left out.
    parts = [f"{heading}\n\n" + "\n".join(table) + "\n" for heading, table in sections if len(table) > 2]
    verdicts = ", ".join(f"{card_label(r)} {r.get('verdict', 'incomplete')}" for r in results)
    parts.append(f"Overall verdicts: {verdicts}.\n")
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("runs", nargs="+", metavar="RUN",
                        help="a gpu_verify output folder, or its verification.json")
    parser.add_argument("--update-readme", action="store_true",
                        help=f"rewrite the GPU tables of {README.name}")
    args = parser.parse_args(argv)
    markdown = render([load(run) for run in args.runs])
    if args.update_readme:
        replace_section(README, BEGIN, END, markdown)
    else:
        sys.stdout.write(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
