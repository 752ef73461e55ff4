"""layerwise_fast: exact contiguous partitioning of network layers under a cache capacity.

    >>> import layerwise_fast as lf
    >>> p = lf.greedy([30, 10, 25, 5, 40], capacity=50)
    >>> p.k, p.boundaries.tolist(), p.group_costs.tolist()
    (3, [0, 2, 4, 5], [40, 30, 40])
    >>> lf.balanced([30, 10, 25, 5, 40], k=2).bottleneck
    65
"""

from layerwise_fast.errors import InfeasibleError, LayerTooLargeError, TooFewGroupsError
from layerwise_fast.partition import balanced, dp, greedy
from layerwise_fast.result import Partition

__version__ = "0.1.0"

__all__ = ["greedy", "balanced", "dp", "Partition", "LayerTooLargeError", "TooFewGroupsError", "InfeasibleError", "__version__"]
