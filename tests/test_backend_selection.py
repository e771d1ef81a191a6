"""Backend choice: explicit argument > CLARINET_BACKEND > "auto"."""
import pytest
import torch

from clarinet import _backend
from clarinet.ops import gaussian_nll


def cpu_f32():
    return torch.device("cpu"), torch.float32


def test_auto_on_cpu_is_reference(monkeypatch):
    monkeypatch.delenv("CLARINET_BACKEND", raising=False)
    for op in ("gaussian_nll", "gaussian_kl", "wavenet_layer"):
        assert _backend.resolve(op, "auto", *cpu_f32(), False) == "reference"
        assert _backend.resolve(op, "auto", *cpu_f32(), True) == "reference"


def test_environment_overrides_auto(monkeypatch):
    monkeypatch.setenv("CLARINET_BACKEND", "triton")
    monkeypatch.setenv("TRITON_INTERPRET", "1")  # read at call time: Triton may take CPU tensors (GPU machines too)
    assert _backend.resolve("gaussian_nll", "auto", *cpu_f32(), False) == "triton"
    # an explicit argument wins over the environment
    assert _backend.resolve("gaussian_nll", "reference", *cpu_f32(), False) == "reference"


def test_bad_environment_value_is_named(monkeypatch):
    monkeypatch.setenv("CLARINET_BACKEND", "fastest")
    with pytest.raises(ValueError, match="CLARINET_BACKEND"):
        _backend.resolve("gaussian_nll", "auto", *cpu_f32(), False)


def test_bad_backend_argument_is_named():
    x = torch.randn(4)
    with pytest.raises(ValueError, match="backend"):
        gaussian_nll(x, x, x, backend="numpy")


def test_cuda_backend_on_cpu_tensors_is_refused():
    with pytest.raises(ValueError, match="CUDA tensors"):
        _backend.resolve("gaussian_nll", "cuda", *cpu_f32(), False)


def test_triton_on_cpu_without_interpreter_is_refused(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ValueError, match="TRITON_INTERPRET"):
        _backend.resolve("gaussian_nll", "triton", *cpu_f32(), False)


def test_interpreter_has_no_bfloat16(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    with pytest.raises(ValueError, match="bfloat16"):
        _backend.resolve("gaussian_nll", "triton", torch.device("cpu"), torch.bfloat16, False)


def test_float64_only_on_reference():
    assert _backend.resolve("gaussian_nll", "reference", torch.device("cpu"), torch.float64, False) == "reference"
    with pytest.raises(ValueError, match="float64"):
        _backend.resolve("gaussian_nll", "triton", torch.device("cpu"), torch.float64, False)


def test_cuda_wavenet_layer_is_inference_only():
    reason = _backend.unsupported_reason("cuda", "wavenet_layer", torch.device("cuda", 0), torch.float16, True)
    assert reason is not None and "inference" in reason


def test_missing_backend_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(_backend._MODULES, "clarinet._cuda_ops", "ImportError: no module named clarinet._cuda")
    with pytest.raises(RuntimeError, match="build the CUDA extension"):
        _backend.load("cuda", "gaussian_nll")


@pytest.mark.gpu
def test_auto_on_gpu_picks_a_fast_backend():
    dev = torch.device("cuda")
    assert _backend.resolve("gaussian_nll", "auto", dev, torch.float16, True) in ("cuda", "triton")
    assert _backend.resolve("wavenet_layer", "auto", dev, torch.float16, True) == "triton"
