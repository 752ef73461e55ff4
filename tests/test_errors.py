"""Every error path, with its message."""

from __future__ import annotations

import warnings
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest

import layerwise_fast as lf

ALGORITHMS = {
    "greedy": lambda s, **kw: lf.greedy(s, kw.pop("capacity", 100), **kw),
    "balanced": lambda s, **kw: lf.balanced(s, kw.pop("k", 1), **kw),
    "dp": lambda s, **kw: lf.dp(s, kw.pop("capacity", 100), **kw),
}
each_algorithm = pytest.mark.parametrize("run", ALGORITHMS.values(), ids=ALGORITHMS.keys())


@each_algorithm
@pytest.mark.parametrize("empty", [[], np.array([], dtype=np.int64), ()])
def test_empty(run, empty) -> None:
    with pytest.raises(ValueError, match="sizes is empty: there are no layers to partition"):
        run(empty)


@each_algorithm
def test_negative_size_names_the_layer(run) -> None:
    with pytest.raises(ValueError, match=r"sizes\[2\] is negative \(-4\); sizes are bytes and must be >= 0"):
        run([1, 2, -4, 3])


@each_algorithm
def test_negative_column_names_the_column(run) -> None:
    columns = {"weights": [1, 2, 3], "activations": [0, 0, 0], "buffers": [0, -7, 0]}
    for cost in ("sum", "peak"):
        with pytest.raises(ValueError, match=r"buffers\[1\] is negative \(-7\)"):
            run(columns, cost=cost)


@each_algorithm
@pytest.mark.parametrize(
    "values, message",
    [
        ([1.0, float("nan")], r"sizes\[1\] is nan; sizes must be finite whole numbers of bytes"),
        ([float("inf"), 1.0], r"sizes\[0\] is inf"),
        ([1.0, 2.5], r"sizes\[1\] = 2.5 is not a whole number of bytes"),
    ],
)
def test_bad_floats(run, values, message) -> None:
    with pytest.raises(ValueError, match=message):
        run(np.array(values))


@each_algorithm
@pytest.mark.parametrize(
    "values, error, message",
    [
        ([2**64], OverflowError, r"sizes\[0\] = 18446744073709551616 is outside the int64 range"),
        ([0, 2**63 + 1], OverflowError, r"sizes\[1\] = 9223372036854775809 is outside the int64 range"),
        ([0, -(2**63) - 1], OverflowError, r"sizes\[1\] = -9223372036854775809 is outside the int64 range"),
        ([1, 2.5], ValueError, r"sizes\[1\] = 2.5 is not a whole number of bytes"),
        (np.array([1.5, 2.5], dtype=object), ValueError, r"sizes\[0\] = 1.5 is not a whole number of bytes"),
        (np.array([1, float("nan")], dtype=object), ValueError, r"sizes\[1\] is nan; sizes must be finite"),
        (np.array(["12", 2], dtype=object), TypeError, r"sizes\[0\] = '12' \(str\) is not an integer number of bytes"),
        ([Decimal("0.9"), Decimal("0.9")], TypeError, r"sizes\[0\] = Decimal\('0.9'\) \(Decimal\) is not an integer"),
        ([Fraction(3, 2)], TypeError, r"sizes\[0\] = Fraction\(3, 2\) \(Fraction\) is not an integer"),
        (np.array([1, True], dtype=object), TypeError, r"sizes\[1\] is a bool; sizes must be integers"),
        ([1, True], TypeError, r"sizes\[1\] is a bool; sizes must be integers"),
        ((np.False_, 2), TypeError, r"sizes\[0\] is a bool; sizes must be integers"),
        (np.array([1, 2**63], dtype=np.uint64), OverflowError, r"sizes\[1\] = 9223372036854775808 is outside the int64 range"),
        (np.array([1.0, 1e19]), OverflowError, r"sizes\[1\] = 1e\+19 is outside the int64 range"),
        (["a", "b"], TypeError, r"sizes\[0\] = 'a' \(str\) is not an integer number of bytes"),
        ([1, b"2"], TypeError, r"sizes\[1\] = b'2' \(bytes\) is not an integer number of bytes"),
        (np.array(["a", "b"]), TypeError, "sizes must hold integers \\(bytes\\), got dtype <U1"),
        ([True, False], TypeError, r"sizes\[0\] is a bool; sizes must be integers"),
        (np.array([True, False]), TypeError, "sizes must hold integers \\(bytes\\), got booleans"),
        ([1 + 2j], TypeError, r"sizes\[0\] = \(1\+2j\) \(complex\) is not an integer"),
        (np.array([1 + 2j]), TypeError, "got dtype complex128"),
        (np.int64(5), ValueError, r"sizes must be 1-D \(one entry per layer\), got shape \(\)"),
        (np.ones((2, 2, 2)), ValueError, r"sizes must be 1-D \(one entry per layer\), got shape \(2, 2, 2\)"),
        ([[1], [2, 3]], ValueError, r"sizes must be 1-D \(one entry per layer\): "),
    ],
)
def test_bad_values(run, values, error, message) -> None:
    with pytest.raises(error, match=message):
        run(values)


