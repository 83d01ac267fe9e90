"""Depthwise convolution, channels_last, multiplier 1, 1-D and 2-D: register blocks.

The pixels whose every tap lies inside the input are cut, row by row, into
blocks of :data:`PIXEL_BLOCK` adjacent pixels; a block's sums stay in
registers across a tile of taps while the loop over channels (unit stride
in channels_last) is vectorised, and the last block of a row overlaps its
neighbour rather than leaving a remainder. Border pixels (and whole border
rows) add their in-bounds taps one at a time, each a vectorised loop over
the channels: cheaper than running a block on a zero-filled copy of its
input window, which cost a block's work again per border block (on 14x14
images, half the blocks). Outputs narrower than a block go to
:mod:`.direct_cl`.
"""

from __future__ import annotations

from numba import prange

from ._common import U, interior_columns
from ._jit import inlined, jit
from ._prefetch import LINE, prefetch
from ._vector_width import wide_vectors

__all__ = ["PIXEL_BLOCK", "depthwise_channels_last"]

#: Adjacent output pixels computed together: each weight vector loaded
#: feeds this many sums held in registers.
PIXEL_BLOCK = 4


@inlined
def _block(src, s0, row_step, sw, dw, w_flat, w0, w_pitch, channels, dst, d0, start, t0,
           t_step, rows, cols):
    """``dst[d0 + p*C + g] = start[t0 + p*t_step + g] + taps`` for the block's 4 pixels.

    The taps are ``len(rows) x len(cols)`` (a tile of the kernel, unrolled:
    the tuples' lengths are compile-time constants) read from ``src`` at
    ``s0 + kh*row_step + (kw*dw + p*sw)*C + g``. Called with literal
    ``sw = dw = 1``, the column offsets are constants and LLVM loads each
    input vector once for all the (tap, pixel) pairs that share it. ``dst``
    is never read here, so the loop over ``g`` vectorises; ``start`` may be
    ``dst`` itself at the same offsets (a pass that adds to earlier passes).
    """
    for g in range(channels):
        a0 = start[t0 + g]
        a1 = start[t0 + t_step + g]
        a2 = start[t0 + U(2) * t_step + g]
        a3 = start[t0 + U(3) * t_step + g]
        for kh in range(len(rows)):
            xr = s0 + U(kh) * row_step + g
            wr = w0 + U(kh) * w_pitch + g
            for kw in range(len(cols)):
                wv = w_flat[wr + U(kw) * channels]
                a0 += wv * src[xr + U(kw * dw) * channels]
                a1 += wv * src[xr + U(kw * dw + sw) * channels]
                a2 += wv * src[xr + U(kw * dw + 2 * sw) * channels]
                a3 += wv * src[xr + U(kw * dw + 3 * sw) * channels]
        dst[d0 + g] = a0
        dst[d0 + channels + g] = a1
        dst[d0 + U(2) * channels + g] = a2
        dst[d0 + U(3) * channels + g] = a3


