"""Differential campaign: random cases through greedy, balanced and dp against brute force.

Each case is one input (n <= 10 layers, sizes drawn from one of several distributions,
`sum` or `peak` cost), one question and one native call:

* ``balanced(sizes, k)`` for a random k: the bottleneck must equal brute force's
  minimum over all cut sets with k groups;
* ``greedy``, ``dp`` and ``balanced(capacity=...)`` for a random capacity: greedy's k
  must be the fewest groups that fit, dp and balanced must reach (fewest, minimum
  bottleneck);
* every result is checked for structure: k + 1 increasing cuts from 0 to n, group
  costs recomputed from the input, the bottleneck their maximum.

Brute force is vectorised over a batch of inputs of the same length
(layerwise_fast._reference.exhaustive_batch). Prints a summary line and exits 1 on any
mismatch, naming the case so it can be replayed.

    python bench/differential.py --cases 1000000 --seed 0
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

import numpy as np

import layerwise_fast as lf
from layerwise_fast._reference import exhaustive_batch

MAX_N = 10
BATCH = 2000
DISTRIBUTIONS = ("tiny", "uniform", "heavy", "huge")


@dataclass
class Tally:
    cases: int = 0
    mismatches: int = 0


def draw_sizes(rng: np.random.Generator, distribution: str, shape: tuple[int, int]) -> np.ndarray:
    """Sizes in bytes: many ties (tiny), spread (uniform), skewed (heavy), near 2^58 (huge)."""
    if distribution == "tiny":
        return rng.integers(0, 5, shape)
    if distribution == "uniform":
        return rng.integers(0, 10**9, shape)
    if distribution == "heavy":
        return np.minimum((rng.pareto(1.0, shape) * 1000).astype(np.int64), 10**15)
    return rng.integers(2**57, 2**58, shape)  # sums of 10 stay below 2^62


def structure_ok(p: lf.Partition, costs_of) -> bool:
    b = p.boundaries
    if b[0] != 0 or np.any(np.diff(b) <= 0) or len(b) != p.k + 1:
        return False
    costs = costs_of(b)
    return bool(np.array_equal(costs, p.group_costs)) and p.bottleneck == costs.max()


def run_batch(rng: np.random.Generator, n: int, tally: Tally, limit: int) -> list[str]:
    distribution = DISTRIBUTIONS[int(rng.integers(len(DISTRIBUTIONS)))]
    peak = bool(rng.integers(2))
    weights = draw_sizes(rng, distribution, (BATCH, n))
    live = draw_sizes(rng, distribution, (BATCH, n)) if peak else None
    groups, bottleneck = exhaustive_batch(weights, live)
    masks_of_k = [np.flatnonzero(groups[0] == k) for k in range(n + 1)]
    failures = []
    for row in range(BATCH):
        if tally.cases >= limit:
            break
        w = weights[row]
        sizes = {"weights": w, "activations": live[row]} if peak else w
        cost = "peak" if peak else "sum"
        single = (w + live[row]) if peak else w
        prefix = np.concatenate([[0], np.cumsum(w)])

        def costs_of(b: np.ndarray) -> np.ndarray:
            byte_sums = prefix[b[1:]] - prefix[b[:-1]]
            return byte_sums + np.maximum.reduceat(live[row], b[:-1]) if peak else byte_sums

        question = int(rng.integers(4))
        if question == 0:
            k = int(rng.integers(1, n + 1))
            p = lf.balanced(sizes, k, cost=cost)
            expected = (k, int(bottleneck[row, masks_of_k[k]].min()))
        else:
            capacity = max(1, int(single.max()) + int(rng.integers(0, int(single.max()) * 3 + 2)))
            fits = bottleneck[row] <= capacity
            fewest = int(groups[0][fits].min())
            expected = (fewest, int(bottleneck[row][fits & (groups[0] == fewest)].min()))
            if question == 1:
                p = lf.greedy(sizes, capacity, cost=cost)
                expected = (fewest, p.bottleneck if p.bottleneck <= capacity else -1)
            elif question == 2:
                p = lf.dp(sizes, capacity, cost=cost)
            else:
                p = lf.balanced(sizes, capacity=capacity, cost=cost)
        tally.cases += 1
        if (p.k, p.bottleneck) != expected or not structure_ok(p, costs_of):
            tally.mismatches += 1
            failures.append(f"{p.algorithm} {cost} n={n} {distribution} row={row}: got {(p.k, p.bottleneck)}, "
                            f"expected {expected}; weights={w.tolist()} live={None if live is None else live[row].tolist()}")
    return failures


def _positive(text: str) -> int:
    """A whole number >= 1 (argparse names the option in the error)."""
    if not text.strip().isascii() or not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=_positive, default=1_000_000, help="number of cases (default 10^6)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    tally, failures = Tally(), []
    start = time.perf_counter()
    while tally.cases < args.cases:
        failures += run_batch(rng, int(rng.integers(1, MAX_N + 1)), tally, args.cases)
    elapsed = time.perf_counter() - start
    for line in failures[:20]:
        print(line, file=sys.stderr)
    print(f"differential: {tally.cases} cases, {tally.mismatches} mismatches, {elapsed:.1f} s (seed {args.seed})")
    return 1 if tally.mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
