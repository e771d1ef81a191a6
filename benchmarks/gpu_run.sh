#!/usr/bin/env bash
# The first GPU contact in one call: build, every GPU test in bounded stages, the sanitizer, the bench.
#
#   OUT=<dir> bash benchmarks/gpu_run.sh          (from the repository root)
#
# Made for the lent GPU machine: offline, its own torch/triton (no pins applied: the package is
# installed with --no-build-isolation --no-deps), about 15 minutes of device time in all, of which
# this script takes at most 9 (the stage budgets below add up to 540 s). Each stage has its own
# time limit, so one hang costs one stage, not the run. Writes at most 8 files under $OUT:
#
#   summary.txt   one line per stage: name, seconds, exit status, passed/failed/skipped/errors
#   env.txt       GPU, driver, versions
#   build.log     pip install (nvcc, sm_90a) and the import check of clarinet._cuda
#   tests.log     every pytest stage, with the reasons of skips and failures
#   bench.log     clarinet bench's table
#   bench.json    clarinet bench's record (written after every case: a timeout keeps what ran), with
#                 the compile + autotune seconds of every Triton kernel it tuned ("tuning")
#   bench.png     generation samples/s against batch (when matplotlib is there)
#
# Without a GPU the stages that need one are reported as skipped and the script exits 0 if the
# others passed (tests/test_gpu_run.py runs it that way with small budgets). With a GPU the exit
# status is 1 when any stage failed.
#
# Environment: GPU_RUN_STAGES (space-separated subset of the stage names, default all, in order),
# GPU_RUN_BUDGET_<stage> (seconds for that stage, e.g. GPU_RUN_BUDGET_bench=60), GPU_RUN_TEST_TIMEOUT
# (seconds per test, default 45; needs pytest-timeout), GPU_RUN_BENCH_ARGS (extra `clarinet bench`
# arguments, e.g. "--size tiny --ops gaussian_nll").
set -uo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the folder for the results}"
mkdir -p "$OUT"
summary="$OUT/summary.txt"
tests_log="$OUT/tests.log"
: > "$summary"
: > "$tests_log"
PY=${PYTHON:-python}

all_stages="build ops sampler_cuda sampler_triton models sanitizer bench suite"
stages=${GPU_RUN_STAGES:-$all_stages}
declare -A budget=([build]=90 [ops]=90 [sampler_cuda]=50 [sampler_triton]=50 [models]=50 [sanitizer]=50
                   [bench]=110 [suite]=50)
for s in $all_stages; do
  v="GPU_RUN_BUDGET_$s"
  [ -n "${!v:-}" ] && budget[$s]=${!v}
done
per_test=${GPU_RUN_TEST_TIMEOUT:-45}

has_gpu=$($PY -c "import torch; print(int(torch.cuda.is_available()))" 2>/dev/null || echo 0)
failed=0

{
  echo "date: $(date -u +%FT%TZ)"
  echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo -dirty)"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  command -v nvcc >/dev/null && nvcc --version | tail -n 2
  $PY - <<'EOF'
import platform
import torch
print(f"python {platform.python_version()}, torch {torch.__version__} (CUDA {torch.version.cuda}), "
      f"GPU: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}")
for name in ("triton", "numpy", "pytest", "pytest_timeout", "soundfile", "soxr", "matplotlib"):
    try:
        mod = __import__(name)
        print(f"{name} {getattr(mod, '__version__', '?')}")
    except ImportError:
        print(f"{name}: not installed")
EOF
} > "$OUT/env.txt" 2>&1

# record(stage, seconds, status, counts)
record() {
  printf '%-15s %5ss  exit %-4s %s\n' "$1" "$2" "$3" "$4" >> "$summary"
  echo "== $1: ${2}s, exit $3, $4" >&2
}

# counts(log): "N passed, N failed, N skipped, N errors" from pytest's closing line in that log
counts() {
  $PY - "$1" <<'EOF'
import re, sys
text = open(sys.argv[1], errors="replace").read()
lines = [l for l in text.splitlines() if re.search(r"\d+ (passed|failed|skipped|error|errors|deselected)\b", l)]
found = {}
for n, word in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)\b", lines[-1] if lines else ""):
    found["errors" if word.startswith("error") else word] = int(n)
print(", ".join(f"{found.get(k, 0)} {k}" for k in ("passed", "failed", "skipped", "errors")))
EOF
}

timeout_flag=()
$PY -c "import pytest_timeout" 2>/dev/null && timeout_flag=(--timeout "$per_test")

# run_pytest(stage, pytest args...): one bounded pytest stage; its output goes to tests.log
run_pytest() {
  local stage=$1
  shift
  local log
  log=$(mktemp)
  local t0=$SECONDS
  # CLARINET_AUTOTUNE=0: one config per kernel (correctness needs no tuning; compiling every config of
  # every kernel for every shape would take the stage's whole budget)
  CLARINET_AUTOTUNE=0 timeout --kill-after=10 "${budget[$stage]}" $PY -m pytest -q -rfEs -p no:cacheprovider \
    "${timeout_flag[@]}" "$@" > "$log" 2>&1
  local rc=$?
  local dt=$((SECONDS - t0))
  { echo "===== stage $stage: pytest $* (exit $rc, ${dt}s)"; cat "$log"; echo; } >> "$tests_log"
  local c
  c=$(counts "$log")
  rm -f "$log"
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then c="$c (stage time limit ${budget[$stage]}s reached)"; fi
  record "$stage" "$dt" "$rc" "$c"
  [ $rc -ne 0 ] && failed=1
}

