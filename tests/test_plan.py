"""The planner: chunk search, oversize policies, device mapping and the performance
model, against numbers worked out by hand."""

from __future__ import annotations

import math
import os
import pickle
import re
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import layerwise_fast as lf
from layerwise_fast.chunking import MAX_BATCH, MAX_TOKENS, sweep_sizes
from layerwise_fast.devices import TooManyGroupsError, group_costs, ordered_balanced, ordered_fit
from layerwise_fast.oversize import OversizeLayerError
from layerwise_fast.planner import MAX_SEQUENCE, load_model
from layerwise_fast.scaling import activations, chunk_for, fit_tokens, unit_sizes
from layerwise_fast.scenarios import SCENARIOS, scenario, scenario_model

EXAMPLES = Path(__file__).resolve().parents[1] / "layerwise_fast" / "examples"
TOY = lf.Hardware.custom("toy", l2=1000, hbm_bytes_per_s=100.0, link_bytes_per_s=10.0,
                         flops_per_s=1000.0, effective_fraction=1, cache_bytes_per_s=200.0)


def table(*rows: tuple[int, int, int, int], **extra: Any) -> lf.LayerTable:
    """Rows of (params, act_elems_per_token, buffer_bytes, flops_per_token), bf16."""
    return lf.LayerTable.from_records(
        {"name": f"l{i}", "kind": "decoder", "params": p, "weight_dtype": "bf16",
         "act_elems_per_token": a, "buffer_bytes": b, "flops_per_token": f, **extra}
        for i, (p, a, b, f) in enumerate(rows))


# Weights 200, 100, 200, 300 bytes; activations 20, 10, 20, 10 bytes per token.
TOY_TABLE = table((100, 10, 0, 10), (50, 5, 0, 0), (100, 10, 0, 10), (150, 5, 0, 20))


def toy_plan(**settings: Any) -> lf.Plan:
    settings = {"sequence": 100, "granularity": 4, "cut_elems_per_token": 2, **settings}
    return lf.plan(TOY_TABLE, TOY, **settings)


# -- a plan by hand ------------------------------------------------------------------------


def test_toy_plan_by_hand() -> None:
    p = toy_plan(devices=2, micro_batches=2)
    # Every layer fits alone up to 40 tokens (layers 0 and 2: (1000 - 200) / 20), but two
    # groups need layers 2+3 = 500 + 30c <= 1000, so c <= 16: the largest multiple of 4.
    assert p.settings.chunk == 16 and p.settings.chunks == 7
    assert p.activations.tolist() == [320, 160, 320, 160]
    assert p.partition.boundaries.tolist() == [0, 2, 4]
    assert p.partition.group_costs.tolist() == [780, 980]
    perf = p.performance
    # Group 0: weights 300 + activations 30 x 100 tokens; planned: the weights and the
    # boundary (input 4 + output 4 bytes per token) from HBM, the rest from L2.
    assert perf.baseline_bytes.tolist() == [3300, 3500]
    assert perf.planned_bytes.tolist() == [1100, 1300]
    assert perf.cache_bytes.tolist() == [2200, 2200]
    np.testing.assert_allclose(perf.hit_rate, [2 / 3, 2200 / 3500])
    np.testing.assert_allclose(perf.baseline_s, [33.0, 35.0])
    np.testing.assert_allclose(perf.planned_s, [1100 / 100 + 2200 / 200, 1300 / 100 + 2200 / 200])
    np.testing.assert_allclose(perf.speedup, [33 / 22, 35 / 24])
    np.testing.assert_allclose(perf.compute_s, [10 * 100 / 1000, 30 * 100 / 1000])


def test_toy_cuts_stages_and_timeline_by_hand() -> None:
    p = toy_plan(devices=2, micro_batches=2)
    assert p.cuts.after_layer.tolist() == [1]
    assert p.cuts.bytes_per_chunk.tolist() == [16 * 4]
    assert p.cuts.bytes_per_micro_batch.tolist() == [100 * 4]
    np.testing.assert_allclose(p.cuts.transfer_s, [40.0])  # 400 bytes at 10 B/s
    np.testing.assert_allclose(p.stages.compute_s, [22.0, 24.0])
    np.testing.assert_allclose(p.stages.stage_s, [40.0, 24.0])
    np.testing.assert_allclose(p.stages.hidden_s, [6 * 22 / 7, 0.0])  # (chunks - 1) min(c, x)
    # Per chunk: device 0 22/7 s, link 40/7 s (the slowest), device 1 24/7 s; 14 chunks.
    tl = p.timeline
    assert tl.bottleneck == "link 0->1"
    assert math.isclose(tl.fill_s, 22 / 7) and math.isclose(tl.drain_s, 24 / 7)
    assert math.isclose(tl.steady_s, 14 * 40 / 7)
    assert math.isclose(tl.total_s, 22 / 7 + 80 + 24 / 7)
    assert tl.busy(0, 0, 0) == pytest.approx((0.0, 22 / 7))


def test_chunk_without_device_limit_is_the_closed_form() -> None:
    p = toy_plan()
    assert p.settings.chunk == 40  # (1000 - 200) / 20 tokens, a multiple of 4
    assert p.k == 4 and p.device_count == 4
    assert lf.plan(TOY_TABLE, TOY, sequence=30, granularity=4).settings.chunk == 30
    assert lf.plan(TOY_TABLE, TOY, sequence=3, granularity=4).settings.chunk == 3


def test_a_chunk_shortened_for_the_devices_says_so() -> None:
    counted_devices = toy_plan(devices=2)
    assert (counted_devices.settings.chunk, counted_devices.k) == (16, 2)
    assert counted_devices.notes[0] == ("the chunk is 16 tokens, not the 40 at which every "
                                        "layer fits: at a longer chunk the plan needs more "
                                        "groups than the 2 devices")
    listed = toy_plan(devices=[TOY, TOY])
    assert listed.notes[0].endswith("at a longer chunk the groups do not fit the listed "
                                    "devices in order")
    for unbounded in (toy_plan(), toy_plan(devices=8), toy_plan(chunk=16, devices=2)):
        assert not any(note.startswith("the chunk is") for note in unbounded.notes)


def test_given_chunk_is_used_and_checked() -> None:
    p = toy_plan(chunk=10)
    assert p.settings.chunk == 10 and not p.settings.chunk_searched
    with pytest.raises(OversizeLayerError, match=r"layer 0 \('l0'\) needs 1020 bytes"):
        toy_plan(chunk=41)


def test_device_limit_that_cannot_be_met_names_both_numbers() -> None:
    # Even at the smallest chunk (4 tokens) the layers hold 280 + 140 + 280 + 340 bytes.
    with pytest.raises(TooManyGroupsError, match="needs 2 groups but only 1 device was given") \
            as err:
        toy_plan(devices=1)
    assert (err.value.groups, err.value.devices) == (2, 1)
    assert isinstance(err.value, lf.InfeasibleError)


