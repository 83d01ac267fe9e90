"""Slow, obviously correct plain-NumPy reference implementation (the test oracle).

This module deliberately shares **no code** with the rest of :mod:`groupconv`:
it imports nothing but NumPy, resolves padding itself, and computes every
convolution with :func:`numpy.pad`, :func:`numpy.lib.stride_tricks.sliding_window_view`
and :func:`numpy.einsum`, in float64 (complex128 if any input is complex).
It is meant for checking the fast kernels on small inputs, not for speed.

Semantics (``DESIGN.md`` section 1), for spatial rank ``d`` and ``groups = G``::

    y[n, o, *p] = bias[o]
        + sum_{c < Cg, t < k} w[o, c, *t] * xpad[n, g*Cg + c, *(p*stride + t*dilation)]

with ``g = o // (C_out // G)`` and ``Cg = C_in // G``: cross-correlation, no
conjugation of complex weights.

Only batched input and the two layout names ``"channels_first"`` /
``"channels_last"`` are accepted here; aliases and unbatched input are the
public library's business.
"""

import math
from numbers import Integral

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = ["conv", "depthwise_conv", "separable_conv", "tf_depthwise_conv2d"]

_NP_PAD_MODE = {
    "zeros": "constant",
    "reflect": "reflect",
    "replicate": "edge",
    "circular": "wrap",
    "symmetric": "symmetric",
}
_LAYOUTS = ("channels_first", "channels_last")


# --------------------------------------------------------------------------- helpers


def _is_int(v):
    return isinstance(v, Integral) and not isinstance(v, bool)


def _per_dim(value, d, name):
    """An int or ``d`` ints (each >= 1) -> a tuple of ``d`` Python ints."""
    if _is_int(value):
        values = (int(value),) * d
    else:
        values = tuple(value)
        if len(values) != d or not all(_is_int(v) for v in values):
            raise ValueError(f"{name} must be an int or {d} ints, got {value!r}")
        values = tuple(int(v) for v in values)
    if any(v < 1 for v in values):
        raise ValueError(f"{name} must be >= 1, got {value!r}")
    return values


