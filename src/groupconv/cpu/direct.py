"""Direct grouped convolution on the CPU: the driver of the direct kernels.

No im2col buffer: the kernels (:mod:`.direct_cf`, :mod:`.direct_cl`) read
the input in place. Every kernel sees 3-D spatial data (1-D and 2-D calls
gain leading unit dims, which are free views), C-contiguous arrays in the
compute dtype, and zero padding given by ``pad``; other padding modes are
materialised here first (a documented workspace of one padded input).
Kernels are parallel over output rows or planes, which never overlap.
"""

from __future__ import annotations

import math
import typing

import numba
import numpy as np

from . import depthwise3x3_cl, depthwise_cf, pointwise_cl
from ._common import (
    aligned_copy,
    kept,
    kernel_bias,
    padded_input,
    rows_per_task,
    to_3d,
    writeable_c_order,
)
from .dense_cl import OUTPUT_CHUNK, channel_tile, dense_channels_last
from .dense_cl import PIXEL_BLOCK as DENSE_PIXELS
from .dense_cl import pack_weight as pack_dense_weight
from .depthwise_cf import depthwise_channels_first
from .depthwise_cl import PIXEL_BLOCK, depthwise_channels_last
from .direct_cf import channels_first
from .direct_cl import channels_last_by_group, channels_last_by_output
from .grouped_cl import (
    DEPTHWISE_LANES,
    DEPTHWISE_PIXELS,
    OUTPUT_BLOCK,
    depthwise_window_channels_last,
    grouped_channels_last,
    grouped_channels_last_unit,
    lane_count,
    pack_weight_and_bias,
)

__all__ = [
    "UNROLLED_SIZES",
    "WINDOW_BYTES",
    "conv_direct",
    "dense_kernel_applies",
    "register_kernel_applies",
    "direct_arguments",
    "output_5d",
    "unroll_arguments",
]


#: Kernel sizes (kh, kw) that get channels_last builds with unrolled taps. Each is one
#: more compilation per dtype and layout, so only the common ones.
UNROLLED_SIZES = ((3, 3), (7, 7))
#: Only float32, the dtype that performance matters for: each specialised
#: build costs compile time (once per machine, then cached), and float64
#: runs correctly, if slower, through the generic loops.
_UNROLLED_DTYPES = (np.dtype(np.float32),)
#: Bound of the window of input rows one task of the grouped channels_last
#: kernel gathers (the whole workspace is one window per running task; a
#: window of a single output row's input rows can exceed it on very wide data).
WINDOW_BYTES = 2**20
#: Past this many taps per plane, unrolling H as well as W runs out of
#: registers (measured: 7x7 was slower fully unrolled than unrolled along W).
_MAX_FULLY_UNROLLED_TAPS = 25


def unroll_arguments(kernel, dtype):
    """Tuples whose lengths select a specialised channels_last build; empty: the generic one."""
    _, kh, kw = kernel
    if (kh, kw) not in UNROLLED_SIZES or dtype not in _UNROLLED_DTYPES:
        return (), ()
    if kh * kw > _MAX_FULLY_UNROLLED_TAPS:
        return (), (0,) * kw
    return (0,) * kh, (0,) * kw


def depthwise_tiles(kernel, dtype):
    """Tuples whose lengths set the taps one pass of :func:`depthwise_channels_last` unrolls."""
    _, kh, kw = kernel
    if (kh, kw) not in UNROLLED_SIZES or dtype not in _UNROLLED_DTYPES:
        return (0,), (0,)
    if kh * kw > _MAX_FULLY_UNROLLED_TAPS:
        return (0,), (0,) * kw
    return (0,) * kh, (0,) * kw


def register_kernel_applies(spec) -> bool:
    """Whether ``spec`` (dense or few groups) runs on a channels_last register micro-kernel:
    :func:`dense_kernel_applies` or :func:`.pointwise_cl.applies`."""
    return dense_kernel_applies(spec) or pointwise_cl.applies(spec)


