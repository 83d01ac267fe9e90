"""The register micro-kernel for many channels per group (cpu/dense_cl.py) against the reference."""

import numpy as np
import pytest
from conftest import assert_matches_reference, random_array

import groupconv
from groupconv import reference
from groupconv._dispatch import choose_algorithm
from groupconv._spec import conv_spec
from groupconv.cpu import dense_cl
from groupconv.cpu.direct import direct_arguments


def spec_for(x, w, **kw):
    return conv_spec(x, w, None, layout="channels_last", **kw)


def takes_dense_kernel(x, w, **kw):
    """Whether algorithm="direct" runs the call on the micro-kernel ("auto" may pick
    Winograd for 3x3 layers with many channels per group: tests/test_winograd.py)."""
    spec = spec_for(x, w, algorithm="direct", **kw)
    return direct_arguments(spec)[0] is dense_cl.dense_channels_last


def check(rng, n, spatial, groups, c_group, per_group, kernel, **kw):
    x = random_array(rng, (n, *spatial, groups * c_group), np.float32)
    w = random_array(rng, (groups * per_group, c_group, *kernel), np.float32)
    b = random_array(rng, groups * per_group, np.float32)
    assert takes_dense_kernel(x, w, groups=groups, **kw)
    got = groupconv.conv(x, w, b, groups=groups, layout="channels_last", algorithm="direct",
                         **kw)
    want = reference.conv(x, w, b, groups=groups, layout="channels_last", **kw)
    assert got.dtype == np.float32
    assert_matches_reference(got, want, scale=c_group * int(np.prod(kernel)) * 4.0)


# One and two chunks of 64 outputs per group, one and several groups.
@pytest.mark.parametrize("groups, c_group, per_group", [
    (1, 1, 64), (1, 8, 128), (2, 5, 64), (1, 30, 64), (3, 3, 64),
])
def test_groups_and_chunks(rng, groups, c_group, per_group):
    check(rng, 2, (5, 8), groups, c_group, per_group, (3, 3), padding=1)


# Several tiles of input channels (the sums wait in the task's buffer between
# them): with a bound of 4 channels' 3x3 weights, 30 channels go 7 x 4 + 2 and
# 5 channels 3 + 2.
@pytest.mark.parametrize("groups, c_group, per_group", [(1, 30, 64), (2, 5, 128)])
def test_several_channel_tiles(rng, monkeypatch, groups, c_group, per_group):
    from groupconv.cpu import direct

    monkeypatch.setattr(dense_cl, "WEIGHT_TILE_BYTES", 4 * 9 * dense_cl.OUTPUT_CHUNK * 4)
    monkeypatch.setattr(direct, "_ROUTES", {})
    x = random_array(rng, (2, 5, 8, groups * c_group), np.float32)
    w = random_array(rng, (groups * per_group, c_group, 3, 3), np.float32)
    assert direct_arguments(spec_for(x, w, groups=groups, padding=1))[2][-1] < c_group
    check(rng, 2, (5, 8), groups, c_group, per_group, (3, 3), padding=1)


# Output widths of exactly one block of 6 and with a last block of 2 or 4
# pixels, exact or overlapping its neighbour (the rest of the row is 1 to 5
# pixels); row tiles that end inside an image.
@pytest.mark.parametrize("spatial, batch", [
    ((9, 6), 3), ((5, 7), 1), ((1, 20), 2), ((3, 9), 2), ((4, 10), 1), ((3, 11), 2),
])
def test_widths_and_row_tiles(rng, spatial, batch):
    check(rng, batch, spatial, 1, 4, 64, (3, 3), padding=1)


@pytest.mark.parametrize("kernel, stride, dilation, padding", [
    ((1, 1), 1, 1, 0),
    ((2, 3), 1, 1, [(1, 0), (2, 1)]),
    ((3, 1), (2, 1), 1, "same"),
    ((3, 3), (2, 1), (2, 1), 2),
    ((5, 5), 1, 1, 2),
    ((4, 2), (3, 1), 1, [(3, 3), (0, 2)]),
])
def test_kernels_strides_dilations_padding(rng, kernel, stride, dilation, padding):
    check(rng, 2, (11, 12), 1, 3, 64, kernel, stride=stride, dilation=dilation,
          padding=padding)


