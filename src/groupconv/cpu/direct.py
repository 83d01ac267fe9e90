"""Direct grouped convolution on the CPU: no im2col buffer, any groups.

Every kernel sees 3-D spatial data (1-D and 2-D calls gain leading unit
dims, which are free views), C-contiguous arrays in the compute dtype, and
zero padding given by ``pad`` (other padding modes are materialised by the
driver first). Kernels are parallel over output rows, which never overlap,
and keep the innermost loop on the contiguous axis: W for channels_first,
channels for channels_last.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .._validate import PADDING_MODES
from ._jit import jit

__all__ = ["conv_direct"]


@jit(parallel=False)
def _valid_range(shift, step, size, count):
    """The outputs ``i`` in ``[lo, hi)`` for which ``i*step + shift`` lies in ``[0, size)``."""
    lo = 0 if shift >= 0 else (step - 1 - shift) // step
    hi = min((size - 1 - shift) // step + 1, count)
    return lo, max(hi, lo)


@jit(parallel=True)
def _channels_first(x, w, bias, out, stride, dilation, pad):
    n_batch, c_in, d_in, h_in, w_in = x.shape
    c_out, c_group, kd_size, kh_size, kw_size = w.shape
    d_out, h_out, w_out = out.shape[2], out.shape[3], out.shape[4]
    per_group = c_out // (c_in // c_group)
    sd, sh, sw = stride
    dd, dh, dw = dilation
    pd, ph, pw = pad
    for row in prange(n_batch * c_out * d_out * h_out):
        oh = row % h_out
        od = (row // h_out) % d_out
        o = (row // (h_out * d_out)) % c_out
        n = row // (h_out * d_out * c_out)
        first_channel = (o // per_group) * c_group
        acc = np.empty(w_out, dtype=out.dtype)
        acc[:] = bias[o]
        for c in range(c_group):
            for kd in range(kd_size):
                iz = od * sd + kd * dd - pd
                if iz < 0 or iz >= d_in:
                    continue
                for kh in range(kh_size):
                    iy = oh * sh + kh * dh - ph
                    if iy < 0 or iy >= h_in:
                        continue
                    x_row = x[n, first_channel + c, iz, iy]
                    for kw in range(kw_size):
                        shift = kw * dw - pw
                        lo, hi = _valid_range(shift, sw, w_in, w_out)
                        tap = w[o, c, kd, kh, kw]
                        for ow in range(lo, hi):
                            acc[ow] += tap * x_row[ow * sw + shift]
        out[n, o, od, oh, :] = acc


@jit(parallel=True)
def _channels_last_by_group(x, w_t, bias, out, stride, dilation, pad):
    """Innermost loop over groups: vectorises when C_in // groups == 1 (depthwise).

    ``w_t`` is ``(kd, kh, kw, C_in // groups, C_out // groups, groups)``.
    """
    n_batch, d_in, h_in, w_in, c_in = x.shape
    kd_size, kh_size, kw_size, c_group, per_group, groups = w_t.shape
    d_out, h_out, w_out = out.shape[1], out.shape[2], out.shape[3]
    sd, sh, sw = stride
    dd, dh, dw = dilation
    pd, ph, pw = pad
    for row in prange(n_batch * d_out * h_out):
        oh = row % h_out
        od = (row // h_out) % d_out
        n = row // (h_out * d_out)
        acc = np.empty((w_out, per_group, groups), dtype=out.dtype)
        for j in range(per_group):
            for g in range(groups):
                acc[:, j, g] = bias[g * per_group + j]
        for kd in range(kd_size):
            iz = od * sd + kd * dd - pd
            if iz < 0 or iz >= d_in:
                continue
            for kh in range(kh_size):
                iy = oh * sh + kh * dh - ph
                if iy < 0 or iy >= h_in:
                    continue
                for kw in range(kw_size):
                    shift = kw * dw - pw
                    lo, hi = _valid_range(shift, sw, w_in, w_out)
                    for ow in range(lo, hi):
                        pixel = x[n, iz, iy, ow * sw + shift]
                        for c in range(c_group):
                            for j in range(per_group):
                                for g in range(groups):
                                    acc[ow, j, g] += w_t[kd, kh, kw, c, j, g] * pixel[
                                        g * c_group + c
                                    ]
        for ow in range(w_out):
            for j in range(per_group):
                for g in range(groups):
                    out[n, od, oh, ow, g * per_group + j] = acc[ow, j, g]


@jit(parallel=True)
def _channels_last_by_output(x, w_t, bias, out, stride, dilation, pad):
    """Innermost loop over the outputs of a group: vectorises when C_out // groups is large.

    ``w_t`` is ``(kd, kh, kw, groups, C_in // groups, C_out // groups)``.
    """
    n_batch, d_in, h_in, w_in, c_in = x.shape
    kd_size, kh_size, kw_size, groups, c_group, per_group = w_t.shape
    d_out, h_out, w_out = out.shape[1], out.shape[2], out.shape[3]
    sd, sh, sw = stride
    dd, dh, dw = dilation
    pd, ph, pw = pad
    for row in prange(n_batch * d_out * h_out):
        oh = row % h_out
        od = (row // h_out) % d_out
        n = row // (h_out * d_out)
        acc = np.empty((w_out, groups, per_group), dtype=out.dtype)
        for ow in range(w_out):
            acc[ow] = bias.reshape((groups, per_group))
        for kd in range(kd_size):
            iz = od * sd + kd * dd - pd
            if iz < 0 or iz >= d_in:
                continue
            for kh in range(kh_size):
                iy = oh * sh + kh * dh - ph
                if iy < 0 or iy >= h_in:
                    continue
                for kw in range(kw_size):
                    shift = kw * dw - pw
                    lo, hi = _valid_range(shift, sw, w_in, w_out)
                    taps = w_t[kd, kh, kw]
                    for ow in range(lo, hi):
                        pixel = x[n, iz, iy, ow * sw + shift]
                        for g in range(groups):
                            for c in range(c_group):
                                value = pixel[g * c_group + c]
                                for j in range(per_group):
                                    acc[ow, g, j] += taps[g, c, j] * value
        out[n, od, oh] = acc.reshape((w_out, groups * per_group))


def _to_3d(values, fill):
    return (fill,) * (3 - len(values)) + tuple(values)


def conv_direct(spec, target: np.ndarray) -> None:
    """Compute ``spec`` into ``target``, a C-contiguous batched output in ``spec.dtype``."""
    if target.size == 0:
        return
    x, weight, rank = spec.x, spec.weight, spec.rank
    channels_last = spec.layout == "channels_last"
    pads = spec.padding
    if spec.padding_mode != "zeros" and any(lo or hi for lo, hi in pads):
        # Workspace: one padded copy of the input.
        spatial_axes = range(1, 1 + rank) if channels_last else range(2, 2 + rank)
        widths = [(0, 0)] * x.ndim
        for axis, pair in zip(spatial_axes, pads, strict=True):
            widths[axis] = pair
        x = np.pad(x, widths, mode=PADDING_MODES[spec.padding_mode])
        pads = ((0, 0),) * rank
    stride = _to_3d(spec.stride, 1)
    dilation = _to_3d(spec.dilation, 1)
    pad_lo = _to_3d([lo for lo, _ in pads], 0)
    n, c_out = spec.batch, spec.c_out
    kernel = _to_3d(spec.kernel_size, 1)
    w5 = weight.reshape(weight.shape[:2] + kernel)
    bias = spec.bias if spec.bias is not None else np.zeros(c_out, dtype=spec.dtype)
    bias = np.ascontiguousarray(bias)
    if not channels_last:
        x5 = np.ascontiguousarray(x.reshape(x.shape[:2] + _to_3d(x.shape[2:], 1)))
        out5 = target.reshape((n, c_out) + _to_3d(spec.out_spatial, 1))
        _channels_first(x5, np.ascontiguousarray(w5), bias, out5, stride, dilation, pad_lo)
        return
    x5 = np.ascontiguousarray(x.reshape((x.shape[0],) + _to_3d(x.shape[1:-1], 1) + x.shape[-1:]))
    out5 = target.reshape((n,) + _to_3d(spec.out_spatial, 1) + (c_out,))
    groups = spec.groups
    c_group, per_group = w5.shape[1], c_out // groups
    # (O, Cg, kd, kh, kw) -> (kd, kh, kw, G, Cg, Og): a copy the size of the weight.
    w6 = w5.reshape((groups, per_group, c_group) + kernel).transpose(3, 4, 5, 0, 2, 1)
    if groups >= per_group:
        w_t = np.ascontiguousarray(w6.transpose(0, 1, 2, 4, 5, 3))
        _channels_last_by_group(x5, w_t, bias, out5, stride, dilation, pad_lo)
    else:
        _channels_last_by_output(x5, np.ascontiguousarray(w6), bias, out5, stride, dilation,
                                 pad_lo)
