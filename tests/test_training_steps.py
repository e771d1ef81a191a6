"""A tiny Gaussian WaveNet trained a few steps gives the same losses with Triton and the reference.

The model is a stack of wavenet_layer calls (dilations 1, 2, 4, conditioned), a 1x1 head giving
mean and log-scale, and the Gaussian NLL; then one distillation-style step through gaussian_kl.
"""
import pytest
import torch

from clarinet.ops import gaussian_kl, gaussian_nll, wavenet_layer

from _backends import backend_device

R, G, S, C, K, T, B = 8, 16, 8, 4, 2, 70, 2
DILATIONS = (1, 2, 4)


def init_params(seed, device="cpu"):
    g = torch.Generator().manual_seed(seed)

    def p(*shape, scale):
        return (torch.randn(*shape, generator=g) * scale).to(device).requires_grad_()

    layers = [dict(w_dil=p(G, R, K, scale=(R * K) ** -0.5), b_dil=p(G, scale=0.1), w_res=p(R, G // 2, scale=0.3),
                   b_res=p(R, scale=0.1), w_skip=p(S, G // 2, scale=0.3), b_skip=p(S, scale=0.1),
                   w_cond=p(G, C, scale=0.3)) for _ in DILATIONS]
    w_in = p(R, 1, scale=1.0)
    w_out = p(2, S, scale=0.1)
    return layers, w_in, w_out


def forward(params, audio, mel, backend):
    layers, w_in, w_out = params
    x = torch.einsum("ri,bit->brt", w_in, audio[:, None, :-1])  # predict sample t+1 from samples <= t
    skips = 0
    for d, lp in zip(DILATIONS, layers):
        x, skip = wavenet_layer(x, lp["w_dil"], lp["b_dil"], lp["w_res"], lp["b_res"], lp["w_skip"], lp["b_skip"],
                                dilation=d, h=mel[..., :-1], w_cond=lp["w_cond"], backend=backend)
        skips = skips + skip
    y = torch.einsum("os,bst->bot", w_out, torch.relu(skips))
    return y[:, 0], y[:, 1]


def train(backend, steps=4):
    device = backend_device(backend)
    torch.manual_seed(0)
    audio = torch.randn(B, T).to(device) * 0.5
    mel = torch.randn(B, C, T).to(device)
    params = init_params(1, device)
    leaves = [t for lp in params[0] for t in lp.values()] + [params[1], params[2]]
    opt = torch.optim.SGD(leaves, lr=0.05)
    losses = []
    for _ in range(steps):
        mean, log_scale = forward(params, audio, mel, backend)
        loss = gaussian_nll(audio[:, 1:], mean, log_scale, log_scale_min=-5.0, backend=backend)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    # one distillation-style step: a second (student) head against the trained (teacher) one
    with torch.no_grad():
        mean_p, log_scale_p = forward(params, audio, mel, "reference")
    mean_q, log_scale_q = forward(params, audio * 0.9, mel, backend)
    kl = gaussian_kl(mean_q, log_scale_q, mean_p, log_scale_p, backend=backend)
    kl.backward()
    losses.append(kl.item())
    # the last layer's residual output feeds nothing: autograd leaves its weights' grads None
    return losses, [torch.zeros_like(t) if t.grad is None else t.grad.clone() for t in leaves]


@pytest.mark.parametrize("backend", ["triton"])
def test_same_losses_as_reference(backend, triton_device):
    ref_losses, ref_grads = train("reference")
    losses, grads = train(backend)
    assert ref_losses[0] > ref_losses[3], f"training did not reduce the loss: {ref_losses}"
    torch.testing.assert_close(torch.tensor(losses), torch.tensor(ref_losses), rtol=1e-4, atol=1e-5)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g.cpu(), r.cpu(), rtol=1e-3, atol=1e-5)


def test_ops_follow_autocast():
    """Under autocast the layer computes in the autocast dtype and the losses in float32."""
    layers, _, _ = init_params(2)
    lp = {k: v.detach() for k, v in layers[0].items()}
    x = torch.randn(B, R, T)
    mel = torch.randn(B, C, T, dtype=torch.bfloat16)  # mixed dtypes, as autocast produces them
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, skip = wavenet_layer(x, lp["w_dil"], lp["b_dil"], lp["w_res"], lp["b_res"], lp["w_skip"], lp["b_skip"],
                                  dilation=2, h=mel, w_cond=lp["w_cond"], backend="reference")
        nll = gaussian_nll(x[:, 0], skip[:, 0], skip[:, 1], backend="reference")
        kl = gaussian_kl(skip[:, 0], skip[:, 1], x[:, 0], x[:, 1].float(), backend="reference")
    assert out.dtype == skip.dtype == torch.bfloat16
    assert nll.dtype == kl.dtype == torch.float32 and torch.isfinite(nll) and torch.isfinite(kl)
    ref_out, _ = wavenet_layer(x, lp["w_dil"], lp["b_dil"], lp["w_res"], lp["b_res"], lp["w_skip"], lp["b_skip"],
                               dilation=2, h=mel.float(), w_cond=lp["w_cond"], backend="reference")
    torch.testing.assert_close(out.float(), ref_out, rtol=0.05, atol=0.05)


def test_bf16_autocast_training_step_on_cpu():
    """A teacher-style step under bf16 autocast runs and its loss is near the float32 one."""
    device = "cpu"
    torch.manual_seed(0)
    audio = torch.randn(B, T, device=device) * 0.5
    mel = torch.randn(B, C, T, device=device)
    params = init_params(1, device)
    leaves = [t for lp in params[0] for t in lp.values()] + [params[1], params[2]]
    mean, log_scale = forward(params, audio, mel, "reference")
    loss32 = gaussian_nll(audio[:, 1:], mean, log_scale, log_scale_min=-5.0, backend="reference")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mean, log_scale = forward(params, audio, mel, "reference")
        loss16 = gaussian_nll(audio[:, 1:], mean, log_scale, log_scale_min=-5.0, backend="reference")
    loss16.backward()
    assert all(t.grad is None or torch.isfinite(t.grad).all() for t in leaves)
    assert abs(loss16.item() - loss32.item()) < 0.05 * abs(loss32.item()) + 0.05
