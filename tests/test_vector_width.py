"""The kernels' request for 512-bit vectors reaches LLVM, and only the functions that make it."""

import os
import re

import numba
import numpy as np
import pytest
from llvmlite import binding as llvm
from numba import prange

from groupconv.cpu._vector_width import (
    PREFERRED_VECTOR_BITS,
    REGISTER_VECTORS,
    register_vectors,
    wide_vectors,
)


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


@pytest.mark.parametrize("name, features, count", [
    ("host", "+avx2,+fma,+avx512f", 32),
    ("host", "+avx2,+fma,-avx512f", 8),
    ("skylake-avx512", "", 8),  # a named CPU without features: the portable count
])
def test_register_count_follows_numba_target(monkeypatch, name, features, count):
    monkeypatch.delenv("GROUPCONV_REGISTER_VECTORS", raising=False)
    assert register_vectors(name, features) == count


def test_register_count_override(monkeypatch):
    monkeypatch.setenv("GROUPCONV_REGISTER_VECTORS", "8")
    assert register_vectors("host", "+avx512f") == 8
    monkeypatch.setenv("GROUPCONV_REGISTER_VECTORS", "16")
    with pytest.raises(ValueError, match="GROUPCONV_REGISTER_VECTORS: expected 8 or 32"):
        register_vectors()


_OTHER_TARGET_SCRIPT = """
import numpy as np
import groupconv
from groupconv import reference
from groupconv.cpu import dense_cl, grouped_cl, pointwise_cl
from groupconv.cpu.direct import direct_arguments
from groupconv._spec import conv_spec

assert dense_cl.OUTPUT_CHUNK == {chunk} and pointwise_cl.PIXEL_BLOCK == {pixels}
assert grouped_cl.DEPTHWISE_LANES == {depthwise_lanes}
rng = np.random.default_rng(5)
def arr(*shape):
    return rng.standard_normal(shape).astype(np.float32)
cases = [  # (x, weight, keywords, kernel that must run)
    (arr(2, 5, 13, 6), arr(128, 3, 3, 3), dict(groups=2, padding=1), dense_cl.dense_channels_last),
    (arr(2, 4, 15, 20), arr(40, 20, 1, 1), {{}}, pointwise_cl.pointwise_channels_last),
    (arr(2, 9, 10, 40), arr(40, 1, 7, 7), dict(groups=40, padding=3),
     grouped_cl.depthwise_window_channels_last),
    (arr(2, 6, 9, 72), arr(72, 4, 3, 3), dict(groups=18, padding=1),
     grouped_cl.grouped_channels_last_unit),
]
for x, w, kw, kernel in cases:
    b = arr(w.shape[0])
    spec = conv_spec(x, w, b, layout="channels_last", **kw)
    assert direct_arguments(spec)[0] is kernel
    got = groupconv.conv(x, w, b, layout="channels_last", **kw)
    want = reference.conv(x, w, b, layout="channels_last", **kw)
    scale = np.abs(want).max() + 1
    assert np.abs(got - want).max() <= 1e-5 * scale * w[0].size, np.abs(got - want).max()
dw, pw = arr(20, 1, 3, 3), arr(24, 20, 1, 1)
x = arr(2, 9, 10, 20)
got = groupconv.separable_conv(x, dw, pw, padding=1, layout="channels_last")
mid = reference.conv(x, dw, None, padding=1, groups=20, layout="channels_last")
want = reference.conv(mid, pw, None, layout="channels_last")
assert np.abs(got - want).max() <= 1e-4 * (np.abs(want).max() + 1)
print("ok")
"""


@pytest.mark.parametrize("count, chunk, pixels, depthwise_lanes", [(8, 16, 6, 32),
                                                                   (32, 64, 12, 32)])
def test_both_register_blocks_are_correct_on_this_cpu(tmp_path, count, chunk, pixels,
                                                      depthwise_lanes):
    # The blocks of both targets run here: a 32-vector block on an AVX2 CPU
    # is split into 256-bit halves by LLVM (slow, but exact), so each build
    # is checked whichever CPU runs the suite.
    import subprocess
    import sys

    if count == REGISTER_VECTORS:
        pytest.skip("this CPU's own blocks: the rest of the suite checks them")
    env = dict(os.environ, GROUPCONV_REGISTER_VECTORS=str(count),
               NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    script = _OTHER_TARGET_SCRIPT.format(chunk=chunk, pixels=pixels,
                                         depthwise_lanes=depthwise_lanes)
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")
