"""Describe a torch module as a :class:`~layerwise_fast.layers.LayerTable`, weights unread.

:func:`describe_torch` (and ``LayerTable.from_torch``, which returns its table) runs the
module's forward once on torch's ``meta`` device: tensors there have shapes and dtypes
but no storage, so nothing is loaded, allocated or downloaded, and a module built under
``torch.device("meta")`` (or accelerate's ``init_empty_weights``) works as well as one
with real weights, whose tensors are swapped for meta ones for the call and left as
they were (as is any attribute the forward sets on its modules, such as a buffer it
registers or replaces or a cache length it records; changes made inside objects, such
as a list it appends to, are not undone). A parametrized module
(``torch.nn.utils.parametrize``) is one row: its parametrizations are its weights.
Forward hooks record which modules run, in which order, and the shapes of
their outputs.

Rows. The module is opened from the top; a submodule becomes one row, kept whole, when

- its class is named in ``no_split`` (by class name or class);
- it has no submodules (a leaf: ``Linear``, ``LayerNorm``, ``Embedding``, ...);
- at ``granularity="block"``, it is an element of a container (``ModuleList``,
  ``Sequential``, ``ModuleDict``): the repeated blocks of a network;
- it owns parameters or buffers itself besides having submodules (where its forward
  uses them is not visible to hooks, so it is not cut).

Otherwise it is opened and its children are considered in turn. Rows are ordered by
their first call in the forward pass; a row with tensors that the example forward never
calls goes last (listed in :attr:`TorchLayers.uncalled`); one without tensors that never
runs is left out. Parameters and buffers held directly by the top module are added to
the first row (their keys to its device-map keys): where the top-level forward uses
them is not visible either.

Columns, per row:

- ``name``: the module path, as ``named_modules()`` spells it (a module registered under
  several paths has the others as extra device-map keys); ``kind``: its class name,
  except for an ``nn.Embedding`` or subclass: ``Embedding`` (a lookup) where its
  parameters are only its table (a scaled word embedding among them), ``<class> with
  other tensors`` where the row holds more (top-level parameters join the first row),
  counted whole.
- ``params``: parameters it owns. A parameter shared by several rows (tied weights) is
  owned by the first of them to run and counted there once; each later row that
  shares it records its size in ``tied_params`` (the working set still counts those
  bytes as weights it reads), and :attr:`TorchLayers.tied` lists the rows sharing it.
- ``weight_dtype``: the precision of its parameters (float32 ``fp32``, float16
  ``fp16``, bfloat16 ``bf16``, float8 ``fp8``, int8 ``int8``), or the ``weight_dtype``
  argument for every row. A row without parameters takes the precision most of the
  module's parameters have.
- ``vector_params``: of ``params``, those in tensors of at most one dimension;
  ``out_channels``: the first dimension of each of its (owned or tied) tensors of two
  or more dimensions (output features, output channels, embedding rows).
- ``buffer_bytes``: the bytes of the buffers it holds (``register_buffer``: running
  statistics, masks, caches), each at its own dtype. A buffer registered in several
  rows counts in each: each reads it, and accelerate gives each device its own copy.
  Operator workspace is not measured; add it to the table where it matters.
- ``act_elems_per_token``: the elements of its output (every tensor in a returned
  tuple, list or dict; the largest over its calls) divided by the example's tokens and
  rounded up. With ``activations="peak"`` it is the largest output of the row or of any
  module running inside it, the widest intermediate a block holds.
- ``flops_per_token``: 0 (not measured).

Tokens. The first tensor of the example inputs (positional arguments first, then
keyword arguments, in order) counts them: all its elements for an integer tensor (token
ids, ``(batch, sequence)``), all but the last dimension for a floating tensor
(``(batch, sequence, hidden)`` or ``(batch, features)``). Pass ``tokens`` where that rule
does not fit (images, several streams).

Parameter bytes agree with accelerate's ``compute_module_sizes``: for a row at 16 or 32
bits, ``params x bytes per parameter + buffer_bytes`` is accelerate's size of that
module, when a tied parameter's owner is also the module accelerate names first.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from .errors import LayerTooLargeError
from .exports import Device, PartitionLike, device_map, pipeline_split_spec
from .layers import WEIGHT_DTYPES, LayerTable
from .units import ByteCount, parse_bytes
from .workingset import WorkingSet

__all__ = [
    "ACTIVATIONS",
    "INSTALL_HINT",
    "TORCH_GRANULARITIES",
    "BlockTooLargeError",
    "ModuleTraceError",
    "SplitInsideModuleWarning",
    "TorchLayers",
    "describe_torch",
]

TORCH_GRANULARITIES: Final[tuple[str, ...]] = ("leaf", "block")
"""How far :func:`describe_torch` opens a module (see the module docstring)."""
ACTIVATIONS: Final[tuple[str, ...]] = ("output", "peak")
"""What ``act_elems_per_token`` counts: a row's output, or the largest output inside it."""
INSTALL_HINT: Final[str] = 'pip install "layerwise_fast[torch]"'
"""The command that installs the optional torch extra."""

