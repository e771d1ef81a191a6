"""wavenet_layer: reference, torch.compile of the reference, Triton and CUDA."""
import pytest

from _suite import op_cases, run_benchmark


@pytest.mark.parametrize("backend", ["reference", "compile", "triton", "cuda"])
@pytest.mark.parametrize("case", op_cases("wavenet_layer"))
def test_wavenet_layer(benchmark, case, backend):
    benchmark.group = case.name
    run_benchmark(benchmark, case, backend)
