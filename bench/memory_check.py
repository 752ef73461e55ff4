"""Peak memory of greedy, balanced (k = 1024) and dp at 10^8 int64 layers (an 800 MB input).

greedy and balanced must finish with at most one extra int64 array of length n, dp
(at the 50 MB capacity) with two (the best bottleneck and the last group's start of
every prefix): the peak resident set during the call, minus the resident set once the
input is built, must stay within that many arrays of 8 * (n + 1) bytes plus 64 MiB
(interpreter noise, the result arrays).

Each algorithm runs in a fresh Python process. The process imports everything, builds
the input in chunks, resets its high-water mark (/proc/self/clear_refs; if the kernel
refuses, the peak of the build counts too, which only overstates the increase), calls
the algorithm once and reads VmHWM from /proc/self/status (ru_maxrss as a fallback).

    python bench/memory_check.py [n] [--json FILE]

prints one line per algorithm and exits with status 1 if any exceeds the bound.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

N = 10**8
BALANCED_K = 1024
SLACK = 64 * 2**20
ALGORITHMS = ("greedy", "balanced", "dp")
EXTRA_ARRAYS = {"greedy": 1, "balanced": 1, "dp": 2}
"""int64 arrays of n + 1 entries each algorithm may hold beyond its input."""


def status_kib(field: str) -> int | None:
    """A ``VmRSS``/``VmHWM``-style field of /proc/self/status, in KiB (None if unavailable)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak() -> bool:
    """Resets VmHWM to the current resident set; False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


def peak_kib() -> int:
    hwm = status_kib("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def measure(algorithm: str, n: int) -> dict[str, Any]:
    """Runs one algorithm on n uniform sizes in this process and returns the figures."""
    import layerwise_fast as lf
    from workloads import CAPACITY, layer_sizes

    sizes = layer_sizes(n)
    was_reset = reset_peak()
    before = status_kib("VmRSS") or peak_kib()
    start = time.perf_counter()
    if algorithm == "greedy":
        result = lf.greedy(sizes, CAPACITY)
    elif algorithm == "dp":
        result = lf.dp(sizes, CAPACITY)
    else:
        result = lf.balanced(sizes, BALANCED_K)
    seconds = time.perf_counter() - start
    increase = (peak_kib() - before) * 1024
    bound = EXTRA_ARRAYS[algorithm] * 8 * (n + 1) + SLACK
    return {
        "algorithm": algorithm,
        "n": n,
        "k": result.k,
        "seconds": round(seconds, 3),
        "input_bytes": sizes.nbytes,
        "rss_after_input_bytes": before * 1024,
        "peak_increase_bytes": increase,
        "bound_bytes": bound,
        "peak_reset": was_reset,
        "ok": increase <= bound,
    }


def run_fresh(algorithm: str, n: int) -> dict[str, Any]:
    """measure() in a new interpreter, so that no earlier allocation hides in the peak."""
    child = subprocess.run(
        [sys.executable, __file__, str(n), "--child", algorithm],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parent,
    )
    return json.loads(child.stdout.strip().splitlines()[-1])


def describe(figures: dict[str, Any]) -> str:
    mib = 2**20
    return (
        f"{figures['algorithm']:<8} n={figures['n']:,} k={figures['k']:,}: "
        f"peak +{figures['peak_increase_bytes'] / mib:,.1f} MiB over {figures['rss_after_input_bytes'] / mib:,.1f} MiB "
        f"(bound {figures['bound_bytes'] / mib:,.1f} MiB) in {figures['seconds']} s "
        f"{'PASS' if figures['ok'] else 'FAIL'}"
        + ("" if figures["peak_reset"] else " [peak not reset: includes building the input]")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=N, help="number of layers (default 10^8)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--child", choices=ALGORITHMS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child, args.n)))
        return 0
    results = [run_fresh(algorithm, args.n) for algorithm in ALGORITHMS]
    for figures in results:
        print(describe(figures))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0 if all(figures["ok"] for figures in results) else 1


if __name__ == "__main__":
    sys.exit(main())
