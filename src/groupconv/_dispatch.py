"""Choose the device and the algorithm for a validated spec, and run one kernel."""

from __future__ import annotations

import dataclasses
import math
import threading

import numba
import numpy as np

from ._spec import ConvSpec, SeparableSpec, winograd_misfit
from .cpu._common import aligned_empty, kept
from .cpu.direct import conv_direct, register_kernel_applies
from .cpu.gemm import conv_gemm
from .cpu.separable import conv_separable
from .cpu.winograd import PATCH, conv_winograd

__all__ = ["convolve", "separable"]

# algorithm name -> CPU driver; "auto" resolves through choose_algorithm.
_CPU_ALGORITHMS = {"direct": conv_direct, "gemm": conv_gemm, "winograd": conv_winograd}

# The GEMM path wins once each output reads many inputs and each group has
# enough outputs to fill a matrix product (measured: pointwise layers, and
# dense layers in channels_first); depthwise and small groups stay direct,
# and so do the channels_last layers the register micro-kernels take
# (measured faster than the BLAS products on dense and 2-group 3x3 layers
# and on pointwise layers with few outputs).
_GEMM_MIN_REDUCTION = 64
_GEMM_MIN_GROUP_OUTPUTS = 16


# Winograd F(2x2, 3x3) does 2.25x fewer multiply-adds than a direct 3x3
# convolution, in 16 products of C_in/groups by C_out/groups; it wins once
# those are large enough to run at the micro-kernel's speed (measured on 2
# threads, channels_last, batch 8: 1.4-1.7x the direct kernels from 32
# channels per group; 0.72x at 16 channels and 16 outputs per group). Each
# group's outputs are computed in chunks of 64, so at least 32 of them keep
# the waste under half. Where the direct register micro-kernel runs, the
# transformed weights must also stay near the caches: 512 -> 512 channels
# at 7 x 7 (16 MB of them) ran at 0.88x the micro-kernel.
_WINOGRAD_MIN_CHANNELS = 32
_WINOGRAD_MIN_GROUP_OUTPUTS = 32
_WINOGRAD_MAX_WEIGHT_BYTES = 4 * 2**20


def _winograd_wins(spec: ConvSpec) -> bool:
    if winograd_misfit(spec.rank, spec.kernel_size, spec.stride, spec.dilation,
                       spec.dtype) is not None:
        return False
    c_group, per_group = spec.weight.shape[1], spec.c_out // spec.groups
    if c_group < _WINOGRAD_MIN_CHANNELS or per_group < _WINOGRAD_MIN_GROUP_OUTPUTS:
        return False
    weight_bytes = PATCH * PATCH * spec.c_out * c_group * spec.dtype.itemsize
    return weight_bytes <= _WINOGRAD_MAX_WEIGHT_BYTES or not register_kernel_applies(spec)


#: Algorithms "auto" picked, per :attr:`.ConvSpec.key` (the pick depends on the
#: call geometry alone): a repeated call skips the rules below.
_CHOICES: dict = {}
CHOICE_CACHE_SIZE = 256


def choose_algorithm(spec: ConvSpec) -> str:
    """The CPU algorithm that runs ``spec``: the one asked for, or the one "auto" picks."""
    if spec.algorithm != "auto":
        return spec.algorithm
    if spec.key is None:
        return _auto_algorithm(spec)
    return kept(_CHOICES, spec.key, CHOICE_CACHE_SIZE, lambda: _auto_algorithm(spec))


def _auto_algorithm(spec: ConvSpec) -> str:
    if _winograd_wins(spec):
        return "winograd"
    reduction = spec.weight.shape[1] * math.prod(spec.kernel_size)
    per_group = spec.c_out // spec.groups
    if (reduction >= _GEMM_MIN_REDUCTION and per_group >= _GEMM_MIN_GROUP_OUTPUTS
            and not register_kernel_applies(spec)):
        return "gemm"
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
    kernel = _CPU_ALGORITHMS[choose_algorithm(spec)]
    if active_threading_layer() in _THREAD_SAFE_LAYERS:
        kernel(spec, target)
        return
    with _PARALLEL_LOCK:
        kernel(spec, target)


def _cuda_driver():
    # Imported on the first GPU call only: numba.cuda is optional and slow to import.
    from .cuda import driver

    return driver


def _deliver(spec: ConvSpec, compute) -> np.ndarray:
    """Run ``compute(target)`` and return the result as ``spec``'s caller expects it.

    ``target`` is a batched, C-contiguous array in the compute dtype: the
    caller's ``out`` when it is one, else a new 64-byte aligned array (see
    :data:`.cpu._common.ALIGNMENT`), copied (and cast, for float16) into
    ``out`` when ``out`` was given.
    """
    out = spec.out
    if out is not None and out.dtype == spec.dtype and out.flags.c_contiguous:
        compute(out.reshape(_batched_shape(spec)))
        return out
    target = aligned_empty(_batched_shape(spec), spec.dtype)
    compute(target)
    result = target if spec.batched else target[0]
    if out is not None:
        np.copyto(out, result, casting="same_kind")
        return out
    return result.astype(spec.result_dtype, copy=False)


def convolve(spec: ConvSpec) -> np.ndarray:
    """Run ``spec`` and return the result as the caller expects it."""
    if spec.device == "cuda":
        return _cuda_driver().convolve(spec)
    return _deliver(spec, lambda target: _compute(spec, target))


def _fused(depthwise: ConvSpec, pointwise: ConvSpec, target: np.ndarray) -> None:
    if active_threading_layer() in _THREAD_SAFE_LAYERS:
        conv_separable(depthwise, pointwise, target)
        return
    with _PARALLEL_LOCK:
        conv_separable(depthwise, pointwise, target)


def separable(spec: SeparableSpec) -> np.ndarray:
    """Run a depthwise-separable convolution.

    ``algorithm="auto"`` runs the fused kernel (the depthwise result is never
    written whole); an explicit algorithm runs the two steps one after the
    other with that algorithm, for comparison and testing.
    """
    if spec.pointwise.device == "cuda":
        return _cuda_driver().separable(spec)
    depthwise, pointwise = spec.depthwise, spec.pointwise
    if depthwise.algorithm == "auto":
        return _deliver(pointwise, lambda target: _fused(depthwise, pointwise, target))
    middle = np.empty(_batched_shape(depthwise), dtype=depthwise.dtype)
    _compute(depthwise, middle)
    return convolve(dataclasses.replace(pointwise, x=middle))
