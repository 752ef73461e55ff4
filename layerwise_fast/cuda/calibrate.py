"""Calibration: how fast one persistent read+write stream runs against its buffer size.

One cooperative launch of the calibration stream (:mod:`.kernels`; by default its
``quad`` access, 16-byte loads and stores as the float16 group kernels make) makes
``passes`` in-place passes ``x = x * 1 + 2**-12`` over a float32 buffer, with a
grid-wide sync between passes and each pass handing every block's share to another
block (so a pass reads what another multiprocessor wrote, from L2 or HBM, never from
its own L1). Sweeping the buffer from about 1 MiB to 4x the nominal L2 gives the
bandwidth curve; rates count bytes read plus bytes written (``2 * size * passes``
over the launch's time, the median of ``repeats`` launches timed with CUDA events).
Before the sweep, launches over the largest buffer run for ``warmup_seconds`` so the
clocks have left idle (an idle H100 reports 345 MHz) before the first size is timed.
Every element must end up incremented by exactly the number of passes it saw, which
the sweep checks (the values stay on a grid of ``2**-12`` where float32 is exact).

From the curve (:func:`analyse_curve`):

- the *HBM rate*: the median rate over the sizes of at least 2x the nominal L2;
- the *plateau*: the best rate up to the nominal L2, and the size where it was reached
  (beyond the L2 a rate is not the cache's);
- the *knee*: walking up from the plateau's size to the nominal L2, the last size that
  keeps at least ``knee_fraction`` (0.9) of the plateau rate, stepping over one size
  below it (a noisy dip) but not two in a row (so a noisy high point past the step does
  not stretch the knee). A curve whose HBM rate keeps the fraction has no cache step and
  no knee, and is refused.

The calibration file is the format that ``Hardware.from_calibration`` reads
(``layerwise_fast.hardware``; schema ``"layerwise_fast.calibration"``, version 1):
``device_name``, ``l2_bytes`` (the nominal L2 the sweep was sized from), ``knee_bytes``,
``plateau_bytes_per_s``, ``hbm_bytes_per_s``, ``sizes`` (bytes) and ``bytes_per_s`` (one
rate per size), with the rest under ``meta``: the device, the method, the passes per
size, the size of the plateau, the knee fraction. Sizes are integer bytes, rates bytes
per second. Under the simulator nothing is timed, and there is no file to write.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..hardware import CALIBRATION_SCHEMA, CALIBRATION_VERSION, CalibrationError, _check_calibration
from ..units import _read_json_document
from .barrier import BARRIER_MODES
from .kernels import (
    MAX_ELEMENTS,
    STREAM_ACCESSES,
    STREAM_ELEMENTS_IN_FLIGHT,
    DeviceInfo,
    check_stream_access,
    cuda,
    device_info,
    is_simulated,
    prepare_barrier_rounds,
    prepare_stream_passes,
)

KNEE_FRACTION = 0.9
"""Share of the plateau rate a size must keep to count as below the knee."""

HBM_FROM_L2_FACTOR = 2.0
"""Sizes of at least this many times the nominal L2 measure the HBM rate."""

MIB = 1 << 20
_ELEMENT_BYTES = 4  # float32 stream
_INCREMENT = 2.0**-12  # exact in float32 for the values the sweep reaches
_MAX_INCREMENTS = 2**23  # keeps every value below 2**11 + 1.5, where 2**-12 steps stay exact
_MAX_WARMUP_LAUNCHES = 10_000


@dataclass(frozen=True)
class CurveSummary:
    """What a bandwidth curve says (sizes in bytes, rates in bytes per second)."""

    plateau_bytes_per_s: float
    plateau_size_bytes: int
    hbm_bytes_per_s: float
    knee_bytes: int
    knee_fraction: float


def calibration_sizes(
    l2_bytes: int,
    min_bytes: int = MIB,
    max_factor: float = 4.0,
    points_per_octave: int = 4,
    align_bytes: int = 4096,
) -> list[int]:
    """Buffer sizes for the sweep: geometric from ``min_bytes`` to ``max_factor * l2_bytes``.

    Sizes are multiples of ``align_bytes``, strictly increasing, and the last one is
    ``max_factor * l2_bytes`` rounded down to ``align_bytes``.
    """
    if l2_bytes < 1:
        raise ValueError(f"l2_bytes must be >= 1, got {l2_bytes}")
    if min_bytes < align_bytes or align_bytes < _ELEMENT_BYTES or align_bytes % _ELEMENT_BYTES:
        raise ValueError(
            f"need min_bytes >= align_bytes >= {_ELEMENT_BYTES} with align_bytes a multiple of "
            f"{_ELEMENT_BYTES}, got min_bytes={min_bytes}, align_bytes={align_bytes}"
        )
    if points_per_octave < 1:
        raise ValueError(f"points_per_octave must be >= 1, got {points_per_octave}")
    top = int(max_factor * l2_bytes) // align_bytes * align_bytes
    if top <= min_bytes:
        raise ValueError(
            f"max_factor * l2_bytes = {max_factor * l2_bytes:.0f} bytes must exceed "
            f"min_bytes = {min_bytes}"
        )
    count = math.ceil(math.log2(top / min_bytes) * points_per_octave)
    raw = (min_bytes * (top / min_bytes) ** (k / count) for k in range(count + 1))
    sizes = sorted({max(align_bytes, int(size) // align_bytes * align_bytes) for size in raw})
    sizes[-1] = top
    return sizes


def analyse_curve(
    sizes_bytes: Sequence[int],
    rates_bytes_per_s: Sequence[float],
    l2_bytes: int,
    knee_fraction: float = KNEE_FRACTION,
) -> CurveSummary:
    """Plateau, HBM rate and knee of a bandwidth curve (see the module docstring).

    Args:
        sizes_bytes: strictly increasing buffer sizes.
        rates_bytes_per_s: the rate measured at each size, finite and > 0.
        l2_bytes: the nominal L2 size; sizes >= 2x it give the HBM rate.
        knee_fraction: in (0, 1].

    Raises:
        ValueError: malformed input, no size reaching 2x the L2, or a curve without a
            cache step (see the module docstring).
    """
    if len(sizes_bytes) != len(rates_bytes_per_s):
        raise ValueError(
            f"sizes_bytes and rates_bytes_per_s must have equal lengths, got "
            f"{len(sizes_bytes)} and {len(rates_bytes_per_s)}"
        )
    if len(sizes_bytes) < 2:
        raise ValueError(f"a curve needs at least 2 points, got {len(sizes_bytes)}")
    if any(b <= a for a, b in zip(sizes_bytes, sizes_bytes[1:])):
        raise ValueError("sizes_bytes must be strictly increasing")
    if not all(math.isfinite(r) and r > 0 for r in rates_bytes_per_s):
        raise ValueError("rates_bytes_per_s must all be finite and > 0")
    if not 0.0 < knee_fraction <= 1.0:
        raise ValueError(f"knee_fraction must be in (0, 1], got {knee_fraction}")
    hbm_rates = [r for s, r in zip(sizes_bytes, rates_bytes_per_s) if s >= HBM_FROM_L2_FACTOR * l2_bytes]
    if not hbm_rates:
        raise ValueError(
            f"no size reaches {HBM_FROM_L2_FACTOR:g}x l2_bytes = "
            f"{HBM_FROM_L2_FACTOR * l2_bytes:.0f} bytes (largest: {sizes_bytes[-1]}): "
            "the HBM rate cannot be measured"
        )
    within = [k for k, size in enumerate(sizes_bytes) if size <= l2_bytes]
    if not within:
        raise ValueError(f"no size lies within l2_bytes = {l2_bytes} (smallest: {sizes_bytes[0]}): "
                         "the cache's plateau cannot be measured")
    best = max(within, key=rates_bytes_per_s.__getitem__)
    plateau = float(rates_bytes_per_s[best])
    hbm = float(statistics.median(hbm_rates))
    if hbm >= knee_fraction * plateau:
        raise ValueError(
            f"the curve shows no cache step: its best rate within l2_bytes "
            f"({l2_bytes / MIB:.1f} MiB) is {plateau / 1e12:.2f} TB/s at "
            f"{sizes_bytes[best] / MIB:.1f} MiB, and from {HBM_FROM_L2_FACTOR:g}x l2_bytes "
            f"({HBM_FROM_L2_FACTOR * l2_bytes / MIB:.1f} MiB) on it runs at {hbm / 1e12:.2f} TB/s "
            f"({hbm / plateau:.0%} of it), where a knee needs an HBM rate below "
            f"{knee_fraction:.0%} of the plateau"
        )
    knee = _knee_index(rates_bytes_per_s, best, within[-1], knee_fraction * plateau)
    return CurveSummary(
        plateau_bytes_per_s=plateau,
        plateau_size_bytes=int(sizes_bytes[best]),
        hbm_bytes_per_s=hbm,
        knee_bytes=int(sizes_bytes[knee]),
        knee_fraction=knee_fraction,
    )


def _knee_index(rates: Sequence[float], start: int, last: int, floor: float) -> int:
    """The last point from ``start`` up to ``last`` that keeps ``floor``, walking up and
    stepping over one point below it (one noisy dip) but not two in a row, so one noisy
    high point past the step cannot stretch the knee either."""
    knee = k = start
    while k < last:
        if rates[k + 1] >= floor:
            knee = k = k + 1
        elif k + 2 <= last and rates[k + 2] >= floor:
            knee = k = k + 2
        else:
            break
    return knee


def time_launches(launch: Callable[[], object], repeats: int,
                  warm_up_seconds: float = 0.0) -> list[float] | None:
    """Seconds taken on the device by each of ``repeats`` back-to-back calls of ``launch``.

    With ``warm_up_seconds``, calls run for that much wall time first, so that the clocks
    have left idle after host-only work (see :func:`warm_up_clocks`). One untimed call
    then fills the queue; then an event is recorded after each call, so the host's
    launch overhead overlaps the device's work instead of being timed. The caller
    compiles first. Under the simulator, events carry no time: nothing is launched and
    the answer is ``None``.

    Raises:
        RuntimeError: a real device returned a non-positive event time.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if is_simulated():
        return None
    if warm_up_seconds > 0:
        warm_up_clocks(launch, warm_up_seconds, _MAX_WARMUP_LAUNCHES)
    events = [cuda.event(timing=True) for _ in range(repeats + 1)]
    launch()
    events[0].record()
    for event in events[1:]:
        launch()
        event.record()
    events[-1].synchronize()
    times = []
    for start, end in zip(events, events[1:]):
        elapsed_ms = start.elapsed_time(end)
        if not elapsed_ms > 0.0:
            raise RuntimeError(f"CUDA events measured {elapsed_ms} ms for a launch")
        times.append(elapsed_ms / 1e3)
    return times


