"""The one place where PyTorch APIs that differ between the supported releases are bridged.

Supported and tested: torch 2.11 to 2.13 (``benchmarks/compat.sh``). Everything else in the package
calls these functions instead of testing versions itself.

TF32: the precision of float32 CUDA matmuls and cuDNN convolutions is read and set through the
``fp32_precision`` attributes (``"ieee"``, ``"tf32"``, or ``"none"``: inherit the generic
``torch.backends.fp32_precision``). The older ``allow_tf32`` flags still exist, but reading one after
the new API was used can raise (torch 2.13: "you have used a mix of the legacy and new APIs"), and
pytest's monkeypatch cannot restore them; so only the new attributes are used here. cuDNN
convolutions default to TF32.
"""
from __future__ import annotations

import contextlib

import torch

def _precision(backend) -> str:
    prec = backend.fp32_precision
    if prec == "none":
        prec = getattr(torch.backends, "fp32_precision", "none")
    return prec


def matmul_allows_tf32() -> bool:
    """Whether PyTorch's own float32 CUDA matmuls may use TF32 now (whichever API enabled it:
    ``torch.backends.cuda.matmul.fp32_precision``, ``allow_tf32`` or
    ``torch.set_float32_matmul_precision``)."""
    return _precision(torch.backends.cuda.matmul) == "tf32"


def _set_precision(backends, values):
    for backend, value in zip(backends, values):
        backend.fp32_precision = value


@contextlib.contextmanager
def tf32_disabled():
    """Within the block, float32 CUDA matmuls and cuDNN convolutions run in full float32 (IEEE);
    the previous settings are restored on exit, also after an exception. Used for float32
    references on a GPU, where cuDNN's default TF32 convolutions differ from float32 by ~1e-3."""
    backends = (torch.backends.cuda.matmul, torch.backends.cudnn.conv, torch.backends.cudnn.rnn)
    saved = [b.fp32_precision for b in backends]
    try:
        _set_precision(backends, ["ieee"] * len(backends))
        yield
    finally:
        _set_precision(backends, saved)


@contextlib.contextmanager
def matmul_tf32(enabled: bool):
    """Within the block, float32 CUDA matmuls may (``True``) or may not (``False``) use TF32;
    restored on exit. For tests of code that follows :func:`matmul_allows_tf32`."""
    backends = (torch.backends.cuda.matmul,)
    saved = [b.fp32_precision for b in backends]
    try:
        _set_precision(backends, ["tf32" if enabled else "ieee"])
        yield
    finally:
        _set_precision(backends, saved)