def test_shared_devices_balance_stage_times() -> None:
    p = toy_plan(devices=2, share_devices=True)
    assert p.k == 4 and p.device_count == 2  # chunk 40: four groups on two devices
    assert p.group_device.tolist() in ([0, 0, 1, 1], [0, 1, 1, 1], [0, 0, 0, 1])
    busy = p.stages.compute_s
    stage = p.performance.stage_compute_s
    best = min(max(stage[:j].sum(), stage[j:].sum()) for j in range(1, 4))
    assert busy.max() == pytest.approx(best)
    assert p.split_points() == [f"l{p.device_boundaries[1]}"]


def test_shared_devices_balance_stage_times_beyond_int64_picoseconds() -> None:
    """Stage times of days (10^13 flops per token x 2^30 tokens): more picoseconds than
    int64 holds, balanced in coarser ticks instead."""
    model = table(*[(10, 1, 0, 10**13)] * 6)
    p = lf.plan(model, TOY, sequence=2**30, devices=2, share_devices=True)
    stage = p.performance.stage_compute_s
    assert stage.sum() * 1e12 > 2**63 and p.device_count == 2
    best = min(max(stage[:j].sum(), stage[j:].sum()) for j in range(1, p.k))
    assert p.stages.compute_s.max() == pytest.approx(best)


def test_fewer_groups_than_devices_leaves_devices_idle_and_says_so() -> None:
    p = lf.plan(table((1, 1, 0, 1), (1, 1, 0, 1)), TOY, sequence=8, devices=4)
    assert p.device_count == 1
    assert any("uses 1 of the 4 devices" in note for note in p.notes)


def test_device_map_and_split_points() -> None:
    p = toy_plan(devices=2)
    assert p.to_device_map() == {"l0": 0, "l1": 0, "l2": 1, "l3": 1}
    assert p.split_points() == ["l2"]
    twins = lf.LayerTable.from_records([{"name": "x", "kind": "decoder", "params": 1,
                                         "weight_dtype": "bf16", "act_elems_per_token": 1,
                                         "buffer_bytes": 0}] * 2)
    twin_plan = lf.plan(twins, TOY, sequence=4, devices=[TOY, TOY], capacity=15)
    assert twin_plan.device_count == 2
    with pytest.raises(ValueError, match="layer name 'x' appears more than once; "
                                         "to_device_map needs unique names"):
        twin_plan.to_device_map()
    with pytest.raises(ValueError, match="layer name 'x', where a device begins, appears more "
                                         "than once; split_points needs it unique"):
        twin_plan.split_points()
    assert lf.plan(twins, TOY, sequence=4).split_points() == []  # one device: no name needed


def test_mixed_devices_fit_each_its_own_capacity() -> None:
    small = lf.Hardware.custom("small", l2=500, hbm_bytes_per_s=100.0, link_bytes_per_s=10.0,
                               flops_per_s=1000.0, effective_fraction=1)
    p = lf.plan(TOY_TABLE, devices=[small, small, TOY], sequence=100, chunk=10,
                cut_elems_per_token=2)
    # At 10 tokens the layers hold 400, 200, 400, 400 bytes: 500 takes layer 0, then
    # layer 1 (layers 1-2 would be 600), and the last device layers 2-3 (800).
    assert p.partition.boundaries.tolist() == [0, 1, 2, 4]
    assert p.device_capacities.tolist() == [500, 500, 1000]
    assert [d.name for d in p.devices] == ["small", "small", "toy"]
    assert p.partition.capacity is None and p.settings.mixed
    assert any("no measured cache rate" in note for note in p.notes)


def test_mixed_devices_in_a_bad_order_fail_clearly() -> None:
    small = lf.Hardware.custom("small", l2=300, hbm_bytes_per_s=1.0, link_bytes_per_s=1.0,
                               flops_per_s=1.0, effective_fraction=1)
    with pytest.raises(OversizeLayerError, match=r"layer 0 \('l0'\) needs 400 bytes.*on device 0"):
        lf.plan(TOY_TABLE, devices=[small, TOY, TOY], sequence=100, chunk=10)
    # After the first device the groups can end at 1, 2 or 3; the small one can only
    # add layer 1: two more layers remain, one more large device's worth.
    with pytest.raises(TooManyGroupsError, match="needs 3 groups but only 2 devices were given"):
        lf.plan(TOY_TABLE, devices=[TOY, small], sequence=100, chunk=10)
    with pytest.raises(TooManyGroupsError, match="needs 2 groups but only 1 device was given") as caught:
        lf.plan(TOY_TABLE, devices=[TOY], sequence=100, chunk=10)
    assert str(caught.value).endswith("; list more devices, or larger ones")  # no share_devices
    again = pickle.loads(pickle.dumps(caught.value))
    assert (str(again), again.listed) == (str(caught.value), True)
    assert "share_devices=True" in str(TooManyGroupsError(3, 2))


def test_mixed_devices_need_more_than_next_fit() -> None:
    # Next-fit puts layers 0-1 on the first device and then cannot place layer 2 on the
    # second; one layer per device fits.
    caps = [2, 1, 2]
    devices = [lf.Hardware.custom(f"c{c}", l2=c, hbm_bytes_per_s=1.0, link_bytes_per_s=1.0,
                                  flops_per_s=1.0, effective_fraction=1) for c in caps]
    ones = table((0, 0, 1, 0), (0, 0, 1, 0), (0, 0, 2, 0))
    p = lf.plan(ones, devices=devices, sequence=4, chunk=1)
    assert p.partition.boundaries.tolist() == [0, 1, 2, 3]


def _brute_fewest(sizes: list[int], caps: list[int]) -> int | None:
    """Fewest groups, group i fitting caps[i], by trying every cut set."""
    n, best = len(sizes), None
    for mask in range(1 << (n - 1)):
        cuts = [0] + [i + 1 for i in range(n - 1) if mask >> i & 1] + [n]
        groups = len(cuts) - 1
        if groups <= len(caps) and all(sum(sizes[a:b]) <= caps[g]
                                       for g, (a, b) in enumerate(zip(cuts, cuts[1:]))):
            best = groups if best is None else min(best, groups)
    return best


@given(st.lists(st.integers(0, 9), min_size=1, max_size=7),
       st.lists(st.integers(1, 15), min_size=1, max_size=5))
def test_ordered_fit_is_exact_for_the_order(sizes: list[int], caps: list[int]) -> None:
    """Fewest groups against brute force; the cuts it returns fit their devices."""
    columns = {"weights": np.array(sizes, dtype=np.int64),
               "activations": np.zeros(len(sizes), dtype=np.int64),
               "buffers": np.zeros(len(sizes), dtype=np.int64)}
    names = np.array([f"l{i}" for i in range(len(sizes))], dtype=object)
    expected = _brute_fewest(sizes, caps)
    if expected is None:
        with pytest.raises(lf.InfeasibleError):
            ordered_fit(columns, caps, "sum", names)
    else:
        cuts = ordered_fit(columns, caps, "sum", names).tolist()
        assert len(cuts) - 1 == expected
        assert all(sum(sizes[a:b]) <= caps[g] for g, (a, b) in enumerate(zip(cuts, cuts[1:])))


