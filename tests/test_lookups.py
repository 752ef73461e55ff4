"""Lookups (embedding rows): a chunk holds the table rows its tokens read, not the table."""

from __future__ import annotations

import copy
import json
import math
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import layerwise_fast as lf
from layerwise_fast.chunking import sweep_sizes
from layerwise_fast.oversize import OversizeLayerError
from layerwise_fast.scaling import UNBOUNDED_TOKENS, fit_beside_weights, unit_sizes
from layerwise_fast.workingset import Lookups, gathered_weights, lookup_rows

GPT2 = Path(__file__).resolve().parents[1] / "layerwise_fast" / "examples" / "configs" / "gpt2.json"
H, VOCAB, POSITIONS = 768, 50257, 1024
TOY = lf.Hardware.custom("toy", l2=4000, hbm_bytes_per_s=100.0, link_bytes_per_s=10.0,
                         flops_per_s=1000.0, effective_fraction=1, cache_bytes_per_s=200.0)


def lookup_table(*rows: tuple[str, int, int, int], dtype: str = "bf16") -> lf.LayerTable:
    """Rows of (kind, params, act_elems_per_token, out_channels), no buffers."""
    return lf.LayerTable.from_records(
        {"name": f"l{i}", "kind": kind, "params": p, "weight_dtype": dtype,
         "act_elems_per_token": a, "buffer_bytes": 0, "flops_per_token": 1,
         "out_channels": r}
        for i, (kind, p, a, r) in enumerate(rows))


def held_by_lookup(whole: int, rows: int, tokens: int) -> int:
    """The reference count: one row per token, at most the whole table, rounded up."""
    return min(whole, math.ceil(Fraction(whole * tokens, rows)))


# -- the working set -------------------------------------------------------------------------


def test_gpt2_embedding_holds_one_row_per_token() -> None:
    gpt2 = lf.LayerTable.from_transformer_config(GPT2)
    row = 2 * H  # bf16; the row's table has VOCAB + POSITIONS rows of H
    for batch, chunk in ((1, 1), (1, 256), (4, 4096)):
        weights = lf.working_set(gpt2, batch=batch, chunk_tokens=chunk).weights
        assert int(weights[0]) == batch * chunk * row
        assert int(weights[-1]) == 2 * VOCAB * H  # the tied head still reads its whole matrix
    whole = lf.working_set(gpt2, batch=64, chunk_tokens=4096).weights  # more tokens than rows
    assert int(whole[0]) == 2 * (VOCAB + POSITIONS) * H


def test_quantized_rows_carry_their_scales() -> None:
    gpt2 = lf.LayerTable.from_transformer_config(GPT2, weight_dtype="int8")
    assert int(lf.working_set(gpt2, batch=1, chunk_tokens=10).weights[0]) == 10 * (H + 2)


def test_a_lookup_without_its_row_count_counts_its_whole_table() -> None:
    table = lookup_table(("embedding", 1000, 10, 0), ("Embedding", 1000, 10, 100),
                         ("decoder", 1000, 10, 100))
    weights = lf.working_set(table, batch=1, chunk_tokens=3).weights.tolist()
    assert weights == [2000, 3 * 20, 2000]
    layers, rows = lookup_rows(table)
    assert layers.tolist() == [1] and rows.tolist() == [100]
    assert table.kinds == {"embedding", "Embedding", "decoder"}


@given(whole=st.integers(0, 10**6), rows=st.integers(1, 5000), tokens=st.integers(1, 10**4))
def test_gathered_weights_match_the_reference(whole: int, rows: int, tokens: int) -> None:
    weights = np.array([whole, whole], dtype=np.int64)
    got = gathered_weights(weights, np.array([1]), np.array([rows]), tokens)
    assert got.tolist() == [whole, held_by_lookup(whole, rows, tokens)]


def test_gathering_stays_exact_beyond_int64_products() -> None:
    whole = 2**62
    got = gathered_weights(np.array([whole], dtype=np.int64), np.array([0]),
                           np.array([2**40]), 2**30)
    assert int(got[0]) == whole // 2**10


