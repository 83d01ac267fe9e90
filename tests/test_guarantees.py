"""Determinism, 64-bit index arithmetic and memory bounds (docs: Guarantees)."""

import tracemalloc

import numba
import numpy as np
import pytest

import groupconv
from groupconv._spec import ALGORITHMS

LAYOUTS = ["channels_first", "channels_last"]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", ["float32", "complex128"])
@pytest.mark.parametrize("groups,c_out", [(1, 8), (4, 8), (8, 16)])
def test_bitwise_identical_across_runs_and_thread_counts(rng, algorithm, layout, dtype, groups,
                                                         c_out):
    shape = (3, 8, 17, 13) if layout == "channels_first" else (3, 17, 13, 8)
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal((c_out, 8 // groups, 3, 3)).astype(dtype)
    kw = dict(groups=groups, padding="same", layout=layout, algorithm=algorithm)
    if algorithm == "winograd" and dtype == "complex128":
        with pytest.raises(ValueError, match="float32"):
            groupconv.conv(x, w, **kw)
        return
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        single = groupconv.conv(x, w, **kw)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = [groupconv.conv(x, w, **kw) for _ in range(3)]
    finally:
        numba.set_num_threads(threads)
    for result in many:
        assert result.tobytes() == single.tobytes()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_index_arithmetic_is_64_bit(layout):
    # Positions beyond 2**33 with a 3-element input: stride, dilation and
    # padding push every index past 32 bits without a large allocation.
    # By hand: the padded input is 2**33 zeros, [1, 2, 3], 2**33 zeros
    # (length 2**34 + 3); taps sit at o*S and o*S + D with S = 2**33,
    # D = 2**33 + 1, so 2 outputs:
    #   o=0: padded[0] = 0 and padded[2**33 + 1] = x[1] = 2   -> 100 * 2 = 200
    #   o=1: padded[2**33] = x[0] = 1 and padded[2**34 + 1] = 0 -> 10 * 1 = 10
    x = np.array([1.0, 2.0, 3.0]).reshape(1, 1, 3)
    w = np.array([10.0, 100.0]).reshape(1, 1, 2)
    y = groupconv.conv(x if layout == "channels_first" else x.reshape(1, 3, 1), w,
                       stride=2**33, dilation=2**33 + 1, padding=2**33, layout=layout)
    np.testing.assert_array_equal(y.ravel(), [200.0, 10.0])


def _peak_bytes(function):
    function()  # compile and warm up outside the measurement
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        function()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


SLACK = 256 * 1024  # Python objects, shapes, specs and np.pad bookkeeping; a copy is MBs


@pytest.mark.parametrize("layout", LAYOUTS)
def test_depthwise_peak_memory_is_the_output(rng, layout):
    shape = (4, 64, 56, 56) if layout == "channels_first" else (4, 56, 56, 64)
    x = rng.standard_normal(shape, dtype=np.float32)
    w = rng.standard_normal((64, 1, 3, 3), dtype=np.float32)
    output_bytes = x.nbytes
    peak = _peak_bytes(lambda: groupconv.depthwise_conv(x, w, padding=1, layout=layout))
    assert peak <= output_bytes + SLACK, (peak, output_bytes)


def test_padding_mode_workspace_is_one_padded_input(rng):
    x = rng.standard_normal((4, 32, 64, 64), dtype=np.float32)
    w = rng.standard_normal((32, 1, 5, 5), dtype=np.float32)
    padded_bytes = 4 * 32 * 68 * 68 * 4
    peak = _peak_bytes(lambda: groupconv.depthwise_conv(x, w, padding=2,
                                                        padding_mode="reflect"))
    assert peak <= x.nbytes + padded_bytes + SLACK, (peak, x.nbytes + padded_bytes)


def test_separable_peak_memory(rng):
    x = rng.standard_normal((4, 32, 56, 56), dtype=np.float32)
    dw = rng.standard_normal((32, 1, 3, 3), dtype=np.float32)
    pw = rng.standard_normal((16, 32), dtype=np.float32)
    intermediate = x.nbytes
    output = x.nbytes // 2
    # Fused (the default): the depthwise result never exists whole, only one
    # tile of it per running task (each under TILE_BYTES, and together at most
    # half of it: there are at least two tasks per thread).
    from groupconv.cpu.separable import TILE_BYTES

    tiles = min(numba.get_num_threads() * TILE_BYTES, intermediate // 2)
    fused = _peak_bytes(lambda: groupconv.separable_conv(x, dw, pw, padding=1))
    assert fused <= output + tiles + SLACK, (fused, output, tiles)
    assert fused < output + intermediate
    # Two steps: the intermediate, then the output.
    steps = _peak_bytes(lambda: groupconv.separable_conv(x, dw, pw, padding=1,
                                                         algorithm="direct"))
    assert steps <= intermediate + output + SLACK, (steps, intermediate + output)
    assert steps > intermediate


def test_out_argument_allocates_nothing_large(rng):
    x = rng.standard_normal((4, 64, 56, 56), dtype=np.float32)
    w = rng.standard_normal((64, 1, 3, 3), dtype=np.float32)
    out = np.empty_like(x)
    peak = _peak_bytes(lambda: groupconv.depthwise_conv(x, w, padding=1, out=out))
    assert peak <= SLACK, peak


@pytest.mark.parametrize("layout", LAYOUTS)
def test_gemm_peak_memory_is_output_plus_bounded_tiles(rng, layout):
    from groupconv.cpu.gemm import WORKSPACE_BYTES

    shape = (4, 64, 56, 56) if layout == "channels_first" else (4, 56, 56, 64)
    x = rng.standard_normal(shape, dtype=np.float32)
    w = rng.standard_normal((64, 64, 3, 3), dtype=np.float32)
    output_bytes = x.nbytes
    im2col_whole = 4 * 56 * 56 * 64 * 9 * 4
    peak = _peak_bytes(lambda: groupconv.conv(x, w, padding=1, layout=layout,
                                              algorithm="gemm"))
    # One tile's workspace per running thread, never the whole im2col matrix.
    workspace = numba.get_num_threads() * WORKSPACE_BYTES
    assert peak <= output_bytes + workspace + SLACK, (peak, output_bytes)
    assert peak < im2col_whole
