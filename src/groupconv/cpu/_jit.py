"""The one Numba wrapper every CPU kernel goes through."""

from __future__ import annotations

import numba

__all__ = ["inlined", "jit"]


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
