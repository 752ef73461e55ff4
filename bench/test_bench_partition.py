"""Benchmarks of the partition core, each also a check of its result.

Every problem (n layers of one size distribution) is one benchmark group holding:
one ``numpy.add.reduce`` pass over the array (the baseline: a memory-bound streaming
pass), ``greedy`` at the 50 MB capacity, ``balanced`` for each k, and for n <= 10^6 the
seed's pure-Python greedy on a list and on the array, and for 10^6 and 10^7 layers ``dp``
at the 50 MB capacity. Separate groups time one greedy call on 100 layers, and ``dp`` at
10^5 layers with about 1000 layers per group and with one group holding every layer.

Plain ``pytest`` runs with ``--benchmark-disable``: every function runs once and its
result is checked, which makes this suite a test of the large inputs too.
``pytest bench --benchmark-enable`` times them; bench/report.py summarises the JSON.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import layerwise_fast as lf
from layerwise_fast._reference import seed_greedy
from workloads import CAPACITY, DISTRIBUTIONS, MAX_SIZE, SEED, exponent_label, layer_sizes

BALANCED_K = (8, 1024, 65536)
SEED_MAX_N = 10**6
LATENCY_N = 100
DP_N = 10**5
DP_LAYERS_PER_GROUP = 1000
DP_CAPACITY = DP_LAYERS_PER_GROUP * MAX_SIZE // 2  # uniform sizes average MAX_SIZE / 2


def _problem(n: int, distribution: str, *marks: pytest.MarkDecorator) -> object:
    return pytest.param((n, distribution), marks=marks, id=f"n={exponent_label(n)}-{distribution}")


PROBLEMS = [
    *(_problem(n, d) for n in (10**3, 10**5, 10**6, 10**7) for d in DISTRIBUTIONS),
    _problem(10**8, "uniform", pytest.mark.slow),
]
SEED_PROBLEMS = [p for p in PROBLEMS if p.values[0][0] <= SEED_MAX_N]
DP_PROBLEMS = [p for p in PROBLEMS if p.values[0][0] in (10**6, 10**7)]
BALANCED_CASES = [
    pytest.param(p.values[0], k, marks=p.marks, id=f"{p.id}-k={k}")
    for p in PROBLEMS
    for k in BALANCED_K
    if k <= p.values[0][0]
]

on_problems = pytest.mark.parametrize("workload", PROBLEMS, indirect=True)


def _label(benchmark, group: str, algorithm: str, n: int, **extra: object) -> None:
    benchmark.group = group
    benchmark.extra_info.update(algorithm=algorithm, n=n, **extra)


def _check_costs(p: lf.Partition, sizes: np.ndarray) -> None:
    """Boundaries run 0 = b0 < b1 < ... < bk = n and each group's cost is its layers' sum."""
    cuts = p.boundaries
    assert cuts[0] == 0 and cuts[-1] == len(sizes)
    assert np.all(np.diff(cuts) > 0)
    np.testing.assert_array_equal(p.group_costs, np.add.reduceat(sizes, cuts[:-1]))
    assert p.bottleneck == p.group_costs.max()


def check_greedy(p: lf.Partition, sizes: np.ndarray, capacity: int) -> None:
    """A next-fit partition: every group fits, and none could take the next layer."""
    _check_costs(p, sizes)
    assert p.bottleneck <= capacity
    assert np.all(p.group_costs[:-1] + sizes[p.boundaries[1:-1]] > capacity)


def check_balanced(p: lf.Partition, sizes: np.ndarray, k: int) -> None:
    """Exactly k groups, and no k-group partition has a smaller bottleneck.

    Certificate: greedy (the fewest groups under a capacity, checked above) needs more
    than k groups under bottleneck - 1, unless the bottleneck is the largest layer.
    """
    _check_costs(p, sizes)
    assert p.k == k
    if p.bottleneck > sizes.max():
        assert lf.greedy(sizes, p.bottleneck - 1).k > k


def seed_boundaries(groups: list[list[int]]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum([len(g) for g in groups])])


@on_problems
def test_reduce_baseline(benchmark, workload) -> None:
    _label(benchmark, workload.group, "numpy.add.reduce", workload.n, distribution=workload.distribution)
    assert benchmark(np.add.reduce, workload.sizes) == workload.total


@on_problems
def test_greedy(benchmark, workload) -> None:
    _label(benchmark, workload.group, "greedy", workload.n, distribution=workload.distribution)
    p = benchmark(lf.greedy, workload.sizes, CAPACITY)
    check_greedy(p, workload.sizes, CAPACITY)
    assert int(p.group_costs.sum()) == workload.total


@pytest.mark.parametrize(("workload", "k"), BALANCED_CASES, indirect=["workload"])
def test_balanced(benchmark, workload, k: int) -> None:
    _label(benchmark, workload.group, "balanced", workload.n, distribution=workload.distribution, k=k)
    p = benchmark(lf.balanced, workload.sizes, k)
    check_balanced(p, workload.sizes, k)


@pytest.mark.parametrize("workload", DP_PROBLEMS, indirect=True)
def test_dp_at_capacity(benchmark, workload) -> None:
    """dp at the 50 MB capacity: greedy's groups, balanced's bottleneck."""
    _label(benchmark, workload.group, "dp", workload.n, distribution=workload.distribution)
    p = benchmark(lf.dp, workload.sizes, CAPACITY)
    _check_costs(p, workload.sizes)
    best = lf.balanced(workload.sizes, capacity=CAPACITY)
    assert (p.k, p.bottleneck) == (best.k, best.bottleneck)


@pytest.mark.parametrize("workload", SEED_PROBLEMS, indirect=True)
@pytest.mark.parametrize("seed_input", ["list", "ndarray"])
def test_seed_greedy(benchmark, workload, seed_input: str) -> None:
    """The seed's greedy (section 3.1) in pure Python; must agree with the native greedy."""
    layers = workload.as_list if seed_input == "list" else workload.sizes
    _label(benchmark, workload.group, "seed_greedy", workload.n, distribution=workload.distribution, input=seed_input)
    groups = benchmark(seed_greedy, layers, CAPACITY)
    np.testing.assert_array_equal(seed_boundaries(groups), lf.greedy(workload.sizes, CAPACITY).boundaries)


