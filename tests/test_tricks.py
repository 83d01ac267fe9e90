"""groupconv.tricks: split_sum by hand, both strategies against groupconv.reference."""

import numpy as np
import pytest
from conftest import assert_matches_reference

import groupconv
from groupconv import reference
from groupconv.tricks import grouped_conv_via_depthwise, grouped_conv_via_split, split_sum

STRATEGIES = [grouped_conv_via_depthwise, grouped_conv_via_split]

# ---------------------------------------------------------------- split_sum


def test_split_sum_by_hand():
    y = np.arange(12).reshape(2, 6)
    # cut [0..5] into [0, 1] [2, 3] [4, 5] and stack: 0+2+4, 1+3+5
    np.testing.assert_array_equal(split_sum(y, 3), [[6, 9], [24, 27]])
    np.testing.assert_array_equal(split_sum(y, 2, axis=-1), [[3, 5, 7], [15, 17, 19]])
    np.testing.assert_array_equal(split_sum(y, 2, axis=0), [[6, 8, 10, 12, 14, 16]])
    np.testing.assert_array_equal(split_sum([[1.0, 2.0, 3.0, 4.0]], 4), [[10.0]])


def test_split_sum_returns_a_new_array():
    y = np.arange(6.0).reshape(1, 6)
    y.setflags(write=False)
    z = split_sum(y, 1)
    np.testing.assert_array_equal(z, y)
    assert not np.shares_memory(z, y)
    z[...] = -1.0
    np.testing.assert_array_equal(y, np.arange(6.0).reshape(1, 6))


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (dict(parts=4), ValueError, r"parts=4 does not divide y.shape\[1\]=6"),
        (dict(parts=4, axis=-1), ValueError, r"parts=4 does not divide y.shape\[-1\]=6"),
        (dict(parts=0), ValueError, r"parts must be >= 1, got parts=0"),
        (dict(parts=2.0), TypeError, r"parts must be an integer"),
        (dict(parts=2, axis=2), ValueError, r"axis=2 is out of range .* -2 <= axis < 2"),
        (dict(parts=2, axis=-3), ValueError, r"axis=-3 is out of range"),
        (dict(parts=2, axis=1.0), TypeError, r"axis must be an integer"),
    ],
)
def test_split_sum_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        split_sum(np.ones((2, 6)), **kwargs)


# ---------------------------------------------------------------- strategies vs reference

# (C_in, C_out, groups, options) for 2-D inputs
CASES = [
    (4, 3, 1, {}),
    (4, 6, 2, {}),
    (6, 4, 2, dict(stride=2, padding=1)),
    (6, 6, 3, dict(dilation=2, padding="same")),
    (4, 4, 4, dict(stride=(2, 1), padding=((1, 0), (2, 1)), padding_mode="reflect")),
    (6, 12, 2, dict(padding="same", stride=2, padding_mode="circular")),
    (4, 2, 2, dict(padding=2, padding_mode="replicate", dilation=(1, 2))),
    (6, 3, 3, dict(padding="full", padding_mode="symmetric")),
]


def make_input(rng, n, c, spatial, layout):
    shape = (n, c, *spatial) if layout == "channels_first" else (n, *spatial, c)
    return rng.standard_normal(shape)


