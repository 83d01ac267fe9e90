"""TensorFlow-compatible ``tf.nn`` convolutions for NumPy arrays.

:func:`conv2d`, :func:`depthwise_conv2d` and :func:`separable_conv2d` take
TensorFlow's signatures, defaults (``data_format="NHWC"``) and filter layouts,
and compute exactly what ``tf.nn.conv2d``, ``tf.nn.depthwise_conv2d`` and
``tf.nn.separable_conv2d`` compute (cross-correlation; ``"SAME"`` is
TensorFlow's rule at any stride and dilation, with the odd padding pixel at
the bottom/right). Each one only translates its arguments and calls
:func:`groupconv.conv`, :func:`groupconv.depthwise_conv` or
:func:`groupconv.separable_conv`; the filters are rearranged into
groupconv's ``(C_out, C_in // groups, kh, kw)`` layout (a copy the size of
the filter at most) and the inputs are never modified.

Filter layouts and their translation to groupconv weights:

- ``conv2d``: ``filters`` ``(kh, kw, C_in // G, C_out)``, with
  ``G = C_in // filters.shape[2]`` groups, becomes
  ``filters.transpose(3, 2, 0, 1)``.
- ``depthwise_conv2d``: ``filter`` ``(kh, kw, C_in, M)`` becomes
  ``filter.transpose(2, 3, 0, 1).reshape(C_in * M, 1, kh, kw)``.
- ``separable_conv2d``: the depthwise filter as above, and
  ``pointwise_filter`` ``(1, 1, C_in * M, C_out)`` becomes
  ``pointwise_filter[0, 0].T``, ``(C_out, C_in * M)``.

Output channel ``k*M + q`` of a depthwise convolution comes from input
channel ``k`` through ``filter[:, :, k, q]``, as in TensorFlow.

Where groupconv accepts more than TensorFlow, it computes the one
well-defined result instead of refusing:

- ``depthwise_conv2d`` and ``separable_conv2d`` with a stride > 1 *and* a
  dilation > 1 (TensorFlow requires all strides to be 1 when the dilation
  rate is greater than 1): here output ``(i, j)`` reads the padded input at
  ``(i*sh + di*dh, j*sw + dj*dw)`` for tap ``(di, dj)``, the formula TensorFlow
  documents, evaluated at any stride and dilation.
- Grouped ``conv2d`` on the CPU (TensorFlow's CPU kernels have long refused
  grouped convolutions with an ``UnimplementedError``).
- ``strides`` and ``dilations`` may be an int, 1, 2 or 4 ints for every
  function (TensorFlow's depthwise and separable functions want 4 strides
  and 2 dilations); ``padding`` may be ``"same"``/``"valid"`` in any case.
- Any real, complex, integer or bool dtype, mixed freely (TensorFlow wants
  one floating dtype for input and filters); see :func:`groupconv.conv`
  for the dtype policy.
- ``separable_conv2d`` with ``C_in * M > C_out`` (old TensorFlow versions
  refused this "overparameterized" case).

Like TensorFlow, ``conv2d`` takes inputs of rank 4 or more (the leading
dims are all batch dims); ``depthwise_conv2d`` and ``separable_conv2d``
take rank 4 only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from . import _xp
from ._api import conv, depthwise_conv, separable_conv
from ._validate import as_int

__all__ = ["conv2d", "depthwise_conv2d", "separable_conv2d"]

DataFormat = Literal["NHWC", "NCHW"]
IntOrInts = int | Sequence[int]
TFPadding = str | Sequence[Sequence[int]]

# data_format -> (groupconv layout, position of the channel axis in a 4-D tensor)
_DATA_FORMATS = {"NHWC": ("channels_last", 3), "NCHW": ("channels_first", 1)}


def _is_sequence(value) -> bool:
    if isinstance(value, np.ndarray):
        return value.ndim > 0
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def _tf_keywords(strides, padding, data_format, dilations) -> dict:
    """Translate TensorFlow's ``strides``, ``padding``, ``data_format`` and ``dilations``.

    Returns the keywords ``stride``, ``dilation``, ``padding`` and ``layout``
    of :func:`groupconv.conv`. Only what is TensorFlow-specific is checked
    here (the 4-entry forms and their batch and channel entries, the
    padding words); everything else is left to the call it feeds.
    """
    if not isinstance(data_format, str) or data_format not in _DATA_FORMATS:
        raise ValueError(
            f"data_format must be 'NHWC' or 'NCHW', got data_format={data_format!r}"
        )
    layout, channel = _DATA_FORMATS[data_format]
    spatial = (1, 2) if channel == 3 else (2, 3)
    fixed = f"the batch and channel entries for data_format={data_format!r}"

    def per_dim(value, name):
        if not _is_sequence(value):
            return as_int(value, name, minimum=1)
        items = list(value)
        if len(items) == 4:
            if any(as_int(items[i], f"{name}[{i}]") != 1 for i in (0, channel)):
                raise ValueError(
                    f"{name}[0] and {name}[{channel}] must be 1 ({fixed}): TensorFlow "
                    f"does not support {name} there; got {name}={value!r}"
                )
            positions = spatial
        elif len(items) == 2:
            positions = (0, 1)
        elif len(items) == 1:
            positions = (0, 0)
        else:
            raise ValueError(
                f"{name} must be an int or a list of 1, 2 or 4 ints, got {len(items)} "
                f"values: {name}={value!r}"
            )
        return tuple(as_int(items[i], f"{name}[{i}]", minimum=1) for i in positions)

    stride = per_dim(strides, "strides")
    dilation = per_dim(1 if dilations is None else dilations, "dilations")

    expected = (
        f"'SAME', 'VALID' or a list of 4 [lo, hi] pairs in data_format={data_format!r} "
        f"order with [0, 0] for the batch and channel dims"
    )
    if isinstance(padding, str):
        if padding.upper() not in ("SAME", "VALID"):
            raise ValueError(f"padding must be {expected}; got padding={padding!r}")
        pads = padding.lower()
    elif _is_sequence(padding):
        pairs = list(padding)
        if len(pairs) != 4:
            raise ValueError(
                f"padding must be {expected}; got {len(pairs)} entries: padding={padding!r}"
            )
        resolved = []
        for i, pair in enumerate(pairs):
            if not _is_sequence(pair) or len(pair) != 2:
                raise ValueError(
                    f"padding[{i}] must be a [lo, hi] pair, got padding[{i}]={pair!r}"
                )
            lo, hi = (as_int(v, f"padding[{i}][{j}]", minimum=0) for j, v in enumerate(pair))
            if i not in spatial and (lo, hi) != (0, 0):
                raise ValueError(
                    f"padding[{i}] must be [0, 0] (padding[0] and padding[{channel}] are "
                    f"{fixed}, which TensorFlow does not pad); got padding={padding!r}"
                )
            resolved.append((lo, hi))
        pads = tuple(resolved[i] for i in spatial)
    else:
        raise ValueError(f"padding must be {expected}; got padding={padding!r}")
    return {"stride": stride, "dilation": dilation, "padding": pads, "layout": layout}


def _input_shape(input, data_format, *, rank4_only=True) -> tuple[tuple[int, ...], int]:
    """The input's shape and channel count (after ``data_format`` was checked)."""
    shape = tuple(_xp.asarray(input, "input").shape if _xp.is_gpu(input) else np.shape(input))
    layout = "(N, H, W, C)" if data_format == "NHWC" else "(N, C, H, W)"
    if len(shape) != 4 and (rank4_only or len(shape) < 4):
        rank = "4-D" if rank4_only else "of rank 4 or more"
        raise ValueError(
            f"input must be {rank} {layout} for data_format={data_format!r}, "
            f"got input.shape={shape}"
        )
    return shape, shape[-1] if data_format == "NHWC" else shape[-3]


