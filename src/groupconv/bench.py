"""Benchmark groupconv on a fixed shape suite, against PyTorch, TensorFlow, JAX and SciPy.

The shape suite :data:`SHAPES` is the one definition used by both
``groupconv bench`` and the asv suites in ``benchmarks/``: float32, batch 8,
the depthwise, grouped, dense, pointwise and separable convolutions of
MobileNetV2, ConvNeXt and ResNeXt.

:func:`run_bench` times :func:`groupconv.conv` (or
:func:`groupconv.separable_conv`) in both layouts, checks each result
against :func:`groupconv.reference.conv` on the first batch item, computes
GFLOP/s and GB/s from :func:`groupconv.cost`, measures the machine's copy
bandwidth, and times every peer that can be imported, in the same process,
on the same data:

- ``torch``: ``torch.nn.functional.conv2d`` (two calls for a separable
  row), best of NCHW and ``channels_last`` memory format, under
  ``torch.no_grad()``, with ``torch.set_num_threads(threads)``;
- ``tensorflow``: ``tf.nn.depthwise_conv2d``, ``tf.nn.conv2d`` or
  ``tf.nn.separable_conv2d``, NHWC, eager, intra-op threads set to
  ``threads`` when TensorFlow has not started yet;
- ``jax``: ``jax.lax.conv_general_dilated`` with ``feature_group_count``,
  NHWC/HWIO, ``jax.jit``-compiled, ``block_until_ready()``; XLA keeps its
  own thread pool;
- ``scipy``: depthwise rows only, one ``scipy.ndimage.correlate`` call per
  output channel over the whole batch (single-threaded).

Every timing is the median of ``repeats`` calls, timed in ``rounds``
(:data:`FULL_ROUNDS` in a full run) that each visit every layout and peer
in turn after :data:`WARMUP_CALLS` warm-up calls, so JIT compilation
(Numba, XLA) is never timed. A ratio is the peer's best time
divided by groupconv's best layout time: above 1, groupconv is faster.

Importing this module is cheap (NumPy and the standard library only); the
peers, SciPy and matplotlib are imported inside the functions that use them.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import importlib
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TextIO

import numpy as np

__all__ = [
    "FULL_REPEATS",
    "LAYOUTS",
    "PEERS",
    "QUICK_REPEATS",
    "SETTLE_S",
    "SHAPES",
    "WARMUP_CALLS",
    "BenchShape",
    "add_arguments",
    "copy_bandwidth",
    "format_table",
    "get_shapes",
    "machine_info",
    "plot_results",
    "run_bench",
    "run_from_args",
    "shape_names",
    "time_call",
    "verify",
]

#: groupconv's two layouts, in the order they are reported.
LAYOUTS = ("channels_first", "channels_last")

#: Peers in the order they are reported; ``tf`` is accepted for ``tensorflow``.
PEERS = ("torch", "tensorflow", "jax", "scipy")
_PEER_ALIASES = {"tf": "tensorflow", "pytorch": "torch"}

#: Seconds of idle time before each measurement. Thread pools keep spinning
#: for a while after their last task (OpenBLAS about 0.1 s, OpenMP runtimes
#: milliseconds to 0.2 s), and on a machine with few cores a pool that spins
#: while another library runs slows it down (measured here: a groupconv call
#: timed right after NumPy's BLAS ran 2-5 times slower). Each library is
#: timed after this pause, so that it runs alone, as it would in a pipeline
#: of its own calls.
SETTLE_S = 0.25

#: Timed calls per measurement (after the warm-up calls) in quick and full mode.
QUICK_REPEATS = 3
FULL_REPEATS = 15
#: Rounds a full run splits each row's calls into: every round times every
#: layout and peer in turn, ``repeats / rounds`` calls each after its own
#: warm-up calls, and a median pools the rounds. On a shared machine a slow
#: phase of a few seconds then slows groupconv and its peers alike instead
#: of the one measured during it (seen on a 2-vCPU cloud VM: the same
#: kernel's 15-call median 2.9 ms in one run, 3.7 ms in the next, the peer
#: unchanged). Quick and custom runs take one round.
FULL_ROUNDS = 3

#: Untimed calls before each measurement, for every library alike. The
#: first absorbs JIT compilation; the next ones bring the row's data back
#: into the caches after the previous measurement ran on other arrays
#: (measured: the first 3-5 calls of a 38 MB depthwise layer right after
#: the other layout's run took 2-8x the steady time, which one warm-up call
#: left in a 15-call median).
WARMUP_CALLS = 3

#: Default relative tolerance of the check against the reference (float32).
RTOL = 1e-4

_SCHEMA = "groupconv-bench/1"
_COPY_BYTES = 64 * 2**20


@dataclasses.dataclass(frozen=True)
class BenchShape:
    """One row of the benchmark suite: a 2-D convolution on a float32 batch.

    Parameters
    ----------
    name : str
        Identifier, used by ``--shapes`` and as an asv parameter.
    c_in, height, width : int
        Input channels and spatial size.
    c_out : int
        Output channels of the (first) convolution.
    kernel, stride, padding : int
        Square kernel size, stride and symmetric zero padding.
    groups : int
        Number of groups (``groups == c_in`` is depthwise).
    pointwise : int, optional
        If set, the row is a separable convolution: the convolution above
        (which must be depthwise), then a 1x1 convolution from ``c_out`` to
        ``pointwise`` channels, run as one :func:`groupconv.separable_conv`.
    batch : int, optional
        Batch size, 8 by default.

    Examples
    --------
    >>> from groupconv.bench import BenchShape
    >>> s = BenchShape("tiny_dw", 4, 8, 8, 4, 3, 1, 1, 4, batch=2)
    >>> s.kind, s.input_shape("channels_last"), s.output_shape()
    ('depthwise', (2, 8, 8, 4), (2, 4, 8, 8))
    """

    name: str
    c_in: int
    height: int
    width: int
    c_out: int
    kernel: int
    stride: int
    padding: int
    groups: int
    pointwise: int | None = None
    batch: int = 8

    def __post_init__(self):
        """Check the fields: sizes >= 1, padding >= 0, groups dividing both channel counts."""
        values = dataclasses.asdict(self)
        for field in ("c_in", "height", "width", "c_out", "kernel", "stride", "groups", "batch"):
            if not isinstance(values[field], int) or values[field] < 1:
                raise ValueError(f"BenchShape.{field} must be an int >= 1, got {values[field]!r}")
        if self.padding < 0:
            raise ValueError(f"BenchShape.padding must be >= 0, got {self.padding!r}")
        if self.c_in % self.groups or self.c_out % self.groups:
            raise ValueError(
                f"groups={self.groups} must divide c_in={self.c_in} and c_out={self.c_out}"
            )
        if self.pointwise is not None and (self.groups != self.c_in or self.pointwise < 1):
            raise ValueError(
                f"a separable row needs a depthwise first step (groups == c_in) and "
                f"pointwise >= 1; got groups={self.groups}, c_in={self.c_in}, "
                f"pointwise={self.pointwise!r}"
            )

    @property
    def kind(self) -> str:
        """``"separable"``, ``"depthwise"``, ``"dense"`` or ``"grouped"``."""
        if self.pointwise is not None:
            return "separable"
        if self.groups == self.c_in:
            return "depthwise" if self.c_in > 1 else "dense"
        return "dense" if self.groups == 1 else "grouped"

    @property
    def depthwise(self) -> bool:
        """Whether the (first) convolution is depthwise (``groups == c_in``)."""
        return self.groups == self.c_in

    @property
    def options(self) -> dict[str, int]:
        """``stride`` and ``padding`` keywords of the (first) convolution."""
        return {"stride": self.stride, "padding": self.padding}

    @property
    def weight_shape(self) -> tuple[int, ...]:
        """``(c_out, c_in // groups, kernel, kernel)``."""
        return (self.c_out, self.c_in // self.groups, self.kernel, self.kernel)

    @property
    def pointwise_shape(self) -> tuple[int, int] | None:
        """``(pointwise, c_out)`` for a separable row, else ``None``."""
        return None if self.pointwise is None else (self.pointwise, self.c_out)

    def input_shape(self, layout: str = "channels_first") -> tuple[int, ...]:
        """Return the batched input's shape.

        Parameters
        ----------
        layout : {"channels_first", "channels_last"}, optional
            Layout of the input.

        Returns
        -------
        tuple of int
            ``(batch, c_in, height, width)`` or ``(batch, height, width, c_in)``.
        """
        if layout == "channels_last":
            return (self.batch, self.height, self.width, self.c_in)
        return (self.batch, self.c_in, self.height, self.width)

    def output_shape(self, layout: str = "channels_first") -> tuple[int, ...]:
        """Return the result's shape (the pointwise step's for a separable row).

        Parameters
        ----------
        layout : {"channels_first", "channels_last"}, optional
            Layout of the result.

        Returns
        -------
        tuple of int
            ``(batch, channels, out_h, out_w)`` or ``(batch, out_h, out_w, channels)``.
        """
        out = [
            (size + 2 * self.padding - self.kernel) // self.stride + 1
            for size in (self.height, self.width)
        ]
        channels = self.c_out if self.pointwise is None else self.pointwise
        if layout == "channels_last":
            return (self.batch, *out, channels)
        return (self.batch, channels, *out)

    def describe(self) -> str:
        """Return a one-line summary of the row.

        Returns
        -------
        str
            E.g. ``"144x56x56 -> 144, k3 s1 p1 g144, batch 8"``.
        """
        text = (
            f"{self.c_in}x{self.height}x{self.width} -> {self.c_out}, "
            f"k{self.kernel} s{self.stride} p{self.padding} g{self.groups}"
        )
        if self.pointwise is not None:
            text += f", then 1x1 -> {self.pointwise}"
        return f"{text}, batch {self.batch}"

    def scaled(self, *, batch: int | None = None, scale: float = 1.0) -> BenchShape:
        """Return this row with another batch size and/or spatial size (for quick tests).

        Parameters
        ----------
        batch : int, optional
            New batch size; unchanged by default.
        scale : float, optional
            Factor in ``(0, 1]`` for the height and width (rounded, and at
            least the kernel size).

        Returns
        -------
        BenchShape
            A new row with the same name.

        Raises
        ------
        ValueError
            If ``scale`` is outside ``(0, 1]`` or ``batch < 1``.
        """
        if not 0 < scale <= 1:
            raise ValueError(f"scale must be in (0, 1], got scale={scale!r}")

        def size(value):
            """Scale one spatial size, keeping at least the kernel size."""
            return max(self.kernel, round(value * scale))

        return dataclasses.replace(
            self,
            batch=self.batch if batch is None else batch,
            height=size(self.height),
            width=size(self.width),
        )

    def cost(self):
        """Return :func:`groupconv.cost` of the row (both steps added for a separable row).

        Returns
        -------
        groupconv.Cost
            Parameters, MACs, FLOPs and bytes read and written (channels first).
        """
        import groupconv

        first = groupconv.cost(self.input_shape(), self.weight_shape, groups=self.groups,
                               **self.options)
        if self.pointwise is None:
            return first
        return first + groupconv.cost(first.output_shape, (self.pointwise, self.c_out, 1, 1))

    def make_inputs(self, seed: int = 0) -> dict[str, np.ndarray | None]:
        """Build seeded float32 data for the row.

        Weights are scaled by ``1/sqrt(fan_in)`` so that results are of order
        one, which keeps the float32 check meaningful.

        Parameters
        ----------
        seed : int, optional
            Seed of :func:`numpy.random.default_rng`.

        Returns
        -------
        dict
            ``x`` (channels first), ``x_last`` (the same values, channels
            last, contiguous), ``weight`` and ``pointwise`` (``None`` unless
            the row is separable).
        """
        rng = np.random.default_rng(seed)
        x = rng.standard_normal(self.input_shape(), dtype=np.float32)
        fan_in = (self.c_in // self.groups) * self.kernel**2
        weight = rng.standard_normal(self.weight_shape, dtype=np.float32) / np.float32(
            math.sqrt(fan_in)
        )
        pointwise = None
        if self.pointwise is not None:
            pointwise = rng.standard_normal(self.pointwise_shape, dtype=np.float32)
            pointwise /= np.float32(math.sqrt(self.c_out))
        return {
            "x": x,
            "x_last": np.ascontiguousarray(x.transpose(0, 2, 3, 1)),
            "weight": weight,
            "pointwise": pointwise,
        }


#: The benchmark suite (float32, batch 8).
SHAPES: tuple[BenchShape, ...] = (
    BenchShape("dw3x3_mbv2_56", 144, 56, 56, 144, 3, 1, 1, 144),
    BenchShape("dw3x3_s2_112", 96, 112, 112, 96, 3, 2, 1, 96),
    BenchShape("dw3x3_14", 384, 14, 14, 384, 3, 1, 1, 384),
    BenchShape("dw7x7_convnext_56", 96, 56, 56, 96, 7, 1, 3, 96),
    BenchShape("dw3x3_mult2_28", 64, 28, 28, 128, 3, 1, 1, 64),
    BenchShape("grp32_resnext_56", 128, 56, 56, 128, 3, 1, 1, 32),
    BenchShape("grp2_28", 128, 28, 28, 128, 3, 1, 1, 2),
    BenchShape("dense3x3_56", 64, 56, 56, 64, 3, 1, 1, 1),
    BenchShape("pw1x1_56", 144, 56, 56, 24, 1, 1, 0, 1),
    BenchShape("separable_mbv2_56", 144, 56, 56, 144, 3, 1, 1, 144, pointwise=24),
)


def shape_names() -> list[str]:
    """Return the names of the suite's rows, in order.

    Returns
    -------
    list of str
        The ``name`` of each row of :data:`SHAPES`.

    Examples
    --------
    >>> from groupconv.bench import shape_names
    >>> shape_names()[:3]
    ['dw3x3_mbv2_56', 'dw3x3_s2_112', 'dw3x3_14']
    >>> len(shape_names())
    10
    """
    return [shape.name for shape in SHAPES]


def get_shapes(
    selection: str | Iterable[str | BenchShape] | None = None,
    *,
    batch: int | None = None,
    scale: float = 1.0,
) -> list[BenchShape]:
    """Select rows of the suite by name (or custom rows), optionally scaled down.

    Parameters
    ----------
    selection : str, iterable of str or BenchShape, optional
        ``None`` for the whole suite; a comma-separated string or names from
        :func:`shape_names`; :class:`BenchShape` objects are used as given.
    batch : int, optional
        Replace every row's batch size.
    scale : float, optional
        Multiply heights and widths by this factor in ``(0, 1]``.

    Returns
    -------
    list of BenchShape
        In the order given.

    Raises
    ------
    ValueError
        An unknown or repeated name, an empty selection, ``batch < 1`` or a
        ``scale`` outside ``(0, 1]``.

    Examples
    --------
    >>> from groupconv.bench import get_shapes
    >>> [s.name for s in get_shapes("dw3x3_14,pw1x1_56")]
    ['dw3x3_14', 'pw1x1_56']
    >>> get_shapes(["dw3x3_14"], batch=1, scale=0.5)[0].input_shape()
    (1, 384, 7, 7)
    """
    by_name = {shape.name: shape for shape in SHAPES}
    if selection is None:
        chosen = list(SHAPES)
    else:
        items = selection.split(",") if isinstance(selection, str) else list(selection)
        chosen = []
        for item in items:
            if isinstance(item, BenchShape):
                chosen.append(item)
                continue
            name = str(item).strip()
            if name not in by_name:
                raise ValueError(
                    f"unknown shape {name!r} in shapes={selection!r}; "
                    f"expected names from: {', '.join(by_name)}"
                )
            chosen.append(by_name[name])
    if not chosen:
        raise ValueError(f"shapes={selection!r} selects no shape")
    names = [shape.name for shape in chosen]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"shapes={selection!r} names {', '.join(repeated)} more than once")
    if batch is not None and (not isinstance(batch, int) or batch < 1):
        raise ValueError(f"batch must be an int >= 1, got batch={batch!r}")
    if batch is None and scale == 1.0:
        return chosen
    return [shape.scaled(batch=batch, scale=scale) for shape in chosen]


# --------------------------------------------------------------------------- measuring


def time_call(
    fn: Callable[[], Any], *, repeats: int = QUICK_REPEATS, warmup: int = 1, settle: float = 0.0
) -> tuple[list[float], Any]:
    """Wait ``settle`` seconds, call ``fn`` ``warmup`` times untimed, then ``repeats`` times timed.

    Parameters
    ----------
    fn : callable
        Takes no argument; must return only once its work is finished (a
        GPU or XLA call synchronises inside ``fn``).
    repeats : int, optional
        Timed calls (>= 1).
    warmup : int, optional
        Untimed calls first (>= 1), which absorb JIT compilation.
    settle : float, optional
        Seconds to sleep first, so that the thread pools of whatever ran
        before (see :data:`SETTLE_S`) have stopped spinning.

    Returns
    -------
    times : list of float
        Seconds per timed call (:func:`time.perf_counter`).
    result
        What the first warm-up call returned, for checking.

    Examples
    --------
    >>> from groupconv.bench import time_call
    >>> times, result = time_call(lambda: 2 + 2, repeats=3)
    >>> len(times), result
    (3, 4)
    """
    if repeats < 1 or warmup < 1:
        raise ValueError(f"repeats and warmup must be >= 1, got {repeats=}, {warmup=}")
    if settle > 0:
        time.sleep(settle)
    result = fn()
    for _ in range(warmup - 1):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times, result


def _summary(times: list[float]) -> dict[str, Any]:
    """Median, minimum and all of ``times`` (seconds), as a JSON-ready dict."""
    return {"median_s": statistics.median(times), "min_s": min(times), "times_s": times}


def copy_bandwidth(nbytes: int = _COPY_BYTES, *, repeats: int = 5) -> float:
    """The machine's copy bandwidth in GB/s, counting bytes read plus bytes written.

    Times :func:`numpy.copyto` between two float32 arrays of ``nbytes``
    each (64 MiB by default, larger than the caches) and returns
    ``2 * nbytes / median_time / 1e9``. NumPy copies on one thread.

    Parameters
    ----------
    nbytes : int, optional
        Size of each array in bytes.
    repeats : int, optional
        Timed copies, after one untimed copy that faults the pages in.

    Returns
    -------
    float
        GB/s (1 GB = 1e9 bytes).

    Examples
    --------
    >>> from groupconv.bench import copy_bandwidth
    >>> copy_bandwidth(2**16, repeats=2) > 0
    True
    """
    count = max(1, nbytes // 4)
    src = np.ones(count, dtype=np.float32)
    dst = np.empty_like(src)
    times, _ = time_call(lambda: np.copyto(dst, src), repeats=repeats)
    return 2 * src.nbytes / statistics.median(times) / 1e9


def verify(
    result: Any, expected: np.ndarray, *, layout: str = "channels_first", rtol: float = RTOL
) -> dict[str, Any]:
    """Compare the first batch item of ``result`` with the float64 reference.

    Parameters
    ----------
    result : array_like
        A batched result in ``layout`` (only ``result[:1]`` is read).
    expected : numpy.ndarray
        The reference result for the first batch item, ``(1, C, H, W)``.
    layout : {"channels_first", "channels_last"}, optional
        Layout of ``result``.
    rtol : float, optional
        Allowed error relative to ``max(1, max|expected|)``.

    Returns
    -------
    dict
        ``ok`` (bool), ``max_abs_error`` and ``tolerance`` (float or None),
        and ``reason`` when ``ok`` is False.

    Examples
    --------
    >>> import numpy as np
    >>> from groupconv.bench import verify
    >>> want = np.ones((1, 2, 3, 3))
    >>> verify(np.ones((4, 3, 3, 2), np.float32), want, layout="channels_last")["ok"]
    True
    >>> verify(np.zeros((4, 2, 3, 3)), want)["ok"]
    False
    """
    first = np.asarray(result)[:1]
    if layout == "channels_last" and first.ndim >= 2:
        first = np.moveaxis(first, -1, 1)
    tolerance = rtol * max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    if first.shape != expected.shape:
        return {"ok": False, "max_abs_error": None, "tolerance": tolerance,
                "reason": f"shape {first.shape} != expected {expected.shape}"}
    error = float(np.max(np.abs(first.astype(np.float64) - expected), initial=0.0))
    if not math.isfinite(error):
        return {"ok": False, "max_abs_error": None, "tolerance": tolerance,
                "reason": "non-finite values in the result"}
    check = {"ok": error <= tolerance, "max_abs_error": error, "tolerance": tolerance}
    if not check["ok"]:
        check["reason"] = f"max abs error {error:.3g} > tolerance {tolerance:.3g}"
    return check


def _reference(shape: BenchShape, data: dict) -> np.ndarray:
    """Compute the float64 reference result of the first batch item, channels first.

    Parameters
    ----------
    shape : BenchShape
        The row.
    data : dict
        From :meth:`BenchShape.make_inputs`.

    Returns
    -------
    numpy.ndarray
        ``(1, C, H, W)``, from :mod:`groupconv.reference`.
    """
    from groupconv import reference

    x = data["x"][:1]
    if shape.pointwise is not None:
        return reference.separable_conv(x, data["weight"], data["pointwise"], **shape.options)
    return reference.conv(x, data["weight"], groups=shape.groups, **shape.options)


def _groupconv_call(shape: BenchShape, data: dict, layout: str) -> Callable[[], np.ndarray]:
    """A no-argument call of groupconv on ``data`` in ``layout``.

    ``groupconv.conv`` (or ``separable_conv``) is looked up at call time, so
    that tests can replace it.
    """
    import groupconv

    x = data["x"] if layout == "channels_first" else data["x_last"]
    weight, pointwise = data["weight"], data["pointwise"]
    if shape.pointwise is not None:
        return lambda: groupconv.separable_conv(x, weight, pointwise, layout=layout,
                                                **shape.options)
    return lambda: groupconv.conv(x, weight, groups=shape.groups, layout=layout, **shape.options)


# --------------------------------------------------------------------------- peers
#
# Each peer has a loader ``load(threads) -> (module, version, notes, restore)``
# (raising ImportError when it is not installed) and a ``prepare(module,
# shape, data)`` that returns ``{variant: (timed_call, to_nchw)}`` or a
# string saying why the row is skipped. ``to_nchw`` turns what the timed call
# returned into a NumPy array in (N, C, H, W) order, outside the timing.


def _noop() -> None:
    """Restore nothing (for peers whose settings need no restoring)."""
    return None


def _load_torch(threads: int):
    """Import PyTorch and set its intra-op threads; the restorer sets them back."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    return torch, torch.__version__, f"{threads} threads", lambda: torch.set_num_threads(before)


def _prepare_torch(torch, shape: BenchShape, data: dict):
    """``F.conv2d`` (then a 1x1 ``F.conv2d`` for a separable row), NCHW and channels_last."""
    conv2d = torch.nn.functional.conv2d
    x = torch.from_numpy(data["x"])
    weight = torch.from_numpy(data["weight"])
    pointwise = None
    if data["pointwise"] is not None:
        pointwise = torch.from_numpy(data["pointwise"][:, :, None, None].copy())

    def make(xt, wt, pwt):
        """The timed call on tensors in one memory format."""

        def run():
            """Run the row under ``torch.no_grad()``."""
            with torch.no_grad():
                y = conv2d(xt, wt, stride=shape.stride, padding=shape.padding,
                           groups=shape.groups)
                if pwt is not None:
                    y = conv2d(y, pwt)
            return y

        return run

    def to_nchw(y):
        """First batch item as a contiguous NCHW array."""
        return y[:1].contiguous().numpy()

    last = torch.channels_last
    return {
        "NCHW": (make(x, weight, pointwise), to_nchw),
        "channels_last": (
            make(
                x.contiguous(memory_format=last),
                weight.contiguous(memory_format=last),
                None if pointwise is None else pointwise.contiguous(memory_format=last),
            ),
            to_nchw,
        ),
    }


def _load_tensorflow(threads: int):
    """Import TensorFlow (quietly) and set its thread pools if it has not started yet."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        notes = f"{threads} intra-op threads"
    except RuntimeError:  # the runtime had started already: its settings stand
        notes = "threads as TensorFlow had them: runtime already started"
    return tf, tf.__version__, notes, _noop


def _tf_padding(shape: BenchShape):
    """TensorFlow's padding argument for the row.

    Parameters
    ----------
    shape : BenchShape
        The row.

    Returns
    -------
    str or list
        ``"VALID"`` or ``"SAME"`` where TensorFlow's rule gives the row's
        padding, else explicit NHWC pairs.
    """
    if shape.padding == 0:
        return "VALID"
    same = []
    for size in (shape.height, shape.width):
        out = -(-size // shape.stride)
        total = max((out - 1) * shape.stride + shape.kernel - size, 0)
        same.append((total // 2, total - total // 2))
    if all(pair == (shape.padding, shape.padding) for pair in same):
        return "SAME"
    p = shape.padding
    return [[0, 0], [p, p], [p, p], [0, 0]]


def _prepare_tensorflow(tf, shape: BenchShape, data: dict):
    """``tf.nn.depthwise_conv2d``, ``separable_conv2d`` or ``conv2d`` on NHWC data, eager."""
    x = tf.constant(data["x_last"])
    strides = [1, shape.stride, shape.stride, 1]
    padding = _tf_padding(shape)
    k = shape.kernel
    if shape.depthwise and shape.c_in > 1:
        multiplier = shape.c_out // shape.c_in
        depthwise = tf.constant(
            data["weight"].reshape(shape.c_in, multiplier, k, k).transpose(2, 3, 0, 1).copy()
        )
        if shape.pointwise is not None:
            if not isinstance(padding, str):
                return "tf.nn.separable_conv2d takes only 'SAME' or 'VALID' padding"
            pointwise = tf.constant(data["pointwise"].T[None, None].copy())

            def run():
                """The separable row through ``tf.nn.separable_conv2d``."""
                return tf.nn.separable_conv2d(x, depthwise, pointwise, strides, padding)
        else:

            def run():
                """The depthwise row through ``tf.nn.depthwise_conv2d``."""
                return tf.nn.depthwise_conv2d(x, depthwise, strides, padding)
    else:
        filters = tf.constant(data["weight"].transpose(2, 3, 1, 0).copy())

        def run():
            """The (grouped) row through ``tf.nn.conv2d``."""
            return tf.nn.conv2d(x, filters, strides, padding)

    return {"NHWC": (run, lambda y: np.moveaxis(y[:1].numpy(), -1, 1))}


def _load_jax(threads: int):
    """Import JAX on the CPU; XLA's thread pool cannot be set after start-up, so it is not."""
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import jax

    return jax, jax.__version__, "threads: XLA default pool, not settable here", _noop


def _prepare_jax(jax, shape: BenchShape, data: dict):
    """``lax.conv_general_dilated`` (NHWC, HWIO) with ``feature_group_count``, jit-compiled."""
    from jax import lax

    numbers = ("NHWC", "HWIO", "NHWC")
    pads = [(shape.padding, shape.padding)] * 2
    strides = (shape.stride, shape.stride)
    groups = shape.groups

    def f(x, w, pw):
        """The row as one function for ``jax.jit``."""
        y = lax.conv_general_dilated(x, w, strides, pads, dimension_numbers=numbers,
                                     feature_group_count=groups)
        if pw is not None:
            y = lax.conv_general_dilated(y, pw, (1, 1), "VALID", dimension_numbers=numbers)
        return y

    compiled = jax.jit(f)
    x = jax.device_put(data["x_last"])
    w = jax.device_put(data["weight"].transpose(2, 3, 1, 0).copy())
    pw = None
    if data["pointwise"] is not None:
        pw = jax.device_put(data["pointwise"].T[None, None].copy())

    def run():
        """The compiled row, waiting for its result."""
        return compiled(x, w, pw).block_until_ready()

    return {"NHWC/jit": (run, lambda y: np.moveaxis(np.asarray(y[:1]), -1, 1))}


def _load_scipy(threads: int):
    """Import SciPy's ``ndimage`` (serial: ``threads`` does not apply)."""
    import scipy
    import scipy.ndimage

    return scipy, scipy.__version__, "1 thread: scipy.ndimage is serial", _noop


def _prepare_scipy(scipy, shape: BenchShape, data: dict):
    """One ``scipy.ndimage.correlate`` per output channel over the batch; depthwise rows only."""
    if shape.kind != "depthwise":
        return "SciPy rows are depthwise only"
    if shape.kernel % 2 == 0 or shape.padding != shape.kernel // 2:
        return "scipy.ndimage.correlate centres the kernel: needs an odd kernel, padding k//2"
    correlate = scipy.ndimage.correlate
    x, weight = data["x"], data["weight"]
    multiplier = shape.c_out // shape.c_in
    s = shape.stride
    out = np.empty(shape.output_shape(), dtype=np.float32)

    def run():
        """Correlate every channel with its filters; subsample for a stride."""
        for c in range(shape.c_in):
            plane = x[:, c]
            for q in range(multiplier):
                o = c * multiplier + q
                kernel = weight[o, :1]  # (1, k, k): no mixing across the batch
                if s == 1:
                    correlate(plane, kernel, output=out[:, o], mode="constant")
                else:
                    out[:, o] = correlate(plane, kernel, mode="constant")[:, ::s, ::s]
        return out

    return {"ndimage": (run, lambda y: y[:1])}


_PEER_FUNCTIONS = {
    "torch": (_load_torch, _prepare_torch),
    "tensorflow": (_load_tensorflow, _prepare_tensorflow),
    "jax": (_load_jax, _prepare_jax),
    "scipy": (_load_scipy, _prepare_scipy),
}


def _peer_names(peers: str | Iterable[str] | None) -> list[str]:
    """Normalise ``peers`` (names, aliases, a comma-separated string, ``"none"``) to names."""
    if peers is None:
        return list(PEERS)
    items = peers.split(",") if isinstance(peers, str) else list(peers)
    names = []
    for item in items:
        name = _PEER_ALIASES.get(item.strip().lower(), item.strip().lower())
        if name in ("", "none"):
            continue
        if name not in PEERS:
            raise ValueError(
                f"unknown peer {item!r} in peers={peers!r}; expected some of: "
                f"{', '.join(PEERS)} (or 'none')"
            )
        if name not in names:
            names.append(name)
    return names


def _error_text(exc: BaseException) -> str:
    """The exception's type and the first line of its message, at most 300 characters."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


# --------------------------------------------------------------------------- progress


class _Progress:
    """A one-line progress bar on a stream (stderr by default).

    Redrawn in place on a terminal, one line per step elsewhere (a log),
    silent when disabled. No dependency.

    Parameters
    ----------
    total : int
        Steps in all (may be set later through ``total``).
    stream : file, optional
        Where to draw; ``sys.stderr`` by default.
    enabled : bool, optional
        Draw nothing if False.
    width : int, optional
        Characters of the bar.
    """

    def __init__(self, total: int, *, stream: TextIO | None = None, enabled: bool = True,
                 width: int = 24):
        """Set up the bar; nothing is drawn yet."""
        self.total = max(1, total)
        self.done = 0
        self.stream = sys.stderr if stream is None else stream
        self.enabled = enabled
        self.width = width
        isatty = getattr(self.stream, "isatty", None)
        self.tty = bool(isatty and isatty())

    def _draw(self, label: str) -> None:
        """Draw the bar with ``label`` after it."""
        if not self.enabled:
            return
        filled = self.width * min(self.done, self.total) // self.total
        bar = "#" * filled + "." * (self.width - filled)
        line = f"[{bar}] {self.done}/{self.total} {label}"
        if self.tty:
            self.stream.write(f"\r{line[:110]:<110}")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def show(self, label: str) -> None:
        """Say what is running now, without advancing (terminal only).

        Parameters
        ----------
        label : str
            What is running.
        """
        if self.tty:
            self._draw(label)

    def step(self, label: str) -> None:
        """Count one step as finished and draw the bar.

        Parameters
        ----------
        label : str
            The step that finished.
        """
        self.done += 1
        self._draw(label)

    def close(self) -> None:
        """End the terminal line, if the bar was drawn in place."""
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()


# --------------------------------------------------------------------------- the runner


def _versions() -> dict[str, str | None]:
    """Versions of Python, groupconv and its dependencies (SciPy without importing it)."""
    from importlib import metadata

    import numba

    import groupconv

    def dist(name):
        """Installed version of distribution ``name``, or None."""
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    return {
        "groupconv": groupconv.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "scipy": dist("scipy"),
    }


def machine_info() -> dict[str, Any]:
    """Describe this machine: platform, processor and CPU counts.

    Returns
    -------
    dict
        ``platform``, ``machine``, ``processor`` (the model name from
        ``/proc/cpuinfo`` where there is one), ``cpu_count`` and
        ``usable_cpus``.

    Examples
    --------
    >>> from groupconv.bench import machine_info
    >>> sorted(machine_info())
    ['cpu_count', 'machine', 'platform', 'processor', 'usable_cpus']
    """
    processor = platform.processor() or None
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    processor = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": processor,
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable,
    }


def _set_numba_threads(threads: int) -> int:
    """Set Numba's thread count.

    Parameters
    ----------
    threads : int
        From 1 to ``numba.config.NUMBA_NUM_THREADS``.

    Returns
    -------
    int
        The previous thread count, to restore.

    Raises
    ------
    ValueError
        If ``threads`` is not an int in that range.
    """
    import numba

    limit = numba.config.NUMBA_NUM_THREADS
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ValueError(f"threads must be an int >= 1, got threads={threads!r}")
    if threads > limit:
        raise ValueError(
            f"threads={threads} is more than Numba's NUMBA_NUM_THREADS={limit}, the most this "
            f"process can use; start Python with NUMBA_NUM_THREADS={threads} to allow it"
        )
    before = numba.get_num_threads()
    numba.set_num_threads(threads)
    return before


def _peer_entry(timings, best_gc):
    """One peer's entry of a row from its variants' timings; never raises.

    Parameters
    ----------
    timings : dict
        Per variant, ``{"times": [...], "check": {...}}`` or ``{"error": text}``.
    best_gc : float or None
        The best groupconv time on the row, for the ratio.

    Returns
    -------
    dict
        ``status`` and ``variants`` and, where something was timed,
        ``best_variant``, ``best_s`` and ``ratio``; ``reason`` when the
        status is not ``"ok"``.
    """
    entry: dict[str, Any] = {"variants": {}}
    for variant, timing in timings.items():
        if "error" in timing:
            entry["variants"][variant] = {"error": timing["error"]}
        else:
            entry["variants"][variant] = {**_summary(timing["times"]), "check": timing["check"]}
    timed = {v: r for v, r in entry["variants"].items() if "median_s" in r}
    if not timed:
        reasons = "; ".join(f"{v}: {r['error']}" for v, r in entry["variants"].items())
        return {**entry, "status": "error", "reason": reasons}
    best = min(timed, key=lambda v: timed[v]["median_s"])
    entry["best_variant"] = best
    entry["best_s"] = timed[best]["median_s"]
    entry["ratio"] = entry["best_s"] / best_gc if best_gc else None
    ok = all(r["check"]["ok"] for r in timed.values())
    entry["status"] = "ok" if ok else "mismatch"
    if not ok:
        entry["reason"] = "; ".join(
            f"{v}: {r['check']['reason']}" for v, r in timed.items() if not r["check"]["ok"]
        )
    return entry


def _time_rounds(calls, repeats, rounds, bar, label):
    """Time every call of a row in ``rounds`` rounds (see :data:`FULL_ROUNDS`); never raises.

    Parameters
    ----------
    calls : dict
        ``key -> (call, check)``: a no-argument call and the function that
        checks its first result (returns a :func:`verify` dict).
    repeats : int
        Timed calls per key in all, ``ceil(repeats / rounds)`` a round.
    rounds : int
        Rounds.
    bar : _Progress
        Progress bar, advanced once per key and round.
    label : str
        The row's name, for the bar.

    Returns
    -------
    dict
        Per key, ``{"times": [...], "check": {...}}``, or ``{"error":
        text}`` for a call that raised (it is not called again).
    """
    per_round = -(-repeats // rounds)
    timings: dict[Any, dict[str, Any]] = {key: {"times": []} for key in calls}
    for _ in range(rounds):
        for key, (call, check) in calls.items():
            bar.show(f"{label}: {' '.join(key)}")
            timing = timings[key]
            if "error" not in timing:
                try:
                    times, result = time_call(call, repeats=per_round, warmup=WARMUP_CALLS,
                                              settle=SETTLE_S)
                    if "check" not in timing:
                        timing["check"] = check(result)
                    timing["times"].extend(times)
                except Exception as exc:
                    timings[key] = {"error": _error_text(exc)}
            bar.step(f"{label}: {' '.join(key)}")
    return timings


def run_bench(
    shapes: str | Iterable[str | BenchShape] | None = None,
    *,
    layouts: Sequence[str] = LAYOUTS,
    peers: str | Iterable[str] | None = None,
    threads: int = 2,
    full: bool = False,
    repeats: int | None = None,
    rounds: int | None = None,
    batch: int | None = None,
    scale: float = 1.0,
    seed: int = 0,
    rtol: float = RTOL,
    copy_bytes: int = _COPY_BYTES,
    progress: bool | TextIO = False,
) -> dict[str, Any]:
    """Time groupconv and its peers on the shape suite; check every result.

    For each row: build seeded float32 data; compute the float64 reference
    of the first batch item; for each groupconv layout, time
    :func:`groupconv.conv` (:func:`groupconv.separable_conv` for a
    separable row) and check its warm-up result; then time and check each
    importable peer, the calls split into ``rounds`` that each visit every
    layout and peer in turn (:data:`FULL_ROUNDS`). Nothing raises for one
    failing row or peer: failures are recorded in the result.

    Parameters
    ----------
    shapes : str or iterable of str or BenchShape, optional
        Rows to run, as for :func:`get_shapes`; the whole suite by default.
    layouts : sequence of str, optional
        The groupconv layouts to time, some of :data:`LAYOUTS`.
    peers : str or iterable of str, optional
        Some of :data:`PEERS` (``"tf"`` means ``"tensorflow"``), as names or
        a comma-separated string; ``()`` or ``"none"`` for no peer. All by
        default; a peer that cannot be imported is reported as unavailable.
    threads : int, optional
        Threads for Numba (:func:`numba.set_num_threads`) and PyTorch (and
        TensorFlow if it has not started); restored afterwards.
    full : bool, optional
        :data:`FULL_REPEATS` timed calls per measurement instead of
        :data:`QUICK_REPEATS`.
    repeats : int, optional
        Timed calls per measurement, overriding ``full``.
    rounds : int, optional
        Rounds the timed calls are split into, ``ceil(repeats / rounds)``
        a round; :data:`FULL_ROUNDS` for a full run, else 1.
    batch : int, optional
        Override every row's batch size (for tests and quick looks).
    scale : float, optional
        Multiply every row's height and width, in ``(0, 1]``.
    seed : int, optional
        Seed of the data.
    rtol : float, optional
        Tolerance of the checks, relative to ``max(1, max|reference|)``.
    copy_bytes : int, optional
        Array size for the copy-bandwidth measurement.
    progress : bool or file, optional
        Draw a progress bar on stderr (or on the given stream).

    Returns
    -------
    dict
        JSON-serialisable: ``schema``, ``created``, ``mode``, ``repeats``
        (timed calls per measurement), ``rounds``, ``threads``, ``machine``,
        ``versions``, ``copy_gbps``, ``peers``
        (per peer: ``available``, ``version`` or ``reason``, ``notes``),
        ``ok`` (every groupconv result matched the reference) and
        ``shapes``: one dict per row with its ``definition``, ``flops``,
        ``bytes``, ``groupconv`` (per layout: ``median_s``, ``min_s``,
        ``times_s``, ``check``), ``best_layout``, ``best_s``, ``gflops``,
        ``gbps``, ``copy_fraction``, ``verified`` and ``peers`` (per peer:
        ``status`` of ``"ok"``, ``"mismatch"``, ``"skipped"``, ``"error"``
        or ``"unavailable"``, and for timed peers ``variants``,
        ``best_variant``, ``best_s`` and ``ratio`` = peer time / groupconv
        time, above 1 when groupconv is faster).

    Raises
    ------
    ValueError
        An unknown shape, layout or peer, or a bad ``threads``, ``batch``,
        ``scale``, ``repeats`` or ``rounds``.

    See Also
    --------
    format_table : The plain-text report of the result.
    plot_results : A bar chart of the result.
    shape_names : The rows of the suite.

    Examples
    --------
    The suite's rows are plain data:

    >>> from groupconv.bench import SHAPES, run_bench
    >>> [s.name for s in SHAPES if s.kind == "grouped"]
    ['grp32_resnext_56', 'grp2_28']

    A run (seconds to minutes; ``groupconv bench`` on the command line):

    >>> results = run_bench("dw3x3_14", peers="torch")  # doctest: +SKIP
    >>> results["shapes"][0]["peers"]["torch"]["ratio"]  # doctest: +SKIP
    0.62
    """
    selected = get_shapes(shapes, batch=batch, scale=scale)
    layouts = list(layouts)
    for layout in layouts:
        if layout not in LAYOUTS:
            raise ValueError(f"layouts must be some of {LAYOUTS}, got {layout!r}")
    if not layouts:
        raise ValueError("layouts selects no layout")
    peer_names = _peer_names(peers)
    mode = "full" if full else "quick"
    if repeats is None:
        repeats = FULL_REPEATS if full else QUICK_REPEATS
    else:
        mode = "custom"
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an int >= 1, got repeats={repeats!r}")
    if rounds is None:
        rounds = FULL_ROUNDS if mode == "full" else 1
    if not isinstance(rounds, int) or not 1 <= rounds <= repeats:
        raise ValueError(f"rounds must be an int from 1 to repeats ({repeats}), "
                         f"got rounds={rounds!r}")

    import numba

    stream = progress if hasattr(progress, "write") else None
    bar = _Progress(0, stream=stream, enabled=bool(progress))
    numba_before = _set_numba_threads(threads)
    restores: list[Callable[[], None]] = []
    try:
        peer_info: dict[str, dict[str, Any]] = {}
        loaded: dict[str, Any] = {}
        for name in peer_names:
            bar.show(f"importing {name}")
            load, _ = _PEER_FUNCTIONS[name]
            try:
                module, version, notes, restore = load(threads)
            except ImportError as exc:
                peer_info[name] = {"available": False, "reason": f"not installed: {exc}"}
                continue
            except Exception as exc:
                peer_info[name] = {"available": False, "reason": _error_text(exc)}
                continue
            restores.append(restore)
            loaded[name] = module
            peer_info[name] = {"available": True, "version": version, "notes": notes}

        bar.total = 1 + len(selected) * rounds * (len(layouts) + len(loaded))
        bar.show("copy bandwidth")
        copy_gbps = copy_bandwidth(copy_bytes, repeats=max(repeats, 3))
        bar.step("copy bandwidth")

        rows = []
        for shape in selected:
            bar.show(f"{shape.name}: data")
            rows.append(_run_shape(shape, layouts, loaded, repeats, rounds, seed, rtol, copy_gbps,
                                   bar))
        layer = _threading_layer(numba)
    finally:
        for restore in restores:
            try:
                restore()
            except Exception:
                pass
        numba.set_num_threads(numba_before)
        bar.close()

    versions = _versions()
    for name, info in peer_info.items():
        if info["available"]:
            versions[name] = info["version"]
    return {
        "schema": _SCHEMA,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "mode": mode,
        "repeats": -(-repeats // rounds) * rounds,
        "rounds": rounds,
        "warmup": WARMUP_CALLS,
        "threads": threads,
        "numba_threading_layer": layer,
        "dtype": "float32",
        "seed": seed,
        "rtol": rtol,
        "batch": batch,
        "scale": scale,
        "layouts": layouts,
        "machine": machine_info(),
        "versions": versions,
        "copy_gbps": copy_gbps,
        "peers": peer_info,
        "ok": all(row["verified"] for row in rows),
        "shapes": rows,
    }


def _threading_layer(numba) -> str | None:
    """Numba's threading layer, or None if no parallel kernel has run."""
    try:
        return numba.threading_layer()
    except ValueError:
        return None


def _run_shape(shape, layouts, loaded, repeats, rounds, seed, rtol, copy_gbps,
               bar) -> dict[str, Any]:
    """Measure one row: groupconv in each layout and each loaded peer, in rounds.

    Parameters
    ----------
    shape : BenchShape
        The row.
    layouts : list of str
        The groupconv layouts to time.
    loaded : dict
        Imported peers by name.
    repeats : int
        Timed calls per measurement.
    rounds : int
        Rounds the calls are split into (see :data:`FULL_ROUNDS`).
    seed : int
        Seed of the data.
    rtol : float
        Tolerance of the checks.
    copy_gbps : float
        The machine's copy bandwidth, for ``copy_fraction``.
    bar : _Progress
        Progress bar to advance.

    Returns
    -------
    dict
        The row's entry of ``run_bench(...)["shapes"]``.
    """
    bar.show(f"{shape.name}: data")
    data = shape.make_inputs(seed)
    cost = shape.cost()
    expected = _reference(shape, data)
    row: dict[str, Any] = {
        "name": shape.name,
        "kind": shape.kind,
        "description": shape.describe(),
        "definition": dataclasses.asdict(shape),
        "input_shape": list(shape.input_shape()),
        "output_shape": list(shape.output_shape()),
        "macs": cost.macs,
        "flops": cost.flops,
        "bytes": cost.bytes_read + cost.bytes_written,
        "groupconv": {},
        "peers": {},
    }
    calls: dict[tuple[str, str], tuple[Callable[[], Any], Callable[[Any], dict]]] = {}
    for layout in layouts:
        calls[("groupconv", layout)] = (
            _groupconv_call(shape, data, layout),
            functools.partial(verify, expected=expected, layout=layout, rtol=rtol))
    for name, module in loaded.items():
        _, prepare = _PEER_FUNCTIONS[name]
        try:
            variants = prepare(module, shape, data)
        except Exception as exc:
            row["peers"][name] = {"status": "error", "reason": _error_text(exc)}
            continue
        if isinstance(variants, str):
            row["peers"][name] = {"status": "skipped", "reason": variants}
            continue
        for variant, (call, to_nchw) in variants.items():
            calls[(name, variant)] = (call, functools.partial(_check_peer, to_nchw=to_nchw,
                                                              expected=expected, rtol=rtol))
    # The bar counted one step per layout and peer a round; a peer has one per variant.
    bar.total += rounds * (len(calls) - len(layouts) - len(loaded))
    timings = _time_rounds(calls, repeats, rounds, bar, shape.name)

    for layout in layouts:
        timing = timings[("groupconv", layout)]
        if "error" in timing:
            row["groupconv"][layout] = {
                "error": timing["error"],
                "check": {"ok": False, "max_abs_error": None, "tolerance": None,
                          "reason": timing["error"]}}
        else:
            row["groupconv"][layout] = {**_summary(timing["times"]), "check": timing["check"]}
    timed = {k: v for k, v in row["groupconv"].items() if "median_s" in v}
    row["verified"] = all(v["check"]["ok"] for v in row["groupconv"].values())
    if timed:
        best = min(timed, key=lambda k: timed[k]["median_s"])
        best_s = timed[best]["median_s"]
        row.update(
            best_layout=best,
            best_s=best_s,
            gflops=cost.flops / best_s / 1e9,
            gbps=row["bytes"] / best_s / 1e9,
        )
        row["copy_fraction"] = row["gbps"] / copy_gbps if copy_gbps else None
    else:
        row.update(best_layout=None, best_s=None, gflops=None, gbps=None, copy_fraction=None)
    for name in loaded:
        if name not in row["peers"]:
            row["peers"][name] = _peer_entry(
                {variant: timing for (owner, variant), timing in timings.items()
                 if owner == name}, row["best_s"])
    row["peers"] = {name: row["peers"][name] for name in loaded}
    return row


def _check_peer(result, *, to_nchw, expected, rtol):
    """:func:`verify` of a peer's result, brought to NCHW first."""
    return verify(to_nchw(result), expected, rtol=rtol)


# --------------------------------------------------------------------------- reporting


def _ms(seconds: float | None) -> str:
    """Seconds as milliseconds with 3 significant digits (``-`` for None)."""
    if seconds is None:
        return "-"
    ms = seconds * 1e3
    return f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


def _ratio_cell(entry: dict[str, Any]) -> str:
    """A peer's table cell: ``1.23x`` (``!`` if it mismatched), ``-``, ``ERR`` or ``n/a``."""
    status = entry.get("status")
    if status in ("ok", "mismatch") and entry.get("ratio") is not None:
        return f"{entry['ratio']:.2f}x" + ("!" if status == "mismatch" else "")
    return {"skipped": "-", "error": "ERR", "unavailable": "n/a"}.get(status, "-")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Align a header and rows: first column left, others right, a rule below the header."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for r in [header, *rows]:
        cells = [f"{r[0]:<{widths[0]}}"]
        cells += [f"{c:>{w}}" for c, w in zip(r[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def format_table(results: dict[str, Any]) -> str:
    """The plain-text report of :func:`run_bench`'s results.

    One row per shape: groupconv's time per layout (ms), GFLOP/s and GB/s
    at its best layout, the machine's copy GB/s, whether the results
    matched the reference, and one ratio column per available peer (peer
    time / groupconv's best time; above 1, groupconv is faster; ``!`` marks
    a peer whose result did not match). A second table lists the peers'
    times (ms, best variant).

    Parameters
    ----------
    results : dict
        What :func:`run_bench` returned (or its JSON, loaded back).

    Returns
    -------
    str
        Lines separated by newlines, without a final newline.
    """
    available = [n for n, info in results["peers"].items() if info.get("available")]
    copy = results["copy_gbps"]
    layouts = results["layouts"]
    short = {"channels_first": "first ms", "channels_last": "last ms"}
    header = ["shape", *(short[lay] for lay in layouts), "GFLOP/s", "GB/s", "copy GB/s",
              "check", *(f"{n} x" for n in available)]
    rows = []
    for row in results["shapes"]:
        cells = [row["name"]]
        for layout in layouts:
            entry = row["groupconv"].get(layout, {})
            cells.append("ERR" if "error" in entry else _ms(entry.get("median_s")))
        cells.append("-" if row["gflops"] is None else f"{row['gflops']:.1f}")
        cells.append("-" if row["gbps"] is None else f"{row['gbps']:.1f}")
        cells.append(f"{copy:.1f}")
        cells.append("OK" if row["verified"] else "FAIL")
        cells.extend(_ratio_cell(row["peers"].get(n, {})) for n in available)
        rows.append(cells)
    versions = results["versions"]
    machine = results["machine"]
    lines = [
        f"groupconv {versions['groupconv']} bench: {results['threads']} threads, "
        f"{results['mode']} ({results['repeats']} timed calls in {results.get('rounds', 1)} "
        f"round(s), each after {results.get('warmup', 1)} warm-up calls, median), "
        f"float32; copy bandwidth {copy:.1f} GB/s (np.copyto, read + write)",
        f"machine: {machine['processor'] or machine['machine']}, {machine['usable_cpus']} "
        f"usable CPUs; numpy {versions['numpy']}, numba {versions['numba']} "
        f"(threading layer {results.get('numba_threading_layer')})",
    ]
    for name in available:
        info = results["peers"][name]
        lines.append(f"peer {name} {info['version']} ({info['notes']})")
    lines.append("")
    lines.extend(_table(header, rows))
    lines.append("")
    lines.append(
        "x: peer time / groupconv's best layout time (>1: groupconv faster); "
        "!: peer result mismatch; -: peer skips the row; ERR: failed"
    )
    if available:
        peer_rows = []
        for row in results["shapes"]:
            cells = [row["name"]]
            for name in available:
                entry = row["peers"].get(name, {})
                if "best_s" in entry:
                    cells.append(f"{_ms(entry['best_s'])} ({entry['best_variant']})")
                else:
                    cells.append(_ratio_cell(entry))
            peer_rows.append(cells)
        lines.append("")
        lines.append("peer times, ms (best variant):")
        lines.extend(_table(["shape", *available], peer_rows))
    missing = [f"{n} ({info['reason']})" for n, info in results["peers"].items()
               if not info.get("available")]
    if missing:
        lines.append("")
        lines.append("peers not run: " + "; ".join(missing))
    problems = []
    for row in results["shapes"]:
        for layout, entry in row["groupconv"].items():
            if not entry["check"]["ok"]:
                problems.append(f"{row['name']} groupconv {layout}: {entry['check']['reason']}")
        for name, entry in row["peers"].items():
            if entry.get("status") in ("mismatch", "error"):
                problems.append(f"{row['name']} {name}: {entry.get('reason')}")
    if problems:
        lines.append("")
        lines.append("problems:")
        lines.extend(f"  {p}" for p in problems)
    return "\n".join(lines)


def _require_matplotlib():
    """Import matplotlib, or raise an ImportError that says how to install it."""
    try:
        importlib.import_module("matplotlib")
    except ImportError as exc:
        raise ImportError(
            "--plot needs matplotlib, which cannot be imported here "
            f"({exc}); install it with: python -m pip install matplotlib"
        ) from exc


def plot_results(results: dict[str, Any], path: str | os.PathLike) -> None:
    """Draw a bar chart of GFLOP/s per shape (groupconv per layout, each peer) into a file.

    The scale is logarithmic, since dense rows run at many times the rate of
    depthwise ones; a missing bar is a peer that skipped or failed the row.

    Parameters
    ----------
    results : dict
        What :func:`run_bench` returned.
    path : str or path-like
        Image file; the format follows the extension (``.png``, ``.svg``, ...).

    Raises
    ------
    ImportError
        If matplotlib is not installed; the message says how to install it.
    """
    _require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = results["shapes"]
    series: dict[str, list[float]] = {}
    for layout in results["layouts"]:
        series[f"groupconv {layout}"] = [
            row["flops"] / row["groupconv"][layout]["median_s"] / 1e9
            if "median_s" in row["groupconv"].get(layout, {}) else math.nan
            for row in rows
        ]
    for name, info in results["peers"].items():
        if info.get("available"):
            series[name] = [
                row["flops"] / row["peers"][name]["best_s"] / 1e9
                if "best_s" in row["peers"].get(name, {}) else math.nan
                for row in rows
            ]
    figure = Figure(figsize=(max(6.0, 1.2 * len(rows) + 2), 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    width = 0.8 / max(1, len(series))
    positions = np.arange(len(rows))
    for i, (label, values) in enumerate(series.items()):
        axes.bar(positions + (i - (len(series) - 1) / 2) * width, values, width, label=label)
    axes.set_xticks(positions, [row["name"] for row in rows], rotation=30, ha="right")
    axes.set_yscale("log")
    axes.set_ylabel("GFLOP/s, log scale (higher is better)")
    axes.set_title(
        f"groupconv {results['versions']['groupconv']}, float32, {results['threads']} threads "
        f"({results['machine']['processor'] or results['machine']['machine']})",
        fontsize="medium",
    )
    axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    axes.grid(axis="y", which="both", alpha=0.3)
    figure.savefig(path)


# --------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``groupconv bench`` to ``parser``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The ``bench`` subcommand's parser.
    """
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="full", action="store_false",
                      help=f"{QUICK_REPEATS} timed calls per measurement (default)")
    mode.add_argument("--full", dest="full", action="store_true",
                      help=f"{FULL_REPEATS} timed calls per measurement")
    parser.set_defaults(full=False)
    parser.add_argument("--shapes", metavar="A,B",
                        help="comma-separated shape names (default: all; see --list)")
    parser.add_argument("--list", action="store_true", help="list the shapes and exit")
    parser.add_argument("--threads", type=int, default=2, metavar="N",
                        help="threads for Numba, PyTorch and TensorFlow (default 2)")
    parser.add_argument("--peers", default=",".join(PEERS), metavar="P,Q",
                        help=f"peers to run if importable: some of {','.join(PEERS)}, or "
                        "'none' (default: all)")
    parser.add_argument("--repeats", type=int, metavar="N",
                        help="timed calls per measurement (overrides --quick/--full)")
    parser.add_argument("--rounds", type=int, metavar="N",
                        help="rounds the timed calls are split into, each visiting every "
                             f"layout and peer (default {FULL_ROUNDS} with --full, else 1)")
    parser.add_argument("--batch", type=int, metavar="N",
                        help="override the batch size of every shape (default 8)")
    parser.add_argument("--scale", type=float, default=1.0, metavar="F",
                        help="multiply heights and widths by F in (0, 1] (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data (default 0)")
    parser.add_argument("--json", action="store_true",
                        help="print the results as JSON on stdout instead of the table")
    parser.add_argument("--plot", metavar="FILE.png",
                        help="also draw a bar chart of GFLOP/s (needs matplotlib)")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="no progress bar on stderr")


def run_from_args(args: argparse.Namespace) -> int:
    """Run ``groupconv bench`` with parsed arguments; return the exit status.

    Parameters
    ----------
    args : argparse.Namespace
        From a parser set up by :func:`add_arguments`.

    Returns
    -------
    int
        0 if every groupconv result matched the reference, 1 if one did
        not, 2 for a usage error (unknown shape or peer, bad thread count,
        ``--plot`` without matplotlib).
    """
    if args.list:
        for shape in SHAPES:
            print(f"{shape.name:<20} {shape.kind:<10} {shape.describe()}")
        return 0
    try:
        if args.plot:
            _require_matplotlib()
        results = run_bench(
            args.shapes, peers=args.peers, threads=args.threads, full=args.full,
            repeats=args.repeats, rounds=args.rounds, batch=args.batch, scale=args.scale,
            seed=args.seed,
            progress=args.progress,
        )
    except (ValueError, ImportError) as exc:
        print(f"groupconv bench: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(format_table(results))
    if args.plot:
        plot_results(results, args.plot)
        print(f"groupconv bench: wrote {args.plot}", file=sys.stderr)
    return 0 if results["ok"] else 1
