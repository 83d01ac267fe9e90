"""Argument normalisers shared by :mod:`groupconv._spec` and the public helpers.

Every function here either returns a normalised value or raises a
``ValueError``/``TypeError`` whose message names the argument, what was
expected and what was received, so that callers never need to re-check.
"""

from __future__ import annotations

import numbers
import operator
from collections.abc import Sequence

import numpy as np

__all__ = [
    "LAYOUTS",
    "PADDING_MODES",
    "as_positive_ints",
    "as_int",
    "normalize_layout",
    "resolve_padding",
    "compute_dtype",
]

#: Canonical layouts and the data-format aliases that name them, with their rank.
LAYOUTS = ("channels_first", "channels_last")
_LAYOUT_ALIASES = {
    "NCW": (1, "channels_first"),
    "NWC": (1, "channels_last"),
    "NCHW": (2, "channels_first"),
    "NHWC": (2, "channels_last"),
    "NCDHW": (3, "channels_first"),
    "NDHWC": (3, "channels_last"),
}

#: groupconv padding mode -> numpy.pad mode.
PADDING_MODES = {
    "zeros": "constant",
    "reflect": "reflect",
    "replicate": "edge",
    "circular": "wrap",
    "symmetric": "symmetric",
}

_PADDING_RULES = ("valid", "same", "same_lower", "full", "causal")

# dtypes computed natively, and what every other accepted dtype is computed in.
_NATIVE = tuple(np.dtype(t) for t in ("float32", "float64", "complex64", "complex128"))