@dataclass(frozen=True)
class Calibration:
    """A bandwidth sweep and its summary; see the module docstring for the file format.

    Attributes:
        device: the device it ran on.
        l2_bytes: the nominal L2 size the sweep was sized from.
        sizes_bytes: buffer sizes.
        passes: passes per launch at each size.
        rates_bytes_per_s: median rate at each size, or ``None`` when untimed (simulator).
        summary: plateau, HBM rate and knee, or ``None`` when untimed or when the curve
            has no knee.
        method: how it was measured (JSON-ready).
        analysis_error: why a timed curve has no summary (:func:`analyse_curve`'s
            message), else ``None``.
    """

    device: DeviceInfo
    l2_bytes: int
    sizes_bytes: tuple[int, ...]
    passes: tuple[int, ...]
    rates_bytes_per_s: tuple[float, ...] | None
    summary: CurveSummary | None
    method: dict[str, Any]
    analysis_error: str | None = None

    @property
    def access(self) -> str:
        """The stream's access as its method records it (one of ``STREAM_ACCESSES``), or
        ``"?"`` where it records none."""
        return str(self.method.get("access", "?"))

    @property
    def timed(self) -> bool:
        """Whether rates were measured (False under the simulator)."""
        return self.rates_bytes_per_s is not None

    def rate_at(self, size_bytes: int) -> float:
        """The rate at ``size_bytes``, interpolated linearly in log(size), clamped at the ends."""
        if self.rates_bytes_per_s is None:
            raise ValueError("this calibration is untimed (simulator): it has no rates")
        return float(
            np.interp(math.log(size_bytes), np.log(self.sizes_bytes), self.rates_bytes_per_s)
        )

    def to_dict(self) -> dict[str, Any]:
        """The calibration file as a dictionary (``Hardware.from_calibration``'s format).

        Raises:
            ValueError: the calibration is untimed (simulator), or its curve has no knee:
                it has no file to write.
        """
        if self.rates_bytes_per_s is None:
            raise ValueError("an untimed calibration (simulator) has no rates: nothing to write")
        if self.summary is None:
            raise ValueError(f"{self.analysis_error or 'the curve has no summary'}: no calibration "
                             f"file to write")
        summary = self.summary
        return {
            "schema": CALIBRATION_SCHEMA,
            "version": CALIBRATION_VERSION,
            "device_name": self.device.name,
            "l2_bytes": self.l2_bytes,
            "knee_bytes": summary.knee_bytes,
            "plateau_bytes_per_s": summary.plateau_bytes_per_s,
            "hbm_bytes_per_s": summary.hbm_bytes_per_s,
            "sizes": list(self.sizes_bytes),
            "bytes_per_s": list(self.rates_bytes_per_s),
            "meta": {
                "device": self.device.to_dict(),
                "method": self.method,
                "passes": list(self.passes),
                "plateau_size_bytes": summary.plateau_size_bytes,
                "knee_fraction": summary.knee_fraction,
                "hbm_from_l2_factor": HBM_FROM_L2_FACTOR,
            },
        }

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description, timed or not, with or without a knee (for reports)."""
        if self.summary is not None:
            return {"timed": True, **self.to_dict()}
        return {
            "timed": self.timed,
            "device": self.device.to_dict(),
            "l2_bytes": self.l2_bytes,
            "sizes": list(self.sizes_bytes),
            **({"bytes_per_s": list(self.rates_bytes_per_s), "error": self.analysis_error}
               if self.rates_bytes_per_s is not None else {}),
            "passes": list(self.passes),
            "method": self.method,
        }

    def save(self, path: str | Path) -> Path:
        """Write the calibration file to ``path`` (see :meth:`to_dict`); return the path."""
        target = Path(path)
        target.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return target

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        """Rebuild a calibration from its file's dictionary; the summary is recomputed."""
        if data.get("schema") != CALIBRATION_SCHEMA or data.get("version") != CALIBRATION_VERSION:
            raise ValueError(
                f"not a calibration file of this version: schema {data.get('schema')!r}, "
                f"version {data.get('version')!r}; expected {CALIBRATION_SCHEMA!r}, "
                f"{CALIBRATION_VERSION}"
            )
        meta = data.get("meta", {})
        dev = meta.get("device")
        device = (
            DeviceInfo(
                name=str(dev["name"]),
                compute_capability=(int(dev["compute_capability"][0]), int(dev["compute_capability"][1])),
                multiprocessors=int(dev["multiprocessors"]),
                l2_bytes=None if dev["l2_bytes"] is None else int(dev["l2_bytes"]),
                simulated=bool(dev["simulated"]),
                bfloat16=bool(dev["bfloat16"]),
            )
            if dev is not None
            else DeviceInfo(str(data["device_name"]), (0, 0), 0, int(data["l2_bytes"]), False, False)
        )
        sizes = tuple(int(s) for s in data["sizes"])
        rates = tuple(float(r) for r in data["bytes_per_s"])
        l2_bytes = int(data["l2_bytes"])
        summary = analyse_curve(sizes, rates, l2_bytes, float(meta.get("knee_fraction", KNEE_FRACTION)))
        passes = tuple(int(p) for p in meta.get("passes", [0] * len(sizes)))
        return cls(device, l2_bytes, sizes, passes, rates, summary, dict(meta.get("method", {})))


