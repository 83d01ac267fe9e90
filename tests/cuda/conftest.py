"""The GPU tests: results of the CUDA kernels under Numba's CUDA simulator.

``NUMBA_ENABLE_CUDASIM=1`` must be set before Numba is imported, so these
tests run in their own pytest process::

    NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/cuda

(``tests/test_cuda_simulator.py`` does exactly that from the main suite).
Without the variable this directory is skipped: the main process has
already imported Numba without the simulator.

The simulator runs one Python thread per GPU thread, so launches are
shrunk here (few threads per block, few blocks: the grid-stride and
block-stride loops then run several rounds, which is what they must get
right) and the shapes are small.
"""

import os

import pytest

SIMULATED = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"

if not SIMULATED:
    collect_ignore_glob = ["*.py"]


@pytest.fixture(autouse=True)
def small_launch():
    """32 threads per block and at most 3 blocks for every test (tests may shrink further)."""
    from groupconv.cuda import _launch

    with _launch.configure(threads=32, max_blocks=3):
        yield


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(2024)
