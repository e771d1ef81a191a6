"""Serving: batches of different lengths (frame_lengths), clipped feedback and the non-finite check.

Every CPU backend of the autoregressive sampler (reference, cpp, Triton through the interpreter) and
the IAF: row b of a padded batch equals generating that row alone with the same noise.
"""
import math

import pytest
import torch

from clarinet.models import GaussianIAF, GaussianWaveNet
from clarinet.ops.wavenet_sample import NonFiniteSampleError, pack_wavenet, wavenet_sample

C, STRIDES = 5, (2, 3)
HOP = 6
CPU_BACKENDS = ["reference", "cpp", pytest.param("triton", marks=pytest.mark.triton)]


def teacher(seed=0, device="cpu"):
    torch.manual_seed(seed)
    m = GaussianWaveNet(layers=4, cycle=2, residual_channels=8, gate_channels=12, skip_channels=10, kernel_size=2,
                        n_mels=C, upsample_strides=STRIDES, backend="reference")
    with torch.no_grad():  # random biases too: nothing trivially zero
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    return m.to(device)


def student(seed=0):
    torch.manual_seed(seed)
    m = GaussianIAF(flows=2, layers_per_flow=3, cycle=3, residual_channels=8, gate_channels=12, skip_channels=8,
                    kernel_size=3, n_mels=C, upsample_strides=STRIDES, backend="reference")
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return m


def padded_batch(frames, seed=1):
    """mel (B, C, max frames) whose padding is random (it must not matter), noise (B, max frames * HOP)."""
    g = torch.Generator().manual_seed(seed)
    F = max(frames)
    return torch.randn(len(frames), C, F, generator=g), torch.randn(len(frames), F * HOP, generator=g)


def _generate(m, mel, noise, backend, **kw):
    return m.generate(mel, noise=noise, progress=False, backend=backend, **kw)


def _check_rows_alone(out, frames, alone_fn, tol):
    for b, f in enumerate(frames):
        n = f * HOP
        if n:
            torch.testing.assert_close(out[b, :n], alone_fn(b, f)[0], rtol=tol, atol=tol, msg=f"row {b}")
        assert torch.equal(out[b, n:], torch.zeros_like(out[b, n:])), f"row {b}: not zero after its length"


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("frames", [[5, 2, 4], [1, 5, 3], [4, 4, 4], [0, 5, 0]],
                         ids=["mixed", "one-frame", "equal", "all-but-one-empty"])
def test_ar_frame_lengths_rows_equal_alone(backend, frames):
    m = teacher(seed=3)
    mel, noise = padded_batch(frames)
    span = 7  # spans end inside rows: rows leave the batch between spans and within one
    out = _generate(m, mel, noise, backend, frame_lengths=torch.tensor(frames), span=span)
    assert out.shape == noise.shape

    def alone(b, f):
        return _generate(m, mel[b:b + 1, :, :f], noise[b:b + 1, :f * HOP], backend, span=span)

    _check_rows_alone(out, frames, alone, 1e-5)
    if len(set(frames)) == 1 and frames[0] == mel.shape[2]:  # nothing to cut: the plain batch
        torch.testing.assert_close(out, _generate(m, mel, noise, backend, span=span), rtol=1e-5, atol=1e-5)


def test_ar_frame_lengths_cpp_threads_and_op_lengths():
    # several threads, rows handed out longest first; the op's lengths zero each row after its steps
    m = teacher(seed=4)
    frames = [2, 6, 1, 4, 3]
    mel, noise = padded_batch(frames, seed=2)
    out = m.generate(mel, noise=noise, progress=False, backend="cpp", frame_lengths=frames)
    alone = [m.generate(mel[b:b + 1, :, :f], noise=noise[b:b + 1, :f * HOP], progress=False, backend="cpp")
             for b, f in enumerate(frames)]
    _check_rows_alone(out, frames, lambda b, f: alone[b], 1e-5)
    with torch.no_grad():
        h = m.upsampler(mel)
    p = pack_wavenet(m)
    steps = torch.tensor([5, 0, 36, 11, 1])
    full = {bk: wavenet_sample(p, h, noise, backend=bk, num_threads=2) for bk in ("cpp", "reference")}
    for bk in ("cpp", "reference"):
        cut = wavenet_sample(p, h, noise, backend=bk, lengths=steps, num_threads=2)
        for b, n in enumerate(steps.tolist()):
            torch.testing.assert_close(cut[b, :n], full[bk][b, :n], rtol=1e-5, atol=1e-5)
            assert not cut[b, n:].any()
        with pytest.raises(ValueError, match="lengths: 37 steps in row 2, more than the 36 given"):
            wavenet_sample(p, h, noise, backend=bk, lengths=torch.tensor([5, 0, 37, 11, 1]))
        with pytest.raises(ValueError, match="clip: expected None or a float > 0"):
            wavenet_sample(p, h, noise, backend=bk, clip=0.0)
        with pytest.raises(TypeError, match="clip: expected None or a float > 0"):
            wavenet_sample(p, h, noise, backend=bk, clip="big")


