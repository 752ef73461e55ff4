"""Plots and a markdown table of the peer benchmarks (bench/test_bench_peers.py).

    pytest bench/test_bench_peers.py -m '' --benchmark-enable --benchmark-json=.benchmarks/peers-1.json
    python bench/plot.py .benchmarks/peers-1.json [MORE.json ...] [--out bench/plots] [--update-readme]

Reads pytest-benchmark JSON files and keeps the benchmarks whose ``extra_info`` names a
``peer``. Writes two PNGs into ``--out``: ``peers-time.png`` (median time against n,
log-log, one line per algorithm and peer, one panel per problem) and ``peers-gap.png``
(each peer's optimality gap, bottleneck / layerwise_fast's bottleneck - 1, per problem
and size). Prints markdown: the machine, the issue's targets with a verdict, and one
table per problem and size (time, how many times faster layerwise_fast is, bottleneck,
gap). With ``--update-readme`` the markdown replaces the part of bench/README.md between
``<!-- peers:begin -->`` and ``<!-- peers:end -->``.

Speed-ups are taken within one run (a peer and layerwise_fast timed by the same process
minutes apart at most); with several runs a figure is the median over the runs, with
its range. matplotlib is needed for the PNGs only (``--no-plots`` skips them).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from report_text import read_benchmarks, replace_section, seconds, spread

HERE = Path(__file__).resolve().parent
README = HERE / "README.md"
PLOTS = HERE / "plots"
BEGIN, END = "<!-- peers:begin -->", "<!-- peers:end -->"

REFERENCE = ("layerwise_fast", "balanced", "")
NAMES = {
    ("layerwise_fast", "balanced", ""): "layerwise_fast balanced",
    ("layerwise_fast", "balanced", "sizes read from the model"): "layerwise_fast balanced, sizes read from the model",
    ("layerwise_fast", "greedy", ""): "layerwise_fast greedy (fewest devices)",
    ("deepspeed", "partition_balanced", ""): "DeepSpeed partition_balanced",
    ("deepspeed", "partition_uniform", ""): "DeepSpeed partition_uniform",
    ("torchgpipe", "blockpartition.solve", ""): "torchgpipe blockpartition.solve",
    ("accelerate", "infer_auto_device_map", ""): "accelerate infer_auto_device_map",
    ("seed", "seed_greedy", ""): "seed greedy (pure Python)",
}
ORDER = list(NAMES)
COLOURS = {series: f"C{i}" for i, series in enumerate(ORDER)}
PROBLEMS = ("k groups", "placement")

# A series is (peer, algorithm, variant); a case is (problem, n, k).
Series = tuple[str, str, str]
Case = tuple[str, int, int]


@dataclass
class Result:
    """One benchmark of one run."""

    median: float
    rounds: int
    bottleneck: int
    optimum: int
    groups: int  # non-empty groups (devices used, for a placement)
    version: str


@dataclass
class Run:
    """The peer benchmarks of one pytest-benchmark JSON file."""

    source: str
    machine: dict
    when: str
    results: dict[tuple[Case, Series], Result] = field(default_factory=dict)
    torch: str = ""  # the torch version the peers ran on, where recorded


def series_of(info: dict) -> Series:
    return (info["peer"], info["algorithm"], info.get("variant", ""))


def name_of(series: Series) -> str:
    return NAMES.get(series, " ".join(part for part in series if part))


def load(path: Path) -> Run:
    data = read_benchmarks(path)
    run = Run(path.name, data.get("machine_info", {}), data.get("datetime", ""))
    for bench in data["benchmarks"]:
        info = bench.get("extra_info", {})
        if "peer" not in info:
            continue
        case = (info["problem"], info["n"], info["k"])
        run.torch = info.get("torch_version") or run.torch
        groups = info.get("devices_used", info["k"] - info.get("empty_groups", 0))
        run.results[(case, series_of(info))] = Result(
            bench["stats"]["median"], bench["stats"]["rounds"], info["bottleneck"],
            info["layerwise_fast_bottleneck"], groups, str(info.get("peer_version", "")),
        )
    return run


def cases_of(runs: list[Run]) -> list[Case]:
    found = {case for run in runs for case, _ in run.results}
    return sorted(found, key=lambda case: (PROBLEMS.index(case[0]), case[1], case[2]))


def series_in(runs: list[Run], case: Case) -> list[Series]:
    found = {series for run in runs for (c, series) in run.results if c == case}
    return sorted(found, key=lambda s: ORDER.index(s) if s in ORDER else len(ORDER))


def times(runs: list[Run], case: Case, series: Series) -> list[float]:
    return [run.results[(case, series)].median for run in runs if (case, series) in run.results]


def speedups(runs: list[Run], case: Case, series: Series, reference: Series = REFERENCE) -> list[float]:
    """Peer time / layerwise_fast time (balanced by default), within each run that timed both."""
    return [
        run.results[(case, series)].median / run.results[(case, reference)].median
        for run in runs
        if (case, series) in run.results and (case, reference) in run.results
    ]


def result_of(runs: list[Run], case: Case, series: Series) -> Result:
    """The last run's result (bottlenecks are deterministic: the same in every run)."""
    return next(run.results[(case, series)] for run in reversed(runs) if (case, series) in run.results)