def _brute_ordered(weights: list[int], live: list[int], caps: list[int],
                   cost: str) -> tuple[int, int] | None:
    """(fewest groups, then smallest largest group), group i fitting caps[i], by trying
    every cut set."""
    n, best = len(weights), None
    for mask in range(1 << (n - 1)):
        cuts = [0] + [i + 1 for i in range(n - 1) if mask >> i & 1] + [n]
        if len(cuts) - 1 > len(caps):
            continue
        costs = [sum(weights[a:b]) + (sum(live[a:b]) if cost == "sum" else max(live[a:b]))
                 for a, b in zip(cuts, cuts[1:])]
        if all(c <= caps[g] for g, c in enumerate(costs)):
            found = (len(costs), max(costs))
            best = found if best is None else min(best, found)
    return best


@given(st.lists(st.tuples(st.integers(0, 9), st.integers(0, 9)), min_size=1, max_size=7),
       st.lists(st.integers(1, 25), min_size=1, max_size=5), st.sampled_from(["sum", "peak"]))
def test_ordered_balanced_is_exact_for_the_order(layers: list[tuple[int, int]], caps: list[int],
                                                 cost: str) -> None:
    """Fewest groups, then the smallest largest group, against brute force."""
    weights, live = [w for w, _ in layers], [a for _, a in layers]
    columns = {"weights": np.array(weights, dtype=np.int64),
               "activations": np.array(live, dtype=np.int64),
               "buffers": np.zeros(len(layers), dtype=np.int64)}
    names = np.array([f"l{i}" for i in range(len(layers))], dtype=object)
    expected = _brute_ordered(weights, live, caps, cost)
    if expected is None:
        with pytest.raises(lf.InfeasibleError):
            ordered_balanced(columns, caps, cost, names)  # type: ignore[arg-type]
        return
    cuts = ordered_balanced(columns, caps, cost, names)  # type: ignore[arg-type]
    costs = group_costs(columns, cuts, cost)
    assert (len(costs), int(costs.max())) == expected
    assert all(c <= caps[g] for g, c in enumerate(costs.tolist()))


def test_a_device_list_balances_unless_greedy_is_asked_for() -> None:
    four = table(*[(10, 0, 0, 0)] * 4)  # 20 bytes each in bf16
    for algorithm, cuts in (("balanced", [0, 2, 4]), ("dp", [0, 2, 4]), ("greedy", [0, 3, 4])):
        p = lf.plan(four, capacity=60, devices=["h100", "h100"], algorithm=algorithm,
                    sequence=4, chunk=1)
        assert p.partition.boundaries.tolist() == cuts
        assert p.partition.algorithm == p.settings.algorithm == algorithm
        assert lf.Plan.from_dict(p.to_dict()) == p


def test_ordered_fit_counts_from_the_furthest_layer_reached() -> None:
    # Two groups can end after layer 2, 3 or 4 (the second device takes layer 3 alone or
    # with layer 2 or 1): layers 4..5 remain, one more group at the largest capacity.
    columns = {"weights": np.array([1, 1, 1, 2, 1, 1], dtype=np.int64),
               "activations": np.zeros(6, dtype=np.int64), "buffers": np.zeros(6, dtype=np.int64)}
    names = np.array([f"l{i}" for i in range(6)], dtype=object)
    with pytest.raises(TooManyGroupsError, match=r"needs 3 groups but only 2 devices .*layers 4\.\.5 remain"):
        ordered_fit(columns, [3, 2], "sum", names)


def test_ordered_fit_names_the_layer_no_listed_device_holds() -> None:
    columns = {"weights": np.array([1, 5], dtype=np.int64),
               "activations": np.zeros(2, dtype=np.int64), "buffers": np.zeros(2, dtype=np.int64)}
    with pytest.raises(OversizeLayerError, match=r"layer 1 \('b'\) needs 5 bytes .*on any listed device"):
        ordered_fit(columns, [2], "sum", np.array(["a", "b"], dtype=object))


# -- the working set and the chunk -----------------------------------------------------------


@given(batch=st.integers(1, 64), chunk=st.integers(1, 512),
       ratio=st.sampled_from(["1", "1/2", "3/5", "7/3", "1e-19", f"{2**64 + 1}/{2**65 + 3}"]),
       act=st.sampled_from(["bf16", "fp32", "fp8"]))
def test_activations_match_working_set(batch: int, chunk: int, ratio: str, act: str) -> None:
    gpt2 = lf.LayerTable.from_transformer_config(EXAMPLES / "configs" / "gpt2.json")
    units = unit_sizes(gpt2, act_dtype=act, working_set_ratio=ratio)
    bytes_per = {"bf16": 2, "fp32": 4, "fp8": 1}[act]
    reference = lf.working_set(gpt2, batch=batch, chunk_tokens=chunk, act_bytes=bytes_per,
                               working_set_ratio=ratio)
    assert activations(units, batch * chunk).tolist() == reference.activations.tolist()
    assert units.weights_for(batch * chunk).tolist() == reference.weights.tolist()


@given(room=st.lists(st.integers(-5, 10**6), min_size=1, max_size=6),
       coef=st.lists(st.integers(0, 5000), min_size=6, max_size=6),
       ratio=st.sampled_from([Fraction(1), Fraction(1, 3), Fraction(5, 2),
                              Fraction(2**63 + 1, 2**64 + 3)]))  # beyond int64
def test_fit_tokens_is_the_exact_bound(room: list[int], coef: list[int], ratio: Fraction) -> None:
    n = len(room)
    units = unit_sizes(table(*[(0, 1, 0, 0)] * n), working_set_ratio=ratio)
    units = type(units)(**{**vars(units), "act_per_token": np.array(coef[:n], dtype=np.int64)})
    bound = fit_tokens(units, np.array(room, dtype=np.int64))
    for x, a, t in zip(room, coef[:n], bound.tolist()):
        held = lambda tokens: math.ceil(Fraction(tokens * a) * ratio)  # noqa: E731
        if x < 0:
            assert t == -1
        elif a == 0:
            assert t == 2**63 - 1
        else:
            assert held(t) <= x < held(t + 1)


def test_fit_tokens_with_a_denominator_beyond_int64_and_no_room() -> None:
    units = unit_sizes(table((0, 3, 0, 0), (0, 5, 0, 0)),
                       working_set_ratio=Fraction(2**63 + 1, 2**64 + 3))
    assert fit_tokens(units, np.array([0, -1], dtype=np.int64)).tolist() == [0, -1]


@pytest.mark.parametrize("policy", ["error", "tile", "quantize"])
def test_a_ratio_whose_activations_leave_int64_is_an_oversize_layer(policy: str) -> None:
    # 1 token of 6 activation bytes at ratio 2**64 is 6 x 2**64 bytes: beyond int64, and
    # reported exactly, as for any layer that fits at no chunk.
    model = table((1, 3, 0, 0))
    with pytest.raises(OversizeLayerError, match=rf"layer 0 \('l0'\) needs \d+ bytes .*"
                                                 rf"activations {6 * 2**64} "):
        lf.plan(model, TOY, batch=1, granularity=1, working_set_ratio=2**64,
                on_oversize=policy)
    result = lf.sweep(model, [1, 2], TOY, granularity=1, working_set_ratio=2**64,
                      on_oversize=policy)
    assert not result.fits.any()


