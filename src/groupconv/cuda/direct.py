"""Direct grouped convolution on the GPU: any groups, rank, layout, stride, dilation, padding.

One thread computes one output element at a time, in a grid-stride loop over
all output elements in memory order (``W`` fastest for channels_first, the
channels for channels_last), so that neighbouring threads write neighbouring
addresses and, at stride 1, read neighbouring input addresses. Each thread
accumulates ``C_in // groups * kd * kh * kw`` products in a register of the
compute dtype and writes once, converting to the storage dtype (float16
results are accumulated in float32).

Data are 5-D as on the CPU (1-D and 2-D calls gain leading unit spatial
dims, which are views): ``x`` ``(N, C, D, H, W)`` or ``(N, D, H, W, C)``,
``weight`` ``(C_out, C_in // groups, kd, kh, kw)``, and the output in ``x``'s
layout. Any strides are accepted, so views and non-contiguous CUDA arrays
are read in place. Padding is an index mapping (:mod:`._device`), never a
padded copy: a tap in the zero padding is skipped, and the other modes read
the input element that :func:`numpy.pad` would have put there.

This is the fallback for every shape; :mod:`.depthwise` and
:mod:`.separable` are faster where they apply.
"""

from __future__ import annotations

import functools

import numba

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

__all__ = ["kernel", "signature", "specialisations"]

LAYOUTS = ("channels_first", "channels_last")


def signature(acc_dtype: str, x_dtype: str, out_dtype: str):
    """The one signature the kernel is compiled for (arrays of any strides)."""
    i64 = numba.types.int64
    return numba.types.void(
        array(x_dtype, 5), array(acc_dtype, 5), array(acc_dtype, 1), array(out_dtype, 5),
        index3(), index3(), index3(), i64, i64,
    )


def specialisations():
    """Every ``(name, python function, signature)`` the driver can launch."""
    for layout in LAYOUTS:
        for acc in ACC_DTYPES:
            for x_dtype, out_dtype in storage_pairs(acc):
                yield (f"direct_{layout}[{acc}; x {x_dtype}, out {out_dtype}]",
                       python_function(layout, acc), signature(acc, x_dtype, out_dtype))


@functools.cache
def kernel(layout: str, acc_dtype: str, x_dtype: str, out_dtype: str):
    """The direct kernel, compiled for one layout and one dtype combination.

    Parameters
    ----------
    layout : {"channels_first", "channels_last"}
    acc_dtype : str
        The compute dtype: ``"float32"``, ``"float64"``, ``"complex64"`` or
        ``"complex128"``; the weight and the bias are stored in it.
    x_dtype, out_dtype : str
        Storage of the input and the output, a pair from
        :func:`._device.storage_pairs`.

    Returns
    -------
    numba.cuda dispatcher
        ``kernel[blocks, threads, stream](x, weight, bias, out, stride,
        dilation, pad, per_group, mode)`` with 5-D ``x``, ``weight``, ``out``,
        ``bias`` of length ``C_out``, 3-tuples ``stride``, ``dilation``,
        ``pad`` (the low padding per dim), ``per_group = C_out // groups``
        and ``mode`` from :data:`._device.MODES`.
    """
    return compile_kernel(python_function(layout, acc_dtype),
                          signature(acc_dtype, x_dtype, out_dtype))


@functools.cache
def python_function(layout: str, acc_dtype: str):
    """The kernel's Python function for ``layout``, accumulating in ``acc_dtype``."""
    acc_t = numba_type(acc_dtype)
    source = source_index()

    def direct_channels_first(x, wt, bias, out, stride, dilation, pad, per_group, mode):
        n_batch, c_in, d_in, h_in, w_in = x.shape
        c_out, c_group, kd_n, kh_n, kw_n = wt.shape
        d_out, h_out, w_out = out.shape[2], out.shape[3], out.shape[4]
        sd, sh, sw = stride
        dd, dh, dw = dilation
        pd, ph, pw = pad
        total = n_batch * c_out * d_out * h_out * w_out
        for i in range(cuda.grid(1), total, cuda.gridsize(1)):
            ow = i % w_out
            rest = i // w_out
            oh = rest % h_out
            rest //= h_out
            od = rest % d_out
            rest //= d_out
            o = rest % c_out
            n = rest // c_out
            first = (o // per_group) * c_group
            acc = acc_t(bias[o])
            for kd in range(kd_n):
                iz = source(od * sd + kd * dd - pd, d_in, mode)
                if iz < 0:
                    continue
                for kh in range(kh_n):
                    iy = source(oh * sh + kh * dh - ph, h_in, mode)
                    if iy < 0:
                        continue
                    for kw in range(kw_n):
                        ix = source(ow * sw + kw * dw - pw, w_in, mode)
                        if ix < 0:
                            continue
                        for c in range(c_group):
                            acc += acc_t(wt[o, c, kd, kh, kw]) * acc_t(x[n, first + c, iz, iy, ix])
            out[n, o, od, oh, ow] = acc

    def direct_channels_last(x, wt, bias, out, stride, dilation, pad, per_group, mode):
        n_batch, d_in, h_in, w_in, c_in = x.shape
        c_out, c_group, kd_n, kh_n, kw_n = wt.shape
        d_out, h_out, w_out = out.shape[1], out.shape[2], out.shape[3]
        sd, sh, sw = stride
        dd, dh, dw = dilation
        pd, ph, pw = pad
        total = n_batch * d_out * h_out * w_out * c_out
        for i in range(cuda.grid(1), total, cuda.gridsize(1)):
            o = i % c_out
            rest = i // c_out
            ow = rest % w_out
            rest //= w_out
            oh = rest % h_out
            rest //= h_out
            od = rest % d_out
            n = rest // d_out
            first = (o // per_group) * c_group
            acc = acc_t(bias[o])
            for kd in range(kd_n):
                iz = source(od * sd + kd * dd - pd, d_in, mode)
                if iz < 0:
                    continue
                for kh in range(kh_n):
                    iy = source(oh * sh + kh * dh - ph, h_in, mode)
                    if iy < 0:
                        continue
                    for kw in range(kw_n):
                        ix = source(ow * sw + kw * dw - pw, w_in, mode)
                        if ix < 0:
                            continue
                        for c in range(c_group):
                            acc += acc_t(wt[o, c, kd, kh, kw]) * acc_t(x[n, iz, iy, ix, first + c])
            out[n, od, oh, ow, o] = acc

    return direct_channels_first if layout == "channels_first" else direct_channels_last
