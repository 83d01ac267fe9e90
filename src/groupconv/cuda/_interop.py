"""Array interop for the GPU path: the one module that knows about foreign GPU arrays.

Any object with ``__cuda_array_interface__`` (CAI) -- Numba device arrays,
CuPy arrays, PyTorch CUDA tensors, or a plain object that only exposes the
interface -- is recognised here, wrapped as a Numba device array without a
copy, and the result is handed back as the caller's kind of array:

=========================  ================================================
input                      result
=========================  ================================================
Numba device array         Numba device array
CuPy array                 CuPy array (``cupy.asarray``, no copy)
PyTorch CUDA tensor        tensor on the same device (``torch.as_tensor``,
                           no copy)
other CAI object           Numba device array (it exposes the CAI itself)
NumPy, ``device="cuda"``   NumPy: copied in, computed, copied out
=========================  ================================================

The kind is read from the module name of ``type(x)``, so CuPy and PyTorch
are imported only when the input is theirs, and ``numba.cuda`` only when a
GPU call is made.

Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) is a different API: it
has no ``as_cuda_array``/``is_cuda_array``, and its device arrays
(``FakeCUDAArray``) expose no CAI. In the simulator, "device" memory is host
memory, so a CAI pointer is viewed as a NumPy array (through ``ctypes``) and
wrapped as a ``FakeCUDAArray`` without a copy; the same tests therefore
exercise this module with and without a GPU.

Views (unit dims, transposes, reshapes) are built from shapes and strides
here rather than by the array libraries, because Numba device arrays only
reshape when contiguous and only transpose in 2-D.
"""

from __future__ import annotations

import ctypes
import dataclasses
import math

import numpy as np

__all__ = [
    "Caller",
    "array_kind",
    "as_device_array",
    "as_stream",
    "cuda_module",
    "device_empty",
    "expand_dims",
    "finish",
    "is_cuda_array",
    "memory_range",
    "require_cuda",
    "reshape",
    "simulator_active",
    "strided_view",
    "to_caller",
    "to_device",
    "transpose",
]

_INSTALL_HINT = "install the GPU extra: pip install 'groupconv[cuda]'"


# --------------------------------------------------------------------------- numba.cuda


def simulator_active() -> bool:
    """Whether Numba's CUDA simulator is on (``NUMBA_ENABLE_CUDASIM=1`` at Numba's import)."""
    import numba

    return bool(numba.config.ENABLE_CUDASIM)


def cuda_module():
    """``numba.cuda``, imported on first use.

    Returns
    -------
    module
        ``numba.cuda`` (the simulator's API when the simulator is on).

    Raises
    ------
    RuntimeError
        If ``numba.cuda`` cannot be imported (``numba-cuda`` is missing or
        broken).
    """
    try:
        from numba import cuda
    except Exception as exc:  # ImportError, or a broken install: say which
        raise RuntimeError(
            f"the GPU path needs numba.cuda, which cannot be imported "
            f"({type(exc).__name__}: {exc}); {_INSTALL_HINT}"
        ) from exc
    return cuda


def require_cuda():
    """``numba.cuda``, after checking that a CUDA device (or the simulator) is there.

    Returns
    -------
    module
        ``numba.cuda``.

    Raises
    ------
    RuntimeError
        If ``numba.cuda`` is missing, or no CUDA device and driver are
        usable and the simulator is off.
    """
    cuda = cuda_module()
    if simulator_active():
        return cuda
    try:
        available = bool(cuda.is_available())
    except Exception as exc:  # a broken driver reports itself here
        raise RuntimeError(
            f"a GPU call needs a CUDA device, but the CUDA driver failed "
            f"({type(exc).__name__}: {exc}); see `groupconv info`"
        ) from exc
    if not available:
        raise RuntimeError(
            "a GPU call (a CUDA array, or device='cuda') needs a CUDA device, but "
            "numba.cuda.is_available() is False: there is no usable GPU and driver "
            "here (see `groupconv info`); use NumPy arrays and device='cpu', or set "
            "NUMBA_ENABLE_CUDASIM=1 before importing Numba to run the kernels in "
            "Numba's CUDA simulator"
        )
    return cuda


# --------------------------------------------------------------------------- recognising


def _is_simulator_array(obj) -> bool:
    # The simulator's FakeCUDAArray has no CAI; its module name gives it away
    # without importing numba.cuda.
    return type(obj).__module__.startswith("numba.cuda.simulator") and hasattr(obj, "_ary")


def _is_numba_array(obj) -> bool:
    return type(obj).__name__ == "DeviceNDArray" and type(obj).__module__.startswith(
        "numba.cuda"
    )


