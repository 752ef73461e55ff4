"""How each layer's working set scales with the tokens of one chunk, exactly.

A layer's activations grow linearly with the tokens one chunk holds (``batch``
sequences x ``chunk`` tokens each). :func:`~layerwise_fast.workingset.working_set`
counts them as ``ceil(tokens x a x r)`` bytes, where ``a`` is the layer's activation
bytes per token (``act_elems_per_token x act_bytes``) and ``r`` the working-set ratio.
:class:`UnitSizes` keeps ``a``, ``r``, the weights and the buffers of every layer (one
:func:`working_set` pass), and :func:`activations` evaluates the formula for any token
count in one numpy pass, with the same result as :func:`working_set`.

A lookup (an embedding) holds the table rows its tokens read, which also grow with the
tokens, up to its whole table: :meth:`UnitSizes.weights_for` gives them, and
:func:`fit_beside_weights` the largest token count at which rows and activations fit.

The formula is monotone in the tokens, so each layer has a largest token count at which
it fits a room of ``X`` bytes, in closed form: the largest ``t`` with ``ceil(t a r) <= X``
is ``floor(X / (a r))`` (:func:`fit_tokens`). The largest chunk at which every layer
fits is one minimum over the layers, found without a search (:func:`chunk_for`).

All sizes are int64 bytes computed with integer arithmetic; where an intermediate
product could leave the int64 range the computation falls back to Python integers, and
a result outside int64 raises :class:`OverflowError` naming the layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from types import MappingProxyType
from typing import Any, Final, Mapping, Sequence, Union

import numpy as np
import numpy.typing as npt

from .layers import LayerTable
from .units import INT64_MAX, ByteCount, FractionLike, parse_fraction
from .workingset import gathered_weights, lookup_rows, whole_working_set

__all__ = [
    "ACT_DTYPE_BYTES",
    "CutElems",
    "UnitSizes",
    "activations",
    "chunk_for",
    "fit_beside_weights",
    "fit_tokens",
    "scaled_activations",
    "unit_sizes",
]

IntColumn = npt.NDArray[np.int64]
CutElems = Union[int, Sequence[int], npt.NDArray[np.integer[Any]], None]
"""Elements per token each layer outputs: one int, one int per layer, or None."""

ACT_DTYPE_BYTES: Final[Mapping[str, int]] = MappingProxyType(
    {"bf16": 2, "fp16": 2, "fp32": 4, "fp8": 1})
"""Bytes per activation element, by activation precision."""

UNBOUNDED_TOKENS: Final[int] = INT64_MAX
"""What :func:`fit_tokens` returns for a layer that holds no activations."""


@dataclass(frozen=True, eq=False)
class UnitSizes:
    """Per-layer quantities that do not depend on the chunk (int64 columns, bytes).

    Attributes:
        table: the layers these sizes describe.
        weights: weight bytes at the table's (or the overriding) precision.
        act_per_token: activation bytes per token, ``act_elems_per_token x act_bytes``,
            before the working-set ratio.
        buffers: operator-buffer bytes.
        out_per_token: bytes per token leaving each layer (what a cut after it sends).
        flops_per_token: floating-point operations per token (0: unknown).
        ratio: the working-set ratio, exactly.
        act_dtype: the activation precision.
        weight_dtype: the precision overriding the table's, or None.
        cut_exact: False when ``out_per_token`` is the upper bound ``act_per_token``
            because no output width was given.
        lookup_layers, lookup_rows: the lookups (indices, ascending) and their tables'
            rows: a chunk reads only its tokens' rows of them (``weights`` holds their
            whole tables; :meth:`weights_for` the rows read).
        default_buffers: the buffer defaults given to :func:`working_set`, if any.
    """

    table: LayerTable
    weights: IntColumn
    act_per_token: IntColumn
    buffers: IntColumn
    out_per_token: IntColumn
    flops_per_token: IntColumn
    ratio: Fraction
    act_dtype: str
    weight_dtype: str | None
    cut_exact: bool
    lookup_layers: IntColumn
    lookup_rows: IntColumn
    default_buffers: Mapping[str, ByteCount] | None = None

    @property
    def names(self) -> npt.NDArray[np.object_]:
        """Layer names (read-only object array)."""
        return self.table.name

    def __len__(self) -> int:
        return len(self.weights)

    def weights_at(self, dtype: str) -> IntColumn:
        """Every layer's whole weight bytes at precision ``dtype`` (one working-set pass)."""
        return whole_working_set(self.table, act_bytes=1, weight_dtype=dtype,
                                 default_buffers=self.default_buffers).weights

    def weights_for(self, tokens: int, weights: IntColumn | None = None) -> IntColumn:
        """The weight bytes a chunk of ``tokens`` tokens holds: ``weights`` (default the
        whole :attr:`weights`), with each lookup cut to the rows its tokens read."""
        whole = self.weights if weights is None else weights
        return gathered_weights(whole, self.lookup_layers, self.lookup_rows, tokens)


