"""Triton backend of incremental (autoregressive) sampling of a ``GaussianWaveNet`` (``clarinet.ops.wavenet_sample``).

One step ``t`` of the loop (the reference: ``clarinet.ops.wavenet_sample._StackStepper``), per batch row::

    x     = w_in * x_{t-1} + b_in                                   (R,)    x_{-1} = 0
    per layer l (dilation d, kernel K, ring of past layer inputs):
      a   = cond_l[t] + sum_k W_dil[k]^T x(t - (K-1-k) d)           (G,)    cond_l = w_cond h + b_dil
      z   = tanh(a[:G/2]) * sigmoid(a[G/2:])                        (G/2,)
      rs  = W_rs^T z + b_rs                                         (R+S,)
      ring <- x;  x = (x + rs[:R]) * sqrt(1/2);  skips += rs[R:]
    y     = relu(W1^T relu(skips * sqrt(1/layers)) + b1)            (S,)
    mean, log_scale = W2^T y + b2
    x_t   = mean + exp(max(log_scale, log_scale_min)) * temperature * noise_t   (or audio_t when forced)

Design: ONE persistent kernel launch per chunk of steps. Each program owns ``BLOCK_B`` batch rows
and loops over the chunk's steps inside the kernel, and over the layers inside each step; nothing
crosses programs, so no inter-program synchronisation is needed. Per step a program reads

* every layer's weights from global memory (they stay L2-resident: see the arithmetic below);
* the conditioning projection ``cond = h^T w_cond + b_dil`` of the step, for every layer, from a
  ``(B, chunk, layers * G)`` float32 workspace the launcher fills with one matmul per chunk (memory
  bounded by the chunk, not by T: 60 s of audio never holds every sample's projection);
* the dilated taps from a per-layer ring buffer of past layer inputs in a global float32 workspace
  ``(B, sum_l (L_l + 1), R)``, ``L_l = (K-1) d_l``. The ring has ``L + 1`` slots (slot
  ``step % (L+1)``), one more than the taps need, so the slot written at step ``t`` is never one
  that step ``t`` reads: the only hazard left is read-after-write across steps, closed by one
  ``tl.debug_barrier()`` at the end of every step (a CTA barrier makes this program's global writes
  visible to all its threads). With exactly ``L`` slots the write would reuse the slot tap 0 just
  read, and a second barrier per layer per step (20 more per sample) would be needed.

The gate channels are processed ``BLOCK_N`` at a time and each chunk's ``z`` is projected onto the
residual and skip accumulators at once (the fused-layer structure of ``kernels/wavenet_layer.py``),
so no register tile is larger than ``R_P x BLOCK_N`` weights. That chunk loop and the head's are
plain ``range`` loops: unrolled with ``tl.static_range`` they kept every chunk's weights live at once
and ptxas (sm_90a, compiled here without a GPU, strides not specialised) reported 600 to 16,000
bytes of spills per thread for the presets; as loops, with the specialisations of a real launch,
most configs spill 0 to 250 bytes (see :func:`_configs`). The layer loop is a ``range`` too
(layer ``l+1`` depends on layer ``l``; unrolling 20 layers only multiplies the code); per-layer
dilations, ring offsets and ring phases are loaded from small int tensors.

Matrix-vector products: ``tl.dot`` when ``BLOCK_B >= 16`` (tensor cores for fp16/bf16; activations
are rounded to the weights' dtype at the dot), broadcast-multiply-reduce in float32 otherwise.
Weights are used in ``h``'s dtype, everything accumulates in float32, the ring and the conditioning
workspace are float32.

Bytes and predicted rates (kernel 2, 20 layers; counted per sample per program; H100 SXM):

* per layer: ``W_dil`` K*R*G + ``W_rs`` (G/2)(R+S) + ``b_rs`` (R+S) elements; ``w_cond`` is NOT read
  per step (its product is precomputed per chunk); ``cond`` adds layers*G*4 bytes and the ring
  layers*K*R*4 bytes per row.
* teacher-small (R 64, G 128, S 128): 28,864 per layer, 594,178 elements with the head
  = 2.38 MB fp32 / 1.19 MB fp16 per step, + 10 KB cond + 10 KB ring; 1.19 MFLOP.
* teacher (R 128, G 256, S 128): 98,560 per layer, 1,988,226 elements = 7.95 MB fp32 / 3.98 MB fp16
  per step, + 20 KB cond + 20 KB ring; 3.98 MFLOP.
* One program runs on one SM and streams these bytes from L2 every step. Assume ~64 GB/s for one
  CTA (L2->SM is at most 64 B/clk ~ 120 GB/s; one CTA keeps too few requests in flight to reach
  it) plus ~0.5 us of dependent latency per layer (an L2 round trip, the reductions' shared-memory
  exchanges): 20 * 0.5 us = 10 us/step fixed.
  teacher-small fp16: 10 + 1.19 MB / 64 GB/s = 10 + 18.6 = ~29 us/step -> ~35 kHz per stream;
  fp32: 10 + 37 = ~47 us -> ~21 kHz. teacher fp16: 10 + 62 = ~72 us -> ~14 kHz; fp32 ~7.5 kHz.
  So this portable path is expected to fall short of the 48 kHz teacher-small target and of real time
  for the full teacher at batch 1: that needs weights spread over many SMs' registers / shared
  memory (the CUDA backend's design). Batch: with BLOCK_B = 16 (tl.dot) the weights are read once
  per 16 rows, so batch 64 = 4 programs at about the batch-1 step time: teacher-small fp16
  ~64 * 35 kHz ~ 2 M samples/s aggregate, teacher fp16 ~0.9 M samples/s.
  These are predictions from the arithmetic above, not measurements.

Launcher: :func:`wavenet_sample_run` (the contract of ``clarinet.ops.wavenet_sample``), which also
takes an optional carried state (the ``SamplerState`` layout of the C++ sampler) for streaming.
"""
from __future__ import annotations

