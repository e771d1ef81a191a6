"""The C++ incremental sampler (clarinet.ops.wavenet_sample) against the Python stepper and model.forward."""
import pytest
import torch

from clarinet.models import GaussianWaveNet
from clarinet.ops.wavenet_sample import PackedWaveNet, pack_wavenet, wavenet_sample, wavenet_sample_ref

C, STRIDES = 5, (2, 3)
HOP = 6


def model(K=2, seed=0, **kw):
    torch.manual_seed(seed)
    cfg = dict(layers=6, cycle=3, residual_channels=8, gate_channels=14, skip_channels=10, kernel_size=K,
               n_mels=C, upsample_strides=STRIDES)
    m = GaussianWaveNet(**{**cfg, **kw})
    with torch.no_grad():  # random biases too: nothing trivially zero
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    return m


def data(B, frames, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, frames * HOP, generator=g), torch.randn(B, C, frames, generator=g)


@pytest.mark.parametrize("K", [2, 3])
@pytest.mark.parametrize("B", [1, 3])
def test_teacher_forced_equals_reference_and_forward(K, B):
    m = model(K, seed=K + B)
    x, mel = data(B, 14, seed=B)
    assert x.shape[1] > 2 * m.receptive_field
    with torch.no_grad():
        mean, log_scale = m(x, mel)
        h = m.upsampler(mel)
    p = pack_wavenet(m)
    for chunk in (7, 1024):  # 7 does not divide T: conditioning-chunk boundaries crossed
        mc, lc = wavenet_sample(p, h, teacher_forcing=x, backend="cpp", chunk=chunk)
        mr, lr = wavenet_sample(p, h, teacher_forcing=x, backend="reference", chunk=chunk)
        assert mc.shape == (B, x.shape[1]) and mc.dtype == torch.float32
        torch.testing.assert_close(mc, mr, rtol=1e-5, atol=2e-6)
        torch.testing.assert_close(lc, lr, rtol=1e-5, atol=2e-6)
        torch.testing.assert_close(mc, mean, rtol=1e-5, atol=2e-6)
        torch.testing.assert_close(lc, log_scale, rtol=1e-5, atol=2e-6)


@pytest.mark.parametrize("K", [2, 3])
def test_teacher_forced_wide_channels(K):
    # channel counts that reach the vector kernels' full blocks (64 outputs, 3 steps x 32 gates)
    # and their ragged edges (R + S = 88, chunk 7 = 3 + 3 + 1)
    m = model(K, seed=11, residual_channels=40, gate_channels=64, skip_channels=48)
    x, mel = data(2, 12, seed=4)
    with torch.no_grad():
        mean, log_scale = m(x, mel)
        h = m.upsampler(mel)
    p = pack_wavenet(m)
    mc, lc = wavenet_sample(p, h, teacher_forcing=x, backend="cpp", chunk=7)
    torch.testing.assert_close(mc, mean, rtol=1e-5, atol=5e-6)
    torch.testing.assert_close(lc, log_scale, rtol=1e-5, atol=5e-6)
    mg, lg = torch.empty_like(mc), torch.empty_like(mc)
    p.cpp().run(h.numpy(), None, x.numpy(), torch.empty_like(mc).numpy(), mg.numpy(), lg.numpy(), 1.0, -9.0, 7, 1,
                simd=False)
    torch.testing.assert_close(mg, mean, rtol=1e-5, atol=5e-6)
    torch.testing.assert_close(lg, log_scale, rtol=1e-5, atol=5e-6)


