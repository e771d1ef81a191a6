"""Gaussian negative log-likelihood (public function, reference, registration)."""
from __future__ import annotations

import math

import torch

from .. import _backend, _checks
from ..profiling import op_range
from ._register import register_autograd

REDUCTIONS = ("mean", "sum", "none")
HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


@op_range("clarinet.gaussian_nll_ref")
def gaussian_nll_ref(
    x: torch.Tensor,
    mean: torch.Tensor,
    log_scale: torch.Tensor,
    *,
    log_scale_min: float = -9.0,
    reduction: str = "mean",
    compute_dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Plain-PyTorch Gaussian NLL, computed in ``compute_dtype`` (float32 or float64)."""
    x, mean, log_scale = (t.to(compute_dtype) for t in (x, mean, log_scale))
    s = torch.clamp(log_scale, min=log_scale_min)
    loss = HALF_LOG_2PI + s + 0.5 * ((x - mean) * torch.exp(-s)) ** 2
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


@torch.library.custom_op("clarinet::gaussian_nll", mutates_args=())
def _gaussian_nll_op(
    x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor, log_scale_min: float, reduction: str, backend: str
) -> torch.Tensor:
    return _backend.load(backend, "gaussian_nll").gaussian_nll_fwd(x, mean, log_scale, log_scale_min, reduction)


@_gaussian_nll_op.register_fake
def _(x, mean, log_scale, log_scale_min, reduction, backend):
    shape = x.shape if reduction == "none" else ()
    return x.new_empty(shape, dtype=torch.float32)


@torch.library.custom_op("clarinet::gaussian_nll_backward", mutates_args=())
def _gaussian_nll_backward_op(
    grad: torch.Tensor,
    x: torch.Tensor,
    mean: torch.Tensor,
    log_scale: torch.Tensor,
    log_scale_min: float,
    reduction: str,
    backend: str,
) -> list[torch.Tensor]:
    mod = _backend.load(backend, "gaussian_nll")
    return list(mod.gaussian_nll_bwd(grad, x, mean, log_scale, log_scale_min, reduction))


@_gaussian_nll_backward_op.register_fake
def _(grad, x, mean, log_scale, log_scale_min, reduction, backend):
    return [torch.empty_like(t, memory_format=torch.contiguous_format) for t in (x, mean, log_scale)]


register_autograd(_gaussian_nll_op, _gaussian_nll_backward_op, n_tensors=3)


@op_range("clarinet.gaussian_nll")
def gaussian_nll(
    x: torch.Tensor,
    mean: torch.Tensor,
    log_scale: torch.Tensor,
    *,
    log_scale_min: float = -9.0,
    reduction: str = "mean",
    backend: str = "auto",
) -> torch.Tensor:
    """Negative log-likelihood of ``x`` under N(mean, exp(log_scale)^2).

    Per element, with ``s = max(log_scale, log_scale_min)``::

        0.5*log(2*pi) + s + 0.5*((x - mean) * exp(-s))**2

    Shapes: ``x``, ``mean`` and ``log_scale`` share any one shape (no
    broadcasting), dtype (float32, float16 or bfloat16; float64 with the
    reference backend) and device. Non-contiguous inputs are read in place.

    Returns a float32 tensor (float64 for float64 inputs): 0-D for ``reduction="mean"`` or ``"sum"``, the
    inputs' shape for ``"none"``. Gradients flow to all three inputs in their
    own dtype (under ``torch.autocast`` the inputs are computed in float32, as
    autocast does for losses); the clamp's gradient is torch.clamp's (zero where
    ``log_scale < log_scale_min``). Empty inputs go through the reference
    (mean: nan, sum: 0).

    Equivalent to :func:`gaussian_nll_ref`. ``backend``: "auto", "reference",
    "triton" or "cuda" (see the README's backend table).
    """
    named = {"x": x, "mean": mean, "log_scale": log_scale}
    for n, t in named.items():
        _checks.tensor(n, t)
    if _checks.autocast_dtype(x.device) is not None:  # a loss: float32 under autocast
        x, mean, log_scale = (t.float() for t in (x, mean, log_scale))
        named = {"x": x, "mean": mean, "log_scale": log_scale}
    _checks.same_shape(named)
    device, dtype = _checks.same_device_and_dtype(named)
    log_scale_min = _checks.finite_float("log_scale_min", log_scale_min)
    _checks.choice("reduction", reduction, REDUCTIONS)
    name = _backend.resolve("gaussian_nll", backend, device, dtype, _checks.needs_grad(x, mean, log_scale))
    if name == "reference" or x.numel() == 0:
        cdt = torch.float64 if dtype == torch.float64 else torch.float32
        return gaussian_nll_ref(x, mean, log_scale, log_scale_min=log_scale_min, reduction=reduction, compute_dtype=cdt)
    return _gaussian_nll_op(x, mean, log_scale, log_scale_min, reduction, name)
