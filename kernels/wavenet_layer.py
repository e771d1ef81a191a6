"""Triton kernels for the fused WaveNet residual layer (``clarinet.ops.wavenet_layer``).

Shapes (``G2 = G // 2``)::

    x (B, R, T)   w_dil (G, R, K)   b_dil (G,)   h (B, C, T)   w_cond (G, C)
    w_res (R, G2) b_res (R,)        w_skip (S, G2)             b_skip (S,)

    a    = b_dil + sum_k w_dil[:, :, k] @ x[:, :, t + off_k] (+ w_cond @ h)   (zero outside [0, T))
    z    = tanh(a[:G2]) * sigmoid(a[G2:])
    skip = w_skip @ z + b_skip
    out  = (x + w_res @ z + b_res) * sqrt(0.5)

Kernels:

* ``_wavenet_fwd_kernel``: the whole forward for one time tile of one batch element. It loops over
  chunks of the G2 gate channels; each chunk's pre-activation (both halves) is computed by
  ``_preact`` (shared with the backward), gated, and immediately projected onto the residual and skip
  accumulators, so no (B, G, T) intermediate ever reaches memory.
* ``_wavenet_bwd_act_kernel``: recomputes a and z per tile and chunk, forms dz from the upstream
  gradients, and writes da (B, G, T) and z (B, G2, T) to scratch (in the input dtype) plus dh.
* ``_wavenet_bwd_dx_kernel``: dx = sqrt(0.5) * grad_out + the transposed dilated convolution of da.
* ``_wgrad_kernel``: generic ``alpha * sum_{b,t} A[b, :, t] B[b, :, t + shift]^T`` (one shift per
  tap), split over batch and time into fp32 partials that the launcher sums (deterministic: no
  atomics), optionally with the row sums of A (bias gradients). Used for dw_dil, dw_cond, dw_res,
  dw_skip and the three bias gradients.

Launchers: ``wavenet_layer_fwd`` and ``wavenet_layer_bwd``. Inputs arrive validated (same device and
dtype, consistent shapes, G even, K odd when not causal). They may be non-contiguous: every kernel
takes element strides, nothing is copied.

Everything accumulates in float32. The backward scratch (da, z) is stored in the input dtype: the
tensor-core dots that consume it need that dtype anyway, and it halves the scratch traffic for
fp16/bf16. No kernel here has been timed on a GPU yet; the autotune lists are chosen from the
shared memory, registers and spills ptxas reported for sm_90a (``kernels/wavenet_layer_configs.py``);
configs that cannot fit the device are pruned before compiling (``kernels/_tuning.py``).
"""
from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from clarinet._alloc import empty as _alloc
from clarinet._compat import matmul_allows_tf32
from clarinet._layout import tap_offsets

from . import _tuning
from .wavenet_layer_configs import (_ACT_KEY, _act_configs, _act_registers, _act_shared, _dx_configs, _dx_shared,
                                    _wgrad_configs, _wgrad_shared)

_SQRT_HALF = tl.constexpr(0.7071067811865476)  # sqrt(0.5), used inside kernels
SQRT_HALF = math.sqrt(0.5)


# ----------------------------------------------------------------------------------------------
# shared device helpers
# ----------------------------------------------------------------------------------------------


@triton.jit
def _tanh(x):
    # tanh through exp(-2|x|): no overflow for large |x|, exact 0 at 0. (libdevice's tanh is not
    # available under the interpreter.)
    e = tl.exp(-2.0 * tl.abs(x))
    t = (1.0 - e) / (1.0 + e)
    return tl.where(x < 0, -t, t)