def test_threads_and_strided_inputs():
    m = model(3, seed=4)
    x, mel = data(3, 10)
    with torch.no_grad():
        h = m.upsampler(mel)
    p = pack_wavenet(m)
    m1, l1 = wavenet_sample(p, h, teacher_forcing=x, backend="cpp", chunk=5, num_threads=1)
    m3, l3 = wavenet_sample(p, h, teacher_forcing=x, backend="cpp", chunk=5, num_threads=3)
    assert torch.equal(m1, m3) and torch.equal(l1, l3)
    # non-contiguous h and audio (slices of wider tensors) give the same answer
    hw = torch.randn(3, C, 2 * h.shape[2])
    hw[:, :, ::2] = h
    xw = torch.randn(3, 2 * x.shape[1])
    xw[:, 1::2] = x
    ms, ls = wavenet_sample(p, hw[:, :, ::2], teacher_forcing=xw[:, 1::2], backend="cpp", chunk=5)
    assert torch.equal(ms, m1) and torch.equal(ls, l1)
    # the portable (non-AVX2) kernels give the same answer
    mg, lg = torch.empty_like(m1), torch.empty_like(m1)
    p.cpp().run(h.numpy(), None, x.numpy(), torch.empty_like(m1).numpy(), mg.numpy(), lg.numpy(), 1.0, -9.0, 5, 2,
                simd=False)
    torch.testing.assert_close(mg, m1, rtol=1e-5, atol=2e-6)
    torch.testing.assert_close(lg, l1, rtol=1e-5, atol=2e-6)
    ht = h.transpose(1, 2).contiguous().transpose(1, 2)
    mt, lt = wavenet_sample(p, ht, teacher_forcing=x, backend="cpp", chunk=5)
    assert torch.equal(mt, m1) and torch.equal(lt, l1)


@pytest.mark.parametrize("K", [2, 3])
def test_free_running_equals_reference(K):
    m = model(K, seed=7)
    _, mel = data(2, 8)
    T = 8 * HOP
    noise = torch.randn(2, T, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        h = m.upsampler(mel)
    p = pack_wavenet(m)
    a = wavenet_sample(p, h, noise, temperature=0.7, backend="cpp", chunk=5)
    b = wavenet_sample(p, h, noise, temperature=0.7, backend="reference", chunk=5)
    assert a.shape == (2, T)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    # re-derived in parallel: every sample is mean + scale * temperature * noise of the samples before it
    with torch.no_grad():
        mean, log_scale = m(a, mel)
    torch.testing.assert_close(a, (mean + torch.exp(log_scale.clamp(min=-9.0)) * 0.7 * noise).clamp(-1, 1),
                               rtol=1e-5, atol=1e-5)
    # log_scale_min is honoured
    c = wavenet_sample(p, h, noise, log_scale_min=0.5, backend="cpp")
    d = wavenet_sample_ref(p, h, noise, log_scale_min=0.5)
    torch.testing.assert_close(c, d, rtol=1e-5, atol=1e-5)
    # default noise from the global generator; "auto" picks cpp on float32 CPU
    torch.manual_seed(3)
    e = wavenet_sample(p, h)
    torch.manual_seed(3)
    f = wavenet_sample(p, h, backend="reference")
    torch.testing.assert_close(e, f, rtol=1e-5, atol=1e-5)


def test_generate_backend():
    m = model(2, seed=9)
    _, mel = data(2, 6)
    noise = torch.randn(2, 6 * HOP)
    ref = m.generate(mel, noise=noise, temperature=0.5, progress=False, backend="reference")
    default = m.generate(mel, noise=noise, temperature=0.5, progress=False)  # auto: cpp on float32 CPU
    cpp = m.generate(mel, noise=noise, temperature=0.5, progress=False, backend="cpp")
    assert torch.equal(default, cpp)
    for backend in ("cpp", "auto"):
        out = m.generate(mel, noise=noise, temperature=0.5, progress=False, backend=backend, chunk=4)
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="backend"):
        m.generate(mel, noise=noise, progress=False, backend="cuda")
    # float64 model: "auto" falls back to the reference, "cpp" refuses
    md = model(2, seed=9).double()
    out = md.generate(mel.double(), noise=noise.double(), progress=False, backend="auto")
    assert out.dtype == torch.float64
    with pytest.raises(TypeError, match="float32"):
        md.generate(mel.double(), noise=noise.double(), progress=False, backend="cpp")


