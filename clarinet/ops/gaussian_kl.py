"""ClariNet's regularised reverse KL between Gaussians (public function, reference, registration)."""
from __future__ import annotations

import torch

from .. import _backend, _checks
from ._register import register_autograd

REDUCTIONS = ("mean", "sum", "none")


def gaussian_kl_ref(
    mean_q: torch.Tensor,
    log_scale_q: torch.Tensor,
    mean_p: torch.Tensor,
    log_scale_p: torch.Tensor,
    *,
    log_scale_min: float = -7.0,
    reg_weight: float = 4.0,
    reduction: str = "mean",
    compute_dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Plain-PyTorch regularised KL(q || p), computed in ``compute_dtype``.

    Written in the overflow-free form ``0.5*exp(2(lq-lp)) + 0.5*((mq-mp)*exp(-lp))**2``
    of the ratio ``(exp(2 lq) + (mq-mp)**2) / (2 exp(2 lp))``.
    """
    mq, lq, mp, lp = (t.to(compute_dtype) for t in (mean_q, log_scale_q, mean_p, log_scale_p))
    lq = torch.clamp(lq, min=log_scale_min)
    lp = torch.clamp(lp, min=log_scale_min)
    diff = lp - lq
    kl = diff + 0.5 * torch.exp(-2.0 * diff) + 0.5 * ((mq - mp) * torch.exp(-lp)) ** 2 - 0.5 + reg_weight * diff**2
    if reduction == "mean":
        return kl.mean()
    if reduction == "sum":
        return kl.sum()
    return kl


@torch.library.custom_op("clarinet::gaussian_kl", mutates_args=())
def _gaussian_kl_op(
    mean_q: torch.Tensor,
    log_scale_q: torch.Tensor,
    mean_p: torch.Tensor,
    log_scale_p: torch.Tensor,
    log_scale_min: float,
    reg_weight: float,
    reduction: str,
    backend: str,
) -> torch.Tensor:
    mod = _backend.load(backend, "gaussian_kl")
    return mod.gaussian_kl_fwd(mean_q, log_scale_q, mean_p, log_scale_p, log_scale_min, reg_weight, reduction)


@_gaussian_kl_op.register_fake
def _(mean_q, log_scale_q, mean_p, log_scale_p, log_scale_min, reg_weight, reduction, backend):
    shape = mean_q.shape if reduction == "none" else ()
    return mean_q.new_empty(shape, dtype=torch.float32)


@torch.library.custom_op("clarinet::gaussian_kl_backward", mutates_args=())
def _gaussian_kl_backward_op(
    grad: torch.Tensor,
    mean_q: torch.Tensor,
    log_scale_q: torch.Tensor,
    mean_p: torch.Tensor,
    log_scale_p: torch.Tensor,
    log_scale_min: float,
    reg_weight: float,
    reduction: str,
    backend: str,
) -> list[torch.Tensor]:
    mod = _backend.load(backend, "gaussian_kl")
    return list(
        mod.gaussian_kl_bwd(grad, mean_q, log_scale_q, mean_p, log_scale_p, log_scale_min, reg_weight, reduction)
    )


@_gaussian_kl_backward_op.register_fake
def _(grad, mean_q, log_scale_q, mean_p, log_scale_p, log_scale_min, reg_weight, reduction, backend):
    return [torch.empty_like(t, memory_format=torch.contiguous_format) for t in (mean_q, log_scale_q, mean_p, log_scale_p)]


register_autograd(_gaussian_kl_op, _gaussian_kl_backward_op, n_tensors=4)


def gaussian_kl(
    mean_q: torch.Tensor,
    log_scale_q: torch.Tensor,
    mean_p: torch.Tensor,
    log_scale_p: torch.Tensor,
    *,
    log_scale_min: float = -7.0,
    reg_weight: float = 4.0,
    reduction: str = "mean",
    backend: str = "auto",
) -> torch.Tensor:
    """ClariNet's regularised reverse KL divergence KL(q || p) between Gaussians.

    Per element, with both log-scales floored first (``lq = max(log_scale_q,
    log_scale_min)``, ``lp`` likewise)::

        lp - lq + (exp(2*lq) + (mean_q - mean_p)**2) / (2*exp(2*lp)) - 1/2
              + reg_weight * (lp - lq)**2

    evaluated in a form that stays finite for log-scales in [-7, 10] and mean
    gaps up to 1e3. ``q`` is the student (IAF) and ``p`` the teacher.
    ``reg_weight`` >= 0 (ValueError otherwise; 0 gives the plain KL).

    Shapes: the four inputs share any one shape (no broadcasting), dtype
    (float32, float16 or bfloat16; float64 with the reference backend) and
    device; non-contiguous inputs are read in place. Returns a float32 tensor
    (float64 for float64 inputs): 0-D for "mean"/"sum", the inputs' shape for
    "none"; under ``torch.autocast`` the inputs are computed in float32.
    Gradients flow to all four inputs in their own dtype (float16
    gradients can overflow where the loss is huge); each floor's gradient is
    torch.clamp's. Empty inputs go through the reference (mean: nan, sum: 0).

    Equivalent to :func:`gaussian_kl_ref`. ``backend``: "auto", "reference",
    "triton" or "cuda".
    """
    named = {"mean_q": mean_q, "log_scale_q": log_scale_q, "mean_p": mean_p, "log_scale_p": log_scale_p}
    for n, t in named.items():
        _checks.tensor(n, t)
    if _checks.autocast_dtype(mean_q.device) is not None:  # a loss: float32 under autocast
        named = {n: t.float() for n, t in named.items()}
        mean_q, log_scale_q, mean_p, log_scale_p = named.values()
    _checks.same_shape(named)
    device, dtype = _checks.same_device_and_dtype(named)
    log_scale_min = _checks.finite_float("log_scale_min", log_scale_min)
    reg_weight = _checks.finite_float("reg_weight", reg_weight)
    if reg_weight < 0:  # a negative weight rewards a log-scale gap: the loss is unbounded below
        raise ValueError(f"reg_weight: expected a number >= 0 (0 disables the regulariser), got {reg_weight}")
    _checks.choice("reduction", reduction, REDUCTIONS)
    name = _backend.resolve("gaussian_kl", backend, device, dtype, _checks.needs_grad(*named.values()))
    if name == "reference" or mean_q.numel() == 0:
        cdt = torch.float64 if dtype == torch.float64 else torch.float32
        return gaussian_kl_ref(
            mean_q, log_scale_q, mean_p, log_scale_p,
            log_scale_min=log_scale_min, reg_weight=reg_weight, reduction=reduction, compute_dtype=cdt,
        )
    return _gaussian_kl_op(mean_q, log_scale_q, mean_p, log_scale_p, log_scale_min, reg_weight, reduction, name)