def unit_sizes(
    table: LayerTable,
    *,
    act_dtype: str = "bf16",
    weight_dtype: str | None = None,
    working_set_ratio: FractionLike = 1,
    default_buffers: Mapping[str, ByteCount] | None = None,
    cut_elems_per_token: CutElems = None,
) -> UnitSizes:
    """The chunk-independent sizes of ``table`` (one :func:`working_set` pass).

    Args:
        table: the layers.
        act_dtype: activation precision, a key of :data:`ACT_DTYPE_BYTES`.
        weight_dtype: a precision overriding the table's ``weight_dtype`` column.
        working_set_ratio: share of a chunk's activations held at once (between
            ``1e-40`` and ``1e30``; see :func:`~layerwise_fast.units.parse_fraction`).
        default_buffers: buffer bytes per kind (see :func:`working_set`).
        cut_elems_per_token: elements per token each layer outputs (one int for all
            layers, e.g. the hidden size, or one per layer). None: the layer's whole
            ``act_elems_per_token``, an upper bound, and ``cut_exact`` is False.

    Raises:
        TypeError, ValueError, OverflowError: as :func:`working_set`; an empty table, an
            unknown ``act_dtype`` or a malformed ``cut_elems_per_token``.
    """
    if not isinstance(table, LayerTable):
        raise TypeError(f"model must be a LayerTable, got {type(table).__name__}")
    if not len(table):
        raise ValueError("model has no layers to plan")
    act_bytes = act_dtype_bytes(act_dtype)
    ratio = parse_fraction(working_set_ratio, name="working_set_ratio")
    unit = whole_working_set(table, act_bytes=act_bytes, weight_dtype=weight_dtype,
                             default_buffers=default_buffers)
    out, exact = _out_per_token(cut_elems_per_token, unit.activations, act_bytes, len(table))
    return UnitSizes(table, unit.weights, unit.activations, unit.buffers, out,
                     table.flops_per_token, ratio, act_dtype, weight_dtype, exact,
                     *lookup_rows(table), default_buffers)


def act_dtype_bytes(act_dtype: object) -> int:
    """Bytes per activation element of ``act_dtype``; ValueError naming the argument."""
    if not isinstance(act_dtype, str) or act_dtype not in ACT_DTYPE_BYTES:
        raise ValueError(f"act_dtype must be one of {', '.join(ACT_DTYPE_BYTES)}, "
                         f"got {act_dtype!r}")
    return ACT_DTYPE_BYTES[act_dtype]


def _out_per_token(elems: object, act_per_token: IntColumn, act_bytes: int,
                   n: int) -> tuple[IntColumn, bool]:
    if elems is None:
        return act_per_token, False
    if isinstance(elems, (bool, np.bool_)):
        raise TypeError("cut_elems_per_token must be an int or one int per layer, got a bool")
    column = np.asarray(elems)
    if column.dtype.kind not in "iu":
        raise TypeError(f"cut_elems_per_token must hold integers, got {column.dtype} "
                        f"({type(elems).__name__})")
    if column.ndim == 0:
        column = np.full(n, int(column), dtype=np.int64)
    if column.shape != (n,):
        raise ValueError(f"cut_elems_per_token must be one int or {n} ints (one per layer), "
                         f"got shape {column.shape}")
    if (column < 0).any() or (column > 2**62).any():
        raise ValueError("cut_elems_per_token must hold counts between 0 and 2**62")
    return times(column.astype(np.int64), act_bytes, "cut bytes per token"), True


