"""Choose the device and the algorithm for a validated spec, and run one kernel."""

from __future__ import annotations

import dataclasses
import threading

import numba
import numpy as np

from ._spec import ConvSpec, SeparableSpec
from .cpu.direct import conv_direct

__all__ = ["convolve", "separable"]

# algorithm name -> CPU driver; "auto" resolves through _choose_algorithm.
_CPU_ALGORITHMS = {"direct": conv_direct}


def _choose_algorithm(spec: ConvSpec) -> str:
    if spec.algorithm != "auto":
        return spec.algorithm
    return "direct"


def _batched_shape(spec: ConvSpec) -> tuple[int, ...]:
    shape = spec.output_shape
    return shape if spec.batched else (1, *shape)


# Numba's "workqueue" threading layer (used when neither OpenMP nor TBB is
# available) aborts the process if two threads enter parallel code at once;
# "omp" and "tbb" are thread safe. Until a parallel kernel has run, Numba
# cannot say which layer it will load, so the first calls are serialised too.
_THREAD_SAFE_LAYERS = ("omp", "tbb")
_PARALLEL_LOCK = threading.Lock()


def active_threading_layer() -> str | None:
    """Numba's threading layer, or None before the first parallel kernel has run."""
    try:
        return numba.threading_layer()
    except ValueError:
        return None


def _compute(spec: ConvSpec, target: np.ndarray) -> None:
    kernel = _CPU_ALGORITHMS[_choose_algorithm(spec)]
    if active_threading_layer() in _THREAD_SAFE_LAYERS:
        kernel(spec, target)
        return
    with _PARALLEL_LOCK:
        kernel(spec, target)


def convolve(spec: ConvSpec) -> np.ndarray:
    """Run ``spec`` and return the result as the caller expects it."""
    out = spec.out
    if out is not None and out.dtype == spec.dtype and out.flags.c_contiguous:
        # Write straight into the caller's buffer.
        _compute(spec, out.reshape(_batched_shape(spec)))
        return out
    target = np.empty(_batched_shape(spec), dtype=spec.dtype)
    _compute(spec, target)
    result = target if spec.batched else target[0]
    if out is not None:
        np.copyto(out, result, casting="same_kind")
        return out
    return result.astype(spec.result_dtype, copy=False)


def separable(spec: SeparableSpec) -> np.ndarray:
    """Run the depthwise step, then the pointwise step on its result."""
    depthwise = spec.depthwise
    middle = np.empty((depthwise.batch, *_batched_shape(depthwise)[1:]), dtype=depthwise.dtype)
    _compute(depthwise, middle)
    return convolve(dataclasses.replace(spec.pointwise, x=middle))
