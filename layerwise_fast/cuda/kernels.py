"""Numba CUDA kernels: the chunked group kernel, its layer-by-layer control, the
calibration stream, and their host-side launchers.

Data layout
    Activations ``(tokens, hidden)`` are passed to the kernels as flat C-order vectors
    and weights as one flat float32 vector ``params`` of ``layers * 2 * hidden`` values
    (layer ``l``'s scale or rmsnorm weight at ``(2 l) * hidden``, its bias right after).

Thread mapping (shared by the chunked kernel and the control)
    A *team* of ``team`` threads (a power of two, 32 <= team <= threads per block) owns
    one row at a time. Where the rows allow it (:func:`packed_rows`: float16,
    ``hidden`` a multiple of ``PACK``, aligned arrays) lane ``t`` moves the 16-byte packs
    ``t, t + team, ...`` of ``PACK`` channels (:mod:`.packed`), ``packs_in_flight``
    (2, 4 or 8) loaded per step before the first is used; one compiled kernel per count.
    Otherwise it touches channels ``t, t + team, t + 2 team, ...`` and issues
    ``UNROLL`` independent scalar loads before it uses the first. Either way each warp
    instruction reads consecutive elements (coalesced). An
    ``rmsnorm`` row is reduced by its own team through shared memory with two block
    barriers (warp sums, then the team's sum): teams never straddle blocks, so no
    reduction crosses a block and the loop over rows stays persistent. Teams are
    numbered block by block; team ``k`` handles virtual rows ``k, k + teams, ...``.

Chunked group kernel (persistent, cooperative)
    One launch walks the tokens chunk by chunk (``chunk_tokens`` rows, a power of two)
    and applies every layer of the group to a chunk before it moves on, with a grid-wide
    barrier between layers (:mod:`.barrier`: Numba's cooperative-groups sync, or an
    inline atomic one; one compiled kernel each). Layer 0 reads ``x`` and writes
    ``y``; later layers update ``y`` in place. Virtual row ``v`` of layer ``l`` is row
    ``(v + l * rotation_step) & (chunk_tokens - 1)`` of the chunk: a bit mask, no
    runtime ``%``; with ``rotation_step`` = teams per block, each layer reads rows that
    another block (another SM) wrote, so the data comes from L2, never from the reading
    SM's own L1.

Layer-by-layer control
    The same device functions, one launch per layer over the whole tensor.

Calibration stream
    float32, grid-strided, in one of two accesses (:data:`STREAM_ACCESSES`). ``quad``
    (the default): one 16-byte load per lane and quad (:mod:`.packed`),
    ``STREAM_QUADS_IN_FLIGHT`` quads loaded before the first is used, so each warp
    instruction reads 512 contiguous bytes and each thread has as many bytes in flight
    as the float16 group kernels with their default 4 packs: the rates it measures are
    those of the kernels it judges. ``scalar``: ``UNROLL`` 4-byte loads in flight per
    thread, 128 contiguous bytes per warp instruction; in the recorded runs its large-size
    rate was 83% of a device-to-device copy (3.55 against 4.26 TB/s on an H200). (A
    stream of float32 packs, two 16-byte loads 32 bytes apart per lane, each warp
    instruction touching every other 16 bytes, measured slower still on an H200:
    3.2 TB/s at 240 MiB, and no L2 plateau.)

Indices
    Row numbers, channel numbers and element offsets are unsigned 32-bit values: no
    negative-index checks and no 64-bit multiplies; the launchers refuse tensors of more
    than ``MAX_ELEMENTS`` elements, so every offset and loop bound fits. Numba adds
    them in 64 bits, which NVVM turns into pointer increments in the unrolled loops.
    Chunks, teams and rows are located with shifts and masks, never ``%`` or division.

Values are computed in float32 whatever the storage dtype (float32, float16; bfloat16
where the device supports it), with fast-math activations (hardware exp, tanh and
reciprocal approximations).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import config as _numba_config
from numba import cuda as _numba_cuda
from numba import float32, uint32

from .barrier import BARRIER_MODES, SPIN_LIMIT, barrier_function, new_barrier_word, timed_out_spins
from .packed import PACK, QUAD, pack_functions, packed_dtype, quad_functions
from .reference import LayerSpec

UNROLL = 8
"""Elements each thread loads before it uses the first (per unrolled step)."""

PACKS_IN_FLIGHT_CHOICES: tuple[int, ...] = (2, 4, 8)
"""Packs a lane may load before it uses the first (packed rows): the kernels' choices."""

PACKS_IN_FLIGHT = 4
"""The default of :data:`PACKS_IN_FLIGHT_CHOICES`."""

STREAM_QUADS_IN_FLIGHT = PACKS_IN_FLIGHT
"""Quads each thread of the ``quad`` calibration stream loads before it uses the first:
64 bytes, as a lane of the float16 group kernels has in flight by default."""

WARP_SIZE = 32
MAX_THREADS_PER_BLOCK = 1024
MAX_WARPS_PER_BLOCK = MAX_THREADS_PER_BLOCK // WARP_SIZE
MAX_ELEMENTS = 2**31
"""Most elements an activation tensor, the weights or the calibration buffer may hold
(32-bit offsets with headroom for the loop bounds)."""

CODE_RELU, CODE_GELU_TANH, CODE_SILU, CODE_RMSNORM = 0, 1, 2, 3
_ACTIVATION_CODES = {"relu": CODE_RELU, "gelu_tanh": CODE_GELU_TANH, "silu": CODE_SILU}

# Typed constants: Numba types module-level numpy scalars as constants of their dtype, so
# index arithmetic stays uint32 and value arithmetic float32.
_U0 = np.uint32(0)
_U1 = np.uint32(1)
_ALL_ROWS_MASK = np.uint32(0xFFFFFFFF)
_WARP_MASK = np.uint32(31)
_WARP_LOG2 = np.uint32(5)
_UNROLL_U = np.uint32(UNROLL)
_UNROLL_M1 = np.uint32(UNROLL - 1)
_QUAD_LOG2 = np.uint32(QUAD.bit_length() - 1)
_STREAM_QUADS_U = np.uint32(STREAM_QUADS_IN_FLIGHT)
_STREAM_QUADS_M1 = np.uint32(STREAM_QUADS_IN_FLIGHT - 1)
_STREAM_VALUES = STREAM_QUADS_IN_FLIGHT * QUAD  # a local array's shape: a plain int
_F0 = np.float32(0.0)
_F1 = np.float32(1.0)
_F_HALF = np.float32(0.5)
_GELU_C = np.float32(math.sqrt(2.0 / math.pi))
_GELU_K = np.float32(0.044715)
_CODE_RELU = np.int32(CODE_RELU)
_CODE_GELU_TANH = np.int32(CODE_GELU_TANH)
_CODE_SILU = np.int32(CODE_SILU)
_CODE_RMSNORM = np.int32(CODE_RMSNORM)

SUPPORTED_DTYPES: tuple[str, ...] = ("float32", "float16", "bfloat16")

# numba's modules build most attributes at run time, which type checkers cannot follow.
cuda: Any = _numba_cuda
config: Any = _numba_config


def is_simulated() -> bool:
    """True when Numba runs kernels on the CPU simulator (``NUMBA_ENABLE_CUDASIM=1``)."""
    return bool(config.ENABLE_CUDASIM)


