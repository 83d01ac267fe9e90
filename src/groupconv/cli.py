"""The ``groupconv`` command line: ``groupconv info``, ``groupconv demo`` and ``groupconv bench``.

Run it as ``groupconv`` (the console script) or ``python -m groupconv``.
Importing this module is cheap: SciPy and ``numba.cuda`` are imported only
inside the commands that report on them, and :mod:`groupconv.bench` (whose
peers, PyTorch, TensorFlow, JAX and matplotlib, are imported only while it
runs) only when the parser is built.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
from collections.abc import Sequence

import numpy as np

__all__ = ["collect_info", "main", "run_demo"]

# Numba's threading-layer back ends and the module that implements each.
_THREADING_MODULES = {
    "tbb": "numba.np.ufunc.tbbpool",
    "omp": "numba.np.ufunc.omppool",
    "workqueue": "numba.np.ufunc.workqueue",
}

# TensorFlow's worked example for tf.nn.depthwise_conv2d, VALID, strides 1.
_TF_INPUT = np.arange(1.0, 10.0).reshape(1, 3, 3, 1)
_TF_FILTER = np.array([[[[1.0, 2.0]]], [[[3.0, 4.0]]]])  # (kh=2, kw=1, C_in=1, M=2)
_TF_EXPECTED = np.array(
    [[[[13.0, 18.0], [17.0, 24.0], [21.0, 30.0]], [[25.0, 36.0], [29.0, 42.0], [33.0, 48.0]]]]
)


def _version_of(module_name: str) -> str:
    """Return the ``__version__`` of a module, or why it could not be imported."""
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import failure is worth reporting
        return f"not importable ({type(exc).__name__}: {exc})"
    return str(getattr(module, "__version__", "unknown"))


def _distribution_version(name: str) -> str | None:
    """Return the installed version of distribution ``name``, or ``None``."""
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _cpu_count() -> str:
    """Logical CPUs, and the ones this process may run on where the OS tells."""
    total = os.cpu_count()
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return str(total)
    return str(total) if usable == total else f"{total} ({usable} usable by this process)"


def _threading_info(numba) -> dict[str, str]:
    """Numba's thread count and threading layers, without running a parallel kernel."""
    config = numba.config
    info = {}
    try:
        current = str(numba.get_num_threads())
    except Exception as exc:
        current = f"unknown ({type(exc).__name__}: {exc})"
    info["numba threads"] = f"{current} (NUMBA_NUM_THREADS={config.NUMBA_NUM_THREADS})"
    available, missing = [], []
    for name, module_name in _THREADING_MODULES.items():
        try:
            importlib.import_module(module_name)
        except Exception as exc:  # e.g. libtbb.so missing
            missing.append(f"{name}: {exc}")
        else:
            available.append(name)
    info["threading layers"] = ", ".join(available) if available else "none"
    if missing:
        info["threading layers missing"] = "; ".join(missing)
    try:
        active = numba.threading_layer()
    except ValueError:  # the thread pool has not been started yet
        active = "not started yet"
    info["threading layer"] = f"{active} (NUMBA_THREADING_LAYER={config.THREADING_LAYER})"
    return info


def _cache_info(numba) -> str:
    """Where Numba writes the compiled kernels of ``groupconv``."""
    cache_dir = numba.config.CACHE_DIR
    if cache_dir:
        return f"{cache_dir} (NUMBA_CACHE_DIR)"
    from groupconv.cpu import direct

    here = os.path.join(os.path.dirname(os.path.abspath(direct.__file__)), "__pycache__")
    return f"default: __pycache__ beside each module ({here}), or a per-user cache if read-only"


def _cuda_driver_version(cuda) -> str:
    """The CUDA driver API version, e.g. ``"13.0"``, or why it is unknown. Never raises."""
    try:
        major, minor = cuda.cudadrv.driver.driver.get_version()
    except Exception as exc:  # a fake or partial numba.cuda, or a driver error
        return f"version unknown ({type(exc).__name__}: {exc})"
    return f"CUDA {major}.{minor} (driver API)"


