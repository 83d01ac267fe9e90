"""Explicit 16-lane float32 vectors for the kernels: LLVM's ``<16 x float>`` as a Numba type.

LLVM's loop vectoriser only vectorises innermost loops, so a register block
whose sums must live across a loop (a matrix-product micro-kernel: sums
carried over every input channel and tap) cannot be had from scalar code:
the sums go through memory on every pass. With a vector type the sums are
plain loop-carried values and stay in registers, as with C intrinsics.
``<16 x float>`` is one 512-bit register with AVX-512 and two 256-bit ones
without (LLVM splits it), so the code is correct on every CPU. A few
operations also exist on half vectors, ``<8 x float>`` (one 256-bit
register), for blocks whose last outputs fill only half a vector.

Every operation is an intrinsic on flat arrays with element offsets; the
caller keeps each offset and its 16 elements inside the array (checked
under ``NUMBA_BOUNDSCHECK=1``, as Numba checks indexing).
"""

from __future__ import annotations

import platform

from llvmlite import ir
from numba.core import cgutils, config, types
from numba.extending import intrinsic, models, overload, register_model

from ._common import U
from ._jit import inlined

__all__ = ["LANES", "STREAM_BYTES", "add16", "copy_run", "even16", "fma8", "fma16", "load4",
           "load8", "load16", "load16_first", "load16_window", "odd16", "put16", "splat8",
           "splat16", "store4", "store8_first", "store16", "store16_first", "store16_stream",
           "stream_fence", "streams", "sub16", "vector8", "vector16", "vfma", "vload", "vsplat",
           "vstore_first"]

#: Lanes of one vector.
LANES = 16
#: Outputs at least this large are written with :func:`store16_stream` by the
#: kernels that stream (a smaller one may still be in cache for the next
#: layer to read; a larger one leaves the caches of a few cores anyway).
STREAM_BYTES = 8 * 2**20


class Float32Vector(types.Type):
    """The Numba type of a ``<lanes x float>`` value."""

    def __init__(self, lanes):
        self.lanes = lanes
        super().__init__(name=f"float32x{lanes}")


#: The vector type of the kernels: 16 lanes.
vector16 = Float32Vector(LANES)
#: Half a vector (one 256-bit register): for the last 8 of a block's outputs, where a
#: whole vector's multiply-adds would be half wasted (see :mod:`.pointwise_cl`).
vector8 = Float32Vector(LANES // 2)


def _ir_vector(lanes):
    return ir.VectorType(ir.FloatType(), lanes)


@register_model(Float32Vector)
class _Float32VectorModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _ir_vector(fe_type.lanes))


def _is_float32_array(array):
    return isinstance(array, types.Array) and array.dtype == types.float32


def _vector_pointer(context, builder, array_type, offset_type, array, offset, count=None,
                    lanes=LANES):
    """The address of ``array.flat[offset]`` as a pointer to ``lanes`` floats.

    Under ``NUMBA_BOUNDSCHECK=1`` the first and the last of the ``lanes``
    elements (of the first ``count``, an ``intp`` value, when given) are
    checked like any indexed access (an ``IndexError`` from the kernel).
    """
    view = context.make_array(array_type)(context, builder, array)
    offset = context.cast(builder, offset, offset_type, types.intp)
    if config.BOUNDSCHECK:
        size = view.nitems
        cgutils.do_boundscheck(context, builder, offset, size)
        extent = ir.Constant(offset.type, lanes) if count is None else count
        last = builder.sub(builder.add(offset, extent), ir.Constant(offset.type, 1))
        cgutils.do_boundscheck(context, builder, last, size)
    return builder.bitcast(builder.gep(view.data, [offset]), _ir_vector(lanes).as_pointer())


def _load(vector):
    """The intrinsic ``load(array, offset)``: ``array[offset : offset + lanes]`` as a
    ``vector`` (float32 arrays)."""

    def load(typingctx, array, offset):
        if not _is_float32_array(array) or not isinstance(offset, types.Integer):
            return None

        def codegen(context, builder, signature, args):
            pointer = _vector_pointer(context, builder, *signature.args[:2], *args[:2],
                                      lanes=vector.lanes)
            return builder.load(pointer, align=4)

        return vector(array, offset), codegen

    return intrinsic(load)


