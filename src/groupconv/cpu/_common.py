"""Helpers shared by the CPU kernels: unsigned offsets and index ranges."""

from __future__ import annotations

import functools
import math

import numba
import numpy as np

from .._validate import PADDING_MODES
from ._jit import inlined, jit

__all__ = ["ALIGNMENT", "U", "add_row_taps", "aligned_buffer", "aligned_copy", "aligned_empty",
           "interior_columns", "kept", "kernel_bias", "padded_input", "rows_per_task", "to_3d",
           "valid_range", "writeable_c_order"]

# Why the inner loops index flat arrays with np.uint64 offsets: Numba wraps
# negative signed indices (``a[i]`` with ``i < 0`` means ``a[n + i]``), and
# that check stops LLVM from vectorising; unsigned offsets cannot be
# negative, so the innermost loops become packed (ymm/zmm) FMAs.
U = np.uint64


#: Byte alignment of the arrays the kernels make: one cache line, one
#: 512-bit vector. NumPy aligns large arrays to 16 bytes only, so every
#: 64-byte vector load or store would span two cache lines (measured: a
#: depthwise layer 13 % slower on 16-byte-aligned arrays).
ALIGNMENT = 64


def aligned_empty(shape, dtype) -> np.ndarray:
    """``np.empty(shape, dtype)`` starting on an :data:`ALIGNMENT`-byte boundary (a view of
    a slightly larger buffer)."""
    return _aligned_flat(math.prod(shape), _empty_like(np.dtype(dtype))).reshape(shape)


@functools.lru_cache(maxsize=16)
def _empty_like(dtype: np.dtype) -> np.ndarray:
    """An empty array of ``dtype``: how :func:`_aligned_flat` is told the dtype."""
    return np.empty(0, dtype=dtype)


def aligned_copy(array: np.ndarray) -> np.ndarray:
    """A C-contiguous, :data:`ALIGNMENT`-byte aligned copy of ``array`` (for packed weights)."""
    copy = aligned_empty(array.shape, array.dtype)
    copy[...] = array
    return copy


@inlined
def aligned_buffer(count, like):
    """A 1-D buffer of ``count`` elements of ``like``'s dtype on an :data:`ALIGNMENT`-byte
    boundary, inside a kernel."""
    lanes = ALIGNMENT // like.itemsize
    raw = np.empty(count + lanes, dtype=like.dtype)
    start = (lanes - (raw.ctypes.data % ALIGNMENT) // like.itemsize) % lanes
    return raw[start:start + count]


@jit(parallel=False)
def _aligned_flat(count, like):
    """:func:`aligned_buffer` called from Python.

    Finding a NumPy array's address from Python (``.ctypes`` or
    ``__array_interface__``) goes through Python-level NumPy code, and right
    after a kernel, with the caches cold, it cost 20 us per aligned array
    (measured, dw3x3_14: a call allocates two; a plain ``np.empty`` cost
    2-5 us there, this 8-15 us).
    """
    return aligned_buffer(count, like)


@inlined
def valid_range(shift, step, size, count):
    """The outputs ``i`` in ``[lo, hi)`` for which ``i*step + shift`` lies in ``[0, size)``."""
    lo = 0 if shift >= 0 else (step - 1 - shift) // step
    hi = min((size - 1 - shift) // step + 1, count)
    return lo, max(hi, lo)


@inlined
def interior_columns(kw_size, stride_w, dilation_w, pad_w, w_in, w_out):
    """``(lo, hi)``: the output columns whose every tap along W lies inside the input."""
    lo = valid_range(-pad_w, stride_w, w_in, w_out)[0]
    hi = max(valid_range((kw_size - 1) * dilation_w - pad_w, stride_w, w_in, w_out)[1], lo)
    return lo, hi


@inlined
def add_row_taps(out_flat, dst, x_flat, src, tap, shift, step, size, lo, hi):
    """``out[dst + i] += tap * x[src + i*step + shift]`` for ``i`` in ``[lo, hi)`` inside x."""
    a, b = valid_range(shift, step, size, hi)
    a = max(a, lo)
    if b <= a:
        return
    first = src + U(a * step + shift)
    start = dst + U(a)
    if step == 1:
        for i in range(U(b - a)):
            out_flat[start + i] += tap * x_flat[first + i]
    else:
        stride = U(step)
        for i in range(U(b - a)):
            out_flat[start + i] += tap * x_flat[first + i * stride]


def kept(cache: dict, key, limit: int, make):
    """``cache[key]``, made by ``make()`` and kept on a miss; a full cache (``limit``
    entries) is emptied first. For the per-geometry caches of the dispatcher and the
    direct driver: a network has a few dozen distinct layers, so emptying is rare."""
    value = cache.get(key)
    if value is None:
        if len(cache) >= limit:
            cache.clear()
        value = cache[key] = make()
    return value


def to_3d(values, fill):
    """Prefix ``values`` with ``fill`` up to 3 entries (1-D and 2-D become 3-D)."""
    return (fill,) * (3 - len(values)) + tuple(values)


def kernel_bias(spec) -> np.ndarray:
    """``spec.bias`` as a writeable C-contiguous array in the compute dtype, or zeros.

    Kernels only read it. The caller's bias is used as it is when it already
    is one (else a tiny copy: a read-only bias would be a separate Numba
    type, compiled again); zeros for no bias are made once per size and dtype.
    """
    if spec.bias is None:
        return _zeros(spec.c_out, spec.dtype)
    return writeable_c_order(spec.bias)  # already in the compute dtype (ConvSpec)


def writeable_c_order(array: np.ndarray) -> np.ndarray:
    """``array`` if it is C-ordered and writeable, else such a copy: one Numba type for
    every caller's array (a read-only one would compile the kernel again)."""
    flags = array.flags
    return array if flags.c_contiguous and flags.writeable else np.array(array, order="C")


@functools.lru_cache(maxsize=64)
def _zeros(count: int, dtype: np.dtype) -> np.ndarray:
    return np.zeros(count, dtype=dtype)


def rows_per_task(total: int, bound: int, per_thread: int = 2, threads: int | None = None) -> int:
    """Rows (or pixels) per parallel task: at most ``bound``, in a number of tasks that the
    threads share evenly (a multiple of the thread count, at least ``per_thread`` each).

    ``threads`` defaults to Numba's thread count; a fixed count makes the
    tiles independent of it.
    """
    threads = numba.get_num_threads() if threads is None else threads
    tasks = max(math.ceil(total / max(bound, 1)), per_thread * threads)
    tasks = math.ceil(tasks / threads) * threads
    return max(1, math.ceil(total / tasks))


def padded_input(spec):
    """``spec.x`` with a non-zero padding mode applied, and the zero padding left to do.

    Zero padding is left to the kernels (index bounds, no copy); any other
    mode is materialised with :func:`numpy.pad`: a workspace of one padded
    copy of the input.
    """
    x, pads, rank = spec.x, spec.padding, spec.rank
    if spec.padding_mode == "zeros" or not any(lo or hi for lo, hi in pads):
        return x, pads
    first = 1 if spec.layout == "channels_last" else 2
    widths = [(0, 0)] * x.ndim
    widths[first:first + rank] = pads
    return np.pad(x, widths, mode=PADDING_MODES[spec.padding_mode]), ((0, 0),) * rank