@pytest.mark.parametrize("chunk", [None, 7])
def test_iaf_frame_lengths_rows_equal_alone(chunk):
    m = student(seed=5)
    frames = [5, 2, 0, 1]
    mel, noise = padded_batch(frames, seed=3)
    out = m.generate(mel, noise, chunk=chunk, frame_lengths=torch.tensor(frames, dtype=torch.int32))
    _check_rows_alone(out, frames, lambda b, f: m.generate(mel[b:b + 1, :, :f], noise[b:b + 1, :f * HOP]), 1e-5)


@pytest.mark.parametrize("model_fn", [teacher, student], ids=["ar", "iaf"])
def test_bad_frame_lengths(model_fn):
    m = model_fn()
    mel, noise = padded_batch([3, 3])
    gen = (lambda fl: m.generate(mel, noise=noise, progress=False, frame_lengths=fl)) if model_fn is teacher else \
        (lambda fl: m.generate(mel, noise, frame_lengths=fl))
    with pytest.raises(ValueError, match=r"frame_lengths: expected values >= 0, got -1 \(row 1\)"):
        gen(torch.tensor([3, -1]))
    with pytest.raises(ValueError, match="frame_lengths: 4 frames in row 0, more than the 3 given"):
        gen(torch.tensor([4, 2]))
    with pytest.raises(ValueError, match=r"frame_lengths: expected shape \(2,\)"):
        gen(torch.tensor([3, 2, 1]))
    with pytest.raises(ValueError, match=r"frame_lengths: expected shape \(2,\)"):
        gen(torch.tensor([[3, 2]]))
    with pytest.raises(TypeError, match="frame_lengths: expected an integer dtype, got torch.float32"):
        gen(torch.tensor([3.0, 2.0]))
    with pytest.raises(TypeError, match="frame_lengths: expected an integer dtype"):
        gen([True, False])


def _loud(m, log_scale_bias):
    with torch.no_grad():
        m.wavenet.b_out2[1] = log_scale_bias
    return m


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_clip_on_and_off(backend):
    m = _loud(teacher(seed=6), 0.7)
    mel, noise = padded_batch([4, 4], seed=4)
    ref = {clip: _generate(m, mel, noise, "reference", clip=clip) for clip in (1.0, 0.5, None)}
    assert ref[1.0].abs().max() == 1.0 and ref[0.5].abs().max() == 0.5
    assert ref[None].abs().max() > 1.0 and torch.isfinite(ref[None]).all()
    for clip, want in ref.items():
        got = _generate(m, mel, noise, backend, clip=clip)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5, msg=f"clip={clip}")
    assert torch.equal(_generate(m, mel, noise, backend), _generate(m, mel, noise, backend, clip=1.0))  # default


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_huge_log_scale_gives_a_clipped_finite_wave(backend):
    m = _loud(teacher(seed=7), 100.0)  # exp(100) overflows float32: every draw is +-inf before the clamp
    mel, noise = padded_batch([3, 3], seed=5)
    x = _generate(m, mel, noise, backend)
    assert torch.isfinite(x).all()
    assert torch.equal(x.abs(), torch.ones_like(x))
    with pytest.raises(NonFiniteSampleError, match="row 0 at step 0"):
        _generate(m, mel, noise, backend, clip=None)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_nan_mean_raises_naming_row_and_step(backend):
    m = teacher(seed=8)
    frames, span = [1, 5, 5], 7
    mel, noise = padded_batch(frames, seed=6)
    mel[1, 2, 3] = float("nan")  # row 1, frame 3: the conditioning (and so the mean) of a few steps is NaN
    with torch.no_grad():
        h = m.upsampler(mel[1:2])
    step = int(torch.isnan(h[0]).any(0).nonzero()[0, 0])
    assert step >= span  # row 0 has left the batch by then: the error still names the caller's row 1
    for kw in (dict(frame_lengths=frames), {}):
        with pytest.raises(NonFiniteSampleError, match=f"row 1 at step {step} ") as e:
            _generate(m, mel, noise, backend, span=span, **kw)
        assert (e.value.row, e.value.step) == (1, step) and math.isnan(e.value.mean)


