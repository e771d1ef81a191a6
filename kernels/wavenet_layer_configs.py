"""Autotune configurations of the fused WaveNet layer kernels (``kernels/wavenet_layer.py``) and the
shared-memory / register estimates that prune them before anything is compiled (``kernels/_tuning.py``).

Kept apart from the kernels: these lists and rules carry the ptxas measurements that justify them
(long tables), and change with hardware, while the kernels change with the math.
"""
from __future__ import annotations

import os

import triton


# ----------------------------------------------------------------------------------------------
# autotune configurations
# ----------------------------------------------------------------------------------------------


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def _tile_configs(rows) -> list[triton.Config]:
    """``(BLOCK_T, BLOCK_G, warps, stages)`` rows as configs; one config under the interpreter."""
    if _interpreting():
        return [triton.Config({"BLOCK_T": 64, "BLOCK_G": 16}, num_warps=4, num_stages=1)]
    return [triton.Config({"BLOCK_T": bt, "BLOCK_G": bg}, num_warps=w, num_stages=s) for bt, bg, w, s in rows]


def _act_configs() -> list[triton.Config]:
    """Configs for the forward and backward activation kernels (time tile x gate-channel chunk).

    Under the interpreter: one config (nothing can be timed there, and it is slow). On a GPU: NOT
    timed yet ("not yet run on a GPU"); chosen from what Triton 3.9 + ptxas produced for sm_90a,
    compiled here without a GPU (tests/test_kernel_configs.py, exhaustive run) at the teacher shape
    (R=S=128, G=256, C=80, K=2) and the student shape (R=S=64, G=128, C=80, K=3). Shared memory per
    block (KiB) / stack (spill) bytes per thread, teacher then student; ``*``: above the H100/H200
    limit of 232,448 B, pruned by ``_act_shared`` before compiling; ``reg``: pruned by
    ``_act_registers`` (not compiled). float16 = bfloat16 (identical allocations)::

        fwd                 float16              float32 "tf32"       float32 "ieee"
        T, G, warps, st   teacher   student    teacher   student    teacher   student
        32, 16, 8, 1        33K/0     28K/0      66K/0     56K/0      66K/24    56K/0
        64, 16, 8, 1        58K/0     48K/0     116K/0     96K/0     116K/0     96K/264
        32, 32, 8, 1        42K/0     36K/0      84K/64    72K/0      84K/72    72K/0
        128, 16, 8, 1      108K/56    88K/0     216K/48   176K/0      reg       reg
        32, 16, 4, 2        56K/48    40K/0     130K/64    98K/0     114K/1064  90K/256
        64, 16, 4, 2        80K/144   60K/8     180K/104  140K/0      reg       reg
        32, 32, 4, 2        88K/264   60K/16    212K/240  156K/0      reg       reg
        64, 32, 4, 2       112K/1024  80K/80    264K/616* 200K/24     reg       reg
        128, 32, 8, 2      160K/184  120K/32    368K/160* 288K/0*     reg       reg
        bwd_act
        32, 16, 8, 1        32K/0     24K/0      64K/0     48K/0      64K/0     48K/0
        64, 16, 8, 1        56K/40    40K/40    112K/72    80K/0     112K/336   80K/888
        32, 32, 8, 1        40K/200   32K/48     80K/128   64K/0      80K/712   64K/912
        128, 16, 8, 1      104K/472   72K/120   208K/480  144K/264    reg       reg
        32, 16, 4, 2        80K/8     60K/0     182K/8    142K/0     162K/1016 122K/784
        64, 16, 4, 2       120K/328   88K/80    268K/216* 204K/40     reg       reg
        32, 32, 4, 2       120K/568   92K/176   284K/304* 228K/88*    reg       reg
        64, 32, 4, 2       160K/1264 120K/344   372K/632* 292K/232*   reg       reg
        128, 32, 8, 2      240K/144* 176K/88    552K/248* 424K/112*   reg       reg

    Registers are at or near the 255 cap for most. The previous list's (64, 64, 4, 2), (128, 64, 8, 2)
    and (256, 32, 8, 2) needed 176K to 1.22 MiB and spilled up to 3 KB (3,008 B: fwd float16 64x64 at
    the teacher shape): gone. With the previous six configs the float32 teacher backward fitted
    nowhere (smallest 291,072 B here with Triton 3.9; issue 9 saw 254,208 B with 3.6); now 5 of 9 fit.
    float32 "ieee" dots run on FMA units and spill kilobytes with more than 4 elements of the
    BLOCK_T x BLOCK_G tile per thread (32x32 with 4 warps and one stage: 3.6 KB fwd, 8.8 KB bwd_act
    at the teacher shape; the previous six configs 9.5 to 21.9 KB and 17 to 78 s of compile each
    here, fwd teacher): ``_act_registers`` prunes those before compiling.
    """
    return _tile_configs([
        (32, 16, 8, 1),
        (64, 16, 8, 1),
        (32, 32, 8, 1),
        (128, 16, 8, 1),
        (32, 16, 4, 2),
        (64, 16, 4, 2),
        (32, 32, 4, 2),
        (64, 32, 4, 2),
        (128, 32, 8, 2),
    ])


