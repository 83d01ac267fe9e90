"""Every malformed argument raises ValueError/TypeError naming the argument."""

import numpy as np
import pytest

import groupconv

X = np.ones((2, 4, 8, 8))
W = np.ones((4, 2, 3, 3))


def call(**overrides):
    args = dict(x=X, weight=W, groups=2)
    args.update(overrides)
    x, weight = args.pop("x"), args.pop("weight")
    return groupconv.conv(x, weight, **args)


@pytest.mark.parametrize(
    "overrides,error,match",
    [
        (dict(groups=3), ValueError, r"groups=3 does not divide C_in=4"),
        (dict(groups=0), ValueError, r"groups must be >= 1, got groups=0"),
        (dict(groups=2.0), TypeError, r"groups must be an integer, got 2.0"),
        (dict(groups=True), TypeError, r"groups must be an integer"),
        (dict(weight=np.ones((3, 2, 3, 3))), ValueError, r"groups=2 does not divide C_out=3"),
        (dict(weight=np.ones((8, 2, 3, 3)), groups=4), ValueError,
         r"weight.shape\[1\] must be C_in // groups = 4 // 4 = 1"),
        (dict(weight=np.ones((4, 2, 0, 3))), ValueError, r"kernel sizes must be >= 1"),
        (dict(weight=np.ones((4, 2))), ValueError, r"weight must have shape"),
        (dict(weight=np.ones((4, 2, 1, 1, 1, 1))), ValueError, r"weight must have shape"),
        (dict(x=np.ones((2, 4))), ValueError, r"x must have 4 dims .* got x.shape=\(2, 4\)"),
        (dict(bias=np.ones(3)), ValueError, r"bias must have shape \(4,\)"),
        (dict(stride=0), ValueError, r"stride must be >= 1, got stride=0"),
        (dict(stride=(1, 2, 3)), ValueError, r"stride must be an int or 2 ints"),
        (dict(stride=1.5), TypeError, r"stride must be an integer, got 1.5"),
        (dict(stride="2"), TypeError, r"stride must be an int or 2 ints"),
        (dict(dilation=(1, -1)), ValueError, r"dilation\[1\] must be >= 1"),
        (dict(padding=-1), ValueError, r"padding must be >= 0"),
        (dict(padding="same_upper"), ValueError, r"padding must be .* got padding='same_upper'"),
        (dict(padding=(1, 2, 3)), ValueError, r"padding must have one entry per spatial dim"),
        (dict(padding=[(1, 2, 3), 1]), ValueError, r"padding\[0\] must be an int or a"),
        (dict(padding=1.0), TypeError, r"padding must be an integer"),
        (dict(padding_mode="mirror"), ValueError, r"padding_mode must be one of .*'mirror'"),
        (dict(padding_mode="reflect", padding=8), ValueError,
         r"padding_mode='reflect' needs padding < input size"),
        (dict(padding_mode="circular", padding=9), ValueError, r"padding <= input size"),
        (dict(padding_mode="symmetric", padding=9), ValueError, r"padding <= input size"),
        (dict(layout="NCWH"), ValueError, r"layout must be one of .*got layout='NCWH'"),
        (dict(layout="NCW"), ValueError, r"layout='NCW' is for 1-D data"),
        (dict(layout=1), TypeError, r"layout must be a string"),
        (dict(algorithm="fft"), ValueError,
         r"algorithm must be one of .*'winograd'; got algorithm='fft'"),
        (dict(device="tpu"), ValueError, r"device must be None, 'cpu' or 'cuda'; got device='tpu'"),
        (dict(weight=np.ones((4, 2, 11, 3))), ValueError,
         r"kernel extent 11 .* larger than the padded input \(8 \+ padding 0\+0 = 8\)"),
        (dict(weight=np.ones((4, 2, 3, 3)), dilation=5), ValueError, r"kernel extent 11"),
        (dict(x=np.array([["a"] * 8] * 4)), TypeError, r"x has dtype <U1"),
        (dict(x=np.ones((2, 4, 8, 8), dtype=object)), TypeError, r"x has dtype object"),
        (dict(weight=np.ones((4, 2, 3, 3), dtype="datetime64[s]")), TypeError,
         r"weight has dtype datetime64"),
        (dict(x=np.ones((2, 4, 8, 8), dtype=np.longdouble)), TypeError, r"unsupported dtype"),
    ],
)
def test_bad_arguments(overrides, error, match):
    with pytest.raises(error, match=match):
        call(**overrides)


def test_reflect_padding_at_input_size_is_refused_but_symmetric_accepted():
    x = np.ones((1, 1, 4))
    w = np.ones((1, 1, 3))
    with pytest.raises(ValueError, match="reflect"):
        groupconv.conv(x, w, padding=4, padding_mode="reflect")
    assert groupconv.conv(x, w, padding=4, padding_mode="symmetric").shape == (1, 1, 10)
    assert groupconv.conv(x, w, padding=3, padding_mode="reflect").shape == (1, 1, 8)
    assert groupconv.conv(x, w, padding=50, padding_mode="replicate").shape == (1, 1, 102)


def _cuda_usable():
    try:
        from numba import cuda
    except Exception:
        return False
    return bool(cuda.is_available())


