"""``clarinet train-teacher``: a :class:`clarinet.models.GaussianWaveNet` trained by maximum likelihood
(:func:`clarinet.losses.teacher_loss`) on fixed-length audio segments and their log-mel frames."""
from __future__ import annotations

import dataclasses

from .config import TeacherConfig, as_config
from .inputs import audio_config, audio_dataset, audio_samples
from .loop import Recipe, TrainResult, run
from .watch import vocoder_sample

__all__ = ["train_teacher"]


def train_teacher(config) -> TrainResult:
    """Train a :class:`clarinet.models.GaussianWaveNet` by maximum likelihood (see :mod:`clarinet.training`).

    ``config``: a :class:`TeacherConfig` or a dict of its fields. Returns a :class:`TrainResult`.
    """
    from .. import losses
    from ..models import GaussianWaveNet

    cfg = as_config(config, TeacherConfig)
    audio_cfg = audio_config(cfg.audio)

    def loss(model, batch, step, dist):
        terms = losses.teacher_loss(model, batch["audio"], batch["mel"], log_scale_min=cfg.log_scale_min)
        return terms if isinstance(terms, dict) else {"loss": terms}

    def sample(model, dataset, index, stem, seconds):
        p = next(model.parameters())
        return vocoder_sample(lambda mel: model.generate(mel.to(p), progress=False), dataset, index, stem, seconds,
                              audio_cfg, "teacher")

    return run(cfg, Recipe(command="train-teacher", model_cls=GaussianWaveNet, audio=audio_cfg,
                           make_dataset=lambda: audio_dataset(cfg, audio_cfg), loss=loss, samples=audio_samples,
                           extra={"audio": dataclasses.asdict(audio_cfg)}, sample=sample))
