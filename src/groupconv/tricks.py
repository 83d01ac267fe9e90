"""Grouped convolution built from other convolutions: the Q&A's split-and-sum strategies.

Frameworks that have a depthwise convolution but no grouped one (or only a
dense one) can still compute ``conv(x, weight, groups=G)``:

- :func:`grouped_conv_via_depthwise` runs one depthwise convolution with
  multiplier ``C_out // G`` on a channel-permuted input and adds up the
  ``C_in // G`` slices of its result with :func:`split_sum`;
- :func:`grouped_conv_via_split` splits the input into its ``G`` channel
  groups, runs a dense convolution on each and concatenates the results.

Both equal :func:`groupconv.conv` with ``groups=G`` (up to rounding) and
take its arguments; they exist to document and test the strategies, and are
slower than ``conv``, which handles groups natively. The arguments are
checked once, by the same code as :func:`groupconv.conv`; the inputs are
never modified.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from . import _xp
from ._api import IntOrTuple, Padding, PaddingMode, conv, depthwise_conv
from ._spec import ConvSpec, conv_spec
from ._validate import as_int

__all__ = ["grouped_conv_via_depthwise", "grouped_conv_via_split", "split_sum"]


def split_sum(y: ArrayLike, parts: int, axis: int = 1) -> np.ndarray:
    """Cut ``y`` into ``parts`` equal slices along ``axis`` and add them up.

    Like cutting a deck of cards into ``parts`` equal piles and stacking
    them: slice ``p`` is ``y[..., p*L/parts : (p+1)*L/parts, ...]`` with
    ``L = y.shape[axis]``, and the result is the elementwise sum of the
    slices, with ``L / parts`` entries along ``axis``.

    Parameters
    ----------
    y : array_like
        Any array, e.g. a depthwise convolution's result.
    parts : int
        Number of slices; must divide ``y.shape[axis]``.
    axis : int, optional
        The axis to cut, by default 1 (the channel axis of a batched
        channels-first array; use -1 for channels-last).

    Returns
    -------
    numpy.ndarray
        A new array of ``y``'s shape with ``y.shape[axis] // parts`` along
        ``axis``; its dtype is :func:`numpy.sum`'s for ``y``'s dtype.

    Raises
    ------
    ValueError
        If ``parts`` does not divide ``y.shape[axis]``, ``parts < 1`` or
        ``axis`` is out of range.
    TypeError
        If ``parts`` or ``axis`` is not an integer.

    See Also
    --------
    grouped_conv_via_depthwise

    Examples
    --------
    >>> import numpy as np
    >>> from groupconv.tricks import split_sum
    >>> split_sum(np.arange(6.0), 3, axis=0)      # [0, 1] + [2, 3] + [4, 5]
    array([6., 9.])
    >>> y = np.arange(8.0).reshape(1, 4, 2)       # channels 0, 1 | 2, 3
    >>> split_sum(y, 2)
    array([[[ 4.,  6.],
            [ 8., 10.]]])
    """
    caller, y = y, _xp.asarray(y, "y")
    parts = as_int(parts, "parts", minimum=1)
    axis = as_int(axis, "axis")
    if not -y.ndim <= axis < y.ndim:
        raise ValueError(
            f"axis={axis} is out of range for y with {y.ndim} dims (y.shape={y.shape}); "
            f"expected -{y.ndim} <= axis < {y.ndim}"
        )
    index = axis % y.ndim
    length = y.shape[index]
    if length % parts:
        raise ValueError(
            f"parts={parts} does not divide y.shape[{axis}]={length}; "
            f"expected a divisor of {length}"
        )
    cut = tuple(y.shape[:index]) + (parts, length // parts) + tuple(y.shape[index + 1:])
    return _xp.like(_xp.sum_axis(_xp.reshape(y, cut), index), caller)


def _grouped_spec(x, weight, bias, groups, stride, padding, dilation, padding_mode, layout):
    """Check the arguments once, as :func:`groupconv.conv` does."""
    return conv_spec(
        x, weight, bias, stride=stride, padding=padding, dilation=dilation,
        groups=as_int(groups, "groups", minimum=1), padding_mode=padding_mode, layout=layout,
    )


def _keywords(spec: ConvSpec) -> dict:
    """The resolved geometry of ``spec``, as keywords of :func:`groupconv.conv`."""
    return {
        "stride": spec.stride, "padding": spec.padding, "dilation": spec.dilation,
        "padding_mode": spec.padding_mode, "layout": spec.layout,
    }


def _finish(spec: ConvSpec, y: np.ndarray) -> np.ndarray:
    y = _xp.astype(y, spec.result_dtype)
    y = y if spec.batched else y[0]
    # A GPU result goes back as the caller's kind of array (CuPy, PyTorch, ...).
    return y if spec.caller is None else _xp.like(y, spec.caller.like)


def grouped_conv_via_depthwise(
    x: ArrayLike,
    weight: ArrayLike,
    bias: ArrayLike | None = None,
    *,
    groups: int,
    stride: IntOrTuple = 1,
    padding: Padding = 0,
    dilation: IntOrTuple = 1,
    padding_mode: PaddingMode = "zeros",
    layout: str = "channels_first",
) -> np.ndarray:
    """Grouped convolution as one depthwise convolution followed by :func:`split_sum`.

    With ``G = groups``, ``Cg = C_in // G`` and ``Og = C_out // G``, the
    grouped result is ``y[o] = sum_{j < Cg} x[g*Cg + j] * weight[o, j]`` for
    ``o = g*Og + q`` (``*`` is the per-channel cross-correlation). Three
    steps produce exactly these sums:

    1. Permute the input channels so that channel ``j*G + g`` of ``xp`` is
       channel ``g*Cg + j`` of ``x``: reshape the channel axis to
       ``(G, Cg)``, transpose it to ``(Cg, G)``, flatten it again.
    2. Run a depthwise convolution of ``xp`` with multiplier ``Og`` and the
       weight ``w_dw[(j*G + g)*Og + q, 0] = weight[g*Og + q, j]``. Its
       channel ``(j*G + g)*Og + q = j*C_out + o`` is
       ``x[g*Cg + j] * weight[o, j]``: the ``Cg * C_out`` channels are ``Cg``
       consecutive blocks of ``C_out``, block ``j`` holding the ``j``-th term
       of every output channel's sum.
    3. ``split_sum(..., parts=Cg)`` adds the ``Cg`` blocks, which is the sum
       over ``j``; then add ``bias``.

    As the Q&A notes, without the permutation the blocks pair the wrong
    channels: with ``parts == 2``, a depthwise convolution of the
    *unpermuted* input followed by ``split_sum(..., parts=2)`` groups input
    channel ``i`` with channel ``i + C_in/2``, not with its neighbour.

    Parameters
    ----------
    x : array_like
        Input, batched or not, as for :func:`groupconv.conv`.
    weight : array_like
        ``(C_out, C_in // groups, *kernel)``.
    bias : array_like, optional
        ``(C_out,)``.
    groups : int
        Number of groups; must divide ``C_in`` and ``C_out``.
    stride, padding, dilation, padding_mode, layout
        As for :func:`groupconv.conv`.

    Returns
    -------
    numpy.ndarray
        The same as ``groupconv.conv(x, weight, bias, groups=groups, ...)``
        up to rounding. The depthwise intermediate has ``C_in // groups``
        times as many channels as the result.

    Raises
    ------
    ValueError
        As :func:`groupconv.conv`: a shape, size or option does not fit.
    TypeError
        As :func:`groupconv.conv`: an argument has the wrong type or dtype.

    See Also
    --------
    split_sum, grouped_conv_via_split, groupconv.conv

    Examples
    --------
    >>> import numpy as np
    >>> import groupconv
    >>> from groupconv.tricks import grouped_conv_via_depthwise
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((2, 6, 9, 9))
    >>> w = rng.standard_normal((4, 3, 3, 3))
    >>> y = grouped_conv_via_depthwise(x, w, groups=2, stride=2, padding="same")
    >>> y.shape
    (2, 4, 5, 5)
    >>> np.allclose(y, groupconv.conv(x, w, groups=2, stride=2, padding="same"))
    True
    """
    spec = _grouped_spec(x, weight, bias, groups, stride, padding, dilation, padding_mode, layout)
    n_groups, c_in, c_out = spec.groups, spec.c_in, spec.c_out
    per_group_in, per_group_out = c_in // n_groups, c_out // n_groups
    axis = 1 if spec.layout == "channels_first" else -1
    kernel = spec.kernel_size
    # Step 1: permuted channel j*G + g <- original channel g*Cg + j.
    order = np.arange(c_in).reshape(n_groups, per_group_in).T.ravel()
    x_permuted = _xp.take(spec.x, order, axis=axis)
    # Step 2: w_dw[(j*G + g)*Og + q, 0] = weight[g*Og + q, j].
    w_dw = _xp.reshape(
        _xp.transpose(
            _xp.reshape(spec.weight, (n_groups, per_group_out, per_group_in) + kernel),
            (2, 0, 1) + tuple(range(3, 3 + len(kernel))),
        ),
        (c_in * per_group_out, 1) + kernel,
    )
    # Step 3: add the Cg blocks of C_out channels.
    y = split_sum(depthwise_conv(x_permuted, w_dw, **_keywords(spec)), per_group_in, axis=axis)
    if spec.bias is not None:
        y = _xp.add_along_axis(y, spec.bias, axis)
    return _finish(spec, y)


def grouped_conv_via_split(
    x: ArrayLike,
    weight: ArrayLike,
    bias: ArrayLike | None = None,
    *,
    groups: int,
    stride: IntOrTuple = 1,
    padding: Padding = 0,
    dilation: IntOrTuple = 1,
    padding_mode: PaddingMode = "zeros",
    layout: str = "channels_first",
) -> np.ndarray:
    """Grouped convolution as ``groups`` dense convolutions, concatenated.

    Group ``g`` is a dense convolution (``groups=1``) of input channels
    ``g*Cg : (g+1)*Cg`` with the weight rows ``g*Og : (g+1)*Og`` (and the
    matching ``bias`` entries), where ``Cg = C_in // groups`` and
    ``Og = C_out // groups``; the ``groups`` results are concatenated along
    the channel axis.

    Parameters
    ----------
    x : array_like
        Input, batched or not, as for :func:`groupconv.conv`.
    weight : array_like
        ``(C_out, C_in // groups, *kernel)``.
    bias : array_like, optional
        ``(C_out,)``.
    groups : int
        Number of groups; must divide ``C_in`` and ``C_out``.
    stride, padding, dilation, padding_mode, layout
        As for :func:`groupconv.conv`.

    Returns
    -------
    numpy.ndarray
        The same as ``groupconv.conv(x, weight, bias, groups=groups, ...)``.

    Raises
    ------
    ValueError
        As :func:`groupconv.conv`: a shape, size or option does not fit.
    TypeError
        As :func:`groupconv.conv`: an argument has the wrong type or dtype.

    See Also
    --------
    grouped_conv_via_depthwise, groupconv.conv

    Examples
    --------
    Two groups of one channel each, channels-last: each output channel is a
    moving sum of its own input channel.

    >>> import numpy as np
    >>> from groupconv.tricks import grouped_conv_via_split
    >>> x = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])   # (L=3, C=2), unbatched
    >>> grouped_conv_via_split(x, np.ones((2, 1, 2)), groups=2, layout="NWC")
    array([[ 3., 30.],
           [ 5., 50.]])
    """
    spec = _grouped_spec(x, weight, bias, groups, stride, padding, dilation, padding_mode, layout)
    per_group_in, per_group_out = spec.c_in // spec.groups, spec.c_out // spec.groups
    axis = 1 if spec.layout == "channels_first" else -1
    keywords = _keywords(spec)
    results = []
    for g in range(spec.groups):
        inputs = slice(g * per_group_in, (g + 1) * per_group_in)
        outputs = slice(g * per_group_out, (g + 1) * per_group_out)
        x_group = spec.x[(slice(None),) * (axis % spec.x.ndim) + (inputs,)]
        bias_group = None if spec.bias is None else spec.bias[outputs]
        results.append(conv(x_group, spec.weight[outputs], bias_group, **keywords))
    return _finish(spec, _xp.concatenate(results, axis=axis))
