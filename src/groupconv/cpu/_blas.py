"""BLAS matrix products called from inside Numba kernels, with leading dimensions and ``beta``.

NumPy's ``matmul`` cannot accumulate into its output (BLAS's ``beta``) nor
take a matrix whose columns are a fixed number of elements apart inside a
larger array (BLAS's leading dimension) without copying. The GEMM path needs
both: it multiplies *views* of a padded input, shifted by one kernel tap
each, and sums the taps' products in place. So the kernels call the BLAS
``?gemm`` routines that SciPy exports for Cython
(:mod:`scipy.linalg.cython_blas`) directly, through :func:`gemm_call`, a
Numba intrinsic that calls a routine given by its address.

Why from inside the kernels, in Numba's threads: a Numba parallel region
and a multi-threaded BLAS call that follow each other leave each library's
idle workers spinning against the other's (measured here: a depthwise
layer followed by a pointwise layer took 7.2 ms instead of 3 ms, and
alternating the two on row tiles 100 times slower). So every product runs
single-threaded in the Numba worker that owns its tile (the caller holds
:func:`single_threaded` around the kernel), and BLAS's own thread pool
never wakes.

Every matrix is column-major, as BLAS sees it: a C-ordered ``(r, s)`` block
whose rows are ``ld`` elements apart is the column-major ``(s, r)`` matrix
with leading dimension ``ld``. The caller keeps every pointer and extent
inside its arrays. The addresses are plain integers passed to the kernels,
so the kernels stay cacheable; SciPy is imported on the first product, not
with :mod:`groupconv`.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import threading

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ._jit import jit

__all__ = ["INT_MAX", "gemm", "gemm_address", "gemm_call", "single_threaded"]

#: Largest extent or leading dimension the 32-bit BLAS interface takes.
INT_MAX = 2**31 - 1

_ROUTINES = {
    np.dtype(np.float32): "sgemm",
    np.dtype(np.float64): "dgemm",
    np.dtype(np.complex64): "cgemm",
    np.dtype(np.complex128): "zgemm",
}


def _capsule_address(capsule) -> int:
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype = ctypes.c_void_p
    get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    return get_pointer(capsule, get_name(capsule))


@functools.cache
def gemm_address(dtype) -> int:
    """The address of the BLAS ``?gemm`` routine for ``dtype`` (Fortran interface)."""
    from scipy.linalg import cython_blas

    return _capsule_address(cython_blas.__pyx_capi__[_ROUTINES[np.dtype(dtype)]])


_LOCK = threading.Lock()
_ACTIVE = 0
_RESTORE = None


@contextlib.contextmanager
def single_threaded():
    """Run BLAS single-threaded while the block runs (nested and concurrent uses add up).

    The kernels call BLAS from each of Numba's threads, so BLAS itself must
    not start threads: a multi-threaded call from inside a parallel region
    oversubscribes the cores, and OpenBLAS built on pthreads warns that it
    "may hang". The limit is process-wide (through :mod:`threadpoolctl`, on
    every BLAS library loaded), so other threads' BLAS calls also run on one
    thread while a groupconv call is inside this block; the previous limits
    come back when the last block ends.
    """
    global _ACTIVE, _RESTORE
    with _LOCK:
        if _ACTIVE == 0:
            _RESTORE = _controller().limit(limits=1, user_api="blas")
        _ACTIVE += 1
    try:
        yield
    finally:
        with _LOCK:
            _ACTIVE -= 1
            if _ACTIVE == 0:
                _RESTORE.restore_original_limits()
                _RESTORE = None


@functools.cache
def _controller():
    import threadpoolctl

    gemm_address(np.float64)  # SciPy's BLAS loaded first, so that the controller sees it
    return threadpoolctl.ThreadpoolController()


def _int32(context, builder, value, from_type):
    return context.cast(builder, value, from_type, types.int32)


@intrinsic
def gemm_call(typingctx, address, m, n, k, a, a_offset, lda, b, b_offset, ldb, c, c_offset,
              ldc, accumulate):
    """``C = A @ B`` (or ``C += A @ B`` when ``accumulate``), column-major, single call.

    ``address`` is :func:`gemm_address` of the arrays' dtype; ``A`` is
    ``m x k`` starting ``a_offset`` elements into the 1-D array ``a``, its
    columns ``lda`` elements apart; likewise ``B`` (``k x n``) and ``C``
    (``m x n``, written).
    """
    arrays = (a, b, c)
    if not all(isinstance(t, types.Array) for t in arrays):
        return None
    if len({t.dtype for t in arrays}) != 1 or np.dtype(str(a.dtype)) not in _ROUTINES:
        return None
    integers = (address, m, n, k, a_offset, lda, b_offset, ldb, c_offset, ldc)
    if not all(isinstance(t, types.Integer) for t in integers):
        return None
    signature = types.void(address, m, n, k, a, a_offset, lda, b, b_offset, ldb, c, c_offset,
                           ldc, accumulate)

    def codegen(context, builder, signature, args):
        arg_types = signature.args
        byte_pointer = ir.IntType(8).as_pointer()
        function_type = ir.FunctionType(ir.VoidType(), [byte_pointer] * 13)
        address_value = context.cast(builder, args[0], arg_types[0], types.intp)
        function = builder.inttoptr(address_value, function_type.as_pointer())

        def by_reference(value, llvm_type):
            slot = cgutils.alloca_once(builder, llvm_type)
            builder.store(value, slot)
            return builder.bitcast(slot, byte_pointer)

        def integer(index):
            return by_reference(_int32(context, builder, args[index], arg_types[index]),
                                ir.IntType(32))

        def data(index, offset_index):
            array = context.make_array(arg_types[index])(context, builder, args[index])
            offset = context.cast(builder, args[offset_index], arg_types[offset_index],
                                  types.intp)
            return builder.bitcast(builder.gep(array.data, [offset]), byte_pointer)

        dtype = arg_types[4].dtype
        value_type = context.get_value_type(dtype)
        one, zero = context.get_constant(dtype, 1), context.get_constant(dtype, 0)
        flag = context.cast(builder, args[13], arg_types[13], types.boolean)
        no_transpose = by_reference(ir.Constant(ir.IntType(8), ord("N")), ir.IntType(8))
        builder.call(function, [
            no_transpose, no_transpose, integer(1), integer(2), integer(3),
            by_reference(one, value_type), data(4, 5), integer(6), data(7, 8), integer(9),
            by_reference(builder.select(flag, one, zero), value_type), data(10, 11),
            integer(12),
        ])
        return context.get_dummy_value()

    return signature, codegen


@jit(parallel=False)
def _gemm_serial(address, m, n, k, a, a_offset, lda, b, b_offset, ldb, c, c_offset, ldc,
                 accumulate):
    gemm_call(address, m, n, k, a, a_offset, lda, b, b_offset, ldb, c, c_offset, ldc,
              accumulate)


def gemm(dtype, m, n, k, a, a_offset, lda, b, b_offset, ldb, c, c_offset, ldc, accumulate):
    """:func:`gemm_call` from Python, on contiguous arrays of ``dtype`` (for tests).

    Raises ``OverflowError`` for extents beyond BLAS's 32-bit integers.
    """
    if max(m, n, k, lda, ldb, ldc) > INT_MAX:
        raise OverflowError("matrix too large for the 32-bit BLAS interface")
    _gemm_serial(gemm_address(dtype), m, n, k, a.reshape(-1), a_offset, lda, b.reshape(-1),
                 b_offset, ldb, c.reshape(-1), c_offset, ldc, bool(accumulate))
