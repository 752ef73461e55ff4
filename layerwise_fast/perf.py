"""Performance model (seed section 8): traffic, speedup, communication, pipeline timeline.

This is a model, not a measurement. Everything is per micro-batch (``batch`` sequences of
``sequence`` tokens, ``T = batch x sequence`` tokens) and uses only the rates of the
:class:`~layerwise_fast.hardware.Hardware` the group runs on: ``hbm_bytes_per_s`` (main
memory), ``cache_bytes_per_s`` (streaming from L2: in the H100 and H200 profiles a
working set inside the effective capacity streams 1.59x and 1.31x faster than an
HBM-sized one, both rates from one measurement; README, "Hardware figures"),
``link_bytes_per_s`` (one direction) and ``flops_per_s``.

Bytes, per layer ``i`` with planned weights ``W`` (quantized if so treated), activation
bytes per token ``a`` (``act_elems_per_token x act_bytes``) and output bytes per token
``o``:

* baseline (layer by layer, nothing kept in L2 between layers): ``W + a T`` bytes from
  HBM: weights read once and every activation element of the working set moved once;
* planned (the group's working set resident in L2, the sequence run chunk by chunk): the
  weights come from HBM once (a tiled layer's once per chunk: ``W x chunks``), and of
  the activations only the group's boundary does, its input and its output,
  ``T (o_in + o_out)`` (``o_in`` is the previous layer's output; the first layer's input
  is taken to be as wide as its output). Every other activation byte is an L2 hit:
  ``cache = accesses - planned``, ``accesses = baseline +`` the extra tile reads (which
  come from HBM, so they count in ``planned`` too and are no hits);
* hit rate ``= cache / accesses``;
* memory time: baseline ``baseline / hbm_rate``; planned ``planned / hbm_rate + cache /
  cache_rate`` (``cache_rate`` is the HBM rate where the profile has no measured one, so
  the speedup is then a lower bound); speedup = baseline time / planned time, the seed's
  8.1;
* compute time ``= sum(flops_per_token) x T / flops_per_s`` (0 where the table records
  no flops); a group's stage compute is the larger of its memory and compute times
  (memory and arithmetic overlap: a roofline).

A lookup (an embedding) reads only its tokens' rows: its ``W`` is those rows for the
``T`` tokens of the micro-batch (at most its table), from HBM in both runs.

What it leaves out: launch and synchronisation costs, the re-reads of resident weights
from L2 for each chunk (the baseline's matrix tiling re-reads them too), attention's
dependence on context length, and contention between the two halves of the H100's L2.
A device that runs several groups (``share_devices``) is modelled as running each group
with its working set resident and its weights read once per micro-batch, and as passing
chunks on one by one: no schedule gives both exactly. Groups that alternate chunk by
chunk evict each other's weights, which then come from HBM every chunk; groups run one
after another over all chunks keep their weights, but a later device waits longer to
start than the fill time shown.

Communication: a cut between devices sends the activations leaving the last layer
before it, ``batch x chunk x o`` bytes per chunk and ``T x o`` per micro-batch, at the
slower of the two devices' link rates. Chunks are sent asynchronously, so a device sends
chunk ``j`` while it computes chunk ``j + 1``: :func:`stage_times` gives each device's
stage time and how much of its transfer that hides. :func:`timeline` runs ``M``
micro-batches, ``chunks`` chunks each, through the chain of devices and links as a flow
of identical items: fill, steady state at the slowest resource, and drain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Sequence

import numpy as np
import numpy.typing as npt

from .hardware import Hardware
from .scaling import times
from .units import INT64_MAX

__all__ = [
    "Cuts",
    "Evaluation",
    "GroupPerformance",
    "LayerTraffic",
    "Rates",
    "StageTimes",
    "Timeline",
    "cuts",
    "evaluate",
    "group_performance",
    "stage_time_inputs",
    "stage_times",
    "timeline",
    "transfer_times",
]

IntColumn = npt.NDArray[np.int64]
FloatColumn = npt.NDArray[np.float64]

# Float64 shadows of int64 sums and products flag the entries that may leave int64: their
# relative error is far below 0.1%, so every true overflow lands above this mark, and the
# flagged entries are then checked exactly.
_NEAR_INT64: Final[float] = float(INT64_MAX) * 0.999


@dataclass(frozen=True, eq=False)
class Rates:
    """Rates of a sequence of devices (or groups), one entry each, as float arrays.

    Attributes:
        hbm: HBM bytes per second.
        cache: L2 streaming bytes per second (the HBM rate where none is measured).
        link: link bytes per second.
        flops: floating-point operations per second.
    """

    hbm: FloatColumn
    cache: FloatColumn
    link: FloatColumn
    flops: FloatColumn

    @classmethod
    def of(cls, hardware: Sequence[Hardware], index: IntColumn) -> Rates:
        """The rates of ``hardware[index[i]]`` for each ``i``."""
        table = np.array([[h.hbm_bytes_per_s, h.cache_bytes_per_s or h.hbm_bytes_per_s,
                           h.link_bytes_per_s, h.flops_per_s] for h in hardware])
        picked = table[index]
        return cls(picked[:, 0], picked[:, 1], picked[:, 2], picked[:, 3])


@dataclass(frozen=True, eq=False)
class GroupPerformance:
    """Per-group traffic and times, per micro-batch (arrays of one entry per group).

    Attributes:
        baseline_bytes: HBM bytes moved layer by layer, nothing resident.
        planned_bytes: HBM bytes moved with the group's working set resident in L2.
        cache_bytes: bytes the planned run serves from L2.
        hit_rate: ``cache_bytes / (planned_bytes + cache_bytes)``.
        baseline_s: baseline memory time, seconds.
        planned_s: planned memory time, seconds.
        compute_s: arithmetic time, seconds (0 without flop counts).
        speedup: ``baseline_s / planned_s`` (1 where both are 0).
    """

    baseline_bytes: IntColumn
    planned_bytes: IntColumn
    cache_bytes: IntColumn
    hit_rate: FloatColumn
    baseline_s: FloatColumn
    planned_s: FloatColumn
    compute_s: FloatColumn
    speedup: FloatColumn

    @property
    def stage_compute_s(self) -> FloatColumn:
        """Each group's busy time per micro-batch: max(planned memory, compute)."""
        return np.maximum(self.planned_s, self.compute_s)

    @property
    def baseline_stage_s(self) -> FloatColumn:
        """The same for the baseline: max(baseline memory, compute)."""
        return np.maximum(self.baseline_s, self.compute_s)