def test_a_name_that_utf8_cannot_carry_is_refused_and_a_file_name_is_made_writable(
        tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^the model's name '\\ud800' cannot be written as "
                                         r"UTF-8 \(it holds a lone surrogate\)$"):
        toy_plan(name="\ud800")
    path = os.path.join(os.fsencode(tmp_path), b"model\xff.json")  # not UTF-8
    TOY_TABLE.to_json(os.fsdecode(path))
    plan = lf.plan(os.fsdecode(path), TOY, sequence=100, granularity=4)
    assert plan.settings.model == "model?"
    plan.to_json(tmp_path / "plan.json")
    assert lf.Plan.from_json(tmp_path / "plan.json") == plan


def test_spare_devices_are_counted_in_the_header_and_a_note() -> None:
    counted = toy_plan(devices=9)
    assert f"on {counted.device_count} of 9 devices" in counted.summary().splitlines()[0]
    assert (f"the plan uses {counted.device_count} of the 9 devices: it has fewer groups "
            f"than devices") in counted.notes
    listed = toy_plan(devices=[TOY] * 9)
    assert f"on {listed.device_count} of 9 devices" in listed.summary().splitlines()[0]
    assert (f"the plan uses the first {listed.device_count} of the 9 listed devices: it has "
            f"fewer groups than devices") in listed.notes
    exact = toy_plan(devices=[TOY] * counted.device_count)
    assert not any("fewer groups" in note for note in exact.notes)


def test_sweep_reports_progress_and_the_same_answer() -> None:
    calls: list[tuple[str, float]] = []
    batches = list(range(1, 301))
    quiet = lf.sweep(TOY_TABLE, batches, TOY, sequence=100, granularity=4)
    loud = lf.sweep(TOY_TABLE, batches, TOY, sequence=100, granularity=4,
                    progress=lambda stage, done: calls.append((stage, done)))
    assert loud.to_dict() == quiet.to_dict()
    fractions = [done for _, done in calls]
    assert fractions == sorted(fractions) and calls[-1] == ("done", 1.0)
    assert 2 <= len(calls) <= 102


def test_chunk_for_by_hand() -> None:
    assert chunk_for(1000, 2, 64, 4096) == 448  # 500 tokens per sequence -> 7 x 64
    assert chunk_for(127, 2, 64, 4096) == 0  # not even 64 tokens x 2
    assert chunk_for(10**9, 1, 64, 1000) == 1000  # capped at the sequence
    assert chunk_for(10**9, 1, 64, 40) == 40  # a sequence shorter than one granule
    assert chunk_for(39, 1, 64, 40) == 0
    assert chunk_for(110, 1, 64, 100) == 100  # the whole sequence, though not a multiple
    assert chunk_for(99, 1, 64, 100) == 64