def _cuda_info(numba) -> dict[str, str]:
    """What Numba can do with CUDA here. Never raises, whatever is installed."""
    info = {}
    env = os.environ.get("NUMBA_ENABLE_CUDASIM")
    simulated = bool(numba.config.ENABLE_CUDASIM)
    info["cuda simulator"] = (
        f"{'on' if simulated else 'off'} "
        f"(NUMBA_ENABLE_CUDASIM={'unset' if env is None else repr(env)})"
    )
    package = _distribution_version("numba-cuda")
    try:
        cuda = importlib.import_module("numba.cuda")
    except Exception as exc:
        info["numba.cuda"] = f"not importable ({type(exc).__name__}: {exc})"
        info["cuda device"] = "no"
        return info
    implementation = getattr(cuda, "implementation", "unknown")
    if package:
        info["numba.cuda"] = f"importable (numba-cuda {package}, {implementation})"
    else:
        info["numba.cuda"] = (
            f"importable ({implementation}; the numba-cuda package is not installed: "
            f"pip install 'groupconv[cuda]')"
        )
    try:
        available = bool(cuda.is_available())
    except Exception as exc:  # a broken driver must not crash `info`
        info["cuda device"] = f"no ({type(exc).__name__}: {exc})"
        return info
    if not available:
        info["cuda device"] = "no"
        info["cuda driver"] = "none usable (no NVIDIA driver, or no GPU)"
        return info
    if simulated:
        info["cuda device"] = "yes, simulated (kernels run in Python on the CPU)"
        return info
    info["cuda driver"] = _cuda_driver_version(cuda)
    try:
        names = []
        for gpu in cuda.gpus:
            name = gpu.name.decode() if isinstance(gpu.name, bytes) else str(gpu.name)
            major, minor = gpu.compute_capability
            names.append(f"{name} (compute capability {major}.{minor})")
        devices = "; ".join(names) if names else "none listed"
    except Exception as exc:
        devices = f"details unavailable ({type(exc).__name__}: {exc})"
    info["cuda device"] = f"yes: {devices}"
    return info


def collect_info() -> dict[str, str]:
    """Versions, threads, caches and CUDA status, as an ordered ``{label: text}`` dict.

    Nothing here runs a kernel or starts a GPU context beyond what
    ``numba.cuda.is_available()`` does; every probe that can fail is
    reported as text instead of raising.

    Returns
    -------
    dict of str to str
        One entry per line of ``groupconv info``.

    Examples
    --------
    >>> from groupconv.cli import collect_info
    >>> info = collect_info()
    >>> "numba threads" in info and "cuda device" in info
    True
    """
    import numba

    import groupconv

    info = {
        "groupconv": f"{groupconv.__version__} ({os.path.dirname(groupconv.__file__)})",
        "python": f"{platform.python_version()} ({platform.python_implementation()}, "
        f"{sys.executable})",
        "numpy": np.__version__,
        "numba": numba.__version__,
        "scipy": _version_of("scipy"),
        "platform": f"{platform.platform()} ({platform.machine()})",
        "cpu count": _cpu_count(),
    }
    info.update(_threading_info(numba))
    info["numba cache dir"] = _cache_info(numba)
    info.update(_cuda_info(numba))
    return info


def _cmd_info(args: argparse.Namespace) -> int:
    """Print :func:`collect_info`, one ``label: text`` line each. Always returns 0."""
    info = collect_info()
    width = max(map(len, info))
    for label, text in info.items():
        print(f"{label + ':':<{width + 1}} {text}")
    return 0


def _report(label: str, actual: np.ndarray, expected: np.ndarray, rtol: float) -> bool:
    """Print the largest absolute difference and OK/FAIL; return whether it passed."""
    if actual.shape != expected.shape:
        print(f"{label}: shape {actual.shape} != expected {expected.shape}  FAIL")
        return False
    diff = float(np.max(np.abs(actual - expected), initial=0.0))
    limit = rtol * max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    passed = diff <= limit
    print(f"{label}: max abs difference {diff:.3g}  {'OK' if passed else 'FAIL'}")
    return passed


