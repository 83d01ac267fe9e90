"""Agreement with PyTorch's conv{1,2,3}d and nn.ConvNd padding modes (skipped without torch)."""

import numpy as np
import pytest
from conftest import assert_matches_reference

import groupconv

torch = pytest.importorskip("torch")
F = torch.nn.functional

TORCH_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
TORCH_MODULE = {1: torch.nn.Conv1d, 2: torch.nn.Conv2d, 3: torch.nn.Conv3d}


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize(
    "c_in,c_out,groups,stride,dilation,padding",
    [
        (4, 8, 1, 1, 1, 1),
        (8, 8, 8, 2, 1, 1),
        (6, 12, 3, 1, 2, 2),
        (6, 3, 3, 3, 1, 0),
        (4, 8, 4, 1, 1, "same"),
    ],
)
def test_matches_torch_functional(rng, rank, c_in, c_out, groups, stride, dilation, padding):
    x = rng.standard_normal((2, c_in) + (9,) * rank)
    w = rng.standard_normal((c_out, c_in // groups) + (3,) * rank)
    b = rng.standard_normal(c_out)
    want = TORCH_CONV[rank](torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b),
                            stride=stride, padding=padding, dilation=dilation,
                            groups=groups).numpy()
    got = groupconv.conv(x, w, b, stride=stride, padding=padding, dilation=dilation,
                         groups=groups)
    assert_matches_reference(got, want)
    # And the channels_last layout gives the same numbers.
    x_last = np.moveaxis(x, 1, -1)
    got_last = groupconv.conv(x_last, w, b, stride=stride, padding=padding, dilation=dilation,
                              groups=groups, layout="channels_last")
    assert_matches_reference(np.moveaxis(got_last, -1, 1), want)


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
def test_matches_torch_padding_modes(rng, rank, mode):
    module = TORCH_MODULE[rank](4, 6, 3, padding=2, padding_mode=mode, groups=2,
                                dtype=torch.float64)
    x = rng.standard_normal((2, 4) + (6,) * rank)
    with torch.no_grad():
        want = module(torch.from_numpy(x)).numpy()
    got = groupconv.conv(x, module.weight.detach().numpy(), module.bias.detach().numpy(),
                         padding=2, padding_mode=mode, groups=2)
    assert_matches_reference(got, want)


def test_matches_torch_float32_unbatched(rng):
    x = rng.standard_normal((6, 20, 20)).astype(np.float32)
    w = rng.standard_normal((12, 1, 5, 5)).astype(np.float32)
    want = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), padding=2, groups=6).numpy()
    got = groupconv.depthwise_conv(x, w, padding=2)
    assert got.dtype == np.float32
    assert_matches_reference(got, want.astype(np.float64))
