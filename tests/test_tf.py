"""groupconv.tf against TensorFlow's formulas: the reference oracle and hand-computed values."""

import numpy as np
import pytest
from conftest import assert_matches_reference

from groupconv import reference, tf

FORMATS = ["NHWC", "NCHW"]


def to_format(x_nhwc, data_format):
    return x_nhwc if data_format == "NHWC" else x_nhwc.transpose(0, 3, 1, 2)


def from_format(y, data_format):
    return y if data_format == "NHWC" else y.transpose(0, 2, 3, 1)


def tf_strides(pair, data_format):
    """TensorFlow's 4-entry form of a (height, width) pair."""
    return [1, *pair, 1] if data_format == "NHWC" else [1, 1, *pair]


def tf_padding(padding, data_format):
    """TensorFlow's explicit 4-pair form of ((top, bottom), (left, right))."""
    if isinstance(padding, str):
        return padding
    pairs = [list(p) for p in padding]
    return [[0, 0], *pairs, [0, 0]] if data_format == "NHWC" else [[0, 0], [0, 0], *pairs]


# ---------------------------------------------------------------- hand-computed values


def test_worked_example():
    # The article reshapes its input to (1, 3, 2, 1), which cannot hold 9 values;
    # the result it prints is the one for a (1, 3, 3, 1) input, used here.
    x = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]).reshape(1, 3, 3, 1)
    f = np.zeros((2, 1, 1, 2))
    f[0, 0, 0] = [1.0, 2.0]
    f[1, 0, 0] = [3.0, 4.0]
    expected = np.array(
        [[[[13.0, 18.0], [17.0, 24.0], [21.0, 30.0]], [[25.0, 36.0], [29.0, 42.0], [33.0, 48.0]]]]
    )
    y = tf.depthwise_conv2d(x, f, strides=[1, 1, 1, 1], padding="VALID")
    assert y.shape == (1, 2, 3, 2)
    np.testing.assert_array_equal(y, expected)
    np.testing.assert_array_equal(reference.tf_depthwise_conv2d(x, f, (1, 1), "VALID"), expected)
    y_nchw = tf.depthwise_conv2d(x.transpose(0, 3, 1, 2), f, 1, "VALID", data_format="NCHW")
    np.testing.assert_array_equal(y_nchw, expected.transpose(0, 3, 1, 2))


def test_same_length_6_kernel_3_stride_2_pads_0_1():
    # out = ceil(6/2) = 3, total pad = (3-1)*2 + 3 - 6 = 1 -> (0, 1): nothing before,
    # one zero after, so the last window is x[4], x[5], 0.
    x = np.arange(1.0, 7.0).reshape(1, 1, 6, 1)
    f = np.array([1.0, 10.0, 100.0]).reshape(1, 3, 1, 1)
    y = tf.depthwise_conv2d(x, f, strides=[1, 2], padding="SAME")
    np.testing.assert_array_equal(y[0, 0, :, 0], [321.0, 543.0, 65.0])  # (1,0) would give 210, ...
    y = tf.conv2d(x, f, strides=[1, 1, 2, 1], padding="SAME")
    np.testing.assert_array_equal(y[0, 0, :, 0], [321.0, 543.0, 65.0])


@pytest.mark.parametrize("data_format", FORMATS)
def test_same_length_224_kernel_7_stride_2_pads_2_3(data_format):
    # out = 112, total = 111*2 + 7 - 224 = 5 -> (2, 3). Window j starts at x[2j - 2].
    x = to_format(np.arange(1.0, 225.0).reshape(1, 1, 224, 1), data_format)
    first, last = np.zeros((1, 7, 1, 1)), np.zeros((1, 7, 1, 1))
    first[0, 0], last[0, 6] = 1.0, 1.0
    # tap 0 reads x[2j - 2]: zero padding, then x[0] = 1, x[2] = 3, ..., x[220] = 221
    y = from_format(tf.depthwise_conv2d(x, first, 2, "SAME", data_format=data_format), data_format)
    assert y.shape == (1, 1, 112, 1)
    np.testing.assert_array_equal(y[0, 0, :, 0], np.r_[0.0, np.arange(1.0, 222.0, 2.0)])
    # tap 6 reads x[2j + 4]: x[4] = 5, ..., x[222] = 223, then the padding at the end
    y = from_format(tf.depthwise_conv2d(x, last, 2, "SAME", data_format=data_format), data_format)
    np.testing.assert_array_equal(y[0, 0, :, 0], np.r_[np.arange(5.0, 224.0, 2.0), 0.0, 0.0])