@dataclass(frozen=True, eq=False)
class StageTimes:
    """Per device, per micro-batch (seconds). See :func:`stage_times`.

    Attributes:
        compute_s: the device's busy time (the sum over its groups).
        transfer_s: sending its output to the next device (0 for the last).
        stage_s: the device's period per micro-batch, ``max(compute_s, transfer_s)``.
        hidden_s: transfer time overlapped with compute.
        exposed_s: transfer time not overlapped, ``transfer_s - hidden_s``.
    """

    compute_s: FloatColumn
    transfer_s: FloatColumn
    stage_s: FloatColumn
    hidden_s: FloatColumn
    exposed_s: FloatColumn


@dataclass(frozen=True, eq=False)
class Cuts:
    """The cuts between consecutive devices (arrays of one entry per cut).

    Attributes:
        after_layer: index of the last layer before the cut.
        bytes_per_chunk: bytes sent for one chunk.
        bytes_per_micro_batch: bytes sent for one micro-batch.
        transfer_s: time at the link rate for one micro-batch, seconds.
        hidden_s: of that, the time overlapped with the sender's compute.
        exposed_s: the rest.
    """

    after_layer: IntColumn
    bytes_per_chunk: IntColumn
    bytes_per_micro_batch: IntColumn
    transfer_s: FloatColumn
    hidden_s: FloatColumn
    exposed_s: FloatColumn

    def __len__(self) -> int:
        return len(self.after_layer)


@dataclass(frozen=True)
class Timeline:
    """``micro_batches`` micro-batches of ``chunks`` chunks through the pipeline.

    The resources, in order, are device 0, the link 0->1, device 1, ..., the last
    device; ``resource_s`` is each one's time per chunk. Identical items through a
    chain of resources finish after ``sum(resource_s) + (items - 1) x max(resource_s)``;
    that splits into ``fill_s`` (the resources before the slowest one, the last of them
    on a tie, so equal stages fill as a pipeline does), ``steady_s`` (every item at the
    slowest one) and ``drain_s`` (the resources after it).

    Attributes:
        micro_batches: M.
        chunks: chunks per micro-batch.
        resource_s: time per chunk of each resource (devices and links alternate).
        fill_s, steady_s, drain_s, total_s: seconds; ``total_s`` is their sum.
        bottleneck: the slowest resource, e.g. ``"device 2"`` or ``"link 1->2"``.
    """

    micro_batches: int
    chunks: int
    resource_s: tuple[float, ...]
    fill_s: float
    steady_s: float
    drain_s: float
    total_s: float
    bottleneck: str

    def busy(self, resource: int, first: int, last: int) -> tuple[float, float]:
        """Start of item ``first`` and end of item ``last`` on ``resource`` (seconds).

        For identical items the ``j``-th item leaves resource ``r`` at
        ``sum(resource_s[:r+1]) + j x max(resource_s[:r+1])``.
        """
        upto = self.resource_s[: resource + 1]
        head, slowest = sum(upto), max(upto)
        start = head + first * slowest - self.resource_s[resource]
        return start, head + last * slowest


