"""Training losses: teacher likelihood, distillation (reverse/forward KL + STFT), frozen teacher,
Triton vs reference, and a short convergence check."""
import copy
import math

import pytest
import torch

from clarinet.audio import AudioConfig, log_mel, stft_loss
from clarinet.losses import KL_KINDS, distillation_loss, teacher_loss
from clarinet.models import GaussianIAF, GaussianWaveNet
from clarinet.ops import gaussian_kl_ref

C, STRIDES, HOP = 8, (3, 4), 12
# a small STFT for the short test signals (the default FFT 2048 needs more than 1024 samples)
SMALL_STFT = AudioConfig(n_fft=64, win_length=48, hop_length=HOP, n_mels=C)


def tiny_teacher(backend="reference", seed=0, **kw):
    torch.manual_seed(seed)
    cfg = dict(layers=3, cycle=3, residual_channels=8, gate_channels=16, skip_channels=8, kernel_size=2,
               n_mels=C, upsample_strides=STRIDES, backend=backend)
    cfg.update(kw)
    return perturb(GaussianWaveNet(**cfg), seed)


def tiny_student(backend="reference", seed=1, **kw):
    torch.manual_seed(seed)
    cfg = dict(flows=2, layers_per_flow=3, cycle=3, residual_channels=8, gate_channels=16, skip_channels=8,
               kernel_size=3, n_mels=C, upsample_strides=STRIDES, backend=backend)
    cfg.update(kw)
    return perturb(GaussianIAF(**cfg), seed)


def perturb(model, seed, scale=0.05):
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)
    return model


def batch(B=2, frames=8, seed=2):
    g = torch.Generator().manual_seed(seed)
    audio = torch.randn(B, frames * HOP, generator=g) * 0.3
    mel = torch.randn(B, C, frames, generator=g)
    noise = torch.randn(B, frames * HOP, generator=g)
    return audio, mel, noise


def grads(model):
    return {n: p.grad for n, p in model.named_parameters()}


def dense_grads(model):
    """Gradients with None as zeros: each stack's last residual projection feeds nothing, so the
    reference (autograd) leaves its gradient None where the Triton backward writes zeros."""
    return {n: torch.zeros_like(p) if p.grad is None else p.grad for n, p in model.named_parameters()}


# ----------------------------------------------------------------------------------------------

def test_teacher_loss_equals_float64_formula():
    m = tiny_teacher()
    audio, mel, _ = batch()
    loss = teacher_loss(m, audio, mel, log_scale_min=-2.0)
    mean, log_scale = m(audio, mel)
    mean, log_scale, x = mean.double(), log_scale.double(), audio.double()
    s = torch.clamp(log_scale, min=-2.0)
    expected = (0.5 * math.log(2 * math.pi) + s + 0.5 * ((x - mean) / torch.exp(s)) ** 2).mean()
    assert loss.dim() == 0
    torch.testing.assert_close(loss.double(), expected, rtol=1e-6, atol=1e-7)
    loss.backward()
    assert all(p.grad is not None for n, p in m.named_parameters() if not n.startswith("wavenet.layers.2.w_res")
               and not n.startswith("wavenet.layers.2.b_res"))


@pytest.mark.parametrize("kind", KL_KINDS)
def test_distillation_terms(kind):
    student, teacher = tiny_student(), tiny_teacher()
    audio, mel, noise = batch()
    out = distillation_loss(student, teacher, audio, mel, noise=noise, kind=kind, kl_weight=0.5, stft_weight=2.0,
                            reg_weight=3.0, log_scale_min=-1.0, audio_config=SMALL_STFT)
    assert set(out) == {"loss", "kl", "stft"}
    # explicit: student on the noise, teacher on the student's sample, float64 KL formula
    x, mq, lq = student(noise, mel)
    mp, lp = teacher(x, mel)
    if kind == "forward":
        mq, lq, mp, lp = mp, lp, mq, lq
    kl = gaussian_kl_ref(mq, lq, mp, lp, log_scale_min=-1.0, reg_weight=3.0, compute_dtype=torch.float64)
    stft = stft_loss(x, audio, SMALL_STFT)
    torch.testing.assert_close(out["kl"].double(), kl, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["stft"], stft)
    torch.testing.assert_close(out["loss"], 0.5 * out["kl"] + 2.0 * out["stft"])


