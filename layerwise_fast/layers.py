"""Model descriptions: one row per block of a network, held as numpy columns.

A :class:`LayerTable` lists a network's blocks in execution order. Its columns:

==========================  ======  ==================================================
column                      dtype   meaning
==========================  ======  ==================================================
``name``                    object  label of the block (non-empty str)
``kind``                    object  block kind (non-empty str), e.g. ``"decoder"``;
                                    selects the default operator buffers
``params``                  int64   parameters the block owns
``weight_dtype``            object  weight precision: one of :data:`WEIGHT_DTYPES`
``act_elems_per_token``     int64   activation elements per token held in the block's
                                    working set
``buffer_bytes``            int64   operator workspace in bytes, or
                                    :data:`BUFFER_UNKNOWN` (-1) for "use the default of
                                    the kind"
``flops_per_token``         int64   floating-point operations per token (0: unknown)
``out_channels``            int64   output channels of the block's weight matrices
                                    (rows of an embedding table): one quantization scale
                                    each at fp8/int8; an embedding reads one row of
                                    them per token (a lookup)
``vector_params``           int64   of ``params``, those in 1-D tensors (biases, norm
                                    weights); they stay 16-bit when weights are quantized
``tied_params``             int64   parameters owned by another block that this block
                                    reads (a head tied to the token embedding)
==========================  ======  ==================================================

Counts are non-negative and at most :data:`MAX_COUNT` (2**62); ``vector_params`` never
exceeds ``params``. Tables are immutable: every column is a read-only array.

JSON form (UTF-8), written by :meth:`LayerTable.to_json`, read by
:meth:`LayerTable.from_json`::

    {"schema": "layerwise_fast.layers", "version": 1, "layers": [
      {"name": "layers.0", "kind": "decoder", "params": 7087872, "weight_dtype": "bf16",
       "act_elems_per_token": 4608, "buffer_bytes": null, "flops_per_token": 14155776,
       "out_channels": 6912, "vector_params": 9984, "tied_params": 0},
      ...
    ]}

Columnar JSON form (version 2), written by ``to_json(path, columnar=True)`` and also
read by :meth:`LayerTable.from_json`; it holds the same values, one array per column,
and reads several times faster for large tables::

    {"schema": "layerwise_fast.layers", "version": 2, "columns": {
      "name": ["layers.0", "layers.1", ...],
      "params": [7087872, 7087872, ...],
      ...
    }}

Every array has one entry per row, in row order, and all arrays have the same length.
A column that may be absent from a row (version 1) may be absent from the columns
(version 2), and its entries may be ``null``, with the same defaults. The same checks
apply to each entry, with the same messages (naming the row); in addition a missing
required column, an unknown column, a column that is not an array and columns of
different lengths each raise :class:`LayerTableError` naming the file and the column.

``name``, ``kind``, ``params``, ``weight_dtype`` and ``act_elems_per_token`` are
required in each row; ``buffer_bytes`` may be absent or ``null`` (unknown); the other
counts, absent or ``null``, are 0. Unknown keys, wrong types (``true`` or ``12.0`` is
not an integer), negative or absurd counts (above 2**62), an unknown precision, a
wrong schema or version, a truncated or non-UTF-8 file, a missing path or a directory
each raise :class:`LayerTableError` naming the file, the row index (and the row's name
where it has one) and the field.
"""

from __future__ import annotations

import json
import os
from operator import itemgetter
from dataclasses import dataclass
from typing import Any, Final, Iterable, Mapping, NoReturn, Sequence, Union

import numpy as np
import numpy.typing as npt

from .units import (_is_int, _json_type, _load_json_checked, _read_json_document, encodable,
                    write_text_atomically)

__all__ = [
    "BUFFER_UNKNOWN",
    "COLUMNS",
    "GRANULARITIES",
    "LAYERS_COLUMNAR_VERSION",
    "LAYERS_SCHEMA",
    "LAYERS_VERSION",
    "MAX_COUNT",
    "WEIGHT_DTYPES",
    "LayerTable",
    "LayerTableError",
]

LAYERS_SCHEMA: Final[str] = "layerwise_fast.layers"
LAYERS_VERSION: Final[int] = 1
"""Version of the row form of the JSON file."""
LAYERS_COLUMNAR_VERSION: Final[int] = 2
"""Version of the columnar form of the JSON file (one array per column)."""
WEIGHT_DTYPES: Final[tuple[str, ...]] = ("bf16", "fp16", "fp32", "fp8", "int8", "int4")
"""Weight precisions a row may use."""
MAX_COUNT: Final[int] = 2**62
"""Largest count any column may hold; larger values are taken as corrupt input."""
# A config names real models (up to a few hundred layers); tables hold more.
_MAX_CONFIG_LAYERS: Final[int] = 100_000
BUFFER_UNKNOWN: Final[int] = -1
"""``buffer_bytes`` value meaning "not recorded: use the default of the kind"."""
GRANULARITIES: Final[tuple[str, ...]] = ("layer", "sublayer")
COLUMNS: Final[tuple[str, ...]] = (
    "name", "kind", "params", "weight_dtype", "act_elems_per_token", "buffer_bytes",
    "flops_per_token", "out_channels", "vector_params", "tied_params",
)
"""Column names, in the order :meth:`LayerTable.to_records` writes them."""

_TEXT_FIELDS: Final[tuple[str, ...]] = ("name", "kind", "weight_dtype")
_COUNT_FIELDS: Final[tuple[str, ...]] = (
    "params", "act_elems_per_token", "buffer_bytes", "flops_per_token", "out_channels",
    "vector_params", "tied_params",
)
_REQUIRED_FIELDS: Final[frozenset[str]] = frozenset(
    {"name", "kind", "params", "weight_dtype", "act_elems_per_token"})
_CONSTRUCTOR_LABEL: Final[str] = "LayerTable"
_BODY_FIELDS: Final[Mapping[int, str]] = {LAYERS_VERSION: "layers",
                                          LAYERS_COLUMNAR_VERSION: "columns"}
