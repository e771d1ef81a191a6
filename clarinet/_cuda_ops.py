"""Launchers for the CUDA kernels in ``csrc/cuda`` (the ``clarinet._cuda`` extension).

Each launcher takes and returns torch tensors: it views the inputs in place (strides are
passed, nothing is made contiguous unless ``collapse_2d`` must copy), allocates the
outputs, and calls the extension with device addresses, element strides, a dtype code,
the device index and the current stream of that device. Inputs are validated by the
ops layer (``clarinet.ops``): same CUDA device and dtype, same shape for the loss
inputs, at least one element. The extension checks its own arguments again
(``ValueError``) and every launch (``RuntimeError``).

Importing this module raises ``ImportError`` when the extension was not built.
"""
from __future__ import annotations

import torch

from clarinet import _cuda  # ImportError when the CUDA extension is absent
from clarinet._alloc import empty as _empty
from clarinet._layout import collapse_2d

_DTYPE_CODES = {torch.float32: _cuda.DTYPE_FLOAT32, torch.float16: _cuda.DTYPE_FLOAT16, torch.bfloat16: _cuda.DTYPE_BFLOAT16}
_REDUCTION_CODES = {"none": _cuda.REDUCTION_NONE, "sum": _cuda.REDUCTION_SUM, "mean": _cuda.REDUCTION_MEAN}


def _dtype_code(t: torch.Tensor) -> int:
    try:
        return _DTYPE_CODES[t.dtype]
    except KeyError:
        raise ValueError(f"the CUDA kernels take float32, float16 or bfloat16 tensors, got {t.dtype}") from None


def _reduction_code(reduction: str) -> int:
    try:
        return _REDUCTION_CODES[reduction]
    except KeyError:
        raise ValueError(f"reduction: expected 'mean', 'sum' or 'none', got {reduction!r}") from None


def _device_index(t: torch.Tensor) -> int:
    if t.device.type != "cuda":
        raise ValueError(f"the CUDA kernels need CUDA tensors, got device {t.device}")
    return t.device.index if t.device.index is not None else torch.cuda.current_device()


def _stream(device: int) -> int:
    return torch.cuda.current_stream(device).cuda_stream


def _view(t: torch.Tensor) -> tuple[int, int, int]:
    """(address, stride_row, stride_col) of a 2-D view."""
    return (t.data_ptr(), t.stride(0), t.stride(1))


def _out_view(t: torch.Tensor, cols: int) -> tuple[int, int, int]:
    """A contiguous output of the inputs' shape, addressed as the (rows, cols) view."""
    return (t.data_ptr(), cols, 1)


def _loss_output(ref: torch.Tensor, reduction: str):
    """(out, workspace, workspace_numel) for a loss forward."""
    if reduction == "none":
        return _empty(ref.shape, torch.float32, ref.device), 0, 0
    out = _empty((), torch.float32, ref.device)
    workspace = _empty((_cuda.MAX_PARTIALS,), torch.float32, ref.device)
    return out, workspace, workspace.numel()


def _grad_view(grad: torch.Tensor, views: list[torch.Tensor], reduction: str, ref: torch.Tensor):
    """The upstream gradient as the kernel reads it, and the input views."""
    if grad.dtype != torch.float32:
        grad = grad.float()
    if reduction == "none":
        if grad.shape != ref.shape:
            raise ValueError(f"grad: expected shape {tuple(ref.shape)} for reduction='none', got {tuple(grad.shape)}")
        (g2d, *inputs), rows, cols = collapse_2d(grad, *views)
        return _view(g2d), inputs, rows, cols
    if grad.numel() != 1:
        raise ValueError(f"grad: expected one element for reduction={reduction!r}, got shape {tuple(grad.shape)}")
    inputs, rows, cols = collapse_2d(*views)
    return (grad.data_ptr(), 0, 0), inputs, rows, cols


# ---- Gaussian negative log-likelihood ---------------------------------------------------


def gaussian_nll_fwd(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor, log_scale_min: float,
                     reduction: str) -> torch.Tensor:
    """Gaussian NLL, float32: 0-D for "mean"/"sum", the inputs' shape (contiguous) for "none"."""
    red = _reduction_code(reduction)
    dev = _device_index(x)
    (x2, m2, s2), rows, cols = collapse_2d(x, mean, log_scale)
    out, workspace, ws_numel = _loss_output(x, reduction)
    out_view = _out_view(out, cols) if red == _cuda.REDUCTION_NONE else (out.data_ptr(), 0, 0)
    ws_ptr = workspace.data_ptr() if ws_numel else 0
    _cuda.gaussian_nll_fwd(_view(x2), _view(m2), _view(s2), out_view, ws_ptr, ws_numel, rows, cols,
                           float(log_scale_min), red, _dtype_code(x), dev, _stream(dev))
    return out


def gaussian_nll_bwd(grad: torch.Tensor, x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor,
                     log_scale_min: float, reduction: str) -> list[torch.Tensor]:
    """[dx, dmean, dlog_scale] in the inputs' shape and dtype, contiguous."""
    red = _reduction_code(reduction)
    dev = _device_index(x)
    g, (x2, m2, s2), rows, cols = _grad_view(grad, [x, mean, log_scale], reduction, x)
    grads = [_empty(x.shape, x.dtype, x.device) for _ in range(3)]
    _cuda.gaussian_nll_bwd(g, _view(x2), _view(m2), _view(s2), *(_out_view(t, cols) for t in grads), rows, cols,
                           float(log_scale_min), red, _dtype_code(x), dev, _stream(dev))
    return grads


# ---- regularised reverse KL (ClariNet) ----------------------------------------------------


