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


def cuda_ops():
    """``clarinet._cuda_ops``. Without a GPU a missing extension skips the test; on a GPU machine it
    is a failure (the extension must have been built there), with the import error in the message."""
    import importlib

    try:
        return importlib.import_module("clarinet._cuda_ops")
    except ImportError as exc:
        if _gpu():
            pytest.fail(f"a GPU is present but the CUDA extension clarinet._cuda cannot be imported: {exc}")
        pytest.skip(f"CUDA extension clarinet._cuda not built ({exc})")


def skip_unsupported(reason):
    """Skip a GPU test whose configuration the hardware cannot run (``reason`` from a launcher's
    ``*_unsupported``), unless the reason is only that it "cannot be scheduled" or "does not fit":
    the test models are small enough for any GPU the kernel targets (compute capability 9.0+), so
    there that is a bug in the planning code and fails the test with its reason."""
    if reason is None:
        return
    if "compute capability" in reason:
        pytest.skip(reason)
    pytest.fail(f"the launcher refused a configuration that should run on this GPU: {reason}")