import math
import os
import weakref

import torch
import triton
import triton.language as tl

from . import _tuning
from .wavenet_layer import _dot_prec, _pad

_SQRT_HALF = tl.constexpr(0.7071067811865476)  # sqrt(0.5), used inside the kernel

#: widest residual / skip width the register tiles are sized for (R_P x BLOCK_N weight tiles,
#: BLOCK_B x R_P activations); wider models go to another backend.
MAX_CHANNELS = 1024


# ----------------------------------------------------------------------------------------------
# autotune configurations
# ----------------------------------------------------------------------------------------------


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def _configs() -> list[triton.Config]:
    """Gate-channel chunk (BLOCK_N) x warps for the persistent sampling kernel.

    Under the interpreter: one config. On a GPU: NOT timed yet. Per chunk a program holds 2*K
    weight tiles R_P x BLOCK_N plus BLOCK_N x (R_P + S_P). Registers / spill bytes per thread that
    ptxas reported for sm_90a, compiled on a machine without a GPU with the specialisations a real
    launch gets (unit strides constant, the others divisible by 16); fp16, BLOCK_B 1 | 16::

        BLOCK_N, warps   teacher-small        teacher
        16, 4            112/0  | 255/32      128/16 | 255/144
        16, 8            103/0  | 255/8       143/0  | 255/40
        32, 8            103/0  | 255/8       244/0  | 255/64
        32, 16           114/0  | 128/48      102/0  | 128/256
        64, 8            255/0  | 255/40      246/0  | 255/136
        64, 16           128/48 | 128/104     128/16 | 128/200
        128, 16/32       spills 80 to 260 bytes everywhere (not listed)

    float32 weights are similar for BLOCK_B 1; with BLOCK_B 16 (fp32 "ieee" dot on FMA units) the
    teacher spills 5 to 6 KB at (16, 4), (32, 8), (64, 8), (64, 16) and 96 / 640 bytes at (16, 8) /
    (32, 16): :func:`_registers` prunes the first four before compiling (shared memory is not
    estimated here; it was not measured). Without the specialisations (all strides runtime
    values) BLOCK_B 1 needed 220 to 255 registers and the 64-wide chunks spilled ~1 KB.
    The autotuner times whole chunks (ring and carried input restored between trials).
    """
    if _interpreting():
        return [triton.Config({"BLOCK_N": 16}, num_warps=1, num_stages=1)]
    return [
        triton.Config({"BLOCK_N": bn}, num_warps=w, num_stages=1)
        for bn, w in [(16, 4), (16, 8), (32, 8), (32, 16), (64, 8), (64, 16)]
    ]