def gap(result: Result) -> float:
    return result.bottleneck / result.optimum - 1


# ---------------------------------------------------------------------------------------
# Markdown


def factor(value: float) -> str:
    return f"{value:,.0f}x" if value >= 100 else f"{value:.3g}x"


def percent(value: float) -> str:
    return "0 (optimal)" if value == 0 else f"{100 * value:.3g}%"


def case_title(case: Case) -> str:
    problem, n, k = case
    if problem == "placement":
        return f"Placement of n={n:,} Linear layers on {k} devices"
    return f"n={n:,} layers, k={k} groups"


def machine_lines(runs: list[Run]) -> list[str]:
    first = runs[0].machine
    versions = sorted({f"{series[0]} {result.version}" for run in runs for (_, series), result in run.results.items()
                       if result.version})
    versions += sorted({f"torch {run.torch}" for run in runs if run.torch})
    lines = [
        f"- CPU: {first.get('cpu_model') or first.get('cpu', {}).get('brand_raw', 'unknown')}, "
        f"{first.get('logical_cores', '?')} logical cores; {first.get('system', '')} {first.get('release', '')}".rstrip(),
        f"- Python {first.get('python_version', '?')}, numpy {first.get('numpy_version', '?')}; "
        + ", ".join(versions),
    ]
    builds = sorted({str(run.machine["layerwise_fast_core"]) for run in runs if "layerwise_fast_core" in run.machine})
    lines += [f"- layerwise_fast native core: {build}" for build in builds]
    for i, run in enumerate(runs, 1):
        start, end = run.machine.get("load_average_at_start"), run.machine.get("load_average_at_end")
        load = f"; load average (1, 5, 15 min) {start} at start, {end} at end" if start or end else ""
        lines.append(f"- run {i} (`{run.source}`, {len(run.results)} benchmarks): {run.when}{load}")
    return lines


@dataclass(frozen=True)
class SpeedTarget:
    """layerwise_fast (`reference`) at least `limit` times faster than a peer, at the sizes in `where`."""

    series: Series
    limit: float
    where: Callable[[Case], bool]
    description: str
    reference: Series = REFERENCE


SPEED_TARGETS = [
    SpeedTarget(("deepspeed", "partition_balanced", ""), 100, lambda c: c[0] == "k groups",
                "≥ 100x faster than DeepSpeed partition_balanced"),
    SpeedTarget(("torchgpipe", "blockpartition.solve", ""), 10, lambda c: c[0] == "k groups",
                "≥ 10x faster than torchgpipe blockpartition.solve"),
    SpeedTarget(("accelerate", "infer_auto_device_map", ""), 100, lambda c: c[0] == "placement" and c[1] == 4000,
                "≥ 100x faster than accelerate infer_auto_device_map"),
    SpeedTarget(("accelerate", "infer_auto_device_map", ""), 100, lambda c: c[0] == "placement" and c[1] == 4000,
                "(end to end, for information) the same, counting layerwise_fast's reading of the sizes "
                "from the model", ("layerwise_fast", "balanced", "sizes read from the model")),
]


