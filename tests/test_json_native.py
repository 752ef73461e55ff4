"""The native JSON reader and writers against the json module.

The reader (``_core.json_loads``) must give json.loads's value, except that a non-empty
array of integers that all fit int64 comes back as an int64 array, or decline
(ValueError) so that the json module reads the text; it must never accept a text the
json module rejects. The writers must give json.dumps's compact text byte for byte.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from layerwise_fast import _core
from layerwise_fast._reference import same_json_value

INT64 = st.integers(-(2**63), 2**63 - 1)
# Text without lone surrogates (UTF-8 cannot carry them), control characters included.
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
SCALARS = st.one_of(st.none(), st.booleans(), INT64, st.integers(), TEXT,
                    st.floats(allow_nan=False, allow_infinity=False))
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=6), st.lists(INT64, min_size=1, max_size=6),
                            st.dictionaries(TEXT, inner, max_size=5)),
    max_leaves=30)
STYLES = st.sampled_from([
    {"separators": (",", ":")}, {}, {"indent": 2}, {"ensure_ascii": False},
    {"indent": "\t", "ensure_ascii": False}])


def declines(data: bytes) -> bool:
    try:
        _core.json_loads(data)
    except ValueError:
        return True
    return False


def declines_rows(data: bytes) -> bool:
    """Whether the row-columns reader, with rows under "rows", declines ``data``."""
    try:
        _core.json_loads_row_columns(data, "rows")
    except ValueError:
        return True
    return False


@given(VALUES, STYLES)
def test_reader_gives_the_json_module_value(value: object, style: dict) -> None:
    text = json.dumps(value, **style)
    assert same_json_value(_core.json_loads(text.encode("utf-8")), json.loads(text))


@given(VALUES, st.data())
def test_reader_declines_what_it_does_not_read_alike(value: object, data: st.DataObject) -> None:
    """Edited texts: either the json module's value, or declined; never a text the json
    module rejects."""
    raw = bytearray(json.dumps(value, ensure_ascii=False).encode("utf-8"))
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(raw)))
        edit = data.draw(st.sampled_from(["insert", "delete", "replace"]))
        byte = data.draw(st.sampled_from(list(b'[]{}",:\\-.eE0159 tfnu\x00\x1f\x80\xc3\xff')))
        if edit == "insert":
            raw[at:at] = bytes([byte])
        elif at < len(raw):
            raw[at:at + 1] = b"" if edit == "delete" else bytes([byte])
    try:
        reference = json.loads(bytes(raw).decode("utf-8"))
    except (ValueError, RecursionError):
        assert declines(bytes(raw))
        return
    try:
        fast = _core.json_loads(bytes(raw))
    except ValueError:
        return
    assert same_json_value(fast, reference)


def test_integer_arrays_become_int64_arrays() -> None:
    value = _core.json_loads(b'{"a": [1, -2, 9223372036854775807, -9223372036854775808], "b": [],'
                             b' "c": [1, 2.0], "d": [1, true], "e": [9223372036854775808], "f": [[3], [4, "x"]]}')
    assert isinstance(value, dict)
    assert value["a"].dtype == np.int64 and value["a"].tolist() == [1, -2, 2**63 - 1, -(2**63)]
    assert value["b"] == [] and value["c"] == [1, 2.0] and value["d"] == [1, True]
    assert value["e"] == [2**63]
    assert value["f"][0].tolist() == [3] and value["f"][1] == [4, "x"]


@pytest.mark.parametrize("text", [
    b'"\\ud800"',                      # an unpaired surrogate: no UTF-8 for it
    b'"\\udc00\\ud800"',
    b"NaN", b"[Infinity]", b"-Infinity",  # the json module reads them; files may not hold them
    b"\xef\xbb\xbf[]",                 # a byte-order mark
    b'"\xc3"', b'"\xed\xa0\x80"',      # not UTF-8
    b"1" * 5000,                       # more digits than Python converts
    b"[" * 600 + b"]" * 600,           # deeper than the reader goes
    b"", b" ", b"[1] x", b"[1,]", b"{'a': 1}", b"01", b'"\t"',
])
def test_reader_declines(text: bytes) -> None:
    assert declines(text)


@pytest.mark.parametrize("text", [
    b'{"a": 1, "b": 2, "a": [3]}',      # json.loads keeps the last; the readers refuse it
    b'{"a": 1, "\\u0061": 2}',           # the same key, escaped
    b'[{"x": {"a": 1, "a": 1}}]',       # nested
])
def test_reader_declines_a_key_repeated_in_one_object(text: bytes) -> None:
    assert declines(text)


@pytest.mark.parametrize("text", [
    b'{"rows": [{"a": 1, "a": 2}]}',                  # within a row
    b'{"rows": [{"a": 1}], "n": 1, "n": 2}',          # beside the rows
    b'{"n": {"m": 1, "m": 2}, "rows": [{"a": 1}]}',   # nested, before the rows
])
def test_row_reader_declines_a_key_repeated_in_one_object(text: bytes) -> None:
    assert not declines_rows(text.replace(b'"a": 2', b'"b": 2').replace(b'"n": 2', b'"k": 2')
                             .replace(b'"m": 2', b'"l": 2'))  # read once the keys differ
    assert declines_rows(text)


def test_a_key_may_repeat_across_objects() -> None:
    text = '[{"a": 1}, {"a": 2, "b": {"a": 3}}]'
    assert same_json_value(_core.json_loads(text.encode()), json.loads(text))


@given(st.lists(INT64, max_size=60))
def test_int_list_writer_matches_the_json_module(values: list[int]) -> None:
    column = np.array(values, dtype=np.int64)
    assert _core.json_int_list(column) == json.dumps(values, separators=(",", ":")).encode()


def test_int_list_writer_at_every_digit_count() -> None:
    values = [0, -1, 2**63 - 1, -(2**63)]
    for k in range(1, 19):
        values += [10**k - 1, 10**k, -(10**k - 1), -(10**k)]
    column = np.array(values, dtype=np.int64)
    assert _core.json_int_list(column) == json.dumps(values, separators=(",", ":")).encode()


@given(st.lists(TEXT, min_size=1, max_size=20))
def test_str_list_writer_matches_the_json_module(values: list[str]) -> None:
    expected = json.dumps(values, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    assert _core.json_str_list(values) == expected


def test_str_list_writer_refuses_what_it_cannot_write() -> None:
    with pytest.raises(UnicodeEncodeError):
        _core.json_str_list(["ok", "\ud800"])
    with pytest.raises(TypeError, match="must all be str"):
        _core.json_str_list(["ok", 3])  # type: ignore[list-item]


def test_messages_quote_json_values_as_the_json_module_reads_them(tmp_path) -> None:
    """A file the native reader reads but the checks reject is read again by the json
    module: messages show lists, not numpy arrays."""
    import layerwise_fast as lf

    path = tmp_path / "layers.json"
    path.write_text('{"schema": "layerwise_fast.layers", "version": [2, 3], "columns": {}}')
    with pytest.raises(lf.LayerTableError, match=r"unsupported version \[2, 3\]"):
        lf.LayerTable.from_json(path)
    path.write_text('{"schema": "layerwise_fast.layers", "version": 2, "columns": {"name": ["a"], '
                    '"kind": ["decoder"], "params": [-5], "weight_dtype": ["bf16"], '
                    '"act_elems_per_token": [1]}}')
    with pytest.raises(lf.LayerTableError, match=r"row 0 \('a'\), field 'params': must be >= 0, got -5"):
        lf.LayerTable.from_json(path)


def test_columnar_tables_read_natively_equal_the_json_module_reading(tmp_path) -> None:
    import layerwise_fast as lf
    from layerwise_fast.layers import _table_from_document

    table = lf.LayerTable(name=["a", "b\u00e9", "c"], kind="decoder", params=[1, 2, 3],
                          weight_dtype="bf16", act_elems_per_token=[4, 5, 6],
                          buffer_bytes=[-1, 7, -1])
    path = tmp_path / "layers.json"
    table.to_json(path, columnar=True)
    reference = _table_from_document(json.loads(path.read_text("utf-8")), "reference")
    assert lf.LayerTable.from_json(path) == reference == table


def test_a_file_without_rows_is_parsed_once(tmp_path, monkeypatch) -> None:
    import layerwise_fast as lf

    table = lf.LayerTable(name=["a", "b"], kind="decoder", params=[1, 2], weight_dtype="bf16",
                          act_elems_per_token=[4, 5])
    path = tmp_path / "layers.json"
    table.to_json(path, columnar=True)
    parses = []
    for name in ("json_loads", "json_loads_row_columns"):
        real = getattr(_core, name)
        monkeypatch.setattr(_core, name, lambda *a, _real=real, _name=name: parses.append(_name) or _real(*a))
    assert lf.LayerTable.from_json(path) == table
    assert parses == ["json_loads_row_columns"]


# -- rows read as columns (_core.json_loads_row_columns) ---------------------------------

ROW_SCALARS = st.one_of(st.none(), st.booleans(), INT64, TEXT)
FIELDS = st.lists(TEXT, min_size=1, max_size=5, unique=True)


def rows_as_columns(value: object, key: str) -> tuple[object, int] | None:
    """What the row-columns reader must give for json.loads's ``value``, or ``None``
    where it must decline: the top-level ``key``'s rows as columns when they are
    objects with the first row's keys and scalar values only (no floats, no integers
    beyond int64), in the first row's key order."""
    if not isinstance(value, dict) or not isinstance(value.get(key), list) or not value[key]:
        return value, 0
    rows = value[key]
    if not all(isinstance(row, dict) and set(row) == set(rows[0]) for row in rows):
        return None
    scalar = (type(None), bool, int, str)
    cells = [cell for row in rows for cell in row.values()]
    if not all(isinstance(c, scalar) and not (type(c) is int and not -(2**63) <= c < 2**63) for c in cells):
        return None
    columns = {field: [row[field] for row in rows] for field in rows[0]}
    return {**value, key: columns}, len(rows)


