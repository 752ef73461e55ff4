"""Markdown summary of the partition benchmarks, with the issue's targets checked.

    pytest bench --benchmark-enable --benchmark-json=.benchmarks/partition.json
    python bench/report.py .benchmarks/partition.json [MORE.json ...] [--memory FILE] [--update-readme]

Reads pytest-benchmark JSON files. Every ratio is taken within one run (the benchmark
and its baseline timed by the same process, minutes apart at most); with several runs,
a figure is the median over the runs and its range is shown. A benchmark whose
extra_info gives ``calls_per_round`` (a round of many calls) is reported per call;
benchmarks of other suites are listed under their test names. Prints the markdown;
with ``--update-readme`` it also replaces the part of bench/README.md between
``<!-- results:begin -->`` and ``<!-- results:end -->``. ``--memory`` adds the figures
that bench/memory_check.py writes with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import operator
import statistics
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from report_text import read_benchmarks, replace_section, seconds, spread

README = Path(__file__).with_name("README.md")
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
BASELINE = "numpy.add.reduce"

# A benchmark is named by (algorithm, n, distribution, k, input) from its extra_info.
Key = tuple[str, int, str, "int | None", "str | None"]


def key(algorithm: str, n: int, distribution: str = "uniform", k: int | None = None, input: str | None = None) -> Key:
    return (algorithm, n, distribution, k, input)


@dataclass(frozen=True)
class Target:
    """A bound on a figure computed from one run's medians (seconds by key)."""

    description: str
    figure: Callable[[dict[Key, float]], float]
    limit: float
    at_most: bool  # True: figure <= limit; False: figure >= limit
    unit: str  # "x" for ratios, "s" for times

    def passes(self, value: float) -> bool:
        return value <= self.limit if self.at_most else value >= self.limit


def ratio(numerator: Key, denominator: Key) -> Callable[[dict[Key, float]], float]:
    return lambda medians: medians[numerator] / medians[denominator]


def time_of(name: Key) -> Callable[[dict[Key, float]], float]:
    return operator.itemgetter(name)


N7, N6 = 10**7, 10**6
# A bound set here, not by an issue: dp slides two windows over the layers, so it must
# stay within a constant number of passes (scanning every start of a 100-layer group
# instead took about 700; bench/README.md has the figures).
DP_PASSES_LIMIT = 200.0
TARGETS = [
    Target("greedy, n=10^7 uniform int64, vs one numpy.add.reduce pass",
           ratio(key("greedy", N7), key(BASELINE, N7)), 2.0, True, "x"),
    Target("balanced k=1024, n=10^7 uniform, vs one numpy.add.reduce pass",
           ratio(key("balanced", N7, k=1024), key(BASELINE, N7)), 5.0, True, "x"),
    Target("balanced k=65536, n=10^7 uniform, vs one numpy.add.reduce pass",
           ratio(key("balanced", N7, k=65536), key(BASELINE, N7)), 15.0, True, "x"),
    Target("speed-up of native greedy over the seed's pure-Python greedy (list input), n=10^6",
           ratio(key("seed_greedy", N6, input="list"), key("greedy", N6)), 300.0, False, "x"),
    Target("one greedy call, n=100 (numpy int64 array), median",
           time_of(key("greedy", 100)), 5e-6, True, "s"),
    Target("dp, n=10^5, about 1000 layers per group, median",
           time_of(key("dp", 10**5)), 1.0, True, "s"),
    Target("dp, n=10^7 uniform at 50 MB, vs one numpy.add.reduce pass",
           ratio(key("dp", N7), key(BASELINE, N7)), DP_PASSES_LIMIT, True, "x"),
]


@dataclass
class Run:
    """One pytest-benchmark JSON file."""

    source: str
    machine: dict
    when: str
    medians: dict[Key, float]
    spread: dict[Key, float]  # interquartile range / median
    rounds: dict[Key, int]
    groups: dict[Key, str]
    notes: dict[Key, str]


def load(path: Path) -> Run:
    data = read_benchmarks(path)
    run = Run(path.name, data.get("machine_info", {}), data.get("datetime", ""), {}, {}, {}, {}, {})
    for bench in data["benchmarks"]:
        info = bench.get("extra_info", {})
        if "algorithm" in info:
            name = key(info["algorithm"], info["n"], info.get("distribution", "uniform"), info.get("k"), info.get("input"))
        else:  # a benchmark of another suite: listed under its test name (n = 0)
            name = key(bench["name"], 0, "")
        stats = bench["stats"]
        calls = info.get("calls_per_round", 1)  # a round that makes many calls: report per call
        if calls != 1:
            run.notes[name] = f"per call, {calls:,} calls per round"
        run.medians[name] = stats["median"] / calls
        run.spread[name] = stats["iqr"] / stats["median"] if stats["median"] else 0.0
        run.rounds[name] = stats["rounds"]
        run.groups[name] = bench["group"] or ""
    return run


def label(name: Key, note: str | None = None) -> str:
    algorithm, _, _, k, given = name
    if algorithm == BASELINE:
        return f"`{BASELINE}` (baseline)"
    text = f"`{algorithm}`" + (f" ({note})" if note else "")
    if k is not None:
        text += f" k={k}"
    if given is not None:
        text += f" ({given} input)"
    return text


def order(name: Key) -> tuple:
    algorithm, n, distribution, k, given = name
    rank = {BASELINE: 0, "greedy": 1, "balanced": 2, "dp": 3, "seed_greedy": 4}.get(algorithm, 5)
    return (n, distribution != "uniform", rank, k or 0, given or "")


