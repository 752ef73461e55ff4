"""Hand a partition to the engine that runs it: accelerate, torch pipelining, DeepSpeed.

Every export here works on plain data: the layers' module names in execution order (one
entry per layer of the partition) and the partition itself, as a
:class:`~layerwise_fast.result.Partition` or its ``boundaries`` (``k + 1`` layer indices
from 0 to ``n``; group ``g`` holds layers ``boundaries[g]`` up to, not including,
``boundaries[g + 1]``).

A layer's entry in ``names`` is a module path as ``model.named_modules()`` spells it
(``"transformer.h.3"``), or a tuple of such keys when one layer covers several entries of
a device map (the first is the module whose call starts the layer). Names must be
non-empty, unique, and none may contain another (``"h"`` and ``"h.3"`` together would
place ``h.3``'s tensors twice).

- :func:`device_map`: accelerate's ``device_map`` (module name to a GPU index, ``"cpu"``
  or ``"disk"``), as ``dispatch_model`` and ``from_pretrained(device_map=...)`` read it.
- :func:`pipeline_split_spec`: ``{module_name: SplitPoint.BEGINNING}`` at the first layer
  of every group after the first, for ``torch.distributed.pipelining.pipeline``; the
  resulting pipe has one stage per group.
- :func:`deepspeed_parts`: the list DeepSpeed's ``PipelineModule`` keeps in ``parts``:
  stage ``s`` builds layers ``parts[s]`` up to ``parts[s + 1]``.

torch is imported only by :func:`pipeline_split_spec` (for ``SplitPoint``).
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Union

import numpy as np
import numpy.typing as npt

from .result import Partition

__all__ = [
    "OFFLOAD_DEVICES",
    "deepspeed_parts",
    "device_map",
    "pipeline_split_spec",
]

OFFLOAD_DEVICES: tuple[str, ...] = ("cpu", "disk")
"""Device-map values for modules kept off the GPUs (accelerate's names)."""

LayerNames = Sequence[Union[str, Sequence[str]]]
"""One entry per layer: a module name, or a tuple of device-map keys (module name first)."""
PartitionLike = Union[Partition, Sequence[int], npt.NDArray[np.integer[Any]]]
"""A :class:`Partition` or its ``boundaries``."""
Device = Union[int, str]
"""A GPU index (int >= 0), ``"cpu"`` or ``"disk"``."""


def device_map(
    names: LayerNames,
    partition: PartitionLike,
    devices: int | Sequence[Device] | None = None,
    *,
    offload: Mapping[str, str] | None = None,
    tied: Iterable[Sequence[str]] = (),
) -> dict[str, Device]:
    """An accelerate ``device_map``: every layer's keys mapped to its group's device.

    Args:
        names: the layers' module names in execution order (see the module docstring).
        partition: the groups (a :class:`Partition` or its boundaries) over ``names``.
        devices: the device of each group: a sequence (or 1-D array) of ``k`` entries, each a GPU index
            (int >= 0), ``"cpu"`` or ``"disk"`` (a device may repeat, so consecutive
            groups can share a GPU); an int, which must equal ``k`` (group ``g`` on GPU
            ``g``); or ``None``, the same as ``k``.
        offload: module names (keys of the map) to place on ``"cpu"`` or ``"disk"``
            whatever their group's device. Every key of the layers of a tied set goes
            to one place (which of a layer's keys holds the tied tensor is not known).
        tied: sets of layer names that share parameters (e.g. a token embedding and a
            tied output head). Every layer of a set is placed on the device of the
            set's first layer, as accelerate keeps tied modules together; the first is
            the one that owns the parameters. Sets that share a layer are joined (the
            earliest set's first layer gives the device).

    Returns:
        ``{key: device}`` in execution order, ints for GPUs.

    Raises:
        TypeError: an argument of the wrong type.
        ValueError: malformed names or boundaries, ``names`` and the partition covering
            different numbers of layers, a device count other than the partition's
            number of groups, an unknown device, an ``offload`` or ``tied`` name that
            is not a layer, or an ``offload`` that would part tied layers.
    """
    layers = _layer_keys(names)
    cuts = _boundaries(partition, len(layers))
    groups = len(cuts) - 1
    group_devices = _group_devices(devices, groups)
    labels = np.repeat(np.arange(groups), np.diff(cuts)).tolist()
    layer_devices = [group_devices[label] for label in labels]
    tied_sets = _apply_ties(layer_devices, layers, tied)
    result = {key: device for keys, device in zip(layers, layer_devices) for key in keys}
    for key, target in _checked_offload(offload, result, layers, tied_sets).items():
        result[key] = target
    return result


def pipeline_split_spec(names: LayerNames, partition: PartitionLike) -> dict[str, Any]:
    """``{module_name: SplitPoint.BEGINNING}`` for ``torch.distributed.pipelining.pipeline``.

    One split point before the first layer of every group except the first, so
    ``pipeline(model, mb_args, split_spec=...)`` yields ``k`` stages when every named
    module is called once per forward (a module called twice splits twice).

    Args:
        names: the layers' module names in execution order (see the module docstring);
            for a tuple entry, the first key is the split point.
        partition: the groups (a :class:`Partition` or its boundaries) over ``names``.

    Raises:
        ImportError: torch is not installed.
        TypeError, ValueError: as for :func:`device_map`.
    """
    layers = _layer_keys(names)
    cuts = _boundaries(partition, len(layers))
    split_point = _split_point_type()
    return {layers[cut][0]: split_point.BEGINNING for cut in cuts[1:-1]}


def deepspeed_parts(partition: PartitionLike, *, num_stages: int | None = None) -> list[int]:
    """The ``parts`` list of DeepSpeed's ``PipelineModule``: the partition's boundaries.

    ``PipelineModule`` assigns stage ``s`` the layer specs ``parts[s]`` up to, not
    including, ``parts[s + 1]``; ``parts`` has ``num_stages + 1`` entries from 0 to the
    number of layer specs. DeepSpeed computes it in ``_partition_layers`` from its
    ``partition_method``; to use this plan, a ``PipelineModule`` subclass sets
    ``self.parts`` to this list there (the layer specs must be the partition's layers,
    one for one).

    Args:
        partition: the groups (a :class:`Partition` or its boundaries).
        num_stages: the pipeline's stage count, checked against the partition's groups.

    Raises:
        TypeError: an argument of the wrong type.
        ValueError: malformed boundaries, or ``num_stages`` other than the partition's
            number of groups.
    """
    cuts = _boundaries(partition, None)
    groups = len(cuts) - 1
    if num_stages is not None:
        stages = _int(num_stages, "num_stages")
        if stages != groups:
            raise ValueError(f"num_stages is {stages} but the plan has {groups} groups: "
                             f"DeepSpeed needs one pipeline stage per group")
    return cuts


# -- validation ------------------------------------------------------------------------


def _layer_keys(names: object) -> list[tuple[str, ...]]:
    """Each layer's device-map keys, validated (non-empty, unique, none inside another)."""
    entries: list[Any]
    if isinstance(names, np.ndarray) and names.ndim == 1:
        entries = names.tolist()
    elif isinstance(names, Sequence) and not isinstance(names, (str, bytes)):
        entries = list(names)
    else:
        raise TypeError(f"names must be a sequence of module names, one per layer, "
                        f"got {type(names).__name__}")
    layers = [_one_layer(entry, index) for index, entry in enumerate(entries)]
    if not layers:
        raise ValueError("names is empty: there are no layers")
    _check_disjoint([key for keys in layers for key in keys])
    return layers


def _one_layer(entry: object, index: int) -> tuple[str, ...]:
    keys = (entry,) if isinstance(entry, str) else entry
    if not isinstance(keys, (tuple, list)) or not keys:
        raise TypeError(f"names[{index}] must be a module name or a non-empty tuple of "
                        f"them, got {type(entry).__name__} {entry!r}")
    for key in keys:
        if not isinstance(key, str):
            raise TypeError(f"names[{index}] holds {type(key).__name__} {key!r}, "
                            f"not a module name")
        if not key or key.startswith(".") or key.endswith(".") or ".." in key:
            raise ValueError(f"names[{index}] = {key!r} is not a module path "
                             f"(dotted names such as 'layers.3'; '' would be the whole model)")
    return tuple(keys)


def _check_disjoint(keys: list[str]) -> None:
    """Refuse repeated names and a name that contains another (``h`` and ``h.3``)."""
    seen: set[str] = set()
    for key in keys:
        if key in seen:
            raise ValueError(f"names holds {key!r} twice")
        seen.add(key)
    for key in keys:
        parts = key.split(".")
        for end in range(1, len(parts)):
            outer = ".".join(parts[:end])
            if outer in seen:
                raise ValueError(f"names holds both {outer!r} and {key!r}, which is inside "
                                 f"it: a module's tensors would be placed twice")


def _boundaries(partition: object, layers: int | None) -> list[int]:
    """The partition's cut list, checked: 0 first, strictly increasing, ``layers`` last."""
    raw = partition.boundaries if isinstance(partition, Partition) else partition
    if isinstance(raw, (str, bytes)) or not isinstance(raw, (Sequence, np.ndarray)):
        raise TypeError(f"partition must be a Partition or its boundaries (k + 1 layer "
                        f"indices), got {type(partition).__name__}")
    cuts = [_int(cut, f"boundaries[{index}]") for index, cut in enumerate(raw)]
    if len(cuts) < 2:
        raise ValueError(f"boundaries must hold at least 2 indices (0 and n), got {cuts}")
    if cuts[0] != 0:
        raise ValueError(f"boundaries must start at 0, got {cuts[0]}")
    for index, (start, stop) in enumerate(zip(cuts, cuts[1:])):
        if stop <= start:
            raise ValueError(f"boundaries must increase strictly: group {index} would run "
                             f"from layer {start} to {stop}")
    if layers is not None and cuts[-1] != layers:
        raise ValueError(f"the partition covers {cuts[-1]} layers but names has {layers}")
    return cuts


def _int(value: object, name: str) -> int:
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int, got bool {value!r}")
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__} "
                        f"{value!r}") from None


