"""Channels_last convolution from gathered windows, 1-D and 2-D: grouped and depthwise 7x7.

For ResNeXt-style layers (many groups of a few channels) neither a matrix
product per group (too small) nor the depthwise loop fits. The vectorised
loop here runs across groups: lane ``g`` computes group ``g``. A block of
:data:`PIXEL_BLOCK` adjacent output pixels times :data:`OUTPUT_BLOCK`
outputs of every group keeps its 16 sums in registers while the taps and
the group's input channels stream past, so each input vector loaded feeds
four outputs and each weight vector four pixels.

Groups are taken ``L`` at a time (``L`` = 16 or 32, a compile-time
constant: see :func:`lane_count`). Everything the vectorised loop touches is
laid out with that constant pitch, so LLVM sees every access of a block as
a constant offset from three base pointers (no run-time overlap checks
between the 16 sums), and lanes past the last group hold zeros:

- the weight, packed once per call into ``(C_out // G // 4, ceil(G / L),
  Cg, kh, kw, 4, L)``;
- a window per task: the input rows its output rows read, zero-padded and
  with the channels reordered ``(group chunk, c, row, col, lane)``, gathered
  once (consecutive output rows share their input rows);
- the block's sums, ``(4 pixels, 4 outputs, L)``, stored to the output row
  (``g*(C_out // G) + j``) when the block is done.

For float32 the block is written with explicit vectors instead
(:func:`_pixels_vectors`, ``L = 16``): its 16 sums stay in registers over
every input channel and tap rather than going through memory after each
pass (measured 1.1-1.26x faster on ResNeXt's 32 groups of 4).

:func:`depthwise_window_channels_last` is the depthwise case (one input and
one output per group) with blocks of :data:`DEPTHWISE_PIXELS` pixels that
share each weight vector; the driver uses it for 7x7 kernels.
"""

from __future__ import annotations

import numpy as np
from numba import prange, types
from numba.extending import overload

from ._common import U, aligned_buffer
from ._jit import inlined, jit
from ._simd import LANES, copy_run, fma16, load4, load16, put16, store16, stream_fence, streams
from ._vector_width import REGISTER_VECTORS, wide_vectors

__all__ = ["DEPTHWISE_LANES", "DEPTHWISE_PIXELS", "OUTPUT_BLOCK", "PIXEL_BLOCK", "STRIP_BLOCKS",
           "depthwise_window_channels_last", "grouped_channels_last", "grouped_channels_last_unit",
           "lane_count", "pack_weight_and_bias"]

#: Adjacent output pixels one block computes.
PIXEL_BLOCK = 4
#: Outputs per group one block computes: ``C_out // groups`` must be a multiple.
OUTPUT_BLOCK = 4
#: Adjacent output pixels one block of the depthwise kernel computes.
DEPTHWISE_PIXELS = 8
#: Channels one chunk of the depthwise kernel computes (its lane count ``L``):
#: two vectors, so a block's 16 sums hide the multiply-add latency.
DEPTHWISE_LANES = 2 * LANES
#: Blocks side by side in one strip of the depthwise kernel: a task walks each
#: chunk of 32 channels strip by strip, every output row of a strip in turn, so
#: the window rows a strip reads (7 x 22 columns x 32 channels = 20 KB at 7x7)
#: stay in L1 from one output row to the next, which adds a single input row.
#: Measured (Intel Xeon, 48 KiB L1, dw7x7_convnext_56 channels_last, repeated
#: calls of each tree, 3 alternations): 1.00-1.08 ms against 1.22-1.30 ms for
#: whole rows of blocks over every chunk; 1 block 1.06-1.10, 4 blocks 1.12.
STRIP_BLOCKS = 2
#: The lane counts ``L`` builds exist for (each one is a compilation). Not 8:
#: LLVM unrolls a loop of 8 lanes instead of vectorising it (measured, Numba 0.68).
_LANE_COUNTS = (16, 32)


def lane_count(groups: int, dtype=np.float64) -> int:
    """``L``: groups per vectorised chunk.

    float32 runs the explicit-vector block (:func:`_pixels_vectors`), one
    vector of 16 groups; other dtypes the smallest build that holds every
    group (else 32).
    """
    if np.dtype(dtype) == np.float32:
        return LANES
    return next((lanes for lanes in _LANE_COUNTS if groups <= lanes), _LANE_COUNTS[-1])


