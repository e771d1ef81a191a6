"""ar_sampling: free-running autoregressive sampling of the teacher, batch 1 and the batch sweep."""
import pytest

from _suite import DTYPE, SIZE, run_sampling_benchmark

from clarinet import bench


@pytest.mark.parametrize("backend", ["reference", "cpp", "cuda", "triton"])
@pytest.mark.parametrize("case", bench.cases(ops=("ar_sampling",), dtype=DTYPE, size=SIZE), ids=lambda c: c.name)
def test_ar_sampling(benchmark, case, backend):
    run_sampling_benchmark(benchmark, case, backend)
