"""gaussian_kl: reference, torch.compile of the reference, Triton and CUDA."""
import pytest

from _suite import op_cases, run_benchmark


@pytest.mark.parametrize("backend", ["reference", "compile", "triton", "cuda"])
@pytest.mark.parametrize("case", op_cases("gaussian_kl"))
def test_gaussian_kl(benchmark, case, backend):
    benchmark.group = case.name
    run_benchmark(benchmark, case, backend)