def _registers(config, args) -> bool:
    """False for the float32 ``tl.dot`` configs (BLOCK_B >= 16, "ieee") with more than 2 gate
    channels per warp: 5 to 6 KB of spills per thread at the teacher shape (see :func:`_configs`)."""
    if not (args["USE_DOT"] and args["DOT_PREC"] == "ieee"):
        return True
    return config.kwargs["BLOCK_N"] <= 2 * config.num_warps


def _block_b(B: int) -> int:
    """Batch rows per program (not measured yet; see the module docstring).

    Small batches: one row per program (each row is latency-bound, one SM each, the weights cost
    L2 bandwidth per row). From 16 rows: 16 rows per program, so ``tl.dot`` (tensor cores for
    fp16/bf16) serves them with one read of the weights per step. For float32 weights that dot runs
    on FMA units and several configs spill (see :func:`_configs`): a GPU measurement may well
    prefer one row per program there.
    """
    return 16 if B >= 16 else 1


# ----------------------------------------------------------------------------------------------
# kernel
# ----------------------------------------------------------------------------------------------


@_tuning.autotune("wavenet_sample", configs=_configs(),
                  key=["R", "G2", "S", "K", "BLOCK_B", "FORCED", "DOT_PREC"],
                  registers=_registers, restore_value=["ring_ptr", "prev_ptr"])