def test_distillation_kl_reg_raw_and_cli_flag():
    # kl_reg_raw reaches gaussian_kl(reg_raw=True); train-student --kl-reg-raw sets the config field
    from clarinet.cli import _train_settings, build_parser
    from clarinet.train import ConfigError, StudentConfig

    student, teacher = tiny_student(), tiny_teacher()
    audio, mel, noise = batch()
    out = distillation_loss(student, teacher, audio, mel, noise=noise, stft_weight=0.0, log_scale_min=-1.0,
                            kl_reg_raw=True)
    x, mq, lq = student(noise, mel)
    mp, lp = teacher(x, mel)
    kl = gaussian_kl_ref(mq, lq, mp, lp, log_scale_min=-1.0, compute_dtype=torch.float64, reg_raw=True)
    torch.testing.assert_close(out["kl"].double(), kl, rtol=1e-5, atol=1e-6)
    args = build_parser().parse_args(["train-student", "DATA", "--teacher", "t.pt", "--out", "o", "--kl-reg-raw"])
    assert _train_settings(args)[0]["kl_reg_raw"] is True
    args = build_parser().parse_args(["train-student", "DATA", "--teacher", "t.pt", "--out", "o"])
    assert "kl_reg_raw" not in _train_settings(args)[0] and StudentConfig.kl_reg_raw is False
    with pytest.raises(ConfigError, match="kl_reg_raw"):
        StudentConfig.from_sources(data_dir="d", out_dir="o", teacher="t.pt", kl_reg_raw="yes")


def test_distillation_kinds_differ_and_bad_kind():
    student, teacher = tiny_student(), tiny_teacher()
    audio, mel, noise = batch()
    kw = dict(noise=noise, stft_weight=0.0)
    rev = distillation_loss(student, teacher, audio, mel, kind="reverse", **kw)
    fwd = distillation_loss(student, teacher, audio, mel, kind="forward", **kw)
    assert rev["stft"].item() == 0.0 and torch.equal(rev["loss"], rev["kl"])
    assert not torch.allclose(rev["kl"], fwd["kl"])
    with pytest.raises(ValueError, match="kind"):
        distillation_loss(student, teacher, audio, mel, kind="symmetric", **kw)
    with pytest.raises(ValueError, match="noise"):
        distillation_loss(student, teacher, audio, mel, noise=noise[:, :-1])


@pytest.mark.parametrize("kind", KL_KINDS)
def test_distillation_gradients_skip_the_teacher(kind):
    student, teacher = tiny_student(), tiny_teacher()
    audio, mel, noise = batch()
    flags = {n: p.requires_grad for n, p in teacher.named_parameters()}
    out = distillation_loss(student, teacher, audio, mel, noise=noise, kind=kind, audio_config=SMALL_STFT)
    out["loss"].backward()
    assert all(p.grad is None for p in teacher.parameters()), "the teacher's parameters got a gradient"
    assert {n: p.requires_grad for n, p in teacher.named_parameters()} == flags, "the teacher was modified"
    got = grads(student)
    # every student parameter but each flow's last residual projection (it feeds nothing) gets one
    unused = {f"flows.{i}.layers.2.{w}" for i in range(2) for w in ("w_res", "b_res")}
    for n, g in got.items():
        assert (g is None) == (n in unused), n
    # the same loss with a frozen deep copy of the teacher gives the same student gradients, and
    # those include the path through the teacher (detaching its output changes them)
    frozen = copy.deepcopy(teacher).requires_grad_(False)
    student2 = copy.deepcopy(student)
    for p in student2.parameters():
        p.grad = None
    out2 = distillation_loss(student2, frozen, audio, mel, noise=noise, kind=kind, audio_config=SMALL_STFT)
    out2["loss"].backward()
    torch.testing.assert_close(out2["loss"], out["loss"])
    for n, p in student2.named_parameters():
        if got[n] is not None:
            torch.testing.assert_close(p.grad, got[n], rtol=1e-5, atol=1e-7)

    class Detached(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x, mel):
            return self.m(x.detach(), mel)

    student3 = copy.deepcopy(student)
    for p in student3.parameters():
        p.grad = None
    distillation_loss(student3, Detached(frozen), audio, mel, noise=noise, kind=kind,
                      stft_weight=0.0)["loss"].backward()
    student4 = copy.deepcopy(student3)
    for p in student4.parameters():
        p.grad = None
    distillation_loss(student4, frozen, audio, mel, noise=noise, kind=kind, stft_weight=0.0)["loss"].backward()
    w3, w4 = student3.flows[0].w_in.grad, student4.flows[0].w_in.grad
    assert not torch.allclose(w3, w4), "no gradient flowed through the teacher to the student's sample"


