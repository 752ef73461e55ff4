"""Input forms, the Partition result, immutability of inputs, threads."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import logging
import pickle
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import layerwise_fast as lf

SIZES = [30, 10, 25, 5, 40]


def test_greedy_small_example() -> None:
    p = lf.greedy(SIZES, 50)
    assert p.k == 3 and len(p) == 3 and p.n == 5
    assert p.boundaries.tolist() == [0, 2, 4, 5]
    assert p.group_costs.tolist() == [40, 30, 40]
    assert p.bottleneck == 40 and p.bottleneck_group == 0
    assert p.slack.tolist() == [10, 20, 10]
    assert list(p) == [(0, 2), (2, 4), (4, 5)]
    assert p.labels().tolist() == [0, 0, 1, 1, 2]
    assert (p.algorithm, p.cost, p.capacity) == ("greedy", "sum", 50)


def test_balanced_evens_out_what_greedy_leaves_uneven() -> None:
    sizes = [10] * 9 + [1]
    assert lf.greedy(sizes, 50).group_costs.tolist() == [50, 41]
    b = lf.balanced(sizes, capacity=50)
    assert b.group_costs.tolist() == [50, 41] or b.bottleneck <= 50
    assert b.k == 2 and b.bottleneck == 50
    assert lf.balanced([10] * 10, capacity=50).group_costs.tolist() == [50, 50]
    assert lf.balanced([5, 5, 5, 5, 1, 1], 3).bottleneck == 10


def test_balanced_without_capacity_has_no_slack() -> None:
    p = lf.balanced(SIZES, 2)
    assert p.capacity is None and p.slack is None
    assert p.bottleneck == 65 and p.k == 2


def test_k_equals_n_gives_single_layers() -> None:
    p = lf.balanced(SIZES, 5)
    assert p.boundaries.tolist() == [0, 1, 2, 3, 4, 5]


def test_peak_cost_keeps_only_one_layer_of_activations() -> None:
    columns = {"weights": [10, 10, 10], "activations": [30, 5, 30], "buffers": [0, 1, 0]}
    assert lf.greedy(columns, 60, cost="peak").k == 1  # 30 + max(30, 6, 30) = 60
    assert lf.greedy(columns, 60, cost="sum").group_costs.tolist() == [56, 40]
    assert lf.greedy(columns, 60, cost="peak").group_costs.tolist() == [60]


@pytest.mark.parametrize(
    "sizes",
    [
        np.array(SIZES, dtype=np.int32),
        np.array(SIZES, dtype=np.uint8),
        np.array(SIZES, dtype=np.uint64),
        np.array(SIZES, dtype=">i8"),
        np.array(SIZES, dtype=np.float64),
        np.array([x for s in SIZES for x in (s, -1)], dtype=np.int64)[::2],
        tuple(SIZES),
        np.array(SIZES, dtype=object),
    ],
    ids=["int32", "uint8", "uint64", "big-endian", "integral-float", "strided", "tuple", "object"],
)
def test_accepts_any_integer_form(sizes) -> None:
    assert lf.greedy(sizes, 50) == lf.greedy(SIZES, 50)
    assert lf.balanced(sizes, 2) == lf.balanced(SIZES, 2)


def three_column_forms():
    w, a, b = [5, 1, 7, 2], [10, 20, 3, 4], [1, 0, 1, 0]
    structured = np.zeros(4, dtype=[("weights", "i8"), ("activations", "i4"), ("buffers", "u2")])
    structured["weights"], structured["activations"], structured["buffers"] = w, a, b

    class HasColumns:
        def as_columns(self):
            return {"weights": np.array(w), "activations": np.array(a), "buffers": np.array(b)}

    return [
        {"weights": w, "activations": a, "buffers": b},
        np.column_stack([w, a, b]),
        structured,
        HasColumns(),
    ]


@pytest.mark.parametrize("columns", three_column_forms(), ids=["mapping", "n-by-3", "structured", "as_columns"])
@pytest.mark.parametrize("cost", ["sum", "peak"])
def test_three_column_forms_agree(columns, cost: str) -> None:
    expected = lf.greedy({"weights": [5, 1, 7, 2], "activations": [10, 20, 3, 4], "buffers": [1, 0, 1, 0]}, 30, cost=cost)
    assert lf.greedy(columns, 30, cost=cost) == expected
    assert lf.dp(columns, 30, cost=cost).k == expected.k


def test_sum_of_three_columns_equals_one_column() -> None:
    columns = {"weights": [5, 1, 7, 2], "activations": [10, 20, 3, 4], "buffers": [1, 0, 1, 0]}
    one = [16, 21, 11, 6]
    assert lf.balanced(columns, 2).group_costs.tolist() == lf.balanced(one, 2).group_costs.tolist()


def test_buffers_column_is_optional() -> None:
    assert lf.greedy({"weights": [1, 2], "activations": [3, 4]}, 10) == lf.greedy([4, 6], 10)


def test_capacity_forms() -> None:
    assert lf.greedy(SIZES, 50.0) == lf.greedy(SIZES, 50)
    assert lf.greedy(SIZES, np.int32(50)) == lf.greedy(SIZES, 50)
    assert lf.greedy([10**6, 2 * 10**6], "3MB").k == 1
    assert lf.greedy([2**20, 2**21], "2MiB").k == 2


def test_inputs_are_not_modified() -> None:
    sizes = np.array([3, 9, 2, 7, 1], dtype=np.int64)
    columns = {"weights": np.array([1, 2, 3]), "activations": np.array([4, 5, 6]), "buffers": np.array([0, 1, 0])}
    copies = sizes.copy(), {k: v.copy() for k, v in columns.items()}
    for algorithm in (lf.greedy, lf.dp):
        algorithm(sizes, 20)
        algorithm(columns, 20, cost="peak")
    lf.balanced(sizes, 3)
    lf.balanced(columns, 2, cost="peak")
    assert np.array_equal(sizes, copies[0]) and sizes.flags.writeable
    for key, values in columns.items():
        assert np.array_equal(values, copies[1][key])


def test_result_arrays_are_read_only() -> None:
    p = lf.greedy(SIZES, 50)
    for array in (p.boundaries, p.group_costs, p.slack):
        with pytest.raises(ValueError, match="read-only"):
            array[0] = 1


def test_ready_arrays_are_not_copied(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="layerwise_fast"):
        lf.greedy(np.array(SIZES, dtype=np.int64), 50)
        assert caplog.records == []
        lf.greedy(np.array(SIZES, dtype=np.int32), 50)
    assert "converted int32 array of 5 layers to int64 (copy)" in caplog.text


def test_to_dict_and_repr() -> None:
    p = lf.dp(SIZES, 50)
    assert p.to_dict() == {
        "algorithm": "dp",
        "cost": "sum",
        "n": 5,
        "k": 3,
        "capacity": 50,
        "bottleneck": 40,
        "bottleneck_group": 0,
        "boundaries": [0, 2, 4, 5],
        "group_costs": [40, 30, 40],
        "slack": [10, 20, 10],
        "stage_times": None,
    }
    assert repr(p) == (
        "Partition(k=3, n=5, bottleneck=40, bottleneck_group=0, capacity=50, algorithm='dp', cost='sum')"
    )


def test_equality_compares_content() -> None:
    assert lf.greedy(SIZES, 50) == lf.greedy(list(SIZES), 50)
    assert lf.greedy(SIZES, 50) != lf.greedy(SIZES, 60)
    assert lf.greedy(SIZES, 50) != "a partition"


def test_layer_too_large_error_pickles() -> None:
    with pytest.raises(lf.LayerTooLargeError) as info:
        lf.greedy(SIZES, 39)
    clone = pickle.loads(pickle.dumps(info.value))
    assert (clone.layer, clone.nbytes, clone.capacity) == (4, 40, 39)
    assert str(clone) == str(info.value)


def test_two_threads_agree_with_one() -> None:
    rng = np.random.default_rng(0)
    inputs = [rng.integers(0, 10**6, 200_000) for _ in range(4)]
    serial = [(lf.greedy(s, 10**8), lf.balanced(s, 37), lf.dp(s, 5 * 10**7)) for s in inputs]
    results: dict[int, list] = {}

    def work(tid: int) -> None:
        results[tid] = [(lf.greedy(s, 10**8), lf.balanced(s, 37), lf.dp(s, 5 * 10**7)) for s in inputs]

    threads = [threading.Thread(target=work, args=(t,)) for t in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results[0] == serial and results[1] == serial


def test_large_sizes_near_int64_edge() -> None:
    big = 2**62
    assert lf.greedy([big, big, big], 2**63 - 1).k == 3  # 2 * 2**62 is one byte over
    assert lf.greedy([big - 1, big], 2**63 - 1).k == 1
    assert lf.dp([big, big - 1, 1, big], 2**63 - 1).group_costs.tolist() == [2**63 - 1, 2**62 + 1]


def test_dp_minimises_stage_time_among_fewest_groups() -> None:
    sizes = [10, 10, 10, 10]
    layer_time = [1.0, 1.0, 1.0, 5.0]
    # Two groups are needed (capacity 30); the byte-balanced split [20, 20] has stage
    # times 2 + cut and 6; cutting after layer 2 gives 3 and 5, better in time.
    cut_time = [0.0, 0.0, 0.0, 0.0]
    p = lf.dp(sizes, 30, layer_time=layer_time, cut_time=cut_time)
    assert p.boundaries.tolist() == [0, 3, 4]
    assert p.stage_times.tolist() == [3.0, 5.0]
    assert p.group_costs.tolist() == [30, 10]
    # An expensive transfer after layer 2 moves the cut.
    p = lf.dp(sizes, 30, layer_time=layer_time, cut_time=[0.0, 0.0, 9.0, 0.0])
    assert p.boundaries.tolist() == [0, 2, 4] and p.stage_times.tolist() == [2.0, 6.0]
    assert p.to_dict()["stage_times"] == [2.0, 6.0]


def test_stage_time_matches_exhaustive_search() -> None:
    rng = np.random.default_rng(3)
    for _ in range(300):
        n = int(rng.integers(1, 9))
        sizes = rng.integers(0, 10, n)
        layer_time, cut_time = rng.integers(0, 20, n).astype(float), rng.integers(0, 30, n).astype(float)
        capacity = int(sizes.max()) + int(rng.integers(1, 25))
        best = None
        for mask in range(1 << (n - 1)):
            cuts = [0, *(i + 1 for i in range(n - 1) if mask >> i & 1), n]
            groups = list(zip(cuts, cuts[1:]))
            if any(sizes[a:b].sum() > capacity for a, b in groups):
                continue
            worst = max(layer_time[a:b].sum() + cut_time[b - 1] for a, b in groups)
            best = min(best or (len(groups), worst), (len(groups), worst))
        p = lf.dp(sizes, capacity, layer_time=layer_time, cut_time=cut_time)
        assert (p.k, float(p.stage_times.max())) == best


def test_stage_times_are_the_values_the_dp_minimised() -> None:
    """The core sums a group's layer times last layer first; so are they reported."""
    p = lf.dp([1] * 5, 4, layer_time=[1e-17, 1e-17, 1e-17, 0.2, 1e-17], cut_time=[0.0] * 5)
    assert float(p.stage_times.max()) == 0.2  # left to right, [0, 4) sums to 0.20000000000000004
    rng = np.random.default_rng(5)
    for _ in range(200):
        n = int(rng.integers(1, 40))
        layer_time, cut_time = rng.random(n) * 10.0 ** rng.integers(-18, 2, n), rng.random(n)
        p = lf.dp(rng.integers(0, 5, n), 12, layer_time=layer_time, cut_time=cut_time)
        expected = []
        for start, stop in p:
            total = 0.0
            for j in range(stop - 1, start - 1, -1):
                total += float(layer_time[j])
            expected.append(total + float(cut_time[stop - 1]))
        assert p.stage_times.tolist() == expected


