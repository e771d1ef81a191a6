"""clarinet bench and the benchmark suites run on the CPU, and refuse to time a wrong answer."""
import json
import os
import subprocess
import sys

import pytest
import torch

from clarinet import bench, cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_cli_writes_a_record(tmp_path, capsys):
    out = tmp_path / "rec.json"
    ops = ["wavenet_layer", "gaussian_nll", "gaussian_kl", "teacher_step", "ar_sampling", "iaf_sampling"]
    rc = cli.main(["bench", "--size", "tiny", "--backends", "reference", "triton", "cuda", "cpp", "--out", str(out),
                   "--quiet", "--min-time", "0.01", "--device", "cpu", "--ops", *ops,
                   "--configs", "student", "teacher-small"])
    assert rc == 0
    rec = json.loads(out.read_text())
    assert isinstance(rec["tuning"], list)  # Triton compile + autotune cost (none timed on the CPU)
    env = rec["environment"]
    for key in ("device", "torch", "triton", "clarinet", "commit", "time"):
        assert env[key]
    rows = rec["results"]
    assert {r["op"] for r in rows} == set(ops) | {"ar_mixed_lengths"}  # + the mixed-length batch row
    assert {r["config"] for r in rows} == {"student", "teacher-small", "loss"}
    mixed = [r for r in rows if r["op"] == "ar_mixed_lengths"]
    assert [r["backend"] for r in mixed] == ["cpp (batch)", "cpp (one by one)", "cpp (padded, no frame_lengths)"]
    ok = [r for r in rows if r["status"] == "ok" and r["op"] != "ar_mixed_lengths"]
    assert ok and all(r["backend"] in ("reference", "cpp") and r["median_ms"] > 0 and r["p20_ms"] <= r["p80_ms"]
                      for r in ok)
    assert {r["backend"] for r in ok if r["op"] == "ar_sampling"} == {"reference", "cpp"}
    assert {r["backend"] for r in ok if r["op"] == "iaf_sampling"} == {"reference"}
    sampling = [r for r in ok if r["op"] in bench.SAMPLING_PRESETS]
    assert all(r["x_real_time"] > 0 for r in sampling)
    assert {r["shape"]["B"] for r in sampling} == {1, 2}  # batch 1 and the sweep
    assert (tmp_path / "rec.png").stat().st_size > 1000  # samples/s against batch
    skipped = {r["backend"] for r in rows if r["status"] == "skipped"}
    assert skipped == {"triton", "cuda", "cpp", "reference"}  # cpp: only the AR sampler; reference: float32 only
    assert {r["dtype"] for r in ok if r["backend"] == "cpp"} == {"float32", "float16", "int8"}
    assert all(0 < r["core_fraction"] for r in ok if r["backend"] == "cpp")  # against env["roofline"]
    assert env["roofline"]["fma_macs_per_s"] > 0
    printed = capsys.readouterr().out
    assert "not run: triton" in printed and "not run: cuda" in printed and "| wavenet_layer[student" in printed
    assert "| teacher_step[teacher-small" in printed
    assert "| ar_sampling teacher-small | 2 |" in printed and "x real time" in printed


def test_wrong_answer_is_not_timed(monkeypatch, triton_device):
    """A backend whose result disagrees with the reference gets status 'wrong' and no time."""
    from clarinet.kernels import gaussian_nll as kern

    real = kern.gaussian_nll_fwd
    monkeypatch.setattr(kern, "gaussian_nll_fwd", lambda *a: real(*a) * 1.01)
    monkeypatch.setattr(bench.run, "unavailable", lambda *a: None)  # let the interpreter run here
    (case,) = bench.cases(ops=("gaussian_nll",), modes=("fwd",), dtype=torch.float32, size="tiny")
    rows = bench.run_case(case, ["reference", "triton"], torch.device(triton_device), min_time=0.01)
    by_backend = {r["backend"]: r for r in rows}
    assert by_backend["reference"]["status"] == "ok"
    assert by_backend["triton"]["status"] == "wrong" and "median_ms" not in by_backend["triton"]


def test_triton_matches_in_bench_harness(monkeypatch, triton_device):
    """The harness's own correctness check passes for the real kernels (forward and backward)."""
    monkeypatch.setattr(bench.run, "unavailable", lambda *a: None)
    for case in bench.cases(ops=("wavenet_layer", "gaussian_nll", "gaussian_kl", "iaf_flow_head"), configs=("student",),
                            dtype=torch.float32, size="tiny"):
        rows = bench.run_case(case, ["triton"], torch.device(triton_device), min_time=0.0)
        assert rows[0]["status"] == "ok", rows[0]


