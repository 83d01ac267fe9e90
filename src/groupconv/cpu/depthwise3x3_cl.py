"""Depthwise 3x3 convolution, channels_last, float32, multiplier 1: sums and inputs in registers.

The layer of MobileNet and EfficientNet. A task owns two adjacent output
rows of one image, cut into blocks of :data:`COLUMN_BLOCK` interior
columns. For each block and each chunk of 16 channels (one vector; the
last chunk overlaps its neighbour rather than leaving a remainder) the nine
weight vectors sit in registers while the kernel walks the block's columns
of both rows: the input rows the two output rows share are loaded once,
and input columns slide through registers from one output column to the
next (1 new column per step at stride 1, 2 at stride 2), so an output
vector costs 9 FMAs and 2-3 loads. Short blocks keep each walk's input and
output consecutive in memory, for the hardware prefetchers; at stride 2 the
walk also prefetches its five input rows ahead of itself.

The border columns of interior rows run the same walk with zero vectors for
the input columns on the padding (:func:`edge_columns`); border rows sum,
a chunk at a time in a register, the bias and then the taps inside the
input (:func:`border_pixels`). Every sum is the same expression in the
same tap order (bias, then the taps in (kh, kw) order, one FMA each) as in
:func:`.depthwise_cl.depthwise_channels_last`, so every output value is
bit for bit the one that kernel computes, except that a border sum of
exactly zero may be +0 where that kernel gives -0.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._common import U, aligned_buffer, interior_columns, valid_range
from ._jit import inlined, jit
from ._prefetch import prefetch
from ._simd import LANES, fma16, load16, put16, splat16, store16, stream_fence, streams
from ._vector_width import wide_vectors

__all__ = ["COLUMN_BLOCK", "S2_PREFETCH_PIXELS", "SHORT_ROW", "applies", "border_pixels",
           "columns_per_walk", "depthwise_3x3_channels_last", "edge_columns", "interior_pair",
           "interior_rows", "task_unit", "task_units", "unit_rows"]

#: Output columns per walk: a block's input and output pixels are consecutive
#: in memory for all its chunks of channels, which the hardware prefetchers
#: follow (measured, dw3x3_mbv2_56: 4 columns 1.00-1.15 ms, 8 columns
#: 1.24-1.34, a whole row per chunk 1.26; 2 or 3 columns no better than 4).
COLUMN_BLOCK = 4
#: At stride 2 the walk asks for the input this many pixels ahead on each of
#: its five rows (one prefetch per row and output column): the hardware
#: prefetchers alone leave the five row streams waiting on memory. Measured,
#: dw3x3_s2_112 channels_last, kernel alone, same buffers, alternating calls
#: (Zen 4): 8 pixels 1.13x faster than none, 16 1.15-1.40x, 32 1.18-1.38x;
#: at stride 1 (one new input column per step) 1.00-1.09x, so not done there.
S2_PREFETCH_PIXELS = 32
#: A row with at most this many interior columns is one walk per chunk, not
#: walks of :data:`COLUMN_BLOCK`: its pixels are few enough to stay in cache,
#: and each walk's setup (nine weight and six input vectors) is paid once.
#: Measured, dw3x3_14 (12 interior columns) channels_last, kernel alone, Zen 4,
#: alternating processes: 86.8-97.8 us against 96.6-105.7 with walks of 4.
#: Not in the fused separable kernel, whose segments are as short: there one
#: walk per segment measured 3-6 % slower.
SHORT_ROW = 16


def _interior_count(size_in, size_out, stride, dilation, pad):
    """How many outputs along one axis have all 3 taps inside the input."""
    lo = -(-pad // stride)
    hi = min((size_in - 1 + pad - 2 * dilation) // stride + 1, size_out)
    return max(hi - lo, 0)


def applies(spec, x5_shape, stride, dilation, pad) -> bool:
    """Whether the depthwise spec (multiplier 1, 2-D, channels_last) runs on this kernel.

    float32, a 3x3 kernel, at least 16 channels, unit strides and
    dilations or a W stride of 2 and W dilation of 1, and at least one
    interior column and two interior rows (outputs whose taps all lie
    inside the input). ``x5_shape`` is the shape of the kernel's input
    (padding modes applied); ``stride``, ``dilation`` and ``pad`` (the zero
    padding before each axis) are 3-tuples.
    """
    unit = stride[1:] == (1, 1) and dilation[1:] == (1, 1)
    if (spec.dtype != np.dtype(np.float32) or tuple(spec.kernel_size) != (3, 3)
            or spec.c_in < LANES or not (unit or stride[2] == 2) or dilation[2] != 1):
        return False
    (h_in, w_in), (h_out, w_out) = x5_shape[2:4], spec.out_spatial
    return (_interior_count(w_in, w_out, stride[2], 1, pad[2]) >= 1
            and _interior_count(h_in, h_out, stride[1], dilation[1], pad[1]) >= 2)


@inlined
def _row_weights(w_flat, at, c):
    """The three weight vectors of one kernel row of the tap-major weight (:func:`tap_major`),
    from ``w_flat[at]``: its taps are ``c`` (the channel count) apart."""
    return load16(w_flat, at), load16(w_flat, at + c), load16(w_flat, at + U(2) * c)


@inlined
def _pair(x_flat, s0, r_step, row_shift, sw, w_flat, c0, c, bias, out_flat, d0, d1, n_cols,
          stream):
    """Two output rows of one chunk of channels over ``n_cols`` interior columns.

    ``s0`` is the first row's first input pixel (top-left tap of its first
    column), ``r_step`` the distance between the input rows of one output
    row's taps, ``row_shift`` that of the second output row's first input
    row. With literal ``r_step``-multiples and ``sw`` LLVM sees which loads
    coincide and loads them once. The outputs are stored past the caches where
    ``stream`` (see :func:`._simd.streams`). At stride 2 each step prefetches
    the input rows :data:`S2_PREFETCH_PIXELS` pixels ahead.
    """
    w00, w01, w02 = _row_weights(w_flat, c0, c)
    w10, w11, w12 = _row_weights(w_flat, c0 + U(3) * c, c)
    w20, w21, w22 = _row_weights(w_flat, c0 + U(6) * c, c)
    b = load16(bias, c0)
    # First output row's input rows p0..p2, second's q0..q2.
    p0 = s0 + c0
    p1 = p0 + r_step
    p2 = p1 + r_step
    q0 = p0 + row_shift
    q1 = q0 + r_step
    q2 = q1 + r_step
    col = U(sw) * c
    # Column 0 of the window, and column 1 at unit stride.
    pa0, pa1, pa2 = load16(x_flat, p0), load16(x_flat, p1), load16(x_flat, p2)
    qa0, qa1, qa2 = load16(x_flat, q0), load16(x_flat, q1), load16(x_flat, q2)
    pb0, pb1, pb2 = pa0, pa1, pa2
    qb0, qb1, qb2 = qa0, qa1, qa2
    last = U(x_flat.size - 1)
    if sw == 1:
        pb0, pb1, pb2 = load16(x_flat, p0 + c), load16(x_flat, p1 + c), load16(x_flat, p2 + c)
        qb0, qb1, qb2 = load16(x_flat, q0 + c), load16(x_flat, q1 + c), load16(x_flat, q2 + c)
    for i in range(U(n_cols)):
        at = i * col
        if sw != 1:
            # Stride 2: the middle column is new too; the left one is the last right one.
            pb0 = load16(x_flat, p0 + at + c)
            pb1 = load16(x_flat, p1 + at + c)
            pb2 = load16(x_flat, p2 + at + c)
            qb0 = load16(x_flat, q0 + at + c)
            qb1 = load16(x_flat, q1 + at + c)
            qb2 = load16(x_flat, q2 + at + c)
            # q0 is p2 at stride 2 and unit dilation.
            ahead = at + U(S2_PREFETCH_PIXELS) * c
            prefetch(x_flat, min(p0 + ahead, last))
            prefetch(x_flat, min(p1 + ahead, last))
            prefetch(x_flat, min(p2 + ahead, last))
            prefetch(x_flat, min(q1 + ahead, last))
            prefetch(x_flat, min(q2 + ahead, last))
        right = at + U(2) * c
        pc0, pc1, pc2 = load16(x_flat, p0 + right), load16(x_flat, p1 + right), \
            load16(x_flat, p2 + right)
        qc0, qc1, qc2 = load16(x_flat, q0 + right), load16(x_flat, q1 + right), \
            load16(x_flat, q2 + right)
        u = fma16(w00, pa0, b)
        v = fma16(w00, qa0, b)
        u = fma16(w01, pb0, u)
        v = fma16(w01, qb0, v)
        u = fma16(w02, pc0, u)
        v = fma16(w02, qc0, v)
        u = fma16(w10, pa1, u)
        v = fma16(w10, qa1, v)
        u = fma16(w11, pb1, u)
        v = fma16(w11, qb1, v)
        u = fma16(w12, pc1, u)
        v = fma16(w12, qc1, v)
        u = fma16(w20, pa2, u)
        v = fma16(w20, qa2, v)
        u = fma16(w21, pb2, u)
        v = fma16(w21, qb2, v)
        u = fma16(w22, pc2, u)
        v = fma16(w22, qc2, v)
        put16(out_flat, d0 + c0 + i * c, u, stream)
        put16(out_flat, d1 + c0 + i * c, v, stream)
        if sw == 1:
            pa0, pa1, pa2, qa0, qa1, qa2 = pb0, pb1, pb2, qb0, qb1, qb2
            pb0, pb1, pb2, qb0, qb1, qb2 = pc0, pc1, pc2, qc0, qc1, qc2
        else:
            pa0, pa1, pa2, qa0, qa1, qa2 = pc0, pc1, pc2, qc0, qc1, qc2


@inlined
def columns_per_walk(interior):
    """Columns one walk of :func:`interior_pair` covers, for ``interior`` interior columns:
    all of them up to :data:`SHORT_ROW`, else :data:`COLUMN_BLOCK`."""
    return interior if interior > 0 and interior <= SHORT_ROW else COLUMN_BLOCK


@inlined
def interior_pair(x_flat, x_dims, n, oh, geometry, w_flat, bias, dst, d_row, d_pitch, ow_lo,
                  ow_hi, stream, walk):
    """The interior columns of output rows ``oh`` and ``oh + 1`` of image ``n``, every channel.

    Row ``oh``'s pixel 0 goes to ``dst[d_row]``, row ``oh + 1``'s to
    ``dst[d_row + d_pitch]``; ``geometry`` is ``(sh, dh, sw, ph, pw)``; ``stream``
    as in :func:`_pair`; ``walk`` columns at a time (:func:`columns_per_walk`).
    """
    h_in, w_in, channels = x_dims[0], x_dims[1], x_dims[2]
    sh, dh, sw, ph, pw = geometry
    c = U(channels)
    chunks = (channels + LANES - 1) // LANES
    row_values = U(w_in) * c
    s0 = U(((n * h_in + oh * sh - ph) * w_in + ow_lo * sw - pw) * channels)
    d0 = d_row + U(ow_lo) * c
    for first in range(0, ow_hi - ow_lo, walk):
        cols = min(walk, ow_hi - ow_lo - first)
        s_block = s0 + U(first * sw) * c
        d_block = d0 + U(first) * c
        for chunk in range(chunks):
            # The last chunk overlaps its neighbour (same values, stored twice).
            c0 = U(min(chunk * LANES, channels - LANES))
            if sw == 1:
                # Literal steps (applies() admits only unit H steps with unit
                # W steps): the rows the two output rows share are loaded once.
                _pair(x_flat, s_block, row_values, row_values, 1, w_flat, c0, c, bias, dst,
                      d_block, d_block + d_pitch, cols, stream)
            else:
                _pair(x_flat, s_block, U(dh) * row_values, U(sh) * row_values, 2, w_flat, c0, c,
                      bias, dst, d_block, d_block + d_pitch, cols, stream)


@inlined
def _column_or_zero(x_flat, at, valid, zero):
    return load16(x_flat, at) if valid else zero


@inlined
def edge_columns(x_flat, x_dims, n, oh, geometry, w_flat, bias, dst, d_row, d_pitch, first,
                 last, ow_lo, ow_hi):
    """The columns in ``[first, last)`` outside ``[ow_lo, ow_hi)`` of the interior output rows
    ``oh`` and ``oh + 1``.

    Like :func:`_pair`, one output column of both rows at a time, with the
    input columns that fall on the padding as zero vectors (a tap on one
    adds ``w * 0``: the same value as skipping it, but a sum that is exactly
    zero may come out +0 where skipping gives -0).
    """
    h_in, w_in, channels = x_dims[0], x_dims[1], x_dims[2]
    sh, dh, sw, ph, pw = geometry
    c = U(channels)
    chunks = (channels + LANES - 1) // LANES
    row_values = U(w_in) * c
    zero = splat16(np.float32(0.0))
    first_row = U((n * h_in + oh * sh - ph) * w_in) * c
    for ow in range(first, last):
        if ow >= ow_lo and ow < ow_hi:
            continue
        left = ow * sw - pw
        ok0 = left >= 0 and left < w_in
        ok1 = left + 1 >= 0 and left + 1 < w_in
        ok2 = left + 2 >= 0 and left + 2 < w_in
        # Offsets of the three columns, clamped inside the row (not read when not ok).
        col0 = U(min(max(left, 0), w_in - 1)) * c
        col1 = U(min(max(left + 1, 0), w_in - 1)) * c
        col2 = U(min(max(left + 2, 0), w_in - 1)) * c
        for chunk in range(chunks):
            c0 = U(min(chunk * LANES, channels - LANES))
            u = v = load16(bias, c0)
            for kh in range(3):
                p = first_row + U(kh * dh) * row_values + c0
                q = p + U(sh) * row_values
                w = load16(w_flat, c0 + U(kh * 3) * c)
                u = fma16(w, _column_or_zero(x_flat, p + col0, ok0, zero), u)
                v = fma16(w, _column_or_zero(x_flat, q + col0, ok0, zero), v)
                w = load16(w_flat, c0 + U(kh * 3 + 1) * c)
                u = fma16(w, _column_or_zero(x_flat, p + col1, ok1, zero), u)
                v = fma16(w, _column_or_zero(x_flat, q + col1, ok1, zero), v)
                w = load16(w_flat, c0 + U(kh * 3 + 2) * c)
                u = fma16(w, _column_or_zero(x_flat, p + col2, ok2, zero), u)
                v = fma16(w, _column_or_zero(x_flat, q + col2, ok2, zero), v)
            store16(dst, d_row + U(ow) * c + c0, u)
            store16(dst, d_row + d_pitch + U(ow) * c + c0, v)


@inlined
def _edge_vector(x_flat, h_in, w_in, c, n, top, left, dh, w_flat, c0, bias, dst, d0):
    """One chunk of one border pixel: the bias, then the taps inside the input, in order."""
    acc = load16(bias, c0)
    for kh in range(3):
        iy = top + kh * dh
        if iy >= 0 and iy < h_in:
            for kw in range(3):
                ix = left + kw
                if ix >= 0 and ix < w_in:
                    acc = fma16(load16(w_flat, c0 + U(kh * 3 + kw) * c),
                                load16(x_flat, U((n * h_in + iy) * w_in + ix) * c + c0), acc)
    store16(dst, d0 + c0, acc)


@inlined
def _border_walk(x_flat, s0, r_step, col, w_flat, k0, two, c0, c, bias, out_flat, d0, n_cols):
    """One chunk of a border row over ``n_cols`` interior columns, from kernel row ``k0``
    (and ``k0 + 1`` where ``two``), the rows of taps inside the input.

    ``s0`` is the left tap of kernel row ``k0`` for the first column,
    ``r_step`` the distance to the next kernel row's, ``col`` that between
    consecutive columns' taps. The sum is :func:`_edge_vector`'s (bias,
    then the taps in (kh, kw) order), with the weights in registers: each
    output vector costs 3 or 6 loads and FMAs.
    """
    w0 = U(3 * k0) * c + c0
    wa0, wa1, wa2 = _row_weights(w_flat, w0, c)
    wb0, wb1, wb2 = wa0, wa1, wa2
    if two:
        wb0, wb1, wb2 = _row_weights(w_flat, w0 + U(3) * c, c)
    b = load16(bias, c0)
    p = s0 + c0
    q = p + r_step
    for i in range(U(n_cols)):
        at = i * col
        u = fma16(wa0, load16(x_flat, p + at), b)
        u = fma16(wa1, load16(x_flat, p + at + c), u)
        u = fma16(wa2, load16(x_flat, p + at + U(2) * c), u)
        if two:
            u = fma16(wb0, load16(x_flat, q + at), u)
            u = fma16(wb1, load16(x_flat, q + at + c), u)
            u = fma16(wb2, load16(x_flat, q + at + U(2) * c), u)
        store16(out_flat, d0 + c0 + i * c, u)


@inlined
def border_pixels(x_flat, x_dims, n, oh, geometry, w_flat, bias, dst, d_row, w_out):
    """The pixels of the border output row ``oh``, to ``dst[d_row:]``.

    Its interior columns walk the one or two kernel rows inside the input
    with the weights in registers (:func:`_border_walk`); the border
    columns, and rows with no kernel row inside, sum a chunk of 16 channels
    at a time in a register over the taps inside the input
    (:func:`_edge_vector`). Measured, dw3x3_14 channels_last (Zen 4, kernel
    alone): border rows, 2 of 14, took 20-35 us of the kernel's 110 when
    every pixel went through :func:`_edge_vector`.
    """
    h_in, w_in, channels = x_dims[0], x_dims[1], x_dims[2]
    sh, dh, sw, ph, pw = geometry
    c = U(channels)
    chunks = (channels + LANES - 1) // LANES
    top = oh * sh - ph
    k_lo, k_hi = valid_range(top, dh, h_in, 3)
    ow_lo, ow_hi = interior_columns(3, sw, 1, pw, w_in, w_out)
    if k_hi - k_lo < 1 or k_hi - k_lo > 2:
        # No kernel row inside the input (the sum is the bias; a border row never
        # has all three): every pixel below.
        ow_lo = ow_hi = 0
    s0 = U(((n * h_in + top + k_lo * dh) * w_in + ow_lo * sw - pw) * channels)
    d0 = d_row + U(ow_lo) * c
    for first in range(0, ow_hi - ow_lo, COLUMN_BLOCK):
        cols = min(COLUMN_BLOCK, ow_hi - ow_lo - first)
        for chunk in range(chunks):
            c0 = U(min(chunk * LANES, channels - LANES))
            _border_walk(x_flat, s0 + U(first * sw) * c, U(dh * w_in) * c, U(sw) * c, w_flat,
                         k_lo, k_hi - k_lo == 2, c0, c, bias, dst, d0 + U(first) * c, cols)
    for ow in range(w_out):
        if ow >= ow_lo and ow < ow_hi:
            continue
        d_pixel = d_row + U(ow) * c
        for chunk in range(chunks):
            _edge_vector(x_flat, h_in, w_in, c, n, top, ow * sw - pw, dh, w_flat,
                         U(min(chunk * LANES, channels - LANES)), bias, dst, d_pixel)


@inlined
def task_units(task, pairs, odd, oh_lo, oh_hi, h_out):
    """How many units of rows task ``task`` (of an image's ``pairs``) computes.

    A unit is an interior pair or one border row: the task's pair; the
    image's first task also takes the border rows above, its last one an
    odd last interior row (as a pair overlapping its own second row) and
    the border rows below.
    """
    count = 1 + (oh_lo if task == 0 else 0)
    if task == pairs - 1:
        count += odd + h_out - oh_hi
    return count


@inlined
def task_unit(task, unit, pairs, odd, oh_lo, oh_hi):
    """Unit ``unit`` of task ``task`` (see :func:`task_units`): ``(first row, is a pair)``."""
    above = oh_lo if task == 0 else 0
    if unit < above:
        return unit, False
    if unit == above:
        return oh_lo + 2 * task, True
    if odd == 1 and unit == above + 1:
        return oh_hi - 2, True
    return oh_hi + unit - above - 1 - odd, False


@inlined
def interior_rows(h_in, h_out, stride, dilation, pad):
    """``(oh_lo, oh_hi, pairs, odd)``: the interior output rows, and their pairs."""
    oh_lo, oh_hi = interior_columns(3, stride[1], dilation[1], pad[1], h_in, h_out)
    return oh_lo, oh_hi, (oh_hi - oh_lo) // 2, (oh_hi - oh_lo) % 2


@inlined
def unit_rows(x_flat, x_dims, n, oh, pair, geometry, w_flat, bias, dst, d_row, d_pitch, w_out,
              ow_lo, ow_hi, stream, walk):
    """The depthwise rows of one unit (see :func:`task_units`) to ``dst[d_row:]``, the
    interior pixels' past the caches where ``stream`` (see :func:`_pair`), ``walk``
    columns at a time (:func:`interior_pair`).

    A pair (rows ``oh`` and ``oh + 1``, ``d_pitch`` apart in ``dst``): its
    interior columns and its border columns; a border row: every pixel. One
    call site each: every inlined copy costs seconds of compilation.
    """
    if pair:
        interior_pair(x_flat, x_dims, n, oh, geometry, w_flat, bias, dst, d_row, d_pitch, ow_lo,
                      ow_hi, stream, walk)
        edge_columns(x_flat, x_dims, n, oh, geometry, w_flat, bias, dst, d_row, d_pitch, 0,
                     w_out, ow_lo, ow_hi)
    else:
        border_pixels(x_flat, x_dims, n, oh, geometry, w_flat, bias, dst, d_row, w_out)


@inlined
def tap_major(weight, like):
    """The ``(C, 1, 1, 3, 3)`` weight as a flat aligned ``(3, 3, C)`` buffer (tap, channel).

    Done inside the kernel, before its parallel loop: packed from Python the
    small copy cost 25-30 us a call (measured, dw3x3_14: NumPy steps right
    after a kernel run with the caches cold).
    """
    channels = weight.shape[0]
    packed = aligned_buffer(9 * channels, like)
    for c in range(channels):
        for i in range(3):
            for j in range(3):
                packed[(i * 3 + j) * channels + c] = weight[c, 0, 0, i, j]
    return packed


@jit(parallel=True)
def depthwise_3x3_channels_last(x, weight, bias, out, stride, dilation, pad):
    """Depthwise 3x3 convolution with multiplier 1 of 2-D channels_last float32 data.

    ``x`` is ``(N, 1, H, W, C)``, ``weight`` is ``(C, 1, 1, 3, 3)``, ``bias``
    ``(C,)`` and ``out`` ``(N, 1, H_out, W_out, C)``; ``stride``,
    ``dilation`` and ``pad`` are 3-tuples (the first entry unused). Needs
    what :func:`applies` checks.
    """
    n_batch, _, h_in, w_in, channels = x.shape
    h_out, w_out = out.shape[2], out.shape[3]
    x_flat, w_flat, out_flat = x.reshape(-1), tap_major(weight, x), out.reshape(-1)
    oh_lo, oh_hi, pairs, odd = interior_rows(h_in, h_out, stride, dilation, pad)
    ow_lo, ow_hi = interior_columns(3, stride[2], 1, pad[2], w_in, w_out)
    x_dims = (h_in, w_in, channels, 3, 3)
    geometry = (stride[1], dilation[1], stride[2], pad[1], pad[2])
    out_row = U(w_out) * U(channels)
    stream = streams(out_flat, channels)
    walk = columns_per_walk(ow_hi - ow_lo)
    for task in prange(n_batch * pairs):
        wide_vectors()
        n = task // pairs
        p = task % pairs
        for unit in range(task_units(p, pairs, odd, oh_lo, oh_hi, h_out)):
            oh, pair = task_unit(p, unit, pairs, odd, oh_lo, oh_hi)
            unit_rows(x_flat, x_dims, n, oh, pair, geometry, w_flat, bias, out_flat,
                      U(n * h_out + oh) * out_row, out_row, w_out, ow_lo, ow_hi, stream, walk)
        stream_fence()
