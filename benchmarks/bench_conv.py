"""asv suites: groupconv's convolutions on the shape suite of ``groupconv.bench``.

Every class is parametrised over rows of :data:`groupconv.bench.SHAPES`
(float32, batch 8) and a layout. ``setup`` builds the call from seeded,
cached data and makes one warm-up call, so Numba's compilation (or loading
from its cache) is never timed. Each class has:

- ``time_*``: wall time of one call;
- ``peakmem_*``: peak resident memory of the process around one call;
- ``track_gflops`` / ``track_gbps``: the rate, from :func:`groupconv.cost`
  (FLOPs, bytes read + written) and the median of 3 calls.

A combination that cannot run raises ``NotImplementedError`` in ``setup``
(asv records it as skipped); ``params`` never depend on the machine.
"""

import functools

import numpy as np

import groupconv

from .common import (
    CONV_SHAPES,
    DEPTHWISE_SHAPES,
    GROUPED_SHAPES,
    LAYOUTS,
    SEPARABLE_SHAPES,
    SHAPE_NAMES,
    TF_DATA_FORMATS,
    get_shape,
    inputs,
    median_seconds,
)


def _x(data, layout):
    return data["x"] if layout == "channels_first" else data["x_last"]


class _Rates:
    """``track_gflops`` and ``track_gbps`` for a class whose setup sets ``call`` and ``cost``."""

    timeout = 120

    def track_gflops(self, *params):
        return self.cost.flops / median_seconds(self.call) / 1e9

    track_gflops.unit = "GFLOP/s"

    def track_gbps(self, *params):
        moved = self.cost.bytes_read + self.cost.bytes_written
        return moved / median_seconds(self.call) / 1e9

    track_gbps.unit = "GB/s"


class Conv(_Rates):
    """``groupconv.conv`` on every single-convolution row."""

    params = (CONV_SHAPES, list(LAYOUTS))
    param_names = ("shape", "layout")

    def setup(self, name, layout):
        shape, data = get_shape(name), inputs(name)
        self.call = functools.partial(
            groupconv.conv, _x(data, layout), data["weight"], groups=shape.groups,
            layout=layout, **shape.options,
        )
        self.cost = shape.cost()
        self.call()  # warm-up: compile outside the timing

    def time_conv(self, name, layout):
        self.call()

    def peakmem_conv(self, name, layout):
        self.call()


class DepthwiseConv(_Rates):
    """``groupconv.depthwise_conv`` on the depthwise rows."""

    params = (DEPTHWISE_SHAPES, list(LAYOUTS))
    param_names = ("shape", "layout")

    def setup(self, name, layout):
        shape, data = get_shape(name), inputs(name)
        self.call = functools.partial(
            groupconv.depthwise_conv, _x(data, layout), data["weight"], layout=layout,
            **shape.options,
        )
        self.cost = shape.cost()
        self.call()

    def time_depthwise_conv(self, name, layout):
        self.call()

    def peakmem_depthwise_conv(self, name, layout):
        self.call()


class SeparableConv(_Rates):
    """``groupconv.separable_conv`` (fused depthwise, then 1x1) on the separable rows."""

    params = (SEPARABLE_SHAPES, list(LAYOUTS))
    param_names = ("shape", "layout")

    def setup(self, name, layout):
        shape, data = get_shape(name), inputs(name)
        self.call = functools.partial(
            groupconv.separable_conv, _x(data, layout), data["weight"], data["pointwise"],
            layout=layout, **shape.options,
        )
        self.cost = shape.cost()
        self.call()

    def time_separable_conv(self, name, layout):
        self.call()

    def peakmem_separable_conv(self, name, layout):
        self.call()


class TF(_Rates):
    """``groupconv.tf``: ``conv2d``, ``depthwise_conv2d`` or ``separable_conv2d`` per row.

    TensorFlow's filter layouts are built in ``setup``; the call includes
    the wrapper's rearrangement of the filters, as a user's call would.
    """

    params = (SHAPE_NAMES, list(TF_DATA_FORMATS))
    param_names = ("shape", "data_format")

    def setup(self, name, data_format):
        shape, data = get_shape(name), inputs(name)
        x = _x(data, TF_DATA_FORMATS[data_format])
        p = shape.padding
        spatial = [[p, p], [p, p]]
        padding = [[0, 0], *spatial, [0, 0]] if data_format == "NHWC" else [[0, 0], [0, 0],
                                                                             *spatial]
        options = {"strides": shape.stride, "padding": padding, "data_format": data_format}
        k = shape.kernel
        if shape.kind in ("depthwise", "separable"):
            multiplier = shape.c_out // shape.c_in
            depthwise = np.ascontiguousarray(
                data["weight"].reshape(shape.c_in, multiplier, k, k).transpose(2, 3, 0, 1)
            )
            if shape.kind == "separable":
                pointwise = np.ascontiguousarray(data["pointwise"].T[None, None])
                self.call = functools.partial(
                    groupconv.tf.separable_conv2d, x, depthwise, pointwise, **options
                )
            else:
                self.call = functools.partial(groupconv.tf.depthwise_conv2d, x, depthwise,
                                              **options)
        else:
            filters = np.ascontiguousarray(data["weight"].transpose(2, 3, 1, 0))
            self.call = functools.partial(groupconv.tf.conv2d, x, filters, **options)
        self.cost = shape.cost()
        self.call()

    def time_tf(self, name, data_format):
        self.call()

    def peakmem_tf(self, name, data_format):
        self.call()


