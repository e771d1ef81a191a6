"""clarinet.data: TextAudioDataset and collate_text_audio on the toy corpus."""
import functools
import math
import warnings

import numpy as np
import pytest
import torch

import clarinet.data as data_mod
from clarinet.audio import load_audio, log_mel
from clarinet.data import TextAudioDataset, collate_text_audio
from clarinet.text import UnknownCharacterWarning, Vocabulary, default_vocabulary

from _toy_corpus import char_frequencies, toy_audio_config, write_toy_corpus

CFG = toy_audio_config()  # 4 kHz, hop 50, FFT 256, 20 mel bands
HOP = CFG.hop_length
SILENCE = math.log(CFG.log_floor)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, sf):
    return write_toy_corpus(tmp_path_factory.mktemp("toy"), n_utterances=8)


@pytest.fixture(scope="module")
def dataset(corpus, tmp_path_factory):
    return TextAudioDataset(corpus, CFG, cache_dir=tmp_path_factory.mktemp("cache"))


def _metadata(root):
    return [line.split("|") for line in (root / "metadata.csv").read_text().splitlines()]


# ------------------------------------------------------------------------------ toy corpus
def test_toy_corpus_is_deterministic_and_aligned(corpus, tmp_path):
    again = write_toy_corpus(tmp_path / "again", n_utterances=8)
    assert (again / "metadata.csv").read_bytes() == (corpus / "metadata.csv").read_bytes()
    rows = _metadata(corpus)
    assert len(rows) == 8
    freqs = char_frequencies("abcdefgh", CFG.sample_rate)
    for utt_id, raw, norm in rows:
        assert raw == norm and 2 <= len(raw) <= 6 and raw[0] != " " and raw[-1] != " "
        assert set(raw) <= set("abcdefgh ") and "  " not in raw
        data = (corpus / "wavs" / f"{utt_id}.wav").read_bytes()
        assert data == (again / "wavs" / f"{utt_id}.wav").read_bytes()
        audio = load_audio(corpus / "wavs" / f"{utt_id}.wav", CFG.sample_rate).numpy()
        n = 3 * HOP
        assert audio.shape[0] == len(raw) * n
        for k, c in enumerate(raw):  # each character is its own tone (or silence)
            piece = audio[k * n:(k + 1) * n]
            if c == " ":
                assert np.abs(piece).max() == 0
            else:
                spectrum = np.abs(np.fft.rfft(piece))
                peak = np.argmax(spectrum) * CFG.sample_rate / n
                assert abs(peak - freqs[c]) <= CFG.sample_rate / n
    assert any(" " in r[1] for r in _metadata(write_toy_corpus(tmp_path / "big")))


# ------------------------------------------------------------------------------ dataset
def test_items(dataset, corpus):
    vocab = default_vocabulary()
    rows = _metadata(corpus)
    assert len(dataset) == len(rows) and dataset.ids == [r[0] for r in rows]  # not sorted
    for i, (utt_id, _, text) in enumerate(rows):
        item = dataset[i]
        assert set(item) == {"id", "text", "audio", "mel"} and item["id"] == utt_id
        assert item["text"].dtype == torch.long and item["text"].tolist() == vocab.encode(text)
        assert item["text"][-1].item() == vocab.eos_id
        assert dataset.texts[i] == text and dataset.text_lengths[i] == len(text) + 1
        audio, mel = item["audio"], item["mel"]
        assert audio.dtype == mel.dtype == torch.float32
        frames = mel.shape[1]
        assert frames == len(text) * 3 and audio.shape == (frames * HOP,)
        assert mel.shape == (CFG.n_mels, frames)
        torch.testing.assert_close(mel, log_mel(load_audio(dataset.audio_dataset.path(i),
                                                           CFG.sample_rate), CFG))
    assert dataset[-1]["id"] == rows[-1][0]
    with pytest.raises(IndexError):
        dataset[len(rows)]


