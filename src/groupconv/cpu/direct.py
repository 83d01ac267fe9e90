"""Direct grouped convolution on the CPU: no im2col buffer, any groups.

Every kernel sees 3-D spatial data (1-D and 2-D calls gain leading unit
dims, which are free views), C-contiguous arrays in the compute dtype, and
zero padding given by ``pad`` (other padding modes are materialised by the
driver first). Kernels are parallel over output rows, which never overlap,
and keep the innermost loop on the contiguous axis: W for channels_first,
channels for channels_last.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .._validate import PADDING_MODES
from ._jit import jit

__all__ = ["conv_direct"]


@jit(parallel=False)
def _valid_range(shift, step, size, count):
    """The outputs ``i`` in ``[lo, hi)`` for which ``i*step + shift`` lies in ``[0, size)``."""
    lo = 0 if shift >= 0 else (step - 1 - shift) // step
    hi = min((size - 1 - shift) // step + 1, count)
    return lo, max(hi, lo)


# Why the inner loops index flat arrays with np.uint64 offsets: Numba wraps
# negative signed indices (``a[i]`` with ``i < 0`` means ``a[n + i]``), and
# that check stops LLVM from vectorising; unsigned offsets cannot be
# negative, so the innermost loops become packed (ymm/zmm) FMAs.
U = np.uint64


@jit(parallel=False)
def _add_row_taps(out_flat, dst, x_flat, src, tap, shift, step, size, lo, hi):
    """``out[dst + i] += tap * x[src + i*step + shift]`` for ``i`` in ``[lo, hi)`` inside x."""
    a, b = _valid_range(shift, step, size, hi)
    a = max(a, lo)
    if b <= a:
        return
    first = src + U(a * step + shift)
    start = dst + U(a)
    if step == 1:
        for i in range(U(b - a)):
            out_flat[start + i] += tap * x_flat[first + i]
    else:
        stride = U(step)
        for i in range(U(b - a)):
            out_flat[start + i] += tap * x_flat[first + i * stride]


@jit(parallel=True)
def _channels_first(x, w, bias, out, stride, dilation, pad, unroll_h, unroll_w):
    """Parallel over output planes; the innermost loop runs along W.

    When ``unroll_h``/``unroll_w`` are tuples of length ``kh``/``kw`` (not
    empty), this build is specialised for that kernel size: on interior
    rows and columns all taps are unrolled into one expression, so each
    output is loaded and stored once and the sum stays in a register.
    """
    n_batch, c_in, d_in, h_in, w_in = x.shape
    c_out, c_group, kd_size, kh_size, kw_size = w.shape
    d_out, h_out, w_out = out.shape[2], out.shape[3], out.shape[4]
    per_group = c_out // (c_in // c_group)
    sd, sh, sw = stride
    dd, dh, dw = dilation
    pd, ph, pw = pad
    x_flat, w_flat, out_flat = x.reshape(-1), w.reshape(-1), out.reshape(-1)
    unrolled = len(unroll_h) > 0 and len(unroll_w) > 0
    # Columns whose every tap lies inside the input.
    col_lo = _valid_range(-pw, sw, w_in, w_out)[0]
    col_hi = max(_valid_range((kw_size - 1) * dw - pw, sw, w_in, w_out)[1], col_lo)
    for plane in prange(n_batch * c_out * d_out):
        od = plane % d_out
        o = (plane // d_out) % c_out
        n = plane // (d_out * c_out)
        first_channel = (o // per_group) * c_group
        for oh in range(h_out):
            row = U(((plane * h_out) + oh) * w_out)
            for ow in range(U(w_out)):
                out_flat[row + ow] = bias[o]
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
                        dst = row + U(col_lo)
                        for i in range(U(col_hi - col_lo)):
                            total = out_flat[dst + i]
                            for kh in range(len(unroll_h)):
                                for kw in range(len(unroll_w)):
                                    total += w_flat[w_taps + kh * len(unroll_w) + kw] * x_flat[
                                        base + U(kh * dh * w_in + kw * dw) + i * U(sw)
                                    ]
                            out_flat[dst + i] = total
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
                                _add_row_taps(out_flat, row, x_flat, x_row, tap, shift, sw,
                                              w_in, 0, col_lo)
                                _add_row_taps(out_flat, row, x_flat, x_row, tap, shift, sw,
                                              w_in, col_hi, w_out)
                            else:
                                _add_row_taps(out_flat, row, x_flat, x_row, tap, shift, sw,
                                              w_in, 0, w_out)


#: Output pixels computed together by the blocked channels_last kernel: each
#: input pixel loaded feeds up to this many outputs from registers.
PIXEL_BLOCK = 4

# Why the block helpers look the way they do: LLVM vectorises their loop over
# groups only when the loop stores to one array and loads from others (a load
# and a store of the same array at run-time offsets defeats its dependence
# analysis), so sums start from ``start`` (the bias, or zeros) and go to
# ``dst`` once; ``start`` has the data's dtype so nothing is promoted.


@jit(parallel=False)
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


@jit(parallel=False)
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


@jit(parallel=True)
def _channels_last_by_group(x, w_t, bias_t, out, stride, dilation, pad, unroll_h, unroll_w):
    """Innermost loop over groups, vectorised; depthwise is the case ``C_in // groups == 1``.

    ``x``'s channels are ordered ``c*groups + g`` (the driver permutes them
    when ``C_in // groups > 1``), so the loop over groups is unit-stride.
    ``w_t`` is ``(kd, kh, kw, C_in // groups, C_out // groups, groups)``,
    ``bias_t`` is ``(C_out // groups, groups)``; the accumulator is
    ``(W_out, C_out // groups, groups)``, the output row itself when
    ``C_out // groups == 1``.

    Builds specialised for a kernel size (``unroll_w`` of length ``kw``, and
    ``unroll_h`` of length ``kh`` or empty) compute interior pixels in
    blocks of :data:`PIXEL_BLOCK`: the taps along W (and along H when
    ``unroll_h`` is given) are unrolled and the block's sums stay in
    registers.
    """
    n_batch, d_in, h_in, w_in, c_in = x.shape
    kd_size, kh_size, kw_size, c_group, per_group, groups = w_t.shape
    d_out, h_out, w_out = out.shape[1], out.shape[2], out.shape[3]
    c_out = per_group * groups
    sd, sh, sw = stride
    dd, dh, dw = dilation
    pd, ph, pw = pad
    x_flat, w_flat, out_flat = x.reshape(-1), w_t.reshape(-1), out.reshape(-1)
    bias_flat = bias_t.reshape(-1)
    n_groups, n_out, cg, channels = U(groups), U(per_group), U(c_group), U(c_in)
    blocked = len(unroll_w) > 0
    full = blocked and len(unroll_h) > 0
    unit = sw == 1 and dw == 1
    # With every tap in one pass, a block's sums are final: store them.
    single_pass = full and c_group == 1 and kd_size == 1
    # Columns whose every tap along W lies inside the input.
    col_lo = _valid_range(-pw, sw, w_in, w_out)[0]
    col_hi = max(_valid_range((kw_size - 1) * dw - pw, sw, w_in, w_out)[1], col_lo)
    n_blocks = (col_hi - col_lo) // PIXEL_BLOCK if blocked else 0
    col_done = col_lo + n_blocks * PIXEL_BLOCK
    pixel_out = n_out * n_groups
    w_tap = cg * n_out * n_groups
    zeros = np.zeros(per_group * groups, dtype=out.dtype)
    for row in prange(n_batch * d_out * h_out):
        oh = row % h_out
        od = (row // h_out) % d_out
        n = row // (h_out * d_out)
        out_row = U(row * w_out * c_out)
        if per_group == 1:
            acc, acc_row = out_flat, out_row
        else:
            acc, acc_row = np.empty(w_out * c_out, dtype=out.dtype), U(0)
        sums = np.empty(PIXEL_BLOCK * groups, dtype=out.dtype)
        top = oh * sh - ph
        rows_inside = top >= 0 and top + (kh_size - 1) * dh < h_in
        use_blocks = n_blocks > 0 and (rows_inside or not full)
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
        if per_group != 1:
            for ow in range(U(w_out)):
                for j in range(n_out):
                    for g in range(n_groups):
                        out_flat[out_row + ow * U(c_out) + g * n_out + j] = acc[
                            (ow * n_out + j) * n_groups + g
                        ]


@jit(parallel=True)
def _channels_last_by_output(x, w_t, bias, out, stride, dilation, pad):
    """Innermost loop over the outputs of a group: vectorised when C_out // groups is large.

    ``w_t`` is ``(kd, kh, kw, groups, C_in // groups, C_out // groups)``;
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
                    lo, hi = _valid_range(shift, sw, w_in, w_out)
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


def _to_3d(values, fill):
    return (fill,) * (3 - len(values)) + tuple(values)


#: Kernel sizes (kh, kw) that get builds with unrolled taps. Each is one
#: more compilation per dtype and layout, so only the common ones.
UNROLLED_SIZES = ((3, 3), (5, 5), (7, 7))
_UNROLLED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
#: Past this many taps per plane, unrolling H as well as W runs out of
#: registers (measured: 7x7 was slower fully unrolled than unrolled along W).
_MAX_FULLY_UNROLLED_TAPS = 25


def _unroll_arguments(kernel, dtype, channels_last):
    """Tuples whose lengths select a specialised build; empty tuples select the generic one."""
    _, kh, kw = kernel
    if (kh, kw) not in UNROLLED_SIZES or dtype not in _UNROLLED_DTYPES:
        return (), ()
    if channels_last and kh * kw > _MAX_FULLY_UNROLLED_TAPS:
        return (), (0,) * kw
    return (0,) * kh, (0,) * kw


def conv_direct(spec, target: np.ndarray) -> None:
    """Compute ``spec`` into ``target``, a C-contiguous batched output in ``spec.dtype``."""
    if target.size == 0:
        return
    x, weight, rank = spec.x, spec.weight, spec.rank
    channels_last = spec.layout == "channels_last"
    pads = spec.padding
    if spec.padding_mode != "zeros" and any(lo or hi for lo, hi in pads):
        # Workspace: one padded copy of the input.
        spatial_axes = range(1, 1 + rank) if channels_last else range(2, 2 + rank)
        widths = [(0, 0)] * x.ndim
        for axis, pair in zip(spatial_axes, pads, strict=True):
            widths[axis] = pair
        x = np.pad(x, widths, mode=PADDING_MODES[spec.padding_mode])
        pads = ((0, 0),) * rank
    stride = _to_3d(spec.stride, 1)
    dilation = _to_3d(spec.dilation, 1)
    pad_lo = _to_3d([lo for lo, _ in pads], 0)
    n, c_out = spec.batch, spec.c_out
    kernel = _to_3d(spec.kernel_size, 1)
    w5 = weight.reshape(weight.shape[:2] + kernel)
    bias = spec.bias if spec.bias is not None else np.zeros(c_out, dtype=spec.dtype)
    bias = np.ascontiguousarray(bias)
    unroll = _unroll_arguments(kernel, spec.dtype, channels_last)
    if not channels_last:
        x5 = np.ascontiguousarray(x.reshape(x.shape[:2] + _to_3d(x.shape[2:], 1)))
        out5 = target.reshape((n, c_out) + _to_3d(spec.out_spatial, 1))
        _channels_first(x5, np.ascontiguousarray(w5), bias, out5, stride, dilation, pad_lo,
                        *unroll)
        return
    x5 = np.ascontiguousarray(x.reshape((x.shape[0],) + _to_3d(x.shape[1:-1], 1) + x.shape[-1:]))
    out5 = target.reshape((n,) + _to_3d(spec.out_spatial, 1) + (c_out,))
    groups = spec.groups
    c_group, per_group = w5.shape[1], c_out // groups
    # (O, Cg, kd, kh, kw) -> (kd, kh, kw, G, Cg, Og): a copy the size of the weight.
    w6 = w5.reshape((groups, per_group, c_group) + kernel).transpose(3, 4, 5, 0, 2, 1)
    if groups >= per_group:
        w_t = np.ascontiguousarray(w6.transpose(0, 1, 2, 4, 5, 3))
        if c_group > 1:
            # Workspace: the input with its channels reordered (c, g), so that
            # the kernel's loop over groups reads consecutive memory.
            x5 = np.ascontiguousarray(
                x5.reshape(x5.shape[:4] + (groups, c_group)).swapaxes(4, 5)
            ).reshape(x5.shape)
        bias_t = np.ascontiguousarray(bias.reshape(groups, per_group).T)
        _channels_last_by_group(x5, w_t, bias_t, out5, stride, dilation, pad_lo, *unroll)
    else:
        _channels_last_by_output(x5, np.ascontiguousarray(w6), bias, out5, stride, dilation,
                                 pad_lo)
