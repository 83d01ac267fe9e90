"""Device-side helpers shared by the kernel modules: padding modes and the numeric types.

Padding is never materialised on the GPU: every kernel maps a padded
coordinate to the input coordinate it stands for with :func:`source_index`
(one call per spatial dim per tap, or per shared-memory element for the
tiled kernels), which costs a few integer instructions and no workspace.

``numba.cuda`` is imported here guarded, so this module imports without
numba-cuda; every kernel module takes ``cuda`` from this import as a
*module global*, because Numba's CUDA simulator swaps module globals that
hold ``numba.cuda`` (not closure variables) for its fake module while a
kernel runs.
"""

from __future__ import annotations

import functools

import numba
import numpy as np

try:  # guarded: the package must import without numba-cuda
    from numba import cuda
except Exception:  # pragma: no cover - numba-cuda missing; the driver says so
    cuda = None

__all__ = [
    "ACC_DTYPES",
    "CIRCULAR",
    "MODES",
    "REFLECT",
    "REPLICATE",
    "SYMMETRIC",
    "ZEROS",
    "array",
    "compile_kernel",
    "index3",
    "numba_type",
    "source_index",
    "storage_pairs",
]

#: The dtypes kernels accumulate in (the spec's compute dtypes).
ACC_DTYPES = ("float32", "float64", "complex64", "complex128")

ZEROS, REFLECT, REPLICATE, CIRCULAR, SYMMETRIC = range(5)
#: groupconv padding_mode -> the integer the kernels take.
MODES = {
    "zeros": ZEROS,
    "reflect": REFLECT,
    "replicate": REPLICATE,
    "circular": CIRCULAR,
    "symmetric": SYMMETRIC,
}


def _source_index(i, n, mode):
    """The input index that padded position ``i`` (``i < 0`` or ``i >= n`` is padding) reads.

    Returns -1 for a zero: ``mode == ZEROS`` outside ``[0, n)``, or an empty
    axis. Each branch equals :func:`numpy.pad`'s mode for any distance from
    the edge (one period of the pattern repeats), so the spec's limits
    (reflect: pad < n; circular, symmetric: pad <= n) are not relied on here.
    """
    if i >= 0 and i < n:
        return i
    if mode == ZEROS or n == 0:
        return -1
    if mode == REPLICATE:
        return 0 if i < 0 else n - 1
    if mode == CIRCULAR:
        r = i % n
        return r + n if r < 0 else r
    if mode == REFLECT:
        if n == 1:
            return 0
        period = 2 * (n - 1)
        r = i % period
        if r < 0:
            r += period
        return period - r if r >= n else r
    # SYMMETRIC: the edge sample repeats (NumPy's "symmetric").
    period = 2 * n
    r = i % period
    if r < 0:
        r += period
    return period - 1 - r if r >= n else r


@functools.cache
def source_index():
    """:func:`_source_index` as a device function inlined into each kernel.

    ``inline="always"`` inlines it in Numba's IR, before typing: a device
    function that is compiled separately asks the current GPU for its
    compute capability, which fails in ``compile_ptx`` without a GPU.
    """
    return cuda.jit(device=True, inline="always")(_source_index)


def numba_type(dtype):
    """The Numba scalar type of a NumPy dtype; called inside a kernel it casts to that type."""
    return numba.from_dtype(np.dtype(dtype))


def storage_pairs(acc_dtype) -> tuple[tuple[str, str], ...]:
    """The ``(x dtype, output dtype)`` pairs a kernel is built for, given its compute dtype.

    float32 accumulation also reads and writes float16 storage (float16
    inputs give float16 results; float16 mixed with float32 gives float32;
    integers mixed with float16 are computed in float32 and give float16).
    Every other input dtype is converted on the device first, and weights
    and biases always are (they are small), so these pairs are every
    specialisation there is: the PTX tests compile each one.
    """
    acc = str(np.dtype(acc_dtype))
    if acc == "float32":
        return (("float32", "float32"), ("float16", "float16"),
                ("float16", "float32"), ("float32", "float16"))
    return ((acc, acc),)


def array(dtype, ndim: int):
    """The Numba type of a device array of ``dtype`` and ``ndim`` with any strides."""
    return numba.types.Array(numba_type(dtype), ndim, "A")


def index3():
    """The Numba type of a 3-tuple of int64 (strides, dilations, pads, tiles)."""
    return numba.types.UniTuple(numba.types.int64, 3)


def compile_kernel(function, signature=None):
    """``cuda.jit`` with the project's options: one explicit signature where given.

    No launch bounds: with a ``.maxntid`` of 256, ptxas trades registers for
    occupancy and spills some complex kernels; without it, it never spills
    here. Blocks are capped at :data:`._launch.MAX_THREADS` = 256 threads
    instead, and 255 registers x 256 threads fit every GPU's 64K-register
    file, so every kernel can launch whatever registers it uses.
    """
    if signature is None:
        return cuda.jit(function)
    return cuda.jit(signature)(function)
