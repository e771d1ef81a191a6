"""The Triton incremental sampler (kernels/wavenet_sample.py) against model.forward and the reference sampler.

On CPU the kernel runs through the Triton interpreter (tests/conftest.py sets TRITON_INTERPRET=1),
which costs about 30 ms per program per step for this 4-layer model: shapes stay small, and the
tl.dot path (block_b=16, every row in one program) carries the batch > 1 cases where the
broadcast-reduce path (one row per program) is not the point. Outputs are NaN before the kernel
runs, so an unwritten element fails. GPU cases (presets, batch 64, fp16/bf16) are marked ``gpu``.
"""
import math

import pytest
import torch

from clarinet.models import GaussianWaveNet
from clarinet.ops.wavenet_sample import pack_wavenet, wavenet_sample
from clarinet.testing import assert_close

from conftest import DEVICE, HAS_GPU

pytestmark = pytest.mark.triton  # Triton kernels: on the GPU when there is one (conftest)

C, STRIDES = 5, (2, 3)
HOP = 6


def _kernels():
    from clarinet.kernels import wavenet_sample as ks

    return ks


def model(K=2, seed=0, **kw):
    torch.manual_seed(seed)
    cfg = dict(layers=4, cycle=2, residual_channels=8, gate_channels=12, skip_channels=10, kernel_size=K,
               n_mels=C, upsample_strides=STRIDES, backend="reference")
    m = GaussianWaveNet(**{**cfg, **kw})
    with torch.no_grad():  # random biases too: nothing trivially zero
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    return m.to(DEVICE)


def data(B, frames, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, frames * HOP, generator=g)
    mel = torch.randn(B, C, frames, generator=g)
    return x.to(DEVICE), mel.to(DEVICE)


def run(packed, h, src, forced, *, chunk=1024, block_b=None, temperature=1.0, log_scale_min=-9.0, state=None,
        step0=0, clip=1.0):
    """The launcher called directly, on NaN-filled outputs: (x, mean, log_scale)."""
    B, T = src.shape
    out = [torch.full((B, T), float("nan"), device=h.device) for _ in range(3)]
    _kernels().wavenet_sample_run(packed, h, src, forced, *out, temperature, log_scale_min, chunk,
                                  state=state, step0=step0, block_b=block_b, clip=clip)
    return out


def forward(m, x, mel):
    with torch.no_grad():
        return m(x, mel)


def upsample(m, mel):
    with torch.no_grad():
        return m.upsampler(mel)


# ----------------------------------------------------------------------------------------------
# CPU (interpreter) and GPU


@pytest.mark.parametrize("K,B,block_b,chunk,frames", [
    (2, 1, None, 7, 7),     # broadcast-reduce path; chunk 7 does not divide T = 42: chunk borders crossed
    (3, 3, None, 1024, 5),  # three programs, two ring taps per layer, T = 30
    (2, 3, 16, 7, 7),       # tl.dot path: 16 rows per program, 13 of them masked
])
def test_teacher_forced_equals_forward(K, B, block_b, chunk, frames):
    m = model(K, seed=K + B)
    x, mel = data(B, frames, seed=B)  # odd numbers of frames; receptive field 7 (K 2) / 13 (K 3)
    assert x.shape[1] > 2 * m.receptive_field
    mean, log_scale = forward(m, x, mel)
    p = pack_wavenet(m)
    xo, mo, lo = run(p, upsample(m, mel), x, True, chunk=chunk, block_b=block_b)
    assert mo.dtype == torch.float32 and mo.shape == x.shape
    assert_close(mo, mean, torch.float32, "mean")
    assert_close(lo, log_scale, torch.float32, "log_scale")
    assert torch.equal(xo, x)  # teacher forcing: the output samples are the audio


@pytest.mark.parametrize("block_b", [None, 16])
def test_free_running_equals_reference(block_b):
    B = 2
    m = model(3, seed=7)
    _, mel = data(B, 4)
    T = 4 * HOP  # 24 > receptive field 13
    noise = torch.randn(B, T, generator=torch.Generator().manual_seed(5)).to(DEVICE)
    h = upsample(m, mel)
    p = pack_wavenet(m)
    x, mean, log_scale = run(p, h, noise, False, chunk=4, block_b=block_b, temperature=0.7, log_scale_min=-0.4)
    ref = wavenet_sample(p, h, noise, temperature=0.7, log_scale_min=-0.4, backend="reference", chunk=4)
    assert_close(x, ref, torch.float32, "x")
    # re-derived in parallel: every sample is mean + scale * temperature * noise of the samples before it
    fm, fl = forward(m, x, mel)
    assert_close(mean, fm, torch.float32, "mean")
    assert_close(log_scale, fl, torch.float32, "log_scale")
    assert_close(x, (fm + torch.exp(fl.clamp(min=-0.4)) * 0.7 * noise).clamp(-1, 1), torch.float32, "x re-derived")
    assert (fl < -0.4).any() and (fl > -0.4).any(), "the log-scale floor was not exercised"


