"""Datasets of audio (and text) for training the vocoders.

:class:`AudioDataset` reads an LJSpeech-style folder (``metadata.csv`` + ``wavs/``) or any folder of
``*.wav`` files, returns audio with its log-mel features (whole utterances or random segments whose
features are sliced from the whole utterance's), and caches each utterance's log-mel on disk.
:func:`collate` batches its items.

:class:`TextAudioDataset` pairs each LJSpeech utterance's text (encoded by a
:class:`clarinet.text.Vocabulary`) with its audio and log-mel for the text-to-wave model;
:func:`collate_text_audio` batches its items and draws the vocoder's training segments.

One module (about 540 lines) on purpose: :class:`TextAudioDataset` is an :class:`AudioDataset` of the
same folder plus the encoded texts (it reads audio and the log-mel cache through it), and both read
the LJSpeech layout and share the cache format; apart, each half would reach into the other's
internals.
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

__all__ = ["AudioDataset", "collate", "CACHE_DIRNAME", "TextAudioDataset", "collate_text_audio"]

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



# ============================================================================== text + audio
def _read_ljspeech_texts(meta: Path) -> List[tuple]:
    """``(id, raw text, normalized text)`` of every row, read as :func:`_read_ljspeech` does
    (which has validated the file by the time this runs)."""
    rows = []
    with open(meta, encoding="utf-8", newline="") as f:
        for line in f:
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            utt_id, raw, norm = line.split("|")
            rows.append((utt_id.strip(), raw, norm))
    return rows


class TextAudioDataset(Dataset):
    """Whole utterances of an LJSpeech-layout folder with their encoded text, for text-to-wave.

    Args:
        root: folder with ``metadata.csv`` (rows ``id|text|normalized text``, no quoting) and
            ``wavs/<id>.wav``; both are required.
        cfg: audio settings (as :class:`AudioDataset`).
        vocab: a :class:`clarinet.text.Vocabulary` (default
            :func:`clarinet.text.default_vocabulary`).
        max_text_length: when given, utterances whose encoded text (``<eos>`` included) is
            longer are left out, with one warning that counts them.
        cache_dir: log-mel cache folder (as :class:`AudioDataset`; default
            ``root/.clarinet-mel-cache``).

    Item ``i`` is ``dict(id=str, text=LongTensor (N,) ending with <eos>, audio=(T,) float32,
    mel=(n_mels, F) float32)`` with ``T = F * hop_length``: the audio is trimmed to a whole
    number of hops and ``mel`` is its log-mel (``clarinet.audio.log_mel``; frame ``j`` covers
    samples ``[j * hop, (j + 1) * hop)``), read from :class:`AudioDataset`'s cache when valid.

    Text: the normalized column, or the raw one when the normalized column is empty, then
    :func:`clarinet.text.normalize` and ``vocab``. All texts are encoded once, here. Characters
    the vocabulary lacks are dropped; they are reported once, in one
    :class:`clarinet.text.UnknownCharacterWarning` listing each character and how many
    utterances have it (also kept in :attr:`unknown_characters`), never per item. Utterances
    with no text left are left out with a warning. Left-out ids and the reason are in
    :attr:`skipped`. Order is that of ``metadata.csv``; nothing is sorted.

    Raises:
        FileNotFoundError: ``root``, ``metadata.csv`` or ``wavs/`` is missing, or a row's audio.
        ValueError: a malformed ``metadata.csv`` row, or no utterance left.
    """

    def __init__(self, root: Union[str, os.PathLike], cfg: AudioConfig = AudioConfig(),
                 vocab=None, *, max_text_length: Optional[int] = None,
                 cache_dir: Optional[Union[str, os.PathLike]] = None):
        from .text import UnknownCharacterWarning, Vocabulary, default_vocabulary
        from .text.vocabulary import _describe_chars

        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"root: dataset root is not a folder: {root}")
        meta = root / "metadata.csv"
        if not meta.is_file():
            raise FileNotFoundError(
                f"root: TextAudioDataset needs an LJSpeech-layout folder, but {meta} does not "
                f"exist (expected metadata.csv rows 'id|text|normalized text' and wavs/<id>.wav)")
        if not (root / "wavs").is_dir():
            raise FileNotFoundError(
                f"root: TextAudioDataset needs an LJSpeech-layout folder, but {root / 'wavs'} "
                f"is not a folder (audio goes in wavs/<id>.wav)")
        if vocab is None:
            vocab = default_vocabulary()
        elif not isinstance(vocab, Vocabulary):
            raise TypeError(f"vocab must be a clarinet.text.Vocabulary or None, got {type(vocab).__name__}")
        if max_text_length is not None:
            if isinstance(max_text_length, bool) or not isinstance(max_text_length, (int, np.integer)):
                raise TypeError(f"max_text_length must be an int or None, got {type(max_text_length).__name__}")
            if max_text_length < 2:
                raise ValueError(f"max_text_length must be >= 2 (one symbol and <eos>), got {max_text_length}")
            max_text_length = int(max_text_length)
        self.root = root
        self.cfg = cfg
        self.vocab = vocab
        self.max_text_length = max_text_length
        self.audio_dataset = AudioDataset(root, cfg, segment_samples=None, cache_dir=cache_dir)
        rows = _read_ljspeech_texts(meta)
        if [r[0] for r in rows] != self.audio_dataset.ids:  # pragma: no cover - same parser rules
            raise RuntimeError(f"{meta}: rows changed while reading")

        self._index: List[int] = []       # audio dataset index of each item
        self._ids: List[List[int]] = []   # encoded text of each item
        self._texts: List[str] = []       # normalised text of each item
        self.skipped: Dict[str, str] = {}
        unknown_count: Dict[str, int] = {}
        too_long = empty = 0
        for j, (utt_id, raw, norm) in enumerate(rows):
            source = norm if norm.strip() else raw
            ids, unknown = vocab.encode_with_report(source)
            for c in unknown:
                unknown_count[c] = unknown_count.get(c, 0) + 1
            if len(ids) <= 1 or all(vocab.symbols[i] == " " for i in ids[:-1]):
                self.skipped[utt_id] = "no text left after normalisation and unknown characters"
                empty += 1
                continue
            if max_text_length is not None and len(ids) > max_text_length:
                self.skipped[utt_id] = f"text of {len(ids)} ids > max_text_length={max_text_length}"
                too_long += 1
                continue
            self._index.append(j)
            self._ids.append(ids)
            self._texts.append(vocab.decode(ids))
        #: ``{character: number of utterances it was dropped from}``, in order of first appearance.
        self.unknown_characters: Dict[str, int] = unknown_count
        if unknown_count:
            listed = ", ".join(f"{_describe_chars([c])} in {k} utterance(s)" for c, k in unknown_count.items())
            warnings.warn(UnknownCharacterWarning(
                f"{meta}: dropped characters not in the vocabulary: {listed}"), stacklevel=2)
        if empty:
            warnings.warn(f"{meta}: left out {empty} utterance(s) with no text left after "
                          f"normalisation (ids in .skipped)", RuntimeWarning, stacklevel=2)
        if too_long:
            warnings.warn(f"{meta}: left out {too_long} utterance(s) whose text is longer than "
                          f"max_text_length={max_text_length} (ids in .skipped)",
                          RuntimeWarning, stacklevel=2)
        if not self._index:
            raise ValueError(f"{meta}: no utterance left (skipped: {len(self.skipped)})")

    def __len__(self) -> int:
        return len(self._index)

    @property
    def ids(self) -> List[str]:
        return [self.audio_dataset.ids[j] for j in self._index]

    @property
    def texts(self) -> List[str]:
        """The normalised text of each item, as its ids decode."""
        return list(self._texts)

    @property
    def text_lengths(self) -> List[int]:
        """``N`` of each item's ``text`` (``<eos>`` included)."""
        return [len(ids) for ids in self._ids]

    def frame_lengths(self) -> List[int]:
        """``F`` (mel frames) of each item, from the audio files' headers (nothing is decoded):
        ``round(samples * sample_rate / file_rate) // hop_length``."""
        import soundfile as sf

        out = []
        for j in self._index:
            info = sf.info(str(self.audio_dataset.path(j)))
            samples = round(info.frames * self.cfg.sample_rate / info.samplerate)
            out.append(samples // self.cfg.hop_length)
        return out

    def frames_per_symbol(self) -> float:
        """Mean over the items of ``F / N`` (mel frames per text symbol, ``<eos>`` included): the
        speaking rate that the attention's positional rates should match (Deep Voice 3 sets the key
        rate to the ratio of decoder steps to characters, ``frames_per_symbol() / reduction_factor``)."""
        return float(np.mean([f / n for f, n in zip(self.frame_lengths(), self.text_lengths)]))

    @property
    def mel_pad_value(self) -> float:
        """``log(cfg.log_floor)``: the log-mel of silence, for :func:`collate_text_audio`."""
        return math.log(self.cfg.log_floor)

    def cache_path(self, index: int) -> Path:
        """The log-mel cache file of item ``index``."""
        return self.audio_dataset.cache_path(self._index[index])

    def __getitem__(self, index: int) -> Dict[str, Union[torch.Tensor, str]]:
        n = len(self._index)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} items")
        index = index % n
        item = self.audio_dataset[self._index[index]]
        return dict(id=item["id"], text=torch.tensor(self._ids[index], dtype=torch.long),
                    audio=item["audio"], mel=item["mel"])