"""The field holding the table, per file version."""

IntColumn = npt.NDArray[np.int64]
TextColumn = npt.NDArray[np.object_]
ConfigSource = Union[Mapping[str, Any], str, "os.PathLike[str]"]


class LayerTableError(ValueError):
    """A layer table, its JSON file or a model config is malformed.

    The message names the source (file or ``records``), the row index and the field.
    """


class LayerTable:
    """An immutable, columnar description of a network's blocks (see the module docstring).

    Build one from columns (this constructor), from row dicts (:meth:`from_records`),
    from a JSON file (:meth:`from_json`), from a Hugging Face-style model config
    (:meth:`from_transformer_config`) or from a torch module (:meth:`from_torch`).
    """

    __slots__ = ("_columns", "_kinds")
    _columns: dict[str, npt.NDArray[Any]]
    _kinds: frozenset[str]

    def __init__(
        self,
        *,
        name: Sequence[str] | npt.NDArray[Any],
        kind: str | Sequence[str] | npt.NDArray[Any],
        params: npt.ArrayLike,
        weight_dtype: str | Sequence[str] | npt.NDArray[Any],
        act_elems_per_token: npt.ArrayLike,
        buffer_bytes: npt.ArrayLike | None = None,
        flops_per_token: npt.ArrayLike | None = None,
        out_channels: npt.ArrayLike | None = None,
        vector_params: npt.ArrayLike | None = None,
        tied_params: npt.ArrayLike | None = None,
    ) -> None:
        """Validate and copy the columns into read-only arrays.

        ``kind`` and ``weight_dtype`` may be one str for every row. Omitted optional
        columns take their defaults (``buffer_bytes``: unknown, the others: 0). Integer
        columns must have an integer dtype; the caller's arrays are copied, never frozen.

        Raises:
            TypeError: a column has the wrong type, shape or dtype.
            LayerTableError: columns of different lengths, an empty or non-UTF-8 text, an
                unknown precision, a negative or absurd count, or ``vector_params`` above
                ``params``; the message names the row and the field.
        """
        names = _text_column(name, "name", None)
        columns: dict[str, npt.NDArray[Any]] = {
            "name": names,
            "kind": _text_column(kind, "kind", names),
            "weight_dtype": _text_column(weight_dtype, "weight_dtype", names),
        }
        given = {"params": params, "act_elems_per_token": act_elems_per_token,
                 "buffer_bytes": buffer_bytes, "flops_per_token": flops_per_token,
                 "out_channels": out_channels, "vector_params": vector_params,
                 "tied_params": tied_params}
        for field in _COUNT_FIELDS:
            columns[field] = _count_column(given[field], field, names)
        _check_vector_params(columns)
        self._columns = {field: columns[field] for field in COLUMNS}

    @classmethod
    def _from_checked(cls, columns: Mapping[str, npt.NDArray[Any]]) -> LayerTable:
        """A table over already validated, read-only columns (no copies, no checks)."""
        table = cls.__new__(cls)
        table._columns = {field: columns[field] for field in COLUMNS}
        return table

    # -- columns -------------------------------------------------------------------

    @property
    def kinds(self) -> frozenset[str]:
        """The distinct kinds of the rows (found once: the table never changes)."""
        try:
            return self._kinds
        except AttributeError:
            self._kinds = frozenset(self._columns["kind"].tolist())
            return self._kinds

    @property
    def name(self) -> TextColumn:
        """Block labels (read-only object array of str)."""
        return self._columns["name"]

    @property
    def kind(self) -> TextColumn:
        """Block kinds (read-only object array of str)."""
        return self._columns["kind"]

    @property
    def params(self) -> IntColumn:
        """Parameters each block owns (read-only int64)."""
        return self._columns["params"]

    @property
    def weight_dtype(self) -> TextColumn:
        """Weight precision per block (read-only object array of str)."""
        return self._columns["weight_dtype"]

    @property
    def act_elems_per_token(self) -> IntColumn:
        """Activation elements per token in each block's working set (read-only int64)."""
        return self._columns["act_elems_per_token"]

    @property
    def buffer_bytes(self) -> IntColumn:
        """Operator workspace in bytes; :data:`BUFFER_UNKNOWN` where not recorded."""
        return self._columns["buffer_bytes"]

    @property
    def flops_per_token(self) -> IntColumn:
        """Floating-point operations per token (read-only int64; 0 where unknown)."""
        return self._columns["flops_per_token"]

    @property
    def out_channels(self) -> IntColumn:
        """Output channels of each block's weight matrices (read-only int64)."""
        return self._columns["out_channels"]

    @property
    def vector_params(self) -> IntColumn:
        """Parameters in 1-D tensors (biases, norm weights) (read-only int64)."""
        return self._columns["vector_params"]

    @property
    def tied_params(self) -> IntColumn:
        """Parameters read from another block's tensor (read-only int64)."""
        return self._columns["tied_params"]

    @property
    def total_params(self) -> int:
        """Sum of ``params`` (tied parameters are counted once, by their owner)."""
        return sum(self.params.tolist())

    def __len__(self) -> int:
        return len(self._columns["name"])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LayerTable):
            return NotImplemented
        return all(np.array_equal(self._columns[field], other._columns[field])
                   for field in COLUMNS)

    def __hash__(self) -> int:
        return hash(tuple(tuple(self._columns[field].tolist()) for field in COLUMNS))

    def __repr__(self) -> str:
        return f"<LayerTable: {len(self)} rows, {self.total_params:,} params>"

    # -- records and JSON ----------------------------------------------------------

    def to_records(self) -> list[dict[str, Any]]:
        """One dict per row with every column; an unknown ``buffer_bytes`` is ``None``."""
        rows = zip(*(self._columns[field].tolist() for field in COLUMNS))
        records = [dict(zip(COLUMNS, row)) for row in rows]
        for record in records:
            if record["buffer_bytes"] == BUFFER_UNKNOWN:
                record["buffer_bytes"] = None
        return records

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any]]) -> LayerTable:
        """Build a table from row dicts (the JSON rows; see the module docstring).

        Raises:
            LayerTableError: a row is not a mapping, lacks a required field, has an
                unknown field, or a field of the wrong type or range. The message starts
                with ``records: row <i> ('<row name>'), field '<field>'``.
        """
        return _table_from_rows(records, "records")

    def to_json(self, path: str | os.PathLike[str], *, columnar: bool = False) -> None:
        """Write the table as UTF-8 JSON (schema in the module docstring): one row per
        line (version 1), or with ``columnar=True`` one column per line (version 2),
        which is smaller and faster to read.

        The file is written through a temporary file and a rename: a failure never
        leaves a half-written table over an existing file.

        Raises:
            OSError: the file cannot be written.
        """
        write_text_atomically(path, self._columnar_json() if columnar else self._rows_json())

    def _rows_json(self) -> str:
        """The version 1 text: one row object per line."""
        rows = ",\n".join("  " + json.dumps(record, ensure_ascii=False)
                          for record in self.to_records())
        head = json.dumps({"schema": LAYERS_SCHEMA, "version": LAYERS_VERSION})[:-1]
        return f'{head}, "layers": [\n{rows}\n]}}\n' if rows else f'{head}, "layers": []}}\n'

    def _columnar_json(self) -> str:
        """The version 2 text: one array per column, one column per line."""
        columns = {field: self._columns[field].tolist() for field in COLUMNS}
        columns["buffer_bytes"] = [None if size == BUFFER_UNKNOWN else size
                                   for size in columns["buffer_bytes"]]
        lines = ",\n".join(f"  {json.dumps(field)}: {json.dumps(values, ensure_ascii=False)}"
                           for field, values in columns.items())
        head = json.dumps({"schema": LAYERS_SCHEMA, "version": LAYERS_COLUMNAR_VERSION})[:-1]
        return f'{head}, "columns": {{\n{lines}\n}}}}\n'

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> LayerTable:
        """Read a table written by :meth:`to_json` (either form), validating every field.

        Raises:
            LayerTableError: for every malformed input listed in the module docstring.
        """
        label = f"layers file {os.fspath(path)!r}"
        return _load_json_checked(path, what="layers file", error=LayerTableError,
                                  check=lambda document: _table_from_document(document, label),
                                  row_columns=("layers", _table_from_row_columns))

    # -- model configs -------------------------------------------------------------

    @classmethod
    def from_transformer_config(
        cls,
        config: ConfigSource,
        *,
        granularity: str = "layer",
        weight_dtype: str = "bf16",
    ) -> LayerTable:
        """Describe a decoder-only transformer from its Hugging Face ``config.json``.

        Args:
            config: the parsed config (a mapping) or the path of the JSON file.
            granularity: ``"layer"``: one row per decoder layer; ``"sublayer"``: the
                attention (with its pre-norm) and the MLP (with its pre-norm) as two rows.
            weight_dtype: the precision of every row, one of :data:`WEIGHT_DTYPES`
                (default bf16; the config's ``torch_dtype`` is not consulted).

        Families (by ``model_type``, else by the keys present):

        - ``gpt2``: ``n_embd``, ``n_layer``, ``n_head``, ``n_positions``, ``vocab_size``,
          ``n_inner`` (null: 4 x ``n_embd``); learned position embeddings; biases on every
          linear layer and LayerNorm; GELU MLP; head tied unless
          ``tie_word_embeddings`` is false.
        - ``llama``, ``mistral``, ``mixtral``: ``hidden_size``, ``intermediate_size``,
          ``num_hidden_layers``, ``num_attention_heads``, ``num_key_value_heads``
          (grouped-query attention; default: one per head), ``head_dim`` (default:
          hidden / heads), ``vocab_size``; rotary positions (no parameters); RMSNorm
          weights only; gated (SwiGLU) MLP; biases only if ``attention_bias`` /
          ``mlp_bias`` are true; head untied unless ``tie_word_embeddings`` is true.
          ``num_local_experts`` and ``num_experts_per_tok`` make the MLP a mixture of
          experts with a bias-free router.

        Rows, in order: ``embed`` (token table, plus the position table where there is
        one), ``layers.<i>`` (or ``layers.<i>.attn`` and ``layers.<i>.mlp``),
        ``final_norm``, ``lm_head``. ``params`` sum to the published totals. A config
        may name at most 100,000 decoder layers, since each becomes Python rows; give a
        layer table for more.

        A tied head owns no parameters (``params`` = 0, so totals count the shared matrix
        once, under ``embed``) but reads the whole token-embedding matrix at every step:
        its ``tied_params`` holds that matrix's size, and the working set counts those
        bytes as the head's weights.

        Mixture of experts: all experts' weights are the block's ``params`` and stay
        resident in its working set; only ``num_experts_per_tok`` experts run per token,
        so ``act_elems_per_token`` and ``flops_per_token`` count those (plus the router).

        Per-token columns (``h`` hidden size, ``I`` MLP width, ``q`` = heads x head_dim,
        ``kv`` = key/value heads x head_dim, ``V`` vocabulary, ``E``/``k`` experts /
        active experts):

        - ``act_elems_per_token``: the block's input, its widest intermediate and its
          output. Embedding ``h``; attention ``2h + q + 2kv`` (the q, k and v
          projections); MLP ``2h + I`` (GELU) or ``2h + 2I`` (gate and up); MoE
          ``2h + E + k x 2I`` (router logits and the active experts); a whole decoder
          layer holds the larger of its two sublayers (they run one after the other);
          final norm ``2h``; head ``h + V`` (the logits).
        - ``flops_per_token``: two per multiply-add of the matrix products (router and
          active experts for MoE). The attention score and value products, which grow
          with context length, and elementwise work are not counted.
        - ``out_channels``: the output features of every weight matrix; rows of the
          embedding tables; ``V`` for the head.
        - ``buffer_bytes``: unknown (the working-set model supplies a default per kind).

        Raises:
            LayerTableError: an unreadable config file, an unsupported ``model_type``, a
                missing or malformed hyperparameter, or inconsistent head counts.
            ValueError: an unknown ``granularity`` or ``weight_dtype``.
        """
        return _transformer_table(config, granularity, weight_dtype)[0]

    # -- torch modules -------------------------------------------------------------

    @classmethod
    def from_torch(
        cls,
        module: Any,
        example_inputs: Any,
        *,
        granularity: str = "leaf",
        no_split: Iterable[str | type] = (),
        weight_dtype: str | None = None,
        tokens: int | None = None,
        activations: str = "output",
    ) -> LayerTable:
        """Describe a ``torch.nn.Module`` by running its forward on the meta device.

        No weights are read or loaded. Rows are the module's leaves (or, at
        ``granularity="block"``, the elements of its containers) in execution order;
        classes named in ``no_split`` are kept whole. The rules, columns and errors are
        those of :func:`layerwise_fast.torch_ingest.describe_torch`, which also returns
        the device-map keys and tied rows the exports need.

        Raises:
            ImportError: torch is not installed; install the extra with
                ``pip install "layerwise_fast[torch]"``.
        """
        from .torch_ingest import describe_torch

        return describe_torch(module, example_inputs, granularity=granularity,
                              no_split=no_split, weight_dtype=weight_dtype, tokens=tokens,
                              activations=activations).table


