"""On-GPU verification of planned groups, and the one-call GPU run.

A group to verify is a :class:`GroupSpec`: its layers (see
:mod:`~layerwise_fast.cuda.reference`), hidden size, total tokens, chunk tokens, dtype,
and what the plan says about it (planned working set, predicted speedup). For each group
:func:`verify_groups` runs, on one card in one process:

- ``planned``: the chunked kernel at the planned chunk;
- ``2x_cache`` and ``4x_cache``: the same kernel with chunks whose working set is at
  least 2x and 4x the nominal L2;
- ``layer_by_layer``: the control, one launch per layer over the whole tensor;
- ``device_copy``: a device-to-device copy of the activation tensor (the bar the control
  must reach);
- ``planned_<barrier>`` for each barrier in ``compare_barriers``: the planned chunk with
  that grid barrier instead (:mod:`.barrier`), beside the main one; it is checked like
  the others and reported, and the criteria judge the main barrier's run.

Each kernel run starts from a NaN-poisoned output and is compared with the float64
reference (:func:`~layerwise_fast.cuda.reference.reference_forward`) on a sample of
rows, after its first launch and again after its timed launches; every element must have
been written. Rates count bytes read plus bytes written: ``2 * layers * tokens * hidden *
itemsize`` for a group run (weights, a few KiB per layer, are not counted), ``2 * size``
for the copy. The pass criteria of each group:

========================  ===============================================================
``working_set_vs_knee``   planned working set <= 0.8 x the calibration's knee
``planned_vs_hbm``        rate of ``planned`` >= 1.3 x the calibration's HBM rate
``4x_cache_vs_hbm``       rate of ``4x_cache`` <= 1.1 x the HBM rate
``speedup_agreement``     measured speedup (``layer_by_layer`` time / ``planned`` time)
                          within 20% of the predicted one
``control_vs_copy``       rate of ``layer_by_layer`` >= 0.85 x the rate of ``device_copy``
========================  ===============================================================

Under the simulator, results are checked but nothing is timed: every criterion that needs
a time reads "unmeasured".

A group without a predicted speedup is judged against :func:`model_speedup` of the
calibration (the two-rate model), and the report says which one it used.

From a plan: :func:`groups_from_plan` turns a list of :class:`PlannedGroup` (the layers,
hidden size, working-set bytes and predicted speedup of each group, as a plan holds them)
into :class:`GroupSpec` s scaled to the card: the chunk keeps the planned working set
(rounded down to a power-of-two number of tokens), the total tokens shrink to about
``total_bytes`` so that one run takes milliseconds. A plan adapter only has to build the
``PlannedGroup`` list from the plan's groups and call ``verify_groups(groups_from_plan(
...), calibration)``.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from .barrier import BARRIER_MODES
from .calibrate import BarrierCost, Calibration, calibrate, calibration_sizes, measure_barriers, time_launches
from .kernels import (
    MAX_ELEMENTS,
    PACKS_IN_FLIGHT,
    PACKS_IN_FLIGHT_CHOICES,
    DeviceGroup,
    Launch,
    LaunchGeometry,
    check_packs_in_flight,
    count_mismatches,
    count_non_finite,
    cuda,
    device_info,
    is_simulated,
    poison,
    prepare_chunked,
    prepare_layer_by_layer,
    storage_dtype,
    upload_group,
)
from ..summary import counted
from ..units import integer_argument, write_text_atomically
from .reference import LayerSpec, affine, make_params, reference_forward, rmsnorm, weight_bytes, worst_row_error

MIB = 1 << 20
GIB = 1 << 30

TOLERANCE = {"float32": 1e-4, "float16": 5e-3, "bfloat16": 4e-2}
"""Largest ``||out - ref|| / ||ref||`` of any sampled row accepted per storage dtype (the
reference is float64 with no rounding between layers; the kernels round to the dtype
after every layer, and compute activations with fast math: ``tanh.approx.f32``, whose
error is far above float32 rounding, hence 1e-4 for float32. A published exhaustive
measurement of that instruction (MUFU.TANH, sm_75 on) puts its largest relative error
at 1.113e-5; every tanh of the bundled chains off by that much moves a row by at most
1.1e-5 in the float64 reference, a tenth of the float32 tolerance. A wrong row or a
stale element is off by far more). Twice this, times ``1 + |control|``, is the most an
element of a chunked run may differ from the layer-by-layer control's."""

ITEMSIZE = {"float32": 4, "float16": 2, "bfloat16": 2}
"""Bytes per activation element of each storage dtype."""

TIMING_WARM_UP_SECONDS = 0.1
"""Wall time of untimed launches before each timing: the host's work between runs (a
group's inputs and reference take seconds) lets the clocks fall back towards idle."""

KNEE_MARGIN = 0.8
MIN_PLANNED_OVER_HBM = 1.3
MAX_4X_OVER_HBM = 1.1
SPEEDUP_AGREEMENT = 0.2
MIN_CONTROL_OVER_COPY = 0.85


