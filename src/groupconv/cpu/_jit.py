"""The one Numba wrapper every CPU kernel goes through."""

from __future__ import annotations

import numba
from llvmlite import binding as llvm

__all__ = ["inlined", "jit"]

#: LLVM vectorises a loop over arrays that might overlap only behind runtime
#: overlap checks, and by default gives up past 128 of them ("too many memory
#: checks needed"). A register-blocked kernel reads 20-40 streams at run-time
#: offsets and needs more: without this its loop over channels stays scalar
#: (measured 4x slower). The option is process-wide; it only lets LLVM's loop
#: vectoriser accept more checks in loops that would otherwise stay scalar.
VECTORIZE_MEMORY_CHECK_THRESHOLD = 1024
llvm.set_option("", f"-vectorize-memory-check-threshold={VECTORIZE_MEMORY_CHECK_THRESHOLD}")


def jit(function=None, *, parallel: bool = True, cache: bool = True, **options):
    """``numba.njit`` with the project's defaults.

    ``cache=True`` so a signature compiles once per machine;
    ``error_model="numpy"`` so division never raises inside a kernel (the
    spec has already excluded every bad size); ``fastmath={"contract"}``
    lets LLVM fuse a multiply and an add into one FMA (one rounding instead
    of two, twice the arithmetic rate) but allows no reassociation, so the
    order of every sum is fixed by the code and results are reproducible
    bit for bit, whatever the number of threads.

    Under ``NUMBA_BOUNDSCHECK=1`` kernels compile serially: Numba does not
    bounds-check array accesses lowered inside a ``prange`` body (an
    out-of-bounds access there goes unreported, numba/numba#4600, #9380),
    while the serial build of the same loop checks every access. The indices
    are the same either way; only the partitioning of the outer loop differs.
    """
    parallel = parallel and not numba.config.BOUNDSCHECK
    options = {
        "cache": cache,
        "parallel": parallel,
        "error_model": "numpy",
        "fastmath": {"contract"},
        **options,
    }
    if function is None:
        return lambda f: numba.njit(**options)(f)
    return numba.njit(**options)(function)


def inlined(function):
    """A serial helper compiled into each caller (``inline="always"``).

    Numba otherwise compiles a called function separately and calls it; for
    the row and tap helpers that costs a call per row or tap and hides the
    loop nest from LLVM's vectoriser (measured: a depthwise 3x3 layer ran
    2x slower with its per-tap helper called than inlined).
    """
    return jit(function, parallel=False, inline="always")
