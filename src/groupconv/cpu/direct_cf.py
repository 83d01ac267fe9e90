"""Direct convolution, channels_first: the innermost loop runs along W.

Kernels see 3-D spatial data (1-D and 2-D calls gain leading unit dims),
C-contiguous arrays in the compute dtype and zero padding given by ``pad``.
"""

from __future__ import annotations

from numba import prange

from ._common import U, add_row_taps, valid_range
from ._jit import jit

__all__ = ["channels_first", "channels_first_row", "interior_columns"]


@jit(parallel=False)
def interior_columns(kw_size, stride_w, dilation_w, pad_w, w_in, w_out):
    """``(lo, hi)``: the output columns whose every tap along W lies inside the input."""
    lo = valid_range(-pad_w, stride_w, w_in, w_out)[0]
    hi = max(valid_range((kw_size - 1) * dilation_w - pad_w, stride_w, w_in, w_out)[1], lo)
    return lo, hi


@jit(parallel=False)
def channels_first_row(x_flat, in_dims, w_flat, w_dims, o, first_channel, n, od, oh, dst, row,
                       bias_value, w_out, stride, dilation, pad, columns, unroll_h, unroll_w):
    """Output row ``(n, o, od, oh)`` into ``dst[row:row + w_out]``.

    ``in_dims`` is ``(C_in, D, H, W)``; ``w_dims`` is ``(C_in // groups, kd,
    kh, kw)`` and ``w_flat`` holds ``(C_out, C_in // groups, kd, kh, kw)``;
    ``columns`` is :func:`interior_columns`. When ``unroll_h``/``unroll_w``
    are tuples of length ``kh``/``kw`` (not empty), interior rows and
    columns unroll every tap into one sum per output, kept in a register.
    """
    c_in, d_in, h_in, w_in = in_dims
    c_group, kd_size, kh_size, kw_size = w_dims
    sd, sh, sw = stride
    dd, dh, dw = dilation
    pd, ph, pw = pad
    col_lo, col_hi = columns
    unrolled = len(unroll_h) > 0 and len(unroll_w) > 0
    for ow in range(U(w_out)):
        dst[row + ow] = bias_value
    top = oh * sh - ph
    rows_inside = top >= 0 and top + (kh_size - 1) * dh < h_in
    for c in range(c_group):
        for kd in range(kd_size):
            iz = od * sd + kd * dd - pd
            if iz < 0 or iz >= d_in:
                continue
            plane_in = ((n * c_in + first_channel + c) * d_in + iz) * h_in
            w_taps = ((o * c_group + c) * kd_size + kd) * kh_size * kw_size
            if unrolled and rows_inside:
                base = U((plane_in + top) * w_in + col_lo * sw - pw)
                start = row + U(col_lo)
                for i in range(U(col_hi - col_lo)):
                    total = dst[start + i]
                    for kh in range(len(unroll_h)):
                        for kw in range(len(unroll_w)):
                            total += w_flat[w_taps + kh * len(unroll_w) + kw] * x_flat[
                                base + U(kh * dh * w_in + kw * dw) + i * U(sw)
                            ]
                    dst[start + i] = total
            for kh in range(kh_size):
                iy = top + kh * dh
                if iy < 0 or iy >= h_in:
                    continue
                x_row = U((plane_in + iy) * w_in)
                for kw in range(kw_size):
                    tap = w_flat[w_taps + kh * kw_size + kw]
                    shift = kw * dw - pw
                    if unrolled and rows_inside:
                        # Only the border columns are left.
                        add_row_taps(dst, row, x_flat, x_row, tap, shift, sw, w_in, 0, col_lo)
                        add_row_taps(dst, row, x_flat, x_row, tap, shift, sw, w_in, col_hi,
                                     w_out)
                    else:
                        add_row_taps(dst, row, x_flat, x_row, tap, shift, sw, w_in, 0, w_out)


#: Output rows computed together by :func:`_rows_block`.
ROW_BLOCK = 4