def _group_devices(devices: object, groups: int) -> list[Device]:
    """One device per group, checked."""
    if devices is None:
        return list(range(groups))
    if isinstance(devices, np.ndarray) and devices.ndim == 1:
        devices = devices.tolist()  # such as a plan's group_device
    if not isinstance(devices, (str, bytes, Sequence)):
        count = _int(devices, "devices")
        if count != groups:
            raise ValueError(_device_count_problem(count, groups))
        return list(range(groups))
    if isinstance(devices, (str, bytes)):
        raise TypeError(f"devices must be a device count or one device per group, "
                        f"got {type(devices).__name__} {devices!r}")
    if len(devices) != groups:
        raise ValueError(_device_count_problem(len(devices), groups))
    return [_device(device, f"devices[{index}]") for index, device in enumerate(devices)]


def _device_count_problem(count: int, groups: int) -> str:
    if count < 1:
        return f"devices must be a count of at least 1 or one device per group, got {count}"
    if count > groups:
        return (f"a device map for {count} devices, but the plan has {groups} groups: "
                f"plan for {count} groups, or give one device per group ({groups})")
    return (f"a device map for {count} devices, but the plan has {groups} groups: give "
            f"one device per group ({groups}; a device may repeat)")


def _device(device: object, name: str) -> Device:
    if isinstance(device, str):
        if device in OFFLOAD_DEVICES:
            return device
        raise ValueError(f"{name} = {device!r} is not a device: use a GPU index "
                         f"(int >= 0), 'cpu' or 'disk'")
    index = _int(device, name)
    if index < 0:
        raise ValueError(f"{name} = {index} is not a GPU index (must be >= 0)")
    return index


