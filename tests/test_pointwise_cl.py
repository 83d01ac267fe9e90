"""The pointwise register micro-kernel (cpu/pointwise_cl.py) against the reference."""

import numpy as np
import pytest
from conftest import assert_matches_reference, random_array

import groupconv
from groupconv import reference
from groupconv._dispatch import choose_algorithm
from groupconv._spec import conv_spec
from groupconv.cpu import pointwise_cl
from groupconv.cpu.direct import direct_arguments


def takes_kernel(x, w, **kw):
    spec = conv_spec(x, w, None, layout="channels_last", **kw)
    return (choose_algorithm(spec) == "direct"
            and direct_arguments(spec)[0] is pointwise_cl.pointwise_channels_last)


def check(rng, shape, c_out, **kw):
    x = random_array(rng, shape, np.float32)
    w = random_array(rng, (c_out, shape[-1]) + (1,) * (len(shape) - 2), np.float32)
    b = random_array(rng, c_out, np.float32)
    assert takes_kernel(x, w, **kw)
    got = groupconv.conv(x, w, b, layout="channels_last", **kw)
    want = reference.conv(x, w, b, layout="channels_last", **kw)
    assert got.dtype == np.float32
    assert_matches_reference(got, want, scale=shape[-1] * 4.0)


# Outputs: one, under one vector, exactly one, a partial second vector (a
# half vector with AVX-512: 20, 24), a whole pass, a partial second pass, a
# whole pass then a half-vector one (56), several passes.
@pytest.mark.parametrize("c_out", [1, 5, 16, 20, 24, 32, 33, 56, 100])
def test_output_passes_and_masked_stores(rng, c_out):
    check(rng, (2, 5, 7, 9), c_out)


# Pixels: fewer than a block, exactly one, one more, a partial last block
# (the blocks run across rows and images).
@pytest.mark.parametrize("shape", [(1, 1, 5, 8), (1, 3, 4, 8), (1, 13, 3), (3, 7, 11, 20)])
def test_pixel_blocks(rng, shape):
    check(rng, shape, 24)


def test_one_and_three_dimensional_data(rng):
    check(rng, (2, 30, 17), 10)
    check(rng, (2, 3, 4, 5, 40), 24)


def test_touches_nothing_outside_its_arrays(rng):
    shape = (3, 5, 7, 20)
    x_store = np.full((5, *shape[1:]), np.nan, dtype=np.float32)
    x_store[1:4] = rng.standard_normal(shape)
    x = x_store[1:4]
    w = rng.standard_normal((24, 20, 1, 1)).astype(np.float32)
    assert takes_kernel(x, w)
    want = reference.conv(x, w, layout="channels_last")
    out_store = np.full((5, *want.shape[1:]), 12345.0, dtype=np.float32)
    out = out_store[1:4]
    groupconv.conv(x, w, out=out, layout="channels_last")
    assert_matches_reference(out, want, scale=20 * 4.0)
    assert (out_store[0] == 12345.0).all() and (out_store[4] == 12345.0).all()


def test_shapes_it_does_not_take(rng):
    x = rng.standard_normal((1, 6, 6, 32)).astype(np.float32)
    w = rng.standard_normal((24, 32, 1, 1)).astype(np.float32)
    assert takes_kernel(x, w)
    # float64, channels_first, groups, a 3x3 kernel, stride, padding,
    # outputs a multiple of 64 (dense_cl's), a weight past the bound.
    assert not takes_kernel(x.astype(np.float64), w.astype(np.float64))
    spec = conv_spec(x.transpose(0, 3, 1, 2), w, None)
    assert direct_arguments(spec)[0] is not pointwise_cl.pointwise_channels_last
    assert not takes_kernel(x, w[:, :16], groups=2)
    assert not takes_kernel(x, rng.standard_normal((24, 32, 3, 3)).astype(np.float32))
    assert not takes_kernel(x, w, stride=2)
    assert not takes_kernel(x, w, padding=1)
    assert not takes_kernel(x, rng.standard_normal((64, 32, 1, 1)).astype(np.float32))
    big = pointwise_cl.MAX_WEIGHT_VALUES // 32 + 1
    assert not takes_kernel(x, rng.standard_normal((big, 32, 1, 1)).astype(np.float32))


def test_packing_layout(rng):
    n = pointwise_cl.OUTPUT_PASS  # 32 with AVX-512, else 16
    w = rng.standard_normal((40, 3)).astype(np.float32)
    flat = pointwise_cl.packed_weight(w, w)  # the helper the kernels inline, run alone
    passes = -(-40 // n)
    assert flat.shape == (passes * 3 * n,) and flat.ctypes.data % 64 == 0
    packed = flat.reshape(passes, 3, n)
    # Output 37 is lane 37 % n of pass 37 // n; the padding is zero.
    assert packed[37 // n, 2, 37 % n] == w[37, 2]
    np.testing.assert_array_equal(packed[0], w[:n].T)
    assert (packed[-1, :, 40 - (passes - 1) * n:] == 0).all()
    bias = pointwise_cl.packed_bias(np.arange(40, dtype=np.float32), w)
    assert bias.shape == (passes * n,) and bias[39] == 39 and (bias[40:] == 0).all()