def _checked_sum(first: IntColumn, second: IntColumn, starts: IntColumn, what: str) -> IntColumn:
    """Per-group sums of ``first + second`` (int64, non-negative), refusing a sum, or a
    layer's own, beyond int64."""
    bound = int(first.max()) + int(second.max()) if first.size else 0
    if bound > INT64_MAX // max(first.size, 1):  # not ruled out by the largest values
        shadow = np.add.reduceat(first.astype(np.float64) + second, starts)
        ends = np.append(starts[1:], first.size)
        for group in np.flatnonzero(shadow > _NEAR_INT64).tolist():
            lo, hi = int(starts[group]), int(ends[group])
            if sum(first[lo:hi].tolist()) + sum(second[lo:hi].tolist()) > INT64_MAX:
                raise OverflowError(f"group {group}: {what} exceed the int64 range")
    return np.add.reduceat(first + second, starts)


def group_performance(
    boundaries: IntColumn,
    weights: IntColumn,
    weight_reads: IntColumn,
    act_per_token: IntColumn,
    out_per_token: IntColumn,
    flops_per_token: IntColumn,
    tokens: int,
    rates: Rates,
) -> GroupPerformance:
    """The per-group traffic and times of the module docstring.

    Args:
        boundaries: the k + 1 group boundaries.
        weights: each layer's planned weight bytes (whole, untiled).
        weight_reads: how often each layer reads its weights from HBM per micro-batch
            (1, or the chunk count for a tiled layer).
        act_per_token, out_per_token, flops_per_token: per layer.
        tokens: tokens per micro-batch (batch x sequence).
        rates: the rates of the device each group runs on.

    Raises:
        OverflowError: a byte count exceeds int64.
    """
    starts, ends = boundaries[:-1], boundaries[1:]
    weight_hbm = _product(weights, weight_reads, "weight traffic")
    acts = times(act_per_token, tokens, "activation bytes per token")
    baseline = _checked_sum(weights, acts, starts, "baseline bytes")
    accesses = _checked_sum(weight_hbm, acts, starts, "accessed bytes")
    act_sum = np.add.reduceat(acts, starts)
    inputs = out_per_token[np.maximum(starts - 1, 0)]  # group 0: as wide as layer 0's output
    edges = _edge_bytes(inputs, out_per_token[ends - 1], tokens)
    planned = np.add.reduceat(weight_hbm, starts) + np.minimum(edges, act_sum)
    cache = accesses - planned
    flop_sum = np.add.reduceat(flops_per_token.astype(np.float64), starts)
    baseline_s = baseline / rates.hbm
    planned_s = planned / rates.hbm + cache / rates.cache
    return GroupPerformance(
        baseline, planned, cache, _ratio(cache, accesses, 0.0), baseline_s, planned_s,
        flop_sum * tokens / rates.flops, _ratio(baseline_s, planned_s, 1.0))


def _edge_bytes(inputs: IntColumn, outputs: IntColumn, tokens: int) -> IntColumn:
    """Each group's ``(input + output bytes per token) x tokens``, refusing int64 overflow."""
    bound = (int(inputs.max()) + int(outputs.max())) * tokens if inputs.size else 0
    if bound <= INT64_MAX and tokens <= INT64_MAX:
        return (inputs + outputs) * tokens
    exact = [(a + b) * tokens for a, b in zip(inputs.tolist(), outputs.tolist())]
    over = [group for group, value in enumerate(exact) if value > INT64_MAX]
    if over:
        raise OverflowError(f"group {over[0]}: boundary bytes per token "
                            f"{exact[over[0]] // tokens} x {tokens} exceed the int64 range")
    return np.array(exact, dtype=np.int64)


