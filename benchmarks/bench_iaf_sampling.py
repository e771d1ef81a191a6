"""iaf_sampling: parallel generation by the student (GaussianIAF.generate), batch 1 and the batch sweep."""
import pytest

from _suite import DTYPE, SIZE, run_sampling_benchmark

from clarinet import bench


@pytest.mark.parametrize("backend", ["reference", "compile", "triton", "cuda"])
@pytest.mark.parametrize("case", bench.cases(ops=("iaf_sampling",), dtype=DTYPE, size=SIZE), ids=lambda c: c.name)
def test_iaf_sampling(benchmark, case, backend):
    run_sampling_benchmark(benchmark, case, backend)
