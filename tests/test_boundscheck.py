"""Run the kernel tests again with Numba's bounds checking on, in a subprocess.

Numba kernels do not check indices, so an indexing bug would corrupt memory
silently. Under ``NUMBA_BOUNDSCHECK=1`` every array access is checked and an
out-of-bounds access fails the call. The checked builds go to their own
cache directory so that they never replace the fast builds.
"""

import os
import pathlib
import subprocess
import sys

import numba
import numpy as np
import pytest

from groupconv.cpu._jit import jit

ROOT = pathlib.Path(__file__).resolve().parent.parent
SUBSET = ["tests/test_conv.py", "tests/test_gemm.py", "tests/test_grouped_cl.py",
          "tests/test_dense_cl.py", "tests/test_depthwise3x3_cl.py",
          "tests/test_pointwise_cl.py", "tests/test_simd.py",
          "tests/test_winograd.py", "tests/test_fuzz.py", "tests/test_boundscheck.py"]


@pytest.mark.skipif(numba.config.BOUNDSCHECK, reason="this is the outer, unchecked run")
def test_kernel_tests_pass_with_bounds_checking():
    env = dict(os.environ)
    env["NUMBA_BOUNDSCHECK"] = "1"
    env["NUMBA_CACHE_DIR"] = str(ROOT / ".numba-boundscheck-cache")
    env["GROUPCONV_FUZZ"] = "short"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *SUBSET],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "passed" in proc.stdout and "failed" not in proc.stdout


@pytest.mark.skipif(not numba.config.BOUNDSCHECK, reason="runs inside the checked run only")
def test_bounds_checking_is_really_on():
    # Built through the same wrapper as the kernels, with the same options.
    @jit(cache=False)
    def writes_past_the_end(a, out):
        for i in numba.prange(out.shape[0]):
            out[i + 1] = a[i]

    with pytest.raises(IndexError):
        writes_past_the_end(np.ones(4), np.empty(4))