def test_pack_reused_and_refused_after_change():
    m = model(2, seed=2)
    x, mel = data(1, 6)
    with torch.no_grad():
        h = m.upsampler(mel)
    p = pack_wavenet(m)
    assert isinstance(p, PackedWaveNet) and pack_wavenet(m) is p
    assert p.config["layers"] == 6 and p.config["dilations"] == (1, 2, 4, 1, 2, 4) and p.config["hop"] == HOP
    assert all(t.dtype == torch.float32 and t.is_contiguous() for t in p.tensors.values())
    first = wavenet_sample(p, h, teacher_forcing=x, backend="cpp")
    cpp_obj = p.cpp()
    again = wavenet_sample(p, h, teacher_forcing=x, backend="cpp")
    assert p.cpp() is cpp_obj and torch.equal(first[0], again[0])
    with torch.no_grad():
        m.wavenet.layers[2].w_dil.mul_(1.5)
    assert p.is_stale()
    with pytest.raises(RuntimeError, match="pack_wavenet"):
        wavenet_sample(p, h, teacher_forcing=x, backend="cpp")
    q = pack_wavenet(m)  # repacked
    assert q is not p and not q.is_stale()
    mc, _ = wavenet_sample(q, h, teacher_forcing=x, backend="cpp")
    with torch.no_grad():
        mean, _ = m(x, mel)
    torch.testing.assert_close(mc, mean, rtol=1e-5, atol=2e-6)
    assert not torch.allclose(mc, first[0])
    # load_state_dict also invalidates
    m.load_state_dict(model(2, seed=3).state_dict())
    assert q.is_stale() and pack_wavenet(m) is not q


def test_bad_inputs():
    m = model(2)
    x, mel = data(2, 4)
    with torch.no_grad():
        h = m.upsampler(mel)
    p = pack_wavenet(m)
    with pytest.raises(TypeError, match="model"):
        pack_wavenet(m.wavenet)
    with pytest.raises(TypeError, match="packed"):
        wavenet_sample(m, h)
    with pytest.raises(TypeError, match="h"):
        wavenet_sample(p, h.numpy())
    with pytest.raises(TypeError, match="h"):
        wavenet_sample(p, h.long())
    with pytest.raises(ValueError, match="h"):
        wavenet_sample(p, h[0])
    with pytest.raises(ValueError, match="h"):
        wavenet_sample(p, torch.randn(2, C + 1, 24))
    with pytest.raises(ValueError, match="noise"):
        wavenet_sample(p, h, torch.randn(2, 23))
    with pytest.raises(TypeError, match="noise"):
        wavenet_sample(p, h, torch.randn(2, 24, dtype=torch.float64))
    with pytest.raises(ValueError, match="teacher_forcing"):
        wavenet_sample(p, h, teacher_forcing=torch.randn(3, 24))
    with pytest.raises(ValueError, match="noise"):
        wavenet_sample(p, h, torch.randn(2, 24), teacher_forcing=x)
    with pytest.raises(ValueError, match="chunk"):
        wavenet_sample(p, h, chunk=0)
    with pytest.raises(ValueError, match="backend"):
        wavenet_sample(p, h, backend="nope")
    with pytest.raises(ValueError, match="CUDA tensors"):
        wavenet_sample(p, h, backend="cuda")
    with pytest.raises(TypeError, match="float32"):
        wavenet_sample(p, h.double(), backend="cpp")
    with pytest.raises(TypeError, match="h"):
        wavenet_sample(p, h.double(), backend="reference")
    # the C++ side validates too (std::invalid_argument -> ValueError)
    out = torch.empty(2, 24)
    with pytest.raises(ValueError, match="h"):
        p.cpp().run(torch.randn(2, C + 1, 24).numpy(), torch.randn(2, 24).numpy(), None, out.numpy(),
                    out.numpy(), out.numpy(), 1.0, -9.0, 8, 1)
    with pytest.raises(ValueError, match="noise"):
        p.cpp().run(h.numpy(), torch.randn(2, 25).numpy(), None, out.numpy(), out.numpy(), out.numpy(),
                    1.0, -9.0, 8, 1)
    with pytest.raises(ValueError, match="float32"):
        p.cpp().run(h.double().numpy(), torch.randn(2, 24).numpy(), None, out.numpy(), out.numpy(),
                    out.numpy(), 1.0, -9.0, 8, 1)