def same_columns(fast: object, expected: dict[str, list]) -> bool:
    """Columns alike, with an int64 array exactly where a column holds only ints."""
    if not isinstance(fast, dict) or list(fast) != list(expected):
        return False
    for field, values in expected.items():
        all_ints = all(type(v) is int for v in values)
        got = fast[field]
        if all_ints != isinstance(got, np.ndarray):
            return False
        got_values = got.tolist() if all_ints else got
        if [(type(v), v) for v in got_values] != [(type(v), v) for v in values]:
            return False
    return True


@st.composite
def row_documents(draw) -> dict:
    fields = draw(FIELDS)
    rows = draw(st.lists(st.fixed_dictionaries({f: ROW_SCALARS for f in fields}), max_size=8))
    rows = [dict(draw(st.permutations(list(row.items())))) for row in rows]  # any key order
    return {"schema": draw(TEXT), "layers": rows, "after": draw(VALUES)}


@given(row_documents(), STYLES)
def test_rows_become_columns(document: dict, style: dict) -> None:
    text = json.dumps(document, **style)
    value, rows = _core.json_loads_row_columns(text.encode("utf-8"), "layers")
    expected, expected_rows = rows_as_columns(json.loads(text), "layers")
    assert rows == expected_rows == len(document["layers"])
    assert list(value) == list(expected)
    if rows:
        assert same_columns(value["layers"], expected["layers"])
    assert all(same_json_value(value[k], expected[k]) for k in value if k != "layers" or not rows)


