"""Checks of the oracle itself (``groupconv.reference``) against independent facts.

Expected values written out below were derived by hand from the definition
``y[p] = sum_t w[t] * xpad[p*stride + t*dilation]``, not by running the code.
"""

import itertools

import numpy as np
import pytest
import scipy.signal
from hypothesis import given, settings
from hypothesis import strategies as st

from groupconv.reference import conv, depthwise_conv, separable_conv, tf_depthwise_conv2d

RNG_SEED = 20240601


def rng():
    return np.random.default_rng(RNG_SEED)


def loop_conv(x, w, b=None, *, stride, pads, dilation, groups):
    """Direct loops over the DESIGN.md formula: channels_first, zero padding only."""
    d = w.ndim - 2
    n_batch, c_in = x.shape[:2]
    c_out, c_g = w.shape[:2]
    kernel = w.shape[2:]
    padded_shape = tuple(L + lo + hi for L, (lo, hi) in zip(x.shape[2:], pads, strict=True))
    xpad = np.zeros((n_batch, c_in) + padded_shape, dtype=np.result_type(x, w, float))
    xpad[(slice(None), slice(None)) + tuple(slice(lo, lo + L) for L, (lo, _) in
                                           zip(x.shape[2:], pads, strict=True))] = x
    out = tuple((P - (k - 1) * dl - 1) // s + 1
                for P, k, s, dl in zip(padded_shape, kernel, stride, dilation, strict=True))
    y = np.zeros((n_batch, c_out) + out, dtype=xpad.dtype)
    per_group = c_out // groups
    for n in range(n_batch):
        for o in range(c_out):
            g = o // per_group
            for p in itertools.product(*(range(m) for m in out)):
                acc = 0
                for c in range(c_g):
                    for t in itertools.product(*(range(k) for k in kernel)):
                        idx = tuple(p[i] * stride[i] + t[i] * dilation[i] for i in range(d))
                        acc += w[(o, c) + t] * xpad[(n, g * c_g + c) + idx]
                y[(n, o) + p] = acc + (0 if b is None else b[o])
    return y


# ----------------------------------------------------------------- hand-computed cases


def test_1d_valid_by_hand():
    x = np.array([[[1.0, 2.0, 3.0, 4.0]]])
    w = np.array([[[1.0, 2.0]]])
    np.testing.assert_array_equal(conv(x, w), [[[5.0, 8.0, 11.0]]])
    np.testing.assert_array_equal(conv(x, w, np.array([10.0])), [[[15.0, 18.0, 21.0]]])


def test_1d_stride_dilation_by_hand():
    x = np.arange(1.0, 8.0).reshape(1, 1, 7)  # 1..7
    w = np.ones((1, 1, 2))
    # taps x[p] + x[p+2] at p = 0..4 are 4, 6, 8, 10, 12; stride 2 keeps 0, 2, 4
    np.testing.assert_array_equal(conv(x, w, dilation=2), [[[4.0, 6.0, 8.0, 10.0, 12.0]]])
    np.testing.assert_array_equal(conv(x, w, dilation=2, stride=2), [[[4.0, 8.0, 12.0]]])


def test_2d_by_hand():
    x = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    w = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    # e.g. y[0, 0] = 1*1 + 2*2 + 3*4 + 4*5 = 37
    np.testing.assert_array_equal(conv(x, w), [[[[37.0, 47.0], [67.0, 77.0]]]])
    np.testing.assert_array_equal(conv(x, w, stride=(2, 1)), [[[[37.0, 47.0]]]])


def test_3d_by_hand():
    x = np.ones((1, 1, 3, 3, 3))
    w = np.ones((1, 1, 2, 2, 2))
    np.testing.assert_array_equal(conv(x, w), np.full((1, 1, 2, 2, 2), 8.0))
    y = conv(x, w, padding=1)
    assert y.shape == (1, 1, 4, 4, 4)
    assert y[0, 0, 0, 0, 0] == 1.0  # only x[0, 0, 0] inside the window
    assert y[0, 0, 1, 1, 1] == 8.0
    assert y[0, 0, 0, 1, 1] == 4.0


