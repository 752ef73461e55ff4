"""Small-call latency for tight loops: one call on 100 layers from Python and from
Cython (through layerwise_fast/core.pxd). Targets: at most 5 µs per greedy or
balanced call from Python, at most 1 µs from Cython.

The Cython benchmark times a loop of CYTHON_CALLS calls made without the GIL inside
one Python call (bench/embed_ext.pyx); extra_info records the count, so the per-call
latency is the median divided by it (bench/report.py does this).
"""

from __future__ import annotations

import numpy as np
import pytest

import layerwise_fast as lf
from cython_build import build_embed_ext

LATENCY_N = 100
CAPACITY = 1000
CYTHON_CALLS = 10_000


@pytest.fixture(scope="module")
def sizes() -> np.ndarray:
    return np.random.default_rng(100).integers(0, 100, LATENCY_N)


@pytest.fixture(scope="module")
def embed_ext(tmp_path_factory: pytest.TempPathFactory):
    return build_embed_ext(tmp_path_factory.mktemp("cython"))


@pytest.mark.benchmark(group="latency n=100")
def test_python_balanced_latency(benchmark, sizes: np.ndarray) -> None:
    p = benchmark(lf.balanced, sizes, 8)
    assert p.k == 8 and p.bottleneck >= int(sizes.sum()) // 8


@pytest.mark.benchmark(group="latency n=100")
def test_cython_greedy_latency(benchmark, sizes: np.ndarray, embed_ext) -> None:
    benchmark.extra_info["calls_per_round"] = CYTHON_CALLS
    total = benchmark(embed_ext.greedy_calls, sizes, CAPACITY, CYTHON_CALLS)
    assert total == CYTHON_CALLS * lf.greedy(sizes, CAPACITY).k


@pytest.mark.benchmark(group="latency n=100")
def test_cython_balanced_latency(benchmark, sizes: np.ndarray, embed_ext) -> None:
    benchmark.extra_info["calls_per_round"] = CYTHON_CALLS
    total = benchmark(embed_ext.balanced_calls, sizes, 8, CYTHON_CALLS)
    assert total == CYTHON_CALLS * lf.balanced(sizes, 8).bottleneck
