"""Native algorithms against the reference oracles: Hypothesis on small inputs (brute
force over all cut sets), the O(k n^2) min-max DP on medium ones (n up to 2000)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import layerwise_fast as lf
from layerwise_fast._reference import exhaustive, group_cost, latest_start_dp, minmax_dp, seed_greedy

small_sizes = st.lists(st.integers(0, 10**12), min_size=1, max_size=12)
tiny_sizes = st.lists(st.integers(0, 50), min_size=1, max_size=12)


def check_structure(p: lf.Partition, model, cost: str) -> None:
    """Cuts from 0 to n, non-empty groups, costs recomputed, bottleneck consistent."""
    b = p.boundaries.tolist()
    n = len(model) if cost == "sum" else len(model[0])
    assert b[0] == 0 and b[-1] == n and len(b) == p.k + 1
    assert all(x < y for x, y in zip(b, b[1:])), "a group is empty"
    costs = [group_cost(model, x, y, cost) for x, y in zip(b, b[1:])]
    assert p.group_costs.tolist() == costs
    assert p.bottleneck == max(costs) and costs[p.bottleneck_group] == p.bottleneck
    assert costs.index(p.bottleneck) == p.bottleneck_group


def peak_input(weights: list[int], live: list[int]) -> dict[str, np.ndarray]:
    return {"weights": np.array(weights), "activations": np.array(live)}


@st.composite
def peak_models(draw, max_value=10**12):
    n = draw(st.integers(1, 11))
    w = draw(st.lists(st.integers(0, max_value), min_size=n, max_size=n))
    live = draw(st.lists(st.integers(0, max_value), min_size=n, max_size=n))
    return w, live


def check_all_algorithms(sizes, model, cost: str, capacity: int) -> None:
    oracle = exhaustive(model, capacity, cost)
    n = len(oracle["by_k"]) - 1
    for k in range(1, n + 1):
        p = lf.balanced(sizes, k, cost=cost)
        check_structure(p, model, cost)
        assert p.k == k and p.bottleneck == oracle["by_k"][k]
    g = lf.greedy(sizes, capacity, cost=cost)
    check_structure(g, model, cost)
    assert g.k == oracle["fewest"] and g.bottleneck <= capacity
    for p in (lf.dp(sizes, capacity, cost=cost), lf.balanced(sizes, capacity=capacity, cost=cost)):
        check_structure(p, model, cost)
        assert (p.k, p.bottleneck) == (oracle["fewest"], oracle["fewest_bottleneck"])


@given(small_sizes, st.integers(0, 3 * 10**12))
def test_sum_matches_exhaustive(sizes: list[int], extra: int) -> None:
    check_all_algorithms(sizes, sizes, "sum", max(1, max(sizes) + extra))


@given(tiny_sizes, st.integers(0, 150))
def test_sum_matches_exhaustive_with_ties(sizes: list[int], extra: int) -> None:
    check_all_algorithms(sizes, sizes, "sum", max(1, max(sizes) + extra))


@given(peak_models(), st.integers(0, 3 * 10**12))
def test_peak_matches_exhaustive(model: tuple[list[int], list[int]], extra: int) -> None:
    w, live = model
    largest = max(a + b for a, b in zip(w, live))
    check_all_algorithms(peak_input(w, live), model, "peak", max(1, largest + extra))


@given(peak_models(max_value=6), st.integers(0, 20))
def test_peak_matches_exhaustive_with_ties(model: tuple[list[int], list[int]], extra: int) -> None:
    w, live = model
    largest = max(a + b for a, b in zip(w, live))
    check_all_algorithms(peak_input(w, live), model, "peak", max(1, largest + extra))


@given(st.lists(st.integers(0, 1000), min_size=1, max_size=300), st.integers(0, 5000))
def test_greedy_equals_seed_greedy_when_every_layer_fits(sizes: list[int], extra: int) -> None:
    capacity = max(1, max(sizes) + extra)
    seed = seed_greedy(sizes, capacity)
    p = lf.greedy(sizes, capacity)
    assert [len(g) for g in seed] == np.diff(p.boundaries).tolist()
    assert [sum(g) for g in seed] == p.group_costs.tolist()


# Sizes of 2^59 bytes and more (the block pass leaves them to the validating walk),
# mixed with small ones; capacities from the largest size (blocks with several cuts)
# to the int64 limit.
mixed_sizes = st.lists(st.one_of(st.integers(0, 1000), st.integers(2**59, 2**61)),
                       min_size=1, max_size=100)


@given(mixed_sizes, st.integers(0, 2**63 - 1))
def test_greedy_equals_seed_greedy_with_huge_sizes(sizes: list[int], capacity: int) -> None:
    capacity = max(capacity, max(sizes), 1)
    seed = seed_greedy(sizes, capacity)
    p = lf.greedy(sizes, capacity)
    assert [len(g) for g in seed] == np.diff(p.boundaries).tolist()
    assert [sum(g) for g in seed] == p.group_costs.tolist()


@given(st.lists(st.integers(0, 1000), min_size=1, max_size=100), st.data())
def test_greedy_names_the_first_bad_layer(sizes: list[int], data) -> None:
    """Wherever a negative or an oversized layer sits (a block, a block's second cut,
    the tail), the error names the first one."""
    capacity = max(sizes) + data.draw(st.integers(1, 3000))
    bad = data.draw(st.lists(st.integers(0, len(sizes) - 1), min_size=1, max_size=3))
    values = data.draw(st.lists(st.one_of(st.integers(-10, -1), st.integers(capacity + 1, 2**62)),
                                min_size=len(bad), max_size=len(bad)))
    for index, value in zip(bad, values):
        sizes[index] = value
    first = min(bad)
    if sizes[first] < 0:
        with pytest.raises(ValueError, match=rf"sizes\[{first}\] is negative"):
            lf.greedy(sizes, capacity)
    else:
        with pytest.raises(lf.LayerTooLargeError, match=rf"^layer {first} needs"):
            lf.greedy(sizes, capacity)


@given(st.lists(st.integers(0, 10**6), min_size=2, max_size=400), st.data())
def test_dp_and_balanced_agree_beyond_brute_force(sizes: list[int], data) -> None:
    capacity = max(1, max(sizes) * data.draw(st.integers(1, 20)))
    d, b, g = lf.dp(sizes, capacity), lf.balanced(sizes, capacity=capacity), lf.greedy(sizes, capacity)
    assert d.k == b.k == g.k
    assert d.bottleneck == b.bottleneck <= g.bottleneck
    check_structure(d, sizes, "sum")
    check_structure(b, sizes, "sum")


@given(st.lists(st.integers(0, 6), min_size=1, max_size=60), st.integers(0, 12))
def test_dp_cuts_are_the_latest_starts(sizes: list[int], extra: int) -> None:
    """Small sizes make many ties: dp must break each as documented."""
    capacity = max(1, max(sizes) + extra)
    assert lf.dp(sizes, capacity).boundaries.tolist() == latest_start_dp(sizes, capacity)


@given(peak_models(max_value=8), st.integers(0, 20))
def test_peak_dp_cuts_are_the_latest_starts(model: tuple[list[int], list[int]], extra: int) -> None:
    capacity = max(1, max(w + x for w, x in zip(*model)) + extra)
    got = lf.dp(peak_input(*model), capacity, cost="peak").boundaries.tolist()
    assert got == latest_start_dp(model, capacity, cost="peak")


def families(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    alternating = np.where(np.arange(n) % 2 == 0, 10**9, 3).astype(np.int64)
    giant = rng.integers(1, 1000, n)
    giant[rng.integers(n)] = 10**7
    return {
        "uniform": rng.integers(0, 10**6, n),
        "heavy_tailed": np.minimum((rng.pareto(1.1, n) * 1e5).astype(np.int64), 10**12),
        "all_equal": np.full(n, 7, dtype=np.int64),
        "zeros": np.zeros(n, dtype=np.int64),
        "one_giant": giant,
        "alternating": alternating,
    }


@pytest.mark.parametrize("n, ks", [(50, (1, 2, 3, 7, 25, 49, 50)), (700, (1, 5, 64)), (2000, (2, 16))])
@pytest.mark.parametrize("family", ["uniform", "heavy_tailed", "all_equal", "zeros", "one_giant", "alternating"])
def test_balanced_matches_minmax_dp(n: int, ks: tuple[int, ...], family: str) -> None:
    sizes = families(n, np.random.default_rng(n))[family]
    for k in ks:
        p = lf.balanced(sizes, k)
        assert p.k == k and np.all(np.diff(p.boundaries) > 0)
        assert p.bottleneck == minmax_dp(sizes, k), (family, k)
        assert p.group_costs.tolist() == np.add.reduceat(sizes, p.boundaries[:-1]).tolist()


@pytest.mark.parametrize("family", ["uniform", "heavy_tailed", "all_equal", "zeros", "one_giant", "alternating"])
@pytest.mark.parametrize("width", [1, 3, 40, None])
def test_dp_cuts_match_the_reference_on_families(family: str, width: int | None) -> None:
    """n = 300, groups of a few layers up to one group for all (width None)."""
    sizes = families(300, np.random.default_rng(3))[family]
    largest = max(1, int(sizes.max()))
    capacity = max(largest, int(sizes.sum())) if width is None else largest * width
    assert lf.dp(sizes, capacity).boundaries.tolist() == latest_start_dp(sizes, capacity)


@pytest.mark.parametrize("n, k", [(60, 1), (60, 7), (300, 12)])
def test_balanced_peak_matches_minmax_dp(n: int, k: int) -> None:
    rng = np.random.default_rng(k)
    w, live = rng.integers(0, 10**6, n), rng.integers(0, 10**7, n)
    p = lf.balanced(peak_input(w, live), k, cost="peak")
    assert p.k == k and p.bottleneck == minmax_dp((w, live), k, cost="peak")
