"""Arithmetic and memory cost of a convolution, from shapes alone."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from ._shapes import spec_from_shapes

__all__ = ["Cost", "cost"]


@dataclasses.dataclass(frozen=True)
class Cost:
    """What a convolution costs. Costs add up: ``cost(a) + cost(b)`` is running both.

    Attributes
    ----------
    params : int
        Weights plus biases.
    macs : int
        Multiply-accumulates.
    flops : int
        ``2 * macs``, plus one addition per output element for a bias.
    bytes_read : int
        Input, weight and bias, each read once.
    bytes_written : int
        The output, written once.
    output_shape : tuple of int
        Shape of the (last) output.
    """

    params: int
    macs: int
    flops: int
    bytes_read: int
    bytes_written: int
    output_shape: tuple[int, ...]

    def __add__(self, other: Cost) -> Cost:
        if not isinstance(other, Cost):
            return NotImplemented
        return Cost(
            params=self.params + other.params,
            macs=self.macs + other.macs,
            flops=self.flops + other.flops,
            bytes_read=self.bytes_read + other.bytes_read,
            bytes_written=self.bytes_written + other.bytes_written,
            output_shape=other.output_shape,
        )


def cost(
    x_shape: Sequence[int],
    weight_shape: Sequence[int],
    *,
    bias: bool = False,
    stride: int | Sequence[int] = 1,
    padding=0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    layout: str = "channels_first",
    dtype=np.float32,
) -> Cost:
    """Parameters, multiply-adds, FLOPs and bytes moved by one convolution.

    Parameters
    ----------
    x_shape, weight_shape : sequence of int
        Shapes as for :func:`groupconv.conv`.
    bias : bool, optional
        Whether the convolution adds a bias.
    stride, padding, dilation, groups, layout
        As for :func:`groupconv.conv`.
    dtype : dtype, optional
        Element type, for the byte counts (float32 by default).

    Returns
    -------
    Cost
        With fields ``params``, ``macs``, ``flops``, ``bytes_read``,
        ``bytes_written`` and ``output_shape``. A depthwise-separable pair
        costs the sum of its two steps: add the two ``Cost`` objects.

    Raises
    ------
    ValueError
        If the shapes or options do not fit together.

    Examples
    --------
    Keras' classic counts: a 3x3 convolution from 3 to 64 channels with bias,

    >>> from groupconv import cost
    >>> cost((1, 3, 32, 32), (64, 3, 3, 3), bias=True, padding="same").params
    1792

    and the depthwise-separable version with a pointwise bias only:

    >>> dw = cost((1, 3, 32, 32), (3, 1, 3, 3), groups=3, padding="same")
    >>> pw = cost(dw.output_shape, (64, 3, 1, 1), bias=True)
    >>> (dw + pw).params
    283
    >>> dw.macs
    27648
    """
    spec = spec_from_shapes(
        x_shape, weight_shape, stride=stride, padding=padding, dilation=dilation,
        groups=groups, layout=layout,
    )
    itemsize = np.dtype(dtype).itemsize
    output_shape = spec.output_shape
    out_elements = math.prod(output_shape)
    weight_elements = math.prod(spec.weight.shape)
    bias_elements = spec.c_out if bias else 0
    macs = out_elements * math.prod(spec.weight.shape[1:])
    return Cost(
        params=weight_elements + bias_elements,
        macs=macs,
        flops=2 * macs + (out_elements if bias else 0),
        bytes_read=itemsize * (math.prod(x_shape) + weight_elements + bias_elements),
        bytes_written=itemsize * out_elements,
        output_shape=output_shape,
    )