@pytest.mark.parametrize("boundaries", [[], [0], [0, 2], [0, 4], [1, 3], [0, 2, 2, 3], [0, 2, 1, 3]])
def test_native_stage_times_refuse_boundaries_that_do_not_cover_the_layers(boundaries) -> None:
    from layerwise_fast import _core

    with pytest.raises(ValueError, match="boundaries must rise from 0 to the layer count"):
        _core.stage_times(np.ones(3), np.zeros(3), np.array(boundaries, dtype=np.int64))
    assert _core.stage_times(np.ones(3), np.zeros(3), np.array([0, 1, 3])).tolist() == [1.0, 2.0]


def test_misaligned_arrays_are_copied_before_the_core_reads_them() -> None:
    from layerwise_fast.partition import _as_column, _as_times

    sizes = np.frombuffer(bytearray(8 * 10 + 1), dtype=np.int64, count=10, offset=1)
    times = np.frombuffer(bytearray(8 * 10 + 1), dtype=np.float64, count=10, offset=1)
    assert not sizes.flags.aligned and not times.flags.aligned
    assert _as_column(sizes, "sizes").flags.aligned and _as_times(times, "layer_time", 10).flags.aligned
    assert lf.dp(sizes, 10, layer_time=times, cut_time=times).k == 1


