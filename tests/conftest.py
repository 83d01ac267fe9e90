"""Shared test helpers: tolerances by dtype and seeded data.

Hypothesis profiles: "default" (used by .ci/run) and "long" (set
GROUPCONV_FUZZ=long for the long-run fuzz).
"""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# tests/cuda runs the GPU kernels under Numba's CUDA simulator, which must be
# switched on before Numba is imported: its own process does that
# (tests/test_cuda_simulator.py), and this one never enters the directory (it
# also keeps tests/cuda/conftest.py from shadowing this module's name).
if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
    collect_ignore = ["cuda"]

settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.register_profile(
    "long", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile("long" if os.environ.get("GROUPCONV_FUZZ") == "long" else "default")

#: Relative tolerance per result dtype, against a float64/complex128 oracle.
TOLERANCE = {
    np.dtype(np.float16): 1e-2,
    np.dtype(np.float32): 2e-5,
    np.dtype(np.complex64): 2e-5,
    np.dtype(np.float64): 1e-12,
    np.dtype(np.complex128): 1e-12,
}


def assert_matches_reference(actual, expected, *, scale=None):
    """Compare with the oracle, with a tolerance set by ``actual``'s dtype.

    ``scale`` bounds the magnitude of the terms that were summed (defaults
    to the largest |expected|), so that cancellation does not make a float32
    result look wrong.
    """
    tol = TOLERANCE[np.dtype(actual.dtype)]
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    if scale is None:
        scale = float(np.max(np.abs(expected), initial=1.0))
    np.testing.assert_allclose(
        actual.astype(expected.dtype), expected, rtol=tol, atol=tol * max(scale, 1.0)
    )


def random_array(rng, shape, dtype):
    dtype = np.dtype(dtype)
    if dtype.kind == "c":
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)
    if dtype.kind in "iu":
        return rng.integers(-5, 6, size=shape).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, size=shape).astype(bool)
    return rng.standard_normal(shape).astype(dtype)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
