"""The ``groupconv`` command line: ``info``, ``demo``, usage errors, ``python -m``."""

import os
import subprocess
import sys
import types

import numpy as np

import groupconv
from groupconv.cli import main


def _labels(text):
    return {line.split(":", 1)[0] for line in text.splitlines() if ":" in line}


def test_info_reports_versions_threads_and_cuda(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    expected = {
        "groupconv", "python", "numpy", "numba", "scipy", "platform", "cpu count",
        "numba threads", "threading layers", "threading layer", "numba cache dir",
        "cuda simulator", "numba.cuda", "cuda device",
    }
    assert expected <= _labels(out)
    first = out.splitlines()[0]
    assert first.startswith("groupconv:") and groupconv.__version__ in first
    assert np.__version__ in out


def test_info_survives_missing_cuda(capsys, monkeypatch):
    # ``import numba.cuda`` fails: reported, not raised.
    monkeypatch.setitem(sys.modules, "numba.cuda", None)
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "not importable" in out
    assert "cuda device:" in out


def test_info_survives_a_broken_driver(capsys, monkeypatch):
    def is_available():
        raise RuntimeError("driver exploded")

    fake = types.SimpleNamespace(is_available=is_available, implementation="fake")
    monkeypatch.setitem(sys.modules, "numba.cuda", fake)
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "driver exploded" in out


def test_info_lists_cuda_devices(capsys, monkeypatch):
    import numba

    gpu = types.SimpleNamespace(name=b"Fake GPU", compute_capability=(9, 0))
    fake = types.SimpleNamespace(is_available=lambda: True, gpus=[gpu], implementation="fake")
    monkeypatch.setitem(sys.modules, "numba.cuda", fake)
    monkeypatch.setattr(numba.config, "ENABLE_CUDASIM", 0)
    assert main(["info"]) == 0
    assert "yes: Fake GPU (compute capability 9.0)" in capsys.readouterr().out


def test_info_reports_the_cuda_driver(capsys, monkeypatch):
    import numba

    gpu = types.SimpleNamespace(name="Fake GPU", compute_capability=(8, 0))
    driver = types.SimpleNamespace(get_version=lambda: (13, 0))
    fake = types.SimpleNamespace(
        is_available=lambda: True, gpus=[gpu], implementation="fake",
        cudadrv=types.SimpleNamespace(driver=types.SimpleNamespace(driver=driver)),
    )
    monkeypatch.setitem(sys.modules, "numba.cuda", fake)
    monkeypatch.setattr(numba.config, "ENABLE_CUDASIM", 0)
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "yes: Fake GPU (compute capability 8.0)" in out
    assert "cuda driver:" in out and "CUDA 13.0 (driver API)" in out


def test_info_says_when_there_is_no_cuda_device(capsys, monkeypatch):
    fake = types.SimpleNamespace(is_available=lambda: False, implementation="fake")
    monkeypatch.setitem(sys.modules, "numba.cuda", fake)
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "cuda device:" in out and "cuda driver:" in out and "none usable" in out


def test_demo_matches(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    # TensorFlow's published result, printed as result[0] (H, W, C)
    assert "[[[13. 18.]\n  [17. 24.]\n  [21. 30.]]" in out
    assert "[[25. 36.]\n  [29. 42.]\n  [33. 48.]]]" in out
    assert out.count("OK") == 2
    assert "FAIL" not in out


def test_demo_reports_a_mismatch(capsys, monkeypatch):
    real = groupconv.tf.depthwise_conv2d
    monkeypatch.setattr(groupconv.tf, "depthwise_conv2d", lambda *a, **k: real(*a, **k) + 1)
    assert main(["demo"]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_no_command_is_a_usage_error(capsys):
    assert main([]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("usage: groupconv")
    assert "info or demo" in captured.err


def test_unknown_command_and_version(capsys):
    assert main(["no-such-command"]) == 2
    assert "invalid choice" in capsys.readouterr().err
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"groupconv {groupconv.__version__}"


def test_python_dash_m_groupconv_info():
    result = subprocess.run(
        [sys.executable, "-m", "groupconv", "info"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("groupconv:")
    assert "cuda device:" in result.stdout


def test_python_dash_m_groupconv_info_under_the_cuda_simulator():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    result = subprocess.run(
        [sys.executable, "-m", "groupconv", "info"],
        capture_output=True, text=True, timeout=300, check=False, env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "on (NUMBA_ENABLE_CUDASIM='1')" in result.stdout
    assert "cuda device:" in result.stdout
