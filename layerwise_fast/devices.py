"""Device mapping (seed sections 4.1 and 4.2): groups to devices in pipeline order.

Three ways to give the devices, resolved by :func:`device_pool`:

* ``None``: one device of the hardware profile per group, as many as the plan needs
  (the seed's "assign each partition to a separate GPU").
* ``N`` (an int): at most N such devices. More groups than devices is an error
  (:class:`TooManyGroupsError`, naming both numbers) unless several groups per device
  are allowed (``share_devices``): then consecutive groups share a device, balanced by
  :func:`~layerwise_fast.partition.balanced` over the groups' stage times.
* a list of devices (profile names or :class:`~layerwise_fast.hardware.Hardware`):
  mixed cards, in pipeline order, each with its own capacity; group ``i`` runs on
  device ``i``. :func:`ordered_fit` finds the fewest groups for that order exactly, and
  :func:`ordered_balanced` the smallest largest group among them.

Next-fit is not exact once capacities differ: filling device 0 to the brim can leave a
large layer to a small device 1 (sizes 1, 1, 2 on capacities 2, 1, 2), so
:func:`ordered_fit` tracks every boundary each prefix of devices can reach instead, in
the native core (csrc/layerwise_fast/ordered.hpp).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Mapping, Sequence, Union, cast

import numpy as np
import numpy.typing as npt

from .errors import InfeasibleError
from .hardware import Hardware
from .oversize import OversizeLayerError
from . import _core
from .partition import balanced, core_arrays, greedy
from .result import Partition
from .units import INT64_MAX

__all__ = [
    "DeviceSpec",
    "DevicePool",
    "TooManyGroupsError",
    "device_pool",
    "group_costs",
    "groups_to_devices",
    "ordered_balanced",
    "ordered_fit",
    "ordered_partition",
    "resolve_hardware",
]

IntColumn = npt.NDArray[np.int64]
DeviceSpec = Union[None, int, Sequence[Union[str, Hardware]]]
"""What ``devices=`` accepts: None, a count, or an ordered list of devices."""


class TooManyGroupsError(InfeasibleError):
    """The plan needs more groups than there are devices.

    Attributes:
        groups: groups needed (for a list of mixed devices: at least this many).
        devices: devices available.
    """

    def __init__(self, groups: int, devices: int, detail: str = "", *,
                 listed: bool = False) -> None:
        self.groups = int(groups)
        self.devices = int(devices)
        self.detail = str(detail)
        self.listed = bool(listed)
        given = f"{self.devices} device{'s were' if self.devices != 1 else ' was'} given"
        message = f"the plan needs {self.groups} groups but only {given}"
        if self.detail:
            message += f" ({self.detail})"
        if self.listed:  # a list runs one group on each of its devices
            advice = "list more devices, or larger ones"
        else:
            advice = "allow several groups per device (share_devices=True, --share-devices) or give more devices"
        super().__init__(f"{message}; {advice}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_too_many_groups, (self.groups, self.devices, self.detail, self.listed))


def _too_many_groups(groups: int, devices: int, detail: str, listed: bool) -> TooManyGroupsError:
    """Unpickles a TooManyGroupsError (its keyword argument included)."""
    return TooManyGroupsError(groups, devices, detail, listed=listed)


@dataclass(frozen=True)
class DevicePool:
    """The devices a plan may use.

    Attributes:
        hardware: the listed devices in pipeline order (``mixed``), else the one profile.
        capacities: the planning capacity (bytes) of each entry of ``hardware``.
        count: the most devices (None: one per group, as many as needed).
        share: whether several groups may share a device.
        mixed: whether ``hardware`` is an ordered list of devices, one group each.
    """

    hardware: tuple[Hardware, ...]
    capacities: tuple[int, ...]
    count: int | None
    share: bool
    mixed: bool

    @property
    def fit_capacity(self) -> int:
        """The largest capacity: a layer larger than this fits no device."""
        return max(self.capacities)

    @property
    def treat_capacity(self) -> int:
        """The smallest capacity: treated (tiled, quantized) layers are fitted to it."""
        return min(self.capacities)

    @property
    def group_limit(self) -> int | None:
        """The most groups a plan may have, or None for no limit."""
        return None if self.share else self.count

    def describe(self) -> str:
        """A short label: ``"8 x h100"``, ``"h100 per group"``, ``"h100, a100"``."""
        if self.mixed:
            return ", ".join(device.name for device in self.hardware)
        if self.count is None:
            return f"{self.hardware[0].name} per group"
        return f"{self.count} x {self.hardware[0].name}"


def resolve_hardware(hardware: object, name: str = "hardware") -> Hardware:
    """A :class:`Hardware`, or a built-in profile by name."""
    if isinstance(hardware, Hardware):
        return hardware
    if isinstance(hardware, str):
        return Hardware.profile(hardware)
    raise TypeError(f"{name} must be a profile name or a Hardware, got "
                    f"{type(hardware).__name__} {hardware!r}")


def device_pool(devices: object, hardware: Hardware, capacity: int | None,
                share: bool) -> DevicePool:
    """Resolve ``devices`` (see the module docstring) against ``hardware``.

    ``capacity`` overrides every device's planning capacity.

    Raises:
        TypeError: ``devices`` or ``share_devices`` has the wrong type.
        ValueError: a count below 1 or beyond int64, an empty list, an unknown profile name, or
            ``share_devices`` without a count.
    """
    if not isinstance(share, bool):
        raise TypeError(f"share_devices must be a bool, got {type(share).__name__}")
    own = hardware.capacity if capacity is None else capacity
    if devices is None:
        if share:
            raise ValueError("share_devices applies to a device count (devices=8); with "
                             "devices=None every group has a device of its own")
        return DevicePool((hardware,), (own,), None, False, False)
    if isinstance(devices, (bool, np.bool_)):
        raise TypeError("devices must be None, a count or a list of devices, got a bool")
    if isinstance(devices, (int, np.integer)):
        if not 1 <= devices <= INT64_MAX:  # a plan file records the count as int64
            raise ValueError(f"devices must be between 1 and {INT64_MAX}, got {devices}")
        return DevicePool((hardware,), (own,), int(devices), share, False)
    if isinstance(devices, (str, bytes)) or not isinstance(devices, Sequence):
        raise TypeError(f"devices must be None, a count or a list of devices, got "
                        f"{type(devices).__name__} {devices!r}")
    if not devices:
        raise ValueError("devices is an empty list")
    if share:
        raise ValueError("share_devices applies to a device count; a list of devices "
                         "runs one group on each")
    listed = tuple(resolve_hardware(d, f"devices[{i}]") for i, d in enumerate(devices))
    caps = tuple(d.capacity if capacity is None else capacity for d in listed)
    return DevicePool(listed, caps, len(listed), False, True)


def ordered_fit(columns: dict[str, IntColumn], capacities: Sequence[int],
                cost: Literal["sum", "peak"], names: npt.NDArray[np.object_]) -> IntColumn:
    """Boundaries of the fewest groups, group ``i`` fitting ``capacities[i]``, in order.

    Exact: the native core tracks every boundary that ``i`` groups on devices
    ``0..i-1`` can end at (csrc/layerwise_fast/ordered.hpp explains how); the first
    device count that reaches the last layer is the fewest groups.

    Args:
        columns: ``weights``, ``activations`` and ``buffers`` of every layer.
        capacities: bytes each device holds, in pipeline order.
        cost: ``"sum"`` or ``"peak"``.
        names: layer names, for messages.

    Raises:
        OversizeLayerError: a device cannot take even one more layer, whatever the
            groups before it, or a layer left after the last device fits no listed device.
        TooManyGroupsError: layers remain after the last device.
        ValueError: a capacity below 1 byte, or invalid sizes (from the core).
        OverflowError: a layer's weights + activations + buffers beyond int64.
    """
    return ordered_partition(columns, capacities, cost, names, "greedy").boundaries


def ordered_balanced(columns: dict[str, IntColumn], capacities: Sequence[int],
                     cost: Literal["sum", "peak"], names: npt.NDArray[np.object_]) -> IntColumn:
    """Boundaries of the fewest groups, group ``i`` fitting ``capacities[i]``, and among
    those the smallest largest group cost: :func:`balanced` for an ordered device list.

    :func:`ordered_fit`'s number of groups k; then :func:`~layerwise_fast.balanced`'s k
    groups where each fits its own device (nothing has a smaller largest group), and
    otherwise a native search on the largest group cost B, each probe the same
    reachability over the first k devices with their capacities lowered to B, snapped
    to costs that some partition realises. Exact on integers.

    Raises:
        OversizeLayerError, TooManyGroupsError, ValueError, OverflowError: as
            :func:`ordered_fit`.
    """
    return ordered_partition(columns, capacities, cost, names, "balanced").boundaries


_FITS, _DEVICE_CANNOT_START = 0, 1


def ordered_partition(columns: dict[str, IntColumn], capacities: Sequence[int],
                      cost: Literal["sum", "peak"], names: npt.NDArray[np.object_],
                      algorithm: str) -> Partition:
    """The groups for an ordered device list, with their costs as the core computed them
    (no single capacity): :func:`ordered_fit`'s for ``"greedy"``, :func:`ordered_balanced`'s
    for any other algorithm (``balanced`` and ``dp`` share its objective), reported as
    ``algorithm``.

    Raises:
        OversizeLayerError, TooManyGroupsError, ValueError, OverflowError: as
            :func:`ordered_fit`.
    """
    native = _core.ordered_fit if algorithm == "greedy" else _core.ordered_balanced
    sizes, live = core_arrays(columns, cost)
    outcome, raw, device, layer = native(sizes, live, [int(c) for c in capacities])
    if outcome == _FITS:
        boundaries, costs, bottleneck, group = cast(Any, raw)
        return Partition(boundaries, costs, bottleneck, group, capacity=None, algorithm=algorithm,
                         cost=cost)
    alone = columns["weights"] + columns["activations"] + columns["buffers"]
    if outcome == _DEVICE_CANNOT_START:
        raise OversizeLayerError(layer, int(alone[layer]), capacities[device], str(names[layer]),
                                 f"on device {device}, the next in pipeline order")
    largest = max(capacities)
    beyond = np.flatnonzero(alone[layer:] > largest)
    if beyond.size:  # the count below would be of no use: no device can hold this layer
        first = layer + int(beyond[0])
        raise OversizeLayerError(first, int(alone[first]), largest, str(names[first]),
                                 "on any listed device")
    rest: Any = {key: value[layer:] for key, value in columns.items()}
    more = greedy(rest, largest, cost=cost).k
    n = len(alone)
    raise TooManyGroupsError(len(capacities) + more, len(capacities),
                             f"layers {layer}..{n - 1} remain after the last device; the "
                             f"count fits them to the largest capacity, so it is a lower "
                             f"bound", listed=True)


def group_costs(columns: Mapping[str, IntColumn], boundaries: IntColumn,
                cost: str) -> IntColumn:
    """Each group's cost under ``cost`` (``"sum"`` or ``"peak"``), from the layer columns
    ``weights``, ``activations`` and ``buffers`` (int64; the caller has checked that the
    sums fit)."""
    starts = boundaries[:-1]
    weights, live = columns["weights"], columns["activations"] + columns["buffers"]
    if cost == "sum":
        return np.add.reduceat(weights + live, starts)
    return np.add.reduceat(weights, starts) + np.maximum.reduceat(live, starts)


def groups_to_devices(stage_ps: IntColumn, count: int | None) -> IntColumn:
    """The device of each group, in pipeline order.

    One group per device while there are enough devices; otherwise consecutive groups
    share the ``count`` devices, balanced over ``stage_ps`` (each group's stage time in
    whole picoseconds) by :func:`~layerwise_fast.partition.balanced` with ``k = count``.
    """
    groups = len(stage_ps)
    if count is None or groups <= count:
        return np.arange(groups, dtype=np.int64)
    return balanced(stage_ps, count).labels()
