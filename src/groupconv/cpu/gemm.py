"""GEMM-based grouped convolution: every product runs in BLAS, the workspace is bounded.

The work is cut into tiles of whole output rows, run in parallel by Numba's
threads; each tile's products are single-threaded BLAS calls made by the
thread that owns the tile (see :mod:`._blas` for why), and each tile's
workspace stays under :data:`WORKSPACE_BYTES` (or one row, if a row needs
more). Two ways to form the matrices:

* **Shifted views** (1-D and 2-D data at stride 1). The batch is one tall
  image: image ``n``'s zero-padded rows are rows ``n*slot ... (n+1)*slot - 1``
  of it (``slot`` = the padded height). A tile of output rows copies its
  input rows once, with their padding; then for each group and kernel tap,
  one product adds the group's weight slice times the tile *shifted by the
  tap* to the output tile. Computed over the padded width, a shifted tile
  is a matrix whose columns lie a constant distance apart, which BLAS reads
  in place, and the taps' products accumulate in place (``beta = 1``):
  nothing is gathered. The columns beyond the output width, and the
  ``(kh-1)*dilation`` rows where a tile straddles two images, are computed
  and dropped. An unpadded 1x1 kernel reads the input and writes the output
  in place.
* **im2col** (strides above 1, 3-D data): the tile's input patches are
  gathered (zeros for the padding) and multiplied once per group.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from . import _blas
from ._blas import gemm_call
from ._common import U, kernel_bias, padded_input, rows_per_task, to_3d
from ._jit import inlined, jit
from ._vector_width import wide_vectors

__all__ = ["TILE_THREADS", "WORKSPACE_BYTES", "conv_gemm"]

#: Upper bound of a tile's workspace (padded input and output tiles, or im2col tile).
WORKSPACE_BYTES = 2 * 2**20


@inlined
def _im2col_channels_last(x, tile, n, first_channel, first_pixel, out_spatial, stride, dilation,
                          pad, kernel):
    """``tile[p, ((kd*KH + kh)*KW + kw)*Cg + c] = x[n, z, y, x, first_channel + c]`` or 0."""
    _, d_in, h_in, w_in, c_in = x.shape
    n_pixels, k_total = tile.shape
    d_out, h_out, w_out = out_spatial
    kd_size, kh_size, kw_size = kernel
    c_group = k_total // (kd_size * kh_size * kw_size)
    sd, sh, sw = stride
    dd, dh, dw = dilation
    pd, ph, pw = pad
    x_flat, tile_flat = x.reshape(-1), tile.reshape(-1)
    cg = U(c_group)
    for p in range(n_pixels):
        q = first_pixel + p
        ow = q % w_out
        oh = (q // w_out) % h_out
        od = q // (w_out * h_out)
        dst = U(p * k_total)
        for kd in range(kd_size):
            iz = od * sd + kd * dd - pd
            for kh in range(kh_size):
                iy = oh * sh + kh * dh - ph
                for kw in range(kw_size):
                    ix = ow * sw + kw * dw - pw
                    if iz < 0 or iz >= d_in or iy < 0 or iy >= h_in or ix < 0 or ix >= w_in:
                        for c in range(cg):
                            tile_flat[dst + c] = 0
                    else:
                        src = U((((n * d_in + iz) * h_in + iy) * w_in + ix) * c_in + first_channel)
                        for c in range(cg):
                            tile_flat[dst + c] = x_flat[src + c]
                    dst += cg


@inlined
def _im2col_channels_first(x, tile, n, first_channel, first_pixel, out_spatial, stride, dilation,
                           pad, kernel):
    """``tile[((c*KD + kd)*KH + kh)*KW + kw, p] = x[n, first_channel + c, z, y, x]`` or 0.

    The tile holds whole output rows (``first_pixel`` and the tile width are
    multiples of ``W_out``), so each row of patches is a strided copy of an
    input row with zeros where the padding is.
    """
    _, c_in, d_in, h_in, w_in = x.shape
    k_total, n_pixels = tile.shape
    d_out, h_out, w_out = out_spatial
    kd_size, kh_size, kw_size = kernel
    sd, sh, sw = stride
    dd, dh, dw = dilation
    pd, ph, pw = pad
    x_flat, tile_flat = x.reshape(-1), tile.reshape(-1)
    first_row = first_pixel // w_out
    for k in range(k_total):
        kw = k % kw_size
        kh = (k // kw_size) % kh_size
        kd = (k // (kw_size * kh_size)) % kd_size
        c = k // (kw_size * kh_size * kd_size)
        channel = (n * c_in + first_channel + c) * d_in
        shift = kw * dw - pw
        lo = 0 if shift >= 0 else min((sw - 1 - shift) // sw, w_out)
        hi = max(min((w_in - 1 - shift) // sw + 1, w_out), lo)
        for r in range(n_pixels // w_out):
            oh = (first_row + r) % h_out
            od = (first_row + r) // h_out
            iz = od * sd + kd * dd - pd
            iy = oh * sh + kh * dh - ph
            dst = U(k * n_pixels + r * w_out)
            if iz < 0 or iz >= d_in or iy < 0 or iy >= h_in:
                for ow in range(U(w_out)):
                    tile_flat[dst + ow] = 0
                continue
            src = U(((channel + iz) * h_in + iy) * w_in + lo * sw + shift)
            for ow in range(U(lo)):
                tile_flat[dst + ow] = 0
            for i in range(U(hi - lo)):
                tile_flat[dst + U(lo) + i] = x_flat[src + i * U(sw)]
            for ow in range(U(hi), U(w_out)):
                tile_flat[dst + ow] = 0


@inlined
def _copy(dst, d0, src, s0, count):
    """``dst[d0:d0 + count] = src[s0:s0 + count]`` (unsigned offsets: a vectorised copy)."""
    for i in range(U(count)):
        dst[d0 + i] = src[s0 + i]


@inlined
def _zero(dst, d0, count):
    """``dst[d0:d0 + count] = 0``."""
    for i in range(U(count)):
        dst[d0 + i] = 0


@inlined
def _tap_products(gemm_address, w_flat, tile, grid, dims, shifts, pixels, channels_last):
    """The tile's products for every group and tap (see :func:`_shifted_views`)."""
    groups, c_group, per_group, c_in, c_out, tile_plane, grid_plane = dims
    for g in range(groups):
        for tap in range(len(shifts)):
            w0 = (tap * groups + g) * c_group * per_group
            if channels_last:
                # (Og x pixels) += w (Og x Cg, ld Og) @ shifted tile (Cg x pixels, ld C_in)
                gemm_call(gemm_address, per_group, pixels, c_group, w_flat, w0, per_group,
                          tile, shifts[tap] * c_in + g * c_group, c_in,
                          grid, g * per_group, c_out, tap > 0)
            else:
                # (pixels x Og) += shifted tile (pixels x Cg, ld plane) @ w (Cg x Og, ld Cg)
                gemm_call(gemm_address, pixels, per_group, c_group,
                          tile, g * c_group * tile_plane + shifts[tap], tile_plane,
                          w_flat, w0, c_group,
                          grid, g * per_group * grid_plane, grid_plane, tap > 0)