def is_cuda_array(obj) -> bool:
    """Whether ``obj`` lives on the GPU: it has a CAI, or is a simulator device array.

    Parameters
    ----------
    obj : object
        Anything.

    Returns
    -------
    bool

    Examples
    --------
    >>> import numpy as np
    >>> from groupconv.cuda._interop import is_cuda_array
    >>> is_cuda_array(np.ones(3))
    False
    >>> class Handle:
    ...     __cuda_array_interface__ = {"shape": (3,), "typestr": "<f4",
    ...                                 "data": (0, False), "version": 3}
    >>> is_cuda_array(Handle())
    True
    """
    if obj is None or isinstance(obj, (np.ndarray, np.generic, list, tuple, int, float)):
        return False
    if _is_simulator_array(obj):
        return True
    try:
        return hasattr(obj, "__cuda_array_interface__")
    except Exception:
        # PyTorch raises RuntimeError (not AttributeError) for a CUDA tensor that
        # requires grad: it is a GPU array; as_device_array reports the problem.
        return True


def array_kind(obj) -> str:
    """``"numpy"``, ``"numba"``, ``"cupy"``, ``"torch"`` or ``"cai"`` (any other CAI object).

    Examples
    --------
    >>> import numpy as np
    >>> from groupconv.cuda._interop import array_kind
    >>> array_kind(np.ones(2))
    'numpy'
    """
    if not is_cuda_array(obj):
        return "numpy"
    if _is_simulator_array(obj) or _is_numba_array(obj):
        return "numba"
    package = type(obj).__module__.split(".")[0]
    if package in ("cupy", "torch"):
        return package
    return "cai"


# --------------------------------------------------------------------------- wrapping


def _interface(obj, name: str) -> dict:
    """The CAI dict of ``obj``, checked; errors name the argument."""
    try:
        desc = obj.__cuda_array_interface__
    except Exception as exc:
        raise TypeError(
            f"{name} looks like a CUDA array but its __cuda_array_interface__ cannot be "
            f"read ({type(exc).__name__}: {exc}); for a PyTorch tensor that requires grad, "
            f"pass tensor.detach()"
        ) from exc
    if desc.get("mask") is not None:
        raise NotImplementedError(
            f"{name} is a masked CUDA array (its __cuda_array_interface__ has a mask); "
            f"groupconv convolves plain arrays only: fill the masked entries first"
        )
    return desc


def _host_view(desc: dict, name: str) -> np.ndarray:
    """Simulator only: the NumPy array that a CAI describes (its pointer is host memory)."""
    shape = tuple(int(s) for s in desc["shape"])
    dtype = np.dtype(desc["typestr"])
    strides = desc.get("strides")
    if strides is None:
        strides = _c_strides(shape, dtype.itemsize)
    strides = tuple(int(s) for s in strides)
    pointer, readonly = desc["data"]
    if math.prod(shape) == 0:
        return np.empty(shape, dtype)
    if not pointer:
        raise ValueError(f"{name} has a null data pointer in its __cuda_array_interface__")
    lo, hi = _byte_extent(shape, strides, dtype.itemsize)
    buffer = (ctypes.c_char * (hi - lo)).from_address(pointer + lo)
    array = np.ndarray(shape, dtype, buffer=buffer, offset=-lo, strides=strides)
    if readonly:
        array.flags.writeable = False
    return array


def as_device_array(obj, name: str = "array"):
    """Wrap a CUDA array as a Numba device array, without copying.

    Parameters
    ----------
    obj : object
        A Numba device array (returned as is) or any object with
        ``__cuda_array_interface__``.
    name : str, optional
        The argument's name, for error messages.

    Returns
    -------
    numba.cuda.cudadrv.devicearray.DeviceNDArray
        A view of the same memory (a ``FakeCUDAArray`` in the simulator).
        Outside the simulator, ``numba.cuda.as_cuda_array`` synchronises on
        the stream the producer names in its interface (CAI version 3).

    Raises
    ------
    TypeError
        If the interface cannot be read.
    NotImplementedError
        For a masked array.
    """
    cuda = cuda_module()
    if simulator_active():
        if _is_simulator_array(obj):
            return obj
        from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

        return FakeCUDAArray(_host_view(_interface(obj, name), name))
    if _is_numba_array(obj):
        return obj
    _interface(obj, name)  # clear errors before Numba's own
    return cuda.as_cuda_array(obj)


def is_readonly(obj) -> bool:
    """Whether a CUDA array says it is read-only (the CAI ``data`` flag)."""
    if _is_simulator_array(obj):
        return not obj._ary.flags.writeable
    try:
        return bool(obj.__cuda_array_interface__["data"][1])
    except Exception:
        return False


