"""The fused WaveNet residual layer (public function, reference, registration)."""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F

SQRT_HALF = math.sqrt(0.5)


def tap_offsets(kernel_size: int, dilation: int, causal: bool) -> list[int]:
    """Time offset of each tap: tap k of output t reads input t + offset[k]."""
    if causal:
        return [-(kernel_size - 1 - k) * dilation for k in range(kernel_size)]
    return [(k - (kernel_size - 1) // 2) * dilation for k in range(kernel_size)]


def wavenet_layer_ref(
    x: torch.Tensor,
    w_dil: torch.Tensor,
    b_dil: torch.Tensor,
    w_res: torch.Tensor,
    b_res: torch.Tensor,
    w_skip: torch.Tensor,
    b_skip: torch.Tensor,
    *,
    dilation: int,
    h: Optional[torch.Tensor] = None,
    w_cond: Optional[torch.Tensor] = None,
    causal: bool = True,
    compute_dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain-PyTorch WaveNet residual layer, computed in ``compute_dtype``.

    Returns ``(out, skip)`` in ``x.dtype``. Differentiable by autograd.
    """
    dt = compute_dtype
    K = w_dil.shape[-1]
    G2 = w_dil.shape[0] // 2
    xc = x.to(dt)
    if causal:
        pad = (K - 1) * dilation
        xp = F.pad(xc, (pad, 0))
    else:
        pad = (K - 1) // 2 * dilation
        xp = F.pad(xc, (pad, pad))
    a = F.conv1d(xp, w_dil.to(dt), b_dil.to(dt), dilation=dilation)
    if h is not None:
        a = a + torch.einsum("gc,bct->bgt", w_cond.to(dt), h.to(dt))
    z = torch.tanh(a[:, :G2]) * torch.sigmoid(a[:, G2:])
    skip = torch.einsum("sg,bgt->bst", w_skip.to(dt), z) + b_skip.to(dt)[:, None]
    out = (xc + torch.einsum("rg,bgt->brt", w_res.to(dt), z) + b_res.to(dt)[:, None]) * SQRT_HALF
    return out.to(x.dtype), skip.to(x.dtype)
