"""GEMM-based grouped convolution: every product runs in BLAS, the workspace is bounded.

Two ways to form the matrices, both over tiles of whole output rows whose
workspace stays under :data:`WORKSPACE_BYTES` (or one row, if a row needs
more):

* **Shifted views** (1-D and 2-D data at stride 1): the input tile is
  copied once with its zero padding (not at all for an unpadded 1x1 kernel),
  and for each kernel tap the output tile grows by one product of the
  group's weight slice with the padded input *shifted by the tap*. With the
  output computed over the padded width, a shifted input is a matrix whose
  columns lie a constant distance apart, which BLAS reads in place, and
  the taps' products accumulate in place (BLAS's ``beta = 1``). The columns
  beyond the output width are computed and dropped; nothing is gathered.
* **im2col** (strides above 1, 3-D data): the tile's input patches are
  gathered by a Numba kernel (zeros for the padding) and multiplied once.

Products go through :mod:`._blas` (SciPy's BLAS, one library for the whole
path).
"""

from __future__ import annotations

import numpy as np

from . import _blas
from ._common import U, padded_input, to_3d
from ._jit import jit

__all__ = ["WORKSPACE_BYTES", "conv_gemm"]

#: Upper bound of a tile's workspace (padded input and output tiles, or im2col tile).
WORKSPACE_BYTES = 2 * 2**20


# The gathering runs serially on purpose: the matrix products run on the BLAS
# library's own threads, and a Numba parallel region between two products
# leaves Numba's OpenMP workers spinning against them (measured: a dense
# 3x3 layer took 268 ms with parallel gathering, 14 ms with serial).
@jit(parallel=False)
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


@jit(parallel=False)
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


