"""The public convolution functions: each builds a spec and hands it to the dispatcher."""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from . import _dispatch
from ._spec import DEPTHWISE, conv_spec, separable_spec

__all__ = ["conv", "depthwise_conv", "separable_conv"]

Padding = int | str | tuple
IntOrTuple = int | tuple[int, ...]
PaddingMode = Literal["zeros", "reflect", "replicate", "circular", "symmetric"]


def conv(
    x: ArrayLike,
    weight: ArrayLike,
    bias: ArrayLike | None = None,
    *,
    stride: IntOrTuple = 1,
    padding: Padding = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    padding_mode: PaddingMode = "zeros",
    layout: str = "channels_first",
    out: np.ndarray | None = None,
    algorithm: str = "auto",
    device: str | None = None,
    stream=None,
) -> np.ndarray:
    """Grouped N-D convolution (cross-correlation), as in PyTorch's ``conv{1,2,3}d``.

    ``y[n, o, *p] = bias[o] + sum_{c, t} weight[o, c, *t] *
    xpad[n, g*Cg + c, *(p*stride + t*dilation)]`` where ``g = o // (C_out //
    groups)`` and ``Cg = C_in // groups``.

    Parameters
    ----------
    x : array_like
        Input of shape ``(N, C_in, *spatial)`` (``layout="channels_first"``)
        or ``(N, *spatial, C_in)`` (``"channels_last"``), with 1, 2 or 3
        spatial dims. Without the batch axis, the result has none either.
    weight : array_like
        ``(C_out, C_in // groups, *kernel)`` in every layout.
    bias : array_like, optional
        ``(C_out,)``, added to every output position.
    stride, dilation : int or tuple of int, optional
        One value for every spatial dim, or one per dim; each >= 1.
    padding : int, tuple or str, optional
        An int; one int per dim; one ``(lo, hi)`` pair per dim; or
        ``"valid"``, ``"same"`` (TensorFlow's SAME at any stride, odd pixel at
        the end), ``"same_lower"`` (ONNX, odd pixel at the start), ``"full"``
        or ``"causal"``. See :func:`resolve_padding`.
    groups : int, optional
        Number of groups; must divide ``C_in`` and ``C_out``.
    padding_mode : {"zeros", "reflect", "replicate", "circular", "symmetric"}, optional
        What the padding holds: the same as :func:`numpy.pad` with mode
        ``constant``, ``reflect``, ``edge``, ``wrap`` and ``symmetric``.
    layout : str, optional
        ``"channels_first"`` or ``"channels_last"``, or an alias checked
        against the rank: ``"NCW"``, ``"NWC"``, ``"NCHW"``, ``"NHWC"``,
        ``"NCDHW"``, ``"NDHWC"``.
    out : numpy.ndarray or CUDA array, optional
        Where to write the result: exact shape and dtype, not overlapping
        any input; a CUDA array when ``x`` is one, a NumPy array otherwise.
    algorithm : str, optional
        ``"auto"`` (choose from the shape), ``"direct"``, ``"gemm"`` or
        ``"winograd"`` (CPU only: Winograd F(2x2, 3x3), for 2-D 3x3 layers at
        stride 1 and dilation 1 in float32 or float16; other calls raise
        ``ValueError``). See the design notes for what ``"auto"`` picks.
    device : {None, "cpu", "cuda"}, optional
        ``None`` runs where ``x`` lives: on the GPU for any object with
        ``__cuda_array_interface__`` (Numba device arrays, CuPy arrays,
        PyTorch CUDA tensors), on the CPU otherwise. ``"cuda"`` with a NumPy
        ``x`` copies the inputs in and the result out. ``"cpu"`` with a CUDA
        array is an error. Weights and bias may be NumPy arrays in a GPU
        call (they are copied in).
    stream : optional
        GPU calls only: the CUDA stream to queue the work on (a Numba, CuPy
        or PyTorch stream, or a raw handle); ``None`` is the default
        stream. A GPU result is returned without waiting for the kernel.

    Returns
    -------
    numpy.ndarray or CUDA array
        Shape ``(N, C_out, *out_spatial)`` or ``(N, *out_spatial, C_out)``;
        dtype float32, float64, complex64 or complex128 (float16 inputs give
        float16, integer and bool inputs give float64). For a CUDA ``x``, the
        same kind of array as ``x`` (a Numba device array for other CUDA
        objects).

    Raises
    ------
    ValueError
        A shape, size or option does not fit: the message names the argument,
        what was expected and what was received; or a CUDA array is passed
        with ``device="cpu"``.
    TypeError
        An argument has the wrong type or dtype.
    RuntimeError
        A GPU call without a usable CUDA device (or numba-cuda).

    See Also
    --------
    depthwise_conv, separable_conv, conv_output_shape, resolve_padding

    Examples
    --------
    A 1-D moving sum over two channels that share one group:

    >>> import numpy as np
    >>> import groupconv
    >>> x = np.arange(10.0).reshape(1, 2, 5)
    >>> w = np.ones((1, 2, 3))
    >>> groupconv.conv(x, w)
    array([[[21., 27., 33.]]])

    Grouped 2-D convolution with TensorFlow's SAME padding at stride 2:

    >>> x = np.ones((8, 64, 56, 56), dtype=np.float32)
    >>> w = np.ones((128, 16, 3, 3), dtype=np.float32)
    >>> groupconv.conv(x, w, groups=4, stride=2, padding="same").shape
    (8, 128, 28, 28)
    """
    spec = conv_spec(
        x, weight, bias, stride=stride, padding=padding, dilation=dilation, groups=groups,
        padding_mode=padding_mode, layout=layout, out=out, algorithm=algorithm, device=device,
        stream=stream,
    )
    return _dispatch.convolve(spec)


