"""``groupconv.bench`` and ``groupconv bench``: the suite, the runner's checks, the CLI.

Every run here is tiny (batch 1-2, scaled-down images, one timed call), so
the whole file takes seconds; nothing here measures speed.
"""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import groupconv
from groupconv import bench
from groupconv.cli import main

TINY = bench.BenchShape("tiny_grouped", 4, 9, 9, 6, 3, 2, 1, 2, batch=2)
TINY_DW = bench.BenchShape("tiny_dw", 3, 8, 8, 6, 3, 1, 1, 3, batch=2)
TINY_SEP = bench.BenchShape("tiny_sep", 3, 8, 8, 3, 3, 1, 1, 3, pointwise=5, batch=2)

QUICK = {"repeats": 1, "copy_bytes": 2**16}


@pytest.fixture(autouse=True)
def no_settling(monkeypatch):
    # The pause before each measurement matters for timings, not for these tests.
    monkeypatch.setattr(bench, "SETTLE_S", 0.0)


def test_time_call_settles_before_the_first_call(monkeypatch):
    events = []
    monkeypatch.setattr(bench.time, "sleep", lambda s: events.append(("sleep", s)))
    bench.time_call(lambda: events.append("call"), repeats=1, settle=0.5)
    assert events == [("sleep", 0.5), "call", "call"]


def test_the_suite_is_the_specified_one():
    rows = {
        s.name: (s.c_in, s.height, s.width, s.c_out, s.kernel, s.stride, s.padding, s.groups,
                 s.pointwise, s.batch)
        for s in bench.SHAPES
    }
    assert rows == {
        "dw3x3_mbv2_56": (144, 56, 56, 144, 3, 1, 1, 144, None, 8),
        "dw3x3_s2_112": (96, 112, 112, 96, 3, 2, 1, 96, None, 8),
        "dw3x3_14": (384, 14, 14, 384, 3, 1, 1, 384, None, 8),
        "dw7x7_convnext_56": (96, 56, 56, 96, 7, 1, 3, 96, None, 8),
        "dw3x3_mult2_28": (64, 28, 28, 128, 3, 1, 1, 64, None, 8),
        "grp32_resnext_56": (128, 56, 56, 128, 3, 1, 1, 32, None, 8),
        "grp2_28": (128, 28, 28, 128, 3, 1, 1, 2, None, 8),
        "dense3x3_56": (64, 56, 56, 64, 3, 1, 1, 1, None, 8),
        "pw1x1_56": (144, 56, 56, 24, 1, 1, 0, 1, None, 8),
        "separable_mbv2_56": (144, 56, 56, 144, 3, 1, 1, 144, 24, 8),
    }
    assert bench.shape_names() == list(rows)
    kinds = {s.name: s.kind for s in bench.SHAPES}
    assert kinds["dw3x3_mult2_28"] == "depthwise" and kinds["grp2_28"] == "grouped"
    assert kinds["pw1x1_56"] == "dense" and kinds["separable_mbv2_56"] == "separable"


def test_shape_geometry_and_cost_agree_with_groupconv():
    for shape in bench.SHAPES:
        out = groupconv.conv_output_shape(shape.input_shape(), shape.weight_shape,
                                          groups=shape.groups, **shape.options)
        if shape.pointwise is None:
            assert out == shape.output_shape()
        else:
            assert out[2:] == shape.output_shape()[2:]
        assert shape.cost().output_shape == shape.output_shape()
    sep = bench.get_shapes(["separable_mbv2_56"])[0]
    dw = bench.get_shapes(["dw3x3_mbv2_56"])[0]
    assert sep.cost().macs == dw.cost().macs + 8 * 56 * 56 * 144 * 24


def test_get_shapes_selects_scales_and_refuses_unknown_names():
    chosen = bench.get_shapes(" dw3x3_14 ,grp2_28", batch=1, scale=0.5)
    assert [s.name for s in chosen] == ["dw3x3_14", "grp2_28"]
    assert chosen[0].input_shape() == (1, 384, 7, 7)
    assert bench.get_shapes([TINY]) == [TINY]
    assert bench.get_shapes(["dw7x7_convnext_56"], scale=0.01)[0].height == 7  # >= kernel
    with pytest.raises(ValueError, match="unknown shape 'nope'.*dw3x3_mbv2_56"):
        bench.get_shapes("dw3x3_14,nope")
    with pytest.raises(ValueError, match="more than once"):
        bench.get_shapes("dw3x3_14,dw3x3_14")
    with pytest.raises(ValueError, match="scale"):
        bench.get_shapes("dw3x3_14", scale=2.0)
    with pytest.raises(ValueError, match="batch"):
        bench.get_shapes("dw3x3_14", batch=0)
    with pytest.raises(ValueError, match="groups=3 must divide"):
        bench.BenchShape("bad", 4, 8, 8, 4, 3, 1, 1, 3)
    with pytest.raises(ValueError, match="separable row needs a depthwise"):
        bench.BenchShape("bad", 4, 8, 8, 4, 3, 1, 1, 2, pointwise=3)