@given(st.integers(-1, 10**4), st.integers(1, 20), st.integers(1, 200), st.integers(1, 1000))
def test_chunk_for_is_the_largest_candidate_that_fits(limit: int, batch: int,
                                                      granularity: int, sequence: int) -> None:
    candidates = {min(m * granularity, sequence) for m in range(1, -(-sequence // granularity) + 1)}
    fitting = [c for c in candidates if batch * c <= limit]
    assert chunk_for(limit, batch, granularity, sequence) == max(fitting, default=0)


def test_plan_and_sweep_take_the_whole_sequence_where_it_fits() -> None:
    row = {"name": "a", "kind": "norm", "params": 0, "weight_dtype": "bf16",
           "act_elems_per_token": 1, "buffer_bytes": 0}
    model = lf.LayerTable.from_records([row])
    # 100 tokens of 2 bytes: 200 bytes fit 220, while 2 x 64 tokens would not.
    whole = lf.plan(model, "h100", sequence=100, granularity=64, capacity=220)
    assert whole.settings.chunk == 100
    assert "chunk 100 tokens (the whole sequence fits), 1 chunk" in whole.summary()
    assert lf.plan(model, "h100", sequence=100, granularity=64, capacity=199).settings.chunk == 64
    result = lf.sweep(model, [1, 2], "h100", sequence=100, granularity=64, capacity=220)
    assert result.chunk.tolist() == [100, 0] and result.fits.tolist() == [True, False]
    result = lf.sweep(model, [1, 2], "h100", sequence=100, granularity=64, capacity=256)
    assert result.chunk.tolist() == [100, 64]


# -- oversize layers -------------------------------------------------------------------------


def test_tiling_by_hand() -> None:
    # Capacity 1000; weights 2510 bytes, 20 activation bytes per token, buffers 100.
    p = lf.plan(table((1255, 10, 100, 0)), TOY, sequence=100, granularity=4,
                on_oversize="tile")
    # Tiles need >= 1 byte beside the activations: 20 t + 100 <= 999 -> t = 44 tokens.
    assert p.settings.chunk == 44 and p.settings.chunks == 3
    t = p.treated
    assert t.layers.tolist() == [0] and t.kind.tolist() == ["tile"]
    assert t.tile_bytes.tolist() == [1000 - 880 - 100]
    assert t.tiles.tolist() == [126] and t.last_tile_bytes.tolist() == [2510 - 125 * 20]
    assert t.extra_bytes.tolist() == [2510 * 2]
    assert p.partition.group_costs.tolist() == [1000]  # the tiles fill the room
    # Weights three times; the boundary (20 + 20 bytes per token, no output width given)
    # is capped at the layer's own 20 x 100 activation bytes.
    assert p.performance.planned_bytes.tolist() == [2510 * 3 + 20 * 100]


def test_quantize_tries_int8_then_int4() -> None:
    # Without vectors or output channels: int8 weights = params, int4 = params / 2 plus a
    # 2-byte scale per 128 weights.
    p = lf.plan(table((600, 1, 0, 0), (1200, 1, 0, 0), (300, 1, 0, 0)), TOY, sequence=8,
                granularity=1, on_oversize="quantize")
    t = p.treated
    assert t.layers.tolist() == [0, 1] and t.kind.tolist() == ["int8", "int4"]
    assert t.original_bytes.tolist() == [1200, 2400]
    assert t.weight_bytes.tolist() == [600, 600 + 2 * 10]
    assert t.tiles.tolist() == [1, 1] and t.extra_bytes.tolist() == [0, 0]
    assert p.weights.tolist() == [600, 620, 600] and p.settings.chunk == 8
    assert any("quantized to fit (1 to int8, 1 to int4)" in note for note in p.notes)
    with pytest.raises(OversizeLayerError, match=r"layer 0 \('l0'\).*even with int4 weights"):
        lf.plan(table((4000, 1, 0, 0)), TOY, sequence=8, on_oversize="quantize")


def test_oversize_is_decided_at_the_smallest_chunk() -> None:
    # Layer 1 fits untreated up to (1000 - 800) / 50 = 4 tokens, so it is not tiled to
    # allow a larger chunk; layer 0 alone could take 499.
    p = lf.plan(table((2000, 1, 0, 0), (400, 25, 0, 0)), TOY, sequence=100, granularity=1,
                on_oversize="tile")
    assert p.treated.layers.tolist() == [0]
    assert p.settings.chunk == 4


def test_error_policy_names_the_first_oversize_layer() -> None:
    with pytest.raises(OversizeLayerError) as err:
        lf.plan(table((10, 1, 0, 0), (600, 1, 0, 0), (700, 1, 0, 0)), TOY, sequence=8)
    e = err.value
    # At the smallest chunk, the whole 8-token sequence: 1200 + 8 x 2 bytes.
    assert (e.layer, e.nbytes, e.capacity, e.layer_name) == (1, 1216, 1000, "l1")
    assert str(e).startswith("layer 1 ('l1') needs 1216 bytes")
    assert "on_oversize='tile'" in str(e)


@pytest.mark.parametrize("policy", ["error", "quantize"])
@pytest.mark.parametrize("layer, hint", [
    ((10, 200, 0, 0), "its activations and buffers alone fill the capacity, so neither tiling"),
    ((10, 1, 1000, 0), "its buffers alone fill the capacity"),
])
def test_no_treatment_is_suggested_where_none_can_help(policy: str, layer: tuple[int, ...],
                                                       hint: str) -> None:
    with pytest.raises(OversizeLayerError) as err:
        lf.plan(table(layer), TOY, sequence=8, on_oversize=policy)  # type: ignore[arg-type]
    assert hint in str(err.value)
    assert "on_oversize='tile'" not in str(err.value)


@pytest.mark.parametrize("layer, needs, hint", [
    ((10, 0, 1000, 0), 1001, "its buffers alone fill the capacity"),  # exactly full
    ((10, 200, 0, 0), 3201, "for the smallest chunk, 8 tokens x batch 1 + a weight tile of at "
                            "least 1 byte), more than the capacity of 1000 bytes [1.0 KB], over "
                            "by 2201; lower the batch, the chunk or its granularity"),
])
def test_tile_policy_counts_the_smallest_tile(layer: tuple[int, ...], needs: int,
                                              hint: str) -> None:
    with pytest.raises(OversizeLayerError) as err:
        lf.plan(table(layer), TOY, sequence=8, on_oversize="tile")
    assert (err.value.nbytes, err.value.capacity) == (needs, 1000)
    assert "a weight tile of at least 1 byte" in str(err.value) and hint in str(err.value)


@pytest.mark.parametrize("policy", ["error", "tile", "quantize"])
def test_a_given_chunk_is_named_as_given_with_no_granularity_to_lower(policy: str) -> None:
    with pytest.raises(OversizeLayerError) as err:
        lf.plan(table((10, 200, 0, 0)), TOY, sequence=8, chunk=6, on_oversize=policy)  # type: ignore[arg-type]
    assert "for the given chunk, 6 tokens x batch 1" in str(err.value)
    assert str(err.value).endswith("lower the batch or the chunk")
    searched = pytest.raises(OversizeLayerError, lf.plan, table((10, 200, 0, 0)), TOY,
                             sequence=8, on_oversize=policy)
    assert str(searched.value).endswith("lower the batch, the chunk or its granularity")


def test_oversize_error_pickles() -> None:
    import pickle

    error = OversizeLayerError(3, 50, 40, "x", "detail", "hint")
    again = pickle.loads(pickle.dumps(error))
    assert str(again) == str(error) and again.layer_name == "x"


# -- the seed's example ---------------------------------------------------------------------


def test_seed_30b_numbers() -> None:
    example = scenario("seed-30b")
    model = scenario_model(example)
    assert model.table.total_params == 30 * 10**9
    units = unit_sizes(model.table)
    assert units.weights.tolist() == [15 * 10**9] * 4
    full = activations(units, 128 * 10000)
    assert full.tolist() == [128 * 10000 * 16384 * 2] * 4
    assert full[0] / 2**30 == pytest.approx(39.06, abs=0.005)  # the seed's "39.06 GB"
    assert activations(units, 128 * 64)[0] == 256 * 2**20  # not the seed's 16 MB


def test_seed_30b_does_not_fit_and_says_so() -> None:
    example = scenario("seed-30b")
    with pytest.raises(OversizeLayerError) as err:
        lf.plan(scenario_model(example), **example.settings)
    assert (err.value.layer, err.value.capacity) == (0, 31_457_280)
    assert err.value.nbytes == 15 * 10**9 + 128 * 16384 * 2 + 4_000_000
    assert str(err.value).startswith("layer 0 ('layers.0') needs 15008194304 bytes")


def test_traffic_totals_beyond_int64_are_exact() -> None:
    # Each tiled layer streams 3.0 EB more per micro-batch; the four together exceed int64.
    example = scenario("seed-30b")
    p = lf.plan(scenario_model(example), **{**example.settings, "on_oversize": "tile",
                                             "sequence": 1_200_000_000})
    extra = sum(p.treated.extra_bytes.tolist())
    planned = sum(p.performance.planned_bytes.tolist())
    assert extra > 2**63 and planned > 2**63
    assert f"-> {lf.format_bytes(planned)} planned" in p.summary()
    assert f"{lf.format_bytes(extra)} more HBM traffic" in " ".join(p.notes)
    assert "-" not in lf.format_bytes(planned)


def test_seed_30b_tiled_shows_the_cost() -> None:
    example = scenario("seed-30b")
    p = lf.plan(scenario_model(example), **{**example.settings, "on_oversize": "tile"})
    # 6 tokens x 128 x 32768 = 25,165,824 bytes of activations, 4 MB of buffers: the
    # rest of 31,457,280 bytes is the tile.
    assert p.settings.chunk == 6 and p.settings.chunks == 1667
    assert p.treated.tile_bytes.tolist() == [2_291_456] * 4
    assert p.treated.tiles.tolist() == [6547] * 4
    assert p.treated.last_tile_bytes.tolist() == [15 * 10**9 - 6546 * 2_291_456] * 4
    assert p.treated.extra_bytes.tolist() == [15 * 10**9 * 1666] * 4
    assert p.k == 4 and p.device_count == 4
    assert (p.performance.speedup < 0.01).all()
    assert any("exceeds layer by layer" in note for note in p.notes)
    assert p.cuts.bytes_per_micro_batch.tolist() == [128 * 10000 * 16384 * 2] * 3


def test_seed_30b_quantized_fails_at_int4() -> None:
    example = scenario("seed-30b")
    with pytest.raises(OversizeLayerError, match="even with int4 weights: weights 3867187500"):
        lf.plan(scenario_model(example), **{**example.settings, "on_oversize": "quantize"})


def test_llama_example_fits_by_tiling() -> None:
    example = scenario("llama-2-7b-8xh100")
    p = lf.plan(scenario_model(example), **example.settings)
    assert p.n == 35 and p.device_count == 8
    assert (p.partition.group_costs <= 31_457_280).all()
    assert len(p.treated) == 33 and set(p.treated.kind.tolist()) == {"tile"}
    assert p.settings.cut_exact  # the hidden size comes from the config
    assert p.cuts.bytes_per_chunk.tolist() == [p.settings.chunk * 4096 * 2] * 7
    assert sorted(SCENARIOS) == ["llama-2-7b-8xh100", "seed-30b"]


def test_a_config_models_head_sends_the_vocabulary_not_the_hidden_size() -> None:
    gpt2 = load_model(EXAMPLES / "configs" / "gpt2.json", layer_granularity="sublayer")
    widths = dict(zip(gpt2.table.name, gpt2.cut_elems_per_token or ()))
    assert widths.pop("lm_head") == 50257
    assert set(widths.values()) == {768}
    p = lf.plan(gpt2, sequence=1024, on_oversize="tile", capacity="200MB")
    head_group = p.partition.k - 1
    start, stop = p.partition.boundaries[head_group:]
    assert p.names[start:stop] == ["lm_head"]  # alone: its logits must go to HBM
    assert p.performance.hit_rate[head_group] == 0.0
    assert p.performance.speedup[head_group] == 1.0


# -- sweep ----------------------------------------------------------------------------------


def test_sweep_matches_plan_for_each_batch() -> None:
    gpt2 = load_model(EXAMPLES / "configs" / "gpt2.json")
    batches = [1, 2, 3, 5, 8, 64]
    for policy in ("quantize", "tile"):
        result = lf.sweep(gpt2, batches, sequence=1024, on_oversize=policy)
        for b, c, g, fits in zip(batches, result.chunk.tolist(), result.groups.tolist(),
                                 result.fits.tolist()):
            if fits:
                p = lf.plan(gpt2, batch=b, sequence=1024, on_oversize=policy, algorithm="greedy")
                assert (c, g) == (p.settings.chunk, p.k)
            else:
                with pytest.raises(lf.InfeasibleError):
                    lf.plan(gpt2, batch=b, sequence=1024, on_oversize=policy)


def test_sweep_error_policy_marks_instead_of_raising() -> None:
    result = lf.sweep(TOY_TABLE, [1, 10, 11, 100], TOY, sequence=64, granularity=4)
    # Layers 0 and 2 fit up to 40 tokens: batch 10 x 4 tokens still fits, 11 does not.
    assert result.fits.tolist() == [True, True, False, False]
    assert result.chunk.tolist() == [40, 4, 0, 0]
    assert result.groups.tolist()[:2] == [4, 4]  # 40 tokens: 1000, 500, 1000, 700 bytes
    assert result.to_dict()["chunk"] == [40, 4, 0, 0]
    assert "does not fit" in result.format_table()
    assert result.treated.tolist() == [0, 0, 0, 0]  # oversize layers, but none treated


def test_sweep_takes_an_object_array_of_ints() -> None:
    assert lf.sweep(TOY_TABLE, np.array([1, 2], dtype=object), TOY).batch_sizes.tolist() == [1, 2]


def test_sweep_counts_no_treated_layers_where_nothing_fits() -> None:
    # Tiled at batch 1 and 2; at 1000, 64 tokens of activations alone overflow.
    result = lf.sweep(table((1000, 3, 0, 0)), [1, 2, 1000], TOY, sequence=1024,
                      on_oversize="tile")
    assert result.fits.tolist() == [True, True, False]
    assert result.treated.tolist() == [1, 1, 0]


def test_sweep_sizes_is_vectorised_over_many_batches() -> None:
    units = unit_sizes(TOY_TABLE)
    result = sweep_sizes(units, np.arange(1, 4097), capacity=1000, sequence=64, granularity=4)
    assert len(result) == 4096 and result.fits.sum() == 10


@pytest.mark.parametrize("bad, error, text", [
    ([], ValueError, "batch_sizes is empty"),
    ([0, 1], ValueError, "between 1 and"),
    ([1, 2**70], ValueError, f"between 1 and {2**31}, got {2**70}"),
    (np.array([1, 2**31 + 1], dtype=object), ValueError, f"between 1 and {2**31}, got {2**31 + 1}"),
    (np.array([], dtype=object), ValueError, "batch_sizes is empty"),
    ([1.5], TypeError, "1-D sequence of ints"),
    ("12", TypeError, "got a string"),
    ([True, 2], TypeError, r"batch_sizes\[0\] is a bool"),
    ((1, np.True_), TypeError, r"batch_sizes\[1\] is a bool"),
])
def test_sweep_refuses_bad_batch_sizes(bad: Any, error: type[Exception], text: str) -> None:
    with pytest.raises(error, match=text):
        lf.sweep(TOY_TABLE, bad, TOY)


# -- arguments ------------------------------------------------------------------------------


@pytest.mark.parametrize("settings, error, text", [
    ({"batch": 0}, ValueError, "batch must be between 1 and"),
    ({"batch": True}, TypeError, "batch must be an int"),
    ({"sequence": "4096"}, TypeError, "sequence must be an int"),
    ({"chunk": 200}, ValueError, r"chunk \(200 tokens\) exceeds sequence \(100 tokens\)"),
    ({"granularity": 0}, ValueError, "granularity must be between 1"),
    ({"micro_batches": -1}, ValueError, "micro_batches must be between 1"),
    ({"algorithm": "fast"}, ValueError, "algorithm must be one of balanced, greedy, dp"),
    ({"cost": "max"}, ValueError, "cost must be one of sum, peak"),
    ({"on_oversize": "skip"}, ValueError, "on_oversize must be one of error, tile, quantize"),
    ({"devices": 0}, ValueError, "devices must be between 1 and 9223372036854775807, got 0"),
    ({"devices": 2**63}, ValueError, "devices must be between 1 and 9223372036854775807, got 9223"),
    ({"devices": True}, TypeError, "got a bool"),
    ({"devices": []}, ValueError, "devices is an empty list"),
    ({"devices": "h100"}, TypeError, "devices must be None, a count or a list"),
    ({"devices": ["h100", "b200"]}, ValueError, "unknown hardware profile 'b200'"),
    ({"devices": ["h100"], "share_devices": True}, ValueError, "share_devices applies"),
    ({"share_devices": True}, ValueError, "share_devices applies to a device count "
                                          r"\(devices=8\); with devices=None every group"),
    ({"share_devices": 1}, TypeError, "share_devices must be a bool"),
    ({"capacity": "lots"}, ValueError, "capacity: cannot read 'lots'"),
    ({"act_dtype": "int8"}, ValueError, "act_dtype must be one of bf16, fp16, fp32, fp8"),
    ({"cut_elems_per_token": [1, 2]}, ValueError, r"cut_elems_per_token must be one int or 4"),
    ({"cut_elems_per_token": 1.5}, TypeError, "cut_elems_per_token must hold integers"),
    ({"name": ""}, TypeError, "name must be a non-empty str"),
])
def test_plan_refuses_bad_arguments(settings: dict[str, Any], error: type[Exception],
                                    text: str) -> None:
    with pytest.raises(error, match=text):
        lf.plan(TOY_TABLE, TOY, **{"sequence": 100, "granularity": 4, **settings})


def test_plan_refuses_bad_models_and_hardware(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="model must be a LayerTable, a Model or a path"):
        lf.plan([1, 2, 3])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="hardware must be a profile name or a Hardware"):
        lf.plan(TOY_TABLE, 3)  # type: ignore[arg-type]
    with pytest.raises(lf.LayerTableError, match="model file .* does not exist"):
        lf.plan(tmp_path / "missing.json")
    with pytest.raises(lf.LayerTableError, match="is a directory"):
        lf.plan(tmp_path)


def test_capacity_override_and_effective_default() -> None:
    gpt2 = EXAMPLES / "configs" / "gpt2.json"
    default = lf.plan(gpt2, on_oversize="tile", sequence=1024)
    assert default.device_capacities.tolist() == [31_457_280] * default.device_count
    bigger = lf.plan(gpt2, on_oversize="tile", sequence=1024, capacity="50MiB")
    assert set(bigger.device_capacities.tolist()) == {50 * 2**20}
    assert any("capacity 52428800 bytes was given" in note for note in bigger.notes)


def test_cut_sizes_without_a_width_are_marked_as_bounds() -> None:
    p = lf.plan(TOY_TABLE, TOY, sequence=100, granularity=4, devices=2)
    assert not p.settings.cut_exact
    assert p.cuts.bytes_per_chunk.tolist() == [16 * 10]  # layer 1's whole 10 bytes per token
    assert any("cut sizes are upper bounds" in note for note in p.notes)


def test_progress_is_reported_in_order() -> None:
    seen: list[tuple[str, float]] = []
    lf.plan(TOY_TABLE, TOY, sequence=100, granularity=4,
            progress=lambda stage, done: seen.append((stage, done)))
    assert [s for s, _ in seen] == ["working sets", "chunk", "partition", "performance"]
    assert [d for _, d in seen] == sorted(d for _, d in seen) and seen[-1][1] == 1.0


def test_peak_cost_groups_more_layers() -> None:
    summed = lf.plan(TOY_TABLE, TOY, sequence=100, chunk=20)
    peak = lf.plan(TOY_TABLE, TOY, sequence=100, chunk=20, cost="peak")
    assert peak.k <= summed.k and peak.settings.cost == "peak"
    # peak: weights 800 + the largest activations 400 > 1000; layers 0-2: 500 + 400.
    assert peak.partition.group_costs.tolist() == [900, 500]


@pytest.mark.parametrize("layers", [1, 3])
def test_a_model_of_zeros_plans_at_the_most_tokens(layers: int) -> None:
    """batch x sequence = 2**62 tokens; nothing grows with the chunk: one chunk."""
    zeros = table(*[(0, 0, 0, 0)] * layers)
    p = lf.plan(zeros, TOY, batch=MAX_TOKENS // MAX_SEQUENCE, sequence=MAX_SEQUENCE)
    assert p.k == 1 and p.settings.chunk == MAX_SEQUENCE
    assert not p.performance.baseline_bytes.any()
    assert lf.Plan.from_dict(p.to_dict()) == p
    sweep = lf.sweep(zeros, [1, MAX_TOKENS // MAX_SEQUENCE], TOY, sequence=MAX_SEQUENCE)
    assert sweep.chunk.tolist() == [MAX_SEQUENCE] * 2


def test_more_tokens_than_bytes_can_count_are_refused() -> None:
    zeros = table((0, 0, 0, 0))
    too_many = r"x sequence \(1099511627776\) is \d+ tokens, more than the \d+ \(2\*\*62\)"
    with pytest.raises(ValueError, match=r"batch \(4194305\) " + too_many):
        lf.plan(zeros, TOY, batch=MAX_TOKENS // MAX_SEQUENCE + 1, sequence=MAX_SEQUENCE)
    with pytest.raises(ValueError, match=r"the largest of batch_sizes \(2147483648\) " + too_many):
        lf.sweep(zeros, [1, MAX_BATCH], TOY, sequence=MAX_SEQUENCE)


def test_summary_says_where_the_capacity_comes_from() -> None:
    line = "capacity {} per device ({}; L2 1.0 KB nominal)"
    assert line.format("1.0 KB", "effective") in toy_plan().summary()
    assert line.format("2.0 KB", "as given, above the L2 size") in toy_plan(capacity=2000).summary()
    assert line.format("900 B", "as given") in toy_plan(capacity=900).summary()


def test_summary_elides_whole_rows_and_refuses_fewer_than_two() -> None:
    p = toy_plan(devices=2)  # 2 groups
    assert not re.search(r"\.\.\. \d+ more groups? \.\.\.", p.summary(max_rows=2))
    for bad, error in ((1, ValueError), (0, ValueError), (-3, ValueError), (2.0, TypeError),
                       (True, TypeError)):
        with pytest.raises(error, match="max_rows must be"):
            p.summary(max_rows=bad)  # type: ignore[arg-type]
    three = lf.plan(table(*[(400, 0, 0, 0)] * 3), TOY, sequence=4)  # one layer a group
    assert "... 1 more group ..." in three.summary(max_rows=2)
    seven = lf.plan(table(*[(400, 0, 0, 0)] * 7), TOY, sequence=4)
    for rows in (2, 3, 4, 5, 6):  # an odd count shows one more row at the top
        lines = seven.summary(max_rows=rows).split("Groups")[1].split("\n\n")[0].splitlines()
        shown = [line.split()[0] for line in lines[2:] if not line.strip().startswith("...")]
        assert shown == [str(g) for g in range(rows - rows // 2)] + \
            [str(g) for g in range(7 - rows // 2, 7)]
        assert f"... {7 - rows} more group" in seven.summary(max_rows=rows)


def test_names_with_control_characters_print_escaped() -> None:
    evil = lf.Hardware.custom("evil\n\x1b[31mred", l2=1000, hbm_bytes_per_s=100.0,
                              link_bytes_per_s=10.0, flops_per_s=1000.0, effective_fraction=1)
    p = lf.plan(TOY_TABLE, evil, sequence=16, name="model\r2")
    text = p.summary() + lf.sweep(TOY_TABLE, [1], evil, sequence=16).format_table()
    assert "\x1b" not in text and "\r" not in text
    assert "evil\\n\\x1b[31mred" in text and "Plan for model\\r2:" in text
    assert all("red" not in line or "evil" in line for line in text.splitlines())


def test_one_of_a_kind_reads_in_the_singular() -> None:
    one = lf.plan(table((10, 0, 0, 0)), TOY, sequence=4)
    assert repr(one) == ("<Plan 'model': 1 layer in 1 group on 1 device, chunk 4 tokens, "
                         "on_oversize='error'>")
    quantized = lf.plan(table((10, 0, 0, 0), (600, 0, 0, 0)), TOY, sequence=4,
                        on_oversize="quantize")
    assert any(note.startswith("1 layer is quantized to fit (1 to int8, 0 to int4)")
               for note in quantized.notes)


def test_summary_reads_as_a_report() -> None:
    text = toy_plan(devices=2, micro_batches=2).summary()
    assert text.splitlines()[0] == "Plan for model: 4 layers in 2 groups on 2 devices (toy)"
    assert "chunk 16 tokens (the largest multiple of 4 that fits), 7 chunks" in text
    assert "bottleneck: link 0->1" in text
    assert "HBM 6.8 KB layer by layer -> 2.4 KB planned" in text
    long = lf.plan(table(*[(100, 10, 0, 1)] * 60), TOY, sequence=100, chunk=10)
    assert long.k == 30 and "... 6 more groups ..." in long.summary(max_rows=24)


def test_cut_aware_mode_avoids_expensive_cuts() -> None:
    # At 4 tokens two groups fit with the cut after layer 0, 1 or 2. By bytes the best
    # cut is after layer 1, but layer 1's output is 100 bytes per token: 1000 s on the
    # 10 B/s link. Stage times (layer: max(memory, compute); cut: transfer) are 12 + 20
    # and 6 + 12 + 8 for the cut after layer 0, 42 + 20 and 8 after layer 2.
    settings: dict[str, Any] = {"sequence": 100, "chunk": 4, "devices": 2,
                                "cut_elems_per_token": [1, 50, 1, 1]}
    by_bytes = lf.plan(TOY_TABLE, TOY, **settings)
    by_time = lf.plan(TOY_TABLE, TOY, algorithm="stage_time", **settings)
    assert by_bytes.partition.boundaries.tolist() == [0, 2, 4]
    assert by_time.partition.boundaries.tolist() == [0, 1, 4]
    assert by_time.partition.stage_times.tolist() == pytest.approx([32.0, 26.0])
    assert by_time.partition.algorithm == "dp" and by_time.settings.algorithm == "stage_time"
    assert by_time.stages.stage_s.max() < by_bytes.stages.stage_s.max()
    with pytest.raises(ValueError, match="algorithm='stage_time' times every group on one"):
        lf.plan(TOY_TABLE, TOY, algorithm="stage_time", devices=[TOY, TOY], sequence=100)


def _performance_inputs(weights: list[int], reads: list[int], act: list[int]) -> dict[str, Any]:
    from layerwise_fast.perf import Rates
    n = len(weights)
    ones = np.ones(1)
    return dict(weights=np.array(weights, dtype=np.int64), weight_reads=np.array(reads, dtype=np.int64),
                act_per_token=np.array(act, dtype=np.int64), out_per_token=np.zeros(n, dtype=np.int64),
                flops_per_token=np.zeros(n, dtype=np.int64), tokens=1,
                rates=Rates(ones, ones, ones, ones))


@pytest.mark.parametrize("weights, reads, act, message", [
    ([2**62, 1], [2, 1], [0, 0], "^layer 0: weight traffic exceeds the int64 range"),
    ([1, 2**61], [1, 5], [0, 0], "^layer 1: weight traffic exceeds the int64 range"),
    ([2**62, 2**62], [1, 1], [0, 0], "^group 0: baseline bytes exceed the int64 range"),
    ([2**62, 2**62 - 2**40], [1, 1], [2**62, 0], "^group 0: baseline bytes exceed the int64 range"),
])
def test_group_performance_refuses_int64_overflow(weights: list[int], reads: list[int],
                                                  act: list[int], message: str) -> None:
    from layerwise_fast.perf import group_performance
    with pytest.raises(OverflowError, match=message):
        group_performance(np.array([0, len(weights)]), **_performance_inputs(weights, reads, act))


@pytest.mark.parametrize("weights, reads, act", [
    ([(2**63 - 1) // 2, 1], [2, 1], [0, 0]),  # a product one byte under the limit
    ([2**62, 2**62 - 2], [1, 1], [0, 1]),  # a group sum of exactly 2**63 - 1
    ([2**63 - 1], [1], [0]),
])
def test_group_performance_takes_counts_up_to_int64_max(weights: list[int], reads: list[int],
                                                        act: list[int]) -> None:
    from layerwise_fast.perf import group_performance
    perf = group_performance(np.array([0, len(weights)]), **_performance_inputs(weights, reads, act))
    assert perf.baseline_bytes.tolist() == [sum(weights) + sum(act)]
    accesses = sum(w * r for w, r in zip(weights, reads)) + sum(act)
    assert (perf.planned_bytes + perf.cache_bytes).tolist() == [accesses]


_BYTES = st.one_of(st.integers(0, 10**6), st.integers(0, 2**62))


@given(st.lists(st.tuples(_BYTES, st.integers(1, 4), _BYTES), min_size=1, max_size=6), st.data())
def test_group_performance_sums_exactly_or_refuses(layers: list[tuple[int, int, int]],
                                                   data: st.DataObject) -> None:
    """Every group's byte counts are the exact integer sums, whether or not the quick
    bound rules overflow out; where a sum leaves int64, OverflowError instead."""
    from layerwise_fast.perf import group_performance
    n = len(layers)
    cuts = sorted(data.draw(st.sets(st.integers(1, n - 1), max_size=n - 1))) if n > 1 else []
    boundaries = [0, *cuts, n]
    weights, reads, act = (list(column) for column in zip(*layers))
    traffic = [w * r for w, r in zip(weights, reads)]
    groups = list(zip(boundaries[:-1], boundaries[1:]))
    baseline = [sum(weights[i] + act[i] for i in range(a, b)) for a, b in groups]
    accesses = [sum(traffic[i] + act[i] for i in range(a, b)) for a, b in groups]
    try:
        perf = group_performance(np.array(boundaries), **_performance_inputs(weights, reads, act))
    except OverflowError:
        assert max(traffic + baseline + accesses) > 2**63 - 1
        return
    assert max(traffic + baseline + accesses) < 2**63
    assert perf.baseline_bytes.tolist() == baseline
    assert (perf.planned_bytes + perf.cache_bytes).tolist() == accesses


def test_a_sequence_beyond_the_configs_positions_is_noted() -> None:
    configs = Path(lf.__file__).parent / "examples" / "configs"
    gpt2, llama = load_model(configs / "gpt2.json"), load_model(configs / "llama-2-7b.json")
    assert (gpt2.positions, llama.positions) == (1024, 4096)  # n_positions, max_position_embeddings
    note = "the sequence (4096 tokens) is longer than the 1024 positions of the model's config"
    assert any(n.startswith(note) for n in lf.plan(gpt2, on_oversize="tile", sequence=4096).notes)
    within = lf.plan(gpt2, on_oversize="tile", sequence=1024, name="gpt2-1k")
    assert within.settings.model == "gpt2-1k" and not any("positions" in n for n in within.notes)
    assert not any("positions" in n for n in lf.plan(gpt2.table, on_oversize="tile", sequence=4096).notes)
    beyond = lf.plan(gpt2, on_oversize="tile", sequence=2048)
    assert lf.Plan.from_dict(beyond.to_dict()) == beyond  # the note is kept in the plan's file


def test_summary_columns_line_up_with_wide_names() -> None:
    from layerwise_fast.units import display_width

    table = lf.LayerTable(name=["層の名前", "b", "cc"], kind=["decoder"] * 3, params=[10**6] * 3,
                          weight_dtype=["bf16"] * 3, act_elems_per_token=[4096] * 3)
    lines = lf.plan(table, "h100", sequence=512).summary().splitlines()
    header = next(i for i, line in enumerate(lines) if "first .. last" in line)
    head, row = lines[header], lines[header + 1]
    # "working set" is right-aligned: its cell ends in the column where its header ends.
    end = display_width(head[:head.index("working set") + len("working set")])
    assert display_width(row[:row.index(" MB") + len(" MB")]) == end
