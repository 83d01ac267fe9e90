"""The explicit vector intrinsics (cpu/_simd.py) against NumPy."""

import numba
import numpy as np
import pytest

from groupconv.cpu._common import U, aligned_empty
from groupconv.cpu._simd import (
    LANES,
    STREAM_BYTES,
    copy_run,
    even16,
    fma8,
    fma16,
    load8,
    load16,
    load16_first,
    load16_window,
    odd16,
    splat8,
    splat16,
    store8_first,
    store16,
    store16_first,
    store16_stream,
    stream_fence,
    streams,
)


@numba.njit(cache=True)
def _axpy_blocks(a, x, y, out):
    # out[i:i+16] = a * x[i:i+16] + y[i:i+16] for each block of 16.
    scale = splat16(a)
    for i in range(0, x.size, LANES):
        store16(out, i, fma16(scale, load16(x, i), load16(y, i)))


def test_load_fma_store_match_numpy(rng):
    x = rng.standard_normal(4 * LANES).astype(np.float32)
    y = rng.standard_normal(4 * LANES).astype(np.float32)
    out = np.zeros_like(x)
    _axpy_blocks(np.float32(1.5), x, y, out)
    # One rounding per lane: the fused product-sum, computed here in float64.
    want = (np.float64(1.5) * x.astype(np.float64) + y).astype(np.float32)
    np.testing.assert_array_equal(out, want)


@numba.njit(cache=True)
def _copy_block(src, dst, at):
    store16(dst, at, load16(src, 0))


def test_unaligned_offsets_and_the_array_end(rng):
    src = rng.standard_normal(LANES).astype(np.float32)
    dst = np.zeros(LANES + 3, np.float32)
    _copy_block(src, dst, 3)
    np.testing.assert_array_equal(dst[3:], src)
    assert (dst[:3] == 0).all()


@pytest.mark.skipif(not numba.config.BOUNDSCHECK, reason="checked only under NUMBA_BOUNDSCHECK=1")
def test_out_of_bounds_vector_access_raises():
    with pytest.raises(IndexError):
        _copy_block(np.zeros(LANES, np.float32), np.zeros(LANES + 3, np.float32), 4)


@numba.njit(cache=True)
def _copy_first(src, dst, at, count):
    store16_first(dst, at, load16(src, 0), count)


@pytest.mark.parametrize("count", [1, 7, 15, 16])
def test_masked_store_writes_only_the_first_lanes(rng, count):
    src = rng.standard_normal(LANES).astype(np.float32)
    dst = np.full(2 + count + 5, -1.0, np.float32)
    _copy_first(src, dst, 2, count)
    np.testing.assert_array_equal(dst[2:2 + count], src[:count])
    assert (dst[:2] == -1).all() and (dst[2 + count:] == -1).all()
    # Ending exactly at the end of the array.
    tail = np.full(count, -1.0, np.float32)
    _copy_first(src, tail, 0, count)
    np.testing.assert_array_equal(tail, src[:count])


@pytest.mark.skipif(not numba.config.BOUNDSCHECK, reason="checked only under NUMBA_BOUNDSCHECK=1")
def test_out_of_bounds_masked_store_raises():
    with pytest.raises(IndexError):
        _copy_first(np.zeros(LANES, np.float32), np.zeros(8, np.float32), 2, 7)


@numba.njit(cache=True)
def _copy_run(dst, d0, src, s0, count):
    copy_run(dst, U(d0), src, U(s0), U(count))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64])
@pytest.mark.parametrize("count", [0, 5, LANES, LANES + 1, 2 * LANES - 1, 2 * LANES + 7])
def test_copy_run_copies_exactly_its_run(rng, dtype, count):
    # float32 goes 16 values at a time, the last 16 overlapping the vector
    # before (or one masked copy under 16); other dtypes by a loop.
    src = rng.standard_normal(count + 9).astype(dtype)
    dst = np.full(count + 20, -7.0, dtype=dtype)
    _copy_run(dst, 11, src, 3, count)
    np.testing.assert_array_equal(dst[11:11 + count], src[3:3 + count])
    assert (dst[:11] == -7).all() and (dst[11 + count:] == -7).all()


@numba.njit(cache=True)
def _load_first(src, at, count, dst):
    store16(dst, 0, load16_first(src, at, count))


@pytest.mark.parametrize("count", [1, 7, LANES])
def test_load16_first_reads_count_values_and_zeros_the_rest(rng, count):
    # The run ends at the array's end: no read past it (checked under NUMBA_BOUNDSCHECK=1).
    src = rng.standard_normal(20).astype(np.float32)
    dst = np.full(LANES, -1.0, dtype=np.float32)
    _load_first(src, 20 - count, count, dst)
    np.testing.assert_array_equal(dst[:count], src[20 - count:])
    assert (dst[count:] == 0).all()