def as_int(value, name: str, *, minimum: int | None = None) -> int:
    """Return ``value`` as a Python int, refusing bools, floats and strings."""
    if type(value) is int and (minimum is None or value >= minimum):
        return value  # the common case, without the ABC checks (~1 us each)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"{name} must be an integer, got {value!r} of type {type(value).__name__}"
        )
    value = operator.index(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {name}={value}")
    return value


def as_positive_ints(value, name: str, rank: int) -> tuple[int, ...]:
    """Normalise an int or a sequence of ``rank`` ints, each >= 1, to a tuple."""
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be an int or {rank} ints, got {value!r}")
    if isinstance(value, Sequence) or isinstance(value, np.ndarray):
        items = list(value)
        if len(items) != rank:
            raise ValueError(
                f"{name} must be an int or {rank} ints (one per spatial dim), "
                f"got {len(items)} values: {tuple(items)!r}"
            )
        return tuple(as_int(v, f"{name}[{i}]", minimum=1) for i, v in enumerate(items))
    return (as_int(value, name, minimum=1),) * rank


def normalize_layout(layout, rank: int) -> str:
    """Map a layout name or data-format alias to ``channels_first``/``channels_last``."""
    if not isinstance(layout, str):
        raise TypeError(f"layout must be a string, got {layout!r}")
    if layout in LAYOUTS:
        return layout
    alias = _LAYOUT_ALIASES.get(layout.upper())
    if alias is None:
        choices = ", ".join(repr(s) for s in (*LAYOUTS, *_LAYOUT_ALIASES))
        raise ValueError(f"layout must be one of {choices}; got layout={layout!r}")
    alias_rank, canonical = alias
    if alias_rank != rank:
        raise ValueError(
            f"layout={layout!r} is for {alias_rank}-D data, but the weight has "
            f"{rank} spatial dims; use layout={canonical!r} or the {rank}-D alias"
        )
    return canonical


def _padding_pair(item, name: str) -> tuple[int, int]:
    if isinstance(item, (str, bytes)) or not (
        isinstance(item, Sequence) or isinstance(item, np.ndarray)
    ):
        return (as_int(item, name, minimum=0),) * 2
    pair = list(item)
    if len(pair) != 2:
        raise ValueError(f"{name} must be an int or a (lo, hi) pair, got {tuple(pair)!r}")
    return (as_int(pair[0], f"{name}[0]", minimum=0), as_int(pair[1], f"{name}[1]", minimum=0))


def resolve_padding(
    padding,
    input_shape: Sequence[int],
    kernel_size: Sequence[int],
    stride=1,
    dilation=1,
) -> tuple[tuple[int, int], ...]:
    """Resolve any padding spec to explicit ``(lo, hi)`` pairs, one per spatial dim.

    Parameters
    ----------
    padding : int, sequence or str
        An int (same on every side); one int per spatial dim; one ``(lo, hi)``
        pair per spatial dim; or one of the rules ``"valid"``, ``"same"``
        (TensorFlow/ONNX SAME_UPPER at any stride: the odd pixel goes at the
        end), ``"same_lower"`` (ONNX SAME_LOWER: the odd pixel goes at the
        start), ``"full"`` (SciPy's full mode: ``(k-1)*dilation`` on both
        sides) or ``"causal"`` (Keras: ``(k-1)*dilation`` before, none after).
        Rule names are case-insensitive, so TensorFlow's ``"SAME"`` works.
    input_shape : sequence of int
        The spatial sizes of the input (no batch or channel entries).
    kernel_size : sequence of int
        The spatial sizes of the kernel.
    stride, dilation : int or sequence of int, optional
        As for :func:`groupconv.conv`; only ``"same"`` and ``"same_lower"``
        depend on them.

    Returns
    -------
    tuple of (int, int)
        One ``(lo, hi)`` pair per spatial dim.

    Raises
    ------
    ValueError
        If the spec is malformed, has the wrong length or a negative entry.
    TypeError
        If an entry is not an integer.

    Examples
    --------
    TensorFlow's SAME rule puts the odd pixel at the end:

    >>> from groupconv import resolve_padding
    >>> resolve_padding("same", (224,), (7,), stride=2)
    ((2, 3),)
    >>> resolve_padding("same_lower", (224,), (7,), stride=2)
    ((3, 2),)
    >>> resolve_padding("full", (10, 10), (3, 3), dilation=2)
    ((4, 4), (4, 4))
    >>> resolve_padding([(1, 0), 2], (5, 5), (3, 3))
    ((1, 0), (2, 2))
    """
    input_shape = tuple(as_int(s, "input_shape", minimum=0) for s in input_shape)
    kernel_size = tuple(as_int(k, "kernel_size", minimum=1) for k in kernel_size)
    rank = len(kernel_size)
    if len(input_shape) != rank:
        raise ValueError(
            f"input_shape has {len(input_shape)} spatial dims but kernel_size has {rank}"
        )
    strides = as_positive_ints(stride, "stride", rank)
    dilations = as_positive_ints(dilation, "dilation", rank)
    extents = [(k - 1) * d for k, d in zip(kernel_size, dilations, strict=True)]

    if isinstance(padding, str):
        rule = padding.lower()
        if rule == "valid":
            return ((0, 0),) * rank
        if rule == "full":
            return tuple((e, e) for e in extents)
        if rule == "causal":
            return tuple((e, 0) for e in extents)
        if rule in ("same", "same_lower"):
            pads = []
            for length, s, e in zip(input_shape, strides, extents, strict=True):
                out = -(-length // s)
                total = max((out - 1) * s + e + 1 - length, 0)
                small, large = total // 2, total - total // 2
                pads.append((small, large) if rule == "same" else (large, small))
            return tuple(pads)
        choices = ", ".join(repr(r) for r in _PADDING_RULES)
        raise ValueError(
            f"padding must be an int, a sequence of ints or (lo, hi) pairs, or one of "
            f"{choices}; got padding={padding!r}"
        )
    if isinstance(padding, Sequence) or isinstance(padding, np.ndarray):
        items = list(padding)
        if len(items) != rank:
            raise ValueError(
                f"padding must have one entry per spatial dim ({rank}), "
                f"got {len(items)} entries: {padding!r}"
            )
        return tuple(_padding_pair(p, f"padding[{i}]") for i, p in enumerate(items))
    return (_padding_pair(padding, "padding"),) * rank


def compute_dtype(*dtypes) -> tuple[np.dtype, np.dtype]:
    """Apply the dtype policy: return ``(compute_dtype, result_dtype)``.

    float32/float64/complex64/complex128 are computed natively; float16 is
    computed in float32 and returned as float16; integers and bool become
    float64. Mixed inputs follow :func:`numpy.result_type` first.
    """
    for dt in dtypes:
        if dt.kind not in "biufc" or dt.itemsize > 16 or (dt.kind == "f" and dt.itemsize > 8):
            raise TypeError(
                f"unsupported dtype {dt}: groupconv computes in float32, float64, "
                f"complex64 or complex128 (float16 via float32, integers and bool via "
                f"float64); convert with .astype(np.float64) first"
            )
    result = np.result_type(*dtypes)
    if result.kind in "biu":
        return np.dtype(np.float64), np.dtype(np.float64)
    if result == np.float16:
        return np.dtype(np.float32), np.dtype(np.float16)
    if result in _NATIVE:
        return result, result
    raise TypeError(f"unsupported dtype {result}; convert to float64 or complex128 first")
