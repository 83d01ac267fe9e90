"""Depthwise convolution on the GPU with a shared-memory input tile (halo included).

A block computes an output tile and first stages in shared memory (dynamic,
sized per call) everything the tile reads: the input tile with its halo, for
every ``kd`` plane, already padded (the index mapping of :mod:`._device` is
applied while loading, so the inner loop has no bounds checks), and the
filters of the tile's channels. Each input element is then read from global
memory once per tile instead of once per tap, and each thread computes its
outputs from shared memory. Loads and stores go along the contiguous axis:

* ``channels_first`` ``(N, C, D, H, W)``: a tile is ``tile_h x tile_w``
  outputs of one channel, ``tile_w`` up to 32 consecutive ``W`` positions
  (one warp row). The ``M`` outputs of a channel multiplier reuse the same
  input tile.
* ``channels_last`` ``(N, D, H, W, C)``: a tile is ``tile_c`` consecutive
  channels (up to 32) times ``tile_h x tile_w`` pixels; the shared tile
  keeps the channel innermost, so loads, shared reads (consecutive banks)
  and the ``C * M`` output writes are all along the channel axis.

Blocks loop over tiles (a block-stride loop), so any grid size covers any
problem. The host-side :func:`plan` picks the tile from the launch's threads
per block and returns ``None`` when the shared memory needed exceeds
:data:`._launch.SHARED_MEMORY_BYTES` (very large kernels or dilations); the
driver then uses the direct kernel.
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
    """A launch of the depthwise kernel: tile sizes, threads, blocks, shared bytes.

    ``tile`` is ``(tile_h, tile_w, tile_c)`` (``tile_c`` is 1 for
    channels_first); ``halo`` is the shared input tile's ``(rows, cols)``.
    """

    tile: tuple[int, int, int]
    halo: tuple[int, int, int]
    threads: int
    blocks: int
    shared_bytes: int


def _pow2_at_least(n: int, cap: int) -> int:
    p = 1
    while p < n and p < cap:
        p *= 2
    return p


def plan(layout, out_spatial, kernel_size, stride, dilation, c_in, multiplier, batch,
         acc_dtype) -> Plan | None:
    """Choose the tile for a depthwise launch, or None if it needs too much shared memory.

    All sizes are 3-D (the driver's 5-D view): ``out_spatial``,
    ``kernel_size``, ``stride`` and ``dilation`` are ``(d, h, w)`` triples.
    """
    threads = _launch.threads_per_block()
    d_out, h_out, w_out = out_spatial
    kd, kh, kw = kernel_size
    _, sh, sw = stride
    _, dh, dw = dilation
    itemsize = np.dtype(acc_dtype).itemsize
    # A tile holds about four outputs per thread: the halo is loaded once per
    # tile, so bigger tiles read less of it again (3x3, stride 1, channels_first
    # at 256 threads: 16 x 32 outputs from an 18 x 34 input tile, 1.2 loads per
    # output; channels_last: 32 channels x 4 x 8 pixels, 1.9).
    budget = 4 * threads
    if layout == "channels_first":
        tile_c = 1
        tile_w = min(_pow2_at_least(w_out, 32), budget)
    else:
        tile_c = min(_pow2_at_least(c_in, 32), budget)
        tile_w = min(_pow2_at_least(w_out, 8), max(1, budget // tile_c))
    tile_h = min(_pow2_at_least(h_out, 1024), max(1, budget // (tile_c * tile_w)))
    while True:
        rows = (tile_h - 1) * sh + (kh - 1) * dh + 1
        cols = (tile_w - 1) * sw + (kw - 1) * dw + 1
        elements = tile_c * multiplier * kd * kh * kw + kd * rows * cols * tile_c
        shared_bytes = elements * itemsize
        if shared_bytes <= _launch.SHARED_MEMORY_BYTES:
            break
        if tile_h > 1:
            tile_h //= 2
        elif tile_w > 1:
            tile_w //= 2
        elif tile_c > 1:
            tile_c //= 2
        else:
            return None
    tiles = (batch * d_out * -(-h_out // tile_h) * -(-w_out // tile_w)
             * -(-c_in // tile_c))
    return Plan(
        tile=(tile_h, tile_w, tile_c),
        halo=(rows, cols, 0),
        # channels_first: a thread computes all M outputs of a pixel;
        # channels_last: one (pixel, channel, q) item at a time.
        threads=min(threads, tile_h * tile_w * (1 if layout == "channels_first"
                                                else tile_c * multiplier)),
        blocks=_launch.blocks_for(tiles, 1),
        shared_bytes=shared_bytes,
    )


def signature(acc_dtype: str, x_dtype: str, out_dtype: str):
    """The one signature the kernel is compiled for (arrays of any strides)."""
    i64 = numba.types.int64
    return numba.types.void(
        array(x_dtype, 5), array(acc_dtype, 5), array(acc_dtype, 1), array(out_dtype, 5),
        index3(), index3(), index3(), i64, i64, index3(), index3(),
    )


def specialisations():
    """Every ``(name, python function, signature)`` the driver can launch."""
    for layout in LAYOUTS:
        for acc in ACC_DTYPES:
            for x_dtype, out_dtype in storage_pairs(acc):
                yield (f"depthwise_{layout}[{acc}; x {x_dtype}, out {out_dtype}]",
                       python_function(layout, acc), signature(acc, x_dtype, out_dtype))


@functools.cache
def kernel(layout: str, acc_dtype: str, x_dtype: str, out_dtype: str):
    """The tiled depthwise kernel for one layout and dtype combination.

    Returns
    -------
    numba.cuda dispatcher
        ``kernel[plan.blocks, plan.threads, stream, plan.shared_bytes](x,
        weight, bias, out, stride, dilation, pad, multiplier, mode,
        plan.tile, plan.halo)``, with ``weight`` ``(C_in * M, 1, kd, kh,
        kw)`` and the other arguments as for :func:`.direct.kernel`.
    """
    return compile_kernel(python_function(layout, acc_dtype),
                          signature(acc_dtype, x_dtype, out_dtype))


@functools.cache
def python_function(layout: str, acc_dtype: str):
    """The kernel's Python function for ``layout``, accumulating in ``acc_dtype``."""
    acc_t = numba_type(acc_dtype)
    source = source_index()

    def depthwise_channels_first(x, wt, bias, out, stride, dilation, pad, multiplier, mode,
                                 tile, halo):
        n_batch, c_in, d_in, h_in, w_in = x.shape
        kd_n, kh_n, kw_n = wt.shape[2], wt.shape[3], wt.shape[4]
        d_out, h_out, w_out = out.shape[2], out.shape[3], out.shape[4]
        sd, sh, sw = stride
        dd, dh, dw = dilation
        pd, ph, pw = pad
        tile_h, tile_w, _ = tile
        rows, cols, _ = halo
        taps = kd_n * kh_n * kw_n
        n_weights = multiplier * taps
        plane = rows * cols
        tiles_h = (h_out + tile_h - 1) // tile_h
        tiles_w = (w_out + tile_w - 1) // tile_w
        jobs = n_batch * d_out * c_in * tiles_h * tiles_w
        shared = cuda.shared.array(0, acc_t)
        tid = cuda.threadIdx.x
        n_threads = cuda.blockDim.x
        # Every thread of a block runs the same jobs, so the barriers are uniform.
        for job in range(cuda.blockIdx.x, jobs, cuda.gridDim.x):
            tx = job % tiles_w
            rest = job // tiles_w
            ty = rest % tiles_h
            rest //= tiles_h
            c = rest % c_in
            rest //= c_in
            od = rest % d_out
            n = rest // d_out
            oy0 = ty * tile_h
            ox0 = tx * tile_w
            for e in range(tid, n_weights, n_threads):
                q = e // taps
                t = e % taps
                shared[e] = acc_t(wt[c * multiplier + q, 0, t // (kh_n * kw_n),
                                     (t // kw_n) % kh_n, t % kw_n])
            for e in range(tid, kd_n * plane, n_threads):
                kz = e // plane
                col = e % cols
                row = (e // cols) % rows
                iz = source(od * sd + kz * dd - pd, d_in, mode)
                iy = source(oy0 * sh - ph + row, h_in, mode)
                ix = source(ox0 * sw - pw + col, w_in, mode)
                value = acc_t(0)
                if iz >= 0 and iy >= 0 and ix >= 0:
                    value = acc_t(x[n, c, iz, iy, ix])
                shared[n_weights + e] = value
            cuda.syncthreads()
            for p in range(tid, tile_h * tile_w, n_threads):
                ly = p // tile_w
                lx = p % tile_w
                oy = oy0 + ly
                ox = ox0 + lx
                if oy < h_out and ox < w_out:
                    corner = n_weights + ly * sh * cols + lx * sw
                    for q in range(multiplier):
                        o = c * multiplier + q
                        acc = acc_t(bias[o])
                        for kz in range(kd_n):
                            for ky in range(kh_n):
                                for kx in range(kw_n):
                                    acc += (
                                        shared[q * taps + (kz * kh_n + ky) * kw_n + kx]
                                        * shared[corner + kz * plane + ky * dh * cols + kx * dw]
                                    )
                        out[n, o, od, oy, ox] = acc
            cuda.syncthreads()

    def depthwise_channels_last(x, wt, bias, out, stride, dilation, pad, multiplier, mode,
                                tile, halo):
        n_batch, d_in, h_in, w_in, c_in = x.shape
        kd_n, kh_n, kw_n = wt.shape[2], wt.shape[3], wt.shape[4]
        d_out, h_out, w_out = out.shape[1], out.shape[2], out.shape[3]
        sd, sh, sw = stride
        dd, dh, dw = dilation
        pd, ph, pw = pad
        tile_h, tile_w, tile_c = tile
        rows, cols, _ = halo
        taps = kd_n * kh_n * kw_n
        width = tile_c * multiplier  # outputs per pixel in a tile
        n_weights = width * taps
        plane = rows * cols * tile_c
        tiles_h = (h_out + tile_h - 1) // tile_h
        tiles_w = (w_out + tile_w - 1) // tile_w
        tiles_c = (c_in + tile_c - 1) // tile_c
        jobs = n_batch * d_out * tiles_h * tiles_w * tiles_c
        shared = cuda.shared.array(0, acc_t)
        tid = cuda.threadIdx.x
        n_threads = cuda.blockDim.x
        for job in range(cuda.blockIdx.x, jobs, cuda.gridDim.x):
            tc = job % tiles_c
            rest = job // tiles_c
            tx = rest % tiles_w
            rest //= tiles_w
            ty = rest % tiles_h
            rest //= tiles_h
            od = rest % d_out
            n = rest // d_out
            c0 = tc * tile_c
            oy0 = ty * tile_h
            ox0 = tx * tile_w
            # Filters as [tap][channel*M + q]: the compute loop reads consecutive banks.
            for e in range(tid, n_weights, n_threads):
                t = e // width
                j = e % width
                value = acc_t(0)
                if c0 * multiplier + j < c_in * multiplier:
                    value = acc_t(wt[c0 * multiplier + j, 0, t // (kh_n * kw_n),
                                     (t // kw_n) % kh_n, t % kw_n])
                shared[e] = value
            # Input tile as [kz][row][col][channel], channel innermost (coalesced loads).
            for e in range(tid, kd_n * plane, n_threads):
                cc = e % tile_c
                rest2 = e // tile_c
                col = rest2 % cols
                rest2 //= cols
                row = rest2 % rows
                kz = rest2 // rows
                iz = source(od * sd + kz * dd - pd, d_in, mode)
                iy = source(oy0 * sh - ph + row, h_in, mode)
                ix = source(ox0 * sw - pw + col, w_in, mode)
                value = acc_t(0)
                if iz >= 0 and iy >= 0 and ix >= 0 and c0 + cc < c_in:
                    value = acc_t(x[n, iz, iy, ix, c0 + cc])
                shared[n_weights + e] = value
            cuda.syncthreads()
            for item in range(tid, tile_h * tile_w * width, n_threads):
                j = item % width
                p = item // width
                ly = p // tile_w
                lx = p % tile_w
                oy = oy0 + ly
                ox = ox0 + lx
                cc = j // multiplier
                if oy < h_out and ox < w_out and c0 + cc < c_in:
                    o = c0 * multiplier + j
                    acc = acc_t(bias[o])
                    corner = n_weights + (ly * sh * cols + lx * sw) * tile_c + cc
                    for kz in range(kd_n):
                        for ky in range(kh_n):
                            for kx in range(kw_n):
                                acc += (
                                    shared[((kz * kh_n + ky) * kw_n + kx) * width + j]
                                    * shared[corner + kz * plane
                                             + (ky * dh * cols + kx * dw) * tile_c]
                                )
                    out[n, od, oy, ox, o] = acc
            cuda.syncthreads()

    return depthwise_channels_first if layout == "channels_first" else depthwise_channels_last
