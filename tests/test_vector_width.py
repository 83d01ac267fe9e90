"""The kernels' request for 512-bit vectors reaches LLVM, and only the functions that make it."""

import re

import numba
import numpy as np
import pytest
from llvmlite import binding as llvm
from numba import prange

from groupconv.cpu._vector_width import PREFERRED_VECTOR_BITS, wide_vectors


def _axpy(wide):
    # Uncached and built here, so that its IR and assembly can be inspected.
    @numba.njit(parallel=True, cache=False, fastmath={"contract"})
    def axpy(a, x, y):
        for row in prange(y.shape[0]):
            if wide:
                wide_vectors()
            for i in range(y.shape[1]):
                y[row, i] += a * x[row, i]

    x = np.arange(64.0, dtype=np.float32).reshape(4, 16)
    y = np.ones_like(x)
    axpy(np.float32(2), x, y)
    np.testing.assert_array_equal(y, 1 + 2 * np.arange(64.0, dtype=np.float32).reshape(4, 16))
    return axpy


def _ir(kernel):
    return "\n".join(kernel.inspect_llvm().values())


def test_attribute_marks_the_parallel_loop_body_only_when_asked():
    attribute = f'"prefer-vector-width"="{PREFERRED_VECTOR_BITS}"'
    assert attribute in _ir(_axpy(True))
    assert attribute not in _ir(_axpy(False))


@pytest.mark.skipif("+avx512f" not in llvm.get_host_cpu_features().flatten(),
                    reason="512-bit vectors need AVX-512")
def test_marked_loop_uses_512_bit_registers():
    def zmm_fmas(kernel):
        asm = "\n".join(kernel.inspect_asm().values())
        return len(re.findall(r"vfmadd\w+ps\s[^\n]*zmm", asm))

    assert zmm_fmas(_axpy(True)) > 0