@jit(parallel=True)
def _shifted_views_kernel(x, w_blas, bias, target, shifts, geometry, gemm_address):
    """Tiles of ``rows`` rows of the tall image, in parallel (see the module docstring).

    ``x`` is ``(N, H, W, C_in)`` or ``(N, C_in, H, W)`` (``geometry[0]``
    says which), ``target`` likewise with the output's sizes; ``w_blas`` is
    ``(tap, G, Cg, Og)`` for channels_last, ``(tap, G, Og, Cg)`` for
    channels_first; ``shifts[t]`` is tap ``t``'s offset in pixels of the
    padded rows; ``geometry`` is ``(channels_last, groups, pad_top,
    pad_left, w_pad, slot, rows, halo)``.
    """
    channels_last, groups, pad_top, pad_left, w_pad, slot, rows, halo = geometry
    if channels_last:
        n_batch, h_in, w_in, c_in = x.shape
        _, h_out, w_out, c_out = target.shape
    else:
        n_batch, c_in, h_in, w_in = x.shape
        _, c_out, h_out, w_out = target.shape
    rows_in = rows + halo
    x_flat, w_flat, t_flat = x.reshape(-1), w_blas.reshape(-1), target.reshape(-1)
    total = n_batch * slot
    dims = (groups, c_in // groups, c_out // groups, c_in, c_out, rows_in * w_pad, rows * w_pad)
    for tile_index in prange((total + rows - 1) // rows):
        wide_vectors()
        u0 = tile_index * rows
        count = min(rows, total - u0)
        tile = np.empty(rows_in * w_pad * c_in, dtype=x.dtype)
        grid = np.empty(rows * w_pad * c_out, dtype=x.dtype)
        # The tile: input rows u0 ... of the tall padded image, zeros in the padding.
        for r in range(rows_in):
            n = (u0 + r) // slot
            iy = (u0 + r) % slot - pad_top
            inside = n < n_batch and 0 <= iy < h_in
            for c in range(1 if channels_last else c_in):
                width = c_in if channels_last else 1
                start = U((c * rows_in + r) * w_pad * width)
                if not inside:
                    _zero(tile, start, w_pad * width)
                    continue
                _zero(tile, start, pad_left * width)
                first = ((n * h_in + iy) * w_in * c_in if channels_last
                         else ((n * c_in + c) * h_in + iy) * w_in)
                _copy(tile, start + U(pad_left * width), x_flat, U(first), w_in * width)
                _zero(tile, start + U((pad_left + w_in) * width),
                      (w_pad - pad_left - w_in) * width)
        _tap_products(gemm_address, w_flat, tile, grid, dims, shifts, count * w_pad,
                      channels_last)
        # Each image's valid rows of the grid, plus the bias.
        for r in range(count):
            n = (u0 + r) // slot
            oh = (u0 + r) % slot
            if n >= n_batch or oh >= h_out:
                continue
            if channels_last:
                dst = U((n * h_out + oh) * w_out * c_out)
                src = U(r * w_pad * c_out)
                for p in range(U(w_out)):
                    for o in range(U(c_out)):
                        t_flat[dst + p * U(c_out) + o] = grid[src + p * U(c_out) + o] + bias[o]
            else:
                for o in range(c_out):
                    dst = U(((n * c_out + o) * h_out + oh) * w_out)
                    src = U((o * rows + r) * w_pad)
                    b = bias[o]
                    for p in range(U(w_out)):
                        t_flat[dst + p] = grid[src + p] + b


@jit(parallel=True)
def _pointwise_kernel(x, w_blas, bias, target, chunk, channels_last, groups, gemm_address):
    """An unpadded 1x1 kernel: products straight from ``x`` into ``target``, ``chunk`` pixels each.

    Shapes as in :func:`_shifted_views_kernel`; channels_last chunks run over
    the pixels of the whole batch, channels_first ones over each image's.
    """
    if channels_last:
        n_batch, h_in, w_in, c_in = x.shape
        c_out = target.shape[3]
    else:
        n_batch, c_in, h_in, w_in = x.shape
        c_out = target.shape[1]
    plane = h_in * w_in
    pixels = n_batch * plane if channels_last else plane
    per_image = (pixels + chunk - 1) // chunk
    x_flat, w_flat, t_flat = x.reshape(-1), w_blas.reshape(-1), target.reshape(-1)
    jobs = per_image if channels_last else n_batch * per_image
    dims = (groups, c_in // groups, c_out // groups, c_in, c_out, plane, plane)
    for job in prange(jobs):
        wide_vectors()
        p0 = (job % per_image) * chunk
        count = min(chunk, pixels - p0)
        if channels_last:
            src, dst = x_flat[p0 * c_in:], t_flat[p0 * c_out:]
        else:
            n = job // per_image
            src, dst = x_flat[n * c_in * plane + p0:], t_flat[n * c_out * plane + p0:]
        _tap_products(gemm_address, w_flat, src, dst, dims, (0,), count, channels_last)
        for p in range(count):
            for o in range(c_out):
                if channels_last:
                    dst[p * c_out + o] += bias[o]
                else:
                    dst[o * plane + p] += bias[o]


@jit(parallel=True)
def _im2col_kernel(x5, w_mat, target, geometry, gemm_address):
    """im2col tiles of ``tile_pixels`` output pixels per (image, group), in parallel.

    ``x5`` is 5-D in its layout; ``w_mat`` is ``(G, K, Og)`` for channels_last
    (patches ``(pixels, K)``) and ``(G, Og, K)`` for channels_first (patches
    ``(K, pixels)``); ``target`` is the flat output.
    """
    (channels_last, groups, out_spatial, stride, dilation, pad, kernel, tile_pixels,
     c_out) = geometry
    k_total, per_group = w_mat.shape[1], w_mat.shape[2]
    if not channels_last:
        per_group, k_total = w_mat.shape[1], w_mat.shape[2]
    c_group = k_total // (kernel[0] * kernel[1] * kernel[2])
    pixels = out_spatial[0] * out_spatial[1] * out_spatial[2]
    tiles = (pixels + tile_pixels - 1) // tile_pixels
    w_flat = w_mat.reshape(-1)
    n_batch = x5.shape[0]
    for job in prange(n_batch * groups * tiles):
        wide_vectors()
        n = job // (groups * tiles)
        g = (job // tiles) % groups
        p0 = (job % tiles) * tile_pixels
        count = min(tile_pixels, pixels - p0)
        w0 = g * k_total * per_group
        if channels_last:
            patches = np.empty((count, k_total), dtype=x5.dtype)
            _im2col_channels_last(x5, patches, n, g * c_group, p0, out_spatial, stride,
                                  dilation, pad, kernel)
            gemm_call(gemm_address, per_group, count, k_total, w_flat, w0, per_group,
                      patches.reshape(-1), 0, k_total,
                      target, (n * pixels + p0) * c_out + g * per_group, c_out, False)
        else:
            patches = np.empty((k_total, count), dtype=x5.dtype)
            _im2col_channels_first(x5, patches, n, g * c_group, p0, out_spatial, stride,
                                   dilation, pad, kernel)
            gemm_call(gemm_address, count, per_group, k_total, patches.reshape(-1), 0, count,
                      w_flat, w0, k_total,
                      target, (n * c_out + g * per_group) * pixels + p0, pixels, False)


#: The tiles of the GEMM path are cut for this many threads, whatever Numba's
#: thread count: a BLAS may round a product differently by its shape (seen
#: with OpenBLAS on AMD Zen 3: results differed in the last bit between 1
#: and 2 threads when the tiles followed the thread count), so the tiles,
#: and with them the results, must not depend on it. 8 divides evenly for
#: 1, 2, 4 and 8 threads.
TILE_THREADS = 8


def _shifted_views(spec, target, x, pads):
    """1-D and 2-D convolution at stride 1 (see the module docstring)."""
    channels_last = spec.layout == "channels_last"
    (_, kh, kw), (_, dh, dw) = to_3d(spec.kernel_size, 1), to_3d(spec.dilation, 1)
    (pt, pb), (pl, pr) = ((0, 0),) * (2 - spec.rank) + tuple(pads)
    batch, c_in, c_out, groups = spec.batch, spec.c_in, spec.c_out, spec.groups
    c_group, per_group = c_in // groups, c_out // groups
    _, h_out, w_out = to_3d(spec.out_spatial, 1)
    if spec.rank == 1:
        x = x.reshape((batch, 1, *x.shape[1:]) if channels_last else (batch, c_in, 1, -1))
    x = np.ascontiguousarray(x)
    h_in, w_in = x.shape[1:3] if channels_last else x.shape[2:4]
    target4 = target.reshape((batch, h_out, w_out, c_out) if channels_last
                             else (batch, c_out, h_out, w_out))
    taps = spec.weight.reshape(groups, per_group, c_group, kh * kw)
    order = (3, 0, 2, 1) if channels_last else (3, 0, 1, 2)  # (tap, G, Cg, Og) / (tap, G, Og, Cg)
    w_blas = np.ascontiguousarray(taps.transpose(order))
    bias = kernel_bias(spec)
    address = _blas.gemm_address(x.dtype)
    if kh == kw == 1 and pt == pb == pl == pr == 0:
        pixels = batch * h_in * w_in if channels_last else h_in * w_in
        # No workspace here: one large product per thread.
        chunk = rows_per_task(pixels, pixels, per_thread=1, threads=TILE_THREADS)
        _pointwise_kernel(x, w_blas, bias, target4, chunk, channels_last, groups, address)
        return
    w_pad, slot = w_in + pl + pr, h_in + pt + pb
    rows = rows_per_task(batch * slot, WORKSPACE_BYTES // (w_pad * (c_in + c_out) * x.itemsize),
                         threads=TILE_THREADS)
    # Tap (i, j) reads the tile shifted by this many pixels.
    shifts = tuple(i * dh * w_pad + j * dw for i in range(kh) for j in range(kw))
    geometry = (channels_last, groups, pt, pl, w_pad, slot, rows, (kh - 1) * dh + 1)
    _shifted_views_kernel(x, w_blas, bias, target4, np.array(shifts, dtype=np.int64),
                          geometry, address)


def _im2col(spec, target, x, pads):
    """Strides above 1 and 3-D data: gathered patches, one product per tile and group."""
    channels_last = spec.layout == "channels_last"
    kernel = to_3d(spec.kernel_size, 1)
    stride, dilation = to_3d(spec.stride, 1), to_3d(spec.dilation, 1)
    pad_lo = to_3d([lo for lo, _ in pads], 0)
    out_spatial = to_3d(spec.out_spatial, 1)
    groups, c_out, batch = spec.groups, spec.c_out, spec.batch
    c_group, per_group = spec.weight.shape[1], c_out // groups
    k_total = c_group * int(np.prod(kernel))
    pixels = int(np.prod(out_spatial))
    in_spatial = x.shape[1:-1] if channels_last else x.shape[2:]
    x5 = np.ascontiguousarray(
        x.reshape((batch,) + to_3d(in_spatial, 1) + (spec.c_in,)) if channels_last
        else x.reshape((batch, spec.c_in) + to_3d(in_spatial, 1))
    )
    weight = spec.weight.reshape(groups, per_group, c_group, *kernel)
    if channels_last:
        # Patches (pixels, K) with K ordered (kd, kh, kw, c); weight (G, K, Og) to match.
        w_mat = weight.transpose(0, 3, 4, 5, 2, 1).reshape(groups, k_total, per_group)
    else:
        # Patches (K, pixels) with K ordered (c, kd, kh, kw); weight (G, Og, K).
        w_mat = weight.reshape(groups, per_group, k_total)
    rows = max(1, WORKSPACE_BYTES // (k_total * x5.itemsize * out_spatial[2]))
    tile_pixels = min(pixels, rows * out_spatial[2])
    geometry = (channels_last, groups, out_spatial, stride, dilation, pad_lo, kernel,
                tile_pixels, c_out)
    _im2col_kernel(x5, np.ascontiguousarray(w_mat), target.reshape(-1), geometry,
                   _blas.gemm_address(x5.dtype))
    if spec.bias is not None:
        target += spec.bias if channels_last else spec.bias.reshape(-1, *(1,) * spec.rank)


def _fits_blas(spec) -> bool:
    """Whether every extent and leading dimension the products use fits BLAS's 32-bit ints."""
    padded = math.prod(n + lo + hi for n, (lo, hi) in
                       zip(spec.x.shape[2:] if spec.layout == "channels_first"
                           else spec.x.shape[1:-1], spec.padding, strict=True))
    largest = max(padded, math.prod(spec.out_spatial), spec.c_in, spec.c_out,
                  spec.weight.shape[1] * math.prod(spec.kernel_size))
    # Leading dimensions are channel counts or (tile) planes, and a tile plane
    # is at most an image plane plus a few halo rows.
    return 2 * largest < _blas.INT_MAX


def conv_gemm(spec, target: np.ndarray) -> None:
    """Compute ``spec`` into ``target``, a C-contiguous batched output in ``spec.dtype``.

    Shapes whose matrices would exceed BLAS's 32-bit sizes take the direct
    kernels instead.
    """
    if target.size == 0:
        return
    if not _fits_blas(spec):
        from .direct import conv_direct

        conv_direct(spec, target)
        return
    x, pads = padded_input(spec)
    with _blas.single_threaded():
        if spec.rank <= 2 and all(s == 1 for s in spec.stride):
            _shifted_views(spec, target, x, pads)
        else:
            _im2col(spec, target, x, pads)
