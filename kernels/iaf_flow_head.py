"""Triton kernel of ``clarinet.ops.iaf_flow_head``: one IAF flow's output head fused with the flow composition.

Per sample ``t`` of batch row ``b`` (S skip channels)::

    y  = relu(skips[:, t] * skip_scale)          (S,)
    y1 = relu(W1 @ y + b1)                       (S,)     W1 (S, S)
    mu, s = W2 @ y1 + b2                         (2,)     W2 (2, S)
    z_out[t] = z[t] * exp(s) + mu

One program owns ``BLOCK_T`` samples of one batch row: it reads the ``(S, BLOCK_T)`` skip tile once,
does the ``S x S`` product on tensor cores (``tl.dot``; exact float32 for float32 inputs), the two
output rows as reductions, and writes one value per sample. Unfused, the same head is five passes
over ``(B, S, T)`` activations (scale+ReLU, 1x1, ReLU, 1x1 in, 1x1 out) plus three over ``(B, T)``
(exp, multiply, add): for the student (S = 64, float16) that is about 0.8 KB per sample per flow
moved instead of 0.13 KB (skips in, z in, z out). Inference only (no gradient).

The autotune list below is a first guess; it has not been timed on a GPU (see ``_configs`` for
what was measured for sm_90a without one).
"""
from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from clarinet._alloc import empty

from . import _tuning


def _configs() -> list:
    """Time tile x warps; NOT timed on a GPU. Compiled for sm_90a here (student S = 64): shared memory
    is ``BLOCK_S x (BLOCK_S + BLOCK_T)`` elements exactly (16K to 40K float16, 32K to 80K float32),
    float16 never spills; float32 (exact "ieee" dot on FMA units) spills 960 to 968 B per thread at
    64 elements of the S x T tile per thread (BLOCK_T 128 with 4 warps, 256 with 8) and 13,864 B at
    128 (256 with 4 warps): :func:`_registers` prunes those for float32.
    """
    if os.environ.get("TRITON_INTERPRET", "0") == "1":
        return [triton.Config({"BLOCK_T": 32}, num_warps=1)]
    return [triton.Config({"BLOCK_T": bt}, num_warps=w) for bt in (64, 128, 256) for w in (4, 8)]


def _shared(config, args) -> int:
    s = args["BLOCK_S"]
    return args["skips_ptr"].element_size() * s * (s + config.kwargs["BLOCK_T"])


def _registers(config, args) -> bool:
    # float32: at most 32 elements of the BLOCK_S x BLOCK_T tile per thread (see _configs)
    return not args["EXACT_F32"] or args["BLOCK_S"] * config.kwargs["BLOCK_T"] <= 32 * 32 * config.num_warps


@_tuning.autotune("iaf_flow_head", configs=_configs(), key=["S", "BT_BUCKET"], estimate=_shared,
                  registers=_registers)
@triton.jit
def _iaf_flow_head_kernel(
    # pointers
    skips_ptr, w1_ptr, b1_ptr, w2_ptr, b2_ptr, z_ptr, out_ptr,
    # sizes (BT_BUCKET: bucket of B*T, the autotune key; unused here) and scalars
    T, S, BT_BUCKET, skip_scale,
    # strides (elements)
    stride_sk_b, stride_sk_s, stride_sk_t,
    stride_w1_o, stride_w1_i,
    stride_w2_o, stride_w2_i,
    stride_z_b, stride_z_t,
    stride_out_b, stride_out_t,
    # meta
    BLOCK_S: tl.constexpr, BLOCK_T: tl.constexpr, EXACT_F32: tl.constexpr,
):
    pid_t = tl.program_id(0).to(tl.int64)
    b = tl.program_id(1).to(tl.int64)
    offs_t = pid_t * BLOCK_T + tl.arange(0, BLOCK_T)
    offs_s = tl.arange(0, BLOCK_S)
    mask_t = offs_t < T
    mask_s = offs_s < S

    sk = tl.load(skips_ptr + b * stride_sk_b + offs_s[:, None] * stride_sk_s + offs_t[None, :] * stride_sk_t,
                 mask=mask_s[:, None] & mask_t[None, :], other=0.0).to(tl.float32)
    y = tl.maximum(sk * skip_scale, 0.0)
    w1 = tl.load(w1_ptr + offs_s[:, None] * stride_w1_o + offs_s[None, :] * stride_w1_i,
                 mask=mask_s[:, None] & mask_s[None, :], other=0.0)
    if EXACT_F32:
        y1 = tl.dot(w1.to(tl.float32), y, input_precision="ieee")
    else:  # 16-bit weights: tensor-core product of 16-bit operands, float32 accumulation
        y1 = tl.dot(w1, y.to(w1.dtype))
    b1 = tl.load(b1_ptr + offs_s, mask=mask_s, other=0.0).to(tl.float32)
    y1 = tl.maximum(y1 + b1[:, None], 0.0)  # padded rows: 0 weights, 0 bias -> 0

    w2_mu = tl.load(w2_ptr + offs_s * stride_w2_i, mask=mask_s, other=0.0).to(tl.float32)
    w2_s = tl.load(w2_ptr + stride_w2_o + offs_s * stride_w2_i, mask=mask_s, other=0.0).to(tl.float32)
    mu = tl.sum(w2_mu[:, None] * y1, axis=0) + tl.load(b2_ptr).to(tl.float32)
    s = tl.sum(w2_s[:, None] * y1, axis=0) + tl.load(b2_ptr + 1).to(tl.float32)

    z = tl.load(z_ptr + b * stride_z_b + offs_t * stride_z_t, mask=mask_t, other=0.0).to(tl.float32)
    out = z * tl.exp(s) + mu
    tl.store(out_ptr + b * stride_out_b + offs_t * stride_out_t, out.to(out_ptr.dtype.element_ty), mask=mask_t)


def iaf_flow_head_fwd(skips, w_out1, b_out1, w_out2, b_out2, z, skip_scale: float) -> torch.Tensor:
    """Launch on validated inputs (see ``clarinet.ops.iaf_flow_head``); returns ``z_out`` ``(B, T)`` in z's dtype."""
    B, S, T = skips.shape
    out = empty((B, T), dtype=z.dtype, device=z.device)
    if B == 0 or T == 0:
        return out
    block_s = max(16, triton.next_power_of_2(S))  # tl.dot needs >= 16 along each side
    grid = lambda meta: (triton.cdiv(T, meta["BLOCK_T"]), B)  # noqa: E731
    _iaf_flow_head_kernel[grid](
        skips, w_out1, b_out1, w_out2, b_out2, z, out,
        T, S, _tuning.bucket(B * T, lo=1 << 12, hi=1 << 20), float(skip_scale),
        *skips.stride(), *w_out1.stride(), *w_out2.stride(), *z.stride(), *out.stride(),
        BLOCK_S=block_s, EXACT_F32=skips.dtype == torch.float32,
    )
    return out