# -- column validation (constructor) -------------------------------------------------


def _text_column(values: object, field: str, names: TextColumn | None) -> TextColumn:
    """Validate a str column; a single str is repeated over every row (not for names)."""
    if isinstance(values, str):
        if names is None:
            raise TypeError(f"{_CONSTRUCTOR_LABEL}: column {field!r} must be a sequence "
                            f"of str, got a single str")
        items = [values] * len(names)
    else:
        items = _as_list(values, field)
    if names is not None and len(items) != len(names):
        raise LayerTableError(f"{_CONSTRUCTOR_LABEL}: column {field!r} has {len(items)} "
                              f"rows, column 'name' has {len(names)}")
    for index, item in enumerate(items):
        problem = _text_problem(item, field)
        if problem:
            _raise_row(index, names, field, problem)
    column = np.empty(len(items), dtype=object)
    column[:] = items
    column.flags.writeable = False
    return column


def _as_list(values: object, field: str) -> list[Any]:
    if isinstance(values, np.ndarray):
        if values.ndim != 1:
            raise TypeError(f"{_CONSTRUCTOR_LABEL}: column {field!r} must be "
                            f"one-dimensional, got shape {values.shape}")
        return list(values.tolist())
    if isinstance(values, Iterable) and not isinstance(values, (bytes, Mapping)):
        return list(values)
    raise TypeError(f"{_CONSTRUCTOR_LABEL}: column {field!r} must be a sequence of str, "
                    f"got {type(values).__name__}")