def speed_rows(runs: list[Run], target: SpeedTarget) -> Iterable[str]:
    measured = [c for c in cases_of(runs) if target.where(c) and speedups(runs, c, target.series, target.reference)]
    if not measured:
        yield f"| {target.description} | – | not measured | – |"
    for case in measured:
        values = speedups(runs, case, target.series, target.reference)
        value = statistics.median(values)
        verdict = "PASS" if value >= target.limit else f"FAIL ({target.limit / value:.2g}x short)"
        yield f"| {target.description} | {case_title(case)} | {spread(values, factor)} | {verdict} |"


def bottleneck_rows(runs: list[Run]) -> Iterable[str]:
    """One row per case: the smallest peer gap (layerwise_fast's bottleneck must be <= every peer's)."""
    for case in cases_of(runs):
        peers = [s for s in series_in(runs, case) if s[0] != "layerwise_fast"]
        if not peers:
            continue
        closest = min(peers, key=lambda s: gap(result_of(runs, case, s)))
        smallest = gap(result_of(runs, case, closest))
        verdict = "PASS" if smallest >= 0 else f"FAIL ({percent(-smallest)} larger than {name_of(closest)})"
        yield (f"| bottleneck ≤ every peer's ({len(peers)} peers) | {case_title(case)} | "
               f"closest: {name_of(closest)}, gap {percent(smallest)} | {verdict} |")


def target_lines(runs: list[Run]) -> list[str]:
    rows = ["| target | problem | measured | result |", "|---|---|---|---|"]
    for target in SPEED_TARGETS:
        rows += speed_rows(runs, target)
    rows += bottleneck_rows(runs)
    return rows


def faster_by(runs: list[Run], case: Case, series: Series) -> str:
    """How many times faster layerwise_fast balanced is than a peer (below 1x: the peer is faster)."""
    if series == REFERENCE:
        return "(reference)"
    ratios = speedups(runs, case, series)
    return "–" if series[0] == "layerwise_fast" or not ratios else spread(ratios, factor)


def case_lines(runs: list[Run], case: Case) -> list[str]:
    groups_label = "devices used" if case[0] == "placement" else "non-empty groups"
    lines = [f"**{case_title(case)}**", "",
             f"| algorithm | median time | rounds | layerwise_fast faster by | bottleneck | gap | {groups_label} |",
             "|---|---|---|---|---|---|---|"]
    for series in series_in(runs, case):
        result = result_of(runs, case, series)
        rounds = "/".join(str(run.results[(case, series)].rounds) for run in runs if (case, series) in run.results)
        lines.append(f"| {name_of(series)} | {spread(times(runs, case, series), seconds)} | {rounds} | "
                     f"{faster_by(runs, case, series)} | "
                     f"{result.bottleneck:,} | {percent(gap(result))} | {result.groups} |")
    return lines + [""]


def render(runs: list[Run]) -> str:
    count = "1 run" if len(runs) == 1 else f"{len(runs)} runs; medians over the runs, (min – max) in brackets"
    lines = ["### Machine", "", *machine_lines(runs), "", f"### Targets ({count})", "", *target_lines(runs), "",
             "### Results by problem", ""]
    for case in cases_of(runs):
        lines += case_lines(runs, case)
    return "\n".join(lines).rstrip() + "\n"


def update_readme(markdown: str, readme: Path = README) -> None:
    replace_section(readme, BEGIN, END, markdown)


# ---------------------------------------------------------------------------------------
# Plots