# Device functions are inlined at the NVVM level (an option the simulator's jit does not
# take), so that constant arguments specialise each copy. Registers per thread from
# ptxas 13.5 for sm_90, with no spills in any kernel, float16 (the packed path):
# chunked kernel 63-64 with 2 or 4 packs in flight, 75-80 with 8; control 40, 46, 64.
# At 256 threads per block that keeps 4, 4 and 3 chunked blocks per SM. The float32
# kernels, which never take the packed path but still compile it, take 67-122.
_SIMULATED = is_simulated()
_INLINED_DEVICE: dict[str, Any] = {"device": True} if _SIMULATED else {"device": True, "forceinline": True}
load_pack, store_pack, load_words, widen_words = pack_functions(_SIMULATED)
load_quad, store_quad = quad_functions(_SIMULATED)
_PACK_U = np.uint32(PACK)
# Module constants: local array shapes must be compile-time literals.
_TWO_PACKS = 2 * PACK


# --------------------------------------------------------------------------- device code


@cuda.jit(device=True, fastmath=True)
def _activate(value, code):  # type: ignore[no-untyped-def]
    """The activation ``code`` applied to a float32 ``value`` (fast math: approximate
    exp, tanh and division; the float32 tolerance of the checks allows for them)."""
    if code == _CODE_RELU:
        return value if value > _F0 else _F0
    if code == _CODE_GELU_TANH:
        inner = _GELU_C * (value + _GELU_K * value * value * value)
        return _F_HALF * value * (_F1 + float32(math.tanh(inner)))
    # silu: x * sigmoid(x) from exp(-|x|) <= 1, which cannot overflow; a select, no branch.
    e = float32(math.exp(-abs(value)))
    r = _F1 / (_F1 + e)
    return value * (r if value >= _F0 else e * r)


@cuda.jit(**_INLINED_DEVICE)
def _affine_row(src, dst, params, row_off, w_off, hidden, code, lane, team):  # type: ignore[no-untyped-def]
    """``act(x * scale + bias)`` over this lane's channels of the row at ``row_off``."""
    buf = cuda.local.array(UNROLL, float32)
    b_off = uint32(w_off + hidden)
    span = uint32(team * _UNROLL_M1)
    step = uint32(team * _UNROLL_U)
    ch = lane
    while ch + span < hidden:
        for j in range(UNROLL):
            buf[j] = float32(src[row_off + ch + uint32(j) * team])
        for j in range(UNROLL):
            k = ch + uint32(j) * team
            dst[row_off + k] = _activate(buf[j] * params[w_off + k] + params[b_off + k], code)
        ch += step
    for j in range(UNROLL):
        k = ch + uint32(j) * team
        if k < hidden:
            v = float32(src[row_off + k]) * params[w_off + k] + params[b_off + k]
            dst[row_off + k] = _activate(v, code)


@cuda.jit(device=True)
def _sum_squares_row(src, row_off, hidden, lane, team):  # type: ignore[no-untyped-def]
    """Sum of ``x**2`` over this lane's channels of the row at ``row_off`` (float32)."""
    acc = cuda.local.array(UNROLL, float32)
    for j in range(UNROLL):
        acc[j] = _F0
    span = uint32(team * _UNROLL_M1)
    step = uint32(team * _UNROLL_U)
    ch = lane
    while ch + span < hidden:
        for j in range(UNROLL):
            v = float32(src[row_off + ch + uint32(j) * team])
            acc[j] += v * v
        ch += step
    for j in range(UNROLL):
        k = ch + uint32(j) * team
        if k < hidden:
            v = float32(src[row_off + k])
            acc[j] += v * v
    total = _F0
    for j in range(UNROLL):
        total += acc[j]
    return total


@cuda.jit(device=True)
def _scale_row(src, dst, params, row_off, w_off, hidden, factor, lane, team):  # type: ignore[no-untyped-def]
    """``x * factor * weight`` over this lane's channels of the row at ``row_off``."""
    buf = cuda.local.array(UNROLL, float32)
    span = uint32(team * _UNROLL_M1)
    step = uint32(team * _UNROLL_U)
    ch = lane
    while ch + span < hidden:
        for j in range(UNROLL):
            buf[j] = float32(src[row_off + ch + uint32(j) * team])
        for j in range(UNROLL):
            k = ch + uint32(j) * team
            dst[row_off + k] = buf[j] * factor * params[w_off + k]
        ch += step
    for j in range(UNROLL):
        k = ch + uint32(j) * team
        if k < hidden:
            dst[row_off + k] = float32(src[row_off + k]) * factor * params[w_off + k]


# Packed rows: lane ``t`` owns packs ``t, t + team, ...`` of ``PACK`` consecutive
# channels and moves them ``packs`` at a time (``packs_in_flight``): every activation
# load of a step is issued before the first is used (see packed.py). A step past the
# row's end skips the missing packs (a predicate per pack), so short rows keep their
# packs in flight too. One set of row functions per count: the count sizes their local
# arrays, which must be compile-time constants.


@cuda.jit(**_INLINED_DEVICE)
def _affine_pack(x, at, params, w_off, b_off, k, code):  # type: ignore[no-untyped-def]
    """``x[at:at+PACK] = act(x * scale + bias)`` for channels ``k, ..., k + PACK - 1``.

    The scale and bias (L1 hits) are loaded just before use, to save registers.
    """
    w = cuda.local.array(_TWO_PACKS, float32)
    load_pack(params, w_off + k, w, 0)
    load_pack(params, b_off + k, w, PACK)
    for j in range(PACK):
        x[at + j] = _activate(x[at + j] * w[j] + w[PACK + j], code)


@cuda.jit(**_INLINED_DEVICE)
def _scale_pack(x, at, params, w_off, b_off, k, factor):  # type: ignore[no-untyped-def]
    """``x[at:at+PACK] *= factor * weight`` for channels ``k, ..., k + PACK - 1`` (no bias)."""
    weight = cuda.local.array(PACK, float32)
    load_pack(params, w_off + k, weight, 0)
    for j in range(PACK):
        x[at + j] = x[at + j] * factor * weight[j]


