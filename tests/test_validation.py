"""Bad input gets a ValueError/TypeError that names the argument, never a crash."""
import pytest
import torch

from clarinet.ops import gaussian_kl, gaussian_nll, wavenet_layer

B, R, G, S, C, K, T = 2, 4, 6, 5, 3, 2, 11


def layer_args(**over):
    args = dict(
        x=torch.randn(B, R, T), w_dil=torch.randn(G, R, K), b_dil=torch.randn(G), w_res=torch.randn(R, G // 2),
        b_res=torch.randn(R), w_skip=torch.randn(S, G // 2), b_skip=torch.randn(S),
    )
    kw = dict(dilation=2, h=torch.randn(B, C, T), w_cond=torch.randn(G, C), causal=True, backend="triton")
    for k, v in over.items():
        (args if k in args else kw)[k] = v
    return args, kw


LAYER_CASES = {
    "x rank": (dict(x=torch.randn(R, T)), ValueError, "x"),
    "x integer": (dict(x=torch.ones(B, R, T, dtype=torch.int64)), TypeError, "x"),
    "x not a tensor": (dict(x=[[1.0]]), TypeError, "x"),
    "w_dil channels": (dict(w_dil=torch.randn(G, R + 1, K)), ValueError, "w_dil"),
    "G odd": (dict(w_dil=torch.randn(G + 1, R, K), b_dil=torch.randn(G + 1)), ValueError, "even"),
    "b_dil shape": (dict(b_dil=torch.randn(G + 2)), ValueError, "b_dil"),
    "w_res shape": (dict(w_res=torch.randn(R, G)), ValueError, "w_res"),
    "b_res shape": (dict(b_res=torch.randn(R + 1)), ValueError, "b_res"),
    "w_skip shape": (dict(w_skip=torch.randn(S, G)), ValueError, "w_skip"),
    "b_skip shape": (dict(b_skip=torch.randn(S + 1)), ValueError, "b_skip"),
    "h without w_cond": (dict(w_cond=None), ValueError, "w_cond"),
    "h time": (dict(h=torch.randn(B, C, T + 1)), ValueError, "h"),
    "h batch": (dict(h=torch.randn(B + 1, C, T)), ValueError, "h"),
    "w_cond channels": (dict(w_cond=torch.randn(G, C + 1)), ValueError, "w_cond"),
    "dilation 0": (dict(dilation=0), ValueError, "dilation"),
    "dilation float": (dict(dilation=1.5), ValueError, "dilation"),
    "K even non-causal": (dict(causal=False), ValueError, "odd"),
    "causal not bool": (dict(causal="yes"), TypeError, "causal"),
    "dtype mismatch": (dict(b_res=torch.randn(R, dtype=torch.float64)), TypeError, "b_res"),
    "device mismatch": (dict(b_res=torch.randn(R, device="meta")), ValueError, "b_res"),
    "unknown backend": (dict(backend="fast"), ValueError, "backend"),
}


@pytest.mark.parametrize("case", LAYER_CASES)
def test_wavenet_layer_bad_input(case):
    over, exc, words = LAYER_CASES[case]
    args, kw = layer_args(**over)
    with pytest.raises(exc, match=words):
        wavenet_layer(*args.values(), **kw)


@pytest.mark.parametrize("backend", ["reference", "triton"])
@pytest.mark.parametrize("empty", ["batch", "time"])
def test_wavenet_layer_empty_input_works(backend, empty):
    b, t = (0, T) if empty == "batch" else (B, 0)
    args, kw = layer_args(x=torch.randn(b, R, t), h=torch.randn(b, C, t), backend=backend)
    for v in args.values():
        v.requires_grad_()
    out, skip = wavenet_layer(*args.values(), **kw)
    assert out.shape == (b, R, t) and skip.shape == (b, S, t)
    (out.sum() + skip.sum()).backward()
    assert args["w_dil"].grad is not None and (args["w_dil"].grad == 0).all()


LOSS_CASES = {
    "shape mismatch": (lambda x: (x, x[:, :-1], x), {}, ValueError, "mean"),
    "integer dtype": (lambda x: (x, x, x.long()), {}, TypeError, "log_scale"),
    "dtype mismatch": (lambda x: (x, x.half(), x), {}, TypeError, "mean"),
    "device mismatch": (lambda x: (x, x, x.to("meta")), {}, ValueError, "log_scale"),
    "bad reduction": (lambda x: (x, x, x), {"reduction": "avg"}, ValueError, "reduction"),
    "log_scale_min inf": (lambda x: (x, x, x), {"log_scale_min": float("-inf")}, ValueError, "log_scale_min"),
    "log_scale_min str": (lambda x: (x, x, x), {"log_scale_min": "-9"}, TypeError, "log_scale_min"),
    "not a tensor": (lambda x: (x, 0.0, x), {}, TypeError, "mean"),
}


@pytest.mark.parametrize("case", LOSS_CASES)
def test_gaussian_nll_bad_input(case):
    make, kw, exc, words = LOSS_CASES[case]
    with pytest.raises(exc, match=words):
        gaussian_nll(*make(torch.randn(3, 8)), **kw, backend="triton")


def test_gaussian_kl_bad_input():
    x = torch.randn(3, 8)
    with pytest.raises(ValueError, match="log_scale_p"):
        gaussian_kl(x, x, x, x[:2])
    with pytest.raises(TypeError, match="mean_p"):
        gaussian_kl(x, x, x.int(), x)
    with pytest.raises(ValueError, match="reg_weight"):
        gaussian_kl(x, x, x, x, reg_weight=float("nan"))
    with pytest.raises(ValueError, match="reg_weight: expected a number >= 0"):
        gaussian_kl(x, x, x, x, reg_weight=-1.0)
    assert torch.isfinite(gaussian_kl(x, x, x, x, reg_weight=0.0))
