"""groupconv.cost, conv_output_shape and resolve_padding, against hand arithmetic."""

import numpy as np
import pytest

import groupconv
from groupconv import reference


def test_keras_parameter_counts():
    # Keras: Conv2D(64, 3) on 3 channels with bias = 3*3*3*64 + 64 = 1,792.
    dense = groupconv.cost((1, 3, 32, 32), (64, 3, 3, 3), bias=True, padding="same")
    assert dense.params == 1792
    # SeparableConv2D(64, 3) on 3 channels: depthwise 3*3*3 = 27, pointwise
    # 3*64 + 64 bias = 256, no depthwise bias: 283.
    dw = groupconv.cost((1, 3, 32, 32), (3, 1, 3, 3), groups=3, padding="same")
    pw = groupconv.cost(dw.output_shape, (64, 3, 1, 1), bias=True)
    assert dw.params == 27 and pw.params == 256
    assert (dw + pw).params == 283
    assert (dw + pw).output_shape == (1, 64, 32, 32)


def test_macs_flops_and_bytes_by_hand():
    # 8 images, 128 -> 128 channels in 32 groups of 4, 3x3, 56x56 "same":
    # every output sums 4 * 9 = 36 products.
    c = groupconv.cost((8, 128, 56, 56), (128, 4, 3, 3), groups=32, padding=1, bias=True)
    outputs = 8 * 128 * 56 * 56
    assert c.macs == outputs * 36
    assert c.flops == 2 * outputs * 36 + outputs
    assert c.bytes_read == 4 * (8 * 128 * 56 * 56 + 128 * 4 * 9 + 128)
    assert c.bytes_written == 4 * outputs
    assert groupconv.cost((1, 2, 5), (2, 2, 3), dtype=np.float64).bytes_written == 8 * 2 * 3


def test_cost_layouts_and_strides():
    last = groupconv.cost((2, 10, 10, 6), (6, 1, 3, 3), groups=6, stride=2, padding="same",
                          layout="NHWC")
    assert last.output_shape == (2, 5, 5, 6)
    assert last.macs == 2 * 5 * 5 * 6 * 9


@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
@pytest.mark.parametrize(
    "x_shape,w_shape,options",
    [
        ((2, 4, 11, 9), (6, 2, 3, 2), dict(groups=2, stride=(2, 1), padding="same")),
        ((1, 3, 7), (3, 1, 4), dict(groups=3, dilation=2, padding="causal")),
        ((1, 2, 5, 6, 7), (4, 1, 2, 3, 3), dict(groups=2, padding="full", stride=3)),
        ((3, 6, 8, 8), (6, 6, 1, 1), dict()),
    ],
)
def test_output_shape_matches_the_reference(layout, x_shape, w_shape, options):
    if layout == "channels_last":
        x_shape = (x_shape[0], *x_shape[2:], x_shape[1])
    want = reference.conv(np.zeros(x_shape), np.zeros(w_shape), layout=layout,
                          **options).shape
    assert groupconv.conv_output_shape(x_shape, w_shape, layout=layout, **options) == want
    assert groupconv.cost(x_shape, w_shape, layout=layout, **options).output_shape == want


@pytest.mark.parametrize(
    "length,kernel,stride,dilation,same,same_lower",
    [
        (6, 3, 2, 1, (0, 1), (1, 0)),      # the TF example: one pixel at the end
        (224, 7, 2, 1, (2, 3), (3, 2)),    # ResNet's stem
        (5, 3, 1, 1, (1, 1), (1, 1)),
        (7, 3, 3, 1, (1, 1), (1, 1)),
        (10, 3, 1, 3, (3, 3), (3, 3)),
        (4, 1, 5, 1, (0, 0), (0, 0)),
    ],
)
def test_same_padding_rules(length, kernel, stride, dilation, same, same_lower):
    args = ((length,), (kernel,), stride, dilation)
    assert groupconv.resolve_padding("same", *args) == (same,)
    assert groupconv.resolve_padding("SAME", *args) == (same,)
    assert groupconv.resolve_padding("same_lower", *args) == (same_lower,)
    # SAME keeps ceil(L / stride) outputs.
    out = groupconv.conv_output_shape((1, 1, length), (1, 1, kernel), stride=stride,
                                      dilation=dilation, padding="same")
    assert out[-1] == -(-length // stride)


def test_other_padding_rules():
    assert groupconv.resolve_padding("valid", (9, 9), (3, 5)) == ((0, 0), (0, 0))
    assert groupconv.resolve_padding("full", (9,), (3,), dilation=2) == ((4, 4),)
    assert groupconv.resolve_padding("causal", (9,), (4,), dilation=3) == ((9, 0),)
    assert groupconv.resolve_padding(2, (9, 9), (3, 3)) == ((2, 2), (2, 2))
    assert groupconv.resolve_padding([1, (0, 3)], (9, 9), (3, 3)) == ((1, 1), (0, 3))