def times(values: IntColumn, factor: int, what: str) -> IntColumn:
    """``values x factor`` as int64 for ``values >= 0``; OverflowError naming the layer."""
    if factor > INT64_MAX and not values.any():
        return np.zeros_like(values)  # zeros stay zeros, whatever the factor
    if factor and values.size and int(values.max()) > INT64_MAX // factor:
        layer = int(np.argmax(values > INT64_MAX // factor))
        raise OverflowError(f"layer {layer}: {what} {int(values[layer])} x {factor} exceeds "
                            f"the int64 range")
    return values * factor


def activations(units: UnitSizes, tokens: int) -> IntColumn:
    """Activation bytes of every layer for one chunk of ``tokens`` (batch x chunk).

    Exactly :func:`working_set`'s ``ceil(tokens x a x ratio)``, as int64.

    Raises:
        OverflowError: a layer's activations exceed int64 (the layer is named).
    """
    return scaled_activations(units.act_per_token, tokens, units.ratio)


def layer_activations(units: UnitSizes, layer: int, tokens: int) -> int:
    """One layer's :func:`activations` for ``tokens``, as an exact Python int (no int64
    limit: error messages report sizes beyond it)."""
    ratio = units.ratio
    return -(-int(units.act_per_token[layer]) * tokens * ratio.numerator // ratio.denominator)


def scaled_activations(coef: IntColumn, tokens: int, ratio: Fraction) -> IntColumn:
    """``ceil(tokens x coef x ratio)`` for every entry of ``coef`` (bytes per token), as
    int64; OverflowError naming the first layer whose result leaves int64."""
    factor = tokens * ratio.numerator
    if ratio.denominator == 1:
        return times(coef, factor, "activation bytes per token")
    if ratio.denominator <= INT64_MAX and (
            not coef.size or int(coef.max()) <= INT64_MAX // max(factor, 1)):
        return -((-(coef * factor)) // ratio.denominator)
    exact = [-((-a * factor) // ratio.denominator) for a in coef.tolist()]
    for layer, value in enumerate(exact):
        if value > INT64_MAX:
            raise OverflowError(f"layer {layer}: activations for {tokens} tokens ({value} "
                                f"bytes) exceed the int64 range")
    return np.array(exact, dtype=np.int64)


def fit_tokens(units: UnitSizes, room: IntColumn) -> IntColumn:
    """The most tokens per chunk at which each layer's activations fit ``room`` bytes.

    The largest ``t >= 0`` with ``ceil(t x a x ratio) <= room``, i.e. ``floor(room /
    (a x ratio))``; ``-1`` where ``room < 0`` (nothing fits), :data:`UNBOUNDED_TOKENS`
    where the layer holds no activations and ``room >= 0``. Exact integer arithmetic.
    """
    ratio = units.ratio
    coef = units.act_per_token
    result = np.full(len(coef), UNBOUNDED_TOKENS, dtype=np.int64)
    result[room < 0] = -1
    active = np.flatnonzero((coef > 0) & (room >= 0))
    if not active.size:
        return result
    numer, denom = room[active], coef[active]
    if ratio == 1:
        result[active] = numer // denom
        return result
    if (ratio.denominator <= INT64_MAX and int(numer.max()) <= INT64_MAX // ratio.denominator
            and int(denom.max()) <= INT64_MAX // ratio.numerator):
        result[active] = (numer * ratio.denominator) // (denom * ratio.numerator)
        return result
    exact = [min(x * ratio.denominator // (a * ratio.numerator), UNBOUNDED_TOKENS)
             for x, a in zip(numer.tolist(), denom.tolist())]
    result[active] = np.array(exact, dtype=np.int64)
    return result


def fit_beside_weights(units: UnitSizes, room: IntColumn, weights: IntColumn) -> IntColumn:
    """The most tokens per chunk at which each layer's ``weights`` and activations fit
    ``room`` bytes together (``-1``: none; :data:`UNBOUNDED_TOKENS`: any count).

    :func:`fit_tokens` of ``room - weights``, except for a lookup, which holds only
    the rows its tokens read: there the larger of that and the most tokens whose rows
    and activations fit, ``ceil(W t / R) + ceil(t a r) <= room``. Exact.
    """
    result = fit_tokens(units, room - weights)
    layers = units.lookup_layers
    if not layers.size:
        return result
    rows, whole, space = units.lookup_rows, weights[layers], room[layers]
    act, p, q = units.act_per_token[layers], units.ratio.numerator, units.ratio.denominator
    high = _search_ceiling(space, whole, rows, act, units.ratio)
    top = int(high.max())
    # int64 holds every step when it holds 2 top + 1 and top's two terms together;
    # otherwise the same search runs on arrays of Python ints.
    per_token = int(whole.max()) + int(act.max()) * p
    exact = (2 * top + 1 > INT64_MAX or max(top, 1) * per_token > INT64_MAX
             or q > INT64_MAX)
    gathered = _gathered_fit(space, whole, rows, act, high, p, q,
                             object if exact else np.int64)
    helps = (whole > 0) & (space >= 0)  # elsewhere the whole-table bound stands
    result[layers] = np.where(helps, np.maximum(result[layers], gathered), result[layers])
    return result


def _search_ceiling(room: IntColumn, whole: IntColumn, rows: IntColumn, act: IntColumn,
                    ratio: Fraction) -> IntColumn:
    """A token count above which no lookup's rows and activations fit ``room`` (0 where
    gathering cannot help: no weights, or no room). Both terms grow with ``t`` and are at
    least their real values, so ``t <= room / rate``; the float quotient is raised by
    far more than its rounding error."""
    rate = whole / rows + act * float(ratio)
    with np.errstate(divide="ignore", invalid="ignore"):
        bound = np.floor(room / rate * (1 + 1e-9)) + 2
    bound = np.where((whole > 0) & (room >= 0), bound, 0)
    beyond = bound >= 2.0**63
    ceiling = np.where(beyond, 0, bound).astype(np.int64)
    ceiling[beyond] = UNBOUNDED_TOKENS
    return ceiling


def _gathered_fit(room: IntColumn, whole: IntColumn, rows: IntColumn, act: IntColumn,
                  high: IntColumn, p: int, q: int, dtype: type) -> IntColumn:
    """The largest ``t <= high`` with ``ceil(whole t / rows) + ceil(t act p / q) <= room``,
    for all lookups at once by binary search, computed in ``dtype``: ``np.int64`` where
    every step fits it, else ``object`` (Python ints)."""
    room, whole, rows, act, high = (column.astype(dtype) for column in
                                    (room, whole, rows, act, high))
    act_p: npt.NDArray[Any] = act * p if act.any() else act  # huge p x zeros stays zeros
    low: npt.NDArray[Any] = np.zeros_like(high)
    while (low < high).any():
        middle = (low + high + 1) // 2
        held = -(-(whole * middle) // rows) - (-(middle * act_p) // q)
        fits = held <= room
        low = np.where(fits, middle, low)
        high = np.where(fits, high, middle - 1)
    return low.astype(np.int64)


def chunk_for(tokens_limit: int, batch: int, granularity: int, sequence: int) -> int:
    """The largest chunk whose ``batch x chunk`` tokens stay within ``tokens_limit``.

    The chunk is the whole sequence where that fits, else the largest multiple of
    ``granularity`` tokens (which is then shorter than the sequence). Returns 0 when
    not even the smallest chunk, ``min(granularity, sequence)``, fits (a negative
    limit: none does).
    """
    if tokens_limit >= batch * sequence:
        return sequence
    if tokens_limit < batch * granularity:
        return 0
    return tokens_limit // (batch * granularity) * granularity
