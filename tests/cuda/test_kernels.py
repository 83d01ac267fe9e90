"""Every GPU kernel and option against groupconv.reference, under the CUDA simulator."""

import numpy as np
import pytest
from simhelpers import assert_close, channels_last, host, random_array, to_device

import groupconv
from groupconv import reference
from groupconv.cuda import _launch

MODES = ["zeros", "reflect", "replicate", "circular", "symmetric"]


def _input(rng, batch, channels, spatial, layout, dtype="float64"):
    x = random_array(rng, (batch, channels, *spatial), dtype)
    return channels_last(x) if layout == "channels_last" else x


# rank, C_in, C_out, groups, spatial, kernel, options
GROUPED_CASES = [
    (1, 4, 6, 2, (9,), (3,), dict(stride=2, padding=[(2, 1)], dilation=2)),
    (1, 3, 3, 1, (5,), (1,), dict()),
    (2, 4, 4, 4, (6, 7), (3, 3), dict(padding="same")),
    (2, 4, 8, 2, (7, 6), (2, 3), dict(stride=(2, 1), padding=((1, 0), (0, 2)))),
    (2, 6, 4, 2, (5, 5), (3, 3), dict(padding="full", dilation=(1, 2))),
    (2, 2, 4, 2, (6, 6), (3, 3), dict(padding="same_lower", stride=2)),
    (3, 2, 4, 2, (4, 5, 4), (2, 3, 2), dict(padding=1, stride=(1, 2, 1))),
    (3, 4, 2, 1, (3, 4, 4), (1, 2, 2), dict(padding="causal")),
]