@triton.jit
def _wavenet_sample_kernel(
    # pointers: per-step inputs
    cond_ptr, src_ptr,
    # pointers: weights (w_dil, w_rs, b_rs stacked over layers) and per-layer ints
    w_in_ptr, b_in_ptr, wd_ptr, wrs_ptr, brs_ptr, w1_ptr, b1_ptr, w2_ptr, b2_ptr,
    dil_ptr, ring_off_ptr, phase_ptr,
    # pointers: carried state (read and rewritten) and outputs
    ring_ptr, prev_ptr, x_ptr, mean_ptr, ls_ptr,
    # sizes
    B, n_steps, out0, n_layers, R, G2, S,
    # scalars
    temperature, log_scale_min, skip_scale,
    # strides (elements)
    stride_cond_b, stride_cond_t, stride_cond_g,
    stride_src_b, stride_src_t,
    stride_wd_l, stride_wd_i, stride_wd_g,
    stride_wrs_l, stride_wrs_g, stride_wrs_o,
    stride_brs_l,
    stride_w1_i, stride_w1_o,
    stride_w2_i, stride_w2_o,
    stride_ring_b, stride_ring_s, stride_ring_r,
    stride_prev_b,
    stride_x_b, stride_x_t,
    stride_mean_b, stride_mean_t,
    stride_ls_b, stride_ls_t,
    # meta-parameters
    K: tl.constexpr, FORCED: tl.constexpr,
    R_P: tl.constexpr, S_P: tl.constexpr, G2_P: tl.constexpr,
    BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr,
    USE_DOT: tl.constexpr, DOT_PREC: tl.constexpr,
):
    """``n_steps`` steps for this program's ``BLOCK_B`` rows.

    Step ``i`` of the chunk reads conditioning row ``i``, source/output column ``out0 + i`` and, in
    layer ``l``, writes ring slot ``(phase[l] + i) % size_l`` (``phase[l]``: the slot of the chunk's
    first step, ``clock % size_l``, from the launcher: the clock may exceed int32 in a long stream,
    and an int64 remainder per tap per layer per step is a ~100-instruction subroutine on the GPU;
    the int32 one here is a handful). The input fed to the first step is ``prev``, and the input
    for the step after the chunk is written back there.

    The matrix-vector products, tanh, sigmoid and the log-scale floor are written inline rather than
    as ``@triton.jit`` helpers: the compiled kernel is the same, but the interpreter re-patches
    ``triton.language`` on every helper call (~0.8 ms each, measured), which made helper calls
    40% of the CPU test time.
    """
    pid = tl.program_id(0).to(tl.int64)
    rows = pid * BLOCK_B + tl.arange(0, BLOCK_B).to(tl.int64)
    mask_b = rows < B
    # channel offsets stay int32: every weight tensor has < 2**31 elements (a 64-bit offset per
    # element of every weight tile doubled the registers and spilled; see _configs). Row and time
    # offsets, which scale with B and T, are int64.
    offs_r = tl.arange(0, R_P)
    mask_r = offs_r < R
    offs_s = tl.arange(0, S_P)
    mask_s = offs_s < S
    mask_br = mask_b[:, None] & mask_r[None, :]

    w_in = tl.load(w_in_ptr + offs_r, mask=mask_r, other=0.0).to(tl.float32)
    b_in = tl.load(b_in_ptr + offs_r, mask=mask_r, other=0.0).to(tl.float32)
    b2_m = tl.load(b2_ptr).to(tl.float32)
    b2_s = tl.load(b2_ptr + 1).to(tl.float32)
    prev = tl.load(prev_ptr + rows * stride_prev_b, mask=mask_b, other=0.0)
    ring_rows = ring_ptr + rows[:, None] * stride_ring_b + offs_r[None, :] * stride_ring_r
    cond_rows = cond_ptr + rows[:, None] * stride_cond_b

    for i in range(n_steps):
        t = (out0 + i).to(tl.int64)  # source / output column
        # input 1x1 conv (1 -> R); padded channels stay 0 through every layer
        x = prev[:, None] * w_in[None, :] + b_in[None, :]
        skips = tl.zeros([BLOCK_B, S_P], dtype=tl.float32)
        cond_step = cond_rows + i * stride_cond_t
        for l in range(n_layers):
            d = tl.load(dil_ptr + l)
            ring_l = ring_rows + tl.load(ring_off_ptr + l).to(tl.int64) * stride_ring_s
            size = (K - 1) * d + 1  # ring slots (taps need L = (K-1) d; one more: see the module docstring)
            cur = tl.load(phase_ptr + l) + i  # int32: this step's slot before the remainder
            wd_l = wd_ptr + l * stride_wd_l
            wrs_l = wrs_ptr + l * stride_wrs_l
            res = tl.zeros([BLOCK_B, R_P], dtype=tl.float32)
            skp = tl.zeros([BLOCK_B, S_P], dtype=tl.float32)
            for g0 in range(0, G2_P, BLOCK_N):
                offs_g = g0 + tl.arange(0, BLOCK_N)
                mask_g = offs_g < G2
                mask_bg = mask_b[:, None] & mask_g[None, :]
                mask_rg = mask_r[:, None] & mask_g[None, :]
                # pre-activation of gate channels offs_g (tanh half) and offs_g + G2 (sigmoid half)
                c_ptrs = cond_step + (l * 2 * G2 + offs_g)[None, :] * stride_cond_g
                a_f = tl.load(c_ptrs, mask=mask_bg, other=0.0)
                a_g = tl.load(c_ptrs + G2 * stride_cond_g, mask=mask_bg, other=0.0)
                if not USE_DOT:
                    # products of all taps summed elementwise first (FMAs): one cross-thread
                    # reduction per half instead of one per tap
                    acc_f = tl.zeros([BLOCK_B, R_P, BLOCK_N], dtype=tl.float32)
                    acc_g = tl.zeros([BLOCK_B, R_P, BLOCK_N], dtype=tl.float32)
                for k in tl.static_range(K):
                    if k == K - 1:
                        xk = x  # the newest tap: this step's layer input
                    else:
                        # input of the step (K-1-k) d before this one; + size keeps the index >= 0
                        # (slots of steps before the start are zero or hold the carried state)
                        slot = (cur + size - (K - 1 - k) * d) % size
                        xk = tl.load(ring_l + slot * stride_ring_s, mask=mask_br, other=0.0)
                    w_ptrs = wd_l + (k * R + offs_r)[:, None] * stride_wd_i + offs_g[None, :] * stride_wd_g
                    wf = tl.load(w_ptrs, mask=mask_rg, other=0.0)
                    wg = tl.load(w_ptrs + G2 * stride_wd_g, mask=mask_rg, other=0.0)
                    if USE_DOT:
                        xk = xk.to(wf.dtype)
                        a_f = tl.dot(xk, wf, a_f, input_precision=DOT_PREC)
                        a_g = tl.dot(xk, wg, a_g, input_precision=DOT_PREC)
                    else:
                        acc_f += xk[:, :, None] * wf.to(tl.float32)[None, :, :]
                        acc_g += xk[:, :, None] * wg.to(tl.float32)[None, :, :]
                if not USE_DOT:
                    a_f += tl.sum(acc_f, axis=1)
                    a_g += tl.sum(acc_g, axis=1)
                # padded gate channels: a = 0 -> z = tanh(0) * sigmoid(0) = 0
                e = tl.exp(-2.0 * tl.abs(a_f))  # tanh through exp(-2|a|): no overflow (as wavenet_layer)
                th = (1.0 - e) / (1.0 + e)
                z = tl.where(a_f < 0, -th, th) / (1.0 + tl.exp(-a_g))
                wr = tl.load(wrs_l + offs_g[:, None] * stride_wrs_g + offs_r[None, :] * stride_wrs_o,
                             mask=mask_g[:, None] & mask_r[None, :], other=0.0)
                ws = tl.load(wrs_l + offs_g[:, None] * stride_wrs_g + (R + offs_s)[None, :] * stride_wrs_o,
                             mask=mask_g[:, None] & mask_s[None, :], other=0.0)
                if USE_DOT:
                    zc = z.to(wr.dtype)
                    res = tl.dot(zc, wr, res, input_precision=DOT_PREC)
                    skp = tl.dot(zc, ws, skp, input_precision=DOT_PREC)
                else:
                    res += tl.sum(z[:, :, None] * wr.to(tl.float32)[None, :, :], axis=1)
                    skp += tl.sum(z[:, :, None] * ws.to(tl.float32)[None, :, :], axis=1)
            # this step's layer input into its slot (no tap of this step reads it: L + 1 slots)
            tl.store(ring_l + (cur % size) * stride_ring_s, x, mask=mask_br)
            b_r = tl.load(brs_ptr + l * stride_brs_l + offs_r, mask=mask_r, other=0.0).to(tl.float32)
            b_s = tl.load(brs_ptr + l * stride_brs_l + R + offs_s, mask=mask_s, other=0.0).to(tl.float32)
            x = (x + res + b_r[None, :]) * _SQRT_HALF
            skips += skp + b_s[None, :]

        # head: relu -> 1x1 (S -> S) -> relu -> 1x1 (S -> 2), the S outputs BLOCK_N at a time
        y = tl.maximum(skips * skip_scale, 0.0)
        mean = tl.zeros([BLOCK_B], dtype=tl.float32)
        ls = tl.zeros([BLOCK_B], dtype=tl.float32)
        for o0 in range(0, S_P, BLOCK_N):
            offs_o = o0 + tl.arange(0, BLOCK_N)
            mask_o = offs_o < S
            w1 = tl.load(w1_ptr + offs_s[:, None] * stride_w1_i + offs_o[None, :] * stride_w1_o,
                         mask=mask_s[:, None] & mask_o[None, :], other=0.0)
            b1 = tl.load(b1_ptr + offs_o, mask=mask_o, other=0.0).to(tl.float32)
            if USE_DOT:
                y1 = tl.dot(y.to(w1.dtype), w1, input_precision=DOT_PREC)
            else:
                y1 = tl.sum(y[:, :, None] * w1.to(tl.float32)[None, :, :], axis=1)
            y1 = tl.maximum(y1 + b1[None, :], 0.0)
            w2_m = tl.load(w2_ptr + offs_o * stride_w2_i, mask=mask_o, other=0.0).to(tl.float32)
            w2_s = tl.load(w2_ptr + offs_o * stride_w2_i + stride_w2_o, mask=mask_o, other=0.0).to(tl.float32)
            mean += tl.sum(y1 * w2_m[None, :], axis=1)
            ls += tl.sum(y1 * w2_s[None, :], axis=1)
        mean += b2_m
        ls += b2_s

        src = tl.load(src_ptr + rows * stride_src_b + t * stride_src_t, mask=mask_b, other=0.0).to(tl.float32)
        if FORCED:
            xt = src  # teacher forcing: the next step is fed the real audio
        else:
            # max(log_scale, log_scale_min) keeping NaN, as torch.clamp (kernels/_elementwise.floor_log_scale)
            xt = mean + tl.exp(tl.where(ls < log_scale_min, log_scale_min, ls)) * (temperature * src)
        tl.store(x_ptr + rows * stride_x_b + t * stride_x_t, xt, mask=mask_b)
        tl.store(mean_ptr + rows * stride_mean_b + t * stride_mean_t, mean, mask=mask_b)
        tl.store(ls_ptr + rows * stride_ls_b + t * stride_ls_t, ls, mask=mask_b)
        prev = xt
        # the ring slots written in this step are read by later steps, possibly by other threads
        tl.debug_barrier()

    tl.store(prev_ptr + rows * stride_prev_b, prev, mask=mask_b)


