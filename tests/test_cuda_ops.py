"""The CUDA backend (csrc/cuda, clarinet/_cuda_ops.py) against float64 references.

CPU tests: the extension imports without a GPU and exposes its functions, rejects bad
arguments with ValueError before any CUDA call, and the packed weight layout of the
fused WaveNet layer reproduces the reference (checked by emulating the kernel's two
GEMMs in float64 on the packed buffers).

GPU tests (marker ``gpu``): every launcher against a reference on fresh random inputs,
forward and backward, float32/float16/bfloat16, odd sizes, non-contiguous inputs,
outputs poisoned with NaN. Loss references are written here in float64; the layer's is
``wavenet_layer_ref`` in float64.
"""
from __future__ import annotations

import importlib
import math
import os
import shutil

import pytest
import torch

from _backends import cuda_ops
from _tolerances import assert_close
from clarinet import _alloc

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
REDUCTIONS = ["mean", "sum", "none"]

EXPECTED_FUNCTIONS = [
    "gaussian_nll_fwd",
    "gaussian_nll_bwd",
    "gaussian_kl_fwd",
    "gaussian_kl_bwd",
    "wavenet_layer_fwd",
    "wavenet_layer_packed_dims",
    "wavenet_layer_smem_bytes",
]
EXPECTED_LAUNCHERS = ["gaussian_nll_fwd", "gaussian_nll_bwd", "gaussian_kl_fwd", "gaussian_kl_bwd", "wavenet_layer_fwd"]


def _nvcc_available() -> bool:
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    return shutil.which("nvcc") is not None or bool(home and os.path.exists(os.path.join(home, "bin", "nvcc")))


def _ext():
    """clarinet._cuda, or skip when it was not built (a failure on a GPU machine)."""
    return cuda_ops()._cuda


def _ops():
    return cuda_ops()


# ---- CPU: build, import, argument checks ------------------------------------------------


def test_extension_imports_without_gpu():
    if not _nvcc_available():
        pytest.skip("nvcc not found (PATH, CUDA_HOME): setup.py builds no CUDA extension here")
    ext = importlib.import_module("clarinet._cuda")  # must not fail where nvcc exists
    missing = [name for name in EXPECTED_FUNCTIONS if not callable(getattr(ext, name, None))]
    assert not missing, f"clarinet._cuda lacks {missing}"
    assert ext.MAX_PARTIALS >= 1
    assert (ext.DTYPE_FLOAT32, ext.DTYPE_FLOAT16, ext.DTYPE_BFLOAT16) == (0, 1, 2)
    assert (ext.REDUCTION_NONE, ext.REDUCTION_SUM, ext.REDUCTION_MEAN) == (0, 1, 2)
    ops = importlib.import_module("clarinet._cuda_ops")
    missing = [name for name in EXPECTED_LAUNCHERS if not callable(getattr(ops, name, None))]
    assert not missing, f"clarinet._cuda_ops lacks {missing}"


def _nll_args(**over):
    v = (256, 1, 1)  # (address, stride_row, stride_col): never dereferenced, the checks fail first
    args = dict(x=v, mean=v, log_scale=v, out=v, workspace=256, workspace_numel=16, rows=2, cols=3,
                log_scale_min=-9.0, reduction=0, dtype=0, device=0, stream=0)
    args.update(over)
    return args


def _layer_args(**over):
    R, C, S, G2, K = 8, 0, 8, 8, 3
    k1p, g2p, rp, sp = 32, 16, 16, 16
    args = dict(x=256, h=0, w1=256, b1=256, w2=256, b2=256, out=256, skip=256,
                w1_numel=2 * g2p * k1p, b1_numel=2 * g2p, w2_numel=(rp + sp) * g2p, b2_numel=rp + sp,
                batch=1, res_channels=R, cond_channels=C, skip_channels=S, half_gate_channels=G2, kernel_size=K,
                time=10, stride_x=(R * 10, 10, 1), stride_h=(0, 0, 0), stride_out=(R * 10, 10, 1),
                stride_skip=(S * 10, 10, 1), dilation=1, causal=True, dtype=1, device=0, stream=0)
    args.update(over)
    return args