@pytest.mark.parametrize(
    "capacity, error, message",
    [
        (0, ValueError, "capacity must be positive, got 0"),
        (-5, ValueError, "capacity must not be negative, got -5"),
        (True, TypeError, "capacity must be a byte count, got the bool True"),
        (1.5, ValueError, "capacity: 1.5 is not a whole number of bytes"),
        (None, TypeError, "capacity must be a byte count .*, got NoneType None"),
        (2**63, ValueError, "capacity: 9223372036854775808 is beyond the int64 range"),
        ("50 parsecs", ValueError, "capacity: unknown unit 'parsecs' in '50 parsecs'; known units: B, KB"),
        ("fifty", ValueError, "capacity: cannot read 'fifty' as a byte count"),
    ],
)
def test_capacity(capacity, error, message) -> None:
    runs = [lambda: lf.greedy([1, 2], capacity), lambda: lf.dp([1, 2], capacity)]
    if capacity is not None:  # balanced reads None as "no capacity"
        runs.append(lambda: lf.balanced([1, 2], capacity=capacity))
    for run in runs:
        with pytest.raises(error, match=message):
            run()


@pytest.mark.parametrize("k, message", [(0, "k must be >= 1, got 0"), (-1, "k must be >= 1, got -1")])
def test_k_below_one(k, message) -> None:
    with pytest.raises(ValueError, match=message):
        lf.balanced([1, 2, 3], k)


@pytest.mark.parametrize("k", [4, 2**63 - 1, 2**63, 2**100])
def test_k_above_n(k: int) -> None:
    with pytest.raises(ValueError, match=rf"k must be between 1 and the number of layers \(3\), got {k}"):
        lf.balanced([1, 2, 3], k)


def test_k_type() -> None:
    with pytest.raises(TypeError, match="k must be an integer, got str '2'"):
        lf.balanced([1, 2, 3], "2")


def test_balanced_needs_k_or_capacity() -> None:
    with pytest.raises(ValueError, match="balanced needs k, capacity or both"):
        lf.balanced([1, 2, 3])


def test_k_groups_do_not_fit_capacity() -> None:
    message = (
        "no partition into k=1 groups fits the capacity of 10 bytes: the smallest bottleneck for k=1 "
        "is 14 bytes; at least 3 groups are needed"
    )
    with pytest.raises(lf.TooFewGroupsError, match=message) as info:
        lf.balanced([3, 9, 2], 1, capacity=10)
    assert isinstance(info.value, lf.InfeasibleError) and isinstance(info.value, ValueError)
    assert (info.value.k, info.value.capacity, info.value.bottleneck, info.value.min_groups) == (1, 10, 14, 3)


@pytest.mark.parametrize("run", [lambda s: lf.greedy(s, 8), lambda s: lf.dp(s, 8), lambda s: lf.balanced(s, capacity=8),
                                 lambda s: lf.balanced(s, 2, capacity=8)], ids=["greedy", "dp", "balanced", "balanced-k"])
def test_layer_too_large(run) -> None:
    with pytest.raises(lf.LayerTooLargeError, match=r"^layer 1 needs 9 bytes, more than the capacity of 8 bytes \(over by 1\)$") as info:
        run([3, 9, 2, 10])
    assert isinstance(info.value, ValueError)
    assert (info.value.layer, info.value.nbytes, info.value.capacity) == (1, 9, 8)


def test_layer_too_large_under_peak_counts_live_bytes() -> None:
    columns = {"weights": [1, 4], "activations": [1, 3], "buffers": [0, 2]}
    with pytest.raises(lf.LayerTooLargeError, match="layer 1 needs 9 bytes, more than the capacity of 8 bytes"):
        lf.greedy(columns, 8, cost="peak")


def test_total_beyond_int64() -> None:
    with pytest.raises(OverflowError, match="the total of sizes exceeds the int64 range at layer 1; balanced "):
        lf.balanced([2**62, 2**62, 2**62], 2)


