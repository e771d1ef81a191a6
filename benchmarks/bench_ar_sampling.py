"""ar_sampling: free-running autoregressive sampling of the teacher, batch 1 (reference and cpp)."""
import pytest

from clarinet import bench

from _suite import DEVICE, SIZE


@pytest.mark.parametrize("backend", ["reference", "cpp"])
@pytest.mark.parametrize("preset", bench.SAMPLING_PRESETS["ar_sampling"])
def test_ar_sampling(benchmark, preset, backend):
    (case,) = bench.cases(ops=("ar_sampling",), configs=(preset,), size=SIZE)
    why = bench.unavailable(backend, case, DEVICE)
    if why is not None:
        pytest.skip(why)
    setup = bench.sampling_setup(case, DEVICE)
    wrong = bench.sampling_check(setup, backend)
    assert wrong is None, f"{backend} disagrees with the reference: {wrong}"
    n = setup["short"] if backend == "reference" else case.shape["T"]
    benchmark.group = case.name
    benchmark.extra_info.update(shape=dict(case.shape, T=n), samples=n)
    benchmark.pedantic(bench.sampling_fn(setup, backend, n), rounds=3, iterations=1, warmup_rounds=1)