def machine_lines(runs: list[Run]) -> list[str]:
    first = runs[0].machine
    lines = [
        f"- CPU: {first.get('cpu_model') or first.get('cpu', {}).get('brand_raw', 'unknown')}, "
        f"{first.get('logical_cores', '?')} logical cores; {first.get('system', '')} {first.get('release', '')}".rstrip(),
        f"- Python {first.get('python_version', '?')}, numpy {first.get('numpy_version', '?')}, "
        f"layerwise_fast {first.get('layerwise_fast_version', '?')}",
    ]
    builds = sorted({str(run.machine["layerwise_fast_core"]) for run in runs if "layerwise_fast_core" in run.machine})
    lines += [f"- native core: {build}" for build in builds]
    lines += [f"- **run {i}: native core {run.machine['layerwise_fast_core_warning']}**"
              for i, run in enumerate(runs, 1) if "layerwise_fast_core_warning" in run.machine]
    for i, run in enumerate(runs, 1):
        start, end = run.machine.get("load_average_at_start"), run.machine.get("load_average_at_end")
        load = f"; load average (1, 5, 15 min) {start} at start, {end} at end" if start or end else ""
        lines.append(f"- run {i} (`{run.source}`, {len(run.medians)} benchmarks): {run.when}{load}")
    return lines


def target_rows(runs: list[Run]) -> list[str]:
    rows = ["| target | measured | limit | result |", "|---|---|---|---|"]
    for target in TARGETS:
        show = (lambda v: f"{v:.3g}x") if target.unit == "x" else seconds
        limit = ("≤ " if target.at_most else "≥ ") + show(target.limit)
        values = []
        for run in runs:
            try:
                values.append(target.figure(run.medians))
            except KeyError:  # this run did not time it (e.g. a run of the slow benchmarks only)
                pass
        if not values:
            rows.append(f"| {target.description} | not measured | {limit} | – |")
            continue
        value = statistics.median(values)
        verdict = "PASS" if target.passes(value) else "FAIL"
        if verdict == "FAIL":
            factor = value / target.limit if target.at_most else target.limit / value
            verdict += f" ({factor:.2g}x off)"
        rows.append(f"| {target.description} | {spread(values, show)} | {limit} | {verdict} |")
    return rows


def group_tables(runs: list[Run]) -> list[str]:
    names = sorted({name for run in runs for name in run.medians}, key=order)
    group_of = {name: next(run.groups[name] for run in runs if name in run.groups) for name in names}
    by_group: dict[str, list[Key]] = {}
    for name in names:
        by_group.setdefault(group_of[name], []).append(name)
    # Problems (groups with a baseline) first, by size; single benchmarks after them.
    listed = sorted(by_group.items(), key=lambda item: item[1][0][0] != BASELINE)
    several = len(runs) > 1
    lines: list[str] = []
    for group, members in listed:
        lines += [f"**{group}**", ""]
        lines += [
            "| benchmark | median | IQR / median | rounds | × baseline |",
            "|---|---|---|---|---|",
        ]
        for name in members:
            present = [run for run in runs if name in run.medians]
            medians = [run.medians[name] for run in present]
            base = key(BASELINE, name[1], name[2])
            ratios = [run.medians[name] / run.medians[base] for run in present if run.groups.get(base) == group]
            noise = statistics.median(run.spread[name] for run in present)
            rounds = "/".join(str(run.rounds[name]) for run in present) if several else str(present[0].rounds[name])
            times = spread(medians, seconds)
            versus = spread(ratios, lambda v: f"{v:.3g}") if ratios else "–"
            note = next((run.notes[name] for run in present if name in run.notes), None)
            lines.append(f"| {label(name, note)} | {times} | {noise:.0%} | {rounds} | {versus} |")
        lines.append("")
    return lines


def memory_rows(figures: Iterable[dict]) -> list[str]:
    mib = 2**20
    rows = [
        "| algorithm | n | input | RSS after input | peak increase | bound: arrays × 8(n+1) B + 64 MiB | time | result |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for f in figures:
        name = f"`{f['algorithm']}`" + (f" k={f['k']}" if f["algorithm"] == "balanced" else "")
        rows.append(
            f"| {name} | {f['n']:,} | {f['input_bytes'] / mib:,.1f} MiB | {f['rss_after_input_bytes'] / mib:,.1f} MiB "
            f"| {f['peak_increase_bytes'] / mib:,.1f} MiB | {f['bound_bytes'] / mib:,.1f} MiB | {f['seconds']} s "
            f"| {'PASS' if f['ok'] else 'FAIL'} |"
        )
    return rows


def render(runs: list[Run], memory: list[dict] | None) -> str:
    count = (
        f"{len(runs)} runs; each figure is the median over the runs that timed it, (min – max) in brackets"
        if len(runs) > 1
        else "1 run"
    )
    lines = ["### Machine", "", *machine_lines(runs), "", f"### Targets ({count})", "", *target_rows(runs), ""]
    if memory:
        lines += ["### Memory at 10^8 layers (bench/memory_check.py)", "", *memory_rows(memory), ""]
    lines += ["### Medians by group", "", *group_tables(runs)]
    return "\n".join(lines).rstrip() + "\n"


def update_readme(markdown: str, readme: Path = README) -> None:
    replace_section(readme, BEGIN, END, markdown)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", nargs="+", type=Path, help="pytest-benchmark JSON file(s), one per run")
    parser.add_argument("--memory", type=Path, help="figures written by bench/memory_check.py --json")
    parser.add_argument("--update-readme", action="store_true", help=f"rewrite the results section of {README}")
    args = parser.parse_args(argv)
    runs = [load(path) for path in args.json]
    memory = json.loads(args.memory.read_text()) if args.memory else None
    markdown = render(runs, memory)
    print(markdown, end="")
    if args.update_readme:
        update_readme(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
