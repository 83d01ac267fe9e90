"""Depthwise convolution, channels_first, 2-D, unit stride.

Each plane is first copied into a zero-padded plane buffer, and output
pixel ``i`` of an output with the padded pitch, counted flat, reads padded
pixel ``i + offset(kh, kw)`` for every tap: the whole plane is one
long flat loop, a few thousand iterations that vectorise with the weights
as scalars, with no border cases (the padding holds zeros). The output
rows are then copied out without their padded tail. Per plane that is two
short copies
(:func:`._simd.copy_run`) instead of recomputing the edge columns and
border rows pixel by pixel (measured, dw3x3_mbv2_56 channels_first on 2
threads, the whole call: 2.0 ms before, 1.1-1.35 ms the kernel alone
now). The rest is the memory traffic of the two copies and the flat
loop's unaligned loads (9 per 16 outputs).

For the kernel sizes with unrolled builds (3x3, 7x7) at unit stride,
float32, :func:`depthwise_rows_channels_first` keeps 16 flat outputs of 4
consecutive rows in registers over every tap instead, so each input vector
loaded feeds up to 4 rows and a 7x7 kernel no longer makes a pass over the
flat output per kernel row (measured on 2 threads, Zen 4, the kernel alone
in one process with the flat passes: dw7x7_convnext_56 2.55 ms against
3.59 ms, dw3x3_mult2_28 0.33 against 0.38 ms, dw3x3_14 0.177 against 0.189
ms, dw3x3_mbv2_56 2.07-2.60 against 2.09-2.79 ms). It and the stride-2
kernel copy their padded input rows in as they go, prefetch the rows after,
and store in place (see each kernel's notes for the measurements). Outputs
narrower than a vector read the input straight, with masked loads whose
zero lanes are the padding (:func:`_narrow_plane`).
"""

from __future__ import annotations

import numpy as np
from numba import prange
from numba.cpython.unsafe.tuple import tuple_setitem

from ._common import U, aligned_buffer
from ._jit import inlined, jit
from ._prefetch import LINE, prefetch, prefetch_part
from ._simd import (
    LANES,
    copy_run,
    even16,
    fma16,
    load16,
    load16_window,
    odd16,
    splat16,
    store16,
    store16_first,
)
from ._vector_width import wide_vectors

__all__ = ["MAX_ROWS", "MAX_TALL_KERNEL", "NARROW_BLOCKS", "PLANES_PER_TASK", "RING_ROWS",
           "ROWS_AHEAD", "ROW_BLOCK", "S2_AHEAD_ROWS", "depthwise_3x3_s2_channels_first",
           "depthwise_channels_first", "depthwise_rows_channels_first", "narrow_blocks",
           "rows_apply", "s2_applies"]

#: Planes one parallel task computes (its two plane buffers are allocated once).
PLANES_PER_TASK = 8


@inlined
def _taps(total, x_flat, x0, row_step, tap_step, w_flat, w0, kw_size, i, rows, cols):
    """``total`` plus the tile's taps for flat output ``i``.

    The tile is ``len(rows) x len(cols)`` taps (unrolled), tap ``(kh, kw)``
    reading ``x[x0 + kh*row_step + kw*tap_step + i]`` with weight
    ``w[w0 + kh*kw_size + kw]``.
    """
    for kh in range(len(rows)):
        for kw in range(len(cols)):
            total += w_flat[w0 + U(kh * kw_size + kw)] * x_flat[
                x0 + U(kh) * row_step + U(kw) * tap_step + i
            ]
    return total


@inlined
def _flat_pass(x_flat, x0, row_step, tap_step, w_flat, w0, kw_size, out_flat, count, bias,
               first, rows, cols):
    """``out[i] = (bias if first else out[i]) + the tile's taps`` for ``i < count``."""
    if first:
        for i in range(count):
            out_flat[i] = _taps(bias, x_flat, x0, row_step, tap_step, w_flat, w0, kw_size, i,
                                rows, cols)
    else:
        for i in range(count):
            out_flat[i] = _taps(out_flat[i], x_flat, x0, row_step, tap_step, w_flat, w0,
                                kw_size, i, rows, cols)


