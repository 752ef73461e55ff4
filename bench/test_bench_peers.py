"""Benchmarks against the peers: the same problems, solved by layerwise_fast and by them.

Two kinds of problem, one pytest-benchmark group per problem and size:

* **k contiguous groups** (``peers, n=N k=K``): cut N seeded layer sizes (uniform in
  0..10^6, from workloads.py) into K contiguous groups with the smallest bottleneck (the
  largest group's sum). layerwise_fast ``balanced(sizes, k)`` (exact), DeepSpeed
  ``partition_balanced`` (a dynamic programme that minimises max-minus-min, pure Python)
  and ``partition_uniform`` (equal numbers of layers, sizes ignored), and torchgpipe
  ``blockpartition.solve`` (a heuristic). Every one of them is handed the same Python
  list of ints.
* **placement on 8 devices** (``peers, placement n=N on 8 devices``): a meta-device
  ``torch.nn.Sequential`` of N ``nn.Linear`` layers of seeded widths, placed in order on
  8 devices of equal capacity C (15% above an even share of the total), each layer whole.
  accelerate ``infer_auto_device_map(model, max_memory={0: C, ..., 7: C},
  no_split_module_classes=["Linear"])`` fills the devices in order (keeping room for the
  largest layer on device 0); layerwise_fast solves the same problem from the module
  sizes: ``balanced(sizes, 8, capacity=C)`` (8 groups that fit, smallest largest device
  load), ``greedy(sizes, C)`` (fewest devices) and, end to end, ``balanced`` on sizes read
  from the model's parameters; the seed's pure-Python greedy runs at the same capacity.

Each benchmark records in ``extra_info``: ``peer``, ``algorithm``, ``problem``, ``n``,
``k`` (devices for a placement), the ``bottleneck`` it reached (largest group or device
load, in the same units as the sizes), ``layerwise_fast_bottleneck`` (the optimum for
that problem, from ``balanced``) and ``gap`` (bottleneck / optimum - 1), so optimality
gaps sit beside the times. Each also asserts that layerwise_fast's bottleneck is no
larger than the peer's, so the untimed run (``--benchmark-disable``) is a test.

Peers are optional (the ``peers`` extra): a peer's benchmarks skip with a reason when it
is missing. Sizes are chosen so that each peer finishes; the slow ones (DeepSpeed's
``partition_balanced`` beyond 100 layers, accelerate at 4000 modules) run only with
``-m slow`` (or ``-m ''`` for everything). bench/plot.py turns the JSON into plots and
the table in bench/README.md.
"""

from __future__ import annotations

import functools
import importlib.metadata
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

import layerwise_fast as lf
from layerwise_fast._reference import seed_greedy
from workloads import SEED, layer_sizes

K_WAY_CASES = [(100, 16), (400, 16), (1000, 16), (2000, 64), (10_000, 64)]
# DeepSpeed's partition_balanced is O(n^2 k) in pure Python: on a shared 2-core machine about
# 0.1 s at n=100, 2 s at 400, 8 s at 1000 and 90 to 180 s at n=2000 with k=64.
DEEPSPEED_BALANCED_MAX_N = 2000
DEEPSPEED_BALANCED_DEFAULT_MAX_N = 100

DEVICES = 8
CAPACITY_HEADROOM = 1.15  # each device holds 15% more than an even share of the model
PLACEMENT_N = (500, 4000)
PLACEMENT_DEFAULT_MAX_N = 500
MIN_WIDTH, MAX_WIDTH = 64, 1024

# Rounds for the benchmarks that take a second or more per call (pytest-benchmark's own
# calibration would run at least 5); the others use the default calibration.
SLOW_ROUNDS = {("deepspeed", 400): 3, ("deepspeed", 1000): 3, ("deepspeed", 2000): 1, ("accelerate", 4000): 3}

MISSING = {
    "deepspeed": "DeepSpeed is not installed (install the 'peers' extra)",
    "torchgpipe": "torchgpipe is not installed (install the 'peers' extra)",
    "accelerate": "accelerate is not installed (install the 'peers' extra)",
    "torch": "torch is not installed (the placement problem is a torch model; install the 'peers' extra)",
}


# ---------------------------------------------------------------------------------------
# Problems


@functools.lru_cache(maxsize=None)
def k_way_sizes(n: int) -> tuple[int, ...]:
    """The n seeded uniform layer sizes of the k-group problems (a tuple, so it can be cached)."""
    return tuple(layer_sizes(n).tolist())