def _count_column(values: npt.ArrayLike | None, field: str, names: TextColumn) -> IntColumn:
    """Validate an integer column and return a read-only int64 copy."""
    if values is None:
        default = BUFFER_UNKNOWN if field == "buffer_bytes" else 0
        column = np.full(len(names), default, dtype=np.int64)
    else:
        column = _integer_array(values, field, names)
    lowest = BUFFER_UNKNOWN if field == "buffer_bytes" else 0
    bad = np.flatnonzero((column < lowest) | (column > MAX_COUNT))
    if bad.size:
        index = int(bad[0])
        _raise_row(index, names, field, _count_problem(int(column[index]), field))
    column.flags.writeable = False
    return column


def _integer_array(values: npt.ArrayLike, field: str, names: TextColumn) -> IntColumn:
    array = np.asarray(values)
    if array.ndim != 1:
        raise TypeError(f"{_CONSTRUCTOR_LABEL}: column {field!r} must be one-dimensional, "
                        f"got shape {array.shape}")
    if len(array) != len(names):
        raise LayerTableError(f"{_CONSTRUCTOR_LABEL}: column {field!r} has {len(array)} "
                              f"rows, column 'name' has {len(names)}")
    if len(array) == 0:
        return np.zeros(0, dtype=np.int64)
    if array.dtype == object:  # Python ints (some perhaps beyond int64), or a mixture
        _name_the_object_row(array, field, names)
        array = np.array(array.tolist(), dtype=np.int64)
    if array.dtype.kind not in "iu":
        raise TypeError(f"{_CONSTRUCTOR_LABEL}: column {field!r} must hold integers, "
                        f"got dtype {array.dtype}")
    if array.dtype.kind == "u" and array.dtype.itemsize == 8:
        too_big = np.flatnonzero(array > MAX_COUNT)
        if too_big.size:
            index = int(too_big[0])
            _raise_row(index, names, field, _count_problem(int(array[index]), field))
    return array.astype(np.int64, copy=True)


def _check_vector_params(columns: Mapping[str, npt.NDArray[Any]]) -> None:
    bad = np.flatnonzero(columns["vector_params"] > columns["params"])
    if bad.size:
        index = int(bad[0])
        where = _row_where(_CONSTRUCTOR_LABEL, index, columns["name"][index])
        raise LayerTableError(
            f"{where}: vector_params ({int(columns['vector_params'][index])}) "
            f"exceeds params ({int(columns['params'][index])})")


def _name_the_object_row(array: npt.NDArray[Any], field: str, names: TextColumn) -> None:
    """Raise naming the first entry of an object column that is no int or out of range
    (the rest then fit int64)."""
    for index, value in enumerate(array.tolist()):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            where = _row_where(_CONSTRUCTOR_LABEL, index, names[index])
            raise TypeError(f"{where}, field {field!r}: must be an integer, got "
                            f"{type(value).__name__} {value!r}")
        lowest = BUFFER_UNKNOWN if field == "buffer_bytes" else 0
        if not lowest <= value <= MAX_COUNT:
            _raise_row(index, names, field, _count_problem(int(value), field))


def _raise_row(index: int, names: TextColumn | None, field: str, problem: str) -> NoReturn:
    name = None if names is None else names[index]
    where = _row_where(_CONSTRUCTOR_LABEL, index, name)
    raise LayerTableError(f"{where}, field {field!r}: {problem}")


