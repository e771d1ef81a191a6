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
                    log_scale_min: float, reg_weight: float, reduction: str, reg_raw: bool = False) -> torch.Tensor:
    """Regularised KL(q || p), float32: 0-D for "mean"/"sum", the inputs' shape for "none" (``reg_raw``:
    the regulariser on the raw log-scales)."""
    red = _reduction_code(reduction)
    dev = _device_index(mean_q)
    views, rows, cols = collapse_2d(mean_q, log_scale_q, mean_p, log_scale_p)
    out, workspace, ws_numel = _loss_output(mean_q, reduction)
    out_view = _out_view(out, cols) if red == _cuda.REDUCTION_NONE else (out.data_ptr(), 0, 0)
    ws_ptr = workspace.data_ptr() if ws_numel else 0
    _cuda.gaussian_kl_fwd(*(_view(v) for v in views), out_view, ws_ptr, ws_numel, rows, cols, float(log_scale_min),
                          float(reg_weight), red, _dtype_code(mean_q), dev, _stream(dev), bool(reg_raw))
    return out


def gaussian_kl_bwd(grad: torch.Tensor, mean_q: torch.Tensor, log_scale_q: torch.Tensor, mean_p: torch.Tensor,
                    log_scale_p: torch.Tensor, log_scale_min: float, reg_weight: float,
                    reduction: str, reg_raw: bool = False) -> list[torch.Tensor]:
    """[dmean_q, dlog_scale_q, dmean_p, dlog_scale_p] in the inputs' shape and dtype, contiguous."""
    red = _reduction_code(reduction)
    dev = _device_index(mean_q)
    g, views, rows, cols = _grad_view(grad, [mean_q, log_scale_q, mean_p, log_scale_p], reduction, mean_q)
    grads = [_empty(mean_q.shape, mean_q.dtype, mean_q.device) for _ in range(4)]
    _cuda.gaussian_kl_bwd(g, *(_view(v) for v in views), *(_out_view(t, cols) for t in grads), rows, cols,
                          float(log_scale_min), float(reg_weight), red, _dtype_code(mean_q), dev, _stream(dev),
                          bool(reg_raw))
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


# ---- incremental WaveNet sampling (persistent thread-block-cluster kernel) ---------------------

#: Test hooks (monkeypatched by tests/test_wavenet_sample_cuda.py): force the cluster size
#: (0 = auto, else 1/2/4/8/16) and cap the layers kept in shared memory (-1 = as many as fit),
#: to reach the multi-CTA and the weights-from-L2 paths with small models.
_SAMPLER_CLUSTER = 0
_SAMPLER_MAX_RESIDENT = -1
#: upper bound (bytes) of the float32 conditioning workspace (B x chunk x layers*G); the chunk
#: shrinks to stay under it, so memory never grows with T
_SAMPLER_COND_BYTES = 256 << 20
_SAMPLER_PLANS: dict = {}


def _sampler_dims(packed) -> tuple:
    c = packed.config
    return (int(c["R"]), int(c["G"]), int(c["S"]), int(c["K"]), int(c["C"]), tuple(int(d) for d in c["dilations"]))


def _sampler_plan(packed, h: torch.Tensor, batch: int):
    """The extension's plan (cluster size, batch groups, resident layers, packed sizes), cached per shape."""
    dev = _device_index(h)
    dims = _sampler_dims(packed)
    key = (dims, h.dtype, int(batch), dev, int(_SAMPLER_CLUSTER), int(_SAMPLER_MAX_RESIDENT))
    plan = _SAMPLER_PLANS.get(key)
    if plan is None:
        R, G, S, K, C, dil = dims
        plan = _cuda.wavenet_sampler_plan(R, G, S, K, C, list(dil), _dtype_code(h), int(batch), dev,
                                          cluster=int(_SAMPLER_CLUSTER), max_resident=int(_SAMPLER_MAX_RESIDENT))
        _SAMPLER_PLANS[key] = plan
    return plan