_PRECISIONS: Final[Mapping[str, str]] = {
    "torch.float32": "fp32", "torch.float16": "fp16", "torch.bfloat16": "bf16",
    "torch.float8_e4m3fn": "fp8", "torch.float8_e4m3fnuz": "fp8",
    "torch.float8_e5m2": "fp8", "torch.float8_e5m2fnuz": "fp8", "torch.int8": "int8",
}
_REASONS: Final[Mapping[str, str]] = {
    "no_split": "kept whole because no_split names {kind!r}",
    "leaf": "a leaf module, which cannot be cut",
    "block": "kept whole at granularity='block' (granularity='leaf' opens it)",
    "owns tensors": "kept whole because it owns tensors besides its submodules",
}


class SplitInsideModuleWarning(UserWarning):
    """A device map puts two rows of one module's forward on different devices."""


class ModuleTraceError(ValueError):
    """The module's forward cannot run on the meta device with the example inputs."""


class BlockTooLargeError(LayerTooLargeError):
    """A row that cannot be cut has a working set above the capacity.

    Attributes (besides those of :class:`LayerTooLargeError`):
        name: the row's module path.
        kind: its class name.
        reason: why it is one row: ``"no_split"``, ``"leaf"``, ``"block"`` or
            ``"owns tensors"``.
    """

    def __init__(self, layer: int, nbytes: int, capacity: int, name: str, kind: str,
                 reason: str) -> None:
        super().__init__(layer, nbytes, capacity)
        self.name = name
        self.kind = kind
        self.reason = reason
        why = _REASONS.get(reason, reason).format(kind=kind)
        self.args = (
            f"layer {self.layer} ({name!r}, {kind}, {why}) needs {self.nbytes} bytes, "
            f"more than the capacity of {self.capacity} bytes (over by "
            f"{self.nbytes - self.capacity}); no plan can cut inside it",)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.layer, self.nbytes, self.capacity, self.name, self.kind,
                             self.reason))


