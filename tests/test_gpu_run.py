"""benchmarks/gpu_run.sh on a machine without a GPU: the GPU stages are reported as skipped, the
others run within small budgets, at most 8 files come back, and the script exits 0."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.cpu_only
def test_gpu_run_without_gpu(tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, OUT=str(out), PYTHON=sys.executable,
               GPU_RUN_STAGES="ops sampler_cuda sampler_triton models sanitizer bench",
               GPU_RUN_BUDGET_bench="120",
               GPU_RUN_BENCH_ARGS="--size tiny --ops gaussian_nll --modes fwd --backends reference triton")
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_run.sh")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = (out / "summary.txt").read_text().splitlines()
    stages = {line.split()[0]: line for line in lines}
    assert list(stages) == ["ops", "sampler_cuda", "sampler_triton", "models", "sanitizer", "bench"], lines
    for name in ("ops", "sampler_cuda", "sampler_triton", "models", "sanitizer"):
        assert "skipped: no GPU" in stages[name]
    assert "exit 0" in stages["bench"] and "1 ok rows" in stages["bench"], stages["bench"]
    files = sorted(p.name for p in out.rglob("*") if p.is_file())
    assert len(files) <= 8, files
    record = json.loads((out / "bench.json").read_text())
    assert {r["backend"]: r["status"] for r in record["results"]} == {"reference": "ok", "triton": "skipped"}
    assert "GPU: none" in (out / "env.txt").read_text()
    assert "no GPU here" in proc.stderr


def test_gpu_run_stage_budgets_fit_nine_minutes():
    text = (ROOT / "benchmarks" / "gpu_run.sh").read_text()
    table = text.split("declare -A budget=(")[1].split(")\n")[0]
    seconds = [int(item.split("=")[1]) for item in table.replace("\n", " ").split() if "=" in item]
    assert len(seconds) == 8 and sum(seconds) <= 540, seconds
