"""Triton kernels for the Gaussian negative log-likelihood (forward and backward).

Memory-bound: the forward reads each input once (3 x numel x itemsize bytes)
and writes 4 bytes per element ("none") or one float per program; the backward
reads the three inputs (and the upstream gradient for "none") and writes three
gradients.
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


@_tuning.autotune("gaussian_nll.fwd", configs=elementwise_configs(), key=[*BUCKET_KEY, "REDUCE"])
@triton.heuristics(tile_heuristics())
@triton.jit
def _gaussian_nll_fwd_kernel(
    # pointers
    x_ptr, mean_ptr, log_scale_ptr, out_ptr, partials_ptr,
    # sizes (and their autotune buckets, unused here)
    rows, cols, N_BUCKET, C_BUCKET,
    # strides (elements)
    stride_x_r, stride_x_c, stride_mean_r, stride_mean_c, stride_log_scale_r, stride_log_scale_c,
    # scalars
    log_scale_min,
    # meta-parameters
    REDUCE: tl.constexpr, BLOCK: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
):
    pid, r, c, mask = tile_2d(rows, cols, BLOCK_R, BLOCK_C)
    x = tl.load(x_ptr + r * stride_x_r + c * stride_x_c, mask=mask, other=0.0).to(tl.float32)
    mean = tl.load(mean_ptr + r * stride_mean_r + c * stride_mean_c, mask=mask, other=0.0).to(tl.float32)
    ls = tl.load(log_scale_ptr + r * stride_log_scale_r + c * stride_log_scale_c, mask=mask, other=0.0).to(tl.float32)
    s = floor_log_scale(ls, log_scale_min)
    u = (x - mean) * tl.exp(-s)
    loss = 0.9189385332046727 + s + 0.5 * u * u  # 0.5*log(2*pi)
    store_loss(loss, mask, pid, r, c, cols, out_ptr, partials_ptr, REDUCE)


@_tuning.autotune("gaussian_nll.bwd", configs=elementwise_configs(), key=BUCKET_KEY)
@triton.heuristics(tile_heuristics())
@triton.jit
def _gaussian_nll_bwd_kernel(
    # pointers
    grad_ptr, x_ptr, mean_ptr, log_scale_ptr, dx_ptr, dmean_ptr, dlog_scale_ptr,
    # sizes (and their autotune buckets, unused here)
    rows, cols, N_BUCKET, C_BUCKET,
    # strides (elements); the gradient's are 0 when it is a scalar
    stride_grad_r, stride_grad_c,
    stride_x_r, stride_x_c, stride_mean_r, stride_mean_c, stride_log_scale_r, stride_log_scale_c,
    # scalars
    log_scale_min, grad_scale,
    # meta-parameters
    BLOCK: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
):
    pid, r, c, mask = tile_2d(rows, cols, BLOCK_R, BLOCK_C)
    g = tl.load(grad_ptr + r * stride_grad_r + c * stride_grad_c, mask=mask, other=0.0).to(tl.float32) * grad_scale
    x = tl.load(x_ptr + r * stride_x_r + c * stride_x_c, mask=mask, other=0.0).to(tl.float32)
    mean = tl.load(mean_ptr + r * stride_mean_r + c * stride_mean_c, mask=mask, other=0.0).to(tl.float32)
    ls = tl.load(log_scale_ptr + r * stride_log_scale_r + c * stride_log_scale_c, mask=mask, other=0.0).to(tl.float32)
    s = floor_log_scale(ls, log_scale_min)
    inv = tl.exp(-s)
    u = (x - mean) * inv
    dx = g * u * inv
    dls = tl.where(ls >= log_scale_min, g * (1.0 - u * u), 0.0)
    out = r * cols + c
    tl.store(dx_ptr + out, dx.to(dx_ptr.dtype.element_ty), mask=mask)
    tl.store(dmean_ptr + out, (-dx).to(dmean_ptr.dtype.element_ty), mask=mask)
    tl.store(dlog_scale_ptr + out, dls.to(dlog_scale_ptr.dtype.element_ty), mask=mask)


def gaussian_nll_fwd(x, mean, log_scale, log_scale_min: float, reduction: str) -> torch.Tensor:
    return loss_forward(_gaussian_nll_fwd_kernel, (x, mean, log_scale), (log_scale_min,), reduction)


def gaussian_nll_bwd(grad, x, mean, log_scale, log_scale_min: float, reduction: str) -> list[torch.Tensor]:
    return loss_backward(_gaussian_nll_bwd_kernel, grad, (x, mean, log_scale), (log_scale_min,), reduction)