def _filter_array(value, name, layout) -> np.ndarray:
    """``value`` as a 4-D array with non-empty kernel dims, or a ValueError naming ``name``."""
    arr = _xp.asarray(value, name)
    if arr.ndim != 4 or min(arr.shape[:2]) < 1:
        raise ValueError(
            f"{name} must be 4-D {layout} with kernel sizes >= 1, "
            f"got {name}.shape={tuple(arr.shape)}"
        )
    return arr


def _depthwise_weight(depthwise, name, c_in, input_shape) -> np.ndarray:
    """TensorFlow's ``(kh, kw, C_in, M)`` -> groupconv's ``(C_in * M, 1, kh, kw)``."""
    arr = _filter_array(depthwise, name, "(filter_height, filter_width, C_in, M)")
    kh, kw, channels, multiplier = arr.shape
    if channels != c_in or multiplier < 1:
        raise ValueError(
            f"{name} must have shape (filter_height, filter_width, C_in, M) with "
            f"{name}.shape[2] = the input's C_in = {c_in} and a channel multiplier M >= 1; "
            f"got {name}.shape={arr.shape} for input.shape={input_shape}"
        )
    return _xp.reshape(_xp.transpose(arr, (2, 3, 0, 1)), (c_in * multiplier, 1, kh, kw))