@jit(parallel=False)
def pack_weight_and_bias(weight, bias, groups, lanes, block):
    """The weight and bias as the window kernels read them, zero lanes past the groups.

    ``weight`` ``(C_out, Cg, kh, kw)`` -> ``(O // B, ceil(G / L), Cg, kh,
    kw, B, L)`` and ``bias`` ``(C_out,)`` -> ``(O // B, ceil(G / L), B,
    L)``, both 64-byte aligned, where ``O = C_out // G``, ``L`` is
    ``lanes`` and ``B`` (``block``) the outputs per group one block
    computes: :data:`OUTPUT_BLOCK`, or 1 for depthwise. Compiled, not NumPy:
    the transposes and copies from Python cost 30 us a call right after a
    kernel (measured, dw7x7_convnext_56, with the caches cold).
    """
    c_out, c_group, kh, kw = weight.shape
    per_group = c_out // groups
    blocks = per_group // block
    chunks = (groups + lanes - 1) // lanes
    w_flat = aligned_buffer(blocks * chunks * c_group * kh * kw * block * lanes, weight)
    b_flat = aligned_buffer(blocks * chunks * block * lanes, weight)
    w_flat[:] = 0
    b_flat[:] = 0
    w_packed = w_flat.reshape((blocks, chunks, c_group, kh, kw, block, lanes))
    b_packed = b_flat.reshape((blocks, chunks, block, lanes))
    for g in range(groups):
        chunk, lane = g // lanes, g % lanes
        for j0 in range(blocks):
            for j in range(block):
                o = g * per_group + j0 * block + j
                b_packed[j0, chunk, j, lane] = bias[o]
                for c in range(c_group):
                    for i in range(kh):
                        for k in range(kw):
                            w_packed[j0, chunk, c, i, k, j, lane] = weight[o, c, i, k]
    return w_packed, b_packed


@inlined
def _block(src, s0, row_step, sw, dw, w_flat, w0, w_row, blk, lanes, rows, cols):
    """``blk`` += the taps of a ``len(rows) x len(cols)`` tile, for 4 pixels x 4 outputs.

    With ``L = len(lanes)``: pixel ``p``, tap ``(kh, kw)`` reads
    ``src[s0 + kh*row_step + (kw*dw + p*sw)*L + g]``; output ``j`` weighs it
    by ``w_flat[w0 + kh*w_row + (kw*4 + j)*L + g]`` and sums into
    ``blk[(p*4 + j)*L + g]``. Called with literal ``sw = dw = 1``, every
    offset but ``kh*row_step`` is a constant.
    """
    step = len(lanes)
    for g in range(U(step)):
        a00 = blk[U(0 * step) + g]
        a01 = blk[U(1 * step) + g]
        a02 = blk[U(2 * step) + g]
        a03 = blk[U(3 * step) + g]
        a10 = blk[U(4 * step) + g]
        a11 = blk[U(5 * step) + g]
        a12 = blk[U(6 * step) + g]
        a13 = blk[U(7 * step) + g]
        a20 = blk[U(8 * step) + g]
        a21 = blk[U(9 * step) + g]
        a22 = blk[U(10 * step) + g]
        a23 = blk[U(11 * step) + g]
        a30 = blk[U(12 * step) + g]
        a31 = blk[U(13 * step) + g]
        a32 = blk[U(14 * step) + g]
        a33 = blk[U(15 * step) + g]
        # One flat loop over the tile's taps: LLVM unrolls it whole (a nest of
        # kh and kw loops of the same size was left rolled, Numba 0.68).
        for tap in range(len(rows) * len(cols)):
            kh = tap // len(cols)
            kw = tap % len(cols)
            xr = s0 + U(kh) * row_step + g
            wk = w0 + U(kh) * w_row + U(kw * OUTPUT_BLOCK * step) + g
            w_0 = w_flat[wk]
            w_1 = w_flat[wk + U(step)]
            w_2 = w_flat[wk + U(2 * step)]
            w_3 = w_flat[wk + U(3 * step)]
            x0 = src[xr + U(kw * dw * step)]
            x1 = src[xr + U((kw * dw + sw) * step)]
            x2 = src[xr + U((kw * dw + 2 * sw) * step)]
            x3 = src[xr + U((kw * dw + 3 * sw) * step)]
            a00 += w_0 * x0
            a01 += w_1 * x0
            a02 += w_2 * x0
            a03 += w_3 * x0
            a10 += w_0 * x1
            a11 += w_1 * x1
            a12 += w_2 * x1
            a13 += w_3 * x1
            a20 += w_0 * x2
            a21 += w_1 * x2
            a22 += w_2 * x2
            a23 += w_3 * x2
            a30 += w_0 * x3
            a31 += w_1 * x3
            a32 += w_2 * x3
            a33 += w_3 * x3
        blk[U(0 * step) + g] = a00
        blk[U(1 * step) + g] = a01
        blk[U(2 * step) + g] = a02
        blk[U(3 * step) + g] = a03
        blk[U(4 * step) + g] = a10
        blk[U(5 * step) + g] = a11
        blk[U(6 * step) + g] = a12
        blk[U(7 * step) + g] = a13
        blk[U(8 * step) + g] = a20
        blk[U(9 * step) + g] = a21
        blk[U(10 * step) + g] = a22
        blk[U(11 * step) + g] = a23
        blk[U(12 * step) + g] = a30
        blk[U(13 * step) + g] = a31
        blk[U(14 * step) + g] = a32
        blk[U(15 * step) + g] = a33


