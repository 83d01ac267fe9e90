"""The one Numba wrapper every CPU kernel goes through."""

from __future__ import annotations

import numba

__all__ = ["jit"]


def jit(function=None, *, parallel: bool = True, cache: bool = True, **options):
    """``numba.njit`` with the project's defaults.

    ``cache=True`` so a signature compiles once per machine;
    ``error_model="numpy"`` so division never raises inside a kernel (the
    spec has already excluded every bad size); ``fastmath`` stays off so
    results are exact IEEE arithmetic and reproducible.

    Under ``NUMBA_BOUNDSCHECK=1`` kernels compile serially: Numba does not
    bounds-check array accesses lowered inside a ``prange`` body (an
    out-of-bounds access there goes unreported, numba/numba#4600, #9380),
    while the serial build of the same loop checks every access. The indices
    are the same either way; only the partitioning of the outer loop differs.
    """
    parallel = parallel and not numba.config.BOUNDSCHECK
    options = {"cache": cache, "parallel": parallel, "error_model": "numpy", **options}
    if function is None:
        return lambda f: numba.njit(**options)(f)
    return numba.njit(**options)(function)
