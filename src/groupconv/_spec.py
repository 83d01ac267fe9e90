"""``ConvSpec``: the one place where a convolution call is checked and normalised.

Public functions build a spec with :func:`conv_spec` (or
:func:`separable_spec`); the dispatcher and the kernels trust it completely.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import typing

import numpy as np

from ._validate import (
    PADDING_MODES,
    as_int,
    as_positive_ints,
    compute_dtype,
    normalize_layout,
    resolve_padding,
)

__all__ = ["ConvSpec", "SeparableSpec", "conv_spec", "separable_spec", "output_spatial",
           "winograd_misfit"]

ALGORITHMS = ("auto", "direct", "gemm", "winograd")

#: ``groups=DEPTHWISE`` is how the depthwise helpers ask for ``groups = C_in``.
DEPTHWISE = type("Depthwise", (), {"__repr__": lambda self: "DEPTHWISE"})()
DEVICES = (None, "cpu", "cuda")

# Largest byte size of any array: what NumPy can describe and int64 can index.
_MAX_BYTES = np.iinfo(np.intp).max


@dataclasses.dataclass(frozen=True)
class ConvSpec:
    """A validated convolution call. Arrays are batched and in the compute dtype.

    ``x`` keeps the caller's layout (it is never copied here); ``weight`` is
    ``(C_out, C_in // groups, *k)``; ``bias`` is ``(C_out,)`` or ``None``.

    On ``device="cuda"`` the arrays are not converted to the compute dtype
    here (the GPU driver converts on the device, or reads float16 directly):
    CUDA arrays are wrapped as Numba device arrays without a copy, NumPy
    arrays stay NumPy arrays until the driver copies them in. ``caller``
    says how to hand the result back (:class:`groupconv.cuda._interop.Caller`)
    and ``stream`` is the caller's CUDA stream, or ``None``.
    """

    x: np.ndarray | None
    weight: np.ndarray
    bias: np.ndarray | None
    rank: int
    layout: str
    batched: bool
    groups: int
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]
    padding_mode: str
    in_spatial: tuple[int, ...]
    out_spatial: tuple[int, ...]
    batch: int
    c_in: int
    c_out: int
    dtype: np.dtype
    result_dtype: np.dtype
    out: np.ndarray | None
    algorithm: str
    device: str
    stream: object = None
    caller: object = None
    #: Hashable, and equal for two calls exactly when everything but the array
    #: data is equal (shapes, dtypes, keywords); None when the call was not
    #: cached. The CPU driver keys its routing on it.
    key: tuple | None = None

    @property
    def kernel_size(self) -> tuple[int, ...]:
        return tuple(self.weight.shape[2:])

    @property
    def is_depthwise(self) -> bool:
        return self.groups == self.c_in and self.weight.shape[1] == 1

    @property
    def output_shape(self) -> tuple[int, ...]:
        """Shape of the result as the caller sees it (unbatched if ``x`` was)."""
        shape = _layout_shape(self.batch, self.c_out, self.out_spatial, self.layout)
        return shape if self.batched else shape[1:]


@dataclasses.dataclass(frozen=True)
class SeparableSpec:
    """A depthwise step, then a 1x1 pointwise step whose input is the depthwise result."""

    depthwise: ConvSpec
    pointwise: ConvSpec

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.pointwise.output_shape


def _layout_shape(batch, channels, spatial, layout):
    if layout == "channels_first":
        return (batch, channels, *spatial)
    return (batch, *spatial, channels)


def output_spatial(in_spatial, kernel_size, stride, padding, dilation):
    """Output spatial sizes, raising ValueError when the kernel does not fit."""
    sizes = []
    for dim, (length, k, s, (lo, hi), d) in enumerate(
        zip(in_spatial, kernel_size, stride, padding, dilation, strict=True)
    ):
        padded = length + lo + hi
        extent = d * (k - 1) + 1
        if padded < extent:
            raise ValueError(
                f"kernel extent {extent} (kernel size {k}, dilation {d}) is larger than "
                f"the padded input ({length} + padding {lo}+{hi} = {padded}) along spatial "
                f"dim {dim}; use more padding, a smaller kernel or a larger input"
            )
        sizes.append((padded - extent) // s + 1)
    return tuple(sizes)


def _interop():
    # Imported on first GPU use only: it is small, but GPU support is optional.
    from .cuda import _interop

    return _interop


def _is_gpu(value) -> bool:
    """Whether ``value`` is a CUDA array, without importing anything for plain values."""
    if value is None or isinstance(value, (np.ndarray, np.generic, int, float, complex,
                                           list, tuple)):
        return False
    return _interop().is_cuda_array(value)


def _as_array(value, name, device="cpu"):
    if _is_gpu(value):
        if device != "cuda":
            raise ValueError(
                f"{name} is a CUDA array but the call runs on the CPU (device='cpu', or x "
                f"is a NumPy array); pass device='cuda' (or a CUDA x) to run on the GPU, "
                f"or copy {name} to the host first (e.g. .copy_to_host(), .get() or .cpu())"
            )
        arr = _interop().as_device_array(value, name)
        if arr.dtype.kind not in "biufc":
            raise TypeError(
                f"{name} has dtype {arr.dtype}, which groupconv cannot convolve; "
                f"expected a numeric array (float, complex, integer or bool)"
            )
        return arr
    arr = np.asarray(value)
    if arr.dtype.kind not in "biufc":
        raise TypeError(
            f"{name} has dtype {arr.dtype}, which groupconv cannot convolve; "
            f"expected a numeric array (float, complex, integer or bool)"
        )
    return arr


def check_size(shape, name, itemsize=16):
    """Refuse shapes whose byte size cannot be addressed, before anything is allocated."""
    elements = math.prod(shape)
    if elements * itemsize > _MAX_BYTES:
        raise ValueError(
            f"{name} of shape {tuple(shape)} has {elements} elements, more than the "
            f"{_MAX_BYTES // itemsize} of {itemsize} bytes that can be addressed; "
            f"use smaller inputs"
        )


def _check_algorithm_device(algorithm, device, x, stream):
    """Check ``algorithm``; resolve ``device`` (None: where ``x`` lives) and the caller's kind.

    Returns ``(device, caller_kind)``, where the kind is ``"numpy"`` for a
    NumPy ``x`` (see :func:`groupconv.cuda._interop.array_kind`).
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(
            f"algorithm must be one of {', '.join(map(repr, ALGORITHMS))}; "
            f"got algorithm={algorithm!r}"
        )
    if device not in DEVICES:
        raise ValueError(
            f"device must be None, 'cpu' or 'cuda'; got device={device!r}"
        )
    on_gpu = _is_gpu(x)
    if device is None:
        device = "cuda" if on_gpu else "cpu"
    if device == "cpu":
        if stream is not None:
            raise ValueError(
                "stream is for GPU calls (a CUDA x or device='cuda'), but this call runs "
                "on the CPU; drop stream= or pass device='cuda'"
            )
        return device, "numpy"
    _interop().require_cuda()  # RuntimeError without a GPU (or the simulator)
    return device, _interop().array_kind(x) if on_gpu else "numpy"


def _add_batch_dim(x):
    if isinstance(x, np.ndarray):
        return x[np.newaxis]
    return _interop().expand_dims(x, 0)


def _in_dtype(arr, dtype, device):
    """``arr`` in the compute dtype on the CPU; unchanged for the GPU (its driver converts)."""
    if arr is None or device == "cuda" or arr.dtype == dtype:
        return arr
    return arr.astype(dtype)


def _caller(device, kind, x, out):
    """How the GPU driver hands the result back (None for CPU calls)."""
    if device != "cuda":
        return None
    return _interop().Caller(kind=kind, like=x, out=out)


def _check_padding_mode(padding_mode, padding, in_spatial):
    if padding_mode not in PADDING_MODES:
        raise ValueError(
            f"padding_mode must be one of {', '.join(map(repr, PADDING_MODES))}; "
            f"got padding_mode={padding_mode!r}"
        )
    for dim, (length, pair) in enumerate(zip(in_spatial, padding, strict=True)):
        widest = max(pair)
        if padding_mode == "reflect" and widest >= length and widest > 0:
            raise ValueError(
                f"padding_mode='reflect' needs padding < input size, but spatial dim {dim} "
                f"has size {length} and padding {pair}; use 'symmetric' or 'replicate', "
                f"or pad less"
            )
        if padding_mode in ("circular", "symmetric") and widest > length:
            raise ValueError(
                f"padding_mode={padding_mode!r} needs padding <= input size, but spatial "
                f"dim {dim} has size {length} and padding {pair}; pad less"
            )


def _check_gpu_out(out, shape, dtype, inputs):
    """``out`` for a result that stays on the GPU: a CUDA array, checked like a NumPy one."""
    if not _is_gpu(out):
        raise TypeError(
            f"out must be a CUDA array (the result of a call on a CUDA x stays on the GPU), "
            f"got {type(out).__name__}"
        )
    interop = _interop()
    wrapped = interop.as_device_array(out, "out")
    if tuple(wrapped.shape) != tuple(shape):
        raise ValueError(
            f"out must have shape {tuple(shape)}, got out.shape={tuple(wrapped.shape)}"
        )
    if wrapped.dtype != dtype:
        raise TypeError(f"out must have dtype {dtype}, got out.dtype={wrapped.dtype}")
    if interop.is_readonly(out):
        raise ValueError("out is read-only; pass a writeable array")
    lo, hi = interop.memory_range(wrapped)
    for name, arr in inputs:
        # Host inputs are copied to the device first and cannot overlap; device
        # arrays are compared by address ranges (like numpy.may_share_memory).
        if arr is None or isinstance(arr, np.ndarray) or lo == hi:
            continue
        other_lo, other_hi = interop.memory_range(arr)
        if other_lo < hi and lo < other_hi:
            raise ValueError(
                f"out overlaps the memory of {name}; pass a separate output array"
            )
    return wrapped


def _check_out(out, shape, dtype, inputs, kind="numpy"):
    """Check ``out``; return it (a CUDA ``out`` wrapped as a Numba device array) or None.

    ``kind`` is the caller's kind: the result of a NumPy ``x`` is a NumPy
    array (also with ``device="cuda"``), so ``out`` must be one then.
    """
    if out is None:
        return None
    if kind != "numpy":
        return _check_gpu_out(out, shape, dtype, inputs)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy.ndarray, got {type(out).__name__}")
    if out.shape != tuple(shape):
        raise ValueError(f"out must have shape {tuple(shape)}, got out.shape={out.shape}")
    if out.dtype != dtype:
        raise TypeError(f"out must have dtype {dtype}, got out.dtype={out.dtype}")
    if not out.flags.writeable:
        raise ValueError("out is read-only; pass a writeable array")
    for name, arr in inputs:
        if arr is None or arr.size == 0 or out.size == 0:
            continue
        try:
            overlap = np.shares_memory(out, arr, max_work=100_000)
        except np.exceptions.TooHardError:
            overlap = True
        if overlap:
            raise ValueError(
                f"out overlaps the memory of {name}; pass a separate output array"
            )
    return out


class _Geometry(typing.NamedTuple):
    """What :func:`conv_spec` derives from shapes, dtypes and keywords alone."""

    rank: int
    layout: str
    batched: bool
    groups: int
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]
    in_spatial: tuple[int, ...]
    out_spatial: tuple[int, ...]
    batch: int
    c_in: int
    c_out: int
    dtype: np.dtype
    result_dtype: np.dtype
    out_shape: tuple[int, ...]


