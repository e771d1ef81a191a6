"""Backends under test, with the marks they need, and NaN poisoning of outputs."""
import importlib

import pytest

FAST_BACKENDS = [
    pytest.param("triton", id="triton"),
    pytest.param("cuda", id="cuda", marks=pytest.mark.gpu),
]


def backend_device(backend: str) -> str:
    return "cuda" if backend == "cuda" or _gpu() else "cpu"


def _gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def poison_outputs(monkeypatch, backend: str, op: str) -> None:
    """Make the backend's launchers allocate outputs filled with NaN."""
    name = f"clarinet.kernels.{op}" if backend == "triton" else "clarinet._cuda_ops"
    monkeypatch.setattr(importlib.import_module(name), "_POISON", True)