# ----------------------------------------------------------------------------------------------
# Triton (interpreter on CPU) vs reference, tiny models

def test_teacher_loss_triton_matches_reference(triton_device):
    audio, mel, _ = (t.to(triton_device) for t in batch(B=1, frames=25))  # T = 300
    ref = tiny_teacher("reference").to(triton_device)
    tri = tiny_teacher("triton").to(triton_device)
    l_ref = teacher_loss(ref, audio, mel)
    l_tri = teacher_loss(tri, audio, mel)
    l_ref.backward()
    l_tri.backward()
    torch.testing.assert_close(l_tri, l_ref, rtol=1e-5, atol=1e-6)
    g_ref, g_tri = dense_grads(ref), dense_grads(tri)
    for n, g in g_ref.items():
        torch.testing.assert_close(g_tri[n], g, rtol=1e-4, atol=1e-6, msg=n)


def test_distillation_triton_matches_reference(triton_device):
    audio, mel, noise = (t.to(triton_device) for t in batch(B=1, frames=25))
    results = {}
    for backend in ("reference", "triton"):
        student = tiny_student(backend).to(triton_device)
        teacher = tiny_teacher(backend).to(triton_device)
        out = distillation_loss(student, teacher, audio, mel, noise=noise, audio_config=SMALL_STFT)
        out["loss"].backward()
        assert all(p.grad is None for p in teacher.parameters())
        results[backend] = ({k: v.detach() for k, v in out.items()}, dense_grads(student))
    (o_ref, g_ref), (o_tri, g_tri) = results["reference"], results["triton"]
    for k in o_ref:
        torch.testing.assert_close(o_tri[k], o_ref[k], rtol=1e-5, atol=1e-6, msg=k)
    for n, g in g_ref.items():
        torch.testing.assert_close(g_tri[n], g, rtol=1e-4, atol=1e-6, msg=n)


# ----------------------------------------------------------------------------------------------


def test_teacher_converges_on_a_tone(one_thread):
    cfg = AudioConfig()
    sr, T = cfg.sample_rate, 2400  # 0.1 s, 8 frames of hop 300
    t = torch.arange(T) / sr
    audio = (0.5 * torch.sin(2 * math.pi * 440.0 * t))[None]
    mel = log_mel(audio, cfg)
    assert mel.shape == (1, 80, 8)
    torch.manual_seed(0)
    m = GaussianWaveNet(layers=4, cycle=4, residual_channels=16, gate_channels=32, skip_channels=16,
                        backend="reference")
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    losses = []
    for _ in range(150):
        loss = teacher_loss(m, audio, mel)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    start, end = losses[0], torch.tensor(losses[-10:]).median().item()
    # a tone is predictable from its past: from about 1.1 nats per sample to about -3
    assert math.isfinite(end) and end < start - 2.0, f"teacher loss {start:.3f} -> {end:.3f}"