def test_dispatcher_and_strided_inputs():
    """wavenet_sample(backend='triton'), with h and the audio slices of wider tensors."""
    B = 2
    m = model(2, seed=4)
    x, mel = data(B, 5)
    h = upsample(m, mel)
    mean, log_scale = forward(m, x, mel)
    hw = torch.randn(B, C + 3, 2 * h.shape[2], device=DEVICE)
    hw[:, 1:C + 1, 1::2] = h
    xw = torch.randn(B + 1, 3 * x.shape[1], device=DEVICE)
    xw[1:, ::3] = x
    hs, xs = hw[:, 1:C + 1, 1::2], xw[1:, ::3]
    assert not hs.is_contiguous() and not xs.is_contiguous()
    p = pack_wavenet(m)
    ms, ls = wavenet_sample(p, hs, teacher_forcing=xs, backend="triton", chunk=9)
    assert_close(ms, mean, torch.float32, "mean")
    assert_close(ls, log_scale, torch.float32, "log_scale")
    # free-running through the dispatcher (strided noise), same noise as the reference
    nw = torch.randn(1, 2 * 11, device=DEVICE)
    a = wavenet_sample(p, hs[1:, :, :11], nw[:, ::2], backend="triton", chunk=4)
    b = wavenet_sample(p, h[1:, :, :11], nw[:, ::2].contiguous(), backend="reference")
    assert_close(a, b, torch.float32, "x")


def test_float16():
    # weights and h rounded to float16; products accumulate in float32
    B = 3
    m = model(2, seed=12)
    x, mel = data(B, 5)
    mean, log_scale = forward(m, x, mel)
    h = upsample(m, mel).half()
    p = pack_wavenet(m)
    for block_b, rows in ((1, slice(0, 1)), (16, slice(None))):  # broadcast path on one row (3 programs cost 3x)
        _, mh, lh = run(p, h[rows], x[rows].half(), True, block_b=block_b, chunk=11)
        assert mh.dtype == torch.float32
        assert_close(mh, mean[rows], torch.float16, f"mean block_b={block_b}")
        assert_close(lh, log_scale[rows], torch.float16, f"log_scale block_b={block_b}")


def test_state_continues_the_sequence():
    """Two calls carrying the state (C++ sampler layout) give the samples of one call."""
    B = 2
    m = model(3, seed=21)
    _, mel = data(B, 6)
    T = 6 * HOP
    noise = torch.randn(B, T, generator=torch.Generator().manual_seed(3)).to(DEVICE)
    h = upsample(m, mel)
    p = pack_wavenet(m)
    cfg = p.config
    size = 1 + sum((cfg["K"] - 1) * d * cfg["R"] for d in cfg["dilations"])
    whole = run(p, h, noise, False, block_b=16, chunk=8)
    state = torch.zeros(B, size, device=DEVICE)
    cut = 17
    first = run(p, h[:, :, :cut], noise[:, :cut], False, block_b=16, chunk=8, state=state, step0=0)
    assert torch.equal(state[:, 0], first[0][:, -1])  # the input of the next step: the last sample
    second = run(p, h[:, :, cut:], noise[:, cut:], False, block_b=16, chunk=8, state=state, step0=cut)
    for a, b1, b2, what in zip(whole, first, second, ("x", "mean", "log_scale")):
        assert_close(torch.cat([b1, b2], 1), a, torch.float32, what)
    # silence at a clock beyond int32 is silence: the same samples (ring slots from the clock)
    far = run(p, h, noise, False, block_b=16, chunk=7, state=torch.zeros(B, size, device=DEVICE), step0=2 ** 33 + 5)
    assert_close(far[0], whole[0], torch.float32, "x at a far clock")


def test_state_layout_matches_reference():
    """The carried state is the reference stepper's: its rings, slot step % L, after the last sample."""
    import inspect

    from clarinet.models.wavenet import incremental_sample

    if "state" not in inspect.signature(incremental_sample).parameters:
        pytest.skip("the reference sampler does not carry a state in this tree")
    B = 1
    m = model(2, seed=22)
    _, mel = data(B, 4)
    T = 4 * HOP
    noise = torch.randn(B, T, device=DEVICE)
    h = upsample(m, mel)
    p = pack_wavenet(m)
    cfg = p.config
    size = 1 + sum((cfg["K"] - 1) * d * cfg["R"] for d in cfg["dilations"])
    s_ref = torch.zeros(B, size, device=DEVICE)
    s_tri = torch.zeros(B, size, device=DEVICE)
    with torch.no_grad():
        ref = incremental_sample(m.wavenet, h, None, noise, 1.0, False, -9.0, 1024, state=s_ref, step0=0, clip=1.0)[0]
    x = run(p, h, noise, False, state=s_tri)[0]
    assert_close(x, ref, torch.float32, "x")
    assert_close(s_tri, s_ref, torch.float32, "state")


