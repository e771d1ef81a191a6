"""The int8 C++ sampler (wavenet_sample(weight_dtype=torch.int8)): ISA levels bit-identical to the
portable loop, accuracy against float32 within clarinet._quant.INT8_BOUND, streaming, bad input."""
import pytest
import torch

from clarinet._quant import INT8_BOUND, int8_error, teacher_forced_error, trained_like_, within_bound
from clarinet.models import GaussianWaveNet
from clarinet.ops.wavenet_sample import pack_wavenet, sampler_state, wavenet_sample

C, STRIDES, HOP = 5, (2, 3), 6


def small_model(K, R, G, S, seed=0, layers=6):
    torch.manual_seed(seed)
    m = GaussianWaveNet(layers=layers, cycle=3, residual_channels=R, gate_channels=G, skip_channels=S,
                        kernel_size=K, n_mels=C, upsample_strides=STRIDES)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    return m.eval()


def data(B, frames, n_mels=C, hop=HOP, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, frames * hop, generator=g) * 0.3, torch.randn(B, n_mels, frames, generator=g)


def _run(sampler, h, x, isa):
    B, T = x.shape
    outs = [torch.full((B, T), float("nan")) for _ in range(3)]
    sampler.run(h.numpy(), None, x.numpy(), *(o.numpy() for o in outs), 1.0, -9.0, 7, 1, isa=isa)
    return outs[1], outs[2]


# odd sizes: channels that are not multiples of 4, 16 or 64 (padded groups, masked tails, every block
# width), C = 5 (one padded group); and widths that reach the 128-output blocks with remainders
@pytest.mark.parametrize("K", [2, 3])
@pytest.mark.parametrize("R,G,S", [(13, 38, 21), (72, 200, 136)])
def test_isa_levels_bit_identical(K, R, G, S):
    m = small_model(K, R, G, S, seed=K + R)
    x, mel = data(2, 9)
    with torch.no_grad():
        h = m.upsampler(mel)
    q = pack_wavenet(m).cpp(int8=True)
    assert q.weights == "int8"
    ref = _run(q, h, x, "generic")
    assert q.int8_isa("generic") == "generic"
    levels = {isa: q.int8_isa(isa) for isa in ("avx2", "avx512")}
    for isa in ("avx2", "avx512"):
        got = _run(q, h, x, isa)
        assert torch.isfinite(got[0]).all() and torch.isfinite(got[1]).all(), levels
        assert torch.equal(got[0], ref[0]) and torch.equal(got[1], ref[1]), (isa, levels[isa])


def _cpu_has(flag):
    try:
        with open("/proc/cpuinfo") as f:
            return any(flag in line.split() for line in f if line.startswith("flags"))
    except OSError:
        return False


def test_isa_levels_named_from_cpu():
    q = pack_wavenet(small_model(2, 8, 14, 10)).cpp(int8=True)
    if _cpu_has("avx512_vnni"):
        assert q.int8_isa("auto") == q.int8_isa("avx512") == "avx512vnni"
    if _cpu_has("avx_vnni"):
        assert q.int8_isa("avx2") == "avxvnni"


def test_close_to_float32_on_small_models():
    m = small_model(3, 13, 38, 21, seed=5)
    x, mel = data(2, 12)
    with torch.no_grad():
        mean, log_scale = m(x, mel)
        h = m.upsampler(mel)
    p = pack_wavenet(m)
    m8, l8 = wavenet_sample(p, h, teacher_forcing=x, backend="cpp", weight_dtype=torch.int8)
    err = int8_error(m8, l8, mean, log_scale)
    assert err["mean_rms"] < 0.1 and err["log_scale_rms"] < 0.1, err
    # float16 inputs are taken too (rounded, then the same int8 weights)
    m16, _ = wavenet_sample(p, h.half(), teacher_forcing=x.half(), backend="cpp", weight_dtype=torch.int8)
    assert int8_error(m16, l8, mean, log_scale)["mean_rms"] < 0.1