def test_pytest_benchmark_suites_run(tmp_path):
    env = dict(os.environ, CLARINET_BENCH_SIZE="tiny")
    # benchmarks/ is outside testpaths: name its bench_*.py files to run them
    suites = sorted(f"benchmarks/{f}" for f in os.listdir(os.path.join(ROOT, "benchmarks")) if f.startswith("bench_"))
    assert len(suites) == len(bench.OPS)
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--benchmark-disable", "-k", "not compile",
           *suites]
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert " passed" in res.stdout


def test_readme_results_table_is_current():
    res = subprocess.run([sys.executable, "benchmarks/make_table.py", "--check"], cwd=ROOT, capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("size", list(bench.SIZES))
def test_case_counts_are_positive(size):
    for case in bench.cases(size=size):
        if case.op in bench.SAMPLING_PRESETS:  # counted per backend at run time (the lengths differ)
            continue
        assert case.flops > 0 and (case.bytes > 0 or case.op in bench.STEP_PRESETS)


def test_training_step_cases_check_gradients(monkeypatch):
    """A step case returns the loss and every parameter's gradient, which the harness compares."""
    (case,) = bench.cases(ops=("teacher_step",), configs=("teacher-small",), size="tiny")
    assert case.shape["T"] % 300 == 0 and case.flops > 0
    inputs = bench.make_inputs(case, torch.device("cpu"))
    ref = bench.runner(case, "reference", inputs)()
    from clarinet.models import GaussianWaveNet

    assert len(ref) == 1 + len(list(GaussianWaveNet.from_preset("teacher-small").parameters()))
    assert torch.isfinite(ref[0]) and all(g.shape == p.shape for g, p in
                                          zip(ref[1:], GaussianWaveNet.from_preset("teacher-small").parameters()))


def test_sampling_rows_check_before_timing(monkeypatch):
    """A sampler that disagrees with the reference (teacher-forced) is reported and not timed."""
    import importlib

    ws = importlib.import_module("clarinet.ops.wavenet_sample")  # the module (clarinet.ops exports the function)

    real = ws.wavenet_sample

    def skewed(*args, backend="auto", **kw):
        out = real(*args, backend=backend, **kw)
        if backend == "cpp" and kw.get("teacher_forcing") is not None:
            return out[0] * 1.01, out[1]
        return out

    monkeypatch.setattr(ws, "wavenet_sample", skewed)
    case = bench.cases(ops=("ar_sampling",), configs=("teacher-small",), dtype=torch.float32, size="tiny")[0]
    rows = {r["backend"]: r for r in bench.run_case(case, ["reference", "cpp"], torch.device("cpu"), min_time=0.0)}
    assert rows["reference"]["status"] == "ok"
    assert rows["cpp"]["status"] == "wrong" and "median_ms" not in rows["cpp"]


def test_profile_writes_chrome_traces_and_headline_first(tmp_path, capsys):
    """--profile DIR: one torch.profiler trace per case and backend, loadable JSON holding the op's range."""
    traces = tmp_path / "traces"
    rc = cli.main(["bench", "--size", "tiny", "--ops", "gaussian_kl", "ar_sampling", "--modes", "fwd", "--configs",
                   "teacher-small", "--backends", "reference", "cpp", "--profile", str(traces), "--out",
                   str(tmp_path / "r.json"), "--no-plot", "--quiet", "--min-time", "0", "--device", "cpu"])
    assert rc == 0
    rows = json.loads((tmp_path / "r.json").read_text())["results"]
    timed = [r for r in rows if r["status"] == "ok"]
    assert timed and all(os.path.isfile(r["trace"]) for r in timed)
    assert len({r["trace"] for r in timed}) == len(timed)  # one file per case and backend
    names = {}
    for r in timed:
        with open(r["trace"]) as f:
            events = json.load(f)["traceEvents"]  # Chrome-trace JSON
        names[(r["op"], r["backend"])] = {e.get("name") for e in events}
    assert "clarinet.gaussian_kl_ref" in names[("gaussian_kl", "reference")]
    assert "clarinet.wavenet_sample" in names[("ar_sampling", "cpp")]
    assert "clarinet.wavenet_sample_ref" in names[("ar_sampling", "reference")]
    printed = capsys.readouterr().out
    assert f"torch.profiler traces (Chrome-trace JSON" in printed and str(traces) in printed
    # the real-time-factor headline comes first, then the detailed tables
    assert printed.index("real-time factor (generation, batch 1") < printed.index("| case |")
    assert "| teacher-small (autoregressive) | cpp |" in printed


def test_quick_runs_only_the_headline(tmp_path, capsys):
    rc = cli.main(["bench", "--quick", "--size", "tiny", "--configs", "teacher-small", "student", "--out",
                   str(tmp_path / "q.json"), "--no-plot", "--quiet", "--min-time", "0", "--device", "cpu"])
    assert rc == 0
    rows = json.loads((tmp_path / "q.json").read_text())["results"]
    assert {r["op"] for r in rows} == {"ar_sampling", "iaf_sampling"} and {r["shape"]["B"] for r in rows} == {1}
    assert not [r for r in rows if r["op"] == "ar_sampling" and r["backend"] == "reference"]  # never the best
    printed = capsys.readouterr().out
    assert "| teacher-small (autoregressive) | cpp |" in printed and "| student (parallel (IAF)) |" in printed
    assert "| case |" not in printed


def test_headline_picks_the_fastest_backend_per_preset():
    def row(config, backend, dtype, rtf, B=1, op="ar_sampling"):
        return dict(op=op, config=config, backend=backend, dtype=dtype, status="ok", shape=dict(B=B),
                    x_real_time=rtf, samples_per_s=rtf * bench.SAMPLE_RATE)

    rows = [row("teacher", "cpp", "float32", 0.5), row("teacher", "cpp", "float16", 0.8),
            row("teacher", "cuda", "float16", 9.0, B=4), dict(row("teacher", "triton", "float32", 99.0), status="wrong"),
            row("student", "reference", "float32", 1.5, op="iaf_sampling")]
    text = bench.headline(rows)
    assert "| teacher (autoregressive) | cpp | float16 | 0.8 |" in text
    assert "| student (parallel (IAF)) | reference | float32 | 1.5 |" in text
    assert bench.headline([]) == ""


def test_mixed_length_row_checks_then_times_batch_and_one_by_one(monkeypatch):
    from clarinet.bench import serving as bench_serving

    rows = bench_serving.mixed_length_rows("teacher-small", "tiny", torch.device("cpu"), ["cpp"], min_time=0.0)
    assert [r["backend"] for r in rows] == ["cpp (batch)", "cpp (one by one)", "cpp (padded, no frame_lengths)"]
    assert all(r["status"] == "ok" and r["samples_per_s"] > 0 for r in rows)
    assert rows[0]["shape"]["seconds"] == "0.0125+0.025" and "the speed of one by one" in rows[0]["note"]
    assert "ar_mixed_lengths[teacher-small" in bench.markdown_table(rows)
    assert bench_serving.mixed_length_rows("teacher-small", "tiny", torch.device("cpu"), ["reference"])[0]["status"] \
        == "skipped"
    # a batch whose rows disagree with the utterances alone is reported, not timed
    real = bench_serving.mismatch
    monkeypatch.setattr(bench_serving, "mismatch", lambda a, b, d: real(a * 1.01, b, d))
    (wrong,) = bench_serving.mixed_length_rows("teacher-small", "tiny", torch.device("cpu"), ["cpp"], min_time=0.0)
    assert wrong["status"] == "wrong" and "median_ms" not in wrong


def test_record_has_threads_and_load_and_warns(tmp_path, capsys, monkeypatch):
    """--threads is honoured and recorded with the load; a busy machine and a wide spread are warned of."""
    out = tmp_path / "rec.json"
    before = torch.get_num_threads()
    monkeypatch.setattr(bench.record, "machine_load", lambda: dict(threads=torch.get_num_threads(), cpus_available=2,
                                                            load_avg=[7.5, 6.0, 5.0]))
    rc = cli.main(["bench", "--size", "tiny", "--backends", "reference", "--ops", "gaussian_nll", "--modes", "fwd",
                   "--out", str(out), "--quiet", "--min-time", "0.01", "--device", "cpu", "--no-plot",
                   "--threads", "1"])
    assert rc == 0 and torch.get_num_threads() == before  # main() restores the caller's count
    env = json.loads(out.read_text())["environment"]
    assert env["threads"] == 1 and env["load_avg"] == [7.5, 6.0, 5.0] and env["load_avg_end"] == [7.5, 6.0, 5.0]
    assert "the machine is busy: load average 7.5 on 2 CPUs" in capsys.readouterr().err
    assert bench.load_warning(dict(threads=1, cpus_available=4, load_avg=[1.0, 1, 1])) is None
    rows = [dict(case="c", backend="b", status="ok", median_ms=1.0, p20_ms=0.9, p80_ms=1.1),
            dict(case="d", backend="b", status="ok", median_ms=1.0, p20_ms=0.8, p80_ms=1.5),
            dict(case="e", backend="b", status="skipped")]
    (line,) = bench.spread_warnings(rows)
    assert line.startswith("d b: spread 70%")