@given(VALUES, st.lists(st.dictionaries(st.sampled_from("abc"), VALUES, max_size=3), max_size=5), STYLES)
def test_row_columns_or_declined(other: object, rows: list, style: dict) -> None:
    """Rows of any shape: the columns where they qualify, declined where they do not."""
    text = json.dumps({"x": other, "layers": rows}, **style)
    expected = rows_as_columns(json.loads(text), "layers")
    try:
        value, count = _core.json_loads_row_columns(text.encode("utf-8"), "layers")
    except ValueError:
        assert expected is None
        return
    assert expected is not None and count == expected[1]
    assert same_json_value(value["x"], expected[0]["x"])
    if count:
        assert same_columns(value["layers"], expected[0]["layers"])
    else:
        assert value["layers"] == []


@pytest.mark.parametrize("text", [
    b'{"layers": [{"a": 1, "a": 2}]}',                  # a key twice in a row
    b'{"layers": [{"a": 1, "b": 2}, {"b": 1, "b": 2}]}',  # ... the second where it is expected
    b'{"layers": [{"a": 1, "b": 2}, {"a": 1, "a": 2}]}',  # ... where another one is
    b'{"layers": [{"ab": 1}, {"a": 1}]}', b'{"layers": [{"a": 1}, {"ab": 1}]}',  # one a prefix
    b'{"layers": [{"a": 1, "b": 2}, {"a": 3}]}',        # a key missing
    b'{"layers": [{"a": 1}, {"a": 3, "b": 4}]}',        # a key added
    b'{"layers": [{"a": [1]}]}', b'{"layers": [{"a": {}}]}',  # nested values
    b'{"layers": [{"a": 1}, 2]}', b'{"layers": [[1]]}',  # rows that are not objects
    b'{"layers": [{"a": 1.5}]}', b'{"layers": [{"a": 9223372036854775808}]}',
    b'{"layers": [{"a": 1}], "layers": [{"a": 2}]}',    # the rows twice
    b'{"layers": [{"a": 1}], "lay\\u0065rs": {"a": [2, 3]}}',  # twice, the second escaped
])
def test_row_columns_decline(text: bytes) -> None:
    with pytest.raises(ValueError, match="declined"):
        _core.json_loads_row_columns(text, "layers")