def test_grouped_conv2d_by_hand():
    # C_in = 4, filters.shape[2] = 2 -> 2 groups; output o reads channels 2*(o // 1)...
    x = np.array([1.0, 10.0, 100.0, 1000.0]).reshape(1, 1, 1, 4)
    f = np.ones((1, 1, 2, 2))
    f[0, 0, 1, 1] = -1.0  # second group: x[2] - x[3]
    np.testing.assert_array_equal(tf.conv2d(x, f, 1, "VALID")[0, 0, 0], [11.0, -900.0])


# ---------------------------------------------------------------- against the oracles

# (strides, dilations, padding); the (2, 2) x (2, 2) case is one TensorFlow refuses for
# depthwise_conv2d, whose formula is still well defined.
GEOMETRY = [
    ((1, 1), (1, 1), "VALID"),
    ((1, 1), (1, 1), "SAME"),
    ((2, 2), (1, 1), "SAME"),
    ((2, 1), (1, 1), "VALID"),
    ((1, 1), (2, 2), "SAME"),
    ((1, 2), (2, 1), "VALID"),
    ((2, 2), (2, 2), "SAME"),
    ((1, 1), (1, 1), ((1, 2), (0, 1))),
    ((2, 3), (1, 2), ((2, 0), (1, 1))),
]


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("multiplier", [1, 2])
@pytest.mark.parametrize("strides,dilations,padding", GEOMETRY)
def test_depthwise_conv2d_matches_tf_formula(rng, data_format, multiplier, strides, dilations,
                                             padding):
    x = rng.standard_normal((2, 7, 6, 3))
    f = rng.standard_normal((3, 2, 3, multiplier))
    expected = reference.tf_depthwise_conv2d(x, f, strides, padding, dilations)
    y = tf.depthwise_conv2d(
        to_format(x, data_format), f, tf_strides(strides, data_format),
        tf_padding(padding, data_format), data_format=data_format, dilations=list(dilations),
    )
    assert_matches_reference(from_format(y, data_format), expected)


@pytest.mark.parametrize(
    "strides,dilations",
    [(2, None), ([2], [1]), ([2, 2], 1), ("4-form", "4-form")],
)
def test_strides_and_dilations_forms(rng, strides, dilations):
    x = rng.standard_normal((1, 6, 7, 2))
    f = rng.standard_normal((2, 3, 2, 1))
    if strides == "4-form":
        strides, dilations = np.array([1, 2, 2, 1]), (1, 1, 1, 1)
    expected = reference.tf_depthwise_conv2d(x, f, (2, 2), "SAME", (1, 1))
    y = tf.depthwise_conv2d(x, f, strides, "same", dilations=dilations)
    assert_matches_reference(y, expected)


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("per_group,c_out", [(4, 3), (2, 6), (1, 4)])  # groups 1, 2, 4
@pytest.mark.parametrize("strides,dilations,padding", GEOMETRY[1::2])
def test_conv2d_infers_groups(rng, data_format, per_group, c_out, strides, dilations, padding):
    x = rng.standard_normal((2, 6, 5, 4))
    f = rng.standard_normal((3, 2, per_group, c_out))
    expected = reference.conv(
        x, f.transpose(3, 2, 0, 1), groups=4 // per_group, stride=strides,
        dilation=dilations, padding=padding, layout="channels_last",
    )
    y = tf.conv2d(to_format(x, data_format), f, tf_strides(strides, data_format),
                  tf_padding(padding, data_format), data_format, dilations=dilations)
    assert_matches_reference(from_format(y, data_format), expected)


def test_conv2d_depthwise_filters_match_depthwise_formula(rng):
    # TensorFlow: conv2d with filters (kh, kw, 1, C*M) is depthwise_conv2d with
    # filter (kh, kw, C, M) reshaped, channel k*M + q in both.
    x = rng.standard_normal((2, 5, 6, 3))
    f = rng.standard_normal((2, 3, 3, 2))
    expected = reference.tf_depthwise_conv2d(x, f, (2, 1), "SAME", (1, 2))
    y = tf.conv2d(x, f.reshape(2, 3, 1, 6), [2, 1], "SAME", dilations=[1, 2])
    assert_matches_reference(y, expected)