def _packed_row_functions(packs: int) -> tuple[Any, Any, Any]:
    """``(affine_row, sum_squares_row, scale_row)`` over packs, ``packs`` in flight per lane."""
    elements = packs * PACK
    packs_u = np.uint32(packs)

    @cuda.jit(**_INLINED_DEVICE)
    def load_packs(src, first, stride, end, words):  # type: ignore[no-untyped-def]
        """Load packs ``first, first + stride, ...`` below ``end`` (element offsets) into
        ``words``, unwidened (see packed.py)."""
        for j in range(packs):
            at = uint32(first + uint32(j) * stride)
            if at < end:
                load_words(src, at, words, j * PACK)

    def row_map(apply_pack: Any) -> Any:
        """A row pass ``dst = apply_pack(src)`` over this lane's packs, with the
        layer's weights at ``w_off`` (bias at ``w_off + hidden``) and one argument."""

        @cuda.jit(**_INLINED_DEVICE)
        def run(src, dst, params, row_off, w_off, hidden, argument, lane, team):  # type: ignore[no-untyped-def]
            words = cuda.local.array(elements, float32)
            x = cuda.local.array(PACK, float32)
            b_off = uint32(w_off + hidden)
            stride = uint32(team * _PACK_U)
            c = uint32(lane * _PACK_U)
            while c < hidden:
                load_packs(src, uint32(row_off + c), stride, uint32(row_off + hidden), words)
                for j in range(packs):
                    k = uint32(c + uint32(j) * stride)
                    if k < hidden:
                        widen_words(src, words, j * PACK, x, 0)
                        apply_pack(x, 0, params, w_off, b_off, k, argument)
                        store_pack(dst, row_off + k, x, 0)
                c = uint32(c + stride * packs_u)

        return run

    @cuda.jit(**_INLINED_DEVICE)
    def sum_squares_row(src, row_off, hidden, lane, team):  # type: ignore[no-untyped-def]
        """:func:`_sum_squares_row` over this lane's packs."""
        words = cuda.local.array(elements, float32)
        x = cuda.local.array(PACK, float32)
        acc = cuda.local.array(PACK, float32)
        for i in range(PACK):
            acc[i] = _F0
        stride = uint32(team * _PACK_U)
        c = uint32(lane * _PACK_U)
        while c < hidden:
            load_packs(src, uint32(row_off + c), stride, uint32(row_off + hidden), words)
            for j in range(packs):
                if uint32(c + uint32(j) * stride) < hidden:
                    widen_words(src, words, j * PACK, x, 0)
                    for i in range(PACK):
                        acc[i] += x[i] * x[i]
            c = uint32(c + stride * packs_u)
        total = _F0
        for i in range(PACK):
            total += acc[i]
        return total

    # affine_row(..., code, ...) is :func:`_affine_row` and scale_row(..., factor, ...)
    # :func:`_scale_row`, over this lane's packs (``hidden`` a multiple of ``PACK``).
    return row_map(_affine_pack), sum_squares_row, row_map(_scale_pack)


@cuda.jit(device=True)
def _team_sum(scratch, warp_sums, tid, lane, team, value):  # type: ignore[no-untyped-def]
    """Sum of ``value`` over the team, returned to every lane, with two block barriers.

    Each warp's first lane adds its warp's 32 values; every lane then adds its team's
    warp sums. Every thread of the block must call it the same number of times. A second
    call may follow at once: its writes come after barriers that all earlier reads precede.
    """
    scratch[tid] = value
    cuda.syncthreads()
    if tid & _WARP_MASK == _U0:
        warp_total = _F0
        for k in range(WARP_SIZE):
            warp_total += scratch[uint32(tid + uint32(k))]
        warp_sums[tid >> _WARP_LOG2] = warp_total
    cuda.syncthreads()
    first_warp = uint32(tid - lane) >> _WARP_LOG2
    total = _F0
    w = _U0
    while w < team >> _WARP_LOG2:
        total += warp_sums[uint32(first_warp + w)]
        w = uint32(w + _U1)
    return total


def _apply_layer_function(packs: int) -> Any:
    """The device function applying one layer to a range of rows, ``packs`` in flight."""
    affine_row_packed, sum_squares_row_packed, scale_row_packed = _packed_row_functions(packs)

    @cuda.jit(device=True)
    def apply_layer(  # type: ignore[no-untyped-def]
        src, dst, hidden, params, layer, code, eps, row0, rows_here, virtual_rows, row_mask,
        rotation, block_first_team, team_in_block, team_count, lane, team, tid, scratch, warp_sums,
        packed,
    ):
        """Apply layer ``layer`` to rows ``row0 + ((v + rotation) & row_mask)``, ``v < virtual_rows``.

        Rows at or past ``rows_here`` (a partial last chunk) are skipped. The loop count is
        the same for every thread of a block, so the rmsnorm barriers line up.
        """
        w_off = uint32(layer * uint32(hidden + hidden))
        first = block_first_team
        while first < virtual_rows:
            v = uint32(first + team_in_block)
            r = uint32(v + rotation) & row_mask
            active = v < virtual_rows and r < rows_here
            row_off = uint32(uint32(row0 + r) * hidden)
            if code == _CODE_RMSNORM:
                partial = _F0
                if active:
                    if packed:
                        partial = sum_squares_row_packed(src, row_off, hidden, lane, team)
                    else:
                        partial = _sum_squares_row(src, row_off, hidden, lane, team)
                total = _team_sum(scratch, warp_sums, tid, lane, team, partial)
                if active:
                    factor = _F1 / float32(math.sqrt(total / float32(hidden) + eps))
                    if packed:
                        scale_row_packed(src, dst, params, row_off, w_off, hidden, factor, lane, team)
                    else:
                        _scale_row(src, dst, params, row_off, w_off, hidden, factor, lane, team)
            elif active and packed:
                # One call per activation with a constant code: each inlined copy of the
                # row loop keeps its own activation and no per-element branch.
                if code == _CODE_RELU:
                    affine_row_packed(src, dst, params, row_off, w_off, hidden, _CODE_RELU, lane, team)
                elif code == _CODE_GELU_TANH:
                    affine_row_packed(src, dst, params, row_off, w_off, hidden, _CODE_GELU_TANH, lane, team)
                else:
                    affine_row_packed(src, dst, params, row_off, w_off, hidden, _CODE_SILU, lane, team)
            elif active:
                if code == _CODE_RELU:
                    _affine_row(src, dst, params, row_off, w_off, hidden, _CODE_RELU, lane, team)
                elif code == _CODE_GELU_TANH:
                    _affine_row(src, dst, params, row_off, w_off, hidden, _CODE_GELU_TANH, lane, team)
                else:
                    _affine_row(src, dst, params, row_off, w_off, hidden, _CODE_SILU, lane, team)
            first = uint32(first + team_count)

    return apply_layer


def check_packs_in_flight(packs_in_flight: int) -> None:
    """Raise ValueError unless ``packs_in_flight`` is one of :data:`PACKS_IN_FLIGHT_CHOICES`."""
    if packs_in_flight not in PACKS_IN_FLIGHT_CHOICES:
        raise ValueError(f"packs_in_flight must be one of {PACKS_IN_FLIGHT_CHOICES}, got {packs_in_flight!r}")


# Dispatchers built so far, by their choices: each compiles on first use, once.
_APPLY_LAYER: dict[int, Any] = {}
_CHUNKED_KERNELS: dict[tuple[str, int], Any] = {}
_LAYER_KERNELS: dict[int, Any] = {}


def _apply_layer_for(packs_in_flight: int) -> Any:
    if packs_in_flight not in _APPLY_LAYER:
        _APPLY_LAYER[packs_in_flight] = _apply_layer_function(packs_in_flight)
    return _APPLY_LAYER[packs_in_flight]


def chunked_group_kernel(barrier: str, packs_in_flight: int = PACKS_IN_FLIGHT) -> Any:
    """The chunked group kernel with grid barrier ``barrier`` (:data:`BARRIER_MODES`) and
    ``packs_in_flight`` (:data:`PACKS_IN_FLIGHT_CHOICES`); one dispatcher per pair."""
    check_packs_in_flight(packs_in_flight)
    key = (barrier, packs_in_flight)
    if key not in _CHUNKED_KERNELS:
        _CHUNKED_KERNELS[key] = _build_chunked_kernel(barrier_function(barrier), _apply_layer_for(packs_in_flight))
    return _CHUNKED_KERNELS[key]