# ----------------------------------------------------------------------------------------------
# launcher
# ----------------------------------------------------------------------------------------------

# packed model -> {(device, dtype): stacked weights}; a PackedWaveNet is immutable (a changed model is
# repacked into a new object), so a copy stays valid while its pack lives
_STACKED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _ring_sizes(config: dict) -> list[int]:
    return [(config["K"] - 1) * d + 1 for d in config["dilations"]]


def _stacked(packed, device: torch.device, dtype: torch.dtype) -> dict:
    """The packed weights on ``device`` in ``dtype``, per-layer tensors stacked (built once, cached)."""
    per = _STACKED.setdefault(packed, {})
    key = (str(device), dtype)
    hit = per.get(key)
    if hit is not None:
        return hit
    c, t = packed.config, packed.tensors
    n = c["layers"]
    to = lambda v: v.to(device=device, dtype=dtype).contiguous()  # noqa: E731
    layer = lambda name: [t[f"layers.{i}.{name}"] for i in range(n)]  # noqa: E731
    sizes = _ring_sizes(c)
    offs = [0]
    for s in sizes[:-1]:
        offs.append(offs[-1] + s)
    hit = {
        "w_in": to(t["w_in"]), "b_in": to(t["b_in"]),
        "w_dil": to(torch.stack(layer("w_dil"))),    # (layers, K*R, G)
        "w_rs": to(torch.stack(layer("w_rs"))),      # (layers, G/2, R+S)
        "b_rs": to(torch.stack(layer("b_rs"))),      # (layers, R+S)
        "w_out1": to(t["w_out1"]), "b_out1": to(t["b_out1"]),
        "w_out2": to(t["w_out2"]), "b_out2": to(t["b_out2"]),
        # conditioning projection for all layers at once: values rounded to dtype, product in float32
        "w_cond": to(torch.cat(layer("w_cond"), dim=1)).float(),   # (C, layers*G)
        "b_dil": to(torch.cat(layer("b_dil"))).float(),            # (layers*G,)
        "dil": torch.tensor(c["dilations"], dtype=torch.int32, device=device),
        "ring_off": torch.tensor(offs, dtype=torch.int64, device=device),
        "ring_size": torch.tensor(sizes, dtype=torch.int64, device=device),
    }
    per[key] = hit
    return hit


