"""LayerTable: transformer builders against hand counts, validation, JSON round trips."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from layerwise_fast.layers import (
    BUFFER_UNKNOWN,
    COLUMNS,
    LAYERS_SCHEMA,
    MAX_COUNT,
    WEIGHT_DTYPES,
    LayerTable,
    LayerTableError,
    _table_from_document,
)
from layerwise_fast.planner import load_model

CONFIGS = Path(__file__).resolve().parents[1] / "layerwise_fast" / "examples" / "configs"

GPT2_TOTAL = 124_439_808
LLAMA2_7B_TOTAL = 6_738_415_616
MISTRAL_7B_TOTAL = 7_241_732_096
MIXTRAL_8X7B_TOTAL = 46_702_792_704


def _config(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((CONFIGS / name).read_text(encoding="utf-8"))
    return document


def _rows(table: LayerTable) -> dict[str, dict[str, Any]]:
    return {record["name"]: record for record in table.to_records()}


# -- builders against hand counts ----------------------------------------------------


def test_gpt2_by_hand() -> None:
    h, vocab, positions, layers = 768, 50257, 1024, 12
    table = LayerTable.from_transformer_config(CONFIGS / "gpt2.json")
    rows = _rows(table)
    assert list(rows) == ["embed", *(f"layers.{i}" for i in range(layers)),
                          "final_norm", "lm_head"]
    # c_attn 3h^2 + 3h, c_proj h^2 + h, c_fc 4h^2 + 4h, mlp c_proj 4h^2 + h, two LayerNorms 4h.
    block = 12 * h**2 + 13 * h
    assert block == 7_087_872
    assert rows["layers.0"]["params"] == block
    assert rows["layers.0"]["vector_params"] == 13 * h
    assert rows["layers.0"]["out_channels"] == 3 * h + h + 4 * h + h
    assert rows["layers.0"]["flops_per_token"] == 2 * 12 * h**2
    assert rows["layers.0"]["act_elems_per_token"] == max(2 * h + 3 * h, 2 * h + 4 * h)
    assert rows["embed"]["params"] == vocab * h + positions * h
    assert rows["embed"]["out_channels"] == vocab + positions
    assert rows["final_norm"]["params"] == rows["final_norm"]["vector_params"] == 2 * h
    head = rows["lm_head"]
    assert (head["params"], head["tied_params"]) == (0, vocab * h)
    assert head["act_elems_per_token"] == h + vocab
    assert head["flops_per_token"] == 2 * vocab * h
    assert vocab * h + positions * h + layers * block + 2 * h == GPT2_TOTAL
    assert table.total_params == GPT2_TOTAL


def test_gpt2_sublayers_by_hand() -> None:
    h = 768
    table = LayerTable.from_transformer_config(CONFIGS / "gpt2.json", granularity="sublayer")
    rows = _rows(table)
    assert len(table) == 2 * 12 + 3
    assert rows["layers.3.attn"]["params"] == 4 * h**2 + 4 * h + 2 * h
    assert rows["layers.3.attn"]["kind"] == "attention"
    assert rows["layers.3.mlp"]["params"] == 8 * h**2 + 5 * h + 2 * h
    assert rows["layers.3.mlp"]["kind"] == "mlp"
    assert table.total_params == GPT2_TOTAL


def test_llama2_7b_by_hand() -> None:
    h, inner, vocab, layers = 4096, 11008, 32000, 32
    table = LayerTable.from_transformer_config(CONFIGS / "llama-2-7b.json")
    rows = _rows(table)
    # q, k, v, o: 4h^2; gate, up, down: 3 h I; two RMSNorm weight vectors: 2h.
    block = 4 * h**2 + 3 * h * inner + 2 * h
    assert rows["layers.31"]["params"] == block
    assert rows["layers.31"]["vector_params"] == 2 * h
    assert rows["layers.31"]["act_elems_per_token"] == max(2 * h + 3 * h, 2 * h + 2 * inner)
    assert rows["embed"]["params"] == vocab * h
    assert (rows["lm_head"]["params"], rows["lm_head"]["tied_params"]) == (vocab * h, 0)
    assert rows["final_norm"]["params"] == h
    assert 2 * vocab * h + layers * block + h == LLAMA2_7B_TOTAL
    assert table.total_params == LLAMA2_7B_TOTAL


def test_mistral_7b_grouped_query_attention_by_hand() -> None:
    h, inner, vocab, layers, kv = 4096, 14336, 32000, 32, 8 * 128
    table = LayerTable.from_transformer_config(CONFIGS / "mistral-7b.json",
                                               granularity="sublayer")
    rows = _rows(table)
    assert rows["layers.0.attn"]["params"] == 2 * h * h + 2 * h * kv + h
    assert rows["layers.0.attn"]["out_channels"] == h + 2 * kv + h
    assert rows["layers.0.mlp"]["params"] == 3 * h * inner + h
    assert 2 * vocab * h + layers * (2 * h * h + 2 * h * kv + 3 * h * inner + 2 * h) + h == (
        MISTRAL_7B_TOTAL)
    assert table.total_params == MISTRAL_7B_TOTAL


def test_mixtral_shaped_total_matches_published() -> None:
    h, inner, experts, kv = 4096, 14336, 8, 8 * 128
    table = LayerTable.from_transformer_config(CONFIGS / "mixtral-8x7b-shaped.json")
    block = 2 * h * h + 2 * h * kv + experts * 3 * h * inner + h * experts + 2 * h
    assert _rows(table)["layers.0"]["params"] == block
    assert table.total_params == MIXTRAL_8X7B_TOTAL


def test_tiny_moe_counts_all_experts_as_params_and_active_ones_per_token() -> None:
    h, inner, vocab, experts, active, kv = 256, 512, 1000, 4, 2, 2 * 32
    table = LayerTable.from_transformer_config(CONFIGS / "tiny-moe-synthetic.json",
                                               granularity="sublayer")
    moe = _rows(table)["layers.2.mlp"]
    assert moe["kind"] == "moe"
    assert moe["params"] == experts * 3 * h * inner + h * experts + h
    assert moe["flops_per_token"] == 2 * (h * experts + active * 3 * h * inner)
    assert moe["act_elems_per_token"] == 2 * h + experts + active * 2 * inner
    assert moe["out_channels"] == experts * (2 * inner + h) + experts
    attention = 2 * h * h + 2 * h * kv + h
    assert table.total_params == 2 * vocab * h + 4 * (attention + moe["params"]) + h
    assert table.total_params == 7_465_216


@pytest.mark.parametrize("name", ["gpt2.json", "llama-2-7b.json", "mistral-7b.json",
                                  "mixtral-8x7b-shaped.json", "tiny-moe-synthetic.json"])
def test_granularities_agree(name: str) -> None:
    layer = LayerTable.from_transformer_config(CONFIGS / name)
    sublayer = LayerTable.from_transformer_config(CONFIGS / name, granularity="sublayer")
    assert len(sublayer) == 2 * len(layer) - 3
    for column in ("params", "flops_per_token", "out_channels", "vector_params", "tied_params"):
        assert int(getattr(layer, column).sum()) == int(getattr(sublayer, column).sum())
    assert (layer.buffer_bytes == BUFFER_UNKNOWN).all()


def test_weight_dtype_argument() -> None:
    table = LayerTable.from_transformer_config(_config("gpt2.json"), weight_dtype="int4")
    assert set(table.weight_dtype.tolist()) == {"int4"}
    with pytest.raises(ValueError, match=r"^weight_dtype must be one of \('bf16', 'fp16', "
                                         r"'fp32', 'fp8', 'int8', 'int4'\), got 'int3'$"):
        LayerTable.from_transformer_config(_config("gpt2.json"), weight_dtype="int3")
    with pytest.raises(ValueError, match=r"^granularity must be one of \('layer', 'sublayer'\), "
                                         r"got 'block'$"):
        LayerTable.from_transformer_config(_config("gpt2.json"), granularity="block")


def test_config_variants() -> None:
    gpt2 = _config("gpt2.json")
    untied = LayerTable.from_transformer_config({**gpt2, "tie_word_embeddings": False})
    assert untied.total_params == GPT2_TOTAL + 50257 * 768
    llama = _config("llama-2-7b.json")
    tied = LayerTable.from_transformer_config({**llama, "tie_word_embeddings": True})
    assert tied.total_params == LLAMA2_7B_TOTAL - 32000 * 4096
    biased = LayerTable.from_transformer_config({**llama, "attention_bias": True,
                                                 "mlp_bias": True})
    assert biased.total_params == LLAMA2_7B_TOTAL + 32 * (4 * 4096 + 2 * 11008 + 4096)
    wide_heads = LayerTable.from_transformer_config({**llama, "head_dim": 256,
                                                     "num_attention_heads": 16,
                                                     "num_key_value_heads": 16})
    assert _rows(wide_heads)["layers.0"]["params"] == _rows(
        LayerTable.from_transformer_config(llama))["layers.0"]["params"]
    inferred = {key: value for key, value in gpt2.items() if key != "model_type"}
    assert LayerTable.from_transformer_config(inferred).total_params == GPT2_TOTAL
    assert LayerTable.from_transformer_config(
        {k: v for k, v in llama.items() if k != "model_type"}).total_params == LLAMA2_7B_TOTAL
    assert LayerTable.from_transformer_config(
        {**gpt2, "n_inner": 4 * 768}).total_params == GPT2_TOTAL


@pytest.mark.parametrize(
    ("base", "change", "message"),
    [
        ("gpt2.json", {"model_type": "bert"}, r"^config: unsupported model_type 'bert' "
                                              r"\(supported: gpt2, llama, mistral, mixtral\)$"),
        ("gpt2.json", {"n_layer": None}, r"^config: missing field 'n_layer'$"),
        ("gpt2.json", {"model_type": None, "n_head": None},
         r"^config: missing field 'n_head' \(the config names no model_type, so it was read "
         r"as gpt2's; a layer table names its 'schema'\)$"),
        ("llama-2-7b.json", {"model_type": None, "hidden_size": None},
         r"^config: missing field 'hidden_size' \(the config names no model_type, so it was "
         r"read as llama's; a layer table names its 'schema'\)$"),
        ("gpt2.json", {"n_embd": "768"}, r"^config: field 'n_embd' must be an integer, "
                                         r"got string '768'$"),
        ("gpt2.json", {"n_head": True}, r"^config: field 'n_head' must be an integer, "
                                        r"got boolean True$"),
        ("gpt2.json", {"n_embd": 0}, r"^config: field 'n_embd' must be in \[1, 2\*\*62\], "
                                     r"got 0$"),
        ("gpt2.json", {"n_head": 7}, r"^config: n_embd \(768\) is not a multiple of n_head "
                                     r"\(7\)$"),
        ("gpt2.json", {"tie_word_embeddings": "yes"}, r"^config: field 'tie_word_embeddings' "
                                                      r"must be true or false, got string"),
        ("llama-2-7b.json", {"num_key_value_heads": 5}, r"^config: num_attention_heads \(32\) "
                                                        r"is not a multiple of "
                                                        r"num_key_value_heads \(5\)$"),
        ("llama-2-7b.json", {"num_attention_heads": 3, "num_key_value_heads": 3},
         r"^config: hidden_size \(4096\) is not a multiple of num_attention_heads"),
        ("llama-2-7b.json", {"num_local_experts": 8}, r"^config: missing field "
                                                      r"'num_experts_per_tok' \(needed for a "
                                                      r"mixture-of-experts model\)$"),
        ("mixtral-8x7b-shaped.json", {"num_local_experts": None},
         r"^config: missing field 'num_local_experts'"),
        ("mixtral-8x7b-shaped.json", {"num_experts_per_tok": 9},
         r"^config: num_experts_per_tok \(9\) exceeds num_local_experts \(8\)$"),
        ("mistral-7b.json", {"intermediate_size": 1.5e4},
         r"^config: field 'intermediate_size' must be an integer, got number 15000\.0$"),
    ],
)
def test_config_errors(base: str, change: dict[str, Any], message: str) -> None:
    config = {**_config(base), **change}
    with pytest.raises(LayerTableError, match=message):
        LayerTable.from_transformer_config(config)


def test_config_file_errors(tmp_path: Path) -> None:
    with pytest.raises(LayerTableError, match=r"^config file '.*nope\.json' does not exist$"):
        LayerTable.from_transformer_config(tmp_path / "nope.json")
    (tmp_path / "list.json").write_text("[]", encoding="utf-8")
    with pytest.raises(LayerTableError, match=r"^config file '.*list\.json': the top level must "
                                              r"be a JSON object, got array$"):
        LayerTable.from_transformer_config(str(tmp_path / "list.json"))
    with pytest.raises(TypeError, match=r"^config must be a mapping or a path, got int$"):
        LayerTable.from_transformer_config(7)  # type: ignore[arg-type]
    huge = {**_config("gpt2.json"), "n_embd": 2**40, "n_head": 1}
    with pytest.raises(LayerTableError, match=r"^config: row 1 \('layers\.0'\), field "
                                              r"'params': \d+ exceeds 2\*\*62"):
        LayerTable.from_transformer_config(huge)


def test_bundled_configs_are_labelled() -> None:
    for name in ("mixtral-8x7b-shaped.json", "tiny-moe-synthetic.json"):
        assert _config(name)["_note"].startswith("Synthetic example")
    for name in ("gpt2.json", "llama-2-7b.json", "mistral-7b.json"):
        assert "_note" not in _config(name)


# -- construction from columns ---------------------------------------------------------


def _columns(**changes: Any) -> dict[str, Any]:
    columns: dict[str, Any] = {
        "name": ["a", "b", "c"],
        "kind": "decoder",
        "params": np.array([10, 20, 30]),
        "weight_dtype": ["bf16", "int8", "int4"],
        "act_elems_per_token": [1, 2, 3],
    }
    columns.update(changes)
    return columns


def test_columns_are_read_only_copies() -> None:
    params = np.array([10, 20, 30], dtype=np.int32)
    table = LayerTable(**_columns(params=params, buffer_bytes=[-1, 0, 5]))
    assert table.params.dtype == np.int64
    assert params.flags.writeable
    params[0] = 99
    assert table.params[0] == 10
    for column in COLUMNS:
        array = getattr(table, column)
        assert not array.flags.writeable
        assert len(array) == 3
    with pytest.raises(ValueError, match="read-only"):
        table.params[0] = 1
    assert table.kind.tolist() == ["decoder"] * 3
    assert table.flops_per_token.tolist() == [0, 0, 0]
    assert table.to_records()[0]["buffer_bytes"] is None
    assert table.total_params == 60
    assert repr(table) == "<LayerTable: 3 rows, 60 params>"


def test_unicode_array_names_and_empty_table() -> None:
    table = LayerTable(**_columns(name=np.array(["x", "y", "z"])))
    assert table.name.dtype == object
    assert table.name.tolist() == ["x", "y", "z"]
    empty = LayerTable(name=[], kind=[], params=[], weight_dtype=[], act_elems_per_token=[])
    assert len(empty) == 0 and empty.total_params == 0
    assert empty.params.dtype == np.int64


def test_an_object_column_of_ints_in_range_is_read() -> None:
    table = LayerTable(name=["a", "b"], kind=["x", "x"], params=np.array([1, 2], dtype=object),
                       weight_dtype=["bf16", "bf16"], act_elems_per_token=[1, np.int32(2)])
    assert table.params.dtype == np.int64 and table.params.tolist() == [1, 2]
    assert table.act_elems_per_token.tolist() == [1, 2]


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"kind": ["x"]}, LayerTableError, r"^LayerTable: column 'kind' has 1 rows, column "
                                           r"'name' has 3$"),
        ({"params": [1, 2]}, LayerTableError, r"^LayerTable: column 'params' has 2 rows"),
        ({"params": [1.0, 2.0, 3.0]}, TypeError, r"^LayerTable: column 'params' must hold "
                                                 r"integers, got dtype float64$"),
        ({"params": [True, False, True]}, TypeError, r"must hold integers, got dtype bool$"),
        ({"params": np.ones((3, 1), dtype=np.int64)}, TypeError, r"must be one-dimensional, "
                                                                 r"got shape \(3, 1\)$"),
        ({"params": [1, -5, 3]}, LayerTableError, r"^LayerTable: row 1 \('b'\), field "
                                                  r"'params': must be >= 0, got -5$"),
        ({"params": [1, 2, MAX_COUNT + 1]}, LayerTableError, r"^LayerTable: row 2 \('c'\), field "
                                                             r"'params': 4611686018427387905 "
                                                             r"exceeds 2\*\*62"),
        ({"params": [1, 2**64, 3]}, LayerTableError,  # an object column of Python ints
         r"^LayerTable: row 1 \('b'\), field 'params': 18446744073709551616 exceeds 2\*\*62"),
        ({"params": [1, 2.5, 2**64]}, TypeError, r"^LayerTable: row 1 \('b'\), field 'params': "
                                                 r"must be an integer, got float 2\.5$"),
        ({"params": np.array([1, 2, 2**64 - 1], dtype=np.uint64)}, LayerTableError,
         r"^LayerTable: row 2 \('c'\), field 'params': 18446744073709551615 exceeds"),
        ({"buffer_bytes": [0, -2, 0]}, LayerTableError, r"^LayerTable: row 1 \('b'\), field "
                                                        r"'buffer_bytes': must be >= 0 \(or "
                                                        r"null for unknown\), got -2$"),
        ({"weight_dtype": "int3"}, LayerTableError,
         r"^LayerTable: row 0 \('a'\), field 'weight_dtype': unknown precision 'int3' "
         r"\(known: bf16, fp16, fp32, fp8, int8, int4\)$"),
        ({"name": ["a", "", "c"]}, LayerTableError, r"^LayerTable: row 1, field 'name': must "
                                                    r"not be empty$"),
        ({"name": ["a", 2, "c"]}, LayerTableError, r"^LayerTable: row 1, field 'name': must be "
                                                   r"a string, got integer 2$"),
        ({"name": ["a", "\ud800", "c"]}, LayerTableError, r"^LayerTable: row 1, field 'name': "
                                                          r"'\\ud800' cannot be encoded as "
                                                          r"UTF-8$"),
        ({"name": "abc"}, TypeError, r"^LayerTable: column 'name' must be a sequence of str, "
                                     r"got a single str$"),
        ({"kind": 5}, TypeError, r"^LayerTable: column 'kind' must be a sequence of str, "
                                 r"got int$"),
        ({"vector_params": [0, 21, 0]}, LayerTableError,
         r"^LayerTable: row 1 \('b'\): vector_params \(21\) exceeds params \(20\)$"),
    ],
)
def test_constructor_rejects(changes: dict[str, Any], error: type[Exception],
                             message: str) -> None:
    with pytest.raises(error, match=message):
        LayerTable(**_columns(**changes))


# -- records and JSON ------------------------------------------------------------------

_counts = st.integers(min_value=0, max_value=MAX_COUNT)
_text = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=12)


@st.composite
def _record(draw: st.DrawFn) -> dict[str, Any]:
    params = draw(_counts)
    return {
        "name": draw(_text),
        "kind": draw(_text),
        "params": params,
        "weight_dtype": draw(st.sampled_from(WEIGHT_DTYPES)),
        "act_elems_per_token": draw(_counts),
        "buffer_bytes": draw(st.none() | _counts),
        "flops_per_token": draw(_counts),
        "out_channels": draw(_counts),
        "vector_params": draw(st.integers(min_value=0, max_value=params)),
        "tied_params": draw(_counts),
    }


@settings(max_examples=60, deadline=None)
@given(st.lists(_record(), max_size=8))
def test_json_round_trip(records: list[dict[str, Any]]) -> None:
    table = LayerTable.from_records(records)
    assert table.to_records() == records
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "layers.json"
        table.to_json(path)
        document = json.loads(path.read_text(encoding="utf-8"))
        restored = LayerTable.from_json(path)
        table.to_json(path, columnar=True)
        columnar = json.loads(path.read_text(encoding="utf-8"))
        from_columns = LayerTable.from_json(path)
    assert (document["schema"], document["version"]) == (LAYERS_SCHEMA, 1)
    assert (columnar["schema"], columnar["version"]) == (LAYERS_SCHEMA, 2)
    assert columnar["columns"] == {field: [record[field] for record in records]
                                   for field in COLUMNS}
    assert restored == table == from_columns
    assert from_columns.to_records() == records
    assert hash(restored) == hash(table)
    assert restored.to_records() == records


@settings(max_examples=25, deadline=None)
@given(st.lists(_record(), min_size=1, max_size=3), st.data())
def test_truncated_json_is_reported(records: list[dict[str, Any]], data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "layers.json"
        LayerTable.from_records(records).to_json(path)
        raw = path.read_bytes().rstrip()
        cut = data.draw(st.integers(min_value=1, max_value=len(raw) - 1))
        path.write_bytes(raw[:cut])
        with pytest.raises(LayerTableError, match=r"^layers file '.*layers\.json' "
                                                  r"ends early \(truncated\?\)"):
            LayerTable.from_json(path)


_EDITS = st.sampled_from(["none", "delete", "add", "null", "text", "float", "bool", "huge", "negative", "nested"])


def _edited_row(row: dict[str, Any], edit: str, field: str) -> dict[str, Any]:
    """``row`` with one edit to ``field``: most make the file invalid."""
    row = dict(row)
    replacements = {"null": None, "text": "7", "float": 1.5, "bool": True, "huge": 2**63,
                    "negative": -1, "nested": [1]}
    if edit == "delete":
        row.pop(field, None)
    elif edit == "add":
        row["extra_" + field] = 1
    elif edit in replacements:
        row[field] = replacements[edit]
    return dict(reversed(row.items())) if field == "kind" else row  # key order must not matter


def _read_by_json_module(path: Path) -> LayerTable | str:
    label = f"layers file {str(path)!r}"
    try:
        return _table_from_document(json.loads(path.read_text(encoding="utf-8")), label)
    except LayerTableError as error:
        return str(error)


@settings(max_examples=300, deadline=None)
@given(st.lists(_record(), min_size=1, max_size=6), st.data())
def test_rows_read_as_columns_agree_with_the_json_module(records: list[dict[str, Any]],
                                                         data: st.DataObject) -> None:
    """Row files, valid or edited (each row alike, or each its own way): the table, or
    the message, that reading every row object with the json module gives."""
    fields = st.sampled_from(COLUMNS)
    if data.draw(st.booleans()):  # the same edit in every row: the rows stay columns
        edit, field = data.draw(_EDITS), data.draw(fields)
        rows = [_edited_row(r, edit, field) for r in records]
    else:
        rows = [_edited_row(r, data.draw(_EDITS), data.draw(fields)) for r in records]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "layers.json"
        path.write_text(json.dumps({"schema": LAYERS_SCHEMA, "version": 1, "layers": rows}), encoding="utf-8")
        expected = _read_by_json_module(path)
        try:
            got: LayerTable | str = LayerTable.from_json(path)
        except LayerTableError as error:
            got = str(error)
    assert got == expected


_ROW = {"name": "a", "kind": "mlp", "params": 1, "weight_dtype": "bf16", "act_elems_per_token": 1}


@pytest.mark.parametrize(("text", "message"), [
    # The rows, then an escaped second "layers" holding columns: which is meant is unclear.
    ('{"schema": "layerwise_fast.layers", "version": 1, "layers": [ROW], "lay\\u0065rs": '
     '{"name": ["x", "y", "z"], "kind": ["k"], "params": [5, 6, 7], "weight_dtype": ["fp16"], '
     '"act_elems_per_token": [1, 2]}}',
     r"the key 'layers' appears twice in one object; which value is meant is unclear$"),
    ('{"schema": "layerwise_fast.layers", "version": 1, "layers": [{"name": "a", "kind": "mlp", '
     '"params": 1, "params": 2, "weight_dtype": "bf16", "act_elems_per_token": 1}]}',
     r"the key 'params' appears twice in one object"),
    # An array where a string belongs: compared as the json module's list.
    ('{"schema": [1, 2], "version": 1, "layers": [ROW]}',
     r"field 'schema' must be 'layerwise_fast\.layers', got \[1, 2\]$"),
    ('{"schema": [1, 2], "version": 1, "layers": []}',
     r"field 'schema' must be 'layerwise_fast\.layers', got \[1, 2\]$"),
])
def test_row_files_that_only_the_json_module_reads_right(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "layers.json"
    path.write_text(text.replace("ROW", json.dumps(_ROW)), encoding="utf-8")
    with pytest.raises(LayerTableError, match=r"^layers file '.*layers\.json': " + message):
        LayerTable.from_json(path)


def test_records_defaults_and_equality() -> None:
    table = LayerTable.from_records([{"name": "x", "kind": "mlp", "params": 4,
                                      "weight_dtype": "fp16", "act_elems_per_token": 8}])
    record = table.to_records()[0]
    assert record["buffer_bytes"] is None
    assert (record["flops_per_token"], record["out_channels"], record["vector_params"],
            record["tied_params"]) == (0, 0, 0, 0)
    assert table == LayerTable.from_records([record])
    assert table != LayerTable.from_records([{**record, "params": 5}])
    assert table != "x"


ROW0 = r"^records: row 0 \('l0'\)"


def _valid_row(**changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"name": "l0", "kind": "decoder", "params": 12,
                           "weight_dtype": "bf16", "act_elems_per_token": 3}
    row.update(changes)
    return row


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("abc", r"^records: the layers must be a list of row objects, got string$"),
        ([5], r"^records: row 0: must be an object, got integer$"),
        ([_valid_row(), _valid_row(params="12")],
         r"^records: row 1 \('l0'\), field 'params': must be an integer, got string '12'$"),
        ([_valid_row(params=12.0)], ROW0 + r", field 'params': must be an integer, "
                                           r"got number 12\.0$"),
        ([_valid_row(params=True)], ROW0 + r", field 'params': must be an integer, "
                                           r"got boolean True$"),
        ([_valid_row(params=None)], ROW0 + r", field 'params': must be an integer, "
                                           r"got null None$"),
        ([_valid_row(params=-1)], ROW0 + r", field 'params': must be >= 0, got -1$"),
        ([_valid_row(tied_params=2**62 + 1)], ROW0 + r", field 'tied_params': "
                                                     r"4611686018427387905 exceeds 2\*\*62"),
        ([_valid_row(buffer_bytes=-1)], ROW0 + r", field 'buffer_bytes': must be >= 0 "
                                               r"\(or null for unknown\), got -1$"),
        ([_valid_row(weight_dtype="nf4")], ROW0 + r", field 'weight_dtype': unknown "
                                                  r"precision 'nf4'"),
        ([_valid_row(kind="")], ROW0 + r", field 'kind': must not be empty$"),
        ([_valid_row(vector_params=13)], ROW0 + r": vector_params \(13\) exceeds "
                                                r"params \(12\)$"),
        ([_valid_row(parms=1)], ROW0 + r": unknown field 'parms' \(known: name, kind, "),
    ],
)
def test_records_errors(rows: Any, message: str) -> None:
    with pytest.raises(LayerTableError, match=message):
        LayerTable.from_records(rows)


@pytest.mark.parametrize("field", ["name", "kind", "params", "weight_dtype",
                                   "act_elems_per_token"])
def test_records_missing_field(field: str) -> None:
    row = _valid_row()
    del row[field]
    where = "row 0" if field == "name" else r"row 0 \('l0'\)"
    with pytest.raises(LayerTableError, match=rf"^records: {where}: missing field '{field}'$"):
        LayerTable.from_records([row])


def _layers_file(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "layers.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], r": the top level must be a JSON object, got array$"),
        ({"version": 1, "layers": []}, r": missing field 'schema'$"),
        ({"schema": LAYERS_SCHEMA, "layers": []}, r": missing field 'version'$"),
        ({"schema": LAYERS_SCHEMA, "version": 1}, r": missing field 'layers'$"),
        ({"schema": LAYERS_SCHEMA, "version": 1, "layers": [], "extra": 0},
         r": unknown field 'extra' \(known: schema, version, layers\)$"),
        ({"schema": "layerwise_fast.calibration", "version": 1, "layers": []},
         r": field 'schema' must be 'layerwise_fast\.layers', got 'layerwise_fast\.calibration'$"),
        ({"schema": LAYERS_SCHEMA, "version": 3, "layers": []},
         r": unsupported version 3 \(this release reads versions 1 and 2\)$"),
        ({"schema": LAYERS_SCHEMA, "version": 2, "layers": []},
         r": missing field 'columns' \(version 2 holds its table in 'columns'; 'layers' belongs "
         r"to version 1\)$"),
        ({"schema": LAYERS_SCHEMA, "version": 1, "columns": {}},
         r": missing field 'layers' \(version 1 holds its table in 'layers'; 'columns' belongs "
         r"to version 2\)$"),
        ({"schema": LAYERS_SCHEMA, "version": 2, "columns": {}, "layers": []},
         r": unknown field 'layers' \(known: schema, version, columns\)$"),
        ({"schema": LAYERS_SCHEMA, "version": True, "layers": []}, r": unsupported version True"),
        ({"schema": LAYERS_SCHEMA, "version": 1, "layers": {}},
         r": the layers must be a list of row objects, got object$"),
        ({"schema": LAYERS_SCHEMA, "version": 1, "layers": [_valid_row(), _valid_row(kind=3)]},
         r": row 1 \('l0'\), field 'kind': must be a string, got integer 3$"),
        ({"schema": LAYERS_SCHEMA, "version": 1, "layers": [_valid_row(params=2**63)]},
         r": row 0 \('l0'\), field 'params': 9223372036854775808 exceeds 2\*\*62"),
    ],
)
def test_json_content_errors(tmp_path: Path, document: object, message: str) -> None:
    path = _layers_file(tmp_path, document)
    with pytest.raises(LayerTableError, match=r"^layers file '.*layers\.json'" + message):
        LayerTable.from_json(path)


def _columnar(**columns: Any) -> dict[str, Any]:
    """A version 2 document: two valid rows, with ``columns`` replacing or adding arrays
    (``None`` removes one)."""
    body: dict[str, Any] = {"name": ["l0", "l1"], "kind": ["decoder", "mlp"],
                            "params": [12, 7], "weight_dtype": ["bf16", "int4"],
                            "act_elems_per_token": [3, 4]}
    body.update(columns)
    body = {field: values for field, values in body.items() if values is not None}
    return {"schema": LAYERS_SCHEMA, "version": 2, "columns": body}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"schema": LAYERS_SCHEMA, "version": 2, "columns": []},
         r": field 'columns' must be an object, got array$"),
        (_columnar(params=None), r": missing column 'params'$"),
        (_columnar(parms=[1, 2]), r": unknown column 'parms' \(known: name, kind, "),
        (_columnar(kind="decoder"), r": column 'kind' must be an array, got string$"),
        (_columnar(buffer_bytes=None, flops_per_token=[1]),
         r": column 'flops_per_token' has 1 entries, column 'name' has 2$"),
        (_columnar(params=[12, "7"]),
         r": row 1 \('l1'\), field 'params': must be an integer, got string '7'$"),
        (_columnar(params=[12, 2**63]),
         r": row 1 \('l1'\), field 'params': 9223372036854775808 exceeds 2\*\*62"),
        (_columnar(params=[12, None]),
         r": row 1 \('l1'\), field 'params': must be an integer, got null None$"),
        (_columnar(buffer_bytes=[None, -1]), r": row 1 \('l1'\), field 'buffer_bytes': "
                                             r"must be >= 0 \(or null for unknown\), got -1$"),
        (_columnar(name=["l0", ""]), r": row 1, field 'name': must not be empty$"),
        (_columnar(weight_dtype=["bf16", "nf4"]),
         r": row 1 \('l1'\), field 'weight_dtype': unknown precision 'nf4'"),
        (_columnar(vector_params=[0, 8]),
         r": row 1 \('l1'\): vector_params \(8\) exceeds params \(7\)$"),
        (_columnar(tied_params=[0, True]),
         r": row 1 \('l1'\), field 'tied_params': must be an integer, got boolean True$"),
    ],
)
def test_columnar_json_errors(tmp_path: Path, document: object, message: str) -> None:
    path = _layers_file(tmp_path, document)
    with pytest.raises(LayerTableError, match=r"^layers file '.*layers\.json'" + message):
        LayerTable.from_json(path)


def test_columnar_json_defaults_and_empty_table(tmp_path: Path) -> None:
    document = _columnar(buffer_bytes=[None, 5], tied_params=[None, 2])
    table = LayerTable.from_json(_layers_file(tmp_path, document))
    assert table.buffer_bytes.tolist() == [BUFFER_UNKNOWN, 5]
    assert table.tied_params.tolist() == [0, 2]
    assert table.flops_per_token.tolist() == [0, 0]
    assert not table.params.flags.writeable and not table.name.flags.writeable
    LayerTable.from_records([]).to_json(tmp_path / "empty.json", columnar=True)
    assert len(LayerTable.from_json(tmp_path / "empty.json")) == 0


def test_fast_and_row_by_row_checks_agree() -> None:
    """Rows the column-wise checks refuse (numpy integers, a mapping that is not a dict)
    are still accepted row by row, with the same result; and a bad value far down a
    long table is reported by its row."""
    rows = [_valid_row(name=f"l{i}", buffer_bytes=None if i % 3 else i) for i in range(50)]
    table = LayerTable.from_records(rows)
    assert table.buffer_bytes.tolist()[:4] == [0, BUFFER_UNKNOWN, BUFFER_UNKNOWN, 3]
    numpy_rows = [{**row, "params": np.int64(row["params"])} for row in rows]
    assert LayerTable.from_records(numpy_rows) == table
    assert LayerTable.from_records(iter(rows)) == table
    with pytest.raises(LayerTableError, match=r"^records: row 0 \('l0'\), field "
                                              r"'flops_per_token': must be an integer, "
                                              r"got object <object object"):
        LayerTable.from_records([_valid_row(flops_per_token=object())])
    rows[41] = _valid_row(name="l41", act_elems_per_token=-5)
    with pytest.raises(LayerTableError, match=r"^records: row 41 \('l41'\), field "
                                              r"'act_elems_per_token': must be >= 0, got -5$"):
        LayerTable.from_records(rows)


def test_json_file_errors(tmp_path: Path) -> None:
    with pytest.raises(LayerTableError, match=r"^layers file '.*missing\.json' does not exist$"):
        LayerTable.from_json(tmp_path / "missing.json")
    with pytest.raises(LayerTableError, match=r"^layers file '.*' is a directory, not a file$"):
        LayerTable.from_json(tmp_path)
    latin = tmp_path / "latin.json"
    latin.write_bytes(b'{"schema": "caf\xe9"}')
    with pytest.raises(LayerTableError, match=r"^layers file '.*latin\.json' is not UTF-8 text "
                                              r"\(byte 0xe9 at offset 15\)$"):
        LayerTable.from_json(latin)
    garbled = tmp_path / "garbled.json"
    garbled.write_text('{"schema": "x",, }', encoding="utf-8")
    with pytest.raises(LayerTableError, match=r"^layers file '.*garbled\.json' is not valid "
                                              r"JSON: Expecting property name enclosed in double "
                                              r"quotes \(line 1, column 16\)$"):
        LayerTable.from_json(garbled)
    split_character = tmp_path / "split.json"
    split_character.write_bytes('{"schema": "café"}'.encode()[:16])
    with pytest.raises(LayerTableError, match=r"^layers file '.*split\.json' ends early "
                                              r"\(truncated\?\) inside a UTF-8 character at "
                                              r"offset 15$"):
        LayerTable.from_json(split_character)
    cut = tmp_path / "cut.json"
    cut.write_text('{"schema": "layerwise_fast.layers", "version": 1, "layers": [{"na',
                   encoding="utf-8")
    with pytest.raises(LayerTableError, match=r"^layers file '.*cut\.json' ends early "
                                              r"\(truncated\?\)"):
        LayerTable.from_json(cut)


def test_json_file_is_one_row_per_line(tmp_path: Path) -> None:
    table = LayerTable.from_transformer_config(CONFIGS / "gpt2.json")
    table.to_json(tmp_path / "gpt2-layers.json")
    lines = (tmp_path / "gpt2-layers.json").read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(table) + 2
    assert LayerTable.from_json(tmp_path / "gpt2-layers.json") == table
    LayerTable.from_records([]).to_json(tmp_path / "empty.json")
    assert len(LayerTable.from_json(tmp_path / "empty.json")) == 0


def test_layer_table_error_is_a_value_error() -> None:
    assert issubclass(LayerTableError, ValueError)


def test_json_files_may_open_with_a_utf8_byte_order_mark(tmp_path: Path) -> None:
    table = LayerTable.from_records([{"name": "a", "kind": "mlp", "params": 100,
                                      "weight_dtype": "bf16", "act_elems_per_token": 10}])
    for columnar in (False, True):
        path = tmp_path / f"table-{columnar}.json"
        table.to_json(path, columnar=columnar)
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
        assert LayerTable.from_json(path) == table
        assert load_model(path).table == table
    config = tmp_path / "config.json"
    config.write_bytes(b"\xef\xbb\xbf" + (CONFIGS / "gpt2.json").read_bytes())
    assert load_model(config).table == load_model(CONFIGS / "gpt2.json").table
