"""Benchmarks of the deployment planner, each also a check of its result.

Targets (issue 3): ``plan()`` for a 1000-layer model in at most 2 ms; a 10^6-layer table
from JSON to a plan to JSON in at most 1 s; the chunk and group count for 4096 batch
sizes of a 1000-layer model in at most 0.5 s. The 10^6-layer cases run only with
``-m slow``: the whole path from the row form (version 1) of the layer-table JSON and
from its columnar form (version 2, ``to_json(path, columnar=True)``), and the planner's
own share (plan + JSON out + JSON back) timed apart from reading the layer table.

Plain ``pytest`` runs with ``--benchmark-disable``: each function runs once and its
result is checked. ``pytest bench/test_bench_plan.py --benchmark-enable -m 'slow or not
slow'`` times them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import layerwise_fast as lf

SEED = 20240603
MODEL_LAYERS = 1000
SWEEP_BATCHES = 4096
HUGE_LAYERS = 10**6


def random_table(n: int, act_elems: tuple[int, int] = (64, 1024),
                 seed: int = SEED) -> lf.LayerTable:
    """``n`` decoder rows of 10^5..10^6 bf16 parameters (0.2-2 MB of weights), activation
    elements per token drawn from ``act_elems`` and 100 kB of buffers, so that a few
    layers fit one H100 group."""
    rng = np.random.default_rng(seed)
    return lf.LayerTable(
        name=[f"layers.{i}" for i in range(n)], kind="decoder",
        params=rng.integers(10**5, 10**6, n), weight_dtype="bf16",
        act_elems_per_token=rng.integers(*act_elems, n),
        buffer_bytes=np.full(n, 100_000), flops_per_token=rng.integers(10**5, 10**6, n))


@pytest.fixture(scope="module")
def model() -> lf.LayerTable:
    return random_table(MODEL_LAYERS)


@pytest.fixture(scope="module")
def narrow_model() -> lf.LayerTable:
    """Activations of 4..32 elements per token: every batch size up to 4096 fits at some
    chunk (4096 x 64 tokens x 64 bytes = 16.8 MB), so the sweep computes every count."""
    return random_table(MODEL_LAYERS, act_elems=(4, 32))


def test_plan_1000_layers(benchmark, model: lf.LayerTable) -> None:
    benchmark.group = "plan: 1000 layers"
    benchmark.extra_info.update(target_s=2e-3, layers=MODEL_LAYERS)
    plan = benchmark(lf.plan, model, "h100", batch=1, sequence=4096, cut_elems_per_token=4096)
    capacity = lf.Hardware.profile("h100").capacity
    sizes = lf.working_set(model, batch=1, chunk_tokens=plan.settings.chunk)
    assert plan.k == lf.greedy(sizes, capacity).k
    assert plan.partition == lf.balanced(sizes, capacity=capacity)
    # The chunk is the largest multiple of 64 at which every layer still fits.
    larger = lf.working_set(model, batch=1, chunk_tokens=plan.settings.chunk + 64)
    assert plan.settings.chunk == 4096 or int(larger.totals().max()) > capacity


def test_sweep_4096_batch_sizes(benchmark, narrow_model: lf.LayerTable) -> None:
    benchmark.group = "sweep: 4096 batch sizes x 1000 layers"
    benchmark.extra_info.update(target_s=0.5, layers=MODEL_LAYERS, batches=SWEEP_BATCHES)
    batches = np.arange(1, SWEEP_BATCHES + 1)
    result = benchmark(lf.sweep, narrow_model, batches, "h100", sequence=4096)
    assert len(result) == SWEEP_BATCHES and result.fits.all()
    assert (np.diff(result.chunk) <= 0).all()  # tokens per chunk, batch x chunk, need not be
    for b in (1, 7, 64, 700, SWEEP_BATCHES):
        plan = lf.plan(narrow_model, batch=b, sequence=4096, algorithm="greedy")
        assert (result.chunk[b - 1], result.groups[b - 1]) == (plan.settings.chunk, plan.k)


def test_sweep_with_tiling(benchmark, model: lf.LayerTable) -> None:
    benchmark.group = "sweep: 4096 batch sizes x 1000 layers"
    batches = np.arange(1, SWEEP_BATCHES + 1)
    result = benchmark(lf.sweep, model, batches, "h100", sequence=4096, on_oversize="tile")
    for b in (1, 7, 64, 700, SWEEP_BATCHES):
        if result.fits[b - 1]:
            plan = lf.plan(model, batch=b, sequence=4096, on_oversize="tile", algorithm="greedy")
            assert (result.chunk[b - 1], result.groups[b - 1]) == (plan.settings.chunk, plan.k)
        else:
            with pytest.raises(lf.InfeasibleError):
                lf.plan(model, batch=b, sequence=4096, on_oversize="tile")


@pytest.fixture(scope="module")
def huge_json(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("plan") / "layers.json"
    random_table(HUGE_LAYERS).to_json(path)
    return path


def _json_to_plan_to_json(source: Path, target: Path) -> lf.Plan:
    plan = lf.plan(lf.LayerTable.from_json(source), "h100", sequence=4096,
                   cut_elems_per_token=4096, on_oversize="tile")
    plan.to_json(target)
    return plan


@pytest.fixture(scope="module")
def huge_columnar_json(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("plan") / "layers-columnar.json"
    random_table(HUGE_LAYERS).to_json(path, columnar=True)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("form", ["rows", "columns"])
def test_plan_json_round_trip_1e6_layers(benchmark, request: pytest.FixtureRequest,
                                         form: str, tmp_path: Path) -> None:
    """The whole path of the target: layer-table JSON (either form) -> plan -> plan JSON."""
    source = request.getfixturevalue("huge_json" if form == "rows" else "huge_columnar_json")
    benchmark.group = "plan: 10^6 layers, JSON to plan to JSON"
    benchmark.extra_info.update(target_s=1.0, layers=HUGE_LAYERS, form=form)
    target = tmp_path / "plan.json"
    plan = benchmark.pedantic(_json_to_plan_to_json, args=(source, target), rounds=3)
    assert plan.n == HUGE_LAYERS and not (plan.traffic.reads > 1).any()
    assert lf.Plan.from_json(target) == plan


@pytest.fixture(scope="module")
def huge_table() -> lf.LayerTable:
    return random_table(HUGE_LAYERS)


def _plan_to_json_and_back(table: lf.LayerTable, target: Path) -> lf.Plan:
    plan = lf.plan(table, "h100", sequence=4096, cut_elems_per_token=4096, on_oversize="tile")
    plan.to_json(target)
    return lf.Plan.from_json(target)


@pytest.mark.slow
def test_plan_to_json_and_back_1e6_layers(benchmark, huge_table: lf.LayerTable,
                                          tmp_path: Path) -> None:
    """The planner's share: plan a loaded 10^6-layer table, write it, read it back."""
    benchmark.group = "plan: 10^6 layers, plan to JSON and back"
    benchmark.extra_info.update(layers=HUGE_LAYERS)
    again = benchmark.pedantic(_plan_to_json_and_back, args=(huge_table, tmp_path / "p.json"),
                               rounds=3)
    capacity = lf.Hardware.profile("h100").capacity
    sizes = lf.working_set(huge_table, batch=1, chunk_tokens=again.settings.chunk)
    assert again.k == lf.greedy(sizes, capacity).k and len(again.treated) == 0