@pytest.mark.parametrize(
    "over, match",
    [
        (dict(dtype=7), "dtype code"),
        (dict(reduction=3), "reduction code"),
        (dict(rows=0), "empty input"),
        (dict(x=(0, 1, 1)), "x: null device pointer"),
        (dict(mean=(256, -1, 1)), "negative strides"),
        (dict(reduction=2, workspace=0), "workspace"),
        (dict(log_scale_min=float("nan")), "log_scale_min must be finite"),
    ],
)
def test_loss_launcher_rejects_bad_arguments(over, match):
    ext = _ext()
    with pytest.raises(ValueError, match=match):
        ext.gaussian_nll_fwd(**_nll_args(**over))


@pytest.mark.parametrize(
    "over, match",
    [
        (dict(dtype=3), "dtype code"),
        (dict(w1_numel=5), "packed w1"),
        (dict(b2_numel=5), "packed b2"),
        (dict(causal=False, kernel_size=2, w1_numel=2 * 16 * 16), "odd kernel size"),
        (dict(w1=258), "32-byte aligned"),
        (dict(h=256), "cond_channels"),
        (dict(batch=70000), "batch"),
        (dict(dilation=0), "dilation"),
        (dict(skip=0), "null device pointer"),
    ],
)
def test_layer_launcher_rejects_bad_arguments(over, match):
    ext = _ext()
    with pytest.raises(ValueError, match=match):
        ext.wavenet_layer_fwd(**_layer_args(**over))


def test_layer_packed_dims_and_shared_memory():
    ext = _ext()
    # student flow layer: R=64, C=80 (mel), S=64, G=128, K=3
    assert ext.wavenet_layer_packed_dims(64, 80, 64, 64, 3) == (272, 64, 64, 64)
    assert ext.wavenet_layer_packed_dims(5, 0, 7, 7, 2) == (16, 16, 16, 16)
    # 16-bit: (K1p + G2p) rows of 64+8 halves, plus 8 warps x 16x16 float scratch
    assert ext.wavenet_layer_smem_bytes(1, 272, 64, 64) == (272 + 64) * 72 * 2 + 8 * 256 * 4
    assert ext.wavenet_layer_smem_bytes(0, 272, 64, 32) == (272 + 64) * 32 * 4
    with pytest.raises(ValueError):
        ext.wavenet_layer_smem_bytes(0, 272, 64, 48)