@functools.lru_cache(maxsize=None)
def optimal_bottleneck(n: int, k: int) -> int:
    """The minimum bottleneck over k contiguous groups of ``k_way_sizes(n)``."""
    return int(lf.balanced(np.array(k_way_sizes(n), dtype=np.int64), k).bottleneck)


@dataclass
class Placement:
    """A meta-device Sequential of Linear layers and the capacity of each of the 8 devices."""

    n: int
    model: Any
    sizes: np.ndarray  # bytes of each layer (parameters + buffers), int64
    capacity: int

    @property
    def group(self) -> str:
        return f"peers, placement n={self.n} on {DEVICES} devices"

    @functools.cached_property
    def optimum(self) -> int:
        """The smallest largest device load of an in-order placement that fits."""
        return int(lf.balanced(self.sizes, DEVICES, capacity=self.capacity).bottleneck)


def linear_stack(torch: Any, n: int) -> Any:
    """n ``nn.Linear`` layers on the meta device, of seeded widths 64..1024 chained in order."""
    widths = np.random.default_rng(SEED).integers(MIN_WIDTH, MAX_WIDTH, n + 1, endpoint=True).tolist()
    with torch.device("meta"):
        return torch.nn.Sequential(*(torch.nn.Linear(widths[i], widths[i + 1]) for i in range(n)))


def module_bytes(model: Any) -> list[int]:
    """Bytes of each top-level module of `model` (its parameters and buffers), in one pass."""
    index = {name: i for i, (name, _) in enumerate(model.named_children())}
    sizes = [0] * len(index)
    for name, tensor in itertools.chain(model.named_parameters(), model.named_buffers()):
        sizes[index[name.partition(".")[0]]] += tensor.numel() * tensor.element_size()
    return sizes


@pytest.fixture(scope="module")
def placement(request: pytest.FixtureRequest) -> Placement:
    """The placement problem of ``request.param`` layers (built once per module and size)."""
    torch = pytest.importorskip("torch", reason=MISSING["torch"])
    model = linear_stack(torch, request.param)
    sizes = np.array(module_bytes(model), dtype=np.int64)
    capacity = math.ceil(CAPACITY_HEADROOM * int(sizes.sum()) / DEVICES)
    return Placement(request.param, model, sizes, capacity)


# ---------------------------------------------------------------------------------------
# Recording and checking results


def group_costs(sizes: Sequence[int], boundaries: Sequence[int]) -> np.ndarray:
    """The sum of each group [boundaries[i], boundaries[i+1]) of `sizes` (empty groups cost 0)."""
    cuts = np.asarray(boundaries, dtype=np.int64)
    assert cuts[0] == 0 and cuts[-1] == len(sizes), f"boundaries do not span 0..{len(sizes)}: {cuts}"
    assert np.all(np.diff(cuts) >= 0), f"boundaries are not in order: {cuts}"
    prefix = np.concatenate(([0], np.cumsum(np.asarray(sizes, dtype=np.int64))))
    return prefix[cuts[1:]] - prefix[cuts[:-1]]


def boundaries_of(groups: Sequence[Sequence[int]]) -> list[int]:
    """Cut indices 0 = b0 <= b1 <= ... <= bk = n of a list of groups of layers."""
    return [0, *np.cumsum([len(group) for group in groups]).tolist()]


def peer_version(distribution: str) -> str:
    return importlib.metadata.version(distribution)


def torch_version() -> str | None:
    """The installed torch (the peers run on it), or None."""
    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return None


def record(benchmark, *, group: str, peer: str, algorithm: str, problem: str, n: int, k: int,
           costs: np.ndarray, optimum: int, **extra: object) -> int:
    """Names the benchmark and stores what it reached; returns its bottleneck."""
    bottleneck = int(costs.max())
    benchmark.group = group
    benchmark.extra_info.update(
        peer=peer, algorithm=algorithm, problem=problem, n=n, k=k,
        bottleneck=bottleneck, layerwise_fast_bottleneck=optimum, gap=bottleneck / optimum - 1,
        max_minus_min=int(costs.max() - costs.min()), empty_groups=int(np.count_nonzero(costs == 0)),
        torch_version=torch_version(), **extra,
    )
    return bottleneck


def measure(benchmark, function: Callable[..., Any], *args: Any, rounds: int | None = None, **kwargs: Any) -> Any:
    """Times ``function(*args, **kwargs)``: calibrated, or `rounds` single calls for slow peers."""
    if rounds is None:
        return benchmark(function, *args, **kwargs)
    return benchmark.pedantic(function, args=args, kwargs=kwargs, rounds=rounds, iterations=1)