def test_empty():
    m = model(2)
    p = pack_wavenet(m)
    for B, T in ((2, 0), (0, 12)):
        h = torch.randn(B, C, T)
        for backend in ("cpp", "reference"):
            x = wavenet_sample(p, h, backend=backend)
            assert x.shape == (B, T)
            mean, ls = wavenet_sample(p, h, teacher_forcing=torch.randn(B, T), backend=backend)
            assert mean.shape == ls.shape == (B, T)
    mel = torch.randn(1, C, 0)
    assert m.generate(mel, progress=False, backend="cpp").shape == (1, 0)


@pytest.mark.parametrize("backend", ["cpp", "reference"])
@pytest.mark.parametrize("K", [2, 3])
def test_state_continues_the_sequence(backend, K):
    # spans of 1, 12 (not a multiple of any ring length), 40 and the rest: the concatenation equals one call
    from clarinet.ops import sampler_state

    m = model(K, seed=20 + K)
    x, mel = data(2, 14, seed=5)
    T = x.shape[1]
    with torch.no_grad():
        h = m.upsampler(mel)
    noise = torch.randn(2, T, generator=torch.Generator().manual_seed(3))
    p = pack_wavenet(m)
    whole = wavenet_sample(p, h, noise, backend=backend, chunk=5)
    whole_mean, whole_ls = wavenet_sample(p, h, teacher_forcing=x, backend=backend, chunk=5)
    cuts = [0, 1, 13, 53, T]
    free, forced = sampler_state(p, 2), sampler_state(p, 2)
    parts, means, scales = [], [], []
    for a, b in zip(cuts, cuts[1:]):
        parts.append(wavenet_sample(p, h[..., a:b], noise[:, a:b], backend=backend, chunk=5, state=free))
        mm, ll = wavenet_sample(p, h[..., a:b], teacher_forcing=x[:, a:b], backend=backend, chunk=5, state=forced)
        means.append(mm)
        scales.append(ll)
        assert free.step == b and forced.step == b
    torch.testing.assert_close(torch.cat(parts, 1), whole, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(torch.cat(means, 1), whole_mean, rtol=1e-5, atol=2e-6)
    torch.testing.assert_close(torch.cat(scales, 1), whole_ls, rtol=1e-5, atol=2e-6)


def test_state_same_across_backends_and_checked():
    from clarinet.ops import SamplerState, sampler_state

    m = model(2, seed=30)
    _, mel = data(1, 10, seed=6)
    with torch.no_grad():
        h = m.upsampler(mel)
    p = pack_wavenet(m)
    noise = torch.randn(1, h.shape[-1])
    sc, sr = sampler_state(p, 1), sampler_state(p, 1)
    wavenet_sample(p, h[..., :25], noise[:, :25], backend="cpp", state=sc)
    wavenet_sample(p, h[..., :25], noise[:, :25], backend="reference", state=sr)
    torch.testing.assert_close(sc.buffers, sr.buffers, rtol=1e-5, atol=1e-6)  # one layout for both
    assert sc.buffers.abs().sum() > 0
    # continuing the C++ state with the reference gives the C++ continuation
    a = wavenet_sample(p, h[..., 25:], noise[:, 25:], backend="reference", state=sr)
    b = wavenet_sample(p, h[..., 25:], noise[:, 25:], backend="cpp", state=sc)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="state: expected buffers of shape"):
        wavenet_sample(p, h, noise, backend="cpp", state=sampler_state(p, 2))
    with pytest.raises(TypeError, match="state: expected a SamplerState"):
        wavenet_sample(p, h, noise, backend="cpp", state=torch.zeros(1, p.state_size))
    with pytest.raises(ValueError, match="state: expected step"):
        wavenet_sample(p, h, noise, backend="cpp", state=SamplerState(torch.zeros(1, p.state_size), step=-1))
    with pytest.raises(ValueError, match="batch"):
        sampler_state(p, -1)


