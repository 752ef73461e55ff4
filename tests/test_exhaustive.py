"""Every input of a small grid against brute force over all cut sets.

`sum`: every sequence of n <= 8 sizes in 0..4 (488,280 inputs), every k.
`peak`: every sequence of n <= 4 layers with weights and activations in 0..4
(406,900 inputs), every k. Each input also gets one capacity, cycling through
[largest layer, total] across inputs, for greedy, dp and balanced-with-capacity.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import layerwise_fast as lf
from layerwise_fast._reference import exhaustive_batch


def all_rows(n: int, values: range) -> np.ndarray:
    return np.array(list(itertools.product(values, repeat=n)), dtype=np.int64).reshape(-1, n)


class Oracle:
    """Per-input answers derived from the cost of every cut set."""

    def __init__(self, weights: np.ndarray, live: np.ndarray | None, single: np.ndarray, total: np.ndarray):
        groups, bottleneck = exhaustive_batch(weights, live)
        self.n = weights.shape[1]
        masks_of_k = [np.flatnonzero(groups[0] == k) for k in range(self.n + 1)]
        self.by_k = np.stack([bottleneck[:, m].min(axis=1) if len(m) else bottleneck[:, 0] for m in masks_of_k], axis=1)
        rows = np.arange(len(weights))
        self.capacity = np.maximum(1, single + rows % (total - single + 1))
        fits = self.by_k[:, 1:] <= self.capacity[:, None]
        self.fewest = fits.argmax(axis=1) + 1  # k = n always fits: every layer <= capacity
        self.fewest_bottleneck = self.by_k[rows, self.fewest]


def check_against(oracle: Oracle, inputs: list, cost: str) -> None:
    n = oracle.n
    for i, sizes in enumerate(inputs):
        by_k = oracle.by_k[i]
        for k in range(1, n + 1):
            p = lf.balanced(sizes, k, cost=cost)
            assert (p.k, p.bottleneck) == (k, by_k[k]), (sizes, k)
        cap = int(oracle.capacity[i])
        expected = (oracle.fewest[i], oracle.fewest_bottleneck[i])
        g = lf.greedy(sizes, cap, cost=cost)
        assert g.k == expected[0] and g.bottleneck <= cap, (sizes, cap)
        d = lf.dp(sizes, cap, cost=cost)
        assert (d.k, d.bottleneck) == expected, (sizes, cap)
        b = lf.balanced(sizes, capacity=cap, cost=cost)
        assert (b.k, b.bottleneck) == expected, (sizes, cap)
        assert d.boundaries[-1] == n and np.all(np.diff(d.boundaries) > 0)


@pytest.mark.parametrize("n", range(1, 9))
def test_sum_every_input(n: int) -> None:
    rows = all_rows(n, range(5))
    oracle = Oracle(rows, None, rows.max(axis=1), rows.sum(axis=1))
    check_against(oracle, list(rows), "sum")


@pytest.mark.parametrize("n", range(1, 5))
def test_peak_every_input(n: int) -> None:
    pairs = all_rows(2 * n, range(5))
    weights, live = np.ascontiguousarray(pairs[:, :n]), np.ascontiguousarray(pairs[:, n:])
    single = (weights + live).max(axis=1)
    total = weights.sum(axis=1) + live.max(axis=1)
    oracle = Oracle(weights, live, single, total)
    inputs = [{"weights": w, "activations": a} for w, a in zip(weights, live)]
    check_against(oracle, inputs, "peak")
