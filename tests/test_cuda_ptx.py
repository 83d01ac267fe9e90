"""Every GPU kernel specialisation is real CUDA: it compiles to PTX for each supported
compute capability, and (where a matching ptxas is installed) assembles without spills.

These run in the main process, never under the simulator (whose ``compile_ptx``
compiles nothing). They need the ``cuda`` extra (NVVM); no GPU. CUDA 13's NVVM
starts at compute capability 7.5: 7.0 (V100) would need the cu12 toolchain,
which groupconv does not support.
"""

import importlib.util
import os
import subprocess
import sysconfig
import tempfile
from pathlib import Path

import numba
import pytest

pytestmark = [
    pytest.mark.skipif(bool(numba.config.ENABLE_CUDASIM),
                       reason="the CUDA simulator cannot compile PTX"),
    pytest.mark.skipif(importlib.util.find_spec("numba_cuda") is None,
                       reason="numba-cuda is not installed: pip install 'groupconv[cuda]'"),
]

FAMILIES = ["direct", "depthwise", "separable", "elementwise"]
CAPABILITIES = [(7, 5), (8, 0), (9, 0)]


def _specialisations(family):
    from groupconv.cuda import depthwise, direct, elementwise, separable

    module = {"direct": direct, "depthwise": depthwise, "separable": separable,
              "elementwise": elementwise}[family]
    return list(module.specialisations())


def _compile(function, signature, cc):
    from numba import cuda

    try:
        ptx, _ = cuda.compile_ptx(function, signature, cc=cc)
    except Exception as exc:  # no NVVM at all: the toolchain is not installed
        if "NVVM" in str(exc) or "libnvvm" in str(exc).lower():
            pytest.skip(f"the CUDA toolchain (NVVM) is not usable: {exc}")
        raise
    return ptx


def _ptxas():
    path = Path(sysconfig.get_paths()["purelib"]) / "nvidia" / "cu13" / "bin" / "ptxas"
    return os.environ.get("PTXAS") or (str(path) if path.is_file() else None)


def _assemble(ptx, name):
    """ptxas -v (same CUDA release as NVVM) at sm_90: no spills, no stack frame."""
    ptxas = _ptxas()
    if ptxas is None:
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kernel.ptx"
        path.write_text(ptx)
        result = subprocess.run([ptxas, "-arch=sm_90", "-v", str(path), "-o", os.devnull],
                                capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{name}: {result.stderr}"
    assert "0 bytes spill stores, 0 bytes spill loads" in result.stderr, (
        f"{name} spills: {result.stderr}")
    assert "0 bytes stack frame" in result.stderr, f"{name}: {result.stderr}"


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(
    "cc",
    [pytest.param(cc, marks=[] if cc == (9, 0) else [pytest.mark.slow]) for cc in CAPABILITIES],
    ids=lambda cc: f"sm_{cc[0]}{cc[1]}",
)
def test_every_specialisation_compiles(family, cc):
    """Each one compiles to PTX; at 9.0, where ptxas is installed
    (``pip install "cuda-toolkit[nvcc]==13.*"``), it also assembles without spilling."""
    specialisations = _specialisations(family)
    assert specialisations
    for name, function, signature in specialisations:
        ptx = _compile(function, signature, cc)
        assert f".target sm_{cc[0]}{cc[1]}" in ptx, name
        assert ".entry" in ptx, name
        if cc == (9, 0):
            _assemble(ptx, name)


def test_compute_capability_7_0_needs_the_cu12_toolchain():
    # Documented in docs/gpu.rst: CUDA 13's NVVM refuses sm_70.
    from groupconv.cuda import direct

    name, function, signature = next(direct.specialisations())
    with pytest.raises(Exception, match="7.0|7, 0|compute capability"):
        _compile(function, signature, (7, 0))
