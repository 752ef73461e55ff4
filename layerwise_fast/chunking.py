"""Batch sweeps (seed section 6.2): the chunk and the group count for many batch sizes.

For each batch size ``b`` the chunk is the whole sequence, or else the largest multiple
of the granularity, at which every layer fits the capacity, after the oversize policy has
treated the layers that fit at no chunk; the group count is the fewest contiguous groups
at that chunk. The chunk comes in closed form (:func:`~layerwise_fast.scaling.fit_tokens`)
for a whole block of batch sizes at once, as a (batch sizes x layers) numpy computation;
the group count takes one native :func:`~layerwise_fast.partition.greedy` call per batch
size (about 10 microseconds for 1000 layers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Final, Literal, Sequence

import numpy as np
import numpy.typing as npt

from .oversize import POLICIES, oversize_rules
from .partition import greedy
from .scaling import UnitSizes, chunk_for
from .units import first_bool, format_bytes, printable

__all__ = ["DEFAULT_GRANULARITY", "MAX_BATCH", "MAX_TOKENS", "Sweep", "check_tokens", "sweep_sizes"]

IntColumn = npt.NDArray[np.int64]

DEFAULT_GRANULARITY: Final[int] = 64
"""Tokens: chunks are multiples of this unless told otherwise."""
MAX_BATCH: Final[int] = 2**31
"""Largest batch size a sweep or a plan accepts."""
MAX_TOKENS: Final[int] = 2**62
"""Most tokens (batch x sequence) a sweep or a plan accepts: their byte counts stay
within int64."""

_BLOCK_ELEMENTS: Final[int] = 1 << 20


@dataclass(frozen=True, eq=False)
class Sweep:
    """Chunk and group count for each batch size (all arrays of one length).

    Attributes:
        batch_sizes: the batch sizes (sequences per micro-batch), in the order given.
        chunk: tokens per chunk for each batch size (0 where nothing fits).
        groups: the fewest groups at that chunk (0 where nothing fits).
        treated: oversize layers tiled or quantized at that batch size (0 where
            nothing fits).
        fits: whether a plan exists at that batch size.
        capacity: bytes each group fits.
        sequence: tokens per sequence.
        granularity: chunks are multiples of this many tokens.
        on_oversize: the oversize policy.
        cost: the cost model.
        hardware: the device's name ("" where none was given); a given capacity
            replaces its own.
    """

    batch_sizes: IntColumn
    chunk: IntColumn
    groups: IntColumn
    treated: IntColumn
    fits: npt.NDArray[np.bool_]
    capacity: int
    sequence: int
    granularity: int
    on_oversize: str
    cost: str
    hardware: str = ""

    def __len__(self) -> int:
        return len(self.batch_sizes)

    @property
    def chunks(self) -> IntColumn:
        """Chunks per sequence for each batch size (0 where nothing fits)."""
        fitting = np.maximum(self.chunk, 1)
        return np.where(self.chunk > 0, -(-self.sequence // fitting), 0)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of plain Python values."""
        return {
            "hardware": self.hardware, "capacity": self.capacity, "sequence": self.sequence,
            "granularity": self.granularity, "on_oversize": self.on_oversize,
            "cost": self.cost, "batch_sizes": self.batch_sizes.tolist(),
            "chunk": self.chunk.tolist(), "chunks": self.chunks.tolist(),
            "groups": self.groups.tolist(),
            "treated": self.treated.tolist(), "fits": self.fits.tolist(),
        }

    def format_table(self) -> str:
        """One line per batch size: batch, chunk, chunks per sequence, groups, treated."""
        device = f"{printable(self.hardware)} · " if self.hardware else ""
        lines = [f"{device}capacity {format_bytes(self.capacity)} ({self.capacity} bytes) · "
                 f"sequence {self.sequence} · chunks of {self.granularity}-token multiples · "
                 f"on_oversize {self.on_oversize}",
                 f"{'batch':>8}  {'chunk':>7}  {'chunks':>7}  {'groups':>7}  {'treated':>7}"]
        for b, c, n, g, t in zip(self.batch_sizes.tolist(), self.chunk.tolist(),
                                 self.chunks.tolist(), self.groups.tolist(),
                                 self.treated.tolist()):
            if c:
                lines.append(f"{b:>8}  {c:>7}  {n:>7}  {g:>7}  {t:>7}")
            else:
                lines.append(f"{b:>8}  {'-':>7}  {'-':>7}  {'-':>7}  {'-':>7}  does not fit")
        return "\n".join(lines)


