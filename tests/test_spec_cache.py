"""The geometry cache of ``conv_spec``: repeated calls skip the checks, never their effect."""

import numpy as np
import pytest

import groupconv
from groupconv import _spec, reference

RNG = np.random.default_rng(7)
X = RNG.standard_normal((2, 4, 9, 9)).astype(np.float32)
W = RNG.standard_normal((4, 2, 3, 3)).astype(np.float32)


def test_a_cached_geometry_serves_new_data():
    _spec._cached_geometry.cache_clear()
    groupconv.conv(X, W, groups=2, stride=2, padding=1)
    x2 = RNG.standard_normal(X.shape).astype(np.float32)
    w2 = RNG.standard_normal(W.shape).astype(np.float32)
    got = groupconv.conv(x2, w2, groups=2, stride=2, padding=1)
    assert _spec._cached_geometry.cache_info().hits >= 1
    want = reference.conv(x2, w2, groups=2, stride=2, padding=1)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("stride, error", [(True, TypeError), ((1, True), TypeError),
                                           (0, ValueError), (1.0, TypeError)])
def test_a_cached_int_does_not_admit_an_equal_bad_value(stride, error):
    # True == 1 and 1.0 == 1 with equal hashes: a cache keyed on them could
    # hand back the geometry of stride=1.
    groupconv.conv(X, W, groups=2, stride=1)
    groupconv.conv(X, W, groups=2, stride=(1, 1))
    with pytest.raises(error, match="stride"):
        groupconv.conv(X, W, groups=2, stride=stride)


def test_numpy_integers_and_lists_take_the_uncached_path_with_the_same_result():
    want = groupconv.conv(X, W, groups=2, stride=(2, 1), padding=[(1, 0), (0, 1)])
    for stride in ([2, 1], (np.int64(2), np.int32(1)), np.array([2, 1])):
        got = groupconv.conv(X, W, groups=np.int64(2), stride=stride,
                             padding=[(1, 0), (0, 1)])
        np.testing.assert_array_equal(got, want)


def test_errors_are_raised_on_every_call():
    for _ in range(3):
        with pytest.raises(ValueError, match="groups=3 does not divide C_in=4"):
            groupconv.conv(X, W, groups=3)


def test_the_geometry_of_each_call_is_its_own():
    # Same keywords, different shapes or dtypes: different geometries.
    assert groupconv.conv(X, W, groups=2).shape == (2, 4, 7, 7)
    assert groupconv.conv(X[:, :, :7], W, groups=2).shape == (2, 4, 5, 7)
    assert groupconv.conv(X[0], W, groups=2).shape == (4, 7, 7)
    assert groupconv.conv(X.astype(np.float64), W, groups=2).dtype == np.float64
    x_last = X.transpose(0, 2, 3, 1)
    assert groupconv.conv(x_last, W, groups=2, layout="channels_last").shape == (2, 7, 7, 4)


def test_a_route_is_kept_per_geometry_and_thread_count():
    import numba

    from groupconv.cpu import direct

    x = RNG.standard_normal((2, 9, 8, 32)).astype(np.float32)
    w = RNG.standard_normal((32, 1, 3, 3)).astype(np.float32)
    kw = dict(groups=32, padding=1, layout="channels_last")
    direct._ROUTES.clear()
    groupconv.conv(x, w, **kw)
    assert len(direct._ROUTES) == 1
    (key, route), = direct._ROUTES.items()
    x2 = RNG.standard_normal(x.shape).astype(np.float32)
    got = groupconv.conv(x2, w, **kw)
    assert direct._ROUTES[key] is route  # reused, not rebuilt
    np.testing.assert_allclose(got, reference.conv(x2, w, **kw), rtol=1e-5, atol=1e-5)
    # Another padding mode is another route (the kernel reads a padded copy).
    got = groupconv.conv(x2, w, padding_mode="reflect", **kw)
    np.testing.assert_allclose(got, reference.conv(x2, w, padding_mode="reflect", **kw),
                               rtol=1e-5, atol=1e-5)
    assert len(direct._ROUTES) == 2
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        groupconv.conv(x2, w, **kw)
    finally:
        numba.set_num_threads(before)
    assert len(direct._ROUTES) == 3
    # Keywords that are not cache keys take a fresh route every time.
    groupconv.conv(x2, w, groups=32, padding=[1, 1], layout="channels_last")
    assert len(direct._ROUTES) == 3


def test_a_spec_has_every_field_and_stays_frozen():
    # conv_spec fills the instance directly (not through the dataclass's
    # __init__): every field must be its own, none left to a class default.
    import dataclasses

    spec = _spec.conv_spec(X, W, None, groups=2, padding=1)
    assert set(vars(spec)) == {f.name for f in dataclasses.fields(_spec.ConvSpec)}
    assert spec.key is not None and spec.stream is None and spec.caller is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.groups = 1
    # replace() goes through __init__: the same fields come back.
    copy = dataclasses.replace(spec)
    assert all(getattr(copy, name) is getattr(spec, name) for name in vars(spec))


def test_the_algorithm_auto_picks_is_kept_per_geometry():
    from groupconv import _dispatch

    _dispatch._CHOICES.clear()
    x = RNG.standard_normal((1, 64, 8, 8)).astype(np.float32)
    dense = _spec.conv_spec(x, RNG.standard_normal((64, 64, 3, 3)).astype(np.float32))
    depthwise = _spec.conv_spec(x, RNG.standard_normal((64, 1, 3, 3)).astype(np.float32),
                                groups=64)
    assert _dispatch.choose_algorithm(dense) == "winograd"
    assert _dispatch.choose_algorithm(depthwise) == "direct"
    assert _dispatch._CHOICES == {dense.key: "winograd", depthwise.key: "direct"}
    # An explicit algorithm is never looked up or kept.
    forced = _spec.conv_spec(x, RNG.standard_normal((64, 64, 3, 3)).astype(np.float32),
                             algorithm="gemm")
    assert _dispatch.choose_algorithm(forced) == "gemm"
    assert len(_dispatch._CHOICES) == 2
