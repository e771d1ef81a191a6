"""ClariNet's regularised reverse KL between Gaussians (public function, reference, registration)."""
from __future__ import annotations

import torch

from .. import _backend, _checks
from ..profiling import op_range
from ._register import register_autograd

REDUCTIONS = ("mean", "sum", "none")


@op_range("clarinet.gaussian_kl_ref")
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
    reg_raw: bool = False,
) -> torch.Tensor:
    """Plain-PyTorch regularised KL(q || p), computed in ``compute_dtype``.

    Written in the overflow-free form ``0.5*exp(2(lq-lp)) + 0.5*((mq-mp)*exp(-lp))**2``
    of the ratio ``(exp(2 lq) + (mq-mp)**2) / (2 exp(2 lp))``.
    """
    mq, lq_raw, mp, lp_raw = (t.to(compute_dtype) for t in (mean_q, log_scale_q, mean_p, log_scale_p))
    lq = torch.clamp(lq_raw, min=log_scale_min)
    lp = torch.clamp(lp_raw, min=log_scale_min)
    diff = lp - lq
    rd = lp_raw - lq_raw if reg_raw else diff
    kl = diff + 0.5 * torch.exp(-2.0 * diff) + 0.5 * ((mq - mp) * torch.exp(-lp)) ** 2 - 0.5 + reg_weight * rd**2
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
    reg_raw: bool,
    backend: str,
) -> torch.Tensor:
    mod = _backend.load(backend, "gaussian_kl")
    return mod.gaussian_kl_fwd(mean_q, log_scale_q, mean_p, log_scale_p, log_scale_min, reg_weight, reduction, reg_raw)


@_gaussian_kl_op.register_fake
def _(mean_q, log_scale_q, mean_p, log_scale_p, log_scale_min, reg_weight, reduction, reg_raw, backend):
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
    reg_raw: bool,
    backend: str,
) -> list[torch.Tensor]:
    mod = _backend.load(backend, "gaussian_kl")
    return list(
        mod.gaussian_kl_bwd(grad, mean_q, log_scale_q, mean_p, log_scale_p, log_scale_min, reg_weight, reduction,
                            reg_raw)
    )


@_gaussian_kl_backward_op.register_fake
def _(grad, mean_q, log_scale_q, mean_p, log_scale_p, log_scale_min, reg_weight, reduction, reg_raw, backend):
    return [torch.empty_like(t, memory_format=torch.contiguous_format) for t in (mean_q, log_scale_q, mean_p, log_scale_p)]


register_autograd(_gaussian_kl_op, _gaussian_kl_backward_op, n_tensors=4)


@op_range("clarinet.gaussian_kl")
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
    reg_raw: bool = False,
) -> torch.Tensor:
    """ClariNet's regularised reverse KL divergence KL(q || p) between Gaussians.

    Per element, with both log-scales floored first (``lq = max(log_scale_q,
    log_scale_min)``, ``lp`` likewise)::

        lp - lq + (exp(2*lq) + (mean_q - mean_p)**2) / (2*exp(2*lp)) - 1/2
              + reg_weight * (lp - lq)**2

    evaluated in a form that stays finite for log-scales in [-7, 10] and mean
    gaps up to 1e3. ``q`` is the student (IAF) and ``p`` the teacher.
    ``reg_weight`` >= 0 (ValueError otherwise; 0 gives the plain KL).

    Two readings of the regulariser. ``reg_raw=False`` (the default, the
    paper's formula read literally): ``(lp - lq)**2`` of the floored
    log-scales, so where the student's log-scale is below the floor the whole
    term, regulariser included, gives it zero gradient. ``reg_raw=True`` (the
    peers' reading, ksw0306/ClariNet and Parakeet): the KL keeps the floored
    log-scales but the regulariser is ``(log_scale_p - log_scale_q)**2`` of the
    raw ones, which keeps pulling a collapsed student scale back towards the
    teacher's (d/d log_scale_q = -2 * reg_weight * (log_scale_p - log_scale_q)
    there).

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
    if not isinstance(reg_raw, bool):
        raise TypeError(f"reg_raw: expected a bool, got {type(reg_raw).__name__}")
    _checks.choice("reduction", reduction, REDUCTIONS)
    name = _backend.resolve("gaussian_kl", backend, device, dtype, _checks.needs_grad(*named.values()))
    if name == "reference" or mean_q.numel() == 0:
        cdt = torch.float64 if dtype == torch.float64 else torch.float32
        return gaussian_kl_ref(
            mean_q, log_scale_q, mean_p, log_scale_p,
            log_scale_min=log_scale_min, reg_weight=reg_weight, reduction=reduction, compute_dtype=cdt,
            reg_raw=reg_raw,
        )
    return _gaussian_kl_op(mean_q, log_scale_q, mean_p, log_scale_p, log_scale_min, reg_weight, reduction, reg_raw,
                           name)