@inlined
def _fma8(a0, a1, a2, a3, a4, a5, a6, a7, wv, window, x0):
    """8 pixels' sums (one vector each) plus ``wv`` times their input vectors ``x0 + p*32``."""
    return (fma16(load16(window, x0), wv, a0),
            fma16(load16(window, x0 + U(DEPTHWISE_LANES)), wv, a1),
            fma16(load16(window, x0 + U(2 * DEPTHWISE_LANES)), wv, a2),
            fma16(load16(window, x0 + U(3 * DEPTHWISE_LANES)), wv, a3),
            fma16(load16(window, x0 + U(4 * DEPTHWISE_LANES)), wv, a4),
            fma16(load16(window, x0 + U(5 * DEPTHWISE_LANES)), wv, a5),
            fma16(load16(window, x0 + U(6 * DEPTHWISE_LANES)), wv, a6),
            fma16(load16(window, x0 + U(7 * DEPTHWISE_LANES)), wv, a7))


@inlined
def _store8(out_flat, o, c_out, a0, a1, a2, a3, a4, a5, a6, a7, stream):
    """One vector of each of 8 pixels' sums to ``out_flat[o + p*c_out ...]``, past the
    caches where ``stream`` (:func:`._simd.put16`)."""
    put16(out_flat, o, a0, stream)
    put16(out_flat, o + c_out, a1, stream)
    put16(out_flat, o + U(2) * c_out, a2, stream)
    put16(out_flat, o + U(3) * c_out, a3, stream)
    put16(out_flat, o + U(4) * c_out, a4, stream)
    put16(out_flat, o + U(5) * c_out, a5, stream)
    put16(out_flat, o + U(6) * c_out, a6, stream)
    put16(out_flat, o + U(7) * c_out, a7, stream)


@inlined
def _pixels_depthwise(window, s0, row_step, plane_step, w_flat, w_dims, bias_flat, spare,
                      out_flat, o0, channels, c_out, stream, cols, chunk):
    """Depthwise output pixels ``o0 .. o0+7`` of a row, channels ``32*chunk`` on (32 of them,
    or those left).

    The 8 pixels x 32 channels' sums are 16 vectors (:mod:`._simd`) that stay
    in registers over every tap; a kernel row's taps are unrolled when
    ``cols`` has their number, so each input vector is loaded once for all
    the (tap, pixel) pairs that share it. A last chunk with fewer than 32
    channels goes through ``spare`` (8 x 32) to the output; the others are
    stored past the caches where ``stream`` (see :func:`._simd.streams`).
    """
    kh_size, kw_size, _ = w_dims
    half = U(LANES)
    w_row = U(kw_size * DEPTHWISE_LANES)
    bias_a = load16(bias_flat, U(chunk * DEPTHWISE_LANES))
    bias_b = load16(bias_flat, U(chunk * DEPTHWISE_LANES) + half)
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = bias_a
    b0 = b1 = b2 = b3 = b4 = b5 = b6 = b7 = bias_b
    x_chunk = s0 + U(chunk) * plane_step
    w_chunk = U(chunk * kh_size) * w_row
    for kh in range(kh_size):
        for kw0 in range(0, kw_size, len(cols)):
            x_tap = x_chunk + U(kh) * row_step + U(kw0 * DEPTHWISE_LANES)
            w_tap = w_chunk + U(kh) * w_row + U(kw0 * DEPTHWISE_LANES)
            for kw in range(len(cols)):
                x_k = x_tap + U(kw * DEPTHWISE_LANES)
                w_k = w_tap + U(kw * DEPTHWISE_LANES)
                a0, a1, a2, a3, a4, a5, a6, a7 = _fma8(a0, a1, a2, a3, a4, a5, a6, a7,
                                                       load16(w_flat, w_k), window, x_k)
                b0, b1, b2, b3, b4, b5, b6, b7 = _fma8(b0, b1, b2, b3, b4, b5, b6, b7,
                                                       load16(w_flat, w_k + half), window,
                                                       x_k + half)
    g0 = chunk * DEPTHWISE_LANES
    if g0 + DEPTHWISE_LANES <= channels:
        o = o0 + U(g0)
        _store8(out_flat, o, c_out, a0, a1, a2, a3, a4, a5, a6, a7, stream)
        _store8(out_flat, o + half, c_out, b0, b1, b2, b3, b4, b5, b6, b7, stream)
    else:
        _store8(spare, U(0), U(DEPTHWISE_LANES), a0, a1, a2, a3, a4, a5, a6, a7, False)
        _store8(spare, half, U(DEPTHWISE_LANES), b0, b1, b2, b3, b4, b5, b6, b7, False)
        for p in range(U(DEPTHWISE_PIXELS)):
            o = o0 + p * c_out + U(g0)
            for g in range(U(channels - g0)):
                out_flat[o + g] = spare[p * U(DEPTHWISE_LANES) + g]


