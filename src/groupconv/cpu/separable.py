"""Fused depthwise-separable convolution on the CPU.

Each parallel task owns a tile of consecutive output rows of one image,
sized so that its depthwise result stays under :data:`TILE_BYTES` (in
cache): it computes the depthwise rows of every intermediate channel into
that buffer, then the pointwise step from the buffer straight into the
output rows, as one single-threaded BLAS product made by the task's thread
(see :mod:`._blas`). The depthwise intermediate is never written whole to
memory; the workspace is one tile buffer per running task.

MobileNet's blocks (channels_last float32, a 3x3 depthwise step with
multiplier 1) take register kernels for both steps instead: a task's
tile is a unit of :mod:`.depthwise3x3_cl` (two interior output rows, or
one border row), its depthwise rows computed by that kernel's code into
the buffer and the pointwise step by :func:`.pointwise_cl.block` from
the buffer (no BLAS call; both kernels are several times faster than
BLAS and the general depthwise row on these shapes).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from . import _blas, depthwise3x3_cl, pointwise_cl
from ._blas import gemm_call
from ._common import (
    U,
    aligned_buffer,
    interior_columns,
    kernel_bias,
    padded_input,
    rows_per_task,
    to_3d,
    writeable_c_order,
)
from ._jit import inlined, jit
from ._vector_width import wide_vectors
from .depthwise3x3_cl import (
    COLUMN_BLOCK,
    border_pixels,
    edge_columns,
    interior_pair,
    interior_rows,
    tap_major,
    task_unit,
    task_units,
)
from .direct import output_5d, unroll_arguments
from .direct_cf import channels_first_row
from .direct_cl import PIXEL_BLOCK, channels_last_row
from .pointwise_cl import PIXEL_BLOCK as POINTWISE_PIXELS
from .pointwise_cl import packed_bias, packed_weight, pass_count, pixels_through_passes

__all__ = ["TILE_BYTES", "conv_separable"]

#: Upper bound of one task's depthwise tile: it is read back at once by the
#: pointwise product, so it should stay in the core's cache.
TILE_BYTES = 256 * 2**10


@inlined
def _task_rows(task, tiles, tile_rows, rows_total):
    """Task ``task``'s image, its first output row and how many rows it owns."""
    first = (task % tiles) * tile_rows
    return task // tiles, first, min(tile_rows, rows_total - first)


@jit(parallel=True)
def _separable_channels_first(x, w, pw, bias, zero, out, stride, dilation, pad, tile_rows,
                              gemm_address):
    """``w`` is the depthwise weight ``(C_in*M, 1, kd, kh, kw)``, ``pw`` is ``(C_out, C_in*M)``.

    A task owns ``tile_rows`` consecutive output rows (counted over depth
    and height) of one image: their depthwise rows go to a ``(C_in*M, rows,
    W_out)`` buffer, and one product ``out^T += mid^T @ pw^T`` (a
    single-threaded BLAS call, see :mod:`._blas`) gives the output rows.
    """
    n_batch, c_in, d_in, h_in, w_in = x.shape
    c_mid, _, kd_size, kh_size, kw_size = w.shape
    c_out, d_out, h_out, w_out = out.shape[1], out.shape[2], out.shape[3], out.shape[4]
    multiplier = c_mid // c_in
    x_flat, w_flat, out_flat, pw_flat = x.reshape(-1), w.reshape(-1), out.reshape(-1), \
        pw.reshape(-1)
    in_dims = (c_in, d_in, h_in, w_in)
    w_dims = (1, kd_size, kh_size, kw_size)
    rows_total = d_out * h_out
    plane = rows_total * w_out
    tiles = (rows_total + tile_rows - 1) // tile_rows
    for task in prange(n_batch * tiles):
        wide_vectors()
        n, first, count = _task_rows(task, tiles, tile_rows, rows_total)
        mid = np.empty(c_mid * count * w_out, dtype=out.dtype)
        for m in range(c_mid):
            for r in range(count):
                channels_first_row(x_flat, in_dims, w_flat, w_dims, m, m // multiplier, n,
                                   (first + r) // h_out, (first + r) % h_out, mid,
                                   U((m * count + r) * w_out), zero, w_out, stride, dilation,
                                   pad)
        pixels = count * w_out
        o0 = n * c_out * plane + first * w_out
        # out^T (pixels x C_out, ld plane) = mid^T (pixels x C_mid) @ pw^T (C_mid x C_out)
        gemm_call(gemm_address, pixels, c_out, c_mid, mid, 0, pixels, pw_flat, 0, c_mid,
                  out_flat, o0, plane, False)
        for o in range(c_out):
            b = bias[o]
            start = U(o0 + o * plane)
            for p in range(U(pixels)):
                out_flat[start + p] += b


