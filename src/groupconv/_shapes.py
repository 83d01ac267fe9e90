"""Shape arithmetic from shapes alone, through the same checks as a real call."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._spec import ConvSpec, check_size, conv_spec
from ._validate import as_int

__all__ = ["conv_output_shape", "spec_from_shapes"]


def _placeholder(shape, name, dtype):
    if isinstance(shape, (str, bytes)) or not isinstance(shape, Sequence):
        raise TypeError(f"{name} must be a tuple of ints, got {shape!r}")
    shape = tuple(as_int(s, f"{name}[{i}]", minimum=0) for i, s in enumerate(shape))
    check_size(shape, name, np.dtype(dtype).itemsize)
    # Zero strides: a full-size view of one element, so no memory is used.
    return np.lib.stride_tricks.as_strided(
        np.zeros(1, dtype=dtype), shape=shape, strides=(0,) * len(shape)
    )


def spec_from_shapes(x_shape, weight_shape, dtype=np.float32, **options) -> ConvSpec:
    """A :class:`ConvSpec` for arrays of the given shapes, without allocating them."""
    return conv_spec(
        _placeholder(x_shape, "x_shape", dtype),
        _placeholder(weight_shape, "weight_shape", dtype),
        **options,
    )


def conv_output_shape(
    x_shape: Sequence[int],
    weight_shape: Sequence[int],
    *,
    stride: int | Sequence[int] = 1,
    padding=0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    layout: str = "channels_first",
) -> tuple[int, ...]:
    """The shape of ``conv(x, weight, ...)`` for inputs of the given shapes.

    Applies exactly the checks of :func:`groupconv.conv`, so a shape that
    this accepts is one that ``conv`` accepts.

    Parameters
    ----------
    x_shape : sequence of int
        Shape of the input, batched or not, in ``layout``.
    weight_shape : sequence of int
        ``(C_out, C_in // groups, *kernel)``.
    stride, padding, dilation, groups, layout
        As for :func:`groupconv.conv`.

    Returns
    -------
    tuple of int
        The output shape, in ``layout``.

    Raises
    ------
    ValueError
        If the shapes or options do not fit together.
    TypeError
        If a size is not an integer.

    Examples
    --------
    >>> from groupconv import conv_output_shape
    >>> conv_output_shape((8, 3, 224, 224), (64, 3, 7, 7), stride=2, padding=3)
    (8, 64, 112, 112)
    >>> conv_output_shape((1, 224, 224, 32), (32, 1, 3, 3), groups=32, stride=2,
    ...                   padding="same", layout="NHWC")
    (1, 112, 112, 32)
    """
    spec = spec_from_shapes(
        x_shape, weight_shape, stride=stride, padding=padding, dilation=dilation,
        groups=groups, layout=layout,
    )
    return spec.output_shape
