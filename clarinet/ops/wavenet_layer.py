"""The fused WaveNet residual layer (public function, reference, registration)."""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F

from .. import _backend, _checks
from .._layout import tap_offsets  # noqa: F401  (re-exported)
from ..profiling import op_range
from ._register import register_autograd

SQRT_HALF = math.sqrt(0.5)


@op_range("clarinet.wavenet_layer_ref")
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
    T = x.shape[-1]
    left = (K - 1) * dilation if causal else (K - 1) // 2 * dilation
    right = (K - 1) * dilation - left + int(T == 0)  # int(): a SymBool breaks torch.compile; conv1d refuses an input shorter than its kernel
    xp = F.pad(xc, (left, right))
    a = F.conv1d(xp, w_dil.to(dt), b_dil.to(dt), dilation=dilation)[..., :T]
    if h is not None:
        a = a + torch.einsum("gc,bct->bgt", w_cond.to(dt), h.to(dt))
    z = torch.tanh(a[:, :G2]) * torch.sigmoid(a[:, G2:])
    skip = torch.einsum("sg,bgt->bst", w_skip.to(dt), z) + b_skip.to(dt)[:, None]
    out = (xc + torch.einsum("rg,bgt->brt", w_res.to(dt), z) + b_res.to(dt)[:, None]) * SQRT_HALF
    return out.to(x.dtype), skip.to(x.dtype)


