"""Argument checks shared by the public ops: each error names the argument."""
from __future__ import annotations

import math
from typing import Optional

import torch

FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


def tensor(name: str, t, ndim: Optional[int] = None, shape: Optional[tuple] = None) -> torch.Tensor:
    """``t`` must be a floating-point tensor (of rank ``ndim`` / shape ``shape`` when given)."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name}: expected a floating-point tensor (float32, float16, bfloat16 or float64), got {t.dtype}")
    if ndim is not None and t.dim() != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D tensor, got shape {tuple(t.shape)}")
    if shape is not None and tuple(t.shape) != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {tuple(t.shape)}")
    return t


def same_device_and_dtype(named: dict[str, Optional[torch.Tensor]]) -> tuple[torch.device, torch.dtype]:
    """All given tensors share one device and dtype; returns them."""
    items = [(n, t) for n, t in named.items() if t is not None]
    first_name, first = items[0]
    for n, t in items[1:]:
        if t.device != first.device:
            raise ValueError(f"{n}: expected device {first.device} (the device of {first_name}), got {t.device}")
        if t.dtype != first.dtype:
            raise TypeError(f"{n}: expected dtype {first.dtype} (the dtype of {first_name}), got {t.dtype}")
    return first.device, first.dtype


def same_shape(named: dict[str, torch.Tensor]) -> tuple:
    items = list(named.items())
    first_name, first = items[0]
    for n, t in items[1:]:
        if t.shape != first.shape:
            raise ValueError(f"{n}: expected shape {tuple(first.shape)} (the shape of {first_name}), got {tuple(t.shape)}")
    return tuple(first.shape)


def finite_float(name: str, v) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"{name}: expected a float, got {type(v).__name__}")
    v = float(v)
    if not math.isfinite(v):
        raise ValueError(f"{name}: expected a finite float, got {v}")
    return v


def choice(name: str, v, choices: tuple) -> str:
    if v not in choices:
        raise ValueError(f"{name}: expected one of {choices}, got {v!r}")
    return v


def autocast_dtype(device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype in force for ``device``'s type, or None when autocast is off there."""
    if device.type not in ("cuda", "cpu") or not torch.is_autocast_enabled(device.type):
        return None
    return torch.get_autocast_dtype(device.type)


def autocast(tensors: dict, dtype: Optional[torch.dtype]) -> dict:
    """Cast the floating-point tensors to ``dtype`` (None: leave them)."""
    if dtype is None:
        return tensors
    return {n: t.to(dtype) if isinstance(t, torch.Tensor) and t.is_floating_point() else t for n, t in tensors.items()}


def needs_grad(*tensors: Optional[torch.Tensor]) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)
