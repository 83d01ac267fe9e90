"""Array interop under the simulator: device resolution, kinds in and out, out=, streams,
views, the spec's checks on device arrays, and tf/tricks on device arrays."""

import numpy as np
import pytest
from numba import cuda
from simhelpers import CAIObject, assert_close, channels_last, host, random_array, to_device

import groupconv
from groupconv import reference
from groupconv.cuda import _interop, elementwise

X_SHAPE = (2, 4, 5, 6)


@pytest.fixture
def data(rng):
    x = random_array(rng, X_SHAPE, "float32")
    w = random_array(rng, (4, 2, 3, 3), "float32")
    b = random_array(rng, (4,), "float32")
    return x, w, b, reference.conv(x, w, b, groups=2, padding=1)


def test_numba_device_array_in_numba_device_array_out(data):
    x, w, b, expected = data
    y = groupconv.conv(to_device(x), to_device(w), to_device(b), groups=2, padding=1)
    assert _interop.array_kind(y) == "numba"
    assert_close(y, expected)


def test_plain_cai_object_is_processed(data):
    x, w, b, expected = data
    y = groupconv.conv(CAIObject(x), CAIObject(w), CAIObject(b), groups=2, padding=1)
    assert _interop.array_kind(y) == "numba"
    assert_close(y, expected)
    # A strided (non-contiguous) CAI view is read in place.
    wide = random_array(np.random.default_rng(1), (2, 8, 5, 6), "float32")
    view = wide[:, ::2]
    y = groupconv.conv(CAIObject(view), w, b, groups=2, padding=1)
    assert_close(y, reference.conv(view, w, b, groups=2, padding=1))


def test_cai_out_is_written_in_place_and_returned(data):
    x, w, b, expected = data
    target = np.full(expected.shape, np.nan, dtype=np.float32)
    out = CAIObject(target)
    result = groupconv.conv(CAIObject(x), w, b, groups=2, padding=1, out=out)
    assert result is out
    assert_close(target, expected)
    device_out = cuda.device_array(expected.shape, np.float32)
    assert groupconv.conv(to_device(x), w, b, groups=2, padding=1, out=device_out) is device_out
    assert_close(device_out, expected)


def test_device_cuda_with_numpy_copies_in_and_out(data):
    x, w, b, expected = data
    y = groupconv.conv(x, w, b, groups=2, padding=1, device="cuda")
    assert isinstance(y, np.ndarray)
    assert_close(y, expected)
    out = np.empty_like(expected, dtype=np.float32)
    assert groupconv.conv(x, w, b, groups=2, padding=1, device="cuda", out=out) is out
    assert_close(out, expected)
    strided_out = np.empty((2, 8, 5, 6), np.float32)[:, ::2]
    groupconv.conv(x, w, b, groups=2, padding=1, device="cuda", out=strided_out)
    assert_close(strided_out, expected)


def test_device_resolution_errors(data):
    x, w, b, _ = data
    with pytest.raises(ValueError, match="x is a CUDA array but the call runs on the CPU"):
        groupconv.conv(to_device(x), w, groups=2, device="cpu")
    with pytest.raises(ValueError, match="bias is a CUDA array but the call runs on the CPU"):
        groupconv.conv(x, w, to_device(b), groups=2)
    with pytest.raises(TypeError, match="out must be a CUDA array"):
        groupconv.conv(to_device(x), w, groups=2, out=np.empty((2, 4, 3, 4), np.float32))
    with pytest.raises(TypeError, match="out must be a numpy.ndarray"):
        groupconv.conv(x, w, groups=2, device="cuda",
                       out=cuda.device_array((2, 4, 3, 4), np.float32))
    for algorithm in ("gemm", "winograd"):
        with pytest.raises(NotImplementedError,
                           match=f"algorithm='{algorithm}' has no GPU kernel"):
            groupconv.conv(to_device(x), w, groups=2, algorithm=algorithm)


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (dict(groups=3), ValueError, r"groups=3 does not divide C_in=4"),
        (dict(padding_mode="reflect", padding=6), ValueError, "needs padding < input size"),
        (dict(out=np.empty((2, 4, 5, 6), np.float32)), ValueError,
         r"out must have shape \(2, 4, 3, 4\)"),
        (dict(out=np.empty((2, 4, 3, 4), np.float64)), TypeError,
         "out must have dtype float32, got out.dtype=float64"),
        (dict(weight_dtype="U1"), TypeError, "weight has dtype <U1"),
        (dict(stream="fast"), TypeError, "stream must be None, a numba.cuda stream"),
    ],
)
def test_spec_validates_device_arrays(data, kwargs, error, match):
    x, w, _, _ = data
    kwargs = dict(kwargs)
    if "out" in kwargs:
        kwargs["out"] = CAIObject(kwargs["out"])
    if kwargs.pop("weight_dtype", None):
        w = np.full(w.shape, "a")
        with pytest.raises(error, match=match):
            groupconv.conv(to_device(x), w, groups=2)
        return
    kwargs.setdefault("groups", 2)
    with pytest.raises(error, match=match):
        groupconv.conv(to_device(x), w, **kwargs)