@dataclass(frozen=True)
class TorchLayers:
    """A torch module described row by row, with what the exports need.

    Attributes:
        table: the rows (see the module docstring for the columns).
        keys: per row, its device-map keys: the module path, then (first row only) the
            top module's own parameters and buffers.
        reasons: per row, why it is one row: ``"no_split"``, ``"leaf"``, ``"block"`` or
            ``"owns tensors"``.
        calls: per row, how often the example forward called it (0: never).
        tied: per set of rows sharing a parameter, their names, the owner first.
        uncalled: rows the example forward never called (placed last).
        tokens: the tokens the example inputs hold (the divisor of the activations).
        enclosing: per row, the modules above it that run their children in a forward
            of their own (not a ``ModuleList``, ``ModuleDict`` or ``Sequential``) and are,
            or lie inside, an element of such a container: the repeated blocks of a
            network and their parts, outermost first.
    """

    table: LayerTable
    keys: tuple[tuple[str, ...], ...]
    reasons: tuple[str, ...]
    calls: tuple[int, ...]
    tied: tuple[tuple[str, ...], ...]
    uncalled: tuple[str, ...]
    tokens: int
    enclosing: tuple[tuple[str, ...], ...] = ()

    @property
    def names(self) -> list[str]:
        """The rows' module paths, in execution order."""
        return list(self.table.name.tolist())

    def device_map(self, partition: PartitionLike,
                   devices: int | Sequence[Device] | None = None, *,
                   offload: Mapping[str, str] | None = None) -> dict[str, Device]:
        """accelerate's ``device_map`` for a partition of these rows (tied rows kept
        together); see :func:`layerwise_fast.exports.device_map`.

        Warns (:class:`SplitInsideModuleWarning`) where consecutive rows on different
        devices meet in one of their :attr:`enclosing` modules (the innermost module
        holding both runs them in its own forward): accelerate moves the inputs of each
        mapped module, not the tensors that forward combines (a residual add), so such
        a map can fail at run time. Rows that meet between blocks (in a container, or
        in a module outside every container) do not warn. ``no_split`` or
        ``granularity="block"`` keeps blocks whole.
        """
        mapping = device_map(self.keys, partition, devices, offload=offload, tied=self.tied)
        self._warn_splits_inside_modules(mapping)
        return mapping

    def _warn_splits_inside_modules(self, mapping: Mapping[str, Device]) -> None:
        if not self.enclosing:
            return
        for row in range(1, len(self.keys)):
            first, second = self.keys[row - 1][0], self.keys[row][0]
            before, after = mapping[first], mapping[second]
            meeting = _common_module(first, second)
            if before != after and meeting in self.enclosing[row]:
                warnings.warn(
                    f"the device map puts {first!r} on {before!r} and {second!r} on "
                    f"{after!r}, both inside {meeting!r}, whose forward may combine their "
                    f"tensors (a residual add) on one device; keep it whole (no_split=[its "
                    f"class] or granularity='block') or check that it runs",
                    SplitInsideModuleWarning, stacklevel=3)
                return

    def pipeline_split_spec(self, partition: PartitionLike) -> dict[str, Any]:
        """The split spec for ``torch.distributed.pipelining.pipeline``; see
        :func:`layerwise_fast.exports.pipeline_split_spec`.

        Raises:
            ValueError: as there, or a group begins at a row the example forward called
                other than once: the pipeline would not have one stage per group.
        """
        spec = pipeline_split_spec(self.keys, partition)
        first_key = {keys[0]: row for row, keys in enumerate(self.keys)}
        for name in spec:
            calls = self.calls[first_key[name]]
            if calls != 1:
                how = "never called" if calls == 0 else f"called {calls} times"
                raise ValueError(
                    f"a group begins at {name!r}, which the example forward {how}: a split "
                    f"there gives {'no' if calls == 0 else calls} stage boundar"
                    f"{'ies' if calls != 1 else 'y'}, not one; cut elsewhere")
        return spec

    def check_fits(self, sizes: WorkingSet, capacity: ByteCount) -> None:
        """Raise :class:`BlockTooLargeError` for the first row over ``capacity``.

        Args:
            sizes: the rows' working sets (``working_set(self.table, ...)``).
            capacity: bytes, in any :func:`~layerwise_fast.units.parse_bytes` form.

        A single row costs the same under both cost models (its weights, activations
        and buffers), so a row over the capacity makes every partition infeasible; the
        error says which module it is and why it is not cut.

        Raises:
            TypeError: ``sizes`` is not a WorkingSet.
            ValueError: ``sizes`` has a different number of rows, or a bad capacity.
            BlockTooLargeError: a row alone exceeds the capacity.
        """
        limit = parse_bytes(capacity)
        if not isinstance(sizes, WorkingSet):
            raise TypeError(f"sizes must be a WorkingSet, got {type(sizes).__name__}")
        if len(sizes) != len(self.table):
            raise ValueError(f"sizes has {len(sizes)} rows but the module has "
                             f"{len(self.table)}")
        over = np.flatnonzero(sizes.totals() > limit)
        if over.size:
            row = int(over[0])
            raise BlockTooLargeError(row, int(sizes.totals()[row]), limit,
                                     self.table.name[row], self.table.kind[row],
                                     self.reasons[row])