def _dx_configs() -> list[triton.Config]:
    """Configs for the dx kernel (time tile x chunk of the G input channels of the transposed conv).

    NOT timed on a GPU. Measured for sm_90a as in :func:`_act_configs` (shared KiB / stack bytes,
    teacher then student; ``*`` pruned)::

        T, G, warps, st    float16             float32 "tf32"        float32 "ieee"
        64, 32, 4, 1        12K/0    8K/0       24K/40    16K/0       24K/784   16K/0
        64, 32, 4, 2        20K/0   24K/0       96K/0     96K/0       48K/272   48K/0
        64, 32, 8, 2        20K/0   24K/0       96K/0    100K/0       48K/0     48K/0
        128, 32, 4, 2       32K/136 44K/0      128K/296  144K/0       64K/808   72K/224
        128, 32, 4, 3       40K/160 60K/0      192K/352  216K/0      128K/976  144K/224
        64, 64, 4, 3        48K/16  64K/0      288K/288* 288K/0*     192K/920  192K/384
        128, 64, 8, 3       80K/0  120K/0      384K/24*  436K/0*     256K/800* 288K/224*
        256, 32, 8, 3       72K/8  116K/72     288K/88*  364K/80*    192K/584  240K/168*
    """
    return _tile_configs([
        (64, 32, 4, 1),
        (64, 32, 4, 2),
        (64, 32, 8, 2),
        (128, 32, 4, 2),
        (128, 32, 4, 3),
        (64, 64, 4, 3),
        (128, 64, 8, 3),
        (256, 32, 8, 3),
    ])


def _wgrad_configs() -> list[triton.Config]:
    """Configs for the weight-gradient reduction (output tile BLOCK_M x BLOCK_N, reduction step BLOCK_T).

    NOT timed on a GPU. All fit every launch measured for sm_90a (teacher and student, float16,
    bfloat16, float32 "tf32" and "ieee"): 8K to 192K of shared memory, 42 to 222 registers, 0 to
    8 bytes of stack.
    """
    if _interpreting():
        return [triton.Config({"BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_T": 128}, num_warps=4, num_stages=1)]
    return [
        triton.Config({"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_T": bt}, num_warps=w, num_stages=s)
        for bm, bn, bt, w, s in [
            (32, 32, 64, 4, 3),
            (64, 32, 64, 4, 3),
            (64, 64, 64, 4, 3),
            (64, 64, 128, 8, 3),
            (128, 64, 64, 8, 3),
        ]
    ]


# ----------------------------------------------------------------------------------------------
# shared-memory estimates (bytes per block) for pruning before compiling; see kernels/_tuning.py
# ----------------------------------------------------------------------------------------------
# Fitted to what Triton 3.9 allocated for sm_90a (compiled here without a GPU, all configs at the
# teacher and student shapes, float16 / bfloat16 / float32 with "tf32" and "ieee" dots): every
# estimate is >= the real figure, and equal to it for most float16 configs. tests/test_kernel_configs.py
# checks them against fresh compiles.
#
# With one stage nothing is multi-buffered: shared memory only stages the dot operands (the x taps,
# h and one more tile). With s >= 2 stages the loads of the gate-channel loop are buffered s - 1
# times; float32 adds the tf32 (wgmma) staging of the second dot's operands.

_ACT_KEY = ["R", "G2", "S", "C", "K", "DOT_PREC", "BT_BUCKET"]


def _act_shared(config, args) -> int:
    """Forward and activation-backward kernels."""
    bt, bg, s = config.kwargs["BLOCK_T"], config.kwargs["BLOCK_G"], config.num_stages
    r, sk, k = args["R_P"], args["S_P"], args["K"]
    c = args["C_P"] if args["h_ptr"] is not None else 0
    e = args["x_ptr"].element_size()
    bwd = "gout_ptr" in args
    if s == 1:
        return e * (bt * (k * r + c) + bg * (r + sk) + bg * max(bt, r + sk))
    loop = k * r * bt + 2 * k * bg * r + c * bt + 2 * bg * c + (r + sk) * bg + (2 * bg * c if bwd else 0)
    outside = (r + sk) * bt if bwd else 0  # grad_out / grad_skip tiles, loaded once
    est = e * ((s - 1) * loop + outside)
    if e == 4:
        est += 4 * ((2 * c if bwd else r + sk) * bg + 3 * bg * bt) + 256
    return est


def _act_registers(config, args) -> bool:
    """False for the float32 "ieee" configs that spill kilobytes (FMA dots: more than 4 elements of
    the BLOCK_T x BLOCK_G tile per thread; see ``_act_configs``)."""
    if args["DOT_PREC"] != "ieee":
        return True
    return config.kwargs["BLOCK_T"] * config.kwargs["BLOCK_G"] <= 4 * 32 * config.num_warps


def _dx_shared(config, args) -> int:
    """dx kernel: K taps of (da tile, weight tile) per gate-channel chunk, times the stages (one
    fewer with "ieee" dots; + 4K seen for float32 at the student shape)."""
    bt, bg, s = config.kwargs["BLOCK_T"], config.kwargs["BLOCK_G"], config.num_stages
    e = args["da_ptr"].element_size()
    if args["DOT_PREC"] == "ieee":
        s = max(s - 1, 1)
    return s * args["K"] * e * bg * (bt + args["R_P"]) + (4096 if e == 4 else 0)


def _wgrad_shared(config, args) -> int:
    """Weight-gradient kernel: an A and a B tile per reduction step, times the stages."""
    bm, bn, bt = config.kwargs["BLOCK_M"], config.kwargs["BLOCK_N"], config.kwargs["BLOCK_T"]
    return config.num_stages * args["a_ptr"].element_size() * bt * (bm + bn)
