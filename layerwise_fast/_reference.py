"""Reference implementations, used only as test oracles and benchmark baselines.

Slow on purpose and written for obviousness, not speed. The shipped algorithms live
once, in csrc/; nothing in the package calls this module.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

__all__ = [
    "seed_greedy",
    "group_cost",
    "cut_sets",
    "exhaustive",
    "minmax_dp",
    "latest_start_dp",
    "exhaustive_batch",
    "same_json_value",
]

# A model is a sequence of sizes for "sum", or a (weights, live) pair of sequences for
# "peak", where live = activations + buffers of each layer.
Model = Any


def seed_greedy(layers: Sequence[int], cache_capacity: int) -> list[list[int]]:
    """The seed's greedy layer aggregation (section 3.1), as written.

    `layers` are the working-set sizes themselves. Kept verbatim, quirks included: a
    first layer larger than the capacity produces an empty leading partition, and an
    oversized layer is placed alone with no error.
    """
    partitions = []
    current_partition: list[int] = []
    current_size = 0

    for layer in layers:
        layer_size = layer

        if current_size + layer_size <= cache_capacity:
            current_partition.append(layer)
            current_size += layer_size
        else:
            partitions.append(current_partition)
            current_partition = [layer]
            current_size = layer_size

    if current_partition:
        partitions.append(current_partition)

    return partitions


def group_cost(sizes: Model, start: int, stop: int, cost: str = "sum") -> int:
    """Cost of layers [start, stop): `sizes` per layer for "sum", (weights, live) for "peak"."""
    if cost == "sum":
        return int(sum(int(s) for s in sizes[start:stop]))
    weights, live = sizes
    return int(sum(int(w) for w in weights[start:stop])) + max(int(x) for x in live[start:stop])


def cut_sets(n: int) -> Iterator[list[int]]:
    """Every partition of n layers into contiguous non-empty groups, as boundary lists."""
    for k in range(1, n + 1):
        for inner in itertools.combinations(range(1, n), k - 1):
            yield [0, *inner, n]


def exhaustive(sizes: Model, capacity: int | None = None, cost: str = "sum") -> dict[str, object]:
    """Brute force over all 2^(n-1) cut sets (n <= 14).

    Returns ``by_k``: the minimum bottleneck for each k = 1..n (index k), ``fewest``:
    the fewest groups whose cost fits `capacity` (None if no partition fits), and
    ``fewest_bottleneck``: the minimum bottleneck among partitions with that many groups.
    """
    n = len(sizes) if cost == "sum" else len(sizes[0])
    if not 1 <= n <= 14:
        raise ValueError(f"exhaustive search needs 1 <= n <= 14, got {n}")
    by_k: list[int | None] = [None] * (n + 1)
    best: tuple[int, int] | None = None
    for cuts in cut_sets(n):
        worst = max(group_cost(sizes, a, b, cost) for a, b in zip(cuts, cuts[1:]))
        k = len(cuts) - 1
        if by_k[k] is None or worst < by_k[k]:  # type: ignore[operator]
            by_k[k] = worst
        if capacity is not None and worst <= capacity and (best is None or (k, worst) < best):
            best = (k, worst)
    return {
        "by_k": by_k,
        "fewest": None if best is None else best[0],
        "fewest_bottleneck": None if best is None else best[1],
    }


def minmax_dp(sizes: Model, k: int, cost: str = "sum") -> int:
    """Minimum bottleneck over exactly k contiguous groups: the O(k * n^2) DP.

    best[g][i] = min over j < i of max(best[g-1][j], cost(j, i)); each row is one
    vectorised minimum over an n x n table of interval costs (object arithmetic is
    avoided: costs must fit int64).
    """
    table = _interval_costs(sizes, cost)
    n = table.shape[0] - 1
    if not 1 <= k <= n:
        raise ValueError(f"k must be in 1..{n}, got {k}")
    inf = np.iinfo(np.int64).max
    best = np.full(n + 1, inf, dtype=np.int64)
    best[0] = 0
    valid = np.triu(np.ones((n + 1, n + 1), dtype=bool), k=1)  # j < i
    for _ in range(k):
        candidates = np.where(valid, np.maximum(best[:, None], table), inf)
        best = candidates.min(axis=0)
        best[0] = inf  # every group is non-empty
    return int(best[n])


def latest_start_dp(sizes: Model, capacity: int, cost: str = "sum") -> list[int]:
    """The cuts of ``dp``: the O(n^2) lexicographic DP, written out plainly.

    For each prefix of i layers, over every start j of a last group that fits
    `capacity`: the fewest groups, then the smallest bottleneck max(best[j], cost(j, i)),
    ties to the latest j. Returns the boundaries 0, ..., n read back from the starts.
    Every layer must fit `capacity` alone.
    """
    n = len(sizes) if cost == "sum" else len(sizes[0])
    groups, bottleneck, last_start = [0] * (n + 1), [0] * (n + 1), [0] * (n + 1)
    for i in range(1, n + 1):
        best: tuple[int, int] | None = None
        for j in range(i - 1, -1, -1):
            group = group_cost(sizes, j, i, cost)
            if group > capacity:
                break
            candidate = (groups[j] + 1, max(bottleneck[j], group))
            if best is None or candidate < best:  # strictly better: ties keep the later j
                best, last_start[i] = candidate, j
        if best is None:
            raise ValueError(f"layer {i - 1} alone exceeds the capacity {capacity}")
        groups[i], bottleneck[i] = best
    cuts = [n]
    while cuts[-1] > 0:
        cuts.append(last_start[cuts[-1]])
    return cuts[::-1]


def _interval_costs(sizes: Model, cost: str) -> np.ndarray:
    """table[j, i] = cost of layers [j, i) for j < i (other entries unspecified)."""
    if cost == "sum":
        prefix = np.concatenate([[0], np.cumsum(np.asarray(sizes, dtype=np.int64))])
        return prefix[None, :] - prefix[:, None]
    weights, live = (np.asarray(c, dtype=np.int64) for c in sizes)
    n = len(weights)
    prefix = np.concatenate([[0], np.cumsum(weights)])
    table = np.zeros((n + 1, n + 1), dtype=np.int64)
    for j in range(n):
        table[j, j + 1 :] = prefix[j + 1 :] - prefix[j] + np.maximum.accumulate(live[j:])
    return table


def exhaustive_batch(weights: np.ndarray, live: np.ndarray | None = None) -> np.ndarray:
    """Brute force for many inputs of one length n at once.

    `weights` is an (m, n) int64 array, one input per row: the sizes for the `sum`
    model, or the weights for the `peak` model when `live` (activations + buffers, same
    shape) is given. Returns an int64 array of shape (2, m, 2^(n-1)): ``[0]`` the
    number of groups and ``[1]`` the bottleneck of every cut set; cut set `mask` cuts
    before layer i + 1 when bit i is set.
    """
    m, n = weights.shape
    prefix = np.zeros((m, n + 1), dtype=np.int64)
    np.cumsum(weights, axis=1, out=prefix[:, 1:])
    masks = 1 << (n - 1)
    result = np.empty((2, m, masks), dtype=np.int64)
    for mask in range(masks):
        cuts = [0, *(i + 1 for i in range(n - 1) if mask >> i & 1), n]
        costs = prefix[:, cuts[1:]] - prefix[:, cuts[:-1]]
        if live is not None:
            costs = costs + np.maximum.reduceat(live, cuts[:-1], axis=1)
        result[0, :, mask] = len(cuts) - 1
        result[1, :, mask] = costs.max(axis=1)
    return result


def same_json_value(fast: object, reference: object) -> bool:
    """Whether the native JSON reader's value `fast` is what json.loads gave
    (`reference`), with the reader's one difference: a non-empty array of integers
    that all fit int64 is an int64 numpy array. Types must match exactly (True is not
    1, 1.0 is not 1), and so must the order of object keys."""
    if isinstance(fast, np.ndarray):
        return (fast.dtype == np.int64 and fast.ndim == 1 and isinstance(reference, list)
                and len(reference) > 0 and all(type(x) is int for x in reference)
                and fast.tolist() == reference)
    if type(fast) is not type(reference):
        return False
    if isinstance(fast, list):
        assert isinstance(reference, list)
        if reference and all(type(x) is int and -(2**63) <= x < 2**63 for x in reference):
            return False  # should have been an array
        return len(fast) == len(reference) and all(map(same_json_value, fast, reference))
    if isinstance(fast, dict):
        assert isinstance(reference, dict)
        return (list(fast) == list(reference)
                and all(same_json_value(fast[key], reference[key]) for key in fast))
    return fast == reference
