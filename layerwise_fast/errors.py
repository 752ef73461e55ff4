"""Exceptions raised by layerwise_fast.

Invalid arguments raise the built-in ValueError, TypeError or OverflowError with a
message naming the argument. Valid input that no partition can satisfy raises a
subclass of :class:`InfeasibleError` (itself a ValueError) that carries the numbers.
"""

from __future__ import annotations

__all__ = ["InfeasibleError", "LayerTooLargeError", "TooFewGroupsError"]


class InfeasibleError(ValueError):
    """No partition satisfies the constraints (the input itself is valid)."""


class LayerTooLargeError(InfeasibleError):
    """A single layer's working set exceeds the capacity, so no partition can hold it.

    Attributes:
        layer: index of the first such layer.
        nbytes: that layer's cost in bytes under the chosen cost model.
        capacity: the capacity in bytes.
    """

    def __init__(self, layer: int, nbytes: int, capacity: int) -> None:
        self.layer = int(layer)
        self.nbytes = int(nbytes)
        self.capacity = int(capacity)
        super().__init__(
            f"layer {self.layer} needs {self.nbytes} bytes, more than the capacity of "
            f"{self.capacity} bytes (over by {self.nbytes - self.capacity})"
        )

    def __reduce__(self) -> tuple[type[LayerTooLargeError], tuple[int, int, int]]:
        return (type(self), (self.layer, self.nbytes, self.capacity))


class TooFewGroupsError(InfeasibleError):
    """Exactly k groups were asked for with a capacity, and no k-group partition fits it.

    Attributes:
        k: the number of groups asked for.
        capacity: the capacity in bytes.
        bottleneck: the smallest bottleneck any k-group partition reaches.
        min_groups: the fewest groups that do fit the capacity.
    """

    def __init__(self, k: int, capacity: int, bottleneck: int, min_groups: int) -> None:
        self.k = int(k)
        self.capacity = int(capacity)
        self.bottleneck = int(bottleneck)
        self.min_groups = int(min_groups)
        super().__init__(
            f"no partition into k={self.k} groups fits the capacity of {self.capacity} bytes: the smallest "
            f"bottleneck for k={self.k} is {self.bottleneck} bytes; at least {self.min_groups} groups are needed"
        )

    def __reduce__(self) -> tuple[type[TooFewGroupsError], tuple[int, int, int, int]]:
        return (type(self), (self.k, self.capacity, self.bottleneck, self.min_groups))