def _row_where(label: str, index: int, name: object) -> str:
    """``"<label>: row <i>"``, followed by the row's name when it has a usable one."""
    if isinstance(name, str) and name:
        return f"{label}: row {index} ({name!r})"
    return f"{label}: row {index}"


# -- row validation (records, JSON, configs) -------------------------------------------


def _table_from_rows(rows: object, label: str) -> LayerTable:
    """Validate row dicts and build the table.

    Rows that are all plain dicts holding plain ints and strs are checked column by
    column (:func:`_fast_columns`); anything else, including every malformed input, goes
    through the row-by-row checks, which name the first offending row and field.
    """
    if isinstance(rows, (str, bytes, Mapping)) or not isinstance(rows, Iterable):
        raise LayerTableError(f"{label}: the layers must be a list of row objects, "
                              f"got {_json_type(rows)}")
    rows = rows if isinstance(rows, list) else list(rows)
    checked = _fast_columns(rows)
    if checked is not None:
        return LayerTable._from_checked(checked)
    columns: dict[str, list[Any]] = {field: [] for field in COLUMNS}
    for index, row in enumerate(rows):
        for field, value in _checked_row(row, index, label).items():
            columns[field].append(value)
    return LayerTable(**columns)


def _fast_columns(rows: list[Any]) -> dict[str, npt.NDArray[Any]] | None:
    """Read-only columns of ``rows`` when every row passes every check, else ``None``.

    Accepts only rows that are plain dicts whose values are plain ``str``, ``int`` or
    ``None``, so that a ``None`` here never hides an error: the caller then re-checks
    the rows one by one, which accepts the same inputs and names the first bad one.
    """
    if set(map(type, rows)) - {dict}:
        return None
    gathered: dict[str, list[Any]] = {}
    present = 0
    for field in COLUMNS:
        found = _gathered_field(rows, field)
        if found is None:
            return None
        gathered[field], absent = found
        present += len(rows) - absent
    if sum(map(len, rows)) != present:  # some row has a key outside COLUMNS
        return None
    return _checked_columns(gathered)


def _checked_columns(gathered: Mapping[str, list[Any] | IntColumn]
                     ) -> dict[str, npt.NDArray[Any]] | None:
    """Read-only columns from one list (or int64 array) of values per field, or ``None``
    when any value fails a check (or is not a plain ``str``, ``int`` or ``None``).

    Absent (:data:`_ABSENT`) and ``None`` values of an optional field take its default.
    """
    columns: dict[str, npt.NDArray[Any]] = {}
    for field, values in gathered.items():
        column = (_fast_text_column(values, field) if field in _TEXT_FIELDS
                  else _fast_count_column(values, field))
        if column is None:
            return None
        columns[field] = column
    if (columns["vector_params"] > columns["params"]).any():
        return None
    return columns


def _gathered_field(rows: list[dict[str, Any]], field: str) -> tuple[list[Any], int] | None:
    """The values of ``field`` across ``rows`` and how many rows lack it (their value is
    :data:`_ABSENT`); ``None`` when some row lacks a required field."""
    try:
        return list(map(itemgetter(field), rows)), 0
    except KeyError:
        if field in _REQUIRED_FIELDS:
            return None
        values = [row.get(field, _ABSENT) for row in rows]
        return values, sum(value is _ABSENT for value in values)


def _fast_text_column(values: list[Any] | IntColumn, field: str) -> TextColumn | None:
    """A read-only object column of non-empty, UTF-8-encodable strs, else ``None``."""
    try:
        joined = "".join(values)  # TypeError unless all are str
    except TypeError:
        return None
    if not encodable(joined) or not all(values):
        return None
    if field == "weight_dtype" and not set(values) <= set(WEIGHT_DTYPES):
        return None
    column = np.fromiter(values, dtype=object, count=len(values))
    column.flags.writeable = False
    return column


def _fast_count_column(values: list[Any] | IntColumn, field: str) -> IntColumn | None:
    """A read-only int64 column of counts in range, else ``None``.

    ``None`` and absent values of an optional field take its default. An int64 array
    (fresh from the JSON reader, owned by no one else) is frozen in place, not copied.
    """
    if isinstance(values, np.ndarray):
        return _frozen(values) if _counts_in_range(values) else None
    types = set(map(type, values))
    defaulted = None
    if field not in _REQUIRED_FIELDS and types - {int}:
        defaulted = np.fromiter((value is None or value is _ABSENT for value in values),
                                dtype=bool, count=len(values))
        values = [0 if default else value
                  for value, default in zip(values, defaulted.tolist())]
        types = set(map(type, values))
    if types - {int}:
        return None
    try:
        column = np.fromiter(values, dtype=np.int64, count=len(values))
    except OverflowError:
        return None
    if not _counts_in_range(column):
        return None
    if defaulted is not None and field == "buffer_bytes":
        column[defaulted] = BUFFER_UNKNOWN
    return _frozen(column)


def _counts_in_range(column: IntColumn) -> bool:
    """Whether every count lies in 0..MAX_COUNT."""
    return not len(column) or (column.min() >= 0 and column.max() <= MAX_COUNT)


def _frozen(column: IntColumn) -> IntColumn:
    """``column`` itself, made read-only."""
    column.flags.writeable = False
    return column


def _checked_row(row: object, index: int, label: str) -> dict[str, Any]:
    """Return one row with defaults filled in, or raise naming the row and field."""
    where = _row_where(label, index, row.get("name") if isinstance(row, Mapping) else None)
    if not isinstance(row, Mapping):
        raise LayerTableError(f"{where}: must be an object, got {_json_type(row)}")
    for field in sorted(_REQUIRED_FIELDS):
        if field not in row:
            raise LayerTableError(f"{where}: missing field {field!r}")
    for field in row:
        if field not in COLUMNS:
            raise LayerTableError(f"{where}: unknown field {field!r} "
                                  f"(known: {', '.join(COLUMNS)})")
    checked: dict[str, Any] = {}
    for field in COLUMNS:
        checked[field] = _checked_value(row.get(field), field, f"{where}, field {field!r}")
    if checked["vector_params"] > checked["params"]:
        raise LayerTableError(f"{where}: vector_params ({checked['vector_params']}) exceeds "
                              f"params ({checked['params']})")
    return checked