@pytest.mark.parametrize("student_vocoder", [False, True], ids=["ar", "iaf"])
def test_synthesize_list(student_vocoder):
    from clarinet.models import TextToWave

    torch.manual_seed(0)
    m = TextToWave.from_preset("text2wave-tiny", backend="reference").eval()
    with torch.no_grad():
        m.decoder.fc_done.bias.fill_(-20.0)  # never done: each text's length is its frame limit below
    voc = None
    if student_vocoder:
        voc = GaussianIAF(flows=2, layers_per_flow=2, cycle=2, residual_channels=4, gate_channels=8, skip_channels=4,
                          n_mels=m.cond_channels, upsample_strides=(5, 10), backend="reference")
    texts = ["ab", "abc ab", "a"]
    limit = {"ab": 6, "abc ab": 3, "a": 9}  # frames per text: three different lengths
    infer = m.infer
    m.infer = lambda text, *, max_frames=None, **kw: infer(text, max_frames=limit[text], **kw)
    hop = m.hop_length
    noise = [torch.randn(limit[t] * hop, generator=torch.Generator().manual_seed(i)) for i, t in enumerate(texts)]
    with pytest.warns(RuntimeWarning, match="no end of utterance"):
        waves, sr, details = m.synthesize(texts, vocoder=voc, progress=False, noise=noise, batch_size=2,
                                          return_details=True)
    assert sr == m.sample_rate and len(waves) == len(details) == 3
    with pytest.warns(RuntimeWarning, match="no end of utterance"):
        for i, t in enumerate(texts):
            alone, _ = m.synthesize(t, vocoder=voc, progress=False, noise=noise[i])
            assert waves[i].shape == (limit[t] * hop,)
            torch.testing.assert_close(waves[i], alone, rtol=1e-5, atol=1e-5)
            assert details[i]["hidden"].shape[-1] == limit[t]
    with pytest.raises(ValueError, match="at least one text"):
        m.synthesize([], progress=False)
    with pytest.raises(ValueError, match="noise: expected None or a list of 3"):
        m.synthesize(texts, noise=noise[:2], progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        m.synthesize(texts, batch_size=0, progress=False)


def test_ar_frame_lengths_with_int8_weights():
    # the C++ sampler's int8 weights (issue 10) take the same per-row lengths and clip
    m = _loud(teacher(seed=9), 0.7)
    frames = [3, 5, 1]
    mel, noise = padded_batch(frames, seed=7)
    kw = dict(progress=False, backend="cpp", sample_dtype=torch.int8, span=7)
    out = m.generate(mel, noise=noise, frame_lengths=frames, **kw)
    assert out.abs().max() <= 1.0
    _check_rows_alone(out, frames, lambda b, f: m.generate(mel[b:b + 1, :, :f], noise=noise[b:b + 1, :f * HOP], **kw),
                      1e-5)


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["cuda", "triton"])
def test_gpu_samplers_frame_lengths_clip_and_nan(backend):
    """On a GPU: the persistent CUDA sampler and the Triton one take frame_lengths, clip and report NaN."""
    m = teacher(seed=3, device="cuda")
    frames = [5, 2, 4]
    mel, noise = (t.cuda() for t in padded_batch(frames))
    if backend == "cuda":
        from clarinet import _cuda_ops

        with torch.no_grad():
            why = _cuda_ops.wavenet_sample_unsupported(pack_wavenet(m), m.upsampler(mel))
        if why is not None:
            pytest.skip(why)
    out = _generate(m, mel, noise, backend, frame_lengths=frames, span=7)
    _check_rows_alone(out, frames, lambda b, f: _generate(m, mel[b:b + 1, :, :f], noise[b:b + 1, :f * HOP], backend,
                                                          span=7), 1e-4)
    torch.testing.assert_close(out, _generate(m, mel, noise, "reference", frame_lengths=frames, span=7),
                               rtol=1e-4, atol=1e-4)
    loud = _loud(teacher(seed=7, device="cuda"), 100.0)
    x = _generate(loud, mel, noise, backend)
    assert torch.equal(x.abs(), torch.ones_like(x))
    with pytest.raises(NonFiniteSampleError, match="row 0 at step 0"):
        _generate(loud, mel, noise, backend, clip=None)
    mel[1, 2, 3] = float("nan")  # in row 1's padding (it has 2 frames): never read
    _generate(m, mel, noise, backend, frame_lengths=frames, span=7)
    mel[2, 2, 3] = float("nan")  # in row 2's last frame
    with pytest.raises(NonFiniteSampleError, match="row 2 at step"):
        _generate(m, mel, noise, backend, frame_lengths=frames, span=7)