skip_stage() {
  record "$1" 0 "-" "skipped: $2"
}

gpu_files_ops="tests/test_cuda_ops.py tests/test_gaussian_nll.py tests/test_gaussian_kl.py tests/test_wavenet_layer.py
tests/test_iaf_flow_head.py tests/test_custom_ops.py"
gpu_files_samplers="tests/test_wavenet_sample_cuda.py tests/test_wavenet_sample_triton.py"

for stage in $stages; do
  case $stage in
    build)
      t0=$SECONDS
      cuda_flag=0
      [ "$has_gpu" = 1 ] && cuda_flag=1
      {
        echo "CLARINET_BUILD_CUDA=$cuda_flag MAX_JOBS=$(nproc) pip install --no-build-isolation --no-deps -e ."
        CLARINET_BUILD_CUDA=$cuda_flag MAX_JOBS=$(nproc) timeout "${budget[build]}" \
          $PY -m pip install --no-build-isolation --no-deps --no-index -e . 2>&1
      } > "$OUT/build.log" 2>&1
      rc=$?
      if [ $rc -eq 0 ] && [ "$has_gpu" = 1 ]; then
        $PY -c "import clarinet._cuda, clarinet._cuda_ops; print('clarinet._cuda imports')" >> "$OUT/build.log" 2>&1 || rc=3
      fi
      $PY -c "import clarinet._C; print('clarinet._C imports')" >> "$OUT/build.log" 2>&1 || rc=4
      record build $((SECONDS - t0)) $rc "$( [ $rc -eq 0 ] && echo ok || echo "FAILED (see build.log)")"
      if [ $rc -ne 0 ]; then
        failed=1
        echo "build failed: the remaining stages would test a stale or missing extension" >&2
        break
      fi
      ;;
    ops)
      if [ "$has_gpu" = 1 ]; then run_pytest ops -m gpu $gpu_files_ops; else skip_stage ops "no GPU"; fi ;;
    sampler_cuda)
      if [ "$has_gpu" = 1 ]; then run_pytest sampler_cuda -m gpu -k "not sanitizer" tests/test_wavenet_sample_cuda.py
      else skip_stage sampler_cuda "no GPU"; fi ;;
    sampler_triton)
      if [ "$has_gpu" = 1 ]; then run_pytest sampler_triton -m gpu tests/test_wavenet_sample_triton.py
      else skip_stage sampler_triton "no GPU"; fi ;;
    models)
      # every other gpu-marked test (models, losses, training steps, bench harness, backend choice)
      if [ "$has_gpu" = 1 ]; then
        ignore=()
        for f in $gpu_files_ops $gpu_files_samplers; do ignore+=(--ignore "$f"); done
        run_pytest models -m gpu tests "${ignore[@]}"
      else skip_stage models "no GPU"; fi ;;
    sanitizer)
      if [ "$has_gpu" = 1 ]; then
        CLARINET_SANITIZER_TIMEOUT=$(( budget[sanitizer] / 2 - 5 )) run_pytest sanitizer -m gpu -k sanitizer \
          tests/test_wavenet_sample_cuda.py
      else skip_stage sanitizer "no GPU"; fi ;;
    bench)
      t0=$SECONDS
      # shellcheck disable=SC2086
      timeout --kill-after=10 "${budget[bench]}" $PY -m clarinet bench --quiet --out "$OUT/bench.json" \
        --plot "$OUT/bench.png" --max-seconds $(( budget[bench] * 3 / 4 )) ${GPU_RUN_BENCH_ARGS:-} \
        > "$OUT/bench.log" 2>&1
      rc=$?
      n_ok=$($PY -c "import json,sys; r=json.load(open(sys.argv[1]))['results']; print(sum(x['status']=='ok' for x in r), 'ok rows,', sum(x['status'] in ('wrong','error') for x in r), 'wrong/error,', sum(x['status']=='skipped' for x in r), 'skipped')" "$OUT/bench.json" 2>/dev/null || echo "no record")
      record bench $((SECONDS - t0)) $rc "$n_ok"
      [ $rc -ne 0 ] && failed=1
      ;;
    suite)
      # the rest of the suite: on a GPU machine it must pass or skip for a stated reason as well
      run_pytest suite -m "not gpu" tests ;;
    *)
      echo "unknown stage $stage (stages: $all_stages)" >&2
      record "$stage" 0 2 "unknown stage"
      failed=1 ;;
  esac
done

echo "summary ($OUT/summary.txt):" >&2
cat "$summary" >&2
if [ "$has_gpu" != 1 ]; then
  echo "no GPU here: the GPU stages were skipped; nothing above was measured on a GPU" >&2
fi
exit $failed
