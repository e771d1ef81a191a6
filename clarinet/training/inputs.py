"""What the recipes read: audio settings, the two kinds of corpus (a folder of audio files for the
vocoders, an LJSpeech-layout folder of text and audio for text-to-wave), the text batches' collate,
and the check that a model fits the audio settings. Errors are :class:`ConfigError` naming the input."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from .config import ConfigError, TrainConfig

__all__ = ["TextCollate", "audio_config", "audio_dataset", "audio_samples", "check_model_audio",
           "check_teacher_audio", "text_dataset", "text_samples"]


def audio_config(overrides: dict):
    from ..audio import AudioConfig

    names = {f.name for f in dataclasses.fields(AudioConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ConfigError(f"audio: unknown setting(s) {unknown}; valid: {sorted(names)}")
    try:
        return AudioConfig(**overrides)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"audio: {e}") from None



def audio_dataset(cfg: TrainConfig, audio_cfg):
    from ..data import AudioDataset

    root = Path(cfg.data_dir)
    if not root.exists():
        raise ConfigError(f"data folder {str(root)!r} does not exist")
    if not root.is_dir():
        raise ConfigError(f"data folder {str(root)!r} is not a folder")
    if cfg.segment_samples % audio_cfg.hop_length:
        raise ConfigError(f"segment_samples: {cfg.segment_samples} is not a multiple of the hop length "
                          f"({audio_cfg.hop_length})")
    try:
        ds = AudioDataset(root, cfg=audio_cfg, segment_samples=cfg.segment_samples, cache_dir=cfg.cache_dir,
                          seed=cfg.seed)
    except (FileNotFoundError, ValueError) as e:
        raise ConfigError(f"data folder {str(root)!r}: {e}") from None
    if len(ds) == 0:
        raise ConfigError(f"data folder {str(root)!r} holds no audio files")
    return ds



def audio_samples(batch: dict) -> int:
    """Audio samples in a batch of equal-length segments (:func:`clarinet.data.collate`)."""
    return batch["audio"].numel()


def text_dataset(cfg: TrainConfig, audio_cfg, *, vocab, max_text_length):
    """The LJSpeech-layout corpus in ``cfg.data_dir`` (:class:`clarinet.data.TextAudioDataset`)."""
    from ..data import TextAudioDataset

    root = Path(cfg.data_dir)
    if not root.is_dir():
        raise ConfigError(f"data folder {str(root)!r} does not exist or is not a folder")
    try:
        return TextAudioDataset(root, cfg=audio_cfg, vocab=vocab, max_text_length=max_text_length,
                                cache_dir=cfg.cache_dir)
    except (FileNotFoundError, ValueError) as e:
        raise ConfigError(f"data folder {str(root)!r}: {e}") from None


def text_samples(batch: dict) -> int:
    """Audio samples in a batch of whole utterances (:func:`clarinet.data.collate_text_audio`)."""
    return int(batch["audio_lengths"].sum())


class TextCollate:
    """``collate_text_audio`` with segments drawn from a generator seeded by the run's seed and the batch's
    utterance ids (so a resumed run draws the same segments for the same batches); picklable for workers."""

    def __init__(self, segment_frames: int, pad_frames_to: int, mel_pad_value: float, seed: int):
        self.segment_frames, self.pad_frames_to = segment_frames, pad_frames_to
        self.mel_pad_value, self.seed = mel_pad_value, seed

    def __call__(self, items):
        import zlib

        from ..data import collate_text_audio

        key = zlib.crc32("\n".join(str(it["id"]) for it in items).encode())
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + key)
        return collate_text_audio(items, segment_frames=self.segment_frames, pad_frames_to=self.pad_frames_to,
                                  generator=g, mel_pad_value=self.mel_pad_value)



def check_model_audio(model, audio_cfg, what: str, mel_conditioned: bool = True):
    n_mels = model.config.get("n_mels")
    if mel_conditioned and n_mels is not None and n_mels != audio_cfg.n_mels:
        raise ConfigError(f"{what} has n_mels={n_mels} but the audio settings give {audio_cfg.n_mels} mel bands")
    hop = getattr(model, "hop_length", None)
    if hop is not None and hop != audio_cfg.hop_length:
        raise ConfigError(f"{what} upsamples by {hop} (upsample_strides {model.config.get('upsample_strides')}) "
                          f"but the audio hop length is {audio_cfg.hop_length}")



def check_teacher_audio(cfg: TrainConfig, teacher_audio: dict) -> None:
    """ConfigError when ``cfg.audio`` sets a value the teacher's audio settings do not have."""
    if cfg.audio:
        conflicts = {k: (v, teacher_audio.get(k)) for k, v in cfg.audio.items() if teacher_audio.get(k) != v}
        if conflicts:
            raise ConfigError(f"audio: the student must use its teacher's audio settings; (given, teacher's): "
                              f"{conflicts}")
