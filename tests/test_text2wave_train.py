"""Training TextToWave on the toy corpus (every character its own tone): the joint loss falls and the
attention becomes diagonal; checkpoints, resume and the losses' pieces. CPU, reference backend, tiny."""
import math
import warnings

import pytest
import torch

from clarinet import checkpoint as ck
from clarinet.data import TextAudioDataset
from clarinet.losses import guided_attention_loss
from clarinet.models import TextToWave
from clarinet.models.text2wave import alignment_score
from clarinet.train import ConfigError, Text2WaveConfig, train_text2wave

from _toy_corpus import toy_audio_config, write_toy_corpus


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Two intra-op threads on a 2-core machine that is busy elsewhere can make tiny ops much slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_toy_corpus(tmp_path_factory.mktemp("toy"), n_utterances=24)


def config(data, out, **kw):
    base = dict(data_dir=str(data), out_dir=str(out), preset="text2wave-tiny", segment_samples=200, batch_size=8,
                lr=2e-3, warmup_steps=10, schedule="constant", ema=0.0, backend="reference", device="cpu",
                progress=False, log_every=25, ckpt_every=1000)
    return Text2WaveConfig.from_sources(**{**base, **kw})


def free_running_alignment(model, dataset, n=8):
    """Mean :func:`alignment_score` (argmax monotone, within 20% of the diagonal, weight >= 0.5) of
    free-running decoding, and the mean |decoded - true| frames."""
    scores, errors = [], []
    for i in range(n):
        item = dataset[i]
        F = item["mel"].shape[1]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # the untrained model never stops
            out = model.infer(item["text"], max_frames=3 * F)
        scores.append(alignment_score(out["alignment"], item["text"].numel(), min_weight=0.5))
        errors.append(abs(out["mel"].shape[1] - F))
    return sum(scores) / n, sum(errors) / n


def test_tiny_run_converges_and_aligns(corpus, tmp_path):
    res = train_text2wave(config(corpus, tmp_path / "run", steps=300))
    first, last = res.history[0], res.history[-1]
    assert last["step"] == 300 and set(first) >= {"loss", "mel", "linear", "done", "nll", "attention"}
    assert last["loss"] < 0.3 * first["loss"], (first, last)
    for term in ("mel", "linear", "done", "nll"):
        assert last[term] < first[term], (term, first, last)
    ds = TextAudioDataset(corpus, cfg=toy_audio_config())
    trained, trained_err = free_running_alignment(res.model.eval(), ds)
    torch.manual_seed(0)
    untrained, _ = free_running_alignment(TextToWave.from_preset("text2wave-tiny", backend="reference").eval(), ds)
    # measured: trained 0.94 (decoded lengths within a step of the truth); untrained 0.0-0.26 over
    # four seeds (its positional prior is diagonal but blurred, and it stops at once or never)
    assert trained >= 0.8 and untrained < 0.5, (trained, untrained)
    assert trained_err <= 2 * res.model.reduction_factor, trained_err
    ckpt = ck.load_checkpoint(res.checkpoint)
    assert ckpt["kind"] == "TextToWave" and ckpt["config"]["audio"]["sample_rate"] == 4000
    assert ckpt["config"]["vocabulary"]["symbols"][:2] == ["<pad>", "<eos>"]


def test_resume_continues_the_run(corpus, tmp_path):
    a = train_text2wave(config(corpus, tmp_path / "a", steps=4, log_every=1, ckpt_every=2, ema=0.999))
    b_out = tmp_path / "b"
    train_text2wave(config(corpus, b_out, steps=2, log_every=1, ckpt_every=2, ema=0.999))
    b = train_text2wave(config(corpus, b_out, steps=4, log_every=1, ckpt_every=2, ema=0.999))
    assert [r["step"] for r in b.history] == [3, 4]
    for ra, rb in zip(a.history[2:], b.history):
        assert math.isclose(ra["loss"], rb["loss"], rel_tol=1e-4, abs_tol=1e-5), (ra, rb)
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert all(torch.allclose(sa[k], sb[k], atol=1e-5) for k in sa)


def test_config_errors(corpus, tmp_path):
    with pytest.raises(ConfigError, match="preset"):
        train_text2wave(config(corpus, tmp_path / "x", preset="teacher"))
    with pytest.raises(ConfigError, match="multiple of the hop"):
        train_text2wave(config(corpus, tmp_path / "x", segment_samples=120))
    with pytest.raises(ConfigError, match="audio"):
        config(corpus, tmp_path / "x", model={"audio": {}})
    with pytest.raises(ConfigError, match="does not exist"):
        train_text2wave(config(tmp_path / "missing", tmp_path / "x"))
    with pytest.raises(ConfigError, match="metadata.csv"):
        (tmp_path / "empty").mkdir()
        train_text2wave(config(tmp_path / "empty", tmp_path / "x"))


def test_resume_refuses_another_kind(corpus, tmp_path):
    from clarinet.models import GaussianWaveNet

    out = tmp_path / "run"
    ck.save_checkpoint(out / ck.checkpoint_name(1), model=GaussianWaveNet(layers=1, cycle=1), step=1)
    with pytest.raises(ConfigError, match="expected a TextToWave checkpoint, found a GaussianWaveNet"):
        train_text2wave(config(corpus, out, steps=2))


def test_guided_attention_loss():
    S, N = 6, 6
    diag = torch.eye(S)[None]
    anti = torch.eye(S).flip(1)[None]
    lengths = torch.tensor([N])
    d = guided_attention_loss([diag], lengths, torch.tensor([S]))
    a = guided_attention_loss([anti], lengths, torch.tensor([S]))
    assert 0 <= float(d) < 0.05 and float(a) > 0.5
    # padding (steps and characters beyond the lengths) costs nothing
    padded = torch.zeros(1, 8, 9)
    padded[0, :S, :N] = diag[0]
    padded[0, S:, N:] = 1.0
    torch.testing.assert_close(guided_attention_loss([padded], lengths, torch.tensor([S])), d)