def _build_chunked_kernel(sync: Any, apply_layer: Any) -> Any:

    @cuda.jit
    def kernel(  # type: ignore[no-untyped-def]
        x, y, tokens, hidden, codes, params, eps, chunk_log2, team_log2, rotation_step, packed,
        barrier_word,
    ):
        """Persistent cooperative kernel: every layer of a group over each chunk of tokens.

        Args (device):
            x, y: flat activations of ``tokens * hidden`` elements; ``x`` is read by layer
                0 only, ``y`` is written by layer 0 and updated in place by the others.
            tokens, hidden: uint32 shape of the activations.
            codes: int32 ``(layers,)`` layer codes; params: flat float32 weights;
            eps: float32 ``(layers,)``.
            chunk_log2, team_log2, rotation_step: uint32 (see the module docstring).
            packed: uint32, nonzero to move rows in packs (see :func:`packed_rows`).
            barrier_word: uint32 ``(BARRIER_WORDS,)``, this launch's barrier state.
        """
        cuda.cg.this_grid()  # a cooperative launch: every block resident, as barriers need
        scratch = cuda.shared.array(MAX_THREADS_PER_BLOCK, float32)
        warp_sums = cuda.shared.array(MAX_WARPS_PER_BLOCK, float32)
        tid = uint32(cuda.threadIdx.x)
        team = _U1 << team_log2
        lane = tid & uint32(team - _U1)
        teams_per_block = uint32(cuda.blockDim.x) >> team_log2
        block_first_team = uint32(uint32(cuda.blockIdx.x) * teams_per_block)
        team_count = uint32(uint32(cuda.gridDim.x) * teams_per_block)
        team_in_block = tid >> team_log2
        chunk_tokens = _U1 << chunk_log2
        row_mask = uint32(chunk_tokens - _U1)
        layers = uint32(codes.shape[0])
        row0 = _U0
        while row0 < tokens:
            rows_here = min(chunk_tokens, uint32(tokens - row0))
            layer = _U0
            while layer < layers:
                apply_layer(
                    x if layer == _U0 else y, y, hidden, params, layer, codes[layer], eps[layer],
                    row0, rows_here, chunk_tokens, row_mask, uint32(layer * rotation_step),
                    block_first_team, team_in_block, team_count, lane, team, tid, scratch,
                    warp_sums, packed,
                )
                layer = uint32(layer + _U1)
                if layer < layers:
                    sync(barrier_word)
            row0 = uint32(row0 + chunk_tokens)

    return kernel


def layer_kernel(packs_in_flight: int = PACKS_IN_FLIGHT) -> Any:
    """The control's kernel, ``packs_in_flight`` per lane (one dispatcher per count)."""
    check_packs_in_flight(packs_in_flight)
    if packs_in_flight not in _LAYER_KERNELS:
        _LAYER_KERNELS[packs_in_flight] = _build_layer_kernel(_apply_layer_for(packs_in_flight))
    return _LAYER_KERNELS[packs_in_flight]


def _build_layer_kernel(apply_layer: Any) -> Any:

    @cuda.jit
    def kernel(src, dst, tokens, hidden, params, layer, code, eps, team_log2, packed):  # type: ignore[no-untyped-def]
        """Layer ``layer`` over the whole tensor, ``dst = layer(src)``.

        Rows are grid-strided over all teams; arguments as in the chunked group kernel
        (``layer``: uint32 index into ``params``, ``code``: int32, ``eps``: float32).
        """
        scratch = cuda.shared.array(MAX_THREADS_PER_BLOCK, float32)
        warp_sums = cuda.shared.array(MAX_WARPS_PER_BLOCK, float32)
        tid = uint32(cuda.threadIdx.x)
        team = _U1 << team_log2
        teams_per_block = uint32(cuda.blockDim.x) >> team_log2
        apply_layer(
            src, dst, hidden, params, layer, code, eps, _U0, tokens, tokens, _ALL_ROWS_MASK, _U0,
            uint32(uint32(cuda.blockIdx.x) * teams_per_block), tid >> team_log2,
            uint32(uint32(cuda.gridDim.x) * teams_per_block), tid & uint32(team - _U1), team, tid,
            scratch, warp_sums, packed,
        )

    return kernel


@cuda.jit(**_INLINED_DEVICE)
def _scalar_pass(buf, n, first, stride, scale, shift):  # type: ignore[no-untyped-def]
    """One pass of the scalar stream over elements ``first, first + stride, ...``."""
    span = uint32(stride * _UNROLL_M1)
    step = uint32(stride * _UNROLL_U)
    vals = cuda.local.array(UNROLL, float32)
    start = first
    while start + span < n:
        for j in range(UNROLL):
            vals[j] = buf[start + uint32(j) * stride]
        for j in range(UNROLL):
            buf[start + uint32(j) * stride] = vals[j] * scale + shift
        start += step
    for j in range(UNROLL):
        i = start + uint32(j) * stride
        if i < n:
            buf[i] = buf[i] * scale + shift


@cuda.jit(**_INLINED_DEVICE)
def _quad_pass(buf, n, first, stride, scale, shift):  # type: ignore[no-untyped-def]
    """One pass of the quad stream: quads ``first, first + stride, ...``,
    ``STREAM_QUADS_IN_FLIGHT`` loaded before the first is used; the ``n mod QUAD``
    elements past the last quad go to threads ``first`` = 0, 1, 2."""
    quads = uint32(n >> _QUAD_LOG2)
    span = uint32(stride * _STREAM_QUADS_M1)
    step = uint32(stride * _STREAM_QUADS_U)
    vals = cuda.local.array(_STREAM_VALUES, float32)
    quad = first
    while quad + span < quads:
        for j in range(STREAM_QUADS_IN_FLIGHT):
            load_quad(buf, uint32(quad + uint32(j) * stride) << _QUAD_LOG2, vals, j * QUAD)
        for j in range(_STREAM_VALUES):
            vals[j] = vals[j] * scale + shift
        for j in range(STREAM_QUADS_IN_FLIGHT):
            store_quad(buf, uint32(quad + uint32(j) * stride) << _QUAD_LOG2, vals, j * QUAD)
        quad += step
    for j in range(STREAM_QUADS_IN_FLIGHT):
        q = uint32(quad + uint32(j) * stride)
        if q < quads:
            load_quad(buf, q << _QUAD_LOG2, vals, 0)
            for k in range(QUAD):
                vals[k] = vals[k] * scale + shift
            store_quad(buf, q << _QUAD_LOG2, vals, 0)
    tail = uint32(uint32(quads << _QUAD_LOG2) + first)
    if tail < n:
        buf[tail] = buf[tail] * scale + shift


def _stream_kernel(barrier: Any, one_pass: Any) -> Any:
    """The calibration stream making ``one_pass`` (:func:`_scalar_pass` or
    :func:`_quad_pass`), with grid barrier ``barrier`` (see :mod:`.barrier`)."""

    @cuda.jit
    def stream_passes_kernel(buf, passes, scale, shift, barrier_word):  # type: ignore[no-untyped-def]
        """Calibration: ``passes`` in-place passes ``buf = buf * scale + shift`` over float32.

        Persistent and cooperative, with a grid-wide barrier between passes. Pass ``p``
        hands block ``b``'s share to block ``(b + p) mod blocks`` (a wrap-around counter,
        no ``%``), so a block never re-reads what it wrote itself.
        """
        cuda.cg.this_grid()  # a cooperative launch: every block resident, as barriers need
        n = uint32(buf.shape[0])
        threads = uint32(cuda.blockDim.x)
        blocks = uint32(cuda.gridDim.x)
        stride = uint32(threads * blocks)
        block = uint32(cuda.blockIdx.x)
        done = _U0
        while done < passes:
            one_pass(buf, n, uint32(block * threads + uint32(cuda.threadIdx.x)), stride, scale, shift)
            block = uint32(block + _U1)
            if block == blocks:
                block = _U0
            done = uint32(done + _U1)
            if done < passes:
                barrier(barrier_word)

    return stream_passes_kernel