#: ``load16(array, offset)``: ``array[offset : offset + 16]`` as a vector.
load16 = _load(vector16)
#: ``load8(array, offset)``: ``array[offset : offset + 8]`` as a half vector.
load8 = _load(vector8)


@intrinsic
def store16(typingctx, array, offset, value):
    """``array[offset : offset + 16] = value``."""
    if (not _is_float32_array(array) or not isinstance(offset, types.Integer)
            or value != vector16):
        return None

    def codegen(context, builder, signature, args):
        pointer = _vector_pointer(context, builder, *signature.args[:2], *args[:2])
        builder.store(args[2], pointer, align=4)
        return context.get_dummy_value()

    return types.void(array, offset, value), codegen


@intrinsic
def store16_stream(typingctx, array, offset, value):
    """``array[offset : offset + 16] = value`` past the caches (a non-temporal store).

    The address must be a multiple of 64 bytes (:func:`streams` tells; a
    misaligned non-temporal vector store faults). A line written whole this
    way is not first read from memory, as an ordinary store's line is: a
    memory-bound kernel moves a third less. The stores of a task are ordered
    for other threads by :func:`stream_fence`.
    """
    if (not _is_float32_array(array) or not isinstance(offset, types.Integer)
            or value != vector16):
        return None

    def codegen(context, builder, signature, args):
        pointer = _vector_pointer(context, builder, *signature.args[:2], *args[:2])
        store = builder.store(args[2], pointer, align=64)
        store.set_metadata("nontemporal",
                           builder.module.add_metadata([ir.Constant(ir.IntType(32), 1)]))
        return context.get_dummy_value()

    return types.void(array, offset, value), codegen


_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


@intrinsic
def stream_fence(typingctx):
    """Order the non-temporal stores before it before every later store (``sfence``
    on x86, where they are weakly ordered; nothing elsewhere)."""

    def codegen(context, builder, signature, args):
        if _X86:
            fence = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), []), "llvm.x86.sse.sfence")
            builder.call(fence, [])
        return context.get_dummy_value()

    return types.void(), codegen


@inlined
def put16(array, offset, value, stream):
    """:func:`store16_stream` where ``stream``, else :func:`store16`."""
    if stream:
        store16_stream(array, offset, value)
    else:
        store16(array, offset, value)


@inlined
def streams(array, pitch):
    """Whether a kernel may write ``array`` with :func:`store16_stream` at offsets that are
    multiples of 16 plus multiples of ``pitch``: 64-byte aligned, ``pitch`` a multiple of
    16, and at least :data:`STREAM_BYTES` large."""
    return (array.ctypes.data % 64 == 0 and pitch % LANES == 0
            and array.size * array.itemsize >= STREAM_BYTES)


def _store_first(vector):
    """The intrinsic ``store_first(array, offset, value, count)``: ``array[offset : offset +
    count] = value[:count]`` for ``1 <= count <= lanes``.

    A masked store (``llvm.masked.store``: one instruction with AVX-512):
    the lanes from ``count`` on are not written, so a vector can end a row
    whose length is not a multiple of the lanes.
    """
    width = vector.lanes

    def store_first(typingctx, array, offset, value, count):
        if (not _is_float32_array(array) or not isinstance(offset, types.Integer)
                or value != vector or not isinstance(count, types.Integer)):
            return None

        def codegen(context, builder, signature, args):
            count = context.cast(builder, args[3], signature.args[3], types.intp)
            pointer = _vector_pointer(context, builder, *signature.args[:2], *args[:2],
                                      count=count, lanes=width)
            full = builder.icmp_signed(">=", count, ir.Constant(count.type, width))
            with builder.if_else(full, likely=True) as (every_lane, some_lanes):
                with every_lane:
                    # Without AVX-512 a masked store is microcode (vmaskmovps: measured
                    # 12x a plain store on AMD Zen 3), so whole vectors store plainly.
                    builder.store(args[2], pointer, align=4)
                with some_lanes:
                    mask = _first_lanes(builder, count, width)
                    function_type = ir.FunctionType(ir.VoidType(), [
                        _ir_vector(width), pointer.type, ir.IntType(32), mask.type])
                    store = cgutils.get_or_insert_function(
                        builder.module, function_type, f"llvm.masked.store.v{width}f32.p0")
                    builder.call(store, [args[2], pointer, ir.Constant(ir.IntType(32), 4),
                                         mask])
            return context.get_dummy_value()

        return types.void(array, offset, value, count), codegen

    return intrinsic(store_first)


