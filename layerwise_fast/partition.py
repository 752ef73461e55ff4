"""Partitioning API: validation and conversion in front of the native core.

Checks that need only the arguments' types and shapes run here, with messages that
name the argument. Checks that depend on every element (negative sizes, a layer over
the capacity, int64 overflow) run inside the core's own pass over the data, so that
validation never costs an extra pass over 10^8 elements.

Sizes come in one of two forms:

* one integer per layer (a 1-D array or sequence): each layer's working set, for the
  ``sum`` cost model only;
* three columns ``weights``, ``activations`` and ``buffers`` (``buffers`` may be
  omitted): a mapping of 1-D arrays, an ``(n, 3)`` array, a structured array with those
  fields, or an object with an ``as_columns()`` method returning such a mapping. Both
  cost models accept them.

Aligned int64 C-contiguous arrays in native byte order (of any ndarray subclass, such
as a memmap) are used as they are; anything else is converted once (a copy), which is
logged at DEBUG level on the ``layerwise_fast`` logger. Masked entries are refused.
"""

from __future__ import annotations

import logging
import math
import numbers
import operator
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Literal

import numpy as np

from layerwise_fast import _core
from layerwise_fast.result import Partition
from layerwise_fast.units import first_bool, parse_bytes

__all__ = ["greedy", "balanced", "dp"]

_log = logging.getLogger("layerwise_fast")
_INT64 = np.dtype(np.int64)
_INT64_MAX = np.iinfo(np.int64).max
_COLUMNS = ("weights", "activations", "buffers")


def _is_ready(values: Any) -> bool:
    return (
        type(values) is np.ndarray
        and values.dtype == _INT64
        and values.ndim == 1
        and values.flags.c_contiguous
        and values.flags.aligned  # the core reads int64 through aligned references
    )


def _not_finite(name: str, i: int, value: float) -> ValueError:
    return ValueError(f"{name}[{i}] is {value}; sizes must be finite whole numbers of bytes")


def _not_whole(name: str, i: int, value: float) -> ValueError:
    return ValueError(f"{name}[{i}] = {value!r} is not a whole number of bytes")