@pytest.mark.parametrize("preset", ["teacher-small", "teacher"])
def test_accuracy_bound_trained_like(preset):
    m = trained_like_(GaussianWaveNet.from_preset(preset).eval())
    p = pack_wavenet(m)
    g = torch.Generator().manual_seed(1)
    T = 2400
    mel = torch.randn(1, m.n_mels, T // m.hop_length, generator=g)
    with torch.no_grad():
        h = m.upsampler(mel)
    audio = wavenet_sample(p, h, torch.randn(1, T, generator=g), backend="cpp")  # the float32 model's own audio
    err = teacher_forced_error(p, h, audio)
    why = within_bound(err, INT8_BOUND)
    assert why is None, f"{preset}: {why} ({err})"


def test_accuracy_bound_trained_here(one_thread):
    # a small teacher trained a few hundred Adam steps on chirps (its log-scale falls to about -2.5)
    import math

    from clarinet.losses import teacher_loss

    torch.manual_seed(0)
    m = GaussianWaveNet(layers=6, cycle=3, residual_channels=24, gate_channels=48, skip_channels=32, kernel_size=2,
                        n_mels=C, upsample_strides=STRIDES)
    m.backend = "reference"
    t = torch.arange(1200) / 24000.0

    def batch(seed):
        g = torch.Generator().manual_seed(seed)
        f0 = 150 + 400 * torch.rand(4, 1, generator=g)
        x = 0.5 * torch.sin(2 * math.pi * (f0 * t + 300 * t ** 2)) + 0.01 * torch.randn(4, t.numel(), generator=g)
        return x, torch.randn(4, C, t.numel() // HOP, generator=g) * 0.1 + f0[:, :, None] / 300

    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    for step in range(200):
        x, mel = batch(step)
        loss = teacher_loss(m, x, mel)
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    x, mel = batch(10 ** 6)
    with torch.no_grad():
        h = m.upsampler(mel)
    p = pack_wavenet(m)
    ref = wavenet_sample(p, h, teacher_forcing=x, backend="cpp")
    assert ref[1].mean() < -1.5  # it learned something: the scale shrank from about 1
    err = teacher_forced_error(p, h, x, ref)
    assert within_bound(err, INT8_BOUND) is None, err


@pytest.mark.parametrize("preset", ["teacher-small", "teacher"])
def test_free_running_noise_recovered(preset):
    # the int8 sampler's own audio, under the float32 parallel forward, gives back the noise that drove it
    m = trained_like_(GaussianWaveNet.from_preset(preset).eval())
    g = torch.Generator().manual_seed(2)
    T = 3600
    mel = torch.randn(1, m.n_mels, T // m.hop_length, generator=g)
    z = torch.randn(1, T, generator=g)
    x8 = m.generate(mel, z, progress=False, sample_dtype=torch.int8, backend="cpp")
    assert torch.isfinite(x8).all()
    with torch.no_grad():
        mean, log_scale = m(x8, mel)
    zr = (x8 - mean) / log_scale.exp()
    corr = torch.corrcoef(torch.stack([zr[0], z[0]]))[0, 1].item()
    assert corr >= 0.99, corr


@pytest.mark.parametrize("K", [2, 3])
def test_state_continues_the_sequence(K):
    m = small_model(K, 13, 38, 21, seed=7)
    _, mel = data(2, 10)
    with torch.no_grad():
        h = m.upsampler(mel)
    p = pack_wavenet(m)
    noise = torch.randn(2, h.shape[2])
    whole = wavenet_sample(p, h, noise, backend="cpp", weight_dtype=torch.int8)
    st = sampler_state(p, 2)
    parts = [wavenet_sample(p, h[..., a:b], noise[:, a:b], backend="cpp", weight_dtype=torch.int8, state=st)
             for a, b in ((0, 17), (17, 18), (18, h.shape[2]))]
    assert st.step == h.shape[2]
    torch.testing.assert_close(torch.cat(parts, 1), whole, rtol=0, atol=0)
    # generate() reaches the same path (spans carry the state) and gives the same audio
    g = m.generate(mel, noise, progress=False, sample_dtype=torch.int8, span=11)
    torch.testing.assert_close(g, whole, rtol=0, atol=0)


def test_threads_and_strided_inputs_give_the_same_samples():
    m = small_model(2, 13, 38, 21, seed=8)
    _, mel = data(3, 8)
    with torch.no_grad():
        h = m.upsampler(mel)
    p = pack_wavenet(m)
    noise = torch.randn(3, h.shape[2])
    one = wavenet_sample(p, h, noise, backend="cpp", weight_dtype=torch.int8, num_threads=1)
    wide = torch.randn(3, C, 2 * h.shape[2])
    wide[..., ::2] = h  # a non-contiguous h
    two = wavenet_sample(p, wide[..., ::2], noise, backend="cpp", weight_dtype=torch.int8, num_threads=2)
    torch.testing.assert_close(two, one, rtol=0, atol=0)


def test_no_int8_path_names_the_backend():
    m = small_model(2, 8, 14, 10)
    x, mel = data(1, 4)
    with torch.no_grad():
        h = m.upsampler(mel)
    p = pack_wavenet(m)
    with pytest.raises(ValueError, match="backend 'reference' has no int8"):
        wavenet_sample(p, h, x, backend="reference", weight_dtype=torch.int8)
    with pytest.raises(ValueError, match="backend 'reference' has no int8"):
        m.generate(mel, progress=False, sample_dtype=torch.int8, backend="reference")
    with pytest.raises(TypeError, match="weight_dtype"):
        wavenet_sample(p, h, x, backend="cpp", weight_dtype=torch.float64)
    with pytest.raises(TypeError, match="sample_dtype"):
        m.generate(mel, progress=False, sample_dtype=torch.int16)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_refused_at_packing(bad):
    m = small_model(2, 8, 14, 10)
    with torch.no_grad():
        m.wavenet.layers[1].w_dil[3, 2, 0] = bad
    with pytest.raises(ValueError, match="non-finite"):
        pack_wavenet(m)


def test_bench_int8_rows_checked_counted_and_placed_on_the_roofline(monkeypatch):
    import importlib

    from clarinet import bench, roofline

    (case,) = [c for c in bench.cases(ops=("ar_sampling",), configs=("teacher-small",), size="tiny")
               if c.dtype == torch.int8 and c.shape["B"] == 1]
    rows = {r["backend"]: r for r in bench.run_case(case, ["cpp", "cuda"], torch.device("cpu"), min_time=0.0)}
    ok = rows["cpp"]
    assert ok["status"] == "ok" and ok["dtype"] == "int8", ok
    counts = roofline.sampler_counts(64, 128, 128, 80, 2, 20, torch.int8)
    assert ok["macs_per_sample"] == counts["macs"] == 20 * (2 * 64 * 128 + 80 * 128 + 64 * 192) + 128 * 128 + 256 + 64
    assert round(counts["weight_bytes"] / 1e6, 2) == 0.67  # the README's figure: a quarter of float32's
    assert roofline.sampler_counts(64, 128, 128, 80, 2, 20)["weight_bytes"] > 3.5 * counts["weight_bytes"]
    assert 0 < ok["core_fraction"] < 1.5
    roof = roofline.measure()
    assert roof["fma_macs_per_s"] > 0 or roof["fma_isa"] == "none"
    assert set(roof["read_bytes_per_s"]) == {str(n) for n in roofline.READ_SIZES}
    assert "int8" in rows["cuda"]["reason"]
    # an int8 sampler outside the documented bound is reported, not timed
    ws = importlib.import_module("clarinet.ops.wavenet_sample")
    real = ws.wavenet_sample

    def skewed(*args, **kw):
        out = real(*args, **kw)
        if kw.get("weight_dtype") is not None and kw.get("teacher_forcing") is not None:
            return out[0] + out[1].exp(), out[1]  # one scale off
        return out

    monkeypatch.setattr(ws, "wavenet_sample", skewed)
    (row,) = bench.run_case(case, ["cpp"], torch.device("cpu"), min_time=0.0)
    assert row["status"] == "wrong" and "median_ms" not in row and "int8" in row["reason"]
