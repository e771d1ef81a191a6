"""clarinet.audio: features (filterbank, STFT, log-mel, STFT loss) and audio files."""
import math
import os

import numpy as np
import pytest
import torch

from clarinet.audio import (AudioConfig, hz_to_mel, load_audio, log_mel, mel_filterbank, mel_to_hz,
                            save_audio, stft, stft_loss, stft_magnitude)

SR = 24000


def _sine(freq, n, sr=SR, amp=0.5, phase=0.0):
    t = np.arange(n) / sr
    return (amp * np.sin(2 * np.pi * freq * t + phase)).astype(np.float32)


# ------------------------------------------------------------------------------------ config
@pytest.mark.parametrize("kwargs, field", [
    (dict(sample_rate=0), "sample_rate"),
    (dict(n_fft=-1), "n_fft"),
    (dict(win_length=0), "win_length"),
    (dict(hop_length=0), "hop_length"),
    (dict(n_mels=0), "n_mels"),
    (dict(win_length=4096), "win_length"),
    (dict(fmax=13000.0), "fmax"),
    (dict(fmin=8000.0, fmax=4000.0), "fmin"),
    (dict(fmin=-1.0), "fmin"),
    (dict(log_floor=0.0), "log_floor"),
])
def test_config_rejects_bad_fields(kwargs, field):
    with pytest.raises(ValueError, match=field):
        AudioConfig(**kwargs)


def test_config_defaults_are_clarinet():
    cfg = AudioConfig()
    assert (cfg.sample_rate, cfg.n_fft, cfg.win_length, cfg.hop_length, cfg.n_mels) == (24000, 2048, 1200, 300, 80)
    assert cfg.max_frequency == 12000.0
    assert hash(cfg) == hash(AudioConfig())


