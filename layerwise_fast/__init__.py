"""layerwise_fast: exact contiguous partitioning of network layers under a cache capacity.

    >>> import layerwise_fast as lf
    >>> p = lf.greedy([30, 10, 25, 5, 40], capacity=50)
    >>> p.k, p.boundaries.tolist(), p.group_costs.tolist()
    (3, [0, 2, 4, 5], [40, 30, 40])
    >>> lf.balanced([30, 10, 25, 5, 40], k=2).bottleneck
    65

The partitioners (`greedy`, `balanced`, `dp`) take per-layer sizes in bytes. The model
side turns a network description into those sizes: `LayerTable` (built from records,
a layer-table JSON file or a Hugging Face-style transformer config), `working_set` (the
weights, activations and buffers of each layer for a batch, chunk and precision), and
`Hardware` (GPU profiles with their L2 capacity).

The planner puts it together: `plan(model, hardware, ...)` returns a `Plan` (groups,
devices, chunk, oversize treatment, traffic, speedup, communication and a pipeline
timeline, with `summary()`, a JSON round trip, `to_device_map()` and `split_points()`),
and `sweep(model, batch_sizes, ...)` gives the chunk and group count per batch size.
"""

def _check_native_core() -> None:
    """A clear message where the native module is missing: most often Python runs from
    the source folder, whose unbuilt package shadows the installed one."""
    try:
        import layerwise_fast._core  # noqa: F401  (raises ModuleNotFoundError naming it)
    except ModuleNotFoundError as missing:
        if missing.name != "layerwise_fast._core":
            raise
        import glob
        import os

        folder = os.path.dirname(os.path.abspath(__file__))
        others = sorted(os.path.basename(path) for path in glob.glob(os.path.join(folder, "_core.*")))
        built = f" (it holds {', '.join(others)}, built for another Python)" if others else ""
        raise ImportError(
            f"layerwise_fast's native core is not built in {folder}{built}. If that is the "
            f"source folder (Python imports it first when run from the folder above), run "
            f"Python from another folder to use the installed package, or build the core in "
            f"place with `pip install -e .`"
        ) from missing


_check_native_core()

from layerwise_fast._embed import get_include
from layerwise_fast.chunking import Sweep
from layerwise_fast.deployment import Plan, PlanFormatError
from layerwise_fast.devices import TooManyGroupsError
from layerwise_fast.errors import InfeasibleError, LayerTooLargeError, TooFewGroupsError
from layerwise_fast.hardware import PROFILES, CalibrationError, Hardware
from layerwise_fast.layers import LayerTable, LayerTableError
from layerwise_fast.oversize import OversizeLayerError
from layerwise_fast.partition import balanced, dp, greedy
from layerwise_fast.planner import plan, sweep
from layerwise_fast.result import Partition
from layerwise_fast.units import format_bytes, parse_bytes
from layerwise_fast.workingset import WorkingSet, working_set

__version__ = "0.1.0"

__all__ = [
    "greedy",
    "balanced",
    "dp",
    "Partition",
    "InfeasibleError",
    "LayerTooLargeError",
    "TooFewGroupsError",
    "LayerTable",
    "LayerTableError",
    "working_set",
    "WorkingSet",
    "Hardware",
    "PROFILES",
    "CalibrationError",
    "plan",
    "Plan",
    "PlanFormatError",
    "sweep",
    "Sweep",
    "OversizeLayerError",
    "TooManyGroupsError",
    "parse_bytes",
    "format_bytes",
    "get_include",
    "__version__",
]