@inlined
def _gather_rows(x_flat, x_dims, n, top, rows, left, span, groups, c_group, window, lanes):
    """``window[chunk, c, r, col, lane]`` = input ``(n, top + r, left + col, g*Cg + c)``.

    ``g = chunk*L + lane``; zero outside the input and for ``g >= groups``.
    """
    h_in, w_in, c_in = x_dims
    step = len(lanes)
    cg = U(c_group)
    chunks = (groups + step - 1) // step
    plane = U(rows * span * step)
    for chunk in range(chunks):
        g0 = chunk * step
        valid = U(min(step, groups - g0))
        first = U(chunk) * cg * plane
        for r in range(rows):
            iy = top + r
            for col in range(span):
                ix = left + col
                at = first + U(r * span + col) * U(step)
                if iy < 0 or iy >= h_in or ix < 0 or ix >= w_in:
                    for c in range(cg):
                        for g in range(U(step)):
                            window[at + c * plane + g] = 0
                    continue
                pixel = U(((n * h_in + iy) * w_in + ix) * c_in + g0 * c_group)
                if c_group == 1:
                    # 16 at a time: LLVM's loop copies runs this short one value at a time.
                    copy_run(window, at, x_flat, pixel, valid)
                elif c_group == 4:
                    # A constant stride: LLVM loads 4 interleaved channels as vectors.
                    for g in range(valid):
                        window[at + g] = x_flat[pixel + g * U(4)]
                        window[at + plane + g] = x_flat[pixel + g * U(4) + U(1)]
                        window[at + U(2) * plane + g] = x_flat[pixel + g * U(4) + U(2)]
                        window[at + U(3) * plane + g] = x_flat[pixel + g * U(4) + U(3)]
                else:
                    for c in range(cg):
                        for g in range(valid):
                            window[at + c * plane + g] = x_flat[pixel + g * cg + c]
                for c in range(cg):
                    for g in range(valid, U(step)):
                        window[at + c * plane + g] = 0


@inlined
def _store_block(out_flat, o, n_out, blk, b, valid, step):
    """``out_flat[o + g*n_out + j] = blk[b + j*step + g]`` for one pixel's 4 x ``valid`` sums."""
    for g in range(valid):
        out_flat[o + g * n_out] = blk[b + g]
        out_flat[o + g * n_out + U(1)] = blk[b + U(step) + g]
        out_flat[o + g * n_out + U(2)] = blk[b + U(2 * step) + g]
        out_flat[o + g * n_out + U(3)] = blk[b + U(3 * step) + g]


