"""The deployment planner: from a model and a GPU to a :class:`~layerwise_fast.Plan`.

:func:`plan` runs the methodology end to end:

1. the working set of every layer (:mod:`layerwise_fast.scaling`, one
   :func:`~layerwise_fast.workingset.working_set` pass);
2. the layers too large for any device even at the smallest chunk get the ``on_oversize``
   treatment (:mod:`layerwise_fast.oversize`);
3. the chunk: the whole sequence, or else the largest multiple of ``granularity`` tokens
   at which every layer fits, in closed form; with a device limit, a bisection over the
   chunk multiples, each probe one native :func:`~layerwise_fast.partition.greedy` call
   (the group count only grows with the chunk);
4. the groups, by the chosen native partitioner (``balanced`` by default: the fewest
   groups, then the smallest largest group), or, for an ordered list of mixed devices,
   with each device's own capacity (:func:`~layerwise_fast.devices.ordered_partition`:
   the fewest groups for ``greedy``, balanced for ``balanced`` and ``dp``);
5. groups to devices (:mod:`layerwise_fast.devices`), and the performance model
   (:mod:`layerwise_fast.perf`).

:func:`sweep` gives the chunk and the group count for many batch sizes at once, and
:func:`load_model` reads a layer-table JSON file or a transformer ``config.json``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from typing import Any, Callable, Final, Literal, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from .chunking import DEFAULT_GRANULARITY, MAX_BATCH, Sweep, check_tokens, sweep_sizes
from .deployment import Plan, PlanSettings, planned_traffic
from .devices import (DevicePool, DeviceSpec, TooManyGroupsError, device_pool,
                      groups_to_devices, ordered_fit, ordered_partition, resolve_hardware)
from .errors import InfeasibleError
from .hardware import Hardware
from .layers import LayerTable, LayerTableError, _transformer_table
from .oversize import INT4, INT8, SizeRules, Treatments, oversize_rules
from .partition import balanced, dp, greedy
from .perf import FloatColumn, LayerTraffic, Rates, group_performance, stage_time_inputs
from .result import Partition
from .scaling import CutElems, UnitSizes, chunk_for, unit_sizes
from .summary import counted, format_seconds
from .units import (UTF8_BOM, ByteCount, FractionLike, display_name, encodable, exact_total,
                    format_bytes, parse_bytes, printable, read_input_head)
from .workingset import LOOKUP_KINDS, Lookups, of_lookup_kind

__all__ = ["DEFAULT_SEQUENCE", "MAX_SEQUENCE", "Model", "load_model", "plan", "sweep"]

IntColumn = npt.NDArray[np.int64]
Progress = Callable[[str, float], None]

DEFAULT_SEQUENCE: Final[int] = 4096
"""Tokens per sequence when none is given (Llama 2's context length)."""
MAX_SEQUENCE: Final[int] = 2**40
"""Longest sequence accepted, in tokens."""
ALGORITHMS: Final[tuple[str, ...]] = ("balanced", "greedy", "dp", "stage_time")
COSTS: Final[tuple[str, ...]] = ("sum", "peak")
_PICOSECONDS: Final[float] = 1e12
_TICKS_MAX: Final[float] = 2.0**62  # the sum of the stage ticks stays well within int64
_HEAD_BYTES: Final[int] = 1 << 16
# A table whose keys were sorted opens with "columns" or "layers", before "schema".
_TABLE_OPENING: Final[re.Pattern[bytes]] = re.compile(rb'\s*\{\s*"(columns|layers)"\s*:')
# A sizes file for `partition` (digits, maybe a comment line first), not a model.
_NUMBERS_OPENING: Final[re.Pattern[bytes]] = re.compile(rb"(\s*#[^\n]*\n)*\s*[0-9]")


@dataclass(frozen=True)
class Model:
    """A loaded model.

    Attributes:
        table: its layers.
        cut_elems_per_token: elements per token leaving each layer, one for all or one
            per layer (a transformer's hidden size; its head's output is the vocabulary),
            or None where the source does not say.
        label: a short name for reports (the file name without its extension).
        positions: the longest sequence the model was built for (a config's
            ``n_positions`` or ``max_position_embeddings``), or None where the source
            does not say; a plan for a longer sequence says so in its notes.
    """

    table: LayerTable
    cut_elems_per_token: int | tuple[int, ...] | None
    label: str
    positions: int | None = None


def _is_layer_table(head: bytes) -> bool:
    """Whether a JSON file that starts with ``head`` is a layer table: it names its
    schema there, or (keys sorted) opens with a table's first key."""
    return b'"schema"' in head or _TABLE_OPENING.match(head) is not None


def load_model(source: str | os.PathLike[str], *, layer_granularity: str = "layer") -> Model:
    """Read a layer-table JSON file (it has a ``"schema"`` key) or a Hugging Face-style
    transformer ``config.json`` (one row per layer, or per sublayer with
    ``layer_granularity="sublayer"``). ``source`` may also be an
    :class:`~layerwise_fast.units.InputBytes`: a file's bytes read elsewhere (the command
    line reads standard input so), named in messages and in the model's label by its
    ``name``.

    Raises:
        LayerTableError: a missing file, a directory, or any malformed input (see
            :meth:`LayerTable.from_json` and :meth:`LayerTable.from_transformer_config`).
        ValueError: an unknown ``layer_granularity``, or one other than ``"layer"`` for
            a layer table.
    """
    path = os.fspath(source)
    label = display_name(os.path.splitext(os.path.basename(path))[0] or path)
    head = read_input_head(source, _HEAD_BYTES, what="model file",
                           error=LayerTableError).removeprefix(UTF8_BOM)
    if not head.strip():
        raise LayerTableError(f"model file {path!r} is empty: give a layer table or a "
                              f"transformer config.json")
    if _NUMBERS_OPENING.match(head):
        raise LayerTableError(f"model file {path!r} opens with a number, where a layer table "
                              f"or a transformer config.json is a JSON object; a file of layer "
                              f"sizes, one per line, is what `layerwise-fast partition` reads")
    if _is_layer_table(head):
        if layer_granularity != "layer":
            raise ValueError(f"layer_granularity (--layers) {layer_granularity!r} applies to a "
                             f"transformer config; {path!r} is a layer table, whose rows are the layers")
        return Model(LayerTable.from_json(source), None, label)
    table, config = _transformer_table(source, layer_granularity, "bf16")
    positions = config.get("n_positions", config.get("max_position_embeddings"))
    positions = positions if type(positions) is int and positions > 0 else None
    hidden = config.get("hidden_size", config.get("n_embd"))
    if type(hidden) is not int:
        return Model(table, None, label, positions)
    # Every row hands the next one `hidden` elements per token, but the head's
    # output is the logits: one per vocabulary entry (its out_channels).
    heads = np.asarray(table.kind) == "head"
    cut = np.where(heads, table.out_channels, hidden)
    return Model(table, tuple(int(width) for width in cut), label, positions)


def plan(
    model: LayerTable | Model | str | os.PathLike[str],
    hardware: str | Hardware = "h100",
    *,
    batch: int = 1,
    sequence: int = DEFAULT_SEQUENCE,
    chunk: int | None = None,
    granularity: int = DEFAULT_GRANULARITY,
    micro_batches: int = 1,
    act_dtype: str = "bf16",
    weight_dtype: str | None = None,
    capacity: ByteCount | None = None,
    devices: DeviceSpec = None,
    share_devices: bool = False,
    algorithm: Literal["balanced", "greedy", "dp", "stage_time"] = "balanced",
    cost: Literal["sum", "peak"] = "sum",
    on_oversize: Literal["error", "tile", "quantize"] = "error",
    working_set_ratio: FractionLike = 1,
    default_buffers: Mapping[str, ByteCount] | None = None,
    cut_elems_per_token: CutElems = None,
    layer_granularity: str = "layer",
    name: str | None = None,
    progress: Progress | None = None,
) -> Plan:
    """Plan the layer-wise deployment of ``model`` on ``hardware``.

    Args:
        model: a :class:`LayerTable`, a :class:`Model`, or the path of a layer-table
            JSON file or a transformer ``config.json`` (see :func:`load_model`).
        hardware: a built-in profile name (``"h100"``, ``"h200"``, ``"a100"``) or a
            :class:`Hardware` (e.g. from :meth:`Hardware.from_calibration`).
        batch: sequences per micro-batch: the batch one chunk's working set holds.
        sequence: tokens per sequence.
        chunk: tokens per chunk; None searches the largest that fits.
        granularity: the searched chunk is a multiple of this many tokens, or the
            whole sequence.
        micro_batches: micro-batches that flow through the pipeline (M).
        act_dtype: activation precision (``bf16``, ``fp16``, ``fp32``, ``fp8``).
        weight_dtype: a weight precision for every layer, overriding the model's.
        capacity: bytes each device holds for a group (any :func:`parse_bytes` form);
            default the hardware's effective capacity, :attr:`Hardware.capacity`.
        devices: None (one device per group), a device count, or an ordered list of
            devices (profile names or :class:`Hardware`), each with its own capacity.
        share_devices: with a device count, let several consecutive groups share a
            device when there are more groups than devices.
        algorithm: ``balanced`` (fewest groups, then the smallest largest group),
            ``greedy`` (fewest groups, filled left to right), ``dp`` (as balanced, by
            dynamic programming) or ``stage_time``: cut-aware, the fewest groups, then
            the smallest largest stage time including the transfer at its cut, by the
            native stage-time DP (:func:`~layerwise_fast.perf.stage_time_inputs` gives
            the times; not with a list of devices).
        cost: ``sum`` or ``peak`` (see :func:`layerwise_fast.greedy`).
        on_oversize: ``error``, ``tile`` or ``quantize`` (:mod:`layerwise_fast.oversize`).
        working_set_ratio, default_buffers: as for :func:`working_set`.
        cut_elems_per_token: elements per token leaving each layer (the hidden size of
            a transformer); None takes it from a config file, else charges a cut the
            layer's whole ``act_elems_per_token`` (an upper bound, noted in the plan).
        layer_granularity: ``layer`` or ``sublayer``, for a config file.
        name: a label for the model in reports.
        progress: called as ``progress(stage, fraction_done)`` as the stages complete.

    Raises:
        OversizeLayerError: a layer fits no device and ``on_oversize`` cannot make it fit
            (the first such layer is named, with its bytes and the capacity).
        TooManyGroupsError: more groups than devices, even at the smallest chunk.
        InfeasibleError: the base class of both; the CLI exits with status 1.
        TypeError, ValueError, OverflowError: invalid arguments or model, naming them.
    """
    report = progress or _silent
    loaded = _as_model(model, layer_granularity, name)
    cut = cut_elems_per_token if cut_elems_per_token is not None else loaded.cut_elems_per_token
    request = _Request.checked(batch, sequence, chunk, granularity, micro_batches,
                               algorithm, cost)
    device = resolve_hardware(hardware)
    cap = None if capacity is None else parse_bytes(capacity, name="capacity")
    pool = device_pool(devices, device, cap, share_devices)
    if request.algorithm == "stage_time" and pool.mixed:
        raise ValueError("algorithm='stage_time' times every group on one kind of device; "
                         "give a device count, not a list of devices")
    units = unit_sizes(loaded.table, act_dtype=act_dtype, weight_dtype=weight_dtype,
                       working_set_ratio=working_set_ratio, default_buffers=default_buffers,
                       cut_elems_per_token=cut)
    report("working sets", 0.3)
    smallest = request.chunk or min(request.granularity, request.sequence)
    tokens_min = request.batch * smallest
    rules = oversize_rules(units, pool.fit_capacity, pool.treat_capacity, on_oversize,
                           tokens_min)
    codes = rules.treatments(tokens_min, _chunk_text(smallest, request),
                             chunk_given=request.chunk is not None)
    largest = request.chunk or chunk_for(rules.limit(codes), request.batch,
                                         request.granularity, request.sequence)
    chosen = request.chunk or _search_chunk(rules, codes, pool, request, largest)
    columns = rules.sizes(request.batch * chosen, codes)
    chunks = -(-request.sequence // chosen)
    treated = rules.report(codes, request.batch * chosen, chunks)
    lookups = rules.lookups(codes)
    cached = LayerTraffic(columns["weights"], np.ones(len(units), dtype=np.int64),
                          units.act_per_token, units.out_per_token, units.flops_per_token)
    traffic = planned_traffic(cached, treated, lookups, chunks,
                              request.batch * request.sequence)
    report("chunk", 0.5)
    partition = _partition(columns, pool, request, units.names, traffic)
    report("partition", 0.7)
    built = _assemble(loaded, units, treated, lookups, columns, traffic, partition, pool,
                      request, chosen, on_oversize, cap)
    if chosen < largest:
        built.notes = (_device_bound_note(chosen, largest, pool), *built.notes)
    report("performance", 1.0)
    return built


def sweep(
    model: LayerTable | Model | str | os.PathLike[str],
    batch_sizes: Sequence[int] | npt.NDArray[np.integer[Any]],
    hardware: str | Hardware = "h100",
    *,
    sequence: int = DEFAULT_SEQUENCE,
    granularity: int = DEFAULT_GRANULARITY,
    act_dtype: str = "bf16",
    weight_dtype: str | None = None,
    capacity: ByteCount | None = None,
    cost: Literal["sum", "peak"] = "sum",
    on_oversize: Literal["error", "tile", "quantize"] = "error",
    working_set_ratio: FractionLike = 1,
    default_buffers: Mapping[str, ByteCount] | None = None,
    layer_granularity: str = "layer",
    progress: Progress | None = None,
) -> Sweep:
    """The largest chunk and the fewest groups for each batch size (seed 6.2).

    The arguments mean what they mean for :func:`plan`; the capacity is one device's.
    A batch size at which the policy cannot make every layer fit is reported as not
    fitting (``fits`` False) rather than raising. Vectorised: the chunk for a block of
    batch sizes in closed form, the group count by one native greedy call each;
    ``progress(stage, fraction_done)`` is called as those calls proceed.

    Raises:
        TypeError, ValueError, OverflowError: invalid arguments or model.
    """
    loaded = _as_model(model, layer_granularity, None)
    request = _Request.checked(1, sequence, None, granularity, 1, "greedy", cost)
    device = resolve_hardware(hardware)
    cap = device.capacity if capacity is None else parse_bytes(capacity, name="capacity")
    units = unit_sizes(loaded.table, act_dtype=act_dtype, weight_dtype=weight_dtype,
                       working_set_ratio=working_set_ratio, default_buffers=default_buffers)
    return sweep_sizes(units, batch_sizes, capacity=cap, sequence=request.sequence,
                       granularity=request.granularity, cost=request.cost,
                       on_oversize=on_oversize, hardware=device.name, progress=progress)


# -- arguments ---------------------------------------------------------------------------


def _silent(stage: str, fraction: float) -> None:
    """The default progress callback: report nothing."""


def _as_model(model: object, layer_granularity: str, name: str | None) -> Model:
    if isinstance(model, Model):
        loaded = model
    elif isinstance(model, LayerTable):
        loaded = Model(model, None, "model")
    elif isinstance(model, (str, os.PathLike)):
        loaded = load_model(model, layer_granularity=layer_granularity)
    else:
        raise TypeError(f"model must be a LayerTable, a Model or a path, got "
                        f"{type(model).__name__}")
    if name is not None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty str, got {name!r}")
        loaded = replace(loaded, label=name)
    if not encodable(loaded.label):
        raise ValueError(f"the model's name {loaded.label!r} cannot be written as UTF-8 "
                         f"(it holds a lone surrogate)")
    return loaded


def _count(value: object, name: str, high: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if not 1 <= value <= high:
        raise ValueError(f"{name} must be between 1 and {high}, got {value}")
    return int(value)


@dataclass(frozen=True)
class _Request:
    """The validated scalar settings of one plan."""

    batch: int
    sequence: int
    chunk: int | None
    granularity: int
    micro_batches: int
    algorithm: str
    cost: Literal["sum", "peak"]

    @classmethod
    def checked(cls, batch: object, sequence: object, chunk: object, granularity: object,
                micro_batches: object, algorithm: object, cost: object) -> _Request:
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}, "
                             f"got {algorithm!r}")
        if cost not in COSTS:
            raise ValueError(f"cost must be one of {', '.join(COSTS)}, got {cost!r}")
        length = _count(sequence, "sequence", MAX_SEQUENCE)
        given = None if chunk is None else _count(chunk, "chunk", MAX_SEQUENCE)
        if given is not None and given > length:
            raise ValueError(f"chunk ({given} tokens) exceeds sequence ({length} tokens)")
        count = _count(batch, "batch", MAX_BATCH)
        check_tokens(count, length, "batch")
        return cls(count, length, given,
                   _count(granularity, "granularity", MAX_SEQUENCE),
                   _count(micro_batches, "micro_batches", MAX_BATCH),
                   str(algorithm), cost)  # type: ignore[arg-type]

    def chunk_at(self, multiple: int) -> int:
        """The chunk of ``multiple`` granules, capped at the sequence."""
        return min(multiple * self.granularity, self.sequence)


def _chunk_text(chunk: int, request: _Request) -> str:
    tokens = "token" if chunk == 1 else "tokens"
    which = "smallest" if request.chunk is None else "given"
    return f"the {which} chunk, {chunk} {tokens} x batch {request.batch}"


# -- chunk and groups ---------------------------------------------------------------------


def _search_chunk(rules: SizeRules, codes: IntColumn, pool: DevicePool,
                  request: _Request, largest: int) -> int:
    """The largest chunk, at most ``largest`` (where every layer fits), at which the
    groups fit the devices."""
    if pool.group_limit is None and not pool.mixed:
        return largest

    def fits(multiple: int) -> bool:
        columns = rules.sizes(request.batch * request.chunk_at(multiple), codes)
        try:
            _device_fit(columns, pool, request.cost, rules.units.names)
        except InfeasibleError:
            return False
        return True

    low, high = 1, -(-largest // request.granularity)
    if fits(high):
        return largest
    if not fits(low):
        columns = rules.sizes(request.batch * request.chunk_at(low), codes)
        _device_fit(columns, pool, request.cost, rules.units.names)  # raises
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return request.chunk_at(low)


def _device_fit(columns: dict[str, IntColumn], pool: DevicePool, cost: Literal["sum", "peak"],
                names: npt.NDArray[np.object_]) -> None:
    """Raise unless the groups at these sizes fit the devices."""
    if pool.mixed:
        ordered_fit(columns, pool.capacities, cost, names)
        return
    limit = pool.group_limit
    if limit is not None:
        groups = greedy(columns, pool.capacities[0], cost=cost).k
        if groups > limit:
            raise TooManyGroupsError(groups, limit)


def _partition(columns: dict[str, IntColumn], pool: DevicePool, request: _Request,
               names: npt.NDArray[np.object_], traffic: LayerTraffic) -> Partition:
    """The groups: the chosen partitioner, with each device's own capacity for a list."""
    if pool.mixed:  # stage_time was refused for a list
        return ordered_partition(columns, pool.capacities, request.cost, names, request.algorithm)
    capacity = pool.capacities[0]
    sizes: Any = columns
    if request.algorithm == "balanced":
        result = balanced(sizes, capacity=capacity, cost=request.cost)
    elif request.algorithm == "greedy":
        result = greedy(sizes, capacity, cost=request.cost)
    elif request.algorithm == "dp":
        result = dp(sizes, capacity, cost=request.cost)
    else:
        layer_time, cut_time = stage_time_inputs(traffic, pool.hardware[0],
                                                 request.batch * request.sequence)
        result = dp(sizes, capacity, cost=request.cost, layer_time=layer_time,
                    cut_time=cut_time)
    if pool.group_limit is not None and result.k > pool.group_limit:
        raise TooManyGroupsError(result.k, pool.group_limit)
    return result


# -- the plan -------------------------------------------------------------------------------


def _stage_ticks(stage_s: FloatColumn) -> IntColumn:
    """Stage times as whole ticks for balancing: picoseconds, or a coarser tick where
    the picoseconds of all stages together would leave int64 (balanced needs their sum)."""
    tick = max(1 / _PICOSECONDS, float(stage_s.sum()) / _TICKS_MAX)
    return np.ceil(stage_s / tick).astype(np.int64)


def _assemble(model: Model, units: UnitSizes, treated: Treatments, lookups: Lookups,
              columns: dict[str, IntColumn], traffic: LayerTraffic, partition: Partition,
              pool: DevicePool, request: _Request, chunk: int, on_oversize: str,
              capacity: int | None) -> Plan:
    """Map groups to devices; the Plan runs the performance model."""
    chunks = -(-request.sequence // chunk)
    k = partition.k
    group_kind = np.arange(k) if pool.mixed else np.zeros(k, dtype=np.int64)
    perf = group_performance(partition.boundaries, traffic.weights, traffic.reads,
                             traffic.act_per_token, traffic.out_per_token,
                             traffic.flops_per_token, request.batch * request.sequence,
                             Rates.of(pool.hardware, group_kind))
    group_device = groups_to_devices(_stage_ticks(perf.stage_compute_s),
                                     pool.count if pool.share else None)
    device_count = int(group_device[-1]) + 1
    hardware = pool.hardware[:device_count] if pool.mixed else pool.hardware
    kinds = np.arange(device_count) if pool.mixed else np.zeros(device_count, dtype=np.int64)
    capacities = np.array(pool.capacities, dtype=np.int64)[kinds]
    settings = PlanSettings(
        model=model.label, batch=request.batch, micro_batches=request.micro_batches,
        sequence=request.sequence, chunk=chunk, chunks=chunks,
        granularity=request.granularity, chunk_searched=request.chunk is None,
        act_dtype=units.act_dtype, weight_dtype=units.weight_dtype,
        working_set_ratio=str(units.ratio), algorithm=request.algorithm,
        cost=request.cost, on_oversize=on_oversize,
        devices_requested=pool.count, mixed=pool.mixed, share_devices=pool.share,
        cut_exact=units.cut_exact)
    plan_ = Plan(settings=settings, hardware=tuple(hardware), device_kind=kinds,
                 device_capacities=capacities, names=units.names, traffic=traffic,
                 partition=partition, group_device=group_device,
                 treated=treated, lookups=lookups, weights=columns["weights"],
                 activations=columns["activations"], buffers=columns["buffers"])
    plan_.notes = _notes(plan_, units, capacity, model.positions)
    return plan_


def _device_bound_note(chunk: int, largest: int, pool: DevicePool) -> str:
    """Why the searched chunk is shorter than every layer allows."""
    why = ("the groups do not fit the listed devices in order" if pool.mixed else
           f"the plan needs more groups than the {counted(pool.count or 0, 'device')}")
    return (f"the chunk is {counted(chunk, 'token')}, not the {largest} at which every layer "
            f"fits: at a longer chunk {why}")


def _lookup_notes(plan_: Plan) -> list[str]:
    """How the first lookup is counted, and how many others are counted so."""
    lookups = plan_.lookups
    if not len(lookups):
        return []
    layer = int(lookups.layers[0])
    more = len(lookups) - 1
    others = f" (and so {'is' if more == 1 else 'are'} {counted(more, 'other')})" if more else ""
    treated = plan_.treated
    rows, streamed = int(plan_.weights[layer]), ""
    tiled = np.flatnonzero((treated.layers == layer) & (treated.kind == "tile"))
    if tiled.size:  # its weights are then a tile; the rows are all its tiles
        rows = int(treated.weight_bytes[tiled[0]])
        streamed = f", streamed in {counted(int(treated.tiles[tiled[0]]), 'tile')}"
    held = (f"{format_bytes(rows)} of its {format_bytes(int(lookups.table_bytes[0]))} "
            f"table{streamed}")
    return [f"{printable(str(plan_.names[layer]))} is a lookup{others}: it holds only the "
            f"table rows one chunk's tokens read ({held}), and reads "
            f"{format_bytes(int(plan_.traffic.weights[layer]))} of rows from HBM per "
            f"micro-batch"]


def _unrecorded_lookup_notes(table: LayerTable) -> list[str]:
    """Embeddings counted whole because they record no row count."""
    if LOOKUP_KINDS.isdisjoint(table.kinds):
        return []
    unrecorded = np.flatnonzero(of_lookup_kind(table) & (table.out_channels == 0))
    if not unrecorded.size:
        return []
    first = printable(str(table.name[int(unrecorded[0])]))
    others = f" (and {counted(unrecorded.size - 1, 'other')})" if unrecorded.size > 1 else ""
    return [f"{first}{others} is an embedding that records no out_channels (its table's "
            f"rows), so its whole table is counted; record them to count only the rows its "
            f"tokens read"]


def sequence_note(sequence: int, positions: int | None) -> str:
    """A note where ``sequence`` is longer than the model's config allows, else ``""``."""
    if positions is None or sequence <= positions:
        return ""
    return (f"the sequence ({sequence} tokens) is longer than the {positions} positions of "
            f"the model's config (n_positions or max_position_embeddings)")


def _notes(plan_: Plan, units: UnitSizes, capacity: int | None,
           positions: int | None) -> tuple[str, ...]:
    """What a reader of the plan should know about its numbers."""
    notes = []
    s, perf, treated = plan_.settings, plan_.performance, plan_.treated
    longer = sequence_note(s.sequence, positions)
    if longer:
        notes.append(longer)
    if capacity is not None:
        notes.append(f"the capacity {capacity} bytes was given; it replaces the devices' "
                     f"effective capacity")
    if not units.cut_exact:
        notes.append("cut sizes are upper bounds: no output width was given, so a cut "
                     "sends the last layer's whole act_elems_per_token per token; pass "
                     "cut_elems_per_token (--hidden; a transformer's hidden size) for exact "
                     "sizes")
    for name in sorted({d.name for d in plan_.hardware if d.cache_bytes_per_s is None}):
        notes.append(f"{printable(name)} has no measured cache rate: L2 hits are modelled at its HBM "
                     f"rate, so its speedups are lower bounds")
    notes += _lookup_notes(plan_) + _unrecorded_lookup_notes(units.table)
    tiled = int(((treated.kind == "tile") & ~np.isin(treated.layers, plan_.lookups.layers)).sum())
    if tiled:
        notes.append(f"{tiled} layer{'s are' if tiled > 1 else ' is'} tiled: the weights "
                     f"stream from HBM once per chunk ({counted(s.chunks, 'chunk')} per sequence), "
                     f"{format_bytes(exact_total(treated.extra_bytes))} more HBM traffic "
                     f"per micro-batch than reading them once")
    quantized = {code: int((treated.kind == name).sum()) for code, name in
                 ((INT8, "int8"), (INT4, "int4"))}
    count = sum(quantized.values())
    if count:
        notes.append(f"{count} layer{'s are' if count > 1 else ' is'} quantized to fit ("
                     f"{quantized[INT8]} to int8, {quantized[INT4]} to int4); check the "
                     f"accuracy before deploying")
    total_base, total_plan = float(perf.baseline_s.sum()), float(perf.planned_s.sum())
    if total_plan > total_base:
        notes.append(f"the planned memory time ({format_seconds(total_plan)}) exceeds layer "
                     f"by layer ({format_seconds(total_base)}): in this model keeping the "
                     f"groups resident costs more HBM traffic than it saves")
    bound = int((perf.compute_s > perf.planned_s).sum())
    if bound:
        notes.append(f"{bound} of {plan_.k} groups are compute-bound in this model (compute "
                     f"time above planned memory time): their stage time is their compute "
                     f"time")
    missing = int((units.flops_per_token == 0).sum())
    if missing:
        notes.append(f"{missing} layer{'s record' if missing > 1 else ' records'} no "
                     f"flops_per_token; {'their' if missing > 1 else 'its'} compute time "
                     f"is taken as 0")
    if s.devices_requested and plan_.device_count < s.devices_requested:
        used = (f"the first {plan_.device_count} of the {s.devices_requested} listed" if s.mixed
                else f"{plan_.device_count} of the {s.devices_requested}")
        notes.append(f"the plan uses {used} devices: it has fewer groups than devices")
    notes.append("a model, not a measurement: the rates are the hardware profile's; "
                 "check the fit on the GPU itself")
    return tuple(notes)