def test_out_overlap_and_read_only_on_device(rng):
    buffer = random_array(rng, (2, 8, 6, 6), "float32")
    x = buffer[:, :4]
    w = random_array(rng, (4, 1, 3, 3), "float32")
    with pytest.raises(ValueError, match="out overlaps the memory of x"):
        groupconv.depthwise_conv(CAIObject(x), w, padding=1, out=CAIObject(buffer[:, 2:6]))
    memory = np.zeros(36 + 288, np.float32)
    shared_w = memory[:36].reshape(4, 1, 3, 3)
    with pytest.raises(ValueError, match="out overlaps the memory of weight"):
        groupconv.depthwise_conv(CAIObject(x), CAIObject(shared_w), padding=1,
                                 out=CAIObject(memory[20:308].reshape(2, 4, 6, 6)))
    separate = np.empty((2, 4, 6, 6), np.float32)
    with pytest.raises(ValueError, match="out is read-only"):
        groupconv.depthwise_conv(CAIObject(x), w, padding=1,
                                 out=CAIObject(separate, readonly=True))
    groupconv.depthwise_conv(CAIObject(x), w, padding=1, out=CAIObject(separate))
    assert_close(separate, reference.depthwise_conv(x, w, padding=1))


def test_streams_are_accepted(data):
    x, w, b, expected = data
    stream = cuda.stream()
    y = groupconv.conv(to_device(x), w, b, groups=2, padding=1, stream=stream)
    stream.synchronize()
    assert_close(y, expected)
    y = groupconv.separable_conv(to_device(x), w[:, :1], w[:, 0, 0, :2].T.copy(), stream=0)
    assert host(y).shape == (2, 2, 3, 4)
    with pytest.raises(ValueError, match="stream is for GPU calls"):
        groupconv.conv(x, w, groups=2, stream=stream)


def test_separable_on_device_arrays_with_out(rng):
    x = random_array(rng, (2, 3, 6, 5), "float64")
    dw = random_array(rng, (6, 1, 3, 3), "float64")
    pw = random_array(rng, (4, 6), "float64")
    expected = reference.separable_conv(x, dw, pw, padding="same")
    out = cuda.device_array(expected.shape, np.float64)
    y = groupconv.separable_conv(CAIObject(x), CAIObject(dw), CAIObject(pw), padding="same",
                                 out=out)
    assert y is out
    assert_close(out, expected)
    with pytest.raises(ValueError, match="pointwise_weight must have shape"):
        groupconv.separable_conv(to_device(x), dw, to_device(pw[:, :5]))


def test_tf_functions_take_device_arrays(rng):
    x = random_array(rng, (2, 6, 5, 4), "float32")           # NHWC
    filters = random_array(rng, (3, 3, 2, 6), "float32")     # 2 groups
    y = groupconv.tf.conv2d(to_device(x), to_device(filters), strides=1, padding="SAME")
    assert_close(y, groupconv.tf.conv2d(x, filters, strides=1, padding="SAME"))
    dwf = random_array(rng, (3, 2, 4, 2), "float32")
    y = groupconv.tf.depthwise_conv2d(CAIObject(x), CAIObject(dwf), strides=[1, 2, 2, 1],
                                      padding="VALID")
    assert_close(y, reference.tf_depthwise_conv2d(x, dwf, (2, 2), "VALID"))
    pwf = random_array(rng, (1, 1, 8, 3), "float32")
    y = groupconv.tf.separable_conv2d(to_device(x), to_device(dwf), to_device(pwf),
                                      strides=1, padding="SAME")
    assert_close(y, groupconv.tf.separable_conv2d(x, dwf, pwf, strides=1, padding="SAME"))
    # Batch dims beyond one are merged (a view) and split again.
    x5 = random_array(rng, (2, 1, 5, 4, 4), "float32")
    y = groupconv.tf.conv2d(to_device(x5), filters[:, :, :, :4] * 0 + filters[:, :, :, :4],
                            strides=1, padding="VALID")
    assert host(y).shape == (2, 1, 3, 2, 4)
    assert_close(y, groupconv.tf.conv2d(x5, filters[:, :, :, :4], strides=1, padding="VALID"))


