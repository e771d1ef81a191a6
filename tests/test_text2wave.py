"""TextToWave: shapes through every part, causality, the bridge-net's length, segment conditioning,
incremental decoding, synthesis and bad input (tiny models, CPU, reference backend)."""
import warnings

import pytest
import torch

from clarinet.models import GaussianIAF, TextToWave
from clarinet.models.text2wave import BridgeUpsampler, alignment_score, positional_encoding


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(**kw):
    torch.manual_seed(0)
    return TextToWave.from_preset("text2wave-tiny", backend="reference", **kw)


def batch(model, B=2, N=7, steps=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    r = model.reduction_factor
    text = torch.randint(2, len(model.vocab), (B, N), generator=g)
    mel = torch.randn(B, model.n_mels, steps * r, generator=g)
    return text, mel


def test_shapes_through_every_part():
    m = tiny().eval()
    cfg = m.config
    text, mel = batch(m)
    B, N, F = text.shape[0], text.shape[1], mel.shape[2]
    r, E = m.reduction_factor, cfg["embedding_dim"]
    mask = torch.ones(B, N, dtype=torch.bool)
    keys, values = m.encoder(text, mask)
    assert keys.shape == values.shape == (B, N, E)
    hidden, mel_out, done, attns = m.decoder(m.decoder.inputs_from_mel(mel), keys, values, mask[:, None, :])
    assert hidden.shape == (B, cfg["decoder_channels"], F // r)
    assert mel_out.shape == mel.shape and done.shape == (B, F // r)
    assert len(attns) == cfg["decoder_layers"] and all(a.shape == (B, F // r, N) for a in attns)
    assert torch.allclose(attns[0].sum(-1), torch.ones(B, F // r))
    states, linear, cond = m.bridge(hidden)
    assert states.shape == (B, cfg["bridge_channels"], F)
    assert linear.shape == (B, m.audio_config.n_freqs, F) and cond.shape == (B, cfg["cond_channels"], F)
    seg = torch.randn(B, 2 * m.hop_length)
    out = m(text, mel, text_lengths=torch.tensor([N, N - 2]), mel_lengths=torch.tensor([F, F - 3]),
            segment_audio=seg, segment_start=torch.tensor([0, 3]))
    assert set(out) == {"mel", "done_logits", "linear", "cond", "alignments", "mean", "log_scale"}
    assert out["mean"].shape == out["log_scale"].shape == seg.shape


def test_bridge_output_is_frames_times_hop():
    m = tiny()
    assert isinstance(m.vocoder.upsampler, BridgeUpsampler) and m.hop_length == 50
    for frames in (1, 2, 7, 12):
        cond = torch.randn(2, m.cond_channels, frames)
        h = m.vocoder.upsampler(cond)
        assert h.shape == (2, m.cond_channels, frames * m.hop_length)
        assert h.abs().max() < 1  # softsign
    # a window of the upsampling equals the slice of the whole (the segment conditioning relies on it)
    cond = torch.randn(1, m.cond_channels, 9)
    full = m.vocoder.upsampler(cond)
    for s, e in ((0, 100), (130, 260), (300, 450), (449, 450)):
        torch.testing.assert_close(m.vocoder.upsampler.forward_window(cond, s, e), full[..., s:e])


def test_decoder_is_causal():
    m = tiny(dropout=0.0).eval()
    text, mel = batch(m, B=1, steps=6)
    r, k = m.reduction_factor, 3
    out = m(text, mel)
    mel2 = mel.clone()
    mel2[:, :, k * r:] += torch.randn_like(mel2[:, :, k * r:])
    out2 = m(text, mel2)
    # step i is fed frame i*r - 1: steps 0..k see only frames < k*r
    torch.testing.assert_close(out["mel"][..., : (k + 1) * r], out2["mel"][..., : (k + 1) * r])
    torch.testing.assert_close(out["done_logits"][:, : k + 1], out2["done_logits"][:, : k + 1])
    for a, b in zip(out["alignments"], out2["alignments"]):
        torch.testing.assert_close(a[:, : k + 1], b[:, : k + 1])
    assert not torch.allclose(out["mel"][..., (k + 1) * r:], out2["mel"][..., (k + 1) * r:])


def test_padding_does_not_change_an_utterance():
    """Padded text and frames in a batch give the same outputs as the utterance alone."""
    m = tiny().eval()
    text, mel = batch(m, B=2, N=8, steps=5)
    n, f = 5, 9  # utterance 1: 5 symbols, 9 frames (padded to 12 = 4 steps of 3)
    text[1, n:] = m.vocab.pad_id
    both = m(text, mel, text_lengths=torch.tensor([8, n]), mel_lengths=torch.tensor([15, f]))
    alone = m(text[1:, :n], mel[1:, :, :12], mel_lengths=torch.tensor([f]))
    torch.testing.assert_close(both["mel"][1:, :, :12], alone["mel"])
    torch.testing.assert_close(both["linear"][1:, :, :f], alone["linear"][..., :f])
    torch.testing.assert_close(both["cond"][1:, :, :f], alone["cond"][..., :f])
    assert torch.all(both["alignments"][0][1, :, n:] == 0)


def test_segment_conditioning_matches_the_whole_utterance():
    m = tiny().eval()
    text, mel = batch(m, B=1, steps=4)
    out = m(text, mel)
    cond, hop = out["cond"], m.hop_length
    audio = torch.randn(1, 12 * hop) * 0.3
    mean, log_scale = m.vocoder(audio, cond)  # the whole utterance through the vocoder
    L = 4 * hop
    m0, s0 = m.vocoder_segments(cond, audio[:, :L], torch.tensor([0]), torch.tensor([12]))
    torch.testing.assert_close(m0, mean[:, :L])
    torch.testing.assert_close(s0, log_scale[:, :L])
    # a later segment sees zeros before its start, but its conditioning is the whole one's slice
    rf = m.vocoder.receptive_field
    m5, _ = m.vocoder_segments(cond, audio[:, 5 * hop: 5 * hop + L], torch.tensor([5]), torch.tensor([12]))
    torch.testing.assert_close(m5[:, rf:], mean[:, 5 * hop + rf: 5 * hop + L])


def test_incremental_decoding_equals_teacher_forcing():
    """infer's windowed step-by-step decoding equals one teacher-forced pass over its own outputs."""
    m = tiny()
    with pytest.warns(RuntimeWarning, match="no end of utterance") as caught:
        out = m.infer("abc de", max_frames=24, monotonic=False, done_threshold=2.0)  # never done: 8 steps
    assert caught[0].filename == __file__  # attributed to the caller, not to torch.no_grad's wrapper
    assert m.training  # infer restores the mode
    m.eval()
    ids = m.text_ids("abc de")[None]
    S = out["done"].shape[0]
    assert out["mel"].shape == (m.n_mels, S * m.reduction_factor) and S == 8
    tf = m(ids, out["mel"][None])
    torch.testing.assert_close(tf["mel"][0], out["mel"], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(torch.sigmoid(tf["done_logits"][0]), out["done"], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(tf["cond"][0], out["hidden"], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(torch.stack(tf["alignments"]).mean(0)[0], out["alignment"], atol=1e-5, rtol=1e-4)


def test_monotonic_window():
    m = tiny().eval()
    with pytest.warns(RuntimeWarning, match="no end of utterance"):
        out = m.infer("abcdefgh", max_frames=30, done_threshold=2.0)
    a = out["alignment"]
    back, ahead = m.config["attention_window"]
    last = 0
    for i in range(a.shape[0]):
        nz = torch.nonzero(a[i] > 0)[:, 0]
        assert nz.min() >= last - back and nz.max() <= last + ahead
        last = int(a[i].argmax())


def test_synthesize_lengths_and_vocoders():
    m = tiny().eval()
    with torch.no_grad():
        m.decoder.fc_done.bias.fill_(-20.0)  # never done: the length is max_frames
    with pytest.warns(RuntimeWarning, match="no end of utterance"):
        audio, sr = m.synthesize("ab", max_frames=6, progress=False)
    assert sr == 4000 and audio.dtype == torch.float32 and audio.shape == (6 * m.hop_length,)
    assert torch.isfinite(audio).all()
    student = GaussianIAF(flows=2, layers_per_flow=2, cycle=2, residual_channels=4, gate_channels=8,
                          skip_channels=4, n_mels=m.cond_channels, upsample_strides=(5, 10), backend="reference")
    with pytest.warns(RuntimeWarning):
        audio2, _ = m.synthesize("ab", max_frames=6, vocoder=student, progress=False)
    assert audio2.shape == audio.shape
    with pytest.raises(ValueError, match="distil it from this model"):
        m.synthesize("ab", max_frames=6, vocoder=GaussianIAF(flows=1, layers_per_flow=1, cycle=1, n_mels=20,
                                                              upsample_strides=(5, 10)), progress=False)
    with pytest.raises(TypeError, match="GaussianIAF"):
        m.synthesize("ab", max_frames=6, vocoder=m.vocoder, progress=False)


def test_bad_text():
    m = tiny()
    with pytest.raises(ValueError, match="empty"):
        m.infer("")
    with pytest.raises(ValueError, match="empty"):
        m.infer("   ")
    with pytest.raises(ValueError, match="max_length"):
        m.infer("a" * 200)
    with pytest.warns(UserWarning, match="dropped"):
        ids = m.text_ids("ab\u4e2dc")
    assert ids.tolist() == m.text_ids("abc").tolist()
    with pytest.raises(ValueError, match="ids must be in"):
        m.text_ids([2, 3, 999])


def test_bad_construction_and_batches():
    with pytest.raises(ValueError, match="hop length"):
        TextToWave.from_preset("text2wave-tiny", upsample_strides=(5, 5))
    with pytest.raises(ValueError, match="embedding_dim"):
        TextToWave.from_preset("text2wave-tiny", embedding_dim=31)
    m = tiny()
    text, mel = batch(m)
    with pytest.raises(ValueError, match="reduction factor"):
        m(text, mel[..., :-1])
    with pytest.raises(ValueError, match="mel"):
        m(text, mel[:, :5])


def test_config_rebuilds_the_model():
    m = tiny()
    clone = TextToWave.from_config(m.config)
    clone.load_state_dict(m.state_dict())
    assert clone.config == m.config and clone.sample_rate == 4000
    assert clone.vocab == m.vocab


def test_alignment_score():
    diag = torch.eye(6)
    assert alignment_score(diag, 6) == 1.0
    flat = torch.zeros(6, 6)
    flat[:, 0] = 1
    assert alignment_score(flat, 6) < 0.5
    pe = positional_encoding(torch.arange(4.0), 8)
    assert pe.shape == (4, 8) and torch.allclose(pe[0, 1::2], torch.ones(4))