def conv2d(
    input: ArrayLike,
    filters: ArrayLike,
    strides: IntOrInts,
    padding: TFPadding,
    data_format: DataFormat = "NHWC",
    dilations: IntOrInts | None = None,
) -> np.ndarray:
    """2-D (grouped) convolution, as ``tf.nn.conv2d``.

    ``output[b, i, j, o] = sum_{di, dj, c} xpad[b, sh*i + dh*di, sw*j + dw*dj,
    g*Cg + c] * filters[di, dj, c, o]`` (NHWC shown; ``xpad`` is the padded
    input, ``sh, sw`` the strides and ``dh, dw`` the dilations) where ``Cg = filters.shape[2]``,
    ``G = C_in // Cg`` groups and ``g = o // (C_out // G)``. ``G == 1`` is an
    ordinary convolution.

    Parameters
    ----------
    input : array_like
        ``batch_shape + (H, W, C_in)`` for ``"NHWC"`` or
        ``batch_shape + (C_in, H, W)`` for ``"NCHW"``; ``batch_shape`` has one
        or more dims.
    filters : array_like
        ``(filter_height, filter_width, C_in // G, C_out)``; ``C_out`` must be
        a multiple of ``G``.
    strides : int or list of int
        An int, 1 or 2 ints (height, width), or 4 ints in ``data_format``
        order whose batch and channel entries are 1.
    padding : str or list of pairs
        ``"SAME"``, ``"VALID"`` or 4 ``[lo, hi]`` pairs in ``data_format``
        order, ``[0, 0]`` for the batch and channel dims.
    data_format : {"NHWC", "NCHW"}, optional
        Layout of ``input`` and of the result.
    dilations : int or list of int, optional
        As ``strides``; ``None`` means 1.

    Returns
    -------
    numpy.ndarray
        ``batch_shape + (out_h, out_w, C_out)`` (or ``batch_shape + (C_out,
        out_h, out_w)`` for ``"NCHW"``).

    Raises
    ------
    ValueError
        If ``filters.shape[2]`` does not divide ``C_in`` or ``G`` does not
        divide ``C_out``, ``strides``, ``dilations``, ``padding`` or
        ``data_format`` is malformed, or the kernel does not fit the input.
    TypeError
        If an entry of ``strides``, ``dilations`` or ``padding`` is not an
        integer, or a dtype is not numeric.

    See Also
    --------
    groupconv.conv, depthwise_conv2d

    Examples
    --------
    Two groups (``C_in = 2``, one input channel per group): each output
    channel sums a 2x2 window of its own input channel.

    >>> import numpy as np
    >>> from groupconv import tf
    >>> x = np.stack([np.ones((3, 3)), 10 * np.ones((3, 3))], axis=-1)[None]
    >>> y = tf.conv2d(x, np.ones((2, 2, 1, 2)), strides=1, padding="VALID")
    >>> y.shape
    (1, 2, 2, 2)
    >>> y[0, 0, 0]
    array([ 4., 40.])
    """
    keywords = _tf_keywords(strides, padding, data_format, dilations)
    shape, c_in = _input_shape(input, data_format, rank4_only=False)
    weights = _filter_array(filters, "filters", "(filter_height, filter_width, C_in // G, C_out)")
    per_group, c_out = weights.shape[2], weights.shape[3]
    if per_group < 1 or c_in < 1 or c_in % per_group:
        raise ValueError(
            f"filters.shape[2]={per_group} (input channels per group) must divide the "
            f"input's C_in={c_in}; got filters.shape={weights.shape} for input.shape={shape}"
        )
    groups = c_in // per_group
    if c_out < 1 or c_out % groups:
        raise ValueError(
            f"filters.shape[3]={c_out} (C_out) must be a positive multiple of the "
            f"{groups} groups (C_in // filters.shape[2] = {c_in} // {per_group}); "
            f"got filters.shape={weights.shape}"
        )
    batch_shape = shape[:-3]
    x = input if len(batch_shape) == 1 else _xp.reshape(input, (math.prod(batch_shape),
                                                                  *shape[-3:]))
    y = conv(x, _xp.transpose(weights, (3, 2, 0, 1)), groups=groups, **keywords)
    return y if len(batch_shape) == 1 else _xp.reshape(y, batch_shape + tuple(y.shape[1:]))


