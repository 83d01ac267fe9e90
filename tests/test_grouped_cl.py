"""The channels_last window kernels (cpu/grouped_cl.py) against the reference.

``grouped_channels_last`` (a few channels per group, 4 x 4 blocks) and
``depthwise_window_channels_last`` (depthwise 7x7, blocks of 8 pixels).
"""

import numpy as np
import pytest
from conftest import assert_matches_reference, random_array

import groupconv
from groupconv import reference
from groupconv._spec import conv_spec
from groupconv.cpu import grouped_cl
from groupconv.cpu.direct import direct_arguments


def kernel_for(x, w, **kw):
    return direct_arguments(conv_spec(x, w, None, layout="channels_last", **kw))[0]


def takes_grouped_kernel(x, w, **kw):
    # Unit steps along W take their own build.
    unit = all(np.atleast_1d(kw.get(name, 1))[-1] == 1 for name in ("stride", "dilation"))
    want = grouped_cl.grouped_channels_last_unit if unit else grouped_cl.grouped_channels_last
    return kernel_for(x, w, **kw) is want


def check(rng, n, spatial, groups, c_group, per_group, kernel, dtype=np.float64, **kw):
    x = random_array(rng, (n, *spatial, groups * c_group), dtype)
    w = random_array(rng, (groups * per_group, c_group, *kernel), dtype)
    b = random_array(rng, groups * per_group, dtype)
    assert takes_grouped_kernel(x, w, groups=groups, **kw)
    got = groupconv.conv(x, w, b, groups=groups, layout="channels_last", **kw)
    want = reference.conv(x, w, b, groups=groups, layout="channels_last", **kw)
    assert got.dtype == dtype
    assert_matches_reference(got, want, scale=c_group * int(np.prod(kernel)) * 4.0)


# Groups that fill one chunk of lanes, part of one, and more than one (the
# last chunk partly zero lanes); outputs per group that make one and two
# blocks of 4; one and several input channels per group.
@pytest.mark.parametrize("groups, c_group, per_group", [
    (4, 1, 4), (8, 2, 4), (12, 3, 8), (16, 4, 4), (20, 1, 8), (33, 2, 4), (40, 4, 4),
])
def test_groups_lanes_and_blocks(rng, groups, c_group, per_group):
    check(rng, 2, (6, 7), groups, c_group, per_group, (3, 3), padding=1)


# Output widths of exactly one block and with a last block that overlaps its
# neighbour; tiles of rows that end inside an image (H_out 9 over 2 tasks).
@pytest.mark.parametrize("spatial, batch", [((9, 4), 3), ((5, 5), 1), ((3, 9), 2), ((1, 13), 2)])
def test_widths_and_row_tiles(rng, spatial, batch):
    check(rng, batch, spatial, 8, 2, 4, (3, 3), padding=1)


@pytest.mark.parametrize("kernel, stride, dilation, padding", [
    ((1, 1), 1, 1, 0),
    ((2, 3), 1, 1, [(1, 0), (2, 1)]),
    ((3, 1), (2, 1), 1, "same"),
    ((3, 3), 2, 1, 1),
    ((3, 3), (1, 2), 2, 2),
    ((3, 3), 1, (2, 3), "same"),
    ((7, 7), 1, 1, 3),
    ((4, 2), 3, 1, [(3, 3), (0, 2)]),
])
def test_kernels_strides_dilations_padding(rng, kernel, stride, dilation, padding):
    check(rng, 2, (11, 12), 16, 2, 4, kernel, stride=stride, dilation=dilation,
          padding=padding)


@pytest.mark.parametrize("kernel", [(3, 3), (7, 7), (5, 5)])
def test_float32_builds(rng, kernel):
    # float32 3x3 and 7x7 take the builds with unrolled taps along W.
    check(rng, 2, (10, 9), 32, 4, 4, kernel, dtype=np.float32, padding="same")


# float32 takes the explicit-vector block (16 groups per vector, sums in
# registers over all channels and taps): partial and several chunks of 16,
# two blocks of outputs, 1-4 channels per group, one-block and overlapping
# widths, rows tiles ending inside images, steps along W (the strided build).
@pytest.mark.parametrize("groups, c_group, per_group, spatial, kernel, stride, dilation", [
    (4, 1, 4, (6, 7), (3, 3), 1, 1),
    (20, 3, 8, (9, 4), (3, 3), 1, 1),
    (33, 2, 4, (5, 9), (2, 3), 1, 1),
    (40, 4, 4, (3, 13), (3, 3), (2, 1), (1, 1)),
    (17, 2, 4, (11, 12), (3, 3), 2, 1),
    (16, 4, 4, (11, 12), (3, 3), (1, 2), 2),
])
def test_float32_vector_block(rng, groups, c_group, per_group, spatial, kernel, stride, dilation):
    check(rng, 2, spatial, groups, c_group, per_group, kernel, dtype=np.float32, padding=1,
          stride=stride, dilation=dilation)