def collate_text_audio(items: Sequence[Dict[str, Union[torch.Tensor, str]]], *, segment_frames: int,
                       pad_frames_to: int = 1, generator: Optional[torch.Generator] = None,
                       mel_pad_value: float = math.log(AudioConfig().log_floor)) -> Dict[str, object]:
    """Batch :class:`TextAudioDataset` items (in the given order; nothing is sorted).

    Use as a ``DataLoader`` ``collate_fn`` through ``functools.partial(collate_text_audio,
    segment_frames=..., pad_frames_to=..., generator=..., mel_pad_value=ds.mel_pad_value)``.

    Args:
        items: dicts with ``id``, ``text`` (N,) long, ``audio`` (F * hop,) and ``mel``
            (n_mels, F); ``hop`` is ``audio`` length / ``mel`` frames and must agree across items.
        segment_frames: length in frames of the random vocoder segment drawn per utterance.
        pad_frames_to: the padded frame count ``Fmax`` is the longest ``F`` rounded up to a
            multiple of this (the decoder's reduction factor).
        generator: source of the segment starts (``torch.randint``, one draw per item in batch
            order, so the same generator state gives the same segments); ``None``: torch's
            global generator. A ``DataLoader`` with worker processes gives each worker its own
            copy of a generator bound by ``functools.partial``, so the workers repeat one
            another's draws: pass ``None`` there (workers seed the global generator apart) or
            collate in the main process.
        mel_pad_value: value of padded mel frames: the log-mel of silence, ``log(log_floor)``
            of the :class:`AudioConfig` (default ``log(1e-5)``, the default config's;
            :attr:`TextAudioDataset.mel_pad_value` gives it for a dataset's config).

    Returns:
        dict with
        ``ids`` list of B str;
        ``text`` (B, Nmax) long, padded with ``<pad>`` (id 0); ``text_lengths`` (B,) long;
        ``mel`` (B, n_mels, Fmax) float32 padded with ``mel_pad_value``; ``mel_lengths`` (B,);
        ``audio`` (B, Fmax * hop) zero-padded; ``audio_lengths`` (B,) = ``mel_lengths * hop``;
        ``segment_start`` (B,) long frame index, uniform in ``[0, F - segment_frames]`` so the
        segment lies inside the utterance, 0 when ``F < segment_frames``;
        ``segment_audio`` (B, segment_frames * hop): ``audio[start*hop : (start+segment_frames)*hop]``,
        zero-padded past the utterance's end; ``segment_mel`` (B, n_mels, segment_frames): the
        matching mel frames, padded with ``mel_pad_value``.
    """
    from .text import Vocabulary

    if isinstance(segment_frames, bool) or not isinstance(segment_frames, (int, np.integer)) or segment_frames < 1:
        raise ValueError(f"segment_frames must be a positive integer, got {segment_frames!r}")
    if isinstance(pad_frames_to, bool) or not isinstance(pad_frames_to, (int, np.integer)) or pad_frames_to < 1:
        raise ValueError(f"pad_frames_to must be a positive integer, got {pad_frames_to!r}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    if len(items) == 0:
        raise ValueError("items: collate_text_audio needs at least one item")
    segment_frames, pad_frames_to = int(segment_frames), int(pad_frames_to)

    hops, n_mels = set(), set()
    for k, it in enumerate(items):
        missing = {"id", "text", "audio", "mel"} - set(it)
        if missing:
            raise ValueError(f"items[{k}] lacks {sorted(missing)}")
        text, audio, mel = it["text"], it["audio"], it["mel"]
        if text.dim() != 1 or text.numel() == 0 or text.dtype != torch.long:
            raise ValueError(f"items[{k}]['text'] must be a non-empty 1-D long tensor, "
                             f"got {text.dtype} {tuple(text.shape)}")
        if audio.dim() != 1 or mel.dim() != 2 or mel.shape[1] == 0:
            raise ValueError(f"items[{k}]: need audio (T,) and mel (n_mels, F) with F >= 1, got "
                             f"{tuple(audio.shape)} and {tuple(mel.shape)}")
        hop, rem = divmod(audio.shape[0], mel.shape[1])
        if rem or hop == 0:
            raise ValueError(f"items[{k}]: audio length {audio.shape[0]} is not a multiple of its "
                             f"{mel.shape[1]} mel frames")
        hops.add(hop)
        n_mels.add(int(mel.shape[0]))
    if len(hops) != 1:
        raise ValueError(f"items have different hop lengths (audio / mel frames): {sorted(hops)}")
    if len(n_mels) != 1:
        raise ValueError(f"items have different numbers of mel bands: {sorted(n_mels)}")
    hop, n_mel = hops.pop(), n_mels.pop()

    b = len(items)
    text_lengths = torch.tensor([it["text"].shape[0] for it in items], dtype=torch.long)
    mel_lengths = torch.tensor([it["mel"].shape[1] for it in items], dtype=torch.long)
    n_max = int(text_lengths.max())
    f_max = -(-int(mel_lengths.max()) // pad_frames_to) * pad_frames_to
    seg_samples = segment_frames * hop

    text = torch.full((b, n_max), Vocabulary.pad_id, dtype=torch.long)
    mel = torch.full((b, n_mel, f_max), float(mel_pad_value), dtype=torch.float32)
    audio = torch.zeros(b, f_max * hop, dtype=torch.float32)
    segment_start = torch.zeros(b, dtype=torch.long)
    segment_audio = torch.zeros(b, seg_samples, dtype=torch.float32)
    segment_mel = torch.full((b, n_mel, segment_frames), float(mel_pad_value), dtype=torch.float32)
    for k, it in enumerate(items):
        n, f = int(text_lengths[k]), int(mel_lengths[k])
        text[k, :n] = it["text"]
        mel[k, :, :f] = it["mel"]
        audio[k, :f * hop] = it["audio"]
        # one draw per item (high = 1 when the utterance is shorter than a segment) keeps the
        # generator's consumption independent of the utterance lengths
        start = int(torch.randint(0, max(f - segment_frames, 0) + 1, (1,), generator=generator))
        segment_start[k] = start
        end = min(start + segment_frames, f)
        segment_audio[k, :(end - start) * hop] = it["audio"][start * hop:end * hop]
        segment_mel[k, :, :end - start] = it["mel"][:, start:end]
    return dict(ids=[it["id"] for it in items], text=text, text_lengths=text_lengths, mel=mel,
                mel_lengths=mel_lengths, audio=audio, audio_lengths=mel_lengths * hop,
                segment_start=segment_start, segment_audio=segment_audio, segment_mel=segment_mel)
