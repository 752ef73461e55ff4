"""Grid-wide barriers for the persistent cooperative kernels.

Two barriers with one calling convention, ``barrier(word)``, where ``word`` is a device
``uint32`` array of :data:`BARRIER_WORDS` elements owned by one launch:

``cg``
    Numba's ``cuda.cg.this_grid().sync()``: an out-of-line call into the CUDA device
    runtime (``cudaCGSynchronize``, linked from ``libcudadevrt``) at every barrier.

``atomic``
    Inline: thread 0 of each block counts its block in with one ``atom.inc`` on
    ``word[0]`` and spins on an acquire load of it; no call at the barrier (the kernel
    still calls the device runtime once, at entry, for its grid group: see below).

The atomic barrier counts arrivals modulo ``2 * blocks`` (``atom.inc`` wraps by itself):
a barrier moves the count from one multiple of ``blocks`` to the next, so the count is
in the lower half ``[0, blocks)`` before every other barrier and in the upper half
before the rest. A block knows its barrier is complete when the count has left the half
its own arrival landed in. No block can arrive at the next barrier before it has seen
that, so the half cannot change again until every block has arrived there too. Nothing
is reset: the count is back at a multiple of ``blocks`` after each barrier, and so after
each launch; each launch (each :class:`~layerwise_fast.cuda.kernels.Launch`) owns its
word, so ``blocks`` never changes under it.

Ordering follows the usual pattern: a block barrier, then thread 0 fences before it
arrives (its block's writes become visible first) and reads the count with
``ld.acquire.gpu`` (nothing after the barrier moves before it), then a block barrier.
The load takes the generic address Numba holds, so it is written without ``.global``.

A spin that outlasts :data:`SPIN_LIMIT` polls (seconds) adds one to ``word[1]`` and
gives up, so a broken barrier ends as a reported error, not a hung device; the
launchers check ``word[1]`` after the run.

A cooperative launch guarantees that every block is resident, which a spinning barrier
needs; the kernels obtain their grid group (``cuda.cg.this_grid()``) in both modes so
that Numba launches them cooperatively.

Under the simulator (grids of one block) the acquire load is a plain read.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import config as _numba_config
from numba import cuda as _numba_cuda
from numba import uint32

BARRIER_MODES: tuple[str, ...] = ("cg", "atomic")
"""Grid barrier implementations, by name."""

BARRIER_WORDS = 2
"""``uint32`` words a barrier needs: the arrival count and the timed-out spin count."""

SPIN_LIMIT = 1 << 23
"""Polls of the arrival count before a waiting block gives up (seconds at L2 latency)."""

# numba's modules build most attributes at run time, which type checkers cannot follow.
cuda: Any = _numba_cuda
config: Any = _numba_config
_SIMULATED = bool(config.ENABLE_CUDASIM)
_INLINED_DEVICE: dict[str, Any] = {"device": True} if _SIMULATED else {"device": True, "forceinline": True}
_U0 = np.uint32(0)
_U1 = np.uint32(1)
_SPIN_LIMIT_U = np.uint32(SPIN_LIMIT)


def _simulated_load_acquire() -> Any:
    @cuda.jit(device=True)
    def load_acquire(array, index):  # type: ignore[no-untyped-def]
        return array[index]

    return load_acquire


def _compiled_load_acquire() -> Any:  # pragma: no cover - needs NVVM, checked by PTX tests
    from llvmlite import ir  # type: ignore[import-untyped, unused-ignore]
    from numba import types
    from numba.cuda import cgutils  # type: ignore[attr-defined, unused-ignore]
    from numba.cuda.extending import intrinsic

    @intrinsic
    def load_acquire(typingctx, array, index):  # type: ignore[no-untyped-def]
        if not (isinstance(array, types.Array) and array.ndim == 1 and array.dtype == types.uint32):
            raise TypeError(f"load_acquire needs a 1-D uint32 array, got {array}")

        def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
            array_type, index_type = sig.args
            struct = context.make_array(array_type)(context, builder, value=args[0])
            position = context.cast(builder, args[1], index_type, types.intp)
            pointer = cgutils.get_item_pointer(context, builder, array_type, struct, [position],
                                               wraparound=False)
            word = ir.IntType(32)
            # Side effects and a memory clobber: the load is issued on every poll and
            # nothing is moved across it.
            load = ir.InlineAsm(ir.FunctionType(word, [pointer.type]),
                                "ld.acquire.gpu.u32 $0, [$1];", "=r,l,~{memory}",
                                side_effect=True)
            return builder.call(load, [pointer])

        return types.uint32(array, index), codegen

    return load_acquire


load_acquire = _simulated_load_acquire() if _SIMULATED else _compiled_load_acquire()


@cuda.jit(**_INLINED_DEVICE)
def cg_barrier(word):  # type: ignore[no-untyped-def]
    """Numba's cooperative-groups grid sync (``word`` unused)."""
    cuda.cg.this_grid().sync()


@cuda.jit(**_INLINED_DEVICE)
def atomic_barrier(word):  # type: ignore[no-untyped-def]
    """The inline grid barrier on ``word`` (see the module docstring)."""
    cuda.syncthreads()
    if cuda.threadIdx.x == 0:
        blocks = uint32(cuda.gridDim.x)
        cuda.threadfence()
        arrived = cuda.atomic.inc(word, 0, uint32(blocks + blocks - _U1))
        upper = arrived >= blocks
        polls = _U0
        while (load_acquire(word, 0) >= blocks) == upper:
            polls = uint32(polls + _U1)
            if polls == _SPIN_LIMIT_U:
                cuda.atomic.add(word, 1, _U1)
                break
        cuda.threadfence()
    cuda.syncthreads()


def barrier_function(mode: str) -> Any:
    """The device function of barrier ``mode`` (one of :data:`BARRIER_MODES`)."""
    if mode == "cg":
        return cg_barrier
    if mode == "atomic":
        return atomic_barrier
    raise ValueError(f"barrier must be one of {BARRIER_MODES}, got {mode!r}")


def new_barrier_word() -> Any:
    """A zeroed device word array for one launch's barrier."""
    return cuda.to_device(np.zeros(BARRIER_WORDS, dtype=np.uint32))


def timed_out_spins(word: Any) -> int:
    """How many waits on ``word`` gave up (synchronises with the device)."""
    return int(word.copy_to_host()[1])
