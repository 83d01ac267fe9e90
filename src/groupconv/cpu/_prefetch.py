"""A software prefetch hint for the kernels (LLVM's ``llvm.prefetch``)."""

from __future__ import annotations

from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from ._common import U
from ._jit import inlined

__all__ = ["LINE", "prefetch", "prefetch_part"]


@intrinsic
def prefetch(typingctx, array, index):
    """Ask the CPU to bring ``array.flat[index]`` into cache; no effect on results.

    ``index`` must lie inside ``array`` (a prefetch never faults, but the
    kernels keep every address they form in bounds). Read prefetch, highest
    locality.
    """
    if not isinstance(array, types.Array) or not isinstance(index, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        byte_ptr = ir.IntType(8).as_pointer()
        int32 = ir.IntType(32)
        function_type = ir.FunctionType(ir.VoidType(), [byte_ptr, int32, int32, int32])
        llvm_prefetch = cgutils.get_or_insert_function(builder.module, function_type,
                                                       "llvm.prefetch.p0")
        address = builder.bitcast(builder.gep(data, [args[1]]), byte_ptr)
        # (address, read = 0, locality = 3 (keep in all levels), data cache = 1)
        builder.call(llvm_prefetch, [address, int32(0), int32(3), int32(1)])
        return context.get_dummy_value()

    return types.void(array, index), codegen


#: float32 values per 64-byte cache line: the prefetch step.
LINE = 16


@inlined
def prefetch_part(array, start, count, part, parts):
    """Prefetch the ``part``-th (``0 <= part < parts``) of ``parts`` equal runs of cache
    lines of the float32 ``array[start : start + count]`` (unsigned ``start`` and ``count``).

    A kernel spreads the fetch of data it will need next over the steps of
    its current work, one call per step.
    """
    lines = (count + U(LINE - 1)) // U(LINE)
    per = (lines + U(parts - 1)) // U(parts)
    for line in range(U(part) * per, min(U(part + 1) * per, lines)):
        prefetch(array, start + line * U(LINE))
