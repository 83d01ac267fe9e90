"""Depthwise convolution, channels_first, unit stride, output as wide as the input.

When the output and input rows have the same length (stride 1 and "same"
width), output pixel ``i`` of a plane, counted flat, reads input pixel
``i + offset(kh, kw)`` for every tap: the rows whose taps all lie inside
the input form one long flat loop, a few thousand iterations that
vectorise with the weights as scalars, instead of one short loop per row.
The loop crosses row ends, where the taps of the edge columns wrap into
the neighbouring rows; those columns are recomputed exactly afterwards,
like the rows whose taps leave the input.
"""

from __future__ import annotations

from numba import prange

from ._common import U, interior_columns
from ._jit import inlined, jit
from ._vector_width import wide_vectors
from .direct_cf import channels_first_row

__all__ = ["depthwise_channels_first"]


@inlined
def _flat_pass(x_flat, x0, row_step, tap_step, w_flat, w0, kw_size, out_flat, o0, count,
               start, s0, s_step, rows, cols):
    """``out[o0 + i] = start[s0 + i*s_step] + sum of the tile's taps`` for ``i < count``.

    The tile is ``len(rows) x len(cols)`` taps (unrolled), tap ``(kh, kw)``
    reading ``x[x0 + kh*row_step + kw*tap_step + i]`` with weight
    ``w[w0 + kh*kw_size + kw]``.
    """
    for i in range(count):
        total = start[s0 + i * s_step]
        for kh in range(len(rows)):
            for kw in range(len(cols)):
                total += w_flat[w0 + U(kh * kw_size + kw)] * x_flat[
                    x0 + U(kh) * row_step + U(kw) * tap_step + i
                ]
        out_flat[o0 + i] = total


@inlined
def _fixed_pixel(x_flat, plane_in, in_dims, w_flat, w0, kernel, dilation, pad, oh, ow, bias):
    """One output pixel, tap by tap, skipping taps outside the input."""
    h_in, w_in = in_dims
    kh_size, kw_size = kernel
    dh, dw = dilation
    ph, pw = pad
    total = bias
    for kh in range(kh_size):
        iy = oh + kh * dh - ph
        if iy < 0 or iy >= h_in:
            continue
        for kw in range(kw_size):
            ix = ow + kw * dw - pw
            if 0 <= ix < w_in:
                total += w_flat[w0 + U(kh * kw_size + kw)] * x_flat[plane_in + U(iy * w_in + ix)]
    return total


@jit(parallel=True)
def depthwise_channels_first(x, w, bias, out, stride, dilation, pad, unroll_h, unroll_w):
    """Depthwise convolution (any multiplier) of 2-D channels_first data, unit stride.

    ``x`` is ``(N, C_in, 1, H, W)``, ``w`` ``(C_out, 1, 1, kh, kw)``,
    ``out`` ``(N, C_out, 1, H_out, W)``: the output rows as long as the
    input rows. ``stride``, ``dilation``, ``pad`` are 3-tuples (stride 1).
    The lengths of ``unroll_h``/``unroll_w`` set the tile of taps one flat
    pass unrolls, as in :func:`.depthwise_cl.depthwise_channels_last`.
    """
    n_batch, c_in, _, h_in, w_in = x.shape
    c_out, _, _, kh_size, kw_size = w.shape
    h_out = out.shape[3]
    multiplier = c_out // c_in
    dh, dw = dilation[1], dilation[2]
    ph, pw = pad[1], pad[2]
    x_flat, w_flat, out_flat = x.reshape(-1), w.reshape(-1), out.reshape(-1)
    oh_lo, oh_hi = interior_columns(kh_size, 1, dh, ph, h_in, h_out)
    ow_lo, ow_hi = interior_columns(kw_size, 1, dw, pw, w_in, w_in)
    # The flat run: from the first interior pixel of the first interior row
    # to the last of the last; every read stays inside the plane.
    first = oh_lo * w_in + ow_lo
    count = (oh_hi - 1) * w_in + ow_hi - first if oh_hi > oh_lo and ow_hi > ow_lo else 0
    row_step, tap_step = U(dh * w_in), U(dw)
    tiles_w = kw_size // len(unroll_w)
    n_tiles = (kh_size // len(unroll_h)) * tiles_w
    in_dims, kernel = (h_in, w_in), (kh_size, kw_size)
    for plane in prange(n_batch * c_out):
        wide_vectors()
        o = plane % c_out
        n = plane // c_out
        plane_in = U((n * c_in + o // multiplier) * h_in * w_in)
        plane_out = U(plane * h_out * w_in)
        w0 = U(o * kh_size * kw_size)
        b = bias[o]
        if count > 0:
            x0 = plane_in + U((oh_lo - ph) * w_in + ow_lo - pw)
            o0 = plane_out + U(first)
            # The first tile starts from the bias (step 0), the rest add to the output.
            _flat_pass(x_flat, x0, row_step, tap_step, w_flat, w0, kw_size, out_flat, o0,
                       U(count), bias, U(o), U(0), unroll_h, unroll_w)
            for tile in range(1, n_tiles):
                kh0 = (tile // tiles_w) * len(unroll_h)
                kw0 = (tile % tiles_w) * len(unroll_w)
                _flat_pass(x_flat, x0 + U(kh0) * row_step + U(kw0) * tap_step, row_step,
                           tap_step, w_flat, w0 + U(kh0 * kw_size + kw0), kw_size, out_flat,
                           o0, U(count), out_flat, o0, U(1), unroll_h, unroll_w)
            # The edge columns of the flat run read across row ends: redo them.
            for oh in range(oh_lo, oh_hi):
                for edge in range(ow_lo + w_in - ow_hi):
                    ow = edge if edge < ow_lo else ow_hi + edge - ow_lo
                    out_flat[plane_out + U(oh * w_in + ow)] = _fixed_pixel(
                        x_flat, plane_in, in_dims, w_flat, w0, kernel, (dh, dw), (ph, pw), oh,
                        ow, b)
        for oh in range(h_out):
            if count > 0 and oh_lo <= oh < oh_hi:
                continue
            channels_first_row(x_flat, (c_in, 1, h_in, w_in), w_flat,
                               (1, 1, kh_size, kw_size), o, o // multiplier, n, 0, oh,
                               out_flat, plane_out + U(oh * w_in), b, w_in, (1, 1, 1),
                               dilation, (0, ph, pw))
