"""Working-set columns: weights by precision, activations, buffers, overflow."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from layerwise_fast.layers import MAX_COUNT, LayerTable
from layerwise_fast.units import INT64_MAX
from layerwise_fast.workingset import (DEFAULT_BUFFER_BYTES, WorkingSet, whole_working_set,
                                      working_set)

CONFIGS = Path(__file__).resolve().parents[1] / "layerwise_fast" / "examples" / "configs"
H, VOCAB, POSITIONS = 768, 50257, 1024  # GPT-2 small


def _gpt2(weight_dtype: str = "bf16") -> LayerTable:
    return LayerTable.from_transformer_config(CONFIGS / "gpt2.json", weight_dtype=weight_dtype)


def _one_row(**changes: Any) -> LayerTable:
    record: dict[str, Any] = {"name": "only", "kind": "decoder", "params": 0,
                              "weight_dtype": "bf16", "act_elems_per_token": 0}
    record.update(changes)
    return LayerTable.from_records([record])


def _single(**arguments: Any) -> WorkingSet:
    arguments.setdefault("batch", 1)
    arguments.setdefault("chunk_tokens", 1)
    table = arguments.pop("table")
    return working_set(table, **arguments)


# -- weights -----------------------------------------------------------------------------


def test_bf16_and_fp32_weights_by_hand() -> None:
    block = 12 * H**2 + 13 * H
    for dtype, width in (("bf16", 2), ("fp16", 2), ("fp32", 4)):
        weights = working_set(_gpt2(dtype), batch=1, chunk_tokens=1).weights.tolist()
        assert weights[0] == width * H  # a lookup: one token reads one row
        whole = whole_working_set(_gpt2(dtype), act_bytes=2, weight_dtype=None,
                                  default_buffers=None).weights
        assert int(whole[0]) == width * (VOCAB + POSITIONS) * H
        assert weights[1:13] == [width * block] * 12
        assert weights[13] == width * 2 * H
        assert weights[14] == width * VOCAB * H  # the tied head reads the embedding matrix


def test_int8_weights_by_hand() -> None:
    # Matrices 12h^2 at one byte, 13h vector params at two, one 2-byte scale for each of
    # the 9h output channels (qkv 3h, attention projection h, fc 4h, mlp projection h).
    for dtype in ("int8", "fp8"):
        weights = working_set(_gpt2(dtype), batch=1, chunk_tokens=1).weights.tolist()
        assert weights[1] == 12 * H**2 + 2 * 13 * H + 2 * 9 * H
        assert weights[0] == H + 2  # one row and its scale
        assert weights[13] == 2 * 2 * H
        assert weights[14] == VOCAB * H + 2 * VOCAB


def test_int4_weights_by_hand() -> None:
    weights = working_set(_gpt2("int4"), batch=1, chunk_tokens=1).weights.tolist()
    matrices = 12 * H**2
    assert weights[1] == matrices // 2 + 2 * 13 * H + 2 * (matrices // 128)
    assert weights[14] == math.ceil(VOCAB * H / 2) + 2 * math.ceil(VOCAB * H / 128)


def test_int4_rounds_half_bytes_and_groups_up() -> None:
    ws = _single(table=_one_row(params=3, weight_dtype="int4"))
    assert ws.weights.tolist() == [2 + 2 * 1]
    ws = _single(table=_one_row(params=258, vector_params=1, weight_dtype="int4"))
    assert ws.weights.tolist() == [129 + 2 * 1 + 2 * 3]


def test_weight_dtype_override() -> None:
    table = _gpt2("fp32")
    overridden = working_set(table, batch=1, chunk_tokens=1, weight_dtype="bf16")
    assert overridden.weights.tolist() == working_set(_gpt2(), batch=1,
                                                      chunk_tokens=1).weights.tolist()
    with pytest.raises(ValueError, match=r"^weight_dtype must be one of bf16, fp16, fp32, fp8, "
                                         r"int8, int4, got 'fp4'$"):
        working_set(table, batch=1, chunk_tokens=1, weight_dtype="fp4")


# -- activations -------------------------------------------------------------------------


def test_activations_by_hand() -> None:
    ws = working_set(_gpt2(), batch=8, chunk_tokens=64, act_bytes=2)
    assert ws.activations.tolist()[1] == 8 * 64 * 6 * H * 2
    assert ws.activations.tolist()[14] == 8 * 64 * (H + VOCAB) * 2


def test_seed_chunking_example() -> None:
    """Methodology 5.1: batch 128 x chunk 64 x hidden 16384 x 2 bytes.

    The methodology prints 16 MB for this product; the product is 268,435,456 bytes
    (256 MiB). A 16 MiB working set needs a chunk of 4 tokens at that batch and width.
    """
    table = _one_row(act_elems_per_token=16384)
    assert _single(table=table, batch=128, chunk_tokens=64).activations.tolist() == [
        268_435_456]
    assert _single(table=table, batch=128, chunk_tokens=4).activations.tolist() == [16 * 2**20]


def test_ratio_is_exact_and_rounds_up() -> None:
    table = _one_row(act_elems_per_token=1)
    assert _single(table=table, batch=10, act_bytes=1,
                   working_set_ratio=0.1).activations.tolist() == [1]
    assert _single(table=table, batch=1, act_bytes=1,
                   working_set_ratio="1/3").activations.tolist() == [1]
    assert _single(table=table, batch=3, act_bytes=2,
                   working_set_ratio=Fraction(1, 2)).activations.tolist() == [3]
    assert _single(table=table, batch=7, working_set_ratio=2).activations.tolist() == [28]


@given(st.integers(1, 2**20), st.integers(1, 2**20), st.integers(0, 2**20),
       st.integers(1, 8), st.fractions(min_value=Fraction(1, 10**6), max_value=4,
                                       max_denominator=10**6))
def test_activations_match_the_exact_formula(batch: int, chunk: int, elems: int,
                                             act_bytes: int, ratio: Fraction) -> None:
    ws = _single(table=_one_row(act_elems_per_token=elems), batch=batch, chunk_tokens=chunk,
                 act_bytes=act_bytes, working_set_ratio=ratio)
    exact = Fraction(batch * chunk * elems * act_bytes) * ratio
    assert ws.activations.tolist() == [math.ceil(exact)]


# -- buffers -----------------------------------------------------------------------------


def test_buffers_from_defaults_table_and_overrides() -> None:
    ws = working_set(_gpt2(), batch=1, chunk_tokens=1)
    assert ws.buffers.tolist() == [0] + [4_000_000] * 12 + [0, 2_000_000]
    sub = LayerTable.from_transformer_config(CONFIGS / "gpt2.json", granularity="sublayer")
    assert working_set(sub, batch=1, chunk_tokens=1).buffers.tolist()[1:3] == [2_000_000] * 2
    overridden = working_set(_gpt2(), batch=1, chunk_tokens=1,
                             default_buffers={**DEFAULT_BUFFER_BYTES, "decoder": "3 MiB"})
    assert overridden.buffers.tolist()[1] == 3 * 2**20
    recorded = _single(table=_one_row(buffer_bytes=123))
    assert recorded.buffers.tolist() == [123]


def test_buffer_errors() -> None:
    table = _one_row(kind="conv")
    with pytest.raises(ValueError, match=r"^layer 0 \('only'\) of kind 'conv' records no "
                                         r"buffer_bytes, and no default is set for that kind "
                                         r"\(defaults: attention, decoder, embedding, head, mlp, "
                                         r"moe, norm\): give the row its buffer_bytes in the "
                                         r"layer table, or, in Python, "
                                         r"default_buffers=\{'conv': bytes\}$"):
        _single(table=table)
    with pytest.raises(ValueError, match=r"\(defaults: none\)"):
        _single(table=table, default_buffers={})
    with pytest.raises(ValueError, match=r"^default_buffers\['conv'\] must not be negative, "
                                         r"got -1MB$"):
        _single(table=table, default_buffers={"conv": "-1MB"})
    with pytest.raises(TypeError, match=r"^default_buffers must be a mapping of kind to bytes, "
                                        r"got list$"):
        _single(table=table, default_buffers=[1])


# -- arguments and overflow --------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ({"batch": 0}, ValueError, r"^batch must be positive, got 0$"),
        ({"chunk_tokens": -4}, ValueError, r"^chunk_tokens must be positive, got -4$"),
        ({"act_bytes": True}, TypeError, r"^act_bytes must be an int, got bool True$"),
        ({"batch": 1.0}, TypeError, r"^batch must be an int, got float 1\.0$"),
        ({"working_set_ratio": 0}, ValueError, r"^working_set_ratio must be greater than 0"),
        ({"working_set_ratio": "half"}, ValueError, r"^working_set_ratio: cannot read 'half'"),
    ],
)
def test_argument_errors(arguments: dict[str, Any], error: type[Exception],
                         message: str) -> None:
    with pytest.raises(error, match=message):
        _single(table=_one_row(), **arguments)


def test_table_type_error() -> None:
    with pytest.raises(TypeError, match=r"^table must be a LayerTable, got list$"):
        working_set([], batch=1, chunk_tokens=1)  # type: ignore[arg-type]


def test_overflow_names_the_layer() -> None:
    big = _one_row(name="huge", params=MAX_COUNT)
    with pytest.raises(OverflowError, match=r"^layer 0 \('huge'\): weight bytes "
                                            r"9223372036854775808 exceed the int64 range "
                                            r"\(at most 9223372036854775807\)$"):
        _single(table=big)
    assert _single(table=big, weight_dtype="int8").weights.tolist() == [MAX_COUNT]
    wide = _one_row(name="wide", act_elems_per_token=2**40)
    with pytest.raises(OverflowError, match=r"^layer 0 \('wide'\): activation bytes "):
        _single(table=wide, batch=2**12, chunk_tokens=2**10)
    both = _one_row(name="both", params=2**61, act_elems_per_token=2**62, buffer_bytes=2)
    with pytest.raises(OverflowError, match=r"^layer 0 \('both'\): working-set bytes "
                                            r"9223372036854775810 exceed the int64 range"):
        _single(table=both, act_bytes=1)


# -- the WorkingSet container ------------------------------------------------------------


def test_columns_for_the_partitioner() -> None:
    ws = working_set(_gpt2(), batch=2, chunk_tokens=16)
    columns = ws.as_columns()
    assert list(columns) == ["weights", "activations", "buffers"]
    assert columns["weights"] is ws.weights
    for array in columns.values():
        assert array.dtype == np.int64 and not array.flags.writeable and len(array) == len(ws)
    assert ws.totals().tolist() == [w + a + b for w, a, b in zip(
        ws.weights.tolist(), ws.activations.tolist(), ws.buffers.tolist())]
    assert ws.names.tolist()[-1] == "lm_head"


def test_working_set_container_checks() -> None:
    names = np.array(["a", "b"], dtype=object)
    ok = np.array([1, 2], dtype=np.int64)
    mine = ok.copy()
    ws = WorkingSet(names, mine, ok, ok)
    assert mine.flags.writeable and not ws.weights.flags.writeable
    with pytest.raises(TypeError, match=r"^WorkingSet\.activations must be an int64 numpy "
                                        r"array$"):
        WorkingSet(names, ok, ok.astype(np.int32), ok)
    with pytest.raises(ValueError, match=r"^WorkingSet\.buffers has shape \(1,\), expected "
                                         r"\(2,\)$"):
        WorkingSet(names, ok, ok, ok[:1])
    with pytest.raises(ValueError, match=r"^layer 1 \('b'\): weights must not be negative, "
                                         r"got -3$"):
        WorkingSet(names, np.array([1, -3], dtype=np.int64), ok, ok)
    with pytest.raises(ValueError, match=r"^WorkingSet\.names must be one-dimensional, "
                                         r"got shape \(1, 2\)$"):
        WorkingSet(names.reshape(1, 2), ok, ok, ok)
    top = np.array([INT64_MAX, 0], dtype=np.int64)
    with pytest.raises(OverflowError, match=r"^layer 0 \('a'\): working-set bytes "
                                            r"9223372036854775809 exceed"):
        WorkingSet(names, top, ok, ok)


def test_greedy_accepts_the_columns() -> None:
    import layerwise_fast as lf

    ws = working_set(_gpt2("int4"), batch=1, chunk_tokens=16)
    capacity = 40_000_000
    partition = lf.greedy(ws.as_columns(), capacity=capacity)
    totals = ws.totals().tolist()
    cuts = partition.boundaries.tolist()
    groups = [sum(totals[start:stop]) for start, stop in zip(cuts, cuts[1:])]
    assert cuts[0] == 0 and cuts[-1] == len(ws)
    assert max(groups) <= capacity
    assert partition.k == len(groups)


_DTYPES = ("bf16", "fp16", "fp32", "fp8", "int8", "int4")


@st.composite
def _bounded_table(draw: st.DrawFn) -> LayerTable:
    """Tables whose counts reach past 2**59, so that both the column-wise int64 path and
    the row-by-row path of :func:`working_set` are taken."""
    count = st.integers(min_value=0, max_value=2**60) | st.integers(min_value=0,
                                                                   max_value=10**9)
    rows = []
    for index in range(draw(st.integers(min_value=0, max_value=6))):
        params = draw(count)
        rows.append({"name": f"l{index}", "kind": draw(st.sampled_from(["decoder", "norm"])),
                     "params": params, "weight_dtype": draw(st.sampled_from(_DTYPES)),
                     "act_elems_per_token": draw(count),
                     "buffer_bytes": draw(st.none() | count),
                     "out_channels": draw(count), "tied_params": draw(count),
                     "vector_params": draw(st.integers(min_value=0, max_value=params))})
    return LayerTable.from_records(rows)


@given(_bounded_table(), st.integers(min_value=1, max_value=2**20),
       st.sampled_from(["1", "1/3", "0.7", "5", "1e-19", f"{2**64 + 1}/{2**65 + 3}"]),
       st.sampled_from([None, *_DTYPES]))
def test_column_wise_and_row_by_row_paths_agree(table: LayerTable, chunk: int, ratio: str,
                                                 dtype: str | None) -> None:
    arguments: dict[str, Any] = {"batch": 3, "chunk_tokens": chunk,
                                 "working_set_ratio": ratio, "weight_dtype": dtype}
    try:
        fast = working_set(table, **arguments)
    except OverflowError as error:
        fast_error: OverflowError | None = error
    else:
        fast_error = None
    exact = _exact_sizes(table, chunk * 3 * 2 * Fraction(ratio), dtype)
    if fast_error is not None:
        assert any(max(row) > INT64_MAX or sum(row) > INT64_MAX for row in exact)
        return
    assert [list(row) for row in zip(fast.weights.tolist(), fast.activations.tolist(),
                                     fast.buffers.tolist())] == exact


def _exact_sizes(table: LayerTable, per_element: Fraction,
                 dtype: str | None) -> list[list[int]]:
    """Weights, activations and buffers per row from the module's formulas, in Python ints."""
    sizes = []
    for row in table.to_records():
        precision = dtype or row["weight_dtype"]
        total = row["params"] + row["tied_params"]
        matrix, vectors = total - row["vector_params"], row["vector_params"]
        if precision in ("bf16", "fp16", "fp32"):
            weights = (4 if precision == "fp32" else 2) * total
        elif precision == "int4":
            weights = -(-matrix // 2) + 2 * vectors + 2 * -(-matrix // 128)
        else:
            weights = matrix + 2 * vectors + 2 * row["out_channels"]
        buffers = row["buffer_bytes"]
        if buffers is None:
            buffers = DEFAULT_BUFFER_BYTES[row["kind"]]
        sizes.append([weights, math.ceil(row["act_elems_per_token"] * per_element), buffers])
    return sizes