def test_inputs_are_seeded():
    a, b = TINY.make_inputs(3), TINY.make_inputs(3)
    for key in ("x", "x_last", "weight"):
        np.testing.assert_array_equal(a[key], b[key])
        assert a[key].dtype == np.float32
    np.testing.assert_array_equal(a["x_last"], a["x"].transpose(0, 2, 3, 1))
    assert a["pointwise"] is None and TINY_SEP.make_inputs()["pointwise"].shape == (5, 3)
    assert not np.array_equal(TINY.make_inputs(4)["x"], a["x"])


def test_time_call_warms_up_before_timing():
    calls = []
    times, result = bench.time_call(lambda: calls.append(1) or len(calls), repeats=3, warmup=2)
    assert len(times) == 3 and all(t >= 0 for t in times)
    assert result == 1 and len(calls) == 5
    with pytest.raises(ValueError):
        bench.time_call(lambda: None, repeats=0)


def test_copy_bandwidth_is_positive():
    assert bench.copy_bandwidth(2**16, repeats=2) > 0


def test_verify_detects_wrong_results():
    expected = np.arange(8.0).reshape(1, 2, 2, 2)
    assert bench.verify(expected.astype(np.float32), expected)["ok"]
    last = np.moveaxis(expected, 1, -1)
    assert bench.verify(np.concatenate([last, last + 5]), expected, layout="channels_last")["ok"]
    bad = bench.verify(expected + 0.01, expected)
    assert not bad["ok"] and "max abs error" in bad["reason"]
    assert not bench.verify(expected[:, :1], expected)["ok"]
    nan = expected.copy()
    nan[0, 0, 0, 0] = np.nan
    assert not bench.verify(nan, expected)["ok"]


def _check_structure(results, shapes, peers=()):
    assert results["schema"] == "groupconv-bench/1"
    assert results["threads"] == 1 and results["repeats"] == 1
    assert results["layouts"] == ["channels_first", "channels_last"]
    assert results["copy_gbps"] > 0
    assert {"groupconv", "numpy", "numba", "python"} <= set(results["versions"])
    assert {"platform", "cpu_count", "processor"} <= set(results["machine"])
    assert [row["name"] for row in results["shapes"]] == [s.name for s in shapes]
    for row in results["shapes"]:
        for layout in ("channels_first", "channels_last"):
            entry = row["groupconv"][layout]
            assert entry["median_s"] > 0 and len(entry["times_s"]) == 1
            assert entry["check"]["ok"], entry["check"]
        assert row["best_layout"] in ("channels_first", "channels_last")
        assert row["best_s"] == row["groupconv"][row["best_layout"]]["median_s"]
        assert row["gflops"] == pytest.approx(row["flops"] / row["best_s"] / 1e9)
        assert row["gbps"] > 0 and row["copy_fraction"] > 0
        assert row["verified"] is True
        assert set(row["peers"]) == {p for p in peers if results["peers"][p]["available"]}
    json.loads(json.dumps(results))  # all plain JSON


def test_rounds_visit_every_layout_in_turn(monkeypatch):
    timed = []
    original = bench._groupconv_call

    def tagged(shape, data, layout):
        call = original(shape, data, layout)
        return lambda: (timed.append(layout), call())[1]

    monkeypatch.setattr(bench, "_groupconv_call", tagged)
    monkeypatch.setattr(bench, "WARMUP_CALLS", 1)
    results = bench.run_bench([TINY], peers=(), threads=1, repeats=4, rounds=2,
                              copy_bytes=2**16)
    assert results["rounds"] == 2 and results["repeats"] == 4
    for entry in results["shapes"][0]["groupconv"].values():
        assert len(entry["times_s"]) == 4 and entry["check"]["ok"]
    # Each round: one warm-up and two timed calls per layout, layout after layout.
    cf, cl = "channels_first", "channels_last"
    assert timed == [cf] * 3 + [cl] * 3 + [cf] * 3 + [cl] * 3
    with pytest.raises(ValueError, match="rounds must be an int from 1 to repeats"):
        bench.run_bench([TINY], peers=(), repeats=2, rounds=3)


def test_run_bench_on_tiny_custom_shapes():
    shapes = [TINY, TINY_DW, TINY_SEP]
    results = bench.run_bench(shapes, peers=(), threads=1, **QUICK)
    _check_structure(results, shapes)
    assert results["ok"] is True and results["peers"] == {}
    assert results["shapes"][2]["kind"] == "separable"
    text = bench.format_table(results)
    for name in ("tiny_grouped", "tiny_dw", "tiny_sep", "GFLOP/s", "GB/s", "copy GB/s"):
        assert name in text
    assert "FAIL" not in text