def wavenet_sample_unsupported(packed, h) -> str | None:
    """Why this backend cannot sample ``packed``'s model, or None (consulted by the dispatcher)."""
    c = packed.config
    if max(c["R"], c["S"]) > MAX_CHANNELS:
        return (f"backend 'triton': residual/skip width {max(c['R'], c['S'])} exceeds the sampler's "
                f"register tiles ({MAX_CHANNELS} channels)")
    return None


def _state_to_ring(config: dict, state: torch.Tensor, step0: int, ring: torch.Tensor) -> None:
    """Copy the rings of a carried state ``(B, 1 + sum L_l R)`` (slot ``step % L``) into ``ring``
    (slot ``step % (L+1)``) for the steps ``[step0 - L, step0)`` the taps can still reach."""
    R, K, o, so = config["R"], config["K"], 1, 0
    for d, size in zip(config["dilations"], _ring_sizes(config)):
        L = (K - 1) * d
        if L:
            src = state[:, o:o + L * R].view(-1, L, R)
            steps = torch.arange(step0 - L, step0)
            ring[:, so + steps % size] = src[:, steps % L]
        o += L * R
        so += size


def _ring_to_state(config: dict, ring: torch.Tensor, step: int, state: torch.Tensor) -> None:
    """The inverse of :func:`_state_to_ring` at clock ``step`` (the next step to run)."""
    R, K, o, so = config["R"], config["K"], 1, 0
    for d, size in zip(config["dilations"], _ring_sizes(config)):
        L = (K - 1) * d
        if L:
            dst = state[:, o:o + L * R].view(-1, L, R)
            steps = torch.arange(step - L, step)
            dst[:, steps % L] = ring[:, so + steps % size]
        o += L * R
        so += size