def _checked_value(value: object, field: str, where: str) -> object:
    if field in _TEXT_FIELDS:
        problem = _text_problem(value, field)
        if problem:
            raise LayerTableError(f"{where}: {problem}")
        return value
    if value is None:
        if field == "buffer_bytes":
            return BUFFER_UNKNOWN
        if field not in _REQUIRED_FIELDS:
            return 0
    if not _is_int(value):
        raise LayerTableError(f"{where}: must be an integer, got {_json_type(value)} {value!r}")
    count = int(value)
    if count < 0 or count > MAX_COUNT:
        raise LayerTableError(f"{where}: {_count_problem(count, field)}")
    return count


def _text_problem(value: object, field: str) -> str:
    """What is wrong with a text field, or ``""``."""
    if not isinstance(value, str):
        return f"must be a string, got {_json_type(value)} {value!r}"
    if not value:
        return "must not be empty"
    if not encodable(value):
        return f"{value!r} cannot be encoded as UTF-8"
    if field == "weight_dtype" and value not in WEIGHT_DTYPES:
        return f"unknown precision {value!r} (known: {', '.join(WEIGHT_DTYPES)})"
    return ""


def _count_problem(count: int, field: str) -> str:
    if count > MAX_COUNT:
        return f"{count} exceeds 2**62 ({MAX_COUNT})"
    if field == "buffer_bytes":
        return f"must be >= 0 (or null for unknown), got {count}"
    return f"must be >= 0, got {count}"


def _check_document_keys(document: Mapping[str, Any], label: str) -> str:
    """Check the top-level fields of a layers file; return the field holding the table
    (``"layers"`` for version 1, ``"columns"`` for version 2)."""
    if "schema" not in document:
        raise LayerTableError(f"{label}: missing field 'schema'")
    if document["schema"] != LAYERS_SCHEMA:  # first: another kind of file (a plan, say)
        raise LayerTableError(f"{label}: field 'schema' must be {LAYERS_SCHEMA!r}, "
                              f"got {document['schema']!r}")
    if "version" not in document:
        raise LayerTableError(f"{label}: missing field 'version'")
    version = document["version"]
    body = _BODY_FIELDS.get(int(version)) if _is_int(version) else None
    if body is not None and body not in document:
        other = next(((v, field) for v, field in _BODY_FIELDS.items() if field in document), None)
        mixed = (f" (version {version} holds its table in {body!r}; {other[1]!r} belongs to "
                 f"version {other[0]})" if other is not None else "")
        raise LayerTableError(f"{label}: missing field {body!r}{mixed}")
    known = ("schema", "version", *([body] if body else _BODY_FIELDS.values()))
    unknown = sorted(set(document) - set(known))
    if unknown:
        raise LayerTableError(f"{label}: unknown field {unknown[0]!r} "
                              f"(known: {', '.join(known)})")
    if body is None:
        raise LayerTableError(f"{label}: unsupported version {version!r} (this release "
                              f"reads versions {LAYERS_VERSION} and {LAYERS_COLUMNAR_VERSION})")
    return body


def _table_from_document(document: object, label: str) -> LayerTable:
    """The table of a parsed layers file (either version), checked as a whole."""
    if not isinstance(document, dict):
        raise LayerTableError(f"{label}: the top level must be a JSON object, "
                              f"got {_json_type(document)}")
    body = _check_document_keys(document, label)
    if body == "columns":
        return _table_from_columns(document["columns"], label)
    return _table_from_rows(document["layers"], label)


def _table_from_row_columns(document: object, rows: int) -> LayerTable | None:
    """The table of a version 1 file whose rows were read as columns (field -> int64
    array or list of ``rows`` values), when every field passes every check; else
    ``None``, and the caller reads the rows one by one to word the error."""
    if not isinstance(document, dict):
        return None
    try:
        body = _check_document_keys(document, "")
    except LayerTableError:
        return None
    columns = document[body]
    if body != "layers" or not isinstance(columns, dict) or not set(columns) <= set(COLUMNS):
        return None
    if any(len(values) != rows for values in columns.values()):  # not the reader's columns
        return None
    # A field no row holds reads as null: its default, or a refusal where it is required.
    checked = _checked_columns({field: columns.get(field, [None] * rows) for field in COLUMNS})
    return None if checked is None else LayerTable._from_checked(checked)


def _table_from_columns(columns: object, label: str) -> LayerTable:
    """Validate the columns of a version 2 file and build the table.

    The columns are checked as a whole when they pass every check; otherwise they are
    turned into rows and checked one by one, so that the message names the first bad
    row and field, as for version 1.
    """
    arrays = _column_lists(columns, label)
    length = len(arrays["name"])
    gathered = {field: arrays.get(field, [None] * length) for field in COLUMNS}
    checked = _checked_columns(gathered)
    if checked is not None:
        return LayerTable._from_checked(checked)
    lists = {field: values.tolist() if isinstance(values, np.ndarray) else values
             for field, values in arrays.items()}
    rows = [dict(zip(lists, values)) for values in zip(*lists.values())]
    return _table_from_rows(rows, label)


def _column_lists(columns: object, label: str) -> dict[str, list[Any] | IntColumn]:
    """The arrays of a version 2 ``columns`` object, checked for names and lengths: lists,
    or int64 arrays where the native JSON reader found only integers."""
    if not isinstance(columns, dict):
        raise LayerTableError(f"{label}: field 'columns' must be an object, "
                              f"got {_json_type(columns)}")
    for field in sorted(_REQUIRED_FIELDS):
        if field not in columns:
            raise LayerTableError(f"{label}: missing column {field!r}")
    for field, values in columns.items():
        if field not in COLUMNS:
            raise LayerTableError(f"{label}: unknown column {field!r} "
                                  f"(known: {', '.join(COLUMNS)})")
        if not isinstance(values, (list, np.ndarray)):
            raise LayerTableError(f"{label}: column {field!r} must be an array, "
                                  f"got {_json_type(values)}")
    length = len(columns["name"])
    for field, values in columns.items():
        if len(values) != length:
            raise LayerTableError(f"{label}: column {field!r} has {len(values)} entries, "
                                  f"column 'name' has {length}")
    return columns