def test_conv2d_extra_batch_dims(rng):
    x = rng.standard_normal((2, 3, 5, 4, 2))  # batch_shape (2, 3)
    f = rng.standard_normal((2, 2, 1, 4))
    y = tf.conv2d(x, f, 1, "SAME")
    expected = reference.conv(x.reshape(6, 5, 4, 2), f.transpose(3, 2, 0, 1), groups=2,
                              padding="same", layout="channels_last")
    assert_matches_reference(y, expected.reshape(2, 3, 5, 4, 4))


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("strides,dilations,padding", GEOMETRY[::3])
def test_separable_conv2d(rng, data_format, strides, dilations, padding):
    x = rng.standard_normal((2, 7, 6, 3))
    dw = rng.standard_normal((3, 2, 3, 2))
    pw = rng.standard_normal((1, 1, 6, 4))
    middle = reference.tf_depthwise_conv2d(x, dw, strides, padding, dilations)
    expected = np.einsum("nhwc,co->nhwo", middle, pw[0, 0])
    y = tf.separable_conv2d(
        to_format(x, data_format), dw, pw, tf_strides(strides, data_format),
        tf_padding(padding, data_format), data_format=data_format, dilations=dilations,
    )
    y = from_format(y, data_format)
    assert_matches_reference(y, expected)
    assert_matches_reference(
        y,
        reference.separable_conv(
            x, dw.transpose(2, 3, 0, 1).reshape(6, 1, 3, 2), pw[0, 0].T, stride=strides,
            dilation=dilations, padding=padding, layout="channels_last",
        ),
    )


def test_inputs_are_not_modified(rng):
    x = rng.standard_normal((1, 5, 5, 2))
    f = rng.standard_normal((3, 3, 2, 2))
    g = rng.standard_normal((3, 3, 1, 4))
    pw = rng.standard_normal((1, 1, 4, 3))
    arrays = [x, f, g, pw]
    copies = [a.copy() for a in arrays]
    for a in arrays:
        a.setflags(write=False)
    tf.depthwise_conv2d(x, f, 2, "SAME")
    tf.conv2d(x, g, 1, "VALID")
    tf.separable_conv2d(x, f, pw, [1, 1, 1, 1], [[0, 0], [1, 1], [1, 1], [0, 0]])
    for a, c in zip(arrays, copies, strict=True):
        np.testing.assert_array_equal(a, c)


# ---------------------------------------------------------------- malformed arguments

X = np.ones((1, 6, 6, 4))
DW = np.ones((3, 3, 4, 1))


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (dict(data_format="NCWH"), ValueError, r"data_format must be 'NHWC' or 'NCHW'"),
        (dict(data_format="nhwc"), ValueError, r"data_format=.nhwc."),
        (dict(data_format="NDHWC"), ValueError, r"data_format"),
        (dict(data_format=None), ValueError, r"data_format"),
        (dict(strides=[1, 2, 3]), ValueError, r"strides must be an int or a list of 1, 2 or 4"),
        (dict(strides=[1, 2, 2, 1, 1]), ValueError, r"strides must be"),
        (dict(strides=[2, 1, 1, 1]), ValueError, r"strides\[0\] and strides\[3\] must be 1"),
        (dict(strides=[1, 1, 1, 2]), ValueError, r"strides\[0\] and strides\[3\] must be 1"),
        (dict(strides=[1, 2, 1, 1], data_format="NCHW"), ValueError,
         r"strides\[0\] and strides\[1\] must be 1"),
        (dict(strides=0), ValueError, r"strides must be >= 1"),
        (dict(strides=[1, 0]), ValueError, r"strides\[1\] must be >= 1"),
        (dict(strides=[1, 0, 1, 1]), ValueError, r"strides\[1\] must be >= 1"),
        (dict(strides=1.5), TypeError, r"strides must be an integer"),
        (dict(strides="2"), TypeError, r"strides must be an integer"),
        (dict(dilations=[1, 2, 2]), ValueError, r"dilations must be an int or a list"),
        (dict(dilations=[1, 1, 1, 2]), ValueError, r"dilations\[0\] and dilations\[3\]"),
        (dict(dilations=[0, 1]), ValueError, r"dilations\[0\] must be >= 1"),
        (dict(padding="FULL"), ValueError, r"padding must be 'SAME', 'VALID' .*'FULL'"),
        (dict(padding="same_lower"), ValueError, r"padding must be"),
        (dict(padding="causal"), ValueError, r"padding must be"),
        (dict(padding=1), ValueError, r"padding must be .* got padding=1"),
        (dict(padding=None), ValueError, r"padding must be"),
        (dict(padding=[[1, 1], [1, 1]]), ValueError, r"padding must be .* got 2 entries"),
        (dict(padding=[[0, 0], [1, 1], [1, 1], [0, 0], [0, 0]]), ValueError, r"5 entries"),
        (dict(padding=[[1, 0], [1, 1], [1, 1], [0, 0]]), ValueError,
         r"padding\[0\] must be \[0, 0\]"),
        (dict(padding=[[0, 0], [1, 1], [1, 1], [0, 1]]), ValueError,
         r"padding\[3\] must be \[0, 0\]"),
        (dict(padding=[[0, 0], [1, 1], [0, 0], [0, 0]], data_format="NCHW"), ValueError,
         r"padding\[1\] must be \[0, 0\]"),
        (dict(padding=[[0, 0], [-1, 1], [1, 1], [0, 0]]), ValueError,
         r"padding\[1\]\[0\] must be >= 0"),
        (dict(padding=[[0, 0], [1, 1, 1], [1, 1], [0, 0]]), ValueError,
         r"padding\[1\] must be a \[lo, hi\] pair"),
        (dict(padding=[[0, 0], 1, [1, 1], [0, 0]]), ValueError, r"padding\[1\] must be a"),
        (dict(padding=[[0, 0], [1.5, 1], [1, 1], [0, 0]]), TypeError,
         r"padding\[1\]\[0\] must be an integer"),
        (dict(filter=np.ones((3, 3, 3, 1))), ValueError,
         r"filter.shape\[2\] = the input's C_in = 4"),
        (dict(filter=np.ones((3, 3, 4, 0))), ValueError, r"filter must have shape"),
        (dict(filter=np.ones((3, 3, 4))), ValueError, r"filter must be 4-D"),
        (dict(filter=np.ones((0, 3, 4, 1))), ValueError, r"filter must be 4-D .*kernel sizes"),
        (dict(input=np.ones((6, 6, 4))), ValueError, r"input must be 4-D \(N, H, W, C\)"),
        (dict(input=np.ones((1, 1, 6, 6, 4))), ValueError, r"input must be 4-D"),
        (dict(input=np.ones((1, 2, 2, 4)), padding="VALID"), ValueError, r"kernel extent"),
    ],
)
def test_depthwise_conv2d_errors(kwargs, error, match):
    args = dict(input=X, filter=DW, strides=1, padding="SAME")
    args.update(kwargs)
    with pytest.raises(error, match=match):
        tf.depthwise_conv2d(**args)


