"""Fused depthwise-separable convolution on the CPU.

Each parallel task owns one output row: it computes the depthwise rows of
every intermediate channel into a row buffer (``C_in * M`` by ``W_out``, a
few KiB to a few hundred KiB, so it stays in cache), then the pointwise
step from that buffer straight into the output. The depthwise intermediate
is never written whole to memory; the workspace is one row buffer per
running thread.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._common import U, padded_input, to_3d
from ._jit import inlined, jit
from .direct import output_5d, unroll_arguments
from .direct_cf import channels_first_row
from .direct_cl import PIXEL_BLOCK, channels_last_row

__all__ = ["conv_separable", "pointwise_rows"]


@inlined
def _pointwise_single(mid, width, c_mid, w_flat, bias, dst, d0, o_step, o):
    """Output channel ``o`` of :func:`pointwise_rows`, eight input channels per pass."""
    row = d0 + U(o) * o_step
    for p in range(U(width)):
        dst[row + p] = bias[o]
    wo = U(o * c_mid)
    chunks = c_mid // 8
    for chunk in range(chunks):
        k = U(chunk * 8)
        m = k * U(width)
        for p in range(U(width)):
            total = dst[row + p]
            for q in range(8):
                total += w_flat[wo + k + U(q)] * mid[m + U(q * width) + p]
            dst[row + p] = total
    for k in range(chunks * 8, c_mid):
        wk = w_flat[wo + U(k)]
        m = U(k * width)
        for p in range(U(width)):
            dst[row + p] += wk * mid[m + p]


@inlined
def pointwise_rows(mid, width, c_mid, weight, bias, dst, d0, o_step, c_out):
    """``dst[d0 + o*o_step + p] = bias[o] + sum_k weight[o, k] * mid[k*width + p]``.

    Four output channels are computed together, eight input channels per
    pass in a fixed order: each ``mid`` vector loaded feeds four sums, and
    each output is loaded and stored once per eight multiply-adds. The
    output channels left over (``c_out % 4``) go one at a time.
    """
    w_flat = weight.reshape(-1)
    chunks = c_mid // 8
    quads = c_out // 4
    for quad in range(quads):
        o = quad * 4
        r0 = d0 + U(o) * o_step
        r1 = r0 + o_step
        r2 = r1 + o_step
        r3 = r2 + o_step
        for p in range(U(width)):
            dst[r0 + p] = bias[o]
            dst[r1 + p] = bias[o + 1]
            dst[r2 + p] = bias[o + 2]
            dst[r3 + p] = bias[o + 3]
        w0 = U(o * c_mid)
        w1 = w0 + U(c_mid)
        w2 = w1 + U(c_mid)
        w3 = w2 + U(c_mid)
        for chunk in range(chunks):
            k = U(chunk * 8)
            m = k * U(width)
            for p in range(U(width)):
                t0 = dst[r0 + p]
                t1 = dst[r1 + p]
                t2 = dst[r2 + p]
                t3 = dst[r3 + p]
                for q in range(8):
                    v = mid[m + U(q * width) + p]
                    t0 += w_flat[w0 + k + U(q)] * v
                    t1 += w_flat[w1 + k + U(q)] * v
                    t2 += w_flat[w2 + k + U(q)] * v
                    t3 += w_flat[w3 + k + U(q)] * v
                dst[r0 + p] = t0
                dst[r1 + p] = t1
                dst[r2 + p] = t2
                dst[r3 + p] = t3
        for k in range(chunks * 8, c_mid):
            m = U(k * width)
            for p in range(U(width)):
                v = mid[m + p]
                dst[r0 + p] += w_flat[w0 + U(k)] * v
                dst[r1 + p] += w_flat[w1 + U(k)] * v
                dst[r2 + p] += w_flat[w2 + U(k)] * v
                dst[r3 + p] += w_flat[w3 + U(k)] * v
    for o in range(quads * 4, c_out):
        _pointwise_single(mid, width, c_mid, w_flat, bias, dst, d0, o_step, o)


@jit(parallel=True)
def _separable_channels_first(x, w, pw, bias, zero, out, stride, dilation, pad):
    """``w`` is the depthwise weight ``(C_in*M, 1, kd, kh, kw)``, ``pw`` is ``(C_out, C_in*M)``."""
    n_batch, c_in, d_in, h_in, w_in = x.shape
    c_mid, _, kd_size, kh_size, kw_size = w.shape
    c_out, d_out, h_out, w_out = out.shape[1], out.shape[2], out.shape[3], out.shape[4]
    multiplier = c_mid // c_in
    x_flat, w_flat, out_flat = x.reshape(-1), w.reshape(-1), out.reshape(-1)
    in_dims = (c_in, d_in, h_in, w_in)
    w_dims = (1, kd_size, kh_size, kw_size)
    plane = U(d_out * h_out * w_out)
    for row in prange(n_batch * d_out * h_out):
        oh = row % h_out
        od = (row // h_out) % d_out
        n = row // (h_out * d_out)
        mid = np.empty(c_mid * w_out, dtype=out.dtype)
        for m in range(c_mid):
            channels_first_row(x_flat, in_dims, w_flat, w_dims, m, m // multiplier, n, od, oh,
                               mid, U(m * w_out), zero, w_out, stride, dilation, pad)
        first = U(((n * c_out * d_out + od) * h_out + oh) * w_out)
        pointwise_rows(mid, w_out, c_mid, pw, bias, out_flat, first, plane, c_out)


@jit(parallel=True)
def _separable_channels_last(x, w_t, zeros, pw, bias, out, stride, dilation, pad, unroll_h,
                             unroll_w):
    """``w_t`` is ``(kd, kh, kw, 1, M, C_in)``; ``pw`` is ``(C_out, C_in*M)`` with its
    columns in ``(M, C_in)`` order, the order of the depthwise row buffer."""
    n_batch, d_in, h_in, w_in, c_in = x.shape
    multiplier = w_t.shape[4]
    c_mid = c_in * multiplier
    d_out, h_out, w_out, c_out = out.shape[1], out.shape[2], out.shape[3], out.shape[4]
    x_flat, w_flat, out_flat = x.reshape(-1), w_t.reshape(-1), out.reshape(-1)
    in_dims = (d_in, h_in, w_in, c_in)
    zeros_flat = zeros.reshape(-1)
    for row in prange(n_batch * d_out * h_out):
        oh = row % h_out
        od = (row // h_out) % d_out
        n = row // (h_out * d_out)
        pixels = np.empty(w_out * c_mid, dtype=out.dtype)
        sums = np.empty(PIXEL_BLOCK * c_in, dtype=out.dtype)
        channels_last_row(x_flat, in_dims, w_flat, w_t.shape, zeros_flat, zeros_flat, n, od, oh,
                          pixels, U(0), sums, w_out, stride, dilation, pad, unroll_h, unroll_w)
        # (W, C_mid) -> (C_mid, W), so the pointwise sums run along W.
        mid = np.empty(c_mid * w_out, dtype=out.dtype)
        for p in range(U(w_out)):
            for k in range(U(c_mid)):
                mid[k * U(w_out) + p] = pixels[p * U(c_mid) + k]
        result = np.empty(c_out * w_out, dtype=out.dtype)
        pointwise_rows(mid, w_out, c_mid, pw, bias, result, U(0), U(w_out), c_out)
        first = U(row * w_out * c_out)
        for p in range(U(w_out)):
            for o in range(U(c_out)):
                out_flat[first + p * U(c_out) + o] = result[o * U(w_out) + p]


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
    bias = pointwise.bias if pointwise.bias is not None else np.zeros(c_out, pointwise.dtype)
    bias = np.ascontiguousarray(bias)
    out5 = output_5d(pointwise, target)
    dw = depthwise.weight.reshape((c_mid, 1) + kernel)
    if not channels_last:
        x5 = np.ascontiguousarray(x.reshape(x.shape[:2] + to_3d(x.shape[2:], 1)))
        zero = np.zeros((), dtype=depthwise.dtype)[()]
        _separable_channels_first(x5, np.ascontiguousarray(dw), np.ascontiguousarray(pw), bias,
                                  zero, out5, stride, dilation, pad_lo)
        return
    x5 = np.ascontiguousarray(x.reshape((x.shape[0],) + to_3d(x.shape[1:-1], 1) + x.shape[-1:]))
    # Depthwise channel c*M + q sits at (q, c) in the row buffer.
    w_t = np.ascontiguousarray(
        dw.reshape((c_in, multiplier) + kernel).transpose(2, 3, 4, 1, 0)
    ).reshape(kernel + (1, multiplier, c_in))
    pw_t = np.ascontiguousarray(
        pw.reshape(c_out, c_in, multiplier).transpose(0, 2, 1)
    ).reshape(c_out, c_mid)
    zeros = np.zeros((multiplier, c_in), dtype=depthwise.dtype)
    _separable_channels_last(x5, w_t, zeros, pw_t, bias, out5, stride, dilation, pad_lo,
                             *unroll)
