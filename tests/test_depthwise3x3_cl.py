"""The depthwise 3x3 register kernel (cpu/depthwise3x3_cl.py) against the reference."""

import numpy as np
import pytest
from conftest import assert_matches_reference, random_array

import groupconv
from groupconv import reference
from groupconv._spec import conv_spec
from groupconv.cpu import depthwise3x3_cl
from groupconv.cpu.depthwise_cl import depthwise_channels_last
from groupconv.cpu.direct import _depthwise_weight, depthwise_tiles, direct_arguments, output_5d


def arguments(x, w, **kw):
    spec = conv_spec(x, w, None, groups=x.shape[-1], layout="channels_last", **kw)
    return spec, direct_arguments(spec)


def takes_kernel(x, w, **kw):
    _, (kernel, _, _) = arguments(x, w, **kw)
    return kernel is depthwise3x3_cl.depthwise_3x3_channels_last


def check(rng, n, spatial, channels, **kw):
    x = random_array(rng, (n, *spatial, channels), np.float32)
    w = random_array(rng, (channels, 1, 3, 3), np.float32)
    b = random_array(rng, channels, np.float32)
    assert takes_kernel(x, w, **kw)
    got = groupconv.conv(x, w, b, groups=channels, layout="channels_last", **kw)
    want = reference.conv(x, w, b, groups=channels, layout="channels_last", **kw)
    assert got.dtype == np.float32
    assert_matches_reference(got, want, scale=9 * 4.0)


# One chunk of 16 channels, a last chunk overlapping its neighbour, several.
@pytest.mark.parametrize("channels", [16, 17, 40, 64])
def test_channel_chunks(rng, channels):
    check(rng, 2, (6, 9), channels, padding=1)


# Interior rows: exactly two, an odd count (the last task's overlapping
# pair), even; interior columns: one, a short row walked whole (up to
# SHORT_ROW), longer rows in walks of COLUMN_BLOCK with a partial last one;
# several images (pairs never span two images).
@pytest.mark.parametrize("spatial, batch", [
    ((4, 5), 3), ((5, 3), 2), ((7, 6), 1), ((8, 11), 2), ((9, 14), 3), ((5, 18), 1),
    ((6, 23), 2),
])
def test_rows_columns_and_images(rng, spatial, batch):
    check(rng, batch, spatial, 16, padding=1)


def test_the_cases_above_take_both_kinds_of_walk():
    # Widths 18 and 23 at padding 1: 16 and 21 interior columns.
    assert depthwise3x3_cl.SHORT_ROW == 16 and depthwise3x3_cl.COLUMN_BLOCK == 4
    assert depthwise3x3_cl.columns_per_walk(16) == 16
    assert depthwise3x3_cl.columns_per_walk(21) == 4


@pytest.mark.parametrize("stride, dilation, padding", [
    (1, 1, 0),
    (1, 1, [(2, 0), (0, 2)]),
    (1, 1, "same"),
    (2, 1, 1),
    ((1, 2), 1, 1),
    ((3, 2), (2, 1), [(1, 2), (1, 0)]),
    (2, 1, "same"),
])
def test_strides_dilations_padding(rng, stride, dilation, padding):
    check(rng, 2, (13, 12), 24, stride=stride, dilation=dilation, padding=padding)


def test_padding_modes(rng):
    check(rng, 2, (7, 9), 20, padding=1, padding_mode="reflect")
    check(rng, 1, (6, 8), 16, stride=2, padding=2, padding_mode="circular")