def matplotlib_figure() -> tuple[Any, Any]:
    """matplotlib's Figure and Agg canvas (no pyplot state), or a clear exit without it."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise SystemExit("bench/plot.py needs matplotlib for the PNGs: pip install matplotlib "
                         "(or pass --no-plots for the markdown only)") from None
    return Figure, FigureCanvasAgg


def save(figure: Any, canvas_type: Any, path: Path) -> None:
    canvas_type(figure).print_png(str(path))


def legend_below(axes: Any, columns: int) -> None:
    axes.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=columns, frameon=False)


def draw_times(axes: Any, runs: list[Run], problem: str) -> None:
    """Median time against n, one line per series and k (solid for the smallest k)."""
    cases = [c for c in cases_of(runs) if c[0] == problem]
    ks = sorted({c[2] for c in cases})
    styles = dict(zip(ks, ["-", "--", ":", "-."]))
    labelled: set[Series] = set()
    for series in sorted({s for c in cases for s in series_in(runs, c)}, key=ORDER.index):
        for k in ks:
            points = [(c[1], statistics.median(times(runs, c, series))) for c in cases
                      if c[2] == k and times(runs, c, series)]
            if not points:
                continue
            xs, ys = zip(*points)
            label = None if series in labelled else name_of(series)
            labelled.add(series)
            axes.plot(xs, ys, styles[k], marker="o", color=COLOURS.get(series, "k"), label=label, markersize=4)
    if len(ks) > 1:  # legend entries for the line styles
        for k in ks:
            axes.plot([], [], styles[k], color="0.4", label=f"k={k}")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("n (layers)")
    axes.set_ylabel("median time per call (s)")
    axes.grid(True, which="major", alpha=0.3)
    axes.set_title(f"placement on {ks[0]} devices" if problem == "placement" else "k contiguous groups")
    legend_below(axes, 2)


def plot_times(runs: list[Run], path: Path) -> None:
    figure_type, canvas_type = matplotlib_figure()
    problems = [p for p in PROBLEMS if any(c[0] == p for c in cases_of(runs))]
    figure = figure_type(figsize=(5.6 * len(problems), 5.2), dpi=100, layout="constrained")
    for i, problem in enumerate(problems, 1):
        draw_times(figure.add_subplot(1, len(problems), i), runs, problem)
    save(figure, canvas_type, path)


def plot_gaps(runs: list[Run], path: Path) -> None:
    """Bars: each peer's gap in per cent, per problem and size (symmetric log scale)."""
    figure_type, canvas_type = matplotlib_figure()
    cases = [c for c in cases_of(runs) if any(s[0] != "layerwise_fast" for s in series_in(runs, c))]
    peers = sorted({s for c in cases for s in series_in(runs, c) if s[0] != "layerwise_fast"}, key=ORDER.index)
    figure = figure_type(figsize=(10, 4.8), dpi=100, layout="constrained")
    axes = figure.add_subplot(1, 1, 1)
    width = 0.8 / max(1, len(peers))
    labelled: set[Series] = set()
    for j, series in enumerate(peers):
        for i, case in enumerate(cases):
            if not times(runs, case, series):
                continue
            value = 100 * gap(result_of(runs, case, series))
            x = i - 0.4 + (j + 0.5) * width
            label = None if series in labelled else name_of(series)
            labelled.add(series)
            axes.bar(x, value, width, color=COLOURS.get(series, "k"), label=label)
            axes.annotate(f"{value:.2g}", (x, value), ha="center", va="bottom", fontsize=6)
    axes.set_yscale("symlog", linthresh=0.1)
    axes.set_ylabel("gap: bottleneck / layerwise_fast's - 1 (%)")
    axes.set_xticks(range(len(cases)))
    axes.set_xticklabels([f"n={c[1]}, k={c[2]}" if c[0] == "k groups" else f"placement\nn={c[1]}, {c[2]} devices"
                          for c in cases], fontsize=8)
    axes.set_title("optimality gap of each peer (0 = optimal; symlog scale, linear below 0.1%)")
    axes.grid(True, axis="y", alpha=0.3)
    legend_below(axes, 3)
    save(figure, canvas_type, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", nargs="+", type=Path, help="pytest-benchmark JSON file(s), one per run")
    parser.add_argument("--out", type=Path, default=PLOTS,
                        help=f"folder for the PNGs (default {PLOTS}, where the committed figures are: "
                             "they are replaced)")
    parser.add_argument("--no-plots", action="store_true", help="write the markdown only")
    parser.add_argument("--update-readme", action="store_true", help=f"rewrite the peers section of {README}")
    args = parser.parse_args(argv)
    runs = [load(path) for path in args.json]
    if not any(run.results for run in runs):
        raise SystemExit("no peer benchmarks in these files (run bench/test_bench_peers.py with --benchmark-json)")
    if not args.no_plots:
        args.out.mkdir(parents=True, exist_ok=True)
        plot_times(runs, args.out / "peers-time.png")
        plot_gaps(runs, args.out / "peers-gap.png")
    markdown = render(runs)
    print(markdown, end="")
    if args.update_readme:
        update_readme(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
