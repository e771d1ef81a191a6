"""Comparison helpers shared by the tests and the benchmarks.

One tolerance table by dtype: a fast path's result ``out`` matches its
reference ``ref`` when ``||out - ref|| / ||ref|| <= RTOL[dtype]``, where dtype is
the dtype the fast path computed from (the reference computes in float32 or
float64 from the same inputs).
"""
from __future__ import annotations

import torch

RTOL = {torch.float64: 1e-10, torch.float32: 1e-5, torch.float16: 5e-3, torch.bfloat16: 3e-2}


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    """||out - ref|| / ||ref|| in float64 (the plain norm of the difference when ref is 0)."""
    out = out.detach().double()
    ref = ref.detach().double()
    num = (out - ref).norm().item()
    denom = ref.norm().item()
    return num if denom == 0.0 else num / denom


def mismatch(out: torch.Tensor, ref: torch.Tensor, dtype: torch.dtype) -> str | None:
    """Why ``out`` does not match ``ref`` at ``dtype``'s tolerance, or None."""
    if out.shape != ref.shape:
        return f"shape {tuple(out.shape)} != {tuple(ref.shape)}"
    if not torch.isfinite(out).all():
        return "non-finite values (an unwritten element or an overflow)"
    err = rel_err(out, ref)
    if not err <= RTOL[dtype]:
        return f"relative error {err:.3e} > {RTOL[dtype]:.1e} for {dtype}"
    return None


def assert_close(out: torch.Tensor, ref: torch.Tensor, dtype: torch.dtype, what: str = "") -> None:
    why = mismatch(out, ref, dtype)
    assert why is None, f"{what}: {why}"
