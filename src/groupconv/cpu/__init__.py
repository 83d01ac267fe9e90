"""CPU kernel families (Numba ``@njit(parallel=True)``), one module per family."""