# ------------------------------------------------------------------------------- filterbank
def _numpy_slaney_mel(sr, n_fft, n_mels, fmin, fmax):
    """Independent transcription of Slaney's mel filterbank (Auditory Toolbox / librosa)."""
    def hz2mel(f):
        f = np.asarray(f, dtype=np.float64)
        out = f / (200.0 / 3)
        logf = f >= 1000.0
        out = np.where(logf, 15.0 + np.log(np.maximum(f, 1e-12) / 1000.0) / (np.log(6.4) / 27.0), out)
        return out

    def mel2hz(m):
        m = np.asarray(m, dtype=np.float64)
        out = m * (200.0 / 3)
        return np.where(m >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0)), out)

    freqs = np.arange(n_fft // 2 + 1) * (sr / n_fft)
    edges = mel2hz(np.linspace(hz2mel(fmin), hz2mel(fmax), n_mels + 2))
    fb = np.zeros((n_mels, len(freqs)))
    for i in range(n_mels):
        lo, mid, hi = edges[i], edges[i + 1], edges[i + 2]
        for k, f in enumerate(freqs):
            if lo < f <= mid:
                fb[i, k] = (f - lo) / (mid - lo)
            elif mid < f < hi:
                fb[i, k] = (hi - f) / (hi - mid)
        fb[i] *= 2.0 / (hi - lo)
    return fb


def test_mel_scale_known_points():
    m = hz_to_mel(torch.tensor([0.0, 200.0 / 3, 1000.0, 6400.0]))
    torch.testing.assert_close(m, torch.tensor([0.0, 1.0, 15.0, 42.0], dtype=torch.float64))
    f = torch.tensor([10.0, 500.0, 1000.0, 3000.0, 11000.0], dtype=torch.float64)
    torch.testing.assert_close(mel_to_hz(hz_to_mel(f)), f)


@pytest.mark.parametrize("cfg", [
    AudioConfig(),
    AudioConfig(sample_rate=16000, n_fft=1024, win_length=1024, hop_length=256, n_mels=64, fmin=55.0, fmax=7600.0),
    AudioConfig(sample_rate=22050, n_fft=513, win_length=400, hop_length=100, n_mels=20),
])
def test_mel_filterbank_matches_numpy_transcription(cfg):
    fb = mel_filterbank(cfg)
    assert fb.shape == (cfg.n_mels, cfg.n_fft // 2 + 1) and fb.dtype == torch.float32
    ref = _numpy_slaney_mel(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin, cfg.max_frequency)
    np.testing.assert_allclose(fb.numpy(), ref, rtol=1e-5, atol=1e-9)


def test_mel_filterbank_properties():
    cfg = AudioConfig()
    fb = mel_filterbank(cfg).double()
    assert (fb >= 0).all()
    assert (fb.sum(dim=1) > 0).all(), "every filter covers at least one bin"
    peaks = fb.argmax(dim=1)
    assert (torch.diff(peaks) >= 0).all() and peaks[-1] > peaks[0], "filters ordered by frequency"
    for row in fb:
        nz = torch.nonzero(row).flatten()
        seg = row[nz[0]: nz[-1] + 1]
        assert (seg > 0).all(), "support is one contiguous run"
        d = torch.sign(torch.diff(seg))
        d = d[d != 0]
        # rises then falls: at most one change of direction (a single peak)
        assert (torch.diff(d) != 0).sum() <= 1
    # Slaney normalisation: the area of each triangle, in Hz, is about 1 (exact for wide filters).
    df = cfg.sample_rate / cfg.n_fft
    area = fb.sum(dim=1) * df
    torch.testing.assert_close(area[20:], torch.ones_like(area[20:]), rtol=0.02, atol=0)
    # returns a fresh tensor: mutating it does not touch the cache
    fb2 = mel_filterbank(cfg)
    fb2.zero_()
    assert mel_filterbank(cfg).abs().sum() > 0


# ------------------------------------------------------------------------------ STFT, log-mel
def test_stft_matches_manual_frames():
    cfg = AudioConfig()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3000, generator=g, dtype=torch.float64)
    spec = stft(x, cfg)
    assert spec.shape == (1025, 1 + 3000 // 300) and spec.is_complex()
    pad = cfg.n_fft // 2
    xp = torch.nn.functional.pad(x[None, None], (pad, pad), mode="reflect")[0, 0]
    win = torch.zeros(cfg.n_fft, dtype=torch.float64)
    off = (cfg.n_fft - cfg.win_length) // 2
    win[off: off + cfg.win_length] = torch.hann_window(cfg.win_length, periodic=True, dtype=torch.float64)
    for j in (0, 4, 10):
        # frame j covers padded samples [j*hop, j*hop + n_fft): centred on original sample j*hop
        seg = xp[j * cfg.hop_length: j * cfg.hop_length + cfg.n_fft]
        torch.testing.assert_close(spec[:, j], torch.fft.rfft(seg * win))


def test_stft_batched_and_short_input():
    cfg = AudioConfig()
    x = torch.randn(2, 2400)
    mag = stft_magnitude(x, cfg)
    assert mag.shape == (2, 1025, 9) and mag.dtype == torch.float32
    torch.testing.assert_close(mag[1], stft_magnitude(x[1], cfg))
    with pytest.raises(ValueError, match="n_fft // 2"):
        stft(torch.randn(1024), cfg)
    with pytest.raises(ValueError, match=r"\(T,\) or \(B, T\)"):
        stft(torch.randn(1, 2, 3000), cfg)


@pytest.mark.parametrize("T", [3000, 3000 + 1, 3000 + 299, 24000])
def test_log_mel_frame_count(T):
    cfg = AudioConfig()
    x = torch.randn(2, T)
    m = log_mel(x, cfg)
    assert m.shape == (2, cfg.n_mels, T // cfg.hop_length) and m.dtype == torch.float32
    assert torch.isfinite(m).all()
    assert (m >= math.log(cfg.log_floor) - 1e-6).all()


def test_log_mel_alignment_and_values():
    """Frame j is centred on sample j*hop: a click at sample j*hop peaks in frame j."""
    cfg = AudioConfig()
    T = 30 * cfg.hop_length
    for j in (3, 12, 25):
        x = torch.zeros(T)
        x[j * cfg.hop_length] = 1.0
        energy = log_mel(x, cfg).exp().sum(dim=0)
        assert int(energy.argmax()) == j
    # value check against the definition
    x = torch.from_numpy(_sine(1000.0, T)) + 0.01 * torch.randn(T)
    ref = torch.log(torch.clamp(mel_filterbank(cfg) @ stft_magnitude(x, cfg)[:, : T // cfg.hop_length],
                                min=cfg.log_floor))
    torch.testing.assert_close(log_mel(x, cfg), ref)
    # the 1 kHz sine's energy sits in the band whose filter peaks nearest 1 kHz
    band = int(log_mel(x, cfg).mean(dim=1).argmax())
    peak_hz = mel_filterbank(cfg)[band].argmax().item() * cfg.sample_rate / cfg.n_fft
    assert abs(peak_hz - 1000.0) < 60.0


def test_log_mel_float64():
    x = torch.randn(3000, dtype=torch.float64)
    assert log_mel(x).dtype == torch.float64


# ------------------------------------------------------------------------------- STFT loss
def test_stft_loss_zero_for_equal_and_positive_otherwise():
    x = torch.randn(2, 4800)
    assert stft_loss(x, x.clone()).item() == 0.0
    y = x + 0.1 * torch.randn(2, 4800)
    loss = stft_loss(x, y)
    assert loss.dim() == 0 and loss.item() > 0
    # definition: mean over batch, frequency and frames
    ref = ((stft_magnitude(x) - stft_magnitude(y)) ** 2).mean()
    torch.testing.assert_close(loss, ref)
    # symmetric
    torch.testing.assert_close(stft_loss(y, x), loss)


def test_stft_loss_gradients_flow():
    x = torch.randn(2, 4800, dtype=torch.float64, requires_grad=True)
    y = torch.randn(2, 4800, dtype=torch.float64, requires_grad=True)
    stft_loss(x, y).backward()
    for t in (x, y):
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0
    # a small finite-difference check on a short signal
    cfg = AudioConfig(n_fft=64, win_length=48, hop_length=16, n_mels=8)
    a = torch.randn(1, 96, dtype=torch.float64, requires_grad=True)
    b = torch.randn(1, 96, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda u, v: stft_loss(u, v, cfg), (a, b))
    # zero signals (|z| = 0 everywhere) give zero gradients, not NaN
    z = torch.zeros(3000, requires_grad=True)
    stft_loss(z, torch.zeros(3000)).backward()
    assert torch.isfinite(z.grad).all()


def test_stft_loss_shape_mismatch():
    with pytest.raises(ValueError, match="same shape"):
        stft_loss(torch.randn(2, 4800), torch.randn(4800))
    with pytest.raises(ValueError, match="same shape"):
        stft_loss(torch.randn(2, 4800), torch.randn(2, 4500))


# ------------------------------------------------------------------------------------ files
def test_save_load_round_trip(tmp_path, sf):
    x = torch.from_numpy(_sine(440.0, 4800)) + 0.05 * torch.randn(4800)
    path = tmp_path / "a.wav"
    save_audio(path, x, SR)
    info = sf.info(str(path))
    assert (info.samplerate, info.channels, info.frames, info.subtype) == (SR, 1, 4800, "PCM_16")
    y = load_audio(path, SR)
    assert y.dtype == torch.float32 and y.shape == (4800,)
    torch.testing.assert_close(y, x, atol=1.0 / 32768 + 1e-6, rtol=0)
    # overwrite in place; no temporary file is left behind
    save_audio(str(path), torch.zeros(100), SR)
    assert load_audio(path, SR).shape == (100,)
    assert sorted(os.listdir(tmp_path)) == ["a.wav"]


def test_save_clips_and_checks(tmp_path, sf):
    save_audio(tmp_path / "c.wav", torch.tensor([2.0, -3.0, 0.5]), SR)
    y = load_audio(tmp_path / "c.wav", SR)
    assert y[0] > 0.99 and y[1] <= -0.99
    with pytest.raises(ValueError, match=r"\(T,\)"):
        save_audio(tmp_path / "d.wav", torch.zeros(2, 10), SR)
    assert not (tmp_path / "d.wav").exists()


def test_load_resamples(tmp_path, sf):
    path = tmp_path / "16k.wav"
    sf.write(str(path), _sine(1000.0, 16000, sr=16000), 16000, subtype="FLOAT")
    y = load_audio(path, 24000)
    assert y.shape == (24000,) and y.dtype == torch.float32
    spectrum = np.abs(np.fft.rfft(y.numpy()))
    peak_hz = np.argmax(spectrum) * 24000 / len(y)
    assert abs(peak_hz - 1000.0) <= 1.0
    # amplitude preserved (away from the edges)
    assert abs(np.abs(y.numpy()[2000:-2000]).max() - 0.5) < 0.01


def test_load_mixes_stereo_to_mono(tmp_path, sf):
    left, right = _sine(300.0, 2400), _sine(700.0, 2400, amp=0.25)
    path = tmp_path / "stereo.wav"
    sf.write(str(path), np.stack([left, right], axis=1), SR, subtype="FLOAT")
    y = load_audio(path, SR)
    assert y.shape == (2400,)
    np.testing.assert_allclose(y.numpy(), (left + right) / 2, atol=1e-6)


def test_load_errors(tmp_path, sf):
    missing = tmp_path / "nope.wav"
    with pytest.raises(FileNotFoundError, match="nope.wav"):
        load_audio(missing, SR)

    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(ValueError, match="corrupt.wav") as info:
        load_audio(corrupt, SR)
    assert "cannot read" in str(info.value)

    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        load_audio(empty, SR)

    no_frames = tmp_path / "noframes.wav"
    sf.write(str(no_frames), np.zeros(0, dtype=np.float32), SR)
    with pytest.raises(ValueError, match="no samples"):
        load_audio(no_frames, SR)