def test_layer_sum_beyond_int64() -> None:
    columns = {"weights": [2**62, 1], "activations": [2**62, 1], "buffers": [2**62, 0]}
    with pytest.raises(OverflowError, match="weights \\+ activations \\+ buffers exceeds the int64 range at layer 0"):
        lf.greedy(columns, 100)


def test_mismatched_columns() -> None:
    with pytest.raises(ValueError, match=r"size columns differ in length: \{'weights': 3, 'activations': 2\}"):
        lf.greedy({"weights": [1, 2, 3], "activations": [1, 2]}, 10)


def test_unknown_and_missing_columns() -> None:
    with pytest.raises(ValueError, match=r"sizes has unknown columns \['weight'\]"):
        lf.greedy({"weight": [1], "activations": [1]}, 10)
    with pytest.raises(ValueError, match=r"sizes is missing the column\(s\) \['activations'\]"):
        lf.greedy({"weights": [1]}, 10)


def test_unknown_columns_of_mixed_key_types_are_named() -> None:
    with pytest.raises(ValueError, match=r"sizes has unknown columns \['x', 3\]"):
        lf.greedy({"weights": [1], "activations": [1], 3: [1], "x": [1]}, 20)


@pytest.mark.parametrize("columns", [False, True])
def test_masked_entries_are_refused(columns: bool) -> None:
    masked = np.ma.masked_array([1, 2, 3], mask=[0, 1, 0])
    sizes = {"weights": masked, "activations": [0, 0, 0]} if columns else masked
    name = "weights" if columns else "sizes"
    with pytest.raises(ValueError, match=rf"{name} has masked entries, which hold no value"):
        lf.greedy(sizes, 50)
    assert lf.greedy(np.ma.masked_array([1, 2, 3]), 50).group_costs.tolist() == [6]  # no mask


def test_structured_arrays_are_checked_like_mappings() -> None:
    with pytest.raises(ValueError, match=r"sizes is missing the column\(s\) \['activations'\]"):
        lf.greedy(np.zeros(3, dtype=[("weights", "i8")]), 10)
    misspelt = np.ones(3, dtype=[("weights", "i8"), ("activations", "i8"), ("buffer", "i8")])
    with pytest.raises(ValueError, match=r"sizes has unknown columns \['buffer'\]"):
        lf.greedy(misspelt, 10)


def test_exact_numbers_in_object_arrays_are_sizes() -> None:
    sizes = np.array([np.int32(3), 4.0, 5, np.float32(6)], dtype=object)
    assert lf.greedy(sizes, 100).group_costs.tolist() == [18]
    assert lf.greedy([2**62, 2.0**62], 2**63 - 1).group_costs.tolist() == [2**62, 2**62]
    # numpy reads these lists as float64, which would round the ints.
    assert lf.greedy([2**62 + 1, 0.0], 2**63 - 1).group_costs.tolist() == [2**62 + 1]
    assert lf.greedy([2**53 + 1, 2.0], 2**62).group_costs.tolist() == [2**53 + 3]
    assert lf.greedy([np.longdouble(2**60) + 1, 0], 2**62).group_costs.tolist() == [2**60 + 1]
    assert lf.greedy([2**63 - 1, 0.0], 2**63 - 1).group_costs.tolist() == [2**63 - 1]


def test_small_floats_convert_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert lf.greedy(np.array([10, 20], dtype=np.float16), 100).group_costs.tolist() == [30]


def test_two_dimensional_needs_three_columns() -> None:
    with pytest.raises(ValueError, match=r"a 2-D sizes array must have 3 columns .* got shape \(4, 2\)"):
        lf.greedy(np.ones((4, 2), dtype=np.int64), 10)


def test_peak_needs_columns() -> None:
    with pytest.raises(ValueError, match="cost='peak' needs weights, activations and buffers as separate columns"):
        lf.greedy([1, 2, 3], 10, cost="peak")


def test_unknown_cost_model() -> None:
    with pytest.raises(ValueError, match="cost must be 'sum' or 'peak', got 'max'"):
        lf.greedy([1, 2, 3], 10, cost="max")


def test_private_core_rejects_unconverted_arrays() -> None:
    from layerwise_fast import _core

    with pytest.raises(TypeError, match="incompatible function arguments"):
        _core.greedy(np.array([1, 2], dtype=np.int32), None, 10)
    with pytest.raises(ValueError, match="size columns differ in length"):
        _core.greedy(np.array([1, 2]), np.array([1]), 10)