@torch.library.custom_op("clarinet::wavenet_layer", mutates_args=())
def _wavenet_layer_op(
    x: torch.Tensor,
    w_dil: torch.Tensor,
    b_dil: torch.Tensor,
    w_res: torch.Tensor,
    b_res: torch.Tensor,
    w_skip: torch.Tensor,
    b_skip: torch.Tensor,
    h: Optional[torch.Tensor],
    w_cond: Optional[torch.Tensor],
    dilation: int,
    causal: bool,
    backend: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    mod = _backend.load(backend, "wavenet_layer")
    return mod.wavenet_layer_fwd(x, w_dil, b_dil, w_res, b_res, w_skip, b_skip, h, w_cond, dilation, causal)


@_wavenet_layer_op.register_fake
def _(x, w_dil, b_dil, w_res, b_res, w_skip, b_skip, h, w_cond, dilation, causal, backend):
    B, R, T = x.shape
    return x.new_empty((B, R, T)), x.new_empty((B, w_skip.shape[0], T))


@torch.library.custom_op("clarinet::wavenet_layer_backward", mutates_args=())
def _wavenet_layer_backward_op(
    grad_out: torch.Tensor,
    grad_skip: torch.Tensor,
    x: torch.Tensor,
    w_dil: torch.Tensor,
    b_dil: torch.Tensor,
    w_res: torch.Tensor,
    b_res: torch.Tensor,
    w_skip: torch.Tensor,
    b_skip: torch.Tensor,
    h: Optional[torch.Tensor],
    w_cond: Optional[torch.Tensor],
    dilation: int,
    causal: bool,
    backend: str,
) -> list[torch.Tensor]:
    mod = _backend.load(backend, "wavenet_layer")
    return list(
        mod.wavenet_layer_bwd(
            grad_out, grad_skip, x, w_dil, b_dil, w_res, b_res, w_skip, b_skip, h, w_cond, dilation, causal
        )
    )


@_wavenet_layer_backward_op.register_fake
def _(grad_out, grad_skip, x, w_dil, b_dil, w_res, b_res, w_skip, b_skip, h, w_cond, dilation, causal, backend):
    inputs = [x, w_dil, b_dil, w_res, b_res, w_skip, b_skip] + ([h, w_cond] if h is not None else [])
    return [torch.empty_like(t, memory_format=torch.contiguous_format) for t in inputs]


register_autograd(_wavenet_layer_op, _wavenet_layer_backward_op, n_tensors=9)


def _check_args(x, w_dil, b_dil, w_res, b_res, w_skip, b_skip, dilation, h, w_cond, causal):
    _checks.tensor("x", x, ndim=3)
    B, R, T = x.shape
    _checks.tensor("w_dil", w_dil, ndim=3)
    G, R_w, K = w_dil.shape
    if R_w != R:
        raise ValueError(f"w_dil: expected shape (G, {R}, K) to match x's {R} residual channels, got {tuple(w_dil.shape)}")
    if G == 0 or G % 2:
        raise ValueError(f"w_dil: the gate channel count G = w_dil.shape[0] must be even and > 0, got {G}")
    if K < 1:
        raise ValueError(f"w_dil: kernel size K = w_dil.shape[2] must be >= 1, got {K}")
    G2 = G // 2
    _checks.tensor("b_dil", b_dil, shape=(G,))
    _checks.tensor("w_res", w_res, shape=(R, G2))
    _checks.tensor("b_res", b_res, shape=(R,))
    _checks.tensor("w_skip", w_skip, ndim=2)
    S = w_skip.shape[0]
    if w_skip.shape[1] != G2 or S == 0:
        raise ValueError(f"w_skip: expected shape (S, {G2}) with S > 0 (G/2 = {G2}), got {tuple(w_skip.shape)}")
    _checks.tensor("b_skip", b_skip, shape=(S,))
    if (h is None) != (w_cond is None):
        raise ValueError("h and w_cond: give both (local conditioning) or neither, got "
                         f"h={'None' if h is None else 'a tensor'}, w_cond={'None' if w_cond is None else 'a tensor'}")
    if h is not None:
        _checks.tensor("h", h, ndim=3)
        if h.shape[0] != B or h.shape[2] != T:
            raise ValueError(f"h: expected shape ({B}, C, {T}) to match x's batch and time, got {tuple(h.shape)}")
        _checks.tensor("w_cond", w_cond, shape=(G, h.shape[1]))
    if isinstance(dilation, bool) or not isinstance(dilation, int) or dilation < 1:
        raise ValueError(f"dilation: expected an int >= 1, got {dilation!r}")
    if not isinstance(causal, bool):
        raise TypeError(f"causal: expected a bool, got {type(causal).__name__}")
    if not causal and K % 2 == 0:
        raise ValueError(f"w_dil: causal=False needs an odd kernel size (centred taps), got K={K}")
    named = {"x": x, "w_dil": w_dil, "b_dil": b_dil, "w_res": w_res, "b_res": b_res,
             "w_skip": w_skip, "b_skip": b_skip, "h": h, "w_cond": w_cond}
    return _checks.same_device_and_dtype(named)


@op_range("clarinet.wavenet_layer")
def wavenet_layer(
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
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """One WaveNet residual layer, fused: dilated conv + conditioning + gate + both 1x1 projections.

    Shapes (B batch, R residual, G gate (even), S skip, C conditioning channels,
    K taps, T samples)::

        x: (B, R, T)      w_dil: (G, R, K)   b_dil: (G,)
        h: (B, C, T)      w_cond: (G, C)     (optional, both or neither)
        w_res: (R, G/2)   b_res: (R,)        w_skip: (S, G/2)   b_skip: (S,)
        -> out: (B, R, T), skip: (B, S, T), both in x's dtype

    Math::

        a[b,g,t] = b_dil[g] + sum_{k,r} w_dil[g,r,k] * x[b, r, t + off_k] + sum_c w_cond[g,c] * h[b,c,t]
        off_k = -(K-1-k)*dilation (causal)  or  (k - (K-1)/2)*dilation (causal=False, K odd)
        z = tanh(a[:, :G/2]) * sigmoid(a[:, G/2:])
        skip = w_skip @ z + b_skip ;  out = (x + w_res @ z + b_res) * sqrt(0.5)

    with x taken as zero outside [0, T). All tensors share one device and dtype
    (float32, float16, bfloat16; float64 with the reference backend);
    accumulation is float32. Under ``torch.autocast`` the floating-point inputs
    are first cast to the autocast dtype (a matrix op, like conv1d). Empty inputs (B = 0 or T = 0) are computed by the
    reference: empty outputs and zero weight gradients.

    Equivalent to :func:`wavenet_layer_ref`. ``backend``: "auto", "reference",
    "triton" (forward and backward) or "cuda" (inference forward only).
    """
    named = dict(x=x, w_dil=w_dil, b_dil=b_dil, w_res=w_res, b_res=b_res, w_skip=w_skip, b_skip=b_skip, h=h,
                 w_cond=w_cond)
    if isinstance(x, torch.Tensor):
        named = _checks.autocast(named, _checks.autocast_dtype(x.device))
    x, w_dil, b_dil, w_res, b_res, w_skip, b_skip, h, w_cond = named.values()
    device, dtype = _check_args(x, w_dil, b_dil, w_res, b_res, w_skip, b_skip, dilation, h, w_cond, causal)
    tensors = (x, w_dil, b_dil, w_res, b_res, w_skip, b_skip, h, w_cond)
    name = _backend.resolve("wavenet_layer", backend, device, dtype, _checks.needs_grad(*tensors))
    if name == "reference" or x.numel() == 0:
        cdt = torch.float64 if dtype == torch.float64 else torch.float32
        return wavenet_layer_ref(x, w_dil, b_dil, w_res, b_res, w_skip, b_skip, dilation=dilation, h=h,
                                 w_cond=w_cond, causal=causal, compute_dtype=cdt)
    return _wavenet_layer_op(x, w_dil, b_dil, w_res, b_res, w_skip, b_skip, h, w_cond, dilation, causal, name)