def gaussian_kl_fwd(mean_q: torch.Tensor, log_scale_q: torch.Tensor, mean_p: torch.Tensor, log_scale_p: torch.Tensor,
                    log_scale_min: float, reg_weight: float, reduction: str) -> torch.Tensor:
    """Regularised KL(q || p), float32: 0-D for "mean"/"sum", the inputs' shape for "none"."""
    red = _reduction_code(reduction)
    dev = _device_index(mean_q)
    views, rows, cols = collapse_2d(mean_q, log_scale_q, mean_p, log_scale_p)
    out, workspace, ws_numel = _loss_output(mean_q, reduction)
    out_view = _out_view(out, cols) if red == _cuda.REDUCTION_NONE else (out.data_ptr(), 0, 0)
    ws_ptr = workspace.data_ptr() if ws_numel else 0
    _cuda.gaussian_kl_fwd(*(_view(v) for v in views), out_view, ws_ptr, ws_numel, rows, cols, float(log_scale_min),
                          float(reg_weight), red, _dtype_code(mean_q), dev, _stream(dev))
    return out


def gaussian_kl_bwd(grad: torch.Tensor, mean_q: torch.Tensor, log_scale_q: torch.Tensor, mean_p: torch.Tensor,
                    log_scale_p: torch.Tensor, log_scale_min: float, reg_weight: float,
                    reduction: str) -> list[torch.Tensor]:
    """[dmean_q, dlog_scale_q, dmean_p, dlog_scale_p] in the inputs' shape and dtype, contiguous."""
    red = _reduction_code(reduction)
    dev = _device_index(mean_q)
    g, views, rows, cols = _grad_view(grad, [mean_q, log_scale_q, mean_p, log_scale_p], reduction, mean_q)
    grads = [_empty(mean_q.shape, mean_q.dtype, mean_q.device) for _ in range(4)]
    _cuda.gaussian_kl_bwd(g, *(_view(v) for v in views), *(_out_view(t, cols) for t in grads), rows, cols,
                          float(log_scale_min), float(reg_weight), red, _dtype_code(mean_q), dev, _stream(dev))
    return grads


# ---- fused WaveNet residual layer (inference forward) -------------------------------------


def pack_wavenet_weights(w_dil, b_dil, w_res, b_res, w_skip, b_skip, w_cond=None):
    """The zero-padded weight buffers the fused kernel reads (layout in csrc/cuda/clarinet_cuda.h).

    Returns ``(w1, b1, w2, b2)``: w1 (2*G2p, K1p) and w2 (Rp+Sp, G2p) in the weights' dtype,
    b1 and b2 float32; fresh contiguous tensors (so 32-byte aligned).
    """
    G, R, K = w_dil.shape
    G2 = G // 2
    S = w_skip.shape[0]
    C = 0 if w_cond is None else w_cond.shape[1]
    K1p, G2p, Rp, Sp = _cuda.wavenet_layer_packed_dims(R, C, S, G2, K)
    dtype, device = w_dil.dtype, w_dil.device
    # [g, k*R + r] = w_dil[g, r, k], then the conditioning columns
    w_in = w_dil.permute(0, 2, 1).reshape(G, K * R)
    if C:
        w_in = torch.cat([w_in, w_cond.to(dtype)], dim=1)
    w1 = torch.zeros(2 * G2p, K1p, dtype=dtype, device=device)
    w1[:G2, : w_in.shape[1]] = w_in[:G2]
    w1[G2p : G2p + G2, : w_in.shape[1]] = w_in[G2:]
    b1 = torch.zeros(2 * G2p, dtype=torch.float32, device=device)
    b1[:G2] = b_dil[:G2]
    b1[G2p : G2p + G2] = b_dil[G2:]
    w2 = torch.zeros(Rp + Sp, G2p, dtype=dtype, device=device)
    w2[:R, :G2] = w_res
    w2[Rp : Rp + S, :G2] = w_skip
    b2 = torch.zeros(Rp + Sp, dtype=torch.float32, device=device)
    b2[:R] = b_res
    b2[Rp : Rp + S] = b_skip
    return w1, b1, w2, b2


def wavenet_layer_fwd(x, w_dil, b_dil, w_res, b_res, w_skip, b_skip, h, w_cond, dilation: int,
                      causal: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Fused WaveNet residual layer, inference forward: ``(out, skip)`` in x.dtype, contiguous.

    x (B, R, T), w_dil (G, R, K), b_dil (G,), w_res (R, G/2), b_res (R,), w_skip (S, G/2),
    b_skip (S,), h (B, C, T) and w_cond (G, C) optional (both or neither). Equivalent to
    ``clarinet.ops.wavenet_layer.wavenet_layer_ref``.
    """
    dev = _device_index(x)
    B, R, T = x.shape
    G, _, K = w_dil.shape
    S = w_skip.shape[0]
    C = 0 if h is None else h.shape[1]
    w1, b1, w2, b2 = pack_wavenet_weights(w_dil, b_dil, w_res, b_res, w_skip, b_skip, w_cond)
    out = _empty((B, R, T), x.dtype, x.device)
    skip = _empty((B, S, T), x.dtype, x.device)
    _cuda.wavenet_layer_fwd(
        x.data_ptr(), 0 if h is None else h.data_ptr(), w1.data_ptr(), b1.data_ptr(), w2.data_ptr(), b2.data_ptr(),
        out.data_ptr(), skip.data_ptr(), w1.numel(), b1.numel(), w2.numel(), b2.numel(),
        B, R, C, S, G // 2, K, T,
        tuple(x.stride()), tuple(h.stride()) if h is not None else (0, 0, 0), tuple(out.stride()), tuple(skip.stride()),
        int(dilation), bool(causal), _dtype_code(x), dev, _stream(dev),
    )
    return out, skip