@pytest.mark.parametrize(
    ("mode", "pad", "expected"),
    [
        ("zeros", 1, [3.0, 6.0, 5.0]),  # [0 1 2 3 0]
        ("reflect", 1, [5.0, 6.0, 7.0]),  # [2 1 2 3 2]
        ("replicate", 1, [4.0, 6.0, 8.0]),  # [1 1 2 3 3]
        ("circular", 1, [6.0, 6.0, 6.0]),  # [3 1 2 3 1]
        ("symmetric", 1, [4.0, 6.0, 8.0]),  # [1 1 2 3 3]
        ("symmetric", 2, [4.0, 4.0, 6.0, 8.0, 8.0]),  # [2 1 1 2 3 3 2]
        ("replicate", 2, [3.0, 4.0, 6.0, 8.0, 9.0]),  # [1 1 1 2 3 3 3]
        ("circular", 3, [6.0] * 7),  # [1 2 3 1 2 3 1 2 3]
    ],
)
def test_padding_modes_by_hand(mode, pad, expected):
    x = np.array([[[1.0, 2.0, 3.0]]])
    w = np.ones((1, 1, 3))
    np.testing.assert_array_equal(conv(x, w, padding=pad, padding_mode=mode), [[expected]])


def test_string_paddings_by_hand():
    x = np.array([[[1.0, 2.0, 3.0, 4.0]]])
    w = np.array([[[1.0, 10.0]]])
    # same: total 1 -> (0, 1): [1 2 3 4 0]; same_lower -> (1, 0): [0 1 2 3 4]
    np.testing.assert_array_equal(conv(x, w, padding="same"), [[[21.0, 32.0, 43.0, 4.0]]])
    np.testing.assert_array_equal(
        conv(x, w, padding="same_lower"), [[[10.0, 21.0, 32.0, 43.0]]]
    )
    # causal: (1, 0), same as same_lower for k=2
    np.testing.assert_array_equal(conv(x, w, padding="causal"), [[[10.0, 21.0, 32.0, 43.0]]])
    np.testing.assert_array_equal(
        conv(x, w, padding="full"), [[[10.0, 21.0, 32.0, 43.0, 4.0]]]
    )
    np.testing.assert_array_equal(conv(x, w, padding="valid"), [[[21.0, 32.0, 43.0]]])
    # causal with dilation 2 pads (k-1)*dilation = 2 in front: [0 0 1 2 3 4]
    np.testing.assert_array_equal(
        conv(x, w, padding="causal", dilation=2), [[[10.0, 20.0, 31.0, 42.0]]]
    )


def test_groups_by_hand():
    x = np.array([[[1.0, 2.0], [3.0, 4.0]]])  # C_in = 2
    w = np.array([[[1.0, 1.0]], [[0.0, 1.0]], [[2.0, 0.0]], [[1.0, -1.0]]])  # (4, 1, 2)
    # outputs 0, 1 read channel 0; outputs 2, 3 read channel 1
    np.testing.assert_array_equal(conv(x, w, groups=2), [[[3.0], [2.0], [6.0], [-1.0]]])
    # groups=1: weight (1, 2, 2) sums both channels
    w1 = np.array([[[1.0, 1.0], [1.0, -1.0]]])
    np.testing.assert_array_equal(conv(x, w1), [[[3.0 - 1.0]]])


def test_depthwise_multiplier_order_by_hand():
    x = np.array([[[1.0, 2.0], [3.0, 4.0]]])
    w = np.array([1.0, 2.0, 3.0, 4.0]).reshape(4, 1, 1)  # M = 2
    # channel c*M + q is input c times w[c*M + q]
    expected = [[[1.0, 2.0], [2.0, 4.0], [9.0, 12.0], [12.0, 16.0]]]
    np.testing.assert_array_equal(depthwise_conv(x, w), expected)


def test_complex_is_not_conjugated():
    x = np.array([[[1j, 2.0]]])
    w = np.array([[[1j]]])
    y = conv(x, w)
    assert y.dtype == np.complex128
    np.testing.assert_array_equal(y, [[[-1.0, 2j]]])


# ----------------------------------------------------------------- TensorFlow


TF_X = np.arange(1.0, 10.0).reshape(1, 3, 3, 1)
TF_FILTER = np.zeros((2, 1, 1, 2))
TF_FILTER[0, 0, 0, :] = [1.0, 2.0]
TF_FILTER[1, 0, 0, :] = [3.0, 4.0]
TF_EXPECTED = np.array(
    [[[[13.0, 18.0], [17.0, 24.0], [21.0, 30.0]], [[25.0, 36.0], [29.0, 42.0], [33.0, 48.0]]]]
)


