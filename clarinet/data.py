"""Datasets of audio (and text) for training the vocoders.

:class:`AudioDataset` reads an LJSpeech-style folder (``metadata.csv`` + ``wavs/``) or any folder of
``*.wav`` files, returns audio with its log-mel features (whole utterances or random segments whose
features are sliced from the whole utterance's), and caches each utterance's log-mel on disk.
:func:`collate` batches its items.
"""
from __future__ import annotations

import hashlib
import math
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from .audio import AudioConfig, load_audio, log_mel

__all__ = ["AudioDataset", "collate", "CACHE_DIRNAME"]

#: Default cache folder name, created inside the dataset root.
CACHE_DIRNAME = ".clarinet-mel-cache"
# Bump when the cached content changes meaning (it is part of every cache key).
_CACHE_FORMAT = "logmel-v1"


@dataclass(frozen=True)
class _Entry:
    id: str
    path: Path
    text: str


def _read_ljspeech(root: Path) -> List[_Entry]:
    meta = root / "metadata.csv"
    entries = []
    # Quoting off: LJSpeech texts contain bare quote characters; split on "|" only.
    with open(meta, encoding="utf-8", newline="") as f:
        for lineno, line in enumerate(f, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            fields = line.split("|")
            if len(fields) != 3 or not fields[0].strip():
                raise ValueError(
                    f"{meta}, line {lineno}: expected 'id|text|normalized text' (3 fields, "
                    f"non-empty id), got {len(fields)} field(s): {line[:80]!r}")
            utt_id = fields[0].strip()
            wav = root / "wavs" / f"{utt_id}.wav"
            if not wav.is_file():
                raise FileNotFoundError(f"{meta}, line {lineno}: audio file not found: {wav}")
            entries.append(_Entry(utt_id, wav, fields[2]))
    return entries


def _read_folder(root: Path, cache_dir: Path) -> List[_Entry]:
    entries = []
    cache_abs = cache_dir.resolve()
    for wav in sorted(root.rglob("*.wav")):
        rel = wav.relative_to(root)
        # Hidden files and folders (".tmp-*" partial writes, macOS "._x.wav" metadata) are skipped.
        if any(part.startswith(".") for part in rel.parts):
            continue
        if not wav.is_file() or cache_abs in wav.resolve().parents:
            continue
        entries.append(_Entry(rel.with_suffix("").as_posix(), wav, ""))
    return entries


class AudioDataset(Dataset):
    """Audio utterances with their log-mel spectrograms.

    Args:
        root: dataset folder. With ``metadata.csv`` and ``wavs/`` it is read as LJSpeech
            (rows ``id|text|normalized text``, no quoting; audio ``wavs/<id>.wav``;
            ``item["text"]`` is the normalized text). Otherwise every ``*.wav`` below ``root``
            (recursively, sorted by path; hidden files and folders skipped) is an utterance whose
            id is its path relative to ``root`` without ``.wav``, and whose text is ``""``.
        cfg: audio settings; files at another sample rate are resampled (:func:`load_audio`).
        segment_samples: ``None`` for whole utterances (audio trimmed to a multiple of
            ``hop_length``), else the length of random segments (a positive multiple of
            ``hop_length``).
        cache_dir: where whole-utterance log-mels are cached (default ``root/.clarinet-mel-cache``).
        seed: base seed of the segment choice.

    Each item is ``dict(audio=(T,) float32, mel=(n_mels, T // hop_length) float32, id=str,
    text=str)`` with ``T = segment_samples`` or the trimmed utterance length. ``mel`` is always
    ``log_mel(load_audio(file))`` of the whole file (frame ``j`` centred on sample ``j * hop``),
    sliced to the segment, so segment features equal whole-file features. A segment starts at a
    multiple of ``hop_length``, chosen uniformly; a file shorter than a segment is zero-padded at
    the end and its ``mel`` is the log-mel of the padded audio.

    Randomness: the segment of call ``n`` to ``dataset[i]`` comes from a generator seeded with
    ``(seed, i, epoch, n)``, so a dataset built with the same seed, asked the same sequence of
    indices, returns the same segments. ``epoch`` is set by :meth:`set_epoch` (call it every
    epoch when a ``DataLoader`` uses worker processes: each worker works on a copy of the
    dataset, so the per-index call counts ``n`` restart with every non-persistent worker).

    Cache: one ``.npy`` per file (float32, ``(n_mels, frames)``), written atomically, named after
    the file's path relative to ``root`` plus a hash of that path, the file's size and mtime, and
    the :class:`AudioConfig`. A changed config or a changed file therefore never reads a stale
    cache (old entries are left in place); an unreadable or mis-shaped cache file is recomputed
    and rewritten. If the cache folder cannot be written, a warning is given once and features
    are computed without caching.
    """

    def __init__(self, root: Union[str, os.PathLike], cfg: AudioConfig = AudioConfig(),
                 segment_samples: Optional[int] = None,
                 cache_dir: Optional[Union[str, os.PathLike]] = None, seed: int = 0):
        if not isinstance(cfg, AudioConfig):
            raise TypeError(f"cfg must be an AudioConfig, got {type(cfg).__name__}")
        if segment_samples is not None:
            if (isinstance(segment_samples, bool) or not isinstance(segment_samples, (int, np.integer))
                    or segment_samples <= 0 or segment_samples % cfg.hop_length != 0):
                raise ValueError(
                    f"segment_samples must be None or a positive multiple of hop_length "
                    f"({cfg.hop_length}), got {segment_samples!r}")
            segment_samples = int(segment_samples)
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"dataset root is not a folder: {self.root}")
        self.cfg = cfg
        self.segment_samples = segment_samples
        self.cache_dir = Path(cache_dir) if cache_dir is not None else self.root / CACHE_DIRNAME
        self.seed = int(seed)
        self.epoch = 0
        self._calls: Dict[int, int] = {}
        self._cache_warned = False
        self._cfg_hash = hashlib.sha1(f"{_CACHE_FORMAT}|{cfg!r}".encode()).hexdigest()[:12]

        if (self.root / "metadata.csv").is_file() and (self.root / "wavs").is_dir():
            self.layout = "ljspeech"
            self._entries = _read_ljspeech(self.root)
        else:
            self.layout = "folder"
            self._entries = _read_folder(self.root, self.cache_dir)
        if not self._entries:
            raise ValueError(f"no audio files found in {self.root} (layout: {self.layout})")

    # ------------------------------------------------------------------ bookkeeping
    def __len__(self) -> int:
        return len(self._entries)

    @property
    def ids(self) -> List[str]:
        return [e.id for e in self._entries]

    def path(self, index: int) -> Path:
        """The audio file of item ``index``."""
        return self._entries[index].path

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch that seeds segment choice (see the class docstring).

        Also restarts the per-item draw counters, so an epoch's segments depend only on
        (seed, epoch, index, draws of that index within the epoch), not on earlier epochs'
        access history: exact resume needs nothing but the epoch number."""
        self.epoch = int(epoch)
        self._calls.clear()

    def cache_path(self, index: int) -> Path:
        """The cache file of item ``index``'s whole-utterance log-mel (for the current file)."""
        entry = self._entries[index]
        rel = os.path.relpath(entry.path, self.root)
        st = entry.path.stat()
        file_key = hashlib.sha1(f"{rel}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:12]
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(rel).with_suffix("").as_posix())
        return self.cache_dir / f"{safe[:100]}.{file_key}.{self._cfg_hash}.npy"

    # ------------------------------------------------------------------ features
    def _compute_mel(self, audio: torch.Tensor, path: Path) -> np.ndarray:
        try:
            with torch.no_grad():
                return log_mel(audio, self.cfg).to(torch.float32).numpy()
        except ValueError as exc:
            raise ValueError(f"cannot compute log-mel of {path}: {exc}") from exc

    def _whole_mel(self, index: int, audio: torch.Tensor) -> np.ndarray:
        """log_mel of the whole (untrimmed) utterance, from the cache when valid."""
        path = self._entries[index].path
        cache = self.cache_path(index)
        expected = (self.cfg.n_mels, audio.shape[0] // self.cfg.hop_length)
        if cache.is_file():
            try:
                mel = np.load(cache, allow_pickle=False)
                if mel.shape == expected and mel.dtype == np.float32:
                    return mel
            except Exception:  # corrupt or truncated cache file: recompute below
                pass
        mel = self._compute_mel(audio, path)
        self._write_cache(cache, mel)
        return mel

    def _write_cache(self, cache: Path, mel: np.ndarray) -> None:
        tmp = None
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=cache.parent, prefix=".tmp-", suffix=".npy")
            with os.fdopen(fd, "wb") as f:
                np.save(f, mel, allow_pickle=False)
            os.replace(tmp, cache)
            tmp = None
        except OSError as exc:
            if not self._cache_warned:
                warnings.warn(f"clarinet: cannot write the mel cache in {self.cache_dir} ({exc}); "
                              f"computing features without caching", RuntimeWarning, stacklevel=3)
                self._cache_warned = True
        finally:
            if tmp is not None and os.path.exists(tmp):
                os.remove(tmp)

    def _generator(self, index: int) -> torch.Generator:
        n = self._calls.get(index, 0)
        self._calls[index] = n + 1
        state = np.random.SeedSequence([self.seed & (2**63 - 1), index, self.epoch, n]).generate_state(2, np.uint32)
        return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))

    def __getitem__(self, index: int) -> Dict[str, Union[torch.Tensor, str]]:
        n = len(self._entries)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} items")
        index = index % n
        entry = self._entries[index]
        hop = self.cfg.hop_length
        audio = load_audio(entry.path, self.cfg.sample_rate)
        seg = self.segment_samples

        if seg is not None and audio.shape[0] < seg:
            # Short file: zero-pad to one segment; the features are those of the padded audio.
            self._generator(index)  # keep the per-index call count in step
            audio = torch.nn.functional.pad(audio, (0, seg - audio.shape[0]))
            mel = torch.from_numpy(self._compute_mel(audio, entry.path))
        else:
            whole = torch.from_numpy(self._whole_mel(index, audio))
            frames = whole.shape[1]
            if frames == 0:
                raise ValueError(f"{entry.path} is shorter than one hop ({hop} samples)")
            if seg is None:
                audio, mel = audio[: frames * hop], whole
            else:
                seg_frames = seg // hop
                start = int(torch.randint(0, frames - seg_frames + 1, (1,), generator=self._generator(index)))
                audio = audio[start * hop: start * hop + seg]
                mel = whole[:, start: start + seg_frames]
        return dict(audio=audio.contiguous(), mel=mel.contiguous(), id=entry.id, text=entry.text)


