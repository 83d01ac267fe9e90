"""Run the GPU result tests (tests/cuda) under Numba's CUDA simulator, in their own process.

``NUMBA_ENABLE_CUDASIM=1`` only takes effect if it is set before Numba is
imported, and this process has imported Numba already, hence the subprocess.
"""

import importlib.util
import os
import pathlib
import subprocess
import sys

import pytest

TESTS = pathlib.Path(__file__).resolve().parent


@pytest.mark.skipif(importlib.util.find_spec("numba_cuda") is None,
                    reason="numba-cuda is not installed: pip install 'groupconv[cuda]'")
def test_cuda_kernels_under_the_simulator():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
               str(TESTS / "cuda")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1200,
                            check=False, env=env, cwd=TESTS.parent)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout.splitlines()[-1]