@inlined
def _fill_rows(padded, pitch, pad, x_flat, plane_in, h_in, w_in, lo, hi):
    """Padded rows ``lo ... hi - 1`` of a plane (input rows ``r - pad[0]``) into the plane
    buffer at column ``pad[1]``; padding rows and columns keep their zeros."""
    cols = U(max(min(w_in, pitch - pad[1]), 0))
    for r in range(max(lo, pad[0]), min(hi, pad[0] + h_in)):
        copy_run(padded, U(r * pitch + pad[1]), x_flat, plane_in + U((r - pad[0]) * w_in), cols)


@jit(parallel=True)
def depthwise_channels_first(x, w, bias, out, stride, dilation, pad, unroll_h, unroll_w):
    """Depthwise convolution (any multiplier) of 2-D channels_first data, unit stride.

    ``x`` is ``(N, C_in, 1, H, W)``, ``w`` ``(C_out, 1, 1, kh, kw)``,
    ``out`` ``(N, C_out, 1, H_out, W_out)``, any zero padding; ``stride``
    (1), ``dilation`` and ``pad`` are 3-tuples. The lengths of
    ``unroll_h``/``unroll_w`` set the tile of taps one flat pass unrolls, as
    in :func:`.depthwise_cl.depthwise_channels_last`.

    With the padded pitch ``P`` as the pitch of the flat output too, output
    ``i = oh*P + ow`` reads padded pixel ``i + kh*dh*P + kw*dw``: the
    ``(kw - 1)*dw`` columns past ``W_out`` of each flat output row are
    computed and dropped. (A stride-2 build, reading ``2*i + ...``, was no
    faster than the generic kernel: measured 5.15 ms on dw3x3_s2_112.)
    """
    n_batch, c_in = x.shape[0], x.shape[1]
    c_out, _, _, kh_size, kw_size = w.shape
    h_out, w_out = out.shape[3], out.shape[4]
    multiplier = c_out // c_in
    dh, dw = dilation[1], dilation[2]
    ph, pw = pad[1], pad[2]
    x_flat, w_flat, out_flat = x.reshape(-1), w.reshape(-1), out.reshape(-1)
    h_in, w_in = x.shape[3], x.shape[4]
    # The padded plane: the rows and columns the outputs read, no more.
    h_pad = h_out + (kh_size - 1) * dh
    pitch = w_out + (kw_size - 1) * dw
    count = (h_out - 1) * pitch + w_out
    row_step, tap_step = U(dh * pitch), U(dw)
    tiles_w = kw_size // len(unroll_w)
    n_tiles = (kh_size // len(unroll_h)) * tiles_w
    planes = n_batch * c_out
    for task in prange((planes + PLANES_PER_TASK - 1) // PLANES_PER_TASK):
        wide_vectors()
        padded = aligned_buffer(h_pad * pitch, x_flat)
        # Zero once: the planes below only overwrite the input's own pixels.
        padded[:] = 0
        flat = aligned_buffer(h_out * pitch, out_flat)
        for plane in range(task * PLANES_PER_TASK, min((task + 1) * PLANES_PER_TASK, planes)):
            o = plane % c_out
            plane_in = U(((plane // c_out) * c_in + o // multiplier) * h_in * w_in)
            _fill_rows(padded, pitch, (ph, pw), x_flat, plane_in, h_in, w_in, 0, h_pad)
            w0 = U(o * kh_size * kw_size)
            # The first tile starts from the bias, the rest add to the output.
            for tile in range(n_tiles):
                kh0 = (tile // tiles_w) * len(unroll_h)
                kw0 = (tile % tiles_w) * len(unroll_w)
                _flat_pass(padded, U(kh0) * row_step + U(kw0) * tap_step, row_step, tap_step,
                           w_flat, w0 + U(kh0 * kw_size + kw0), kw_size, flat, U(count),
                           bias[o], tile == 0, unroll_h, unroll_w)
            plane_out = U(plane * h_out * w_out)
            for oh in range(h_out):
                copy_run(out_flat, plane_out + U(oh * w_out), flat, U(oh * pitch), U(w_out))


def s2_applies(spec, stride, dilation) -> bool:
    """Whether the depthwise channels_first spec runs on :func:`depthwise_3x3_s2_channels_first`:
    float32, 2-D, a 3x3 kernel, stride 2 and dilation 1 along both axes."""
    return (spec.dtype == np.dtype(np.float32) and spec.rank == 2
            and tuple(spec.kernel_size) == (3, 3) and stride[1:] == (2, 2)
            and dilation[1:] == (1, 1))


@inlined
def _s2_tap_row(padded, at, w0, w1, w2, acc):
    """``acc`` plus one kernel row's 3 taps for 16 outputs whose row starts at ``padded[at]``.

    Output ``j`` reads columns ``2j``, ``2j + 1`` and ``2j + 2`` from ``at``:
    the even and odd lanes of two vectors, and the even lanes of the two
    vectors 2 columns on.
    """
    a, b = load16(padded, at), load16(padded, at + U(LANES))
    acc = fma16(even16(a, b), w0, acc)
    acc = fma16(odd16(a, b), w1, acc)
    return fma16(even16(load16(padded, at + U(2)), load16(padded, at + U(2 + LANES))), w2, acc)


#: Padded input rows :func:`depthwise_3x3_s2_channels_first` keeps per plane: the 3 an
#: output row reads, and the next.
RING_ROWS = 4
#: Output rows ahead of itself whose input rows :func:`depthwise_3x3_s2_channels_first`
#: prefetches.
S2_AHEAD_ROWS = 3


@inlined
def _fill_ring_row(ring, slot, pitch, p, pad, x_flat, plane_in, h_in, w_in):
    """Padded row ``p`` of a plane (input row ``p - pad[0]``, or zeros) into ``ring`` row
    ``slot``, at column ``pad[1]``; the columns before and after keep their zeros."""
    cols = U(max(min(w_in, pitch - pad[1]), 0))
    at = U(slot * pitch + pad[1])
    iy = p - pad[0]
    if 0 <= iy < h_in:
        copy_run(ring, at, x_flat, plane_in + U(iy * w_in), cols)
    else:
        ring[at:at + cols] = 0


@jit(parallel=True)
def depthwise_3x3_s2_channels_first(x, w, bias, out, pad):
    """Depthwise 3x3 convolution (any multiplier) at stride 2 of 2-D channels_first float32 data.

    ``x`` is ``(N, C_in, 1, H, W)``, ``w`` ``(C_out, 1, 1, 3, 3)``, ``out``
    ``(N, C_out, 1, H_out, W_out)``, any zero padding (``pad`` the 3-tuple
    of the padding before each axis). An output row reads 3 zero-padded
    input rows from a ring of :data:`RING_ROWS` row buffers, each row copied
    in just before the first output row that reads it (so the input streams
    in between the arithmetic), and each output row's vector steps prefetch
    the 2 input rows :data:`S2_AHEAD_ROWS` output rows on, into the next
    plane at the end of one (measured, dw3x3_s2_112 channels_first on 2
    threads, Intel Xeon: 1.55 ms with a whole padded plane copied first,
    1.10 with the ring, 0.89 with the prefetch; 1, 3 and 4 rows ahead
    0.98, 0.89 and 0.90 ms).
    16 outputs of a row at a time read their stride-2 columns as the even
    and odd lanes of pairs of vectors (:func:`._simd.even16`), 9 FMAs per 16
    outputs summed in the reference's order (bias, then the taps in (kh, kw)
    order); the last 16 of a row may overlap the 16 before them.
    """
    n_batch, c_in = x.shape[0], x.shape[1]
    c_out = w.shape[0]
    h_in, w_in = x.shape[3], x.shape[4]
    h_out, w_out = out.shape[3], out.shape[4]
    multiplier = c_out // c_in
    ph, pw = pad[1], pad[2]
    x_flat, w_flat, out_flat = x.reshape(-1), w.reshape(-1), out.reshape(-1)
    vectors = (w_out + LANES - 1) // LANES
    # Room for the last vector's loads 2 columns on (columns past the outputs' own are zero).
    pitch = 2 * LANES * vectors + LANES + 2
    planes = n_batch * c_out
    last = U(x_flat.size - 1)
    # The 2 input rows one output row adds, spread over its vector steps.
    lines_per_step = (-(-2 * w_in // LINE) + vectors - 1) // vectors
    for task in prange((planes + PLANES_PER_TASK - 1) // PLANES_PER_TASK):
        wide_vectors()
        ring = aligned_buffer(RING_ROWS * pitch, x_flat)
        ring[:] = 0
        for plane in range(task * PLANES_PER_TASK, min((task + 1) * PLANES_PER_TASK, planes)):
            o = plane % c_out
            plane_in = U(((plane // c_out) * c_in + o // multiplier) * h_in * w_in)
            t = U(o * 9)
            w00, w01, w02 = splat16(w_flat[t]), splat16(w_flat[t + U(1)]), splat16(w_flat[t + U(2)])
            w10, w11, w12 = (splat16(w_flat[t + U(3)]), splat16(w_flat[t + U(4)]),
                             splat16(w_flat[t + U(5)]))
            w20, w21, w22 = (splat16(w_flat[t + U(6)]), splat16(w_flat[t + U(7)]),
                             splat16(w_flat[t + U(8)]))
            b = splat16(bias[o])
            plane_out = U(plane * h_out * w_out)
            _fill_ring_row(ring, 0, pitch, 0, (ph, pw), x_flat, plane_in, h_in, w_in)
            for oh in range(h_out):
                # Rows 2*oh + 1 and 2*oh + 2 are new; row 2*oh was the previous row's last.
                for p in range(2 * oh + 1, 2 * oh + 3):
                    _fill_ring_row(ring, p % RING_ROWS, pitch, p, (ph, pw), x_flat, plane_in,
                                   h_in, w_in)
                # The rows S2_AHEAD_ROWS output rows on (past the plane: the next
                # plane's, the same memory stream, with multiplier 1), spread over
                # the vector steps.
                ahead_row = 2 * (oh + S2_AHEAD_ROWS) + 1 - ph
                if multiplier > 1:
                    ahead_row = min(ahead_row, h_in - 1)
                ahead = plane_in + U(max(ahead_row, 0) * w_in)
                top = U((2 * oh) % RING_ROWS) * U(pitch)
                middle = U((2 * oh + 1) % RING_ROWS) * U(pitch)
                bottom = U((2 * oh + 2) % RING_ROWS) * U(pitch)
                for v in range(vectors):
                    # A row of 16 outputs or more ends with the 16 that end it
                    # (overlapping the vector before, same values), so that every
                    # store is a plain one (masked stores are microcode without
                    # AVX-512); a shorter row is one masked store.
                    col = U(2 * max(min(v * LANES, w_out - LANES), 0))
                    acc = _s2_tap_row(ring, top + col, w00, w01, w02, b)
                    acc = _s2_tap_row(ring, middle + col, w10, w11, w12, acc)
                    acc = _s2_tap_row(ring, bottom + col, w20, w21, w22, acc)
                    dst = plane_out + U(oh * w_out) + col // U(2)
                    for k in range(lines_per_step):
                        prefetch(x_flat, min(ahead + U((v * lines_per_step + k) * LINE), last))
                    if w_out >= LANES:
                        store16(out_flat, dst, acc)
                    else:
                        store16_first(out_flat, dst, acc, w_out)


#: Output rows one register block of :func:`depthwise_rows_channels_first` computes.
ROW_BLOCK = 4
#: How many padded rows past the ones it copies in :func:`depthwise_rows_channels_first`
#: prefetches.
ROWS_AHEAD = 8
#: The tallest kernel :func:`depthwise_rows_channels_first` unrolls.
MAX_ROWS = 7


def rows_apply(spec, stride, dilation) -> bool:
    """Whether the depthwise channels_first spec can run on
    :func:`depthwise_rows_channels_first`: float32, 2-D, stride 1, dilation 1
    along H, at most :data:`MAX_ROWS` kernel rows."""
    return (spec.dtype == np.dtype(np.float32) and spec.rank == 2
            and stride[1:] == (1, 1) and dilation[1] == 1
            and spec.kernel_size[0] <= MAX_ROWS)


@inlined
def _tap_row(kh, sums, padded, i, pitch, dw, w_flat, w0, cols):
    """``sums`` (4 rows' vectors) plus the ``len(cols)`` taps of kernel row ``kh`` (a constant).

    Row ``r``'s outputs read input row ``kh + r``: the same address, so the
    same load, as row ``r + 1``'s in kernel row ``kh - 1``.
    """
    a0, a1, a2, a3 = sums
    for kw in range(len(cols)):
        wv = splat16(w_flat[w0 + U(kh * len(cols) + kw)])
        at = i + U(kw) * dw
        a0 = fma16(load16(padded, at + U(kh) * pitch), wv, a0)
        a1 = fma16(load16(padded, at + U(kh + 1) * pitch), wv, a1)
        a2 = fma16(load16(padded, at + U(kh + 2) * pitch), wv, a2)
        a3 = fma16(load16(padded, at + U(kh + 3) * pitch), wv, a3)
    return a0, a1, a2, a3


@inlined
def _row_block(padded, i, pitch, dw, w_flat, w0, dst, bias, rows, cols):
    """Flat outputs ``i + r*pitch .. + 15`` for ``r < 4``: bias, then every tap in (kh, kw) order,
    stored at ``out[at + r*step ...]`` for ``dst = (out, at, step)``.

    Output ``i + r*pitch`` reads ``padded[i + (kh + r)*pitch + kw*dw]``. The
    ``len(rows) <= 7`` kernel rows are written out one call each (a loop
    over them, 49 taps x 4 rows for 7x7, was left rolled by LLVM), so every
    offset is a constant multiple of ``pitch`` and each input vector is
    loaded once for all the (kernel row, output row) pairs that share it:
    ``(4 + kh - 1) * kw`` loads for ``4 * kh * kw`` multiply-adds.
    """
    sums = (bias, bias, bias, bias)
    sums = _tap_row(0, sums, padded, i, pitch, dw, w_flat, w0, cols)
    if len(rows) > 1:
        sums = _tap_row(1, sums, padded, i, pitch, dw, w_flat, w0, cols)
    if len(rows) > 2:
        sums = _tap_row(2, sums, padded, i, pitch, dw, w_flat, w0, cols)
    if len(rows) > 3:
        sums = _tap_row(3, sums, padded, i, pitch, dw, w_flat, w0, cols)
    if len(rows) > 4:
        sums = _tap_row(4, sums, padded, i, pitch, dw, w_flat, w0, cols)
    if len(rows) > 5:
        sums = _tap_row(5, sums, padded, i, pitch, dw, w_flat, w0, cols)
    if len(rows) > 6:
        sums = _tap_row(6, sums, padded, i, pitch, dw, w_flat, w0, cols)
    a0, a1, a2, a3 = sums
    out, at, step = dst
    store16(out, at, a0)
    store16(out, at + step, a1)
    store16(out, at + U(2) * step, a2)
    store16(out, at + U(3) * step, a3)


#: Row counts of the register blocks of a narrow plane (:func:`_narrow_plane`): a plane
#: is cut into blocks of 7 and 4 rows (:func:`narrow_blocks`), so that 14 rows are two
#: blocks, 8 two of 4 and 10 one of each.
NARROW_BLOCKS = (7, 4)
#: The tallest kernel whose narrow planes take blocks of 7 rows. With a 7x7 kernel a
#: 7-row block keeps more input vectors live than there are registers (199 vector
#: spills in its asm): measured, kernel alone, 2 threads, Zen 4, 8 x 768 planes of
#: 7 x 7, two blocks of 4 rows 435-442 us against 481-575 for one of 7; 8 x 96 planes
#: of 10 x 10, 80-83 against 90-98 us.
MAX_TALL_KERNEL = 3


@inlined
def narrow_blocks(h_out, kh_size):
    """How many of a narrow plane's register blocks have 7 rows, the others 4: the cut that
    computes the fewest rows (the last block may overlap the one before it), and of those
    the one with the fewest blocks; none for a kernel taller than :data:`MAX_TALL_KERNEL`."""
    if kh_size > MAX_TALL_KERNEL:
        return 0
    tall, short = NARROW_BLOCKS
    best, best_rows, best_count = 0, -1, 0
    for sevens in range(-(-h_out // tall) + 1):
        fours = -(-max(h_out - tall * sevens, 0) // short)
        rows, count = tall * sevens + short * fours, sevens + fours
        if best_rows < 0 or rows < best_rows or (rows == best_rows and count < best_count):
            best, best_rows, best_count = sevens, rows, count
    return best


@inlined
def _input_vector(x_flat, zeros, first_row, top, t, in_hw, shift, w_out):
    """Input row ``top + t`` of a plane (``first_row`` the offset of row ``top``) from column
    ``shift`` on, as output lanes: lane ``j`` holds column ``j + shift``, or zero where that
    lies on the padding or past ``W_out``.

    A row outside the input is read from ``zeros`` (``W_in`` of them, read at
    the same columns): a scalar choice of the address, and the lanes' mask
    stays the same for every row. ``t * W_in`` (``t`` a constant) is the same
    for every block, computed once.
    """
    h_in, w_in = in_hw
    # One unsigned comparison tells both sides.
    return load16_window(x_flat, first_row + t * w_in, zeros, 0, U(top + t) < U(h_in), shift,
                         max(-shift, 0), min(w_out, w_in - shift))


@inlined
def _narrow_tap_row(kh, sums, x_flat, zeros, plane_in, top, in_hw, w_out, dw, pw, w_flat, w0,
                    cols):
    """``sums`` (a block's rows' vectors; its first row's kernel row 0 reads input row
    ``top``) plus the taps of kernel row ``kh`` (a constant).

    The loops have constant lengths and LLVM unrolls them. As in
    :func:`_tap_row`, row ``r`` in kernel row ``kh`` reads the input row that
    row ``r + 1`` reads in kernel row ``kh - 1``: the same masked load,
    which LLVM loads once.
    """
    for kw in range(len(cols)):
        wv = splat16(w_flat[w0 + U(kh * len(cols) + kw)])
        shift = kw * dw - pw
        for r in range(len(sums)):
            row = _input_vector(x_flat, zeros, plane_in + top * in_hw[1], top, kh + r, in_hw,
                                shift, w_out)
            sums = tuple_setitem(sums, r, fma16(row, wv, sums[r]))
    return sums


@inlined
def _narrow_block(x_flat, zeros, plane_in, in_hw, w_flat, w0, sums, out_flat, plane_out, oh,
                  out_hw, pad, dw, rows, cols):
    """Output rows ``oh ... oh + len(sums) - 1`` of a narrow plane, from the bias vectors
    ``sums``: every tap in (kh, kw) order, then the stores.

    Each kernel row is one call: a loop over them stays rolled for 7x7, so
    its loads are not shared between kernel rows (measured here, 8 x 256
    planes of 8 x 8: 251-259 us against 145). A row's whole-vector store
    writes its lanes past ``W_out`` on the rows after, which are stored
    later (rows go in increasing order, a block overlapping the one before
    included); near the plane's end a row is a masked store, so nothing
    lands outside the plane (perhaps another task's), and rows past it (in
    a plane shorter than the block) are not stored.
    """
    h_out, w_out = out_hw
    ph, pw = pad
    top = oh - ph
    sums = _narrow_tap_row(0, sums, x_flat, zeros, plane_in, top, in_hw, w_out, dw, pw, w_flat,
                           w0, cols)
    if len(rows) > 1:
        sums = _narrow_tap_row(1, sums, x_flat, zeros, plane_in, top, in_hw, w_out, dw, pw,
                               w_flat, w0, cols)
    if len(rows) > 2:
        sums = _narrow_tap_row(2, sums, x_flat, zeros, plane_in, top, in_hw, w_out, dw, pw,
                               w_flat, w0, cols)
    if len(rows) > 3:
        sums = _narrow_tap_row(3, sums, x_flat, zeros, plane_in, top, in_hw, w_out, dw, pw,
                               w_flat, w0, cols)
    if len(rows) > 4:
        sums = _narrow_tap_row(4, sums, x_flat, zeros, plane_in, top, in_hw, w_out, dw, pw,
                               w_flat, w0, cols)
    if len(rows) > 5:
        sums = _narrow_tap_row(5, sums, x_flat, zeros, plane_in, top, in_hw, w_out, dw, pw,
                               w_flat, w0, cols)
    if len(rows) > 6:
        sums = _narrow_tap_row(6, sums, x_flat, zeros, plane_in, top, in_hw, w_out, dw, pw,
                               w_flat, w0, cols)
    at, step = plane_out + U(oh * w_out), U(w_out)
    if (oh + len(sums) - 1) * w_out + LANES <= h_out * w_out:
        # Every row's whole vector ends inside the plane.
        for r in range(len(sums)):
            store16(out_flat, at + U(r) * step, sums[r])
    else:
        for r in range(len(sums)):
            if oh + r < h_out:
                if (oh + r) * w_out + LANES <= h_out * w_out:
                    store16(out_flat, at + U(r) * step, sums[r])
                else:
                    store16_first(out_flat, at + U(r) * step, sums[r], w_out)


@inlined
def _narrow_plane(x_flat, zeros, plane_in, in_hw, w_flat, w0, bias, out_flat, plane_out,
                  out_hw, pad, dw, rows, cols, sevens):
    """One plane of an output narrower than a vector (``W_out < 16``), straight from the input.

    Every output row is one vector. ``sevens`` blocks of 7 rows and then
    blocks of 4 (:func:`narrow_blocks`; the last one ends at the plane's
    last row, overlapping the one before it: the same values, stored twice)
    keep their sums in registers over every tap (bias, then the taps in
    (kh, kw) order), and the input rows come in by masked loads
    (:func:`._simd.load16_window`) whose zero lanes are the padding: no
    plane buffer to fill, no flat output to copy out.
    """
    h_out = out_hw[0]
    tall, short = NARROW_BLOCKS
    for block in range(sevens):
        _narrow_block(x_flat, zeros, plane_in, in_hw, w_flat, w0,
                      (bias, bias, bias, bias, bias, bias, bias), out_flat, plane_out,
                      max(min(block * tall, h_out - tall), 0), out_hw, pad, dw, rows, cols)
    for block in range(-(-max(h_out - sevens * tall, 0) // short)):
        _narrow_block(x_flat, zeros, plane_in, in_hw, w_flat, w0, (bias, bias, bias, bias),
                      out_flat, plane_out, max(min(sevens * tall + block * short,
                                                   h_out - short), 0),
                      out_hw, pad, dw, rows, cols)


@jit(parallel=True)
def depthwise_rows_channels_first(x, w, bias, out, dilation, pad, rows, cols):
    """Depthwise convolution (any multiplier) of 2-D channels_first float32 data, stride 1,
    dilation 1 along H, in register blocks of :data:`ROW_BLOCK` output rows (of 7 or 4
    rows for outputs narrower than a vector, :func:`_narrow_plane`).

    As :func:`depthwise_channels_first` (the zero-padded plane buffer, a flat
    output with the padded pitch), but 16 flat outputs of 4 consecutive rows
    at a time keep their sums in registers over every tap (``len(rows) x
    len(cols)`` = ``kh x kw``, unrolled), so each input vector loaded feeds
    up to 4 rows' multiply-adds. An output at least 4 rows tall and 16
    wide is stored in place: each row's last vector ends at ``W_out`` and
    the last block at ``H_out``, overlapping their neighbours (the same
    values, stored twice), with no flat buffer and no copy out (measured,
    dw3x3_mbv2_56 channels_first, 2 threads, Intel Xeon: 0.67 against 0.94
    ms; with the data in L2, 0.086 against 0.111 ms, of which the copy out
    was 0.035). In place with multiplier 1, the plane buffer is filled a
    block's rows at a time, just before the block that first reads them
    (otherwise whole, first: with a multiplier the next output plane reads
    the same input, and small planes measured slower with the per-block
    bookkeeping, dw3x3_14 0.20 against 0.16 ms), and each vector step prefetches
    a share of the input rows :data:`ROWS_AHEAD` padded rows on (into the
    next plane at the end of one): measured, mbv2 and dw7x7_convnext_56
    channels_first, 0.60 and 1.15 ms against 0.66 and 1.22 with the whole
    plane copied first (the fill alone, without the prefetch: 0.645 and
    1.15; 4 to 16 rows ahead alike). A smaller output goes through the flat buffer, whose rows'
    vectors may run past ``W_out`` into the next flat row (the same values,
    computed by the same expression), and whose rows past ``H_out`` (the
    last block's) read zeros and are dropped. An output narrower than a
    vector (``dw3x3_14``) reads the input itself, one vector a row, in blocks
    of 7 or 4 rows (:func:`_narrow_plane`): measured, kernel alone, 2
    threads, Zen 4, alternating processes, dw3x3_14 96-97 us against 130-132
    with the plane buffer, 16-lane rows of a literal pitch of 16 and the flat
    output; 7 x 7 planes (8 x 960 channels, 3x3) 141-143 against 217-219;
    8 x 8 planes (8 x 256) 3x3 44-45 against 60-62, 7x7 145 against 155-157.
    """
    n_batch, c_in = x.shape[0], x.shape[1]
    c_out, _, _, kh_size, kw_size = w.shape
    h_out, w_out = out.shape[3], out.shape[4]
    multiplier = c_out // c_in
    dw = U(dilation[2])
    ph, pw = pad[1], pad[2]
    x_flat, w_flat, out_flat = x.reshape(-1), w.reshape(-1), out.reshape(-1)
    # Rows narrower than a vector read the input straight (_narrow_plane).
    narrow = w_out < LANES
    sevens = narrow_blocks(h_out, kh_size)
    pitch = w_out + (kw_size - 1) * dilation[2]
    blocks = (h_out + ROW_BLOCK - 1) // ROW_BLOCK
    vectors = (w_out + LANES - 1) // LANES
    # Outputs at least a block tall and a vector wide are stored in place;
    # the others go through the flat buffer and are copied out.
    in_place = not narrow and h_out >= ROW_BLOCK and w_out >= LANES
    # In place with multiplier 1, the input is copied in and prefetched as the
    # blocks go (with a multiplier, the next output plane reads the same input).
    streaming = in_place and multiplier == 1
    # Rows read: every block's, one more for the last vectors' overrun, and a
    # vector's worth of slack.
    h_pad = blocks * ROW_BLOCK + kh_size - 1 + 1
    planes = n_batch * c_out
    h_in, w_in = x.shape[3], x.shape[4]
    size = U(x_flat.size)
    for task in prange((planes + PLANES_PER_TASK - 1) // PLANES_PER_TASK):
        wide_vectors()
        # Narrow planes need neither buffer, only a zero row.
        padded = aligned_buffer(w_in if narrow else h_pad * pitch + LANES, x_flat)
        padded[:] = 0
        flat = aligned_buffer(1 if narrow else (blocks * ROW_BLOCK + 1) * pitch + LANES,
                              out_flat)
        for plane in range(task * PLANES_PER_TASK, min((task + 1) * PLANES_PER_TASK, planes)):
            o = plane % c_out
            first_in = ((plane // c_out) * c_in + o // multiplier) * h_in * w_in
            plane_in = U(first_in)
            w0 = U(o * kh_size * kw_size)
            b = splat16(bias[o])
            plane_out = U(plane * h_out * w_out)
            if narrow:
                _narrow_plane(x_flat, padded, first_in, (h_in, w_in), w_flat, w0, b, out_flat,
                              plane_out, (h_out, w_out), (ph, pw), dilation[2], rows, cols,
                              sevens)
                continue
            if not streaming:
                _fill_rows(padded, pitch, (ph, pw), x_flat, plane_in, h_in, w_in, 0, h_pad)
            filled = 0
            for block in range(blocks):
                if in_place:
                    # The last block and each row's last vector end at the output's
                    # edge, overlapping their neighbours (same values, stored twice).
                    oh = min(block * ROW_BLOCK, h_out - ROW_BLOCK)
                    ahead, run = size, U(0)
                    if streaming:
                        # The padded rows the block reads, copied in just before it
                        # (the input streams in between the arithmetic), and the input
                        # rows a few blocks on (past the plane: the next plane's).
                        reach = min(oh + ROW_BLOCK + kh_size, h_pad)
                        _fill_rows(padded, pitch, (ph, pw), x_flat, plane_in, h_in, w_in,
                                   filled, reach)
                        filled = max(filled, reach)
                        ahead = min(plane_in + U(max(filled + ROWS_AHEAD - ph, 0) * w_in), size)
                        run = min(U(ROW_BLOCK * w_in), size - ahead)
                    for v in range(vectors):
                        ow = min(v * LANES, w_out - LANES)
                        _row_block(padded, U(oh * pitch + ow), U(pitch), dw, w_flat, w0,
                                   (out_flat, plane_out + U(oh * w_out + ow), U(w_out)), b,
                                   rows, cols)
                        prefetch_part(x_flat, ahead, run, v, vectors)
                else:
                    for v in range(vectors):
                        i = U(block * ROW_BLOCK * pitch + v * LANES)
                        _row_block(padded, i, U(pitch), dw, w_flat, w0, (flat, i, U(pitch)), b,
                                   rows, cols)
            if not in_place:
                for oh in range(h_out):
                    copy_run(out_flat, plane_out + U(oh * w_out), flat, U(oh * pitch),
                             U(w_out))