def _float_to_int64(values: np.ndarray, name: str) -> np.ndarray:
    if values.dtype.itemsize < 8:  # exact in float64, and 2**63 has no float16 value
        values = values.astype(np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise _not_finite(name, i, values[i].item())
    fractional = values != np.floor(values)
    if fractional.any():
        i = int(np.flatnonzero(fractional)[0])
        raise _not_whole(name, i, values[i].item())
    # float(2**63) is the first float above the int64 range.
    outside = np.abs(values) >= 2.0**63
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        raise OverflowError(f"{name}[{i}] = {values[i].item()!r} is outside the int64 range")
    return values.astype(np.int64)


def _exact_size(value: Any, name: str, i: int) -> int:
    """One element of an object array as an int: an integer, or a whole float."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}[{i}] is a bool; sizes must be integers (bytes)")
    if isinstance(value, (float, np.floating)):  # longdouble too: never through float
        if not np.isfinite(value):
            raise _not_finite(name, i, float(value))
        if not value.is_integer():
            raise _not_whole(name, i, float(value))
        exact = int(value)
    else:
        try:
            exact = operator.index(value)
        except TypeError:
            raise TypeError(f"{name}[{i}] = {value!r} ({type(value).__name__}) is not an integer "
                            f"number of bytes") from None
    if not -_INT64_MAX - 1 <= exact <= _INT64_MAX:
        raise OverflowError(f"{name}[{i}] = {exact} is outside the int64 range")
    return exact


def _object_to_int64(values: np.ndarray, name: str) -> np.ndarray:
    """Element by element, exactly: ints as they are, whole floats, nothing else."""
    items = values.tolist()
    if all(type(item) is int for item in items):
        try:
            return np.array(items, dtype=np.int64)
        except OverflowError:
            pass  # the loop below names the first one outside int64
    return np.array([_exact_size(item, name, i) for i, item in enumerate(items)], dtype=np.int64)


def _to_int64(values: np.ndarray, name: str) -> np.ndarray:
    kind = values.dtype.kind
    if kind == "i":
        return values.astype(np.int64)
    if kind == "u":
        if values.dtype.itemsize == 8 and values.max() > _INT64_MAX:
            i = int(np.argmax(values > _INT64_MAX))
            raise OverflowError(f"{name}[{i}] = {values[i]} is outside the int64 range")
        return values.astype(np.int64)
    if kind == "f":
        return _float_to_int64(values, name)
    if kind == "O":
        return _object_to_int64(values, name)
    raise TypeError(f"{name} must hold integers (bytes), got dtype {values.dtype}")


def _refuse_masked(values: np.ndarray, name: str) -> None:
    if np.ma.is_masked(values):
        raise ValueError(f"{name} has masked entries, which hold no value: fill them "
                         f"(values.filled(...)) or leave those layers out")


def _array_of(values: Any, name: str, rule: str) -> np.ndarray:
    """numpy's reading of a per-layer argument, after refusing the bools it would take
    for numbers and masked entries, and wording its error for ragged nesting."""
    if isinstance(values, np.ndarray):
        _refuse_masked(values, name)
    index = first_bool(values)
    if index is not None:
        raise TypeError(f"{name}[{index}] is a bool; {rule}")
    try:
        return np.asarray(values)
    except ValueError as exc:
        raise ValueError(f"{name} must be 1-D (one entry per layer): {exc}") from None


def _as_column(values: Any, name: str) -> np.ndarray:
    """One size column as a 1-D, C-contiguous, native int64 array (no copy if it is one)."""
    if isinstance(values, np.ndarray) and type(values) is not np.ndarray:
        _refuse_masked(values, name)
        values = values.view(np.ndarray)  # a memmap's (or other subclass's) data, uncopied
    if _is_ready(values):
        ready: np.ndarray = values
        return ready
    array = _array_of(values, name, "sizes must be integers (bytes)")
    if isinstance(values, (list, tuple)) and _inexact(array):
        array = np.array(values, dtype=object)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one entry per layer), got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty: there are no layers to partition")
    if array.dtype.kind == "b":
        raise TypeError(f"{name} must hold integers (bytes), got booleans")
    converted = np.ascontiguousarray(_to_int64(array, name), dtype=_INT64)
    if converted is not values:
        _log.debug("%s: converted %s array of %d layers to int64 (copy)", name, array.dtype, array.size)
    return converted


def _inexact(array: np.ndarray) -> bool:
    """Whether numpy's reading of a list may differ from its numbers, or lose which entry
    is not one: objects, text, complex values, or floats from 2**53 on (an int there, or
    one beyond int64, would have been rounded)."""
    if array.dtype.kind in "OUSc":  # and where no number fits: say which entry
        return True
    return array.dtype.kind == "f" and array.size > 0 and not bool((np.abs(array) < 2.0**53).all())


def _columns_of(sizes: Any) -> Mapping[str, Any] | None:
    """The three-column form of `sizes`, or None when it is one size per layer."""
    if type(sizes) is np.ndarray and sizes.ndim == 1 and sizes.dtype.names is None:
        return None  # the common case, decided before the slower checks below
    as_columns = getattr(sizes, "as_columns", None)
    if callable(as_columns):
        sizes = as_columns()
    if isinstance(sizes, np.ndarray) and sizes.dtype.names is not None:
        sizes = {field: sizes[field] for field in sizes.dtype.names}
    if isinstance(sizes, Mapping):
        unknown = sorted(set(sizes) - set(_COLUMNS), key=repr)
        if unknown:
            raise ValueError(f"sizes has unknown columns {unknown}; expected {list(_COLUMNS)}")
        missing = [c for c in _COLUMNS[:2] if c not in sizes]
        if missing:
            raise ValueError(f"sizes is missing the column(s) {missing}")
        return sizes
    if isinstance(sizes, np.ndarray) and sizes.ndim == 2:
        if sizes.shape[1] != 3:
            raise ValueError(
                f"a 2-D sizes array must have 3 columns (weights, activations, buffers), got shape {sizes.shape}"
            )
        return {c: sizes[:, j] for j, c in enumerate(_COLUMNS)}
    return None


def core_arrays(sizes: Any, cost: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Arrays for the core: (sizes, None) for `sum`, (weights, live) for `peak`.

    Validates the form of `sizes` (see the module docstring) and converts it once;
    the core checks every element."""
    if cost not in ("sum", "peak"):
        raise ValueError(f"cost must be 'sum' or 'peak', got {cost!r}")
    columns = _columns_of(sizes)
    if columns is None:
        if cost == "peak":
            raise ValueError(
                "cost='peak' needs weights, activations and buffers as separate columns "
                "(a mapping or an (n, 3) array); got one size per layer"
            )
        return _as_column(sizes, "sizes"), None
    arrays = {name: _as_column(values, name) for name, values in columns.items()}
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"size columns differ in length: {lengths}")
    w, a, b = arrays["weights"], arrays["activations"], arrays.get("buffers")
    if cost == "sum":
        return _core.combine_sum(w, a, b), None
    return w, _core.combine_live(w, a, b)


