"""asv suites on the GPU: groupconv's numba.cuda kernels on the shape suite.

The same rows and layouts as :mod:`benchmarks.bench_conv`, with the data on
the device (Numba device arrays, weights included, and a preallocated
``out``) so that only the kernels are timed. ``setup`` raises
``NotImplementedError`` (asv: skipped) when no CUDA device is present, and
makes one warm-up call (kernel compilation); every timed call ends with
``cuda.synchronize()``, since kernel launches return before the GPU is done.
"""

import functools

import groupconv

from .common import CONV_SHAPES, LAYOUTS, SEPARABLE_SHAPES, get_shape, inputs, median_seconds


def _device():
    """numba.cuda, or NotImplementedError (asv's skip) without a usable GPU."""
    try:
        from numba import cuda
    except ImportError as exc:  # numba-cuda not installed
        raise NotImplementedError("numba.cuda is not importable") from exc
    if cuda.config.ENABLE_CUDASIM or not cuda.is_available():
        raise NotImplementedError("no CUDA device")
    return cuda


class _GpuBase:
    timeout = 120

    def _prepare(self, call, out_shape, dtype, cost):
        cuda = self.cuda
        self.out = cuda.device_array(out_shape, dtype=dtype)
        self.run = functools.partial(call, out=self.out)
        self.cost = cost
        self.sync_call()  # warm-up: kernel compilation is never timed

    def sync_call(self):
        self.run()
        self.cuda.synchronize()

    def track_gflops(self, *params):
        return self.cost.flops / median_seconds(self.sync_call) / 1e9

    track_gflops.unit = "GFLOP/s"

    def track_gbps(self, *params):
        moved = self.cost.bytes_read + self.cost.bytes_written
        return moved / median_seconds(self.sync_call) / 1e9

    track_gbps.unit = "GB/s"


class CudaConv(_GpuBase):
    """``groupconv.conv`` on device arrays, every single-convolution row."""

    params = (CONV_SHAPES, list(LAYOUTS))
    param_names = ("shape", "layout")

    def setup(self, name, layout):
        self.cuda = cuda = _device()
        shape, data = get_shape(name), inputs(name)
        x = cuda.to_device(data["x"] if layout == "channels_first" else data["x_last"])
        w = cuda.to_device(data["weight"])
        options = dict(groups=shape.groups, layout=layout, **shape.options)
        out_shape = groupconv.conv_output_shape(x.shape, w.shape, **options)
        self._prepare(functools.partial(groupconv.conv, x, w, **options), out_shape, x.dtype,
                      shape.cost())

    def time_conv(self, name, layout):
        self.sync_call()


class CudaSeparableConv(_GpuBase):
    """Fused ``groupconv.separable_conv`` on device arrays."""

    params = (SEPARABLE_SHAPES, list(LAYOUTS))
    param_names = ("shape", "layout")

    def setup(self, name, layout):
        self.cuda = cuda = _device()
        shape, data = get_shape(name), inputs(name)
        x = cuda.to_device(data["x"] if layout == "channels_first" else data["x_last"])
        dw, pw = cuda.to_device(data["weight"]), cuda.to_device(data["pointwise"])
        options = dict(layout=layout, **shape.options)
        out_shape = groupconv.conv_output_shape(x.shape, data["weight"].shape,
                                                groups=shape.c_in, **options)
        channel_axis = 1 if layout == "channels_first" else -1
        out_shape = list(out_shape)
        out_shape[channel_axis] = data["pointwise"].shape[0]
        self._prepare(functools.partial(groupconv.separable_conv, x, dw, pw, **options),
                      tuple(out_shape), x.dtype, shape.cost())

    def time_separable_conv(self, name, layout):
        self.sync_call()