@pytest.fixture(scope="module")
def latency_sizes() -> np.ndarray:
    return layer_sizes(LATENCY_N)


@pytest.fixture(scope="module")
def dp_sizes() -> np.ndarray:
    return layer_sizes(DP_N)


def test_greedy_latency(benchmark, latency_sizes: np.ndarray) -> None:
    """One greedy call on 100 layers (a numpy int64 array): the per-call overhead."""
    sizes = latency_sizes
    _label(benchmark, f"greedy call latency, n={LATENCY_N}", "greedy", LATENCY_N, distribution="uniform")
    p = benchmark(lf.greedy, sizes, CAPACITY)
    np.testing.assert_array_equal(p.boundaries, seed_boundaries(seed_greedy(sizes.tolist(), CAPACITY)))


def test_dp(benchmark, dp_sizes: np.ndarray) -> None:
    """dp at 10^5 layers, capacity for about 1000 uniform layers per group."""
    sizes = dp_sizes
    fewest = lf.greedy(sizes, DP_CAPACITY)
    widest = int(np.diff(fewest.boundaries).max())
    _label(benchmark, f"dp, n={exponent_label(DP_N)}", "dp", DP_N, distribution="uniform",
           capacity=DP_CAPACITY, widest_greedy_group=widest)
    assert 0.8 * DP_LAYERS_PER_GROUP <= widest <= 1.25 * DP_LAYERS_PER_GROUP
    p = benchmark(lf.dp, sizes, DP_CAPACITY)
    _check_costs(p, sizes)
    best = lf.balanced(sizes, capacity=DP_CAPACITY)
    assert (p.k, p.bottleneck) == (fewest.k, best.bottleneck) == (best.k, best.bottleneck)


PEAK_N = 10**7
PEAK_GROUP = f"peak model, n={exponent_label(PEAK_N)} uniform"


@pytest.fixture(scope="module")
def peak_model() -> dict[str, np.ndarray]:
    """Weights and activations, each uniform in 0..10^6 (independent draws)."""
    return {"weights": layer_sizes(PEAK_N), "activations": layer_sizes(PEAK_N, seed=SEED + 1)}


def test_peak_reduce_baseline(benchmark, peak_model: dict[str, np.ndarray]) -> None:
    _label(benchmark, PEAK_GROUP, "numpy.add.reduce", PEAK_N, distribution="peak")
    benchmark(np.add.reduce, peak_model["weights"])


@pytest.mark.parametrize("k", [8, 1024, 65536])
def test_balanced_peak(benchmark, peak_model: dict[str, np.ndarray], k: int) -> None:
    """balanced on the peak model (weights resident, activations live one layer at a time)."""
    _label(benchmark, PEAK_GROUP, "balanced", PEAK_N, distribution="peak", k=k)
    p = benchmark(lf.balanced, peak_model, k, cost="peak")
    assert p.k == k
    largest = int((peak_model["weights"] + peak_model["activations"]).max())
    if p.bottleneck > largest:  # minimal: greedy needs more than k groups below it
        assert lf.greedy(peak_model, p.bottleneck - 1, cost="peak").k > k


def test_greedy_peak(benchmark, peak_model: dict[str, np.ndarray]) -> None:
    _label(benchmark, PEAK_GROUP, "greedy", PEAK_N, distribution="peak")
    p = benchmark(lf.greedy, peak_model, CAPACITY, cost="peak")
    weights, live = peak_model["weights"], peak_model["activations"]
    starts, nexts = p.boundaries[:-1], p.boundaries[1:-1]
    group_weights, group_live = np.add.reduceat(weights, starts), np.maximum.reduceat(live, starts)
    np.testing.assert_array_equal(p.group_costs, group_weights + group_live)
    assert p.bottleneck <= CAPACITY  # next-fit: no group could take its next layer
    assert np.all(group_weights[:-1] + weights[nexts] + np.maximum(group_live[:-1], live[nexts]) > CAPACITY)


def test_dp_one_group(benchmark, dp_sizes: np.ndarray) -> None:
    """dp at 10^5 layers with a capacity that holds them all: one group, every start fits."""
    sizes = dp_sizes
    total = int(sizes.sum())
    _label(benchmark, f"dp, n={exponent_label(DP_N)}, one group holds every layer", "dp", DP_N,
           distribution="uniform", k=1, capacity=total)
    p = benchmark(lf.dp, sizes, total)
    np.testing.assert_array_equal(p.boundaries, [0, DP_N])
    assert p.bottleneck == total


@pytest.mark.slow
def test_memory_at_1e8() -> None:
    """greedy and balanced at 10^8 layers stay within one extra int64 array (fresh process)."""
    script = Path(__file__).with_name("memory_check.py")
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stdout + run.stderr