class FakeGpuArray:
    """Only a __cuda_array_interface__ (never dereferenced: every call here fails first)."""

    __cuda_array_interface__ = {"shape": (2, 4, 8, 8), "typestr": "<f8", "data": (0, False),
                                "version": 3}


@pytest.mark.skipif(_cuda_usable(), reason="a CUDA device is present")
def test_gpu_call_without_a_gpu_is_a_clear_runtime_error():
    with pytest.raises(RuntimeError, match="needs a CUDA device"):
        call(device="cuda")
    with pytest.raises(RuntimeError, match="needs a CUDA device"):
        groupconv.conv(FakeGpuArray(), W, groups=2)


def test_gpu_array_on_the_cpu_is_refused_clearly():
    with pytest.raises(ValueError, match="x is a CUDA array but the call runs on the CPU"):
        groupconv.conv(FakeGpuArray(), W, groups=2, device="cpu")
    with pytest.raises(ValueError, match="weight is a CUDA array but the call runs on the CPU"):
        groupconv.conv(X, FakeGpuArray(), groups=2)
    with pytest.raises(ValueError, match="stream is for GPU calls"):
        call(stream=0)


@pytest.mark.parametrize(
    "out,error,match",
    [
        (np.empty((2, 4, 6, 5)), ValueError, r"out must have shape \(2, 4, 6, 6\), got"),
        (np.empty((2, 4, 6, 6), dtype=np.float32), TypeError,
         r"out must have dtype float64, got out.dtype=float32"),
        ([[0.0]], TypeError, r"out must be a numpy.ndarray, got list"),
    ],
)
def test_bad_out(out, error, match):
    with pytest.raises(error, match=match):
        call(out=out)


def test_read_only_out():
    out = np.empty((2, 4, 6, 6))
    out.flags.writeable = False
    with pytest.raises(ValueError, match="out is read-only"):
        call(out=out)


def test_out_overlapping_an_input_through_views():
    buffer = np.zeros((2, 8, 8, 8))
    x = buffer[:, :4]
    with pytest.raises(ValueError, match="out overlaps the memory of x"):
        groupconv.conv(x, W, groups=2, out=buffer[:, 2:6, :6, :6])
    weight = np.ones((4, 2, 3, 3))
    with pytest.raises(ValueError, match="out overlaps the memory of weight"):
        groupconv.conv(np.ones((1, 4, 3, 3)), weight, groups=2,
                       out=weight.reshape(-1)[5:9].reshape(1, 4, 1, 1))
    # Interleaved views share a buffer but not a single element: allowed.
    y = groupconv.conv(buffer[:, ::2], W[:, :2], groups=2, out=np.empty((2, 4, 6, 6)))
    assert y.shape == (2, 4, 6, 6)


def test_sizes_that_overflow_are_refused_before_allocating():
    # Zero strides: a 2**40-element input that occupies 8 bytes.
    huge = np.lib.stride_tricks.as_strided(np.zeros(1), shape=(2**20, 1, 2**20), strides=(0,) * 3)
    weight = np.lib.stride_tricks.as_strided(np.zeros(1), shape=(2**30, 1, 1), strides=(0,) * 3)
    with pytest.raises(ValueError, match=r"the output of shape .* elements, more than"):
        groupconv.conv(huge, weight)
    with pytest.raises(ValueError, match="elements, more than"):
        groupconv.conv_output_shape((2**31, 2**31, 2**31), (2**31, 1, 1), groups=2**31)


def test_separable_weight_errors():
    x = np.ones((1, 3, 5, 5))
    with pytest.raises(ValueError, match=r"depthwise_weight.shape\[1\] must be"):
        groupconv.separable_conv(x, np.ones((3, 2, 3, 3)), np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"pointwise_weight must have shape \(C_out, 6\)"):
        groupconv.separable_conv(x, np.ones((6, 1, 3, 3)), np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"pointwise_weight must have shape"):
        groupconv.separable_conv(x, np.ones((3, 1, 3, 3)), np.ones((4, 3, 3, 3)))


def test_depthwise_weight_must_have_one_input_channel():
    with pytest.raises(ValueError, match=r"weight.shape\[1\] must be C_in // groups = 4 // 4 = 1"):
        groupconv.depthwise_conv(X, W)
    with pytest.raises(ValueError, match=r"groups=4 does not divide C_out=6"):
        groupconv.depthwise_conv(X, np.ones((6, 1, 3, 3)))


def test_resolve_padding_errors():
    with pytest.raises(ValueError, match="input_shape has 2 spatial dims but kernel_size has 1"):
        groupconv.resolve_padding(0, (3, 3), (3,))
    with pytest.raises(TypeError, match="x_shape must be a tuple of ints"):
        groupconv.conv_output_shape(5, (1, 1, 1))


def test_groups_none_is_a_type_error():
    with pytest.raises(TypeError, match="groups must be an integer, got None"):
        call(groups=None)


def test_separable_messages_keep_the_callers_values():
    x = np.ones((1, 3, 5, 5))
    with pytest.raises(ValueError, match="got padding_mode='weighted'"):
        groupconv.separable_conv(x, np.ones((3, 1, 3, 3)), np.ones((4, 3)),
                                 padding_mode="weighted")