# ---------------------------------------------------------------------------------------
# k contiguous groups


def k_way_case(n: int, k: int, *marks: pytest.MarkDecorator) -> object:
    return pytest.param(n, k, marks=marks, id=f"n={n}-k={k}")


def k_way_group(n: int, k: int) -> str:
    return f"peers, n={n} k={k}"


ALL_K_WAY = [k_way_case(n, k) for n, k in K_WAY_CASES]
DEEPSPEED_BALANCED_CASES = [
    k_way_case(n, k, *([] if n <= DEEPSPEED_BALANCED_DEFAULT_MAX_N else [pytest.mark.slow]))
    for n, k in K_WAY_CASES
    if n <= DEEPSPEED_BALANCED_MAX_N
]


def record_k_way(benchmark, n: int, k: int, peer: str, algorithm: str, boundaries: Sequence[int],
                 **extra: object) -> int:
    """Records a k-group result given by its cut indices; checks it and returns its bottleneck."""
    costs = group_costs(k_way_sizes(n), boundaries)
    assert len(costs) == k, f"{peer} {algorithm} returned {len(costs)} groups, not {k}"
    return record(benchmark, group=k_way_group(n, k), peer=peer, algorithm=algorithm, problem="k groups",
                  n=n, k=k, costs=costs, optimum=optimal_bottleneck(n, k), **extra)


@pytest.mark.parametrize(("n", "k"), ALL_K_WAY)
def test_layerwise_fast_balanced(benchmark, n: int, k: int) -> None:
    """layerwise_fast ``balanced(sizes, k)``: the exact minimum bottleneck (the reference)."""
    sizes = list(k_way_sizes(n))
    p = measure(benchmark, lf.balanced, sizes, k)
    bottleneck = record_k_way(benchmark, n, k, "layerwise_fast", "balanced", p.boundaries.tolist(),
                              peer_version=lf.__version__)
    assert bottleneck == p.bottleneck == optimal_bottleneck(n, k)


@pytest.mark.parametrize(("n", "k"), DEEPSPEED_BALANCED_CASES)
def test_deepspeed_partition_balanced(benchmark, n: int, k: int) -> None:
    """DeepSpeed ``partition_balanced(weights, num_parts)``: minimises max-minus-min, O(n^2 k)."""
    utils = pytest.importorskip("deepspeed.runtime.utils", reason=MISSING["deepspeed"])
    sizes = list(k_way_sizes(n))
    parts = measure(benchmark, utils.partition_balanced, sizes, k, rounds=SLOW_ROUNDS.get(("deepspeed", n)))
    bottleneck = record_k_way(benchmark, n, k, "deepspeed", "partition_balanced", parts,
                              peer_version=peer_version("deepspeed"))
    assert optimal_bottleneck(n, k) <= bottleneck


@pytest.mark.parametrize(("n", "k"), ALL_K_WAY)
def test_deepspeed_partition_uniform(benchmark, n: int, k: int) -> None:
    """DeepSpeed ``partition_uniform(num_items, num_parts)``: equal layer counts, sizes ignored."""
    utils = pytest.importorskip("deepspeed.runtime.utils", reason=MISSING["deepspeed"])
    parts = measure(benchmark, utils.partition_uniform, n, k)
    bottleneck = record_k_way(benchmark, n, k, "deepspeed", "partition_uniform", parts,
                              peer_version=peer_version("deepspeed"))
    assert optimal_bottleneck(n, k) <= bottleneck


@pytest.mark.parametrize(("n", "k"), ALL_K_WAY)
def test_torchgpipe_blockpartition(benchmark, n: int, k: int) -> None:
    """torchgpipe ``balance.blockpartition.solve(sequence, partitions)``: a heuristic."""
    blockpartition = pytest.importorskip("torchgpipe.balance.blockpartition", reason=MISSING["torchgpipe"])
    sizes = list(k_way_sizes(n))
    groups = measure(benchmark, blockpartition.solve, sizes, k)
    bottleneck = record_k_way(benchmark, n, k, "torchgpipe", "blockpartition.solve", boundaries_of(groups),
                              peer_version=peer_version("torchgpipe"))
    assert optimal_bottleneck(n, k) <= bottleneck


# ---------------------------------------------------------------------------------------
# Placement of a torch model on 8 devices


def placement_case(n: int) -> object:
    marks = [] if n <= PLACEMENT_DEFAULT_MAX_N else [pytest.mark.slow]
    return pytest.param(n, marks=marks, id=f"n={n}")


