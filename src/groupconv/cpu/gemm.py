"""GEMM-based grouped convolution: im2col over bounded tiles of output rows, then BLAS.

For each image and group, the output pixels are cut into tiles of whole
output rows; a tile's input patches are gathered (im2col, by a Numba kernel
that writes zeros for the padding) into a workspace of at most
:data:`WORKSPACE_BYTES`, and one matrix product with the group's weight
gives the tile's outputs. The im2col matrix is never materialised whole.

A 1x1 kernel at stride 1 without padding needs no gathering: the input
itself is the matrix, and the whole call is one product per image and group.
"""

from __future__ import annotations

import numpy as np

from ._common import U, padded_input, to_3d
from ._jit import jit

__all__ = ["WORKSPACE_BYTES", "conv_gemm"]

#: Upper bound of the im2col tile; with the tile of outputs it bounds the workspace.
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


def conv_gemm(spec, target: np.ndarray) -> None:
    """Compute ``spec`` into ``target`` by tiled im2col and BLAS matrix products."""
    if target.size == 0:
        return
    x, pads = padded_input(spec)
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
    bias = spec.bias
    identity = kernel == (1, 1, 1) and stride == (1, 1, 1) and pad_lo == (0, 0, 0)

    if channels_last:
        # Patches are (kd, kh, kw, c): weight (G, K, Og) to match.
        w_mat = np.ascontiguousarray(
            weight.transpose(0, 3, 4, 5, 2, 1).reshape(groups, k_total, per_group))
        out2d = target.reshape(batch, pixels, c_out)
        rows = max(1, WORKSPACE_BYTES // (k_total * x5.itemsize * out_spatial[2]))
        tile_pixels = min(pixels, rows * out_spatial[2])
        buffer = None if identity else np.empty(tile_pixels * k_total, dtype=x5.dtype)
        flat_in = x5.reshape(batch, pixels, spec.c_in) if identity else None
        for n in range(batch):
            for g in range(groups):
                for p0 in range(0, pixels, tile_pixels):
                    count = min(tile_pixels, pixels - p0)
                    if identity:
                        patches = flat_in[n, p0:p0 + count, g * c_group:(g + 1) * c_group]
                    else:
                        patches = buffer[:count * k_total].reshape(count, k_total)
                        _im2col_channels_last(x5, patches, n, g * c_group, p0, out_spatial,
                                              stride, dilation, pad_lo, kernel)
                    dst = out2d[n, p0:p0 + count, g * per_group:(g + 1) * per_group]
                    if groups == 1 and patches.flags.c_contiguous:
                        np.dot(patches, w_mat[g], out=dst)
                    else:
                        dst[...] = patches @ w_mat[g]
        if bias is not None:
            out2d += bias
        return

    # channels_first: patches are (c, kd, kh, kw) x pixels, weight (G, Og, K).
    w_mat = np.ascontiguousarray(weight.reshape(groups, per_group, k_total))
    out3d = target.reshape(batch, c_out, pixels)
    rows = max(1, WORKSPACE_BYTES // (k_total * x5.itemsize * out_spatial[2]))
    tile_pixels = min(pixels, rows * out_spatial[2])
    buffer = None if identity else np.empty(tile_pixels * k_total, dtype=x5.dtype)
    flat_in = x5.reshape(batch, spec.c_in, pixels) if identity else None
    for n in range(batch):
        for g in range(groups):
            for p0 in range(0, pixels, tile_pixels):
                count = min(tile_pixels, pixels - p0)
                if identity:
                    patches = flat_in[n, g * c_group:(g + 1) * c_group, p0:p0 + count]
                else:
                    patches = buffer[:count * k_total].reshape(k_total, count)
                    _im2col_channels_first(x5, patches, n, g * c_group, p0, out_spatial,
                                           stride, dilation, pad_lo, kernel)
                dst = out3d[n, g * per_group:(g + 1) * per_group, p0:p0 + count]
                dst[...] = w_mat[g] @ patches
    if bias is not None:
        out3d += bias[:, None]
