"""Text helpers shared by the benchmark reports (report.py, plot.py): reading a
pytest-benchmark JSON file, time and spread formatting, and rewriting a marked section
of bench/README.md."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any


def read_benchmarks(path: Path) -> dict[str, Any]:
    """A pytest-benchmark JSON file (``--benchmark-json``), or SystemExit naming the file
    and what is wrong with it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SystemExit(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise SystemExit(f"{path}: not JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise SystemExit(f"{path}: not a pytest-benchmark JSON file (no 'benchmarks' list); "
                         f"write one with --benchmark-json")
    return data


def seconds(value: float) -> str:
    """A duration in the largest unit that keeps it at or above 1 (s, ms, µs, ns)."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value / 1e-9:.3g} ns"


def spread(values: list[float], show: Callable[[float], str]) -> str:
    """The median, and the range over runs when there are several."""
    middle = show(statistics.median(values))
    return middle if len(values) == 1 else f"{middle} ({show(min(values))} – {show(max(values))})"


def replace_section(readme: Path, begin: str, end: str, markdown: str) -> None:
    """Replaces what stands between the `begin` and `end` markers of `readme`."""
    text = readme.read_text()
    head, found, rest = text.partition(begin)
    _, found_end, tail = rest.partition(end)
    if not (found and found_end):
        raise SystemExit(f"{readme} has no {begin} ... {end} section")
    readme.write_text(f"{head}{begin}\n{markdown}{end}{tail}")
