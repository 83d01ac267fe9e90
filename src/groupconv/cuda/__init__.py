"""GPU kernels (``numba.cuda``), their launch configuration and array interop.

The public functions reach this package through the dispatcher when a spec's
``device`` is ``"cuda"``; nothing here needs importing by users. Importing it
is cheap and works without numba-cuda or a GPU: ``numba.cuda`` is imported
by the kernel modules (guarded) and the kernels are compiled on first use.

Modules: :mod:`._interop` (CUDA array objects in and out), :mod:`._launch`
(threads per block, read at call time), :mod:`._device` (padding index map,
types), :mod:`.direct`, :mod:`.depthwise`, :mod:`.separable` (the
convolution kernels), :mod:`.elementwise` (conversions and small array
operations), :mod:`.driver` (spec in, result out). See ``docs/gpu.rst``.
"""

__all__: list[str] = []