@pytest.mark.parametrize(
    "filters,match",
    [
        (np.ones((3, 3, 3, 4)), r"filters.shape\[2\]=3 \(input channels per group\) must "
                                r"divide the input's C_in=4"),
        (np.ones((3, 3, 0, 4)), r"filters.shape\[2\]=0"),
        (np.ones((3, 3, 2, 3)), r"filters.shape\[3\]=3 \(C_out\) must be a positive multiple "
                                r"of the 2 groups"),
        (np.ones((3, 3, 2, 0)), r"filters.shape\[3\]=0"),
        (np.ones((3, 3, 4)), r"filters must be 4-D"),
        (np.ones((1, 3, 3, 4, 4)), r"filters must be 4-D"),
    ],
)
def test_conv2d_filter_errors(filters, match):
    with pytest.raises(ValueError, match=match):
        tf.conv2d(X, filters, 1, "SAME")


def test_conv2d_needs_rank_4():
    with pytest.raises(ValueError, match=r"input must be of rank 4 or more"):
        tf.conv2d(np.ones((6, 6, 4)), np.ones((3, 3, 4, 1)), 1, "SAME")


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(pointwise_filter=np.ones((1, 1, 5, 2))), r"pointwise_filter must have shape "
                                                        r"\(1, 1, 4, C_out\)"),
        (dict(pointwise_filter=np.ones((3, 1, 4, 2))), r"pointwise_filter must have shape"),
        (dict(pointwise_filter=np.ones((4, 2))), r"pointwise_filter must have shape"),
        (dict(pointwise_filter=np.ones((1, 1, 4, 0))), r"pointwise_filter must have shape"),
        (dict(depthwise_filter=np.ones((3, 3, 2, 2))), r"depthwise_filter.shape\[2\] = the "
                                                        r"input's C_in = 4"),
        (dict(strides=[1, 1, 1, 2]), r"strides\[0\] and strides\[3\] must be 1"),
        (dict(padding="FULL"), r"padding must be"),
        (dict(data_format="HWCN"), r"data_format"),
    ],
)
def test_separable_conv2d_errors(kwargs, match):
    args = dict(input=X, depthwise_filter=DW, pointwise_filter=np.ones((1, 1, 4, 2)),
                strides=1, padding="SAME")
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        tf.separable_conv2d(**args)