@pytest.mark.parametrize("stride", [1, 2])
def test_bit_identical_to_the_general_kernel(rng, stride):
    # The docstring's claim: interior and border sums are the expressions
    # (and FMAs) of depthwise_cl's kernel, in the same order.
    x = random_array(rng, (2, 11, 10, 33), np.float32)
    w = random_array(rng, (33, 1, 3, 3), np.float32)
    spec, (kernel, before, after) = arguments(x, w, stride=stride, padding=1)
    assert kernel is depthwise3x3_cl.depthwise_3x3_channels_last
    ours = np.empty(spec.output_shape, np.float32)
    general = np.empty(spec.output_shape, np.float32)
    kernel(*before, output_5d(spec, ours), *after)
    x5, weight, bias = before
    depthwise_channels_last(x5, _depthwise_weight(weight), bias, output_5d(spec, general),
                            *after, *depthwise_tiles((1, 3, 3), spec.dtype))
    np.testing.assert_array_equal(ours, general)


def test_touches_nothing_outside_its_arrays(rng):
    # NaN around the input (a read outside it would spread NaN) and a
    # sentinel around the output.
    shape = (3, 7, 9, 20)
    x_store = np.full((5, *shape[1:]), np.nan, dtype=np.float32)
    x_store[1:4] = rng.standard_normal(shape)
    x = x_store[1:4]
    w = rng.standard_normal((20, 1, 3, 3)).astype(np.float32)
    kw = dict(groups=20, padding=1, layout="channels_last")
    assert takes_kernel(x, w, padding=1)
    want = reference.conv(x, w, **kw)
    out_store = np.full((5, *want.shape[1:]), 12345.0, dtype=np.float32)
    out = out_store[1:4]
    groupconv.conv(x, w, out=out, **kw)
    assert_matches_reference(out, want, scale=9 * 4.0)
    assert (out_store[0] == 12345.0).all() and (out_store[4] == 12345.0).all()


def test_shapes_it_does_not_take(rng):
    x = rng.standard_normal((1, 8, 8, 16)).astype(np.float32)
    w = rng.standard_normal((16, 1, 3, 3)).astype(np.float32)
    assert takes_kernel(x, w, padding=1)
    # float64, fewer than 16 channels, other kernel sizes, W dilation, W
    # stride 3, H stride with unit W stride, one interior row, no interior
    # column: the general depthwise kernels.
    assert not takes_kernel(x.astype(np.float64), w.astype(np.float64), padding=1)
    assert not takes_kernel(x[..., :15], w[:15], padding=1)
    assert not takes_kernel(x, rng.standard_normal((16, 1, 5, 5)).astype(np.float32), padding=2)
    assert not takes_kernel(x, w, padding=2, dilation=(1, 2))
    assert not takes_kernel(x, w, padding=1, stride=(1, 3))
    assert not takes_kernel(x, w, padding=1, stride=(2, 1))
    assert not takes_kernel(x[:, :3], w, padding=1)
    assert not takes_kernel(x[:, :, :2], w, padding=1)
    # Channels first, or a channel multiplier: other kernels too.
    spec = conv_spec(x.transpose(0, 3, 1, 2), w, None, groups=16, padding=1)
    assert direct_arguments(spec)[0] is not depthwise3x3_cl.depthwise_3x3_channels_last
    w2 = rng.standard_normal((32, 1, 3, 3)).astype(np.float32)
    spec = conv_spec(x, w2, None, groups=16, padding=1, layout="channels_last")
    assert direct_arguments(spec)[0] is not depthwise3x3_cl.depthwise_3x3_channels_last


def test_read_only_and_strided_weights(rng):
    # The kernel packs the weight itself: from a read-only array, and from a
    # view with strides (both copied to one C-ordered writeable array first).
    x = random_array(rng, (2, 9, 10, 24), np.float32)
    w_store = random_array(rng, (24, 1, 3, 6), np.float32)
    kw = dict(groups=24, padding=1, layout="channels_last")
    strided = w_store[:, :, :, ::2]
    read_only = np.array(strided)
    read_only.flags.writeable = False
    for w in (strided, read_only):
        assert takes_kernel(x, w, padding=1)
        kept = w.copy()
        assert_matches_reference(groupconv.conv(x, w, **kw), reference.conv(x, w, **kw),
                                 scale=9 * 4.0)
        np.testing.assert_array_equal(w, kept)