STREAM_ACCESSES: tuple[str, ...] = ("quad", "scalar")
"""The calibration stream's accesses (see the module docstring); the first is the default."""

STREAM_ELEMENTS_IN_FLIGHT: dict[str, int] = {"quad": _STREAM_VALUES, "scalar": UNROLL}
"""float32 elements each thread of the calibration stream loads before it uses the first,
per access of :data:`STREAM_ACCESSES`."""

_STREAM_PASSES = {"quad": _quad_pass, "scalar": _scalar_pass}
STREAM_KERNELS: dict[str, dict[str, Any]] = {
    access: {mode: _stream_kernel(barrier_function(mode), _STREAM_PASSES[access]) for mode in BARRIER_MODES}
    for access in STREAM_ACCESSES
}
"""The calibration stream for each access of :data:`STREAM_ACCESSES`, then each grid
barrier of :data:`BARRIER_MODES`."""


def _barrier_rounds_kernel(barrier: Any) -> Any:
    """A kernel that only crosses ``rounds`` grid barriers: their cost, alone."""

    @cuda.jit
    def barrier_rounds_kernel(rounds, barrier_word):  # type: ignore[no-untyped-def]
        cuda.cg.this_grid()  # a cooperative launch: every block resident, as barriers need
        done = _U0
        while done < rounds:
            barrier(barrier_word)
            done = uint32(done + _U1)

    return barrier_rounds_kernel


BARRIER_KERNELS: dict[str, Any] = {mode: _barrier_rounds_kernel(barrier_function(mode)) for mode in BARRIER_MODES}
"""The barrier-only kernel for each grid barrier of :data:`BARRIER_MODES`."""


@cuda.jit
def fill_kernel(out, value):  # type: ignore[no-untyped-def]
    """Set every element of the flat array ``out`` to ``value`` (used to poison outputs)."""
    n = uint32(out.shape[0])
    stride = uint32(uint32(cuda.blockDim.x) * uint32(cuda.gridDim.x))
    i = uint32(uint32(cuda.blockIdx.x) * uint32(cuda.blockDim.x) + uint32(cuda.threadIdx.x))
    while i < n:
        out[i] = value
        i = uint32(i + stride)


@cuda.jit
def mismatch_kernel(actual, expected, tolerance, count):  # type: ignore[no-untyped-def]
    """Add to ``count[0]`` the elements of the flat arrays where either is not finite or
    ``|a - e| > tolerance x (1 + |e|)``."""
    n = uint32(actual.shape[0])
    stride = uint32(uint32(cuda.blockDim.x) * uint32(cuda.gridDim.x))
    i = uint32(uint32(cuda.blockIdx.x) * uint32(cuda.blockDim.x) + uint32(cuda.threadIdx.x))
    found = uint32(0)
    while i < n:
        a = float32(actual[i])
        e = float32(expected[i])
        if not (math.isfinite(a) and math.isfinite(e) and abs(a - e) <= tolerance * (_F1 + abs(e))):
            found = uint32(found + _U1)
        i = uint32(i + stride)
    if found > _U0:
        cuda.atomic.add(count, 0, found)


# --------------------------------------------------------------------------- host side


@dataclass(frozen=True)
class DeviceInfo:
    """The current CUDA device, or the simulator.

    Attributes:
        name: device name (``"simulator"`` under the simulator).
        compute_capability: ``(major, minor)``.
        multiprocessors: streaming multiprocessors (1 under the simulator).
        l2_bytes: nominal L2 cache size in bytes, ``None`` under the simulator.
        simulated: True under ``NUMBA_ENABLE_CUDASIM=1``.
        bfloat16: whether kernels on this device can store bfloat16.
    """

    name: str
    compute_capability: tuple[int, int]
    multiprocessors: int
    l2_bytes: int | None
    simulated: bool
    bfloat16: bool

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary of the fields."""
        return {
            "name": self.name,
            "compute_capability": list(self.compute_capability),
            "multiprocessors": self.multiprocessors,
            "l2_bytes": self.l2_bytes,
            "simulated": self.simulated,
            "bfloat16": self.bfloat16,
        }


def device_info() -> DeviceInfo:
    """Describe the current device (or the simulator)."""
    if is_simulated():
        return DeviceInfo("simulator", (0, 0), 1, None, True, False)
    dev = cuda.get_current_device()
    name = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
    major, minor = dev.compute_capability
    return DeviceInfo(
        name=name,
        compute_capability=(int(major), int(minor)),
        multiprocessors=int(dev.MULTIPROCESSOR_COUNT),
        l2_bytes=int(dev.L2_CACHE_SIZE),
        simulated=False,
        bfloat16=bfloat16_dtype() is not None and bool(cuda.is_bfloat16_supported()),
    )


def bfloat16_dtype() -> np.dtype | None:
    """numpy's bfloat16 dtype (from ``ml_dtypes``) or ``None`` where it is not installed."""
    try:
        import ml_dtypes  # type: ignore[import-not-found]
    except ImportError:
        return None
    dtype: np.dtype = np.dtype(ml_dtypes.bfloat16)
    return dtype


def storage_dtype(name: str) -> np.dtype:
    """The numpy dtype for an activation dtype name in :data:`SUPPORTED_DTYPES`.

    Raises:
        ValueError: unknown name, or bfloat16 where the simulator runs, ``ml_dtypes``
            is missing or the device lacks it.
    """
    if name not in SUPPORTED_DTYPES:
        raise ValueError(f"dtype must be one of {SUPPORTED_DTYPES}, got {name!r}")
    if name != "bfloat16":
        return np.dtype(name)
    if is_simulated():
        raise ValueError("dtype 'bfloat16' is not available under the simulator: use float32 or float16")
    dtype = bfloat16_dtype()
    if dtype is None or not cuda.is_bfloat16_supported():
        raise ValueError(
            "dtype 'bfloat16' needs the ml_dtypes package and a device with bfloat16 support"
        )
    return dtype


@dataclass(frozen=True)
class LaunchGeometry:
    """How a kernel was launched.

    Attributes:
        blocks: blocks in the grid.
        threads_per_block: threads per block.
        team_size: threads that share one row (row kernels; 0 for the calibration stream).
        packed: whether rows moved in 16-byte packs (see :func:`packed_rows`).
        barrier: the grid barrier of a persistent kernel (:data:`BARRIER_MODES`), else None.
        packs_in_flight: packs each lane loaded at a time when ``packed``, else None.
    """

    blocks: int
    threads_per_block: int
    team_size: int
    packed: bool = False
    barrier: str | None = None
    packs_in_flight: int | None = None


@dataclass
class DeviceGroup:
    """A group's layers and weights resident on the device (uploaded once, reused per run).

    Attributes:
        layers: the layer specs.
        hidden: channels per row.
        codes: device int32 ``(layers,)`` layer codes.
        params: device float32 flat weights, ``layers * 2 * hidden`` values.
        eps: device float32 ``(layers,)``.
    """

    layers: tuple[LayerSpec, ...]
    hidden: int
    codes: Any
    params: Any
    eps: Any


