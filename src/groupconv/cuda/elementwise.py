"""Small device-array operations the GPU path needs besides convolution.

Converting an input to the compute dtype, making a contiguous copy where no
view exists, and the few array operations of :mod:`groupconv.tricks`
(``take`` along an axis, a sum over an axis, adding a vector along an axis,
``concatenate``) on Numba device arrays, which have none of them.

Every kernel works on 6-D views (``take``, ``add``: the operated axis first;
``sum``: a 7-D source with the summed axis first), built by
:func:`_normalise`: adjacent dims that are contiguous with each other in
every operand are merged, unit dims are added in front, and an array that
still has more than 6 dims after merging is refused with
``NotImplementedError``. A thread handles one destination element at a
time, in a grid-stride loop.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from . import _interop, _launch
from ._device import compile_kernel, cuda, numba_type

__all__ = ["add_along_axis", "ascontiguous", "astype", "concatenate", "copy_into",
           "sum_axis", "take"]

RANK = 6


def _unravel6(i, shape):
    """Flat C-order index -> six indices (inlined into each kernel)."""
    i5 = i % shape[5]
    rest = i // shape[5]
    i4 = rest % shape[4]
    rest //= shape[4]
    i3 = rest % shape[3]
    rest //= shape[3]
    i2 = rest % shape[2]
    rest //= shape[2]
    i1 = rest % shape[1]
    i0 = rest // shape[1]
    return i0, i1, i2, i3, i4, i5


@functools.cache
def _unravel():
    return cuda.jit(device=True, inline="always")(_unravel6)


@functools.cache
def _copy_kernel():
    unravel = _unravel()

    def copy6(src, dst):
        for i in range(cuda.grid(1), dst.size, cuda.gridsize(1)):
            a, b, c, d, e, f = unravel(i, dst.shape)
            dst[a, b, c, d, e, f] = src[a, b, c, d, e, f]

    return compile_kernel(copy6)


@functools.cache
def _sum_kernel(acc_dtype: str):
    acc_t = numba_type(acc_dtype)
    unravel = _unravel()

    def sum7(src, dst):
        for i in range(cuda.grid(1), dst.size, cuda.gridsize(1)):
            a, b, c, d, e, f = unravel(i, dst.shape)
            acc = acc_t(0)
            for p in range(src.shape[0]):
                acc += acc_t(src[p, a, b, c, d, e, f])
            dst[a, b, c, d, e, f] = acc

    return compile_kernel(sum7)


@functools.cache
def _take_kernel():
    unravel = _unravel()

    def take6(src, index, dst):
        for i in range(cuda.grid(1), dst.size, cuda.gridsize(1)):
            a, b, c, d, e, f = unravel(i, dst.shape)
            dst[a, b, c, d, e, f] = src[index[a], b, c, d, e, f]

    return compile_kernel(take6)


@functools.cache
def _add_kernel(acc_dtype: str):
    # float16 arithmetic would call cuda_fp16's C++ operators, which only
    # Numba's linker resolves: compute in float32 and convert on the store.
    acc_t = numba_type(acc_dtype)
    unravel = _unravel()

    def add6(dst, vector):
        for i in range(cuda.grid(1), dst.size, cuda.gridsize(1)):
            a, b, c, d, e, f = unravel(i, dst.shape)
            dst[a, b, c, d, e, f] = acc_t(dst[a, b, c, d, e, f]) + acc_t(vector[a])

    return compile_kernel(add6)


def specialisations():
    """``(name, python function, signature)`` for the dtypes the GPU path converts between."""
    import numba

    from ._device import array

    casts = [(src, dst) for dst in ("float32", "float64", "complex64", "complex128")
             for src in ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16",
                         "uint32", "uint64", "float16", "float32", "float64", "complex64")
             if np.can_cast(src, dst, "same_kind") and src != dst]
    casts += [("float32", "float16"), ("bool", "int64"), ("int32", "int64"), ("uint64", "int64")]
    for src, dst in casts:
        yield (f"copy[{src} -> {dst}]", _copy_kernel().py_func,
               numba.types.void(array(src, RANK), array(dst, RANK)))
    for dtype in ("float16", "float32", "float64", "complex64", "complex128", "int64"):
        acc = "float32" if dtype == "float16" else dtype
        yield (f"sum[{dtype}]", _sum_kernel(acc).py_func,
               numba.types.void(array(dtype, RANK + 1), array(dtype, RANK)))
        yield (f"take[{dtype}]", _take_kernel().py_func,
               numba.types.void(array(dtype, RANK), array("int64", 1), array(dtype, RANK)))
        yield (f"add[{dtype}]", _add_kernel(acc).py_func,
               numba.types.void(array(dtype, RANK), array(dtype, 1)))


# --------------------------------------------------------------------------- host side


def _merge(shape, *strides_list):
    """Merge adjacent dims that are contiguous in every operand; drop unit dims."""
    dims = [(n, [s[k] for s in strides_list]) for k, n in enumerate(shape) if n != 1]
    merged = []
    for n, strides in dims:
        if merged:
            m, outer = merged[-1]
            if all(o == s * n for o, s in zip(outer, strides, strict=True)):
                merged[-1] = (m * n, strides)
                continue
        merged.append((n, strides))
    return [n for n, _ in merged], [[s[i] for _, s in merged] for i in range(len(strides_list))]


def _normalise(arrays, lead: int = 0, rank: int = RANK):
    """Views with the dims after ``lead`` merged (they must agree) and padded to ``rank``.

    Each array keeps its own first ``lead`` dims (the operated axis), so a
    source and a destination may differ there.
    """
    tail = tuple(arrays[0].shape[lead:])
    merged, strides = _merge(tail, *[tuple(a.strides)[lead:] for a in arrays])
    if len(merged) + lead > rank:
        raise NotImplementedError(
            f"a CUDA array of shape {tuple(arrays[0].shape)} has more than {rank} dims that "
            f"cannot be merged into fewer (its strides are not contiguous across them); "
            f"copy it to a contiguous array first"
        )
    pad = rank - lead - len(merged)
    views = []
    for array, tail_strides in zip(arrays, strides, strict=True):
        itemsize = array.dtype.itemsize
        new_shape = tuple(array.shape[:lead]) + (1,) * pad + tuple(merged)
        new_strides = tuple(array.strides[:lead]) + (itemsize,) * pad + tuple(tail_strides)
        views.append(_interop.strided_view(array, new_shape, new_strides))
    return views


def _launch_flat(kernel, size, stream, *args):
    if size == 0:
        return
    threads = _launch.threads_per_block()
    kernel[_launch.blocks_for(size, threads), threads, stream](*args)


def _stream(stream):
    return _interop.as_stream(stream) if not _is_stream(stream) else stream


def _is_stream(stream):
    return stream is not None and type(stream).__module__.startswith("numba.cuda")


def copy_into(src, dst, stream=None):
    """``dst[...] = src`` for wrapped device arrays of one shape, converting the dtype."""
    if tuple(src.shape) != tuple(dst.shape):
        raise ValueError(f"cannot copy shape {tuple(src.shape)} into {tuple(dst.shape)}")
    src6, dst6 = _normalise([src, dst])
    _launch_flat(_copy_kernel(), math.prod(dst.shape), _stream(stream), src6, dst6)
    return dst


def ascontiguous(array, stream=None):
    """A C-contiguous copy of a wrapped device array."""
    dst = _interop.device_empty(array.shape, array.dtype, _stream(stream))
    return copy_into(array, dst, stream)


def astype(array, dtype, stream=None):
    """``array`` itself if it has ``dtype``, else a C-contiguous converted copy."""
    if array.dtype == np.dtype(dtype):
        return array
    dst = _interop.device_empty(array.shape, dtype, _stream(stream))
    return copy_into(array, dst, stream)


def _axis_first(ndim, axis):
    return (axis,) + tuple(k for k in range(ndim) if k != axis)


def sum_axis(array, axis: int, dtype, stream=None):
    """Sum a wrapped device array over ``axis`` into a new array of ``dtype``.

    float16 is summed in float32; the caller picks ``dtype`` (NumPy's sum
    dtype) and converts integer inputs to int64 first.
    """
    order = _axis_first(array.ndim, axis)
    source = _interop.transpose(array, order)
    out_shape = tuple(source.shape[1:])
    dst = _interop.device_empty(out_shape, dtype, _stream(stream))
    if math.prod(out_shape) == 0:
        return dst
    src7, dst7 = _normalise([source, _interop.expand_dims(dst, 0)], lead=1, rank=RANK + 1)
    dst6 = _interop.strided_view(dst7, tuple(dst7.shape[1:]), tuple(dst7.strides[1:]))
    acc = "float32" if np.dtype(dtype) == np.float16 else str(np.dtype(dtype))
    _launch_flat(_sum_kernel(acc), math.prod(out_shape), _stream(stream), src7, dst6)
    return dst


def take(array, indices, axis: int, stream=None):
    """``numpy.take(array, indices, axis)`` for a wrapped device array (a new array)."""
    indices = np.asarray(indices, dtype=np.int64)
    shape = list(array.shape)
    shape[axis] = len(indices)
    stream = _stream(stream)
    dst = _interop.device_empty(shape, array.dtype, stream)
    if dst.size == 0:
        return dst
    order = _axis_first(array.ndim, axis)
    src6, dst6 = _normalise([_interop.transpose(array, order), _interop.transpose(dst, order)],
                            lead=1)
    index = _interop.to_device(indices, stream)
    _launch_flat(_take_kernel(), dst.size, stream, src6, index, dst6)
    return dst


def add_along_axis(array, vector, axis: int, stream=None):
    """``array += vector`` broadcast along ``axis``, in place (``vector`` converted first)."""
    stream = _stream(stream)
    if not _interop.is_cuda_array(vector):
        vector = _interop.to_device(np.asarray(vector), stream)
    vector = astype(_interop.as_device_array(vector), array.dtype, stream)
    (view,) = _normalise([_interop.transpose(array, _axis_first(array.ndim, axis))], lead=1)
    acc = "float32" if array.dtype == np.float16 else str(array.dtype)
    _launch_flat(_add_kernel(acc), math.prod(array.shape), stream, view, vector)
    return array


def concatenate(arrays, axis: int, stream=None):
    """``numpy.concatenate`` of wrapped device arrays of one dtype (a new array)."""
    stream = _stream(stream)
    shape = list(arrays[0].shape)
    shape[axis] = sum(a.shape[axis] for a in arrays)
    dst = _interop.device_empty(shape, arrays[0].dtype, stream)
    start = 0
    for array in arrays:
        stop = start + array.shape[axis]
        index = (slice(None),) * axis + (slice(start, stop),)
        copy_into(array, dst[index], stream)
        start = stop
    return dst
