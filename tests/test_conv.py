"""groupconv.conv / depthwise_conv / separable_conv against groupconv.reference."""

import itertools

import numpy as np
import pytest
from conftest import assert_matches_reference, random_array

import groupconv
from groupconv import reference
from groupconv._spec import ALGORITHMS

LAYOUTS = ["channels_first", "channels_last"]
# Winograd takes 2-D 3x3 layers at stride 1 only: tests/test_winograd.py.
ALGORITHMS = [a for a in ALGORITHMS if a not in ("auto", "winograd")]
MODES = ["zeros", "reflect", "replicate", "circular", "symmetric"]


def make_input(rng, n, c, spatial, layout, dtype=np.float64):
    shape = (n, c, *spatial) if layout == "channels_first" else (n, *spatial, c)
    return random_array(rng, shape, dtype)


# (C_in, C_out, groups): dense, few groups, grouped, depthwise, depthwise with multiplier
CHANNELS = [(3, 4, 1), (4, 6, 2), (8, 8, 4), (6, 6, 6), (3, 6, 3), (4, 2, 2)]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("c_in,c_out,groups", CHANNELS)
def test_grid_against_reference(rng, layout, rank, c_in, c_out, groups, algorithm):
    spatial = (9, 7, 5)[-rank:] if rank > 1 else (11,)
    x = make_input(rng, 2, c_in, spatial, layout)
    for stride, dilation, padding in [(1, 1, 1), (2, 1, "same"), (1, 2, "full"), (3, 1, 0)]:
        w = rng.standard_normal((c_out, c_in // groups) + (3,) * rank)
        b = rng.standard_normal(c_out)
        got = groupconv.conv(x, w, b, stride=stride, dilation=dilation, padding=padding,
                             groups=groups, layout=layout, algorithm=algorithm)
        want = reference.conv(x, w, b, stride=stride, dilation=dilation, padding=padding,
                              groups=groups, layout=layout)
        assert_matches_reference(got, want)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("padding", [1, [(2, 0), (0, 1)], "same", "same_lower", "causal"])
def test_padding_modes_2d(rng, layout, mode, padding, algorithm):
    x = make_input(rng, 2, 4, (6, 5), layout)
    w = rng.standard_normal((4, 2, 3, 2))
    got = groupconv.conv(x, w, groups=2, padding=padding, padding_mode=mode, layout=layout,
                         algorithm=algorithm)
    want = reference.conv(x, w, groups=2, padding=padding, padding_mode=mode, layout=layout)
    assert_matches_reference(got, want)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_asymmetric_stride_dilation_kernel(rng, layout):
    x = make_input(rng, 1, 6, (10, 9, 8), layout)
    w = rng.standard_normal((9, 2, 3, 1, 2))
    kw = dict(stride=(1, 2, 3), dilation=(2, 1, 3), padding=[(1, 2), (0, 0), (3, 1)],
              groups=3, layout=layout)
    assert_matches_reference(groupconv.conv(x, w, **kw), reference.conv(x, w, **kw))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("multiplier", [1, 3])
def test_depthwise_multiplier_order(rng, layout, multiplier):
    c = 5
    x = make_input(rng, 2, c, (7, 7), layout)
    w = rng.standard_normal((c * multiplier, 1, 3, 3))
    got = groupconv.depthwise_conv(x, w, padding="same", layout=layout)
    # Channel c*M + q must come from input channel c alone.
    for ch, q in itertools.product(range(c), range(multiplier)):
        xc = x[:, ch:ch + 1] if layout == "channels_first" else x[..., ch:ch + 1]
        want = reference.conv(xc, w[ch * multiplier + q][None], padding="same", layout=layout)
        o = ch * multiplier + q
        part = got[:, o:o + 1] if layout == "channels_first" else got[..., o:o + 1]
        assert_matches_reference(part, want)


@pytest.mark.parametrize("algorithm", ["auto", *ALGORITHMS])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("pointwise_ndim", [2, 4])
def test_separable_against_reference(rng, layout, pointwise_ndim, algorithm):
    x = make_input(rng, 2, 3, (8, 7), layout)
    dw = rng.standard_normal((6, 1, 3, 3))
    pw = rng.standard_normal((5, 6) + (1, 1) * (pointwise_ndim == 4))
    b = rng.standard_normal(5)
    kw = dict(stride=2, padding="same", padding_mode="reflect", layout=layout)
    got = groupconv.separable_conv(x, dw, pw, b, algorithm=algorithm, **kw)
    assert_matches_reference(got, reference.separable_conv(x, dw, pw, b, **kw))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("dtype", ["float32", "float64", "complex64"])
def test_fused_separable_shapes(rng, layout, rank, dtype):
    # Multipliers, many channels (the pointwise sums run in chunks of 8 plus
    # a remainder), unrolled kernel sizes and borders.
    for c_in, multiplier, c_out, k, stride, padding in [
        (3, 2, 5, 3, 1, 1), (17, 1, 4, 3, 1, "same"), (9, 2, 19, 5, 2, "same"),
        (2, 3, 1, 2, 1, 0), (8, 1, 8, 7, 1, 3),
    ]:
        x = make_input(rng, 2, c_in, (9,) * rank, layout, dtype)
        dw = random_array(rng, (c_in * multiplier, 1) + (k,) * rank, dtype)
        pw = random_array(rng, (c_out, c_in * multiplier), dtype)
        b = random_array(rng, (c_out,), dtype)
        kw = dict(stride=stride, padding=padding, layout=layout)
        want = reference.separable_conv(x, dw, pw, b, **kw)
        scale = c_in * multiplier * k**rank * 16.0
        assert_matches_reference(groupconv.separable_conv(x, dw, pw, b, **kw), want, scale=scale)


@pytest.mark.parametrize("layout", ["NCW", "NWC", "NCHW", "NHWC", "NCDHW", "NDHWC"])
def test_layout_aliases(rng, layout):
    rank = len(layout) - 2
    canonical = "channels_first" if layout[1] == "C" else "channels_last"
    x = make_input(rng, 1, 2, (5,) * rank, canonical)
    w = rng.standard_normal((2, 1) + (2,) * rank)
    got = groupconv.conv(x, w, groups=2, layout=layout)
    assert_matches_reference(got, reference.conv(x, w, groups=2, layout=canonical))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_unbatched_input(rng, layout, rank):
    x = make_input(rng, 1, 4, (5,) * rank, layout)
    w = rng.standard_normal((2, 2) + (3,) * rank)
    got = groupconv.conv(x[0], w, groups=2, padding=1, layout=layout)
    want = reference.conv(x, w, groups=2, padding=1, layout=layout)[0]
    assert got.shape == want.shape
    assert_matches_reference(got, want)


def test_zero_batch_gives_empty_result_of_right_shape(rng):
    x = np.zeros((0, 4, 6, 6))
    w = rng.standard_normal((8, 2, 3, 3))
    y = groupconv.conv(x, w, groups=2, stride=2, padding="same")
    assert y.shape == (0, 8, 3, 3)
    assert y.dtype == np.float64


# The fused register kernels (3x3 depthwise, multiplier 1, channels_last
# float32: cpu/separable.py) go a segment of columns at a time, as wide as a
# pointwise block (12 pixels with AVX-512, else 6): widths under, at and
# around one and several segments, interior pairs, border rows and an odd
# last row.
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("c_out", [10, 24, 32])
@pytest.mark.parametrize("width", [3, 8, 12, 16, 17, 25, 40])
def test_fused_separable_segments(rng, c_out, width, stride):
    from groupconv.cpu import separable

    x = random_array(rng, (2, 7, stride * width, 20), np.float32)
    dw = random_array(rng, (20, 1, 3, 3), np.float32)
    pw = random_array(rng, (c_out, 20), np.float32)
    b = random_array(rng, (c_out,), np.float32)
    kw = dict(padding=1, stride=stride, layout="channels_last")
    spec = groupconv._spec.separable_spec(x, dw, pw, b, **kw)
    x5 = x.reshape(2, 1, 7, stride * width, 20)
    assert separable._register_kernels_apply(spec.depthwise, spec.pointwise, x5,
                                             (1, stride, stride), (1, 1, 1), (0, 1, 1))
    got = groupconv.separable_conv(x, dw, pw, b, **kw)
    assert_matches_reference(got, reference.separable_conv(x, dw, pw, b, **kw),
                             scale=20 * 9 * 4.0 * 4.0)


def test_zero_batch_separable_channels_last(rng):
    x = np.zeros((0, 6, 6, 3), dtype=np.float32)
    y = groupconv.separable_conv(x, np.ones((3, 1, 3, 3)), np.ones((4, 3)), layout="NHWC")
    assert y.shape == (0, 4, 4, 4)


# ----------------------------------------------------------------------------- dtypes


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(
    "dtype,result",
    [
        ("float32", "float32"),
        ("float64", "float64"),
        ("complex64", "complex64"),
        ("complex128", "complex128"),
        ("float16", "float16"),
        ("int32", "float64"),
        ("uint8", "float64"),
        ("bool", "float64"),
    ],
)
def test_dtype_policy(rng, layout, dtype, result):
    x = make_input(rng, 2, 4, (6, 6), layout, dtype)
    w = random_array(rng, (4, 2, 3, 3), dtype)
    got = groupconv.conv(x, w, groups=2, padding=1, layout=layout)
    assert got.dtype == np.dtype(result)
    scale = 2 * 3 * 3 * float(np.abs(x).max()) * float(np.abs(w).max())
    want = reference.conv(x, w, groups=2, padding=1, layout=layout)
    assert_matches_reference(got, want, scale=scale)


def test_complex_is_not_conjugated():
    x = np.array([[[1j, 2.0, 3.0]]])
    w = np.array([[[1j, 1.0]]])
    # by hand: [1j*1j + 2, 1j*2 + 3] = [1, 3 + 2j]
    np.testing.assert_allclose(groupconv.conv(x, w), [[[1.0, 3.0 + 2.0j]]])


def test_mixed_dtypes_follow_result_type(rng):
    x = rng.standard_normal((1, 2, 5)).astype(np.float32)
    w = rng.standard_normal((2, 1, 3))
    assert groupconv.conv(x, w, groups=2).dtype == np.float64
    assert groupconv.conv(x, w.astype(np.int8), groups=2).dtype == np.float32
    assert groupconv.conv(x, w.astype(np.complex64), groups=2).dtype == np.complex64


# ------------------------------------------------------------------ memory layouts, out=


@pytest.mark.parametrize("layout", LAYOUTS)
def test_non_contiguous_negative_stride_and_read_only_inputs(rng, layout):
    base = make_input(rng, 2, 8, (12, 10), layout)
    views = {
        "slice": base[:, ::2] if layout == "channels_first" else base[..., ::2],
        "reversed": (base[:, :4, ::-1, ::-1] if layout == "channels_first"
                     else base[:, ::-1, ::-1, :4]),
        "fortran": np.asfortranarray(base[:, :4] if layout == "channels_first" else base[..., :4]),
    }
    w = rng.standard_normal((4, 2, 3, 3))[:, :, ::-1]
    for name, x in views.items():
        x = x.copy() if name == "fortran" and not x.flags.f_contiguous else x
        ro = x.view()
        ro.flags.writeable = False
        before = ro.copy()
        got = groupconv.conv(ro, w, groups=2, padding=1, layout=layout)
        assert_matches_reference(got, reference.conv(ro, w, groups=2, padding=1, layout=layout))
        np.testing.assert_array_equal(ro, before)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_inputs_are_never_modified(rng, layout):
    x = make_input(rng, 2, 4, (6, 6), layout)
    w = rng.standard_normal((4, 1, 3, 3))
    pw = rng.standard_normal((3, 4))
    b = rng.standard_normal(3)
    copies = [a.copy() for a in (x, w, pw, b)]
    groupconv.separable_conv(x, w, pw, b, padding=2, padding_mode="reflect", layout=layout)
    groupconv.conv(x, w, b[:1].repeat(4), groups=4, padding=1, padding_mode="circular",
                   layout=layout)
    for a, c in zip((x, w, pw, b), copies, strict=True):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("contiguous", [True, False])
def test_out_argument(rng, contiguous):
    x = rng.standard_normal((2, 4, 6, 6))
    w = rng.standard_normal((4, 2, 3, 3))
    want = reference.conv(x, w, groups=2, padding=1)
    if contiguous:
        out = np.full(want.shape, np.nan)
    else:
        out = np.full(want.shape[::-1], np.nan).T
    result = groupconv.conv(x, w, groups=2, padding=1, out=out)
    assert result is out
    assert_matches_reference(out, want)


def test_out_float16_and_unbatched(rng):
    x = rng.standard_normal((4, 6)).astype(np.float16)
    w = rng.standard_normal((4, 1, 3)).astype(np.float16)
    out = np.empty((4, 4), dtype=np.float16)
    assert groupconv.depthwise_conv(x, w, out=out) is out
    want = reference.depthwise_conv(x[None], w)[0]
    assert_matches_reference(out, want, scale=3 * float(np.abs(x).max() * np.abs(w).max()))


def test_separable_out(rng):
    x = rng.standard_normal((1, 3, 6, 6))
    out = np.empty((1, 2, 6, 6))
    dw, pw = rng.standard_normal((3, 1, 3, 3)), rng.standard_normal((2, 3))
    assert groupconv.separable_conv(x, dw, pw, padding=1, out=out) is out
    assert_matches_reference(out, reference.separable_conv(x, dw, pw, padding=1))


def test_array_likes_are_accepted():
    y = groupconv.conv([[[1, 2, 3, 4]]], [[[1, 1]]], [0.5])
    np.testing.assert_array_equal(y, [[[3.5, 5.5, 7.5]]])


def test_large_kernel_and_prime_sizes(rng):
    x = rng.standard_normal((1, 2, 13, 17))
    w = rng.standard_normal((2, 1, 11, 7))
    kw = dict(groups=2, padding="same", padding_mode="symmetric")
    assert_matches_reference(groupconv.conv(x, w, **kw), reference.conv(x, w, **kw))


# The builds specialised for common kernel sizes unroll the taps on interior
# pixels and fall back to per-tap loops on the borders: test both regions,
# inputs with no interior at all, strides and dilations.
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("size", [3, 7])
@pytest.mark.parametrize("dtype", ["float32", "float64"])  # unrolled, generic
def test_unrolled_kernel_sizes(rng, layout, size, dtype):
    from groupconv.cpu.direct import UNROLLED_SIZES

    assert (size, size) in UNROLLED_SIZES
    for c_in, c_out, groups in [(6, 6, 6), (3, 6, 3), (4, 6, 2)]:
        for spatial, stride, dilation, padding in [
            ((12, 11), 1, 1, "same"),
            ((13, 9), 2, 1, 1),
            ((17, 16), 1, 2, [(1, 3), (2, 0)]),
            ((size + 1, size), 1, 1, 0),
            ((4, 5), 1, 1, size // 2),
        ]:
            x = make_input(rng, 2, c_in, spatial, layout, dtype)
            w = rng.standard_normal((c_out, c_in // groups, size, size)).astype(dtype)
            b = rng.standard_normal(c_out).astype(dtype)
            kw = dict(stride=stride, dilation=dilation, padding=padding, groups=groups,
                      layout=layout)
            try:
                want = reference.conv(x, w, b, **kw)
            except ValueError:
                continue
            scale = (c_in // groups) * size * size * 4.0
            assert_matches_reference(groupconv.conv(x, w, b, **kw), want, scale=scale)
        # 3-D data with a depth-1 kernel and depth padding: some planes are all padding.
        x = make_input(rng, 1, c_in, (3, 11, 10), layout, dtype)
        w = rng.standard_normal((c_out, c_in // groups, 1, size, size)).astype(dtype)
        kw = dict(padding=[(1, 2), (size // 2, size // 2), (size // 2, size // 2)],
                  groups=groups, layout=layout)
        assert_matches_reference(groupconv.conv(x, w, **kw), reference.conv(x, w, **kw),
                                 scale=(c_in // groups) * size * size * 4.0)


def test_auto_picks_winograd_or_gemm_for_dense_and_direct_for_depthwise():
    from groupconv._dispatch import choose_algorithm
    from groupconv._shapes import spec_from_shapes

    assert choose_algorithm(spec_from_shapes((1, 64, 8, 8), (64, 64, 3, 3))) == "winograd"
    assert choose_algorithm(spec_from_shapes((1, 64, 8, 8), (64, 64, 5, 5))) == "gemm"
    assert choose_algorithm(spec_from_shapes((1, 144, 8, 8), (24, 144, 1, 1))) == "gemm"
    assert choose_algorithm(spec_from_shapes((1, 64, 8, 8), (64, 1, 3, 3), groups=64)) == "direct"
    assert choose_algorithm(spec_from_shapes((1, 128, 8, 8), (128, 4, 3, 3), groups=32)) == "direct"
    assert choose_algorithm(spec_from_shapes((1, 64, 8, 8), (64, 64, 3, 3),
                                             algorithm="direct")) == "direct"


# Depthwise channels_last with multiplier 1 has its own register-blocked
# kernel (cpu/depthwise_cl.py): blocks of PIXEL_BLOCK pixels, a zero-filled
# window where a block crosses the padding, an overlapping last block. Test
# output widths around the block size, the three tap tilings (3x3 in one
# pass, 7x7 per row, 5x5 per tap), strides, dilations and lopsided padding.
@pytest.mark.parametrize("size", [3, 5, 7])
def test_depthwise_channels_last_blocks(rng, size):
    from groupconv.cpu.depthwise_cl import PIXEL_BLOCK

    for width, stride, dilation, padding in [
        (PIXEL_BLOCK, 1, 1, "same"),
        (PIXEL_BLOCK + 1, 1, 1, "same"),
        (2 * PIXEL_BLOCK + 3, 2, 1, size // 2),
        (3 * PIXEL_BLOCK + 2, 1, 2, [(size - 1, 0), (0, size)]),
        (size + PIXEL_BLOCK + 1, 3, 1, 0),
    ]:
        x = make_input(rng, 2, 19, (width + 2, width), "channels_last", np.float32)
        w = rng.standard_normal((19, 1, size, size)).astype(np.float32)
        b = rng.standard_normal(19).astype(np.float32)
        kw = dict(groups=19, stride=stride, dilation=dilation, padding=padding,
                  layout="channels_last")
        try:
            want = reference.conv(x, w, b, **kw)
        except ValueError:
            continue
        assert_matches_reference(groupconv.conv(x, w, b, **kw), want, scale=size * size * 4.0)


def test_depthwise_channels_last_nan_stays_local(rng):
    # Blocks read whole windows and the last block overlaps its neighbour: a
    # NaN must still reach exactly the outputs whose taps cover it.
    x = make_input(rng, 2, 16, (9, 9), "channels_last", np.float32)
    x[1, 4, 8, 3] = np.nan
    x[0, 0, 0, 5] = np.inf
    w = rng.standard_normal((16, 1, 3, 3)).astype(np.float32)
    got = groupconv.conv(x, w, groups=16, padding=1, layout="channels_last")
    want = reference.conv(x, w, groups=16, padding=1, layout="channels_last")
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    finite = np.isfinite(want)
    assert_matches_reference(got[finite], want[finite], scale=36.0)


def check_depthwise_channels_first(rng, c_in, multiplier, spatial, size, nan_column,
                                   kernel=None, **kw):
    """A float32 channels_first depthwise layer whose input holds one NaN, against the
    reference: NaNs in the same places, the other values within tolerance. ``kernel``,
    when given, is the CPU kernel the call must be routed to."""
    from groupconv._spec import conv_spec
    from groupconv.cpu.direct import direct_arguments

    x = make_input(rng, 2, c_in, spatial, "channels_first", np.float32)
    x[1, 0, spatial[0] // 2, nan_column] = np.nan
    w = rng.standard_normal((c_in * multiplier, 1, size, size)).astype(np.float32)
    b = rng.standard_normal(c_in * multiplier).astype(np.float32)
    kw = dict(groups=c_in, **kw)
    if kernel is not None:
        assert direct_arguments(conv_spec(x, w, b, **kw))[0] is kernel
    got = groupconv.conv(x, w, b, **kw)
    want = reference.conv(x, w, b, **kw)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    finite = ~np.isnan(want)
    assert_matches_reference(got[finite], want[finite], scale=size * size * 4.0)


# Depthwise 3x3 channels_first at stride 2 (float32) reads its stride-2
# columns as the even and odd lanes of vector pairs (cpu/depthwise_cf.py):
# widths around a vector's 16 outputs, multipliers, every padding rule, a
# plane smaller than a vector, and a NaN that stays where it belongs.
def test_depthwise_3x3_stride2_channels_first(rng):
    from groupconv.cpu import depthwise_cf

    for c_in, multiplier, spatial, padding in [
        (3, 1, (11, 13), 1),
        (2, 2, (12, 40), 1),
        (2, 1, (7, 33), [(0, 2), (2, 0)]),
        (1, 1, (3, 3), 0),
        (2, 1, (9, 64), "same"),
        (1, 3, (5, 65), "valid"),
    ]:
        check_depthwise_channels_first(rng, c_in, multiplier, spatial, 3, 1,
                                       depthwise_cf.depthwise_3x3_s2_channels_first,
                                       stride=2, padding=padding)


# Depthwise 3x3 and 7x7 channels_first (float32, stride 1, dilation 1 along H) run in
# register blocks of 4 output rows x 16 flat outputs (cpu/depthwise_cf.py):
# heights around and under a block, widths around and under a vector, a
# multiplier, dilation along W, lopsided padding, and a NaN that stays put.
# Outputs at least 4 x 16 are stored in place, with a last block and last
# vectors that overlap their neighbours (13 x 17, 11 x 33, exactly 4 x 16);
# outputs narrower than 16 read the input straight in blocks of 7 or 4 rows
# (the cuts 7 + 7, 7 + 4, 4 + 4, 4 x 4 and a plane shorter than a block),
# with whole-vector stores that span several rows of a 3-wide plane, padding
# wider than the kernel, and taps whose columns all lie on the padding.
@pytest.mark.parametrize("size", [3, 7])
def test_depthwise_row_blocks_channels_first(rng, size):
    from groupconv.cpu import depthwise_cf

    for c_in, multiplier, spatial, dilation, padding in [
        (3, 1, (13, 17), 1, size // 2),
        (2, 2, (3, 40), 1, size // 2),
        (1, 1, (8, 9), (1, 2), "same"),
        (2, 1, (11, 33), 1, [(size - 1, 0), (0, size - 2)]),
        (1, 1, (size, size), 1, "valid"),
        (2, 1, (4, 16), 1, size // 2),
        (1, 2, (6, 17 - size), 1, size // 2),
        (2, 1, (14, 14), 1, size // 2),
        (1, 1, (10, 15), 1, size // 2),
        (1, 2, (8, 8), 1, size // 2),
        (1, 1, (16, 3), 1, size // 2),
        (2, 1, (5, 4), 1, [(size, 1), (size + 2, 0)]),
        (1, 1, (9, 2), (1, 3), [(1, size - 1), (size + 5, size)]),
    ]:
        check_depthwise_channels_first(rng, c_in, multiplier, spatial, size, 1,
                                       depthwise_cf.depthwise_rows_channels_first,
                                       dilation=dilation, padding=padding)


def test_narrow_plane_block_cut():
    # Against every cut into blocks of 7 and 4 rows: the fewest rows computed,
    # then the fewest blocks; 7x7 kernels take blocks of 4 only.
    from groupconv.cpu.depthwise_cf import narrow_blocks

    for h_out in range(1, 40):
        cuts = [(7 * a + 4 * b, a + b, a) for a in range(h_out // 7 + 2)
                for b in range(h_out // 4 + 2) if 7 * a + 4 * b >= h_out]
        assert narrow_blocks(h_out, 3) == min(cuts)[2], h_out
        assert narrow_blocks(h_out, 7) == 0
    assert [narrow_blocks(h, 3) for h in (7, 8, 10, 14)] == [1, 0, 1, 2]


def test_narrow_planes_write_nothing_past_the_output(rng):
    # Whole-vector stores of 16 lanes write past a row of a narrow plane; the
    # last rows are masked, so nothing lands past the output (or before it).
    x = make_input(rng, 2, 3, (6, 5), "channels_first", np.float32)
    w = rng.standard_normal((3, 1, 3, 3)).astype(np.float32)
    size = 2 * 3 * 6 * 5
    store = np.full(size + 48, -7.0, np.float32)
    out = store[16:16 + size].reshape(2, 3, 6, 5)
    groupconv.conv(x, w, groups=3, padding=1, out=out)
    assert_matches_reference(out, reference.conv(x, w, groups=3, padding=1), scale=36.0)
    np.testing.assert_array_equal(store[:16], -7.0)
    np.testing.assert_array_equal(store[16 + size:], -7.0)


# Depthwise channels_first at unit stride copies each plane into a zero-padded
# buffer and runs one flat loop over it (cpu/depthwise_cf.py): test
# multipliers, dilations, lopsided padding, no padding, padding wider than
# the kernel, planes smaller than the kernel, and that a NaN stays where it
# belongs.
@pytest.mark.parametrize("size", [3, 5, 7])
def test_depthwise_channels_first_flat(rng, size):
    for c_in, multiplier, spatial, dilation, padding in [
        (3, 1, (9, 11), 1, "same"),
        (2, 3, (7, 6), 1, "same"),
        (2, 1, (12, 13), 2, "same"),
        (2, 1, (size + 2, 2 * size), 1, [(size - 1, 0), (size // 2, size // 2)]),
        (1, 2, (2, 3), 1, "same"),
        (2, 1, (size + 3, size + 1), 1, "valid"),
        (1, 2, (6, 5), 1, [(size + 1, 0), (0, size + 2)]),
    ]:
        check_depthwise_channels_first(rng, c_in, multiplier, spatial, size, 0,
                                       dilation=dilation, padding=padding)


# Outputs of STREAM_BYTES or more, 64-byte aligned, are written past the
# caches (non-temporal stores) by the depthwise channels_last kernels
# (cpu/_simd.py, streams): the values match the reference and, bit for bit,
# those written with plain stores into a misaligned out= array.
@pytest.mark.parametrize("size, stride", [(3, 1), (3, 2), (7, 1)])
def test_streamed_outputs_channels_last(rng, size, stride):
    from groupconv._spec import conv_spec
    from groupconv.cpu import depthwise3x3_cl, grouped_cl
    from groupconv.cpu._common import aligned_empty
    from groupconv.cpu._simd import STREAM_BYTES
    from groupconv.cpu.direct import direct_arguments

    channels = 64
    side = int(np.ceil(np.sqrt(STREAM_BYTES / 4 / channels))) + 2
    x = make_input(rng, 1, channels, (side * stride, side * stride), "channels_last",
                   np.float32)
    w = rng.standard_normal((channels, 1, size, size)).astype(np.float32)
    b = rng.standard_normal(channels).astype(np.float32)
    kw = dict(groups=channels, stride=stride, padding=size // 2, layout="channels_last")
    kernel = direct_arguments(conv_spec(x, w, b, **kw))[0]
    want_kernel = (depthwise3x3_cl.depthwise_3x3_channels_last if size == 3
                   else grouped_cl.depthwise_window_channels_last)
    assert kernel is want_kernel
    got = groupconv.conv(x, w, b, **kw)
    assert got.nbytes >= STREAM_BYTES and got.ctypes.data % 64 == 0
    misaligned = aligned_empty((got.size + 1,), np.float32)[1:].reshape(got.shape)
    groupconv.conv(x, w, b, out=misaligned, **kw)
    np.testing.assert_array_equal(got, misaligned)
    assert_matches_reference(got, reference.conv(x, w, b, **kw), scale=size * size * 4.0)
