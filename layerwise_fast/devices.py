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
:func:`ordered_fit` tracks every boundary each prefix of devices can reach instead (see
its docstring), with the native greedy giving each device's furthest reach.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Mapping, Sequence, Union

import numpy as np
import numpy.typing as npt

from .errors import InfeasibleError
from .hardware import Hardware
from .oversize import OversizeLayerError
from .partition import balanced, greedy
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

    Exact, by reachability over the devices: ``reach[i]`` marks the layer boundaries
    that ``i`` non-empty groups on devices ``0..i-1`` can end at. Device ``i`` extends a
    boundary ``c`` to every boundary up to ``r(c)``, the furthest end of a group that
    starts at ``c`` and fits ``capacities[i]``; ``r`` never decreases with ``c`` (both
    cost models are monotone), so inside a run of reachable boundaries a step of one
    layer is all that needs checking (that layer fits the device alone), and ``r`` is
    needed only at the last boundary of each run: there it is one native
    :func:`~layerwise_fast.partition.greedy` call (its first group). The first device
    count whose reach includes the last boundary is the fewest groups; the cuts are
    recovered backwards, each the largest reachable boundary before the next.

    Args:
        columns: ``weights``, ``activations`` and ``buffers`` of every layer.
        capacities: bytes each device holds, in pipeline order.
        cost: ``"sum"`` or ``"peak"``.
        names: layer names, for messages.

    Raises:
        OversizeLayerError: a device cannot take even one more layer, whatever the
            groups before it.
        TooManyGroupsError: layers remain after the last device.
    """
    alone = columns["weights"] + columns["activations"] + columns["buffers"]
    n = len(alone)
    reach = _reach(columns, alone, capacities, cost)
    if reach[-1][n]:
        return _cuts_back(reach, n)
    if not reach[-1].any():
        device = len(reach) - 2
        layer = int(np.flatnonzero(reach[-2][:n]).max())
        raise OversizeLayerError(layer, int(alone[layer]), capacities[device], str(names[layer]),
                                 f"on device {device}, the next in pipeline order")
    furthest = int(np.flatnonzero(reach[-1]).max())
    largest = max(capacities)
    beyond = np.flatnonzero(alone[furthest:] > largest)
    if beyond.size:  # the count below would be of no use: no device can hold this layer
        layer = furthest + int(beyond[0])
        raise OversizeLayerError(layer, int(alone[layer]), largest, str(names[layer]),
                                 "on any listed device")
    rest: Any = {key: value[furthest:] for key, value in columns.items()}
    more = greedy(rest, largest, cost=cost).k
    raise TooManyGroupsError(len(capacities) + more, len(capacities),
                             f"layers {furthest}..{n - 1} remain after the last device; the "
                             f"count fits them to the largest capacity, so it is a lower "
                             f"bound", listed=True)


def ordered_balanced(columns: dict[str, IntColumn], capacities: Sequence[int],
                     cost: Literal["sum", "peak"], names: npt.NDArray[np.object_]) -> IntColumn:
    """Boundaries of the fewest groups, group ``i`` fitting ``capacities[i]``, and among
    those the smallest largest group cost: :func:`balanced` for an ordered device list.

    :func:`ordered_fit` gives the fewest groups k and a first bound; then a bisection on
    the largest group cost B, each probe :func:`ordered_fit`'s reachability over the first
    k devices with their capacities lowered to B. Exact on integers; O(log B) probes.

    Raises:
        OversizeLayerError, TooManyGroupsError: as :func:`ordered_fit`.
    """
    cuts = ordered_fit(columns, capacities, cost, names)
    devices = list(capacities[: len(cuts) - 1])
    alone = columns["weights"] + columns["activations"] + columns["buffers"]
    n = len(alone)
    feasible = int(group_costs(columns, cuts, cost).max())
    infeasible = int(alone.max()) - 1  # every group holds at least its largest layer
    while feasible - infeasible > 1:
        bound = (feasible + infeasible) // 2
        reach = _reach(columns, alone, [min(c, bound) for c in devices], cost)
        if reach[-1][n]:
            feasible, cuts = bound, _cuts_back(reach, n)
        else:
            infeasible = bound
    return cuts


def _reach(columns: dict[str, IntColumn], alone: IntColumn, capacities: Sequence[int],
           cost: Literal["sum", "peak"]) -> list[npt.NDArray[np.bool_]]:
    """``reach[i]``: the boundaries ``i`` groups on devices ``0..i-1`` can end at; it stops
    at the first that includes the last boundary, or that is empty, or at the last device."""
    n = len(alone)
    reach = [np.zeros(n + 1, dtype=bool)]
    reach[0][0] = True
    for capacity in capacities:
        step = _extend(reach[-1], columns, alone, capacity, cost)
        reach.append(step)
        if step[n] or not step.any():
            break
    return reach


def _extend(reachable: npt.NDArray[np.bool_], columns: dict[str, IntColumn],
            alone: IntColumn, capacity: int, cost: Literal["sum", "peak"],
            ) -> npt.NDArray[np.bool_]:
    """Boundaries one more group, on a device of ``capacity``, can end at."""
    n = len(alone)
    fits = alone <= capacity
    step = np.zeros(n + 1, dtype=bool)
    step[1:] = reachable[:-1] & fits
    too_big = np.flatnonzero(~fits)
    for start in np.flatnonzero(reachable[:-1] & ~reachable[1:]).tolist():
        blocked = int(np.searchsorted(too_big, start))
        stop = int(too_big[blocked]) if blocked < len(too_big) else n
        if stop > start:
            window: Any = {key: value[start:stop] for key, value in columns.items()}
            end = start + int(greedy(window, capacity, cost=cost).boundaries[1])
            step[start + 1: end + 1] = True
    return step


def _cuts_back(reach: list[npt.NDArray[np.bool_]], n: int) -> IntColumn:
    """The cuts of a partition ending at ``n`` after ``len(reach) - 1`` groups."""
    cuts = [n]
    for reachable in reversed(reach[:-1]):
        cuts.append(int(np.flatnonzero(reachable[: cuts[-1]]).max()))
    return np.array(cuts[::-1], dtype=np.int64)


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
