"""``clarinet train-text2wave``: a :class:`clarinet.models.TextToWave` (encoder, decoder, bridge-net,
vocoder) trained jointly from scratch on an LJSpeech-layout folder (:class:`clarinet.data.TextAudioDataset`):
whole utterances per batch, one random vocoder segment of ``segment_samples`` per utterance
(:func:`clarinet.losses.text2wave_loss`); the segments are drawn from a generator seeded with the seed
and the batch's utterance ids, so resuming draws the same segments."""
from __future__ import annotations

import dataclasses
import math
import warnings

from .config import ConfigError, Text2WaveConfig, as_config
from .inputs import TextCollate, audio_config, text_dataset, text_samples
from .loop import Recipe, TrainResult, run

__all__ = ["train_text2wave"]


def _text2wave_audio(cfg: Text2WaveConfig):
    """The audio settings: the preset's (a :class:`~clarinet.models.TextToWave` preset names them), then
    ``cfg.audio``."""
    from ..models.text2wave import TEXT2WAVE_PRESETS

    if cfg.preset not in TEXT2WAVE_PRESETS:
        raise ConfigError(f"preset: unknown TextToWave preset {cfg.preset!r}; presets: {sorted(TEXT2WAVE_PRESETS)}")
    return audio_config({**TEXT2WAVE_PRESETS[cfg.preset].get("audio", {}), **cfg.audio})


def train_text2wave(config) -> TrainResult:
    """Train a :class:`clarinet.models.TextToWave` from scratch, all parts jointly (see the module docstring).

    ``config``: a :class:`Text2WaveConfig` or a dict of its fields. The checkpoints hold the model's
    vocabulary and audio settings (in its config), so :meth:`TextToWave.synthesize` needs nothing else.
    Returns a :class:`TrainResult`.
    """
    from .. import losses
    from ..models import TextToWave
    from ..models.text2wave import TEXT2WAVE_PRESETS
    from ..text import default_vocabulary

    cfg = as_config(config, Text2WaveConfig)
    audio_cfg = _text2wave_audio(cfg)
    vocab = default_vocabulary()
    preset = TEXT2WAVE_PRESETS[cfg.preset]
    r = int(cfg.model.get("reduction_factor", preset.get("reduction_factor", 1)))
    max_text = cfg.max_text_length or int(cfg.model.get("max_text_length", preset.get("max_text_length", 512)))
    if cfg.segment_samples % audio_cfg.hop_length:
        raise ConfigError(f"segment_samples: {cfg.segment_samples} is not a multiple of the hop length "
                          f"({audio_cfg.hop_length})")

    def loss(model, batch, step, dist):
        return losses.text2wave_loss(model, batch, audio_config=audio_cfg, mel_weight=cfg.mel_weight,
                                     linear_weight=cfg.linear_weight, done_weight=cfg.done_weight,
                                     vocoder_weight=cfg.vocoder_weight, log_scale_min=cfg.log_scale_min,
                                     attention_weight=cfg.attention_weight, attention_sigma=cfg.attention_sigma)

    collate = TextCollate(cfg.segment_samples // audio_cfg.hop_length, r, math.log(audio_cfg.log_floor), cfg.seed)

    def key_rate(dataset):
        # Deep Voice 3: the key rate is the corpus's decoder steps per character (query rate 1), so that the
        # untrained attention's positional prior is the corpus's diagonal (measured: on espeak-ng speech,
        # 1.97 steps per character at 4 kHz and r = 3; with the preset's 1.0 the tiny model never aligned)
        q = float(cfg.model.get("query_position_rate", preset.get("query_position_rate", 1.0)))
        return {"key_position_rate": round(q * dataset.frames_per_symbol() / r, 3)}

    def sample(model, dataset, index, stem, seconds):
        from .watch import frames_for, write_sample

        item = dataset[index]
        F = item["mel"].shape[1]  # the whole sentence (its alignment is the point), at most 1.5 x its length
        limit = min(F * 3 // 2, max(F, frames_for(seconds, audio_cfg.sample_rate, audio_cfg.hop_length)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # early in training the decoder rarely stops
            audio, sr, details = model.synthesize(item["text"], max_frames=limit, progress=False,
                                                  return_details=True)
        text = dataset.texts[index]
        return write_sample(stem, audio, sr, model.hop_length, details=details,
                            title=text if len(text) <= 60 else text[:57] + "...")
    return run(cfg, Recipe(command="train-text2wave", model_cls=TextToWave, audio=audio_cfg,
                           make_dataset=lambda: text_dataset(cfg, audio_cfg, vocab=vocab, max_text_length=max_text),
                           collate=collate, loss=loss, samples=text_samples,
                           extra={"audio": dataclasses.asdict(audio_cfg)}, dataset_model_args=key_rate, sample=sample,
                           model_args={"audio": dataclasses.asdict(audio_cfg), "vocabulary": vocab.config()}))