def _plain(value) -> bool:
    """Whether ``value`` is an exact int or str, or a tuple of such values (nested).

    Only such keywords are cache keys: equal keys then mean equal arguments
    (``True == 1`` and ``np.int64(1) == 1`` hash alike, but only the int passes).
    """
    if type(value) is int or type(value) is str:
        return True
    return type(value) is tuple and all(_plain(item) for item in value)


#: Distinct call geometries whose derivation is kept (a network has a few dozen layers).
GEOMETRY_CACHE_SIZE = 256


def _geometry(x_shape, x_dtype, weight_shape, weight_dtype, bias_spec, stride, padding,
              dilation, groups, padding_mode, layout, weight_name):
    """``(geometry, key)``: the checked geometry of a call, and its cache key (None when
    the keywords are not plain, and the geometry was derived anew).

    The derivation is pure (shapes, dtypes and keywords in, no array data),
    so a repeated call skips it (measured ~10 us of a call's ~18 us of
    checking). Errors are never cached: a bad call raises every time.
    """
    args = (x_shape, x_dtype, weight_shape, weight_dtype, bias_spec, stride, padding,
            dilation, groups, padding_mode, layout, weight_name)
    if (groups is DEPTHWISE or type(groups) is int) and _plain(
            (stride, padding, dilation, padding_mode, layout)):
        return _cached_geometry(*args), args
    return _derive_geometry(*args), None