@jit(parallel=True)
def _separable_channels_last(x, w_t, zeros, pw_t, bias, out, stride, dilation, pad, unroll_h,
                             unroll_w, tile_rows, gemm_address):
    """``w_t`` is ``(kd, kh, kw, 1, M, C_in)``; ``pw_t`` is ``(C_in*M, C_out)``, its rows in
    ``(M, C_in)`` order, the order of the depthwise rows.

    A task owns ``tile_rows`` consecutive output rows of one image: their
    depthwise rows go to a ``(rows, W_out, C_in*M)`` buffer, and one
    product ``out += pw_t^T @ mid`` (column-major; a single-threaded BLAS
    call, see :mod:`._blas`) gives the output rows.
    """
    n_batch, d_in, h_in, w_in, c_in = x.shape
    multiplier = w_t.shape[4]
    c_mid = c_in * multiplier
    d_out, h_out, w_out, c_out = out.shape[1], out.shape[2], out.shape[3], out.shape[4]
    x_flat, w_flat, out_flat, pw_flat = x.reshape(-1), w_t.reshape(-1), out.reshape(-1), \
        pw_t.reshape(-1)
    in_dims = (d_in, h_in, w_in, c_in)
    zeros_flat = zeros.reshape(-1)
    rows_total = d_out * h_out
    tiles = (rows_total + tile_rows - 1) // tile_rows
    for task in prange(n_batch * tiles):
        wide_vectors()
        n, first, count = _task_rows(task, tiles, tile_rows, rows_total)
        mid = np.empty(count * w_out * c_mid, dtype=out.dtype)
        sums = np.empty(PIXEL_BLOCK * c_in, dtype=out.dtype)
        for r in range(count):
            channels_last_row(x_flat, in_dims, w_flat, w_t.shape, zeros_flat, zeros_flat, n,
                              (first + r) // h_out, (first + r) % h_out, mid,
                              U(r * w_out * c_mid), sums, w_out, stride, dilation, pad,
                              unroll_h, unroll_w)
        pixels = count * w_out
        o0 = (n * rows_total + first) * w_out * c_out
        # out (C_out x pixels, ld C_out) = pw_t^T (C_out x C_mid) @ mid (C_mid x pixels)
        gemm_call(gemm_address, c_out, pixels, c_mid, pw_flat, 0, c_out, mid, 0, c_mid,
                  out_flat, o0, c_out, False)
        for p in range(U(pixels)):
            for o in range(U(c_out)):
                out_flat[U(o0) + p * U(c_out) + o] += bias[o]


@jit(parallel=True)
def _separable_3x3_channels_last(x, dw, pw, pw_bias, out, stride, dilation, pad):
    """``x`` is ``(N, 1, H, W, C)``, ``dw`` the depthwise weight ``(C, 1, 1, 3, 3)``, ``pw``
    the pointwise weight ``(C_out, C)`` and ``pw_bias`` its bias ``(C_out,)``, all packed
    here; ``out`` is ``(N, 1, H_out, W_out, C_out)``.

    Tasks and their units of rows are those of
    :func:`.depthwise3x3_cl.depthwise_3x3_channels_last`. A pair of rows
    goes a segment of columns at a time, as wide as a pointwise block
    (:data:`.pointwise_cl.PIXEL_BLOCK`): the segment's depthwise columns of
    both rows into a buffer of two rows, then each row's pointwise block
    while that part of the buffer is still in L1, and the input rows the
    next segment reads stream in during this one's arithmetic. A border row
    computes its depthwise pixels first, then its blocks. Measured,
    separable_mbv2_56 on 2 threads (Intel Xeon), repeated calls of each
    build alternated: segments 1.09-1.12 ms, whole pairs of rows 1.18-1.22
    (those prefetched the next rows during the pointwise step, 2-13 %
    faster on Zen 4; with segments that prefetch measured slower here,
    1.32-1.43 ms, so there is none). (Pairs of pixels
    sharing whole vectors for MobileNet's 24 outputs, 18 multiply-adds per
    channel where the block does 12 whole and 12 half ones, measured alike,
    1.09-1.15 against 1.10-1.12 ms: the step is not bound by them.)
    """
    n_batch, _, h_in, w_in, channels = x.shape
    h_out, w_out, c_out = out.shape[2], out.shape[3], out.shape[4]
    x_flat, w_flat, out_flat = x.reshape(-1), tap_major(dw, x), out.reshape(-1)
    pw_flat, b_packed = packed_weight(pw, x), packed_bias(pw_bias, x)
    zeros = np.zeros(channels, dtype=x.dtype)
    c = U(channels)
    oh_lo, oh_hi, pairs, odd = interior_rows(h_in, h_out, stride, dilation, pad)
    ow_lo, ow_hi = interior_columns(3, stride[2], 1, pad[2], w_in, w_out)
    x_dims = (h_in, w_in, channels, 3, 3)
    geometry = (stride[1], dilation[1], stride[2], pad[1], pad[2])
    mid_row = U(w_out) * c
    passes = pass_count(c_out)
    step = POINTWISE_PIXELS
    segments = (w_out + step - 1) // step
    for task in prange(n_batch * pairs):
        wide_vectors()
        n = task // pairs
        p = task % pairs
        mid = aligned_buffer(2 * w_out * channels, out)
        for unit in range(task_units(p, pairs, odd, oh_lo, oh_hi, h_out)):
            oh, pair = task_unit(p, unit, pairs, odd, oh_lo, oh_hi)
            o_row = U((n * h_out + oh) * w_out * c_out)
            # A pair goes a segment of columns at a time: its depthwise columns
            # of both rows, then their pointwise blocks (the input streams in
            # while the pointwise arithmetic runs; the segment's tile is still
            # in L1). A border row's depthwise pixels go first, whole.
            for segment in range(segments):
                a = segment * step
                b = min(a + step, w_out)
                if pair:
                    lo, hi = max(a, ow_lo), min(b, ow_hi)
                    if lo < hi:
                        # The tile is read right back: no streaming stores.
                        interior_pair(x_flat, x_dims, n, oh, geometry, w_flat, zeros, mid, U(0),
                                      mid_row, lo, hi, False, COLUMN_BLOCK)
                    edge_columns(x_flat, x_dims, n, oh, geometry, w_flat, zeros, mid, U(0),
                                 mid_row, a, b, ow_lo, ow_hi)
                elif segment == 0:
                    border_pixels(x_flat, x_dims, n, oh, geometry, w_flat, zeros, mid, U(0),
                                  w_out)
                for r in range(2 if pair else 1):
                    pixels_through_passes(mid, U(r * w_out + a) * c, c, b - a, channels,
                                          pw_flat, b_packed, passes, out_flat,
                                          o_row + U((r * w_out + a) * c_out), c_out)


