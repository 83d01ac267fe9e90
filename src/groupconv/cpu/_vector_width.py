"""Ask LLVM for 512-bit vectors in the loop body being compiled.

On CPUs with AVX-512, LLVM's x86 tuning prefers 256-bit vectors (a guard
against the clock drop of 512-bit code on the first AVX-512 parts), so the
kernels' vectorised loops came out as ``ymm`` code. The function attribute
``"prefer-vector-width"="512"`` lifts that preference for the one function
that carries it, and only there: no process-wide LLVM option, no change to
the target machine Numba shares with other code. On CPUs without AVX-512 the
widest legal vector is 256 bits and the attribute changes nothing.

Measured (kernels alone, both builds in one process, alternating, medians):
grouped 3x3 with 32 groups of 4 channels (grouped_cl) 1.38-1.49x faster,
depthwise channels_last 1.00-1.08x, channels_first 1.02-1.11x. Each lane
computes the same operations in the same order, so results are identical
bit for bit.
"""

from __future__ import annotations

import os

from llvmlite import binding
from numba.core import config, types
from numba.extending import intrinsic

__all__ = ["PREFERRED_VECTOR_BITS", "REGISTER_VECTORS", "register_vectors", "wide_vectors"]

#: The vector width the kernels' loop bodies ask LLVM for.
PREFERRED_VECTOR_BITS = 512
_ATTRIBUTE = f'"prefer-vector-width"="{PREFERRED_VECTOR_BITS}"'


def register_vectors(cpu_name=None, cpu_features=None) -> int:
    """How many 16-lane float32 vectors (:mod:`._simd`) the CPU's registers hold.

    32 with AVX-512 (32 registers of 512 bits), else 8 (16 registers of 256
    bits, two per vector). Register blocks are sized from this: a block
    that needs more vectors than the registers hold spills its sums to the
    stack on every multiply-add (measured on AMD Zen 3, AVX2: the 6 x 64
    dense block of 24 sums ran at a fifth of its 6 x 16 build). The target
    is Numba's: ``NUMBA_CPU_FEATURES`` when set, else the host's features
    when ``NUMBA_CPU_NAME`` is unset or ``host``; a named CPU without
    features counts as 8 (a portable build: correct everywhere, perhaps
    slower). ``GROUPCONV_REGISTER_VECTORS=8`` or ``32`` overrides the count
    (for testing the other target's blocks: give that process its own
    ``NUMBA_CACHE_DIR``, since Numba's cache does not see the override).
    """
    override = os.environ.get("GROUPCONV_REGISTER_VECTORS")
    if override is not None:
        if override not in ("8", "32"):
            raise ValueError("GROUPCONV_REGISTER_VECTORS: expected 8 or 32, got "
                             f"{override!r}")
        return int(override)
    cpu_name = config.CPU_NAME if cpu_name is None else cpu_name
    cpu_features = config.CPU_FEATURES if cpu_features is None else cpu_features
    if cpu_features:
        wide = "+avx512f" in cpu_features.split(",")
    elif cpu_name and cpu_name != "host":
        wide = False
    else:
        wide = bool(binding.get_host_cpu_features().get("avx512f", False))
    return 32 if wide else 8


#: :func:`register_vectors` for the target the kernels compile for.
REGISTER_VECTORS = register_vectors()


@intrinsic
def wide_vectors(typingctx):
    """Mark the enclosing function ``"prefer-vector-width"="512"``; no run-time effect.

    Call it at the top of each ``prange`` body: Numba compiles a parallel
    loop's body as a function of its own, which is what the attribute must
    be on (inlined helpers are part of it).
    """

    def codegen(context, builder, signature, args):
        # llvmlite's attribute set only admits LLVM's enum attributes by
        # name; a string attribute is written out as given.
        set.add(builder.function.attributes, _ATTRIBUTE)
        return context.get_dummy_value()

    return types.void(), codegen
