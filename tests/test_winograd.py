"""Winograd F(2x2, 3x3) (cpu/winograd.py) against the reference, and the calls it refuses."""

import numpy as np
import pytest
from conftest import assert_matches_reference, random_array
from hypothesis import given, settings
from hypothesis import strategies as st

import groupconv
from groupconv import reference
from groupconv._dispatch import choose_algorithm
from groupconv._spec import conv_spec
from groupconv.cpu import winograd

LAYOUTS = ["channels_first", "channels_last"]


def make_case(rng, n, c_in, c_out, groups, spatial, layout, dtype=np.float32, bias=True):
    shape = (n, c_in, *spatial) if layout == "channels_first" else (n, *spatial, c_in)
    x = random_array(rng, shape, dtype)
    w = random_array(rng, (c_out, c_in // groups, 3, 3), dtype)
    b = random_array(rng, (c_out,), dtype) if bias else None
    return x, w, b


def check(x, w, b, **kw):
    got = groupconv.conv(x, w, b, algorithm="winograd", **kw)
    want = reference.conv(x.astype(np.float64), w.astype(np.float64),
                          None if b is None else b.astype(np.float64), **kw)
    assert got.dtype == x.dtype
    assert_matches_reference(got, want, scale=w.shape[1] * 9 * 4.0)


# Groups and channels: one chunk of 64 outputs per group, a chunk and a
# part, fewer than 64; channel counts off the 16-lane vectors.
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("c_in, c_out, groups", [
    (64, 64, 1), (128, 128, 2), (20, 100, 1), (12, 24, 3), (3, 5, 1), (70, 140, 2),
])
def test_channels_and_groups(rng, layout, c_in, c_out, groups):
    x, w, b = make_case(rng, 2, c_in, c_out, groups, (9, 10), layout)
    check(x, w, b, groups=groups, padding=1, layout=layout)


# Odd and even sizes (a last tile row or column half outside the output),
# outputs narrower than one block of 6 tiles (the spare tiles read zeros),
# a single output pixel, and lopsided, missing or large padding.
@pytest.mark.parametrize("spatial, padding", [
    ((7, 7), 1), ((8, 5), 1), ((1, 1), 1), ((3, 3), 0), ((2, 13), 1), ((13, 2), (2, 1)),
    ((6, 9), [(2, 0), (0, 3)]), ((5, 4), "same"), ((4, 6), "full"), ((11, 3), "valid"),
])
def test_sizes_and_padding(rng, spatial, padding):
    x, w, b = make_case(rng, 3, 16, 32, 1, spatial, "channels_last")
    check(x, w, b, padding=padding, layout="channels_last")


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular", "symmetric"])
def test_padding_modes(rng, mode):
    x, w, b = make_case(rng, 2, 8, 16, 2, (6, 7), "channels_first")
    check(x, w, b, groups=2, padding=1, padding_mode=mode)


# Tasks of several rows of tiles, whose blocks of 6 tiles run across rows
# (4 tiles a row here), with a shorter last task; and one row per task.
@pytest.mark.parametrize("row_bytes", [1, 2**30])
def test_task_rows(rng, monkeypatch, row_bytes):
    monkeypatch.setattr(winograd, "SHORT_TASK_BYTES", row_bytes)
    x, w, b = make_case(rng, 2, 16, 64, 1, (14, 8), "channels_last")
    spec = conv_spec(x, w, b, padding=1, layout="channels_last")
    rows = winograd.task_rows(spec, 4)
    assert (rows > 1) == (row_bytes > 1)
    check(x, w, b, padding=1, layout="channels_last")


def test_float16_unbatched_out_and_no_bias(rng):
    x, w, _ = make_case(rng, 1, 32, 64, 1, (6, 6), "channels_last", dtype=np.float16,
                        bias=False)
    got = groupconv.conv(x[0], w, padding=1, layout="channels_last", algorithm="winograd")
    want = reference.conv(x.astype(np.float64), w.astype(np.float64), padding=1,
                          layout="channels_last")[0]
    assert got.dtype == np.float16 and got.shape == want.shape
    assert_matches_reference(got, want, scale=32 * 9 * 4.0)
    x32, w32 = x.astype(np.float32), w.astype(np.float32)
    out = np.full((1, 6, 6, 64), 7.0, dtype=np.float32)
    assert groupconv.conv(x32, w32, padding=1, layout="channels_last", out=out,
                          algorithm="winograd") is out
    assert_matches_reference(out, reference.conv(x32.astype(np.float64), w32.astype(np.float64),
                                                 padding=1, layout="channels_last"),
                             scale=32 * 9 * 4.0)


def test_weight_transform_by_hand():
    # A kernel of ones: G 1 G^T = r r^T with r = G's row sums (1, 1.5, 0.5, 1).
    # Output 1 of 2 (the second of group 1's): zeros elsewhere, and padding
    # outputs up to the chunk of 64.
    w = np.zeros((4, 1, 3, 3), dtype=np.float32)
    w[3] = 1.0
    packed = winograd.transform_weight(w, 2)
    chunk = packed.shape[-1]
    assert packed.shape == (16, 2, 1, 1, chunk)
    r = np.array([1.0, 1.5, 0.5, 1.0])
    np.testing.assert_array_equal(packed[:, 1, 0, 0, 1], np.outer(r, r).ravel())
    packed[:, 1, 0, 0, 1] = 0
    assert not packed.any()


def test_touches_nothing_outside_its_arrays(rng):
    # NaN around the input (a read outside it would spread NaN) and a
    # sentinel around the output.
    shape = (3, 7, 9, 24)
    x_store = np.full((5, *shape[1:]), np.nan, dtype=np.float32)
    x_store[1:4] = rng.standard_normal(shape)
    x = x_store[1:4]
    w = rng.standard_normal((40, 12, 3, 3)).astype(np.float32)
    kw = dict(groups=2, padding=1, layout="channels_last")
    before = x.copy(), w.copy()
    want = reference.conv(x.astype(np.float64), w.astype(np.float64), **kw)
    out_store = np.full((5, *want.shape[1:]), 12345.0, dtype=np.float32)
    out = out_store[1:4]
    groupconv.conv(x, w, out=out, algorithm="winograd", **kw)
    assert_matches_reference(out, want, scale=12 * 9 * 4.0)
    assert (out_store[0] == 12345.0).all() and (out_store[4] == 12345.0).all()
    np.testing.assert_array_equal(x, before[0])
    np.testing.assert_array_equal(w, before[1])


@settings(max_examples=60)
@given(
    batch=st.integers(1, 3), groups=st.integers(1, 3), c_group=st.integers(1, 40),
    per_group=st.integers(1, 70), h=st.integers(1, 12), w=st.integers(1, 12),
    pad=st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(0, 2), st.integers(0, 2)),
    layout=st.sampled_from(LAYOUTS), seed=st.integers(0, 2**32 - 1),
)
def test_random_layers(batch, groups, c_group, per_group, h, w, pad, layout, seed):
    if h + pad[0] + pad[1] < 3 or w + pad[2] + pad[3] < 3:
        return  # no output: the spec refuses it, for every algorithm
    rng = np.random.default_rng(seed)
    x, wt, b = make_case(rng, batch, groups * c_group, groups * per_group, groups, (h, w),
                         layout)
    check(x, wt, b, groups=groups, padding=[pad[:2], pad[2:]], layout=layout)


def spec_for(shape, c_out, groups=1, kernel=3, **kw):
    rng = np.random.default_rng(0)
    x = np.zeros(shape, dtype=kw.pop("dtype", np.float32))
    w = rng.standard_normal((c_out, shape[-1] // groups, kernel, kernel)).astype(x.dtype)
    return conv_spec(x, w, groups=groups, padding=1, layout="channels_last", **kw)


def test_auto_picks_it_where_it_was_measured_faster():
    # The bench's dense and 2-group layers; 256 -> 256 at 14 x 14.
    assert choose_algorithm(spec_for((8, 28, 28, 128), 128, groups=2)) == "winograd"
    assert choose_algorithm(spec_for((8, 56, 56, 64), 64)) == "winograd"
    assert choose_algorithm(spec_for((8, 14, 14, 256), 256)) == "winograd"
    # 16 channels per group; 16 MB of transformed weights; 5x5; stride 2; float64.
    assert choose_algorithm(spec_for((8, 28, 28, 128), 128, groups=8)) != "winograd"
    assert choose_algorithm(spec_for((8, 7, 7, 512), 512)) != "winograd"
    assert choose_algorithm(spec_for((8, 28, 28, 64), 64, kernel=5)) != "winograd"
    assert choose_algorithm(spec_for((8, 28, 28, 64), 64, stride=2)) != "winograd"
    assert choose_algorithm(spec_for((8, 28, 28, 64), 64, dtype=np.float64)) != "winograd"


@pytest.mark.parametrize("x_shape, w_shape, kw, needs", [
    ((1, 4, 9), (4, 4, 3), {}, "2-D data, got 1-D"),
    ((1, 4, 5, 5, 5), (4, 4, 3, 3, 3), {}, "2-D data, got 3-D"),
    ((1, 4, 9, 9), (4, 4, 5, 5), {}, "a 3x3 kernel, got 5x5"),
    ((1, 4, 9, 9), (4, 4, 3, 3), {"stride": 2}, r"stride 1, got stride=\(2, 2\)"),
    ((1, 4, 9, 9), (4, 4, 3, 3), {"dilation": (1, 2)}, r"dilation 1, got dilation=\(1, 2\)"),
    ((1, 4, 9, 9), (4, 4, 3, 3), {"dtype": np.float64},
     "float32 or float16 data, got data computed in float64"),
    ((1, 4, 9, 9), (4, 4, 3, 3), {"dtype": np.complex64},
     "float32 or float16 data, got data computed in complex64"),
])
def test_refuses_what_it_cannot_run(x_shape, w_shape, kw, needs):
    dtype = kw.pop("dtype", np.float32)
    x, w = np.ones(x_shape, dtype=dtype), np.ones(w_shape, dtype=dtype)
    with pytest.raises(ValueError, match=f"algorithm='winograd' needs {needs}.*'auto'"):
        groupconv.conv(x, w, algorithm="winograd", **kw)


def test_refuses_separable():
    x = np.ones((1, 4, 9, 9), dtype=np.float32)
    with pytest.raises(ValueError, match="winograd.*pointwise step is a 1x1"):
        groupconv.separable_conv(x, np.ones((4, 1, 3, 3), np.float32),
                                 np.ones((8, 4), np.float32), algorithm="winograd")
