"""gaussian_kl: fast backends against a float64 reference, forward and backward."""
import pytest
import torch

from clarinet.ops import gaussian_kl, gaussian_kl_ref

from _backends import FAST_BACKENDS, backend_device, poison_outputs
from _inputs import LAYOUTS, loss_inputs, seed_of
from _tolerances import assert_close

pytestmark = pytest.mark.triton  # Triton kernels: on the GPU when there is one (conftest)

NAMES = ("mean_q", "log_scale_q", "mean_p", "log_scale_p")


def kl_float64(mq, lq, mp, lp, log_scale_min, reg_weight, reduction, reg_raw=False):
    """The issue's formula, verbatim, in float64 (independent of the reference's stable form);
    ``reg_raw``: the regulariser on the raw log-scales (the peers' reading)."""
    ins = [t.detach().double().requires_grad_(t.requires_grad) for t in (mq, lq, mp, lp)]
    mq, lq_raw, mp, lp_raw = ins
    lq = torch.clamp(lq_raw, min=log_scale_min)
    lp = torch.clamp(lp_raw, min=log_scale_min)
    reg = (lp_raw - lq_raw) ** 2 if reg_raw else (lp - lq) ** 2
    kl = lp - lq + (torch.exp(2 * lq) + (mq - mp) ** 2) / (2 * torch.exp(2 * lp)) - 0.5 + reg_weight * reg
    return {"mean": kl.mean, "sum": kl.sum, "none": lambda: kl}[reduction](), ins


