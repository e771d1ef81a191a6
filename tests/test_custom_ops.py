"""torch.library registration: opcheck, and torch.compile(fullgraph=True) without graph breaks."""
import pytest
import torch

import clarinet
from clarinet.ops import gaussian_kl, gaussian_nll, wavenet_layer, wavenet_layer_ref

from _backends import backend_device

pytestmark = pytest.mark.triton  # Triton kernels: on the GPU when there is one (conftest)


def layer_inputs(device, cond=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    B, R, G, S, C, K, T = 2, 8, 12, 6, 5, 3, 37

    def rnd(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g) * scale).to(device)

    args = [rnd(B, R, T), rnd(G, R, K, scale=0.3), rnd(G, scale=0.1), rnd(R, G // 2, scale=0.3), rnd(R, scale=0.1),
            rnd(S, G // 2, scale=0.3), rnd(S, scale=0.1)]
    h, w_cond = (rnd(B, C, T), rnd(G, C, scale=0.3)) if cond else (None, None)
    return args, h, w_cond


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_opcheck_losses(reduction):
    device = backend_device("triton")
    x, m, s, t = (torch.randn(3, 41, device=device, requires_grad=i > 0) for i in range(4))
    torch.library.opcheck(torch.ops.clarinet.gaussian_nll.default, (x, m, s, -9.0, reduction, "triton"))
    for reg_raw in (False, True):
        torch.library.opcheck(torch.ops.clarinet.gaussian_kl.default, (x, m, s, t, -7.0, 4.0, reduction, reg_raw, "triton"))


@pytest.mark.parametrize("cond", [True, False], ids=["cond", "nocond"])
@pytest.mark.parametrize("causal", [True, False], ids=["causal", "centred"])
def test_opcheck_wavenet_layer(cond, causal):
    device = backend_device("triton")
    args, h, w_cond = layer_inputs(device, cond)
    args = [a.requires_grad_() for a in args]
    torch.library.opcheck(torch.ops.clarinet.wavenet_layer.default, (*args, h, w_cond, 3, causal, "triton"))


def test_fullgraph_compile_of_all_ops():
    """A function calling all three ops compiles with no graph break and gives the eager values."""
    device = backend_device("triton")
    args, h, w_cond = layer_inputs(device, seed=1)
    args = [a.requires_grad_() for a in args]
    target = torch.randn(2, 37, device=device)

    def step(args, h, w_cond, target):
        out, skip = wavenet_layer(*args, dilation=2, h=h, w_cond=w_cond, backend="triton")
        mean, log_scale = skip[:, 0], skip[:, 1]
        nll = gaussian_nll(target, mean, log_scale, backend="triton")
        kl = gaussian_kl(mean, log_scale, out[:, 0], out[:, 1], backend="triton")
        return nll + kl

    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    loss = compiled(args, h, w_cond, target)
    grads = torch.autograd.grad(loss, args)
    eager = step(args, h, w_cond, target)
    eager_grads = torch.autograd.grad(eager, args)
    torch.testing.assert_close(loss, eager)
    for g, e in zip(grads, eager_grads):
        torch.testing.assert_close(g, e)


def test_fullgraph_compile_inductor_losses():
    """Inductor too (it wraps the opaque ops; the elementwise glue around them is generated)."""
    device = backend_device("triton")
    x, m, s = (torch.randn(4, 33, device=device, requires_grad=i > 0) for i in range(3))

    def f(x, m, s):
        return gaussian_nll(x, m * 2, s, backend="triton") + gaussian_kl(m, s, x, s, backend="triton")

    out = torch.compile(f, fullgraph=True)(x, m, s)
    torch.testing.assert_close(out, f(x, m, s))


def test_public_api():
    assert clarinet.wavenet_layer is wavenet_layer
    assert clarinet.ops.wavenet_layer_ref is wavenet_layer_ref
    for fn in (gaussian_nll, gaussian_kl, wavenet_layer):
        assert "Equivalent to" in fn.__doc__ and "backend" in fn.__doc__
