"""Launch configuration of the GPU kernels, read at call time.

Every launch asks this module how many threads a block has and how many
blocks a grid may have, at the moment of the call, so that the simulator
tests can shrink both (Numba's CUDA simulator runs one Python thread per GPU
thread) without re-importing anything. The values come from, in order:

1. :func:`configure` (a context manager, or a plain call that sets them
   until changed again);
2. the environment variables ``GROUPCONV_CUDA_THREADS`` and
   ``GROUPCONV_CUDA_MAX_BLOCKS``;
3. the defaults: 256 threads per block, at most 65,535 * 32 blocks.

The kernels use grid-stride (or block-stride) loops, so any block count
covers any problem size: a small cap only means more iterations per thread,
which is how the tests exercise those loops.
"""

from __future__ import annotations

import contextlib
import os

__all__ = [
    "DEFAULT_MAX_BLOCKS",
    "DEFAULT_THREADS",
    "MAX_THREADS",
    "SHARED_MEMORY_BYTES",
    "blocks_for",
    "configure",
    "max_blocks",
    "threads_per_block",
]

DEFAULT_THREADS = 256
#: The largest block. The kernels use up to 128 registers per thread (see
#: docs/gpu.rst) and 255 x 256 fits any GPU's 64K registers per block, so a
#: block of at most 256 threads always launches.
MAX_THREADS = 256
#: Grid-stride loops cover the rest; the cap keeps a launch's block count an
#: int32 on every device (gridDim.x may reach 2**31 - 1 from compute 3.0 on).
DEFAULT_MAX_BLOCKS = 65_535 * 32
#: Dynamic shared memory a block may use without opting in (48 KiB on every
#: compute capability this package supports); plans that need more fall back
#: to a kernel without shared memory.
SHARED_MEMORY_BYTES = 48 * 1024

# What configure() set; None means "ask the environment".
_settings: dict[str, int | None] = {"threads": None, "max_blocks": None}


def _positive_int(text: str, name: str, upper: int | None = None) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {name}={text!r}") from None
    if value < 1 or (upper is not None and value > upper):
        bound = f"between 1 and {upper}" if upper is not None else ">= 1"
        raise ValueError(f"{name} must be {bound}, got {name}={value}")
    return value


def threads_per_block() -> int:
    """Threads per block for the next launch (1 to :data:`MAX_THREADS`).

    Returns
    -------
    int
        The value set by :func:`configure`, else ``GROUPCONV_CUDA_THREADS``,
        else 256.

    Raises
    ------
    ValueError
        If the environment variable is not an integer between 1 and
        :data:`MAX_THREADS`.
    """
    if _settings["threads"] is not None:
        return _settings["threads"]
    text = os.environ.get("GROUPCONV_CUDA_THREADS")
    if text is None:
        return DEFAULT_THREADS
    return _positive_int(text, "GROUPCONV_CUDA_THREADS", MAX_THREADS)


def max_blocks() -> int:
    """The most blocks a launch may have.

    Returns
    -------
    int
        The value set by :func:`configure`, else ``GROUPCONV_CUDA_MAX_BLOCKS``,
        else :data:`DEFAULT_MAX_BLOCKS`.

    Raises
    ------
    ValueError
        If the environment variable is not a positive integer.
    """
    if _settings["max_blocks"] is not None:
        return _settings["max_blocks"]
    text = os.environ.get("GROUPCONV_CUDA_MAX_BLOCKS")
    if text is None:
        return DEFAULT_MAX_BLOCKS
    return _positive_int(text, "GROUPCONV_CUDA_MAX_BLOCKS")


def blocks_for(work_items: int, per_block: int) -> int:
    """Blocks for ``work_items`` items, ``per_block`` per block, capped by :func:`max_blocks`."""
    needed = -(-work_items // max(per_block, 1))
    return max(1, min(needed, max_blocks()))


@contextlib.contextmanager
def _restore(previous):
    try:
        yield
    finally:
        _settings.update(previous)


def configure(threads: int | None = None, max_blocks: int | None = None):
    """Set the launch configuration; usable as a context manager to restore it after.

    Parameters
    ----------
    threads : int, optional
        Threads per block, 1 to :data:`MAX_THREADS`; ``None`` goes back to the environment
        variable or the default.
    max_blocks : int, optional
        The most blocks a launch may have; ``None`` goes back to the
        environment variable or the default.

    Returns
    -------
    contextlib.AbstractContextManager
        Leaving it restores the previous settings; ignoring it keeps the new
        ones.

    Raises
    ------
    ValueError
        If a value is out of range.

    Examples
    --------
    >>> from groupconv.cuda import _launch
    >>> with _launch.configure(threads=32, max_blocks=2):
    ...     _launch.threads_per_block(), _launch.blocks_for(1000, 32)
    (32, 2)
    """
    previous = dict(_settings)
    if threads is not None:
        threads = _positive_int(str(threads), "threads", MAX_THREADS)
    if max_blocks is not None:
        max_blocks = _positive_int(str(max_blocks), "max_blocks")
    _settings.update(threads=threads, max_blocks=max_blocks)
    return _restore(previous)
