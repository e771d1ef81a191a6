"""Triton kernels for ClariNet's regularised Gaussian KL (forward and backward).

Memory-bound: the forward reads four inputs once; the backward reads them
(and the upstream gradient for "none") and writes four gradients.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import _tuning
from ._elementwise import (
    BUCKET_KEY,
    elementwise_configs,
    floor_log_scale,
    loss_backward,
    loss_forward,
    store_loss,
    tile_2d,
    tile_heuristics,
)


@triton.jit
def _load_inputs(mq_ptr, lq_ptr, mp_ptr, lp_ptr, r, c, mask,
                 stride_mq_r, stride_mq_c, stride_lq_r, stride_lq_c,
                 stride_mp_r, stride_mp_c, stride_lp_r, stride_lp_c):
    mq = tl.load(mq_ptr + r * stride_mq_r + c * stride_mq_c, mask=mask, other=0.0).to(tl.float32)
    lq = tl.load(lq_ptr + r * stride_lq_r + c * stride_lq_c, mask=mask, other=0.0).to(tl.float32)
    mp = tl.load(mp_ptr + r * stride_mp_r + c * stride_mp_c, mask=mask, other=0.0).to(tl.float32)
    lp = tl.load(lp_ptr + r * stride_lp_r + c * stride_lp_c, mask=mask, other=0.0).to(tl.float32)
    return mq, lq, mp, lp


@_tuning.autotune("gaussian_kl.fwd", configs=elementwise_configs(), key=[*BUCKET_KEY, "REDUCE"])
@triton.heuristics(tile_heuristics())
@triton.jit
def _gaussian_kl_fwd_kernel(
    # pointers
    mq_ptr, lq_ptr, mp_ptr, lp_ptr, out_ptr, partials_ptr,
    # sizes (and their autotune buckets, unused here)
    rows, cols, N_BUCKET, C_BUCKET,
    # strides (elements)
    stride_mq_r, stride_mq_c, stride_lq_r, stride_lq_c, stride_mp_r, stride_mp_c, stride_lp_r, stride_lp_c,
    # scalars
    log_scale_min, reg_weight,
    # meta-parameters
    REDUCE: tl.constexpr, BLOCK: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
):
    pid, r, c, mask = tile_2d(rows, cols, BLOCK_R, BLOCK_C)
    mq, lq, mp, lp = _load_inputs(mq_ptr, lq_ptr, mp_ptr, lp_ptr, r, c, mask,
                                  stride_mq_r, stride_mq_c, stride_lq_r, stride_lq_c,
                                  stride_mp_r, stride_mp_c, stride_lp_r, stride_lp_c)
    lq = floor_log_scale(lq, log_scale_min)
    lp = floor_log_scale(lp, log_scale_min)
    diff = lp - lq
    e = (mq - mp) * tl.exp(-lp)
    kl = diff + 0.5 * tl.exp(-2.0 * diff) + 0.5 * e * e - 0.5 + reg_weight * diff * diff
    store_loss(kl, mask, pid, r, c, cols, out_ptr, partials_ptr, REDUCE)


@_tuning.autotune("gaussian_kl.bwd", configs=elementwise_configs(), key=BUCKET_KEY)
@triton.heuristics(tile_heuristics())
@triton.jit
def _gaussian_kl_bwd_kernel(
    # pointers
    grad_ptr, mq_ptr, lq_ptr, mp_ptr, lp_ptr, dmq_ptr, dlq_ptr, dmp_ptr, dlp_ptr,
    # sizes (and their autotune buckets, unused here)
    rows, cols, N_BUCKET, C_BUCKET,
    # strides (elements); the gradient's are 0 when it is a scalar
    stride_grad_r, stride_grad_c,
    stride_mq_r, stride_mq_c, stride_lq_r, stride_lq_c, stride_mp_r, stride_mp_c, stride_lp_r, stride_lp_c,
    # scalars
    log_scale_min, reg_weight, grad_scale,
    # meta-parameters
    BLOCK: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
):
    pid, r, c, mask = tile_2d(rows, cols, BLOCK_R, BLOCK_C)
    g = tl.load(grad_ptr + r * stride_grad_r + c * stride_grad_c, mask=mask, other=0.0).to(tl.float32) * grad_scale
    mq, lq_raw, mp, lp_raw = _load_inputs(mq_ptr, lq_ptr, mp_ptr, lp_ptr, r, c, mask,
                                          stride_mq_r, stride_mq_c, stride_lq_r, stride_lq_c,
                                          stride_mp_r, stride_mp_c, stride_lp_r, stride_lp_c)
    lq = floor_log_scale(lq_raw, log_scale_min)
    lp = floor_log_scale(lp_raw, log_scale_min)
    diff = lp - lq
    ratio = tl.exp(-2.0 * diff)  # sigma_q^2 / sigma_p^2
    inv_p = tl.exp(-lp)
    e = (mq - mp) * inv_p
    dmq = g * e * inv_p
    reg = 2.0 * reg_weight * diff
    dlq = tl.where(lq_raw >= log_scale_min, g * (ratio - 1.0 - reg), 0.0)
    dlp = tl.where(lp_raw >= log_scale_min, g * (1.0 - ratio - e * e + reg), 0.0)
    out = r * cols + c
    tl.store(dmq_ptr + out, dmq.to(dmq_ptr.dtype.element_ty), mask=mask)
    tl.store(dlq_ptr + out, dlq.to(dlq_ptr.dtype.element_ty), mask=mask)
    tl.store(dmp_ptr + out, (-dmq).to(dmp_ptr.dtype.element_ty), mask=mask)
    tl.store(dlp_ptr + out, dlp.to(dlp_ptr.dtype.element_ty), mask=mask)


def gaussian_kl_fwd(mean_q, log_scale_q, mean_p, log_scale_p, log_scale_min: float, reg_weight: float,
                    reduction: str) -> torch.Tensor:
    return loss_forward(_gaussian_kl_fwd_kernel, (mean_q, log_scale_q, mean_p, log_scale_p),
                        (log_scale_min, reg_weight), reduction)


def gaussian_kl_bwd(grad, mean_q, log_scale_q, mean_p, log_scale_p, log_scale_min: float, reg_weight: float,
                    reduction: str) -> list[torch.Tensor]:
    return loss_backward(_gaussian_kl_bwd_kernel, grad, (mean_q, log_scale_q, mean_p, log_scale_p),
                         (log_scale_min, reg_weight), reduction)