def depthwise_conv2d(
    input: ArrayLike,
    filter: ArrayLike,
    strides: IntOrInts,
    padding: TFPadding,
    data_format: DataFormat = "NHWC",
    dilations: IntOrInts | None = None,
) -> np.ndarray:
    """Depthwise 2-D convolution, as ``tf.nn.depthwise_conv2d``.

    ``output[b, i, j, k*M + q] = sum_{di, dj} filter[di, dj, k, q] *
    xpad[b, sh*i + dh*di, sw*j + dw*dj, k]`` (NHWC shown; ``xpad`` is the
    padded input, ``sh, sw`` the strides and ``dh, dw`` the dilations): every
    input channel ``k`` is correlated with its own ``M`` filters.

    Parameters
    ----------
    input : array_like
        ``(N, H, W, C_in)`` for ``"NHWC"`` or ``(N, C_in, H, W)`` for ``"NCHW"``.
    filter : array_like
        ``(filter_height, filter_width, C_in, M)``; ``M`` is the channel
        multiplier.
    strides : int or list of int
        An int, 1 or 2 ints (height, width), or 4 ints in ``data_format``
        order whose batch and channel entries are 1. May be > 1 together
        with a dilation > 1 (TensorFlow refuses that).
    padding : str or list of pairs
        ``"SAME"``, ``"VALID"`` or 4 ``[lo, hi]`` pairs in ``data_format``
        order, ``[0, 0]`` for the batch and channel dims.
    data_format : {"NHWC", "NCHW"}, optional
        Layout of ``input`` and of the result.
    dilations : int or list of int, optional
        As ``strides``; ``None`` means 1.

    Returns
    -------
    numpy.ndarray
        ``(N, out_h, out_w, C_in * M)`` (or ``(N, C_in * M, out_h, out_w)``
        for ``"NCHW"``).

    Raises
    ------
    ValueError
        If ``filter.shape[2]`` is not ``C_in``, ``input`` is not 4-D,
        ``strides``, ``dilations``, ``padding`` or ``data_format`` is
        malformed, or the kernel does not fit the input.
    TypeError
        If an entry of ``strides``, ``dilations`` or ``padding`` is not an
        integer, or a dtype is not numeric.

    See Also
    --------
    groupconv.depthwise_conv, separable_conv2d

    Examples
    --------
    A 2x1 filter with multiplier 2 on a 3x3 image (``VALID``, stride 1):

    >>> import numpy as np
    >>> from groupconv import tf
    >>> x = np.arange(1.0, 10.0).reshape(1, 3, 3, 1)
    >>> f = np.array([1.0, 2.0, 3.0, 4.0]).reshape(2, 1, 1, 2)
    >>> y = tf.depthwise_conv2d(x, f, strides=[1, 1, 1, 1], padding="VALID")
    >>> y.shape
    (1, 2, 3, 2)
    >>> y[0, :, :, 0]
    array([[13., 17., 21.],
           [25., 29., 33.]])
    """
    keywords = _tf_keywords(strides, padding, data_format, dilations)
    shape, c_in = _input_shape(input, data_format)
    return depthwise_conv(input, _depthwise_weight(filter, "filter", c_in, shape), **keywords)


