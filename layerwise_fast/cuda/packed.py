"""16-byte vector loads and stores of activation packs for the Numba CUDA kernels.

A *pack* is ``PACK`` (8) consecutive elements of a device array: 16 bytes of float16
(one ``ld.global.v4.b32``) or 32 bytes of float32 (two ``ld.global.v4.f32``); other
dtypes move element by element. ``load_pack(array, offset, buf, at)`` widens the pack starting at
element ``offset`` to float32 into the local array ``buf[at:at + PACK]``;
``store_pack(array, offset, buf, at)`` rounds ``buf[at:at + PACK]`` to the array's dtype
(round to nearest even) and stores it. ``offset`` must be a multiple of ``PACK`` and the
array's data 16-byte aligned (device allocations are 256-byte aligned); the launchers
take this path only then.

Scalar float16 loads move 2 bytes per instruction: a warp of them asks the memory
system for 64 bytes, too few requests in flight to keep an H200's HBM busy (the
layer-by-layer control reached 1.6 TB/s of a 4.3 TB/s copy). A float16 pack asks for
512 bytes per warp instruction (3.5 TB/s).

The loads and stores are inline PTX marked as having side effects (the stores also
clobber memory), so the compiler neither drops nor moves them across each other or a
barrier. Under the simulator the same names are plain Python loops.

Several packs in flight: ``load_words(array, offset, words, at)`` loads a pack without
widening it, its raw 32-bit words kept in float32 slots ``words[at:at + PACK]`` (4 used
for 2-byte dtypes, all 8 for float32), and ``widen_words(array, words, at, buf,
buf_at)`` widens them into ``buf[buf_at:buf_at + PACK]`` when the pack is used. A pack
widened at once (``load_pack``) takes 8 registers where its words take 4, and with 8
packs so loaded ptxas widened the first after 4 loads (the control) or 7 (the chunked
kernel), so they were not all in flight. Under the simulator ``load_words`` widens at
once and ``widen_words`` copies.

Quads (:func:`quad_functions`): ``load_quad(array, offset, buf, at)`` and
``store_quad(array, offset, buf, at)`` move ``QUAD`` (4) consecutive float32 in one
16-byte access, the pattern of a float16 pack (512 contiguous bytes per warp
instruction); the calibration stream uses them. ``offset`` must be a multiple of
``QUAD``.
"""

from __future__ import annotations

from typing import Any

PACK = 8
"""Elements per pack."""

QUAD = 4
"""float32 elements per quad (16 bytes)."""

_PACKED_DTYPES = ("float16",)


def packed_dtype(dtype_name: str) -> bool:
    """Whether the row kernels move arrays of ``dtype_name`` in packs.

    Only float16: its pack is one 16-byte load per lane, 512 contiguous bytes per warp.
    A float32 pack is two 16-byte loads 32 bytes apart per lane, each warp instruction
    touching every other 16 bytes of 1 KiB; the scalar path's 128 contiguous bytes per
    warp instruction are the better pattern there. (``load_pack``/``store_pack`` still
    handle float32, and any other dtype element by element.)
    """
    return dtype_name in _PACKED_DTYPES


def _simulated_functions() -> tuple[Any, Any, Any, Any, Any, Any]:
    from numba import cuda, float32

    def loader(count: int) -> Any:
        @cuda.jit(device=True)
        def load(array, offset, buf, at):  # type: ignore[no-untyped-def]
            for j in range(count):
                buf[at + j] = float32(array[offset + j])

        return load

    def storer(count: int) -> Any:
        @cuda.jit(device=True)
        def store(array, offset, buf, at):  # type: ignore[no-untyped-def]
            for j in range(count):
                array[offset + j] = buf[at + j]

        return store

    @cuda.jit(device=True)
    def widen_words(array, words, at, buf, buf_at):  # type: ignore[no-untyped-def]
        for j in range(PACK):
            buf[buf_at + j] = words[at + j]

    # Under the simulator a pack's words are widened at once: load_words is load_pack.
    return loader(PACK), storer(PACK), loader(PACK), widen_words, loader(QUAD), storer(QUAD)