def _apply_ties(layer_devices: list[Device], layers: list[tuple[str, ...]],
                tied: object) -> list[list[int]]:
    """Move every layer of a tied set onto the device of the set's first layer; sets
    that share a layer are one set (the first of them gives the device). Returns the
    merged sets as layer positions."""
    if isinstance(tied, (str, bytes)) or not isinstance(tied, Iterable):
        raise TypeError(f"tied must be sets of layer names, got {type(tied).__name__}")
    position = {keys[0]: index for index, keys in enumerate(layers)}
    merged: list[list[int]] = []  # each: the first set's first layer, then the others
    set_of: dict[int, int] = {}
    for number, members in enumerate(tied):
        if isinstance(members, str) or not isinstance(members, Sequence) or not members:
            raise TypeError(f"tied[{number}] must be a non-empty sequence of layer names, "
                            f"got {members!r}")
        for member in members:
            if not isinstance(member, str):
                raise TypeError(f"tied[{number}] must hold layer names (str), got "
                                f"{type(member).__name__} {member!r}")
            if member not in position:
                raise ValueError(f"tied[{number}] names {member!r}, which is not a layer "
                                 f"(tied sets use the layers' module names)")
        indices = [position[member] for member in members]
        joined = sorted({set_of[i] for i in indices if i in set_of})
        target = joined[0] if joined else len(merged)
        if not joined:
            merged.append([])
        for other in joined[1:]:  # fold later sets into the earliest one
            merged[target].extend(merged[other])
            for i in merged[other]:
                set_of[i] = target
            merged[other] = []
        for i in indices:
            if set_of.get(i) != target:
                set_of[i] = target
                merged[target].append(i)
    for group in merged:
        for i in group[1:]:
            layer_devices[i] = layer_devices[group[0]]
    return [group for group in merged if group]


def _checked_offload(offload: object, mapping: Mapping[str, Device],
                     layers: list[tuple[str, ...]], tied_sets: list[list[int]]) -> dict[str, str]:
    if offload is None:
        return {}
    if not isinstance(offload, Mapping):
        raise TypeError(f"offload must map module names to 'cpu' or 'disk', "
                        f"got {type(offload).__name__}")
    checked: dict[str, str] = {}
    for key, target in offload.items():
        if key not in mapping:
            raise ValueError(f"offload names {key!r}, which is not a key of the device map")
        if target not in OFFLOAD_DEVICES:
            raise ValueError(f"offload[{key!r}] = {target!r}: offloaded modules go to "
                             f"'cpu' or 'disk'")
        checked[key] = target
    for group in tied_sets:  # every key of a tied layer: which holds the tie is unknown
        names = [key for i in group for key in layers[i]]
        targets = {checked.get(name) for name in names}
        if len(targets) > 1:
            moved = next(name for name in names if name in checked)
            kept = next(name for name in names if checked.get(name) != checked[moved])
            raise ValueError(
                f"offload sends {moved!r} to {checked[moved]!r} but {kept!r}, which shares "
                f"tied weights with it, to {checked.get(kept, mapping[kept])!r}: accelerate "
                f"keeps tied modules on one device; offload all of {sorted(names)} to one place")
    return checked


def _split_point_type() -> Any:
    try:
        from torch.distributed.pipelining import SplitPoint
    except ImportError as error:
        raise ImportError(
            "pipeline_split_spec needs torch (torch.distributed.pipelining): "
            'pip install "layerwise_fast[torch]"') from error
    return SplitPoint
