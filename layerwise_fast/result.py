"""The result of every partitioning algorithm."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

__all__ = ["Partition"]


def _frozen(values: np.ndarray) -> np.ndarray:
    values.setflags(write=False)  # cheaper than going through values.flags
    return values


def _same_times(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is b
    return bool(np.array_equal(a, b))


class Partition:
    """Layers ``0..n-1`` cut into ``k`` contiguous, non-empty groups.

    Group ``g`` holds layers ``boundaries[g]`` up to (not including) ``boundaries[g + 1]``.
    Arrays are read-only int64; costs are bytes under the cost model used.

    Attributes:
        boundaries: ``k + 1`` cut indices, starting with 0 and ending with ``n``.
        group_costs: the cost of each group.
        bottleneck: the largest group cost.
        bottleneck_group: the first group whose cost is the bottleneck.
        capacity: the capacity the groups were fitted to, or None (``balanced`` with k only).
        algorithm: ``"greedy"``, ``"balanced"`` or ``"dp"``.
        cost: the cost model, ``"sum"`` or ``"peak"``.
        stage_times: seconds per group when ``dp`` minimised stage time, else None.
    """

    __slots__ = (
        "boundaries",
        "group_costs",
        "bottleneck",
        "bottleneck_group",
        "capacity",
        "algorithm",
        "cost",
        "stage_times",
    )

    boundaries: np.ndarray
    group_costs: np.ndarray
    bottleneck: int
    bottleneck_group: int
    capacity: int | None
    algorithm: str
    cost: str
    stage_times: np.ndarray | None

    def __init__(
        self,
        boundaries: np.ndarray,
        group_costs: np.ndarray,
        bottleneck: int,
        bottleneck_group: int,
        *,
        capacity: int | None,
        algorithm: str,
        cost: str,
    ) -> None:
        self.boundaries = _frozen(boundaries)
        self.group_costs = _frozen(group_costs)
        self.bottleneck = bottleneck
        self.bottleneck_group = bottleneck_group
        self.capacity = capacity
        self.algorithm = algorithm
        self.cost = cost
        self.stage_times = None

    @property
    def k(self) -> int:
        """Number of groups."""
        return len(self.group_costs)

    @property
    def n(self) -> int:
        """Number of layers."""
        return int(self.boundaries[-1])

    @property
    def slack(self) -> np.ndarray | None:
        """Bytes left under the capacity in each group, or None without a capacity."""
        if self.capacity is None:
            return None
        return _frozen(self.capacity - self.group_costs)

    def labels(self) -> np.ndarray:
        """The group index of every layer, as an int64 array of length n."""
        return np.repeat(np.arange(self.k, dtype=np.int64), np.diff(self.boundaries))

    def __len__(self) -> int:
        return self.k

    def __iter__(self) -> Iterator[tuple[int, int]]:
        """Yields ``(start, stop)`` for each group, stop exclusive."""
        cuts = self.boundaries.tolist()
        return zip(cuts[:-1], cuts[1:])

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of plain Python values."""
        slack = self.slack
        return {
            "algorithm": self.algorithm,
            "cost": self.cost,
            "n": self.n,
            "k": self.k,
            "capacity": self.capacity,
            "bottleneck": self.bottleneck,
            "bottleneck_group": self.bottleneck_group,
            "boundaries": self.boundaries.tolist(),
            "group_costs": self.group_costs.tolist(),
            "slack": None if slack is None else slack.tolist(),
            "stage_times": None if self.stage_times is None else self.stage_times.tolist(),
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Partition):
            return NotImplemented
        return (
            (self.algorithm, self.cost, self.capacity, self.bottleneck, self.bottleneck_group)
            == (other.algorithm, other.cost, other.capacity, other.bottleneck, other.bottleneck_group)
            and np.array_equal(self.boundaries, other.boundaries)
            and np.array_equal(self.group_costs, other.group_costs)
            and _same_times(self.stage_times, other.stage_times)
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"Partition(k={self.k}, n={self.n}, bottleneck={self.bottleneck}, "
            f"bottleneck_group={self.bottleneck_group}, capacity={self.capacity}, "
            f"algorithm={self.algorithm!r}, cost={self.cost!r})"
        )
