"""The persistent CUDA sampler (``wavenet_sample(..., backend="cuda")``, csrc/cuda/wavenet_sampler.cu).

Every test but the layout emulation needs a GPU with thread-block clusters (marker ``gpu``; skipped
on CPU). References:
``model.forward`` (teacher forcing) and the Python stepper ``wavenet_sample_ref`` (free-running, same
noise). 16-bit runs are compared with the float32 reference of the same model with its weights rounded
to that dtype and the same rounded inputs, at ``clarinet.testing.RTOL``. The cluster size and the
number of layers kept in shared memory are forced through the launcher's test hooks, so that a small
model reaches the multi-CTA (DSMEM) path, padded gate/skip slices and the weights-from-L2 path.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from _backends import cuda_ops, skip_unsupported
from clarinet import _alloc
from clarinet.models import GaussianWaveNet
from clarinet.ops.wavenet_sample import pack_wavenet, wavenet_sample, wavenet_sample_ref
from clarinet.testing import RTOL, rel_err

C, STRIDES, HOP = 5, (2, 3), 6
DTYPES = [torch.float32, torch.float16, torch.bfloat16]
# (cluster, max resident layers): auto; 2 CTAs; 4 CTAs with 2 of 6 layers streamed from L2 ... ;
# 8 CTAs (gate/skip slices padded: G/2 = 7, S = 10) with every layer read from global memory
CONFIGS = [(0, -1), (2, -1), (4, 2), (8, 0)]
CONFIG_IDS = ["auto", "n2", "n4-res2", "n8-res0"]


def _ops():
    return cuda_ops()


@pytest.fixture
def ops(monkeypatch):
    mod = _ops()
    monkeypatch.setattr(_alloc, "POISON", True)  # the conditioning workspace starts as NaN
    return mod


def _configure(monkeypatch, ops, cluster, max_resident):
    monkeypatch.setattr(ops, "_SAMPLER_CLUSTER", cluster)
    monkeypatch.setattr(ops, "_SAMPLER_MAX_RESIDENT", max_resident)


def _skip_unless_supported(ops, packed, h):
    skip_unsupported(ops.wavenet_sample_unsupported(packed, h))


def model(K=2, seed=0, **kw):
    torch.manual_seed(seed)
    cfg = dict(layers=6, cycle=3, residual_channels=8, gate_channels=14, skip_channels=10, kernel_size=K,
               n_mels=C, upsample_strides=STRIDES, backend="reference")
    m = GaussianWaveNet(**{**cfg, **kw})
    with torch.no_grad():  # random biases too: nothing trivially zero
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    return m.cuda().eval()


def data(B, frames, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, frames * HOP, generator=g).cuda(), torch.randn(B, C, frames, generator=g).cuda()


def rounded(m, dtype):
    """A float32 copy of ``m`` whose weights are rounded to ``dtype`` (the reference for 16-bit runs)."""
    q = GaussianWaveNet(**{**m.config, "backend": "reference"}).cuda().eval()
    q.load_state_dict(m.state_dict())
    with torch.no_grad():
        for p in q.parameters():
            p.copy_(p.to(dtype).float())
    return q


def check(out, ref, dtype, what):
    assert out.shape == ref.shape, what
    assert out.dtype == torch.float32, what
    assert torch.isfinite(out).all(), f"{what}: non-finite values (an unwritten element?)"
    err = rel_err(out, ref)
    assert err <= RTOL[dtype], f"{what}: relative error {err:.3e} > {RTOL[dtype]:.1e} ({dtype})"
    if dtype == torch.float32:
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5, msg=what)


# ---- teacher forcing ------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("K", [2, 3])
@pytest.mark.gpu
def test_teacher_forced_equals_forward(ops, monkeypatch, K, dtype, config):
    _configure(monkeypatch, ops, *config)
    m = model(K, seed=K)
    x, mel = data(3, 14, seed=K)
    assert x.shape[1] > 2 * m.receptive_field
    with torch.no_grad():
        h = m.upsampler(mel)
    p = pack_wavenet(m)
    _skip_unless_supported(ops, p, h.to(dtype))
    if dtype == torch.float32:
        with torch.no_grad():
            mean_ref, ls_ref = m(x, mel)
    else:
        q = rounded(m, dtype)
        mean_ref, ls_ref = wavenet_sample_ref(pack_wavenet(q), h.to(dtype).float(), teacher_forcing=x.to(dtype).float())
    for chunk in (7, 1024):  # 7 does not divide T: several launches, the ring carried across them
        mean, ls = wavenet_sample(p, h.to(dtype), teacher_forcing=x.to(dtype), backend="cuda", chunk=chunk)
        check(mean, mean_ref, dtype, f"mean chunk={chunk}")
        check(ls, ls_ref, dtype, f"log_scale chunk={chunk}")


@pytest.mark.gpu
@pytest.mark.parametrize("B", [1, 3, 64])
@pytest.mark.gpu
def test_batch_sizes(ops, monkeypatch, B):
    m = model(2, seed=B)
    x, mel = data(B, 10, seed=B)
    with torch.no_grad():
        h = m.upsampler(mel)
        mean_ref, ls_ref = m(x, mel)
    p = pack_wavenet(m)
    for config in ((0, -1), (4, 3)):
        _configure(monkeypatch, ops, *config)
        _skip_unless_supported(ops, p, h)
        mean, ls = wavenet_sample(p, h, teacher_forcing=x, backend="cuda", chunk=25)
        check(mean, mean_ref, torch.float32, f"mean B={B} config={config}")
        check(ls, ls_ref, torch.float32, f"log_scale B={B} config={config}")


@pytest.mark.gpu
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("K", [2, 3])
def test_shallow_stacks(ops, monkeypatch, K, layers):
    # one layer: the next step's layer-0 taps are fetched in the phase right after their write
    m = model(K, seed=layers, layers=layers, cycle=layers)
    x, mel = data(2, 8, seed=layers)
    with torch.no_grad():
        h = m.upsampler(mel)
        mean_ref, ls_ref = m(x, mel)
    p = pack_wavenet(m)
    for config in ((0, -1), (2, 0)):
        _configure(monkeypatch, ops, *config)
        _skip_unless_supported(ops, p, h)
        mean, ls = wavenet_sample(p, h, teacher_forcing=x, backend="cuda", chunk=13)
        check(mean, mean_ref, torch.float32, f"mean layers={layers} config={config}")
        check(ls, ls_ref, torch.float32, f"log_scale layers={layers} config={config}")


@pytest.mark.gpu
def test_group_loop_and_small_conditioning_workspace(ops, monkeypatch):
    # a workspace cap of 5 steps forces many chunks (the ring and x_{t-1} carried across launches);
    # B = 20 is split into batch groups however the plan chooses, and every element must be right
    monkeypatch.setattr(ops, "_SAMPLER_COND_BYTES", 4 * 20 * 6 * 14 * 5)  # 5 steps per chunk
    m = model(3, seed=5)
    x, mel = data(20, 9, seed=5)
    with torch.no_grad():
        h = m.upsampler(mel)
        mean_ref, ls_ref = m(x, mel)
    p = pack_wavenet(m)
    _skip_unless_supported(ops, p, h)
    plan = ops._sampler_plan(p, h, 20)
    assert plan.groups * plan.group_batch >= 20 and plan.group_batch <= plan.batch_template
    mean, ls = wavenet_sample(p, h, teacher_forcing=x, backend="cuda", chunk=1024)
    check(mean, mean_ref, torch.float32, "mean")
    check(ls, ls_ref, torch.float32, "log_scale")


# ---- free-running -----------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("K", [2, 3])
@pytest.mark.gpu
def test_free_running_equals_reference(ops, monkeypatch, K, dtype, config):
    _configure(monkeypatch, ops, *config)
    m = model(K, seed=7 + K)
    _, mel = data(2, 8)
    T = 8 * HOP
    noise = torch.randn(2, T, generator=torch.Generator().manual_seed(5)).cuda()
    with torch.no_grad():
        h = m.upsampler(mel)
    p = pack_wavenet(m)
    _skip_unless_supported(ops, p, h.to(dtype))
    a = wavenet_sample(p, h.to(dtype), noise.to(dtype), temperature=0.7, backend="cuda", chunk=5)
    ref_model = m if dtype == torch.float32 else rounded(m, dtype)
    b = wavenet_sample_ref(pack_wavenet(ref_model), h.to(dtype).float(), noise.to(dtype).float(), temperature=0.7,
                           chunk=5)
    check(a, b, dtype, "x")
    if dtype == torch.float32:
        # re-derived in parallel: every sample is mean + scale * temperature * noise of the samples before it
        with torch.no_grad():
            mean, log_scale = m(a, mel)
        torch.testing.assert_close(a, mean + torch.exp(log_scale.clamp(min=-9.0)) * 0.7 * noise, rtol=1e-5, atol=1e-5)
        # log_scale_min is honoured
        c = wavenet_sample(p, h, noise, log_scale_min=0.5, backend="cuda")
        d = wavenet_sample_ref(p, h, noise, log_scale_min=0.5)
        check(c, d, dtype, "x with log_scale_min=0.5")


@pytest.mark.gpu
def test_odd_length_and_strided_inputs(ops):
    m = model(3, seed=4)
    p = pack_wavenet(m)
    T = 47  # odd, not a multiple of the hop, longer than the receptive field (29)
    g = torch.Generator().manual_seed(9)
    hw = torch.randn(3, C + 2, 2 * T, generator=g).cuda()
    h = hw[:, 1 : C + 1, ::2]  # a slice of a wider tensor: strides (2T(C+2), 2T, 2)
    assert not h.is_contiguous()
    xw = torch.randn(3, 3 * T, generator=g).cuda()
    x = xw[:, 1::3]
    _skip_unless_supported(ops, p, h)
    mr, lr = wavenet_sample_ref(p, h.contiguous(), teacher_forcing=x.contiguous(), chunk=10)
    mc, lc = wavenet_sample(p, h, teacher_forcing=x, backend="cuda", chunk=10)
    check(mc, mr, torch.float32, "mean (strided)")
    check(lc, lr, torch.float32, "log_scale (strided)")
    # time-major h (stride_t = C)
    ht = h.transpose(1, 2).contiguous().transpose(1, 2)
    mt, lt = wavenet_sample(p, ht, teacher_forcing=x, backend="cuda", chunk=10)
    assert torch.equal(mt, mc) and torch.equal(lt, lc)
    # free-running from strided noise
    nz = torch.randn(3, 2 * T, generator=g).cuda()[:, ::2]
    a = wavenet_sample(p, h, nz, temperature=0.5, backend="cuda", chunk=10)
    b = wavenet_sample_ref(p, h.contiguous(), nz.contiguous(), temperature=0.5, chunk=10)
    check(a, b, torch.float32, "x (strided)")


@pytest.mark.gpu
def test_every_output_written(ops, monkeypatch):
    # the launcher called directly with NaN-filled outputs; the workspace is poisoned by the fixture
    _configure(monkeypatch, ops, 2, 1)
    m = model(2, seed=3)
    x, mel = data(5, 7, seed=3)
    with torch.no_grad():
        h = m.upsampler(mel)
    p = pack_wavenet(m)
    _skip_unless_supported(ops, p, h)
    B, T = x.shape
    outs = [torch.full((B, T), float("nan"), device="cuda") for _ in range(3)]
    ops.wavenet_sample_run(p, h, x, True, *outs, 1.0, -9.0, 11)
    mr, lr = wavenet_sample_ref(p, h, teacher_forcing=x)
    assert torch.equal(outs[0], x)  # teacher forcing: x is the audio
    check(outs[1], mr, torch.float32, "mean")
    check(outs[2], lr, torch.float32, "log_scale")
    noise = torch.randn(B, T, device="cuda")
    outs = [torch.full((B, T), float("nan"), device="cuda") for _ in range(3)]
    ops.wavenet_sample_run(p, h, noise, False, *outs, 0.8, -9.0, 11)
    assert all(torch.isfinite(o).all() for o in outs)
    check(outs[0], wavenet_sample_ref(p, h, noise, temperature=0.8), torch.float32, "x")


@pytest.mark.gpu
@pytest.mark.parametrize("forced", [True, False])
@pytest.mark.gpu
def test_carried_state_continues_a_sequence(ops, monkeypatch, forced):
    # the launcher's optional state (the layout of clarinet.ops.wavenet_sample.SamplerState): two
    # calls over [0, 20) and [20, T) give the samples of one call over [0, T), and the state they leave
    # equals the reference backend's
    from clarinet.ops.wavenet_sample import sampler_state

    _configure(monkeypatch, ops, 2, 3)
    m = model(3, seed=6)
    _, mel = data(2, 9, seed=6)
    with torch.no_grad():
        h = m.upsampler(mel)
    p = pack_wavenet(m)
    _skip_unless_supported(ops, p, h)
    B, T = h.shape[0], h.shape[2]
    src = torch.randn(B, T, generator=torch.Generator().manual_seed(2)).cuda()
    whole = [torch.empty(B, T, device="cuda") for _ in range(3)]
    ops.wavenet_sample_run(p, h, src, forced, *whole, 0.6, -9.0, 8)
    state = torch.zeros(B, p.state_size, device="cuda")
    parts = []
    for t0, t1 in ((0, 20), (20, T)):
        outs = [torch.empty(B, t1 - t0, device="cuda") for _ in range(3)]
        ops.wavenet_sample_run(p, h[:, :, t0:t1], src[:, t0:t1], forced, *outs, 0.6, -9.0, 8, state=state, step0=t0)
        parts.append(outs)
    for i, name in enumerate(("x", "mean", "log_scale")):
        got = torch.cat([parts[0][i], parts[1][i]], dim=1)
        check(got, whole[i], torch.float32, f"{name} continued")
    ref_state = sampler_state(p, B, device="cuda")
    kw = dict(teacher_forcing=src) if forced else dict(noise=src, temperature=0.6)
    wavenet_sample(p, h, backend="reference", state=ref_state, **kw)
    torch.testing.assert_close(state, ref_state.buffers, rtol=1e-5, atol=1e-5)


@pytest.mark.gpu
def test_packed_weights_cached(ops):
    m = model(2, seed=1)
    x, mel = data(2, 5)
    with torch.no_grad():
        h = m.upsampler(mel)
    p = pack_wavenet(m)
    _skip_unless_supported(ops, p, h)
    wavenet_sample(p, h, teacher_forcing=x, backend="cuda")
    keys = [k for k in p._copies if isinstance(k, tuple) and k and k[0] == "_cuda_sampler"]
    assert len(keys) == 1
    first = p._copies[keys[0]]
    wavenet_sample(p, h, teacher_forcing=x, backend="cuda")
    assert p._copies[keys[0]] is first  # not repacked per call


@pytest.mark.gpu
def test_empty(ops):
    m = model(2)
    p = pack_wavenet(m)
    for B, T in ((2, 0), (0, 12)):
        h = torch.randn(B, C, T, device="cuda")
        x = wavenet_sample(p, h, backend="cuda")
        assert x.shape == (B, T) and x.dtype == torch.float32
        mean, ls = wavenet_sample(p, h, teacher_forcing=torch.randn(B, T, device="cuda"), backend="cuda")
        assert mean.shape == ls.shape == (B, T)


# ---- limits -------------------------------------------------------------------------------------------


@pytest.mark.gpu
def test_too_large_model_is_reported_and_auto_falls_back(ops):
    big = model(2, seed=2, layers=2, cycle=2, residual_channels=4, gate_channels=2 * 16 * 16 + 2, skip_channels=4)
    x, mel = data(1, 4)
    with torch.no_grad():
        h = big.upsampler(mel)
    p = pack_wavenet(big)
    reason = ops.wavenet_sample_unsupported(p, h)
    assert reason is not None and "gate channels" in reason
    with pytest.raises(ValueError, match="persistent sampler"):
        wavenet_sample(p, h, teacher_forcing=x, backend="cuda")
    mean, ls = wavenet_sample(p, h, teacher_forcing=x, backend="auto")  # triton or the reference
    mr, lr = wavenet_sample_ref(p, h, teacher_forcing=x)
    torch.testing.assert_close(mean, mr, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(ls, lr, rtol=1e-4, atol=1e-4)


@pytest.mark.gpu
@pytest.mark.parametrize("preset", ["teacher-small", "teacher"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.gpu
def test_plans_for_the_presets(ops, preset, dtype):
    # the design's expectations (csrc/cuda/wavenet_sampler.cu): both presets run; teacher-small in
    # 16-bit keeps every layer in shared memory
    m = GaussianWaveNet.from_preset(preset)
    p = pack_wavenet(m)
    h = torch.empty(1, 80, 1, device="cuda", dtype=dtype)
    for B in (1, 64):
        plan = ops._sampler_plan(p, h, B)
        assert plan.ok, plan.reason
        assert plan.groups * plan.group_batch >= B and 1 <= plan.group_batch <= plan.batch_template
        if preset == "teacher-small" and dtype != torch.float32 and B == 1:
            assert plan.resident_layers == 20, plan


# ---- compute-sanitizer ----------------------------------------------------------------------------------

_SANITIZER_SCRIPT = textwrap.dedent(
    """
    import torch
    from clarinet import _cuda_ops as ops
    from clarinet.models import GaussianWaveNet
    from clarinet.ops.wavenet_sample import pack_wavenet, wavenet_sample

    torch.manual_seed(0)
    m = GaussianWaveNet(layers=4, cycle=2, residual_channels=8, gate_channels=14, skip_channels=10,
                        kernel_size=3, n_mels=5, upsample_strides=(2, 3), backend="reference").cuda()
    p = pack_wavenet(m)
    h = torch.randn(3, 5, 40, device="cuda")
    noise = torch.randn(3, 40, device="cuda")
    checked = 0
    for cluster, resident in ((0, -1), (2, 1), (4, 0)):
        ops._SAMPLER_CLUSTER, ops._SAMPLER_MAX_RESIDENT = cluster, resident
        reason = ops.wavenet_sample_unsupported(p, h)
        if reason is not None:
            print(f"sanitizer-unsupported cluster={cluster} resident={resident}: {reason}")
            continue
        for dtype in (torch.float32, torch.float16):
            wavenet_sample(p, h.to(dtype), noise.to(dtype), backend="cuda", chunk=9)
            wavenet_sample(p, h.to(dtype), teacher_forcing=noise.to(dtype), backend="cuda", chunk=64)
            checked += 1
    torch.cuda.synchronize()
    print(f"sanitizer-script-done configurations={checked}")
    """
)


#: seconds each compute-sanitizer run may take (CLARINET_SANITIZER_TIMEOUT): the whole GPU session
#: has about 15 minutes, and both tools on the script above take well under one each
SANITIZER_TIMEOUT = float(os.environ.get("CLARINET_SANITIZER_TIMEOUT", "240"))


@pytest.mark.gpu
@pytest.mark.parametrize("tool", ["memcheck", "racecheck"])
def test_compute_sanitizer(tool, tmp_path):
    _ops()
    exe = shutil.which("compute-sanitizer")
    if exe is None:
        pytest.fail("compute-sanitizer is not on PATH (it ships with the CUDA toolkit)")
    script = tmp_path / "sample.py"
    script.write_text(_SANITIZER_SCRIPT)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
    proc = subprocess.run([exe, "--tool", tool, "--error-exitcode", "99", sys.executable, str(script)],
                          capture_output=True, text=True, timeout=SANITIZER_TIMEOUT, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    assert "sanitizer-script-done" in out, out[-6000:]
    checked = int(out.split("sanitizer-script-done configurations=")[1].split()[0])
    assert checked >= 1, "compute-sanitizer checked no sampler configuration:\n" + out[-6000:]
    assert "ERROR SUMMARY: 0 errors" in out or "RACECHECK SUMMARY: 0 hazards" in out, out[-6000:]


# ---- CPU: the packed layout and the kernel's decomposition, emulated in float64 --------------------------


def _emulate(packed, plan, h, src, forced, temperature, log_scale_min, step0=0, clip=1.0):
    """The sampler kernel's arithmetic on the packed buffers, in float64 with torch ops: per rank the
    2g gate columns, the partial residual/skip products with the bias row, the head's column split;
    free-running samples clamped to [-clip, clip] before they are fed back (the op's default 1.0)."""
    ops = _ops()
    wpack, fpack, wcond, bcond = ops._sampler_weights(packed, torch.device("cpu"), torch.float32, plan)
    wpack, fpack, wcond, bcond = (t.double() for t in (wpack, fpack, wcond, bcond))
    c = packed.config
    L, R, G, S, K, dil = c["layers"], c["R"], c["G"], c["S"], c["K"], c["dilations"]
    G2, N, g, S1, RS = G // 2, plan.cluster, plan.gate_per_cta, plan.skip_per_cta, R + S
    B, _, T = h.shape
    cond = torch.einsum("cq,bct->btq", wcond, h.double()) + bcond  # (B, T, L*G)
    w_in, b_in, b2, b1 = fpack[:R], fpack[R : 2 * R], fpack[2 * R : 2 * R + 2], fpack[2 * R + 2 :]
    rings = [torch.zeros(B, (K - 1) * d, R, dtype=torch.float64) for d in dil]
    x_prev = torch.zeros(B, dtype=torch.float64)
    outs = [torch.zeros(B, T, dtype=torch.float64) for _ in range(3)]
    for t in range(T):
        x = x_prev[:, None] * w_in + b_in
        skip = torch.zeros(N, B, S, dtype=torch.float64)
        for i, d in enumerate(dil):
            Lr = (K - 1) * d
            taps = [rings[i][:, (step0 + t - (K - 1 - k) * d) % Lr] for k in range(K - 1)]
            inp = torch.cat(taps + [x], dim=1)
            if Lr:
                rings[i][:, (step0 + t) % Lr] = x
            base = plan.head_elems + i * plan.layer_elems
            res = torch.zeros(B, R, dtype=torch.float64)
            for j in range(N):
                wa = wpack[j, base : base + K * R * 2 * g].view(K * R, 2 * g)
                wrs = wpack[j, base + plan.wa_elems : base + plan.wa_elems + (g + 1) * RS].view(g + 1, RS)
                gates = torch.arange(j * g, j * g + g)
                valid = gates < G2
                ct = torch.zeros(B, g, dtype=torch.float64)
                cs = torch.zeros(B, g, dtype=torch.float64)
                ct[:, valid] = cond[:, t, i * G + gates[valid]]
                cs[:, valid] = cond[:, t, i * G + G2 + gates[valid]]
                a = inp @ wa
                z = torch.tanh(a[:, :g] + ct) * torch.sigmoid(a[:, g:] + cs)
                part = torch.cat([z, torch.ones(B, 1, dtype=torch.float64)], dim=1) @ wrs
                res += part[:, :R]
                skip[j] += part[:, R:]
            x = (x + res) * 0.5 ** 0.5
        y = torch.relu(skip.sum(0) * (1.0 / L) ** 0.5)
        po = torch.zeros(B, 2, dtype=torch.float64)
        for j in range(N):
            w1 = wpack[j, : S * S1].view(S, S1)
            w2 = wpack[j, plan.head1_elems : plan.head1_elems + 2 * S1].view(S1, 2)
            po += torch.relu(y @ w1 + b1[j * S1 : (j + 1) * S1]) @ w2
        mean, ls = po[:, 0] + b2[0], po[:, 1] + b2[1]
        xt = src[:, t].double() if forced else (
            mean + torch.exp(ls.clamp(min=log_scale_min)) * temperature * src[:, t]).clamp(-clip, clip)
        outs[0][:, t], outs[1][:, t], outs[2][:, t] = xt, mean, ls
        x_prev = xt
    return outs


@pytest.mark.parametrize("cluster", [1, 4, 8])
@pytest.mark.parametrize("K", [2, 3])
def test_packed_layout_emulated_on_cpu(K, cluster):
    ops = _ops()
    torch.manual_seed(K)
    m = GaussianWaveNet(layers=4, cycle=2, residual_channels=6, gate_channels=14, skip_channels=10, kernel_size=K,
                        n_mels=C, upsample_strides=STRIDES, backend="reference")
    with torch.no_grad():
        for prm in m.parameters():
            prm.add_(torch.randn_like(prm) * 0.2)
    p = pack_wavenet(m)
    R, G, S, K_, C_, dil = ops._sampler_dims(p)
    plan = ops._cuda.wavenet_sampler_layout(R, G, S, K_, C_, list(dil), ops._cuda.DTYPE_FLOAT32, cluster)
    assert not plan.ok and plan.cluster == cluster
    assert plan.rank_elems == plan.head_elems + len(dil) * plan.layer_elems
    g = torch.Generator().manual_seed(3)
    h = torch.randn(2, C, 30, generator=g)
    audio = torch.randn(2, 30, generator=g)
    _, mean, ls = _emulate(p, plan, h, audio, True, 1.0, -9.0)
    mr, lr = wavenet_sample_ref(p, h, teacher_forcing=audio)
    torch.testing.assert_close(mean.float(), mr, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ls.float(), lr, rtol=1e-4, atol=1e-5)
    x, _, _ = _emulate(p, plan, h, audio, False, 0.7, -9.0)
    torch.testing.assert_close(x.float(), wavenet_sample_ref(p, h, audio, temperature=0.7), rtol=1e-4, atol=1e-4)