def test_one_dimensional_data_and_padding_modes(rng):
    check(rng, 2, (17,), 8, 2, 4, (3,), padding=2, padding_mode="reflect")
    check(rng, 2, (8, 9), 8, 1, 8, (3, 3), padding=1, padding_mode="circular")


def test_touches_nothing_outside_its_arrays(rng):
    # Input and output sit inside larger buffers: NaN borders around the input
    # (a read outside it would spread NaN) and a sentinel around the output.
    shape = (3, 7, 6, 16)
    x_store = np.full((5, *shape[1:]), np.nan)
    x_store[1:4] = rng.standard_normal(shape)
    x = x_store[1:4]
    w = rng.standard_normal((32, 2, 3, 3))
    kw = dict(groups=8, padding=1, layout="channels_last")
    assert takes_grouped_kernel(x, w, groups=8, padding=1)
    want = reference.conv(x, w, **kw)
    out_store = np.full((5, *want.shape[1:]), 12345.0)
    out = out_store[1:4]
    groupconv.conv(x, w, out=out, **kw)
    assert_matches_reference(out, want)
    assert (out_store[0] == 12345.0).all() and (out_store[4] == 12345.0).all()


def test_shapes_it_does_not_take(rng):
    # Outputs per group not a multiple of 4, outputs narrower than a block,
    # 3-D data and few large groups go to the other direct kernels.
    x = rng.standard_normal((1, 6, 6, 8))
    assert not takes_grouped_kernel(x, rng.standard_normal((16, 1, 3, 3)), groups=8)
    assert not takes_grouped_kernel(x, rng.standard_normal((32, 2, 3, 3)), groups=4)
    assert not takes_grouped_kernel(x[:, :, :3], rng.standard_normal((32, 1, 3, 3)), groups=8)
    x3 = rng.standard_normal((1, 4, 6, 6, 8))
    assert not takes_grouped_kernel(x3, rng.standard_normal((32, 1, 3, 3, 3)), groups=8)


def test_packing_zero_fills_lanes_past_the_groups(rng):
    w = rng.standard_normal((20 * 8, 3, 2, 2))
    bias = rng.standard_normal(20 * 8)
    packed, packed_bias = grouped_cl.pack_weight_and_bias(w, bias, 20, 16, 4)
    assert packed.shape == (2, 2, 3, 2, 2, 4, 16)
    assert packed_bias.shape == (2, 2, 4, 16)
    assert packed.ctypes.data % 64 == 0 and packed_bias.ctypes.data % 64 == 0
    # Output j0*4 + j of group chunk*16 + lane, input channel c, tap (kh, kw).
    assert packed[1, 1, 2, 0, 1, 3, 2] == w[(16 + 2) * 8 + 4 + 3, 2, 0, 1]
    assert packed[0, 0, 1, 1, 0, 2, 5] == w[5 * 8 + 2, 1, 1, 0]
    assert (packed[:, 1, ..., 4:] == 0).all()
    assert packed_bias[1, 0, 2, 5] == bias[5 * 8 + 4 + 2]
    assert (packed_bias[:, 1, :, 4:] == 0).all()
    # Every value lands once: the nonzero lanes hold exactly the weight's values.
    assert sorted(packed[packed != 0]) == sorted(w[w != 0])
    depthwise, depthwise_bias = grouped_cl.pack_weight_and_bias(w[:20, :1], bias[:20], 20, 32, 1)
    assert depthwise.shape == (1, 1, 1, 2, 2, 1, 32)
    np.testing.assert_array_equal(depthwise[0, 0, 0, :, :, 0, :20], w[:20, 0].transpose(1, 2, 0))
    np.testing.assert_array_equal(depthwise_bias[0, 0, 0], np.r_[bias[:20], np.zeros(12)])
    assert [grouped_cl.lane_count(g) for g in (1, 8, 9, 16, 17, 32, 33, 100)] == [
        16, 16, 16, 16, 32, 32, 32, 32]