def _register_kernels_apply(depthwise, pointwise, x5, stride, dilation, pad) -> bool:
    """Whether the separable spec runs on :func:`_separable_3x3_channels_last`."""
    return (depthwise.layout == "channels_last" and depthwise.c_out == depthwise.c_in
            and depthwise3x3_cl.applies(depthwise, x5.shape, stride, dilation, pad)
            and depthwise.c_out * pointwise.c_out <= pointwise_cl.MAX_WEIGHT_VALUES)


def _tile_rows(depthwise) -> int:
    """Output rows per task: the depthwise tile under :data:`TILE_BYTES`, tasks within an image."""
    d_out, h_out, w_out = to_3d(depthwise.out_spatial, 1)
    rows = d_out * h_out
    row_bytes = w_out * depthwise.c_out * np.dtype(depthwise.dtype).itemsize
    return rows_per_task(depthwise.batch * rows, min(TILE_BYTES // row_bytes, rows))


def conv_separable(depthwise, pointwise, target: np.ndarray) -> None:
    """Compute a depthwise spec followed by its 1x1 pointwise spec into ``target``.

    ``target`` is the batched, C-contiguous output in the compute dtype.
    """
    if target.size == 0:
        return
    x, pads = padded_input(depthwise)
    kernel = to_3d(depthwise.kernel_size, 1)
    stride, dilation = to_3d(depthwise.stride, 1), to_3d(depthwise.dilation, 1)
    pad_lo = to_3d([lo for lo, _ in pads], 0)
    channels_last = depthwise.layout == "channels_last"
    unroll = unroll_arguments(kernel, depthwise.dtype)
    c_in, c_mid, c_out = depthwise.c_in, depthwise.c_out, pointwise.c_out
    multiplier = c_mid // c_in
    pw = pointwise.weight.reshape(c_out, c_mid)
    bias = kernel_bias(pointwise)
    out5 = output_5d(pointwise, target)
    dw = depthwise.weight.reshape((c_mid, 1) + kernel)
    address = _blas.gemm_address(depthwise.dtype)
    if not channels_last:
        x5 = np.ascontiguousarray(x.reshape(x.shape[:2] + to_3d(x.shape[2:], 1)))
        zero = np.zeros((), dtype=depthwise.dtype)[()]
        with _blas.single_threaded():
            _separable_channels_first(x5, np.ascontiguousarray(dw), np.ascontiguousarray(pw),
                                      bias, zero, out5, stride, dilation, pad_lo,
                                      _tile_rows(depthwise), address)
        return
    x5 = np.ascontiguousarray(x.reshape((x.shape[0],) + to_3d(x.shape[1:-1], 1) + x.shape[-1:]))
    if _register_kernels_apply(depthwise, pointwise, x5, stride, dilation, pad_lo):
        _separable_3x3_channels_last(x5, writeable_c_order(dw), writeable_c_order(pw), bias,
                                     out5, stride, dilation, pad_lo)
        return
    # Depthwise channel c*M + q sits at (q, c) in the row buffer.
    w_t = np.ascontiguousarray(
        dw.reshape((c_in, multiplier) + kernel).transpose(2, 3, 4, 1, 0)
    ).reshape(kernel + (1, multiplier, c_in))
    pw_t = np.ascontiguousarray(
        pw.reshape(c_out, c_in, multiplier).transpose(2, 1, 0)
    ).reshape(c_mid, c_out)
    zeros = np.zeros((multiplier, c_in), dtype=depthwise.dtype)
    with _blas.single_threaded():
        _separable_channels_last(x5, w_t, zeros, pw_t, bias, out5, stride, dilation, pad_lo,
                                 *unroll, _tile_rows(depthwise), address)
