"""Triton kernels of the fused WaveNet residual layer vs ``wavenet_layer_ref``.

Forward and every gradient are compared on fresh random inputs; the same random upstream gradients go
to autograd on the reference and to ``wavenet_layer_bwd``. Outputs and scratch are poisoned with NaN
(``clarinet._alloc.POISON``) so an element a kernel never writes fails the comparison. Under the Triton interpreter
(no GPU) shapes are kept small; larger shapes and bfloat16 are GPU-only (``gpu`` marker).
"""
from __future__ import annotations

import importlib

import pytest
import torch

pytest.importorskip("triton")

from _tolerances import assert_close  # noqa: E402
from clarinet import _alloc  # noqa: E402
from clarinet._compat import matmul_tf32, tf32_disabled  # noqa: E402
from clarinet.ops.wavenet_layer import tap_offsets, wavenet_layer_ref  # noqa: E402

pytestmark = pytest.mark.triton  # Triton kernels: on the GPU when there is one (conftest)

KW = importlib.import_module("clarinet.kernels.wavenet_layer")


@pytest.fixture(autouse=True)
def _poison(monkeypatch):
    monkeypatch.setattr(_alloc, "POISON", True)


def _randn(shape, *, scale=1.0, strided=False, dtype=torch.float32, device="cpu"):
    """N(0, scale^2) weights or biases; ``strided``: a view of a wider or transposed tensor.

    Biases (1-D): every other element of a tensor twice as long. Weights (2-D): a transposed tensor.
    The view is taken after the dtype/device conversion (``.to`` would make a sliced view contiguous).
    """
    if not strided:
        return (torch.randn(shape) * scale).to(dtype=dtype, device=device)
    if len(shape) == 1:
        return (torch.randn(2 * shape[0]) * scale).to(dtype=dtype, device=device)[::2]
    return (torch.randn(shape[1], shape[0]) * scale).to(dtype=dtype, device=device).t()


def _act(shape, *, strided, kind, dtype, device):
    """(B, C, T) activations; ``strided``: "slice" = every other step of a (B, C, 2T) tensor,
    "transpose" = a (B, T, C) tensor transposed."""
    B, C, T = shape
    if not strided:
        return torch.randn(B, C, T).to(dtype=dtype, device=device)
    if kind == "slice":
        return torch.randn(B, C, 2 * T).to(dtype=dtype, device=device)[..., ::2]
    return torch.randn(B, T, C).to(dtype=dtype, device=device).transpose(1, 2)


def _conv_weight(G, R, K, *, strided, scale, dtype, device):
    """(G, R, K) dilated-conv weight; ``strided``: a permuted (K, G, R) tensor."""
    if strided:
        return (torch.randn(K, G, R) * scale).to(dtype=dtype, device=device).permute(1, 2, 0)
    return (torch.randn(G, R, K) * scale).to(dtype=dtype, device=device)


def _make_inputs(B, R, G, S, C, K, T, *, strided, dtype, device):
    G2 = G // 2
    fan_in = R * K + C  # keeps the pre-activations ~N(0, 1): tanh/sigmoid not saturated
    x = _act((B, R, T), strided=strided, kind="slice", dtype=dtype, device=device)
    w_dil = _conv_weight(G, R, K, strided=strided, scale=fan_in ** -0.5, dtype=dtype, device=device)
    b_dil = _randn((G,), scale=0.5, strided=strided, dtype=dtype, device=device)
    w_res = _randn((R, G2), scale=G2 ** -0.5, strided=strided, dtype=dtype, device=device)
    b_res = _randn((R,), scale=0.5, strided=strided, dtype=dtype, device=device)
    w_skip = _randn((S, G2), scale=G2 ** -0.5, strided=strided, dtype=dtype, device=device)
    b_skip = _randn((S,), scale=0.5, strided=strided, dtype=dtype, device=device)
    if C:
        h = _act((B, C, T), strided=strided, kind="transpose", dtype=dtype, device=device)
        w_cond = _randn((G, C), scale=fan_in ** -0.5, strided=strided, dtype=dtype, device=device)
    else:
        h = w_cond = None
    return x, w_dil, b_dil, w_res, b_res, w_skip, b_skip, h, w_cond