@triton.jit
def _preact(
    # pointers (x_base and h_base already point at this batch element)
    x_base, wd_ptr, bd_ptr, h_base, wc_ptr,
    # this program's gate channels (rows of the filter half) and time steps
    offs_g, offs_t,
    # sizes
    R, T, G2, C, dilation,
    # strides
    stride_x_r, stride_x_t,
    stride_wd_g, stride_wd_r, stride_wd_k,
    stride_bd_g,
    stride_h_c, stride_h_t,
    stride_wc_g, stride_wc_c,
    # meta-parameters
    K: tl.constexpr, CAUSAL: tl.constexpr, HAS_COND: tl.constexpr,
    R_P: tl.constexpr, C_P: tl.constexpr,
    BLOCK_G: tl.constexpr, BLOCK_T: tl.constexpr, DOT_PREC: tl.constexpr,
):
    """Pre-activation of gate channels ``offs_g`` (filter half) and ``offs_g + G2`` (gate half).

    Returns two fp32 [BLOCK_G, BLOCK_T] tiles, biases included. Rows with ``offs_g >= G2`` are 0.
    """
    offs_r = tl.arange(0, R_P).to(tl.int64)
    mask_r = offs_r < R
    mask_g = offs_g < G2
    mask_gr = mask_g[:, None] & mask_r[None, :]
    acc_f = tl.zeros([BLOCK_G, BLOCK_T], dtype=tl.float32)
    acc_g = tl.zeros([BLOCK_G, BLOCK_T], dtype=tl.float32)
    wf_ptrs = wd_ptr + offs_g[:, None] * stride_wd_g + offs_r[None, :] * stride_wd_r
    wg_ptrs = wf_ptrs + G2 * stride_wd_g
    for k in tl.static_range(K):
        if CAUSAL:
            off = -(K - 1 - k) * dilation
        else:
            off = (k - (K - 1) // 2) * dilation
        ts = offs_t + off
        mask_t = (ts >= 0) & (ts < T)
        xk = tl.load(
            x_base + offs_r[:, None] * stride_x_r + ts[None, :] * stride_x_t,
            mask=mask_r[:, None] & mask_t[None, :],
            other=0.0,
        )
        wf = tl.load(wf_ptrs + k * stride_wd_k, mask=mask_gr, other=0.0)
        wg = tl.load(wg_ptrs + k * stride_wd_k, mask=mask_gr, other=0.0)
        acc_f = tl.dot(wf, xk, acc_f, input_precision=DOT_PREC)
        acc_g = tl.dot(wg, xk, acc_g, input_precision=DOT_PREC)
    if HAS_COND:
        offs_c = tl.arange(0, C_P).to(tl.int64)
        mask_c = offs_c < C
        hk = tl.load(
            h_base + offs_c[:, None] * stride_h_c + offs_t[None, :] * stride_h_t,
            mask=mask_c[:, None] & (offs_t < T)[None, :],
            other=0.0,
        )
        mask_gc = mask_g[:, None] & mask_c[None, :]
        wcf_ptrs = wc_ptr + offs_g[:, None] * stride_wc_g + offs_c[None, :] * stride_wc_c
        wcf = tl.load(wcf_ptrs, mask=mask_gc, other=0.0)
        wcg = tl.load(wcf_ptrs + G2 * stride_wc_g, mask=mask_gc, other=0.0)
        acc_f = tl.dot(wcf, hk, acc_f, input_precision=DOT_PREC)
        acc_g = tl.dot(wcg, hk, acc_g, input_precision=DOT_PREC)
    bf = tl.load(bd_ptr + offs_g * stride_bd_g, mask=mask_g, other=0.0).to(tl.float32)
    bg = tl.load(bd_ptr + (offs_g + G2) * stride_bd_g, mask=mask_g, other=0.0).to(tl.float32)
    return acc_f + bf[:, None], acc_g + bg[:, None]


# ----------------------------------------------------------------------------------------------
# forward
# ----------------------------------------------------------------------------------------------


@_tuning.autotune("wavenet_layer.fwd", configs=_act_configs(), key=_ACT_KEY,
                  estimate=_act_shared, registers=_act_registers)
@triton.heuristics({"HAS_COND": lambda args: args["h_ptr"] is not None})
@triton.jit
def _wavenet_fwd_kernel(
    # pointers
    x_ptr, wd_ptr, bd_ptr, wr_ptr, br_ptr, ws_ptr, bs_ptr, h_ptr, wc_ptr,
    out_ptr, skip_ptr,
    # sizes (BT_BUCKET: bucket of B*T, an autotune key; unused here)
    R, T, G2, S, C, dilation, BT_BUCKET,
    # strides (elements)
    stride_x_b, stride_x_r, stride_x_t,
    stride_wd_g, stride_wd_r, stride_wd_k,
    stride_bd_g,
    stride_wr_r, stride_wr_g,
    stride_br_r,
    stride_ws_s, stride_ws_g,
    stride_bs_s,
    stride_h_b, stride_h_c, stride_h_t,
    stride_wc_g, stride_wc_c,
    stride_out_b, stride_out_r, stride_out_t,
    stride_skip_b, stride_skip_s, stride_skip_t,
    # meta-parameters
    K: tl.constexpr, CAUSAL: tl.constexpr, HAS_COND: tl.constexpr,
    R_P: tl.constexpr, S_P: tl.constexpr, C_P: tl.constexpr,
    DOT_PREC: tl.constexpr,
    BLOCK_T: tl.constexpr, BLOCK_G: tl.constexpr,
):
    pid_t = tl.program_id(0).to(tl.int64)
    pid_b = tl.program_id(1).to(tl.int64)
    offs_t = pid_t * BLOCK_T + tl.arange(0, BLOCK_T)
    mask_t = offs_t < T
    offs_r = tl.arange(0, R_P).to(tl.int64)
    mask_r = offs_r < R
    offs_s = tl.arange(0, S_P).to(tl.int64)
    mask_s = offs_s < S
    x_base = x_ptr + pid_b * stride_x_b
    h_base = h_ptr
    if HAS_COND:
        h_base = h_ptr + pid_b * stride_h_b

    acc_res = tl.zeros([R_P, BLOCK_T], dtype=tl.float32)
    acc_skip = tl.zeros([S_P, BLOCK_T], dtype=tl.float32)
    for g0 in range(0, G2, BLOCK_G):
        offs_g = (g0 + tl.arange(0, BLOCK_G)).to(tl.int64)
        mask_g = offs_g < G2
        a_f, a_g = _preact(
            x_base, wd_ptr, bd_ptr, h_base, wc_ptr, offs_g, offs_t,
            R, T, G2, C, dilation,
            stride_x_r, stride_x_t, stride_wd_g, stride_wd_r, stride_wd_k, stride_bd_g,
            stride_h_c, stride_h_t, stride_wc_g, stride_wc_c,
            K, CAUSAL, HAS_COND, R_P, C_P, BLOCK_G, BLOCK_T, DOT_PREC,
        )
        # padded rows: a_f = a_g = 0 -> z = 0, and their w_res / w_skip columns load as 0 anyway
        z = _tanh(a_f) * tl.sigmoid(a_g)
        wr = tl.load(
            wr_ptr + offs_r[:, None] * stride_wr_r + offs_g[None, :] * stride_wr_g,
            mask=mask_r[:, None] & mask_g[None, :],
            other=0.0,
        )
        ws = tl.load(
            ws_ptr + offs_s[:, None] * stride_ws_s + offs_g[None, :] * stride_ws_g,
            mask=mask_s[:, None] & mask_g[None, :],
            other=0.0,
        )
        zc = z.to(wr.dtype)
        acc_res = tl.dot(wr, zc, acc_res, input_precision=DOT_PREC)
        acc_skip = tl.dot(ws, zc, acc_skip, input_precision=DOT_PREC)

    # epilogue: biases, residual connection, scale
    x0 = tl.load(
        x_base + offs_r[:, None] * stride_x_r + offs_t[None, :] * stride_x_t,
        mask=mask_r[:, None] & mask_t[None, :],
        other=0.0,
    ).to(tl.float32)
    br = tl.load(br_ptr + offs_r * stride_br_r, mask=mask_r, other=0.0).to(tl.float32)
    bs = tl.load(bs_ptr + offs_s * stride_bs_s, mask=mask_s, other=0.0).to(tl.float32)
    out = (x0 + acc_res + br[:, None]) * _SQRT_HALF
    skip = acc_skip + bs[:, None]
    tl.store(
        out_ptr + pid_b * stride_out_b + offs_r[:, None] * stride_out_r + offs_t[None, :] * stride_out_t,
        out.to(out_ptr.dtype.element_ty),
        mask=mask_r[:, None] & mask_t[None, :],
    )
    tl.store(
        skip_ptr + pid_b * stride_skip_b + offs_s[:, None] * stride_skip_s + offs_t[None, :] * stride_skip_t,
        skip.to(skip_ptr.dtype.element_ty),
        mask=mask_s[:, None] & mask_t[None, :],
    )


# ----------------------------------------------------------------------------------------------
# backward: activation gradients
# ----------------------------------------------------------------------------------------------


@_tuning.autotune("wavenet_layer.bwd_act", configs=_act_configs(), key=_ACT_KEY,
                  estimate=_act_shared, registers=_act_registers)
@triton.heuristics({"HAS_COND": lambda args: args["h_ptr"] is not None})
@triton.jit
def _wavenet_bwd_act_kernel(
    # pointers: inputs
    x_ptr, wd_ptr, bd_ptr, wr_ptr, ws_ptr, h_ptr, wc_ptr, gout_ptr, gskip_ptr,
    # pointers: outputs (da, z are scratch for the later kernels; dh is a final gradient)
    da_ptr, z_ptr, dh_ptr,
    # sizes (BT_BUCKET: bucket of B*T, an autotune key; unused here)
    R, T, G2, S, C, dilation, BT_BUCKET,
    # strides (elements)
    stride_x_b, stride_x_r, stride_x_t,
    stride_wd_g, stride_wd_r, stride_wd_k,
    stride_bd_g,
    stride_wr_r, stride_wr_g,
    stride_ws_s, stride_ws_g,
    stride_h_b, stride_h_c, stride_h_t,
    stride_wc_g, stride_wc_c,
    stride_gout_b, stride_gout_r, stride_gout_t,
    stride_gskip_b, stride_gskip_s, stride_gskip_t,
    stride_da_b, stride_da_g, stride_da_t,
    stride_z_b, stride_z_g, stride_z_t,
    stride_dh_b, stride_dh_c, stride_dh_t,
    # meta-parameters
    K: tl.constexpr, CAUSAL: tl.constexpr, HAS_COND: tl.constexpr,
    R_P: tl.constexpr, S_P: tl.constexpr, C_P: tl.constexpr,
    DOT_PREC: tl.constexpr,
    BLOCK_T: tl.constexpr, BLOCK_G: tl.constexpr,
):
    pid_t = tl.program_id(0).to(tl.int64)
    pid_b = tl.program_id(1).to(tl.int64)
    offs_t = pid_t * BLOCK_T + tl.arange(0, BLOCK_T)
    mask_t = offs_t < T
    offs_r = tl.arange(0, R_P).to(tl.int64)
    mask_r = offs_r < R
    offs_s = tl.arange(0, S_P).to(tl.int64)
    mask_s = offs_s < S
    offs_c = tl.arange(0, C_P).to(tl.int64)
    mask_c = offs_c < C
    x_base = x_ptr + pid_b * stride_x_b
    h_base = h_ptr
    if HAS_COND:
        h_base = h_ptr + pid_b * stride_h_b

    # upstream gradients of this tile, loaded once (native dtype: they feed tensor-core dots)
    go = tl.load(
        gout_ptr + pid_b * stride_gout_b + offs_r[:, None] * stride_gout_r + offs_t[None, :] * stride_gout_t,
        mask=mask_r[:, None] & mask_t[None, :],
        other=0.0,
    )
    gs = tl.load(
        gskip_ptr + pid_b * stride_gskip_b + offs_s[:, None] * stride_gskip_s + offs_t[None, :] * stride_gskip_t,
        mask=mask_s[:, None] & mask_t[None, :],
        other=0.0,
    )
    acc_dh = tl.zeros([C_P, BLOCK_T], dtype=tl.float32)
    for g0 in range(0, G2, BLOCK_G):
        offs_g = (g0 + tl.arange(0, BLOCK_G)).to(tl.int64)
        mask_g = offs_g < G2
        a_f, a_g = _preact(
            x_base, wd_ptr, bd_ptr, h_base, wc_ptr, offs_g, offs_t,
            R, T, G2, C, dilation,
            stride_x_r, stride_x_t, stride_wd_g, stride_wd_r, stride_wd_k, stride_bd_g,
            stride_h_c, stride_h_t, stride_wc_g, stride_wc_c,
            K, CAUSAL, HAS_COND, R_P, C_P, BLOCK_G, BLOCK_T, DOT_PREC,
        )
        tf = _tanh(a_f)
        sg = tl.sigmoid(a_g)
        z = tf * sg
        # dz = sqrt(.5) * w_res^T grad_out + w_skip^T grad_skip; weights loaded transposed
        wr_t = tl.load(
            wr_ptr + offs_g[:, None] * stride_wr_g + offs_r[None, :] * stride_wr_r,
            mask=mask_g[:, None] & mask_r[None, :],
            other=0.0,
        )
        ws_t = tl.load(
            ws_ptr + offs_g[:, None] * stride_ws_g + offs_s[None, :] * stride_ws_s,
            mask=mask_g[:, None] & mask_s[None, :],
            other=0.0,
        )
        dz = tl.dot(wr_t, go, input_precision=DOT_PREC) * _SQRT_HALF
        dz = tl.dot(ws_t, gs, dz, input_precision=DOT_PREC)
        da_f = dz * sg * (1.0 - tf * tf)
        da_g = dz * tf * sg * (1.0 - sg)

        mask_gt = mask_g[:, None] & mask_t[None, :]
        da_f_ptrs = da_ptr + pid_b * stride_da_b + offs_g[:, None] * stride_da_g + offs_t[None, :] * stride_da_t
        da_f_c = da_f.to(da_ptr.dtype.element_ty)
        da_g_c = da_g.to(da_ptr.dtype.element_ty)
        tl.store(da_f_ptrs, da_f_c, mask=mask_gt)
        tl.store(da_f_ptrs + G2 * stride_da_g, da_g_c, mask=mask_gt)
        tl.store(
            z_ptr + pid_b * stride_z_b + offs_g[:, None] * stride_z_g + offs_t[None, :] * stride_z_t,
            z.to(z_ptr.dtype.element_ty),
            mask=mask_gt,
        )
        if HAS_COND:
            # dh += w_cond[g]^T da_f + w_cond[g + G2]^T da_g (same rounded da as the dx kernel reads)
            wc_t_ptrs = wc_ptr + offs_c[:, None] * stride_wc_c + offs_g[None, :] * stride_wc_g
            mask_cg = mask_c[:, None] & mask_g[None, :]
            wcf_t = tl.load(wc_t_ptrs, mask=mask_cg, other=0.0)
            wcg_t = tl.load(wc_t_ptrs + G2 * stride_wc_g, mask=mask_cg, other=0.0)
            acc_dh = tl.dot(wcf_t, da_f_c, acc_dh, input_precision=DOT_PREC)
            acc_dh = tl.dot(wcg_t, da_g_c, acc_dh, input_precision=DOT_PREC)
    if HAS_COND:
        tl.store(
            dh_ptr + pid_b * stride_dh_b + offs_c[:, None] * stride_dh_c + offs_t[None, :] * stride_dh_t,
            acc_dh.to(dh_ptr.dtype.element_ty),
            mask=mask_c[:, None] & mask_t[None, :],
        )


# ----------------------------------------------------------------------------------------------
# backward: dx
# ----------------------------------------------------------------------------------------------


@_tuning.autotune("wavenet_layer.bwd_dx", configs=_dx_configs(), key=["R", "G", "K", "DOT_PREC", "BT_BUCKET"],
                  estimate=_dx_shared)
@triton.jit
def _wavenet_bwd_dx_kernel(
    # pointers
    da_ptr, wd_ptr, gout_ptr, dx_ptr,
    # sizes (BT_BUCKET: bucket of B*T, an autotune key; unused here)
    R, T, G, dilation, BT_BUCKET,
    # strides (elements)
    stride_da_b, stride_da_g, stride_da_t,
    stride_wd_g, stride_wd_r, stride_wd_k,
    stride_gout_b, stride_gout_r, stride_gout_t,
    stride_dx_b, stride_dx_r, stride_dx_t,
    # meta-parameters
    K: tl.constexpr, CAUSAL: tl.constexpr, R_P: tl.constexpr, DOT_PREC: tl.constexpr,
    BLOCK_T: tl.constexpr, BLOCK_G: tl.constexpr,
):
    # dx[r, t] = sqrt(.5) grad_out[r, t] + sum_k sum_g w_dil[g, r, k] da[g, t - off_k]
    pid_t = tl.program_id(0).to(tl.int64)
    pid_b = tl.program_id(1).to(tl.int64)
    offs_t = pid_t * BLOCK_T + tl.arange(0, BLOCK_T)
    mask_t = offs_t < T
    offs_r = tl.arange(0, R_P).to(tl.int64)
    mask_r = offs_r < R
    mask_rt = mask_r[:, None] & mask_t[None, :]
    acc = tl.load(
        gout_ptr + pid_b * stride_gout_b + offs_r[:, None] * stride_gout_r + offs_t[None, :] * stride_gout_t,
        mask=mask_rt,
        other=0.0,
    ).to(tl.float32) * _SQRT_HALF
    da_base = da_ptr + pid_b * stride_da_b
    for g0 in range(0, G, BLOCK_G):
        offs_g = (g0 + tl.arange(0, BLOCK_G)).to(tl.int64)
        mask_g = offs_g < G
        w_ptrs = wd_ptr + offs_r[:, None] * stride_wd_r + offs_g[None, :] * stride_wd_g
        mask_rg = mask_r[:, None] & mask_g[None, :]
        for k in tl.static_range(K):
            if CAUSAL:
                off = -(K - 1 - k) * dilation
            else:
                off = (k - (K - 1) // 2) * dilation
            ts = offs_t - off
            mask_ts = (ts >= 0) & (ts < T)
            dak = tl.load(
                da_base + offs_g[:, None] * stride_da_g + ts[None, :] * stride_da_t,
                mask=mask_g[:, None] & mask_ts[None, :],
                other=0.0,
            )
            w_t = tl.load(w_ptrs + k * stride_wd_k, mask=mask_rg, other=0.0)
            acc = tl.dot(w_t, dak, acc, input_precision=DOT_PREC)
    tl.store(
        dx_ptr + pid_b * stride_dx_b + offs_r[:, None] * stride_dx_r + offs_t[None, :] * stride_dx_t,
        acc.to(dx_ptr.dtype.element_ty),
        mask=mask_rt,
    )


# ----------------------------------------------------------------------------------------------
# backward: weight and bias gradients
# ----------------------------------------------------------------------------------------------


@_tuning.autotune("wavenet_layer.wgrad", configs=_wgrad_configs(), key=["M", "N", "NT", "DOT_PREC", "BT_BUCKET"],
                  estimate=_wgrad_shared)
@triton.heuristics({"HAS_BIAS": lambda args: args["pbias_ptr"] is not None})
@triton.jit
def _wgrad_kernel(
    # pointers: A (B, M, T), Bm (B, N, T); partial sums (NSPLIT, M, N, NT) and (NSPLIT, M), fp32
    a_ptr, b_ptr, part_ptr, pbias_ptr,
    # sizes (BT_BUCKET: bucket of B*T, an autotune key; unused here)
    M, N, T, NT, n_tsplit, t_chunk, shift0, shift_step, BT_BUCKET,
    # scalar factor applied to the sums
    alpha,
    # strides (elements)
    stride_a_b, stride_a_m, stride_a_t,
    stride_b_b, stride_b_n, stride_b_t,
    stride_p_s, stride_p_m, stride_p_n, stride_p_k,
    stride_pb_s, stride_pb_m,
    # meta-parameters
    HAS_BIAS: tl.constexpr, DOT_PREC: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_T: tl.constexpr,
):
    # part[s, m, n, tap] = alpha * sum_{t in split s} A[b, m, t] * Bm[b, n, t + shift_tap]
    # (terms with t + shift outside [0, T) are zero, as in the forward's zero padding)
    pid_mn = tl.program_id(0).to(tl.int64)
    tap = tl.program_id(1).to(tl.int64)
    pid_s = tl.program_id(2).to(tl.int64)
    num_n = tl.cdiv(N, BLOCK_N)
    pid_m = pid_mn // num_n
    pid_n = pid_mn % num_n
    pid_b = pid_s // n_tsplit
    shift = shift0 + tap * shift_step
    t_lo = (pid_s % n_tsplit) * t_chunk
    t_hi = tl.minimum(t_lo + t_chunk, T)
    # the shifted operand is zero outside [0, T): clip the reduction range instead of loading zeros
    t_lo_c = tl.maximum(t_lo, -shift)
    t_hi_c = tl.minimum(t_hi, T - shift)

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M).to(tl.int64)
    mask_m = offs_m < M
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N).to(tl.int64)
    mask_n = offs_n < N
    a_base = a_ptr + pid_b * stride_a_b
    b_base = b_ptr + pid_b * stride_b_b
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for t0 in range(t_lo_c, t_hi_c, BLOCK_T):
        offs_t = t0 + tl.arange(0, BLOCK_T)
        mask_t = offs_t < t_hi_c
        at = tl.load(
            a_base + offs_m[:, None] * stride_a_m + offs_t[None, :] * stride_a_t,
            mask=mask_m[:, None] & mask_t[None, :],
            other=0.0,
        )
        bt = tl.load(
            b_base + offs_n[None, :] * stride_b_n + (offs_t + shift)[:, None] * stride_b_t,
            mask=mask_t[:, None] & mask_n[None, :],
            other=0.0,
        )
        acc = tl.dot(at, bt, acc, input_precision=DOT_PREC)
    tl.store(
        part_ptr + pid_s * stride_p_s + offs_m[:, None] * stride_p_m + offs_n[None, :] * stride_p_n
        + tap * stride_p_k,
        acc * alpha,
        mask=mask_m[:, None] & mask_n[None, :],
    )
    if HAS_BIAS:
        # row sums of A over the whole (unclipped) split, done by the first tap's first N tile
        # (a second pass over the A tiles, by 1 / (taps * N tiles) of the programs)
        if (pid_n == 0) & (tap == 0):
            rsum = tl.zeros([BLOCK_M], dtype=tl.float32)
            for t0 in range(t_lo, t_hi, BLOCK_T):
                offs_t = t0 + tl.arange(0, BLOCK_T)
                at = tl.load(
                    a_base + offs_m[:, None] * stride_a_m + offs_t[None, :] * stride_a_t,
                    mask=mask_m[:, None] & (offs_t < t_hi)[None, :],
                    other=0.0,
                )
                rsum += tl.sum(at.to(tl.float32), axis=1)
            tl.store(pbias_ptr + pid_s * stride_pb_s + offs_m * stride_pb_m, rsum * alpha, mask=mask_m)