def wavenet_sample_unsupported(packed, h: torch.Tensor) -> str | None:
    """Why the persistent CUDA sampler cannot take this model and ``h`` on its GPU, or None."""
    if h.device.type != "cuda":
        return f"backend='cuda' needs CUDA tensors, got device {h.device}"
    if h.dtype not in _DTYPE_CODES:
        return f"backend='cuda' takes float32, float16 or bfloat16, got {h.dtype}"
    plan = _sampler_plan(packed, h, max(int(h.shape[0]), 1))
    return None if plan.ok else f"backend='cuda' (persistent sampler): {plan.reason}"


def _sampler_weights(packed, device: torch.device, dtype: torch.dtype, plan):
    """(wpack, fpack, wcond, bcond) in the kernel's layout (clarinet_cuda.h), built once per device,
    dtype and cluster size from ``packed.on(device, dtype)`` and cached beside those copies."""
    key = ("_cuda_sampler", str(device), dtype, plan.cluster)
    hit = packed._copies.get(key)
    if hit is not None:
        return hit
    t = packed.on(device, dtype)
    c = packed.config
    L, R, G, S, K = c["layers"], c["R"], c["G"], c["S"], c["K"]
    G2, N, g, S1 = G // 2, plan.cluster, plan.gate_per_cta, plan.skip_per_cta
    KR, RS = K * R, R + S
    zeros = lambda *shape: torch.zeros(*shape, dtype=dtype, device=device)  # noqa: E731
    with torch.no_grad():
        wpack = zeros(N, plan.rank_elems)
        # head: rank j gets columns [j*S1, j*S1 + S1) of W1 (S, S1) and the matching rows of W2 (S1, 2)
        w1 = zeros(S, N * S1)
        w1[:, :S] = t["w_out1"]
        wpack[:, : S * S1] = w1.view(S, N, S1).permute(1, 0, 2).reshape(N, S * S1)
        w2 = zeros(N * S1, 2)
        w2[:S] = t["w_out2"]
        wpack[:, plan.head1_elems : plan.head1_elems + 2 * S1] = w2.view(N, 2 * S1)
        for i in range(L):
            base = plan.head_elems + i * plan.layer_elems
            wd = t[f"layers.{i}.w_dil"]  # (K*R, G)
            th, sg = zeros(KR, N * g), zeros(KR, N * g)
            th[:, :G2] = wd[:, :G2]
            sg[:, :G2] = wd[:, G2:]
            wa = torch.cat([th.view(KR, N, g), sg.view(KR, N, g)], dim=2)  # (K*R, N, 2g)
            wpack[:, base : base + KR * 2 * g] = wa.permute(1, 0, 2).reshape(N, KR * 2 * g)
            rs = zeros(N * g, RS)
            rs[:G2] = t[f"layers.{i}.w_rs"]
            bias = zeros(N, 1, RS)
            bias[0, 0] = t[f"layers.{i}.b_rs"]  # one bias row, non-zero on rank 0 only
            blk = torch.cat([rs.view(N, g, RS), bias], dim=1).reshape(N, (g + 1) * RS)
            wpack[:, base + plan.wa_elems : base + plan.wa_elems + (g + 1) * RS] = blk
        fpack = torch.zeros(plan.fpack_elems, dtype=torch.float32, device=device)
        fpack[:R] = t["w_in"].float()
        fpack[R : 2 * R] = t["b_in"].float()
        fpack[2 * R : 2 * R + 2] = t["b_out2"].float()
        fpack[2 * R + 2 : 2 * R + 2 + S] = t["b_out1"].float()
        wcond = torch.cat([t[f"layers.{i}.w_cond"] for i in range(L)], dim=1).contiguous()  # (C, L*G)
        bcond = torch.cat([t[f"layers.{i}.b_dil"] for i in range(L)]).float().contiguous()  # (L*G,)
    hit = (wpack, fpack, wcond, bcond)
    packed._copies[key] = hit
    return hit


def _ring_views(packed, ring: torch.Tensor, state: torch.Tensor):
    """Per layer: (the kernel ring's (B, (K-1)*d, R) view, the state's (B, (K-1)*d, R) view)."""
    c = packed.config
    R, K = c["R"], c["K"]
    Rp = (R + 3) // 4 * 4
    out, ro, so = [], 0, 1
    for d in c["dilations"]:
        n = (K - 1) * d
        out.append((ring[:, ro : ro + n * Rp].unflatten(1, (n, Rp))[:, :, :R], state[:, so : so + n * R].unflatten(1, (n, R))))
        ro += n * Rp
        so += n * R
    return out