@pytest.mark.parametrize("backend", FAST_BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("layout,shape", LAYOUTS)
def test_matches_float64(backend, dtype, reduction, layout, shape, monkeypatch):
    device = backend_device(backend)
    poison_outputs(monkeypatch)
    mq, lq, mp, lp = loss_inputs(4, layout, shape, dtype, device, seed_of(layout, shape, reduction, dtype))
    # log-scales ~N(0, 0.75^2) floored at -1: the floor is active for ~9% of
    # elements and sigma_q/sigma_p stays small enough for float16 gradients
    inputs = [t.detach().requires_grad_() for t in (mq, lq * 0.75, mp, lp * 0.75)]
    kw = dict(log_scale_min=-1.0, reg_weight=4.0, reduction=reduction)
    out = gaussian_kl(*inputs, **kw, backend=backend)
    ref, ref_inputs = kl_float64(*inputs, -1.0, 4.0, reduction)
    assert out.dtype == torch.float32
    assert_close(out, ref, torch.float32, "kl")
    grad = torch.randn(out.shape, dtype=torch.float32, device=device)
    grads = torch.autograd.grad(out, inputs, grad)
    ref_grads = torch.autograd.grad(ref, ref_inputs, grad.double())
    for name, g, r, t in zip(NAMES, grads, ref_grads, inputs):
        assert g.dtype == t.dtype and g.shape == t.shape
        assert_close(g, r, dtype, f"d{name}")


def extreme_inputs(device, seed=7):
    """Log-scales anywhere in [-7, 10], mean gaps up to 1e3, plus the corners."""
    g = torch.Generator().manual_seed(seed)
    n = 4096
    lq = torch.rand(n, generator=g) * 17 - 7
    lp = torch.rand(n, generator=g) * 17 - 7
    mq = torch.rand(n, generator=g) * 2e3 - 1e3
    mp = torch.zeros(n)
    corners = torch.tensor([[-7.0, 10.0], [10.0, -7.0], [-7.0, -7.0], [10.0, 10.0]])
    lq[:4], lp[:4] = corners[:, 0], corners[:, 1]
    mq[:4] = 1e3
    return [t.to(device) for t in (mq, lq, mp, lp)]


@pytest.mark.parametrize("backend", [pytest.param("reference", id="reference"), *FAST_BACKENDS])
def test_extreme_values_stay_finite(backend):
    device = "cpu" if backend == "reference" else backend_device(backend)
    inputs = [t.requires_grad_() for t in extreme_inputs(device)]
    out = gaussian_kl(*inputs, reduction="none", backend=backend)
    ref, ref_inputs = kl_float64(*inputs, -7.0, 4.0, "none")
    assert_close(out, ref, torch.float32, "kl")
    grads = torch.autograd.grad(out.sum(), inputs)
    ref_grads = torch.autograd.grad(ref.sum(), ref_inputs)
    for name, g, r in zip(NAMES, grads, ref_grads):
        assert_close(g, r, torch.float32, f"d{name}")
    mean = gaussian_kl(*inputs, backend=backend)
    assert torch.isfinite(mean)


@pytest.mark.parametrize("backend", FAST_BACKENDS)
def test_floor_gradients_are_torch_clamps(backend):
    device = backend_device(backend)
    lq = torch.linspace(-9, 1, 50, device=device).requires_grad_()
    lp = torch.linspace(1, -9, 50, device=device).requires_grad_()
    mq = torch.randn(50, device=device)
    mp = torch.randn(50, device=device)
    out = gaussian_kl(mq, lq, mp, lp, reduction="sum", backend=backend)
    glq, glp = torch.autograd.grad(out, (lq, lp))
    assert (glq[lq.detach() < -7] == 0).all() and (glp[lp.detach() < -7] == 0).all()
    assert (glq[lq.detach() >= -7] != 0).any() and (glp[lp.detach() >= -7] != 0).any()


def test_kl_of_identical_gaussians_is_zero():
    m = torch.randn(10)
    s = torch.randn(10)
    assert gaussian_kl_ref(m, s, m, s, reduction="none").abs().max() < 1e-6


def test_reference_matches_float64_formula():
    ins = loss_inputs(4, "contiguous", (3, 40), torch.float32, "cpu", 1)
    for reduction in ("mean", "sum", "none"):
        out = gaussian_kl_ref(*ins, reduction=reduction)
        ref, _ = kl_float64(*ins, -7.0, 4.0, reduction)
        assert_close(out, ref, torch.float32, reduction)


@pytest.mark.parametrize("backend", [pytest.param("reference", id="reference"), *FAST_BACKENDS])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_reg_raw_matches_float64(backend, reduction, monkeypatch):
    """reg_raw=True: the regulariser on the raw log-scales, forward and every gradient, with the floor
    active for about a third of the elements (there the student still gets -2 * reg_weight * (lp - lq))."""
    device = "cpu" if backend == "reference" else backend_device(backend)
    poison_outputs(monkeypatch)
    g = torch.Generator().manual_seed(11)
    mq, mp = (torch.randn(3, 67, generator=g) for _ in range(2))
    lq, lp = (torch.randn(3, 67, generator=g) * 0.8 - 0.6 for _ in range(2))
    inputs = [t.to(device).requires_grad_() for t in (mq, lq, mp, lp)]
    kw = dict(log_scale_min=-1.0, reg_weight=4.0, reduction=reduction)
    out = gaussian_kl(*inputs, **kw, backend=backend, reg_raw=True)
    ref, ref_inputs = kl_float64(*inputs, -1.0, 4.0, reduction, reg_raw=True)
    assert_close(out, ref, torch.float32, "kl")
    floored = gaussian_kl(*inputs, **kw, backend=backend)  # the default reading differs where the floor acts
    assert not torch.allclose(out, floored)
    grad = torch.randn(out.shape, dtype=torch.float32, generator=g).to(device)
    grads = torch.autograd.grad(out, inputs, grad)
    ref_grads = torch.autograd.grad(ref, ref_inputs, grad.double())
    for name, gr, r in zip(NAMES, grads, ref_grads):
        assert_close(gr, r, torch.float32, f"d{name}")
    below = inputs[1].detach() < -1.0
    assert below.float().mean() > 0.2
    glq_default = torch.autograd.grad(floored, inputs[1], grad)[0]
    assert (glq_default[below] == 0).all() and (grads[1][below] != 0).all()
    with pytest.raises(TypeError, match="reg_raw: expected a bool"):
        gaussian_kl(*inputs, backend=backend, reg_raw=1)
