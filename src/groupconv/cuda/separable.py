"""Fused depthwise-separable convolution on the GPU: the depthwise result never leaves the chip.

A block owns ``pixels`` consecutive output positions (of one batch entry)
times ``outs`` consecutive output channels, one output per thread, held in a
register for the whole kernel. It walks the ``C_in * M`` depthwise channels
in chunks of ``chunk``:

1. the block computes the depthwise results of the chunk at its pixels
   (each from global memory, through the padding index map) into shared
   memory, ``mid[chunk][pixels + 1]`` (the +1 skews rows across banks), and
   stages the matching ``outs x chunk`` block of the pointwise weight;
2. after a barrier, each thread adds ``sum_m pw[o, m] * mid[m, p]`` to its
   accumulator.

So the intermediate ``(N, C_in * M, *out)`` tensor is never written to or
read from global memory: per output pixel, global traffic is the input
window and the output row, instead of an extra ``2 * C_in * M`` elements.
The price is that a depthwise result is recomputed once per block of
``outs`` output channels, ``ceil(C_out / outs)`` times: ``k`` taps each,
against ``C_in * M`` multiply-adds per output of the pointwise step, so the
extra work is a fraction ``k / outs`` of the depthwise-plus-pointwise total
(9/16 of the depthwise part for a 3x3 kernel and 16 output channels per
block); :func:`plan` makes ``outs`` as large as the layout allows.

Thread order follows the contiguous axis of the output: pixels fastest for
channels_first (``outs x pixels`` = 16 x 16 at 256 threads), output
channels fastest for channels_last (8 pixels x 32 channels).
"""

from __future__ import annotations

import dataclasses
import functools

import numba
import numpy as np

from . import _launch
from ._device import (
    ACC_DTYPES,
    array,
    compile_kernel,
    cuda,
    index3,
    numba_type,
    source_index,
    storage_pairs,
)

__all__ = ["Plan", "kernel", "plan", "signature", "specialisations"]

LAYOUTS = ("channels_first", "channels_last")


@dataclasses.dataclass(frozen=True)
class Plan:
    """A launch of the fused kernel: ``tile = (pixels, outs, chunk)``, threads, blocks, bytes."""

    tile: tuple[int, int, int]
    threads: int
    blocks: int
    shared_bytes: int


def _pow2_at_least(n: int, cap: int) -> int:
    p = 1
    while p < n and p < cap:
        p *= 2
    return p


