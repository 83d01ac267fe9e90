"""Run a validated spec on the GPU: move inputs in, pick a kernel, launch, hand the result back.

The dispatcher calls :func:`convolve` or :func:`separable` for specs whose
``device`` is ``"cuda"``. The spec has already checked everything; here:

1. inputs become device arrays: CUDA arrays were wrapped (no copy) by the
   spec; NumPy arrays (``device="cuda"``) are copied in, in their own dtype;
2. storage is normalised: ``x`` stays as it is when the kernels read its
   dtype directly (the compute dtype, or float16 with float32 compute),
   otherwise it is converted on the device; weights and biases are always
   converted to the compute dtype (they are small);
3. every array is viewed as 5-D (unit spatial dims in front of the real
   ones, a unit batch dim for unbatched calls), as on the CPU;
4. one kernel runs, writing the result dtype straight into ``out`` or into a
   new device array;
5. the result goes back as the caller's kind (:mod:`._interop`).

Kernel choice with ``algorithm="auto"``: the shared-memory depthwise kernel
for depthwise specs (unless its tile would need more than 48 KiB of shared
memory), the fused separable kernel for :func:`separable`, and the direct
kernel otherwise. ``algorithm="direct"`` forces the direct kernel (and an
unfused separable: a depthwise step into a device buffer, then a 1x1 step).

Workspace: a device copy of each NumPy input (``device="cuda"``), a
converted copy of ``x`` when its dtype is not read directly, converted
weights and bias (or a zero bias), and for the unfused separable path the
depthwise result.

Everything is queued on ``stream`` (the default stream if ``None``); a GPU
result is returned without waiting for it, as CuPy and PyTorch do. NumPy
results are copied back and waited for.
"""

from __future__ import annotations

import numpy as np

from . import _interop, _launch, depthwise, direct, elementwise
from . import separable as fused
from ._device import MODES, storage_pairs

__all__ = ["convolve", "separable", "specialisations"]


def specialisations():
    """Every ``(name, python function, numba signature)`` this package can launch.

    The PTX tests compile each one for every supported compute capability,
    and ``tools/ptxas_report.py`` reads their register, spill and shared
    memory figures.
    """
    for module in (direct, depthwise, fused, elementwise):
        yield from module.specialisations()


#: The algorithms with GPU kernels; the CPU's "gemm" and "winograd" have none (yet).
ALGORITHMS = ("auto", "direct")


def _check_algorithm(algorithm):
    if algorithm not in ALGORITHMS:
        raise NotImplementedError(
            f"algorithm={algorithm!r} has no GPU kernel; on the GPU use 'auto' or 'direct'"
        )


def _to_3d(values, fill):
    return (fill,) * (3 - len(values)) + tuple(values)


def _on_device(array, stream):
    """A device array for ``array`` (NumPy arrays are copied in, in their own dtype)."""
    if isinstance(array, np.ndarray):
        return _interop.to_device(array, stream)
    return array


def _x_storage(x, acc: str, stream):
    """``x`` in a dtype the kernels read directly, converting on the device if needed."""
    readable = {x_dtype for x_dtype, _ in storage_pairs(acc)}
    if str(x.dtype) in readable:
        return x
    return elementwise.astype(x, acc, stream)


def _five_d(array, layout: str, rank: int):
    """The 5-D view of a batched ``x``/output (or a weight, with ``layout=None``)."""
    axis = 1 if layout == "channels_last" else 2
    return _interop.expand_dims(array, axis, 3 - rank)


def _weight(array, acc, stream):
    return elementwise.astype(_on_device(array, stream), acc, stream)


def _bias(bias, c_out, acc, stream):
    if bias is None:
        return _interop.to_device(np.zeros(c_out, dtype=acc), stream)
    return _weight(bias, acc, stream)


def _output(spec, stream):
    """Where the kernel writes: the caller's CUDA ``out``, or a new device array.

    Returns the array in the caller's shape and its batched 5-D view.
    """
    caller = spec.caller
    if spec.out is not None and caller.kind != "numpy":
        result = spec.out
    else:
        result = _interop.device_empty(spec.output_shape, spec.result_dtype, stream)
    batched = result if spec.batched else _interop.expand_dims(result, 0)
    return result, _five_d(batched, spec.layout, spec.rank)


def _geometry(spec):
    return (
        _to_3d(spec.stride, 1),
        _to_3d(spec.dilation, 1),
        _to_3d([lo for lo, _ in spec.padding], 0),
        MODES[spec.padding_mode],
    )


