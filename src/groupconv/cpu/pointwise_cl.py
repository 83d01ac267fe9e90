"""Pointwise (1x1) convolution, channels_last, float32, few outputs: a register micro-kernel.

A 1x1 convolution with unit stride and no padding is a matrix product of
the ``(pixels, C_in)`` input with the ``(C_in, C_out)`` weight, the pixels
consecutive in memory across rows and images. BLAS is slow when ``C_out``
is small (MobileNet's 144 -> 24 projections: a product 24 columns wide);
here a block of :data:`PIXEL_BLOCK` pixels times :data:`OUTPUT_PASS`
outputs keeps its sums in vector registers (:mod:`._simd`) across every
input channel. With AVX-512 (32 registers) a block is 12 pixels x 32
outputs: per channel, 2 weight vectors and 12 broadcast inputs feed 24
multiply-adds. With 16 registers (AVX2) it is 6 pixels x 16 outputs, 6
multiply-adds per weight vector (24 sums would not fit: see
:func:`._vector_width.register_vectors`). The weight is zero-padded to
whole passes of :data:`OUTPUT_PASS` outputs;
the stores write only the real outputs (masked stores) and the real
pixels, so a block may end a row or the data and nothing is written twice.

:func:`block` is also the pointwise step of the fused separable kernel
(:mod:`.separable`), reading its depthwise tile.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._common import U, aligned_buffer, rows_per_task
from ._jit import inlined, jit
from ._simd import (
    LANES,
    fma16,
    load16,
    splat8,
    splat16,
    store16_first,
    vfma,
    vload,
    vsplat,
    vstore_first,
)
from ._vector_width import REGISTER_VECTORS, wide_vectors

__all__ = ["OUTPUT_PASS", "PIXEL_BLOCK", "applies", "block", "blocks_per_task", "packed_bias",
           "packed_weight", "pass_count", "pixels_through_passes", "pointwise_channels_last"]

_WIDE = REGISTER_VECTORS >= 32
#: Outputs of one pass: 2 vectors, or 1 where the registers hold 8 vectors.
OUTPUT_PASS = (2 if _WIDE else 1) * LANES
#: Pixels of one block (12 x 2 sums + 2 weights + 1 broadcast: 27 of 32
#: registers; or 6 sums + 1 weight + 1 broadcast: 8 vectors).
PIXEL_BLOCK = 12 if _WIDE else 6
#: Largest weight (C_in x C_out values) taken; larger products go to BLAS,
#: which tiles them for the caches.
MAX_WEIGHT_VALUES = 2**17
#: Pixel blocks per task, at most (tasks are many and short, for balance).
TASK_BLOCKS = 64


def applies(spec) -> bool:
    """Whether ``spec`` runs on :func:`pointwise_channels_last`.

    channels_last float32, one group, a 1x1 kernel with unit stride and no
    padding, ``C_out`` not a multiple of 64 (those take the
    micro-kernel of :mod:`.dense_cl`) and a weight of at most
    :data:`MAX_WEIGHT_VALUES` values.
    """
    rank = spec.rank
    return (spec.layout == "channels_last" and spec.dtype == np.dtype(np.float32)
            and spec.groups == 1 and tuple(spec.kernel_size) == (1,) * rank
            and tuple(spec.stride) == (1,) * rank
            and all(lo == 0 and hi == 0 for lo, hi in spec.padding)
            and spec.c_out % 64 != 0 and spec.c_in * spec.c_out <= MAX_WEIGHT_VALUES)


def blocks_per_task(pixels: int) -> int:
    """The ``blocks_per_task`` argument for ``pixels`` pixels."""
    return rows_per_task(-(-pixels // PIXEL_BLOCK), TASK_BLOCKS)


@inlined
def pass_count(c_out):
    """Passes of :data:`OUTPUT_PASS` outputs that cover ``c_out`` outputs."""
    return (c_out + OUTPUT_PASS - 1) // OUTPUT_PASS


@inlined
def packed_weight(weight, like):
    """The ``(C_out, C_in)`` weight as a flat aligned ``(passes, C_in, OUTPUT_PASS)`` buffer, the
    outputs zero-padded to whole passes.

    Inside the kernels (before their parallel loop): packed from Python the
    copies cost tens of us a call right after a kernel, with the caches cold.
    """
    c_out, c_in = weight.shape
    packed = aligned_buffer(pass_count(c_out) * c_in * OUTPUT_PASS, like)
    packed[:] = 0
    for o in range(c_out):
        p, k = o // OUTPUT_PASS, o % OUTPUT_PASS
        for c in range(c_in):
            packed[(p * c_in + c) * OUTPUT_PASS + k] = weight[o, c]
    return packed


@inlined
def packed_bias(bias, like):
    """``(C_out,)`` as a flat aligned buffer zero-padded to whole passes of :data:`OUTPUT_PASS`."""
    packed = aligned_buffer(pass_count(bias.size) * OUTPUT_PASS, like)
    packed[:] = 0
    packed[:bias.size] = bias
    return packed


@inlined
def _fma2(lo, hi, value, w_lo, w_hi):
    return fma16(splat16(value), w_lo, lo), vfma(vsplat(hi, value), w_hi, hi)


@inlined
def _store2(dst, at, lo, hi, outputs):
    """A pixel's ``outputs`` (1..32) sums: ``lo`` holds the first 16, ``hi`` the rest.

    Masked stores both (one with every lane on is as fast as a plain store):
    fewer call sites to compile than a choice between plain and masked.
    """
    store16_first(dst, at, lo, min(outputs, LANES))
    if outputs > LANES:
        vstore_first(dst, at + U(LANES), hi, outputs - LANES)


@inlined
def _block_12x32(src, s0, pixel_step, pixels, channels, w_flat, w0, b_flat, b0, dst, d0, out_step,
          outputs, hi):
    """``dst[d0 + p*out_step + o] = bias[b0 + o] + sum_k src[s0 + p*pixel_step + k] * w[k, o]``.

    For the block's first ``pixels`` (1..:data:`PIXEL_BLOCK`) pixels and
    ``outputs`` (1..:data:`OUTPUT_PASS`) outputs; ``w[k, o]`` is
    ``w_flat[w0 + k*OUTPUT_PASS + o]``, ``channels`` the
    ``k`` summed, in order, one FMA each after the bias. Pixels past
    ``pixels`` read the last real pixel and store nothing.

    Outputs 16 to 31 are a vector per pixel, or a half vector (outputs 16 to
    23) when ``hi`` (a vector whose value is unused) is one: a pass of at
    most 24 outputs, such as MobileNet's 24, then does 12 half-width
    multiply-adds per channel in place of 12 whole ones (measured,
    pw1x1_56 on Zen 4: 1.99 against 2.24 ms, the kernel alone).
    """
    last = U(pixels - 1)
    s = (s0, s0 + min(U(1), last) * pixel_step, s0 + min(U(2), last) * pixel_step,
         s0 + min(U(3), last) * pixel_step, s0 + min(U(4), last) * pixel_step,
         s0 + min(U(5), last) * pixel_step, s0 + min(U(6), last) * pixel_step,
         s0 + min(U(7), last) * pixel_step, s0 + min(U(8), last) * pixel_step,
         s0 + min(U(9), last) * pixel_step, s0 + min(U(10), last) * pixel_step,
         s0 + min(U(11), last) * pixel_step)
    s_0, s_1, s_2, s_3, s_4, s_5, s_6, s_7, s_8, s_9, s_10, s_11 = s
    l0 = l1 = l2 = l3 = l4 = l5 = l6 = l7 = l8 = l9 = l10 = l11 = load16(b_flat, b0)
    h0 = h1 = h2 = h3 = h4 = h5 = h6 = h7 = h8 = h9 = h10 = h11 = vload(hi, b_flat,
                                                                        b0 + U(LANES))
    for k in range(U(channels)):
        w_lo = load16(w_flat, w0 + k * U(OUTPUT_PASS))
        w_hi = vload(hi, w_flat, w0 + k * U(OUTPUT_PASS) + U(LANES))
        l0, h0 = _fma2(l0, h0, src[s_0 + k], w_lo, w_hi)
        l1, h1 = _fma2(l1, h1, src[s_1 + k], w_lo, w_hi)
        l2, h2 = _fma2(l2, h2, src[s_2 + k], w_lo, w_hi)
        l3, h3 = _fma2(l3, h3, src[s_3 + k], w_lo, w_hi)
        l4, h4 = _fma2(l4, h4, src[s_4 + k], w_lo, w_hi)
        l5, h5 = _fma2(l5, h5, src[s_5 + k], w_lo, w_hi)
        l6, h6 = _fma2(l6, h6, src[s_6 + k], w_lo, w_hi)
        l7, h7 = _fma2(l7, h7, src[s_7 + k], w_lo, w_hi)
        l8, h8 = _fma2(l8, h8, src[s_8 + k], w_lo, w_hi)
        l9, h9 = _fma2(l9, h9, src[s_9 + k], w_lo, w_hi)
        l10, h10 = _fma2(l10, h10, src[s_10 + k], w_lo, w_hi)
        l11, h11 = _fma2(l11, h11, src[s_11 + k], w_lo, w_hi)
    _store2(dst, d0, l0, h0, outputs)
    if pixels > 1:
        _store2(dst, d0 + out_step, l1, h1, outputs)
    if pixels > 2:
        _store2(dst, d0 + U(2) * out_step, l2, h2, outputs)
    if pixels > 3:
        _store2(dst, d0 + U(3) * out_step, l3, h3, outputs)
    if pixels > 4:
        _store2(dst, d0 + U(4) * out_step, l4, h4, outputs)
    if pixels > 5:
        _store2(dst, d0 + U(5) * out_step, l5, h5, outputs)
    if pixels > 6:
        _store2(dst, d0 + U(6) * out_step, l6, h6, outputs)
    if pixels > 7:
        _store2(dst, d0 + U(7) * out_step, l7, h7, outputs)
    if pixels > 8:
        _store2(dst, d0 + U(8) * out_step, l8, h8, outputs)
    if pixels > 9:
        _store2(dst, d0 + U(9) * out_step, l9, h9, outputs)
    if pixels > 10:
        _store2(dst, d0 + U(10) * out_step, l10, h10, outputs)
    if pixels > 11:
        _store2(dst, d0 + U(11) * out_step, l11, h11, outputs)


@inlined
def _block_6x16(src, s0, pixel_step, pixels, channels, w_flat, w0, b_flat, b0, dst, d0,
                out_step, outputs, hi):
    """:func:`_block_12x32` for 6 pixels x 16 outputs (``hi`` unused)."""
    last = U(pixels - 1)
    s_0, s_1 = s0, s0 + min(U(1), last) * pixel_step
    s_2, s_3 = s0 + min(U(2), last) * pixel_step, s0 + min(U(3), last) * pixel_step
    s_4, s_5 = s0 + min(U(4), last) * pixel_step, s0 + min(U(5), last) * pixel_step
    a0 = a1 = a2 = a3 = a4 = a5 = load16(b_flat, b0)
    for k in range(U(channels)):
        w = load16(w_flat, w0 + k * U(OUTPUT_PASS))
        a0 = fma16(splat16(src[s_0 + k]), w, a0)
        a1 = fma16(splat16(src[s_1 + k]), w, a1)
        a2 = fma16(splat16(src[s_2 + k]), w, a2)
        a3 = fma16(splat16(src[s_3 + k]), w, a3)
        a4 = fma16(splat16(src[s_4 + k]), w, a4)
        a5 = fma16(splat16(src[s_5 + k]), w, a5)
    store16_first(dst, d0, a0, outputs)
    if pixels > 1:
        store16_first(dst, d0 + out_step, a1, outputs)
    if pixels > 2:
        store16_first(dst, d0 + U(2) * out_step, a2, outputs)
    if pixels > 3:
        store16_first(dst, d0 + U(3) * out_step, a3, outputs)
    if pixels > 4:
        store16_first(dst, d0 + U(4) * out_step, a4, outputs)
    if pixels > 5:
        store16_first(dst, d0 + U(5) * out_step, a5, outputs)


#: The block for this target's registers (:data:`PIXEL_BLOCK` x :data:`OUTPUT_PASS`).
block = _block_12x32 if _WIDE else _block_6x16


@inlined
def pixels_through_passes(src, s0, pixel_step, pixels, channels, w_flat, b_flat, passes, dst,
                          d0, c_out):
    """:func:`block` on ``pixels`` (1..:data:`PIXEL_BLOCK`) pixels for every pass of
    :data:`OUTPUT_PASS` outputs: all ``c_out``
    outputs of those pixels (the pixels' inputs stay in L1 between passes). A
    last pass of at most 24 outputs takes the block with half a vector for
    outputs 16 to 23."""
    for o_pass in range(passes):
        o0 = o_pass * OUTPUT_PASS
        outputs = min(OUTPUT_PASS, c_out - o0)
        if _WIDE and outputs <= LANES + LANES // 2:
            block(src, s0, pixel_step, pixels, channels, w_flat, U(o0 * channels), b_flat,
                  U(o0), dst, d0 + U(o0), U(c_out), outputs, splat8(np.float32(0)))
        else:
            block(src, s0, pixel_step, pixels, channels, w_flat, U(o0 * channels), b_flat,
                  U(o0), dst, d0 + U(o0), U(c_out), outputs, splat16(np.float32(0)))


@jit(parallel=True)
def pointwise_channels_last(x, weight, bias, out, blocks_per_task):
    """``out = x @ weight.T + bias`` over the last axis: ``x`` is ``(..., C_in)``, ``out``
    ``(..., C_out)``, both C-contiguous with the same pixels.

    ``weight`` is ``(C_out, C_in)`` and ``bias`` ``(C_out,)``, packed here
    (:func:`packed_weight`, :func:`packed_bias`). A task owns
    ``blocks_per_task`` consecutive blocks of pixels, each through
    :func:`pixels_through_passes`.
    """
    channels, c_out = x.shape[-1], out.shape[-1]
    pixels = x.size // channels
    passes = pass_count(c_out)
    x_flat, w_flat, out_flat = x.reshape(-1), packed_weight(weight, x), out.reshape(-1)
    b_packed = packed_bias(bias, x)
    n_blocks = (pixels + PIXEL_BLOCK - 1) // PIXEL_BLOCK
    tasks = (n_blocks + blocks_per_task - 1) // blocks_per_task
    for task in prange(tasks):
        wide_vectors()
        for b in range(task * blocks_per_task, min((task + 1) * blocks_per_task, n_blocks)):
            p0 = b * PIXEL_BLOCK
            pixels_through_passes(x_flat, U(p0 * channels), U(channels),
                                  min(PIXEL_BLOCK, pixels - p0), channels, w_flat, b_packed,
                                  passes, out_flat, U(p0 * c_out), c_out)
