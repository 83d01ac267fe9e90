"""Channels_last convolution with many channels per group, 1-D and 2-D: a register micro-kernel.

For dense and few-group layers (a multiple of :data:`OUTPUT_CHUNK` outputs
per group), the kernel is the micro-kernel of a matrix product applied to
the input in place: a block of :data:`PIXEL_BLOCK` adjacent output pixels
times :data:`OUTPUT_CHUNK` outputs keeps its sums in vector registers
(:mod:`._simd`, 16 lanes each) across a tile of input channels and every
tap. With AVX-512 (32 registers) a block is 6 pixels x 64 outputs: per
input channel and tap it loads 4 weight vectors and broadcasts each
pixel's input value, 24 multiply-adds for 10 loads. With 16 registers
(AVX2) it is 6 pixels x 16 outputs, 6 multiply-adds for 7 loads: the
wider block's 24 sums would not fit (see
:func:`._vector_width.register_vectors`). No im2col, no BLAS call.

Loop order, per task (``tile_rows`` output rows of one image): the input
rows they read are gathered once into a zero-padded window (plain
channels_last order); then per output row, group and chunk of 64 outputs,
every block of the row runs over the input channels in as few tiles as
keep a tile's weights (``C x kh x kw x 64``) under
:data:`WEIGHT_TILE_BYTES`, split evenly. A 3x3 layer with up to 113
channels per group is one tile: the sums start from the bias, stay in
registers over the whole reduction and go straight to the output; between
tiles they wait in a small per-task buffer. The last block of a row is
the narrowest of 2, 4 or 6 pixels that covers the rest (28 = 4 x 6 + 4,
56 = 9 x 6 + 2), so no pixel is computed twice for an even width.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._common import U, aligned_buffer, aligned_copy
from ._jit import inlined, jit
from ._simd import LANES, fma16, load4, load16, splat16, store4, store16
from ._vector_width import REGISTER_VECTORS

__all__ = ["OUTPUT_CHUNK", "OUTPUT_VECTORS", "PIXEL_BLOCK", "WEIGHT_TILE_BYTES", "block_of",
           "block_span", "channel_tile", "dense_channels_last", "pack_weight"]

#: Output vectors one block computes: 4 (6 x 4 sums + 4 weights: 28 of 32
#: registers), or 1 where the registers hold 8 vectors (6 sums + 1 weight).
OUTPUT_VECTORS = 4 if REGISTER_VECTORS >= 32 else 1
#: Outputs one block computes.
OUTPUT_CHUNK = OUTPUT_VECTORS * LANES
#: Adjacent output pixels one block computes.
PIXEL_BLOCK = 6
#: Bound of the weights of one tile of input channels: half of a 512 KiB L2.
#: Measured (Zen 4, grp2_28 and dense3x3_56, one 147 KiB tile against 32 KiB
#: tiles kept in L1): 5.2-5.4 vs 5.6-5.8 ms and 10.0-10.9 vs 10.9-11.4 ms; the
#: weights stream from L2 fast enough, and the sums never leave the registers.
WEIGHT_TILE_BYTES = 256 * 2**10


def pack_weight(weight: np.ndarray, groups: int) -> np.ndarray:
    """``(C_out, Cg, kh, kw)`` -> ``(G, O_g // n, kh, kw, Cg, n)``, ``n`` =
    :data:`OUTPUT_CHUNK`."""
    c_out, c_group, kh, kw = weight.shape
    w = weight.reshape(groups, c_out // groups // OUTPUT_CHUNK, OUTPUT_CHUNK, c_group, kh, kw)
    return aligned_copy(w.transpose(0, 1, 4, 5, 3, 2))


def channel_tile(c_group: int, kernel_taps: int, itemsize: int) -> int:
    """Input channels per tile: the fewest tiles whose weights for one chunk stay under
    :data:`WEIGHT_TILE_BYTES`, as even as they go."""
    fit = max(1, WEIGHT_TILE_BYTES // (kernel_taps * OUTPUT_CHUNK * itemsize))
    tiles = -(-c_group // fit)
    return -(-c_group // tiles)


@inlined
def _fma4(a0, a1, a2, a3, value, w0, w1, w2, w3):
    """Four sums plus the broadcast ``value`` times four weight vectors."""
    x = splat16(value)
    return fma16(x, w0, a0), fma16(x, w1, a1), fma16(x, w2, a2), fma16(x, w3, a3)


@inlined
def _block_4(window, x0, pixel_step, row_step, taps, c_count, w_flat, w0, src, dst, pixels):
    """The block's ``pixels`` (2, 4 or :data:`PIXEL_BLOCK`) pixels x 64 outputs over a
    channel tile (:data:`OUTPUT_VECTORS` = 4): ``dst[d0 + p*d_step + o] = src[s0 +
    p*s_step + o] + sum``.

    ``src`` and ``dst`` are ``(array, first, pixel_step)``: the sums so far
    (the bias with step 0 before the first tile, the task's buffer between
    tiles) and where they go (the buffer, or the output after the last
    tile). ``taps`` is ``(kh, kw, dh, Cg)``; pixel ``p``, tap ``(i, j)``,
    channel ``c`` reads ``window[x0 + i*dh*row_step + (j + p)*pixel_step +
    c]`` and weighs it by ``w_flat[w0 + ((i*kw + j)*Cg + c)*64 + o]`` (``Cg``
    channels per group in the packed weight, of which the tile takes
    ``c_count``). ``pixels`` is a constant at every call, so the pixels a
    narrower block skips cost nothing (their sums are loaded and dropped).
    """
    kh_size, kw_size, dh, c_group = taps
    sums, s0, s_step = src
    a00, a01, a02, a03 = load4(sums, s0, U(LANES))
    a10, a11, a12, a13 = load4(sums, s0 + s_step, U(LANES))
    a20, a21, a22, a23 = load4(sums, s0 + U(2) * s_step, U(LANES))
    a30, a31, a32, a33 = load4(sums, s0 + U(3) * s_step, U(LANES))
    a40, a41, a42, a43 = load4(sums, s0 + U(4) * s_step, U(LANES))
    a50, a51, a52, a53 = load4(sums, s0 + U(5) * s_step, U(LANES))
    for i in range(kh_size):
        for j in range(kw_size):
            xi = x0 + U(i * dh) * row_step + U(j) * pixel_step
            wi = w0 + U((i * kw_size + j) * c_group * OUTPUT_CHUNK)
            for _ in range(c_count):
                w_0, w_1, w_2, w_3 = load4(w_flat, wi, U(LANES))
                a00, a01, a02, a03 = _fma4(a00, a01, a02, a03, window[xi], w_0, w_1, w_2, w_3)
                a10, a11, a12, a13 = _fma4(a10, a11, a12, a13, window[xi + pixel_step],
                                           w_0, w_1, w_2, w_3)
                if pixels > 2:
                    a20, a21, a22, a23 = _fma4(a20, a21, a22, a23,
                                               window[xi + U(2) * pixel_step], w_0, w_1, w_2, w_3)
                    a30, a31, a32, a33 = _fma4(a30, a31, a32, a33,
                                               window[xi + U(3) * pixel_step], w_0, w_1, w_2, w_3)
                if pixels > 4:
                    a40, a41, a42, a43 = _fma4(a40, a41, a42, a43,
                                               window[xi + U(4) * pixel_step], w_0, w_1, w_2, w_3)
                    a50, a51, a52, a53 = _fma4(a50, a51, a52, a53,
                                               window[xi + U(5) * pixel_step], w_0, w_1, w_2, w_3)
                xi += U(1)
                wi += U(OUTPUT_CHUNK)
    out, d0, d_step = dst
    store4(out, d0, U(LANES), a00, a01, a02, a03)
    store4(out, d0 + d_step, U(LANES), a10, a11, a12, a13)
    if pixels > 2:
        store4(out, d0 + U(2) * d_step, U(LANES), a20, a21, a22, a23)
        store4(out, d0 + U(3) * d_step, U(LANES), a30, a31, a32, a33)
    if pixels > 4:
        store4(out, d0 + U(4) * d_step, U(LANES), a40, a41, a42, a43)
        store4(out, d0 + U(5) * d_step, U(LANES), a50, a51, a52, a53)


@inlined
def _block_1(window, x0, pixel_step, row_step, taps, c_count, w_flat, w0, src, dst, pixels):
    """:func:`_block_4` for 16 outputs (:data:`OUTPUT_VECTORS` = 1): weights
    ``w_flat[w0 + ((i*kw + j)*Cg + c)*16 + o]``."""
    kh_size, kw_size, dh, c_group = taps
    sums, s0, s_step = src
    a0, a1 = load16(sums, s0), load16(sums, s0 + s_step)
    a2, a3 = load16(sums, s0 + U(2) * s_step), load16(sums, s0 + U(3) * s_step)
    a4, a5 = load16(sums, s0 + U(4) * s_step), load16(sums, s0 + U(5) * s_step)
    for i in range(kh_size):
        for j in range(kw_size):
            xi = x0 + U(i * dh) * row_step + U(j) * pixel_step
            wi = w0 + U((i * kw_size + j) * c_group * OUTPUT_CHUNK)
            for _ in range(c_count):
                w = load16(w_flat, wi)
                a0 = fma16(splat16(window[xi]), w, a0)
                a1 = fma16(splat16(window[xi + pixel_step]), w, a1)
                if pixels > 2:
                    a2 = fma16(splat16(window[xi + U(2) * pixel_step]), w, a2)
                    a3 = fma16(splat16(window[xi + U(3) * pixel_step]), w, a3)
                if pixels > 4:
                    a4 = fma16(splat16(window[xi + U(4) * pixel_step]), w, a4)
                    a5 = fma16(splat16(window[xi + U(5) * pixel_step]), w, a5)
                xi += U(1)
                wi += U(OUTPUT_CHUNK)
    out, d0, d_step = dst
    store16(out, d0, a0)
    store16(out, d0 + d_step, a1)
    if pixels > 2:
        store16(out, d0 + U(2) * d_step, a2)
        store16(out, d0 + U(3) * d_step, a3)
    if pixels > 4:
        store16(out, d0 + U(4) * d_step, a4)
        store16(out, d0 + U(5) * d_step, a5)


#: The block for this target's registers.
_block = _block_4 if OUTPUT_VECTORS == 4 else _block_1


@inlined
def block_span(block, count):
    """``(first, pixels)`` of block ``block`` of a run of ``count`` pixels (at least
    :data:`PIXEL_BLOCK`): whole blocks, then the narrowest of 2, 4 or 6 pixels that covers
    the rest; with an odd rest it overlaps its left neighbour (same values, stored twice)."""
    full = count // PIXEL_BLOCK
    tail = count - full * PIXEL_BLOCK
    pixels = PIXEL_BLOCK if block < full else tail + tail % 2
    return min(block * PIXEL_BLOCK, count - pixels), pixels


@inlined
def block_of(window, x0, pixel_step, row_step, taps, c_count, w_flat, w0, src, dst, pixels):
    """:func:`_block` for a run-time ``pixels`` of :data:`PIXEL_BLOCK`, 4 or 2: each width
    is a constant at its call, so a narrower block skips the other pixels' work."""
    if pixels == PIXEL_BLOCK:
        _block(window, x0, pixel_step, row_step, taps, c_count, w_flat, w0, src, dst,
               PIXEL_BLOCK)
    elif pixels == 4:
        _block(window, x0, pixel_step, row_step, taps, c_count, w_flat, w0, src, dst, 4)
    else:
        _block(window, x0, pixel_step, row_step, taps, c_count, w_flat, w0, src, dst, 2)


@inlined
def _gather_window(x_flat, x_dims, n, top, left, rows, span, window):
    """``window[r, col, c]`` = input ``(n, top + r, left + col, c)``, 0 outside.

    Channels_last input, ``x_dims = (H, W, C)``; the window is ``(rows,
    span, C)``, C-ordered.
    """
    h_in, w_in, channels = x_dims
    c = U(channels)
    for r in range(rows):
        iy = top + r
        for col in range(span):
            ix = left + col
            at = U(r * span + col) * c
            if iy < 0 or iy >= h_in or ix < 0 or ix >= w_in:
                for g in range(c):
                    window[at + g] = 0
            else:
                pixel = U(((n * h_in + iy) * w_in + ix) * channels)
                for g in range(c):
                    window[at + g] = x_flat[pixel + g]


@jit(parallel=True)
def dense_channels_last(x, w_packed, bias, out, stride, dilation, pad, tile_rows, c_tile):
    """Grouped convolution of 2-D channels_last data, ``C_out // groups`` a multiple of
    :data:`OUTPUT_CHUNK`.

    ``x`` is ``(N, 1, H, W, C_in)`` float32, ``w_packed`` comes from
    :func:`pack_weight`, ``bias`` is ``(C_out,)`` and ``out`` is ``(N, 1,
    H_out, W_out, C_out)`` with ``W_out >= PIXEL_BLOCK``; ``stride``,
    ``dilation`` and ``pad`` are 3-tuples (the first entry unused) with
    stride and dilation 1 along W. A parallel task computes ``tile_rows``
    consecutive output rows of one image; input channels go ``c_tile`` at a
    time (:func:`channel_tile`).
    """
    n_batch, _, h_in, w_in, c_in = x.shape
    groups, chunks, kh_size, kw_size, c_group = w_packed.shape[:5]
    h_out, w_out, c_out = out.shape[2], out.shape[3], out.shape[4]
    sh, dh = stride[1], dilation[1]
    x_flat, w_flat, out_flat = x.reshape(-1), w_packed.reshape(-1), out.reshape(-1)
    span = w_out + kw_size - 1
    pixel_step = U(c_in)
    row_step = U(span) * pixel_step
    window_rows = (tile_rows - 1) * sh + (kh_size - 1) * dh + 1
    w_chunk_size = kh_size * kw_size * c_group * OUTPUT_CHUNK
    block_size = PIXEL_BLOCK * OUTPUT_CHUNK
    tiles = (h_out + tile_rows - 1) // tile_rows
    n_blocks = (w_out + PIXEL_BLOCK - 1) // PIXEL_BLOCK
    taps = (kh_size, kw_size, dh, c_group)
    for task in prange(n_batch * tiles):
        n = task // tiles
        first = (task % tiles) * tile_rows
        count = min(tile_rows, h_out - first)
        window = aligned_buffer(window_rows * span * c_in, x)
        _gather_window(x_flat, (h_in, w_in, c_in), n, first * sh - pad[1], -pad[2], window_rows,
                       span, window)
        sums = aligned_buffer(n_blocks * block_size, out)
        for oh in range(first, first + count):
            x_row = U((oh - first) * sh) * row_step
            o_row = U((n * h_out + oh) * w_out) * U(c_out)
            for g in range(groups):
                for chunk in range(chunks):
                    o0 = U(g * chunks * OUTPUT_CHUNK + chunk * OUTPUT_CHUNK)
                    w_chunk = U((g * chunks + chunk) * w_chunk_size)
                    for c0 in range(0, c_group, c_tile):
                        c_count = min(c_tile, c_group - c0)
                        for block in range(n_blocks):
                            ow0, pixels = block_span(block, w_out)
                            buffered = (sums, U(block * block_size), U(OUTPUT_CHUNK))
                            src = (bias, o0, U(0)) if c0 == 0 else buffered
                            dst = ((out_flat, o_row + U(ow0) * U(c_out) + o0, U(c_out))
                                   if c0 + c_count == c_group else buffered)
                            x_block = x_row + U(ow0) * pixel_step + U(g * c_group + c0)
                            w_tile = w_chunk + U(c0 * OUTPUT_CHUNK)
                            block_of(window, x_block, pixel_step, row_step, taps, c_count,
                                     w_flat, w_tile, src, dst, pixels)