# --------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class GroupSpec:
    """One group to verify.

    Attributes:
        name: a label for reports.
        layers: the layers, in order (at least one).
        hidden: channels per token (>= 1).
        tokens: rows of the activation tensor (>= 1).
        chunk_tokens: rows per chunk of the planned run, a power of two.
        dtype: storage dtype of the activations: "float32", "float16" or "bfloat16".
        planned_working_set_bytes: what the plan says the group's working set is; by
            default the chunk's own (:func:`chunk_working_set_bytes`).
        predicted_speedup: the plan's predicted speedup over layer-by-layer, if any.
    """

    name: str
    layers: tuple[LayerSpec, ...]
    hidden: int
    tokens: int
    chunk_tokens: int
    dtype: str = "float16"
    planned_working_set_bytes: int | None = None
    predicted_speedup: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        if not self.layers:
            raise ValueError(f"group {self.name!r}: layers must hold at least one layer")
        for label, value in (("hidden", self.hidden), ("tokens", self.tokens),
                             ("chunk_tokens", self.chunk_tokens)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
                raise TypeError(f"group {self.name!r}: {label} must be an int, got "
                                f"{type(value).__name__} {value!r}")
            if value < 1:
                raise ValueError(f"group {self.name!r}: {label} must be >= 1, got {value}")
        if self.tokens * self.hidden > MAX_ELEMENTS:
            raise ValueError(f"group {self.name!r}: {self.tokens} tokens x {self.hidden} "
                             f"channels = {self.tokens * self.hidden} elements; the kernels "
                             f"take at most {MAX_ELEMENTS}")
        if self.chunk_tokens & (self.chunk_tokens - 1):
            raise ValueError(
                f"group {self.name!r}: chunk_tokens must be a power of two, got {self.chunk_tokens}"
            )
        if self.dtype not in TOLERANCE:
            raise ValueError(f"group {self.name!r}: dtype must be one of {tuple(TOLERANCE)}, got {self.dtype!r}")
        if self.predicted_speedup is not None and not (
            math.isfinite(self.predicted_speedup) and self.predicted_speedup > 0
        ):
            raise ValueError(
                f"group {self.name!r}: predicted_speedup must be finite and > 0, got {self.predicted_speedup}"
            )

    @property
    def itemsize(self) -> int:
        """Bytes per activation element."""
        return ITEMSIZE[self.dtype]

    @property
    def bytes_per_run(self) -> int:
        """Bytes read + written by one run over all tokens (weights not counted)."""
        return 2 * len(self.layers) * self.tokens * self.hidden * self.itemsize

    @property
    def chunk_working_set_bytes(self) -> int:
        """The working set the chunked run holds: its chunk's rows and the weights."""
        return chunk_working_set_bytes(self.layers, self.hidden, self.chunk_tokens, self.itemsize)

    @property
    def working_set_bytes(self) -> int:
        """The planned working set, or the planned chunk's when the plan gave none."""
        if self.planned_working_set_bytes is not None:
            return self.planned_working_set_bytes
        return self.chunk_working_set_bytes


@dataclass(frozen=True)
class PlannedGroup:
    """What a plan says about one group: the input of :func:`groups_from_plan`.

    Attributes:
        name: a label.
        layers: the group's layers as memory-bound stand-ins (see the reference module).
        hidden: channels per token.
        working_set_bytes: the planned working set in bytes.
        predicted_speedup: the plan's predicted speedup over layer-by-layer, if any.
    """

    name: str
    layers: tuple[LayerSpec, ...]
    hidden: int
    working_set_bytes: int
    predicted_speedup: float | None = None


def chunk_working_set_bytes(
    layers: Sequence[LayerSpec], hidden: int, chunk_tokens: int, itemsize: int
) -> int:
    """Bytes a chunked run keeps live: the chunk's activations plus every layer's weights.

    The chunk is updated in place, so one ``chunk_tokens x hidden`` buffer is live; the
    input chunk is read once by the first layer and not reused.
    """
    return chunk_tokens * hidden * itemsize + weight_bytes(layers, hidden)


def chunk_tokens_for(
    working_set_bytes: int, layers: Sequence[LayerSpec], hidden: int, itemsize: int, at_least: bool
) -> int:
    """The power-of-two chunk whose working set is the largest <= ``working_set_bytes``
    (``at_least=False``) or the smallest >= it (``at_least=True``)."""
    row_bytes = hidden * itemsize
    room = working_set_bytes - weight_bytes(layers, hidden)
    if at_least:
        rows = max(1, -(-room // row_bytes))
        return 1 << (rows - 1).bit_length()
    if room < row_bytes:
        raise ValueError(
            f"working set of {working_set_bytes} bytes holds less than the weights "
            f"({weight_bytes(layers, hidden)} bytes) plus one row ({row_bytes} bytes)"
        )
    return 1 << ((room // row_bytes).bit_length() - 1)


def groups_from_plan(
    planned: Sequence[PlannedGroup],
    *,
    cache_bytes: int,
    dtype: str = "float16",
    total_bytes: int = GIB,
) -> list[GroupSpec]:
    """Groups to verify, scaled to the card, from what a plan says about its groups.

    Each chunk is a power-of-two number of tokens, and the stand-in's channels are
    widened (in multiples of 8, from ``hidden``) so that the chunk's working set comes
    as close below the planned one as they allow: the run is at the planned size, not
    at the power of two below it. The tokens are about ``total_bytes`` of activations,
    a multiple of the chunk of the ``4x_cache`` run and at least one such chunk.
    """
    if dtype not in ITEMSIZE:
        raise ValueError(f"dtype must be one of {tuple(ITEMSIZE)}, got {dtype!r}")
    itemsize = ITEMSIZE[dtype]
    if cache_bytes < 1 or total_bytes < 1:
        raise ValueError(f"cache_bytes and total_bytes must be >= 1, got {cache_bytes} and {total_bytes}")
    specs = []
    for group in planned:
        chunk = chunk_tokens_for(group.working_set_bytes, group.layers, group.hidden, itemsize, False)
        hidden = fitted_hidden(group, chunk, itemsize)
        largest = chunk_tokens_for(4 * cache_bytes, group.layers, hidden, itemsize, True)
        tokens = max(largest, total_bytes // (hidden * itemsize) // largest * largest)
        specs.append(
            GroupSpec(
                name=group.name,
                layers=tuple(group.layers),
                hidden=hidden,
                tokens=tokens,
                chunk_tokens=chunk,
                dtype=dtype,
                planned_working_set_bytes=group.working_set_bytes,
                predicted_speedup=group.predicted_speedup,
            )
        )
    return specs


def fitted_hidden(group: PlannedGroup, chunk_tokens: int, itemsize: int) -> int:
    """The most channels, a multiple of 8 (whole 16-byte packs at any dtype) and at
    least ``group.hidden``, at which ``chunk_tokens`` rows and the layers' weights fit
    ``group.working_set_bytes`` (both grow linearly with the channels)."""
    per_channel = chunk_tokens * itemsize + weight_bytes(group.layers, 1)
    widest = group.working_set_bytes // per_channel // 8 * 8
    return max(group.hidden, widest)


def model_speedup(layer_count: int, working_set_bytes: int, calibration: Calibration) -> float:
    """Predicted chunked-over-layer-by-layer speedup from a calibration (a two-rate model).

    Layer by layer, all ``2 L B`` bytes move at the HBM rate. Chunked, the first read and
    the last write (``2 B``) move at the HBM rate and the other ``2 (L - 1) B`` at the
    calibration's rate at the working set. So ``L / (1 + (L - 1) * hbm / rate(ws))``.
    """
    if calibration.summary is None:
        raise ValueError("the calibration is untimed (simulator): no rates to model with")
    if layer_count < 1:
        raise ValueError(f"layer_count must be >= 1, got {layer_count}")
    ratio = calibration.summary.hbm_bytes_per_s / calibration.rate_at(working_set_bytes)
    return layer_count / (1.0 + (layer_count - 1) * ratio)


def plan_groups(plan: Any, *, hidden: int = 4096, max_layers: int = 16) -> list[PlannedGroup]:
    """What a :class:`~layerwise_fast.Plan` says about its groups, as :class:`PlannedGroup`.

    The kernels run memory-bound stand-ins, not the model's own operators: each group
    gets as many layers as it holds (at most ``max_layers``), alternating an RMSNorm
    and affine layers with the three activations, at ``hidden`` channels. What is
    carried over from the plan is each group's planned working set (bytes) and its
    predicted speedup, which is what the verification puts to the test.
    """
    cycle = (rmsnorm(), affine("silu"), affine("gelu_tanh"), affine("relu"))
    boundaries = plan.partition.boundaries
    groups = []
    for g in range(plan.partition.k):
        count = max(1, min(max_layers, int(boundaries[g + 1] - boundaries[g])))
        layers = tuple(cycle[i % len(cycle)] for i in range(count))
        groups.append(PlannedGroup(f"group {g}", layers, hidden, int(plan.partition.group_costs[g]),
                                   float(plan.performance.speedup[g])))
    return groups


def distinct_groups(planned: Sequence[PlannedGroup], limit: int) -> tuple[list[PlannedGroup], int]:
    """The first ``limit`` distinct groups of ``planned`` and how many distinct ones were left.

    Groups alike in layer count, hidden size, working set and predicted speedup run
    the same kernels at the same sizes: each is verified once, under a name that lists
    the groups it stands for ("group 1 (+10 alike)").
    """
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    alike: dict[tuple[Any, ...], list[PlannedGroup]] = {}
    for group in planned:
        key = (len(group.layers), group.hidden, group.working_set_bytes, group.predicted_speedup)
        alike.setdefault(key, []).append(group)
    picked = []
    for members in list(alike.values())[:limit]:
        first = members[0]
        name = first.name if len(members) == 1 else f"{first.name} (+{len(members) - 1} alike)"
        picked.append(PlannedGroup(name, first.layers, first.hidden, first.working_set_bytes,
                                   first.predicted_speedup))
    return picked, max(0, len(alike) - limit)


def verify_plan(
    plan: Any,
    calibration: Calibration | None = None,
    *,
    hidden: int = 4096,
    max_layers: int = 16,
    max_groups: int = 4,
    dtype: str = "float16",
    total_bytes: int = GIB,
    cache_bytes: int | None = None,
    repeats: int = 5,
    threads_per_block: int = 256,
    seed: int = 0,
    barrier: str = "cg",
    compare_barriers: Sequence[str] = (),
    packs_in_flight: int = PACKS_IN_FLIGHT,
) -> list[GroupReport]:
    """Verify the groups of a :class:`~layerwise_fast.Plan` on this card.

    Each distinct group (see :func:`distinct_groups`; at most ``max_groups``) runs as
    memory-bound stand-ins (:func:`plan_groups`) at its planned working set, scaled to
    the card by :func:`groups_from_plan`, and is judged against the plan's own
    predicted speedup. The stand-ins model a group's bytes, not its operators: a group
    whose plan predicts a loss (tiled weights streamed from HBM) or a gain from compute
    will disagree with them, and the report shows it. ``barrier``,
    ``compare_barriers`` and ``packs_in_flight`` as in :func:`verify_groups`.
    """
    cache = _resolve_cache(cache_bytes, calibration)
    specs, _ = plan_specs(plan, cache_bytes=cache, hidden=hidden, max_layers=max_layers,
                          max_groups=max_groups, dtype=dtype, total_bytes=total_bytes)
    return verify_groups(specs, calibration, cache_bytes=cache, repeats=repeats,
                         threads_per_block=threads_per_block, seed=seed, barrier=barrier,
                         compare_barriers=compare_barriers, packs_in_flight=packs_in_flight)


def plan_specs(
    plan: Any, *, cache_bytes: int, hidden: int = 4096, max_layers: int = 16, max_groups: int = 4,
    dtype: str = "float16", total_bytes: int = GIB,
) -> tuple[list[GroupSpec], int]:
    """The first ``max_groups`` distinct groups of ``plan`` as :class:`GroupSpec` s scaled
    to a card with ``cache_bytes`` of L2, and how many distinct groups were left out."""
    picked, left = distinct_groups(plan_groups(plan, hidden=hidden, max_layers=max_layers), max_groups)
    return groups_from_plan(picked, cache_bytes=cache_bytes, dtype=dtype, total_bytes=total_bytes), left


def _resolve_cache(cache_bytes: int | None, calibration: Calibration | None) -> int:
    """``cache_bytes``, else the calibration's L2, else the device's."""
    cache = cache_bytes
    if cache is None:
        cache = calibration.l2_bytes if calibration is not None else device_info().l2_bytes
    if cache is None or cache < 1:
        raise ValueError(f"cache_bytes must be given (>= 1) where the device reports no L2, got {cache}")
    return cache


def bundled_plan(small: bool = False) -> list[PlannedGroup]:
    """The plan the one-call GPU run verifies (no predicted speedups: the model fills them in).

    ``A``: 8 layers (two of each affine activation, two rmsnorms) at hidden 4096 with a
    16 MiB chunk; ``B``: 4 layers at hidden 5120 with a 20 MiB chunk (both at float16,
    plus their weights). ``small=True`` gives one 2-layer group at hidden 32 for the
    simulator.
    """
    if small:
        layers: tuple[LayerSpec, ...] = (rmsnorm(), affine("silu"))
        return [PlannedGroup("S", layers, 32, chunk_working_set_bytes(layers, 32, 4, 2))]
    block = (rmsnorm(), affine("gelu_tanh"), affine("silu"), affine("relu"))
    group_a = block + (rmsnorm(), affine("silu"), affine("gelu_tanh"), affine("relu"))
    group_b = (rmsnorm(), affine("silu"), affine("gelu_tanh"), affine("relu"))
    return [
        PlannedGroup("A", group_a, 4096, chunk_working_set_bytes(group_a, 4096, 2048, 2)),
        PlannedGroup("B", group_b, 5120, chunk_working_set_bytes(group_b, 5120, 2048, 2)),
    ]


# --------------------------------------------------------------------------- reports


@dataclass
class RunReport:
    """One variant of one group.

    Attributes:
        variant: "planned", "2x_cache", "4x_cache", "layer_by_layer", "device_copy", or
            "planned_<barrier>" (the planned chunk with another grid barrier).
        chunk_tokens: rows per chunk (None for the control and the copy).
        working_set_bytes: the chunk's working set (None for the control and the copy).
        bytes_moved: bytes read + written per run.
        seconds: median time per run, None when untimed.
        bandwidth_bytes_per_s: ``bytes_moved / seconds``, None when untimed.
        relative_error: the worst sampled row's ``||out - ref|| / ||ref||`` over the checks
            (None for the copy).
        unwritten: most elements left non-finite (poison) over the checks (None for the copy).
        mismatches: most elements, over the whole tensor, that differ from the
            layer-by-layer control's output beyond twice the dtype's tolerance (None for
            the control and the copy).
        geometry: the launch geometry (None for the copy).
        barrier_timeouts: grid barrier waits that gave up (the run's output is then not valid).
    """

    variant: str
    chunk_tokens: int | None
    working_set_bytes: int | None
    bytes_moved: int
    seconds: float | None
    bandwidth_bytes_per_s: float | None
    relative_error: float | None = None
    unwritten: int | None = None
    geometry: LaunchGeometry | None = None
    barrier_timeouts: int = 0
    mismatches: int | None = None


@dataclass
class Criterion:
    """One pass criterion: ``measured`` against ``limit`` (None when unmeasured)."""

    name: str
    description: str
    measured: float | None
    limit: float
    at_most: bool
    passed: bool | None = field(init=False)

    def __post_init__(self) -> None:
        if self.measured is None:
            self.passed = None
        else:
            self.passed = self.measured <= self.limit if self.at_most else self.measured >= self.limit


@dataclass
class GroupReport:
    """Everything measured for one group."""

    group: GroupSpec
    tolerance: float
    runs: dict[str, RunReport]
    predicted_speedup: float | None
    prediction_source: str
    measured_speedup: float | None
    criteria: list[Criterion]

    @property
    def correct(self) -> bool:
        """Every kernel run matched the reference, wrote every element, and crossed every
        grid barrier in time."""
        return all(_run_correct(run, self.tolerance) for run in self.runs.values() if run.variant != "device_copy")

    @property
    def verdict(self) -> str:
        """One of: ``wrong`` (some result differs from the reference or was not written),
        ``fail`` (a criterion failed), ``pass``, ``unmeasured`` (a criterion had no time)."""
        if not self.correct:
            return "wrong"
        states = [c.passed for c in self.criteria]
        if any(state is False for state in states):
            return "fail"
        return "pass" if all(states) else "unmeasured"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        group = asdict(self.group)
        group["layers"] = [asdict(layer) for layer in self.group.layers]
        group["working_set_bytes"] = self.group.working_set_bytes
        group["chunk_working_set_bytes"] = self.group.chunk_working_set_bytes
        return {
            "group": group,
            "tolerance": self.tolerance,
            "correct": self.correct,
            "verdict": self.verdict,
            "predicted_speedup": self.predicted_speedup,
            "prediction_source": self.prediction_source,
            "measured_speedup": self.measured_speedup,
            "runs": {name: asdict(run) for name, run in self.runs.items()},
            "criteria": [asdict(c) for c in self.criteria],
        }


# --------------------------------------------------------------------------- verification


def verify_groups(
    groups: Sequence[GroupSpec],
    calibration: Calibration | None = None,
    *,
    cache_bytes: int | None = None,
    repeats: int = 5,
    sample_rows: int = 4096,
    threads_per_block: int = 256,
    seed: int = 0,
    barrier: str = "cg",
    compare_barriers: Sequence[str] = (),
    packs_in_flight: int = PACKS_IN_FLIGHT,
) -> list[GroupReport]:
    """Run and check every variant of every group; see the module docstring.

    Args:
        groups: the groups.
        calibration: the same card's calibration (for the knee and HBM rate), if any.
        cache_bytes: the nominal cache for the ``2x_cache``/``4x_cache`` runs; default the
            calibration's L2, else the device's (required under the simulator without a
            calibration).
        repeats: timed runs per variant after one checked warm-up run (median counts).
        sample_rows: rows compared with the float64 reference (all rows when fewer).
        threads_per_block: a power of two in [32, 1024].
        seed: seed of inputs and weights (fresh per group).
        barrier: the chunked kernel's grid barrier (one of ``BARRIER_MODES``).
        compare_barriers: other barriers to run the planned chunk with as well.
        packs_in_flight: packs a lane loads at a time in every kernel run (one of
            ``PACKS_IN_FLIGHT_CHOICES``; packed rows only).
    """
    check_packs_in_flight(packs_in_flight)
    _check_run_counts(repeats, sample_rows)
    _check_barriers((barrier, *compare_barriers))
    cache = _resolve_cache(cache_bytes, calibration)
    rng = np.random.default_rng(seed)
    options = _RunOptions(repeats, sample_rows, threads_per_block, barrier,
                          tuple(mode for mode in dict.fromkeys(compare_barriers) if mode != barrier),
                          packs_in_flight)
    return [_verify_group(group, calibration, cache, options, rng) for group in groups]


def _check_run_counts(repeats: int, sample_rows: int) -> None:
    # Two rows at least: the first and the last row are always among those sampled.
    if repeats < 1 or sample_rows < 2:
        raise ValueError(f"repeats must be >= 1 and sample_rows >= 2, got {repeats} and "
                         f"{sample_rows}")


def _check_barriers(modes: Sequence[str]) -> None:
    for mode in modes:
        if mode not in BARRIER_MODES:
            raise ValueError(f"barriers must be among {BARRIER_MODES}, got {mode!r}")


@dataclass(frozen=True)
class _RunOptions:
    repeats: int
    sample_rows: int
    threads_per_block: int
    barrier: str
    compare_barriers: tuple[str, ...]
    packs_in_flight: int


@dataclass
class _Workspace:
    """Device buffers and the reference of one group."""

    x: Any
    y: Any
    device_group: DeviceGroup
    rows: np.ndarray
    reference: np.ndarray
    tolerance: float
    control: Any = None  # the layer-by-layer output, once the control has run

    def keep_control_output(self) -> None:
        """Keep the output the control just wrote, for the chunked runs to match."""
        self.control = cuda.device_array_like(self.y)
        self.control.copy_to_device(self.y)
        cuda.synchronize()


def _to_device(host: np.ndarray) -> Any:
    """Copy to the device; bfloat16 travels as its uint16 bits (no buffer protocol for it)."""
    if host.dtype.name == "bfloat16":
        return cuda.to_device(host.view(np.uint16)).view(host.dtype)
    return cuda.to_device(host)


def _to_host(device_array: Any) -> np.ndarray:
    """Copy to the host; bfloat16 travels as its uint16 bits."""
    dtype = np.dtype(device_array.dtype)
    if dtype.name == "bfloat16":
        bits: np.ndarray = device_array.view(np.uint16).copy_to_host()
        return bits.view(dtype)
    out: np.ndarray = device_array.copy_to_host()
    return out


def _prepare(group: GroupSpec, sample_rows: int, rng: np.random.Generator) -> _Workspace:
    dtype = storage_dtype(group.dtype)
    x_host = rng.standard_normal((group.tokens, group.hidden), dtype=np.float32).astype(dtype)
    params = make_params(group.layers, group.hidden, rng)
    if group.tokens <= sample_rows:
        rows = np.arange(group.tokens)
    else:
        picked = rng.choice(group.tokens, size=sample_rows - 2, replace=False)
        rows = np.unique(np.concatenate([picked, [0, group.tokens - 1]]))
    reference = reference_forward(x_host[rows], group.layers, params)
    x = _to_device(x_host)
    return _Workspace(x, cuda.device_array_like(x), upload_group(group.layers, params), rows,
                      reference, TOLERANCE[group.dtype])


@dataclass(frozen=True)
class _Checked:
    """What one checked run wrote: the worst relative error of a sampled row, the count
    of non-finite elements and of elements off the control's output (None: not matched)."""

    error: float
    unwritten: int
    mismatches: int | None

    def worse(self, other: _Checked) -> _Checked:
        mismatches = (None if self.mismatches is None or other.mismatches is None
                      else max(self.mismatches, other.mismatches))
        error = float(np.maximum(self.error, other.error))  # a NaN in either stays NaN
        return _Checked(error, max(self.unwritten, other.unwritten), mismatches)


def _check(work: _Workspace, against_control: bool) -> _Checked:
    """Check the output of the last run."""
    unwritten = count_non_finite(work.y)  # on the device: a host scan of 1 GiB takes ~1 s
    out = _to_host(work.y)
    mismatches = (count_mismatches(work.y, work.control, 2 * work.tolerance)
                  if against_control else None)
    return _Checked(worst_row_error(out[work.rows], work.reference), unwritten, mismatches)


def _checked_run(launch: Launch, work: _Workspace, against_control: bool) -> _Checked:
    """Poison the output, run once and check it: every element must be written anew."""
    poison(work.y)
    launch()
    cuda.synchronize()
    return _check(work, against_control)


def _run_kernel_variant(
    variant: str, launch: Launch, work: _Workspace, bytes_moved: int, repeats: int,
    chunk_tokens: int | None, working_set: int | None,
) -> RunReport:
    """A checked run, the timed runs, then another checked run (timing can change what a
    race does). Chunked runs are also matched element by element against the control's
    output, when it has run."""
    against_control = chunk_tokens is not None and work.control is not None
    first = _checked_run(launch, work, against_control)
    times = time_launches(launch, repeats, TIMING_WARM_UP_SECONDS)
    last = _checked_run(launch, work, against_control)
    checked = first.worse(last)
    seconds = None if times is None else statistics.median(times)
    return RunReport(
        variant=variant,
        chunk_tokens=chunk_tokens,
        working_set_bytes=working_set,
        bytes_moved=bytes_moved,
        seconds=seconds,
        bandwidth_bytes_per_s=None if seconds is None else bytes_moved / seconds,
        relative_error=checked.error,
        unwritten=checked.unwritten,
        geometry=launch.geometry,
        barrier_timeouts=launch.barrier_timeouts(),
        mismatches=checked.mismatches,
    )


def _run_copy(work: _Workspace, repeats: int) -> RunReport:
    nbytes = int(work.x.size * work.x.dtype.itemsize)
    stream = cuda.default_stream()  # an asynchronous copy, ordered with the timing events

    def copy() -> None:
        work.y.copy_to_device(work.x, stream=stream)

    copy()  # warm-up
    times = time_launches(copy, repeats, TIMING_WARM_UP_SECONDS)
    seconds = None if times is None else statistics.median(times)
    return RunReport("device_copy", None, None, 2 * nbytes, seconds,
                     None if seconds is None else 2 * nbytes / seconds)


def _verify_group(
    group: GroupSpec, calibration: Calibration | None, cache: int, options: _RunOptions,
    rng: np.random.Generator,
) -> GroupReport:
    work = _prepare(group, options.sample_rows, rng)
    bytes_moved = group.bytes_per_run
    chunks = {
        "planned": (group.chunk_tokens, options.barrier),
        "2x_cache": (chunk_tokens_for(2 * cache, group.layers, group.hidden, group.itemsize, True),
                     options.barrier),
        "4x_cache": (chunk_tokens_for(4 * cache, group.layers, group.hidden, group.itemsize, True),
                     options.barrier),
    }
    chunks.update({f"planned_{mode}": (group.chunk_tokens, mode) for mode in options.compare_barriers})
    runs: dict[str, RunReport] = {}
    runs["layer_by_layer"] = _run_kernel_variant(
        "layer_by_layer",
        prepare_layer_by_layer(work.x, work.y, work.device_group, options.threads_per_block,
                               packs_in_flight=options.packs_in_flight),
        work, bytes_moved, options.repeats, None, None,
    )
    work.keep_control_output()
    for variant, (chunk, barrier) in chunks.items():
        runs[variant] = _run_kernel_variant(
            variant,
            prepare_chunked(work.x, work.y, work.device_group, chunk, options.threads_per_block,
                            barrier=barrier, packs_in_flight=options.packs_in_flight),
            work, bytes_moved, options.repeats, chunk,
            chunk_working_set_bytes(group.layers, group.hidden, min(chunk, group.tokens), group.itemsize),
        )
    runs["device_copy"] = _run_copy(work, options.repeats)
    return group_report(group, calibration, work.tolerance, runs)


@dataclass(frozen=True)
class VariantRun:
    """One kernel variant of one group (see :func:`sweep_variants`).

    Attributes:
        barrier, packs_in_flight: the variant.
        chunked: the planned chunk with this variant.
        control: layer by layer with the same ``packs_in_flight``.
    """

    barrier: str
    packs_in_flight: int
    chunked: RunReport
    control: RunReport

    @property
    def speedup(self) -> float | None:
        """Layer-by-layer time over chunked time, both with this variant's packs."""
        return _ratio(self.control.seconds, self.chunked.seconds)

    def correct(self, tolerance: float) -> bool:
        """Both runs matched the reference within ``tolerance``, wrote every element and
        crossed every grid barrier in time."""
        return _run_correct(self.chunked, tolerance) and _run_correct(self.control, tolerance)


def sweep_variants(
    group: GroupSpec,
    *,
    barriers: Sequence[str] = BARRIER_MODES,
    packs: Sequence[int] = PACKS_IN_FLIGHT_CHOICES,
    repeats: int = 5,
    sample_rows: int = 4096,
    threads_per_block: int = 256,
    seed: int = 0,
) -> list[VariantRun]:
    """Run ``group``'s planned chunk with every barrier and packs-in-flight pair, and its
    control with every packs-in-flight count, on one set of inputs; every run is
    checked against the reference like :func:`verify_groups`' runs.
    """
    _check_barriers(barriers)
    for count in packs:
        if count not in PACKS_IN_FLIGHT_CHOICES:
            raise ValueError(f"packs must be among {PACKS_IN_FLIGHT_CHOICES}, got {count!r}")
    _check_run_counts(repeats, sample_rows)
    work = _prepare(group, sample_rows, np.random.default_rng(seed))
    bytes_moved = group.bytes_per_run
    working_set = chunk_working_set_bytes(group.layers, group.hidden, min(group.chunk_tokens, group.tokens),
                                          group.itemsize)
    runs = []
    for count in dict.fromkeys(packs):
        control = _run_kernel_variant(
            f"layer_by_layer_packs{count}",
            prepare_layer_by_layer(work.x, work.y, work.device_group, threads_per_block, packs_in_flight=count),
            work, bytes_moved, repeats, None, None,
        )
        work.keep_control_output()
        for mode in dict.fromkeys(barriers):
            chunked = _run_kernel_variant(
                f"planned_{mode}_packs{count}",
                prepare_chunked(work.x, work.y, work.device_group, group.chunk_tokens, threads_per_block,
                                barrier=mode, packs_in_flight=count),
                work, bytes_moved, repeats, group.chunk_tokens, working_set,
            )
            runs.append(VariantRun(mode, count, chunked, control))
    return runs


def format_variants(group: GroupSpec, runs: Sequence[VariantRun], tolerance: float) -> str:
    """The variant table: rates (TB/s), speedup, and speedup over the fastest control."""
    controls = [run.control.seconds for run in runs if run.control.seconds is not None]
    fastest = min(controls) if controls else None
    lines = [
        f"kernel variants, group {group.name} at its planned chunk (speedup: layer by layer with "
        "the same packs; vs best: the fastest layer by layer)",
        f"{'barrier':<9}{'packs':>6}{'chunked':>9}{'ctrl':>7}{'speedup':>9}{'vs best':>9}{'rel err':>10}  ok",
    ]
    for run in runs:
        worst = max(run.chunked.relative_error or 0.0, run.control.relative_error or 0.0)
        ok = run.correct(tolerance)
        lines.append(
            f"{run.barrier:<9}{run.packs_in_flight:>6}{_tbps(run.chunked.bandwidth_bytes_per_s):>9}"
            f"{_tbps(run.control.bandwidth_bytes_per_s):>7}{_fmt(run.speedup, '.2f'):>9}"
            f"{_fmt(_ratio(fastest, run.chunked.seconds), '.2f'):>9}{worst:>10.1e}  {'yes' if ok else 'NO'}"
        )
    return "\n".join(lines)


def _run_correct(run: RunReport, tolerance: float) -> bool:
    return (
        run.relative_error is not None
        and run.relative_error <= tolerance
        and run.unwritten == 0
        and run.barrier_timeouts == 0
        and run.mismatches in (None, 0)
    )


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None:
        return None
    return numerator / denominator


def group_report(
    group: GroupSpec, calibration: Calibration | None, tolerance: float, runs: dict[str, RunReport]
) -> GroupReport:
    """Judge one group's runs (keyed by variant) against the pass criteria.

    The predicted speedup is the group's own, else :func:`model_speedup` of the
    calibration when it is timed; criteria lacking a time or a calibration are unmeasured.
    """
    summary = calibration.summary if calibration is not None else None
    predicted, source = group.predicted_speedup, "plan"
    if predicted is None:
        if summary is not None and calibration is not None:
            predicted, source = model_speedup(len(group.layers), group.working_set_bytes, calibration), "model"
        else:
            source = "none"
    measured = _ratio(runs["layer_by_layer"].seconds, runs["planned"].seconds)
    hbm = summary.hbm_bytes_per_s if summary else None
    agreement = None
    if measured is not None and predicted is not None:
        agreement = abs(measured / predicted - 1.0)
    criteria = [
        Criterion("working_set_vs_knee", "planned working set / knee",
                  _ratio(group.working_set_bytes, summary.knee_bytes if summary else None), KNEE_MARGIN, True),
        Criterion("planned_vs_hbm", "planned-chunk rate / HBM rate",
                  _ratio(runs["planned"].bandwidth_bytes_per_s, hbm), MIN_PLANNED_OVER_HBM, False),
        Criterion("4x_cache_vs_hbm", "4x-cache-chunk rate / HBM rate",
                  _ratio(runs["4x_cache"].bandwidth_bytes_per_s, hbm), MAX_4X_OVER_HBM, True),
        Criterion("speedup_agreement", "|measured / predicted speedup - 1|",
                  agreement, SPEEDUP_AGREEMENT, True),
        Criterion("control_vs_copy", "layer-by-layer rate / device-copy rate",
                  _ratio(runs["layer_by_layer"].bandwidth_bytes_per_s,
                         runs["device_copy"].bandwidth_bytes_per_s), MIN_CONTROL_OVER_COPY, False),
    ]
    return GroupReport(group, tolerance, runs, predicted, source, measured, criteria)


# --------------------------------------------------------------------------- one-call run


def environment() -> dict[str, Any]:
    """Versions and device of this run (JSON-ready)."""
    versions: dict[str, str | None] = {}
    for package in ("numpy", "numba", "numba-cuda", "llvmlite", "matplotlib"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    driver: str | None = None
    if not is_simulated():
        try:
            driver = ".".join(str(part) for part in cuda.cudadrv.driver.get_version())
        except (AttributeError, ImportError, RuntimeError) as exc:  # informational only
            driver = f"unknown ({exc})"
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        "cuda_driver": driver,
        "simulated": is_simulated(),
        "device": device_info().to_dict(),
    }


@dataclass(frozen=True)
class RunSettings:
    """Sizes of the one-call run (bytes)."""

    total_bytes: int
    repeats: int
    points_per_octave: int
    bytes_per_launch: int
    cache_bytes: int | None = None  # None: the device's L2
    small_plan: bool = False
    calibration_sizes: tuple[int, ...] | None = None
    barrier_rounds: int = 4096


def settings_for(quick: bool, simulated: bool) -> RunSettings:
    """Full or ``--quick`` sizes on a GPU; tiny ones under the simulator (a 1 KiB "cache")."""
    if simulated:
        return RunSettings(total_bytes=4096, repeats=1, points_per_octave=1, bytes_per_launch=8192,
                           cache_bytes=1024, small_plan=True, calibration_sizes=(1024, 2048, 4096),
                           barrier_rounds=4)
    if quick:
        return RunSettings(total_bytes=512 * MIB, repeats=3, points_per_octave=3, bytes_per_launch=GIB)
    return RunSettings(total_bytes=GIB, repeats=5, points_per_octave=4, bytes_per_launch=2 * GIB)


def run_groups(settings: RunSettings, plan: Any = None, plan_groups_limit: int = 4) -> tuple[int, list[GroupSpec]]:
    """The cache size the run sizes its groups by (the device's L2, or the simulator's
    tiny one) and the groups it verifies: the bundled plan's, then, given a
    :class:`~layerwise_fast.Plan`, its first ``plan_groups_limit`` distinct groups.

    Raises:
        ValueError: the device reports no L2 size, or a group cannot run.
    """
    l2 = settings.cache_bytes if settings.cache_bytes is not None else device_info().l2_bytes
    if l2 is None:
        raise ValueError("the device reports no L2 size: the runs cannot be sized")
    groups = groups_from_plan(bundled_plan(settings.small_plan), cache_bytes=l2,
                              total_bytes=settings.total_bytes)
    if plan is not None:
        specs, left = plan_specs(plan, cache_bytes=l2, hidden=32 if settings.small_plan else 4096,
                                 max_groups=plan_groups_limit, total_bytes=settings.total_bytes)
        print(f"plan {plan.settings.model!r}: {plan.partition.k} groups, verifying {len(specs)} distinct"
              + (f" ({left} more distinct left out)" if left else ""), flush=True)
        groups += specs
    return l2, groups


def run_gpu_verification(
    out_dir: str | Path,
    *,
    quick: bool = False,
    repeats: int | None = None,
    plan: Any = None,
    plan_groups_limit: int = 4,
    barrier: str = "cg",
    compare_barriers: Sequence[str] | None = None,
    packs_in_flight: int = PACKS_IN_FLIGHT,
) -> dict[str, Any]:
    """The one-call run: environment, calibration sweep, the cost of each grid barrier
    alone, every kernel variant of the bundled plan's first group (:func:`sweep_variants`),
    verification of the bundled plan and, given a :class:`~layerwise_fast.Plan`, of its
    first ``plan_groups_limit`` distinct groups (:func:`verify_plan`).

    ``barrier`` and ``packs_in_flight`` select the kernels of the calibration stream and
    the group runs; the planned chunk of each group also runs with each of
    ``compare_barriers`` (default: every other barrier).

    Writes ``calibration.json``, ``verification.json`` and (with matplotlib and timings)
    ``bandwidth.png`` into ``out_dir``, prints the summary table last, and returns the
    verification dictionary.
    """
    others = tuple(m for m in BARRIER_MODES if m != barrier) if compare_barriers is None else tuple(compare_barriers)
    _check_barriers((barrier, *others))  # checked before minutes of GPU time are spent
    check_packs_in_flight(packs_in_flight)
    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    settings = settings_for(quick, is_simulated())
    reps = settings.repeats if repeats is None else repeats
    threads = 32 if is_simulated() else 256
    env = environment()
    print(f"device: {_device_line(env['device'])}", flush=True)
    # Every group is built before the GPU work: a plan that cannot run fails at once.
    l2, groups = run_groups(settings, plan, plan_groups_limit)
    sizes = settings.calibration_sizes or tuple(calibration_sizes(l2, points_per_octave=settings.points_per_octave))
    # verification.json is rewritten after each stage, so a run stopped early keeps
    # what it measured; "verdict" stays "incomplete" until the last group is in.
    result: dict[str, Any] = {"environment": env, "barrier": barrier,
                              "packs_in_flight": packs_in_flight, "verdict": "incomplete"}
    stages = _Stages(out, result, started)
    stages.done("setup")  # the environment, the groups built (their plans checked)
    print(f"calibration: {len(sizes)} sizes from {sizes[0]} to {sizes[-1]} bytes, {barrier} barrier", flush=True)
    cal = calibrate(sizes, l2_bytes=l2, repeats=reps, bytes_per_launch=settings.bytes_per_launch,
                    threads_per_block=threads, barrier=barrier)
    if cal.summary is not None:
        cal.save(out / "calibration.json")
    elif cal.timed:
        stale = " (the one in --out is an earlier run's)" if (out / "calibration.json").exists() else ""
        print(f"calibration: {cal.analysis_error}: calibration.json not written{stale}, the run is "
              "judged fail", flush=True)
    else:
        print("calibration untimed (simulator): calibration.json not written", flush=True)
    result["calibration"] = cal.describe()
    stages.done("calibration")
    # The stream of 4-byte loads, for comparison (the recorded runs were judged by it); it
    # judges nothing, so its failure is recorded and the run goes on.
    scalar: Calibration | None = None
    try:
        scalar = calibrate(sizes, l2_bytes=l2, repeats=reps, bytes_per_launch=settings.bytes_per_launch,
                           threads_per_block=threads, barrier=barrier, warmup_seconds=0.0, access="scalar")
        print(f"scalar stream, for comparison: {_curve_line(scalar)}", flush=True)
        result["calibration_scalar"] = scalar.describe()
    except (RuntimeError, ValueError) as exc:
        print(f"scalar stream, for comparison: failed: {exc}", flush=True)
        result["calibration_scalar"] = {"timed": False, "error": f"{type(exc).__name__}: {exc}"}
    stages.done("calibration_scalar")
    barrier_costs = measure_barriers(threads_per_block=threads, rounds=settings.barrier_rounds,
                                     repeats=reps, barriers=(barrier, *others),
                                     warm_up_seconds=TIMING_WARM_UP_SECONDS)
    print(format_barrier_costs(barrier_costs), flush=True)
    result["barrier_costs"] = [asdict(cost) for cost in barrier_costs]
    stages.done("barrier_costs")
    print(f"kernel variants of group {groups[0].name}: every barrier and packs in flight", flush=True)
    variants = sweep_variants(groups[0], repeats=reps, threads_per_block=threads)
    variants_correct = all(run.correct(TOLERANCE[groups[0].dtype]) for run in variants)
    variant_table = format_variants(groups[0], variants, TOLERANCE[groups[0].dtype])
    print(variant_table, flush=True)
    result["variants"] = {
        "group": groups[0].name,
        "runs": [{**asdict(run), "speedup": run.speedup} for run in variants],
        "correct": variants_correct,
        "tolerance": TOLERANCE[groups[0].dtype],
    }
    result["groups"] = []
    stages.done("variants")
    reports = []
    for index, group in enumerate(groups):
        print(f"verifying {_group_label(group.name)}: {len(group.layers)} layers, hidden {group.hidden}, "
              f"{group.tokens} tokens, chunk {group.chunk_tokens} tokens", flush=True)
        reports += verify_groups([group], cal, cache_bytes=l2, repeats=reps, seed=index,
                                 threads_per_block=threads, barrier=barrier, compare_barriers=others,
                                 packs_in_flight=packs_in_flight)
        result["groups"].append(reports[-1].to_dict())
        stages.done(f"group {group.name}")
    result["verdict"] = _overall_verdict(reports, variants_correct, cal)
    stages.done("verdict")
    try:  # whatever goes wrong in matplotlib, the tables below are still printed
        print(plot_bandwidth(cal, reports, out / "bandwidth.png", scalar))
    except Exception as exc:  # noqa: BLE001
        print(f"bandwidth.png not written: {type(exc).__name__}: {exc}")
    print(stages.summary())
    print(variant_table)
    print(format_table(cal, reports, barrier_costs, variants_correct, scalar))
    return result


class _Stages:
    """Wall time of each stage of the one-call run, kept in ``result["stage_seconds"]``
    and saved with the rest after each stage."""

    def __init__(self, out: Path, result: dict[str, Any], started: float) -> None:
        self.out, self.result = out, result
        self.start = self.last = started  # a time.perf_counter() reading
        result["stage_seconds"] = {}

    def done(self, stage: str) -> None:
        """Record ``stage`` as ended now and save verification.json."""
        now = time.perf_counter()
        self.result["stage_seconds"][stage] = round(now - self.last, 3)
        self.last = now
        _save_verification(self.out, self.result)

    def summary(self) -> str:
        """One line: the whole run's wall time and each stage's."""
        parts = ", ".join(f"{stage} {seconds:.0f} s" for stage, seconds in self.result["stage_seconds"].items())
        return f"wall time {time.perf_counter() - self.start:.0f} s: {parts}"


def _save_verification(out: Path, result: dict[str, Any]) -> None:
    """Write verification.json whole (through a temporary file and a rename): a run
    stopped mid-write keeps the last complete one."""
    write_text_atomically(out / "verification.json", json.dumps(result, indent=2, default=str) + "\n")


def _overall_verdict(reports: Sequence[GroupReport], variants_correct: bool = True,
                     calibration: Calibration | None = None) -> str:
    """The worst of the groups' verdicts; ``wrong`` when a variant run was, ``fail`` at
    least when a timed calibration curve had no knee (nothing to judge the fit by)."""
    verdicts = {report.verdict for report in reports} | (set() if variants_correct else {"wrong"})
    if calibration is not None and calibration.analysis_error is not None:
        verdicts.add("fail")
    for verdict in ("wrong", "fail", "unmeasured"):
        if verdict in verdicts:
            return verdict
    return "pass"


def _device_line(device: dict[str, Any]) -> str:
    if device["simulated"]:
        return "Numba CUDA simulator (no timings)"
    l2 = device["l2_bytes"] / MIB
    major, minor = device["compute_capability"]
    return f"{device['name']} (cc {major}.{minor}, {device['multiprocessors']} SMs, L2 {l2:.1f} MiB)"


def _curve_line(calibration: Calibration) -> str:
    """Plateau, HBM rate and knee of a calibration in one line (TB/s, MiB)."""
    summary = calibration.summary
    if summary is None:
        return "untimed (simulator)" if calibration.analysis_error is None else calibration.analysis_error
    return (f"plateau {summary.plateau_bytes_per_s / 1e12:.2f} TB/s at "
            f"{summary.plateau_size_bytes / MIB:.1f} MiB, HBM {summary.hbm_bytes_per_s / 1e12:.2f} TB/s, "
            f"knee {summary.knee_bytes / MIB:.1f} MiB")


def plot_bandwidth(calibration: Calibration, reports: Sequence[GroupReport], path: Path,
                   comparison: Calibration | None = None) -> str:
    """Draw the bandwidth curve with the groups' runs into ``path``; return a status line.

    ``comparison``, a calibration with another access, is drawn beside it where timed.
    """
    if calibration.rates_bytes_per_s is None:
        return f"no timings under the simulator: {path.name} not written"
    if calibration.summary is None:
        return f"the curve has no knee: {path.name} not written"
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return f"matplotlib is not installed: {path.name} not written"
    summary, rates = calibration.summary, calibration.rates_bytes_per_s
    fig = Figure(figsize=(8, 5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot([s / MIB for s in calibration.sizes_bytes], [r / 1e12 for r in rates], "o-",
            label=f"calibration stream ({calibration.access})")
    if comparison is not None and comparison.rates_bytes_per_s is not None:
        ax.plot([s / MIB for s in comparison.sizes_bytes], [r / 1e12 for r in comparison.rates_bytes_per_s],
                ".--", c="lightgray", label=f"{comparison.access} stream, for comparison")
    ax.axhline(summary.plateau_bytes_per_s / 1e12, ls="--", c="gray", label="plateau")
    ax.axhline(summary.hbm_bytes_per_s / 1e12, ls=":", c="gray", label="HBM rate")
    ax.axvline(summary.knee_bytes / MIB, c="red", label="knee")
    ax.axvline(calibration.l2_bytes / MIB, c="black", ls="-.", label="nominal L2")
    for report in reports:
        points = [
            (run.working_set_bytes / MIB, run.bandwidth_bytes_per_s / 1e12)
            for run in report.runs.values()
            if run.working_set_bytes is not None and run.bandwidth_bytes_per_s is not None
        ]
        ax.plot([p[0] for p in points], [p[1] for p in points], "s", label=_group_label(report.group.name))
    ax.set_xscale("log")
    ax.set_xlabel("working set / buffer (MiB)")
    ax.set_ylabel("rate, bytes read + written (TB/s)")
    ax.set_title(calibration.device.name)
    ax.legend(fontsize="small")
    fig.savefig(path, dpi=120)
    return f"wrote {path.name}"


def _group_label(name: str) -> str:
    return name if name.startswith("group") else f"group {name}"


def _tbps(value: float | None) -> str:
    return "-" if value is None else f"{value / 1e12:.2f}"


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_barrier_costs(costs: Sequence[BarrierCost]) -> str:
    """One line per barrier: microseconds per barrier at each grid size."""
    lines = []
    for mode in dict.fromkeys(cost.barrier for cost in costs):
        parts = [f"{cost.blocks} blocks "
                 + (f"TIMED OUT {cost.timeouts}x" if cost.timeouts else _microseconds(cost.seconds_per_barrier))
                 for cost in costs if cost.barrier == mode]
        lines.append(f"barrier {mode}, us each: " + ", ".join(parts))
    return "\n".join(lines)


def _microseconds(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e6:.2f}"


def _barrier_speedups(report: GroupReport) -> list[tuple[str, float | None]]:
    """(barrier, layer-by-layer time / planned-chunk time with it) of each compared barrier."""
    control = report.runs["layer_by_layer"].seconds
    return [
        (name.removeprefix("planned_"), _ratio(control, run.seconds))
        for name, run in report.runs.items() if name.startswith("planned_")
    ]


def format_table(
    calibration: Calibration, reports: Sequence[GroupReport], barrier_costs: Sequence[BarrierCost] = (),
    variants_correct: bool = True, comparison: Calibration | None = None,
) -> str:
    """The short summary table: the calibration (and ``comparison``, a calibration with
    another access), then one line per group and per criterion.

    Columns after ``speedup`` give the speedup of the planned chunk with each compared
    barrier (``planned_<barrier>`` runs). The overall verdict is ``wrong`` when
    ``variants_correct`` is false (a :func:`sweep_variants` run missed the reference).
    """
    width = max([6] + [len(r.group.name) + 1 for r in reports])
    compared = list(dict.fromkeys(name for r in reports for name, _ in _barrier_speedups(r)))
    lines = [
        f"calibration ({calibration.access} stream): {_curve_line(calibration)}",
        *([f"{comparison.access} stream, for comparison: {_curve_line(comparison)}"]
          if comparison is not None else []),
        *([format_barrier_costs(barrier_costs)] if barrier_costs else []),
        f"{'group':<{width}}{'layers':>7}{'ws MiB':>9}{'planned':>9}{'2x':>7}{'4x':>7}{'ctrl':>7}{'copy':>7}"
        f"{'speedup':>9}" + "".join(f"{name:>9}" for name in compared)
        + f"{'pred':>7}{'rel err':>10}  verdict   (rates TB/s)",
    ]
    for r in reports:
        rate = {name: run.bandwidth_bytes_per_s for name, run in r.runs.items()}
        worst = max(run.relative_error or 0.0 for run in r.runs.values())
        lines.append(
            f"{r.group.name:<{width}}{len(r.group.layers):>7}{r.group.working_set_bytes / MIB:>9.2f}"
            f"{_tbps(rate['planned']):>9}{_tbps(rate['2x_cache']):>7}{_tbps(rate['4x_cache']):>7}"
            f"{_tbps(rate['layer_by_layer']):>7}{_tbps(rate['device_copy']):>7}"
            f"{_fmt(r.measured_speedup, '.2f'):>9}"
            + "".join(f"{_fmt(dict(_barrier_speedups(r)).get(name), '.2f'):>9}" for name in compared)
            + f"{_fmt(r.predicted_speedup, '.2f'):>7}{worst:>10.1e}  {r.verdict}"
        )
    for r in reports:
        for c in r.criteria:
            state = {True: "pass", False: "FAIL", None: "unmeasured"}[c.passed]
            bound = f"{'<=' if c.at_most else '>='} {c.limit:g}"
            lines.append(f"  {r.group.name:<{width}}{c.name:<20} {_fmt(c.measured, '.3f'):>7} {bound:<8} {state}")
    lines.append(f"overall: {_overall_verdict(reports, variants_correct, calibration)}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- command line


def build_arg_parser(prog: str = "gpu_verify") -> argparse.ArgumentParser:
    """The argument parser of ``bench/gpu_verify.py`` and ``layerwise-fast verify``."""
    parser = argparse.ArgumentParser(
        allow_abbrev=False,
        prog=prog,
        description=(
            "Check on one GPU that planned layer groups fit its cache: calibrate the "
            "bandwidth curve (L2 plateau, HBM rate, knee), then run each group of the "
            "bundled plan chunked at its planned working set, at 2x and 4x the L2, and "
            "layer by layer, against a device-to-device copy. Under NUMBA_ENABLE_CUDASIM=1 "
            "it runs at tiny sizes on the CPU: results are checked, nothing is timed."
        ),
        epilog=(
            "Writes calibration.json, verification.json and bandwidth.png (needs "
            "matplotlib) into --out and prints a summary table last. Exit status: 0 all "
            "criteria pass (or are unmeasured under the simulator), 1 a criterion failed "
            "or a result was wrong, 2 bad usage or no CUDA device, 3 the run stopped on "
            "an error (its traceback on stderr; verification.json keeps what was "
            "measured before it)."
        ),
    )
    parser.add_argument("--out", required=True, type=Path, metavar="DIR",
                        help="folder for the JSON files and the PNG (created if missing)")
    parser.add_argument("--quick", action="store_true",
                        help="fewer calibration sizes and repeats, 512 MiB per group (about half the time)")
    parser.add_argument("--repeats", type=integer_argument, default=None, metavar="N",
                        help="timed runs per measurement (default 5, or 3 with --quick)")
    parser.add_argument("--plan", type=Path, default=None, metavar="PLAN.json",
                        help="also verify this plan's groups (a plan written by "
                             "`layerwise-fast plan --format json`), as memory-bound stand-ins "
                             "at each group's planned working set")
    parser.add_argument("--plan-groups", type=integer_argument, default=4, metavar="N",
                        help="verify at most N distinct groups of --plan (groups alike in "
                             "layers and working set run once; default 4)")
    parser.add_argument("--barrier", choices=BARRIER_MODES, default="cg",
                        help="grid barrier of the persistent kernels: cg, Numba's cooperative-"
                             "groups sync (a device-runtime call), or atomic, an inline "
                             "counter barrier; the planned chunk also runs with the other "
                             "one, and each barrier is timed alone (default cg)")
    parser.add_argument("--check", action="store_true",
                        help="check the options, the plan file and that a device is there, "
                             "then exit (0: all good) without running anything on it")
    parser.add_argument("--packs-in-flight", type=int, choices=PACKS_IN_FLIGHT_CHOICES, default=PACKS_IN_FLIGHT,
                        help="16-byte packs each thread loads before it uses the first, in the "
                             f"group runs (default {PACKS_IN_FLIGHT}); the first bundled group "
                             "runs with every choice and barrier as well")
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "gpu_verify") -> int:
    """Command-line entry point; returns the exit status (see ``--help``)."""
    args = build_arg_parser(prog).parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        print(f"{prog}: error: --repeats must be >= 1, got {args.repeats}", file=sys.stderr)
        return 2
    if args.plan_groups < 1:
        print(f"{prog}: error: --plan-groups must be >= 1, got {args.plan_groups}", file=sys.stderr)
        return 2
    if args.out.exists() and not args.out.is_dir():
        print(f"{prog}: error: --out {str(args.out)!r} is a file; name a folder (created if "
              f"missing)", file=sys.stderr)
        return 2
    plan = None
    if args.plan is not None:
        from ..deployment import Plan, PlanFormatError

        try:
            plan = Plan.from_json(args.plan)
        except PlanFormatError as exc:
            print(f"{prog}: error: {exc}", file=sys.stderr)
            return 2
    # The arguments are checked first: a bad plan file is found before a GPU is in hand.
    if not is_simulated() and not cuda.is_available():
        print(
            f"{prog}: no CUDA device is available; this run needs one GPU "
            "(or NUMBA_ENABLE_CUDASIM=1 for an untimed run on the CPU)",
            file=sys.stderr,
        )
        return 2
    if args.check:
        try:  # the groups the run would verify, built as it builds them
            _, groups = run_groups(settings_for(args.quick, is_simulated()), plan, args.plan_groups)
        except ValueError as exc:
            print(f"{prog}: error: {exc}", file=sys.stderr)
            return 2
        print(f"{prog}: the options{' and the plan' if plan is not None else ''} are good, "
              f"{counted(len(groups), 'group')} to verify; device: {_device_line(device_info().to_dict())}")
        return 0
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"{prog}: error: --out {str(args.out)!r}: cannot create the folder ({exc})",
              file=sys.stderr)
        return 2
    try:
        result = run_gpu_verification(args.out, quick=args.quick, repeats=args.repeats, plan=plan,
                                      plan_groups_limit=args.plan_groups, barrier=args.barrier,
                                      packs_in_flight=args.packs_in_flight)
    except Exception as exc:  # noqa: BLE001 - told apart from a failed criterion (status 1)
        traceback.print_exc()
        print(f"{prog}: the run stopped on an error: {type(exc).__name__}: {exc}; "
              f"{str(args.out / 'verification.json')!r} keeps what was measured before it",
              file=sys.stderr)
        return 3
    return 0 if result["verdict"] in ("pass", "unmeasured") else 1