def test_a_memmap_is_read_in_place(tmp_path) -> None:
    from layerwise_fast.partition import _as_column

    np.save(tmp_path / "sizes.npy", np.arange(1000, dtype=np.int64) % 7)
    mapped = np.load(tmp_path / "sizes.npy", mmap_mode="r")
    assert np.shares_memory(_as_column(mapped, "sizes"), mapped)
    assert lf.greedy(mapped, 100).k == lf.greedy(np.asarray(mapped).copy(), 100).k


@pytest.mark.parametrize(
    "layer_time, cut_time, error, message",
    [
        ([1.0, 2.0], None, ValueError, "layer_time and cut_time go together"),
        ([1.0, 2.0], [1.0], ValueError, r"cut_time needs one entry per layer \(2\), got shape \(1,\)"),
        ([1.0, -2.0], [0.0, 0.0], ValueError, r"layer_time\[1\] = -2 is not a finite time >= 0"),
        ([1.0, 2.0], [0.0, -1e-9], ValueError, r"cut_time\[1\] = -1e-09 is not a finite time >= 0"),
        ([1e308, -1e308], [0.0, 0.0], ValueError, r"layer_time\[1\] = -1e\+308 is not a finite time >= 0"),
        ([1.0, Decimal("sNaN")], [0.0, 0.0], ValueError, r"layer_time\[1\] = Decimal\('sNaN'\) is not a finite"),
        ([1.0, 2.0], [0.0, float("nan")], ValueError, r"cut_time\[1\] = nan is not a finite time >= 0"),
        (["a", "b"], [0.0, 0.0], TypeError, r"layer_time must be real numbers \(seconds\), one per layer; got dtype <U1"),
        ([1.0, 2.0], 0.0, ValueError, r"cut_time needs one entry per layer \(2\), got shape \(\)"),
        ([1.0, 2.0], [1j, 0.0], TypeError, r"cut_time must be real numbers .* got dtype complex128"),
        ([1.0, True], [0.0, 0.0], TypeError, r"layer_time\[1\] is a bool; times must be numbers"),
        ([1.0, 2**1100], [0.0, 0.0], OverflowError, r"layer_time\[1\] = \d{300,} is beyond the float range"),
        ([1.0, "2"], [0.0, 0.0], TypeError, r"layer_time must be real numbers .* got dtype <U"),
        (np.array([1.0, "2"], dtype=object), [0.0, 0.0], TypeError, r"layer_time\[1\] = '2' \(str\) is not a number"),
        ([1e308, 1e308], [0.0, 0.0], OverflowError, r"layer_time and cut_time are too large"),
        ([1.0, 1.7e308], [0.0, 1.7e308], OverflowError, r"layer_time and cut_time are too large"),
    ],
)
def test_stage_time_errors(layer_time, cut_time, error, message) -> None:
    with pytest.raises(error, match=message):
        lf.dp([1, 2], 10, layer_time=layer_time, cut_time=cut_time)