class Tricks(_Rates):
    """``groupconv.tricks``: a grouped row through one depthwise conv + split_sum, or
    through one dense conv per group. The rates count the grouped convolution's work."""

    params = (GROUPED_SHAPES, list(LAYOUTS), ["via_depthwise", "via_split"])
    param_names = ("shape", "layout", "method")
    timeout = 300
    #: Largest depthwise intermediate ``via_depthwise`` may allocate.
    max_intermediate_bytes = 1 << 30

    def setup(self, name, layout, method):
        shape, data = get_shape(name), inputs(name)
        if method == "via_depthwise":
            _, _, out_h, out_w = shape.output_shape()
            channels = shape.c_in * (shape.c_out // shape.groups)
            size = 4 * shape.batch * channels * out_h * out_w
            if size > self.max_intermediate_bytes:
                raise NotImplementedError(
                    f"via_depthwise needs a {size / 2**30:.1f} GiB intermediate for {name}"
                )
            function = groupconv.tricks.grouped_conv_via_depthwise
        else:
            function = groupconv.tricks.grouped_conv_via_split
        self.call = functools.partial(
            function, _x(data, layout), data["weight"], groups=shape.groups, layout=layout,
            **shape.options,
        )
        self.cost = shape.cost()
        self.call()

    def time_tricks(self, name, layout, method):
        self.call()

    def peakmem_tricks(self, name, layout, method):
        self.call()


class SplitSum:
    """``groupconv.tricks.split_sum`` on a (8, 512, 56, 56) float32 result, either layout."""

    params = (list(LAYOUTS), [2, 4, 32])
    param_names = ("layout", "parts")

    def setup(self, layout, parts):
        rng = np.random.default_rng(0)
        shape = (8, 512, 56, 56) if layout == "channels_first" else (8, 56, 56, 512)
        self.y = rng.standard_normal(shape, dtype=np.float32)
        self.axis = 1 if layout == "channels_first" else -1
        groupconv.tricks.split_sum(self.y, parts, axis=self.axis)

    def time_split_sum(self, layout, parts):
        groupconv.tricks.split_sum(self.y, parts, axis=self.axis)

    def peakmem_split_sum(self, layout, parts):
        groupconv.tricks.split_sum(self.y, parts, axis=self.axis)


class Pipeline:
    """A MobileNetV2 block as three separate calls: depthwise, pointwise, depthwise again.

    The rows above time one call repeated; a network alternates kernels of
    different kinds (Numba loops, BLAS products), and a library whose thread
    pool spins while the next kernel runs slows every step down. This keeps
    that interaction in the history: ``dw3x3_mbv2_56``'s depthwise layer,
    then a 1x1 layer 144 -> 144 (the GEMM path), then the depthwise layer.
    ``results="out"`` writes into preallocated arrays; ``"new"`` lets every
    call allocate its result, as most code does: on machines where fresh
    pages are expensive (this project's 2-core VMs), first-touching the
    new results can cost more than the convolutions.
    """

    params = (list(LAYOUTS), ["out", "new"])
    param_names = ("layout", "results")
    timeout = 120

    def setup(self, layout, results):
        shape, data = get_shape("dw3x3_mbv2_56"), inputs("dw3x3_mbv2_56")
        x = _x(data, layout)
        pointwise = np.random.default_rng(0).standard_normal(
            (shape.c_in, shape.c_in, 1, 1), dtype=np.float32) / shape.c_in
        buffers = [np.empty_like(x) for _ in range(3)] if results == "out" else [None] * 3
        depthwise = dict(groups=shape.groups, layout=layout, **shape.options)

        def block():
            y = groupconv.conv(x, data["weight"], out=buffers[0], **depthwise)
            y = groupconv.conv(y, pointwise, layout=layout, out=buffers[1])
            return groupconv.conv(y, data["weight"], out=buffers[2], **depthwise)

        self.call = block
        self.call()

    def time_pipeline(self, layout, results):
        self.call()