# ----------------------------------------------------------------------------------------------
# launchers
# ----------------------------------------------------------------------------------------------


def _pad(n: int) -> int:
    # channel counts padded to a power of two, at least 16 (tl.dot's minimum tile side)
    return max(16, triton.next_power_of_2(max(int(n), 1)))


def _dot_prec(dtype: torch.dtype) -> str:
    # float32 inputs: TF32 tensor cores only when PyTorch itself would use them for a float32 matmul,
    # so results match a float32 reference by default. Other dtypes ignore the setting.
    if dtype == torch.float32 and not matmul_allows_tf32():
        return "ieee"
    return "tf32"


def _bt_bucket(B: int, T: int) -> int:
    # autotune key for the launch size: B*T rounded up to a power of two in [2**12, 2**18] (below,
    # a few programs whatever the config; above, many waves on any GPU): at most 7 tunings per shape
    return _tuning.bucket(B * T, lo=1 << 12, hi=1 << 18)


def _strides(t, n: int) -> tuple[int, ...]:
    return tuple(t.stride()) if t is not None else (0,) * n


def _wgrad_time_chunk(B: int, T: int) -> int:
    # Time steps per partial sum. Each split writes one fp32 (M, N, taps) partial; >= 1024 steps per
    # split keeps that write small next to the reads, and the chunk doubles until there are at most
    # 512 splits (partial buffer and final torch sum stay small) or one chunk covers T: a split never
    # spans two batch rows, so with B > 512 there are B splits (the doubling stopped there; before,
    # it never ended). Not tuned on hardware.
    chunk = 1024
    while B * triton.cdiv(T, chunk) > _WGRAD_MAX_SPLITS and chunk < T:
        chunk *= 2
    return chunk