def _run(spec, x5, w5, bias, out5, acc, stream, tiled: bool):
    """Launch the direct or the tiled depthwise kernel for one convolution."""
    if out5.size == 0:
        return
    stride, dilation, pad, mode = _geometry(spec)
    x_dtype, out_dtype = str(x5.dtype), str(out5.dtype)
    if tiled and spec.is_depthwise:
        multiplier = spec.c_out // spec.c_in
        plan = depthwise.plan(
            spec.layout, _to_3d(spec.out_spatial, 1), tuple(w5.shape[2:]), stride, dilation,
            spec.c_in, multiplier, spec.batch, acc,
        )
        if plan is not None:
            kernel = depthwise.kernel(spec.layout, acc, x_dtype, out_dtype)
            kernel[plan.blocks, plan.threads, stream, plan.shared_bytes](
                x5, w5, bias, out5, stride, dilation, pad, multiplier, mode, plan.tile, plan.halo
            )
            return
    threads = _launch.threads_per_block()
    kernel = direct.kernel(spec.layout, acc, x_dtype, out_dtype)
    kernel[_launch.blocks_for(out5.size, threads), threads, stream](
        x5, w5, bias, out5, stride, dilation, pad, spec.c_out // spec.groups, mode
    )


def convolve(spec):
    """Run a convolution spec on the GPU and return the result as the caller expects.

    Parameters
    ----------
    spec : groupconv._spec.ConvSpec
        A validated spec with ``device == "cuda"``.

    Returns
    -------
    array
        The caller's kind of array (see :mod:`groupconv.cuda._interop`), or
        ``out`` when it was given.
    """
    _interop.require_cuda()
    _check_algorithm(spec.algorithm)
    stream = _interop.as_stream(spec.stream)
    acc = str(spec.dtype)
    x = _x_storage(_on_device(spec.x, stream), acc, stream)
    weight = _weight(spec.weight, acc, stream)
    bias = _bias(spec.bias, spec.c_out, acc, stream)
    result, out5 = _output(spec, stream)
    _run(spec, _five_d(x, spec.layout, spec.rank), _five_d(weight, None, spec.rank), bias,
         out5, acc, stream, tiled=spec.algorithm == "auto")
    return _interop.finish(result, spec.caller, stream)


def separable(spec):
    """Run a separable spec on the GPU: fused (``"auto"``) or as two convolutions (``"direct"``).

    Parameters
    ----------
    spec : groupconv._spec.SeparableSpec
        A validated spec whose steps have ``device == "cuda"``.

    Returns
    -------
    array
        As :func:`convolve`.
    """
    _interop.require_cuda()
    dw, pw = spec.depthwise, spec.pointwise
    _check_algorithm(pw.algorithm)
    stream = _interop.as_stream(pw.stream)
    acc = str(pw.dtype)  # the whole pair is computed in one dtype, as on the CPU
    x5 = _five_d(_x_storage(_on_device(dw.x, stream), acc, stream), dw.layout, dw.rank)
    dw5 = _five_d(_weight(dw.weight, acc, stream), None, dw.rank)
    pw5 = _five_d(_weight(pw.weight, acc, stream), None, pw.rank)
    bias = _bias(pw.bias, pw.c_out, acc, stream)
    result, out5 = _output(pw, stream)
    if out5.size:
        if pw.algorithm == "auto":
            stride, dilation, pad, mode = _geometry(dw)
            pw2 = _interop.strided_view(pw5, tuple(pw5.shape[:2]), tuple(pw5.strides[:2]))
            plan = fused.plan(dw.layout, int(np.prod(dw.out_spatial)), dw.c_out, pw.c_out,
                              dw.batch, acc)
            kernel = fused.kernel(dw.layout, acc, str(x5.dtype), str(out5.dtype))
            kernel[plan.blocks, plan.threads, stream, plan.shared_bytes](
                x5, dw5, pw2, bias, out5, stride, dilation, pad, dw.c_out // dw.c_in, mode,
                plan.tile,
            )
        else:
            middle = _interop.device_empty(
                (dw.batch, *out5.shape[1:-1], dw.c_out) if dw.layout == "channels_last"
                else (dw.batch, dw.c_out, *out5.shape[2:]), acc, stream)
            no_bias = _bias(None, dw.c_out, acc, stream)
            _run(dw, x5, dw5, no_bias, middle, acc, stream, tiled=False)
            _run(pw, middle, pw5, bias, out5, acc, stream, tiled=False)
    return _interop.finish(result, pw.caller, stream)