def tf_filter_to_weight(f):
    """(kh, kw, C, M) -> (C*M, 1, kh, kw) with weight[c*M + q, 0] = f[:, :, c, q]."""
    kh, kw, c, m = f.shape
    weight = np.empty((c * m, 1, kh, kw))
    for ci in range(c):
        for q in range(m):
            weight[ci * m + q, 0] = f[:, :, ci, q]
    return weight


def test_tf_worked_example_loop():
    y = tf_depthwise_conv2d(TF_X, TF_FILTER, (1, 1), "VALID")
    assert y.shape == (1, 2, 3, 2)
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y, TF_EXPECTED)


def test_tf_worked_example_conv():
    weight = tf_filter_to_weight(TF_FILTER)
    y = conv(TF_X, weight, layout="channels_last", groups=1)  # groups = C_in = 1
    np.testing.assert_array_equal(y, TF_EXPECTED)
    np.testing.assert_array_equal(depthwise_conv(TF_X, weight, layout="channels_last"),
                                  TF_EXPECTED)


def test_tf_worked_example_three_channels():
    # channel c is the worked example times 10**c; the same filter per channel
    x = np.concatenate([TF_X, 10 * TF_X, 100 * TF_X], axis=-1)
    f = np.repeat(TF_FILTER, 3, axis=2)  # (2, 1, 3, 2)
    expected = np.concatenate([TF_EXPECTED, 10 * TF_EXPECTED, 100 * TF_EXPECTED], axis=-1)
    np.testing.assert_array_equal(tf_depthwise_conv2d(x, f, (1, 1), "VALID"), expected)
    y = conv(x, tf_filter_to_weight(f), layout="channels_last", groups=3)
    np.testing.assert_array_equal(y, expected)


def test_tf_same_by_hand():
    x = np.arange(1.0, 10.0).reshape(1, 3, 3, 1)
    f = np.ones((2, 2, 1, 1))
    # SAME, stride 1: total pad 1 per dim -> bottom/right
    expected = [[12.0, 16.0, 9.0], [24.0, 28.0, 15.0], [15.0, 17.0, 9.0]]
    np.testing.assert_array_equal(tf_depthwise_conv2d(x, f, (1, 1), "SAME")[0, :, :, 0],
                                  expected)
    # SAME, stride 2: out 2, total pad 1 -> bottom/right
    np.testing.assert_array_equal(tf_depthwise_conv2d(x, f, (2, 2), "SAME")[0, :, :, 0],
                                  [[12.0, 9.0], [15.0, 9.0]])
    # explicit pairs: pad top 1 only
    np.testing.assert_array_equal(
        tf_depthwise_conv2d(x, f, (1, 1), [(1, 0), (0, 0)])[0, :, :, 0],
        [[3.0, 5.0], [12.0, 16.0], [24.0, 28.0]],
    )