_WGRAD_MAX_SPLITS = 512


def _wgrad(a, b, *, taps: int = 1, shift0: int = 0, shift_step: int = 0, alpha: float = 1.0,
           with_bias: bool = False):
    """``alpha * sum_{b,t} a[b, :, t] b[b, :, t + shift0 + k*shift_step]^T`` for k < taps.

    Returns (grad (M, N, taps) fp32, bias (M,) fp32 or None). a: (B, M, T), b: (B, N, T).
    """
    B, M, T = a.shape
    N = b.shape[1]
    chunk = _wgrad_time_chunk(B, T)
    n_tsplit = triton.cdiv(T, chunk)
    nsplit = B * n_tsplit
    part = _alloc((nsplit, M, N, taps), torch.float32, a.device)
    pbias = _alloc((nsplit, M), torch.float32, a.device) if with_bias else None
    grid = lambda META: (triton.cdiv(M, META["BLOCK_M"]) * triton.cdiv(N, META["BLOCK_N"]), taps, nsplit)  # noqa: E731
    _wgrad_kernel[grid](
        a, b, part, pbias,
        M, N, T, taps, n_tsplit, chunk, shift0, shift_step, _bt_bucket(B, T),
        alpha,
        *a.stride(), *b.stride(),
        *part.stride(),
        *_strides(pbias, 2),
        DOT_PREC=_dot_prec(a.dtype),
    )
    return part.sum(0), (pbias.sum(0) if with_bias else None)