def describe_torch(
    module: Any,
    example_inputs: Any,
    *,
    granularity: str = "leaf",
    no_split: Iterable[str | type] = (),
    weight_dtype: str | None = None,
    tokens: int | None = None,
    activations: str = "output",
) -> TorchLayers:
    """Run ``module`` once on the meta device and describe it row by row.

    Args:
        module: a ``torch.nn.Module``, on any device (its tensors are not read).
        example_inputs: the forward's arguments: a tensor (the one positional argument),
            a tuple or list (positional arguments) or a dict (keyword arguments; wrap a
            dict that is itself the argument in a tuple). Only shapes and dtypes are used.
        granularity: ``"leaf"`` or ``"block"`` (see the module docstring).
        no_split: classes, or class names, never cut inside: each such module is one row.
        weight_dtype: the precision of every row (planning a cast), one of
            :data:`~layerwise_fast.layers.WEIGHT_DTYPES`; ``None`` reads each row's.
        tokens: the tokens the example inputs hold, overriding the rule in the module
            docstring (positive int).
        activations: ``"output"`` (each row's output) or ``"peak"`` (the largest output
            inside the row).

    Raises:
        ImportError: torch is not installed (the message gives the install command).
        TypeError: ``module`` is not a torch module, or an argument has the wrong type.
        ValueError: an unknown granularity, activations or precision; a ``no_split``
            class the module does not contain; a module with nothing to split; example
            inputs without a tensor (and no ``tokens``); parameters of a precision the
            table cannot hold (pass ``weight_dtype``), or of mixed precisions in a row.
        ModuleTraceError: the forward fails on the meta device (the message names the
            innermost module running and the original error).
    """
    torch = _import_torch()
    _check_options(torch, module, granularity, weight_dtype, activations)
    args, kwargs = _split_inputs(torch, example_inputs)
    token_count = _count_tokens(torch, args, kwargs, tokens)
    rows = _select_rows(torch, module, granularity, _no_split_names(module, no_split))
    _trace(torch, module, rows, args, kwargs)
    ordered, uncalled = _execution_order(module, rows)
    _assign_tensors(module, ordered)
    _add_alias_keys(module, ordered)
    tied = _tied_sets(ordered)
    table = _table(ordered, [_row_kind(torch, row) for row in ordered], token_count,
                   weight_dtype, activations)
    return TorchLayers(
        table=table,
        keys=tuple(tuple(row.keys) for row in ordered),
        reasons=tuple(row.reason for row in ordered),
        calls=tuple(row.calls for row in ordered),
        tied=tied,
        uncalled=tuple(row.name for row in uncalled),
        tokens=token_count,
        enclosing=tuple(row.enclosing for row in ordered),
    )


# -- arguments -------------------------------------------------------------------------


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as error:
        raise ImportError(f"LayerTable.from_torch needs torch, an optional extra of "
                          f"layerwise_fast: {INSTALL_HINT}") from error
    return torch


def _check_options(torch: Any, module: Any, granularity: object, weight_dtype: object,
                   activations: object) -> None:
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    if granularity not in TORCH_GRANULARITIES:
        raise ValueError(f"granularity must be one of {TORCH_GRANULARITIES}, "
                         f"got {granularity!r}")
    if weight_dtype is not None and weight_dtype not in WEIGHT_DTYPES:
        raise ValueError(f"weight_dtype must be one of {WEIGHT_DTYPES} or None, "
                         f"got {weight_dtype!r}")
    if activations not in ACTIVATIONS:
        raise ValueError(f"activations must be one of {ACTIVATIONS}, got {activations!r}")


def _split_inputs(torch: Any, example_inputs: object) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """(positional, keyword) arguments, with every tensor replaced by a meta tensor."""
    if isinstance(example_inputs, torch.Tensor):
        return (_to_meta(torch, example_inputs),), {}
    if isinstance(example_inputs, (tuple, list)):
        return tuple(_to_meta(torch, value) for value in example_inputs), {}
    if isinstance(example_inputs, Mapping):
        for key in example_inputs:
            if not isinstance(key, str):
                raise TypeError(f"example_inputs as a dict holds keyword arguments; "
                                f"key {key!r} is not a str")
        return (), {key: _to_meta(torch, value) for key, value in example_inputs.items()}
    raise TypeError(f"example_inputs must be a tensor, a tuple or list of positional "
                    f"arguments or a dict of keyword arguments, "
                    f"got {type(example_inputs).__name__}")


