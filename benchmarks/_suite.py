"""pytest-benchmark suites for the ops.

Run: ``pytest benchmarks/ --benchmark-only`` (add ``--benchmark-json=FILE`` to
keep the numbers). Cases and sizes come from ``clarinet.bench``; the size is
``full`` on a GPU and ``small`` on the CPU unless ``CLARINET_BENCH_SIZE`` says
otherwise. Each backend is checked against the reference before it is timed.
"""
import os

import pytest
import torch

from clarinet import bench

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
SIZE = os.environ.get("CLARINET_BENCH_SIZE") or ("full" if DEVICE.type == "cuda" else "small")
DTYPE = torch.float16 if DEVICE.type == "cuda" else torch.float32


def _synchronised(fn):
    """``fn`` that waits for the GPU before returning (so the timer sees the kernels), or ``fn`` on the CPU."""
    if DEVICE.type != "cuda":
        return fn
    torch.cuda.synchronize()

    def timed():
        fn()
        torch.cuda.synchronize()
    return timed


def op_cases(op: str):
    return [pytest.param(c, id=f"{c.config}-{c.mode}") for c in bench.cases(ops=(op,), dtype=DTYPE, size=SIZE)]


def run_benchmark(benchmark, case: bench.Case, backend: str) -> None:
    why = bench.unavailable(backend, case, DEVICE)
    if why is not None:
        pytest.skip(why)
    inputs = bench.make_inputs(case, DEVICE)
    ref_out = bench.runner(case, "reference", {k: v.float() for k, v in inputs.items()})()
    fn = bench.runner(case, backend, inputs)
    wrong = bench.check(case, backend, inputs, fn, ref_out)
    assert wrong is None, f"{backend} disagrees with the reference: {wrong}"
    timed = _synchronised(fn)
    benchmark.extra_info.update(shape=case.shape, dtype=str(case.dtype), flops=case.flops, bytes=case.bytes,
                                device=bench.environment(DEVICE)["device"])
    benchmark.pedantic(timed, rounds=5, iterations=1, warmup_rounds=1)
    stats = benchmark.stats.stats if benchmark.stats is not None else None
    if stats is not None and stats.median > 0:
        benchmark.extra_info.update(gflops=case.flops / stats.median * 1e-9, gbps=case.bytes / stats.median * 1e-9)


def run_sampling_benchmark(benchmark, case: bench.Case, backend: str) -> None:
    """A generation case (ar_sampling / iaf_sampling): checked against the reference, then timed."""
    why = bench.unavailable(backend, case, DEVICE)
    if why is not None:
        pytest.skip(why)
    setup = bench.sampling_setup(case, DEVICE)
    wrong = bench.sampling_check(setup, backend)
    assert wrong is None, f"{backend} disagrees with the reference: {wrong}"
    slow = backend == "reference" and case.op == "ar_sampling"
    n = setup["short"] if slow else case.shape["T"]
    fn = bench.sampling_fn(setup, backend, n)
    timed = _synchronised(fn)
    benchmark.group = case.name
    benchmark.extra_info.update(shape=dict(case.shape, T=n), samples=case.shape["B"] * n,
                                device=bench.environment(DEVICE)["device"])
    benchmark.pedantic(timed, rounds=3, iterations=1, warmup_rounds=1)
