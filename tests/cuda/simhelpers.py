"""Helpers of the simulator tests: data, tolerances, and a bare CUDA-array-interface object."""

import numpy as np
from numba import cuda

#: Relative tolerance per result dtype against the float64/complex128 oracle
#: (the same figures as the main suite's conftest).
TOLERANCE = {
    np.dtype(np.float16): 1e-2,
    np.dtype(np.float32): 2e-5,
    np.dtype(np.complex64): 2e-5,
    np.dtype(np.float64): 1e-12,
    np.dtype(np.complex128): 1e-12,
}


def host(result):
    """A GPU result (simulator device array or CAI object) or a NumPy one, as NumPy."""
    if isinstance(result, np.ndarray):
        return result
    if isinstance(result, CAIObject):
        return result.array
    return result.copy_to_host()


def assert_close(actual, expected, dtype=None):
    actual = host(actual)
    dtype = np.dtype(dtype or actual.dtype)
    assert actual.dtype == dtype, (actual.dtype, dtype)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    tol = TOLERANCE[dtype]
    scale = max(float(np.max(np.abs(expected), initial=1.0)), 1.0)
    np.testing.assert_allclose(actual.astype(expected.dtype), expected, rtol=tol,
                               atol=tol * scale)


def random_array(rng, shape, dtype="float64"):
    dtype = np.dtype(dtype)
    if dtype.kind == "c":
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)
    if dtype.kind in "iu":
        return rng.integers(0, 6, size=shape).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, size=shape).astype(bool)
    return rng.standard_normal(shape).astype(dtype)


def to_device(array):
    return cuda.to_device(np.ascontiguousarray(array))


class CAIObject:
    """Exposes only ``__cuda_array_interface__``, over a NumPy array's memory.

    In the simulator "device" memory is host memory, so this stands for any
    foreign GPU array (CuPy, PyTorch, ...) that groupconv knows nothing about.
    """

    def __init__(self, array, readonly=False):
        self.array = array  # keeps the memory alive
        self.__cuda_array_interface__ = {
            "shape": array.shape,
            "strides": None if array.flags.c_contiguous else array.strides,
            "typestr": array.dtype.str,
            "data": (array.__array_interface__["data"][0], readonly),
            "version": 3,
        }


def channels_last(x):
    """A channels-first batch as channels-last (a contiguous copy)."""
    return np.ascontiguousarray(np.moveaxis(x, 1, -1))
