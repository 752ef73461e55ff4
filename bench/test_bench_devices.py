"""Benchmarks of partitioning for an ordered list of mixed devices, each also a check.

10^6 uniform layers (bench/workloads.py) on 8 or 64 devices in pipeline order whose
capacities cycle through 1.1, 1.3 and 1.5 times the total over the device count, so
that some devices go unused and the groups differ in size. One group per problem and
device count holds ``numpy.add.reduce`` over the sizes (the baseline: one streaming
pass), ``ordered_fit`` (the fewest groups) and ``ordered_balanced`` (then the smallest
largest group) for the ``sum`` model, and ``ordered_balanced`` for the ``peak`` model
(activations drawn like the weights). Each time includes combining the three columns.

Plain ``pytest`` runs with ``--benchmark-disable``: each function runs once and its
result is checked. ``pytest bench/test_bench_devices.py --benchmark-enable`` times them.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pytest

import layerwise_fast as lf
from layerwise_fast.devices import group_costs, ordered_balanced, ordered_fit
from workloads import SEED, layer_sizes

N = 10**6
DEVICE_COUNTS = (8, 64)
CAPACITY_FACTORS = (1.1, 1.3, 1.5)


@pytest.fixture(scope="module")
def columns() -> dict[str, np.ndarray]:
    zeros = np.zeros(N, dtype=np.int64)
    return {"weights": layer_sizes(N), "activations": layer_sizes(N, seed=SEED + 1), "buffers": zeros}


@pytest.fixture(scope="module")
def names() -> np.ndarray:
    return np.array([f"layers.{i}" for i in range(N)], dtype=object)


def capacities(columns: dict[str, np.ndarray], devices: int) -> list[int]:
    total = int(sum(int(c.sum()) for c in columns.values()))
    return [int(total / devices * CAPACITY_FACTORS[d % 3]) for d in range(devices)]


def _label(benchmark, devices: int, algorithm: str, cost: str) -> None:
    benchmark.group = f"ordered devices, n=10^6 uniform, {devices} devices"
    benchmark.extra_info.update(algorithm=algorithm, n=N, devices=devices, cost=cost)


def check_fits(columns: dict[str, np.ndarray], cuts: np.ndarray, caps: list[int],
               cost: str) -> np.ndarray:
    """Cuts rise from 0 to n and group i fits device i; returns the group costs."""
    assert cuts[0] == 0 and cuts[-1] == N and np.all(np.diff(cuts) > 0)
    costs = group_costs(columns, cuts, cost)
    assert len(costs) <= len(caps) and np.all(costs <= caps[: len(costs)])
    return costs


@pytest.mark.parametrize("devices", DEVICE_COUNTS)
def test_reduce_baseline(benchmark, columns: dict[str, np.ndarray], devices: int) -> None:
    _label(benchmark, devices, "numpy.add.reduce", "sum")
    assert benchmark(np.add.reduce, columns["weights"]) == int(columns["weights"].sum())


@pytest.mark.parametrize("devices", DEVICE_COUNTS)
def test_ordered_fit(benchmark, columns: dict[str, np.ndarray], names: np.ndarray, devices: int) -> None:
    _label(benchmark, devices, "ordered_fit", "sum")
    caps = capacities(columns, devices)
    cuts = benchmark(ordered_fit, columns, caps, "sum", names)
    check_fits(columns, cuts, caps, "sum")
    # No fewer groups: every device's capacity raised to the largest still needs as many.
    assert len(cuts) - 1 >= lf.greedy(columns, max(caps)).k


@pytest.mark.parametrize("cost", ["sum", "peak"])
@pytest.mark.parametrize("devices", DEVICE_COUNTS)
def test_ordered_balanced(benchmark, columns: dict[str, np.ndarray], names: np.ndarray, devices: int,
                          cost: Literal["sum", "peak"]) -> None:
    _label(benchmark, devices, "ordered_balanced", cost)
    caps = capacities(columns, devices)
    cuts = benchmark(ordered_balanced, columns, caps, cost, names)
    costs = check_fits(columns, cuts, caps, cost)
    fewest = ordered_fit(columns, caps, cost, names)
    assert len(cuts) == len(fewest) and costs.max() <= group_costs(columns, fewest, cost).max()
    # Minimal: the same devices held one byte under the bottleneck cannot take the layers.
    lowered = [min(c, int(costs.max()) - 1) for c in caps[: len(costs)]]
    with pytest.raises(lf.InfeasibleError):
        ordered_fit(columns, lowered, cost, names)