def _rounded_to_half(m):
    import copy

    r = copy.deepcopy(m)
    with torch.no_grad():
        for p in r.parameters():
            p.copy_(p.half().float())
    return r


@pytest.mark.parametrize("isa", ["generic", "avx2", "avx512"])  # capped at what this CPU has
@pytest.mark.parametrize("G,S", [(160, 50), (128, 24)])  # 128-wide blocks + 16-wide + masked tails; cond G % 64
@pytest.mark.parametrize("half", [False, True])
def test_instruction_sets_and_half_weights_equal_forward(isa, G, S, half):
    # float16 weights: the sampler computes in float32 over weights rounded to float16, so it equals
    # (to float32 rounding) the forward of the same model with its weights rounded to float16
    m = model(2, seed=40, residual_channels=40, gate_channels=G, skip_channels=S)
    x, mel = data(2, 9, seed=7)
    if half:
        x, mel = x.half().float(), mel.half().float()
    ref_model = _rounded_to_half(m) if half else m
    with torch.no_grad():
        mean, log_scale = ref_model(x, mel)
        h = ref_model.upsampler(mel)
    if half:
        h = h.half().float()
        with torch.no_grad():  # forward with the upsampled h rounded as the sampler sees it
            y = ref_model.wavenet(torch.nn.functional.pad(x, (1, 0))[:, None, :-1], h)
        mean, log_scale = y[:, 0], y[:, 1]
    p = pack_wavenet(m)
    B, T = x.shape
    outs = [torch.full((B, T), float("nan")) for _ in range(3)]
    p.cpp(half).run(h.numpy(), None, x.numpy(), *(o.numpy() for o in outs), 1.0, -9.0, 7, 1, isa=isa)
    torch.testing.assert_close(outs[1], mean, rtol=1e-5, atol=5e-6)
    torch.testing.assert_close(outs[2], log_scale, rtol=1e-5, atol=5e-6)


def test_half_through_wavenet_sample():
    from clarinet.testing import assert_close

    m = model(3, seed=41)
    x, mel = data(2, 12, seed=8)
    with torch.no_grad():
        mean, _ = m(x, mel)
        h = m.upsampler(mel)
    p = pack_wavenet(m)
    mh, lh = wavenet_sample(p, h.half(), teacher_forcing=x.half(), backend="cpp")
    assert mh.dtype == torch.float32
    assert_close(mh, mean, torch.float16)  # float16 weights and inputs against the float32 model
    noise = torch.randn(2, x.shape[1])
    a = wavenet_sample(p, h.half(), noise.half(), backend="cpp")
    b = wavenet_sample(p, h.half(), noise.half(), backend="auto")  # auto: cpp takes float16 too
    torch.testing.assert_close(a, b)
    with pytest.raises(TypeError, match="float32 or float16"):
        wavenet_sample(p, h.bfloat16(), noise.bfloat16(), backend="cpp")
    with pytest.raises(ValueError, match="isa"):
        out = torch.empty(2, x.shape[1])
        p.cpp().run(h.numpy(), noise.numpy(), None, out.numpy(), out.numpy(), out.numpy(), 1.0, -9.0, 8, 1,
                    isa="sse9")