on_placements = pytest.mark.parametrize("placement", [placement_case(n) for n in PLACEMENT_N], indirect=True)


def record_placement(benchmark, problem: Placement, peer: str, algorithm: str, costs: np.ndarray,
                     **extra: object) -> int:
    """Records an in-order placement given by its device loads; checks that it fits."""
    assert len(costs) <= DEVICES, f"{peer} {algorithm} needs {len(costs)} devices, more than {DEVICES}"
    assert costs.max() <= problem.capacity, f"{peer} {algorithm} overfills a device: {costs.max()} > {problem.capacity}"
    return record(benchmark, group=problem.group, peer=peer, algorithm=algorithm, problem="placement",
                  n=problem.n, k=DEVICES, costs=costs, optimum=problem.optimum,
                  capacity=problem.capacity, devices_used=len(costs), **extra)


def accelerate_loads(device_map: dict[str, Any], sizes: np.ndarray) -> np.ndarray:
    """Each used device's load under accelerate's map; checks the layers are whole and in order."""
    devices = [device_map.get(str(i), device_map.get("")) for i in range(len(sizes))]
    assert all(isinstance(d, int) and 0 <= d < DEVICES for d in devices), (
        f"accelerate put layers off the {DEVICES} devices: {sorted(set(map(str, devices)))}"
    )
    assert devices == sorted(devices), "accelerate's placement is not in layer order"
    starts = np.flatnonzero(np.diff(devices, prepend=-1))
    return np.add.reduceat(sizes, starts)


@on_placements
@pytest.mark.parametrize("algorithm", ["balanced", "greedy"])
def test_layerwise_fast_placement(benchmark, placement: Placement, algorithm: str) -> None:
    """``balanced(sizes, 8, capacity=C)`` (the reference) and ``greedy(sizes, C)`` (fewest devices)."""
    if algorithm == "balanced":
        p = measure(benchmark, lf.balanced, placement.sizes, DEVICES, capacity=placement.capacity)
    else:
        p = measure(benchmark, lf.greedy, placement.sizes, placement.capacity)
    bottleneck = record_placement(benchmark, placement, "layerwise_fast", algorithm, p.group_costs,
                                  peer_version=lf.__version__)
    if algorithm == "balanced":
        assert bottleneck == placement.optimum


@on_placements
def test_layerwise_fast_placement_from_model(benchmark, placement: Placement) -> None:
    """End to end: read each module's bytes from the model, then ``balanced(..., 8, capacity=C)``."""

    def place(model: Any) -> lf.Partition:
        return lf.balanced(module_bytes(model), DEVICES, capacity=placement.capacity)

    p = measure(benchmark, place, placement.model)
    bottleneck = record_placement(benchmark, placement, "layerwise_fast", "balanced", p.group_costs,
                                  variant="sizes read from the model", peer_version=lf.__version__)
    assert bottleneck == placement.optimum


@on_placements
def test_accelerate_infer_auto_device_map(benchmark, placement: Placement) -> None:
    """accelerate ``infer_auto_device_map`` with 8 devices of capacity C, Linear layers kept whole."""
    utils = pytest.importorskip("accelerate.utils", reason=MISSING["accelerate"])
    sizes_seen = utils.compute_module_sizes(placement.model)
    assert [sizes_seen[str(i)] for i in range(placement.n)] == placement.sizes.tolist()
    max_memory = {device: placement.capacity for device in range(DEVICES)}
    device_map = measure(benchmark, utils.infer_auto_device_map, placement.model, max_memory=max_memory,
                         no_split_module_classes=["Linear"], rounds=SLOW_ROUNDS.get(("accelerate", placement.n)))
    loads = accelerate_loads(device_map, placement.sizes)
    bottleneck = record_placement(benchmark, placement, "accelerate", "infer_auto_device_map", loads,
                                  peer_version=peer_version("accelerate"))
    assert placement.optimum <= bottleneck
    assert lf.greedy(placement.sizes, placement.capacity).k <= len(loads)


@on_placements
def test_seed_greedy_placement(benchmark, placement: Placement) -> None:
    """The seed's pure-Python greedy (section 3.1) at capacity C, on a list of the sizes."""
    sizes = placement.sizes.tolist()
    groups = measure(benchmark, seed_greedy, sizes, placement.capacity)
    costs = group_costs(sizes, boundaries_of(groups))
    bottleneck = record_placement(benchmark, placement, "seed", "seed_greedy", costs)
    assert placement.optimum <= bottleneck