def _product(values: IntColumn, factors: IntColumn, what: str) -> IntColumn:
    """``values x factors`` (both non-negative int64), refusing a product beyond int64."""
    if values.size and int(values.max()) * int(factors.max()) > INT64_MAX:
        shadow = values.astype(np.float64) * factors
        for layer in np.flatnonzero(shadow > _NEAR_INT64).tolist():
            if int(values[layer]) * int(factors[layer]) > INT64_MAX:
                raise OverflowError(f"layer {layer}: {what} exceeds the int64 range")
    return values * factors


def _ratio(top: npt.NDArray[np.generic], bottom: npt.NDArray[np.generic],
           empty: float) -> FloatColumn:
    top_f, bottom_f = np.asarray(top, dtype=np.float64), np.asarray(bottom, dtype=np.float64)
    result = np.full(top_f.shape, empty)
    np.divide(top_f, bottom_f, out=result, where=bottom_f > 0)
    return result


def stage_time_inputs(layers: LayerTraffic, hardware: Hardware,
                      tokens: int) -> tuple[FloatColumn, FloatColumn]:
    """Per-layer and per-cut seconds for the cut-aware partition (``algorithm="stage_time"``).

    The native stage-time DP needs a group's time to be a sum over its layers plus the
    time of the cut after its last layer, so this is the additive form of the model:
    a layer takes ``max(memory, compute)`` with memory ``W x reads / hbm_rate + a x T /
    cache_rate`` (all its activations as L2 hits) and compute ``flops x T / flops_per_s``;
    the cut after layer ``b`` takes ``o_b x T / link_rate`` (0 after the last layer),
    with no overlap. It charges each group no less than the full model's memory and
    compute time minus the boundary traffic, and each cut its whole transfer; the plan
    is then evaluated with the full model (:func:`evaluate`).

    Args:
        layers: the per-layer inputs.
        hardware: the device every group runs on.
        tokens: tokens per micro-batch.
    """
    hbm = hardware.hbm_bytes_per_s
    cache = hardware.cache_bytes_per_s or hbm
    memory = (layers.weights.astype(np.float64) * layers.reads / hbm
              + layers.act_per_token.astype(np.float64) * tokens / cache)
    compute = layers.flops_per_token.astype(np.float64) * tokens / hardware.flops_per_s
    cut = layers.out_per_token.astype(np.float64) * tokens / hardware.link_bytes_per_s
    cut[-1] = 0.0
    return np.maximum(memory, compute), cut


def stage_times(compute_s: FloatColumn, transfer_s: FloatColumn, chunks: int) -> StageTimes:
    """Each device's stage time and the part of its outgoing transfer that compute hides.

    The one place where a stage's compute and its cut's transfer are combined. A device
    computes ``chunks`` chunks of ``c = compute_s / chunks`` seconds and sends each as
    soon as it is done, ``x = transfer_s / chunks`` seconds per chunk on its link, while
    it computes the next: one micro-batch keeps it for ``c + x + (chunks - 1) x max(c,
    x)`` instead of ``chunks x (c + x)``, so ``(chunks - 1) x min(c, x)`` of the transfer
    is hidden, and in steady state the device and its link deliver one micro-batch per
    ``max(compute_s, transfer_s)``.

    Args:
        compute_s: busy time of each device per micro-batch.
        transfer_s: transfer time of each device's outgoing cut per micro-batch (0 for
            the last device).
        chunks: chunks per micro-batch (>= 1).
    """
    compute = np.asarray(compute_s, dtype=np.float64)
    transfer = np.asarray(transfer_s, dtype=np.float64)
    hidden = (chunks - 1) * np.minimum(compute, transfer) / chunks
    return StageTimes(compute, transfer, np.maximum(compute, transfer), hidden,
                      transfer - hidden)


def cuts(device_bounds: IntColumn, out_per_token: IntColumn, batch: int, chunk: int,
         sequence: int, link_rates: FloatColumn, stages: StageTimes) -> Cuts:
    """The cuts between consecutive devices; ``device_bounds`` are the layer boundaries
    of the devices (D + 1 entries), ``link_rates`` each device's link rate."""
    after = device_bounds[1:-1] - 1
    out = out_per_token[after]
    per_micro_batch = times(out, batch * sequence, "cut bytes per token")
    return Cuts(after.astype(np.int64), times(out, batch * chunk, "cut bytes per token"),
                per_micro_batch, per_micro_batch / _cut_links(link_rates),
                stages.hidden_s[:-1], stages.exposed_s[:-1])