@numba.njit(cache=True)
def _load_window(first, first_at, second, second_at, from_first, shift, lo, hi, dst):
    store16(dst, 0, load16_window(first, first_at, second, second_at, from_first, shift, lo,
                                  hi))


@pytest.mark.parametrize("from_first", [True, False])
@pytest.mark.parametrize("shift, lo, hi", [(-2, 2, 9), (0, 0, 16), (3, 0, 5), (-1, 5, 3),
                                           (2, -4, 40)])
def test_load16_window_reads_the_window_of_the_chosen_array(rng, from_first, shift, lo, hi):
    # Lane j of the window holds array[at + shift + j]; the other lanes are zeros
    # and are not read: the window may start before the array (a negative
    # shift) or end at its end (checked under NUMBA_BOUNDSCHECK=1); lo and hi
    # are clamped to 0..16; an empty window reads nothing.
    first = rng.standard_normal(20).astype(np.float32)
    second = rng.standard_normal(LANES + 4).astype(np.float32)
    dst = np.full(LANES, -1.0, dtype=np.float32)
    array, at = (first, 2) if from_first else (second, 2)
    _load_window(first, 2, second, 2, from_first, shift, lo, hi, dst)
    lo, hi = min(max(lo, 0), LANES), min(max(hi, 0), LANES)
    want = np.zeros(LANES, np.float32)
    for j in range(lo, hi):
        want[j] = array[at + shift + j]
    np.testing.assert_array_equal(dst, want)


@pytest.mark.skipif(not numba.config.BOUNDSCHECK, reason="checked only under NUMBA_BOUNDSCHECK=1")
def test_out_of_bounds_masked_load_raises():
    with pytest.raises(IndexError):
        _load_first(np.zeros(8, np.float32), 2, 7, np.zeros(LANES, np.float32))


@numba.njit(cache=True)
def _even_odd(src, even, odd):
    a, b = load16(src, 0), load16(src, LANES)
    store16(even, 0, even16(a, b))
    store16(odd, 0, odd16(a, b))


def test_even16_and_odd16_split_a_pair_of_vectors():
    src = np.arange(2 * LANES, dtype=np.float32)
    even, odd = np.empty(LANES, np.float32), np.empty(LANES, np.float32)
    _even_odd(src, even, odd)
    np.testing.assert_array_equal(even, src[0::2])
    np.testing.assert_array_equal(odd, src[1::2])


@numba.njit(cache=True)
def _stream_blocks(x, out):
    # out[i:i+16] = x[i:i+16] past the caches, then the fence.
    for i in range(0, x.size, LANES):
        store16_stream(out, i, load16(x, i))
    stream_fence()


@numba.njit(cache=True)
def _streams(array, pitch):
    return streams(array, pitch)


def test_streaming_stores_write_the_values(rng):
    x = rng.standard_normal(8 * LANES).astype(np.float32)
    out = aligned_empty(x.shape, np.float32)
    _stream_blocks(x, out)
    np.testing.assert_array_equal(out, x)


def test_streams_only_on_large_aligned_arrays_with_whole_vector_pitches():
    count = STREAM_BYTES // 4 + LANES
    big = aligned_empty((count,), np.float32)
    assert _streams(big, 96)
    assert not _streams(big, 100)  # a pitch that is not whole vectors
    assert not _streams(aligned_empty((count + 1,), np.float32)[1:], 96)  # misaligned
    assert not _streams(aligned_empty((LANES * 4,), np.float32), 96)  # small: stays cached


@numba.njit(cache=True)
def _half_axpy(a, x, y, out, count):
    # out[:count] = a * x[:8] + y[:8] on half vectors.
    store8_first(out, 0, fma8(splat8(a), load8(x, 0), load8(y, 0)), count)


@pytest.mark.parametrize("count", [3, 8])
def test_half_vectors_match_numpy(rng, count):
    x = rng.standard_normal(8).astype(np.float32)
    y = rng.standard_normal(8).astype(np.float32)
    out = np.full(10, -7.0, np.float32)
    _half_axpy(np.float32(0.5), x, y, out, count)
    want = (np.float64(0.5) * x.astype(np.float64) + y).astype(np.float32)
    np.testing.assert_array_equal(out[:count], want[:count])
    assert (out[count:] == -7.0).all()  # the masked lanes are not written