@inlined
def _taps(src, s0, row_step, sw, dw, w_flat, kh_size, kw_size, channels, bias, dst, d0, rows,
          cols):
    """Every tap of the kernel onto one block, in tiles of ``len(rows) x len(cols)``.

    The first tile starts from the bias, the others add to ``dst`` (peeled
    rather than chosen by a flag in the loop: the flag cost 40 % here).
    """
    w_pitch = U(kw_size) * channels
    _block(src, s0, row_step, sw, dw, w_flat, U(0), w_pitch, channels, dst, d0, bias, U(0), U(0),
           rows, cols)
    tiles_w = kw_size // len(cols)
    for tile in range(1, (kh_size // len(rows)) * tiles_w):
        kh0 = (tile // tiles_w) * len(rows)
        kw0 = (tile % tiles_w) * len(cols)
        _block(src, s0 + U(kh0) * row_step + U(kw0 * dw) * channels, row_step, sw, dw, w_flat,
               U(kh0) * w_pitch + U(kw0) * channels, w_pitch, channels, dst, d0, dst, d0,
               channels, rows, cols)


@inlined
def _pixel_taps(x_flat, x_dims, n, top, left, dh, dw, w_flat, bias, out_flat, d0):
    """One border pixel, every channel: bias, then each tap inside the input, in tap order.

    The taps are summed in the same order as in :func:`_block` (so a border
    pixel's sum is the same expression as an interior one's); the taps that
    fall on the padding are skipped.
    """
    h_in, w_in, channels, kh_size, kw_size = x_dims
    c = U(channels)
    for g in range(c):
        out_flat[d0 + g] = bias[g]
    for kh in range(kh_size):
        iy = top + kh * dh
        if iy < 0 or iy >= h_in:
            continue
        for kw in range(kw_size):
            ix = left + kw * dw
            if ix < 0 or ix >= w_in:
                continue
            src = U((n * h_in + iy) * w_in + ix) * c
            wr = U(kh * kw_size + kw) * c
            for g in range(c):
                out_flat[d0 + g] += w_flat[wr + g] * x_flat[src + g]


@jit(parallel=True)
def depthwise_channels_last(x, w_t, bias, out, stride, dilation, pad, unroll_h, unroll_w):
    """Depthwise convolution with multiplier 1 of 2-D channels_last data.

    ``x`` is ``(N, 1, H, W, C)``, ``w_t`` is ``(1, kh, kw, C)``, ``bias``
    ``(C,)`` and ``out`` ``(N, 1, H_out, W_out, C)``; ``stride``,
    ``dilation`` and ``pad`` are 3-tuples (the first entry unused);
    ``W_out >= PIXEL_BLOCK`` (narrower outputs take the general kernel). The
    lengths of ``unroll_h``/``unroll_w`` set the tile of taps a pass unrolls:
    ``(kh, kw)`` for one pass over the whole kernel, ``(1, kw)`` for a pass
    per kernel row, ``(1, 1)`` (the generic build) for a pass per tap.
    """
    n_batch, _, h_in, w_in, channels = x.shape
    _, kh_size, kw_size, _ = w_t.shape
    h_out, w_out = out.shape[2], out.shape[3]
    sh, sw = stride[1], stride[2]
    dh, dw = dilation[1], dilation[2]
    ph, pw = pad[1], pad[2]
    x_flat, w_flat, out_flat = x.reshape(-1), w_t.reshape(-1), out.reshape(-1)
    c = U(channels)
    unit = sw == 1 and dw == 1
    # Input columns one block reads.
    span = (PIXEL_BLOCK - 1) * sw + (kw_size - 1) * dw + 1
    # Output rows and columns whose every tap lies inside the input: the
    # blocks cover them; border pixels take the per-pixel loop. (Testing the
    # rows as a range, rather than as a boolean computed per row, matters:
    # the boolean form stopped LLVM from vectorising the blocks, Numba 0.68.)
    oh_lo, oh_hi = interior_columns(kh_size, sh, dh, ph, h_in, h_out)
    ow_lo, ow_hi = interior_columns(kw_size, sw, dw, pw, w_in, w_out)
    n_blocks = (ow_hi - ow_lo + PIXEL_BLOCK - 1) // PIXEL_BLOCK
    if ow_hi - ow_lo < PIXEL_BLOCK:
        n_blocks = 0
    x_dims = (h_in, w_in, channels, kh_size, kw_size)
    for row in prange(n_batch * h_out):
        wide_vectors()
        n = row // h_out
        oh = row % h_out
        top = oh * sh - ph
        d_row = U(row * w_out) * c
        if oh >= oh_lo and oh < oh_hi and n_blocks > 0:
            # The input rows the next output row adds to this one's: fetched ahead.
            ahead = top + (kh_size - 1) * dh + 1
            for block in range(n_blocks):
                # The last block overlaps its left neighbour (same values, stored twice).
                ow0 = min(ow_lo + block * PIXEL_BLOCK, ow_hi - PIXEL_BLOCK)
                left = ow0 * sw - pw
                d0 = d_row + U(ow0) * c
                s0 = U(((n * h_in + top) * w_in + left) * channels)
                if unit:
                    # Literal unit steps: constant column offsets (see _block).
                    _taps(x_flat, s0, U(dh * w_in) * c, 1, 1, w_flat, kh_size, kw_size, c, bias,
                          out_flat, d0, unroll_h, unroll_w)
                else:
                    _taps(x_flat, s0, U(dh * w_in) * c, sw, dw, w_flat, kh_size, kw_size, c, bias,
                          out_flat, d0, unroll_h, unroll_w)
                for iy in range(ahead, min(ahead + sh, h_in)):
                    if iy >= 0:
                        first = U(((n * h_in + iy) * w_in + left) * channels)
                        for i in range(U(0), U(span) * c, U(LINE)):
                            prefetch(x_flat, first + i)
            for ow in range(ow_lo):
                _pixel_taps(x_flat, x_dims, n, top, ow * sw - pw, dh, dw, w_flat, bias, out_flat,
                            d_row + U(ow) * c)
            for ow in range(ow_hi, w_out):
                _pixel_taps(x_flat, x_dims, n, top, ow * sw - pw, dh, dw, w_flat, bias, out_flat,
                            d_row + U(ow) * c)
        else:
            for ow in range(w_out):
                _pixel_taps(x_flat, x_dims, n, top, ow * sw - pw, dh, dw, w_flat, bias, out_flat,
                            d_row + U(ow) * c)