def load_calibration(path: str | Path) -> Calibration:
    """Read a calibration file written by :meth:`Calibration.save`, with the checks of
    :meth:`~layerwise_fast.Hardware.from_calibration`.

    Raises:
        CalibrationError: the file is missing, unreadable or malformed (the message names
            the file and the field).
    """
    label = f"calibration file {os.fspath(path)!r}"
    document = _read_json_document(path, what="calibration file", error=CalibrationError)
    try:
        return Calibration.from_dict(_check_calibration(document, label))
    except CalibrationError:
        raise
    except ValueError as exc:  # the curve itself: see analyse_curve
        raise CalibrationError(f"{label}: {exc}") from None


def _passes_for(size_bytes: int, bytes_per_launch: int, max_passes: int) -> int:
    """Passes that move about ``bytes_per_launch`` (read + written) over ``size_bytes``."""
    return max(1, min(max_passes, math.ceil(bytes_per_launch / (2 * size_bytes))))


def _initial_values(elements: int, rng: np.random.Generator) -> np.ndarray:
    """Values in [1, 1.5) on the 2**-12 grid, so every increment stays exact in float32."""
    steps = rng.integers(0, 2048, size=elements, dtype=np.int64)
    return (1.0 + steps * _INCREMENT).astype(np.float32)


