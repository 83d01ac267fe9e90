"""Concurrent calls from 8 Python threads: correct results, no abort, any threading layer."""

import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import sys, threading
    import numpy as np
    import numba
    import groupconv
    from groupconv import reference

    rng = np.random.default_rng(0)
    cases = []
    for dtype in ("float32", "float64", "complex64", "complex128"):
        for layout, groups, shape, weight in [
            ("channels_first", 3, (2, 6, 9, 9), (6, 2, 3, 3)),
            ("channels_last", 6, (1, 7, 8, 6), (12, 1, 3, 3)),
            ("channels_first", 2, (3, 4, 10), (4, 2, 5)),
        ]:
            x = rng.standard_normal(shape).astype(dtype)
            w = rng.standard_normal(weight).astype(dtype)
            kw = dict(groups=groups, padding="same", layout=layout)
            cases.append((x, w, kw, reference.conv(x, w, **kw)))

    errors = []

    def worker(k):
        for j in range(125):
            x, w, kw, want = cases[(7 * j + k) % len(cases)]
            got = groupconv.conv(x, w, **kw)
            if not np.allclose(got, want, rtol=1e-4, atol=1e-4):
                errors.append((k, j))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("layer", numba.threading_layer(), "calls", 8 * 125, "errors", len(errors))
    sys.exit(1 if errors else 0)
    """
)


@pytest.mark.parametrize("layer", ["default", "workqueue"])
def test_concurrent_calls_from_eight_threads(layer):
    env = dict(os.environ)
    if layer != "default":
        env["NUMBA_THREADING_LAYER"] = layer
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr[-2000:])
    assert "calls 1000 errors 0" in proc.stdout
    if layer != "default":
        assert f"layer {layer}" in proc.stdout