def _resolve_padding(padding, lengths, kernel, stride, dilation):
    """Resolve any accepted ``padding`` to one ``(lo, hi)`` pair per spatial dim."""
    d = len(lengths)
    if isinstance(padding, str):
        rule = padding.lower()
        pads = []
        for L, k, s, dil in zip(lengths, kernel, stride, dilation, strict=True):
            reach = (k - 1) * dil  # extent of the dilated kernel, minus one
            if rule == "valid":
                pads.append((0, 0))
            elif rule in ("same", "same_lower"):
                out = -(-L // s)  # ceil(L / s)
                total = max((out - 1) * s + reach + 1 - L, 0)
                small, large = total // 2, total - total // 2
                pads.append((small, large) if rule == "same" else (large, small))
            elif rule == "full":
                pads.append((reach, reach))
            elif rule == "causal":
                pads.append((reach, 0))
            else:
                raise ValueError(
                    "padding must be 'valid', 'same', 'same_lower', 'full' or 'causal' "
                    f"when a string, got {padding!r}"
                )
        return tuple(pads)
    if _is_int(padding):
        pads = ((int(padding), int(padding)),) * d
    else:
        items = tuple(padding)
        if len(items) != d:
            raise ValueError(
                f"padding must be an int, {d} ints or {d} (lo, hi) pairs, got {padding!r}"
            )
        pads = []
        for item in items:
            if _is_int(item):
                pads.append((int(item), int(item)))
            else:
                pair = tuple(item)
                if len(pair) != 2 or not all(_is_int(v) for v in pair):
                    raise ValueError(f"padding entries must be ints or (lo, hi) pairs, "
                                     f"got {padding!r}")
                pads.append((int(pair[0]), int(pair[1])))
        pads = tuple(pads)
    if any(v < 0 for pair in pads for v in pair):
        raise ValueError(f"padding must be >= 0, got {padding!r}")
    return pads


def _work_dtype(*arrays):
    """complex128 if any input is complex, else float64."""
    if any(a is not None and np.iscomplexobj(a) for a in arrays):
        return np.dtype(np.complex128)
    return np.dtype(np.float64)


# --------------------------------------------------------------------------- public


def conv(
    x,
    weight,
    bias=None,
    *,
    stride=1,
    padding=0,
    dilation=1,
    groups=1,
    padding_mode="zeros",
    layout="channels_first",
):
    """Grouped N-d cross-correlation, computed the slow and obvious way.

    Parameters
    ----------
    x : array_like
        Batched input, ``(N, C_in, *spatial)`` for ``layout="channels_first"``
        or ``(N, *spatial, C_in)`` for ``layout="channels_last"``.
    weight : array_like
        ``(C_out, C_in // groups, *k)``; its rank fixes the spatial rank
        ``d = weight.ndim - 2`` (1, 2 or 3). Same layout for both input layouts.
    bias : array_like, optional
        ``(C_out,)``, added to every output position.
    stride, dilation : int or sequence of int
        One value for all spatial dims or one per dim; each >= 1.
    padding : int, sequence or str
        An int; one int per dim; one ``(lo, hi)`` pair per dim; or one of
        ``"valid"``, ``"same"`` (TF/ONNX SAME_UPPER at any stride: the output
        length is ``ceil(L / stride)`` and an odd total pad puts the extra
        element at the end), ``"same_lower"`` (the extra goes at the start),
        ``"full"`` (``(k - 1) * dilation`` on both sides) and ``"causal"``
        (``(k - 1) * dilation`` at the start, none at the end).
    groups : int
        Number of groups ``G``; must divide ``C_in`` and ``C_out``.
    padding_mode : {"zeros", "reflect", "replicate", "circular", "symmetric"}
        How the padding is filled: :func:`numpy.pad` with mode ``"constant"``,
        ``"reflect"``, ``"edge"``, ``"wrap"`` or ``"symmetric"``. As in
        PyTorch, ``"reflect"`` needs each pad ``< L`` and ``"circular"`` /
        ``"symmetric"`` need each pad ``<= L``.
    layout : {"channels_first", "channels_last"}
        Where the channel axis of ``x`` (and of the result) is.

    Returns
    -------
    numpy.ndarray
        ``(N, C_out, *out)`` or ``(N, *out, C_out)``, float64 (complex128 if
        any input is complex), with
        ``out = floor((L + lo + hi - dilation * (k - 1) - 1) / stride) + 1``.

    Raises
    ------
    ValueError
        On inconsistent shapes or arguments, or if an output spatial size
        would be below 1.

    Examples
    --------
    >>> import numpy as np
    >>> from groupconv.reference import conv
    >>> x = np.arange(5.0).reshape(1, 1, 5)
    >>> conv(x, np.array([[[1.0, 0.0, -1.0]]]))
    array([[[-2., -2., -2.]]])
    >>> conv(x, np.ones((1, 1, 2)), padding="full", stride=2)
    array([[[0., 3., 7.]]])
    >>> conv(np.ones((2, 8, 6, 6)), np.ones((4, 2, 3, 3)), groups=4, padding="same").shape
    (2, 4, 6, 6)
    """
    x = np.asarray(x)
    weight = np.asarray(weight)
    bias = None if bias is None else np.asarray(bias)
    dtype = _work_dtype(x, weight, bias)

    d = weight.ndim - 2
    if d not in (1, 2, 3):
        raise ValueError(f"weight must have 3, 4 or 5 dims, got shape {weight.shape}")
    if x.ndim != d + 2:
        raise ValueError(f"x must be batched with {d + 2} dims for a {d}-d weight, "
                         f"got shape {x.shape}")
    if layout not in _LAYOUTS:
        raise ValueError(f"layout must be 'channels_first' or 'channels_last', got {layout!r}")
    if padding_mode not in _NP_PAD_MODE:
        raise ValueError(f"padding_mode must be one of {sorted(_NP_PAD_MODE)}, "
                         f"got {padding_mode!r}")
    if not _is_int(groups) or groups < 1:
        raise ValueError(f"groups must be an int >= 1, got {groups!r}")

    xf = x.astype(dtype)
    if layout == "channels_last":
        xf = np.moveaxis(xf, -1, 1)
    w = weight.astype(dtype)
    n_batch, c_in = xf.shape[:2]
    lengths = xf.shape[2:]
    c_out, c_g = w.shape[:2]
    kernel = w.shape[2:]
    if c_in % groups or c_out % groups:
        raise ValueError(f"groups={groups} must divide C_in={c_in} and C_out={c_out}")
    if c_g != c_in // groups:
        raise ValueError(f"weight.shape[1] must be C_in // groups = {c_in // groups}, "
                         f"got {c_g}")
    if bias is not None and bias.shape != (c_out,):
        raise ValueError(f"bias must have shape ({c_out},), got {bias.shape}")

    stride = _per_dim(stride, d, "stride")
    dilation = _per_dim(dilation, d, "dilation")
    pads = _resolve_padding(padding, lengths, kernel, stride, dilation)

    for L, (lo, hi) in zip(lengths, pads, strict=True):
        limit = L - 1 if padding_mode == "reflect" else L
        if padding_mode != "zeros" and padding_mode != "replicate" and max(lo, hi) > limit:
            raise ValueError(f"padding {(lo, hi)} too large for padding_mode="
                             f"{padding_mode!r} on a spatial size of {L}")
        if padding_mode == "replicate" and L == 0 and (lo or hi):
            raise ValueError("padding_mode='replicate' cannot pad an empty spatial axis")

    spans = tuple((k - 1) * dil + 1 for k, dil in zip(kernel, dilation, strict=True))
    out_shape = tuple(
        (L + lo + hi - span) // s + 1
        for L, (lo, hi), span, s in zip(lengths, pads, spans, stride, strict=True)
    )
    if any(o < 1 for o in out_shape):
        raise ValueError(f"output spatial size {out_shape} is below 1 for input spatial "
                         f"size {tuple(lengths)}, kernel {tuple(kernel)}, padding {pads}, "
                         f"stride {stride}, dilation {dilation}")

    xpad = np.pad(xf, ((0, 0), (0, 0), *pads), mode=_NP_PAD_MODE[padding_mode])

    # windows[n, c, *p, *t]: every window of the dilated kernel's extent,
    # thinned to every stride-th window and every dilation-th tap.
    spatial_axes = tuple(range(2, 2 + d))
    windows = sliding_window_view(xpad, spans, axis=spatial_axes)
    windows = windows[
        (slice(None), slice(None))
        + tuple(slice(None, None, s) for s in stride)
        + tuple(slice(None, None, dil) for dil in dilation)
    ]
    assert windows.shape[2:] == out_shape + tuple(kernel)

    p_idx = "pqr"[:d]
    t_idx = "tuv"[:d]
    subscripts = f"nc{p_idx}{t_idx},oc{t_idx}->no{p_idx}"
    c_out_g = c_out // groups
    parts = [
        np.einsum(
            subscripts,
            windows[:, g * c_g:(g + 1) * c_g],
            w[g * c_out_g:(g + 1) * c_out_g],
            optimize=True,
        )
        for g in range(groups)
    ]
    y = np.concatenate(parts, axis=1) if parts else np.zeros((n_batch, 0, *out_shape), dtype)
    y = y.astype(dtype, copy=False)
    assert y.shape == (n_batch, c_out, *out_shape)
    if bias is not None:
        y = y + bias.astype(dtype).reshape((1, c_out) + (1,) * d)
    if layout == "channels_last":
        y = np.moveaxis(y, 1, -1)
    return np.ascontiguousarray(y)


def depthwise_conv(x, weight, bias=None, **kw):
    """Depthwise convolution: :func:`conv` with ``groups = C_in``.

    Output channel ``c * M + q`` (``M = C_out // C_in``) is input channel
    ``c`` correlated with ``weight[c * M + q, 0]``.

    Parameters
    ----------
    x : array_like
        Batched input, as in :func:`conv`.
    weight : array_like
        ``(C_in * M, 1, *k)``.
    bias : array_like, optional
        ``(C_in * M,)``.
    **kw
        Any keyword of :func:`conv` except ``groups``.

    Returns
    -------
    numpy.ndarray
        As :func:`conv`.

    Examples
    --------
    >>> import numpy as np
    >>> from groupconv.reference import depthwise_conv
    >>> x = np.array([[[1.0, 2.0, 3.0], [10.0, 20.0, 30.0]]])  # (N=1, C=2, L=3)
    >>> w = np.array([[[1.0, 1.0]], [[1.0, -1.0]]])             # (2, 1, 2)
    >>> depthwise_conv(x, w)
    array([[[  3.,   5.],
            [-10., -10.]]])
    """
    if "groups" in kw:
        raise TypeError("depthwise_conv() takes no 'groups' argument (it is C_in)")
    x = np.asarray(x)
    layout = kw.get("layout", "channels_first")
    if x.ndim < 2:
        raise ValueError(f"x must be batched, got shape {x.shape}")
    c_in = x.shape[-1] if layout == "channels_last" else x.shape[1]
    return conv(x, weight, bias, groups=c_in, **kw)


def separable_conv(
    x,
    depthwise_weight,
    pointwise_weight,
    bias=None,
    *,
    stride=1,
    padding=0,
    dilation=1,
    padding_mode="zeros",
    layout="channels_first",
):
    """Depthwise-separable convolution: depthwise (no bias), then a 1x1 pointwise conv.

    Parameters
    ----------
    x : array_like
        Batched input, as in :func:`conv`.
    depthwise_weight : array_like
        ``(C_in * M, 1, *k)``.
    pointwise_weight : array_like
        ``(C_out, C_in * M)`` or ``(C_out, C_in * M, 1, ..., 1)``.
    bias : array_like, optional
        ``(C_out,)``, the pointwise bias.
    stride, padding, dilation, padding_mode
        Apply to the depthwise step, as in :func:`conv`; the pointwise step is
        1x1 with stride 1 and no padding.
    layout : {"channels_first", "channels_last"}
        As in :func:`conv`.

    Returns
    -------
    numpy.ndarray
        ``(N, C_out, *out)`` or ``(N, *out, C_out)``, float64 or complex128.

    Examples
    --------
    >>> import numpy as np
    >>> from groupconv.reference import separable_conv
    >>> x = np.array([[[1.0, 2.0, 3.0], [10.0, 20.0, 30.0]]])   # (1, 2, 3)
    >>> dw = np.array([[[1.0, 1.0]], [[1.0, -1.0]]])            # (2, 1, 2)
    >>> pw = np.array([[1.0, 1.0]])                             # (1, 2)
    >>> separable_conv(x, dw, pw, bias=np.array([100.0]))
    array([[[93., 95.]]])
    """
    depthwise_weight = np.asarray(depthwise_weight)
    pointwise_weight = np.asarray(pointwise_weight)
    d = depthwise_weight.ndim - 2
    if pointwise_weight.ndim == 2:
        pointwise_weight = pointwise_weight.reshape(pointwise_weight.shape + (1,) * d)
    if pointwise_weight.ndim != d + 2 or any(k != 1 for k in pointwise_weight.shape[2:]):
        raise ValueError(f"pointwise_weight must be (C_out, C_in*M) or (C_out, C_in*M"
                         f"{', 1' * d}), got shape {pointwise_weight.shape}")
    mid = depthwise_conv(
        x,
        depthwise_weight,
        stride=stride,
        padding=padding,
        dilation=dilation,
        padding_mode=padding_mode,
        layout=layout,
    )
    return conv(mid, pointwise_weight, bias, layout=layout)


def tf_depthwise_conv2d(input, filter, strides, padding, dilations=(1, 1)):
    """Direct-loop transcription of TensorFlow's ``tf.nn.depthwise_conv2d`` (NHWC only).

    Independent of :func:`conv`: it pads by hand and loops over every output
    position and tap of TensorFlow's documented formula::

        output[b, i, j, k*M + q] = sum_{di, dj} filter[di, dj, k, q]
            * padded_input[b, strides[0]*i + dilations[0]*di,
                              strides[1]*j + dilations[1]*dj, k]

    Use it on tiny inputs only.

    Parameters
    ----------
    input : array_like
        ``(N, H, W, C_in)``.
    filter : array_like
        ``(kh, kw, C_in, M)``.
    strides : pair of int
        ``(stride_h, stride_w)``.
    padding : {"VALID", "SAME"} or list of pairs
        ``"VALID"``: no padding. ``"SAME"``: TensorFlow's rule, output length
        ``ceil(L / stride)``, total pad
        ``max((out - 1) * stride + (k - 1) * dilation + 1 - L, 0)``, the odd
        element at the bottom/right. Or explicit ``[(top, bottom), (left, right)]``;
        TensorFlow's 4-pair NHWC form with zero batch and channel pairs is also
        accepted.
    dilations : pair of int, optional
        ``(dilation_h, dilation_w)``.

    Returns
    -------
    numpy.ndarray
        ``(N, out_h, out_w, C_in * M)``, float64 (complex128 for complex input).

    Examples
    --------
    >>> import numpy as np
    >>> from groupconv.reference import tf_depthwise_conv2d
    >>> x = np.arange(1.0, 10.0).reshape(1, 3, 3, 1)
    >>> f = np.array([1.0, 2.0, 3.0, 4.0]).reshape(2, 1, 1, 2)
    >>> tf_depthwise_conv2d(x, f, (1, 1), "VALID")[0, :, :, 0]
    array([[13., 17., 21.],
           [25., 29., 33.]])
    """
    inp = np.asarray(input)
    filt = np.asarray(filter)
    dtype = _work_dtype(inp, filt)
    if inp.ndim != 4 or filt.ndim != 4 or filt.shape[2] != inp.shape[3]:
        raise ValueError(f"need input (N, H, W, C) and filter (kh, kw, C, M), got "
                         f"{inp.shape} and {filt.shape}")
    n_batch, height, width, channels = inp.shape
    kh, kw, _, mult = filt.shape
    sh, sw = (int(s) for s in strides)
    dh, dw = (int(v) for v in dilations)

    if isinstance(padding, str):
        if padding == "VALID":
            pad_h = pad_w = (0, 0)
        elif padding == "SAME":
            def same(L, k, s, dil):
                out = math.ceil(L / s)
                total = max((out - 1) * s + (k - 1) * dil + 1 - L, 0)
                return (total // 2, total - total // 2)

            pad_h = same(height, kh, sh, dh)
            pad_w = same(width, kw, sw, dw)
        else:
            raise ValueError(f"padding must be 'VALID', 'SAME' or explicit pairs, "
                             f"got {padding!r}")
    else:
        pairs = [tuple(int(v) for v in p) for p in padding]
        if len(pairs) == 4:
            if pairs[0] != (0, 0) or pairs[3] != (0, 0):
                raise ValueError(f"batch and channel padding must be (0, 0), got {padding!r}")
            pairs = pairs[1:3]
        if len(pairs) != 2:
            raise ValueError(f"explicit padding needs 2 (or 4) pairs, got {padding!r}")
        pad_h, pad_w = pairs

    padded = np.zeros((n_batch, height + pad_h[0] + pad_h[1],
                       width + pad_w[0] + pad_w[1], channels), dtype=dtype)
    padded[:, pad_h[0]:pad_h[0] + height, pad_w[0]:pad_w[0] + width, :] = inp

    out_h = (padded.shape[1] - (kh - 1) * dh - 1) // sh + 1
    out_w = (padded.shape[2] - (kw - 1) * dw - 1) // sw + 1
    if out_h < 1 or out_w < 1:
        raise ValueError(f"output spatial size ({out_h}, {out_w}) is below 1")

    output = np.zeros((n_batch, out_h, out_w, channels * mult), dtype=dtype)
    for b in range(n_batch):
        for i in range(out_h):
            for j in range(out_w):
                for k in range(channels):
                    for q in range(mult):
                        acc = dtype.type(0)
                        for di in range(kh):
                            for dj in range(kw):
                                acc += filt[di, dj, k, q] * padded[
                                    b, sh * i + dh * di, sw * j + dw * dj, k
                                ]
                        output[b, i, j, k * mult + q] = acc
    return output