def test_one_dimensional_data_and_padding_modes(rng):
    check(rng, 2, (17,), 2, 3, 64, (3,), padding=2, padding_mode="reflect")
    check(rng, 2, (8, 9), 1, 2, 64, (3, 3), padding=1, padding_mode="circular")


def test_touches_nothing_outside_its_arrays(rng):
    # NaN around the input (a read outside it would spread NaN) and a
    # sentinel around the output.
    shape = (3, 7, 8, 6)
    x_store = np.full((5, *shape[1:]), np.nan, dtype=np.float32)
    x_store[1:4] = rng.standard_normal(shape)
    x = x_store[1:4]
    w = rng.standard_normal((128, 3, 3, 3)).astype(np.float32)
    kw = dict(groups=2, padding=1, layout="channels_last")
    assert takes_dense_kernel(x, w, groups=2, padding=1)
    want = reference.conv(x, w, **kw)
    out_store = np.full((5, *want.shape[1:]), 12345.0, dtype=np.float32)
    out = out_store[1:4]
    groupconv.conv(x, w, out=out, **kw)
    assert_matches_reference(out, want, scale=3 * 9 * 4.0)
    assert (out_store[0] == 12345.0).all() and (out_store[4] == 12345.0).all()


def test_shapes_it_does_not_take(rng):
    x = rng.standard_normal((1, 8, 8, 64)).astype(np.float32)
    w = rng.standard_normal((64, 64, 3, 3)).astype(np.float32)
    assert takes_dense_kernel(x, w, padding=1)
    # float64, channels_first, outputs per group not a multiple of the chunk, steps
    # along W, outputs narrower than a block, 3-D data: the other paths.
    assert not takes_dense_kernel(x.astype(np.float64), w.astype(np.float64), padding=1)
    assert choose_algorithm(conv_spec(x.transpose(0, 3, 1, 2), w[..., :1], padding=0)) == "gemm"
    assert not takes_dense_kernel(x, w[:40], padding=1)  # 40: a multiple of neither 16 nor 64
    assert not takes_dense_kernel(x, w, padding=1, stride=(1, 2))
    assert not takes_dense_kernel(x, w, padding=1, dilation=(1, 2))
    assert not takes_dense_kernel(x[:, :, :4], w, padding=1)
    x3 = rng.standard_normal((1, 4, 8, 8, 64)).astype(np.float32)
    assert choose_algorithm(spec_for(x3, w[..., None])) == "gemm"


def test_packing_layout(rng):
    chunk = dense_cl.OUTPUT_CHUNK  # 64 with AVX-512, else 16
    w = rng.standard_normal((2 * 2 * chunk, 3, 2, 5)).astype(np.float32)
    packed = dense_cl.pack_weight(w, 2)
    assert packed.shape == (2, 2, 2, 5, 3, chunk)
    # Group 1, chunk 1, tap (1, 4), input channel 2, output lane 7.
    assert packed[1, 1, 1, 4, 2, 7] == w[2 * chunk + chunk + 7, 2, 1, 4]
    # A channel tile's weights for one chunk fit the bound, in as few tiles as
    # the bound allows, split evenly.
    fit = dense_cl.WEIGHT_TILE_BYTES // (9 * chunk * 4)
    for c_group in (3, fit, fit + 1, 5 * fit - 2):
        tile = dense_cl.channel_tile(c_group, 9, 4)
        tiles = -(-c_group // tile)
        assert tile * 9 * chunk * 4 <= dense_cl.WEIGHT_TILE_BYTES
        assert tiles == -(-c_group // fit) and tiles * tile - c_group < tiles
    assert dense_cl.channel_tile(3, 9, 4) == 3 and dense_cl.channel_tile(8, 10**6, 4) == 1
    assert dense_cl.channel_tile(fit + 1, 9, 4) == (fit + 2) // 2


def test_window_bound_makes_single_row_tasks(rng, monkeypatch):
    from groupconv.cpu import direct

    monkeypatch.setattr(direct, "WINDOW_BYTES", 1)
    spec = spec_for(rng.standard_normal((2, 9, 8, 4)).astype(np.float32),
                    rng.standard_normal((64, 4, 3, 3)).astype(np.float32), padding=1)
    assert direct_arguments(spec)[2][-2] == 1
    check(rng, 2, (9, 8), 1, 4, 64, (3, 3), padding=1, stride=(2, 1))
