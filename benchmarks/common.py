"""Shared pieces of the asv suites: the shape suite and seeded, cached data.

The rows come from :data:`groupconv.bench.SHAPES`, the same definition that
``groupconv bench`` runs, so the two never drift apart (for commits older
than ``groupconv.bench``, from this checkout's copy of that file). Data builders are
seeded from the row's name (stable across processes and Python versions)
and cached, so every benchmark of a row reads the same arrays; groupconv
never modifies its inputs, so sharing them is safe.
"""

import functools
import importlib.util
import pathlib
import statistics
import sys
import time
import zlib

try:
    from groupconv.bench import LAYOUTS, SHAPES
except ImportError:
    # A commit from before groupconv.bench existed (asv run over old history):
    # take the suite from this checkout's bench.py, which needs only NumPy to
    # import (its cost() calls groupconv.cost, which every version has).
    _PATH = pathlib.Path(__file__).resolve().parent.parent / "src" / "groupconv" / "bench.py"
    _SPEC = importlib.util.spec_from_file_location("_groupconv_bench_suite", _PATH)
    _SUITE = importlib.util.module_from_spec(_SPEC)
    sys.modules[_SPEC.name] = _SUITE  # dataclasses look their module up there
    _SPEC.loader.exec_module(_SUITE)
    LAYOUTS, SHAPES = _SUITE.LAYOUTS, _SUITE.SHAPES

__all__ = [
    "CONV_SHAPES",
    "DEPTHWISE_SHAPES",
    "GROUPED_SHAPES",
    "LAYOUTS",
    "SEPARABLE_SHAPES",
    "SHAPE_NAMES",
    "TF_DATA_FORMATS",
    "get_shape",
    "inputs",
    "median_seconds",
]

_BY_NAME = {shape.name: shape for shape in SHAPES}

#: Every row of the suite.
SHAPE_NAMES = [shape.name for shape in SHAPES]
#: Rows that are one convolution (everything but the separable rows).
CONV_SHAPES = [s.name for s in SHAPES if s.pointwise is None]
#: Rows that are one depthwise convolution (``groups == C_in``).
DEPTHWISE_SHAPES = [s.name for s in SHAPES if s.kind == "depthwise"]
#: Rows with 1 < groups < C_in.
GROUPED_SHAPES = [s.name for s in SHAPES if s.kind == "grouped"]
#: Depthwise-then-pointwise rows (one fused ``separable_conv``).
SEPARABLE_SHAPES = [s.name for s in SHAPES if s.kind == "separable"]
#: ``groupconv.tf``'s data formats, with the groupconv layout of each.
TF_DATA_FORMATS = {"NHWC": "channels_last", "NCHW": "channels_first"}


def get_shape(name):
    """The :class:`groupconv.bench.BenchShape` called ``name``."""
    return _BY_NAME[name]


@functools.lru_cache(maxsize=4)
def inputs(name):
    """Seeded float32 data of row ``name``: ``x``, ``x_last``, ``weight``, ``pointwise``."""
    return get_shape(name).make_inputs(seed=zlib.crc32(name.encode()))


def median_seconds(fn, repeats=3):
    """Median wall time of ``repeats`` calls of ``fn`` (for the ``track_*`` rates)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
