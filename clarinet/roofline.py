"""What one generated sample of the C++ AR sampler costs, and what this core can do (``clarinet bench``).

- :func:`sampler_counts`: multiply-adds and weight bytes per sample of ``wavenet_sample(backend="cpp")``
  for a model shape and weight dtype, from the shapes (no hand-typed numbers).
- :func:`measure`: the single-thread peak multiply-add rates of this core, float32 FMA and int8
  ``vpdpbusd``, from the calibrated loops in ``clarinet._C.roofline`` (cached per process).
- :func:`core_fraction`: a measured sampler rate as a fraction of the peak its products run at.
"""
from __future__ import annotations

import functools

import torch

__all__ = ["core_fraction", "measure", "sampler_counts"]

_ITEM = {torch.float32: 4, torch.float16: 2, torch.int8: 1}


def sampler_counts(R: int, G: int, S: int, C: int, K: int, layers: int, dtype: torch.dtype = torch.float32,
                   chunk: int = 64) -> dict:
    """Per generated sample: ``macs`` (multiply-adds: per layer the dilated conv ``K*R*G``, the
    conditioning projection ``C*G`` and the residual/skip 1x1 ``G/2*(R+S)``; the head ``S*S + 2*S``;
    the input conv ``R``) and ``weight_bytes`` (the per-step matrices, read every step, in the weight
    dtype: float32, float16 or int8 (+ a float32 scale and an int32 offset per output channel); the conditioning
    projection is read once per ``chunk`` steps, float32 except for int8)."""
    per_step = layers * (K * R * G + G // 2 * (R + S)) + S * S
    cond = layers * C * G
    macs = per_step + cond + 2 * S + R
    item = _ITEM[dtype]
    scales = 8 * (layers * (2 * G + R + S) + S) if dtype == torch.int8 else 0  # float32 scale + int32 offset
    cond_item = 1 if dtype == torch.int8 else 4
    weight_bytes = per_step * item + scales + cond * cond_item / chunk
    return {"macs": macs, "weight_bytes": weight_bytes}


#: buffer sizes of the read-bandwidth sweep: inside a 1 MiB L2 (teacher-small's 0.67 MB of int8
#: weights per step) and well outside it (teacher's 2.1 MB)
READ_SIZES = (512 * 1024, 4 * 1024 * 1024)


@functools.lru_cache(maxsize=1)
def measure() -> dict:
    """``{"fma_isa", "fma_macs_per_s", "vnni_isa", "vnni_macs_per_s", "read_bytes_per_s"}`` of one
    core (0 when absent); ``read_bytes_per_s``: ``{str(buffer bytes): bytes/s}`` for :data:`READ_SIZES`."""
    from . import _C

    out = dict(_C.roofline(read_sizes=list(READ_SIZES)))
    out["read_bytes_per_s"] = {str(k): v for k, v in out["read_bytes_per_s"].items()}  # JSON keys
    return out


def core_fraction(macs_per_s: float, dtype: torch.dtype, roof: dict, threads: int = 1) -> float | None:
    """``macs_per_s`` over ``threads`` cores' peak: the int8 ``vpdpbusd`` rate for int8 weights, the
    float32 FMA rate otherwise (float16 weights are converted and multiplied in float32)."""
    peak = roof["vnni_macs_per_s"] if dtype == torch.int8 else roof["fma_macs_per_s"]
    return macs_per_s / (peak * threads) if peak else None
