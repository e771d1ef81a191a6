"""iaf_flow_head: the student's fused flow head + composition (inference): reference, torch.compile, Triton."""
import pytest

from _suite import op_cases, run_benchmark


@pytest.mark.parametrize("backend", ["reference", "compile", "triton"])
@pytest.mark.parametrize("case", op_cases("iaf_flow_head"))
def test_iaf_flow_head(benchmark, case, backend):
    benchmark.group = case.name
    run_benchmark(benchmark, case, backend)
