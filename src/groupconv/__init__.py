"""groupconv: fast, exact grouped and depthwise convolution for NumPy arrays."""

from . import reference, tf, tricks
from ._api import conv, depthwise_conv, separable_conv
from ._cost import Cost, cost
from ._shapes import conv_output_shape
from ._validate import resolve_padding
from ._version import __version__

__all__ = [
    "Cost",
    "__version__",
    "conv",
    "conv_output_shape",
    "cost",
    "depthwise_conv",
    "reference",
    "resolve_padding",
    "separable_conv",
    "tf",
    "tricks",
]