def test_empty_and_unsupported():
    m = model(2)
    p = pack_wavenet(m)
    assert _kernels().wavenet_sample_unsupported(p, torch.zeros(1, C, 1, device=DEVICE)) is None
    for B, T in ((2, 0), (0, 12)):
        h = torch.randn(B, C, T, device=DEVICE)
        x = wavenet_sample(p, h, backend="triton")
        assert x.shape == (B, T)
        mean, ls = wavenet_sample(p, h, teacher_forcing=torch.randn(B, T, device=DEVICE), backend="triton")
        assert mean.shape == ls.shape == (B, T)
        out = run(p, h, torch.randn(B, T, device=DEVICE), False)  # the launcher itself: a no-op
        assert all(o.shape == (B, T) for o in out)


def test_launcher_checks():
    m = model(2)
    p = pack_wavenet(m)
    ks = _kernels()
    B, T = 2, 6
    h, src = torch.randn(B, C, T, device=DEVICE), torch.randn(B, T, device=DEVICE)
    out = [torch.empty(B, T, device=DEVICE) for _ in range(3)]
    with pytest.raises(ValueError, match="h"):
        ks.wavenet_sample_run(p, torch.randn(B, C + 1, T, device=DEVICE), src, False, *out, 1.0, -9.0, 8)
    with pytest.raises(ValueError, match="mean"):
        ks.wavenet_sample_run(p, h, src, False, out[0], out[1][:, :-1], out[2], 1.0, -9.0, 8)
    with pytest.raises(ValueError, match="src"):
        ks.wavenet_sample_run(p, h, src.half(), False, *out, 1.0, -9.0, 8)
    with pytest.raises(ValueError, match="chunk"):
        ks.wavenet_sample_run(p, h, src, False, *out, 1.0, -9.0, 0)
    with pytest.raises(ValueError, match="state"):
        ks.wavenet_sample_run(p, h, src, False, *out, 1.0, -9.0, 8, state=torch.zeros(B, 3, device=DEVICE))
    with pytest.raises(ValueError, match="step0"):
        ks.wavenet_sample_run(p, h, src, False, *out, 1.0, -9.0, 8, step0=-1)
    with pytest.raises(ValueError, match="block_b"):
        ks.wavenet_sample_run(p, h, src, False, *out, 1.0, -9.0, 8, block_b=3)


@pytest.mark.skipif(HAS_GPU, reason="checks the CPU error without the interpreter")
def test_cpu_without_interpreter_is_refused(monkeypatch):
    m = model(2)
    p = pack_wavenet(m)
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ValueError, match="TRITON_INTERPRET"):
        wavenet_sample(p, torch.randn(1, C, 6), backend="triton")
    with pytest.raises(ValueError, match="bfloat16"):  # the interpreter has no bfloat16
        monkeypatch.setenv("TRITON_INTERPRET", "1")
        wavenet_sample(p, torch.randn(1, C, 6, dtype=torch.bfloat16), backend="triton")


# ----------------------------------------------------------------------------------------------
# GPU only: the reference-configuration presets


@pytest.mark.gpu
@pytest.mark.parametrize("preset", ["teacher-small", "teacher"])
@pytest.mark.parametrize("B", [1, 64])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_presets_teacher_forced(preset, B, dtype):
    torch.manual_seed(0)
    m = GaussianWaveNet.from_preset(preset, backend="reference").to("cuda")
    frames = 8  # 2400 samples > receptive field 2047
    g = torch.Generator(device="cuda").manual_seed(1)
    x = 0.3 * torch.randn(B, frames * m.hop_length, device="cuda", generator=g)
    mel = torch.randn(B, m.n_mels, frames, device="cuda", generator=g)
    mean, log_scale = forward(m, x, mel)
    h = upsample(m, mel)
    p = pack_wavenet(m)
    mo, lo = wavenet_sample(p, h.to(dtype), teacher_forcing=x.to(dtype), backend="triton", chunk=1000)
    # the reference sees the same rounded input audio
    if dtype != torch.float32:
        mean, log_scale = forward(m, x.to(dtype).float(), mel)
    assert_close(mo, mean, dtype, "mean")
    assert_close(lo, log_scale, dtype, "log_scale")


@pytest.mark.gpu
@pytest.mark.parametrize("B", [1, 64])
def test_presets_free_running_consistent(B):
    """Free-running teacher-small: every sample re-derived from model.forward over the samples drawn."""
    torch.manual_seed(0)
    m = GaussianWaveNet.from_preset("teacher-small", backend="reference").to("cuda")
    frames = 8
    mel = torch.randn(B, m.n_mels, frames, device="cuda")
    noise = torch.randn(B, frames * m.hop_length, device="cuda")
    p = pack_wavenet(m)
    x = wavenet_sample(p, upsample(m, mel), noise, temperature=0.8, backend="triton", chunk=700)
    fm, fl = forward(m, x, mel)
    assert_close(x, fm + torch.exp(fl.clamp(min=-9.0)) * 0.8 * noise, torch.float32, "x")
    assert math.isfinite(x.abs().max().item())