def test_an_escaped_rows_key_is_the_rows_key() -> None:
    value, rows = _core.json_loads_row_columns(b'{"x": 1, "lay\\u0065rs": [{"a": 1}, {"a": 2}]}', "layers")
    assert rows == 2 and value["x"] == 1 and value["layers"]["a"].tolist() == [1, 2]


def test_rows_elsewhere_stay_rows() -> None:
    text = b'{"x": {"layers": [{"a": 1}]}, "layers": 5, "y": [{"layers": [{"a": 2}]}]}'
    value, rows = _core.json_loads_row_columns(text, "layers")
    assert rows == 0 and same_json_value(value, json.loads(text))
    value, rows = _core.json_loads_row_columns(b'[{"layers": [{"a": 1}]}]', "layers")
    assert rows == 0 and value == [{"layers": [{"a": 1}]}]


def test_row_columns_compare_keys_unescaped() -> None:
    text = '{"layers": [{"\\u0061": 1, "b\\n": 2}, {"a": 3, "b\\u000a": 4}]}'
    value, rows = _core.json_loads_row_columns(text.encode(), "layers")
    assert rows == 2 and list(value["layers"]) == ["a", "b\n"]
    assert value["layers"]["a"].tolist() == [1, 3] and value["layers"]["b\n"].tolist() == [2, 4]


def test_row_columns_reuse_repeated_text_and_keep_escapes() -> None:
    text = '{"layers": [{"k": "linear"}, {"k": "linear"}, {"k": "\\u0041"}, {"k": ""}, {"k": "linear"}]}'
    value, rows = _core.json_loads_row_columns(text.encode(), "layers")
    assert rows == 5 and value["layers"]["k"] == ["linear", "linear", "A", "", "linear"]
