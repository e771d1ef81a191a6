"""Named ranges (clarinet.profiling): present in a profiler's trace, skipped (one cheap check) otherwise."""
import torch

from clarinet import profiling
from clarinet.ops import gaussian_kl, gaussian_nll


def test_ops_run_in_named_ranges_only_while_profiling(monkeypatch, tmp_path):
    x, m, s, t = (torch.randn(2, 9) for _ in range(4))
    path = profiling.trace(lambda: (gaussian_kl(x, m, s, t, backend="reference"),
                                    gaussian_nll(x, m, s, backend="reference")), str(tmp_path / "t.json"), "cpu",
                           label="outer")
    text = open(path).read()
    for name in ("outer", "clarinet.gaussian_kl", "clarinet.gaussian_kl_ref", "clarinet.gaussian_nll"):
        assert f'"{name}"' in text, name

    def refuse(name):
        raise AssertionError(f"record_function({name!r}) opened with no profiler running")

    monkeypatch.setattr(torch.profiler, "record_function", refuse)
    gaussian_kl(x, m, s, t, backend="reference")
    with profiling.named_range("clarinet.x"):
        pass


def test_overhead_is_measured_and_small():
    r = profiling.measure_overhead(n=2000)
    assert r["bare_us"] > 0 and r["ranged_us"] > 0
    assert r["overhead_us"] < max(5.0, r["bare_us"])  # one check, no range opened (loaded CI machines: loose)


def test_trace_path_is_a_plain_file_name(tmp_path):
    p = profiling.trace_path(str(tmp_path), "ar_sampling[teacher-small,B=1,float32]", "cpp")
    assert p == str(tmp_path / "ar_sampling_teacher-small_B=1_float32_-cpp.json")


def test_readme_kernel_names_exist():
    """The kernel names the README's Profiling section gives for ncu/nsys are the sources' names."""
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    section = readme[readme.index("## Profiling"):readme.index("## Running on a GPU")]
    names = set(re.findall(r"`(_?[a-z0-9_]+_kernel)`", section))
    assert len(names) >= 15
    sources = "".join(p.read_text() for p in [*root.glob("kernels/*.py"), *root.glob("csrc/cuda/*.cu")])
    for name in names:
        assert re.search(rf"\b{name}\b", sources), name