def test_run_bench_restores_numba_threads():
    import numba

    before = numba.get_num_threads()
    bench.run_bench([TINY], peers=(), threads=1, **QUICK)
    assert numba.get_num_threads() == before
    with pytest.raises(ValueError, match="NUMBA_NUM_THREADS"):
        bench.run_bench([TINY], peers=(), threads=numba.config.NUMBA_NUM_THREADS + 1)
    assert numba.get_num_threads() == before


def test_a_wrong_groupconv_result_is_flagged(monkeypatch):
    real = groupconv.conv
    monkeypatch.setattr(groupconv, "conv", lambda *a, **k: real(*a, **k) + 1)
    results = bench.run_bench([TINY], peers=(), threads=1, **QUICK)
    assert results["ok"] is False and results["shapes"][0]["verified"] is False
    check = results["shapes"][0]["groupconv"]["channels_first"]["check"]
    assert not check["ok"] and "max abs error" in check["reason"]
    text = bench.format_table(results)
    assert "FAIL" in text and "problems:" in text


def test_a_crashing_groupconv_is_recorded_not_raised(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("kernel exploded")

    monkeypatch.setattr(groupconv, "separable_conv", broken)
    results = bench.run_bench([TINY_SEP, TINY_DW], peers=(), threads=1, **QUICK)
    sep, dw = results["shapes"]
    assert sep["groupconv"]["channels_last"]["error"] == "RuntimeError: kernel exploded"
    assert sep["verified"] is False and sep["best_s"] is None and dw["verified"] is True
    assert "ERR" in bench.format_table(results)


def test_missing_peers_are_skipped(monkeypatch):
    for name in ("tensorflow", "jax"):
        monkeypatch.setitem(sys.modules, name, None)  # import raises ImportError
    results = bench.run_bench([TINY_DW], peers="tf,jax", threads=1, **QUICK)
    assert results["ok"] is True
    for name in ("tensorflow", "jax"):
        assert results["peers"][name]["available"] is False
        assert "not installed" in results["peers"][name]["reason"]
    assert results["shapes"][0]["peers"] == {}
    assert "peers not run: tensorflow" in bench.format_table(results)


def test_a_failing_peer_is_recorded(monkeypatch):
    def load(threads):
        return object(), "9.9", "fake", lambda: None

    def prepare(module, shape, data):
        if shape.kind == "depthwise":
            return "fake skips depthwise rows"
        wrong = np.zeros(shape.output_shape(), np.float32)
        return {"a": (lambda: wrong, lambda y: y[:1]),
                "b": (lambda: 1 / 0, lambda y: y)}

    monkeypatch.setitem(bench._PEER_FUNCTIONS, "scipy", (load, prepare))
    results = bench.run_bench([TINY, TINY_DW], peers="scipy", threads=1, **QUICK)
    grouped, dw = (row["peers"]["scipy"] for row in results["shapes"])
    assert results["ok"] is True  # peers never fail the run
    assert grouped["status"] == "mismatch" and grouped["best_variant"] == "a"
    assert grouped["variants"]["b"]["error"].startswith("ZeroDivisionError")
    assert grouped["ratio"] == pytest.approx(grouped["best_s"] / results["shapes"][0]["best_s"])
    assert dw == {"status": "skipped", "reason": "fake skips depthwise rows"}
    text = bench.format_table(results)
    assert "x!" in text and "tiny_grouped scipy: a: max abs error" in text


def test_peers_are_checked_against_the_reference():
    pytest.importorskip("scipy.ndimage")
    shapes = [TINY_DW, bench.BenchShape("tiny_dw_s2", 2, 9, 9, 4, 3, 2, 1, 2, batch=1), TINY]
    results = bench.run_bench(shapes, peers="scipy", threads=1, **QUICK)
    dw, dw_s2, grouped = (row["peers"]["scipy"] for row in results["shapes"])
    assert dw["status"] == "ok" and dw_s2["status"] == "ok", (dw, dw_s2)
    assert grouped["status"] == "skipped"


def test_torch_peer():
    pytest.importorskip("torch")
    shapes = [TINY, TINY_DW, TINY_SEP]
    results = bench.run_bench(shapes, peers="torch", threads=1, **QUICK)
    _check_structure(results, shapes, peers=("torch",))
    for row in results["shapes"]:
        entry = row["peers"]["torch"]
        assert entry["status"] == "ok", entry
        assert set(entry["variants"]) == {"NCHW", "channels_last"}
        assert entry["ratio"] > 0


def test_unknown_peer_and_layout_are_errors():
    with pytest.raises(ValueError, match="unknown peer 'caffe'"):
        bench.run_bench([TINY], peers="torch,caffe")
    with pytest.raises(ValueError, match="layouts"):
        bench.run_bench([TINY], peers=(), layouts=["NHWC"])


def test_progress_bar_goes_to_the_given_stream(capsys):
    import io

    stream = io.StringIO()
    bench.run_bench([TINY, TINY_DW], peers=(), threads=1, progress=stream, **QUICK)
    lines = stream.getvalue().splitlines()
    assert lines[-1].startswith("[########################] 5/5 tiny_dw")
    assert capsys.readouterr() == ("", "")  # nothing else printed


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    results = bench.run_bench([TINY, TINY_DW], peers=(), threads=1, **QUICK)
    path = tmp_path / "bench.png"
    bench.plot_results(results, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- the CLI

CLI_TINY = ["bench", "--shapes", "dw3x3_14,grp2_28", "--batch", "1", "--scale", "0.3",
            "--repeats", "1", "--threads", "1", "--peers", "none"]


def test_cli_prints_a_table(capsys):
    assert main(CLI_TINY) == 0
    captured = capsys.readouterr()
    assert "dw3x3_14" in captured.out and "grp2_28" in captured.out
    assert "GFLOP/s" in captured.out and "OK" in captured.out
    assert "2/5" in captured.err  # progress on stderr (plain lines: not a terminal)


def test_cli_json(capsys):
    assert main([*CLI_TINY, "--json", "--no-progress"]) == 0
    captured = capsys.readouterr()
    results = json.loads(captured.out)
    assert captured.err == ""
    assert [row["name"] for row in results["shapes"]] == ["dw3x3_14", "grp2_28"]
    assert results["batch"] == 1 and results["scale"] == 0.3 and results["mode"] == "custom"
    assert results["shapes"][0]["input_shape"] == [1, 384, 4, 4]
    assert set(results["shapes"][0]["groupconv"]) == {"channels_first", "channels_last"}


def test_cli_exit_status_1_on_a_wrong_result(capsys, monkeypatch):
    real = groupconv.conv
    monkeypatch.setattr(groupconv, "conv", lambda *a, **k: real(*a, **k) * 2)
    assert main([*CLI_TINY, "--no-progress"]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_cli_list(capsys):
    assert main(["bench", "--list"]) == 0
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines()] == bench.shape_names()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["bench", "--shapes", "nope"], "unknown shape 'nope'"),
        (["bench", "--shapes", "dw3x3_14", "--peers", "caffe"], "unknown peer"),
        (["bench", "--shapes", "dw3x3_14", "--threads", "0"], "threads must be"),
        (["bench", "--shapes", "dw3x3_14", "--threads", "999"], "NUMBA_NUM_THREADS"),
        (["bench", "--shapes", "dw3x3_14", "--scale", "3"], "scale must be"),
    ],
)
def test_cli_usage_errors(capsys, argv, message):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert message in captured.err