def _compiled_functions() -> tuple[Any, Any, Any, Any, Any, Any]:  # pragma: no cover - needs NVVM, checked by PTX tests
    from llvmlite import ir  # type: ignore[import-untyped, unused-ignore]
    from numba import types
    from numba.cuda import cgutils  # type: ignore[attr-defined, unused-ignore]
    from numba.cuda.extending import intrinsic

    i32, f32 = ir.IntType(32), ir.FloatType()

    def check(array: Any, buf: Any) -> None:
        if not (isinstance(array, types.Array) and array.ndim == 1):
            raise TypeError(f"a pack needs a 1-D array, got {array}")
        if not (isinstance(buf, types.Array) and buf.dtype == types.float32):
            raise TypeError(f"a pack's buffer must be a float32 array, got {buf}")

    def element_pointer(context: Any, builder: Any, array_type: Any, array: Any, index: Any) -> Any:
        struct = context.make_array(array_type)(context, builder, value=array)
        return cgutils.get_item_pointer(context, builder, array_type, struct, [index], wraparound=False)

    def as_intp(context: Any, builder: Any, value: Any, value_type: Any) -> Any:
        return context.cast(builder, value, value_type, types.intp)

    def asm(builder: Any, returns: Any, args: list[Any], text: str, constraints: str) -> Any:
        function_type = ir.FunctionType(returns, [a.type for a in args])
        return builder.call(ir.InlineAsm(function_type, text, constraints, side_effect=True), args)

    def fields(builder: Any, struct: Any, count: int) -> list[Any]:
        return [builder.extract_value(struct, k) for k in range(count)]

    def load_words(builder: Any, pointer: Any, kind: str, reg: str, elem: Any) -> list[Any]:
        out = asm(builder, ir.LiteralStructType([elem] * 4), [pointer],
                  f"ld.global.v4.{kind} {{$0, $1, $2, $3}}, [$4];", f"={reg},={reg},={reg},={reg},l")
        return fields(builder, out, 4)

    def store_words(builder: Any, pointer: Any, words: list[Any], kind: str, reg: str) -> None:
        asm(builder, ir.VoidType(), [pointer, *words],
            f"st.global.v4.{kind} [$0], {{$1, $2, $3, $4}};", f"l,{reg},{reg},{reg},{reg},~{{memory}}")

    def buffer_slots(context: Any, builder: Any, buf_type: Any, buf: Any, at: Any, at_type: Any,
                     count: int = PACK) -> list[Any]:
        """Pointers to the ``count`` slots ``buf[at:at + count]``."""
        start = as_intp(context, builder, at, at_type)
        return [element_pointer(context, builder, buf_type, buf, builder.add(start, ir.Constant(start.type, j)))
                for j in range(count)]

    def slot_intrinsic(name: str, count: int, check_types: Any, body: Any) -> Any:
        """The intrinsic ``name(array, offset, buf, at)``: ``body(context, builder,
        array_type, pointer, slots)`` with the pointer to ``array[offset]`` and the
        ``count`` slots ``buf[at:at + count]``; ``check_types(array, buf)`` at typing."""

        def typer(typingctx, array, offset, buf, at):  # type: ignore[no-untyped-def]
            check_types(array, buf)

            def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
                array_type, offset_type, buf_type, at_type = sig.args
                start = as_intp(context, builder, args[1], offset_type)
                pointer = element_pointer(context, builder, array_type, args[0], start)
                slots = buffer_slots(context, builder, buf_type, args[2], args[3], at_type, count)
                body(context, builder, array_type, pointer, slots)
                return context.get_dummy_value()

            return types.void(array, offset, buf, at), codegen

        typer.__name__ = typer.__qualname__ = name
        return intrinsic(typer)

    def store_all(builder: Any, values: list[Any], slots: list[Any]) -> None:
        for value, slot in zip(values, slots):
            builder.store(value, slot)

    def load_float32_pack(builder: Any, pointer: Any, kind: str, reg: str, elem: Any) -> list[Any]:
        """The 8 float32 of a pack at ``pointer``: two 16-byte loads."""
        second = builder.gep(pointer, [ir.Constant(ir.IntType(64), 4)])
        return load_words(builder, pointer, kind, reg, elem) + load_words(builder, second, kind, reg, elem)

    def widen_halves(builder: Any, word: Any, half: str, reg: str) -> list[Any]:
        """The two 16-bit floats (``half``: f16 or bf16) of a 32-bit word, as float32."""
        pair = asm(builder, ir.LiteralStructType([f32, f32]), [word],
                   "{.reg .b16 lo, hi; mov.b32 {lo, hi}, $2; "
                   f"cvt.f32.{half} $0, lo; cvt.f32.{half} $1, hi;}}", f"=f,=f,{reg}")
        return fields(builder, pair, 2)

    def load_pack_body(context: Any, builder: Any, array_type: Any, source: Any, slots: list[Any]) -> None:
        if array_type.dtype == types.float16:
            values = [v for word in load_words(builder, source, "b32", "r", i32)
                      for v in widen_halves(builder, word, "f16", "r")]
        elif array_type.dtype == types.float32:
            values = load_float32_pack(builder, source, "f32", "f", f32)
        else:  # other dtypes (bfloat16): element by element, as the scalar path does
            values = [
                context.cast(builder, builder.load(builder.gep(source, [ir.Constant(ir.IntType(64), j)])),
                             array_type.dtype, types.float32)
                for j in range(PACK)
            ]
        store_all(builder, values, slots)

    def store_pack_body(context: Any, builder: Any, array_type: Any, target: Any, slots: list[Any]) -> None:
        values = [builder.load(slot) for slot in slots]
        if array_type.dtype == types.float16:
            words = [
                asm(builder, i32, [values[2 * k], values[2 * k + 1]],
                    "{.reg .b16 lo, hi; cvt.rn.f16.f32 lo, $1; cvt.rn.f16.f32 hi, $2; "
                    "mov.b32 $0, {lo, hi};}", "=r,f,f")
                for k in range(PACK // 2)
            ]
            store_words(builder, target, words, "b32", "r")
        elif array_type.dtype == types.float32:
            second = builder.gep(target, [ir.Constant(ir.IntType(64), 4)])
            store_words(builder, target, values[:4], "f32", "f")
            store_words(builder, second, values[4:], "f32", "f")
        else:
            for j, value in enumerate(values):
                builder.store(context.cast(builder, value, types.float32, array_type.dtype),
                              builder.gep(target, [ir.Constant(ir.IntType(64), j)]))

    def load_raw_words_body(context: Any, builder: Any, array_type: Any, source: Any, slots: list[Any]) -> None:
        # Raw bits in float32 registers: nothing converts them until widen_raw_words.
        if array_type.dtype == types.float32:
            values = load_float32_pack(builder, source, "b32", "f", f32)
        elif array_type.dtype.bitwidth == 16:  # float16, bfloat16: 8 halves in 4 words
            values = load_words(builder, source, "b32", "f", f32)
        else:
            raise TypeError(f"load_raw_words needs a 2- or 4-byte float array, got {array_type}")
        store_all(builder, values, slots)

    def check_quad(array: Any, buf: Any) -> None:
        if not (isinstance(array, types.Array) and array.ndim == 1 and array.dtype == types.float32):
            raise TypeError(f"a quad needs a 1-D float32 array, got {array}")
        if not (isinstance(buf, types.Array) and buf.dtype == types.float32):
            raise TypeError(f"a quad's buffer must be a float32 array, got {buf}")

    def load_quad_body(context: Any, builder: Any, array_type: Any, source: Any, slots: list[Any]) -> None:
        store_all(builder, load_words(builder, source, "f32", "f", f32), slots)

    def store_quad_body(context: Any, builder: Any, array_type: Any, target: Any, slots: list[Any]) -> None:
        store_words(builder, target, [builder.load(slot) for slot in slots], "f32", "f")

    load_pack = slot_intrinsic("load_pack", PACK, check, load_pack_body)
    store_pack = slot_intrinsic("store_pack", PACK, check, store_pack_body)
    load_raw_words = slot_intrinsic("load_raw_words", PACK, check, load_raw_words_body)
    load_quad = slot_intrinsic("load_quad", QUAD, check_quad, load_quad_body)
    store_quad = slot_intrinsic("store_quad", QUAD, check_quad, store_quad_body)

    @intrinsic
    def widen_raw_words(typingctx, array, words, at, buf, buf_at):  # type: ignore[no-untyped-def]
        check(array, words)
        check(array, buf)

        def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
            array_type, words_type, at_type, buf_type, buf_at_type = sig.args
            sources = buffer_slots(context, builder, words_type, args[1], args[2], at_type)
            targets = buffer_slots(context, builder, buf_type, args[3], args[4], buf_at_type)
            if array_type.dtype == types.float32:
                values = [builder.load(source) for source in sources]
            else:
                half = "f16" if array_type.dtype == types.float16 else "bf16"
                values = [v for source in sources[:4] for v in widen_halves(builder, builder.load(source), half, "f")]
            store_all(builder, values, targets)
            return context.get_dummy_value()

        return types.void(array, words, at, buf, buf_at), codegen

    return load_pack, store_pack, load_raw_words, widen_raw_words, load_quad, store_quad


_BUILT: dict[bool, tuple[Any, ...]] = {}


def _functions(simulated: bool) -> tuple[Any, ...]:
    """Every device function for the simulator or for compiled kernels, built once."""
    if simulated not in _BUILT:
        _BUILT[simulated] = _simulated_functions() if simulated else _compiled_functions()
    return _BUILT[simulated]


def pack_functions(simulated: bool) -> tuple[Any, Any, Any, Any]:
    """``(load_pack, store_pack, load_words, widen_words)`` for the simulator or for
    compiled kernels."""
    load_pack, store_pack, load_words, widen_words, _, _ = _functions(simulated)
    return load_pack, store_pack, load_words, widen_words


def quad_functions(simulated: bool) -> tuple[Any, Any]:
    """``(load_quad, store_quad)`` for the simulator or for compiled kernels."""
    _, _, _, _, load_quad, store_quad = _functions(simulated)
    return load_quad, store_quad