def _check_run_args(config, h, src, x, mean, log_scale, chunk, state, step0) -> None:
    """The launcher's own checks (the dispatcher validates first; direct callers get messages too)."""
    B, C, T = h.shape
    if C != config["C"]:
        raise ValueError(f"h: expected {config['C']} conditioning channels, got shape {tuple(h.shape)}")
    for name, t in (("x", x), ("mean", mean), ("log_scale", log_scale)):
        if t.dtype != torch.float32 or tuple(t.shape) != (B, T) or t.device != h.device:
            raise ValueError(f"{name}: expected a float32 ({B}, {T}) tensor on {h.device}")
    if src.dtype != h.dtype or tuple(src.shape) != (B, T) or src.device != h.device:
        raise ValueError(f"src: expected a ({B}, {T}) {h.dtype} tensor on {h.device}")
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk: expected an int >= 1, got {chunk!r}")
    if isinstance(step0, bool) or not isinstance(step0, int) or step0 < 0:
        raise ValueError(f"step0: expected an int >= 0, got {step0!r}")
    if state is not None:
        want = (B, 1 + sum((config["K"] - 1) * d * config["R"] for d in config["dilations"]))
        if (state.dtype != torch.float32 or tuple(state.shape) != want or not state.is_contiguous()
                or state.device != h.device):
            raise ValueError(f"state: expected a contiguous float32 {want} tensor on {h.device}")