# -- transformer configs ---------------------------------------------------------------

_GPT2_TYPES: Final[frozenset[str]] = frozenset({"gpt2"})
_LLAMA_TYPES: Final[frozenset[str]] = frozenset({"llama", "mistral", "mixtral"})
_ABSENT: Final = object()


@dataclass(frozen=True)
class _DecoderShape:
    """Hyperparameters of a decoder-only transformer, family differences made explicit."""

    vocab: int
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    positions: int  # rows of a learned position table; 0 for rotary models
    gated_mlp: bool
    attention_bias: bool
    mlp_bias: bool
    norm_bias: bool
    experts: int  # 0 for a dense MLP
    experts_per_token: int
    tied: bool

    @property
    def norm_params(self) -> int:
        return self.hidden * (2 if self.norm_bias else 1)

    @property
    def mlp_width(self) -> int:
        """Elements per token between the up and down projections of one expert."""
        return 2 * self.intermediate if self.gated_mlp else self.intermediate


@dataclass(frozen=True)
class _Block:
    """One row of a built table, before it becomes columns."""

    name: str
    kind: str
    params: int
    act_elems: int
    flops: int
    out_channels: int
    vector_params: int
    tied_params: int = 0

    def merged(self, other: _Block, name: str, kind: str) -> _Block:
        """Two blocks run one after the other as one row: counts add, activations peak."""
        return _Block(name, kind, self.params + other.params,
                      max(self.act_elems, other.act_elems), self.flops + other.flops,
                      self.out_channels + other.out_channels,
                      self.vector_params + other.vector_params,
                      self.tied_params + other.tied_params)

    def record(self, weight_dtype: str) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "params": self.params,
                "weight_dtype": weight_dtype, "act_elems_per_token": self.act_elems,
                "buffer_bytes": None, "flops_per_token": self.flops,
                "out_channels": self.out_channels, "vector_params": self.vector_params,
                "tied_params": self.tied_params}


def _transformer_table(
    config: ConfigSource, granularity: str, weight_dtype: str
) -> tuple[LayerTable, Mapping[str, Any]]:
    """:meth:`LayerTable.from_transformer_config`'s table, with the config it read (a
    file is read once)."""
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")
    if weight_dtype not in WEIGHT_DTYPES:
        raise ValueError(f"weight_dtype must be one of {WEIGHT_DTYPES}, "
                         f"got {weight_dtype!r}")
    settings, label = _load_config(config)
    shape = _decoder_shape(settings, label)
    blocks = _decoder_blocks(shape, split=granularity == "sublayer")
    records = [block.record(weight_dtype) for block in blocks]
    return _table_from_rows(records, label), settings


def _load_config(config: object) -> tuple[Mapping[str, Any], str]:
    if isinstance(config, Mapping):
        return config, "config"
    if isinstance(config, (str, os.PathLike)):
        label = f"config file {os.fspath(config)!r}"
        document = _read_json_document(config, what="config file", error=LayerTableError)
        if not isinstance(document, dict):
            raise LayerTableError(f"{label}: the top level must be a JSON object, "
                                  f"got {_json_type(document)}")
        return document, label
    raise TypeError(f"config must be a mapping or a path, got {type(config).__name__}")


def _decoder_shape(config: Mapping[str, Any], label: str) -> _DecoderShape:
    model_type = config.get("model_type")
    if model_type is None:
        guess = "gpt2" if "n_embd" in config else "llama"
        try:
            return _decoder_shape({**config, "model_type": guess}, label)
        except LayerTableError as exc:
            if not str(exc).startswith(f"{label}: missing field "):
                raise
            raise LayerTableError(f"{exc} (the config names no model_type, so it was read as "
                                  f"{guess}'s; a layer table names its 'schema')") from None
    if model_type in _GPT2_TYPES:
        return _gpt2_shape(config, label)
    if model_type in _LLAMA_TYPES:
        return _llama_shape(config, label, model_type)
    supported = ", ".join(sorted(_GPT2_TYPES | _LLAMA_TYPES))
    raise LayerTableError(f"{label}: unsupported model_type {model_type!r} "
                          f"(supported: {supported})")


def _gpt2_shape(config: Mapping[str, Any], label: str) -> _DecoderShape:
    hidden = _config_int(config, "n_embd", label)
    heads = _config_int(config, "n_head", label)
    inner = _config_int(config, "n_inner", label, default=4 * hidden)
    return _DecoderShape(
        vocab=_config_int(config, "vocab_size", label), hidden=hidden,
        layers=_config_layers(config, "n_layer", label), heads=heads, kv_heads=heads,
        head_dim=_head_dim(config, hidden, heads, label, key="n_embd"),
        intermediate=inner, positions=_config_int(config, "n_positions", label),
        gated_mlp=False, attention_bias=True, mlp_bias=True, norm_bias=True,
        experts=0, experts_per_token=0,
        tied=_config_bool(config, "tie_word_embeddings", label, default=True),
    )


def _llama_shape(config: Mapping[str, Any], label: str, model_type: str) -> _DecoderShape:
    hidden = _config_int(config, "hidden_size", label)
    heads = _config_int(config, "num_attention_heads", label)
    kv_heads = _config_int(config, "num_key_value_heads", label, default=heads)
    if heads % kv_heads:
        raise LayerTableError(f"{label}: num_attention_heads ({heads}) is not a multiple of "
                              f"num_key_value_heads ({kv_heads})")
    experts, active = _experts(config, label, model_type)
    return _DecoderShape(
        vocab=_config_int(config, "vocab_size", label), hidden=hidden,
        layers=_config_layers(config, "num_hidden_layers", label), heads=heads,
        kv_heads=kv_heads, head_dim=_head_dim(config, hidden, heads, label, key="hidden_size"),
        intermediate=_config_int(config, "intermediate_size", label), positions=0,
        gated_mlp=True,
        attention_bias=_config_bool(config, "attention_bias", label, default=False),
        mlp_bias=_config_bool(config, "mlp_bias", label, default=False), norm_bias=False,
        experts=experts, experts_per_token=active,
        tied=_config_bool(config, "tie_word_embeddings", label, default=False),
    )