def _as_positive_int(value: Any, name: str) -> int:
    if type(value) is int and 1 <= value <= _INT64_MAX:
        return value
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got a bool")
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        value = int(value)
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}") from None
    if number < 1:
        raise ValueError(f"{name} must be >= 1, got {number}")
    if number > _INT64_MAX:
        raise OverflowError(f"{name} = {number} is outside the int64 range")
    return number


def _as_capacity(capacity: Any) -> int:
    """Capacity in bytes: a positive integer, or text such as "50MB" or "50MiB"."""
    if type(capacity) is int and 1 <= capacity <= _INT64_MAX:
        return capacity
    return parse_bytes(capacity, name="capacity")


def _partition(raw: tuple[np.ndarray, np.ndarray, int, int], capacity: int | None, algorithm: str, cost: str) -> Partition:
    boundaries, group_costs, bottleneck, group = raw
    return Partition(boundaries, group_costs, bottleneck, group, capacity=capacity, algorithm=algorithm, cost=cost)


def greedy(sizes: Any, capacity: Any, *, cost: Literal["sum", "peak"] = "sum") -> Partition:
    """The fewest contiguous groups whose cost fits `capacity` (greedy next-fit).

    Optimal in the number of groups for both cost models; one O(n) pass, no extra
    array. Groups are filled left to right, so the last group is often the smallest:
    use :func:`balanced` with the same capacity to even them out.

    Args:
        sizes: per-layer sizes in bytes (see the module docstring for the forms).
        capacity: bytes one group may hold (int, or a string such as ``"50MB"``).
        cost: ``"sum"`` (a group costs the sum of its layers) or ``"peak"`` (sum of
            its weights + the largest activations + buffers of any one of its layers).

    Raises:
        LayerTooLargeError: a layer alone exceeds the capacity (the first one is named).
        ValueError, TypeError, OverflowError: invalid sizes or arguments.
    """
    cap = _as_capacity(capacity)
    first, live = core_arrays(sizes, cost)
    return _partition(_core.greedy(first, live, cap), cap, "greedy", cost)


def balanced(sizes: Any, k: Any = None, *, capacity: Any = None, cost: Literal["sum", "peak"] = "sum") -> Partition:
    """The minimum bottleneck (largest group cost) over contiguous partitions.

    * ``k`` alone: exactly ``k`` non-empty groups (1 <= k <= n).
    * ``capacity`` alone: the fewest groups that fit (greedy's k), balanced.
    * both: exactly ``k`` groups that must also fit the capacity.

    Exact on integers: one validating pass, then a search on the bottleneck whose
    probes are greedy passes, steered by estimates of the optimum from what each probe
    left over or spare; for ``sum`` the probes remember earlier cuts and, once those
    bracket each cut, read only the layers between them. No array of n entries is kept
    (arrays of k + 1 cuts for ``sum`` where k <= n / 9).

    Raises:
        LayerTooLargeError: with a capacity, a layer alone exceeds it.
        ValueError: neither k nor capacity given; k out of range; no k-group
            partition fits the capacity (the message names the best bottleneck for
            that k and the fewest groups that fit).
        OverflowError: the total of all sizes exceeds int64 (the search needs it).
    """
    if k is None and capacity is None:
        raise ValueError("balanced needs k, capacity or both")
    cap = None if capacity is None else _as_capacity(capacity)
    first, live = core_arrays(sizes, cost)
    if k is None:
        assert cap is not None
        raw = _core.balanced_fewest(first, live, cap)
    else:
        try:
            groups = _as_positive_int(k, "k")
        except OverflowError:  # beyond int64, so beyond the layer count too
            raise ValueError(f"k must be between 1 and the number of layers ({len(first)}), "
                             f"got {k}") from None
        raw = _core.balanced(first, live, groups, _core.UNBOUNDED if cap is None else cap)
    return _partition(raw, cap, "balanced", cost)


