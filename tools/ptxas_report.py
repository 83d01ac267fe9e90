"""Compile every GPU kernel specialisation to PTX and print ptxas's resource figures.

Usage::

    python tools/ptxas_report.py [--cc 9.0] [--markdown]

Needs the ``cuda`` extra (NVVM, to write PTX) and a ``ptxas`` of the same CUDA
release as that NVVM: ``pip install "cuda-toolkit[nvcc]==13.*"`` puts one at
``nvidia/cu13/bin/ptxas`` in site-packages (found automatically; or set
``PTXAS``). No GPU is needed. The figures in ``docs/gpu.rst`` come from here.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path


def find_ptxas() -> str | None:
    """The ptxas of the pip CUDA toolkit (or $PTXAS), or None."""
    if os.environ.get("PTXAS"):
        return os.environ["PTXAS"]
    candidate = Path(sysconfig.get_paths()["purelib"]) / "nvidia" / "cu13" / "bin" / "ptxas"
    return str(candidate) if candidate.is_file() else None


def resources(ptx: str, arch: str, ptxas: str) -> dict[str, int]:
    """Registers, spill bytes, stack frame and static shared memory of one kernel's PTX."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kernel.ptx"
        path.write_text(ptx)
        result = subprocess.run([ptxas, f"-arch={arch}", "-v", str(path), "-o", os.devnull],
                                capture_output=True, text=True, check=True)
    text = result.stderr
    def number(pattern):
        match = re.search(pattern, text)
        return int(match.group(1)) if match else 0
    return {
        "registers": number(r"Used (\d+) registers"),
        "spill_stores": number(r"(\d+) bytes spill stores"),
        "spill_loads": number(r"(\d+) bytes spill loads"),
        "stack": number(r"(\d+) bytes stack frame"),
        "static_shared": number(r"(\d+) bytes smem"),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cc", default="9.0", help="compute capability (default 9.0)")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args(argv)
    major, minor = (int(v) for v in args.cc.split("."))
    ptxas = find_ptxas()
    if ptxas is None:
        print("no ptxas: pip install 'cuda-toolkit[nvcc]==13.*' or set PTXAS", file=sys.stderr)
        return 2
    from numba import cuda

    from groupconv.cuda import driver

    bad = 0
    if args.markdown:
        print("| kernel | registers | spill stores/loads (B) | stack (B) |")
        print("|---|---|---|---|")
    for name, function, signature in driver.specialisations():
        ptx, _ = cuda.compile_ptx(function, signature, cc=(major, minor))
        info = resources(ptx, f"sm_{major}{minor}", ptxas)
        bad += bool(info["spill_stores"] or info["spill_loads"])
        if args.markdown:
            print(f"| {name} | {info['registers']} | {info['spill_stores']}/"
                  f"{info['spill_loads']} | {info['stack']} |")
        else:
            print(f"{name:64s} regs {info['registers']:3d}  spills "
                  f"{info['spill_stores']}/{info['spill_loads']}  stack {info['stack']}",
                  flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
