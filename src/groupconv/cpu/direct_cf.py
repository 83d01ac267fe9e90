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


@jit(parallel=True)
def channels_first(x, w, bias, out, stride, dilation, pad, unroll_h, unroll_w):
    """Grouped convolution, parallel over output planes (see :func:`channels_first_row`)."""
    n_batch, c_in, d_in, h_in, w_in = x.shape
    c_out, c_group, kd_size, kh_size, kw_size = w.shape
    d_out, h_out, w_out = out.shape[2], out.shape[3], out.shape[4]
    per_group = c_out // (c_in // c_group)
    x_flat, w_flat, out_flat = x.reshape(-1), w.reshape(-1), out.reshape(-1)
    columns = interior_columns(kw_size, stride[2], dilation[2], pad[2], w_in, w_out)
    in_dims = (c_in, d_in, h_in, w_in)
    w_dims = (c_group, kd_size, kh_size, kw_size)
    for plane in prange(n_batch * c_out * d_out):
        od = plane % d_out
        o = (plane // d_out) % c_out
        n = plane // (d_out * c_out)
        first_channel = (o // per_group) * c_group
        for oh in range(h_out):
            channels_first_row(x_flat, in_dims, w_flat, w_dims, o, first_channel, n, od, oh,
                               out_flat, U(((plane * h_out) + oh) * w_out), bias[o], w_out,
                               stride, dilation, pad, columns, unroll_h, unroll_w)
