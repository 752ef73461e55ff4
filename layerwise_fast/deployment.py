"""The deployment plan: what :func:`layerwise_fast.plan` returns, as data and as text.

A :class:`Plan` holds the settings it was made with, the devices in pipeline order, the
working set of every layer at the chosen chunk, the groups (a
:class:`~layerwise_fast.result.Partition`) and the device of each group, the oversize
layers and their treatment, and what the performance model (:mod:`layerwise_fast.perf`)
makes of them: traffic and speedup per group, stage times per device, the cuts between
devices and the pipeline timeline. The model's numbers are computed from the rest when
the plan is built, so a plan read back from JSON recomputes them.

JSON form (UTF-8, one object). Every per-layer, per-group and per-device list is a
column of exact integers (bytes, counts, indices), so that 10^6 layers stay compact and
exact; times live only in ``totals``::

    {"schema": "layerwise_fast.plan", "version": 2,
     "settings": {"model": str, "batch": int, "micro_batches": int, "sequence": int,
                  "chunk": int, "chunks": int, "granularity": int,
                  "chunk_searched": bool, "act_dtype": str, "weight_dtype": str | null,
                  "working_set_ratio": "p/q", "algorithm": str, "cost": str,
                  "on_oversize": str, "devices_requested": int | null, "mixed": bool,
                  "share_devices": bool, "cut_exact": bool},
     "devices": {"hardware": [{<Hardware.to_dict()>}, ...],   # the profile, or the listed devices used
                 "kind": [int],                               # per device: its hardware
                 "capacity": [int]},                          # per device: bytes
     "layers": {"names": [str], "weights": [int], "activations": [int],
                "buffers": [int], "act_bytes_per_token": [int],
                "out_bytes_per_token": [int], "flops_per_token": [int]},
     "groups": {"boundaries": [int], "costs": [int], "device": [int],
                "baseline_bytes": [int], "planned_bytes": [int], "cache_bytes": [int]},
     "lookups": {"layers": [int], "rows": [int], "table_bytes": [int]},
     "treated": {"layers": [int], "kind": [str], "original_bytes": [int],
                 "weight_bytes": [int], "tiles": [int], "tile_bytes": [int],
                 "last_tile_bytes": [int], "extra_bytes": [int]},
     "cuts": {"after_layer": [int], "bytes_per_chunk": [int],
              "bytes_per_micro_batch": [int]},
     "totals": {"baseline_memory_s": float, "planned_memory_s": float, "fill_s": float,
                "steady_s": float, "drain_s": float, "total_s": float,
                "bottleneck": str},
     "notes": [str]}

``layers.weights`` is what each layer occupies in the cache (a tiled layer's tile; a
lookup's rows read by one chunk's tokens); ``activations`` is exactly ``ceil(batch x
chunk x act_bytes_per_token x ratio)``. ``lookups`` lists the lookup layers (ascending),
their tables' rows and whole tables' bytes as planned (quantized where treated so): a
lookup's ``layers.weights`` (a tiled one's ``treated.weight_bytes``; its tile is then
``layers.weights``) is exactly ``min(table_bytes, ceil(table_bytes x batch x chunk /
rows))``, and it reads the rows of its micro-batch's tokens from HBM once
(:mod:`~layerwise_fast.workingset`, "Lookups"). A version 1 file (written before lookups
were modelled, with no ``lookups`` field) is read as a plan without lookups.

:meth:`Plan.from_dict` and :meth:`Plan.from_json` check all of it: every key present and
no other, every type, range and length, and every invariant that ties the parts
together: the boundaries cut 0..n; the activations follow from the settings; each
group's cost, recomputed from the layer columns under the cost model, matches and fits
its device; groups map to devices in order, as many as the settings ask for (one
profile for a count, one entry per device for a list); a searched chunk is a multiple
of the granularity or the whole sequence; the treatments agree with the layer columns
and the policy; and the model's integers (traffic, cut bytes) and totals (to a relative
1e-9) match a recomputation. Any violation raises :class:`PlanFormatError` naming the
file and the field.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Final, Mapping, NoReturn

import numpy as np
import numpy.typing as npt

from . import _core
from .devices import group_costs
from .hardware import Hardware
from .oversize import TREATMENT_NAMES, Treatments
from .perf import Cuts, GroupPerformance, LayerTraffic, StageTimes, Timeline, evaluate
from .result import Partition
from .scaling import scaled_activations
from .summary import counted, format_plan
from .units import (INT64_MAX, MAX_RATIO_DENOMINATOR, _json_type, _load_json_checked,
                    ascii_digits, check_ratio, encodable, write_bytes_atomically)
from .workingset import Lookups

__all__ = ["PLAN_SCHEMA", "PLAN_VERSION", "Plan", "PlanFormatError", "PlanSettings"]

IntColumn = npt.NDArray[np.int64]

PLAN_SCHEMA: Final[str] = "layerwise_fast.plan"
PLAN_VERSION: Final[int] = 2
SUMMARY_ROWS: Final[int] = 24
"""Rows of each table :meth:`Plan.summary` prints before it elides the middle."""
TOTALS_TOLERANCE: Final[float] = 1e-9
"""Relative tolerance for the float totals of a plan read from JSON."""

_ALGORITHMS: Final[tuple[str, ...]] = ("balanced", "greedy", "dp", "stage_time")
_COSTS: Final[tuple[str, ...]] = ("sum", "peak")
_POLICIES: Final[tuple[str, ...]] = ("error", "tile", "quantize")
_ACT_DTYPES: Final[tuple[str, ...]] = ("bf16", "fp16", "fp32", "fp8")
_WEIGHT_DTYPES: Final[tuple[str, ...]] = ("bf16", "fp16", "fp32", "fp8", "int8", "int4")


class PlanFormatError(ValueError):
    """A plan document or file is malformed; the message names the source and field."""


@dataclass(frozen=True)
class PlanSettings:
    """The settings a plan was made with.

    Attributes:
        model: a label for the model (its file or example name).
        batch: sequences per micro-batch (the batch the working set holds).
        micro_batches: micro-batches that flow through the pipeline (M).
        sequence: tokens per sequence.
        chunk: tokens per chunk (of each sequence).
        chunks: chunks per sequence, ``ceil(sequence / chunk)``.
        granularity: the searched chunk is a multiple of this (or the whole sequence).
        chunk_searched: whether the chunk was searched (True) or given.
        act_dtype: activation precision.
        weight_dtype: the weight precision overriding the model's, or None.
        working_set_ratio: share of a chunk's activations held at once, as ``"p/q"``.
        algorithm: the partitioner (``balanced``, ``greedy``, ``dp`` or the cut-aware
            ``stage_time``).
        cost: the cost model (``sum`` or ``peak``).
        on_oversize: the oversize policy.
        devices_requested: the device count asked for (None: one per group).
        mixed: whether an ordered list of (possibly different) devices was given.
        share_devices: whether several groups may share a device.
        cut_exact: False when cut sizes are upper bounds (no output width was known).
    """

    model: str
    batch: int
    micro_batches: int
    sequence: int
    chunk: int
    chunks: int
    granularity: int
    chunk_searched: bool
    act_dtype: str
    weight_dtype: str | None
    working_set_ratio: str
    algorithm: str
    cost: str
    on_oversize: str
    devices_requested: int | None
    mixed: bool
    share_devices: bool
    cut_exact: bool


class Plan:
    """A deployment plan (see the module docstring). Its arrays are read-only; treat the
    rest as immutable too.

    Attributes:
        settings: the :class:`PlanSettings`.
        hardware: the hardware of the plan: the one profile, or, for a list of devices,
            the first k listed, one per group in order (a device listed twice appears
            twice).
        device_kind: for each device in pipeline order, its index in ``hardware``.
        device_capacities: the planning capacity of each device, bytes.
        names: layer names.
        weights, activations, buffers: each layer's working set at the chunk, bytes
            (a tiled layer's ``weights`` is its tile).
        traffic: the per-layer inputs of the performance model.
        partition: the groups.
        group_device: the device of each group.
        treated: the oversize layers and their treatment.
        lookups: the layers that read table rows per token (embeddings), whose
            ``weights`` are one chunk's rows (:class:`~layerwise_fast.workingset.Lookups`).
        performance: per-group traffic and times (computed).
        stages: per-device stage times (computed).
        cuts: the cuts between devices (computed).
        timeline: the pipeline timeline for ``settings.micro_batches`` (computed).
        notes: what a reader should know about the numbers.
    """

    __slots__ = ("settings", "hardware", "device_kind", "device_capacities", "names",
                 "weights", "activations", "buffers", "traffic", "partition",
                 "group_device", "treated", "lookups", "performance", "stages", "cuts",
                 "timeline", "notes")

    settings: PlanSettings
    hardware: tuple[Hardware, ...]
    device_kind: IntColumn
    device_capacities: IntColumn
    names: npt.NDArray[np.object_]
    weights: IntColumn
    activations: IntColumn
    buffers: IntColumn
    traffic: LayerTraffic
    partition: Partition
    group_device: IntColumn
    treated: Treatments
    lookups: Lookups
    performance: GroupPerformance
    stages: StageTimes
    cuts: Cuts
    timeline: Timeline
    notes: tuple[str, ...]

    def __init__(
        self,
        *,
        settings: PlanSettings,
        hardware: tuple[Hardware, ...],
        device_kind: IntColumn,
        device_capacities: IntColumn,
        names: npt.NDArray[np.object_],
        weights: IntColumn,
        activations: IntColumn,
        buffers: IntColumn,
        traffic: LayerTraffic,
        partition: Partition,
        group_device: IntColumn,
        treated: Treatments,
        lookups: Lookups | None = None,
        notes: tuple[str, ...] = (),
    ) -> None:
        """Store the parts, make their arrays read-only and run the performance model on
        them (:func:`layerwise_fast.perf.evaluate`); :func:`layerwise_fast.plan` builds them."""
        self.settings = settings
        self.hardware = hardware
        self.device_kind = device_kind
        self.device_capacities = device_capacities
        self.names = names
        self.weights = weights
        self.activations = activations
        self.buffers = buffers
        self.traffic = traffic
        self.partition = partition
        self.group_device = group_device
        self.treated = treated
        self.lookups = Lookups.none() if lookups is None else lookups
        self.notes = notes
        model = evaluate(traffic, partition.boundaries, group_device, hardware, device_kind,
                         batch=settings.batch, sequence=settings.sequence,
                         chunk=settings.chunk, micro_batches=settings.micro_batches)
        self.performance = model.performance
        self.stages = model.stages
        self.cuts = model.cuts
        self.timeline = model.timeline
        for array in (*self._columns(), *_arrays_of(model.performance, model.stages,
                                                     model.cuts, model.timeline)):
            array.flags.writeable = False

    # -- shape -------------------------------------------------------------------------

    @property
    def n(self) -> int:
        """Number of layers."""
        return len(self.names)

    @property
    def k(self) -> int:
        """Number of groups."""
        return self.partition.k

    @property
    def device_count(self) -> int:
        """Number of devices the plan uses."""
        return len(self.device_kind)

    @property
    def devices(self) -> tuple[Hardware, ...]:
        """The device of each pipeline position, in order."""
        return tuple(self.hardware[i] for i in self.device_kind.tolist())

    @property
    def device_boundaries(self) -> IntColumn:
        """Layer boundaries of the devices: device ``d`` runs layers
        ``device_boundaries[d]`` up to (not including) ``device_boundaries[d + 1]``."""
        firsts = np.flatnonzero(np.diff(self.group_device, prepend=-1))
        return np.append(self.partition.boundaries[firsts], self.n).astype(np.int64)

    def to_device_map(self) -> dict[str, int]:
        """Layer name -> device index (pipeline order), like a ``device_map``.

        One key per layer. For a model read from torch, ``TorchLayers.device_map``
        (:mod:`~layerwise_fast.torch_ingest`) gives accelerate its full map: each row's
        other keys (the top module's own tensors, a module's other paths) and tied rows
        on one device.

        Raises:
            ValueError: two layers share a name, so a name cannot identify a layer.
        """
        labels = np.repeat(self.group_device, np.diff(self.partition.boundaries))
        mapping = dict(zip(self.names.tolist(), labels.tolist()))
        if len(mapping) != self.n:
            counts = Counter(self.names.tolist())
            twice = next(name for name, count in counts.items() if count > 1)
            raise ValueError(f"layer name {twice!r} appears more than once; "
                             f"to_device_map needs unique names")
        return mapping

    def split_points(self) -> list[str]:
        """Names of the layers that begin each device after the first: where a pipeline
        runtime splits the model (e.g. ``SplitPoint.BEGINNING`` in
        ``torch.distributed.pipelining``).

        Raises:
            ValueError: a layer that begins a device shares its name with another layer,
                so the name cannot identify where to split.
        """
        points = [str(self.names[i]) for i in self.device_boundaries[1:-1].tolist()]
        counts = Counter(self.names.tolist())
        repeated = next((name for name in points if counts[name] > 1), None)
        if repeated is not None:
            raise ValueError(f"layer name {repeated!r}, where a device begins, appears more "
                             f"than once; split_points needs it unique")
        return points

    # -- text ----------------------------------------------------------------------------

    def summary(self, max_rows: int = SUMMARY_ROWS) -> str:
        """The plan as readable tables (a table longer than ``max_rows`` loses its middle).

        Raises:
            TypeError, ValueError: ``max_rows`` is not an int of at least 2 (the first
                and the last row).
        """
        if isinstance(max_rows, (bool, np.bool_)) or not isinstance(max_rows, (int, np.integer)):
            raise TypeError(f"max_rows must be an int, got {type(max_rows).__name__}")
        if max_rows < 2:
            raise ValueError(f"max_rows must be at least 2 (the first and the last row), "
                             f"got {max_rows}")
        return format_plan(self, int(max_rows))

    def __repr__(self) -> str:
        s = self.settings
        return (f"<Plan {s.model!r}: {counted(self.n, 'layer')} in {counted(self.k, 'group')} "
                f"on {counted(self.device_count, 'device')}, chunk {counted(s.chunk, 'token')}, "
                f"on_oversize={s.on_oversize!r}>")

    # -- JSON ----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (module docstring) as plain Python values."""
        return self._document(_as_list)

    def _document(self, column: Callable[[np.ndarray], Any]) -> dict[str, Any]:
        """The JSON form with every numpy column passed through ``column``."""
        perf, traffic, treated, tl = self.performance, self.traffic, self.treated, self.timeline
        return {
            "schema": PLAN_SCHEMA,
            "version": PLAN_VERSION,
            "settings": {field: getattr(self.settings, field) for field in _SETTINGS_TYPES},
            "devices": {"hardware": [h.to_dict() for h in self.hardware],
                        "kind": column(self.device_kind),
                        "capacity": column(self.device_capacities)},
            "layers": {
                "names": self.names.tolist(), "weights": column(self.weights),
                "activations": column(self.activations), "buffers": column(self.buffers),
                "act_bytes_per_token": column(traffic.act_per_token),
                "out_bytes_per_token": column(traffic.out_per_token),
                "flops_per_token": column(traffic.flops_per_token)},
            "groups": {
                "boundaries": column(self.partition.boundaries),
                "costs": column(self.partition.group_costs),
                "device": column(self.group_device),
                **{field: column(getattr(perf, field)) for field in _TRAFFIC_FIELDS}},
            "lookups": {field: column(getattr(self.lookups, field))
                        for field in _LOOKUP_FIELDS},
            "treated": {field: column(getattr(treated, field)) for field in _TREATED_FIELDS},
            "cuts": {field: column(getattr(self.cuts, field)) for field in _CUT_FIELDS},
            "totals": {**_totals(self), "bottleneck": tl.bottleneck},
            "notes": list(self.notes),
        }

    def dumps(self) -> str:
        """:meth:`to_dict` as compact JSON text (one line and a newline).

        The text is exactly ``json.dumps(to_dict(), ensure_ascii=False,
        separators=(",", ":"))``; int64 columns and lists of names are written by the
        native encoder, several times faster than the json module on large plans.
        """
        return b"".join(self._json_chunks("surrogatepass")).decode("utf-8", "surrogatepass")

    def to_json(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`dumps` to ``path`` (UTF-8), through a temporary file and a rename:
        a failure never leaves a half-written plan over an existing file.

        Raises:
            OSError: the file cannot be written.
            UnicodeEncodeError: a text holds a lone surrogate, which UTF-8 cannot carry
                (``plan`` and the readers refuse such text, so only a Plan built by hand
                can).
        """
        write_bytes_atomically(path, self._json_chunks("strict"))

    def _json_chunks(self, errors: str) -> list[bytes]:
        """The UTF-8 of :meth:`dumps` in pieces (big columns are pieces of their own);
        ``errors`` is the handling of lone surrogates."""
        chunks: list[bytes] = []
        _encode(self._document(_keep_int64), chunks, errors)
        chunks.append(b"\n")
        return chunks

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> Plan:
        """Read a plan written by :meth:`to_json`, validating all of it.

        Raises:
            PlanFormatError: a missing or unreadable file, a directory, bytes that are
                not UTF-8, truncated or invalid JSON, or any violation listed in the
                module docstring; the message names the file and the field.
        """
        label = f"plan file {os.fspath(path)!r}"
        return _load_json_checked(path, what="plan file", error=PlanFormatError,
                                  check=lambda document: _read_plan(document, label, native_arrays=True))

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> Plan:
        """Inverse of :meth:`to_dict`, validating all of it. Columns may be lists or 1-D
        numpy integer arrays; arrays are copied, never kept or locked.

        Raises:
            PlanFormatError: any violation listed in the module docstring.
        """
        return _read_plan(document, "plan", native_arrays=False)

    def _columns(self) -> tuple[npt.NDArray[Any], ...]:
        """Every array the plan is made of (the model's numbers follow from them)."""
        t, treated = self.traffic, self.treated
        return (self.device_kind, self.device_capacities, self.names, self.weights,
                self.activations, self.buffers, t.weights, t.reads, t.act_per_token,
                t.out_per_token, t.flops_per_token, self.partition.boundaries,
                self.partition.group_costs, self.group_device,
                *(getattr(treated, field) for field in _TREATED_FIELDS),
                *(getattr(self.lookups, field) for field in _LOOKUP_FIELDS))

    def __eq__(self, other: object) -> bool:
        """Equal settings, devices, notes and arrays (and so equal model numbers)."""
        if not isinstance(other, Plan):
            return NotImplemented
        return ((self.settings, self.hardware, self.notes, self.partition.algorithm)
                == (other.settings, other.hardware, other.notes, other.partition.algorithm)
                and all(a.shape == b.shape and np.array_equal(a, b)
                        for a, b in zip(self._columns(), other._columns())))

    __hash__ = None  # type: ignore[assignment]


def _arrays_of(*parts: object) -> Iterator[np.ndarray]:
    """The numpy fields of dataclass instances."""
    for part in parts:
        for field in dataclasses.fields(part):  # type: ignore[arg-type]
            value = getattr(part, field.name)
            if isinstance(value, np.ndarray):
                yield value


def _as_list(values: np.ndarray) -> Any:
    return values.tolist()


def _keep_int64(values: np.ndarray) -> Any:
    return values if values.dtype == np.int64 and values.ndim == 1 else values.tolist()


def _encode(value: Any, chunks: list[bytes], errors: str) -> None:
    """Append the compact JSON of ``value`` to ``chunks`` as UTF-8; int64 numpy columns
    and lists of str go through the native encoder."""
    if isinstance(value, dict):
        chunks.append(b"{")
        for i, (key, item) in enumerate(value.items()):
            chunks.append(f"{',' if i else ''}{_compact(key)}:".encode("utf-8", errors))
            _encode(item, chunks, errors)
        chunks.append(b"}")
    elif isinstance(value, np.ndarray):
        chunks.append(_core.json_int_list(np.ascontiguousarray(value)))
    elif isinstance(value, list) and value and type(value[0]) is str:
        try:
            chunks.append(_core.json_str_list(value))
        except (TypeError, UnicodeEncodeError):  # not all str; a lone surrogate (no UTF-8)
            chunks.append(_compact(value).encode("utf-8", errors))
    else:
        chunks.append(_compact(value).encode("utf-8", errors))


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _totals(plan: Plan) -> dict[str, float]:
    """The float totals: memory times over all groups and the timeline."""
    tl = plan.timeline
    return {"baseline_memory_s": float(plan.performance.baseline_s.sum()),
            "planned_memory_s": float(plan.performance.planned_s.sum()),
            "fill_s": tl.fill_s, "steady_s": tl.steady_s, "drain_s": tl.drain_s,
            "total_s": tl.total_s}


_TRAFFIC_FIELDS: Final[tuple[str, ...]] = ("baseline_bytes", "planned_bytes", "cache_bytes")
_TREATED_FIELDS: Final[tuple[str, ...]] = (
    "layers", "kind", "original_bytes", "weight_bytes", "tiles", "tile_bytes",
    "last_tile_bytes", "extra_bytes")
_LOOKUP_FIELDS: Final[tuple[str, ...]] = ("layers", "rows", "table_bytes")
_CUT_FIELDS: Final[tuple[str, ...]] = ("after_layer", "bytes_per_chunk",
                                       "bytes_per_micro_batch")
_LAYER_FIELDS: Final[tuple[str, ...]] = (
    "names", "weights", "activations", "buffers", "act_bytes_per_token",
    "out_bytes_per_token", "flops_per_token")
_TOTAL_FIELDS: Final[tuple[str, ...]] = (
    "baseline_memory_s", "planned_memory_s", "fill_s", "steady_s", "drain_s", "total_s")
_SETTINGS_TYPES: Final[Mapping[str, str]] = {
    "model": "text", "batch": "positive", "micro_batches": "positive",
    "sequence": "positive", "chunk": "positive", "chunks": "positive",
    "granularity": "positive", "chunk_searched": "flag", "act_dtype": "act_dtype",
    "weight_dtype": "weight_dtype", "working_set_ratio": "ratio",
    "algorithm": "algorithm", "cost": "cost", "on_oversize": "policy",
    "devices_requested": "optional_positive", "mixed": "flag", "share_devices": "flag",
    "cut_exact": "flag",
}
_RATIO_DIGITS: Final[int] = len(str(MAX_RATIO_DENOMINATOR)) + 30
"""The most digits in either term of a plan's ratio: a denominator of up to 10**40 and a
value of up to 1e30 (see :func:`layerwise_fast.units.parse_fraction`)."""
_TOP_KEYS: Final[tuple[str, ...]] = (
    "schema", "version", "settings", "devices", "layers", "groups", "lookups", "treated",
    "cuts", "totals", "notes")
_VERSION_1_KEYS: Final[tuple[str, ...]] = tuple(key for key in _TOP_KEYS if key != "lookups")


# -- reading -------------------------------------------------------------------------------


class _Reader:
    """Type and range checks that raise PlanFormatError naming the source and field."""

    def __init__(self, label: str, *, native_arrays: bool) -> None:
        """``native_arrays``: numpy columns come from the native JSON reader (fresh int64
        arrays, owned here); otherwise they are the caller's and are checked and copied."""
        self.label = label
        self.native_arrays = native_arrays

    def fail(self, where: str, problem: str) -> NoReturn:
        raise PlanFormatError(f"{self.label}: field {where!r} {problem}")

    def section(self, value: object, where: str, keys: tuple[str, ...]) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            where_text = f"field {where!r}" if where else "the top level"
            raise PlanFormatError(f"{self.label}: {where_text} must be a JSON object, "
                                  f"got {_json_type(value)}")
        for key in keys:
            if key not in value:
                raise PlanFormatError(f"{self.label}: missing field {_join(where, key)!r}")
        unknown = sorted(str(key) for key in value if key not in keys)
        if unknown:
            raise PlanFormatError(f"{self.label}: unknown field {_join(where, unknown[0])!r} "
                                  f"(known: {', '.join(keys)})")
        return value

    def integer(self, value: object, where: str, low: int = 0, high: int = INT64_MAX) -> int:
        if type(value) is not int:
            self.fail(where, f"must be an integer, got {_json_type(value)} {value!r}")
        if not low <= value <= high:
            self.fail(where, f"must be between {low} and {high}, got {value}")
        return value

    def number(self, value: object, where: str) -> float:
        if type(value) not in (int, float):
            self.fail(where, f"must be a number, got {_json_type(value)} {value!r}")
        number = float(value)  # type: ignore[arg-type]
        if not math.isfinite(number) or number < 0:
            self.fail(where, f"must be a finite number >= 0, got {value!r}")
        return number

    def text(self, value: object, where: str, choices: tuple[str, ...] | None = None) -> str:
        if not isinstance(value, str):
            self.fail(where, f"must be a string, got {_json_type(value)} {value!r}")
        if choices is not None and value not in choices:
            self.fail(where, f"must be one of {', '.join(choices)}, got {value!r}")
        if not encodable(value):
            self.fail(where, f"{value!r} cannot be written as UTF-8 (it holds a lone surrogate)")
        return value

    def flag(self, value: object, where: str) -> bool:
        if not isinstance(value, bool):
            self.fail(where, f"must be true or false, got {_json_type(value)} {value!r}")
        return value

    def items(self, value: object, where: str, length: int | None) -> list[Any]:
        if not isinstance(value, list):
            self.fail(where, f"must be an array, got {_json_type(value)}")
        self._check_length(value, where, length)
        return value

    def _check_length(self, value: list[Any] | IntColumn, where: str, length: int | None) -> None:
        if length is not None and len(value) != length:
            self.fail(where, f"must have {length} entries, got {len(value)}")

    def ints(self, value: object, where: str, length: int | None = None,
             low: int = 0) -> IntColumn:
        if isinstance(value, np.ndarray):
            array = value if self.native_arrays else self._own_int_array(value, where)
            self._check_length(array, where, length)
        else:
            array = self._int_array(self.items(value, where, length), where)
        if array.size and int(array.min()) < low:
            self.fail(where, f"must hold integers >= {low}, got {int(array.min())}")
        return array

    def _own_int_array(self, value: np.ndarray, where: str) -> IntColumn:
        """A copy of the caller's 1-D integer array as int64 (the plan never shares or
        locks the caller's memory)."""
        if isinstance(value, np.ma.MaskedArray):  # np.array would drop the mask
            self.fail(where, "must be a plain array, got a masked array")
        if value.ndim != 1:
            self.fail(where, f"must be a 1-D array, got shape {value.shape}")
        if value.dtype.kind not in "iu":
            self.fail(where, f"must hold integers, got an array of {value.dtype}")
        if value.size and value.dtype.kind == "u" and int(value.max()) > INT64_MAX:
            self.fail(where, "holds an integer outside the int64 range")
        return np.array(value, dtype=np.int64)

    def _int_array(self, items: list[Any], where: str) -> IntColumn:
        if not set(map(type, items)) <= {int}:
            bad = next(x for x in items if type(x) is not int)
            self.fail(where, f"must hold integers, got {_json_type(bad)} {bad!r}")
        try:
            return np.array(items, dtype=np.int64).reshape(len(items))
        except OverflowError:
            self.fail(where, "holds an integer outside the int64 range")

    def texts(self, value: object, where: str, length: int | None = None,
              choices: tuple[str, ...] | None = None) -> npt.NDArray[np.object_]:
        if isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype.kind in "UO" \
                and not isinstance(value, np.ma.MaskedArray):
            value = value.tolist()  # a caller's array of names, read as the list it holds
        items = self.items(value, where, length)
        if not set(map(type, items)) <= {str}:
            bad = next(x for x in items if type(x) is not str)
            self.fail(where, f"must hold strings, got {_json_type(bad)} {bad!r}")
        if choices is not None and not set(items) <= set(choices):
            bad = next(x for x in items if x not in choices)
            self.fail(where, f"must hold one of {', '.join(choices)}, got {bad!r}")
        if not encodable("".join(items)):
            index = next(i for i, x in enumerate(items) if not encodable(x))
            self.fail(where, f"[{index}] {items[index]!r} cannot be written as UTF-8 (it "
                             f"holds a lone surrogate)")
        array = np.empty(len(items), dtype=object)
        array[:] = items
        return array

    def same(self, got: IntColumn, expected: IntColumn, where: str, what: str) -> None:
        if not np.array_equal(got, expected):
            i = int(np.argmax(got != expected))
            self.fail(where, f"[{i}] is {int(got[i])} but {what} gives {int(expected[i])}")


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _read_plan(document: object, label: str, *, native_arrays: bool) -> Plan:
    read = _Reader(label, native_arrays=native_arrays)
    if isinstance(document, Mapping) and "schema" in document and "version" in document:
        _check_schema_and_version(read, document)  # before the keys, which differ by version
    first = isinstance(document, Mapping) and document.get("version") == 1
    top = read.section(document, "", _VERSION_1_KEYS if first else _TOP_KEYS)  # has both
    settings = _read_settings(read, top["settings"])
    hardware, kinds, capacities = _read_devices(read, top["devices"])
    limit = settings.devices_requested
    if limit is not None and len(kinds) > limit:
        read.fail("devices.kind", f"lists {len(kinds)} devices, more than "
                                  f"settings.devices_requested ({limit})")
    names, columns, traffic = _read_layers(read, top["layers"], settings)
    weights = columns["weights"]
    lookups = (_read_lookups(read, top["lookups"], len(weights)) if "lookups" in top
               else Lookups.none())
    treated = _read_treated(read, top["treated"], settings, weights, lookups)
    _check_lookups(read, lookups, weights, treated, settings)
    traffic = planned_traffic(traffic, treated, lookups, settings.chunks,
                              settings.batch * settings.sequence)
    partition, group_device = _read_groups(read, top["groups"], settings, columns, capacities)
    _check_device_use(read, settings, len(hardware), kinds, group_device)
    try:  # the performance model runs here, in int64 byte counts
        plan = Plan(settings=settings, hardware=hardware, device_kind=kinds,
                    device_capacities=capacities, names=names, weights=columns["weights"],
                    activations=columns["activations"], buffers=columns["buffers"],
                    traffic=traffic, partition=partition, group_device=group_device,
                    treated=treated, lookups=lookups,
                    notes=tuple(read.texts(top["notes"], "notes").tolist()))
    except OverflowError as exc:
        raise PlanFormatError(f"{label}: its layers and settings overflow the performance "
                              f"model: {exc}") from exc
    _check_model(read, top, plan)
    return plan


def _check_schema_and_version(read: _Reader, top: Mapping[str, Any]) -> None:
    if top["schema"] != PLAN_SCHEMA:
        read.fail("schema", f"must be {PLAN_SCHEMA!r}, got {top['schema']!r}")
    if type(top["version"]) is not int or top["version"] not in (1, PLAN_VERSION):
        raise PlanFormatError(f"{read.label}: unsupported version {top['version']!r} "
                              f"(this release reads versions 1 and {PLAN_VERSION})")


def _read_settings(read: _Reader, value: object) -> PlanSettings:
    section = read.section(value, "settings", tuple(_SETTINGS_TYPES))
    fields: dict[str, Any] = {}
    for key, kind in _SETTINGS_TYPES.items():
        where, item = f"settings.{key}", section[key]
        if kind == "positive":
            fields[key] = read.integer(item, where, 1)
        elif kind == "optional_positive":
            fields[key] = None if item is None else read.integer(item, where, 1)
        elif kind == "flag":
            fields[key] = read.flag(item, where)
        elif kind == "weight_dtype":
            fields[key] = None if item is None else read.text(item, where, _WEIGHT_DTYPES)
        elif kind == "ratio":
            fields[key] = _read_ratio(read, item, where)
        else:
            choices = {"algorithm": _ALGORITHMS, "cost": _COSTS, "policy": _POLICIES,
                       "act_dtype": _ACT_DTYPES}.get(kind)
            fields[key] = read.text(item, where, choices)
    settings = PlanSettings(**fields)
    if settings.chunk > settings.sequence:
        read.fail("settings.chunk", f"({settings.chunk}) exceeds settings.sequence "
                                    f"({settings.sequence})")
    expected = -(-settings.sequence // settings.chunk)
    if settings.chunks != expected:
        read.fail("settings.chunks", f"must be ceil(sequence / chunk) = {expected}, "
                                     f"got {settings.chunks}")
    if (settings.chunk_searched and settings.chunk != settings.sequence
            and settings.chunk % settings.granularity):
        read.fail("settings.chunk", f"({settings.chunk}) was searched, so it is a multiple of "
                                    f"settings.granularity ({settings.granularity}) or the "
                                    f"whole sequence ({settings.sequence})")
    return settings


def _read_ratio(read: _Reader, value: object, where: str) -> str:
    """A ratio as the planner writes it: ``str`` of a Fraction that
    :func:`~layerwise_fast.units.parse_fraction` accepts."""
    text = read.text(value, where)
    numerator, slash, denominator = text.partition("/")
    parts = (numerator, denominator) if slash else (numerator, "1")
    if not all(ascii_digits(p) for p in parts):
        read.fail(where, f"must be a positive fraction such as '1' or '3/5', got {text!r}")
    if any(len(p) > _RATIO_DIGITS for p in parts):
        read.fail(where, f"has a term of more than {_RATIO_DIGITS} digits, more than a plan's "
                         f"ratio holds")
    if int(parts[0]) == 0 or int(parts[1]) == 0:
        read.fail(where, f"must be a positive fraction such as '1' or '3/5', got {text!r}")
    try:
        check_ratio(Fraction(int(parts[0]), int(parts[1])), f"field {where!r}", repr(text))
    except ValueError as exc:
        raise PlanFormatError(f"{read.label}: {exc}") from None
    return text


def _read_devices(read: _Reader, value: object,
                  ) -> tuple[tuple[Hardware, ...], IntColumn, IntColumn]:
    section = read.section(value, "devices", ("hardware", "kind", "capacity"))
    profiles = read.items(section["hardware"], "devices.hardware", None)
    if not profiles:
        read.fail("devices.hardware", "must list at least one device")
    distinct = []
    for index, item in enumerate(profiles):
        try:
            distinct.append(Hardware.from_dict(item))
        except (TypeError, ValueError) as exc:
            raise PlanFormatError(f"{read.label}: field 'devices.hardware[{index}]': "
                                  f"{exc}") from exc
    kinds = read.ints(section["kind"], "devices.kind")
    if not kinds.size:
        read.fail("devices.kind", "must list at least one device")
    if int(kinds.max()) >= len(distinct):
        read.fail("devices.kind", f"must index devices.hardware (0..{len(distinct) - 1}), "
                                  f"got {int(kinds.max())}")
    capacities = read.ints(section["capacity"], "devices.capacity", len(kinds), low=1)
    return tuple(distinct), kinds, capacities


def _read_layers(read: _Reader, value: object, settings: PlanSettings,
                 ) -> tuple[npt.NDArray[np.object_], dict[str, IntColumn], LayerTraffic]:
    section = read.section(value, "layers", _LAYER_FIELDS)
    names = read.texts(section["names"], "layers.names")
    n = len(names)
    if not n:
        read.fail("layers.names", "must name at least one layer")
    if not all(names):  # as in a layer table
        read.fail("layers.names", f"must not be empty, got '' at [{names.tolist().index('')}]")
    ints = {f: read.ints(section[f], f"layers.{f}", n) for f in _LAYER_FIELDS[1:]}
    shadow = sum(ints[f].astype(np.float64) for f in ("weights", "activations", "buffers"))
    if float(np.max(shadow)) >= float(INT64_MAX):
        read.fail("layers.weights", "plus activations and buffers exceed the int64 range")
    ratio = Fraction(settings.working_set_ratio)
    try:
        expected = scaled_activations(ints["act_bytes_per_token"],
                                      settings.batch * settings.chunk, ratio)
    except OverflowError as exc:
        read.fail("layers.activations", f"overflow: {exc}")
    read.same(ints["activations"], expected, "layers.activations",
              "batch x chunk x act_bytes_per_token x working_set_ratio")
    columns = {f: ints[f] for f in ("weights", "activations", "buffers")}
    traffic = LayerTraffic(ints["weights"], np.ones(n, dtype=np.int64),
                           ints["act_bytes_per_token"], ints["out_bytes_per_token"],
                           ints["flops_per_token"])
    return names, columns, traffic


def _read_lookups(read: _Reader, value: object, n: int) -> Lookups:
    """The lookups section: ascending layers within ``0..n-1``, tables of at least one
    row (how they agree with the layers is :func:`_check_lookups`)."""
    section = read.section(value, "lookups", _LOOKUP_FIELDS)
    layers = read.ints(section["layers"], "lookups.layers")
    if layers.size and ((np.diff(layers) <= 0).any() or int(layers[-1]) >= n):
        read.fail("lookups.layers", f"must rise strictly within 0..{n - 1}")
    rows = read.ints(section["rows"], "lookups.rows", len(layers), low=1)
    table_bytes = read.ints(section["table_bytes"], "lookups.table_bytes", len(layers))
    return Lookups(layers, rows, table_bytes)


def _check_lookups(read: _Reader, lookups: Lookups, weights: IntColumn, treated: Treatments,
                   settings: PlanSettings) -> None:
    """Each lookup holds the rows one chunk's tokens read of its table: as its
    ``layers.weights``, or, tiled, as its ``treated.weight_bytes``."""
    rows = lookups.gathered(weights, settings.batch * settings.chunk)
    tiled = treated.layers[treated.kind == "tile"]
    expected = rows.copy()
    expected[tiled] = weights[tiled]  # a tiled layer's weights are its tile
    read.same(weights, expected, "layers.weights",
              "min(table_bytes, ceil(table_bytes x batch x chunk / rows)) of its lookup")
    streamed = np.isin(treated.layers, lookups.layers) & (treated.kind == "tile")
    read.same(treated.weight_bytes[streamed], rows[treated.layers[streamed]],
              "treated.weight_bytes of a tiled lookup",
              "min(table_bytes, ceil(table_bytes x batch x chunk / rows))")


def planned_traffic(cached: LayerTraffic, treated: Treatments, lookups: Lookups, chunks: int,
                    tokens: int) -> LayerTraffic:
    """The weights each layer reads from HBM per micro-batch of ``tokens`` tokens, and
    how often, from ``cached`` (each layer's cached weights, read once): whole (a
    quantized layer's after quantization), all of a tiled layer's once per chunk, and a
    lookup's rows for the micro-batch's tokens, once. The planner and the plan reader
    both derive the model's inputs here."""
    weights = cached.weights.copy()
    reads = cached.reads.copy()
    weights[treated.layers] = treated.weight_bytes
    reads[treated.layers[treated.kind == "tile"]] = chunks
    weights = lookups.gathered(weights, tokens)
    reads[lookups.layers] = 1
    return LayerTraffic(weights, reads, cached.act_per_token, cached.out_per_token,
                        cached.flops_per_token)


def _read_treated(read: _Reader, value: object, settings: PlanSettings,
                  weights: IntColumn, lookups: Lookups) -> Treatments:
    section = read.section(value, "treated", _TREATED_FIELDS)
    layers = read.ints(section["layers"], "treated.layers")
    n = len(weights)
    if layers.size and ((np.diff(layers) <= 0).any() or int(layers[-1]) >= n):
        read.fail("treated.layers", f"must rise strictly within 0..{n - 1}")
    allowed = {"error": (), "tile": ("tile",), "quantize": ("int8", "int4")}
    kind = read.texts(section["kind"], "treated.kind", len(layers),
                      allowed[settings.on_oversize] or TREATMENT_NAMES[1:])
    if len(layers) and settings.on_oversize == "error":
        read.fail("treated.layers", "must be empty when settings.on_oversize is 'error'")
    counts = {field: read.ints(section[field], f"treated.{field}", len(layers))
              for field in _TREATED_FIELDS[2:]}
    treated = Treatments(layers, kind, **counts)
    lookup = np.isin(layers, lookups.layers)
    cached = weights[layers]
    quantized = lookup & (kind != "tile")  # cached whole: its whole table, quantized
    cached[quantized] = lookups.table_bytes[np.searchsorted(lookups.layers, layers[quantized])]
    _check_treated(read, treated, cached, settings.chunks, lookup)
    return treated


def _check_treated(read: _Reader, t: Treatments, cached: IntColumn, chunks: int,
                   lookup: npt.NDArray[np.bool_]) -> None:
    """Tiles, tile bytes, original sizes and extra traffic agree with the weights and
    with each other (``lookup``: which treated layers are lookups, whose tiles add no
    traffic)."""
    tiled = t.kind == "tile"
    read.same(t.weight_bytes, np.where(tiled, t.weight_bytes, cached), "treated.weight_bytes",
              "layers.weights (a quantized layer is cached whole)")
    read.same(t.original_bytes, np.where(tiled, t.weight_bytes, t.original_bytes),
              "treated.original_bytes", "weight_bytes (a tiled layer keeps its precision)")
    if (t.original_bytes < t.weight_bytes).any():
        i = int(np.argmax(t.original_bytes < t.weight_bytes))
        read.fail("treated.original_bytes", f"[{i}] is {int(t.original_bytes[i])}, less than the "
                                            f"{int(t.weight_bytes[i])} bytes it was quantized to")
    read.same(t.tile_bytes, cached, "treated.tile_bytes", "layers.weights")
    if (cached < 1).any():
        read.fail("treated.tile_bytes", "must hold sizes >= 1")
    read.same(t.tiles, np.where(tiled, -(-t.weight_bytes // np.maximum(cached, 1)), 1),
              "treated.tiles", "ceil(weight_bytes / tile_bytes)")
    read.same(t.last_tile_bytes, t.weight_bytes - (t.tiles - 1) * cached,
              "treated.last_tile_bytes", "weight_bytes - (tiles - 1) x tile_bytes")
    read.same(t.extra_bytes, np.where(tiled & ~lookup, t.weight_bytes * (chunks - 1), 0),
              "treated.extra_bytes", "weight_bytes x (chunks - 1) for a tiled layer but a "
              "lookup")


def _read_groups(read: _Reader, value: object, settings: PlanSettings,
                 columns: Mapping[str, IntColumn], capacities: IntColumn,
                 ) -> tuple[Partition, IntColumn]:
    section = read.section(value, "groups",
                           ("boundaries", "costs", "device", *_TRAFFIC_FIELDS))
    n = len(columns["weights"])
    cuts = read.ints(section["boundaries"], "groups.boundaries")
    if len(cuts) < 2 or cuts[0] != 0 or cuts[-1] != n or (np.diff(cuts) <= 0).any():
        read.fail("groups.boundaries", f"must rise strictly from 0 to the layer count {n}")
    k = len(cuts) - 1
    costs = read.ints(section["costs"], "groups.costs", k)
    read.same(costs, group_costs(columns, cuts, settings.cost), "groups.costs",
              f"the {settings.cost!r} cost of the group's layers")
    device = read.ints(section["device"], "groups.device", k)
    steps = np.diff(device)
    if device[0] != 0 or ((steps != 0) & (steps != 1)).any() \
            or int(device[-1]) != len(capacities) - 1:
        read.fail("groups.device", f"must map the groups to devices 0..{len(capacities) - 1} "
                                   f"in order")
    over = costs > capacities[device]
    if over.any():
        g = int(np.argmax(over))
        read.fail("groups.costs", f"[{g}] = {int(costs[g])} exceeds the capacity "
                                  f"{int(capacities[device[g]])} of device {int(device[g])}")
    for field in _TRAFFIC_FIELDS:
        read.ints(section[field], f"groups.{field}", k)
    partition = Partition(cuts, costs, int(costs.max()), int(np.argmax(costs)),
                          capacity=None if settings.mixed else int(capacities[0]),
                          algorithm=_partitioner(settings),
                          cost=settings.cost)
    return partition, device


def _check_device_use(read: _Reader, settings: PlanSettings, profiles: int, kinds: IntColumn,
                      group_device: IntColumn) -> None:
    """The devices agree with how they were asked for: a list (``mixed``) puts each group
    on the next listed device; one profile serves every device; shared devices are the
    requested count, or one per group where there are fewer groups."""
    devices, k = len(kinds), len(group_device)
    if settings.mixed:
        if settings.share_devices or settings.devices_requested is None:
            read.fail("settings.mixed", "(a list of devices) goes with a devices_requested "
                                        "count (the list's length) and no share_devices")
        if profiles != devices or not np.array_equal(kinds, np.arange(devices)):
            read.fail("devices.kind", "must be 0, 1, 2, ...: a list of devices gives each "
                                      "device its own entry in devices.hardware")
    elif profiles != 1 or kinds.any():
        read.fail("devices.hardware", f"must hold one profile, used by every device, since "
                                      f"settings.mixed is false; got {profiles}")
    if not settings.share_devices:
        if devices != k:
            read.fail("groups.device", f"must give each of the {k} groups a device of its own "
                                       f"(settings.share_devices is false)")
        return
    if settings.devices_requested is None:
        read.fail("settings.share_devices", "applies to a devices_requested count")
    expected = min(k, settings.devices_requested)
    if devices != expected:
        read.fail("devices.kind", f"lists {devices} devices, but {k} groups sharing "
                                  f"{settings.devices_requested} devices use {expected}")


def _partitioner(settings: PlanSettings) -> str:
    """The algorithm a plan's Partition reports: the cut-aware mode is the stage-time dp."""
    return "dp" if settings.algorithm == "stage_time" else settings.algorithm


def _check_model(read: _Reader, top: Mapping[str, Any], plan: Plan) -> None:
    """The stored integers and totals agree with the model run on the rest."""
    groups = top["groups"]
    for field in _TRAFFIC_FIELDS:
        read.same(np.array(groups[field], dtype=np.int64), getattr(plan.performance, field),
                  f"groups.{field}", "the performance model")
    section = read.section(top["cuts"], "cuts", _CUT_FIELDS)
    count = plan.device_count - 1
    for field in _CUT_FIELDS:
        read.same(read.ints(section[field], f"cuts.{field}", count),
                  getattr(plan.cuts, field), f"cuts.{field}", "the device boundaries")
    totals = read.section(top["totals"], "totals", (*_TOTAL_FIELDS, "bottleneck"))
    for field, expected in _totals(plan).items():
        got = read.number(totals[field], f"totals.{field}")
        if not math.isclose(got, expected, rel_tol=TOTALS_TOLERANCE, abs_tol=1e-300):
            read.fail(f"totals.{field}", f"is {got!r} but the performance model gives "
                                         f"{expected!r}")
    if read.text(totals["bottleneck"], "totals.bottleneck") != plan.timeline.bottleneck:
        read.fail("totals.bottleneck", f"is {totals['bottleneck']!r} but the timeline's "
                                       f"slowest resource is {plan.timeline.bottleneck!r}")