def _experts(config: Mapping[str, Any], label: str, model_type: str) -> tuple[int, int]:
    """(experts, experts per token), or (0, 0) for a dense MLP."""
    keys = ("num_local_experts", "num_experts_per_tok")
    present = [key for key in keys if config.get(key) is not None]
    if not present and model_type != "mixtral":
        return 0, 0
    for key in keys:
        if key not in present:
            raise LayerTableError(f"{label}: missing field {key!r} (needed for a "
                                  f"mixture-of-experts model)")
    experts = _config_int(config, keys[0], label)
    active = _config_int(config, keys[1], label)
    if active > experts:
        raise LayerTableError(f"{label}: num_experts_per_tok ({active}) exceeds "
                              f"num_local_experts ({experts})")
    return experts, active


def _head_dim(config: Mapping[str, Any], hidden: int, heads: int, label: str,
              *, key: str) -> int:
    if config.get("head_dim") is not None:
        return _config_int(config, "head_dim", label)
    if hidden % heads:
        head_key = "n_head" if key == "n_embd" else "num_attention_heads"
        raise LayerTableError(f"{label}: {key} ({hidden}) is not a multiple of "
                              f"{head_key} ({heads})")
    return hidden // heads


def _config_int(config: Mapping[str, Any], key: str, label: str,
                *, default: object = _ABSENT, maximum: int = MAX_COUNT) -> int:
    """A positive integer hyperparameter; ``default`` applies when absent or null."""
    value = config.get(key)
    if value is None:
        if default is _ABSENT:
            raise LayerTableError(f"{label}: missing field {key!r}")
        value = default
    if not _is_int(value):
        raise LayerTableError(f"{label}: field {key!r} must be an integer, "
                              f"got {_json_type(value)} {value!r}")
    count = int(value)
    if not 0 < count <= maximum:
        bound = "2**62" if maximum == MAX_COUNT else str(maximum)
        raise LayerTableError(f"{label}: field {key!r} must be in [1, {bound}], got {count}")
    return count


def _config_layers(config: Mapping[str, Any], key: str, label: str) -> int:
    """The number of decoder layers, within what one table of Python rows can hold."""
    return _config_int(config, key, label, maximum=_MAX_CONFIG_LAYERS)


def _config_bool(config: Mapping[str, Any], key: str, label: str, *, default: bool) -> bool:
    value = config.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise LayerTableError(f"{label}: field {key!r} must be true or false, "
                              f"got {_json_type(value)} {value!r}")
    return value


def _decoder_blocks(shape: _DecoderShape, *, split: bool) -> list[_Block]:
    blocks = [_embedding_block(shape)]
    for index in range(shape.layers):
        attention = _attention_block(shape, f"layers.{index}.attn")
        mlp = _mlp_block(shape, f"layers.{index}.mlp")
        if split:
            blocks += [attention, mlp]
        else:
            blocks.append(attention.merged(mlp, f"layers.{index}", "decoder"))
    blocks += [_final_norm_block(shape), _head_block(shape)]
    return blocks


def _embedding_block(shape: _DecoderShape) -> _Block:
    rows = shape.vocab + shape.positions
    return _Block("embed", "embedding", params=rows * shape.hidden, act_elems=shape.hidden,
                  flops=0, out_channels=rows, vector_params=0)


def _attention_block(shape: _DecoderShape, name: str) -> _Block:
    """Pre-norm, q/k/v projections and output projection."""
    h, q = shape.hidden, shape.heads * shape.head_dim
    kv = shape.kv_heads * shape.head_dim
    matrices = h * (q + 2 * kv) + q * h
    biases = (q + 2 * kv + h) if shape.attention_bias else 0
    vectors = biases + shape.norm_params
    return _Block(name, "attention", params=matrices + vectors,
                  act_elems=2 * h + q + 2 * kv, flops=2 * matrices,
                  out_channels=q + 2 * kv + h, vector_params=vectors)


def _mlp_block(shape: _DecoderShape, name: str) -> _Block:
    """Pre-norm and the MLP, or the router and experts of a mixture of experts."""
    h, width = shape.hidden, shape.mlp_width
    matrices = (width + shape.intermediate) * h  # up (and gate) plus down
    biases = (width + h) if shape.mlp_bias else 0
    if not shape.experts:
        return _Block(name, "mlp", params=matrices + biases + shape.norm_params,
                      act_elems=2 * h + width, flops=2 * matrices,
                      out_channels=width + h, vector_params=biases + shape.norm_params)
    experts, active = shape.experts, shape.experts_per_token
    router = h * experts
    return _Block(name, "moe",
                  params=experts * (matrices + biases) + router + shape.norm_params,
                  act_elems=2 * h + experts + active * width,
                  flops=2 * (router + active * matrices),
                  out_channels=experts * (width + h) + experts,
                  vector_params=experts * biases + shape.norm_params)


def _final_norm_block(shape: _DecoderShape) -> _Block:
    return _Block("final_norm", "norm", params=shape.norm_params, act_elems=2 * shape.hidden,
                  flops=0, out_channels=0, vector_params=shape.norm_params)


def _head_block(shape: _DecoderShape) -> _Block:
    matrix = shape.vocab * shape.hidden
    return _Block("lm_head", "head", params=0 if shape.tied else matrix,
                  act_elems=shape.hidden + shape.vocab, flops=2 * matrix,
                  out_channels=shape.vocab, vector_params=0,
                  tied_params=matrix if shape.tied else 0)