def test_stage_times_of_one_layer_need_an_array_too() -> None:
    with pytest.raises(ValueError, match=r"layer_time needs one entry per layer \(1\), got shape \(\)"):
        lf.dp([1], 10, layer_time=1.0, cut_time=[0.0])
    p = lf.dp([1], 10, layer_time=[2], cut_time=np.array([1], dtype=object))  # ints are seconds too
    assert p.stage_times.tolist() == [3.0]
    exact = lf.dp([1, 2], 10, layer_time=[Fraction(1, 2), 1], cut_time=[Decimal("0.25"), 0.0])
    assert exact.stage_times.tolist() == [1.5]  # fractions and decimals are seconds too


def test_stress_edges_capacity_one_zeros_and_k_equal_n() -> None:
    n = 100_000
    zeros = np.zeros(n, dtype=np.int64)
    ones = np.ones(n, dtype=np.int64)
    assert lf.greedy(zeros, 1).k == 1
    assert lf.dp(zeros, 1).boundaries.tolist() == [0, n]  # one group holds all n: every start fits
    assert lf.balanced(zeros, n).boundaries.tolist() == list(range(n + 1))
    p = lf.greedy(ones, 1)  # capacity of one byte: one layer per group
    assert p.k == n and p.bottleneck == 1 and lf.balanced(ones, capacity=1).k == n
    q = lf.balanced(np.arange(n, dtype=np.int64), n)
    assert q.k == n and q.bottleneck == n - 1
    with pytest.raises(lf.LayerTooLargeError, match="layer 0 needs 2 bytes, more than the capacity of 1 bytes"):
        lf.greedy(ones + 1, 1)


def test_a_source_folder_without_the_native_core_says_so(tmp_path: Path) -> None:
    """Python run beside an unbuilt source folder imports it first: say why it fails."""
    package = tmp_path / "layerwise_fast"
    package.mkdir()
    shutil.copy(Path(lf.__file__), package / "__init__.py")
    out = subprocess.run([sys.executable, "-S", "-c", "import layerwise_fast"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert f"layerwise_fast's native core is not built in {package}" in out.stderr
    assert "run Python from another folder" in out.stderr and "pip install -e ." in out.stderr
    (package / "_core.cpython-0-elsewhere.so").write_bytes(b"")  # a build for another Python
    out = subprocess.run([sys.executable, "-S", "-c", "import layerwise_fast"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert "(it holds _core.cpython-0-elsewhere.so, built for another Python)" in out.stderr