def test_window_bound_makes_single_row_tasks(rng, monkeypatch):
    # A window budget below one row's input rows: tasks of one output row each.
    from groupconv.cpu import direct

    monkeypatch.setattr(direct, "WINDOW_BYTES", 1)
    spec = conv_spec(rng.standard_normal((2, 9, 8, 16)), rng.standard_normal((32, 2, 3, 3)),
                     None, groups=8, padding=1, layout="channels_last")
    assert direct_arguments(spec)[2][-1] == 1
    check(rng, 2, (9, 8), 8, 2, 4, (3, 3), padding=1, stride=(2, 1))


# The depthwise window kernel: float32 7x7 (the unrolled build), unit steps
# along W. Channels that fill part of one chunk of 16 lanes, one chunk of 32,
# and several chunks with a partial last one; widths of one block of 8 and a
# last block overlapping its neighbour; strides and dilations along H.
@pytest.mark.parametrize("channels, spatial, stride, dilation, padding", [
    (12, (9, 8), 1, 1, 3),
    (32, (10, 13), 1, 1, "same"),
    (40, (12, 11), (2, 1), 1, [(3, 1), (2, 4)]),
    (72, (16, 15), 1, (2, 1), 6),
    (33, (7, 20), (3, 1), (1, 1), 0),
])
def test_depthwise_window_kernel(rng, channels, spatial, stride, dilation, padding):
    x = random_array(rng, (2, *spatial, channels), np.float32)
    w = random_array(rng, (channels, 1, 7, 7), np.float32)
    b = random_array(rng, channels, np.float32)
    kw = dict(groups=channels, stride=stride, dilation=dilation, padding=padding)
    assert kernel_for(x, w, **kw) is grouped_cl.depthwise_window_channels_last
    got = groupconv.conv(x, w, b, layout="channels_last", **kw)
    assert_matches_reference(got, reference.conv(x, w, b, layout="channels_last", **kw),
                             scale=49 * 4.0)


def test_depthwise_window_kernel_is_only_for_unit_steps_along_w(rng):
    x = rng.standard_normal((1, 16, 20, 8)).astype(np.float32)
    w = rng.standard_normal((8, 1, 7, 7)).astype(np.float32)
    assert kernel_for(x, w, groups=8, padding=3) is grouped_cl.depthwise_window_channels_last
    for kw in (dict(stride=(1, 2)), dict(dilation=(1, 2))):
        kernel = kernel_for(x, w, groups=8, padding=3, **kw)
        assert kernel is not grouped_cl.depthwise_window_channels_last, kw
    # Outputs narrower than a block of 8 pixels.
    assert kernel_for(x[:, :, :13], w, groups=8) is not grouped_cl.depthwise_window_channels_last
    # float64 and 3x3 keep the register-blocked depthwise kernel.
    assert kernel_for(x.astype(np.float64), w.astype(np.float64), groups=8,
                      padding=3) is not grouped_cl.depthwise_window_channels_last
    assert kernel_for(x, w[..., :3, :3], groups=8,
                      padding=1) is not grouped_cl.depthwise_window_channels_last


# The depthwise 7x7 kernel walks each chunk of 32 channels in strips of
# STRIP_BLOCKS blocks of DEPTHWISE_PIXELS pixels, every output row of a strip
# in turn: widths of one block, of a last strip with fewer blocks and an
# overlapping last block, and of several strips; a partial last chunk of
# channels (40 = 32 + 8); 17 rows in tasks of 9, the last task shorter.
@pytest.mark.parametrize("width", [
    grouped_cl.DEPTHWISE_PIXELS,
    grouped_cl.STRIP_BLOCKS * grouped_cl.DEPTHWISE_PIXELS + 5,
    3 * grouped_cl.STRIP_BLOCKS * grouped_cl.DEPTHWISE_PIXELS,
])
def test_depthwise_window_strips(rng, width):
    channels = 40
    x = random_array(rng, (2, 17, width, channels), np.float32)
    w = random_array(rng, (channels, 1, 7, 7), np.float32)
    b = random_array(rng, channels, np.float32)
    kw = dict(groups=channels, padding=3)
    assert kernel_for(x, w, **kw) is grouped_cl.depthwise_window_channels_last
    got = groupconv.conv(x, w, b, layout="channels_last", **kw)
    want = reference.conv(x, w, b, layout="channels_last", **kw)
    assert_matches_reference(got, want, scale=49 * 4.0)