def wavenet_sample_run(packed, h: torch.Tensor, src: torch.Tensor, forced: bool, x: torch.Tensor, mean: torch.Tensor,
                       log_scale: torch.Tensor, temperature: float, log_scale_min: float, chunk: int, *,
                       state: torch.Tensor | None = None, step0: int = 0, clip: float = 1.0) -> None:
    """Fills ``x``, ``mean``, ``log_scale`` (float32 (B, T) contiguous) by incremental sampling over ``h``
    (B, C, T) with the persistent CUDA sampler; ``src`` (B, T) is the noise, or the audio when ``forced``.

    ``state``: None (silence before step 0) or the carried state of ``clarinet.ops.wavenet_sample``
    (contiguous float32 ``(B, packed.state_size)``: the input of the next step, then every layer's
    ring ``((K-1)*d, R)`` with step s in slot s % ((K-1)*d)) at clock ``step0``; read at the start
    and rewritten at the end. ``clip``: free-running samples clamped to ``[-clip, clip]`` before they
    are fed back (default 1.0, the op's; ``math.inf``: off). Equivalent to ``clarinet.ops.wavenet_sample.wavenet_sample_ref``."""
    dev = _device_index(h)
    B, C, T = h.shape
    for name, t in (("x", x), ("mean", mean), ("log_scale", log_scale)):
        if t.dtype != torch.float32 or tuple(t.shape) != (B, T) or not t.is_contiguous() or t.device != h.device:
            raise ValueError(f"{name}: expected a contiguous float32 ({B}, {T}) tensor on {h.device}")
    if src.dtype != h.dtype or tuple(src.shape) != (B, T) or src.device != h.device:
        raise ValueError(f"src: expected a ({B}, {T}) {h.dtype} tensor on {h.device}")
    if state is not None:
        want = (B, packed.state_size)
        if (state.dtype != torch.float32 or tuple(state.shape) != want or not state.is_contiguous()
                or state.device != h.device):
            raise ValueError(f"state: expected a contiguous float32 {want} tensor on {h.device}")
    if isinstance(step0, bool) or not isinstance(step0, int) or step0 < 0:
        raise ValueError(f"step0: expected an int >= 0, got {step0!r}")
    if B == 0 or T == 0:
        return
    plan = _sampler_plan(packed, h, B)
    if not plan.ok:
        raise ValueError(f"backend='cuda' (persistent sampler): {plan.reason}")
    device = torch.device("cuda", dev)
    wpack, fpack, wcond, bcond = _sampler_weights(packed, device, h.dtype, plan)
    R, G, S, K, C_, dil = _sampler_dims(packed)
    LG = len(dil) * G
    cs = max(1, min(int(chunk), T, _SAMPLER_COND_BYTES // (4 * B * LG)))
    ring = torch.zeros(B, plan.ring_per_batch, dtype=torch.float32, device=device)  # the zero history
    prev = None
    if state is not None:
        for r, st in _ring_views(packed, ring, state):
            r.copy_(st)
        prev = state[:, 0].contiguous()
    cond = _empty((B, cs, LG), torch.float32, device)
    _cuda.wavenet_sample_run(
        R, G, S, K, C_, list(dil), plan, h.data_ptr(), src.data_ptr(), x.data_ptr(), mean.data_ptr(),
        log_scale.data_ptr(), wpack.data_ptr(), wpack.numel(), fpack.data_ptr(), fpack.numel(), wcond.data_ptr(),
        wcond.numel(), bcond.data_ptr(), bcond.numel(), ring.data_ptr(), ring.numel(), cond.data_ptr(), cond.numel(),
        0 if prev is None else prev.data_ptr(), int(step0), B, T, cs, tuple(h.stride()), tuple(src.stride()),
        bool(forced), float(temperature), float(log_scale_min), _dtype_code(h), dev, _stream(dev), float(clip))
    if state is not None:
        for r, st in _ring_views(packed, ring, state):
            st.copy_(r)
        state[:, 0] = x[:, T - 1]
