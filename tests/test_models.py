"""The vocoder models: upsampler, Gaussian WaveNet teacher (forward and incremental sampler), Gaussian IAF.

Tiny configurations (hop 12 instead of 300, a few channels and layers) keep the compute small;
presets are only built, to check their parameter shapes.
"""
import pytest
import torch
import torch.nn.functional as F

from clarinet.models import ConditionUpsampler, GaussianIAF, GaussianWaveNet, WaveNetStack

C = 8            # mel bands of the tiny models
STRIDES = (3, 4)
HOP = 12


def tiny_teacher(seed=0, **kw):
    torch.manual_seed(seed)  # the initialisation draws from the global generator
    cfg = dict(layers=6, cycle=3, residual_channels=8, gate_channels=16, skip_channels=8, kernel_size=2,
               n_mels=C, upsample_strides=STRIDES, backend="reference")
    cfg.update(kw)
    return GaussianWaveNet(**cfg)


def tiny_student(seed=0, **kw):
    torch.manual_seed(seed)
    cfg = dict(flows=3, layers_per_flow=3, cycle=3, residual_channels=8, gate_channels=16, skip_channels=8,
               kernel_size=3, n_mels=C, upsample_strides=STRIDES, backend="reference")
    cfg.update(kw)
    return GaussianIAF(**cfg)