def layer_codes(layers: Sequence[LayerSpec]) -> np.ndarray:
    """The int32 kernel code of each layer (the activation code or ``CODE_RMSNORM``)."""
    codes = [
        CODE_RMSNORM if layer.kind == "rmsnorm" else _ACTIVATION_CODES[str(layer.activation)]
        for layer in layers
    ]
    return np.asarray(codes, dtype=np.int32)


def upload_group(layers: Sequence[LayerSpec], params: np.ndarray) -> DeviceGroup:
    """Copy a group's layer codes, weights (``(layers, 2, hidden)`` float32) and eps to the device."""
    if len(layers) == 0:
        raise ValueError("a group needs at least one layer, got 0")
    if params.ndim != 3 or params.shape[:2] != (len(layers), 2) or params.shape[2] < 1:
        raise ValueError(
            f"params must have shape ({len(layers)}, 2, hidden >= 1) for {len(layers)} layers, "
            f"got {params.shape}"
        )
    if params.size > MAX_ELEMENTS:
        raise ValueError(f"params holds {params.size} values, more than {MAX_ELEMENTS}")
    flat = np.ascontiguousarray(params, dtype=np.float32).reshape(-1)
    eps = np.asarray([layer.eps for layer in layers], dtype=np.float32)
    return DeviceGroup(
        layers=tuple(layers),
        hidden=int(params.shape[2]),
        codes=cuda.to_device(layer_codes(layers)),
        params=cuda.to_device(flat),
        eps=cuda.to_device(eps),
    )


