"""Embedding the core from C++ (headers only) and from Cython (layerwise_fast/core.pxd)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import layerwise_fast as lf

ROOT = Path(__file__).resolve().parent.parent
CXX = shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++")
needs_compiler = pytest.mark.skipif(CXX is None, reason="no C++ compiler on PATH (set CXX)")

CPP_PROGRAM = r"""
#include <cstdio>
#include <vector>
#include "layerwise_fast/core.hpp"

int main() {
  std::vector<int64_t> sizes{30, 10, 25, 5, 40};
  layerwise_fast::SumCost cost(sizes.data(), 5);
  const auto g = layerwise_fast::greedy(cost, 50);
  const auto b = layerwise_fast::balanced(cost, 2);
  std::printf("%lld %lld %lld\n", (long long)g.k(), (long long)g.bottleneck, (long long)b.bottleneck);
  const auto o = layerwise_fast::ordered_balanced(cost, {45, 40, 60});
  const auto left = layerwise_fast::ordered_fit(cost, {45, 20});
  std::printf("%lld %lld %d %lld\n", (long long)o.partition.k(), (long long)o.partition.bottleneck,
              static_cast<int>(left.outcome), (long long)left.layer);
  try {
    layerwise_fast::greedy(cost, 39);
  } catch (const layerwise_fast::layer_too_large& e) {
    std::printf("%s\n", e.what());
  }
  return 0;
}
"""


def compile_and_run(include: str, tmp_path: Path) -> str:
    source = tmp_path / "embed.cpp"
    source.write_text(CPP_PROGRAM)
    binary = tmp_path / "embed"
    assert CXX is not None
    subprocess.run([CXX, "-std=c++17", "-O1", "-Wall", "-Werror", "-I", include, str(source), "-o", str(binary)],
                   check=True, timeout=300)
    return subprocess.run([str(binary)], capture_output=True, text=True, check=True, timeout=60).stdout


@needs_compiler
def test_cpp_program_against_get_include(tmp_path: Path) -> None:
    out = compile_and_run(lf.get_include(), tmp_path)
    assert out.splitlines() == ["3 40 65", "3 40 2 2", "layer 4 needs 40 bytes, more than the capacity of 39 bytes (over by 1)"]


@needs_compiler
def test_built_package_ships_the_headers(tmp_path: Path) -> None:
    build = tmp_path / "build"
    subprocess.run([sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(build)], cwd=ROOT, check=True,
                   capture_output=True, timeout=300)
    include = build / "layerwise_fast" / "include"
    shipped = sorted(p.name for p in (include / "layerwise_fast").iterdir())
    assert shipped == sorted(p.name for p in (ROOT / "csrc" / "layerwise_fast").glob("*.hpp"))
    assert (build / "layerwise_fast" / "core.pxd").is_file()
    out = compile_and_run(str(include), tmp_path)
    assert out.startswith("3 40 65\n")


@pytest.fixture(scope="module")
def cython_module(tmp_path_factory: pytest.TempPathFactory):
    """bench/embed_ext.pyx, a tiny Cython extension that cimports the core through
    layerwise_fast/core.pxd, built in a temporary folder."""
    if CXX is None:
        pytest.skip("no C++ compiler on PATH (set CXX)")
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from cython_build import build_embed_ext

        yield build_embed_ext(tmp_path_factory.mktemp("cython"))
    finally:
        sys.path.remove(str(ROOT / "bench"))


def test_cython_results_equal_python_api(cython_module) -> None:
    rng = np.random.default_rng(11)
    for _ in range(50):
        sizes = rng.integers(0, 1000, int(rng.integers(1, 300)))
        capacity = int(sizes.max()) * 3 + 1
        weights, live = rng.integers(0, 500, len(sizes)), rng.integers(0, 500, len(sizes))
        g = lf.greedy(sizes, capacity)
        assert cython_module.run_greedy(sizes, capacity) == (g.boundaries.tolist(), g.group_costs.tolist(), g.bottleneck)
        k = int(rng.integers(1, len(sizes) + 1))
        b = lf.balanced(sizes, k)
        assert cython_module.run_balanced(sizes, k) == (b.boundaries.tolist(), b.bottleneck)
        d = lf.dp(sizes, capacity)
        assert cython_module.run_dp(sizes, capacity) == (d.boundaries.tolist(), d.bottleneck)
        cap = int((weights + live).max()) * 2
        f = lf.balanced({"weights": weights, "activations": live}, capacity=cap, cost="peak")
        assert cython_module.run_fewest_peak(weights, live, cap) == (f.boundaries.tolist(), f.bottleneck)


def test_cython_ordered_partitioners_equal_the_binding(cython_module) -> None:
    from layerwise_fast import _core

    rng = np.random.default_rng(12)
    for _ in range(100):
        sizes = rng.integers(0, 100, int(rng.integers(1, 200)))
        caps = [int(c) for c in rng.integers(50, 2000, int(rng.integers(1, 12)))]
        for balance, native in ((False, _core.ordered_fit), (True, _core.ordered_balanced)):
            outcome, raw, device, layer = native(sizes.astype(np.int64), None, caps)
            expected = (outcome, [0] if raw is None else raw[0].tolist(), device, layer)
            assert cython_module.run_ordered(sizes, caps, balance) == expected


def test_cython_errors_become_python_exceptions(cython_module) -> None:
    with pytest.raises(ValueError, match="layer 1 needs 9 bytes, more than the capacity of 8 bytes"):
        cython_module.run_greedy(np.array([3, 9, 2]), 8)
    with pytest.raises(ValueError, match=r"k must be between 1 and the number of layers \(3\), got 4"):
        cython_module.run_balanced(np.array([3, 9, 2]), 4)


def test_cython_loop_without_the_gil_counts_every_call(cython_module) -> None:
    sizes = np.arange(100, dtype=np.int64)
    k = lf.greedy(sizes, 1000).k
    assert cython_module.greedy_calls(sizes, 1000, 1000) == 1000 * k