def _cut_links(link_rates: FloatColumn) -> FloatColumn:
    """The rate of each cut: the slower of the two devices it joins."""
    return np.minimum(link_rates[:-1], link_rates[1:])


def transfer_times(device_bounds: IntColumn, out_per_token: IntColumn, tokens: int,
                   link_rates: FloatColumn) -> FloatColumn:
    """Seconds each device spends sending one micro-batch's output to the next device
    (0 for the last), at the slower of the two link rates."""
    seconds = np.zeros(len(link_rates))
    sent = out_per_token[device_bounds[1:-1] - 1].astype(np.float64) * tokens
    seconds[:-1] = sent / _cut_links(link_rates)
    return seconds


def timeline(stages: StageTimes, chunks: int, micro_batches: int) -> Timeline:
    """Fill, steady state and drain of ``micro_batches`` micro-batches (see
    :class:`Timeline`), chunk by chunk through devices and links."""
    devices = len(stages.compute_s)
    per_chunk = np.empty(2 * devices - 1)
    per_chunk[0::2] = stages.compute_s / chunks
    per_chunk[1::2] = stages.transfer_s[:-1] / chunks
    slowest = len(per_chunk) - 1 - int(np.argmax(per_chunk[::-1]))  # the last slowest
    label = (f"device {slowest // 2}" if slowest % 2 == 0
             else f"link {slowest // 2}->{slowest // 2 + 1}")
    fill, drain = float(per_chunk[:slowest].sum()), float(per_chunk[slowest + 1:].sum())
    steady = chunks * micro_batches * float(per_chunk[slowest])
    return Timeline(micro_batches, chunks, tuple(per_chunk.tolist()), fill, steady, drain,
                    fill + steady + drain, label)


@dataclass(frozen=True, eq=False)
class LayerTraffic:
    """Per-layer inputs of the model (int64 columns, one entry per layer).

    Attributes:
        weights: planned weight bytes (whole; quantized where so treated; a lookup's
            rows read by the micro-batch's tokens).
        reads: weight reads from HBM per micro-batch (the chunk count if tiled, else 1).
        act_per_token: activation bytes per token.
        out_per_token: bytes per token leaving the layer.
        flops_per_token: floating-point operations per token.
    """

    weights: IntColumn
    reads: IntColumn
    act_per_token: IntColumn
    out_per_token: IntColumn
    flops_per_token: IntColumn


@dataclass(frozen=True, eq=False)
class Evaluation:
    """The model's numbers for one plan."""

    performance: GroupPerformance
    stages: StageTimes
    cuts: Cuts
    timeline: Timeline


def evaluate(layers: LayerTraffic, boundaries: IntColumn, group_device: IntColumn,
             hardware: Sequence[Hardware], device_kind: IntColumn, *, batch: int,
             sequence: int, chunk: int, micro_batches: int) -> Evaluation:
    """Traffic per group, stage times per device, cuts and timeline of a plan.

    Args:
        layers: the per-layer inputs.
        boundaries: the k + 1 group boundaries.
        group_device: the device of each group (0, 0, 1, ..., D - 1).
        hardware: the distinct devices; ``device_kind[d]`` indexes device ``d``'s.
        batch, sequence, chunk, micro_batches: as in the plan's settings.
    """
    chunks = -(-sequence // chunk)
    tokens = batch * sequence
    kind_of_group = device_kind[group_device]
    perf = group_performance(boundaries, layers.weights, layers.reads, layers.act_per_token,
                             layers.out_per_token, layers.flops_per_token, tokens,
                             Rates.of(hardware, kind_of_group))
    devices = len(device_kind)
    firsts = np.flatnonzero(np.diff(group_device, prepend=-1))
    bounds = np.append(boundaries[firsts], boundaries[-1]).astype(np.int64)
    busy = np.asarray(np.bincount(group_device, weights=perf.stage_compute_s,
                                  minlength=devices), dtype=np.float64)
    links = Rates.of(hardware, device_kind).link
    stages = stage_times(busy, transfer_times(bounds, layers.out_per_token, tokens, links),
                         chunks)
    return Evaluation(perf, stages,
                      cuts(bounds, layers.out_per_token, batch, chunk, sequence, links, stages),
                      timeline(stages, chunks, micro_batches))
