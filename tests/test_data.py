"""clarinet.data: AudioDataset (LJSpeech and folder layouts, segments, mel cache) and collate."""
import os

import numpy as np
import pytest
import torch

import clarinet.data as data_mod
from clarinet.audio import AudioConfig, load_audio, log_mel
from clarinet.data import AudioDataset, collate

# A small config keeps the tests fast; the logic does not depend on the sizes.
CFG = AudioConfig(sample_rate=8000, n_fft=256, win_length=200, hop_length=50, n_mels=20)
HOP = CFG.hop_length


def _chirp(n, sr=CFG.sample_rate, f0=100.0, f1=3000.0, seed=0):
    t = np.arange(n) / sr
    dur = n / sr
    phase = 2 * np.pi * (f0 * t + (f1 - f0) * t ** 2 / (2 * dur))
    noise = 0.01 * np.random.default_rng(seed).standard_normal(n)
    return (0.4 * np.sin(phase) + noise).astype(np.float32)


pytestmark = pytest.mark.audio_io  # every test here reads wav files


def _write(path, x, sr=CFG.sample_rate):
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, sr, subtype="FLOAT")
    return path


def _ljspeech(root, lengths=(4000, 2537, 6010), rows=None):
    (root / "wavs").mkdir(parents=True)
    ids = [f"LJ001-{i:04d}" for i in range(1, len(lengths) + 1)]
    for i, (utt, n) in enumerate(zip(ids, lengths)):
        _write(root / "wavs" / f"{utt}.wav", _chirp(n, seed=i))
    if rows is None:
        rows = [f'{utt}|"Raw," text {i} Mr.|"Normalized," text {i} mister' for i, utt in enumerate(ids)]
    (root / "metadata.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return ids


def _count_log_mel(monkeypatch):
    calls = []

    def counting(x, cfg):
        calls.append(x.shape[-1])
        return log_mel(x, cfg)

    monkeypatch.setattr(data_mod, "log_mel", counting)
    return calls


# --------------------------------------------------------------------------------- layouts
def test_ljspeech_layout_whole_utterances(tmp_path):
    ids = _ljspeech(tmp_path)
    ds = AudioDataset(tmp_path, CFG)
    assert ds.layout == "ljspeech" and len(ds) == 3 and ds.ids == ids
    for i, n in enumerate((4000, 2537, 6010)):
        item = ds[i]
        assert item["id"] == ids[i]
        assert item["text"] == f'"Normalized," text {i} mister'
        full = load_audio(tmp_path / "wavs" / f"{ids[i]}.wav", CFG.sample_rate)
        t = (n // HOP) * HOP  # trimmed to a multiple of hop
        assert item["audio"].shape == (t,) and item["audio"].dtype == torch.float32
        assert item["mel"].shape == (CFG.n_mels, n // HOP) and item["mel"].dtype == torch.float32
        torch.testing.assert_close(item["audio"], full[:t])
        torch.testing.assert_close(item["mel"], log_mel(full, CFG))
    assert ds[-1]["id"] == ids[-1]
    with pytest.raises(IndexError):
        ds[3]


def test_ljspeech_malformed_row(tmp_path):
    _ljspeech(tmp_path, lengths=(1000, 1000),
              rows=["LJ001-0001|a|a", "LJ001-0002|only two fields"])
    with pytest.raises(ValueError, match=r"metadata\.csv, line 2"):
        AudioDataset(tmp_path, CFG)


def test_ljspeech_row_naming_missing_audio(tmp_path):
    _ljspeech(tmp_path, lengths=(1000,), rows=["LJ001-0001|a|a", "LJ009-0009|b|b"])
    with pytest.raises(FileNotFoundError, match="LJ009-0009.wav"):
        AudioDataset(tmp_path, CFG)


def test_folder_layout(tmp_path):
    _write(tmp_path / "b.wav", _chirp(1000))
    _write(tmp_path / "sub" / "a.wav", _chirp(1200))
    _write(tmp_path / "a.wav", _chirp(1100))
    _write(tmp_path / ".hidden" / "x.wav", _chirp(1000))
    _write(tmp_path / "._a.wav", _chirp(1000))
    (tmp_path / "notes.txt").write_text("not audio")
    ds = AudioDataset(tmp_path, CFG)
    assert ds.layout == "folder"
    assert ds.ids == ["a", "b", "sub/a"]
    item = ds[2]
    assert item["text"] == "" and item["audio"].shape == (1200,) and item["mel"].shape == (CFG.n_mels, 24)
    # metadata.csv without wavs/ is not LJSpeech
    (tmp_path / "metadata.csv").write_text("a|b|c\n")
    assert AudioDataset(tmp_path, CFG).layout == "folder"


def test_empty_and_missing_root(tmp_path):
    with pytest.raises(ValueError, match=str(tmp_path)):
        AudioDataset(tmp_path, CFG)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        AudioDataset(tmp_path / "nowhere", CFG)


def test_resamples_to_config_rate(tmp_path):
    _write(tmp_path / "a.wav", _chirp(16000, sr=16000), sr=16000)
    item = AudioDataset(tmp_path, CFG)[0]
    assert item["audio"].shape == (8000,) and item["mel"].shape == (CFG.n_mels, 160)


# -------------------------------------------------------------------------------- segments
@pytest.mark.parametrize("bad", [0, -HOP, HOP + 1, 125, 2.5 * HOP, True])
def test_segment_must_be_multiple_of_hop(tmp_path, bad):
    _write(tmp_path / "a.wav", _chirp(1000))
    with pytest.raises(ValueError, match="multiple of hop_length"):
        AudioDataset(tmp_path, CFG, segment_samples=bad)


def test_segments_aligned_and_equal_to_full_file_features(tmp_path):
    n = 5023  # not a multiple of hop
    _write(tmp_path / "a.wav", _chirp(n))
    seg = 8 * HOP
    ds = AudioDataset(tmp_path, CFG, segment_samples=seg)
    full = load_audio(tmp_path / "a.wav", CFG.sample_rate)
    full_mel = log_mel(full, CFG)
    starts = set()
    for _ in range(25):
        item = ds[0]
        assert item["audio"].shape == (seg,) and item["mel"].shape == (CFG.n_mels, seg // HOP)
        hits = [s for s in range(0, n - seg + 1, HOP) if torch.equal(full[s: s + seg], item["audio"])]
        assert len(hits) == 1, "the segment starts at a multiple of hop"
        s = hits[0]
        assert s + seg <= (n // HOP) * HOP, "the segment lies within the frames of the utterance"
        torch.testing.assert_close(item["mel"], full_mel[:, s // HOP: s // HOP + seg // HOP])
        starts.add(s)
    assert len(starts) > 5, "segments are random per call"


def test_short_file_is_zero_padded(tmp_path):
    n = 730
    _write(tmp_path / "short.wav", _chirp(n))
    seg = 20 * HOP
    item = AudioDataset(tmp_path, CFG, segment_samples=seg)[0]
    full = load_audio(tmp_path / "short.wav", CFG.sample_rate)
    assert item["audio"].shape == (seg,)
    torch.testing.assert_close(item["audio"][:n], full)
    assert (item["audio"][n:] == 0).all()
    padded = torch.nn.functional.pad(full, (0, seg - n))
    torch.testing.assert_close(item["mel"], log_mel(padded, CFG))


def test_exact_length_file_gives_the_whole_file(tmp_path):
    _write(tmp_path / "a.wav", _chirp(10 * HOP))
    item = AudioDataset(tmp_path, CFG, segment_samples=10 * HOP)[0]
    full = load_audio(tmp_path / "a.wav", CFG.sample_rate)
    torch.testing.assert_close(item["audio"], full)
    torch.testing.assert_close(item["mel"], log_mel(full, CFG))


def test_reproducible_with_seed(tmp_path):
    for i in range(3):
        _write(tmp_path / f"{i}.wav", _chirp(20000, seed=i))

    def draw(seed, epoch=0):
        ds = AudioDataset(tmp_path, CFG, segment_samples=4 * HOP, seed=seed)
        ds.set_epoch(epoch)
        return [ds[i]["audio"] for i in (0, 1, 2, 0, 1, 2, 2)]

    a, b = draw(7), draw(7)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, draw(8)))
    assert not all(torch.equal(x, y) for x, y in zip(a, draw(7, epoch=1)))
    # the same index drawn twice gives (almost surely) different segments
    assert not torch.equal(a[0], a[3])


def test_dataloader_with_workers(tmp_path):
    for i in range(4):
        _write(tmp_path / f"{i}.wav", _chirp(3000, seed=i))
    ds = AudioDataset(tmp_path, CFG, segment_samples=10 * HOP)
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2, collate_fn=collate)
    batches = list(loader)
    assert len(batches) == 2
    assert batches[0]["audio"].shape == (2, 10 * HOP) and batches[0]["mel"].shape == (2, CFG.n_mels, 10)


# ----------------------------------------------------------------------------------- cache
def test_cache_written_then_reused(tmp_path, monkeypatch):
    _write(tmp_path / "data" / "a.wav", _chirp(3000))
    root = tmp_path / "data"
    calls = _count_log_mel(monkeypatch)
    first = AudioDataset(root, CFG)[0]
    assert len(calls) == 1
    cache_dir = root / ".clarinet-mel-cache"
    files = sorted(cache_dir.glob("*.npy"))
    assert len(files) == 1 and not list(cache_dir.glob(".tmp-*"))
    np.testing.assert_array_equal(np.load(files[0]), first["mel"].numpy())
    mtime = files[0].stat().st_mtime_ns

    ds = AudioDataset(root, CFG, segment_samples=10 * HOP)  # the cache dir is not listed as audio
    assert len(ds) == 1
    item = ds[0]
    again = AudioDataset(root, CFG)[0]
    assert len(calls) == 1, "the cached mel was read, not recomputed"
    assert files[0].stat().st_mtime_ns == mtime
    torch.testing.assert_close(again["mel"], first["mel"])
    s = [k for k in range(0, 3000 - 500 + 1, HOP) if torch.equal(item["audio"], first["audio"][k: k + 500])][0]
    torch.testing.assert_close(item["mel"], first["mel"][:, s // HOP: s // HOP + 10])

    # another config never reads this cache
    other = AudioConfig(sample_rate=8000, n_fft=256, win_length=200, hop_length=50, n_mels=20, fmin=30.0)
    mel_other = AudioDataset(root, other)[0]["mel"]
    assert len(calls) == 2 and len(list(cache_dir.glob("*.npy"))) == 2
    torch.testing.assert_close(mel_other, log_mel(load_audio(root / "a.wav", 8000), other))


def test_cache_invalidated_by_changed_file(tmp_path):
    path = _write(tmp_path / "a.wav", _chirp(3000, seed=0))
    AudioDataset(tmp_path, CFG)[0]
    _write(path, _chirp(3500, seed=1))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    item = AudioDataset(tmp_path, CFG)[0]
    torch.testing.assert_close(item["mel"], log_mel(load_audio(path, 8000), CFG))


@pytest.mark.parametrize("corruption", [b"", b"garbage bytes, not numpy", "wrong-shape"])
def test_corrupt_cache_is_recomputed(tmp_path, monkeypatch, corruption):
    _write(tmp_path / "a.wav", _chirp(3000))
    cache_dir = tmp_path / "cache"
    ds = AudioDataset(tmp_path, CFG, cache_dir=cache_dir)
    good = ds[0]["mel"]
    cache = ds.cache_path(0)
    assert cache.parent == cache_dir and cache.is_file()
    if corruption == "wrong-shape":
        np.save(cache, np.zeros((3, 4), dtype=np.float32))
    else:
        cache.write_bytes(corruption)
    calls = _count_log_mel(monkeypatch)
    torch.testing.assert_close(AudioDataset(tmp_path, CFG, cache_dir=cache_dir)[0]["mel"], good)
    assert len(calls) == 1
    np.testing.assert_array_equal(np.load(cache), good.numpy())  # rewritten


def test_unwritable_cache_warns_and_still_works(tmp_path):
    _write(tmp_path / "a.wav", _chirp(3000))
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the cache folder should be")
    ds = AudioDataset(tmp_path, CFG, cache_dir=blocker / "cache")
    with pytest.warns(RuntimeWarning, match="mel cache"):
        item = ds[0]
    torch.testing.assert_close(item["mel"], log_mel(load_audio(tmp_path / "a.wav", 8000), CFG))


# --------------------------------------------------------------------------------- collate
def test_collate_segments_and_ragged_utterances(tmp_path):
    for i, n in enumerate((1500, 2600)):
        _write(tmp_path / f"{i}.wav", _chirp(n, seed=i))
    ds = AudioDataset(tmp_path, CFG, segment_samples=10 * HOP)
    batch = collate([ds[0], ds[1]])
    assert batch["audio"].shape == (2, 500) and batch["mel"].shape == (2, CFG.n_mels, 10)
    assert batch["id"] == ["0", "1"] and batch["text"] == ["", ""]
    assert batch["lengths"].tolist() == [500, 500]

    whole = AudioDataset(tmp_path, CFG)
    items = [whole[0], whole[1]]
    batch = collate(items)
    assert batch["audio"].shape == (2, 2600) and batch["mel"].shape == (2, CFG.n_mels, 52)
    assert batch["lengths"].tolist() == [1500, 2600]
    torch.testing.assert_close(batch["audio"][0, :1500], items[0]["audio"])
    assert (batch["audio"][0, 1500:] == 0).all()
    torch.testing.assert_close(batch["mel"][0, :, :30], items[0]["mel"])
    assert torch.allclose(batch["mel"][0, :, 30:], torch.tensor(np.log(1e-5), dtype=torch.float32))
    with pytest.raises(ValueError, match="at least one"):
        collate([])
