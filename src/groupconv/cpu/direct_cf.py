"""Direct convolution, channels_first: the innermost loop runs along W.

Kernels see 3-D spatial data (1-D and 2-D calls gain leading unit dims),
C-contiguous arrays in the compute dtype and zero padding given by ``pad``.
"""

from __future__ import annotations

from numba import prange

from ._common import U, add_row_taps
from ._jit import inlined, jit
from ._vector_width import wide_vectors

__all__ = ["channels_first", "channels_first_row"]


@inlined
def channels_first_row(x_flat, in_dims, w_flat, w_dims, o, first_channel, n, od, oh, dst, row,
                       bias_value, w_out, stride, dilation, pad):
    """Output row ``(n, o, od, oh)`` into ``dst[row:row + w_out]``.

    ``in_dims`` is ``(C_in, D, H, W)``; ``w_dims`` is ``(C_in // groups, kd,
    kh, kw)`` and ``w_flat`` holds ``(C_out, C_in // groups, kd, kh, kw)``.
    Each tap adds a shifted input row to the output row over the columns
    where it lies inside the input: a unit-stride loop that vectorises.
    (Builds that unrolled the taps, or computed 4 rows at once, measured
    slower here than this loop, unlike channels_last.)
    """
    c_in, d_in, h_in, w_in = in_dims
    c_group, kd_size, kh_size, kw_size = w_dims
    sd, sh, sw = stride
    dd, dh, dw = dilation
    pd, ph, pw = pad
    for ow in range(U(w_out)):
        dst[row + ow] = bias_value
    top = oh * sh - ph
    for c in range(c_group):
        for kd in range(kd_size):
            iz = od * sd + kd * dd - pd
            if iz < 0 or iz >= d_in:
                continue
            plane_in = ((n * c_in + first_channel + c) * d_in + iz) * h_in
            w_taps = ((o * c_group + c) * kd_size + kd) * kh_size * kw_size
            for kh in range(kh_size):
                iy = top + kh * dh
                if iy < 0 or iy >= h_in:
                    continue
                x_row = U((plane_in + iy) * w_in)
                for kw in range(kw_size):
                    add_row_taps(dst, row, x_flat, x_row, w_flat[w_taps + kh * kw_size + kw],
                                 kw * dw - pw, sw, w_in, 0, w_out)


@jit(parallel=True)
def channels_first(x, w, bias, out, stride, dilation, pad):
    """Grouped convolution, parallel over output planes (see :func:`channels_first_row`)."""
    n_batch, c_in, d_in, h_in, w_in = x.shape
    c_out, c_group, kd_size, kh_size, kw_size = w.shape
    d_out, h_out, w_out = out.shape[2], out.shape[3], out.shape[4]
    per_group = c_out // (c_in // c_group)
    x_flat, w_flat, out_flat = x.reshape(-1), w.reshape(-1), out.reshape(-1)
    in_dims = (c_in, d_in, h_in, w_in)
    w_dims = (c_group, kd_size, kh_size, kw_size)
    for plane in prange(n_batch * c_out * d_out):
        wide_vectors()
        od = plane % d_out
        o = (plane // d_out) % c_out
        n = plane // (d_out * c_out)
        first_channel = (o // per_group) * c_group
        plane_out = U(plane * h_out * w_out)
        for oh in range(h_out):
            channels_first_row(x_flat, in_dims, w_flat, w_dims, o, first_channel, n, od, oh,
                               out_flat, plane_out + U(oh * w_out), bias[o], w_out, stride,
                               dilation, pad)