def wavenet_layer_fwd(x, w_dil, b_dil, w_res, b_res, w_skip, b_skip, h, w_cond,
                      dilation: int, causal: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Fused forward. Returns ``(out (B, R, T), skip (B, S, T))``, contiguous, in ``x.dtype``."""
    B, R, T = x.shape
    G, _, K = w_dil.shape
    G2 = G // 2
    S = w_skip.shape[0]
    C = h.shape[1] if h is not None else 0
    out = _alloc((B, R, T), x.dtype, x.device)
    skip = _alloc((B, S, T), x.dtype, x.device)
    if B == 0 or T == 0:
        return out, skip
    grid = lambda META: (triton.cdiv(T, META["BLOCK_T"]), B)  # noqa: E731
    _wavenet_fwd_kernel[grid](
        x, w_dil, b_dil, w_res, b_res, w_skip, b_skip, h, w_cond,
        out, skip,
        R, T, G2, S, C, int(dilation), _bt_bucket(B, T),
        *x.stride(), *w_dil.stride(), *b_dil.stride(),
        *w_res.stride(), *b_res.stride(), *w_skip.stride(), *b_skip.stride(),
        *_strides(h, 3), *_strides(w_cond, 2),
        *out.stride(), *skip.stride(),
        K=K, CAUSAL=bool(causal),
        R_P=_pad(R), S_P=_pad(S), C_P=_pad(C),
        DOT_PREC=_dot_prec(x.dtype),
    )
    return out, skip


def wavenet_layer_bwd(grad_out, grad_skip, x, w_dil, b_dil, w_res, b_res, w_skip, b_skip, h, w_cond,
                      dilation: int, causal: bool) -> list[torch.Tensor]:
    """Backward of ``wavenet_layer_fwd`` (recomputes the activations; nothing is saved by the forward).

    Returns ``[dx, dw_dil, db_dil, dw_res, db_res, dw_skip, db_skip]`` plus ``[dh, dw_cond]`` when
    ``h`` is given; each gradient has its input's shape and dtype. ``grad_out`` / ``grad_skip`` may be
    None (treated as zeros).
    """
    B, R, T = x.shape
    G, _, K = w_dil.shape
    G2 = G // 2
    S = w_skip.shape[0]
    C = h.shape[1] if h is not None else 0
    dt, dev = x.dtype, x.device
    if grad_out is None:
        grad_out = torch.zeros((B, R, T), dtype=dt, device=dev)
    if grad_skip is None:
        grad_skip = torch.zeros((B, S, T), dtype=dt, device=dev)
    if B == 0 or T == 0:
        grads = [torch.zeros_like(t) for t in (x, w_dil, b_dil, w_res, b_res, w_skip, b_skip)]
        if h is not None:
            grads += [torch.zeros_like(h), torch.zeros_like(w_cond)]
        return grads
    prec = _dot_prec(dt)

    # 1) da (B, G, T), z (B, G2, T) scratch and dh
    da = _alloc((B, G, T), dt, dev)
    z = _alloc((B, G2, T), dt, dev)
    dh = _alloc((B, C, T), dt, dev) if h is not None else None
    grid = lambda META: (triton.cdiv(T, META["BLOCK_T"]), B)  # noqa: E731
    _wavenet_bwd_act_kernel[grid](
        x, w_dil, b_dil, w_res, w_skip, h, w_cond, grad_out, grad_skip,
        da, z, dh,
        R, T, G2, S, C, int(dilation), _bt_bucket(B, T),
        *x.stride(), *w_dil.stride(), *b_dil.stride(),
        *w_res.stride(), *w_skip.stride(),
        *_strides(h, 3), *_strides(w_cond, 2),
        *grad_out.stride(), *grad_skip.stride(),
        *da.stride(), *z.stride(), *_strides(dh, 3),
        K=K, CAUSAL=bool(causal),
        R_P=_pad(R), S_P=_pad(S), C_P=_pad(C),
        DOT_PREC=prec,
    )

    # 2) dx
    dx = _alloc((B, R, T), dt, dev)
    _wavenet_bwd_dx_kernel[grid](
        da, w_dil, grad_out, dx,
        R, T, G, int(dilation), _bt_bucket(B, T),
        *da.stride(), *w_dil.stride(), *grad_out.stride(), *dx.stride(),
        K=K, CAUSAL=bool(causal), R_P=_pad(R), DOT_PREC=prec,
    )

    # 3) weight and bias gradients
    offs = tap_offsets(K, int(dilation), bool(causal))
    dw_dil, db_dil = _wgrad(da, x, taps=K, shift0=offs[0], shift_step=int(dilation), with_bias=True)
    dw_res, db_res = _wgrad(grad_out, z, alpha=SQRT_HALF, with_bias=True)
    dw_skip, db_skip = _wgrad(grad_skip, z, with_bias=True)
    grads = [
        dx,
        dw_dil.to(w_dil.dtype),
        db_dil.to(b_dil.dtype),
        dw_res[..., 0].to(w_res.dtype),
        db_res.to(b_res.dtype),
        dw_skip[..., 0].to(w_skip.dtype),
        db_skip.to(b_skip.dtype),
    ]
    if h is not None:
        dw_cond, _ = _wgrad(da, h)
        grads += [dh, dw_cond[..., 0].to(w_cond.dtype)]
    return grads