# -- the largest chunk ---------------------------------------------------------------------


@given(room=st.integers(-3, 5000), whole=st.integers(1, 4000), rows=st.integers(1, 300),
       act=st.integers(0, 40), ratio=st.sampled_from([Fraction(1), Fraction(1, 3), Fraction(5, 2)]))
def test_fit_beside_weights_is_the_exact_bound(room: int, whole: int, rows: int, act: int,
                                               ratio: Fraction) -> None:
    table = lookup_table(("embedding", whole // 2, act, rows), ("decoder", whole // 2, act, rows))
    units = unit_sizes(table, working_set_ratio=ratio)
    weights = units.weights
    bound = fit_beside_weights(units, np.array([room, room], dtype=np.int64), weights)
    act_bytes = 2 * act

    def held(layer: int, t: int) -> int:
        w = int(weights[layer])
        kept = held_by_lookup(w, rows, t) if layer == 0 else w
        return kept + math.ceil(Fraction(t * act_bytes) * ratio)

    for layer, t in enumerate(bound.tolist()):
        if t == -1:
            assert held(layer, 0) > room
        elif t == UNBOUNDED_TOKENS:
            assert held(layer, 10**9) <= room
        else:
            assert held(layer, t) <= room < held(layer, t + 1)


def test_fit_beside_weights_guards_the_sum_of_both_terms() -> None:
    units = unit_sizes(lookup_table(("embedding", 3, 0, 3)))
    whole, rows, act, room = 149858376059777481, 3, 570977755200101358, 8733058199793730032
    units = type(units)(**{**vars(units), "act_per_token": np.array([act], dtype=np.int64)})
    t = int(fit_beside_weights(units, np.array([room], dtype=np.int64),
                               np.array([whole], dtype=np.int64))[0])
    assert t == 15  # 16 tokens hold 9.29e18 bytes, beyond the room and int64 products
    assert held_by_lookup(whole, rows, t) + t * act <= room


@pytest.mark.parametrize("whole_params, rows, room, act", [
    (2**60, 2**40, 2**62, 1),  # products beyond int64: the exact search
    (1, 1, 2**62, 0),  # a 2-byte table: any token count fits, and the search ends
    (2**60, 2**40, 2**62, 0),
    (3, 2**61, 2**62 + 2**61, 0),  # rows of under a byte: more tokens than bytes
    (10**6, 1000, 10**9, 7),
])
def test_fit_beside_weights_is_exact_for_large_counts(whole_params: int, rows: int, room: int,
                                                     act: int) -> None:
    units = unit_sizes(lookup_table(("embedding", whole_params, act, rows)))
    whole = int(units.weights[0])
    t = int(fit_beside_weights(units, np.array([room], dtype=np.int64), units.weights)[0])

    def held(tokens: int) -> int:
        return held_by_lookup(whole, rows, tokens) + tokens * 2 * act

    assert held(t) <= room
    assert t == UNBOUNDED_TOKENS or held(t + 1) > room


def test_a_lookup_no_longer_needs_tiling() -> None:
    plan = lf.plan(GPT2, on_oversize="tile")
    assert plan.treated.layers.tolist() == [14]  # the tied head; the embedding fits
    assert plan.lookups.layers.tolist() == [0]
    assert plan.lookups.rows.tolist() == [VOCAB + POSITIONS]
    assert plan.lookups.table_bytes.tolist() == [2 * (VOCAB + POSITIONS) * H]
    s = plan.settings
    assert int(plan.weights[0]) == s.batch * s.chunk * 2 * H
    assert int(plan.traffic.weights[0]) == s.batch * s.sequence * 2 * H
    assert int(plan.traffic.reads[0]) == 1
    assert any(note.startswith("embed is a lookup: it holds only the table rows one "
                               "chunk's tokens read (393.2 KB of its 78.8 MB table)")
               for note in plan.notes)


def test_an_embedding_without_its_row_count_is_noted() -> None:
    table = lookup_table(("embedding", 100, 4, 0), ("embedding", 100, 4, 0),
                         ("embedding", 100, 4, 10))
    plan = lf.plan(table, TOY, sequence=16, granularity=4)
    assert int(plan.weights[0]) == 200 and plan.lookups.layers.tolist() == [2]
    assert ("l0 (and 1 other) is an embedding that records no out_channels (its table's "
            "rows), so its whole table is counted; record them to count only the rows its "
            "tokens read") in plan.notes
    assert not any("records no out_channels" in note
                   for note in lf.plan(lookup_table(("embedding", 100, 4, 10)), TOY).notes)


def test_sweep_matches_plan_with_a_lookup() -> None:
    table = lookup_table(("embedding", 1000, 4, 50), ("decoder", 300, 6, 10),
                         ("decoder", 200, 3, 10))
    batches = [1, 2, 3, 5, 8, 13]
    sweep = lf.sweep(table, batches, TOY, sequence=64, granularity=4)
    for batch, chunk, groups in zip(batches, sweep.chunk.tolist(), sweep.groups.tolist()):
        plan = lf.plan(table, TOY, batch=batch, sequence=64, granularity=4)
        assert (plan.settings.chunk, plan.k) == (chunk, groups)
        assert int(plan.weights[0]) == held_by_lookup(2000, 50, batch * chunk)
        if chunk < 64:  # the next candidate chunk breaks the capacity
            larger = lf.working_set(table, batch=batch, chunk_tokens=chunk + 4)
            assert int(larger.totals().max()) > TOY.capacity


# -- oversize lookups ------------------------------------------------------------------------


@pytest.mark.parametrize("params, policy, message", [
    # 2000-byte rows: 4 tokens read 8000 bytes, more than the capacity
    (10**6, "error", r"layer 0 \('l0'\) needs 8320 bytes .*\(table rows read 8000 \+ "
                     r"activations 320 \+ buffers 0 for the smallest chunk, 4 tokens x batch 1\)"),
    # 20000-byte rows, 5156.25 at int4
    (10**7, "quantize", r"even with int4 weights: table rows read 20625 \+ activations 320 "
                        r"\+ buffers 0 "),
])
def test_an_oversize_lookup_is_named_with_its_rows(params: int, policy: str,
                                                    message: str) -> None:
    table = lookup_table(("embedding", params, 40, 1000))
    with pytest.raises(OversizeLayerError, match=message):
        lf.plan(table, TOY, sequence=64, granularity=4, on_oversize=policy)  # type: ignore[arg-type]


def test_a_tiled_lookup_streams_one_chunks_rows_and_reads_them_once() -> None:
    table = lookup_table(("embedding", 10**6, 40, 1000), ("decoder", 300, 6, 10))
    plan = lf.plan(table, TOY, sequence=64, granularity=4, on_oversize="tile")
    s, treated = plan.settings, plan.treated
    assert treated.layers.tolist() == [0] and treated.kind.tolist() == ["tile"]
    rows = s.chunk * 2000  # the chunk's rows, fewer than the table's 1000
    assert treated.weight_bytes.tolist() == treated.original_bytes.tolist() == [rows]
    assert int(plan.weights[0]) == TOY.capacity - s.chunk * 80  # the tile fills the room
    assert treated.tiles.tolist() == [-(-rows // int(plan.weights[0]))]
    assert treated.extra_bytes.tolist() == [0]
    assert int(plan.traffic.weights[0]) == 64 * 2000 and int(plan.traffic.reads[0]) == 1
    assert any("streamed in" in note for note in plan.notes)
    assert not any("tiled: the weights stream" in note for note in plan.notes)
    assert lf.Plan.from_dict(json.loads(plan.dumps())) == plan


def test_a_lookup_that_reads_its_whole_table_is_tiled_as_before() -> None:
    table = lookup_table(("embedding", 5000, 2, 10), ("decoder", 100, 2, 10))  # 1000-byte rows
    for batch in (1, 2, 4):
        plan = lf.plan(table, TOY, batch=batch, sequence=16, granularity=4, on_oversize="tile")
        assert plan.treated.kind.tolist() == ["tile"]
        rows = min(10000, batch * plan.settings.chunk * 1000)
        assert plan.treated.weight_bytes.tolist() == [rows]
        assert int(plan.traffic.weights[0]) == min(10000, batch * 16 * 1000)


def test_quantize_shrinks_a_lookups_rows() -> None:
    table = lookup_table(("embedding", 10**6, 40, 1000))  # 2000-byte rows, 1002 at int8
    plan = lf.plan(table, TOY, sequence=64, granularity=2, on_oversize="quantize")
    assert plan.treated.kind.tolist() == ["int8"]
    assert plan.lookups.table_bytes.tolist() == [10**6 + 2 * 1000]
    assert int(plan.weights[0]) == plan.settings.chunk * 1002
    again = lf.Plan.from_dict(json.loads(plan.dumps()))
    assert again == plan


# -- plan files ------------------------------------------------------------------------------


lookup_rows_strategy = st.tuples(st.sampled_from(["embedding", "decoder"]),
                                 st.integers(0, 2000), st.integers(0, 30), st.integers(0, 60))


@given(rows=st.lists(lookup_rows_strategy, min_size=1, max_size=6), batch=st.integers(1, 3),
       sequence=st.integers(1, 80), policy=st.sampled_from(["error", "tile", "quantize"]))
def test_plans_with_lookups_round_trip(rows: list[tuple[str, int, int, int]], batch: int,
                                       sequence: int, policy: str) -> None:
    try:
        plan = lf.plan(lookup_table(*rows), TOY, batch=batch, sequence=sequence,
                       granularity=4, on_oversize=policy)  # type: ignore[arg-type]
    except lf.InfeasibleError:
        return
    again = lf.Plan.from_dict(json.loads(plan.dumps()))
    assert again == plan and again.dumps() == plan.dumps()
    sizes = lf.working_set(lookup_table(*rows), batch=batch, chunk_tokens=plan.settings.chunk)
    untreated = np.setdiff1d(np.arange(plan.n), plan.treated.layers)
    assert (plan.weights[untreated] == sizes.weights[untreated]).all()
    for layer, rows_, table_bytes in zip(plan.lookups.layers.tolist(),
                                         plan.lookups.rows.tolist(),
                                         plan.lookups.table_bytes.tolist()):
        held = int(plan.weights[layer])
        treated = plan.treated
        if layer in treated.layers[treated.kind == "tile"]:  # held in tiles: all of them
            held = int(treated.weight_bytes[treated.layers.tolist().index(layer)])
        assert held == held_by_lookup(table_bytes, rows_, batch * plan.settings.chunk)
        assert int(plan.traffic.weights[layer]) == held_by_lookup(table_bytes, rows_,
                                                                  batch * sequence)


@given(rows=st.lists(lookup_rows_strategy, min_size=1, max_size=5),
       batches=st.lists(st.integers(1, 6), min_size=1, max_size=4),
       policy=st.sampled_from(["error", "tile", "quantize"]))
def test_sweep_and_plan_agree_with_lookups(rows: list[tuple[str, int, int, int]],
                                           batches: list[int], policy: str) -> None:
    table = lookup_table(*rows)
    sweep = lf.sweep(table, batches, TOY, sequence=48, granularity=4,
                     on_oversize=policy)  # type: ignore[arg-type]
    for batch, chunk, groups in zip(batches, sweep.chunk.tolist(), sweep.groups.tolist()):
        try:
            plan = lf.plan(table, TOY, batch=batch, sequence=48, granularity=4,
                           on_oversize=policy)  # type: ignore[arg-type]
        except lf.InfeasibleError:
            assert chunk == 0
            continue
        assert (plan.settings.chunk, plan.k) == (chunk, groups)
        assert (plan.partition.group_costs <= TOY.capacity).all()


def _lookup_document() -> dict[str, Any]:
    table = lookup_table(("embedding", 1000, 4, 50), ("decoder", 300, 6, 10))
    return json.loads(lf.plan(table, TOY, sequence=32, granularity=4).dumps())


@pytest.mark.parametrize("change, message", [
    (lambda d: d["lookups"].update(table_bytes=[2001]),
     "field 'layers.weights' [0] is 1280 but min(table_bytes, ceil(table_bytes x batch x "
     "chunk / rows)) of its lookup gives 1281"),
    (lambda d: d["lookups"].update(rows=[0]), "field 'lookups.rows' must hold integers >= 1"),
    (lambda d: d["lookups"].update(layers=[5]), "field 'lookups.layers' must rise strictly"),
    (lambda d: d["lookups"].update(rows=[50, 50]), "field 'lookups.rows' must have 1 entries"),
    (lambda d: d.pop("lookups"), "missing field 'lookups'"),
    (lambda d: d.update(version=1), "unknown field 'lookups'"),
])
def test_malformed_lookups_fail_clearly(change: Any, message: str) -> None:
    document = _lookup_document()
    change(document)
    with pytest.raises(lf.PlanFormatError, match=None) as err:
        lf.Plan.from_dict(document)
    assert message in str(err.value)


def _tiled_lookup_document() -> dict[str, Any]:
    table = lookup_table(("embedding", 10**6, 40, 1000), ("decoder", 300, 6, 10))
    plan = lf.plan(table, TOY, sequence=64, granularity=4, on_oversize="tile")
    return json.loads(plan.dumps())


@pytest.mark.parametrize("change, message", [
    (lambda d: d["treated"].update(extra_bytes=[2000]),
     "field 'treated.extra_bytes' [0] is 2000 but weight_bytes x (chunks - 1) for a tiled "
     "layer but a lookup gives 0"),
    (lambda d: d["lookups"].update(table_bytes=[2 * 10**6 + 1000]),
     "field 'treated.weight_bytes of a tiled lookup' [0] is"),
    (lambda d: d["lookups"].update(layers=[], rows=[], table_bytes=[]),
     "field 'treated.extra_bytes' [0] is 0 but weight_bytes x (chunks - 1)"),
])
def test_a_tampered_tiled_lookup_is_refused(change: Any, message: str) -> None:
    document = _tiled_lookup_document()
    lf.Plan.from_dict(copy.deepcopy(document))  # the untouched document loads
    change(document)
    with pytest.raises(lf.PlanFormatError) as err:
        lf.Plan.from_dict(document)
    assert message in str(err.value)


def test_a_version_1_plan_reads_as_a_plan_without_lookups() -> None:
    table = lookup_table(("decoder", 1000, 4, 50), ("decoder", 300, 6, 10))
    plan = lf.plan(table, TOY, sequence=64, granularity=4)
    document = json.loads(plan.dumps())
    assert document["version"] == 2 and document["lookups"]["layers"] == []
    old = copy.deepcopy(document)
    del old["lookups"]
    old["version"] = 1
    assert lf.Plan.from_dict(old) == plan


@pytest.mark.parametrize("layers, rows, table_bytes, message", [
    ([0, 2], [10], [100, 100], "differ in length"),
    ([2, 1], [10, 10], [1, 1], "must rise strictly"),
    ([-1], [10], [1], "must rise strictly from 0"),
    ([0], [0], [1], "rows must be >= 1"),
])
def test_lookups_refuse_inconsistent_columns(layers: list[int], rows: list[int],
                                             table_bytes: list[int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Lookups(np.array(layers), np.array(rows), np.array(table_bytes))


def test_lookups_are_read_only_columns() -> None:
    lookups = Lookups(np.array([3]), np.array([10]), np.array([100]))
    assert lookups.layers.dtype == np.int64 and not lookups.rows.flags.writeable
    weights = np.array([5, 5, 5, 5], dtype=np.int64)
    assert lookups.gathered(weights, 2).tolist() == [5, 5, 5, 20]
    assert lookups.whole(weights).tolist() == [5, 5, 5, 100]
    assert weights.tolist() == [5, 5, 5, 5]