#: ``store16_first(array, offset, value, count)``: the first ``count`` (1..16) lanes.
store16_first = _store_first(vector16)
#: ``store8_first(array, offset, value, count)``: the first ``count`` (1..8) lanes of a
#: half vector.
store8_first = _store_first(vector8)


def _lane_indices(value, lanes=LANES):
    """The vector ``0, 1, ..., lanes - 1`` of ``value``'s integer type."""
    return ir.Constant(ir.VectorType(value.type, lanes), list(range(lanes)))


def _splat_integer(builder, value, lanes=LANES):
    """``lanes`` copies of the integer ``value``."""
    vector_type = ir.VectorType(value.type, lanes)
    return builder.shuffle_vector(
        builder.insert_element(ir.Constant(vector_type, ir.Undefined), value,
                               ir.Constant(ir.IntType(32), 0)),
        ir.Constant(vector_type, ir.Undefined),
        ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes))


def _first_lanes(builder, count, lanes=LANES):
    """The mask of the first ``count`` (an ``intp`` value) of ``lanes`` lanes."""
    return builder.icmp_signed("<", _lane_indices(count, lanes),
                               _splat_integer(builder, count, lanes))


def _masked_load(builder, pointer, mask):
    """``llvm.masked.load`` of 16 floats at ``pointer``: the lanes of ``mask``, zeros in the
    others (not read)."""
    vector = _ir_vector(LANES)
    function_type = ir.FunctionType(vector, [pointer.type, ir.IntType(32), mask.type, vector])
    load = cgutils.get_or_insert_function(builder.module, function_type,
                                          f"llvm.masked.load.v{LANES}f32.p0")
    return builder.call(load, [pointer, ir.Constant(ir.IntType(32), 4), mask,
                               ir.Constant(vector, [0.0] * LANES)])


