"""Shared pieces of the elementwise loss kernels (Gaussian NLL and KL).

Every input is addressed as a 2-D strided view ``(rows, cols)`` (see
``clarinet._layout.collapse_2d``); a program owns one ``BLOCK_R x BLOCK_C``
tile, ``BLOCK_C`` covering the contiguous columns first so that loads
vectorise. Reductions are deterministic: each program writes the sum of its
tile into ``partials[pid]`` and the partials are summed afterwards.
"""
from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from clarinet._alloc import empty
from clarinet._layout import collapse_2d

from . import _tuning


def elementwise_configs() -> list:
    """Autotune candidates: total elements per program and warps.

    Memory-bound kernels: a program should move a few KB per input so that
    enough loads are in flight; the sweep is small on purpose. Not yet timed on
    a GPU. The interpreter (CPU) cannot time anything and runs one config.
    Compiled for sm_90a (no GPU): 0 to 32 B of shared memory (8 KiB for the
    float16 NLL without reduction), no spills, so nothing is pruned. The autotune key is
    :func:`size_buckets`, not (rows, cols): a new length retunes only when it
    lands in a new bucket.
    """
    if os.environ.get("TRITON_INTERPRET", "0") == "1":
        return [triton.Config({"BLOCK": 256}, num_warps=1)]
    return [triton.Config({"BLOCK": b}, num_warps=w) for b in (1024, 2048, 4096) for w in (4, 8)]


#: the autotune key of every elementwise kernel (extra integer arguments, unused in the kernels)
BUCKET_KEY = ["N_BUCKET", "C_BUCKET"]


def size_buckets(rows: int, cols: int) -> tuple[int, int]:
    """(element count, columns), each rounded up to a power of two: the columns decide the tile shape
    (:func:`block_cols`, exact up to the largest ``BLOCK``), the count how many tiles there are
    (beyond 2**22 elements every config has thousands of programs)."""
    return _tuning.bucket(rows * cols, lo=1 << 10, hi=1 << 22), _tuning.bucket(cols, lo=1, hi=4096)


def block_cols(cols: int, block: int) -> int:
    return min(triton.next_power_of_2(cols), block)


def num_tiles(rows: int, cols: int, block: int) -> int:
    bc = block_cols(cols, block)
    return triton.cdiv(rows, block // bc) * triton.cdiv(cols, bc)


def grid(rows: int, cols: int):
    return lambda meta: (num_tiles(rows, cols, meta["BLOCK"]),)


def tile_heuristics() -> dict:
    return {
        "BLOCK_C": lambda a: block_cols(a["cols"], a["BLOCK"]),
        "BLOCK_R": lambda a: a["BLOCK"] // block_cols(a["cols"], a["BLOCK"]),
    }


def partials_buffer(rows: int, cols: int, device: torch.device) -> torch.Tensor:
    """Zeroed float32 buffer with room for the tile count of every config."""
    n = max(num_tiles(rows, cols, c.kwargs["BLOCK"]) for c in elementwise_configs())
    return torch.zeros(n, dtype=torch.float32, device=device)


def strides(*views: torch.Tensor) -> list[int]:
    return [s for v in views for s in v.stride()]


@triton.jit
def tile_2d(rows, cols, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    """(pid, row indices [BLOCK_R, 1], col indices [1, BLOCK_C], mask) of this program's tile."""
    pid = tl.program_id(0).to(tl.int64)
    n_col_blocks = tl.cdiv(cols, BLOCK_C)
    row_block = pid // n_col_blocks
    col_block = pid - row_block * n_col_blocks
    r = (row_block * BLOCK_R + tl.arange(0, BLOCK_R))[:, None]
    c = (col_block * BLOCK_C + tl.arange(0, BLOCK_C))[None, :]
    mask = (r < rows) & (c < cols)
    return pid, r, c, mask


@triton.jit
def floor_log_scale(log_scale, log_scale_min):
    """max(log_scale, log_scale_min) that keeps NaN (as torch.clamp does)."""
    return tl.where(log_scale < log_scale_min, log_scale_min, log_scale)


@triton.jit
def store_loss(loss, mask, pid, r, c, cols, out_ptr, partials_ptr, REDUCE: tl.constexpr):
    """The tile's losses (``REDUCE`` false, contiguous float32 (rows, cols)) or their sum (``partials[pid]``)."""
    if REDUCE:
        tl.store(partials_ptr + pid, tl.sum(tl.where(mask, loss, 0.0)))
    else:
        tl.store(out_ptr + r * cols + c, loss, mask=mask)


def loss_forward(kernel, inputs, scalars, reduction: str) -> torch.Tensor:
    """Launch a loss forward kernel whose arguments are
    ``(*inputs, out, partials, rows, cols, N_BUCKET, C_BUCKET, *strides, *scalars, REDUCE=)``; float32 result."""
    views, rows, cols = collapse_2d(*inputs)
    reduce = reduction != "none"
    device = inputs[0].device
    out = empty((rows, cols) if not reduce else (1,), torch.float32, device)
    partials = partials_buffer(rows, cols, device) if reduce else out
    kernel[grid(rows, cols)](*views, out, partials, rows, cols, *size_buckets(rows, cols), *strides(*views), *scalars,
                             REDUCE=reduce)
    if not reduce:
        return out.view(inputs[0].shape)
    total = partials.sum()
    return total / inputs[0].numel() if reduction == "mean" else total


def loss_backward(kernel, grad, inputs, scalars, reduction: str) -> list[torch.Tensor]:
    """Launch a loss backward kernel whose arguments are ``(grad, *inputs, *grads, rows, cols,
    N_BUCKET, C_BUCKET, grad strides, *strides, *scalars, grad_scale)``; one gradient per input, in its dtype."""
    if reduction == "none":
        (gv, *views), rows, cols = collapse_2d(grad, *inputs)
        grad_strides, grad_scale = strides(gv), 1.0
    else:  # a scalar upstream gradient, read through zero strides
        views, rows, cols = collapse_2d(*inputs)
        gv, grad_strides = grad, [0, 0]
        grad_scale = 1.0 / inputs[0].numel() if reduction == "mean" else 1.0
    grads = [empty((rows, cols), t.dtype, t.device) for t in inputs]
    kernel[grid(rows, cols)](gv, *views, *grads, rows, cols, *size_buckets(rows, cols), *grad_strides, *strides(*views),
                             *scalars, grad_scale)
    return [g.view(t.shape) for g, t in zip(grads, inputs)]
