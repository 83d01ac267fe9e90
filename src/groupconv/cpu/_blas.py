"""BLAS matrix products on raw array memory, with leading dimensions and accumulation.

NumPy's ``matmul`` cannot accumulate into its output (BLAS's ``beta``) nor
take a matrix whose rows are a fixed number of elements apart inside a
larger array (BLAS's leading dimension) without copying. The GEMM path needs
both: it multiplies *views* of a padded input, shifted by one kernel tap
each, and sums the taps' products in place. So it calls the BLAS ``?gemm``
routines that SciPy exports for Cython (:mod:`scipy.linalg.cython_blas`),
through :mod:`ctypes`, on pointers into the arrays.

Every matrix is column-major, as BLAS sees it: a C-ordered ``(r, s)`` block
whose rows are ``ld`` elements apart is the column-major ``(s, r)`` matrix
with leading dimension ``ld``. The caller keeps every pointer and extent
inside its arrays; :func:`gemm` checks only that the sizes fit BLAS's 32-bit
integers.

SciPy is imported on the first product, not with :mod:`groupconv`.
"""

from __future__ import annotations

import ctypes
import functools

import numpy as np

__all__ = ["INT_MAX", "gemm", "supports"]

#: Largest extent or leading dimension the 32-bit BLAS interface takes.
INT_MAX = 2**31 - 1

_ROUTINES = {
    np.dtype(np.float32): ("sgemm", ctypes.c_float, 1),
    np.dtype(np.float64): ("dgemm", ctypes.c_double, 1),
    np.dtype(np.complex64): ("cgemm", ctypes.c_float, 2),
    np.dtype(np.complex128): ("zgemm", ctypes.c_double, 2),
}

_P = ctypes.c_void_p
_NO_TRANSPOSE = ctypes.c_char(b"N")


def _capsule_address(capsule) -> int:
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype = ctypes.c_void_p
    get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    return get_pointer(capsule, get_name(capsule))


@functools.cache
def _routine(dtype: np.dtype):
    """The ``?gemm`` routine for ``dtype`` and its scalars 1 and 0."""
    from scipy.linalg import cython_blas

    name, real, parts = _ROUTINES[dtype]
    function = ctypes.CFUNCTYPE(None, *([_P] * 13))(
        _capsule_address(cython_blas.__pyx_capi__[name]))
    scalar = real * parts
    one, zero = scalar(1), scalar(0)
    return function, one, zero


def supports(dtype) -> bool:
    """Whether :func:`gemm` has a BLAS routine for ``dtype``."""
    return np.dtype(dtype) in _ROUTINES


def gemm(dtype, m, n, k, a, a_offset, lda, b, b_offset, ldb, c, c_offset, ldc, accumulate):
    """``C = A @ B`` (or ``C += A @ B``), column-major, on memory inside three arrays.

    ``A`` is ``m x k`` starting ``a_offset`` elements into array ``a``, its
    columns ``lda`` elements apart; likewise ``B`` (``k x n``) and ``C``
    (``m x n``, written). ``accumulate`` adds to ``C`` instead of
    overwriting it. The arrays must have ``dtype`` and stay alive for the
    call; the caller keeps every element the extents reach inside them.
    """
    dtype = np.dtype(dtype)
    if max(m, n, k, lda, ldb, ldc) > INT_MAX:
        raise OverflowError("matrix too large for the 32-bit BLAS interface")
    routine, one, zero = _routine(dtype)
    size = dtype.itemsize
    ints = [ctypes.c_int(v) for v in (m, n, k, lda, ldb, ldc)]
    routine(ctypes.byref(_NO_TRANSPOSE), ctypes.byref(_NO_TRANSPOSE),
            ctypes.byref(ints[0]), ctypes.byref(ints[1]), ctypes.byref(ints[2]),
            ctypes.byref(one), _P(a.ctypes.data + a_offset * size), ctypes.byref(ints[3]),
            _P(b.ctypes.data + b_offset * size), ctypes.byref(ints[4]),
            ctypes.byref(one if accumulate else zero),
            _P(c.ctypes.data + c_offset * size), ctypes.byref(ints[5]))