def separable_conv2d(
    input: ArrayLike,
    depthwise_filter: ArrayLike,
    pointwise_filter: ArrayLike,
    strides: IntOrInts,
    padding: TFPadding,
    data_format: DataFormat = "NHWC",
    dilations: IntOrInts | None = None,
) -> np.ndarray:
    """Depthwise-separable 2-D convolution, as ``tf.nn.separable_conv2d``.

    :func:`depthwise_conv2d` with ``depthwise_filter``, ``strides``,
    ``padding`` and ``dilations``, then a 1x1 convolution with
    ``pointwise_filter`` (stride 1, no padding).

    Parameters
    ----------
    input : array_like
        ``(N, H, W, C_in)`` for ``"NHWC"`` or ``(N, C_in, H, W)`` for ``"NCHW"``.
    depthwise_filter : array_like
        ``(filter_height, filter_width, C_in, M)``.
    pointwise_filter : array_like
        ``(1, 1, C_in * M, C_out)``.
    strides : int or list of int
        Strides of the depthwise step: an int, 1 or 2 ints, or 4 ints in
        ``data_format`` order whose batch and channel entries are 1.
    padding : str or list of pairs
        Padding of the depthwise step: ``"SAME"``, ``"VALID"`` or 4
        ``[lo, hi]`` pairs in ``data_format`` order.
    data_format : {"NHWC", "NCHW"}, optional
        Layout of ``input`` and of the result.
    dilations : int or list of int, optional
        Dilation rate of the depthwise step, as ``strides``; ``None`` means 1.

    Returns
    -------
    numpy.ndarray
        ``(N, out_h, out_w, C_out)`` (or ``(N, C_out, out_h, out_w)`` for
        ``"NCHW"``).

    Raises
    ------
    ValueError
        If a filter has the wrong shape, ``input`` is not 4-D, ``strides``,
        ``dilations``, ``padding`` or ``data_format`` is malformed, or the
        kernel does not fit the input.
    TypeError
        If an entry of ``strides``, ``dilations`` or ``padding`` is not an
        integer, or a dtype is not numeric.

    See Also
    --------
    groupconv.separable_conv, depthwise_conv2d

    Examples
    --------
    Sum 3x3 windows of each channel, then add the two channels with weights
    1 and 10:

    >>> import numpy as np
    >>> from groupconv import tf
    >>> x = np.ones((1, 4, 4, 2))
    >>> dw = np.ones((3, 3, 2, 1))
    >>> pw = np.array([1.0, 10.0]).reshape(1, 1, 2, 1)
    >>> tf.separable_conv2d(x, dw, pw, strides=1, padding="VALID")[..., 0]
    array([[[99., 99.],
            [99., 99.]]])
    """
    keywords = _tf_keywords(strides, padding, data_format, dilations)
    shape, c_in = _input_shape(input, data_format)
    dw = _depthwise_weight(depthwise_filter, "depthwise_filter", c_in, shape)
    pw = _xp.asarray(pointwise_filter, "pointwise_filter")
    c_mid = dw.shape[0]
    if pw.ndim != 4 or tuple(pw.shape[:3]) != (1, 1, c_mid) or pw.shape[3] < 1:
        raise ValueError(
            f"pointwise_filter must have shape (1, 1, {c_mid}, C_out) where {c_mid} = "
            f"C_in * M = depthwise_filter.shape[2] * depthwise_filter.shape[3], "
            f"got pointwise_filter.shape={tuple(pw.shape)}"
        )
    return separable_conv(input, dw, _xp.transpose(pw[0, 0], (1, 0)), **keywords)