def sweep_sizes(
    units: UnitSizes,
    batch_sizes: Sequence[int] | npt.NDArray[np.integer[Any]],
    *,
    capacity: int,
    sequence: int,
    granularity: int = DEFAULT_GRANULARITY,
    cost: Literal["sum", "peak"] = "sum",
    on_oversize: str = "error",
    hardware: str = "",
    progress: Callable[[str, float], None] | None = None,
) -> Sweep:
    """The largest chunk and the fewest groups for each batch size, from unit sizes.

    See the module docstring; ``on_oversize="error"`` marks a batch size at which some
    layer fits at no chunk as not fitting (``fits`` False, chunk and groups 0) rather
    than raising. :func:`layerwise_fast.sweep` is the front end that takes a model and
    a hardware profile. ``progress(stage, fraction_done)``, where given, is called as
    the group counts are found (about a hundred times over a long sweep).

    Raises:
        TypeError, ValueError: malformed batch sizes or arguments.
    """
    batches = batch_sizes_array(batch_sizes)
    if on_oversize not in POLICIES:
        raise ValueError(f"on_oversize must be one of {', '.join(POLICIES)}, "
                         f"got {on_oversize!r}")
    check_tokens(int(batches.max()), sequence, "the largest of batch_sizes")
    smallest = min(granularity, sequence)
    tokens_min = batches * smallest
    rules = oversize_rules(units, capacity, capacity, on_oversize, int(tokens_min.max()))
    chunk = np.zeros(len(batches), dtype=np.int64)
    treated = np.zeros(len(batches), dtype=np.int64)
    block = max(1, _BLOCK_ELEMENTS // len(units))
    for start in range(0, len(batches), block):
        part = slice(start, start + block)
        limits, treated[part] = rules.block_limits(tokens_min[part])
        chunk[part] = [chunk_for(t, b, granularity, sequence)
                       for t, b in zip(limits.tolist(), batches[part].tolist())]
    groups = np.zeros(len(batches), dtype=np.int64)
    fitting = np.flatnonzero(chunk).tolist()
    step = max(1, len(fitting) // 100)
    for done, index in enumerate(fitting):
        if progress is not None and done % step == 0:
            progress("group counts", done / len(fitting))
        codes = rules.treatments(int(tokens_min[index]))
        columns = rules.sizes(int(batches[index] * chunk[index]), codes)
        sizes: Any = columns
        if cost == "sum":
            sizes = columns["weights"] + columns["activations"] + columns["buffers"]
        groups[index] = greedy(sizes, capacity, cost=cost).k
    treated[chunk == 0] = 0
    if progress is not None:
        progress("done", 1.0)
    return Sweep(batches, chunk, groups, treated, chunk > 0, capacity, sequence,
                 granularity, on_oversize, cost, hardware)


def check_tokens(batch: int, sequence: int, what: str) -> None:
    """ValueError unless ``batch x sequence`` is at most :data:`MAX_TOKENS`."""
    if batch * sequence > MAX_TOKENS:
        raise ValueError(f"{what} ({batch}) x sequence ({sequence}) is {batch * sequence} "
                         f"tokens, more than the {MAX_TOKENS} (2**62) a plan can count in bytes")


def batch_sizes_array(values: object) -> IntColumn:
    """Batch sizes as a 1-D int64 array of values in ``[1, MAX_BATCH]``.

    Raises:
        TypeError: not a 1-D sequence of integers.
        ValueError: empty, or a value out of range.
    """
    if isinstance(values, (str, bytes)):
        raise TypeError("batch_sizes must be a sequence of ints, got a string")
    index = first_bool(values)
    if index is not None:
        raise TypeError(f"batch_sizes[{index}] is a bool; batch sizes must be ints")
    array = np.asarray(values)
    items = array.tolist() if array.ndim == 1 and array.dtype == object else None
    if items is not None and all(isinstance(value, int) for value in items):
        bad = next((v for v in items if not 1 <= v <= MAX_BATCH), None)
        if bad is not None:  # beyond int64, where numpy keeps Python ints as objects
            raise ValueError(f"batch_sizes must be between 1 and {MAX_BATCH}, got {bad}")
        array = np.array(items, dtype=np.int64)
    if array.ndim != 1 or (array.size and array.dtype.kind not in "iu"):
        raise TypeError(f"batch_sizes must be a 1-D sequence of ints, got dtype "
                        f"{array.dtype} and shape {array.shape}")
    if not array.size:
        raise ValueError("batch_sizes is empty")
    if int(array.min()) <= 0 or int(array.max()) > MAX_BATCH:
        bad = int(array.min()) if int(array.min()) <= 0 else int(array.max())
        raise ValueError(f"batch_sizes must be between 1 and {MAX_BATCH}, got {bad}")
    return array.astype(np.int64)
