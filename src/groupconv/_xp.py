"""The few array operations :mod:`groupconv.tf` and :mod:`groupconv.tricks` need, for
NumPy arrays and CUDA arrays alike.

NumPy arrays go to NumPy, unchanged. CUDA arrays (anything with
``__cuda_array_interface__``) are wrapped as Numba device arrays without a
copy and handled by :mod:`groupconv.cuda` (views where possible, small
kernels otherwise); :func:`like` hands a result back as the caller's kind.
Nothing from :mod:`groupconv.cuda` is imported for NumPy inputs.
"""

from __future__ import annotations

import numpy as np

__all__ = ["add_along_axis", "asarray", "astype", "concatenate", "is_gpu", "like",
           "reshape", "sum_axis", "take", "transpose"]


def _cuda():
    from .cuda import _interop, elementwise

    return _interop, elementwise


def is_gpu(value) -> bool:
    """Whether ``value`` is a CUDA array (NumPy arrays and Python values are not)."""
    if value is None or isinstance(value, (np.ndarray, np.generic, list, tuple, int, float)):
        return False
    return _cuda()[0].is_cuda_array(value)


def asarray(value, name="array"):
    """``numpy.asarray``, or a Numba device array view of a CUDA array."""
    if is_gpu(value):
        return _cuda()[0].as_device_array(value, name)
    return np.asarray(value)


def transpose(array, axes):
    """``array.transpose(axes)`` (a view), for NumPy and CUDA arrays."""
    if is_gpu(array):
        interop = _cuda()[0]
        return interop.transpose(interop.as_device_array(array), axes)
    return np.transpose(array, axes)


def reshape(array, shape):
    """``numpy.reshape``; a CUDA array keeps its kind (a view, else a contiguous copy)."""
    if is_gpu(array):
        return _cuda()[0].reshape(array, shape)
    return np.reshape(array, shape)


def like(result, caller):
    """``result`` as the kind of array ``caller`` is (both NumPy: ``result`` itself)."""
    if not is_gpu(result):
        return result
    interop = _cuda()[0]
    kind = interop.array_kind(caller)
    if kind in ("numba", "cai", "numpy"):
        return result
    return interop.to_caller(interop.as_device_array(result), kind, caller)


def take(array, indices, axis):
    """``numpy.take(array, indices, axis=axis)``."""
    if is_gpu(array):
        interop, elementwise = _cuda()
        array = interop.as_device_array(array)
        return elementwise.take(array, indices, axis % array.ndim)
    return np.take(array, indices, axis=axis)


def sum_axis(array, axis):
    """``array.sum(axis=axis)`` with NumPy's result dtype (integers and bool give int64)."""
    if is_gpu(array):
        interop, elementwise = _cuda()
        array = interop.as_device_array(array)
        dtype = np.zeros(1, array.dtype).sum().dtype
        if array.dtype.kind in "biu":
            array = elementwise.astype(array, dtype)
        return elementwise.sum_axis(array, axis % array.ndim, dtype)
    return array.sum(axis=axis)


def add_along_axis(array, vector, axis):
    """``array += vector`` broadcast along ``axis`` (in place); returns ``array``."""
    if is_gpu(array):
        interop, elementwise = _cuda()
        array = interop.as_device_array(array)
        return elementwise.add_along_axis(array, vector, axis % array.ndim)
    shape = [1] * array.ndim
    shape[axis] = -1
    array += np.reshape(vector, shape)
    return array


def astype(array, dtype):
    """``array.astype(dtype, copy=False)``."""
    if is_gpu(array):
        interop, elementwise = _cuda()
        return elementwise.astype(interop.as_device_array(array), dtype)
    return array.astype(dtype, copy=False)


def concatenate(arrays, axis):
    """``numpy.concatenate(arrays, axis=axis)`` (CUDA arrays: all on the GPU, one dtype)."""
    if any(is_gpu(a) for a in arrays):
        interop, elementwise = _cuda()
        arrays = [interop.as_device_array(a) for a in arrays]
        return elementwise.concatenate(arrays, axis % arrays[0].ndim)
    return np.concatenate(arrays, axis=axis)