def _packed_layer_float64(x, h, packed, dims, K, dilation, causal, S):
    w1, b1, w2, b2 = (t.double() for t in packed)
    K1p, G2p, Rp, Sp = dims
    B, R, T = x.shape
    off0 = -(K - 1) * dilation if causal else -((K - 1) // 2) * dilation
    k_res = K - 1 if causal else (K - 1) // 2
    rows = []
    for k in range(K):
        shift = off0 + k * dilation  # tap k of output t reads x[t + shift]
        xs = torch.zeros(B, R, T, dtype=torch.float64)
        lo, hi = max(0, -shift), min(T, T - shift)
        if lo < hi:
            xs[:, :, lo:hi] = x.double()[:, :, lo + shift : hi + shift]
        rows.append(xs)
    if h is not None:
        rows.append(h.double())
    X = torch.cat(rows, dim=1)
    X = torch.cat([X, X.new_zeros(B, K1p - X.shape[1], T)], dim=1)  # zero rows up to K1p
    A = torch.einsum("mk,bkt->bmt", w1, X) + b1[None, :, None]
    Z = torch.tanh(A[:, :G2p]) * torch.sigmoid(A[:, G2p:])
    Y = torch.einsum("mg,bgt->bmt", w2, Z) + b2[None, :, None]
    out = (Y[:, :R] + X[:, k_res * R : (k_res + 1) * R]) * math.sqrt(0.5)
    skip = Y[:, Rp : Rp + S]
    return out, skip


@pytest.mark.parametrize("causal, K, dilation, cond", [(True, 3, 2, True), (True, 2, 5, False), (False, 3, 4, True),
                                                       (False, 5, 1, False)])
def test_packed_weights_reproduce_reference_on_cpu(causal, K, dilation, cond):
    ops = _ops()
    from clarinet.ops.wavenet_layer import wavenet_layer_ref

    g = torch.Generator().manual_seed(1234 + K * 10 + dilation)
    B, R, G, S, C, T = 2, 5, 14, 7, 3, 29
    x, w_dil, b_dil, w_res, b_res, w_skip, b_skip, h, w_cond = _layer_inputs(
        B, R, G, S, C if cond else 0, K, T, torch.float64, "cpu", "strided", g)
    packed = ops.pack_wavenet_weights(w_dil, b_dil, w_res, b_res, w_skip, b_skip, w_cond)
    dims = importlib.import_module("clarinet._cuda").wavenet_layer_packed_dims(R, C if cond else 0, S, G // 2, K)
    assert packed[0].shape == (2 * dims[1], dims[0]) and packed[2].shape == (dims[2] + dims[3], dims[1])
    out, skip = _packed_layer_float64(x, h, packed, dims, K, dilation, causal, S)
    ref_out, ref_skip = wavenet_layer_ref(x, w_dil, b_dil, w_res, b_res, w_skip, b_skip, dilation=dilation, h=h,
                                          w_cond=w_cond, causal=causal, compute_dtype=torch.float64)
    # the packed biases are float32 (the kernels add them in float32): float32 tolerance; a
    # layout error would be O(1)
    assert_close(out, ref_out, torch.float32, "out")
    assert_close(skip, ref_skip, torch.float32, "skip")


# ---- float64 loss references -------------------------------------------------------------


def _reduce(loss, reduction):
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def gaussian_nll_ref64(x, mean, log_scale, log_scale_min, reduction):
    x, mean, log_scale = (t.double() for t in (x, mean, log_scale))
    s = torch.clamp(log_scale, min=log_scale_min)
    loss = 0.5 * math.log(2 * math.pi) + s + 0.5 * ((x - mean) * torch.exp(-s)) ** 2
    return _reduce(loss, reduction)


def gaussian_kl_ref64(mean_q, log_scale_q, mean_p, log_scale_p, log_scale_min, reg_weight, reduction):
    mq, lq, mp, lp = (t.double() for t in (mean_q, log_scale_q, mean_p, log_scale_p))
    lq = torch.clamp(lq, min=log_scale_min)
    lp = torch.clamp(lp, min=log_scale_min)
    # the textbook form (float64 has the range for it)
    loss = lp - lq + (torch.exp(2 * lq) + (mq - mp) ** 2) / (2 * torch.exp(2 * lp)) - 0.5 + reg_weight * (lp - lq) ** 2
    return _reduce(loss, reduction)


def _rounded(ref, dtype):
    """The float64 reference rounded to the output dtype: no kernel can do better. It matters
    for float16 gradients of a mean over millions of elements, which are float16 subnormals."""
    return ref.to(dtype).double()


def _ref_grads(ref_fn, inputs, grad, *args):
    leaves = [t.detach().double().requires_grad_(True) for t in inputs]
    out = ref_fn(*leaves, *args)
    return torch.autograd.grad(out, leaves, grad.double())


# ---- input layouts -----------------------------------------------------------------------

# (layout, shape); every layout is made of fresh N(0, 1) draws
LOSS_CASES = [
    ("contiguous", (1,)),
    ("contiguous", (3, 129)),
    ("contiguous", (4, 2053)),
    ("channel-slices", (2, 1000)),  # y[:, i] of a (B, n, T) network output: stride-1 rows, vector path
    ("channel-slices", (3, 63)),    # rows of 63: misaligned for 16-byte vectors, scalar path
    ("transposed", (5, 63)),
    ("strided", (2, 3, 257)),
    ("offset", (777,)),              # t[1:]: stride 1 but not 16-byte aligned
    ("expanded", (6, 130)),          # stride-0 rows
    ("large", (70, 60001)),          # more tiles than the grid: grid-stride loops, > MAX_PARTIALS blocks
]


def _loss_inputs(n, layout, shape, dtype, device, g):
    def rnd(*s):
        return torch.randn(*s, generator=g, dtype=torch.float32)

    if layout in ("contiguous", "large"):
        ts = [rnd(*shape) for _ in range(n)]
    elif layout == "channel-slices":
        y = rnd(shape[0], n, *shape[1:])
        ts = [y[:, i] for i in range(n)]
    elif layout == "transposed":
        ts = [rnd(*reversed(shape)).transpose(0, -1) for _ in range(n)]
    elif layout == "strided":
        ts = [rnd(*shape[:-1], 2 * shape[-1])[..., ::2] for _ in range(n)]
    elif layout == "offset":
        ts = [rnd(shape[0] + 1)[1:] for _ in range(n)]
    elif layout == "expanded":
        ts = [rnd(1, shape[1]).expand(*shape) for _ in range(n)]
    else:
        raise ValueError(layout)
    return [_move(t, device, dtype) for t in ts]


def _move(t, device, dtype=None):
    """``t`` on ``device`` (cast to ``dtype``) with the same strides and storage offset."""
    base = t if t._base is None else t._base
    assert base.is_contiguous()
    moved = base.to(device=device, dtype=dtype or t.dtype)
    return moved.as_strided(t.shape, t.stride(), t.storage_offset())


def _upstream(shape, reduction, device, g):
    """Random upstream gradient: 0-D for mean/sum; input-shaped and non-contiguous for none."""
    if reduction != "none":
        return torch.randn((), generator=g).to(device)
    return _move(torch.randn(*shape, 2, generator=g)[..., 1], device)


def _layout_ids(case):
    layout, shape = case
    return f"{layout}-{'x'.join(map(str, shape))}"


@pytest.fixture
def poison(monkeypatch):
    monkeypatch.setattr(_alloc, "POISON", True)
    return _ops()


def _seed(*parts) -> int:
    import zlib

    return zlib.crc32(repr(parts).encode())


# ---- GPU: Gaussian NLL -----------------------------------------------------------------------


def check_gaussian_nll(ops, layout, shape, dtype, reduction, device):
    g = torch.Generator().manual_seed(_seed("nll", layout, shape, str(dtype), reduction))
    x, mean, log_scale = _loss_inputs(3, layout, shape, dtype, device, g)
    log_scale_min = -0.5  # ~30% of N(0, 1) log-scales are clamped
    out = ops.gaussian_nll_fwd(x, mean, log_scale, log_scale_min, reduction)
    ref = gaussian_nll_ref64(x, mean, log_scale, log_scale_min, reduction)
    assert out.dtype == torch.float32 and out.device == x.device
    assert out.shape == (x.shape if reduction == "none" else ())
    assert_close(out, ref, dtype, f"nll fwd {reduction}")

    grad = _upstream(tuple(x.shape), reduction, device, g)
    grads = ops.gaussian_nll_bwd(grad, x, mean, log_scale, log_scale_min, reduction)
    refs = _ref_grads(gaussian_nll_ref64, [x, mean, log_scale], grad, log_scale_min, reduction)
    for name, got, want, inp in zip(("dx", "dmean", "dlog_scale"), grads, refs, (x, mean, log_scale)):
        assert got.shape == inp.shape and got.dtype == inp.dtype and got.is_contiguous(), name
        assert_close(got, _rounded(want, got.dtype), dtype, f"nll bwd {reduction} {name}")


@pytest.mark.gpu
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", LOSS_CASES, ids=_layout_ids)
def test_gaussian_nll_matches_reference(poison, case, dtype, reduction):
    check_gaussian_nll(poison, *case, dtype, reduction, "cuda")


# ---- GPU: Gaussian KL ------------------------------------------------------------------------


def check_gaussian_kl(ops, layout, shape, dtype, reduction, device, extreme=False, check_bwd=True):
    g = torch.Generator().manual_seed(_seed("kl", layout, shape, str(dtype), reduction, extreme))
    mq, lq, mp, lp = _loss_inputs(4, layout, shape, dtype, device, g)
    log_scale_min, reg_weight = -0.5, 4.0
    if extreme:
        # log-scales uniform in [-7, 10], mean gaps uniform in [-1e3, 1e3] (the spec's range),
        # with the four corners of the log-scale square in the first elements
        log_scale_min = -7.0
        n = mq.numel()
        lqv = torch.rand(n, generator=g) * 17 - 7
        lpv = torch.rand(n, generator=g) * 17 - 7
        gap = (torch.rand(n, generator=g) * 2 - 1) * 1e3
        corners = torch.tensor([[-7.0, -7.0], [-7.0, 10.0], [10.0, -7.0], [10.0, 10.0]])[: min(4, n)]
        lqv[: len(corners)], lpv[: len(corners)] = corners[:, 0], corners[:, 1]
        gap[: len(corners)] = 1e3
        lq.copy_(lqv.view(mq.shape))
        lp.copy_(lpv.view(mq.shape))
        mp.copy_((mq.cpu().float() + gap.view(mq.shape)).to(dtype))
    out = ops.gaussian_kl_fwd(mq, lq, mp, lp, log_scale_min, reg_weight, reduction)
    ref = gaussian_kl_ref64(mq, lq, mp, lp, log_scale_min, reg_weight, reduction)
    assert out.dtype == torch.float32
    assert out.shape == (mq.shape if reduction == "none" else ())
    assert_close(out, ref, dtype, f"kl fwd {reduction}")
    if not check_bwd:
        return
    grad = _upstream(tuple(mq.shape), reduction, device, g)
    grads = ops.gaussian_kl_bwd(grad, mq, lq, mp, lp, log_scale_min, reg_weight, reduction)
    refs = _ref_grads(gaussian_kl_ref64, [mq, lq, mp, lp], grad, log_scale_min, reg_weight, reduction)
    names = ("dmean_q", "dlog_scale_q", "dmean_p", "dlog_scale_p")
    for name, got, want, inp in zip(names, grads, refs, (mq, lq, mp, lp)):
        assert got.shape == inp.shape and got.dtype == inp.dtype and got.is_contiguous(), name
        assert_close(got, _rounded(want, got.dtype), dtype, f"kl bwd {reduction} {name}")


@pytest.mark.gpu
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", LOSS_CASES, ids=_layout_ids)
def test_gaussian_kl_matches_reference(poison, case, dtype, reduction):
    check_gaussian_kl(poison, *case, dtype, reduction, "cuda")


@pytest.mark.gpu
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", [("contiguous", (4, 3001)), ("channel-slices", (3, 63))], ids=_layout_ids)
def test_gaussian_kl_extreme_values(poison, case, dtype, reduction):
    # float16 gradients overflow here (|d/dlog_scale_p| reaches exp(34)): forward only
    check_gaussian_kl(poison, *case, dtype, reduction, "cuda", extreme=True, check_bwd=dtype != torch.float16)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_loss_reductions_are_deterministic(poison, dtype):
    g = torch.Generator().manual_seed(7)
    mq, lq, mp, lp = (torch.randn(33, 40001, generator=g).to("cuda", dtype) for _ in range(4))
    runs = [poison.gaussian_kl_fwd(mq, lq, mp, lp, -7.0, 4.0, "sum") for _ in range(3)]
    runs += [poison.gaussian_nll_fwd(mq, mp, lq, -9.0, "mean") for _ in range(3)]
    assert all(torch.equal(runs[0], r) for r in runs[1:3])
    assert all(torch.equal(runs[3], r) for r in runs[4:])


# ---- GPU: fused WaveNet layer ----------------------------------------------------------------


def _layer_inputs(B, R, G, S, C, K, T, dtype, device, layout, g):
    """(x, w_dil, b_dil, w_res, b_res, w_skip, b_skip, h, w_cond); 'strided' makes every tensor a view."""

    def rnd(*s, scale=1.0):
        return torch.randn(*s, generator=g, dtype=torch.float64) * scale

    strided = layout == "strided"
    sw1, sw2 = 1 / math.sqrt(K * R + C), 1 / math.sqrt(G // 2)
    if strided:
        x = rnd(B, R + 3, 2 * T)[:, 1 : R + 1, ::2]
        w_dil = rnd(G, K, R, scale=sw1).permute(0, 2, 1)
        w_res = rnd(G // 2, R, scale=sw2).t()
        w_skip = rnd(S, G // 2 + 5, scale=sw2)[:, 2 : G // 2 + 2]
        h = rnd(B, T, C).transpose(1, 2) if C else None
        w_cond = rnd(C, G, scale=sw1).t() if C else None
        b_dil, b_res, b_skip = (rnd(2 * n, scale=0.1)[::2] for n in (G, R, S))
    else:
        x = rnd(B, R, T)
        w_dil = rnd(G, R, K, scale=sw1)
        w_res = rnd(R, G // 2, scale=sw2)
        w_skip = rnd(S, G // 2, scale=sw2)
        h = rnd(B, C, T) if C else None
        w_cond = rnd(G, C, scale=sw1) if C else None
        b_dil, b_res, b_skip = (rnd(n, scale=0.1) for n in (G, R, S))
    return [None if t is None else _move(t, device, dtype) for t in (x, w_dil, b_dil, w_res, b_res, w_skip, b_skip,
                                                                     h, w_cond)]


# (B, R, G, S, C, K, T, dilation, causal)
LAYER_CASES = [
    (2, 64, 128, 64, 80, 3, 1000, 4, True),    # student flow layer with mel conditioning, ragged last tile
    (1, 5, 14, 7, 0, 2, 63, 1, True),          # odd channel counts, no conditioning, K=2
    (3, 24, 40, 20, 13, 3, 1, 2, False),       # T=1, non-causal
    (2, 17, 34, 33, 9, 5, 129, 3, False),      # K=5 non-causal, channels not multiples of 16
    (1, 32, 64, 48, 0, 3, 300, 512, True),     # dilation larger than T: outer taps read only padding
    (2, 128, 256, 128, 80, 3, 257, 8, True),   # teacher-sized: > 48 KB shared memory
    (1, 512, 256, 24, 0, 3, 77, 1, True),      # too big for the 64-sample tile: 32-sample tile
]


def _layer_id(case):
    B, R, G, S, C, K, T, d, causal = case
    return f"B{B}-R{R}-G{G}-S{S}-C{C}-K{K}-T{T}-d{d}-{'causal' if causal else 'centered'}"


def check_wavenet_layer(ops, case, dtype, layout, device):
    from clarinet.ops.wavenet_layer import wavenet_layer_ref

    B, R, G, S, C, K, T, dilation, causal = case
    g = torch.Generator().manual_seed(_seed("layer", case, str(dtype), layout))
    x, w_dil, b_dil, w_res, b_res, w_skip, b_skip, h, w_cond = _layer_inputs(B, R, G, S, C, K, T, dtype, device,
                                                                             layout, g)
    out, skip = ops.wavenet_layer_fwd(x, w_dil, b_dil, w_res, b_res, w_skip, b_skip, h, w_cond, dilation, causal)
    ref_out, ref_skip = wavenet_layer_ref(
        *(t.double() for t in (x, w_dil, b_dil, w_res, b_res, w_skip, b_skip)), dilation=dilation,
        h=None if h is None else h.double(), w_cond=None if w_cond is None else w_cond.double(), causal=causal,
        compute_dtype=torch.float64)
    assert out.dtype == dtype and skip.dtype == dtype
    assert out.shape == (B, R, T) and skip.shape == (B, S, T)
    assert_close(out, ref_out, dtype, "out")
    assert_close(skip, ref_skip, dtype, "skip")


@pytest.mark.gpu
@pytest.mark.parametrize("layout", ["contiguous", "strided"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", LAYER_CASES, ids=_layer_id)
def test_wavenet_layer_matches_reference(poison, case, dtype, layout):
    check_wavenet_layer(poison, case, dtype, layout, "cuda")


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_wavenet_layer_rejects_channels_beyond_shared_memory(poison, dtype):
    g = torch.Generator().manual_seed(3)
    # K*R = 3*2048: the smallest tile needs far more than any GPU's shared memory per block
    args = _layer_inputs(1, 2048, 32, 16, 0, 3, 5, dtype, "cuda", "contiguous", g)
    with pytest.raises(ValueError, match="shared memory"):
        poison.wavenet_layer_fwd(*args, 1, True)


@pytest.mark.gpu
def test_wavenet_layer_runs_on_the_current_stream(poison):
    g = torch.Generator().manual_seed(11)
    args = _layer_inputs(2, 16, 32, 16, 8, 3, 200, torch.float16, "cuda", "contiguous", g)
    expected = poison.wavenet_layer_fwd(*args, 2, True)
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        got = poison.wavenet_layer_fwd(*args, 2, True)
    stream.synchronize()
    assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])
