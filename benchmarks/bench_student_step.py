"""student_step: one training step (loss forward + backward to every parameter) with each backend."""
import pytest

from _suite import op_cases, run_benchmark


@pytest.mark.parametrize("backend", ["reference", "compile", "triton", "cuda"])
@pytest.mark.parametrize("case", op_cases("student_step"))
def test_student_step(benchmark, case, backend):
    benchmark.group = case.name
    run_benchmark(benchmark, case, backend)