def collate(items: Sequence[Dict[str, Union[torch.Tensor, str]]],
            mel_pad_value: float = math.log(AudioConfig().log_floor)) -> Dict[str, object]:
    """Batch dataset items: ``dict(audio=(B, T), mel=(B, n_mels, F), id=list, text=list,
    lengths=(B,) int64)``.

    Items of equal length (segments) are stacked. Items of different lengths (whole utterances)
    are padded at the end to the longest: audio with zeros, mel with ``mel_pad_value`` (default
    ``log(1e-5)``, the log-mel of silence under the default config's ``log_floor``);
    ``lengths`` holds each item's audio length in samples.
    """
    if len(items) == 0:
        raise ValueError("collate needs at least one item")
    n_mels = {int(it["mel"].shape[0]) for it in items}
    if len(n_mels) != 1:
        raise ValueError(f"items have different numbers of mel bands: {sorted(n_mels)}")
    t_max = max(int(it["audio"].shape[-1]) for it in items)
    f_max = max(int(it["mel"].shape[-1]) for it in items)
    audio = torch.stack([torch.nn.functional.pad(it["audio"], (0, t_max - it["audio"].shape[-1]))
                         for it in items])
    mel = torch.stack([torch.nn.functional.pad(it["mel"], (0, f_max - it["mel"].shape[-1]),
                                               value=mel_pad_value) for it in items])
    lengths = torch.tensor([int(it["audio"].shape[-1]) for it in items], dtype=torch.int64)
    return dict(audio=audio, mel=mel, id=[it["id"] for it in items],
                text=[it["text"] for it in items], lengths=lengths)