def calibrate(
    sizes_bytes: Sequence[int] | None = None,
    *,
    l2_bytes: int | None = None,
    repeats: int = 5,
    bytes_per_launch: int = 2 << 30,
    max_passes: int = 4096,
    threads_per_block: int = 256,
    knee_fraction: float = KNEE_FRACTION,
    seed: int = 0,
    barrier: str = "cg",
    warmup_seconds: float = 0.25,
    access: str = STREAM_ACCESSES[0],
) -> Calibration:
    """Run the bandwidth sweep on the current device (or the simulator).

    Args:
        sizes_bytes: buffer sizes, multiples of 4 bytes; default
            :func:`calibration_sizes` of the nominal L2.
        l2_bytes: nominal L2 size in bytes; default the device's (required under the
            simulator, which reports none).
        repeats: timed launches per size (after one warm-up launch); the median counts.
        bytes_per_launch: bytes read + written per launch the pass count aims for.
        max_passes: most passes per launch.
        threads_per_block: a power of two in [32, 1024].
        knee_fraction: see :func:`analyse_curve`.
        seed: seed of the buffer's initial values.
        barrier: the grid barrier between passes (one of ``BARRIER_MODES``, see
            :mod:`.barrier`).
        warmup_seconds: host wall time spent launching over the largest buffer before
            the sweep, after one launch that compiles; 0 skips the warm-up.
        access: the stream's access, one of ``STREAM_ACCESSES`` (see :mod:`.kernels`).

    A timed curve without a knee (see :func:`analyse_curve`) gives a calibration with
    its rates, no summary, and the reason in ``analysis_error``.

    Raises:
        RuntimeError: some element was not incremented exactly once per pass, or a
            barrier wait timed out.
    """
    info = device_info()
    l2 = info.l2_bytes if l2_bytes is None else l2_bytes
    if l2 is None or l2 < 1:
        raise ValueError(f"l2_bytes must be given (>= 1) where the device reports none, got {l2}")
    sizes = sorted(calibration_sizes(l2) if sizes_bytes is None else sizes_bytes)
    for size in sizes:
        if size < _ELEMENT_BYTES or size % _ELEMENT_BYTES or size > MAX_ELEMENTS * _ELEMENT_BYTES:
            raise ValueError(
                f"calibration sizes must be multiples of {_ELEMENT_BYTES} bytes in "
                f"[{_ELEMENT_BYTES}, {MAX_ELEMENTS * _ELEMENT_BYTES}], got {size}"
            )
    if len(set(sizes)) != len(sizes):
        raise ValueError("calibration sizes must be distinct")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    check_stream_access(access)
    if not 0.0 <= warmup_seconds <= 60.0:
        raise ValueError(f"warmup_seconds must be in [0, 60], got {warmup_seconds}")
    if max_passes < 1 or bytes_per_launch < 1:
        raise ValueError(
            f"max_passes and bytes_per_launch must be >= 1, got {max_passes} and {bytes_per_launch}"
        )
    passes = [_passes_for(size, bytes_per_launch, max_passes) for size in sizes]
    if sum(passes) * (repeats + 2) > _MAX_INCREMENTS:
        raise ValueError(
            f"the sweep would make {sum(passes) * (repeats + 2)} passes over its first bytes, more "
            f"than {_MAX_INCREMENTS} (beyond that float32 stops counting them exactly): lower "
            "repeats, max_passes or bytes_per_launch"
        )
    initial = _initial_values(sizes[-1] // _ELEMENT_BYTES, np.random.default_rng(seed))
    device_buf = cuda.to_device(initial)
    warmup_launches = 0
    most = min(_MAX_WARMUP_LAUNCHES, (_MAX_INCREMENTS - sum(passes) * (repeats + 2)) // passes[-1])
    if warmup_seconds > 0 and most >= 1:
        warm = prepare_stream_passes(device_buf, passes[-1], 1.0, _INCREMENT, threads_per_block, barrier,
                                     access)
        warmup_launches = warm_up_clocks(warm, warmup_seconds, most)
        warm.check_barrier()
    rates: list[float] = []
    launches = []
    for size, count in zip(sizes, passes):
        launch = prepare_stream_passes(
            device_buf[: size // _ELEMENT_BYTES], count, 1.0, _INCREMENT, threads_per_block, barrier, access
        )
        launch()  # warm-up
        times = time_launches(launch, repeats)
        # The warm-up, plus the queue-filling call and the repeats when timed.
        launches.append(1 if times is None else 2 + repeats)
        if times is not None:
            rates.append(2.0 * size * count / statistics.median(times))
        launch.check_barrier()
    launches[-1] += warmup_launches  # the warm-up passed over the largest buffer
    _check_increments(device_buf.copy_to_host(), initial, sizes, passes, launches)
    timed = not is_simulated()
    summary, analysis_error = None, None
    if timed:
        try:
            summary = analyse_curve(sizes, rates, l2, knee_fraction)
        except ValueError as exc:  # kept with the rates: the run reports it and goes on
            analysis_error = str(exc)
    method = {
        "kernel": f"stream_passes_kernel, {access} passes",
        "element": "float32",
        "access": access,
        "bytes_in_flight_per_thread": _ELEMENT_BYTES * STREAM_ELEMENTS_IN_FLIGHT[access],
        "passes": "in-place read+write passes, grid-wide barrier between passes, rotated blocks",
        "barrier": barrier,
        "rate_counts": "bytes read + bytes written",
        "statistic": "median",
        "repeats": repeats,
        "threads_per_block": threads_per_block,
        "bytes_per_launch": bytes_per_launch,
        "warmup": {"seconds": warmup_seconds, "launches": warmup_launches},
    }
    return Calibration(info, l2, tuple(sizes), tuple(passes), tuple(rates) if timed else None,
                       summary, method, analysis_error)


def warm_up_clocks(launch: Callable[[], object], seconds: float, most_launches: int) -> int:
    """Launch until ``seconds`` of wall time pass after a first (compiling) launch: an
    idle GPU runs at low clocks (345 MHz on an idle H100) until work has kept it busy.

    Returns how many launches ran: at least one, at most ``most_launches``.
    """
    launch()
    cuda.synchronize()
    count = 1
    start = time.perf_counter()
    while count < most_launches and time.perf_counter() - start < seconds:
        launch()
        cuda.synchronize()
        count += 1
    return count


def _check_increments(
    final: np.ndarray,
    initial: np.ndarray,
    sizes: Sequence[int],
    passes: Sequence[int],
    launches: Sequence[int],
) -> None:
    """Check that element ``i`` rose by ``2**-12`` per pass of every size that covers it."""
    expected = initial.astype(np.float64)
    for size, count, runs in zip(sizes, passes, launches):
        expected[: size // _ELEMENT_BYTES] += count * runs * _INCREMENT
    wrong = np.flatnonzero(final.astype(np.float64) != expected)
    if wrong.size:
        first = int(wrong[0])
        raise RuntimeError(
            f"calibration stream is wrong at {wrong.size} of {final.size} elements; first at "
            f"element {first}: {float(final[first])!r}, expected {float(expected[first])!r}"
        )


@dataclass(frozen=True)
class BarrierCost:
    """The time one grid barrier takes, alone (see :func:`measure_barriers`).

    Attributes:
        barrier: the barrier (one of ``BARRIER_MODES``).
        blocks: blocks in the grid.
        threads_per_block: threads per block.
        rounds: barriers per timed launch.
        seconds_per_barrier: ``None`` under the simulator or after a timed-out wait.
        timeouts: barrier waits that gave up (0 for a working barrier).
    """

    barrier: str
    blocks: int
    threads_per_block: int
    rounds: int
    seconds_per_barrier: float | None
    timeouts: int = 0


def default_block_counts(threads_per_block: int = 256) -> list[int]:
    """One, two and three blocks per multiprocessor, within the resident limit of every
    barrier's kernel (just ``[1]`` under the simulator)."""
    limit = min(
        prepare_barrier_rounds(0, None, threads_per_block, mode).geometry.blocks for mode in BARRIER_MODES
    )
    multiprocessors = device_info().multiprocessors
    return sorted({min(limit, k * multiprocessors) for k in (1, 2, 3)})


def measure_barriers(
    block_counts: Sequence[int] | None = None,
    *,
    threads_per_block: int = 256,
    rounds: int = 4096,
    repeats: int = 5,
    barriers: Sequence[str] = BARRIER_MODES,
    warm_up_seconds: float = 0.0,
) -> list[BarrierCost]:
    """Time each grid barrier alone, for each grid size.

    A launch crossing ``rounds`` barriers against one crossing none (the launch itself):
    the difference of their median times over ``rounds``.

    Args:
        block_counts: grid sizes; default :func:`default_block_counts`.
        threads_per_block: a power of two in [32, 1024].
        rounds: barriers per timed launch, >= 1.
        repeats: timed launches of each kind; the median counts.
        barriers: the barriers to time.
        warm_up_seconds: wall time of untimed launches before each timing (see
            :func:`time_launches`).

    A barrier whose waits time out is reported with its count of timeouts and no time.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    counts = default_block_counts(threads_per_block) if block_counts is None else list(block_counts)
    costs = []
    for barrier in barriers:
        for blocks in counts:
            medians = []
            timeouts = 0
            for launch_rounds in (0, rounds):
                launch = prepare_barrier_rounds(launch_rounds, blocks, threads_per_block, barrier)
                launch()  # warm-up (and the compile)
                times = time_launches(launch, repeats, warm_up_seconds)
                timeouts += launch.barrier_timeouts()
                medians.append(None if times is None else statistics.median(times))
            empty, full = medians
            seconds = None
            if empty is not None and full is not None and not timeouts:
                # Not clamped: a negative figure says the difference drowned in noise.
                seconds = (full - empty) / rounds
            costs.append(BarrierCost(barrier, blocks, threads_per_block, rounds, seconds, timeouts))
    return costs

