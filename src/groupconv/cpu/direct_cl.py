"""Direct convolution, channels_last: the innermost loop runs along channels.

Two loop orders: :func:`channels_last_by_group` (innermost over groups,
for depthwise and small groups) and :func:`channels_last_by_output`
(innermost over the outputs of a group, for few large groups).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._common import U, interior_columns, valid_range
from ._jit import inlined, jit
from ._vector_width import wide_vectors

__all__ = ["PIXEL_BLOCK", "channels_last_by_group", "channels_last_by_output",
           "channels_last_row"]

#: Output pixels computed together by the blocked channels_last kernel: each
#: input pixel loaded feeds up to this many outputs from registers.
PIXEL_BLOCK = 4

# Why the block helpers look the way they do: LLVM vectorises their loop over
# groups only when the loop stores to one array and loads from others (a load
# and a store of the same array at run-time offsets defeats its dependence
# analysis), so sums start from ``start`` (the bias, or zeros) and go to
# ``dst`` once; ``start`` has the data's dtype so nothing is promoted.


@inlined
def _block_unit(x_flat, x0, row_step, channels, w_flat, w0, w_tap, kw_size, dst, d0, d_step,
                start, s0, count, unroll_h, unroll_w):
    """Sums of :data:`PIXEL_BLOCK` adjacent outputs at stride 1 and dilation 1.

    Output ``p`` reads input columns ``kw + p``: the same constant offsets
    recur across ``p``, so each input vector is loaded once per block.
    """
    for g in range(count):
        t0 = start[s0 + g]
        t1 = t0
        t2 = t0
        t3 = t0
        for kh in range(len(unroll_h)):
            xr = x0 + U(kh) * row_step + g
            for kw in range(len(unroll_w)):
                wv = w_flat[w0 + U(kh * kw_size + kw) * w_tap + g]
                t0 += wv * x_flat[xr + U(kw) * channels]
                t1 += wv * x_flat[xr + U(kw + 1) * channels]
                t2 += wv * x_flat[xr + U(kw + 2) * channels]
                t3 += wv * x_flat[xr + U(kw + 3) * channels]
        dst[d0 + g] = t0
        dst[d0 + d_step + g] = t1
        dst[d0 + U(2) * d_step + g] = t2
        dst[d0 + U(3) * d_step + g] = t3


@inlined
def _block_strided(x_flat, x0, row_step, pixel_step, tap_step, w_flat, w0, w_tap, kw_size, dst,
                   d0, d_step, start, s0, count, unroll_h, unroll_w):
    """:func:`_block_unit` for any stride and dilation (input loads are not shared)."""
    for g in range(count):
        t0 = start[s0 + g]
        t1 = t0
        t2 = t0
        t3 = t0
        for kh in range(len(unroll_h)):
            xr = x0 + U(kh) * row_step + g
            for kw in range(len(unroll_w)):
                wv = w_flat[w0 + U(kh * kw_size + kw) * w_tap + g]
                xk = xr + U(kw) * tap_step
                t0 += wv * x_flat[xk]
                t1 += wv * x_flat[xk + pixel_step]
                t2 += wv * x_flat[xk + U(2) * pixel_step]
                t3 += wv * x_flat[xk + U(3) * pixel_step]
        dst[d0 + g] = t0
        dst[d0 + d_step + g] = t1
        dst[d0 + U(2) * d_step + g] = t2
        dst[d0 + U(3) * d_step + g] = t3


@inlined
def channels_last_row(x_flat, in_dims, w_flat, w_dims, bias_flat, zeros, n, od, oh, acc, acc_row,
                      sums, w_out, stride, dilation, pad, unroll_h, unroll_w):
    """Output row ``(n, od, oh)`` into ``acc[acc_row:]``, laid out ``(W_out, C_out // G, G)``.

    ``in_dims`` is ``(D, H, W, C_in)`` with channels ordered ``c*G + g``;
    ``w_dims`` is ``(kd, kh, kw, C_in // G, C_out // G, G)``, the layout of
    ``w_flat``; ``bias_flat`` is ``(C_out // G, G)`` and ``zeros`` the same
    size; ``sums`` has room for ``PIXEL_BLOCK * G`` values.

    Builds specialised for a kernel size (``unroll_w`` of length ``kw``, and
    ``unroll_h`` of length ``kh`` or empty) compute interior pixels in
    blocks of :data:`PIXEL_BLOCK`: the taps along W (and along H when
    ``unroll_h`` is given) are unrolled and the block's sums stay in
    registers.
    """
    d_in, h_in, w_in, c_in = in_dims
    kd_size, kh_size, kw_size, c_group, per_group, groups = w_dims
    sd, sh, sw = stride
    dd, dh, dw = dilation
    pd, ph, pw = pad
    n_groups, n_out, cg, channels = U(groups), U(per_group), U(c_group), U(c_in)
    blocked = len(unroll_w) > 0
    full = blocked and len(unroll_h) > 0
    unit = sw == 1 and dw == 1
    # With every tap in one pass, a block's sums are final: store them.
    single_pass = full and c_group == 1 and kd_size == 1
    col_lo, col_hi = interior_columns(kw_size, sw, dw, pw, w_in, w_out)
    n_blocks = (col_hi - col_lo) // PIXEL_BLOCK if blocked else 0
    col_done = col_lo + n_blocks * PIXEL_BLOCK
    pixel_out = n_out * n_groups
    w_tap = cg * n_out * n_groups
    top = oh * sh - ph
    rows_inside = top >= 0 and top + (kh_size - 1) * dh < h_in
    use_blocks = n_blocks > 0 and (rows_inside or not full)
    if single_pass and not 0 <= od * sd - pd < d_in:
        use_blocks = False  # an all-padding plane: the outputs are the bias
    for ow in range(w_out):
        if single_pass and use_blocks and ow >= col_lo and ow < col_done:
            continue  # the blocks store these outputs whole
        a = acc_row + U(ow) * pixel_out
        for i in range(pixel_out):
            acc[a + i] = bias_flat[i]
    for kd in range(kd_size):
        iz = od * sd + kd * dd - pd
        if iz < 0 or iz >= d_in:
            continue
        plane = (n * d_in + iz) * h_in
        if use_blocks:
            # One pass over all kh taps (unroll_h given), or one pass per valid kh.
            for kh_pass in range(1 if full else kh_size):
                first_y = top + kh_pass * dh
                if not full and (first_y < 0 or first_y >= h_in):
                    continue
                row_step = U(dh * w_in) * channels
                for c in range(cg):
                    for j in range(n_out):
                        w0 = ((U((kd * kh_size + kh_pass) * kw_size) * cg + c) * n_out + j) * (
                            n_groups
                        )
                        for block in range(n_blocks):
                            ow = col_lo + block * PIXEL_BLOCK
                            a = acc_row + U(ow) * pixel_out + j * n_groups
                            x0 = U(((plane + first_y) * w_in + ow * sw - pw) * c_in) + (
                                c * n_groups
                            )
                            if single_pass:
                                dst, d0, d_step, start = acc, a, pixel_out, bias_flat
                            else:
                                dst, d0, d_step, start = sums, U(0), n_groups, zeros
                            s0 = j * n_groups
                            # Each call names its tap tuples, so that every build
                            # sees constant trip counts (a pass covers one kh row
                            # when only W is unrolled).
                            if unit and full:
                                _block_unit(x_flat, x0, row_step, channels, w_flat, w0, w_tap,
                                            kw_size, dst, d0, d_step, start, s0,
                                            n_groups, unroll_h, unroll_w)
                            elif unit:
                                _block_unit(x_flat, x0, row_step, channels, w_flat, w0, w_tap,
                                            kw_size, dst, d0, d_step, start, s0,
                                            n_groups, (0,), unroll_w)
                            elif full:
                                _block_strided(x_flat, x0, row_step, U(sw) * channels,
                                               U(dw) * channels, w_flat, w0, w_tap, kw_size,
                                               dst, d0, d_step, start, s0,
                                               n_groups, unroll_h, unroll_w)
                            else:
                                _block_strided(x_flat, x0, row_step, U(sw) * channels,
                                               U(dw) * channels, w_flat, w0, w_tap, kw_size,
                                               dst, d0, d_step, start, s0,
                                               n_groups, (0,), unroll_w)
                            if not single_pass:
                                for p in range(U(PIXEL_BLOCK)):
                                    ap = a + p * pixel_out
                                    sp = p * n_groups
                                    for g in range(n_groups):
                                        acc[ap + g] += sums[sp + g]
        # Every pixel the blocks did not cover, tap by tap.
        for ow in range(w_out):
            if use_blocks and ow >= col_lo and ow < col_done:
                continue
            a = acc_row + U(ow) * pixel_out
            for kh in range(kh_size):
                iy = top + kh * dh
                if iy < 0 or iy >= h_in:
                    continue
                for kw in range(kw_size):
                    iw = ow * sw + kw * dw - pw
                    if iw < 0 or iw >= w_in:
                        continue
                    pixel = U(((plane + iy) * w_in + iw) * c_in)
                    taps = U(((kd * kh_size + kh) * kw_size + kw) * c_group) * n_out
                    for c in range(cg):
                        for j in range(n_out):
                            wj = (taps + c * n_out + j) * n_groups
                            aj = a + j * n_groups
                            xc = pixel + c * n_groups
                            for g in range(n_groups):
                                acc[aj + g] += w_flat[wj + g] * x_flat[xc + g]


@jit(parallel=True)
def channels_last_by_group(x, w_t, bias_t, out, stride, dilation, pad, unroll_h, unroll_w):
    """Grouped convolution with the innermost loop over groups (see :func:`channels_last_row`).

    ``x``'s channels are ordered ``c*G + g`` (the driver permutes them when
    ``C_in // G > 1``), so the loop over groups is unit-stride: depthwise
    convolution is the case ``C_in // G == 1``. The row accumulator is the
    output row itself when ``C_out // G == 1``.
    """
    n_batch, d_in, h_in, w_in, c_in = x.shape
    kd_size, kh_size, kw_size, c_group, per_group, groups = w_t.shape
    d_out, h_out, w_out = out.shape[1], out.shape[2], out.shape[3]
    c_out = per_group * groups
    x_flat, w_flat, out_flat = x.reshape(-1), w_t.reshape(-1), out.reshape(-1)
    bias_flat = bias_t.reshape(-1)
    zeros = np.zeros(c_out, dtype=out.dtype)
    in_dims = (d_in, h_in, w_in, c_in)
    n_groups, n_out = U(groups), U(per_group)
    for row in prange(n_batch * d_out * h_out):
        wide_vectors()
        oh = row % h_out
        od = (row // h_out) % d_out
        n = row // (h_out * d_out)
        out_row = U(row * w_out * c_out)
        if per_group == 1:
            acc, acc_row = out_flat, out_row
        else:
            acc, acc_row = np.empty(w_out * c_out, dtype=out.dtype), U(0)
        sums = np.empty(PIXEL_BLOCK * groups, dtype=out.dtype)
        channels_last_row(x_flat, in_dims, w_flat, w_t.shape, bias_flat, zeros, n, od, oh, acc,
                          acc_row, sums, w_out, stride, dilation, pad, unroll_h, unroll_w)
        if per_group != 1:
            for ow in range(U(w_out)):
                for j in range(n_out):
                    for g in range(n_groups):
                        out_flat[out_row + ow * U(c_out) + g * n_out + j] = acc[
                            (ow * n_out + j) * n_groups + g
                        ]


@jit(parallel=True)
def channels_last_by_output(x, w_t, bias, out, stride, dilation, pad, unroll_h=(), unroll_w=()):
    """Innermost loop over the outputs of a group: vectorised when C_out // groups is large.

    ``w_t`` is ``(kd, kh, kw, groups, C_in // groups, C_out // groups)``;
    ``unroll_h``/``unroll_w`` are accepted for a uniform signature and unused;
    the accumulator is the output row itself, already in ``(W_out, C_out)`` order.
    """
    n_batch, d_in, h_in, w_in, c_in = x.shape
    kd_size, kh_size, kw_size, groups, c_group, per_group = w_t.shape
    d_out, h_out, w_out = out.shape[1], out.shape[2], out.shape[3]
    c_out = per_group * groups
    sd, sh, sw = stride
    dd, dh, dw = dilation
    pd, ph, pw = pad
    x_flat, w_flat, out_flat = x.reshape(-1), w_t.reshape(-1), out.reshape(-1)
    n_out, cg = U(per_group), U(c_group)
    for row in prange(n_batch * d_out * h_out):
        wide_vectors()
        oh = row % h_out
        od = (row // h_out) % d_out
        n = row // (h_out * d_out)
        base = U(row * w_out * c_out)
        for ow in range(U(w_out)):
            for o in range(U(c_out)):
                out_flat[base + ow * U(c_out) + o] = bias[o]
        for kd in range(kd_size):
            iz = od * sd + kd * dd - pd
            if iz < 0 or iz >= d_in:
                continue
            for kh in range(kh_size):
                iy = oh * sh + kh * dh - ph
                if iy < 0 or iy >= h_in:
                    continue
                x_row = ((n * d_in + iz) * h_in + iy) * w_in
                for kw in range(kw_size):
                    shift = kw * dw - pw
                    lo, hi = valid_range(shift, sw, w_in, w_out)
                    taps = U((kd * kh_size + kh) * kw_size + kw) * U(groups) * cg * n_out
                    for ow in range(lo, hi):
                        pixel = U((x_row + ow * sw + shift) * c_in)
                        a = base + U(ow * c_out)
                        for g in range(U(groups)):
                            for c in range(cg):
                                value = x_flat[pixel + g * cg + c]
                                wg = taps + (g * cg + c) * n_out
                                ag = a + g * n_out
                                for j in range(n_out):
                                    out_flat[ag + j] += w_flat[wg + j] * value