def _check(B, R, G, S, C, K, dilation, T, causal, strided, dtype, device):
    torch.manual_seed(hash((B, R, G, S, C, K, dilation, T, causal, strided, str(dtype))) % (2**31))
    x, w_dil, b_dil, w_res, b_res, w_skip, b_skip, h, w_cond = _make_inputs(
        B, R, G, S, C, K, T, strided=strided, dtype=dtype, device=device
    )
    grad_out = _act((B, R, T), strided=strided, kind="slice", dtype=dtype, device=device)
    grad_skip = _act((B, S, T), strided=strided, kind="transpose", dtype=dtype, device=device)
    inputs = [x, w_dil, b_dil, w_res, b_res, w_skip, b_skip] + ([h, w_cond] if C else [])
    names = ["x", "w_dil", "b_dil", "w_res", "b_res", "w_skip", "b_skip"] + (["h", "w_cond"] if C else [])
    before = [t.clone() for t in inputs]
    if strided:
        for name, t in zip(names + ["grad_out", "grad_skip"], inputs + [grad_out, grad_skip]):
            assert not t.is_contiguous() or min(t.shape) == 1, f"{name} should be non-contiguous"

    # reference: float32 from the same (possibly fp16) values, autograd for the gradients
    leaves = [t.detach().float().requires_grad_() for t in inputs]
    hr, wcr = (leaves[7], leaves[8]) if C else (None, None)
    out_ref, skip_ref = wavenet_layer_ref(*leaves[:7], dilation=dilation, h=hr, w_cond=wcr, causal=causal)
    grads_ref = torch.autograd.grad((out_ref, skip_ref), leaves, (grad_out.float(), grad_skip.float()))

    out, skip = KW.wavenet_layer_fwd(x, w_dil, b_dil, w_res, b_res, w_skip, b_skip, h, w_cond, dilation, causal)
    for name, got, ref in (("out", out, out_ref), ("skip", skip, skip_ref)):
        assert got.dtype == dtype and got.is_contiguous(), name
        assert_close(got, ref.detach(), dtype, name)

    grads = KW.wavenet_layer_bwd(
        grad_out, grad_skip, x, w_dil, b_dil, w_res, b_res, w_skip, b_skip, h, w_cond, dilation, causal
    )
    assert len(grads) == len(inputs)
    for name, inp, got, ref in zip(names, inputs, grads, grads_ref):
        assert got.dtype == inp.dtype, f"d{name}: dtype {got.dtype} != {inp.dtype}"
        assert_close(got, ref, dtype, f"d{name}")
    # the launchers never write into their inputs
    for name, t, b in zip(names, inputs, before):
        assert torch.equal(t, b), f"{name} was modified"


# (B, R, G, S, C, K, dilation, T, causal): odd channel counts, T = 1 / below / above the receptive
# field / ragged last tile, several gate-channel chunks (G2 = 20 > BLOCK_G = 16 in the interpreter),
# several time splits of the weight-gradient reduction (T = 1030 > 1024 with B = 2).
CASES = [
    (2, 16, 32, 16, 0, 2, 1, 63, True),
    (1, 12, 20, 10, 7, 3, 1, 129, True),
    (2, 12, 40, 10, 7, 3, 2, 1030, True),
    (1, 16, 32, 16, 0, 3, 512, 129, True),
    (2, 12, 20, 10, 7, 3, 512, 1030, True),
    (1, 12, 20, 10, 7, 3, 512, 1030, False),
    (2, 8, 20, 24, 5, 3, 1, 1, False),
    (1, 12, 20, 10, 0, 5, 4, 129, False),
    (1, 32, 64, 32, 16, 2, 512, 63, True),
]


def _case_id(c):
    B, R, G, S, C, K, d, T, causal = c
    return f"B{B}-R{R}-G{G}-S{S}-C{C}-K{K}-d{d}-T{T}-{'causal' if causal else 'centered'}"


@pytest.mark.parametrize("case", CASES, ids=_case_id)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
@pytest.mark.parametrize("strided", [False, True], ids=["contiguous", "strided"])
def test_wavenet_layer_matches_reference(case, dtype, strided, device):
    _check(*case, strided=strided, dtype=dtype, device=device)


def test_tap_offsets():
    # tap k of output t reads input t + offset[k]: causal taps end at t, centred taps straddle it
    assert tap_offsets(2, 4, True) == [-4, 0]
    assert tap_offsets(3, 512, True) == [-1024, -512, 0]
    assert tap_offsets(3, 2, False) == [-2, 0, 2]
    assert tap_offsets(5, 1, False) == [-2, -1, 0, 1, 2]


def test_missing_upstream_gradient_is_zero(device):
    # grad_skip=None behaves as zeros (autograd may hand None for an unused output)
    torch.manual_seed(7)
    B, R, G, S, C, K, d, T = 1, 12, 20, 10, 0, 3, 2, 63
    inputs = _make_inputs(B, R, G, S, C, K, T, strided=False, dtype=torch.float32, device=device)
    grad_out = torch.randn(B, R, T, device=device)
    a = KW.wavenet_layer_bwd(grad_out, None, *inputs, d, True)
    b = KW.wavenet_layer_bwd(grad_out, torch.zeros(B, S, T, device=device), *inputs, d, True)
    for ga, gb in zip(a, b):
        assert torch.equal(ga, gb)


@pytest.mark.gpu
@pytest.mark.parametrize(
    "case",
    [(2, 12, 40, 10, 7, 3, 512, 1030, True), (1, 12, 20, 10, 0, 3, 4, 129, False)],
    ids=_case_id,
)
def test_wavenet_layer_bfloat16(case, device):
    _check(*case, strided=True, dtype=torch.bfloat16, device=device)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_wavenet_layer_large(dtype, device):
    # ClariNet student sizes: 64 residual / 128 gate / 64 skip channels, 80 mel bands, long audio
    _check(4, 64, 128, 64, 80, 3, 256, 24_000, True, strided=True, dtype=dtype, device=device)


def test_float32_dot_precision_follows_torch_tf32_setting():
    # float32 dots use TF32 only when PyTorch's own float32 matmuls would; the setting is restored
    before = torch.backends.cuda.matmul.fp32_precision
    with matmul_tf32(False):
        assert KW._dot_prec(torch.float32) == "ieee"
        with tf32_disabled():
            assert KW._dot_prec(torch.float32) == "ieee"
    with matmul_tf32(True):
        assert KW._dot_prec(torch.float32) == "tf32"
        assert KW._dot_prec(torch.float16) == "tf32"
        with tf32_disabled():
            assert KW._dot_prec(torch.float32) == "ieee"
            assert torch.backends.cudnn.conv.fp32_precision == "ieee"
        assert KW._dot_prec(torch.float32) == "tf32"
    assert torch.backends.cuda.matmul.fp32_precision == before