def wavenet_sample_run(packed, h, src, forced, x, mean, log_scale, temperature, log_scale_min, chunk, *,
                       state=None, step0=0, block_b=None):
    """Fill ``x``, ``mean``, ``log_scale`` (float32 ``(B, T)``) by sampling ``packed``'s model over ``h``.

    ``h`` ``(B, C, T)`` (any strides; float32/float16/bfloat16, the weights are used in its dtype);
    ``src`` ``(B, T)`` in ``h``'s dtype: the noise (free-running) or the audio (``forced``), any
    strides. Conditioning is projected ``chunk`` steps at a time (one kernel launch per chunk).
    ``state``: None (silence before step 0) or a contiguous float32 ``(B, packed.state_size)``
    carried state (``[input for the next step, ring of layer 0 (L_0, R) slot step % L_0, ...]``)
    for clock ``step0``, read at the start and rewritten at the end. ``block_b``: batch rows per
    program (default :func:`_block_b`; 16 or more selects the ``tl.dot`` path).
    """
    c = packed.config
    B, C, T = h.shape
    _check_run_args(c, h, src, x, mean, log_scale, chunk, state, step0)
    if B == 0 or T == 0:
        return
    device, dtype = h.device, h.dtype
    R, G, S, K, n_layers = c["R"], c["G"], c["S"], c["K"], c["layers"]
    G2 = G // 2
    w = _stacked(packed, device, dtype)
    ring = torch.zeros(B, sum(_ring_sizes(c)), R, dtype=torch.float32, device=device)
    prev = torch.zeros(B, dtype=torch.float32, device=device)
    if state is not None:
        _state_to_ring(c, state, step0, ring)
        prev.copy_(state[:, 0])
    BLOCK_B = int(block_b) if block_b is not None else _block_b(B)
    if BLOCK_B < 1 or BLOCK_B & (BLOCK_B - 1):
        raise ValueError(f"block_b: expected a power of two, got {block_b!r}")
    use_dot = BLOCK_B >= 16
    grid = (triton.cdiv(B, BLOCK_B),)
    skip_scale = math.sqrt(1.0 / n_layers)
    for c0 in range(0, T, chunk):
        n = min(chunk, T - c0)
        # (B, n, layers*G) float32: one GEMM per chunk for every layer's w_cond h + b_dil
        cond = torch.matmul(h[:, :, c0:c0 + n].transpose(1, 2).float(), w["w_cond"])
        cond += w["b_dil"]
        phase = ((step0 + c0) % w["ring_size"]).to(torch.int32)  # on the device: no host sync
        _wavenet_sample_kernel[grid](
            cond, src,
            w["w_in"], w["b_in"], w["w_dil"], w["w_rs"], w["b_rs"], w["w_out1"], w["b_out1"],
            w["w_out2"], w["b_out2"], w["dil"], w["ring_off"], phase,
            ring, prev, x, mean, log_scale,
            B, n, c0, n_layers, R, G2, S,
            float(temperature), float(log_scale_min), skip_scale,
            *cond.stride(),
            *src.stride(),
            *w["w_dil"].stride(),
            *w["w_rs"].stride(),
            w["b_rs"].stride(0),
            *w["w_out1"].stride(),
            *w["w_out2"].stride(),
            *ring.stride(),
            prev.stride(0),
            *x.stride(),
            *mean.stride(),
            *log_scale.stride(),
            K=K, FORCED=bool(forced),
            R_P=_pad(R), S_P=_pad(S), G2_P=_pad(G2),
            BLOCK_B=BLOCK_B, USE_DOT=use_dot, DOT_PREC=_dot_prec(dtype),
        )
    if state is not None:
        _ring_to_state(c, ring, step0 + T, state)
        state[:, 0].copy_(prev)