@inlined
def _pixels(window, s0, row_step, plane_step, sw, dw, w_flat, w_dims, bias_flat, blk, out_flat,
            o0, groups, per_group, c_out, lanes, cols):
    """Output pixels ``o0 .. o0+3`` of a row (``out_flat`` offset ``o0``), every output.

    A pass per kernel row, its taps in tiles of ``len(cols)``.
    """
    kh_size, kw_size, c_group = w_dims
    step = len(lanes)
    chunks = (groups + step - 1) // step
    w_row = U(kw_size * OUTPUT_BLOCK * step)
    w_c = U(kh_size) * w_row
    tiles_w = kw_size // len(cols)
    tiles = kh_size * tiles_w
    n_out = U(per_group)
    for j0 in range(0, per_group, OUTPUT_BLOCK):
        for chunk in range(chunks):
            b0 = U((j0 // OUTPUT_BLOCK * chunks + chunk) * OUTPUT_BLOCK * step)
            for pj in range(U(PIXEL_BLOCK * OUTPUT_BLOCK)):
                for g in range(U(step)):
                    blk[pj * U(step) + g] = bias_flat[b0 + (pj % U(OUTPUT_BLOCK)) * U(step) + g]
            w_chunk = U((j0 // OUTPUT_BLOCK * chunks + chunk) * c_group) * w_c
            x_chunk = s0 + U(chunk * c_group) * plane_step
            # Input channels two at a time: a pass of one kernel row for two
            # channels is twice the work per call (and per load and store of
            # the sums) and still small enough for LLVM to unroll whole.
            for c in range(0, c_group, 2):
                w_base = w_chunk + U(c) * w_c
                x_base = x_chunk + U(c) * plane_step
                for tile in range(tiles):
                    kh0 = tile // tiles_w
                    kw0 = (tile % tiles_w) * len(cols)
                    w0 = w_base + U(kh0) * w_row + U(kw0 * OUTPUT_BLOCK * step)
                    x0 = x_base + U(kh0) * row_step + U(kw0 * dw * step)
                    if c + 1 < c_group:
                        _block(window, x0, plane_step, sw, dw, w_flat, w0, w_c, blk, lanes,
                               (0, 0), cols)
                    else:
                        _block(window, x0, plane_step, sw, dw, w_flat, w0, w_c, blk, lanes,
                               (0,), cols)
            g0 = chunk * step
            valid = U(min(step, groups - g0))
            for p in range(U(PIXEL_BLOCK)):
                o = o0 + p * c_out + U(g0) * n_out + U(j0)
                b = p * U(OUTPUT_BLOCK * step)
                _store_block(out_flat, o, n_out, blk, b, valid, step)


@inlined
def _store_staged(out_flat, o0, c_out, n_out, blk, chunk, groups, j0):
    """The block's sums staged in ``blk`` (16 lanes) to the output, for the chunk's real groups."""
    g0 = chunk * LANES
    valid = U(min(LANES, groups - g0))
    for p in range(U(PIXEL_BLOCK)):
        o = o0 + p * c_out + U(g0) * n_out + U(j0)
        _store_block(out_flat, o, n_out, blk, p * U(OUTPUT_BLOCK * LANES), valid, U(LANES))


@inlined
def _fma_block(acc, ws, xs):
    """The 4 pixels x 4 outputs' sums ``acc[p*4 + j]`` plus ``xs[p] * ws[j]``."""
    x0, x1, x2, x3 = xs
    w0, w1, w2, w3 = ws
    return (fma16(x0, w0, acc[0]), fma16(x0, w1, acc[1]), fma16(x0, w2, acc[2]),
            fma16(x0, w3, acc[3]), fma16(x1, w0, acc[4]), fma16(x1, w1, acc[5]),
            fma16(x1, w2, acc[6]), fma16(x1, w3, acc[7]), fma16(x2, w0, acc[8]),
            fma16(x2, w1, acc[9]), fma16(x2, w2, acc[10]), fma16(x2, w3, acc[11]),
            fma16(x3, w0, acc[12]), fma16(x3, w1, acc[13]), fma16(x3, w2, acc[14]),
            fma16(x3, w3, acc[15]))


@inlined
def _pixels_vectors(window, s0, row_step, plane_step, sw, dw, w_flat, w_dims, bias_flat, blk,
                    out_flat, o0, groups, per_group, c_out, cols):
    """:func:`_pixels` for float32 with ``L = 16``: the 16 sums are vectors in registers.

    They stay in registers over every input channel of the group and every
    tap (:mod:`._simd`), instead of going through ``blk`` after each pass;
    ``blk`` only stages them for the transposed store.
    """
    kh_size, kw_size, c_group = w_dims
    step = U(LANES)
    chunks = (groups + LANES - 1) // LANES
    w_row = U(kw_size * OUTPUT_BLOCK * LANES)
    w_c = U(kh_size) * w_row
    n_out = U(per_group)
    x_step = U(sw) * step
    for j0 in range(0, per_group, OUTPUT_BLOCK):
        for chunk in range(chunks):
            block = j0 // OUTPUT_BLOCK * chunks + chunk
            b0, b1, b2, b3 = load4(bias_flat, U(block * OUTPUT_BLOCK * LANES), step)
            acc = (b0, b1, b2, b3, b0, b1, b2, b3, b0, b1, b2, b3, b0, b1, b2, b3)
            w_chunk = U(block * c_group) * w_c
            x_chunk = s0 + U(chunk * c_group) * plane_step
            for c in range(c_group):
                for kh in range(kh_size):
                    for kw0 in range(0, kw_size, len(cols)):
                        w_tap = w_chunk + U(c) * w_c + U(kh) * w_row
                        x_tap = x_chunk + U(c) * plane_step + U(kh) * row_step
                        for kw in range(len(cols)):
                            k = kw0 + kw
                            ws = load4(w_flat, w_tap + U(k * OUTPUT_BLOCK * LANES), step)
                            xs = load4(window, x_tap + U(k * dw) * step, x_step)
                            acc = _fma_block(acc, ws, xs)
            for i in range(PIXEL_BLOCK * OUTPUT_BLOCK):
                store16(blk, U(i * LANES), acc[i])
            _store_staged(out_flat, o0, c_out, n_out, blk, chunk, groups, j0)


@inlined
def _fma_half_block(acc, ws, xs):
    """The 4 pixels x 2 outputs' sums ``acc[p*2 + j]`` plus ``xs[p] * ws[j]``."""
    x0, x1, x2, x3 = xs
    w0, w1 = ws
    return (fma16(x0, w0, acc[0]), fma16(x0, w1, acc[1]), fma16(x1, w0, acc[2]),
            fma16(x1, w1, acc[3]), fma16(x2, w0, acc[4]), fma16(x2, w1, acc[5]),
            fma16(x3, w0, acc[6]), fma16(x3, w1, acc[7]))


@inlined
def _pixels_half_vectors(window, s0, row_step, plane_step, sw, dw, w_flat, w_dims, bias_flat,
                         blk, out_flat, o0, groups, per_group, c_out, cols):
    """:func:`_pixels_vectors` in two passes of 2 outputs (8 sums), for registers that hold
    8 vectors (:func:`._vector_width.register_vectors`): 16 sums would spill.

    Same packed weight, same sums in the same order: each pass reads every
    input vector again (from L1).
    """
    kh_size, kw_size, c_group = w_dims
    step = U(LANES)
    chunks = (groups + LANES - 1) // LANES
    w_row = U(kw_size * OUTPUT_BLOCK * LANES)
    w_c = U(kh_size) * w_row
    n_out = U(per_group)
    x_step = U(sw) * step
    for j0 in range(0, per_group, OUTPUT_BLOCK):
        for chunk in range(chunks):
            block = j0 // OUTPUT_BLOCK * chunks + chunk
            for half in range(0, OUTPUT_BLOCK, 2):
                b_at = U((block * OUTPUT_BLOCK + half) * LANES)
                b0, b1 = load16(bias_flat, b_at), load16(bias_flat, b_at + step)
                acc = (b0, b1, b0, b1, b0, b1, b0, b1)
                w_chunk = U(block * c_group) * w_c + U(half * LANES)
                x_chunk = s0 + U(chunk * c_group) * plane_step
                for c in range(c_group):
                    for kh in range(kh_size):
                        for kw0 in range(0, kw_size, len(cols)):
                            w_tap = w_chunk + U(c) * w_c + U(kh) * w_row
                            x_tap = x_chunk + U(c) * plane_step + U(kh) * row_step
                            for kw in range(len(cols)):
                                k = kw0 + kw
                                w_k = w_tap + U(k * OUTPUT_BLOCK * LANES)
                                ws = (load16(w_flat, w_k), load16(w_flat, w_k + step))
                                xs = load4(window, x_tap + U(k * dw) * step, x_step)
                                acc = _fma_half_block(acc, ws, xs)
                for p in range(PIXEL_BLOCK):
                    for j in range(2):
                        store16(blk, U((p * OUTPUT_BLOCK + half + j) * LANES), acc[p * 2 + j])
            _store_staged(out_flat, o0, c_out, n_out, blk, chunk, groups, j0)


#: The float32 block for this target's registers.
_pixels_float32 = _pixels_vectors if REGISTER_VECTORS >= 32 else _pixels_half_vectors


def _pixels_any(window, s0, row_step, plane_step, sw, dw, w_flat, w_dims, bias_flat, blk,
                out_flat, o0, groups, per_group, c_out, lanes, cols):
    """The explicit-vector block (:func:`_pixels_vectors` or :func:`_pixels_half_vectors`)
    for float32 windows of 16 lanes, else :func:`_pixels`."""


@overload(_pixels_any, inline="always")
def _pixels_any_impl(window, s0, row_step, plane_step, sw, dw, w_flat, w_dims, bias_flat, blk,
                     out_flat, o0, groups, per_group, c_out, lanes, cols):
    # Chosen while typing, so each build compiles one of the two.
    if window.dtype == types.float32 and len(lanes) == LANES:
        def impl(window, s0, row_step, plane_step, sw, dw, w_flat, w_dims, bias_flat, blk,
                 out_flat, o0, groups, per_group, c_out, lanes, cols):
            _pixels_float32(window, s0, row_step, plane_step, sw, dw, w_flat, w_dims, bias_flat,
                            blk, out_flat, o0, groups, per_group, c_out, cols)
    else:
        def impl(window, s0, row_step, plane_step, sw, dw, w_flat, w_dims, bias_flat, blk,
                 out_flat, o0, groups, per_group, c_out, lanes, cols):
            _pixels(window, s0, row_step, plane_step, sw, dw, w_flat, w_dims, bias_flat, blk,
                    out_flat, o0, groups, per_group, c_out, lanes, cols)
    return impl


@inlined
def _geometry(x, w_packed, out, stride, dilation, tile_rows):
    """Sizes shared by the window kernels: see :func:`grouped_channels_last`."""
    kh_size, kw_size, step = w_packed.shape[3], w_packed.shape[4], w_packed.shape[6]
    h_out, w_out = out.shape[2], out.shape[3]
    span = (w_out - 1) * stride[2] + (kw_size - 1) * dilation[2] + 1
    row_step = U(span * step)
    tiles = (h_out + tile_rows - 1) // tile_rows
    # The input rows one task reads (its output rows share them).
    window_rows = (tile_rows - 1) * stride[1] + (kh_size - 1) * dilation[1] + 1
    return span, row_step, tiles, window_rows, U(window_rows) * row_step


@inlined
def _task_window(x_flat, x_shape, task, tiles, tile_rows, h_out, stride, pad, window_rows, span,
                 groups, c_group, lanes):
    """Task ``task``'s image, first output row, row count, and its gathered window."""
    _, _, h_in, w_in, c_in = x_shape
    n = task // tiles
    first = (task % tiles) * tile_rows
    count = min(tile_rows, h_out - first)
    chunks = (groups + len(lanes) - 1) // len(lanes)
    window = aligned_buffer(chunks * c_group * window_rows * span * len(lanes), x_flat)
    _gather_rows(x_flat, (h_in, w_in, c_in), n, first * stride[1] - pad[1], window_rows, -pad[2],
                 span, groups, c_group, window, lanes)
    return n, first, count, window


@inlined
def _grouped_task(task, x, w_packed, bias_packed, out, stride, dilation, pad, unroll_w, lanes,
                  groups, tile_rows, sw, dw):
    """One task of :func:`grouped_channels_last`, with ``sw``/``dw`` the steps along W."""
    wide_vectors()
    c_group, kh_size, kw_size = w_packed.shape[2], w_packed.shape[3], w_packed.shape[4]
    h_out, w_out, c_out = out.shape[2], out.shape[3], out.shape[4]
    per_group = c_out // groups
    sh, dh = stride[1], dilation[1]
    x_flat, w_flat, out_flat = x.reshape(-1), w_packed.reshape(-1), out.reshape(-1)
    bias_flat = bias_packed.reshape(-1)
    span, row_step, tiles, window_rows, plane_step = _geometry(x, w_packed, out, stride,
                                                               dilation, tile_rows)
    n, first, count, window = _task_window(x_flat, x.shape, task, tiles, tile_rows, h_out,
                                           stride, pad, window_rows, span, groups, c_group,
                                           lanes)
    blk = aligned_buffer(PIXEL_BLOCK * OUTPUT_BLOCK * len(lanes), out)
    for oh in range(first, first + count):
        for block in range((w_out + PIXEL_BLOCK - 1) // PIXEL_BLOCK):
            # The last block overlaps its left neighbour: the shared pixels
            # are computed twice, to the same values.
            ow0 = min(block * PIXEL_BLOCK, w_out - PIXEL_BLOCK)
            s0 = U((oh - first) * sh) * row_step + U(ow0 * sw * len(lanes))
            o0 = U(((n * h_out + oh) * w_out + ow0) * c_out)
            _pixels_any(window, s0, U(dh) * row_step, plane_step, sw, dw, w_flat,
                        (kh_size, kw_size, c_group), bias_flat, blk, out_flat, o0, groups,
                        per_group, U(c_out), lanes, unroll_w)


@jit(parallel=True)
def grouped_channels_last(x, w_packed, bias_packed, out, stride, dilation, pad, unroll_w, lanes,
                          groups, tile_rows):
    """Grouped convolution of 2-D channels_last data, ``C_out // G`` a multiple of 4.

    ``x`` is ``(N, 1, H, W, C_in)`` (channels in the input's order ``g*Cg + c``),
    ``w_packed`` and ``bias_packed`` come from :func:`pack_weight_and_bias`
    with ``L = len(lanes)``, ``out`` is ``(N, 1, H_out,
    W_out, C_out)`` with ``W_out >= PIXEL_BLOCK``; ``stride``, ``dilation``
    and ``pad`` are 3-tuples (the first entry unused). A pass covers one
    kernel row, its taps unrolled ``len(unroll_w)`` at a time (the kernel
    width for the float32 3x3 and 7x7 builds, else 1). A parallel task computes
    ``tile_rows`` consecutive output rows of one image from one window.
    Any stride and dilation along W; :func:`grouped_channels_last_unit` is
    the faster build for unit steps along W.
    """
    tiles = (out.shape[2] + tile_rows - 1) // tile_rows
    for task in prange(x.shape[0] * tiles):
        _grouped_task(task, x, w_packed, bias_packed, out, stride, dilation, pad, unroll_w,
                      lanes, groups, tile_rows, stride[2], dilation[2])


@jit(parallel=True)
def grouped_channels_last_unit(x, w_packed, bias_packed, out, stride, dilation, pad, unroll_w,
                               lanes, groups, tile_rows):
    """:func:`grouped_channels_last` for stride and dilation 1 along W.

    The literal unit steps make every column offset a constant, so LLVM
    loads each input vector once for all the (tap, pixel) pairs that share
    it. A separate kernel (not a branch) so each build compiles one path.
    """
    tiles = (out.shape[2] + tile_rows - 1) // tile_rows
    for task in prange(x.shape[0] * tiles):
        _grouped_task(task, x, w_packed, bias_packed, out, stride, dilation, pad, unroll_w,
                      lanes, groups, tile_rows, 1, 1)


@jit(parallel=True)
def depthwise_window_channels_last(x, w_packed, bias_packed, out, stride, dilation, pad,
                                   unroll_w, lanes, tile_rows):
    """Depthwise convolution (multiplier 1) of 2-D channels_last data from gathered windows.

    As :func:`grouped_channels_last` with one input and one output per group
    (``w_packed`` and ``bias_packed`` packed with ``block=1`` and ``L =
    len(lanes) =`` :data:`DEPTHWISE_LANES`) and blocks of
    :data:`DEPTHWISE_PIXELS` pixels (``W_out`` at least that), for stride
    and dilation 1 along W (any along H), float32; a block's sums stay in
    registers over every tap (see ``_pixels_depthwise``). A task walks each
    chunk of 32 channels in strips of :data:`STRIP_BLOCKS` blocks, every
    output row of a strip in turn, so that consecutive rows find the window
    rows they share in L1. (Measured on a 7x7 kernel at stride 2 this was
    slower than :mod:`.depthwise_cl`, so it has no strided build.)
    """
    kh_size, kw_size = w_packed.shape[3], w_packed.shape[4]
    h_out, w_out, c_out = out.shape[2], out.shape[3], out.shape[4]
    sh, dh = stride[1], dilation[1]
    x_flat, w_flat, out_flat = x.reshape(-1), w_packed.reshape(-1), out.reshape(-1)
    bias_flat = bias_packed.reshape(-1)
    span, row_step, tiles, window_rows, plane_step = _geometry(x, w_packed, out, stride,
                                                               dilation, tile_rows)
    n_blocks = (w_out + DEPTHWISE_PIXELS - 1) // DEPTHWISE_PIXELS
    chunks = (c_out + DEPTHWISE_LANES - 1) // DEPTHWISE_LANES
    w_dims = (kh_size, kw_size, 1)
    stream = streams(out_flat, c_out)
    for task in prange(x.shape[0] * tiles):
        wide_vectors()
        n, first, count, window = _task_window(x_flat, x.shape, task, tiles, tile_rows, h_out,
                                               stride, pad, window_rows, span, c_out, 1, lanes)
        spare = aligned_buffer(DEPTHWISE_PIXELS * DEPTHWISE_LANES, out)
        for chunk in range(chunks):
            for strip in range(0, n_blocks, STRIP_BLOCKS):
                for oh in range(first, first + count):
                    for block in range(strip, min(strip + STRIP_BLOCKS, n_blocks)):
                        ow0 = min(block * DEPTHWISE_PIXELS, w_out - DEPTHWISE_PIXELS)
                        s0 = U((oh - first) * sh) * row_step + U(ow0 * len(lanes))
                        o0 = U(((n * h_out + oh) * w_out + ow0) * c_out)
                        _pixels_depthwise(window, s0, U(dh) * row_step, plane_step, w_flat,
                                          w_dims, bias_flat, spare, out_flat, o0, c_out,
                                          U(c_out), stream, unroll_w, chunk)
        stream_fence()