@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
@pytest.mark.parametrize("case", GROUPED_CASES, ids=lambda c: f"{c[0]}d-g{c[3]}-{c[6]}")
def test_grouped_direct_kernel(case, layout, rng):
    rank, c_in, c_out, groups, spatial, kernel, options = case
    x = _input(rng, 2, c_in, spatial, layout)
    w = random_array(rng, (c_out, c_in // groups, *kernel))
    b = random_array(rng, (c_out,))
    y = groupconv.conv(to_device(x), w, b, groups=groups, layout=layout, **options)
    assert_close(y, reference.conv(x, w, b, groups=groups, layout=layout, **options))


# spatial, kernel, multiplier, options
DEPTHWISE_CASES = [
    ((11,), (3,), 1, dict(padding="same")),
    ((9,), (4,), 2, dict(stride=2, dilation=2, padding="causal")),
    ((7, 9), (3, 3), 1, dict(padding=1)),
    ((8, 7), (3, 2), 2, dict(stride=2, padding="same")),
    ((6, 6), (5, 5), 1, dict(dilation=(1, 2), padding="full")),
    ((4, 5, 6), (3, 3, 3), 1, dict(padding=1, stride=(1, 1, 2))),
]


@pytest.mark.parametrize("algorithm", ["auto", "direct"])
@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
@pytest.mark.parametrize("case", DEPTHWISE_CASES, ids=lambda c: f"{len(c[0])}d-M{c[2]}-{c[3]}")
def test_depthwise_kernels(case, layout, algorithm, rng):
    # "auto" runs the shared-memory tiled kernel, "direct" the general one.
    spatial, kernel, multiplier, options = case
    c_in = 3
    x = _input(rng, 2, c_in, spatial, layout)
    w = random_array(rng, (c_in * multiplier, 1, *kernel))
    b = random_array(rng, (c_in * multiplier,))
    y = groupconv.depthwise_conv(to_device(x), w, b, layout=layout, algorithm=algorithm,
                                 **options)
    expected = reference.depthwise_conv(x, w, b, layout=layout, **options)
    assert_close(y, expected)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
def test_padding_modes_in_every_kernel(mode, layout, rng):
    # Asymmetric pads up to each mode's limit, so every branch of the index map runs.
    x = _input(rng, 1, 2, (4, 5), layout)
    pads = ((3, 1), (0, 4)) if mode != "reflect" else ((3, 1), (0, 4 - 1))
    options = dict(padding=pads, padding_mode=mode, layout=layout)
    w = random_array(rng, (2, 1, 3, 2))
    expected = reference.depthwise_conv(x, w, **options)
    for algorithm in ("auto", "direct"):
        y = groupconv.depthwise_conv(to_device(x), w, algorithm=algorithm, **options)
        assert_close(y, expected)
    wg = random_array(rng, (4, 2, 2, 3))
    y = groupconv.conv(to_device(x), wg, **options)
    assert_close(y, reference.conv(x, wg, **options))
    pw = random_array(rng, (3, 2))
    y = groupconv.separable_conv(to_device(x), w, pw, **options)
    assert_close(y, reference.separable_conv(x, w, pw, **options))


def test_padding_modes_wider_than_the_input_3d(rng):
    # Padding as wide as the limits allow on a 1-wide and a 2-wide axis.
    x = random_array(rng, (1, 1, 2, 1, 3))
    w = random_array(rng, (1, 1, 2, 1, 2))
    for mode, pads in [("replicate", 5), ("circular", ((2, 2), (1, 1), (3, 3))),
                       ("symmetric", ((2, 2), (1, 1), (3, 3))),
                       ("reflect", ((1, 1), (0, 0), (2, 2)))]:
        y = groupconv.conv(to_device(x), w, padding=pads, padding_mode=mode)
        assert_close(y, reference.conv(x, w, padding=pads, padding_mode=mode))


@pytest.mark.parametrize("dtype", ["float32", "float64", "complex64", "complex128", "float16"])
@pytest.mark.parametrize("algorithm", ["auto", "direct"])
def test_dtypes(dtype, algorithm, rng):
    x = random_array(rng, (2, 4, 6, 5), dtype)
    w = random_array(rng, (4, 1, 3, 3), dtype)
    b = random_array(rng, (4,), dtype)
    y = groupconv.depthwise_conv(to_device(x), to_device(w), to_device(b), padding=1,
                                 algorithm=algorithm)
    assert host(y).dtype == np.dtype(dtype)  # float16 in, float16 out (float32 inside)
    assert_close(y, reference.depthwise_conv(x, w, b, padding=1), dtype)
    wg = random_array(rng, (2, 2, 3, 3), dtype)
    y = groupconv.conv(to_device(x), wg, groups=2, stride=2, algorithm=algorithm,
                       padding="same")
    assert_close(y, reference.conv(x, wg, groups=2, stride=2, padding="same"), dtype)


@pytest.mark.parametrize(
    "x_dtype,w_dtype,result",
    [
        ("float16", "float32", "float32"),   # float16 read directly, float32 result
        ("int8", "float16", "float16"),      # x converted to float32 on the device
        ("int32", "int64", "float64"),       # integers compute in float64
        ("bool", "float32", "float32"),
        ("uint8", "complex64", "complex64"),
        ("float32", "float64", "float64"),   # x converted to float64 on the device
        ("float16", "complex64", "complex64"),
    ],
)
def test_mixed_and_promoted_dtypes(x_dtype, w_dtype, result, rng):
    x = random_array(rng, (1, 2, 5, 4), x_dtype)
    w = random_array(rng, (2, 1, 2, 2), w_dtype)
    for algorithm in ("auto", "direct"):
        y = groupconv.depthwise_conv(to_device(x), w, padding=1, algorithm=algorithm)
        assert host(y).dtype == np.dtype(result)
        assert_close(y, reference.depthwise_conv(x, w, padding=1), result)


@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
@pytest.mark.parametrize(
    "spatial,kernel,multiplier,c_out,options",
    [
        ((10,), (3,), 2, 5, dict(padding="same", stride=2)),
        ((6, 7), (3, 3), 1, 4, dict(padding=1, padding_mode="reflect")),
        ((5, 6), (2, 3), 2, 3, dict(dilation=(2, 1), padding="full")),
        ((3, 4, 4), (2, 2, 2), 1, 3, dict(padding=((1, 0), 0, 1))),
    ],
    ids=["1d", "2d-reflect", "2d-M2-dilated", "3d"],
)
def test_separable_fused_and_unfused(spatial, kernel, multiplier, c_out, options, layout, rng):
    c_in = 3
    x = _input(rng, 2, c_in, spatial, layout)
    dw = random_array(rng, (c_in * multiplier, 1, *kernel))
    pw = random_array(rng, (c_out, c_in * multiplier))
    b = random_array(rng, (c_out,))
    expected = reference.separable_conv(x, dw, pw, b, layout=layout, **options)
    for algorithm in ("auto", "direct"):
        y = groupconv.separable_conv(to_device(x), dw, pw, b, layout=layout,
                                     algorithm=algorithm, **options)
        assert_close(y, expected)
    pw_nd = pw.reshape(pw.shape + (1,) * len(spatial))
    y = groupconv.separable_conv(to_device(x), to_device(dw), to_device(pw_nd), layout=layout,
                                 **options)
    assert_close(y, reference.separable_conv(x, dw, pw, layout=layout, **options))


def test_separable_with_many_channels_crosses_chunks(rng):
    # C_in * M = 40 > one 32-channel chunk; C_out = 9 over several output tiles.
    x = random_array(rng, (1, 20, 4, 3), "float32")
    dw = random_array(rng, (40, 1, 3, 3), "float32")
    pw = random_array(rng, (9, 40), "float32")
    with _launch.configure(threads=8, max_blocks=2):
        for layout in ("channels_first", "channels_last"):
            xx = channels_last(x) if layout == "channels_last" else x
            y = groupconv.separable_conv(to_device(xx), dw, pw, padding=1, layout=layout)
            assert_close(y, reference.separable_conv(xx, dw, pw, padding=1, layout=layout))


@pytest.mark.parametrize("threads,max_blocks", [(1, 1), (7, 2), (64, 1000)])
def test_launch_configurations(threads, max_blocks, rng):
    # One thread, an odd block, and more blocks than work: same results.
    x = random_array(rng, (1, 4, 5, 6), "float32")
    w = random_array(rng, (8, 1, 3, 3), "float32")
    pw = random_array(rng, (3, 8), "float32")
    with _launch.configure(threads=threads, max_blocks=max_blocks):
        for layout in ("channels_first", "channels_last"):
            xx = channels_last(x) if layout == "channels_last" else x
            for algorithm in ("auto", "direct"):
                y = groupconv.depthwise_conv(to_device(xx), w, padding=1, layout=layout,
                                             algorithm=algorithm)
                assert_close(y, reference.depthwise_conv(xx, w, padding=1, layout=layout))
            y = groupconv.separable_conv(to_device(xx), w, pw, layout=layout)
            assert_close(y, reference.separable_conv(xx, w, pw, layout=layout))


def test_depthwise_tile_too_large_for_shared_memory_falls_back(rng, monkeypatch):
    monkeypatch.setattr(_launch, "SHARED_MEMORY_BYTES", 64)
    x = random_array(rng, (1, 2, 6, 6), "float32")
    w = random_array(rng, (2, 1, 5, 5), "float32")
    y = groupconv.depthwise_conv(to_device(x), w, padding=2)
    assert_close(y, reference.depthwise_conv(x, w, padding=2))


def test_unbatched_and_empty_batch(rng):
    x = random_array(rng, (3, 5, 5))
    w = random_array(rng, (3, 1, 3, 3))
    y = groupconv.depthwise_conv(to_device(x), w, padding=1)
    assert host(y).shape == (3, 5, 5)
    assert_close(y, reference.depthwise_conv(x[None], w, padding=1)[0])
    empty = np.zeros((0, 3, 5, 5))
    y = groupconv.depthwise_conv(to_device(empty), w, padding=1)
    assert host(y).shape == (0, 3, 5, 5)
    pw = random_array(rng, (2, 3))
    y = groupconv.separable_conv(to_device(x), w, pw, padding=1)
    assert_close(y, reference.separable_conv(x[None], w, pw, padding=1)[0])


def test_non_contiguous_device_input(rng):
    # A channels-last view of channels-first memory: read in place through its strides.
    base = random_array(rng, (2, 5, 6, 3))
    x = to_device(base)
    view = x.transpose((0, 3, 1, 2))
    w = random_array(rng, (6, 1, 3, 3))
    y = groupconv.depthwise_conv(view, w, padding=1)
    assert_close(y, reference.depthwise_conv(base.transpose(0, 3, 1, 2), w, padding=1))
    y = groupconv.conv(view, random_array(rng, (2, 3, 1, 1)) * 0 + 1)
    assert_close(y, base.transpose(0, 3, 1, 2).sum(axis=1, keepdims=True).repeat(2, axis=1))