def perturb(model, scale=0.1, seed=0):
    """Move every parameter off its (partly zero) initialisation, so no path is trivially zero."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)
    return model


def inputs(B, frames, seed=1, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(B, frames * HOP, generator=g) * 0.3).to(dtype)
    mel = torch.randn(B, C, frames, generator=g).to(dtype)
    return x, mel


def jacobian(f, x, mel):
    """Full Jacobian d f(x, mel)[0, t] / d x[0, t'] for x (1, T), as a (T, T) tensor.

    One backward pass: the batch holds T copies of the input (batch items are independent), and
    copy t's gradient is row t."""
    T = x.shape[1]
    xs = x.detach().expand(T, T).clone().requires_grad_()
    y = f(xs, mel.expand(T, *mel.shape[1:]))
    (g,) = torch.autograd.grad(y.diagonal().sum(), xs)
    return g


# ----------------------------------------------------------------------------------------------
# upsampler

def test_upsampler_length_and_frame_locality():
    up = ConditionUpsampler(n_mels=80, strides=(15, 20))
    assert up.hop_length == 300
    B, frames = 2, 7
    mel = torch.randn(B, 80, frames)
    h = up(mel)
    assert h.shape == (B, 80, frames * 300)
    for j in (0, 3, frames - 1):
        bumped = mel.clone()
        bumped[:, :, j] += 1.0
        diff = (up(bumped) - h).abs().sum(dim=(0, 1))
        touched = torch.nonzero(diff > 0).flatten()
        lo, hi = max(300 * j - 320, 0), min(300 * j + 300, frames * 300)
        assert touched.min().item() == lo and touched.max().item() == hi - 1, (j, touched.min(), touched.max())
        if 0 < j < frames - 1:  # centre of mass of the influence is at the frame's centre sample 300 j
            com = (diff * torch.arange(diff.numel())).sum() / diff.sum()
            assert abs(com.item() - 300 * j) < 30


def test_upsampler_starts_as_linear_interpolation():
    up = ConditionUpsampler(n_mels=5, strides=(3, 4))
    mel = torch.full((1, 5, 6), 2.0)
    h = up(mel)
    assert h.shape == (1, 5, 72)
    torch.testing.assert_close(h, torch.full_like(h, 2.0))  # every sample covered, first to last
    ramp = torch.arange(6.0).repeat(1, 5, 1) + 1.0  # positive: leaky ReLU is the identity
    h = up(ramp)[0, 0]
    assert torch.all(torch.diff(h) >= 0) and torch.all(torch.diff(h[12:-12]) > 0)  # interpolates the ramp
    # frame j's value lands at sample 12 j - 2.5 (each stage's even-length filter is centred half a
    # column early): frame 3 holds 4.0
    torch.testing.assert_close(h[33:35].mean(), torch.tensor(4.0))


def test_upsampler_bad_input():
    up = ConditionUpsampler(n_mels=8, strides=(3, 4))
    with pytest.raises(ValueError, match="mel"):
        up(torch.randn(1, 7, 3))
    with pytest.raises(ValueError, match="mel"):
        up(torch.randn(8, 3))
    with pytest.raises(ValueError, match="strides"):
        ConditionUpsampler(8, (3, 0))


# ----------------------------------------------------------------------------------------------
# teacher

def test_teacher_shapes_and_layers():
    m = tiny_teacher()
    x, mel = inputs(2, 5)
    mean, log_scale = m(x, mel)
    assert mean.shape == log_scale.shape == x.shape
    assert m.hop_length == HOP
    assert m.wavenet.dilations == [1, 2, 4, 1, 2, 4]
    assert m.receptive_field == 1 + 2 * (1 + 2 + 4)


def test_teacher_uses_the_op_per_layer(monkeypatch):
    import clarinet.models.wavenet as wn

    calls = []
    real = wn.wavenet_layer

    def spy(*args, **kwargs):
        calls.append((kwargs["dilation"], kwargs["backend"], kwargs["h"].shape))
        return real(*args, **kwargs)

    monkeypatch.setattr(wn, "wavenet_layer", spy)
    m = tiny_teacher()
    x, mel = inputs(1, 4)
    m(x, mel)
    assert [c[0] for c in calls] == [1, 2, 4, 1, 2, 4]
    assert all(c[1] == "reference" and c[2] == (1, C, 48) for c in calls)


@pytest.mark.parametrize("kernel_size", [2, 3])
def test_teacher_causal(kernel_size):
    m = perturb(tiny_teacher(kernel_size=kernel_size))
    x, mel = inputs(1, 4)
    T = x.shape[1]
    rf = m.receptive_field
    for k in (0, 1):  # mean, log_scale
        J = jacobian(lambda a, c: m(a, c)[k], x, mel)
        for t in range(T):
            assert torch.all(J[t, t:] == 0), f"output {k} at t={t} depends on x at >= t"
            assert torch.all(J[t, : max(t - rf, 0)] == 0), "depends on x beyond the receptive field"
        # and it does see the previous sample (a row can be exactly 0 where the head's ReLUs are all off)
        assert (J.diagonal(-1) != 0).float().mean() > 0.8, "does not see the previous sample"


def test_teacher_incremental_teacher_forced_equals_forward():
    for K in (2, 3):
        m = perturb(tiny_teacher(kernel_size=K), seed=K)
        x, mel = inputs(2, 9, seed=K)
        assert x.shape[1] > 3 * m.receptive_field
        mean, log_scale = m(x, mel)
        # a chunk that does not divide T exercises the conditioning-chunk boundaries
        mi, li = m.incremental_forward(x, mel, chunk=7)
        torch.testing.assert_close(mi, mean.detach(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(li, log_scale.detach(), rtol=1e-5, atol=1e-6)


def test_teacher_generate_deterministic_and_rederived():
    m = perturb(tiny_teacher())
    _, mel = inputs(2, 8)
    T = 8 * HOP
    noise = torch.randn(2, T, generator=torch.Generator().manual_seed(5))
    a = m.generate(mel, noise=noise, temperature=0.7, progress=False)
    b = m.generate(mel, noise=noise, temperature=0.7, progress=False)
    assert a.shape == (2, T) and not a.requires_grad
    assert torch.equal(a, b)
    # step-by-step re-derivation: every sample is mean + scale * temperature * noise, with the
    # Gaussian computed (in parallel) from the samples before it
    mean, log_scale = m(a, mel)
    expected = (mean + torch.exp(torch.clamp(log_scale, min=-9.0)) * 0.7 * noise).clamp(-1, 1)  # clip=1 default
    torch.testing.assert_close(a, expected.detach(), rtol=1e-5, atol=1e-5)
    # default noise comes from the global generator
    torch.manual_seed(3)
    c = m.generate(mel, progress=False)
    torch.manual_seed(3)
    d = m.generate(mel, progress=True)
    assert torch.equal(c, d)


def test_teacher_float64():
    m = perturb(tiny_teacher()).double()
    x, mel = inputs(1, 6, dtype=torch.float64)
    mean, log_scale = m(x, mel)
    assert mean.dtype == torch.float64
    mi, li = m.incremental_forward(x, mel)
    torch.testing.assert_close(mi, mean.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(li, log_scale.detach(), rtol=1e-12, atol=1e-12)


def test_teacher_bad_input():
    m = tiny_teacher()
    x, mel = inputs(2, 4)
    with pytest.raises(ValueError, match="mel.*bands"):
        m(x, torch.randn(2, C + 1, 4))
    with pytest.raises(ValueError, match="mel.*frames"):
        m(x, torch.randn(2, C, 5))
    with pytest.raises(ValueError, match="x"):
        m(x[0], mel)
    with pytest.raises(ValueError, match="mel"):
        m(x, mel[0])
    with pytest.raises(ValueError, match="batch"):
        m(x[:1], mel)
    with pytest.raises(TypeError, match="x"):
        m(x.double(), mel)
    with pytest.raises(TypeError, match="x"):
        m(x.long(), mel)
    with pytest.raises(ValueError, match="noise"):
        m.generate(mel, noise=torch.randn(2, 47), progress=False)
    with pytest.raises(ValueError, match="gate_channels"):
        tiny_teacher(gate_channels=15)
    with pytest.raises(ValueError, match="layers"):
        tiny_teacher(layers=0)


def test_backend_setting_propagates():
    m = tiny_teacher()
    m.backend = "triton"
    assert m.wavenet.backend == "triton" and m.config["backend"] == "triton"
    s = tiny_student(backend="auto")
    s.backend = "reference"
    assert all(f.backend == "reference" for f in s.flows)


# ----------------------------------------------------------------------------------------------
# presets

def _layer_shapes(layer):
    return {n: tuple(p.shape) for n, p in layer.named_parameters()}


@pytest.mark.parametrize("name,R,G,S", [("teacher", 128, 256, 128), ("teacher-small", 64, 128, 128)])
def test_teacher_presets(name, R, G, S):
    m = GaussianWaveNet.from_preset(name)
    assert m.hop_length == 300 and m.n_mels == 80
    assert m.wavenet.dilations == [2 ** i for i in range(10)] * 2
    for layer in m.wavenet.layers:
        assert _layer_shapes(layer) == dict(w_dil=(G, R, 2), b_dil=(G,), w_res=(R, G // 2), b_res=(R,),
                                            w_skip=(S, G // 2), b_skip=(S,), w_cond=(G, 80))
    assert tuple(m.wavenet.w_in.shape) == (R, 1)
    assert tuple(m.wavenet.w_out1.shape) == (S, S) and tuple(m.wavenet.w_out2.shape) == (2, S)
    assert [tuple(c.weight.shape) for c in m.upsampler.convs] == [(1, 1, 3, 30), (1, 1, 3, 40)]
    # the stored config rebuilds the same model
    clone = GaussianWaveNet(**m.config)
    clone.load_state_dict(m.state_dict())


def test_student_preset():
    s = GaussianIAF.from_preset("student")
    assert len(s.flows) == 6 and s.hop_length == 300
    for flow in s.flows:
        assert flow.dilations == [2 ** i for i in range(10)]
        for layer in flow.layers:
            assert _layer_shapes(layer) == dict(w_dil=(128, 64, 3), b_dil=(128,), w_res=(64, 64), b_res=(64,),
                                                w_skip=(64, 64), b_skip=(64,), w_cond=(128, 80))
        assert tuple(flow.w_out2.shape) == (2, 64)
    GaussianIAF.from_config(s.config).load_state_dict(s.state_dict())


def test_preset_errors_and_overrides():
    with pytest.raises(ValueError, match="teacher-small"):
        GaussianWaveNet.from_preset("tacher")
    with pytest.raises(ValueError, match="student"):
        GaussianIAF.from_preset("teacher")
    m = GaussianWaveNet.from_preset("teacher-small", layers=3, n_mels=C, backend="reference")
    assert len(m.wavenet.layers) == 3 and m.config["layers"] == 3 and m.config["residual_channels"] == 64


# ----------------------------------------------------------------------------------------------
# student

def test_iaf_matches_explicit_per_flow_computation():
    s = perturb(tiny_student())
    z, mel = inputs(2, 6, seed=4)
    z = z / 0.3
    x, mean_q, log_scale_q = s(z, mel)
    # explicit: run each flow on the previous flow's output; then compose the affine maps in closed
    # form, x = z * prod_i exp(s_i) + sum_i mu_i * prod_{j>i} exp(s_j)
    h = s.upsampler(mel)
    cur, mus, ss = z, [], []
    for flow in s.flows:
        y = flow(F.pad(cur, (1, 0))[:, None, :-1], h)
        mus.append(y[:, 0])
        ss.append(y[:, 1])
        cur = cur * torch.exp(y[:, 1]) + y[:, 0]
    n = len(mus)
    ls_expected = sum(ss)
    mean_expected = sum(mus[i] * torch.exp(sum(ss[i + 1:], torch.zeros_like(z))) for i in range(n))
    torch.testing.assert_close(log_scale_q, ls_expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(mean_q, mean_expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(x, cur, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(x, mean_q + torch.exp(log_scale_q) * z, rtol=1e-5, atol=1e-5)


def test_iaf_causal():
    s = perturb(tiny_student(), scale=0.2)
    z, mel = inputs(1, 4, seed=6)
    T = z.shape[1]
    h = s.upsampler(mel).detach()
    # each flow's (mu_i, s_i) at t depends on its input at < t only
    for i in range(len(s.flows)):
        for k in (0, 1):
            J = jacobian(lambda a, c: s.flow_step(i, a, c)[k], z, h)
            for t in range(T):
                assert torch.all(J[t, t:] == 0), f"flow {i} output {k} at t={t} sees its input at >= t"
            assert (J.diagonal(-1) != 0).float().mean() > 0.8, f"flow {i} does not see its previous input"
    # the whole student: mean_q, log_scale_q at t depend on z at < t; x at t on z at <= t
    for k in (1, 2):
        J = jacobian(lambda a, c: s(a, c)[k], z, mel)
        for t in range(T):
            assert torch.all(J[t, t:] == 0), f"output {k} at t={t} sees z at >= t"
        assert (J.diagonal(-1) != 0).float().mean() > 0.8
    J = jacobian(lambda a, c: s(a, c)[0], z, mel)
    for t in range(T):
        assert torch.all(J[t, t + 1:] == 0) and J[t, t] > 0


def test_iaf_starts_near_identity():
    s = tiny_student()
    z, mel = inputs(2, 5, seed=7)
    x, mean_q, log_scale_q = s(z, mel)
    assert (x - z).abs().max() < 0.05
    assert log_scale_q.abs().max() < 0.05 and mean_q.abs().max() < 0.05


def test_iaf_generate():
    s = perturb(tiny_student())
    _, mel = inputs(2, 5)
    noise = torch.randn(2, 5 * HOP)
    a = s.generate(mel, noise=noise, temperature=0.5)
    assert a.shape == (2, 5 * HOP) and not a.requires_grad
    assert torch.equal(a, s.generate(mel, noise=noise, temperature=0.5))
    torch.testing.assert_close(a, s(noise * 0.5, mel)[0].detach())
    torch.manual_seed(1)
    b = s.generate(mel)
    torch.manual_seed(1)
    assert torch.equal(b, s.generate(mel))
    with pytest.raises(ValueError, match="noise"):
        s.generate(mel, noise=torch.randn(2, 5 * HOP + 1))
    with pytest.raises(ValueError, match="mel"):
        s(noise, torch.randn(2, C, 4))
    with pytest.raises(ValueError, match="flows"):
        tiny_student(flows=0)


def test_stack_is_usable_alone():
    stack = WaveNetStack(1, 2, layers=2, cycle=2, residual_channels=4, gate_channels=6, skip_channels=4,
                         kernel_size=2, cond_channels=3, backend="reference")
    y = stack(torch.randn(2, 1, 10), torch.randn(2, 3, 10))
    assert y.shape == (2, 2, 10)
    assert stack.receptive_field == 1 + 1 + 2


def test_empty_inputs():
    m, s = tiny_teacher(), tiny_student()
    for B, frames in ((2, 0), (0, 3)):
        T = frames * HOP
        x, mel = torch.zeros(B, T), torch.zeros(B, C, frames)
        assert [tuple(t.shape) for t in m(x, mel)] == [(B, T)] * 2
        assert tuple(m.generate(mel, progress=False).shape) == (B, T)
        assert [tuple(t.shape) for t in s(x, mel)] == [(B, T)] * 3
        assert tuple(s.generate(mel).shape) == (B, T)


def test_teacher_generate_stream_pieces_equal_generate(triton_device, ):
    from clarinet.models import GaussianWaveNet

    torch.manual_seed(0)
    m = GaussianWaveNet(layers=4, cycle=2, residual_channels=6, gate_channels=8, skip_channels=5,
                        kernel_size=2, n_mels=4, upsample_strides=(2, 3))
    mel = torch.randn(2, 4, 17)
    noise = torch.randn(2, 17 * 6)
    for backend in ("cpp", "reference"):
        whole = m.generate(mel, noise, progress=False, backend=backend, span=10 ** 6)
        seen = []
        streamed = m.generate(mel, noise, progress=False, backend=backend, span=25, callback=seen.append)
        assert [p.shape[1] for p in seen] == [25, 25, 25, 25, 2]
        torch.testing.assert_close(streamed, whole, rtol=1e-5, atol=1e-5)
        pieces = list(m.generate_stream(mel, noise, backend=backend, span=40))
        torch.testing.assert_close(torch.cat(pieces, 1), whole, rtol=1e-5, atol=1e-5)
    import copy

    # sample_dtype: the C++ sampler's float16 weights, through the same spans
    from clarinet.ops.wavenet_sample import pack_wavenet, wavenet_sample

    with torch.no_grad():
        h16 = m.upsampler(mel).half()
    want = wavenet_sample(pack_wavenet(m), h16, noise.half(), backend="cpp")
    got = m.generate(mel, noise, progress=False, span=25, sample_dtype=torch.float16)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    with pytest.raises(TypeError, match="sample_dtype"):
        m.generate(mel, noise, progress=False, sample_dtype="half")
    # the Triton sampler (the interpreter here) continues the carried state the same way
    on = copy.deepcopy(m).to(triton_device)
    streamed = on.generate(mel.to(triton_device), noise.to(triton_device), progress=False, backend="triton", span=60)
    torch.testing.assert_close(streamed.cpu(), whole, rtol=1e-4, atol=1e-4)
    m64 = copy.deepcopy(m).double()
    whole = m64.generate(mel.double(), noise.double(), progress=False, backend="reference", span=10 ** 6)
    streamed = m64.generate(mel.double(), noise.double(), progress=False, backend="reference", span=7)
    torch.testing.assert_close(streamed, whole, rtol=1e-12, atol=1e-12)  # float64 state: no float32 rounding
    assert m.generate(mel[..., :0], noise[:, :0], progress=False).shape == (2, 0)
    with pytest.raises(ValueError, match="span"):
        m.generate(mel, noise, progress=False, span=0)