def _shifted_views(spec, target, x, pads):
    """1-D and 2-D convolution at stride 1: one product per (row tile, group, tap).

    The batch is one tall image: image ``n``'s zero-padded rows occupy rows
    ``n*slot`` to ``(n+1)*slot - 1`` of it (``slot`` = the padded height), so
    a tile of output rows may span several images and the products stay
    large on small images. The last ``(kh-1)*dilation`` output rows of each
    slot straddle two images: they are computed and dropped, like the
    columns beyond the output width.
    """
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
    # Weights per tap and group, in the order BLAS reads them (column-major).
    taps = spec.weight.reshape(groups, per_group, c_group, kh * kw)
    order = (3, 0, 2, 1) if channels_last else (3, 0, 1, 2)  # (tap, G, Cg, Og) / (tap, G, Og, Cg)
    w_blas = np.ascontiguousarray(taps.transpose(order))
    if kh == kw == 1 and pt == pb == pl == pr == 0:
        # An unpadded 1x1 kernel reads the input and writes the output in place.
        if channels_last:
            _products(spec, w_blas, x, batch * h_in * w_in, target, [0])
        else:
            for n in range(batch):
                _products(spec, w_blas, x[n], h_in * w_in, target4[n], [0])
        _add_bias(spec, target)
        return
    w_pad, slot = w_in + pl + pr, h_in + pt + pb
    row_bytes = w_pad * (c_in + c_out) * x.itemsize
    total = batch * slot
    rows = max(1, min(total, WORKSPACE_BYTES // row_bytes))
    rows_in = rows + (kh - 1) * dh + 1
    # Tap (i, j) reads the tile shifted by this many pixels.
    shifts = [i * dh * w_pad + j * dw for i in range(kh) for j in range(kw)]
    tile = np.empty((rows_in, w_pad, c_in) if channels_last else (c_in, rows_in, w_pad),
                    dtype=x.dtype)
    grid = np.empty((rows, w_pad, c_out) if channels_last else (c_out, rows, w_pad),
                    dtype=x.dtype)
    for u0 in range(0, total, rows):
        count = min(rows, total - u0)
        _fill_tile(tile, x, u0, slot, pt, pl, channels_last)
        _products(spec, w_blas, tile, count * w_pad, grid, shifts)
        # Keep each image's valid rows of the grid.
        for n in range(u0 // slot, min((u0 + count - 1) // slot + 1, batch)):
            lo, hi = max(u0, n * slot), min(u0 + count, n * slot + h_out)
            if hi <= lo:
                continue
            rows_out = slice(lo - n * slot, hi - n * slot)
            if channels_last:
                target4[n, rows_out] = grid[lo - u0:hi - u0, :w_out]
            else:
                target4[n, :, rows_out] = grid[:, lo - u0:hi - u0, :w_out]
    _add_bias(spec, target)


def _products(spec, w_blas, src, pixels, dst, shifts):
    """``dst``'s first ``pixels`` pixels = the sum over taps of weight times shifted ``src``.

    ``src`` and ``dst`` are one image or tile in ``spec``'s layout; tap ``t``
    reads ``src`` shifted by ``shifts[t]`` pixels (counted flat over its
    padded rows). ``w_blas`` is ``(tap, G, Cg, Og)`` for channels_last and
    ``(tap, G, Og, Cg)`` for channels_first.
    """
    channels_last = spec.layout == "channels_last"
    groups, c_in, c_out = spec.groups, spec.c_in, spec.c_out
    c_group, per_group = c_in // groups, c_out // groups
    src_plane, dst_plane = src.size // c_in, dst.size // c_out
    dtype = src.dtype
    for g in range(groups):
        for tap, shift in enumerate(shifts):
            w0 = (tap * groups + g) * c_group * per_group
            if channels_last:
                _blas.gemm(dtype, per_group, pixels, c_group, w_blas, w0, per_group,
                           src, shift * c_in + g * c_group, c_in,
                           dst, g * per_group, c_out, tap > 0)
            else:
                _blas.gemm(dtype, pixels, per_group, c_group,
                           src, g * c_group * src_plane + shift, src_plane,
                           w_blas, w0, c_group,
                           dst, g * per_group * dst_plane, dst_plane, tap > 0)


def _add_bias(spec, target):
    if spec.bias is not None:
        channels_last = spec.layout == "channels_last"
        target += spec.bias if channels_last else spec.bias.reshape(-1, *(1,) * spec.rank)


def _fill_tile(tile, x, top, slot, pad_top, pad_left, channels_last):
    """``tile`` = rows ``top...`` of the tall padded image (see :func:`_shifted_views`)."""
    if not channels_last:
        # (C, rows, W) planes: index the spatial axes ahead of the channels.
        tile, x = tile.transpose(1, 2, 0), x.transpose(0, 2, 3, 1)
    batch, h_in, w_in = x.shape[:3]
    rows = tile.shape[0]
    tile[:, :pad_left] = 0
    tile[:, pad_left + w_in:] = 0
    for n in range(top // slot, (top + rows - 1) // slot + 1):
        # This image's slot within the tile, and its input rows inside it.
        first, last = max(top, n * slot), min(top + rows, (n + 1) * slot)
        lo = min(max(first, n * slot + pad_top), last)
        hi = max(min(last, n * slot + pad_top + h_in), lo)
        tile[first - top:lo - top, pad_left:pad_left + w_in] = 0
        tile[hi - top:last - top, pad_left:pad_left + w_in] = 0
        if n < batch and hi > lo:
            iy = lo - n * slot - pad_top
            tile[lo - top:hi - top, pad_left:pad_left + w_in] = x[n, iy:iy + hi - lo]


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
    rows = max(1, WORKSPACE_BYTES // (k_total * x5.itemsize * out_spatial[2]))
    tile_pixels = min(pixels, rows * out_spatial[2])
    buffer = np.empty(tile_pixels * k_total, dtype=x5.dtype)
    dtype = x5.dtype
    if channels_last:
        # Patches (pixels, K) with K ordered (kd, kh, kw, c); weight (G, K, Og) to match.
        w_mat = np.ascontiguousarray(
            weight.transpose(0, 3, 4, 5, 2, 1).reshape(groups, k_total, per_group))
        gather = _im2col_channels_last
    else:
        # Patches (K, pixels) with K ordered (c, kd, kh, kw); weight (G, Og, K).
        w_mat = np.ascontiguousarray(weight.reshape(groups, per_group, k_total))
        gather = _im2col_channels_first
    for n in range(batch):
        for g in range(groups):
            for p0 in range(0, pixels, tile_pixels):
                count = min(tile_pixels, pixels - p0)
                shape = (count, k_total) if channels_last else (k_total, count)
                patches = buffer[:count * k_total].reshape(shape)
                gather(x5, patches, n, g * c_group, p0, out_spatial, stride, dilation, pad_lo,
                       kernel)
                w0 = g * k_total * per_group
                if channels_last:
                    # out[n, p0:p0+count, group's outputs] = patches @ w_mat[g]
                    _blas.gemm(dtype, per_group, count, k_total, w_mat, w0, per_group,
                               patches, 0, k_total,
                               target, (n * pixels + p0) * c_out + g * per_group, c_out, False)
                else:
                    # out[n, group's outputs, p0:p0+count] = w_mat[g] @ patches
                    _blas.gemm(dtype, count, per_group, k_total, patches, 0, count,
                               w_mat, w0, k_total,
                               target, (n * c_out + g * per_group) * pixels + p0, pixels, False)
    if spec.bias is not None:
        target += spec.bias if channels_last else spec.bias.reshape(-1, *(1,) * spec.rank)


def conv_gemm(spec, target: np.ndarray) -> None:
    """Compute ``spec`` into ``target``, a C-contiguous batched output in ``spec.dtype``."""
    if target.size == 0:
        return
    x, pads = padded_input(spec)
    if spec.rank <= 2 and all(s == 1 for s in spec.stride):
        _shifted_views(spec, target, x, pads)
    else:
        _im2col(spec, target, x, pads)
