"""Backends under test, with the marks they need, and NaN poisoning of outputs."""
from clarinet import _alloc

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


def poison_outputs(monkeypatch) -> None:
    """Make every launcher allocate its outputs filled with NaN."""
    monkeypatch.setattr(_alloc, "POISON", True)
