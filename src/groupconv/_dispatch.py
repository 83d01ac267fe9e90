"""Choose the device and the algorithm for a validated spec, and run one kernel."""

from __future__ import annotations

import dataclasses

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


def _compute(spec: ConvSpec, target: np.ndarray) -> None:
    _CPU_ALGORITHMS[_choose_algorithm(spec)](spec, target)


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