def dp(
    sizes: Any,
    capacity: Any,
    *,
    cost: Literal["sum", "peak"] = "sum",
    layer_time: Any = None,
    cut_time: Any = None,
) -> Partition:
    """Fewest groups that fit `capacity`, then the smallest bottleneck among them.

    The dynamic programme over prefixes, with reconstruction of the cuts. Gives the
    same (k, bottleneck) as ``balanced(sizes, capacity=capacity)`` (and an answer where
    the total of the sizes leaves int64, which ``balanced`` refuses); it is the reference
    engine for objectives that bisection cannot handle. In bytes it slides two windows
    over the layers: O(n) time (plus a binary search per layer where the best start is
    ambiguous) and two int64 arrays of n + 1 entries, however many layers a group holds,
    beside queues no longer than a window (w, the most layers one group can hold):
    the steps of the group count in it, and for ``cost="peak"`` the layers that may
    hold its largest live bytes (8 bytes a layer, two windows).
    Ties go to the latest start of the last group (the shortest last group).

    With ``layer_time`` and ``cut_time`` (seconds, one float per layer, finite and
    >= 0), the bottleneck minimised among the fewest-group partitions is the largest
    *stage time* instead of bytes: a group of layers a..b costs ``sum(layer_time[a:b+1])
    + cut_time[b]``, where ``cut_time[b]`` is the time to send layer b's output to the
    next stage. The result's ``stage_times`` hold each group's time; its byte costs
    and byte bottleneck are reported as usual. Stage times are not monotone in the
    group (the cut moves with its end), so this DP scans every start of the last group
    that fits: O(n * w) time, w the most layers one group can hold.
    """
    cap = _as_capacity(capacity)
    first, live = core_arrays(sizes, cost)
    if layer_time is None and cut_time is None:
        return _partition(_core.dp(first, live, cap), cap, "dp", cost)
    if layer_time is None or cut_time is None:
        raise ValueError("layer_time and cut_time go together: give both or neither")
    layers = _as_times(layer_time, "layer_time", len(first))
    cuts = _as_times(cut_time, "cut_time", len(first))
    _check_time_range(layers, cuts)
    result = _partition(_core.dp_stage_time(first, live, cap, layers, cuts), cap, "dp", cost)
    result.stage_times = _core.stage_times(layers, cuts, result.boundaries)  # as the dp summed
    result.stage_times.flags.writeable = False
    return result


def _as_times(values: Any, name: str, n: int) -> np.ndarray:
    """A float64 column of n seconds (finiteness and sign are checked by the core)."""
    array = _array_of(values, name, "times must be numbers (seconds)")
    if array.ndim != 1 or len(array) != n:
        raise ValueError(f"{name} needs one entry per layer ({n}), got shape {array.shape}")
    if array.dtype.kind not in "iufO":
        raise TypeError(f"{name} must be real numbers (seconds), one per layer; got dtype {array.dtype}")
    if array.dtype.kind == "O":
        return np.array([_seconds(value, name, i) for i, value in enumerate(array.tolist())])
    return np.require(array, dtype=np.float64, requirements=["C", "A"])


def _seconds(value: Any, name: str, i: int) -> float:
    """One element of an object array of times as a float."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, Decimal)):
        raise TypeError(f"{name}[{i}] = {value!r} ({type(value).__name__}) is not a number of seconds")
    try:
        return float(value)
    except OverflowError:
        raise OverflowError(f"{name}[{i}] = {value} is beyond the float range") from None
    except ValueError:  # a signalling NaN Decimal
        raise ValueError(f"{name}[{i}] = {value!r} is not a finite time >= 0") from None


def _check_time_range(layers: np.ndarray, cuts: np.ndarray) -> None:
    """Stage times must stay finite: the sum of all layer times plus the largest cut."""
    if not (np.isfinite(layers).all() and np.isfinite(cuts).all()) \
            or (layers < 0).any() or (cuts < 0).any():
        return  # the core names the first value that is not a finite time >= 0
    with np.errstate(over="ignore"):
        total = float(layers.sum()) + float(cuts.max())
    if not math.isfinite(total):
        raise OverflowError("layer_time and cut_time are too large: the layer times of a group "
                            "plus its cut time could exceed the float range (about 1.8e308 s)")
