"""gaussian_nll: reference, torch.compile of the reference, Triton and CUDA."""
import pytest

from _suite import op_cases, run_benchmark


@pytest.mark.parametrize("backend", ["reference", "compile", "triton", "cuda"])
@pytest.mark.parametrize("case", op_cases("gaussian_nll"))
def test_gaussian_nll(benchmark, case, backend):
    benchmark.group = case.name
    run_benchmark(benchmark, case, backend)