@intrinsic
def load16_first(typingctx, array, offset, count):
    """``array[offset : offset + count]`` in the first ``count`` lanes (``1 <= count <=
    16``), zeros in the others.

    A masked load (``llvm.masked.load``: one instruction with AVX-512): the
    elements from ``count`` on are not read, so a vector can end a row at
    the end of an array.
    """
    if (not _is_float32_array(array) or not isinstance(offset, types.Integer)
            or not isinstance(count, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        count = context.cast(builder, args[2], signature.args[2], types.intp)
        pointer = _vector_pointer(context, builder, *signature.args[:2], *args[:2], count=count)
        return _masked_load(builder, pointer, _first_lanes(builder, count))

    return vector16(array, offset, count), codegen


@intrinsic
def load16_window(typingctx, first, first_at, second, second_at, from_first, shift, lo, hi):
    """Lanes ``lo <= j < hi`` of ``first[first_at + shift :][:16]`` where ``from_first``,
    else of ``second[second_at + shift :][:16]``; zeros in the other lanes (``lo`` and
    ``hi`` clamped to 0..16).

    A masked load (one instruction with AVX-512, ``vmaskmovps`` without):
    the lanes outside the window are not read, so an offset itself may lie
    before or past its array (a row's left padding) as long as the window's
    elements lie inside. The choice of array is a choice of address (a
    scalar select: choosing between two arrays in Numba code costs their
    reference counts) made before the ``shift``, so loads of one row at
    several shifts share it; the mask depends on ``lo`` and ``hi`` only, so
    a loop in which they are fixed computes it once.
    """
    if not (_is_float32_array(first) and _is_float32_array(second)
            and all(isinstance(t, types.Integer) for t in (first_at, second_at, shift, lo, hi))
            and isinstance(from_first, types.Boolean)):
        return None

    def codegen(context, builder, signature, args):
        def intp(k):
            return context.cast(builder, args[k], signature.args[k], types.intp)

        def clamp(value):
            zero, lanes = ir.Constant(value.type, 0), ir.Constant(value.type, LANES)
            value = builder.select(builder.icmp_signed("<", value, zero), zero, value)
            return builder.select(builder.icmp_signed(">", value, lanes), lanes, value)

        shift, lo, hi = intp(5), clamp(intp(6)), clamp(intp(7))
        take_first = context.cast(builder, args[4], signature.args[4], types.boolean)
        pointers, sizes = [], []
        for array, at in ((0, 1), (2, 3)):
            view = context.make_array(signature.args[array])(context, builder, args[array])
            pointers.append(builder.gep(view.data, [intp(at)]))
            sizes.append((intp(at), view.nitems))
        if config.BOUNDSCHECK:
            at = builder.add(builder.select(take_first, sizes[0][0], sizes[1][0]), shift)
            size = builder.select(take_first, sizes[0][1], sizes[1][1])
            with builder.if_then(builder.icmp_signed("<", lo, hi)):
                cgutils.do_boundscheck(context, builder, builder.add(at, lo), size)
                last = builder.sub(builder.add(at, hi), ir.Constant(at.type, 1))
                cgutils.do_boundscheck(context, builder, last, size)
        pointer = builder.bitcast(builder.gep(builder.select(take_first, *pointers), [shift]),
                                  _ir_vector(LANES).as_pointer())
        lane = _lane_indices(lo)
        mask = builder.and_(builder.icmp_signed(">=", lane, _splat_integer(builder, lo)),
                            builder.icmp_signed("<", lane, _splat_integer(builder, hi)))
        return _masked_load(builder, pointer, mask)

    return vector16(first, first_at, second, second_at, from_first, shift, lo, hi), codegen


def _pick(parity):
    """An intrinsic: lanes ``parity, parity + 2, ..., parity + 30`` of ``a`` then ``b``."""

    def pick(typingctx, a, b):
        if not (a == b == vector16):
            return None

        def codegen(context, builder, signature, args):
            mask = ir.Constant(ir.VectorType(ir.IntType(32), LANES),
                               list(range(parity, 2 * LANES, 2)))
            return builder.shuffle_vector(args[0], args[1], mask)

        return vector16(a, b), codegen

    return intrinsic(pick)


#: ``even16(a, b)``: lanes 0, 2, ..., 30 of the 32 lanes of ``a`` then ``b`` (one
#: ``vpermt2ps`` with AVX-512): a stride-2 row's even columns.
even16 = _pick(0)
#: ``odd16(a, b)``: lanes 1, 3, ..., 31 of ``a`` then ``b``.
odd16 = _pick(1)


def _splat(vector):
    """The intrinsic ``splat(value)``: a ``vector`` of copies of the float32 ``value``."""
    ir_type = _ir_vector(vector.lanes)

    def splat(typingctx, value):
        if value != types.float32:
            return None

        def codegen(context, builder, signature, args):
            single = builder.insert_element(ir.Constant(ir_type, ir.Undefined), args[0],
                                            ir.Constant(ir.IntType(32), 0))
            zeros = ir.Constant(ir.VectorType(ir.IntType(32), vector.lanes), [0] * vector.lanes)
            return builder.shuffle_vector(single, ir.Constant(ir_type, ir.Undefined), zeros)

        return vector(value), codegen

    return intrinsic(splat)


#: ``splat16(value)``: 16 copies of the float32 ``value``.
splat16 = _splat(vector16)
#: ``splat8(value)``: a half vector of 8 copies.
splat8 = _splat(vector8)


def _fma(vector):
    """The intrinsic ``fma(a, b, c)``: ``a * b + c`` lane by lane, one rounding
    (``llvm.fma``), on ``vector`` values."""
    ir_type = _ir_vector(vector.lanes)

    def fma(typingctx, a, b, c):
        if not (a == b == c == vector):
            return None

        def codegen(context, builder, signature, args):
            function_type = ir.FunctionType(ir_type, [ir_type] * 3)
            llvm_fma = cgutils.get_or_insert_function(builder.module, function_type,
                                                      f"llvm.fma.v{vector.lanes}f32")
            return builder.call(llvm_fma, args)

        return vector(a, b, c), codegen

    return intrinsic(fma)


#: ``fma16(a, b, c)``: ``a * b + c`` on vectors.
fma16 = _fma(vector16)
#: ``fma8(a, b, c)``: ``a * b + c`` on half vectors.
fma8 = _fma(vector8)


def _arithmetic(name):
    """The intrinsic ``name(a, b)`` (``"fadd"`` or ``"fsub"``): ``a + b`` or ``a - b`` lane
    by lane, on 16-lane vectors."""

    def arithmetic(typingctx, a, b):
        if not (a == b == vector16):
            return None

        def codegen(context, builder, signature, args):
            return getattr(builder, name)(*args)

        return vector16(a, b), codegen

    return intrinsic(arithmetic)


#: ``add16(a, b)``: ``a + b`` on vectors.
add16 = _arithmetic("fadd")
#: ``sub16(a, b)``: ``a - b`` on vectors.
sub16 = _arithmetic("fsub")


def vload(like, array, offset):
    """:func:`load16` or :func:`load8`, as wide as the vector ``like`` (its value unused)."""


def vsplat(like, value):
    """:func:`splat16` or :func:`splat8`, as wide as the vector ``like``."""


def vfma(a, b, c):
    """:func:`fma16` or :func:`fma8`, for vectors or half vectors."""


def vstore_first(array, offset, value, count):
    """:func:`store16_first` or :func:`store8_first`, as wide as ``value``."""


# Chosen while typing, by the vector type: one kernel source for a block whose
# last vectors are whole or half (see pointwise_cl).
@overload(vload, inline="always")
def _vload_impl(like, array, offset):
    if like == vector8:
        return lambda like, array, offset: load8(array, offset)
    return lambda like, array, offset: load16(array, offset)


@overload(vsplat, inline="always")
def _vsplat_impl(like, value):
    if like == vector8:
        return lambda like, value: splat8(value)
    return lambda like, value: splat16(value)


@overload(vfma, inline="always")
def _vfma_impl(a, b, c):
    if a == vector8:
        return lambda a, b, c: fma8(a, b, c)
    return lambda a, b, c: fma16(a, b, c)


@overload(vstore_first, inline="always")
def _vstore_first_impl(array, offset, value, count):
    if value == vector8:
        return lambda array, offset, value, count: store8_first(array, offset, value, count)
    return lambda array, offset, value, count: store16_first(array, offset, value, count)


@inlined
def load4(array, at, step):
    """Four vectors from ``array[at]``, ``array[at + step]``, ... (unsigned ``at`` and ``step``)."""
    return (load16(array, at), load16(array, at + step), load16(array, at + U(2) * step),
            load16(array, at + U(3) * step))


@inlined
def store4(array, at, step, a0, a1, a2, a3):
    """Store four vectors at ``array[at]``, ``array[at + step]``, ... (see :func:`load4`)."""
    store16(array, at, a0)
    store16(array, at + step, a1)
    store16(array, at + U(2) * step, a2)
    store16(array, at + U(3) * step, a3)


def copy_run(dst, d0, src, s0, count):
    """``dst[d0 : d0 + count] = src[s0 : s0 + count]`` (flat arrays, unsigned offsets).

    A row copy of a few dozen values: LLVM's vectorised loop wants 64
    float32 values or more (16 lanes, unrolled 4 times) and copies shorter
    runs one value at a time, so float32 runs go 16 at a time here. A run
    of 16 or more values ends with the 16 that end it (overlapping the
    vector before: the same values stored twice); a shorter run is one
    masked load and store (a masked store is microcode without AVX-512,
    measured 12x a plain store on AMD Zen 3). Other dtypes copy in a plain
    loop. ``dst`` and ``src`` are distinct arrays.
    """


@overload(copy_run, inline="always")
def _copy_run_impl(dst, d0, src, s0, count):
    # Chosen while typing: each build compiles one of the two.
    if _is_float32_array(dst) and _is_float32_array(src):
        def impl(dst, d0, src, s0, count):
            if count < U(LANES):
                store16_first(dst, d0, load16_first(src, s0, count), count)
            else:
                vectors = count // U(LANES)
                for k in range(vectors):
                    at = k * U(LANES)
                    store16(dst, d0 + at, load16(src, s0 + at))
                if count > vectors * U(LANES):
                    at = count - U(LANES)
                    store16(dst, d0 + at, load16(src, s0 + at))
    else:
        def impl(dst, d0, src, s0, count):
            for k in range(count):
                dst[d0 + k] = src[s0 + k]
    return impl