def _derive_geometry(x_shape, x_dtype, weight_shape, weight_dtype, bias_spec, stride, padding,
                     dilation, groups, padding_mode, layout, weight_name) -> _Geometry:
    """Check the shapes, dtypes and keywords of a call and derive its geometry."""
    rank = len(weight_shape) - 2
    if rank not in (1, 2, 3):
        raise ValueError(
            f"{weight_name} must have shape (C_out, C_in // groups, *kernel) with 1, 2 or 3 "
            f"spatial dims (ndim 3, 4 or 5), got {weight_name}.shape={weight_shape}"
        )
    layout = normalize_layout(layout, rank)
    if len(x_shape) == rank + 2:
        batched = True
    elif len(x_shape) == rank + 1:
        batched = False
        x_shape = (1, *x_shape)
    else:
        raise ValueError(
            f"x must have {rank + 2} dims (batched) or {rank + 1} (unbatched) to match a "
            f"{rank}-D {weight_name} of shape {weight_shape}; got x.shape={x_shape}"
        )
    if layout == "channels_first":
        batch, c_in, in_spatial = x_shape[0], x_shape[1], x_shape[2:]
    else:
        batch, c_in, in_spatial = x_shape[0], x_shape[-1], x_shape[1:-1]

    groups = c_in if groups is DEPTHWISE else as_int(groups, "groups", minimum=1)
    c_out, c_group = weight_shape[0], weight_shape[1]
    if c_in % groups:
        raise ValueError(f"groups={groups} does not divide C_in={c_in}")
    if c_out < 1 or c_out % groups:
        raise ValueError(
            f"groups={groups} does not divide C_out={c_out} ({weight_name}.shape[0]); "
            f"C_out must be a positive multiple of groups"
        )
    if c_group != c_in // groups:
        raise ValueError(
            f"{weight_name}.shape[1] must be C_in // groups = {c_in} // {groups} = "
            f"{c_in // groups}, got {weight_name}.shape={weight_shape}"
        )
    if min(weight_shape[2:]) < 1:
        raise ValueError(f"kernel sizes must be >= 1, got {weight_name}.shape={weight_shape}")
    if bias_spec is not None and bias_spec[0] != (c_out,):
        raise ValueError(
            f"bias must have shape ({c_out},) (C_out), got bias.shape={bias_spec[0]}"
        )

    stride = as_positive_ints(stride, "stride", rank)
    dilation = as_positive_ints(dilation, "dilation", rank)
    pads = resolve_padding(padding, in_spatial, weight_shape[2:], stride, dilation)
    _check_padding_mode(padding_mode, pads, in_spatial)
    check_size([s + lo + hi for s, (lo, hi) in zip(in_spatial, pads, strict=True)] + [batch, c_in],
                "the padded input")
    out_spatial = output_spatial(in_spatial, weight_shape[2:], stride, pads, dilation)
    full_shape = _layout_shape(batch, c_out, out_spatial, layout)
    check_size(full_shape, "the output")

    dtypes = [x_dtype, weight_dtype] + ([] if bias_spec is None else [bias_spec[1]])
    dtype, result_dtype = compute_dtype(*dtypes)
    out_shape = full_shape if batched else full_shape[1:]
    return _Geometry(
        rank=rank, layout=layout, batched=batched, groups=groups, stride=stride,
        dilation=dilation, padding=pads, in_spatial=tuple(in_spatial),
        out_spatial=out_spatial, batch=batch, c_in=c_in, c_out=c_out, dtype=dtype,
        result_dtype=result_dtype, out_shape=out_shape,
    )