def _is_power_of_two(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0


def _floor_power_of_two(value: int) -> int:
    return 1 << (max(1, value).bit_length() - 1)


def _ceil_power_of_two(value: int) -> int:
    return 1 if value <= 1 else 1 << (value - 1).bit_length()


def check_threads_per_block(threads_per_block: int) -> None:
    """Raise ValueError unless ``threads_per_block`` is a power of two in [32, 1024]."""
    if not (
        _is_power_of_two(threads_per_block)
        and WARP_SIZE <= threads_per_block <= MAX_THREADS_PER_BLOCK
    ):
        raise ValueError(
            f"threads_per_block must be a power of two in [{WARP_SIZE}, "
            f"{MAX_THREADS_PER_BLOCK}], got {threads_per_block}"
        )


def team_size_for(
    threads_per_block: int, total_threads: int, rows: int, hidden: int, per_lane: int = UNROLL
) -> int:
    """Threads per row: enough to spread ``rows`` over ``total_threads``, no more than a row can use.

    A power of two in ``[32, threads_per_block]``: at most ``total_threads / rows``
    (so every team gets a row) and at most ``hidden / per_lane`` rounded up (so every
    lane gets a full step of the row: ``UNROLL`` elements, or ``packs_in_flight`` packs),
    but never below one warp.
    """
    by_rows = _floor_power_of_two(total_threads // max(1, rows))
    by_row_length = _ceil_power_of_two(-(-hidden // per_lane))
    return max(WARP_SIZE, min(threads_per_block, by_rows, by_row_length))


def _check_launch_options(threads_per_block: int, team_size: int | None) -> None:
    check_threads_per_block(threads_per_block)
    if team_size is not None and not (
        _is_power_of_two(team_size) and WARP_SIZE <= team_size <= threads_per_block
    ):
        raise ValueError(
            f"team_size must be a power of two in [{WARP_SIZE}, threads_per_block="
            f"{threads_per_block}], got {team_size}"
        )


def _team_or_default(
    team_size: int | None, threads_per_block: int, total_threads: int, rows: int, hidden: int,
    packs_in_flight: int | None,
) -> int:
    """``team_size``, or :func:`team_size_for` with one step per lane: ``packs_in_flight``
    packs when rows move in packs (not None), else ``UNROLL`` elements."""
    if team_size is None:
        return team_size_for(threads_per_block, total_threads, rows, hidden,
                             UNROLL if packs_in_flight is None else packs_in_flight * PACK)
    return team_size


def _data_address(array: Any) -> int:
    interface = getattr(array, "__cuda_array_interface__", None)  # absent under the simulator
    return 0 if interface is None else int(interface["data"][0])


def packed_rows(x: Any, y: Any) -> bool:
    """Whether the row kernels move ``x`` and ``y`` in packs (:mod:`.packed`): a dtype
    that :func:`~.packed.packed_dtype` accepts (float16), rows a whole number of packs,
    both arrays 16-byte aligned."""
    hidden = int(x.shape[x.ndim - 1])  # device shapes refuse negative indices
    return (
        packed_dtype(np.dtype(x.dtype).name)
        and hidden % PACK == 0
        and all(_data_address(a) % 16 == 0 for a in (x, y))
    )


def resident_block_limit(kernel: Any, args: Sequence[Any], threads_per_block: int) -> int:
    """Most blocks of ``kernel`` that fit on the device at once (a cooperative grid's limit).

    The occupancy of the kernel compiled for these arguments times the number of
    multiprocessors; 1 under the simulator, which runs cooperative grids of one block.
    Compiles the kernel for ``args`` if it is not compiled yet.
    """
    if is_simulated():
        return 1
    signature = tuple(kernel.typeof_pyval(arg) for arg in args)
    compiled = kernel.compile(signature)
    return int(compiled.max_cooperative_grid_blocks(threads_per_block))


def _check_activations(x: Any, y: Any, group: DeviceGroup) -> tuple[int, int]:
    """Validate ``x`` and ``y`` against ``group``; return ``(tokens, hidden)``."""
    for name, array in (("x", x), ("y", y)):
        _require_device_array(array, name)
    if x.ndim != 2 or y.ndim != 2:
        raise ValueError(f"x and y must be 2-D (tokens, hidden), got shapes {x.shape} and {y.shape}")
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape, got {x.shape} and {y.shape}")
    if x.dtype != y.dtype:
        raise ValueError(f"x and y must have the same dtype, got {x.dtype} and {y.dtype}")
    if np.dtype(x.dtype).name not in SUPPORTED_DTYPES:
        raise ValueError(f"x and y must hold one of {', '.join(SUPPORTED_DTYPES)}, got {x.dtype}")
    if not (x.is_c_contiguous() and y.is_c_contiguous()):
        raise ValueError("x and y must be C-contiguous")
    tokens, hidden = (int(n) for n in x.shape)
    if hidden != group.hidden:
        raise ValueError(f"x has hidden={hidden} but the group's weights have hidden={group.hidden}")
    if tokens < 1:
        raise ValueError(f"x must have at least 1 token, got {tokens}")
    if tokens * hidden > MAX_ELEMENTS:
        raise ValueError(
            f"x holds {tokens} x {hidden} = {tokens * hidden} elements; the kernels index with "
            f"32-bit offsets and accept at most {MAX_ELEMENTS}"
        )
    return tokens, hidden


@dataclass(frozen=True)
class Launch:
    """Kernel launches with their grids and arguments fixed: call it to enqueue them again.

    Preparing does the checks, the occupancy query and any compilation once, so that a
    timed call costs only the launches themselves (asynchronous).

    Attributes:
        geometry: the launch geometry.
        steps: ``(kernel, blocks, threads_per_block, args)`` for each launch, in order.
        barrier_word: the device state of a persistent kernel's grid barrier, else None.
    """

    geometry: LaunchGeometry
    steps: tuple[tuple[Any, int, int, tuple[Any, ...]], ...]
    barrier_word: Any = None

    def __call__(self) -> LaunchGeometry:
        for kernel, blocks, threads, args in self.steps:
            kernel[blocks, threads](*args)
        return self.geometry

    def barrier_timeouts(self) -> int:
        """Grid barrier waits that gave up in the runs so far (synchronises; 0 without a
        barrier). The output of such a run is not valid: a block went on early."""
        return 0 if self.barrier_word is None else timed_out_spins(self.barrier_word)

    def check_barrier(self) -> None:
        """Raise RuntimeError if a grid barrier wait gave up in any run so far (synchronises)."""
        gave_up = self.barrier_timeouts()
        if gave_up:
            raise RuntimeError(
                f"the {self.geometry.barrier} grid barrier timed out {gave_up} time(s) in a "
                f"launch of {self.geometry.blocks} blocks: a block waited more than "
                f"{SPIN_LIMIT} polls for the others, so the results are not valid"
            )


def _barrier_kernel(kernels: dict[str, Any], barrier: str) -> Any:
    if barrier not in kernels:
        raise ValueError(f"barrier must be one of {BARRIER_MODES}, got {barrier!r}")
    return kernels[barrier]


def prepare_chunked(
    x: Any,
    y: Any,
    group: DeviceGroup,
    chunk_tokens: int,
    threads_per_block: int = 256,
    team_size: int | None = None,
    barrier: str = "cg",
    packs_in_flight: int = PACKS_IN_FLIGHT,
) -> Launch:
    """Prepare the persistent chunked group kernel: ``y = group(x)``, chunk by chunk.

    Args:
        x, y: C-contiguous device arrays ``(tokens, hidden)`` of one storage dtype;
            ``x`` is not modified.
        group: the layers and weights, from :func:`upload_group`.
        chunk_tokens: rows per chunk, a power of two in [1, 2**30] (the last chunk may
            be partial).
        threads_per_block: a power of two in [32, 1024].
        team_size: threads per row, a power of two in [32, threads_per_block]; by default
            :func:`team_size_for` picks it.
        barrier: the grid barrier between layers, one of :data:`BARRIER_MODES`
            (see :mod:`.barrier`).
        packs_in_flight: packs a lane loads at a time, one of
            :data:`PACKS_IN_FLIGHT_CHOICES` (packed rows only).

    Returns:
        The launch; its grid is sized from the kernel's occupancy (all blocks resident,
        as a cooperative launch needs) and no larger than a chunk needs.
    """
    tokens, hidden = _check_activations(x, y, group)
    _check_launch_options(threads_per_block, team_size)
    kernel = chunked_group_kernel(barrier, packs_in_flight)
    if not (_is_power_of_two(chunk_tokens) and chunk_tokens <= 2**30):
        raise ValueError(f"chunk_tokens must be a power of two in [1, 2**30], got {chunk_tokens}")
    # A chunk past the tensor would only add idle virtual rows (see the apply_layer device function).
    chunk_tokens = min(chunk_tokens, _ceil_power_of_two(tokens))
    packed = packed_rows(x, y)
    word = new_barrier_word()
    probe_args = _chunked_args(x, y, group, chunk_tokens, WARP_SIZE, 0, packed, word)
    max_blocks = resident_block_limit(kernel, probe_args, threads_per_block)
    rows = min(chunk_tokens, tokens)
    in_flight = packs_in_flight if packed else None
    team = _team_or_default(team_size, threads_per_block, max_blocks * threads_per_block, rows, hidden,
                            in_flight)
    teams_per_block = threads_per_block // team
    blocks = max(1, min(max_blocks, -(-rows // teams_per_block)))
    args = _chunked_args(x, y, group, chunk_tokens, team, teams_per_block, packed, word)
    geometry = LaunchGeometry(blocks, threads_per_block, team, packed, barrier, in_flight)
    return Launch(geometry, ((kernel, blocks, threads_per_block, args),), word)


def run_chunked(
    x: Any,
    y: Any,
    group: DeviceGroup,
    chunk_tokens: int,
    threads_per_block: int = 256,
    team_size: int | None = None,
    barrier: str = "cg",
    packs_in_flight: int = PACKS_IN_FLIGHT,
) -> LaunchGeometry:
    """Run the chunked group kernel once (see :func:`prepare_chunked`) and wait for it.

    Raises:
        RuntimeError: a grid barrier wait timed out (the output is not valid).
    """
    launch = prepare_chunked(x, y, group, chunk_tokens, threads_per_block, team_size, barrier,
                             packs_in_flight)
    geometry = launch()
    launch.check_barrier()
    return geometry


def _chunked_args(
    x: Any, y: Any, group: DeviceGroup, chunk_tokens: int, team: int, rotation_step: int,
    packed: bool, barrier_word: Any,
) -> tuple[Any, ...]:
    tokens, hidden = x.shape
    return (
        x.reshape(tokens * hidden), y.reshape(tokens * hidden), np.uint32(tokens),
        np.uint32(hidden), group.codes, group.params, group.eps,
        np.uint32(chunk_tokens.bit_length() - 1), np.uint32(team.bit_length() - 1),
        np.uint32(rotation_step), np.uint32(packed), barrier_word,
    )


def prepare_layer_by_layer(
    x: Any,
    y: Any,
    group: DeviceGroup,
    threads_per_block: int = 256,
    blocks: int | None = None,
    team_size: int | None = None,
    packs_in_flight: int = PACKS_IN_FLIGHT,
) -> Launch:
    """Prepare the control: one launch of :func:`layer_kernel` per layer over the whole tensor.

    Layer 0 reads ``x`` into ``y``; the others update ``y`` in place. ``blocks`` (>= 1)
    defaults to the occupancy limit (all blocks resident, rows grid-strided);
    ``team_size`` and ``packs_in_flight`` as in :func:`prepare_chunked`.
    """
    tokens, hidden = _check_activations(x, y, group)
    _check_launch_options(threads_per_block, team_size)
    kernel = layer_kernel(packs_in_flight)
    if blocks is not None and blocks < 1:
        raise ValueError(f"blocks must be >= 1, got {blocks}")
    x_flat, y_flat = x.reshape(tokens * hidden), y.reshape(tokens * hidden)
    codes = layer_codes(group.layers)

    def layer_args(index: int, team_log2: int) -> tuple[Any, ...]:
        return (
            x_flat if index == 0 else y_flat, y_flat, np.uint32(tokens), np.uint32(hidden),
            group.params, np.uint32(index), np.int32(codes[index]),
            np.float32(group.layers[index].eps), np.uint32(team_log2), np.uint32(packed),
        )

    packed = packed_rows(x, y)
    in_flight = packs_in_flight if packed else None
    if blocks is None:
        blocks = resident_block_limit(kernel, layer_args(0, 5), threads_per_block)
    team = _team_or_default(team_size, threads_per_block, blocks * threads_per_block, tokens, hidden,
                            in_flight)
    steps = tuple(
        (kernel, blocks, threads_per_block, layer_args(index, team.bit_length() - 1))
        for index in range(len(group.layers))
    )
    return Launch(LaunchGeometry(blocks, threads_per_block, team, packed, None, in_flight), steps)


def run_layer_by_layer(
    x: Any,
    y: Any,
    group: DeviceGroup,
    threads_per_block: int = 256,
    blocks: int | None = None,
    team_size: int | None = None,
    packs_in_flight: int = PACKS_IN_FLIGHT,
) -> LaunchGeometry:
    """Launch the control once (see :func:`prepare_layer_by_layer`); asynchronous."""
    return prepare_layer_by_layer(x, y, group, threads_per_block, blocks, team_size, packs_in_flight)()


def prepare_stream_passes(
    buf: Any, passes: int, scale: float = 1.0, shift: float = 0.0, threads_per_block: int = 256,
    barrier: str = "cg", access: str = STREAM_ACCESSES[0],
) -> Launch:
    """Prepare the calibration stream: ``passes`` in-place passes ``buf = buf * scale + shift``.

    Args:
        buf: a 1-D float32 device array of 1 to ``MAX_ELEMENTS`` elements (contiguous
            and 16-byte aligned for the ``quad`` access, as device allocations are).
        passes: passes per launch, in [1, 2**31].
        scale, shift: the float32 affine map of each pass.
        threads_per_block: a power of two in [32, 1024].
        barrier: the grid barrier between passes, one of :data:`BARRIER_MODES`.
        access: one of :data:`STREAM_ACCESSES` (see the module docstring).

    Returns:
        The launch (all co-resident blocks, no more than the buffer needs).
    """
    if buf.ndim != 1 or buf.dtype != np.float32:
        raise ValueError(f"buf must be a 1-D float32 array, got {buf.ndim}-D {buf.dtype}")
    if not 1 <= buf.shape[0] <= MAX_ELEMENTS:
        raise ValueError(f"buf must hold 1 to {MAX_ELEMENTS} elements, got {buf.shape[0]}")
    if not 1 <= passes <= 2**31:
        raise ValueError(f"passes must be in [1, 2**31], got {passes}")
    check_threads_per_block(threads_per_block)
    check_stream_access(access)
    if access == "quad" and not buf.is_c_contiguous():
        raise ValueError("the quad stream needs contiguous data (it moves 4 adjacent elements "
                         "per access), got a strided array")
    if access == "quad" and _data_address(buf) % 16:
        raise ValueError(f"the quad stream needs 16-byte aligned data, got address "
                         f"{_data_address(buf):#x}: pass a slice starting at a multiple of {QUAD} elements")
    kernel = _barrier_kernel(STREAM_KERNELS[access], barrier)
    word = new_barrier_word()
    args = (buf, np.uint32(passes), np.float32(scale), np.float32(shift), word)
    max_blocks = resident_block_limit(kernel, args, threads_per_block)
    needed = -(-buf.shape[0] // (threads_per_block * STREAM_ELEMENTS_IN_FLIGHT[access]))
    blocks = max(1, min(max_blocks, needed))
    geometry = LaunchGeometry(blocks, threads_per_block, 0, barrier=barrier)
    return Launch(geometry, ((kernel, blocks, threads_per_block, args),), word)


def check_stream_access(access: str) -> None:
    """Raise ValueError unless ``access`` is one of :data:`STREAM_ACCESSES`."""
    if access not in STREAM_ACCESSES:
        raise ValueError(f"access must be one of {STREAM_ACCESSES}, got {access!r}")


def run_stream_passes(
    buf: Any, passes: int, scale: float = 1.0, shift: float = 0.0, threads_per_block: int = 256,
    barrier: str = "cg", access: str = STREAM_ACCESSES[0],
) -> LaunchGeometry:
    """Run the calibration stream once (see :func:`prepare_stream_passes`) and wait for it.

    Raises:
        RuntimeError: a grid barrier wait timed out (the buffer is not valid).
    """
    launch = prepare_stream_passes(buf, passes, scale, shift, threads_per_block, barrier, access)
    geometry = launch()
    launch.check_barrier()
    return geometry


def prepare_barrier_rounds(
    rounds: int, blocks: int | None = None, threads_per_block: int = 256, barrier: str = "cg"
) -> Launch:
    """Prepare a launch that only crosses ``rounds`` grid barriers (their cost, alone).

    Args:
        rounds: barriers per launch, in [0, 2**31].
        blocks: blocks in the grid (>= 1); default and upper limit: the most that stay
            resident at once (a cooperative launch's limit).
        threads_per_block: a power of two in [32, 1024].
        barrier: one of :data:`BARRIER_MODES`.
    """
    if not 0 <= rounds <= 2**31:
        raise ValueError(f"rounds must be in [0, 2**31], got {rounds}")
    check_threads_per_block(threads_per_block)
    kernel = _barrier_kernel(BARRIER_KERNELS, barrier)
    word = new_barrier_word()
    args = (np.uint32(rounds), word)
    limit = resident_block_limit(kernel, args, threads_per_block)
    if blocks is None:
        blocks = limit
    elif not 1 <= blocks <= limit:
        raise ValueError(
            f"blocks must be in [1, {limit}] (the most that stay resident with "
            f"{threads_per_block} threads per block), got {blocks}"
        )
    geometry = LaunchGeometry(blocks, threads_per_block, 0, barrier=barrier)
    return Launch(geometry, ((kernel, blocks, threads_per_block, args),), word)


def _require_device_array(array: Any, name: str) -> None:
    """Refuse a host array (or anything else) where a device array is needed."""
    if isinstance(array, np.ndarray) or not hasattr(array, "copy_to_host"):
        raise TypeError(f"{name} must be a device array (numba.cuda.to_device(...) or "
                        f"device_array(...)), got {type(array).__name__}")


def count_mismatches(actual: Any, expected: Any, tolerance: float) -> int:
    """Elements of two device arrays of one shape that differ by more than ``tolerance x
    (1 + |expected|)``, or that are not finite, counted on the device (synchronises)."""
    _require_device_array(actual, "actual")
    _require_device_array(expected, "expected")
    if actual.shape != expected.shape:
        raise ValueError(f"shapes differ: {actual.shape} and {expected.shape}")
    for array in (actual, expected):
        if not array.is_c_contiguous():
            raise ValueError("both arrays must be C-contiguous")
    count = cuda.to_device(np.zeros(1, dtype=np.uint32))
    blocks, threads = _flat_grid(actual.size)
    mismatch_kernel[blocks, threads](actual.reshape(actual.size), expected.reshape(expected.size),
                                     np.float32(tolerance), count)
    return int(count.copy_to_host()[0])


def count_non_finite(array: Any) -> int:
    """Elements of a device array that are NaN or infinite, counted on the device (an
    element never differs from itself unless it is not finite)."""
    return count_mismatches(array, array, 0.0)


def _flat_grid(size: int) -> tuple[int, int]:
    """Blocks and threads of a grid-stride loop over ``size`` elements."""
    # The simulator runs each block as Python threads: one small block keeps it quick.
    if is_simulated():
        return 1, WARP_SIZE
    return max(1, min(-(-size // 1024), 65535)), 256


def poison(y: Any, value: float = math.nan) -> None:
    """Fill the C-contiguous device array ``y`` (any shape) with ``value``, asynchronously.

    NaN by default, so that an element no kernel wrote stands out.
    """
    _require_device_array(y, "y")
    if not y.is_c_contiguous():
        raise ValueError("y must be C-contiguous")
    if y.size > MAX_ELEMENTS:
        raise ValueError(f"y holds {y.size} elements, more than {MAX_ELEMENTS}")
    blocks, threads = _flat_grid(y.size)
    fill_kernel[blocks, threads](y.reshape(y.size), np.float32(value))