def _to_meta(torch: Any, value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value if value.is_meta else torch.empty_like(value, device="meta")
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a namedtuple
        return type(value)(*(_to_meta(torch, item) for item in value))
    if isinstance(value, (tuple, list)):
        return type(value)(_to_meta(torch, item) for item in value)
    if isinstance(value, dict):
        return {key: _to_meta(torch, item) for key, item in value.items()}
    return value


def _tensors(torch: Any, value: Any) -> Iterable[Any]:
    """Every tensor in a nest of tuples, lists and mappings, in order."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from _tensors(torch, item)
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _tensors(torch, item)


def _count_tokens(torch: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any],
                  tokens: object) -> int:
    if tokens is not None:
        if isinstance(tokens, (bool, np.bool_)) or not isinstance(tokens, (int, np.integer)):
            raise TypeError(f"tokens must be an int, got {type(tokens).__name__} {tokens!r}")
        if tokens <= 0:
            raise ValueError(f"tokens must be positive, got {tokens}")
        return int(tokens)
    first = next(iter(_tensors(torch, (args, kwargs))), None)
    if first is None:
        raise ValueError("the example inputs hold no tensor to count tokens from: "
                         "pass tokens=")
    shape = tuple(first.shape)
    floating = first.is_floating_point() or first.is_complex()
    count = int(math.prod(shape[:-1] if floating else shape))
    if count <= 0:
        raise ValueError(f"the first example input, of shape {shape}, holds no tokens: "
                         f"pass tokens= or a non-empty input")
    return count


def _no_split_names(module: Any, no_split: object) -> frozenset[str]:
    """Class names to keep whole, each checked to occur in the module."""
    if isinstance(no_split, (str, bytes)) or not isinstance(no_split, Iterable):
        raise TypeError(f"no_split must be a collection of classes or class names, "
                        f"got {type(no_split).__name__} {no_split!r}")
    present = {type(sub).__name__ for sub in module.modules()}
    names = set()
    for entry in no_split:
        name = entry.__name__ if isinstance(entry, type) else entry
        if not isinstance(name, str):
            raise TypeError(f"no_split holds {type(entry).__name__} {entry!r}, "
                            f"not a class or class name")
        if name not in present:
            raise ValueError(f"no_split names {name!r}, which is no class in the module "
                             f"(its classes: {', '.join(sorted(present))})")
        names.add(name)
    return frozenset(names)


# -- rows ------------------------------------------------------------------------------


@dataclass(eq=False)
class _Row:
    """One row while it is being measured."""

    name: str
    module: Any
    reason: str
    keys: list[str] = field(default_factory=list)
    enclosing: tuple[str, ...] = ()
    first_call: int = -1
    calls: int = 0
    output_elems: int = 0
    peak_elems: int = 0
    params: int = 0
    vector_params: int = 0
    tied_params: int = 0
    out_channels: int = 0
    buffer_bytes: int = 0
    dtypes: set[str] = field(default_factory=set)
    tied_to: list[_Row] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.keys = [self.name]


def _common_module(first: str, second: str) -> str:
    """The path of the innermost module holding both module paths ("" for the top)."""
    common = []
    for a, b in zip(first.split("."), second.split(".")):
        if a != b:
            break
        common.append(a)
    return ".".join(common)


def _select_rows(torch: Any, root: Any, granularity: str, no_split: frozenset[str]) -> list[_Row]:
    """The rows in registration order (see the module docstring for the rule)."""
    root_kind = type(root).__name__
    if root_kind in no_split:
        raise ValueError(f"no_split names {root_kind!r}, the class of the module itself: "
                         f"it would be one row, with nothing to split")
    if not any(True for _ in root.children()):
        raise ValueError(f"the module ({root_kind}) has no submodules: there is nothing "
                         f"to split into layers")
    containers = (torch.nn.ModuleList, torch.nn.Sequential, torch.nn.ModuleDict)
    rows: list[_Row] = []
    seen: set[int] = {id(root)}

    def visit(prefix: str, parent: Any, enclosing: tuple[str, ...], in_block: bool) -> None:
        in_container = isinstance(parent, containers)
        if in_block and not in_container:
            enclosing = (*enclosing, prefix)  # a block, or a part of one, with a forward
        for child_name, child in parent.named_children():
            if id(child) in seen:
                continue
            seen.add(id(child))
            path = f"{prefix}.{child_name}" if prefix else child_name
            reason = _whole_reason(torch, child, granularity, in_container, no_split)
            if reason:
                rows.append(_Row(path, child, reason, enclosing=enclosing))
            else:
                visit(path, child, enclosing, in_block or in_container)

    visit("", root, (), False)
    return rows


def _whole_reason(torch: Any, module: Any, granularity: str, in_container: bool,
                  no_split: frozenset[str]) -> str:
    """Why ``module`` is one row, or ``""`` to open it."""
    if type(module).__name__ in no_split:
        return "no_split"
    if not any(True for _ in module.children()):
        return "leaf"
    if granularity == "block" and in_container:
        return "block"
    if _owns_tensors(module) or torch.nn.utils.parametrize.is_parametrized(module):
        return "owns tensors"  # a parametrization's tensors are the module's own
    return ""


def _owns_tensors(module: Any, *, recurse: bool = False) -> bool:
    return any(True for _ in module.parameters(recurse=recurse)) or any(
        True for _ in module.buffers(recurse=recurse))


# -- the traced forward ----------------------------------------------------------------

# The per-module tables a forward can change in place (register_buffer and friends).
_MODULE_TABLES: Final[tuple[str, ...]] = ("_parameters", "_buffers", "_modules")


class _Recorder:
    """Forward hooks that record call order and output sizes per row."""

    def __init__(self, torch: Any, root: Any, rows: list[_Row]) -> None:
        self._torch = torch
        self._row_of = {id(row.module): row for row in rows}
        self._paths = {id(sub): path for path, sub in root.named_modules()}
        self._running: list[Any] = []
        self._active_rows: list[_Row] = []
        self._calls = 0
        self._handles = [handle for path, sub in root.named_modules()
                         if "parametrizations" not in path.split(".")
                         for handle in (sub.register_forward_pre_hook(self._before),
                                        sub.register_forward_hook(self._after))]

    def _before(self, module: Any, args: Any) -> None:
        self._running.append(module)
        row = self._row_of.get(id(module))
        if row is not None:
            if row.first_call < 0:
                row.first_call = self._calls
                self._calls += 1
            row.calls += 1
            self._active_rows.append(row)

    def _after(self, module: Any, args: Any, output: Any) -> None:
        self._running.pop()
        elems = sum(int(tensor.numel()) for tensor in _tensors(self._torch, output))
        row = self._row_of.get(id(module))
        if row is not None and self._active_rows and self._active_rows[-1] is row:
            row.output_elems = max(row.output_elems, elems)
            self._active_rows.pop()
        if self._active_rows:
            active = self._active_rows[-1]
            active.peak_elems = max(active.peak_elems, elems)
        if row is not None:
            row.peak_elems = max(row.peak_elems, elems)

    def where(self) -> str:
        """The innermost module that was running, for error messages."""
        path = self._paths.get(id(self._running[-1]), "") if self._running else ""
        if not path:
            return "in the top-level forward"
        return f"inside module {path!r} ({type(self._running[-1]).__name__})"

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


def _trace(torch: Any, root: Any, rows: list[_Row], args: tuple[Any, ...],
           kwargs: dict[str, Any]) -> None:
    """Run the forward on meta tensors with the hooks in place; the module is unchanged."""
    _refuse_lazy(torch, root)
    recorder = _Recorder(torch, root, rows)
    saved = _module_state(root)
    try:
        with torch.no_grad(), torch.device("meta"):
            if _all_meta(root):
                root(*args, **kwargs)
            else:
                torch.func.functional_call(root, _meta_state(torch, root), args, kwargs,
                                           tie_weights=True, strict=False)
    except Exception as error:
        raise ModuleTraceError(
            f"cannot run {type(root).__name__}.forward on the meta device with the example "
            f"inputs ({recorder.where()}): {type(error).__name__}: {error}. Meta tensors "
            f"have shapes but no values, so code that reads values (.item(), .tolist(), "
            f"'if tensor:', shapes that depend on data) cannot run there; check the "
            f"example inputs, or describe such a model with LayerTable.from_records") from error
    finally:
        recorder.remove()
        _restore_module_state(saved)


def _module_state(root: Any) -> list[tuple[Any, dict[str, Any], list[dict[str, Any]]]]:
    """Each module's attributes and the contents of its tensor and submodule tables."""
    return [(module, dict(module.__dict__),
             [dict(module.__dict__[table]) for table in _MODULE_TABLES])
            for module in root.modules()]


def _restore_module_state(saved: list[tuple[Any, dict[str, Any], list[dict[str, Any]]]]) -> None:
    """Undo what the traced forward set on its modules (a buffer registered or replaced
    on the meta device, a cache length): every attribute and table entry is put back.
    Changes made inside objects (a list the forward appends to) are not undone."""
    for module, attributes, tables in saved:
        if not _same_entries(module.__dict__, attributes):
            module.__dict__.clear()
            module.__dict__.update(attributes)
        for table, contents in zip(_MODULE_TABLES, tables):
            current = module.__dict__[table]
            if not _same_entries(current, contents):
                current.clear()
                current.update(contents)


def _same_entries(current: Mapping[str, Any], saved: Mapping[str, Any]) -> bool:
    """The same keys, in order, holding the very same objects (tensors are compared by
    identity: ``==`` on them compares elements)."""
    return list(current) == list(saved) and all(current[key] is saved[key] for key in saved)


def _refuse_lazy(torch: Any, root: Any) -> None:
    """Lazy modules have no shapes until a real forward: say so, before tracing."""
    for name, tensor in (*root.named_parameters(), *root.named_buffers()):
        if torch.nn.parameter.is_lazy(tensor):
            raise ModuleTraceError(
                f"{name!r} is uninitialized (a lazy module such as LazyLinear): its shape "
                f"is known only after one real forward; run the module once on real "
                f"inputs, or initialize it, before describing it")


def _all_meta(root: Any) -> bool:
    return all(tensor.is_meta for tensor in root.parameters()) and all(
        tensor.is_meta for tensor in root.buffers())


def _meta_state(torch: Any, root: Any) -> dict[str, Any]:
    """Meta stand-ins for every parameter and buffer (tied ones under their first name)."""
    state = {name: torch.empty_like(tensor, device="meta")
             for name, tensor in root.named_parameters()}
    state.update((name, torch.empty_like(tensor, device="meta"))
                 for name, tensor in root.named_buffers())
    return state


def _execution_order(root: Any, rows: list[_Row]) -> tuple[list[_Row], list[_Row]]:
    """(rows in order of first call followed by uncalled rows with tensors, those uncalled)."""
    called = sorted((row for row in rows if row.calls), key=lambda row: row.first_call)
    if not called:
        raise ModuleTraceError(f"the forward of {type(root).__name__} called none of its "
                               f"submodules: there are no layers to describe")
    uncalled = [row for row in rows if not row.calls and _owns_tensors(row.module, recurse=True)]
    return called + uncalled, uncalled


# -- tensors ---------------------------------------------------------------------------


def _assign_tensors(root: Any, ordered: list[_Row]) -> None:
    """Give each parameter and buffer to the first row (in order) that holds it."""
    first = ordered[0]
    first.keys += [name for name, _ in root.named_parameters(recurse=False)]
    first.keys += [name for name, _ in root.named_buffers(recurse=False)]
    owner: dict[int, _Row] = {}
    for row in ordered:
        row_params = [p for _, p in row.module.named_parameters(remove_duplicate=False)]
        row_buffers = list(row.module.buffers())
        if row is first:
            row_params += list(root.parameters(recurse=False))
            row_buffers += list(root.buffers(recurse=False))
        for param in _unique(row_params):
            _add_parameter(row, param, owner)
        for buffer in _unique(row_buffers):  # a shared buffer counts in each row
            row.buffer_bytes += int(buffer.numel()) * buffer.dtype.itemsize


def _add_alias_keys(root: Any, ordered: list[_Row]) -> None:
    """Give each row the other paths of its module as keys (a module registered under two
    names, such as one block placed four times in a ModuleList), so that a device map
    reaches its tensors under every path; a path inside or around another key stays out."""
    paths: dict[int, list[str]] = {}
    for path, module in root.named_modules(remove_duplicate=False):
        if path:
            paths.setdefault(id(module), []).append(path)
    taken = {key for row in ordered for key in row.keys}
    for row in ordered:
        for path in paths.get(id(row.module), ()):
            if path not in taken and not _overlaps(path, taken):
                row.keys.append(path)
                taken.add(path)


def _overlaps(path: str, keys: set[str]) -> bool:
    """Whether ``path`` lies inside one of ``keys`` or holds one."""
    parts = path.split(".")
    if any(".".join(parts[:end]) in keys for end in range(1, len(parts))):
        return True
    return any(key.startswith(path + ".") for key in keys)


def _unique(tensors: list[Any]) -> list[Any]:
    """The tensors without repeats (by identity), in order."""
    return list({id(tensor): tensor for tensor in tensors}.values())


def _add_parameter(row: _Row, param: Any, owner: dict[int, _Row]) -> None:
    numel = int(param.numel())
    if param.dim() >= 2:
        row.out_channels += int(param.shape[0])
    row.dtypes.add(str(param.dtype))
    holder = owner.get(id(param))
    if holder is None:
        owner[id(param)] = row
        row.params += numel
        if param.dim() <= 1:
            row.vector_params += numel
    else:
        row.tied_params += numel
        if row not in holder.tied_to:
            holder.tied_to.append(row)


def _tied_sets(ordered: list[_Row]) -> tuple[tuple[str, ...], ...]:
    return tuple((row.name, *(other.name for other in row.tied_to))
                 for row in ordered if row.tied_to)


def _precision(dtype: str, where: str) -> str:
    if dtype not in _PRECISIONS:
        raise ValueError(f"{where} holds {dtype.removeprefix('torch.')} parameters, which a "
                         f"layer table cannot record (it records float32, float16, "
                         f"bfloat16, float8 and int8); pass weight_dtype= to plan for a cast")
    return _PRECISIONS[dtype]


def _row_precision(row: _Row) -> str | None:
    """The precision of the row's parameters, or None for a row without any."""
    where = f"row {row.name!r} ({type(row.module).__name__})"
    precisions = sorted({_precision(dtype, where) for dtype in row.dtypes})
    if len(precisions) > 1:
        raise ValueError(f"{where} mixes parameter precisions {', '.join(precisions)}; a "
                         f"row has one: pass weight_dtype=, or name a smaller class in "
                         f"no_split")
    return precisions[0] if precisions else None


def _precisions(ordered: list[_Row], weight_dtype: str | None) -> list[str]:
    """Each row's precision; rows without parameters take the most common one."""
    if weight_dtype is not None:
        return [weight_dtype] * len(ordered)
    found = [_row_precision(row) for row in ordered]
    weight: dict[str, int] = {}
    for row, precision in zip(ordered, found):
        if precision is not None:
            weight[precision] = weight.get(precision, 0) + row.params + row.tied_params
    default = max(weight, key=lambda name: weight[name]) if weight else "fp32"
    return [precision or default for precision in found]


def _row_kind(torch: Any, row: _Row) -> str:
    """The row's class name; for an ``nn.Embedding`` (or subclass), ``Embedding`` where
    its parameters are nothing but its table (a lookup, :mod:`.workingset`), else its
    class name with `` with other tensors`` (counted whole, no lookup). A parametrized
    table is computed whole at each call, so it keeps its class name."""
    module = row.module
    name = type(module).__name__
    if (not isinstance(module, torch.nn.Embedding)
            or torch.nn.utils.parametrize.is_parametrized(module)):
        return name
    table = module.num_embeddings * module.embedding_dim  # not .weight: no computation
    if row.params + row.tied_params == table and row.out_channels == module.num_embeddings:
        return "Embedding"
    return f"{name} with other tensors"


def _table(ordered: list[_Row], kinds: list[str], tokens: int, weight_dtype: str | None,
           activations: str) -> LayerTable:
    def column(values: Iterable[int]) -> np.ndarray[Any, np.dtype[np.int64]]:
        return np.array(list(values), dtype=np.int64)

    elems = [row.peak_elems if activations == "peak" else row.output_elems for row in ordered]
    return LayerTable(
        name=[row.name for row in ordered],
        kind=kinds,
        params=column(row.params for row in ordered),
        weight_dtype=_precisions(ordered, weight_dtype),
        act_elems_per_token=column(-(-count // tokens) for count in elems),
        buffer_bytes=column(row.buffer_bytes for row in ordered),
        flops_per_token=column(0 for _ in ordered),
        out_channels=column(row.out_channels for row in ordered),
        vector_params=column(row.vector_params for row in ordered),
        tied_params=column(row.tied_params for row in ordered),
    )