_cached_geometry = functools.lru_cache(maxsize=GEOMETRY_CACHE_SIZE)(_derive_geometry)


def winograd_misfit(rank, kernel_size, stride, dilation, dtype) -> str | None:
    """None if a call can run on the Winograd F(2x2, 3x3) kernel, else what it lacks.

    The kernel (:mod:`.cpu.winograd`) computes 2-D convolutions with a 3x3
    kernel, stride 1 and dilation 1, in float32 (float16 data included).
    """
    if rank != 2:
        return f"2-D data, got {rank}-D"
    if tuple(kernel_size) != (3, 3):
        return f"a 3x3 kernel, got {'x'.join(map(str, kernel_size))}"
    if tuple(stride) != (1, 1):
        return f"stride 1, got stride={tuple(stride)}"
    if tuple(dilation) != (1, 1):
        return f"dilation 1, got dilation={tuple(dilation)}"
    if np.dtype(dtype) != np.float32:
        return f"float32 or float16 data, got data computed in {np.dtype(dtype)}"
    return None


def _check_winograd(geometry, weight_shape, weight_name):
    misfit = winograd_misfit(geometry.rank, weight_shape[2:], geometry.stride,
                             geometry.dilation, geometry.dtype)
    if misfit is not None:
        raise ValueError(
            f"algorithm='winograd' needs {misfit} (from {weight_name} of shape "
            f"{tuple(weight_shape)}); use algorithm='auto', 'direct' or 'gemm' for this call"
        )