@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
@pytest.mark.parametrize("c_in,c_out,groups,options", CASES)
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_strategies_match_reference(rng, strategy, c_in, c_out, groups, options, layout):
    x = make_input(rng, 2, c_in, (7, 6), layout)
    w = rng.standard_normal((c_out, c_in // groups, 3, 2))
    b = rng.standard_normal(c_out)
    expected = reference.conv(x, w, b, groups=groups, layout=layout, **options)
    assert_matches_reference(strategy(x, w, b, groups=groups, layout=layout, **options), expected)
    expected = reference.conv(x, w, groups=groups, layout=layout, **options)
    assert_matches_reference(strategy(x, w, groups=groups, layout=layout, **options), expected)


@pytest.mark.parametrize("layout", ["NCW", "NWC", "NCDHW", "NDHWC"])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_strategies_unbatched_other_ranks_and_aliases(rng, strategy, layout):
    rank = len(layout) - 2
    spatial = (9,) if rank == 1 else (5, 4, 4)
    canonical = "channels_first" if layout[1] == "C" else "channels_last"
    x = make_input(rng, 1, 4, spatial, canonical)
    w = rng.standard_normal((6, 2) + (3,) * rank)
    options = dict(groups=2, stride=2, padding="same")
    expected = reference.conv(x, w, layout=canonical, **options)[0]
    y = strategy(x[0], w, layout=layout, **options)
    assert_matches_reference(y, expected)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_strategies_integer_input_and_empty_batch(rng, strategy):
    x = rng.integers(-5, 6, size=(2, 4, 5, 5))
    w = rng.integers(-5, 6, size=(4, 2, 3, 3))
    y = strategy(x, w, groups=2)
    assert y.dtype == np.float64
    assert_matches_reference(y, reference.conv(x, w, groups=2))
    empty = strategy(np.ones((0, 4, 5, 5)), w, groups=2, padding=1)
    assert empty.shape == (0, 4, 5, 5)


# ---------------------------------------------------------------- the Q&A's pairing note


def test_split_sum_without_permutation_pairs_channel_i_with_i_plus_half():
    # Channel c of x holds 10**c; a 1x1 depthwise of ones copies it. split_sum with
    # parts=2 then adds channel 0 to channel 2 and channel 1 to channel 3 ...
    x = (10.0 ** np.arange(4)).reshape(1, 4, 1, 1) * np.ones((1, 4, 3, 3))
    y = split_sum(groupconv.depthwise_conv(x, np.ones((4, 1, 1, 1))), 2)
    np.testing.assert_array_equal(y[0, :, 0, 0], [1.0 + 100.0, 10.0 + 1000.0])
    # ... while grouped convolution (and the permuted trick) pairs neighbours 0+1, 2+3.
    y = grouped_conv_via_depthwise(x, np.ones((2, 2, 1, 1)), groups=2)
    np.testing.assert_array_equal(y[0, :, 0, 0], [1.0 + 10.0, 100.0 + 1000.0])


def test_unpermuted_depthwise_split_sum_is_grouped_conv_of_channels_i_and_i_plus_half(rng):
    c_in = 6
    x = rng.standard_normal((2, c_in, 6, 5))
    w_dw = rng.standard_normal((c_in, 1, 3, 3))
    y = split_sum(groupconv.depthwise_conv(x, w_dw, padding=1), 2)
    half = c_in // 2
    order = [c for i in range(half) for c in (i, i + half)]  # 0, 3, 1, 4, 2, 5
    weight = np.stack([w_dw[:half, 0], w_dw[half:, 0]], axis=1)  # (3, 2, 3, 3)
    expected = reference.conv(x[:, order], weight, groups=half, padding=1)
    assert_matches_reference(y, expected)


# ---------------------------------------------------------------- inputs and errors


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_inputs_are_not_modified(rng, strategy):
    x = rng.standard_normal((2, 5, 5, 6))
    w = rng.standard_normal((4, 3, 3, 3))
    b = rng.standard_normal(4)
    arrays = [x, w, b]
    copies = [a.copy() for a in arrays]
    for a in arrays:
        a.setflags(write=False)
    strategy(x, w, b, groups=2, padding="same", layout="channels_last")
    for a, c in zip(arrays, copies, strict=True):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (dict(groups=3), ValueError, r"groups=3 does not divide C_in=4"),
        (dict(groups=0), ValueError, r"groups must be >= 1"),
        (dict(groups=None), TypeError, r"groups must be an integer, got None"),
        (dict(groups=2, bias=np.ones(3)), ValueError, r"bias must have shape \(4,\)"),
        (dict(groups=2, layout="NHWC", x=np.ones((1, 5, 5, 3))), ValueError,
         r"groups=2 does not divide C_in=3"),
        (dict(groups=2, padding_mode="mirror"), ValueError, r"padding_mode must be one of"),
        (dict(groups=2, stride=0), ValueError, r"stride must be >= 1"),
        (dict(groups=4), ValueError, r"weight.shape\[1\] must be C_in // groups"),
    ],
)
def test_errors(strategy, kwargs, error, match):
    args = dict(x=np.ones((1, 4, 5, 5)), weight=np.ones((4, 2, 3, 3)))
    args.update(kwargs)
    with pytest.raises(error, match=match):
        strategy(args.pop("x"), args.pop("weight"), **args)


def test_groups_is_keyword_only():
    with pytest.raises(TypeError):
        grouped_conv_via_depthwise(np.ones((1, 4, 5)), np.ones((4, 2, 3)), None, 2)