def _pointer(array) -> int:
    """Address of the first element of a wrapped device array."""
    if _is_simulator_array(array):
        return array._ary.__array_interface__["data"][0]
    return int(array.__cuda_array_interface__["data"][0])


def memory_range(array) -> tuple[int, int]:
    """``[lo, hi)`` byte addresses that a wrapped device array can touch (empty: ``lo == hi``).

    Used for the ``out`` overlap check, like :func:`numpy.may_share_memory`:
    two arrays whose ranges intersect are treated as overlapping.
    """
    shape, strides = tuple(array.shape), tuple(array.strides)
    if math.prod(shape) == 0:
        return (0, 0)
    start = _pointer(array)
    lo, hi = _byte_extent(shape, strides, array.dtype.itemsize)
    return start + lo, start + hi


# --------------------------------------------------------------------------- views


def _byte_extent(shape, strides, itemsize):
    """Byte offsets ``[lo, hi)`` from the first element that a non-empty array spans."""
    lo = sum(min(0, (n - 1) * s) for n, s in zip(shape, strides, strict=True))
    hi = sum(max(0, (n - 1) * s) for n, s in zip(shape, strides, strict=True))
    return lo, hi + itemsize


def _c_strides(shape, itemsize):
    strides, step = [], itemsize
    for n in reversed(shape):
        strides.append(step)
        step *= max(n, 1)
    return tuple(reversed(strides))


class _View:
    """A CAI over another device array's memory, with new shape and strides.

    Holding ``base`` keeps that memory alive as long as the view is used.
    """

    def __init__(self, base, shape, strides):
        self.base = base
        self.__cuda_array_interface__ = {
            "shape": tuple(shape),
            "strides": tuple(strides),
            "typestr": base.dtype.str,
            "data": (_pointer(base), False),
            "version": 3,
        }


def strided_view(array, shape, strides):
    """A view of a wrapped device array with the given shape and strides (no checks)."""
    shape, strides = tuple(int(n) for n in shape), tuple(int(s) for s in strides)
    if shape == tuple(array.shape) and strides == tuple(array.strides):
        return array
    if _is_simulator_array(array):
        from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

        view = np.lib.stride_tricks.as_strided(
            array._ary, shape, strides, writeable=array._ary.flags.writeable
        )
        return FakeCUDAArray(view)
    if math.prod(shape) == 0:
        return cuda_module().device_array(shape, array.dtype)
    return cuda_module().as_cuda_array(_View(array, shape, strides), sync=False)


def expand_dims(array, axis: int, count: int = 1):
    """Insert ``count`` unit dims before ``axis`` (a view; NumPy arrays too).

    Examples
    --------
    >>> import numpy as np
    >>> from groupconv.cuda._interop import expand_dims
    >>> expand_dims(np.ones((2, 3)), 1, 2).shape
    (2, 1, 1, 3)
    """
    if count == 0:
        return array
    shape = tuple(array.shape)
    new_shape = shape[:axis] + (1,) * count + shape[axis:]
    if isinstance(array, np.ndarray):
        return np.expand_dims(array, tuple(range(axis, axis + count)))
    strides = tuple(array.strides)
    new_strides = strides[:axis] + (array.dtype.itemsize,) * count + strides[axis:]
    return strided_view(array, new_shape, new_strides)


def transpose(array, axes):
    """Permute the dims of a NumPy or wrapped device array (a view)."""
    axes = tuple(axes)
    if isinstance(array, np.ndarray):
        return array.transpose(axes)
    shape, strides = tuple(array.shape), tuple(array.strides)
    return strided_view(array, [shape[a] for a in axes], [strides[a] for a in axes])


def _nocopy_strides(shape, strides, new_shape, itemsize):
    """Strides of ``new_shape`` viewing the same elements in C order, or None if a copy is needed.

    NumPy's ``_attempt_nocopy_reshape``: walk the old and new dims in step,
    matching runs of equal element counts; a run of old dims can be merged
    only if it is contiguous in C order.
    """
    if math.prod(shape) == 0 or math.prod(new_shape) == 0:
        return _c_strides(new_shape, itemsize)
    old = [(n, s) for n, s in zip(shape, strides, strict=True) if n != 1]
    old_dims = [n for n, _ in old]
    old_strides = [s for _, s in old]
    new_strides = [0] * len(new_shape)
    oi, oj, ni, nj = 0, 1, 0, 1
    while ni < len(new_shape) and oi < len(old_dims):
        new_count, old_count = new_shape[ni], old_dims[oi]
        while new_count != old_count:
            if new_count < old_count:
                new_count *= new_shape[nj]
                nj += 1
            else:
                old_count *= old_dims[oj]
                oj += 1
        for k in range(oi, oj - 1):
            if old_strides[k] != old_dims[k + 1] * old_strides[k + 1]:
                return None
        new_strides[nj - 1] = old_strides[oj - 1]
        for k in range(nj - 1, ni, -1):
            new_strides[k - 1] = new_strides[k] * new_shape[k]
        ni, nj, oi, oj = nj, nj + 1, oj, oj + 1
    last = new_strides[ni - 1] if ni >= 1 else itemsize
    for k in range(ni, len(new_shape)):
        new_strides[k] = last
    return tuple(new_strides)


