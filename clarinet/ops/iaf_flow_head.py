"""One IAF flow's output head fused with the flow composition (inference; public function, reference, registration).

A :class:`~clarinet.models.GaussianIAF` flow is a WaveNet stack whose summed skips go through
ReLU, 1x1, ReLU, 1x1 to a shift ``mu`` and log-scale ``s`` per sample, and whose output is
``z * exp(s) + mu``. :func:`iaf_flow_head` does that head and the composition in one kernel
(``kernels/iaf_flow_head.py``), so ``GaussianIAF.generate`` reads each flow's skips once and writes
one value per sample.
"""
from __future__ import annotations

import torch

from .. import _backend, _checks
from ..profiling import op_range

__all__ = ["iaf_flow_head", "iaf_flow_head_ref"]


@op_range("clarinet.iaf_flow_head_ref")
def iaf_flow_head_ref(skips: torch.Tensor, w_out1: torch.Tensor, b_out1: torch.Tensor, w_out2: torch.Tensor,
                      b_out2: torch.Tensor, z: torch.Tensor, *, skip_scale: float,
                      compute_dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Plain PyTorch in ``compute_dtype``; the result in ``z``'s dtype."""
    c = compute_dtype
    y = torch.relu(skips.to(c) * skip_scale)
    y = torch.relu(torch.einsum("oi,bit->bot", w_out1.to(c), y) + b_out1.to(c)[:, None])
    o = torch.einsum("oi,bit->bot", w_out2.to(c), y) + b_out2.to(c)[:, None]
    return (z.to(c) * torch.exp(o[:, 1]) + o[:, 0]).to(z.dtype)


@torch.library.custom_op("clarinet::iaf_flow_head", mutates_args=())
def _iaf_flow_head_op(skips: torch.Tensor, w_out1: torch.Tensor, b_out1: torch.Tensor, w_out2: torch.Tensor,
                      b_out2: torch.Tensor, z: torch.Tensor, skip_scale: float, backend: str) -> torch.Tensor:
    mod = _backend.load(backend, "iaf_flow_head")
    return mod.iaf_flow_head_fwd(skips, w_out1, b_out1, w_out2, b_out2, z, skip_scale)


@_iaf_flow_head_op.register_fake
def _(skips, w_out1, b_out1, w_out2, b_out2, z, skip_scale, backend):
    return z.new_empty(z.shape)


@op_range("clarinet.iaf_flow_head")
def iaf_flow_head(skips: torch.Tensor, w_out1: torch.Tensor, b_out1: torch.Tensor, w_out2: torch.Tensor,
                  b_out2: torch.Tensor, z: torch.Tensor, *, skip_scale: float, backend: str = "auto") -> torch.Tensor:
    """``z * exp(s) + mu`` with ``(mu, s) = W2 relu(W1 relu(skips * skip_scale) + b1) + b2``.

    Shapes: ``skips`` ``(B, S, T)`` (a flow's summed skip outputs), ``w_out1`` ``(S, S)``,
    ``b_out1`` ``(S,)``, ``w_out2`` ``(2, S)`` (row 0 the shift, row 1 the log-scale), ``b_out2``
    ``(2,)``, ``z`` ``(B, T)`` (the flow's input); returns ``(B, T)`` in ``z``'s dtype. All in one
    dtype (float32, float16, bfloat16; float64 with the reference) on one device, any strides;
    products accumulate in float32. Inference only: no gradient (train through the model's forward).

    Equivalent to :func:`iaf_flow_head_ref`. ``backend``: "auto", "reference" or "triton".
    """
    named = {"skips": _checks.tensor("skips", skips, 3), "w_out1": _checks.tensor("w_out1", w_out1, 2),
             "b_out1": _checks.tensor("b_out1", b_out1, 1), "w_out2": _checks.tensor("w_out2", w_out2, 2),
             "b_out2": _checks.tensor("b_out2", b_out2, 1), "z": _checks.tensor("z", z, 2)}
    B, S, T = skips.shape
    want = {"w_out1": (S, S), "b_out1": (S,), "w_out2": (2, S), "b_out2": (2,), "z": (B, T)}
    for n, shape in want.items():
        if tuple(named[n].shape) != shape:
            raise ValueError(f"{n}: expected shape {shape} (skips are {tuple(skips.shape)}), got {tuple(named[n].shape)}")
    device, dtype = _checks.same_device_and_dtype(named)
    skip_scale = _checks.finite_float("skip_scale", skip_scale)
    if _checks.needs_grad(*named.values()):
        raise ValueError("iaf_flow_head is inference only: run it under torch.no_grad() (train through "
                         "GaussianIAF.forward)")
    name = _backend.resolve("iaf_flow_head", backend, device, dtype, False)
    if name == "reference" or skips.numel() == 0:
        cdt = torch.float64 if dtype == torch.float64 else torch.float32
        return iaf_flow_head_ref(skips, w_out1, b_out1, w_out2, b_out2, z, skip_scale=skip_scale, compute_dtype=cdt)
    return _iaf_flow_head_op(skips, w_out1, b_out1, w_out2, b_out2, z, skip_scale, name)