def test_cache_reuse(corpus, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    ds = TextAudioDataset(corpus, CFG, cache_dir=cache)
    first = ds[0]["mel"]
    assert ds.cache_path(0).is_file() and ds.cache_path(0).parent == cache
    calls = []
    monkeypatch.setattr(data_mod, "log_mel", lambda x, cfg: calls.append(1) or log_mel(x, cfg))
    again = TextAudioDataset(corpus, CFG, cache_dir=cache)
    torch.testing.assert_close(again[0]["mel"], first, rtol=0, atol=0)
    assert calls == []  # read from the cache
    again[1]
    assert calls == [1]


def test_missing_metadata(tmp_path):
    (tmp_path / "wavs").mkdir()
    with pytest.raises(FileNotFoundError, match="metadata.csv"):
        TextAudioDataset(tmp_path, CFG)
    with pytest.raises(FileNotFoundError, match="root"):
        TextAudioDataset(tmp_path / "nowhere", CFG)


def test_bad_arguments(corpus):
    with pytest.raises(TypeError, match="vocab"):
        TextAudioDataset(corpus, CFG, vocab="abc")
    with pytest.raises(ValueError, match="max_text_length"):
        TextAudioDataset(corpus, CFG, max_text_length=1)
    with pytest.raises(TypeError, match="max_text_length"):
        TextAudioDataset(corpus, CFG, max_text_length=3.0)


def test_text_column_fallback_unknown_report_and_skips(corpus, tmp_path):
    root = write_toy_corpus(tmp_path / "c", n_utterances=5)
    rows = _metadata(root)
    rows[0][2] = ""                   # empty normalized column: the raw one is used
    rows[1][2] = rows[1][1] + "/"     # unknown character, once
    rows[2][2] = "\u4e2d" + rows[2][1] + "/"
    rows[3][1] = rows[3][2] = "///"   # nothing left: left out
    (root / "metadata.csv").write_text("\n".join("|".join(r) for r in rows) + "\n")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        ds = TextAudioDataset(root, CFG, cache_dir=tmp_path / "cache")
    assert len(record) == 2
    assert issubclass(record[1].category, RuntimeWarning) and "left out 1" in str(record[1].message)
    unknown = [w for w in record if issubclass(w.category, UnknownCharacterWarning)]
    assert len(unknown) == 1  # once per dataset
    assert "'/' (U+002F) in 3 utterance(s)" in str(unknown[0].message)
    assert ds.unknown_characters == {"/": 3, "\u4e2d": 1}
    assert ds.ids == [rows[i][0] for i in (0, 1, 2, 4)] and list(ds.skipped) == [rows[3][0]]
    assert ds.texts[:3] == [rows[0][1], rows[1][1], rows[2][1]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        [ds[i] for i in range(len(ds))]  # no per-item warnings


def test_max_text_length(corpus, tmp_path):
    lengths = [len(r[2]) + 1 for r in _metadata(corpus)]
    limit = sorted(lengths)[len(lengths) // 2]
    with pytest.warns(RuntimeWarning, match="max_text_length"):
        ds = TextAudioDataset(corpus, CFG, max_text_length=limit, cache_dir=tmp_path)
    assert len(ds) == sum(n <= limit for n in lengths) and len(ds.skipped) == len(lengths) - len(ds)
    assert max(ds.text_lengths) <= limit


def test_custom_vocabulary(corpus, tmp_path):
    vocab = Vocabulary("abcdefgh ")
    ds = TextAudioDataset(corpus, CFG, vocab=vocab, cache_dir=tmp_path)
    assert vocab.decode(ds[0]["text"]) == _metadata(corpus)[0][2]
    assert int(ds[0]["text"].max()) < len(vocab)


# ------------------------------------------------------------------------------ collate
def _items(dataset, idx=(0, 1, 2, 3)):
    return [dataset[i] for i in idx]


def test_collate_shapes_and_padding(dataset):
    items = _items(dataset)
    seg = 4
    batch = collate_text_audio(items, segment_frames=seg, generator=torch.Generator().manual_seed(0),
                               mel_pad_value=dataset.mel_pad_value)
    b = len(items)
    f = [it["mel"].shape[1] for it in items]
    n = [it["text"].shape[0] for it in items]
    assert batch["ids"] == [it["id"] for it in items]
    assert batch["text"].shape == (b, max(n)) and batch["text"].dtype == torch.long
    assert batch["text_lengths"].tolist() == n and batch["mel_lengths"].tolist() == f
    assert batch["audio_lengths"].tolist() == [x * HOP for x in f]
    assert batch["mel"].shape == (b, CFG.n_mels, max(f)) and batch["mel"].dtype == torch.float32
    assert batch["audio"].shape == (b, max(f) * HOP)
    assert batch["segment_start"].dtype == torch.long and batch["segment_start"].shape == (b,)
    assert batch["segment_audio"].shape == (b, seg * HOP)
    assert batch["segment_mel"].shape == (b, CFG.n_mels, seg)
    for k, it in enumerate(items):
        assert torch.equal(batch["text"][k, :n[k]], it["text"])
        assert (batch["text"][k, n[k]:] == default_vocabulary().pad_id).all()
        assert torch.equal(batch["mel"][k, :, :f[k]], it["mel"])
        assert (batch["mel"][k, :, f[k]:] == SILENCE).all()
        assert torch.equal(batch["audio"][k, :f[k] * HOP], it["audio"])
        assert (batch["audio"][k, f[k] * HOP:] == 0).all()


def test_collate_segments(dataset):
    items = [dataset[i] for i in range(len(dataset))]
    frames = [it["mel"].shape[1] for it in items]
    seg = 9
    assert min(frames) < seg < max(frames)  # both kinds of utterance in the batch
    g = torch.Generator().manual_seed(1)
    starts = set()
    for _ in range(10):
        batch = collate_text_audio(items, segment_frames=seg, generator=g)
        for k, it in enumerate(items):
            s, f = int(batch["segment_start"][k]), frames[k]
            if f < seg:
                assert s == 0
                # the whole utterance, then zeros / silence
                assert torch.equal(batch["segment_audio"][k, :f * HOP], it["audio"])
                assert (batch["segment_audio"][k, f * HOP:] == 0).all()
                assert torch.equal(batch["segment_mel"][k, :, :f], it["mel"])
                assert (batch["segment_mel"][k, :, f:] == SILENCE).all()
            else:
                assert 0 <= s <= f - seg  # inside the utterance
                assert torch.equal(batch["segment_audio"][k], it["audio"][s * HOP:(s + seg) * HOP])
                assert torch.equal(batch["segment_audio"][k],
                                   batch["audio"][k, s * HOP:(s + seg) * HOP])
                assert torch.equal(batch["segment_mel"][k], it["mel"][:, s:s + seg])
                starts.add((k, s))
    assert len(starts) > len(items)  # starts vary


def test_collate_generator_determinism(dataset):
    items = _items(dataset)
    a = collate_text_audio(items, segment_frames=3, generator=torch.Generator().manual_seed(7))
    b = collate_text_audio(items, segment_frames=3, generator=torch.Generator().manual_seed(7))
    for key in a:
        if key == "ids":
            assert a[key] == b[key]
        else:
            assert torch.equal(a[key], b[key]), key
    starts = {tuple(collate_text_audio(items, segment_frames=3,
                                       generator=torch.Generator().manual_seed(s))["segment_start"].tolist())
              for s in range(8)}
    assert len(starts) > 1


@pytest.mark.parametrize("r", [1, 2, 4, 7])
def test_collate_pad_frames_to(dataset, r):
    items = _items(dataset)
    batch = collate_text_audio(items, segment_frames=2, pad_frames_to=r)
    longest = max(it["mel"].shape[1] for it in items)
    f_max = batch["mel"].shape[2]
    assert f_max % r == 0 and longest <= f_max < longest + r
    assert batch["audio"].shape[1] == f_max * HOP
    assert batch["mel_lengths"].max().item() == longest


def test_collate_as_dataloader_collate_fn(dataset):
    fn = functools.partial(collate_text_audio, segment_frames=3, pad_frames_to=2,
                           generator=torch.Generator().manual_seed(0),
                           mel_pad_value=dataset.mel_pad_value)
    loader = torch.utils.data.DataLoader(dataset, batch_size=3, shuffle=False, collate_fn=fn)
    batches = list(loader)
    assert sum(len(b["ids"]) for b in batches) == len(dataset)
    assert batches[0]["ids"] == dataset.ids[:3]


def test_collate_errors(dataset):
    items = _items(dataset, (0, 1))
    with pytest.raises(ValueError, match="segment_frames"):
        collate_text_audio(items, segment_frames=0)
    with pytest.raises(ValueError, match="pad_frames_to"):
        collate_text_audio(items, segment_frames=2, pad_frames_to=0)
    with pytest.raises(ValueError, match="items"):
        collate_text_audio([], segment_frames=2)
    with pytest.raises(TypeError, match="generator"):
        collate_text_audio(items, segment_frames=2, generator=0)
    odd = dict(items[1], audio=items[1]["audio"][:-1])
    with pytest.raises(ValueError, match=r"items\[1\]"):
        collate_text_audio([items[0], odd], segment_frames=2)