def test_cli_argument_parsing():
    from groupconv.cli import _build_parser

    parser = _build_parser()
    args = parser.parse_args(["bench"])
    assert (args.full, args.threads, args.shapes, args.json, args.plot, args.progress) == (
        False, 2, None, False, None, True)
    assert args.peers == "torch,tensorflow,jax,scipy"
    args = parser.parse_args(["bench", "--full", "--threads", "1", "--shapes", "a,b", "--json",
                              "--plot", "x.png", "--no-progress", "--peers", "tf"])
    assert (args.full, args.threads, args.shapes, args.json, args.plot, args.progress) == (
        True, 1, "a,b", True, "x.png", False)
    assert parser.parse_args(["bench", "--quick"]).full is False


def test_cli_quick_and_full_are_exclusive(capsys):
    assert main(["bench", "--quick", "--full"]) == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_cli_plot_without_matplotlib_fails_before_running(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setattr(bench, "run_bench", lambda *a, **k: pytest.fail("ran the benchmark"))
    assert main(["bench", "--plot", "out.png"]) == 2
    err = capsys.readouterr().err
    assert "--plot needs matplotlib" in err and "pip install matplotlib" in err


def test_cli_plot(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "b.png"
    assert main([*CLI_TINY, "--no-progress", "--plot", str(path)]) == 0
    assert path.exists() and f"wrote {path}" in capsys.readouterr().err


def test_imports_stay_light():
    # Neither ``import groupconv`` nor the CLI and bench modules import a peer.
    code = textwrap.dedent(
        """
        import sys
        import groupconv
        assert "groupconv.bench" not in sys.modules
        import groupconv.cli, groupconv.bench
        groupconv.cli._build_parser()
        heavy = {"torch", "tensorflow", "jax", "matplotlib", "scipy.ndimage", "scipy.signal"}
        print(sorted(heavy & set(sys.modules)))
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