def reshape(array, shape):
    """Reshape, keeping the caller's kind: a view where one exists, else a C-ordered copy.

    NumPy, CuPy and PyTorch arrays use their own ``reshape``. Numba device
    arrays (and other CAI objects, which are wrapped first) get a view
    computed from the strides, or a contiguous copy made on the device.

    Parameters
    ----------
    array : array_like
        A NumPy array or any CUDA array.
    shape : tuple of int
        The new shape, with as many elements.

    Returns
    -------
    array
        Of the same kind as ``array`` (a Numba device array for a plain CAI
        object).
    """
    shape = tuple(int(n) for n in shape)
    kind = array_kind(array)
    if kind in ("numpy", "cupy", "torch"):
        return np.reshape(array, shape) if kind == "numpy" else array.reshape(shape)
    array = as_device_array(array)
    if math.prod(shape) != math.prod(array.shape):
        raise ValueError(f"cannot reshape an array of shape {tuple(array.shape)} into {shape}")
    strides = _nocopy_strides(tuple(array.shape), tuple(array.strides), shape,
                              array.dtype.itemsize)
    if strides is None:
        from . import elementwise

        array = elementwise.ascontiguous(array)
        strides = _c_strides(shape, array.dtype.itemsize)
    return strided_view(array, shape, strides)


# --------------------------------------------------------------------------- memory, streams


def as_stream(stream):
    """A Numba stream for ``stream``: None (the default stream), a Numba stream, a
    CuPy stream (``.ptr``), a PyTorch stream (``.cuda_stream``) or a raw handle (int).

    Raises
    ------
    TypeError
        For anything else.
    """
    cuda = cuda_module()
    if stream is None:
        return cuda.default_stream()
    if type(stream).__module__.startswith("numba.cuda"):
        return stream
    handle = None
    if isinstance(stream, (int, np.integer)) and not isinstance(stream, bool):
        handle = int(stream)
    else:
        for attribute in ("ptr", "cuda_stream"):
            value = getattr(stream, attribute, None)
            if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
                handle = int(value)
                break
    if handle is None:
        raise TypeError(
            f"stream must be None, a numba.cuda stream, a CuPy or PyTorch CUDA stream, or a "
            f"raw stream handle (int); got {type(stream).__name__}"
        )
    if handle == 0 or simulator_active():
        # 0 is the legacy default stream; the simulator runs every launch
        # synchronously and has no external streams.
        return cuda.default_stream()
    return cuda.external_stream(handle)


def to_device(array, stream):
    """Copy a NumPy array to the device (contiguous first; dtype unchanged)."""
    return cuda_module().to_device(np.ascontiguousarray(array), stream=stream)


def device_empty(shape, dtype, stream):
    """An uninitialised C-contiguous device array."""
    return cuda_module().device_array(tuple(shape), dtype=np.dtype(dtype), stream=stream)


# --------------------------------------------------------------------------- results


@dataclasses.dataclass(frozen=True)
class Caller:
    """How to hand a GPU result back: the input's kind, the input, and ``out`` as passed.

    ``like`` is the caller's ``x`` (PyTorch results go to its device);
    ``out`` is the caller's own ``out`` object, returned as is when given.
    """

    kind: str
    like: object = None
    out: object = None


def to_caller(device_array, kind: str, like=None):
    """A wrapped device array as ``kind`` (see the module's table), without a copy.

    A ``"numpy"`` kind copies to the host (and waits for the copy).
    """
    if kind == "numpy":
        return device_array.copy_to_host()
    if kind == "cupy":
        import cupy

        return cupy.asarray(device_array)
    if kind == "torch":
        import torch

        return torch.as_tensor(device_array, device=getattr(like, "device", None))
    return device_array


def finish(result, caller: Caller, stream):
    """Return ``result`` (a device array of the caller's shape) as the caller expects.

    With ``out`` given, the result is already in ``out``'s memory (GPU
    results) or is copied into it (NumPy results), and ``out`` itself is
    returned.
    """
    if caller.kind == "numpy":
        host = result.copy_to_host(stream=stream)
        stream.synchronize()
        if caller.out is not None:
            np.copyto(caller.out, host)
            return caller.out
        return host
    if caller.out is not None:
        return caller.out
    return to_caller(result, caller.kind, caller.like)