def depthwise_conv(
    x: ArrayLike,
    weight: ArrayLike,
    bias: ArrayLike | None = None,
    *,
    stride: IntOrTuple = 1,
    padding: Padding = 0,
    dilation: IntOrTuple = 1,
    padding_mode: PaddingMode = "zeros",
    layout: str = "channels_first",
    out: np.ndarray | None = None,
    algorithm: str = "auto",
    device: str | None = None,
    stream=None,
) -> np.ndarray:
    """Depthwise convolution: :func:`conv` with ``groups = C_in``.

    Output channel ``c*M + q`` comes from input channel ``c`` through filter
    ``weight[c*M + q, 0]``, where ``M = C_out // C_in`` is the channel
    multiplier (TensorFlow's ``k*M + q`` order).

    Parameters
    ----------
    x : array_like
        Input, as for :func:`conv`.
    weight : array_like
        ``(C_in * M, 1, *kernel)``.
    bias : array_like, optional
        ``(C_in * M,)``.
    stride, padding, dilation, padding_mode, layout, out, algorithm, device, stream
        As for :func:`conv`.

    Returns
    -------
    numpy.ndarray
        The depthwise result, ``C_in * M`` channels.

    Raises
    ------
    ValueError
        If ``weight`` is not ``(C_in * M, 1, *kernel)`` or another argument
        does not fit (see :func:`conv`).
    TypeError
        An argument has the wrong type or dtype.

    See Also
    --------
    conv, separable_conv, groupconv.tf.depthwise_conv2d

    Examples
    --------
    Two channels, multiplier 2: each channel gets an identity and a
    difference filter.

    >>> import numpy as np
    >>> import groupconv
    >>> x = np.array([[[1.0, 2.0, 4.0], [1.0, 3.0, 9.0]]])
    >>> w = np.array([[[0.0, 1.0]], [[-1.0, 1.0]], [[0.0, 1.0]], [[-1.0, 1.0]]])
    >>> groupconv.depthwise_conv(x, w)
    array([[[2., 4.],
            [1., 2.],
            [3., 9.],
            [2., 6.]]])
    """
    spec = conv_spec(
        x, weight, bias, stride=stride, padding=padding, dilation=dilation, groups=DEPTHWISE,
        padding_mode=padding_mode, layout=layout, out=out, algorithm=algorithm, device=device,
        stream=stream,
    )
    return _dispatch.convolve(spec)


def separable_conv(
    x: ArrayLike,
    depthwise_weight: ArrayLike,
    pointwise_weight: ArrayLike,
    bias: ArrayLike | None = None,
    *,
    stride: IntOrTuple = 1,
    padding: Padding = 0,
    dilation: IntOrTuple = 1,
    padding_mode: PaddingMode = "zeros",
    layout: str = "channels_first",
    out: np.ndarray | None = None,
    algorithm: str = "auto",
    device: str | None = None,
    stream=None,
) -> np.ndarray:
    """Depthwise-separable convolution: a depthwise step, then a 1x1 pointwise step.

    As Keras' ``SeparableConv`` layers: stride, padding, padding_mode and
    dilation apply to the depthwise step; the pointwise step is 1x1 with
    stride 1, and ``bias`` is the pointwise bias (there is no depthwise bias).

    Parameters
    ----------
    x : array_like
        Input, as for :func:`conv`.
    depthwise_weight : array_like
        ``(C_in * M, 1, *kernel)``.
    pointwise_weight : array_like
        ``(C_out, C_in * M)`` or ``(C_out, C_in * M, 1, ..., 1)``.
    bias : array_like, optional
        ``(C_out,)``.
    stride, padding, dilation, padding_mode, layout, out, algorithm, device, stream
        As for :func:`conv`; stride, padding, dilation and padding_mode apply
        to the depthwise step. On the GPU, ``algorithm="auto"`` runs one fused
        kernel (the depthwise result stays in shared memory) and
        ``"direct"`` runs the two steps.

    Returns
    -------
    numpy.ndarray
        ``C_out`` channels at the depthwise step's spatial size.

    Raises
    ------
    ValueError
        A weight has the wrong shape or another argument does not fit.
    TypeError
        An argument has the wrong type or dtype.

    See Also
    --------
    depthwise_conv, groupconv.tf.separable_conv2d

    Examples
    --------
    >>> import numpy as np
    >>> import groupconv
    >>> x = np.ones((2, 3, 8, 8))
    >>> dw = np.ones((3, 1, 3, 3))
    >>> pw = np.ones((5, 3))
    >>> y = groupconv.separable_conv(x, dw, pw, np.arange(5.0), padding="same")
    >>> y.shape
    (2, 5, 8, 8)
    >>> y[0, :, 4, 4]
    array([27., 28., 29., 30., 31.])
    """
    spec = separable_spec(
        x, depthwise_weight, pointwise_weight, bias, stride=stride, padding=padding,
        dilation=dilation, padding_mode=padding_mode, layout=layout, out=out,
        algorithm=algorithm, device=device, stream=stream,
    )
    return _dispatch.separable(spec)