def run_demo(seed: int = 0) -> bool:
    """Run the two demonstrations and print them; return whether both match.

    1. TensorFlow's worked example of ``tf.nn.depthwise_conv2d`` through
       :func:`groupconv.tf.depthwise_conv2d` (NHWC, VALID, strides 1),
       checked against TensorFlow's published result.
    2. A 2-D grouped convolution (``groups=4``, stride 2, ``"same"``
       padding, bias) through :func:`groupconv.conv`, checked against
       :func:`groupconv.reference.conv`.

    Parameters
    ----------
    seed : int, optional
        Seed of the random data of the grouped example.

    Returns
    -------
    bool
        ``True`` if both results match.
    """
    import groupconv
    from groupconv import reference

    with np.printoptions(precision=4, suppress=True):
        print("1. TensorFlow's depthwise_conv2d example (NHWC, VALID, strides 1)")
        print(f"input[0, :, :, 0], shape {_TF_INPUT.shape}:")
        print(_TF_INPUT[0, :, :, 0])
        print(f"filter[:, 0, 0, :] (rows kh, columns M), shape {_TF_FILTER.shape}:")
        print(_TF_FILTER[:, 0, 0, :])
        tf_result = np.asarray(
            groupconv.tf.depthwise_conv2d(_TF_INPUT, _TF_FILTER, strides=1, padding="VALID")
        )
        print(f"groupconv.tf.depthwise_conv2d(...)[0], shape {tf_result.shape}:")
        print(tf_result[0])
        tf_ok = _report("against TensorFlow's result", tf_result, _TF_EXPECTED, 1e-12)

        print()
        print("2. Grouped 2-D convolution, groups=4, stride 2, padding='same', with bias")
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((2, 8, 9, 9))
        weight = rng.standard_normal((12, 2, 3, 3))
        bias = rng.standard_normal(12)
        options = {"stride": 2, "padding": "same", "groups": 4}
        print(f"x {x.shape}, weight {weight.shape}, bias {bias.shape}, {options}")
        result = groupconv.conv(x, weight, bias, **options)
        expected = reference.conv(x, weight, bias, **options)
        print(f"groupconv.conv(...) shape {result.shape}; y[0, :, 0, 0] =")
        print(result[0, :, 0, 0])
        conv_ok = _report("against groupconv.reference.conv", result, expected, 1e-10)
    return tf_ok and conv_ok


def _cmd_demo(args: argparse.Namespace) -> int:
    """Run :func:`run_demo`: exit status 0 if every check passes, 1 otherwise."""
    return 0 if run_demo(seed=args.seed) else 1


def _cmd_bench(args: argparse.Namespace) -> int:
    """Run :func:`groupconv.bench.run_from_args`: 0, 1 if a result is wrong, 2 on misuse."""
    from groupconv import bench

    return bench.run_from_args(args)


def _build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``groupconv`` and its subcommands."""
    from groupconv import bench
    from groupconv._version import __version__

    parser = argparse.ArgumentParser(
        prog="groupconv",
        description="Grouped and depthwise convolution for NumPy arrays, with Numba kernels.",
    )
    parser.add_argument("--version", action="version", version=f"groupconv {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="{info,demo,bench}")
    info = commands.add_parser(
        "info",
        help="versions, threads, caches and CUDA status",
        description="Print the versions of groupconv and its dependencies, the platform, "
        "Numba's threads, threading layers and cache, and whether CUDA is usable.",
    )
    info.set_defaults(handler=_cmd_info)
    demo = commands.add_parser(
        "demo",
        help="run TensorFlow's depthwise example and a checked grouped convolution",
        description="Run TensorFlow's worked depthwise_conv2d example and a grouped "
        "convolution checked against the reference implementation; exit status 1 if a "
        "result does not match.",
    )
    demo.add_argument("--seed", type=int, default=0, help="seed of the random data (default 0)")
    demo.set_defaults(handler=_cmd_demo)
    bench_parser = commands.add_parser(
        "bench",
        help="time groupconv on the shape suite against PyTorch, TensorFlow, JAX and SciPy",
        description="Time groupconv.conv and separable_conv on the benchmark shape suite "
        "(float32, batch 8) in both layouts, check each result against the reference, "
        "and compare with every importable peer (PyTorch, TensorFlow, JAX, SciPy) in the "
        "same process. Prints a table (or JSON with --json); progress goes to stderr. "
        "Exit status 1 if a groupconv result does not match the reference.",
    )
    bench.add_arguments(bench_parser)
    bench_parser.set_defaults(handler=_cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``groupconv`` command; returns the exit status.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments after the program name; ``None`` reads ``sys.argv[1:]``.

    Returns
    -------
    int
        0 on success; 1 if ``demo`` or ``bench`` finds a mismatch; 2 for a usage error,
        including a missing subcommand (after printing the usage to stderr,
        as :mod:`argparse` does).

    Examples
    --------
    >>> from groupconv.cli import main
    >>> main(["--version"])  # doctest: +ELLIPSIS
    groupconv ...
    0
    """
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 2)
    if args.command is None:
        parser.print_usage(sys.stderr)
        print(
            f"{parser.prog}: error: a command is required: bench, info or demo "
            f"(see '{parser.prog} --help')",
            file=sys.stderr,
        )
        return 2
    return args.handler(args)