def conv_spec(
    x,
    weight,
    bias=None,
    *,
    stride=1,
    padding=0,
    dilation=1,
    groups=1,
    padding_mode="zeros",
    layout="channels_first",
    out=None,
    algorithm="auto",
    device=None,
    weight_name="weight",
    stream=None,
) -> ConvSpec:
    """Check and normalise the arguments of :func:`groupconv.conv`.

    ``weight_name`` is what error messages call the weight (the separable
    helper passes ``"depthwise_weight"``).
    """
    device, kind = _check_algorithm_device(algorithm, device, x, stream)
    caller = _caller(device, kind, x, out)
    x = _as_array(x, "x", device)
    weight = _as_array(weight, weight_name, device)
    bias = None if bias is None else _as_array(bias, "bias", device)

    geometry, key = _geometry(
        tuple(x.shape), x.dtype, tuple(weight.shape), weight.dtype,
        None if bias is None else (tuple(bias.shape), bias.dtype),
        stride, padding, dilation, groups, padding_mode, layout, weight_name,
    )
    if algorithm == "winograd" and device == "cpu":
        _check_winograd(geometry, tuple(weight.shape), weight_name)
    if not geometry.batched:
        x = _add_batch_dim(x)
    dtype = geometry.dtype
    out = _check_out(
        out, geometry.out_shape, geometry.result_dtype,
        [("x", x), (weight_name, weight), ("bias", bias)], kind,
    )
    return _new_spec(
        x=_in_dtype(x, dtype, device),
        weight=_in_dtype(weight, dtype, device),
        bias=_in_dtype(bias, dtype, device),
        rank=geometry.rank,
        layout=geometry.layout,
        batched=geometry.batched,
        groups=geometry.groups,
        stride=geometry.stride,
        dilation=geometry.dilation,
        padding=geometry.padding,
        padding_mode=padding_mode,
        in_spatial=geometry.in_spatial,
        out_spatial=geometry.out_spatial,
        batch=geometry.batch,
        c_in=geometry.c_in,
        c_out=geometry.c_out,
        dtype=dtype,
        result_dtype=geometry.result_dtype,
        out=out,
        algorithm=algorithm,
        device=device,
        stream=stream,
        caller=caller,
        key=key,
    )


