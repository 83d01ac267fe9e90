"""The GEMM path (cpu/gemm.py) and its BLAS calls (cpu/_blas.py) against the reference."""

import numpy as np
import pytest
from conftest import assert_matches_reference, random_array

import groupconv
from groupconv import reference
from groupconv.cpu import _blas, gemm

LAYOUTS = ["channels_first", "channels_last"]
DTYPES = [np.float32, np.float64, np.complex64, np.complex128]


def make_input(rng, n, c, spatial, layout, dtype=np.float64):
    shape = (n, c, *spatial) if layout == "channels_first" else (n, *spatial, c)
    return random_array(rng, shape, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_blas_gemm_with_leading_dimensions_and_accumulation(rng, dtype):
    # Column-major C (3 x 4, ld 6) = A (3 x 5, ld 7) @ B (5 x 4, ld 5), inside larger arrays.
    a = random_array(rng, 7 * 5 + 2, dtype)
    b = random_array(rng, 5 * 4 + 1, dtype)
    c = random_array(rng, 6 * 4 + 3, dtype)
    a_mat = a[2:2 + 35].reshape(5, 7).T[:3]          # columns 7 apart
    b_mat = b[1:1 + 20].reshape(4, 5).T
    before = c.copy()
    c_mat = c[3:3 + 24].reshape(4, 6).T[:3]
    want = c_mat + a_mat @ b_mat
    _blas.gemm(dtype, 3, 4, 5, a, 2, 7, b, 1, 5, c, 3, 6, True)
    assert_matches_reference(c[3:3 + 24].reshape(4, 6).T[:3], want)
    # Rows 3..5 of each column of C are outside the 3 x 4 matrix: untouched.
    untouched = np.ones(c.size, bool)
    for col in range(4):
        untouched[3 + 6 * col:3 + 6 * col + 3] = False
    np.testing.assert_array_equal(c[untouched], before[untouched])
    _blas.gemm(dtype, 3, 4, 5, a, 2, 7, b, 1, 5, c, 3, 6, False)
    assert_matches_reference(c[3:3 + 24].reshape(4, 6).T[:3], a_mat @ b_mat)


def test_blas_gemm_refuses_sizes_beyond_32_bits():
    a = np.zeros(1, np.float32)
    with pytest.raises(OverflowError, match="32-bit"):
        _blas.gemm(np.float32, 1, 1, 1, a, 0, 2**31, a, 0, 1, a, 0, 1, False)


# Stride 1 on 1-D and 2-D data takes the shifted views (a tall image of the
# whole batch, tiles of output rows); other strides and 3-D data take im2col.
# A tiny workspace makes tiles of one or two rows that start and end inside
# different images, and short last tiles.
@pytest.mark.parametrize("workspace", [1, 3000, 2**20])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_gemm_tiles_across_images(rng, layout, workspace, monkeypatch):
    monkeypatch.setattr(gemm, "WORKSPACE_BYTES", workspace)
    for spatial, kernel, stride, dilation, padding, mode in [
        ((9, 7), (3, 3), 1, 1, 1, "zeros"),
        ((9, 7), (3, 3), 1, 2, [(2, 0), (0, 3)], "zeros"),
        ((6, 8), (2, 3), 1, 1, "same", "reflect"),
        ((5, 6), (3, 1), 1, 1, 0, "zeros"),
        ((5, 6), (1, 1), 1, 1, 0, "zeros"),
        ((5, 6), (1, 1), 1, 1, 1, "circular"),
        ((11,), (3,), 1, 3, "causal", "zeros"),
        ((11,), (1,), 1, 1, 0, "zeros"),
        ((9, 7), (3, 3), 2, 1, 1, "zeros"),
        ((9, 7), (2, 3), 2, 1, "same", "replicate"),
        ((4, 5, 6), (2, 3, 3), 1, 1, 1, "zeros"),
    ]:
        x = make_input(rng, 3, 6, spatial, layout)
        w = rng.standard_normal((4, 3) + kernel)
        b = rng.standard_normal(4)
        kw = dict(groups=2, stride=stride, dilation=dilation, padding=padding,
                  padding_mode=mode, layout=layout)
        want = reference.conv(x, w, b, **kw)
        assert_matches_reference(groupconv.conv(x, w, b, algorithm="gemm", **kw), want)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_gemm_dtypes(rng, layout, dtype):
    x = make_input(rng, 2, 8, (6, 7), layout, dtype)
    w = random_array(rng, (8, 4, 3, 3), dtype)
    for stride in (1, 2):
        kw = dict(groups=2, stride=stride, padding=1, layout=layout)
        got = groupconv.conv(x, w, algorithm="gemm", **kw)
        assert got.dtype == dtype
        assert_matches_reference(got, reference.conv(x, w, **kw), scale=4 * 9 * 4.0)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_gemm_touches_nothing_outside_its_arrays(rng, layout):
    # The products read and write through pointers into the arrays: the input
    # and the output sit inside larger buffers whose borders are NaN (a read
    # outside the input would spread NaN into the result) or a sentinel (a
    # write outside the output would change it). Unpadded 1x1 kernels read
    # the input and write the output in place; the rest write through tiles.
    for kernel, padding, stride in [((1, 1), 0, 1), ((3, 1), 0, 1), ((3, 3), 1, 1),
                                    ((3, 3), 1, 2)]:
        shape = (3, 6, 7, 5) if layout == "channels_first" else (3, 7, 5, 6)
        x_store = np.full((5, *shape[1:]), np.nan)
        x_store[1:4] = rng.standard_normal(shape)
        x = x_store[1:4]
        w = rng.standard_normal((4, 6) + kernel)
        kw = dict(padding=padding, stride=stride, layout=layout)
        want = reference.conv(x, w, **kw)
        out_store = np.full((5, *want.shape[1:]), 12345.0)
        out = out_store[1:4]
        groupconv.conv(x, w, out=out, algorithm="gemm", **kw)
        assert_matches_reference(out, want)
        assert (out_store[0] == 12345.0).all() and (out_store[4] == 12345.0).all()


def test_gemm_beyond_32_bit_blas_sizes_takes_the_direct_kernels(rng):
    # A padded plane of 2**31 + 2 columns: too large for BLAS's int leading
    # dimensions, so algorithm="gemm" computes it with the direct kernels
    # (stride 2**30 keeps the output small).
    x = rng.standard_normal((1, 2, 5))
    w = rng.standard_normal((3, 2, 2))
    kw = dict(padding=[(2**30, 2**30)], stride=2**30)
    assert not gemm._fits_blas(groupconv._spec.conv_spec(x, w, None, **kw))
    # By hand: output positions 0, 1, 2 read padded columns (0, 1), (2**30,
    # 2**30 + 1) and (2**31, 2**31 + 1); only the middle pair is data.
    want = np.zeros((1, 3, 3))
    want[0, :, 1] = np.einsum("oct,ct->o", w, x[0, :, :2])
    assert_matches_reference(groupconv.conv(x, w, algorithm="gemm", **kw), want)
