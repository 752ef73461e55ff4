"""Per-layer working sets in bytes: the size columns the partitioner consumes.

:func:`working_set` turns a :class:`~layerwise_fast.layers.LayerTable` and a run
configuration (batch, chunk of tokens, activation precision) into three int64 columns,
``weights``, ``activations`` and ``buffers``, one entry per row of the table.

Weights, by the row's precision (``P`` = ``params + tied_params``, ``V`` =
``vector_params``, ``M`` = ``P - V`` parameters in matrices, ``O`` = ``out_channels``):

=========  ===========================================================================
bf16/fp16  ``2 P``
fp32       ``4 P``
fp8/int8   ``M + 2 V + 2 O``: one byte per matrix weight, 1-D tensors (biases, norm
           weights) kept in bf16, one 2-byte bf16 scale per output channel
int4       ``ceil(M / 2) + 2 V + 2 ceil(M / 128)``: half a byte per matrix weight, 1-D
           tensors in bf16, one 2-byte scale per group of 128 weights; groups are
           counted over the row's matrix weights together, which equals the per-matrix
           count whenever each matrix's input width is a multiple of 128
=========  ===========================================================================

A tied head's borrowed matrix (``tied_params``) is counted at the head row's precision.

Lookups: a row whose kind is in :data:`LOOKUP_KINDS` (``embedding``, and torch's
``Embedding``) and that records its table's rows in ``out_channels`` (``R``) reads one
row per token, not its whole table. For ``t`` tokens (``batch x chunk_tokens``) its
weights are the rows those tokens read, ``min(W, ceil(W x t / R))`` for the row's
whole weight bytes ``W`` (exact at every precision whose bytes split evenly over the
rows: all but int4 tables whose width is not a multiple of 128); the table itself
stays in HBM. A lookup row that records no ``out_channels`` counts its whole table.
A learned position table held in the same row (GPT-2's ``embed``) is counted as rows
of that table, one per token: the position row each token also reads is not counted.

Activations: ``ceil(batch x chunk_tokens x act_elems_per_token x act_bytes x ratio)``,
with ``ratio`` read exactly (a float is the decimal it prints as) and the product
rounded up to whole bytes.

Buffers: the table's ``buffer_bytes`` where recorded, else the default for the row's
kind. Section 2.1 of the methodology reports about 2-5 MB of operator buffers per
transformer layer from profiling; :data:`DEFAULT_BUFFER_BYTES` sets 2 MB (decimal)
for each matrix-product sublayer (attention, MLP, mixture of experts, head), so a whole
decoder layer gets 4 MB, and none for lookups and norms. These are planning defaults,
not measurements: record profiled ``buffer_bytes`` in the table or pass
``default_buffers`` to override them.

All arithmetic is exact. Tables whose counts stay within bounds that rule out int64
overflow (every count at most 2**59, activation elements at most ``INT64_MAX`` divided
by the per-element factor) are computed column-wise in int64; any other table is
computed row by row in Python ints, where every result is checked against the int64
range and an overflow raises :class:`OverflowError` naming the layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from types import MappingProxyType
from typing import Final, Mapping

import numpy as np
import numpy.typing as npt

from .layers import BUFFER_UNKNOWN, WEIGHT_DTYPES, LayerTable
from .units import INT64_MAX, ByteCount, FractionLike, parse_bytes, parse_fraction

__all__ = [
    "DEFAULT_BUFFER_BYTES",
    "INT4_GROUP_SIZE",
    "LOOKUP_KINDS",
    "Lookups",
    "SCALE_BYTES",
    "WorkingSet",
    "gathered_weights",
    "lookup_rows",
    "working_set",
]

SCALE_BYTES: Final[int] = 2
"""Bytes per quantization scale (bf16)."""
INT4_GROUP_SIZE: Final[int] = 128
"""Weights sharing one scale at int4."""

DEFAULT_BUFFER_BYTES: Final[Mapping[str, int]] = MappingProxyType(
    {
        "decoder": 4_000_000,
        "attention": 2_000_000,
        "mlp": 2_000_000,
        "moe": 2_000_000,
        "head": 2_000_000,
        "embedding": 0,
        "norm": 0,
    }
)
"""Operator workspace in bytes per row kind, used where the table records none."""

LOOKUP_KINDS: Final[frozenset[str]] = frozenset({"embedding", "Embedding"})
"""Row kinds that read one table row per token (see the module docstring)."""

_SIZE_FIELDS: Final[tuple[str, ...]] = ("weights", "activations", "buffers")
_WIDE_BYTES: Final[Mapping[str, int]] = MappingProxyType({"bf16": 2, "fp16": 2, "fp32": 4})
_FAST_COUNT_LIMIT: Final[int] = 2**59
"""Counts up to which the int64 weight formulas cannot overflow (see _fits_fast_path)."""

IntColumn = npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class WorkingSet:
    """Working-set bytes per layer, as three read-only int64 columns of equal length.

    Attributes:
        names: the layers' names (read-only object array), for messages and reports.
        weights: weight bytes per layer.
        activations: activation bytes per layer.
        buffers: operator-buffer bytes per layer.
    """

    names: npt.NDArray[np.object_]
    weights: IntColumn
    activations: IntColumn
    buffers: IntColumn

    def __post_init__(self) -> None:
        """Store read-only copies; refuse wrong dtypes, shapes, negatives and overflow.

        Raises:
            TypeError: a column is not an int64 numpy array.
            ValueError: ``names`` is not one-dimensional, a column's shape differs from
                it, or a value is negative.
            OverflowError: a layer's three columns sum beyond int64.
        """
        names = np.array(self.names, dtype=object, copy=True)
        if names.ndim != 1:
            raise ValueError(f"WorkingSet.names must be one-dimensional, got shape {names.shape}")
        names.flags.writeable = False
        object.__setattr__(self, "names", names)
        for field in _SIZE_FIELDS:
            object.__setattr__(self, field, _frozen_sizes(getattr(self, field), field, names))
        _check_sums(self.weights, self.activations, self.buffers, names)

    def __len__(self) -> int:
        return len(self.names)

    def as_columns(self) -> dict[str, IntColumn]:
        """``{"weights": ..., "activations": ..., "buffers": ...}``, the mapping form
        the partitioner accepts (the arrays themselves, not copies)."""
        return {"weights": self.weights, "activations": self.activations,
                "buffers": self.buffers}

    def totals(self) -> IntColumn:
        """Per-layer sum of the three columns (int64; the sums were checked on creation)."""
        return self.weights + self.activations + self.buffers


def working_set(
    table: LayerTable,
    *,
    batch: int,
    chunk_tokens: int,
    act_bytes: int = 2,
    weight_dtype: str | None = None,
    working_set_ratio: FractionLike = 1,
    default_buffers: Mapping[str, ByteCount] | None = None,
) -> WorkingSet:
    """Compute the working set of every row of ``table`` (formulas in the module docstring).

    A lookup row's weights are the table rows its ``batch x chunk_tokens`` tokens read,
    not its whole table (module docstring, "Lookups").

    Args:
        table: the layers.
        batch: sequences processed together (positive int).
        chunk_tokens: tokens per sequence in one chunk (positive int).
        act_bytes: bytes per activation element (positive int; 2 for bf16).
        weight_dtype: a precision from :data:`~layerwise_fast.layers.WEIGHT_DTYPES` for
            every row, overriding the table's ``weight_dtype`` column; ``None`` keeps it.
        working_set_ratio: share of the chunk's activations held at once, between
            ``1e-40`` and ``1e30`` (a fraction such as ``"1/2"``, a float, or an int).
        default_buffers: buffer bytes per kind for rows whose ``buffer_bytes`` is
            unknown (values in any :func:`~layerwise_fast.units.parse_bytes` form);
            ``None`` uses :data:`DEFAULT_BUFFER_BYTES`.

    Raises:
        TypeError: an argument has the wrong type (``bool`` is not an int here).
        ValueError: a non-positive count, an unknown precision, a bad ratio, or a row
            with unknown buffers whose kind ``default_buffers`` lacks.
        OverflowError: a layer's weights, activations, buffers or their sum exceed int64;
            the message names the layer.
    """
    if not isinstance(table, LayerTable):
        raise TypeError(f"table must be a LayerTable, got {type(table).__name__}")
    per_token = (_positive_int(batch, "batch") * _positive_int(chunk_tokens, "chunk_tokens")
                 * _positive_int(act_bytes, "act_bytes"))
    ratio = parse_fraction(working_set_ratio, name="working_set_ratio")
    defaults = _buffer_defaults(default_buffers)
    _check_weight_dtype(weight_dtype)
    weights, acts, buffers = _columns(table, per_token, ratio, defaults, weight_dtype)
    gathered = gathered_weights(weights, *lookup_rows(table), batch * chunk_tokens)
    return WorkingSet(table.name, gathered, acts, buffers)


def whole_working_set(table: LayerTable, *, act_bytes: int, weight_dtype: str | None,
                      default_buffers: Mapping[str, ByteCount] | None) -> WorkingSet:
    """The working set of one token with every lookup's whole table as its weights:
    the chunk-independent sizes a plan starts from (arguments as :func:`working_set`)."""
    if not isinstance(table, LayerTable):
        raise TypeError(f"table must be a LayerTable, got {type(table).__name__}")
    _check_weight_dtype(weight_dtype)
    defaults = _buffer_defaults(default_buffers)
    per_token = _positive_int(act_bytes, "act_bytes")
    return WorkingSet(table.name, *_columns(table, per_token, Fraction(1), defaults,
                                            weight_dtype))


def lookup_rows(table: LayerTable) -> tuple[IntColumn, IntColumn]:
    """``(layers, rows)``: the indices of the lookup rows that record their table's rows
    (kind in :data:`LOOKUP_KINDS`, ``out_channels > 0``), and those row counts."""
    if not isinstance(table, LayerTable):
        raise TypeError(f"table must be a LayerTable, got {type(table).__name__}")
    if LOOKUP_KINDS.isdisjoint(table.kinds):
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    rows = table.out_channels
    layers = np.flatnonzero(of_lookup_kind(table) & (rows > 0)).astype(np.int64)
    return layers, rows[layers]


def of_lookup_kind(table: LayerTable) -> npt.NDArray[np.bool_]:
    """Which rows have a kind in :data:`LOOKUP_KINDS` (whether or not they record their
    table's rows)."""
    return np.isin(table.kind, sorted(LOOKUP_KINDS.intersection(table.kinds)))


@dataclass(frozen=True, eq=False)
class Lookups:
    """The lookups of a plan: which layers, their tables' rows and their whole tables'
    bytes as planned (read-only int64 columns of one length, ``layers`` ascending).
    """

    layers: IntColumn
    rows: IntColumn
    table_bytes: IntColumn

    def __post_init__(self) -> None:
        """Store read-only int64 copies.

        Raises:
            ValueError: columns of different lengths, layers not strictly ascending from
                0, a table of no rows or negative bytes.
        """
        for field in ("layers", "rows", "table_bytes"):
            column = np.array(getattr(self, field), dtype=np.int64).reshape(-1)
            column.flags.writeable = False
            object.__setattr__(self, field, column)
        if not len(self.layers) == len(self.rows) == len(self.table_bytes):
            raise ValueError(f"Lookups columns differ in length: layers {len(self.layers)}, "
                             f"rows {len(self.rows)}, table_bytes {len(self.table_bytes)}")
        if self.layers.size and (int(self.layers[0]) < 0 or (np.diff(self.layers) <= 0).any()):
            raise ValueError("Lookups.layers must rise strictly from 0 or more")
        if (self.rows < 1).any() or (self.table_bytes < 0).any():
            raise ValueError("Lookups.rows must be >= 1 and table_bytes >= 0")

    @classmethod
    def none(cls) -> Lookups:
        """No lookups."""
        empty = np.zeros(0, dtype=np.int64)
        return cls(empty, empty, empty)

    def __len__(self) -> int:
        return len(self.layers)

    def whole(self, weights: IntColumn) -> IntColumn:
        """``weights`` with each lookup's entry set to its whole table's bytes."""
        if not len(self):
            return weights
        whole = weights.copy()
        whole[self.layers] = self.table_bytes
        return whole

    def gathered(self, weights: IntColumn, tokens: int) -> IntColumn:
        """``weights`` with each lookup's entry set to the rows ``tokens`` tokens read
        of its whole table (:func:`gathered_weights`)."""
        return gathered_weights(self.whole(weights), self.layers, self.rows, tokens)


def gathered_weights(weights: IntColumn, layers: IntColumn, rows: IntColumn,
                     tokens: int) -> IntColumn:
    """``weights`` with each lookup ``layers[i]`` (a table of ``rows[i]`` rows) cut to
    the rows ``tokens`` tokens read, ``min(W, ceil(W x tokens / rows))``; exact, and
    ``weights`` itself where there is no lookup."""
    if not layers.size:
        return weights
    result = weights.copy()
    whole = weights[layers]
    if tokens <= INT64_MAX // max(int(whole.max()), 1):  # whole x tokens fits int64
        result[layers] = np.minimum(whole, -(-(whole * tokens) // rows))
        return result
    for layer, count in zip(layers.tolist(), rows.tolist()):
        if tokens < count:  # Python ints
            result[layer] = -(-int(weights[layer]) * tokens // count)
    return result


def _columns(table: LayerTable, per_token: int, ratio: Fraction, defaults: Mapping[str, int],
             weight_dtype: str | None) -> tuple[IntColumn, IntColumn, IntColumn]:
    """Whole weights, activations and buffers: int64 columns where that is exact, else
    computed row by row (see :func:`_exact_columns`)."""
    if (_some_kind_lacks_default(table, defaults) or ratio.denominator > INT64_MAX
            or not _fits_fast_path(table, per_token * ratio.numerator, defaults)):
        return _exact_columns(table, per_token, ratio, defaults, weight_dtype)
    return (_fast_weight_bytes(table, weight_dtype),
            _fast_activation_bytes(table, per_token * ratio.numerator, ratio.denominator),
            _fast_buffer_bytes(table, defaults))


def _exact_columns(table: LayerTable, per_token: int, ratio: Fraction,
                   defaults: Mapping[str, int], weight_dtype: str | None,
                   ) -> tuple[IntColumn, IntColumn, IntColumn]:
    """The columns in Python ints, one row at a time: exact for any input, and the
    path that names the layer whose size exceeds int64 or whose kind has no default."""
    dtypes = _row_dtypes(table, weight_dtype)
    names = table.name
    weights = [_weight_bytes(*row) for row in zip(
        dtypes, table.params.tolist(), table.tied_params.tolist(),
        table.vector_params.tolist(), table.out_channels.tolist())]
    activations = [_ceil(per_token * elems * ratio.numerator, ratio.denominator)
                   for elems in table.act_elems_per_token.tolist()]
    buffers = _buffer_bytes(table, defaults)
    for what, column in (("weight", weights), ("activation", activations),
                         ("buffer", buffers)):
        _check_int64(column, names, what)
    return _int64(weights), _int64(activations), _int64(buffers)


def _fits_fast_path(table: LayerTable, activation_factor: int,
                    defaults: Mapping[str, int]) -> bool:
    """Whether int64 arithmetic computes every size of ``table`` exactly.

    Weights: with every count at most :data:`_FAST_COUNT_LIMIT` (2**59), the largest
    formula, ``4 (params + tied_params)``, stays below 2**62. Activations: each
    ``act_elems_per_token`` at most ``INT64_MAX // activation_factor``. Buffers: every
    default at most INT64_MAX. Sizes then fit int64 by themselves (their sums are
    checked by :class:`WorkingSet`).
    """
    if len(table) == 0:
        return True
    counts = (table.params, table.tied_params, table.vector_params, table.out_channels)
    if max(int(column.max()) for column in counts) > _FAST_COUNT_LIMIT:
        return False
    if any(size > INT64_MAX for size in defaults.values()):
        return False
    most_elements = int(table.act_elems_per_token.max())
    if activation_factor > INT64_MAX:
        return most_elements == 0
    return most_elements <= INT64_MAX // activation_factor


def _fast_weight_bytes(table: LayerTable, weight_dtype: str | None) -> IntColumn:
    """Weight bytes per row in int64 (bounds checked by :func:`_fits_fast_path`)."""
    total = table.params + table.tied_params
    matrix = total - table.vector_params
    vectors = SCALE_BYTES * table.vector_params
    result = np.zeros(len(table), dtype=np.int64)
    for dtype, rows in _rows_by_dtype(table, weight_dtype):
        if dtype in _WIDE_BYTES:
            result[rows] = _WIDE_BYTES[dtype] * total[rows]
        elif dtype in ("fp8", "int8"):
            result[rows] = (matrix[rows] + vectors[rows]
                            + SCALE_BYTES * table.out_channels[rows])
        elif dtype == "int4":
            groups = -(-matrix[rows] // INT4_GROUP_SIZE)
            result[rows] = -(-matrix[rows] // 2) + vectors[rows] + SCALE_BYTES * groups
        else:
            raise ValueError(f"unknown weight precision {dtype!r}")
    return result


def _rows_by_dtype(table: LayerTable, weight_dtype: str | None,
                   ) -> list[tuple[str, npt.NDArray[np.bool_] | slice]]:
    """``(precision, rows)`` for each precision the rows use; ``rows`` is a mask, or
    the whole-column slice when every row has that precision."""
    present = {weight_dtype} if weight_dtype is not None else set(table.weight_dtype.tolist())
    if len(present) == 1:
        return [(present.pop(), slice(None))]
    column = table.weight_dtype
    return [(dtype, column == dtype) for dtype in sorted(present)]


def _fast_activation_bytes(table: LayerTable, factor: int, denominator: int) -> IntColumn:
    """``ceil(act_elems_per_token x factor / denominator)`` per row, in int64."""
    if factor > INT64_MAX:  # every row holds no activations (see _fits_fast_path)
        return np.zeros(len(table), dtype=np.int64)
    return -(-(table.act_elems_per_token * factor) // denominator)


def _fast_buffer_bytes(table: LayerTable, defaults: Mapping[str, int]) -> IntColumn:
    """Recorded buffer bytes, or the kind's default where unknown (every such kind has
    one; see :func:`_some_kind_lacks_default`)."""
    result = table.buffer_bytes.copy()
    unknown = result == BUFFER_UNKNOWN
    if unknown.any():
        kinds = table.kind
        for kind in set(kinds[unknown].tolist()):
            result[unknown & (kinds == kind)] = defaults[kind]
    return result


def _some_kind_lacks_default(table: LayerTable, defaults: Mapping[str, int]) -> bool:
    """Whether a row with unknown buffers has a kind that ``defaults`` lacks."""
    unknown = table.buffer_bytes == BUFFER_UNKNOWN
    return bool(unknown.any()) and bool(set(table.kind[unknown].tolist()) - set(defaults))


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return int(value)


def _buffer_defaults(default_buffers: Mapping[str, ByteCount] | None) -> dict[str, int]:
    if default_buffers is None:
        return dict(DEFAULT_BUFFER_BYTES)
    if not isinstance(default_buffers, Mapping):
        raise TypeError(f"default_buffers must be a mapping of kind to bytes, "
                        f"got {type(default_buffers).__name__}")
    return {kind: parse_bytes(size, name=f"default_buffers[{kind!r}]", positive=False)
            for kind, size in default_buffers.items()}


def _check_weight_dtype(weight_dtype: str | None) -> None:
    if weight_dtype is not None and weight_dtype not in WEIGHT_DTYPES:
        raise ValueError(f"weight_dtype must be one of {', '.join(WEIGHT_DTYPES)}, "
                         f"got {weight_dtype!r}")


def _row_dtypes(table: LayerTable, weight_dtype: str | None) -> list[str]:
    if weight_dtype is None:
        return list(table.weight_dtype.tolist())
    return [weight_dtype] * len(table)


def _weight_bytes(dtype: str, params: int, tied: int, vectors: int, out_channels: int) -> int:
    """Bytes of one row's weights at ``dtype`` (formulas in the module docstring)."""
    total = params + tied
    if dtype in _WIDE_BYTES:
        return _WIDE_BYTES[dtype] * total
    matrix = total - vectors
    if dtype in ("fp8", "int8"):
        return matrix + SCALE_BYTES * vectors + SCALE_BYTES * out_channels
    if dtype == "int4":
        groups = _ceil(matrix, INT4_GROUP_SIZE)
        return _ceil(matrix, 2) + SCALE_BYTES * vectors + SCALE_BYTES * groups
    raise ValueError(f"unknown weight precision {dtype!r}")


def _buffer_bytes(table: LayerTable, defaults: Mapping[str, int]) -> list[int]:
    recorded = table.buffer_bytes.tolist()
    result = []
    for index, (kind, size) in enumerate(zip(table.kind.tolist(), recorded)):
        if size != BUFFER_UNKNOWN:
            result.append(size)
        elif kind in defaults:
            result.append(defaults[kind])
        else:
            raise ValueError(
                f"layer {index} ({table.name[index]!r}) of kind {kind!r} records no "
                f"buffer_bytes, and no default is set for that kind (defaults: "
                f"{', '.join(sorted(defaults)) or 'none'}): give the row its buffer_bytes "
                f"in the layer table, or, in Python, default_buffers={{{kind!r}: bytes}}")
    return result


def _ceil(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def _check_int64(column: list[int], names: npt.NDArray[np.object_], what: str) -> None:
    for index, value in enumerate(column):
        if value > INT64_MAX:
            raise OverflowError(f"layer {index} ({names[index]!r}): {what} bytes {value} "
                                f"exceed the int64 range (at most {INT64_MAX})")


def _int64(column: list[int]) -> IntColumn:
    return np.array(column, dtype=np.int64).reshape(len(column))


def _frozen_sizes(column: object, field: str, names: npt.NDArray[np.object_]) -> IntColumn:
    """A read-only int64 copy of one size column, checked against ``names``."""
    if not isinstance(column, np.ndarray) or column.dtype != np.int64:
        raise TypeError(f"WorkingSet.{field} must be an int64 numpy array")
    if column.shape != names.shape:
        raise ValueError(f"WorkingSet.{field} has shape {column.shape}, "
                         f"expected {names.shape}")
    if column.size and int(column.min()) < 0:
        index = int(np.argmax(column < 0))
        raise ValueError(f"layer {index} ({names[index]!r}): {field} must not be negative, "
                         f"got {int(column[index])}")
    frozen = column.copy()
    frozen.flags.writeable = False
    return frozen


def _check_sums(weights: IntColumn, activations: IntColumn, buffers: IntColumn,
                names: npt.NDArray[np.object_]) -> None:
    """Raise OverflowError naming the first layer whose three sizes sum beyond int64."""
    if not weights.size or int(weights.max()) + int(activations.max()) + int(buffers.max()) <= INT64_MAX:
        return  # no layer can (sizes are non-negative): skip the per-layer test
    headroom = INT64_MAX - buffers  # non-negative sizes: no wrap in these differences
    over = (activations > headroom) | (weights > headroom - np.minimum(activations, headroom))
    bad = np.flatnonzero(over)
    if bad.size:
        index = int(bad[0])
        total = int(weights[index]) + int(activations[index]) + int(buffers[index])
        raise OverflowError(f"layer {index} ({names[index]!r}): working-set bytes {total} "
                            f"exceed the int64 range (at most {INT64_MAX})")