def _new_spec(**fields) -> ConvSpec:
    """``ConvSpec(**fields)``, given every field, without the frozen dataclass's ``__init__``.

    That ``__init__`` sets each of the 24 fields through ``object.__setattr__``
    (measured 3.1 us a spec, half of :func:`conv_spec`'s time on a repeated
    call; filling the instance's ``__dict__`` 1.3 us). The spec stays frozen.
    """
    spec = object.__new__(ConvSpec)
    spec.__dict__.update(fields)
    return spec


def separable_spec(
    x,
    depthwise_weight,
    pointwise_weight,
    bias=None,
    *,
    stride=1,
    padding=0,
    dilation=1,
    padding_mode="zeros",
    layout="channels_first",
    out=None,
    algorithm="auto",
    device=None,
    stream=None,
) -> SeparableSpec:
    """Check and normalise the arguments of :func:`groupconv.separable_conv`."""
    device, kind = _check_algorithm_device(algorithm, device, x, stream)
    if algorithm == "winograd" and device == "cpu":
        raise ValueError(
            "algorithm='winograd' cannot run separable_conv: its pointwise step is a 1x1 "
            "convolution and Winograd's transform is for 3x3 kernels; use algorithm='auto' "
            "(fused), 'direct' or 'gemm'"
        )
    caller = _caller(device, kind, x, out)
    x = _as_array(x, "x", device)
    depthwise_weight = _as_array(depthwise_weight, "depthwise_weight", device)
    pointwise_weight = _as_array(pointwise_weight, "pointwise_weight", device)
    bias = None if bias is None else _as_array(bias, "bias", device)
    dtypes = [a.dtype for a in (x, depthwise_weight, pointwise_weight, bias) if a is not None]
    dtype, result_dtype = compute_dtype(*dtypes)
    dw = conv_spec(
        x, _in_dtype(depthwise_weight, dtype, device), None, stride=stride,
        padding=padding, dilation=dilation, groups=DEPTHWISE, padding_mode=padding_mode,
        layout=layout, algorithm=algorithm, device=device, weight_name="depthwise_weight",
        stream=stream,
    )
    c_mid, pw_shape = dw.c_out, pointwise_weight.shape
    if not (
        pointwise_weight.ndim in (2, dw.rank + 2)
        and pw_shape[1:2] == (c_mid,)
        and all(k == 1 for k in pw_shape[2:])
    ):
        ones = ", 1" * dw.rank
        raise ValueError(
            f"pointwise_weight must have shape (C_out, {c_mid}) or (C_out, {c_mid}{ones}) "
            f"where {c_mid} = C_in * multiplier, got pointwise_weight.shape={pw_shape}"
        )
    if pointwise_weight.ndim == 2:
        # Unit kernel dims: a view whatever the strides, on the GPU too.
        pointwise_weight = (
            pointwise_weight.reshape(pw_shape + (1,) * dw.rank)
            if isinstance(pointwise_weight, np.ndarray)
            else _interop().expand_dims(pointwise_weight, 2, dw.rank)
        )
    # The pointwise input is the depthwise result, which does not exist yet:
    # describe it by a zero-stride placeholder of the right shape and dtype.
    mid_shape = _layout_shape(dw.batch, c_mid, dw.out_spatial, dw.layout)
    placeholder = np.lib.stride_tricks.as_strided(
        np.zeros(1, dtype=dtype), shape=mid_shape, strides=(0,) * len(mid_shape)
    )
    # On the GPU the placeholder is never copied in: the driver replaces it.
    pw = conv_spec(
        placeholder if dw.batched else placeholder[0],
        _in_dtype(pointwise_weight, dtype, device),
        _in_dtype(bias, dtype, device),
        layout=dw.layout, algorithm=algorithm, device=device, stream=stream,
    )
    out = _check_out(
        out, pw.output_shape, result_dtype,
        [("x", x), ("depthwise_weight", depthwise_weight),
         ("pointwise_weight", pointwise_weight), ("bias", bias)], kind,
    )
    return SeparableSpec(
        depthwise=dw,
        pointwise=_new_spec(**(vars(pw) | dict(x=None, result_dtype=result_dtype, out=out,
                                                 caller=caller))),
    )
