"""Property fuzzing: groupconv against groupconv.reference over every option.

The default run draws 500 examples; ``GROUPCONV_FUZZ=long`` draws 5,000
(and ``short``, used by the bounds-checked rerun, 100).
A failure prints hypothesis' ``@reproduce_failure`` blob and the drawn case.
"""

import os

import numpy as np
import pytest
from conftest import assert_matches_reference, random_array
from hypothesis import given, settings
from hypothesis import strategies as st

import groupconv
from groupconv import reference
from groupconv._spec import ALGORITHMS

# GROUPCONV_FUZZ: "long" (5,000 examples), "short" (the bounds-checked rerun), or unset.
EXAMPLES = {"long": 5000, "short": 100}.get(os.environ.get("GROUPCONV_FUZZ", ""), 500)
DTYPES = ["float32", "float64", "complex64", "complex128", "float16", "int16", "bool"]
MODES = ["zeros", "reflect", "replicate", "circular", "symmetric"]
MEMORY = ["C", "F", "reversed", "strided"]


def _per_dim(draw, strategy, rank):
    return draw(st.one_of(strategy, st.lists(strategy, min_size=rank, max_size=rank)))


@st.composite
def conv_cases(draw):
    rank = draw(st.integers(1, 3))
    groups = draw(st.integers(1, 3))
    depthwise = draw(st.booleans())
    c_group = 1 if depthwise else draw(st.integers(1, 3))
    per_group = draw(st.integers(1, 3))
    batch = draw(st.sampled_from([0, 1, 1, 2, 3]))
    spatial = draw(st.lists(st.sampled_from([1, 2, 3, 4, 5, 7, 11]), min_size=rank,
                            max_size=rank))
    kernel = draw(st.lists(st.sampled_from([1, 2, 3, 3, 4, 5, 7]), min_size=rank, max_size=rank))
    small = st.integers(0, 3)
    padding = draw(st.one_of(
        small,
        st.lists(small, min_size=rank, max_size=rank),
        st.lists(st.tuples(small, small), min_size=rank, max_size=rank),
        st.sampled_from(["valid", "same", "same_lower", "full", "causal", "SAME", "VALID"]),
    ))
    return dict(
        rank=rank,
        batch=batch,
        c_in=groups * c_group,
        c_out=groups * per_group,
        groups=groups,
        spatial=tuple(spatial),
        kernel=tuple(kernel),
        stride=_per_dim(draw, st.integers(1, 3), rank),
        dilation=_per_dim(draw, st.integers(1, 3), rank),
        padding=padding,
        padding_mode=draw(st.sampled_from(MODES)),
        layout=draw(st.sampled_from(["channels_first", "channels_last"])),
        dtype=draw(st.sampled_from(DTYPES)),
        memory=draw(st.sampled_from(MEMORY)),
        bias=draw(st.booleans()),
        use_out=draw(st.booleans()),
        unbatched=draw(st.booleans()) and batch == 1,
        algorithm=draw(st.sampled_from(ALGORITHMS)),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


def _winograd_fits(case):
    """Whether algorithm="winograd" takes the case: 2-D, 3x3, unit steps, float32 or float16."""
    ones = [case[key] in (1, [1] * case["rank"]) for key in ("stride", "dilation")]
    return (case["rank"] == 2 and case["kernel"] == (3, 3) and all(ones)
            and case["dtype"] in ("float32", "float16"))


def _arrange(x, memory):
    """The same values in another memory order."""
    if memory == "F":
        return np.asfortranarray(x)
    if memory == "reversed":
        flip = (slice(None, None, -1),) * x.ndim
        return np.ascontiguousarray(x[flip])[flip]
    if memory == "strided":
        wide = np.zeros(x.shape[:-1] + (2 * x.shape[-1],), dtype=x.dtype)
        wide[..., ::2] = x
        return wide[..., ::2]
    return x


@settings(max_examples=EXAMPLES)
@given(case=conv_cases())
def test_conv_matches_reference(case):
    rng = np.random.default_rng(case["seed"])
    first = case["layout"] == "channels_first"
    x_shape = ((case["batch"], case["c_in"], *case["spatial"]) if first
               else (case["batch"], *case["spatial"], case["c_in"]))
    x = _arrange(random_array(rng, x_shape, case["dtype"]), case["memory"])
    w = random_array(rng, (case["c_out"], case["c_in"] // case["groups"], *case["kernel"]),
                     case["dtype"])
    b = random_array(rng, (case["c_out"],), case["dtype"]) if case["bias"] else None
    options = {k: case[k] for k in ("stride", "dilation", "padding", "padding_mode",
                                     "groups", "layout")}
    inputs = [a for a in (x, w, b) if a is not None]
    snapshot = [a.copy() for a in inputs]
    try:
        want = reference.conv(x, w, b, **options)
    except ValueError:
        # The oracle refuses the case (kernel too large, reflect too wide): so must we.
        with pytest.raises(ValueError):
            groupconv.conv(x, w, b, **options)
        return
    if case["unbatched"]:
        x, want = x[0], want[0]
    out = None
    if case["use_out"]:
        result_dtype = groupconv.conv(x[:0] if not case["unbatched"] else x, w, b,
                                      **options).dtype
        out = np.full(want.shape, 7, dtype=result_dtype)
    if case["algorithm"] == "winograd" and not _winograd_fits(case):
        with pytest.raises(ValueError, match="algorithm='winograd' needs"):
            groupconv.conv(x, w, b, out=out, algorithm="winograd", **options)
        return
    got = groupconv.conv(x, w, b, out=out, algorithm=case["algorithm"], **options)
    if out is not None:
        assert got is out
    taps = (case["c_in"] // case["groups"]) * int(np.prod(case["kernel"])) + 1
    scale = taps * max(float(np.abs(x).max(initial=1)), 1) * max(float(np.abs(w).max()), 1)
    assert_matches_reference(got, want, scale=scale)
    for before, after in zip(snapshot, inputs, strict=True):
        np.testing.assert_array_equal(after, before)