@pytest.mark.parametrize(
    ("shape", "k", "m", "strides", "dilations", "padding"),
    [
        ((2, 5, 6, 3), (3, 2), 2, (1, 1), (1, 1), "SAME"),
        ((1, 7, 6, 2), (3, 3), 1, (2, 3), (1, 1), "SAME"),
        ((1, 7, 8, 2), (2, 3), 3, (1, 1), (2, 2), "SAME"),
        ((1, 6, 5, 2), (3, 2), 2, (2, 1), (1, 2), "VALID"),
        ((1, 4, 5, 2), (2, 2), 1, (1, 2), (1, 1), [(2, 1), (0, 3)]),
        ((1, 4, 5, 2), (2, 2), 1, (1, 1), (1, 1), [(0, 0), (1, 2), (3, 0), (0, 0)]),
    ],
)
def test_tf_loop_matches_conv(shape, k, m, strides, dilations, padding):
    r = rng()
    x = r.standard_normal(shape)
    f = r.standard_normal((*k, shape[-1], m))
    y_tf = tf_depthwise_conv2d(x, f, strides, padding, dilations)
    if isinstance(padding, str):
        pad = padding.lower()
    else:
        pad = padding if len(padding) == 2 else padding[1:3]
    y = depthwise_conv(x, tf_filter_to_weight(f), stride=strides, dilation=dilations,
                       padding=pad, layout="channels_last")
    np.testing.assert_allclose(y, y_tf, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------- NumPy / SciPy


def test_1d_matches_np_correlate_valid():
    r = rng()
    x = r.standard_normal(11)
    w = r.standard_normal(4)
    y = conv(x.reshape(1, 1, -1), w.reshape(1, 1, -1))
    np.testing.assert_allclose(y[0, 0], np.correlate(x, w, "valid"), rtol=1e-12)


def test_1d_complex_matches_np_correlate_of_conjugate():
    r = rng()
    x = r.standard_normal(9) + 1j * r.standard_normal(9)
    w = r.standard_normal(3) + 1j * r.standard_normal(3)
    y = conv(x.reshape(1, 1, -1), w.reshape(1, 1, -1))
    # np.correlate conjugates its second argument; conv does not
    np.testing.assert_allclose(y[0, 0], np.correlate(x, np.conj(w), "valid"), rtol=1e-12)


def test_full_matches_np_and_scipy_correlate():
    r = rng()
    x = r.standard_normal(10)
    w = r.standard_normal(4)
    y = conv(x.reshape(1, 1, -1), w.reshape(1, 1, -1), padding="full")[0, 0]
    assert y.shape == (13,)
    np.testing.assert_allclose(y, np.correlate(x, w, "full"), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(y, scipy.signal.correlate(x, w, "full", method="direct"),
                               rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("mode", ["valid", "full"])
def test_2d_3d_match_scipy_correlate(mode):
    r = rng()
    for xs, ks in [((6, 7), (3, 2)), ((4, 5, 3), (2, 3, 2))]:
        x = r.standard_normal(xs)
        w = r.standard_normal(ks)
        y = conv(x[None, None], w[None, None], padding=mode)[0, 0]
        expected = scipy.signal.correlate(x, w, mode, method="direct")
        np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular", "symmetric"])
def test_padding_mode_equals_explicit_np_pad(mode):
    np_mode = {"zeros": "constant", "reflect": "reflect", "replicate": "edge",
               "circular": "wrap", "symmetric": "symmetric"}[mode]
    r = rng()
    x = r.standard_normal((2, 4, 5, 6))
    w = r.standard_normal((6, 2, 3, 2))
    pads = ((2, 1), (0, 3))
    y = conv(x, w, padding=pads, padding_mode=mode, groups=2, stride=(1, 2))
    xp = np.pad(x, ((0, 0), (0, 0), *pads), mode=np_mode)
    np.testing.assert_allclose(y, conv(xp, w, groups=2, stride=(1, 2)), rtol=1e-12)
    np.testing.assert_allclose(
        y, loop_conv(xp, w, stride=(1, 2), pads=((0, 0), (0, 0)), dilation=(1, 1), groups=2),
        rtol=1e-12, atol=1e-12,
    )


def test_padding_mode_limits():
    x = np.ones((1, 1, 3))
    w = np.ones((1, 1, 1))
    assert conv(x, w, padding=2, padding_mode="reflect").shape == (1, 1, 7)
    with pytest.raises(ValueError, match="reflect"):
        conv(x, w, padding=3, padding_mode="reflect")
    for mode in ("circular", "symmetric"):
        assert conv(x, w, padding=3, padding_mode=mode).shape == (1, 1, 9)
        with pytest.raises(ValueError, match=mode):
            conv(x, w, padding=(4,), padding_mode=mode)
    for mode in ("zeros", "replicate"):
        assert conv(x, w, padding=10, padding_mode=mode).shape == (1, 1, 23)


# ----------------------------------------------------------------- "same" split


def test_same_split_l6_k3_s2():
    r = rng()
    x = r.standard_normal((1, 2, 6))
    w = r.standard_normal((2, 2, 3))
    y = conv(x, w, padding="same", stride=2)
    assert y.shape == (1, 2, 3)
    np.testing.assert_array_equal(y, conv(x, w, padding=[(0, 1)], stride=2))
    assert not np.allclose(y, conv(x, w, padding=[(1, 0)], stride=2))
    np.testing.assert_array_equal(conv(x, w, padding="same_lower", stride=2),
                                  conv(x, w, padding=[(1, 0)], stride=2))


def test_same_split_l224_k7_s2():
    r = rng()
    x = r.standard_normal((1, 1, 224))
    w = r.standard_normal((1, 1, 7))
    y = conv(x, w, padding="same", stride=2)
    assert y.shape == (1, 1, 112)
    np.testing.assert_array_equal(y, conv(x, w, padding=[(2, 3)], stride=2))
    np.testing.assert_array_equal(conv(x, w, padding="same_lower", stride=2),
                                  conv(x, w, padding=[(3, 2)], stride=2))


def test_same_2d_per_dim_and_dilation():
    r = rng()
    x = r.standard_normal((1, 1, 5, 6))
    w = r.standard_normal((1, 1, 3, 2))
    # H: L=5, k=3, d=2, s=1 -> out 5, total 4 -> (2, 2)
    # W: L=6, k=2, d=2, s=1 -> out 6, total 2 -> (1, 1)
    y = conv(x, w, padding="same", dilation=2)
    assert y.shape == (1, 1, 5, 6)
    np.testing.assert_array_equal(y, conv(x, w, padding=((2, 2), (1, 1)), dilation=2))
    # H: L=5, k=3, s=3 -> out 2, total max(3 + 2 + 1 - 5, 0) = 1 -> (0, 1)
    # W: L=6, k=2, s=1 -> out 6, total 1 -> (0, 1)
    y = conv(x, w, padding="same", stride=(3, 1))
    assert y.shape == (1, 1, 2, 6)
    np.testing.assert_array_equal(y, conv(x, w, padding=((0, 1), (0, 1)), stride=(3, 1)))


def test_same_needs_no_padding_when_stride_covers():
    # L=9, k=3, s=3: out 3, total max(6 + 3 - 9, 0) = 0 -> no padding
    x = np.arange(9.0).reshape(1, 1, 9)
    w = np.ones((1, 1, 3))
    np.testing.assert_array_equal(conv(x, w, padding="same", stride=3), [[[3.0, 12.0, 21.0]]])


# ----------------------------------------------------------------- groups / layout


@pytest.mark.parametrize(
    ("d", "groups", "c_in", "c_out", "kw"),
    [
        (1, 3, 6, 9, {"stride": 2, "padding": 1}),
        (2, 2, 4, 6, {"dilation": (2, 1), "padding": "same"}),
        (3, 2, 4, 2, {"stride": (1, 2, 1), "padding": ((1, 0), (0, 1), (1, 1))}),
        (2, 4, 4, 8, {"padding": 1, "padding_mode": "circular"}),
    ],
)
def test_groups_equal_concatenated_dense_convs(d, groups, c_in, c_out, kw):
    r = rng()
    x = r.standard_normal((2, c_in) + (5,) * d)
    w = r.standard_normal((c_out, c_in // groups) + (3, 2, 2)[:d])
    b = r.standard_normal(c_out)
    y = conv(x, w, b, groups=groups, **kw)
    cg, og = c_in // groups, c_out // groups
    parts = [
        conv(x[:, g * cg:(g + 1) * cg], w[g * og:(g + 1) * og], b[g * og:(g + 1) * og], **kw)
        for g in range(groups)
    ]
    np.testing.assert_allclose(y, np.concatenate(parts, axis=1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_channels_last_equals_moved_channels_first(d):
    r = rng()
    x = r.standard_normal((2, 4) + (5, 4, 3)[:d])
    w = r.standard_normal((6, 2) + (2, 3, 2)[:d])
    b = r.standard_normal(6)
    kw = {"stride": 2, "padding": "same", "groups": 2, "padding_mode": "reflect"}
    y_first = conv(x, w, b, **kw)
    y_last = conv(np.moveaxis(x, 1, -1), w, b, layout="channels_last", **kw)
    np.testing.assert_allclose(y_last, np.moveaxis(y_first, 1, -1), rtol=1e-12)


@pytest.mark.parametrize(
    ("d", "groups", "stride", "dilation", "pads"),
    [
        (1, 1, (1,), (1,), ((0, 0),)),
        (1, 2, (2,), (3,), ((2, 1),)),
        (2, 3, (2, 1), (1, 2), ((1, 0), (0, 2))),
        (3, 1, (1, 2, 1), (1, 1, 2), ((0, 1), (1, 1), (2, 0))),
    ],
)
def test_matches_direct_loops(d, groups, stride, dilation, pads):
    r = rng()
    c_in, c_out = 3 * groups if groups > 1 else 2, 2 * groups
    x = r.standard_normal((2, c_in) + (6, 5, 4)[:d])
    w = r.standard_normal((c_out, c_in // groups) + (2, 3, 2)[:d])
    b = r.standard_normal(c_out)
    y = conv(x, w, b, stride=stride, dilation=dilation, padding=pads, groups=groups)
    expected = loop_conv(x, w, b, stride=stride, pads=pads, dilation=dilation, groups=groups)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(
    groups=st.integers(1, 3),
    cg=st.integers(1, 2),
    og=st.integers(1, 2),
    length=st.integers(1, 7),
    k=st.integers(1, 3),
    stride=st.integers(1, 3),
    dilation=st.integers(1, 2),
    lo=st.integers(0, 2),
    hi=st.integers(0, 2),
    seed=st.integers(0, 2**31 - 1),
)
def test_1d_property_matches_direct_loops(groups, cg, og, length, k, stride, dilation, lo, hi,
                                          seed):
    r = np.random.default_rng(seed)
    x = r.standard_normal((1, groups * cg, length))
    w = r.standard_normal((groups * og, cg, k))
    if length + lo + hi - (k - 1) * dilation - 1 < 0:
        with pytest.raises(ValueError, match="below 1"):
            conv(x, w, padding=[(lo, hi)], stride=stride, dilation=dilation, groups=groups)
        return
    y = conv(x, w, padding=[(lo, hi)], stride=stride, dilation=dilation, groups=groups)
    expected = loop_conv(x, w, stride=(stride,), pads=((lo, hi),), dilation=(dilation,),
                         groups=groups)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------- separable


@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
def test_separable_is_depthwise_then_pointwise(layout):
    r = rng()
    x = r.standard_normal((2, 3, 6, 5))
    dw = r.standard_normal((6, 1, 3, 3))  # M = 2
    pw = r.standard_normal((4, 6))
    b = r.standard_normal(4)
    kw = {"stride": 2, "padding": "same", "dilation": 1, "padding_mode": "replicate"}
    mid = depthwise_conv(x, dw, **kw)
    expected = np.einsum("oc,nchw->nohw", pw, mid) + b[None, :, None, None]
    if layout == "channels_last":
        x = np.moveaxis(x, 1, -1)
        expected = np.moveaxis(expected, 1, -1)
    y = separable_conv(x, dw, pw, b, layout=layout, **kw)
    np.testing.assert_allclose(y, expected, rtol=1e-12)
    y4 = separable_conv(x, dw, pw[:, :, None, None], b, layout=layout, **kw)
    np.testing.assert_array_equal(y, y4)


# ----------------------------------------------------------------- edge cases


def test_empty_batch():
    x = np.zeros((0, 4, 5, 5))
    w = np.ones((8, 2, 3, 3))
    y = conv(x, w, np.ones(8), groups=2, padding="same", padding_mode="reflect")
    assert y.shape == (0, 8, 5, 5)
    assert y.dtype == np.float64
    y = conv(np.moveaxis(x, 1, -1), w, groups=2, stride=2, layout="channels_last")
    assert y.shape == (0, 2, 2, 8)


def test_output_below_one_is_value_error():
    with pytest.raises(ValueError, match="below 1"):
        conv(np.ones((1, 1, 2)), np.ones((1, 1, 3)))
    with pytest.raises(ValueError, match="below 1"):
        conv(np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3)), dilation=2)
    with pytest.raises(ValueError, match="below 1"):
        tf_depthwise_conv2d(np.ones((1, 2, 2, 1)), np.ones((3, 3, 1, 1)), (1, 1), "VALID")


def test_bad_arguments():
    x = np.ones((1, 4, 5))
    with pytest.raises(ValueError, match="groups"):
        conv(x, np.ones((4, 2, 3)), groups=3)
    with pytest.raises(ValueError, match="layout"):
        conv(x, np.ones((4, 4, 3)), layout="NCW")
    with pytest.raises(ValueError, match="padding_mode"):
        conv(x, np.ones((4, 4, 3)), padding_mode="constant")
    with pytest.raises(ValueError, match="padding"):
        conv(x, np.ones((4, 4, 3)), padding="middle")
    with pytest.raises(ValueError, match="stride"):
        conv(x, np.ones((4, 4, 3)), stride=0)


def test_dtypes_and_inputs_untouched():
    x = np.arange(6, dtype=np.float32).reshape(1, 2, 3)
    w = np.ones((2, 1, 2), dtype=np.float32)
    x0, w0 = x.copy(), w.copy()
    y = conv(x, w, groups=2)
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y, [[[1.0, 3.0], [7.0, 9.0]]])
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(w, w0)
    assert conv(x.astype(np.int32), w.astype(bool), groups=2).dtype == np.float64
    assert conv(x.astype(np.complex64), w, groups=2).dtype == np.complex128
    assert conv(x, w, np.array([1j, 0]), groups=2).dtype == np.complex128