def plan(layout, n_pixels, c_mid, c_out, batch, acc_dtype) -> Plan:
    """Choose the tile of a fused launch from the threads per block and the sizes."""
    threads = _launch.threads_per_block()
    if layout == "channels_first":
        # Half-warp runs of pixels keep stores coalesced in 64-byte segments
        # while leaving room for more output channels per block (less recompute).
        pixels = min(_pow2_at_least(n_pixels, 16), threads)
        outs = min(_pow2_at_least(c_out, 1024), max(1, threads // pixels))
    else:
        outs = min(_pow2_at_least(c_out, 32), threads)
        pixels = min(_pow2_at_least(n_pixels, 1024), max(1, threads // outs))
    chunk = min(_pow2_at_least(c_mid, 32), 32)
    shared_bytes = (chunk * (pixels + 1) + outs * chunk) * np.dtype(acc_dtype).itemsize
    jobs = batch * -(-n_pixels // pixels) * -(-c_out // outs)
    return Plan(tile=(pixels, outs, chunk), threads=pixels * outs,
                blocks=_launch.blocks_for(jobs, 1), shared_bytes=shared_bytes)


def signature(acc_dtype: str, x_dtype: str, out_dtype: str):
    """The one signature the kernel is compiled for (arrays of any strides)."""
    i64 = numba.types.int64
    return numba.types.void(
        array(x_dtype, 5), array(acc_dtype, 5), array(acc_dtype, 2), array(acc_dtype, 1),
        array(out_dtype, 5), index3(), index3(), index3(), i64, i64, index3(),
    )


def specialisations():
    """Every ``(name, python function, signature)`` the driver can launch."""
    for layout in LAYOUTS:
        for acc in ACC_DTYPES:
            for x_dtype, out_dtype in storage_pairs(acc):
                yield (f"separable_{layout}[{acc}; x {x_dtype}, out {out_dtype}]",
                       python_function(layout, acc), signature(acc, x_dtype, out_dtype))


@functools.cache
def kernel(layout: str, acc_dtype: str, x_dtype: str, out_dtype: str):
    """The fused separable kernel for one layout and dtype combination.

    Returns
    -------
    numba.cuda dispatcher
        ``kernel[plan.blocks, plan.threads, stream, plan.shared_bytes](x,
        depthwise_weight, pointwise_weight, bias, out, stride, dilation,
        pad, multiplier, mode, plan.tile)`` with ``depthwise_weight``
        ``(C_in * M, 1, kd, kh, kw)``, ``pointwise_weight`` ``(C_out, C_in *
        M)``, ``bias`` ``(C_out,)`` and the rest as for
        :func:`.direct.kernel`.
    """
    return compile_kernel(python_function(layout, acc_dtype),
                          signature(acc_dtype, x_dtype, out_dtype))


@functools.cache
def python_function(layout: str, acc_dtype: str):
    """The kernel's Python function for ``layout``, accumulating in ``acc_dtype``."""
    acc_t = numba_type(acc_dtype)
    source = source_index()
    channels_first = layout == "channels_first"

    def separable_fused(x, dwt, pwt, bias, out, stride, dilation, pad, multiplier, mode,
                        tile):
        if channels_first:
            n_batch, c_in, d_in, h_in, w_in = x.shape
            d_out, h_out, w_out = out.shape[2], out.shape[3], out.shape[4]
        else:
            n_batch, d_in, h_in, w_in, c_in = x.shape
            d_out, h_out, w_out = out.shape[1], out.shape[2], out.shape[3]
        c_mid = dwt.shape[0]
        kd_n, kh_n, kw_n = dwt.shape[2], dwt.shape[3], dwt.shape[4]
        c_out = pwt.shape[0]
        sd, sh, sw = stride
        dd, dh, dw = dilation
        pd, ph, pw = pad
        pixels, outs, chunk = tile
        row = pixels + 1  # skewed rows of mid: no bank conflicts on column access
        pw_base = chunk * row
        n_pix = d_out * h_out * w_out
        tiles_p = (n_pix + pixels - 1) // pixels
        tiles_o = (c_out + outs - 1) // outs
        jobs = n_batch * tiles_p * tiles_o
        shared = cuda.shared.array(0, acc_t)
        tid = cuda.threadIdx.x
        n_threads = cuda.blockDim.x
        if channels_first:
            my_p = tid % pixels
            my_o = tid // pixels
        else:
            my_o = tid % outs
            my_p = tid // outs
        for job in range(cuda.blockIdx.x, jobs, cuda.gridDim.x):
            to = job % tiles_o
            rest = job // tiles_o
            tp = rest % tiles_p
            n = rest // tiles_p
            pix0 = tp * pixels
            o0 = to * outs
            acc = acc_t(0)
            for m0 in range(0, c_mid, chunk):
                for e in range(tid, chunk * pixels, n_threads):
                    if channels_first:
                        p = e % pixels  # pixels fastest: reads along W
                        mm = e // pixels
                    else:
                        mm = e % chunk  # channels fastest: reads along C
                        p = e // chunk
                    m = m0 + mm
                    pix = pix0 + p
                    value = acc_t(0)
                    if m < c_mid and pix < n_pix:
                        ox = pix % w_out
                        oy = (pix // w_out) % h_out
                        oz = pix // (w_out * h_out)
                        c = m // multiplier
                        for kz in range(kd_n):
                            iz = source(oz * sd + kz * dd - pd, d_in, mode)
                            if iz < 0:
                                continue
                            for ky in range(kh_n):
                                iy = source(oy * sh + ky * dh - ph, h_in, mode)
                                if iy < 0:
                                    continue
                                for kx in range(kw_n):
                                    ix = source(ox * sw + kx * dw - pw, w_in, mode)
                                    if ix < 0:
                                        continue
                                    if channels_first:
                                        v = x[n, c, iz, iy, ix]
                                    else:
                                        v = x[n, iz, iy, ix, c]
                                    value += acc_t(dwt[m, 0, kz, ky, kx]) * acc_t(v)
                    shared[mm * row + p] = value
                for e in range(tid, outs * chunk, n_threads):
                    mm = e % chunk
                    ol = e // chunk
                    value = acc_t(0)
                    if o0 + ol < c_out and m0 + mm < c_mid:
                        value = acc_t(pwt[o0 + ol, m0 + mm])
                    shared[pw_base + e] = value
                cuda.syncthreads()
                if my_o < outs:
                    for mm in range(chunk):
                        acc += shared[pw_base + my_o * chunk + mm] * shared[mm * row + my_p]
                cuda.syncthreads()
            o = o0 + my_o
            pix = pix0 + my_p
            if my_o < outs and o < c_out and pix < n_pix:
                ox = pix % w_out
                oy = (pix // w_out) % h_out
                oz = pix // (w_out * h_out)
                acc += acc_t(bias[o])
                if channels_first:
                    out[n, o, oz, oy, ox] = acc
                else:
                    out[n, oz, oy, ox, o] = acc

    separable_fused.__name__ = f"separable_{layout}"
    return separable_fused