@jit(parallel=False)
def _rows_block(x_flat, x0, row_step, w_flat, w_taps, bias_value, dst, d0, d_step, count,
                unroll_h, unroll_w):
    """:data:`ROW_BLOCK` adjacent output rows of one plane, interior columns, stride 1.

    Output row ``r`` reads input rows ``r + kh``: the same constant offsets
    recur across ``r``, so each input vector is loaded once for the block;
    the sums start from the bias and are stored once (a load and a store of
    ``dst`` in one loop would stop LLVM from vectorising it).
    """
    kw_size = len(unroll_w)
    for i in range(U(count)):
        t0 = bias_value
        t1 = bias_value
        t2 = bias_value
        t3 = bias_value
        for kh in range(len(unroll_h)):
            for kw in range(kw_size):
                wv = w_flat[w_taps + kh * kw_size + kw]
                xk = x0 + U(kw) + i
                t0 += wv * x_flat[xk + U(kh) * row_step]
                t1 += wv * x_flat[xk + U(kh + 1) * row_step]
                t2 += wv * x_flat[xk + U(kh + 2) * row_step]
                t3 += wv * x_flat[xk + U(kh + 3) * row_step]
        dst[d0 + i] = t0
        dst[d0 + d_step + i] = t1
        dst[d0 + U(2) * d_step + i] = t2
        dst[d0 + U(3) * d_step + i] = t3


@jit(parallel=True)
def channels_first(x, w, bias, out, stride, dilation, pad, unroll_h, unroll_w):
    """Grouped convolution, parallel over output planes (see :func:`channels_first_row`).

    Depthwise 2-D planes at stride 1 and dilation 1 with an unrolled build
    take :data:`ROW_BLOCK` interior rows at a time through :func:`_rows_block`.
    """
    n_batch, c_in, d_in, h_in, w_in = x.shape
    c_out, c_group, kd_size, kh_size, kw_size = w.shape
    d_out, h_out, w_out = out.shape[2], out.shape[3], out.shape[4]
    per_group = c_out // (c_in // c_group)
    x_flat, w_flat, out_flat = x.reshape(-1), w.reshape(-1), out.reshape(-1)
    columns = interior_columns(kw_size, stride[2], dilation[2], pad[2], w_in, w_out)
    in_dims = (c_in, d_in, h_in, w_in)
    w_dims = (c_group, kd_size, kh_size, kw_size)
    # One pass per output (no sum over input channels or depth) at unit steps.
    blocked = (len(unroll_h) > 0 and len(unroll_w) > 0 and c_group == 1 and kd_size == 1
               and stride[1] == 1 and stride[2] == 1 and dilation[1] == 1 and dilation[2] == 1)
    col_lo, col_hi = columns
    # Rows whose every tap along H lies inside the input: [row_lo, row_hi).
    row_lo = min(pad[1], h_out)
    row_hi = max(min(h_in - kh_size + 1 + pad[1], h_out), row_lo)
    n_row_blocks = (row_hi - row_lo) // ROW_BLOCK if blocked and col_hi > col_lo else 0
    for plane in prange(n_batch * c_out * d_out):
        od = plane % d_out
        o = (plane // d_out) % c_out
        n = plane // (d_out * c_out)
        first_channel = (o // per_group) * c_group
        plane_out = U(plane * h_out * w_out)
        iz = od * stride[0] - pad[0]
        plane_blocks = n_row_blocks if 0 <= iz < d_in else 0
        blocked_rows = row_lo + plane_blocks * ROW_BLOCK
        for block in range(plane_blocks):
            oh = row_lo + block * ROW_BLOCK
            plane_in = ((n * c_in + first_channel) * d_in + iz) * h_in
            row = plane_out + U(oh * w_out)
            x0 = U((plane_in + oh - pad[1]) * w_in + col_lo - pad[2])
            _rows_block(x_flat, x0, U(w_in), w_flat, o * kh_size * kw_size, bias[o], out_flat,
                        row + U(col_lo), U(w_out), col_hi - col_lo, unroll_h, unroll_w)
            # The border columns of those rows, tap by tap.
            for r in range(ROW_BLOCK):
                out_row = row + U(r * w_out)
                for ow in range(col_lo):
                    out_flat[out_row + U(ow)] = bias[o]
                for ow in range(col_hi, w_out):
                    out_flat[out_row + U(ow)] = bias[o]
                for kh in range(kh_size):
                    x_row = U((plane_in + oh + r - pad[1] + kh) * w_in)
                    for kw in range(kw_size):
                        tap = w_flat[(o * kh_size + kh) * kw_size + kw]
                        shift = kw - pad[2]
                        add_row_taps(out_flat, out_row, x_flat, x_row, tap, shift, 1, w_in, 0,
                                     col_lo)
                        add_row_taps(out_flat, out_row, x_flat, x_row, tap, shift, 1, w_in,
                                     col_hi, w_out)
        for oh in range(h_out):
            if oh >= row_lo and oh < blocked_rows:
                continue
            channels_first_row(x_flat, in_dims, w_flat, w_dims, o, first_channel, n, od, oh,
                               out_flat, plane_out + U(oh * w_out), bias[o], w_out, stride,
                               dilation, pad, columns, unroll_h, unroll_w)