@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
def test_tricks_take_device_arrays(layout, rng):
    x = random_array(rng, (2, 6, 5, 4), "float64")
    if layout == "channels_last":
        x = channels_last(x)
    w = random_array(rng, (4, 3, 3, 3), "float64")
    b = random_array(rng, (4,), "float64")
    expected = reference.conv(x, w, b, groups=2, padding=1, layout=layout)
    for trick in (groupconv.tricks.grouped_conv_via_depthwise,
                  groupconv.tricks.grouped_conv_via_split):
        y = trick(to_device(x), to_device(w), to_device(b), groups=2, padding=1, layout=layout)
        assert _interop.array_kind(y) == "numba"
        assert_close(y, expected)
    y = groupconv.tricks.grouped_conv_via_depthwise(CAIObject(x[0]), w, b, groups=2, padding=1,
                                                    layout=layout)
    assert_close(y, expected[0])


def test_split_sum_on_device(rng):
    y = random_array(rng, (2, 6, 3), "float32")
    assert_close(groupconv.tricks.split_sum(to_device(y), 3), groupconv.tricks.split_sum(y, 3))
    ints = random_array(rng, (4, 5), "int16")
    result = host(groupconv.tricks.split_sum(CAIObject(ints), 2, axis=0))
    np.testing.assert_array_equal(result, groupconv.tricks.split_sum(ints, 2, axis=0))
    assert result.dtype == np.int64
    half = random_array(rng, (3, 4), "float16")
    result = host(groupconv.tricks.split_sum(to_device(half), 2, axis=-1))
    assert result.dtype == np.float16
    np.testing.assert_allclose(result, groupconv.tricks.split_sum(half, 2, axis=-1), rtol=1e-2)


def test_views_and_elementwise_helpers(rng):
    a = random_array(rng, (3, 4, 5), "float64")
    d = to_device(a)
    t = _interop.transpose(d, (2, 0, 1))
    np.testing.assert_array_equal(host(t), a.transpose(2, 0, 1))
    np.testing.assert_array_equal(host(_interop.reshape(t, (5, 12))),
                                  a.transpose(2, 0, 1).reshape(5, 12))  # needs a copy
    np.testing.assert_array_equal(host(_interop.reshape(d, (12, 5))), a.reshape(12, 5))
    np.testing.assert_array_equal(host(_interop.expand_dims(d, 1, 2)), a[:, None, None])
    np.testing.assert_array_equal(host(elementwise.take(d, [3, 0, 0], 1)), a[:, [3, 0, 0]])
    np.testing.assert_array_equal(host(elementwise.concatenate([d, d[:, :1]], 1)),
                                  np.concatenate([a, a[:, :1]], 1))
    np.testing.assert_allclose(host(elementwise.sum_axis(d, 1, np.float64)), a.sum(axis=1))
    ones = elementwise.astype(to_device(np.zeros((2, 3, 4))), np.float32)
    elementwise.add_along_axis(ones, np.arange(3.0), 1)
    np.testing.assert_array_equal(host(ones), np.broadcast_to(np.arange(3.0)[:, None],
                                                              (2, 3, 4)))
    seven = random_array(rng, (2, 1, 2, 1, 2, 1, 2, 3), "float32")
    np.testing.assert_array_equal(host(elementwise.ascontiguous(to_device(seven))), seven)


@pytest.mark.parametrize(
    "shape,new_shape",
    [((3, 4, 5), (12, 5)), ((3, 4, 5), (3, 20)), ((2, 1, 6), (2, 3, 2, 1)),
     ((4, 6), (2, 2, 3, 2)), ((1, 1), (1,)), ((0, 3), (3, 0))],
)
@pytest.mark.parametrize("order", ["C", "T", "slice"])
def test_nocopy_strides_agree_with_numpy(shape, new_shape, order):
    a = np.zeros(shape)
    if order == "T":
        a = np.zeros(shape[::-1]).T
    elif order == "slice" and a.ndim and a.shape[-1] > 1:
        a = np.zeros(shape[:-1] + (shape[-1] * 2,))[..., ::2]
    try:
        view = a.reshape(new_shape, copy=False)
        expected = view.strides if view.size else None
    except (ValueError, AttributeError):
        expected = None
    got = _interop._nocopy_strides(a.shape, a.strides, new_shape, a.itemsize)
    if a.size == 0:
        assert got is not None
    elif expected is None:
        assert got is None
    else:
        assert tuple(got) == tuple(expected)