def dense_kernel_applies(spec) -> bool:
    """Whether ``spec`` runs on the register micro-kernel :func:`.dense_channels_last`.

    2-D or 1-D channels_last float32 data, a multiple of 64 outputs per
    group, unit stride and dilation along W, an output at least 6 pixels
    wide. ``algorithm="auto"`` then prefers it to the GEMM path (measured
    faster on dense and 2-group 3x3 layers).
    """
    stride, dilation = to_3d(spec.stride, 1), to_3d(spec.dilation, 1)
    return (spec.layout == "channels_last" and spec.rank <= 2
            and spec.dtype == np.dtype(np.float32)
            and (spec.c_out // spec.groups) % OUTPUT_CHUNK == 0
            and stride[2] == 1 and dilation[2] == 1
            and spec.out_spatial[-1] >= DENSE_PIXELS)


#: Routes kept by :func:`direct_arguments` (a network has a few dozen distinct layers).
ROUTE_CACHE_SIZE = 256
_ROUTES: dict = {}


class _Route(typing.NamedTuple):
    """How a call geometry runs: the kernel, its arguments' shapes and the static ones.

    ``bind(x5, weight, bias)`` makes the arguments before the output from
    the call's arrays (views as ``x5_shape`` and ``weight_shape``, the
    bias from :func:`.kernel_bias`); ``after`` are the arguments after it.
    """

    kernel: object
    x5_shape: tuple
    weight_shape: tuple
    bind: typing.Callable
    after: tuple


def direct_arguments(spec):
    """The kernel that runs ``spec`` and its arguments before and after the output.

    Returns ``(kernel, before, after)``: call ``kernel(*before, out5, *after)``
    with :func:`output_5d` of the target. The route (which kernel, with
    which static arguments) depends on the call geometry alone, and is kept
    per :attr:`.ConvSpec.key` and thread count: a repeated call only makes
    its array arguments (measured, dw3x3_14: the routing cost 25-30 us a
    call right after a kernel, with the caches cold).
    """
    x, pads = padded_input(spec)
    key = None if spec.key is None else (spec.key, numba.get_num_threads())
    route = (_route(spec, x, pads) if key is None
             else kept(_ROUTES, key, ROUTE_CACHE_SIZE, lambda: _route(spec, x, pads)))
    x5 = np.ascontiguousarray(x.reshape(route.x5_shape))
    before = route.bind(x5, spec.weight.reshape(route.weight_shape), kernel_bias(spec))
    return route.kernel, before, route.after


def _route(spec, x, pads) -> _Route:
    """The route of ``spec`` (see :func:`direct_arguments`); ``x`` and ``pads`` from
    :func:`.padded_input`."""
    channels_last = spec.layout == "channels_last"
    stride, dilation = to_3d(spec.stride, 1), to_3d(spec.dilation, 1)
    pad_lo = to_3d([lo for lo, _ in pads], 0)
    kernel = to_3d(spec.kernel_size, 1)
    weight_shape = spec.weight.shape[:2] + kernel
    c_out, groups = spec.c_out, spec.groups
    out_dims = to_3d(spec.out_spatial, 1)
    # 1-D or 2-D data (a depth of 1 in and out, no kernel depth).
    planar = to_3d(x.shape[2:] if not channels_last else x.shape[1:-1], 1)[0] == 1
    planar = planar and kernel[0] == 1 and out_dims[0] == 1

    def route(function, bind, after, x5_shape):
        return _Route(function, x5_shape, weight_shape, bind, after)

    if not channels_last:
        x5_shape = x.shape[:2] + to_3d(x.shape[2:], 1)

        def bind_cf(x5, weight, bias):
            return x5, np.ascontiguousarray(weight), bias

        tiles = depthwise_tiles(kernel, spec.dtype)
        if (weight_shape[1] == 1 and planar and len(tiles[1]) > 1
                and depthwise_cf.rows_apply(spec, stride, dilation)):
            # The kernel sizes with unrolled builds (3x3, 7x7): register blocks
            # of 4 output rows.
            return route(depthwise_cf.depthwise_rows_channels_first, bind_cf, (
                dilation, pad_lo, (0,) * kernel[1], (0,) * kernel[2]), x5_shape)
        if weight_shape[1] == 1 and planar and stride == (1, 1, 1):
            return route(depthwise_channels_first, bind_cf, (
                stride, dilation, pad_lo, *tiles), x5_shape)
        if weight_shape[1] == 1 and planar and depthwise_cf.s2_applies(spec, stride, dilation):
            return route(depthwise_cf.depthwise_3x3_s2_channels_first, bind_cf, (pad_lo,),
                         x5_shape)
        return route(channels_first, bind_cf, (stride, dilation, pad_lo), x5_shape)
    after = (stride, dilation, pad_lo, *unroll_arguments(kernel, spec.dtype))
    x5_shape = (x.shape[0],) + to_3d(x.shape[1:-1], 1) + x.shape[-1:]
    c_group, per_group = weight_shape[1], c_out // groups
    unit_w = stride[2] == 1 and dilation[2] == 1
    depthwise = c_group == 1 and per_group == 1 and planar

    def bind_depthwise(x5, weight, bias):
        return x5, _depthwise_weight(weight), bias

    if depthwise and depthwise3x3_cl.applies(spec, x5_shape, stride, dilation, pad_lo):

        def bind_3x3(x5, weight, bias):
            # The kernel packs the weight itself (tap_major).
            return x5, writeable_c_order(weight), bias

        return route(depthwise3x3_cl.depthwise_3x3_channels_last, bind_3x3,
                     (stride, dilation, pad_lo), x5_shape)
    if depthwise and out_dims[2] >= PIXEL_BLOCK:
        tiles = depthwise_tiles(kernel, spec.dtype)
        if (len(tiles[0]) == 1 and len(tiles[1]) > 1 and out_dims[2] >= DEPTHWISE_PIXELS
                and unit_w):
            # The builds that unroll one kernel row per pass (7x7): blocks of 8
            # pixels from a gathered window.
            bind, lanes, rows = _window_route(spec, 1, stride, dilation,
                                              lanes=DEPTHWISE_LANES)
            return route(depthwise_window_channels_last, bind, (
                stride, dilation, pad_lo, tiles[1], (0,) * lanes, rows), x5_shape)
        return route(depthwise_channels_last, bind_depthwise, (
            stride, dilation, pad_lo, *tiles), x5_shape)
    if pointwise_cl.applies(spec):

        def bind_pointwise(x5, weight, bias):
            # The kernel packs the weight and bias itself.
            return x5, writeable_c_order(weight.reshape(c_out, -1)), bias

        pixels = math.prod(x5_shape) // c_group
        return route(pointwise_cl.pointwise_channels_last, bind_pointwise,
                     (pointwise_cl.blocks_per_task(pixels),), x5_shape)
    if dense_kernel_applies(spec):

        def bind_dense(x5, weight, bias):
            return x5, pack_dense_weight(weight.reshape(weight_shape[:2] + kernel[1:]),
                                         groups), bias

        rows = _task_rows(spec, x5_shape[-1] * (out_dims[2] + kernel[2] - 1), stride,
                          dilation)
        return route(dense_channels_last, bind_dense, (
            stride, dilation, pad_lo, rows,
            channel_tile(c_group, kernel[1] * kernel[2], spec.dtype.itemsize)), x5_shape)

    def by_tap(weight):
        # (O, Cg, kd, kh, kw) -> (kd, kh, kw, G, Cg, Og): a copy the size of the weight.
        return weight.reshape((groups, per_group, c_group) + kernel).transpose(3, 4, 5, 0, 2, 1)

    if groups < per_group:

        def bind_by_output(x5, weight, bias):
            return x5, np.ascontiguousarray(by_tap(weight)), bias

        return route(channels_last_by_output, bind_by_output, after, x5_shape)
    if planar and per_group % OUTPUT_BLOCK == 0 and out_dims[2] >= PIXEL_BLOCK:
        # Few channels per group, several outputs each: 4 x 4 register blocks.
        bind, lanes, rows = _window_route(spec, OUTPUT_BLOCK, stride, dilation)
        # A pass per kernel row (unrolled along W where a build exists): all
        # the taps in one pass were no faster, and cost registers.
        unroll_w = depthwise_tiles(kernel, spec.dtype)[1]
        return route(grouped_channels_last_unit if unit_w else grouped_channels_last, bind, (
            stride, dilation, pad_lo, unroll_w, (0,) * lanes, groups, rows), x5_shape)

    def bind_by_group(x5, weight, bias):
        w_t = np.ascontiguousarray(by_tap(weight).transpose(0, 1, 2, 4, 5, 3))
        bias_t = np.ascontiguousarray(bias.reshape(groups, per_group).T)
        if c_group > 1:
            # Workspace: the input with its channels reordered (c, g), so that the
            # kernel's loop over groups reads consecutive memory.
            x5 = np.ascontiguousarray(
                x5.reshape(x5.shape[:4] + (groups, c_group)).swapaxes(4, 5)
            ).reshape(x5.shape)
        return x5, w_t, bias_t

    return route(channels_last_by_group, bind_by_group, after, x5_shape)


def _depthwise_weight(weight):
    """A depthwise weight with multiplier 1, ``(C, 1, 1, kh, kw)``, as ``(1, kh, kw, C)``."""
    return aligned_copy(weight[:, 0].transpose(1, 2, 3, 0))


def _window_route(spec, block, stride, dilation, lanes=None):
    """``(bind, lanes, rows)`` for the :mod:`.grouped_cl` kernels: ``bind`` packs the
    weight and bias, then lane count and rows per task.

    ``block`` is the outputs per group one block computes; ``lanes`` the
    groups per chunk (default: :func:`.lane_count`).
    """
    groups, kernel = spec.groups, to_3d(spec.kernel_size, 1)
    lanes = lanes or lane_count(groups, spec.dtype)
    c_group = spec.weight.shape[1]

    def bind(x5, weight, bias):
        w4 = weight.reshape(weight.shape[:2] + kernel[1:])
        return (x5, *pack_weight_and_bias(w4, bias, groups, lanes, block))

    out_w = to_3d(spec.out_spatial, 1)[2]
    span = (out_w - 1) * stride[2] + (kernel[2] - 1) * dilation[2] + 1
    row_values = -(-groups // lanes) * lanes * c_group * span
    return bind, lanes, _task_rows(spec, row_values, stride, dilation)


def _task_rows(spec, row_values, stride, dilation):
    """Output rows per task of a kernel that gathers its input rows into a window.

    ``row_values`` is the size of one gathered input row. Consecutive rows
    share their input rows, gathered once, so a task takes at most
    :func:`_task_row_bound` rows, as many as keep the window under
    :data:`WINDOW_BYTES` (at least one), and there are enough tasks for
    every thread.
    """
    kernel = to_3d(spec.kernel_size, 1)
    out_h = to_3d(spec.out_spatial, 1)[1]
    halo = (kernel[1] - 1) * dilation[1]
    window_rows = max(WINDOW_BYTES // (row_values * spec.dtype.itemsize), 1)
    fit = max((window_rows - halo - 1) // stride[1] + 1, 1)
    return rows_per_task(out_h, min(_task_row_bound(halo), fit),
                         per_thread=1 if spec.batch > 1 else 2)


def _task_row_bound(halo: int) -> int:
    """Most output rows per task, for ``halo`` input rows a window gathers beyond a task's own.

    8, or ``2*halo + 2`` for tall kernels, so that the halo stays under half
    the rows gathered (measured, dw7x7_convnext_56 on 2 threads, rows per
    task: 7 1.45-1.49 ms, 10 1.36, 12 1.32, 14 1.31-1.34, 16 1.33, 28 1.35;
    3x3 layers keep 8).
    """
    return max(8, 2 * halo + 2)


def output_5d(spec, target: np.ndarray) -> np.ndarray:
    """``target`` (batched, C-contiguous) viewed with 3 spatial dims."""
    spatial = to_3d(spec.out_spatial, 1)
    if spec.layout == "channels_last":
        return target.reshape((spec.batch, *spatial, spec.c_out))
    return target.reshape((spec.batch, spec.c_out, *spatial))


def conv_direct(spec, target: np.ndarray) -> None:
    """Compute ``spec`` into ``target``, a C-contiguous batched output in ``spec.dtype``."""
    if target.size == 0:
        return
    kernel, before, after = direct_arguments(spec)
    kernel(*before, output_5d(spec, target), *after)
