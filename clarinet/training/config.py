"""Training configuration: one dataclass per command, built from keywords, a JSON file, or both.

:class:`TrainConfig` holds the settings every command shares (data, output, optimiser, schedule,
EMA, checkpoints, logging, devices); :class:`TeacherConfig`, :class:`StudentConfig` and
:class:`Text2WaveConfig` add each recipe's loss settings. :meth:`TrainConfig.from_sources` merges
defaults, a ``--config`` JSON file and overrides (CLI flags); :meth:`~TrainConfig.validate` checks and
normalises every field, raising :class:`ConfigError` (a ``ValueError``) that names the field.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch

from .._backend import BACKENDS

__all__ = ["ConfigError", "SCHEDULES", "StudentConfig", "TeacherConfig", "Text2WaveConfig", "TrainConfig",
           "as_config"]

SCHEDULES = ("exponential", "cosine", "constant")


class ConfigError(ValueError):
    """A training configuration or input that cannot be used (the message says which and why)."""


@dataclass
class TrainConfig:
    """Settings shared by both commands. ``batch_size`` is per process; ``segment_samples`` must be a
    multiple of the hop (300 at 24 kHz). ``model`` replaces preset values (constructor arguments of the
    model class); ``audio`` replaces :class:`clarinet.audio.AudioConfig` fields (teacher only: the student
    uses its teacher's).

    Watching a run: ``val_fraction`` (0 to 0.5) of the utterances, chosen with the seed, are held out
    and their loss is logged every ``val_every`` steps (0: at every checkpoint); every
    ``sample_every`` steps (0: never) a held-out utterance (a training one without a held-out set),
    at most ``sample_seconds`` long (text-to-wave: the whole sentence, up to 1.5 times its length), is
    generated into ``<out_dir>/samples/step-N.wav`` with a
    spectrogram ``step-N.png`` (needs matplotlib; the wav is written without it)."""

    data_dir: str = ""
    out_dir: str = ""
    preset: str = ""
    model: dict = field(default_factory=dict)
    audio: dict = field(default_factory=dict)
    segment_samples: int = 7200
    batch_size: int = 8
    steps: int = 200_000
    lr: Optional[float] = None
    betas: tuple = (0.9, 0.999)
    weight_decay: float = 0.0
    schedule: str = "exponential"
    warmup_steps: Optional[int] = None
    lr_half_life: int = 200_000
    min_lr: float = 1e-6
    clip: float = 1.0
    ema: float = 0.9999
    bf16: bool = False
    log_every: int = 100
    ckpt_every: int = 5000
    keep: int = 5
    seed: int = 0
    backend: str = "auto"
    device: Optional[str] = None
    num_workers: int = 0
    cache_dir: Optional[str] = None
    progress: bool = True
    resume: Optional[str] = None
    val_fraction: float = 0.0
    val_every: int = 0
    sample_every: int = 0
    sample_seconds: float = 2.0

    #: ``lr`` None: ``BASE_LR * sqrt(min(1, batch_size / BASE_BATCH))``; ``warmup_steps`` None:
    #: ``min(MAX_WARMUP, steps // 10)``. Measured on espeak-ng speech (train-teacher, teacher-small,
    #: 2400-sample segments; highest interval loss after the warm-up; README "Training on your own
    #: data"): batch 2: lr 1e-3 95, 5e-4 17, 3e-4 16, 2.5e-4 9.0, 2e-4 1.8; batch 8: lr 1e-3 101, 5e-4 9.6.
    #: Every run recovered, but the spikes grow with the learning rate and shrink with the batch.
    BASE_LR = 5e-4
    BASE_BATCH = 8
    MAX_WARMUP = 1000

    # -- building ------------------------------------------------------------------------
    @classmethod
    def from_sources(cls, config_file=None, **overrides):
        """Defaults, then the JSON object in ``config_file`` (if any), then ``overrides`` (e.g. CLI flags).

        ``model`` and ``audio`` dicts are merged key by key (a flag for one model size keeps the file's
        others). Unknown keys and bad values raise :class:`ConfigError`.
        """
        values: dict = {}
        if config_file is not None:
            path = Path(config_file)
            if not path.is_file():
                raise ConfigError(f"--config: file {str(path)!r} does not exist")
            try:
                loaded = json.loads(path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise ConfigError(f"--config: {str(path)!r} is not valid JSON: {e}") from None
            if not isinstance(loaded, dict):
                raise ConfigError(f"--config: {str(path)!r} must hold a JSON object of settings")
            values.update(loaded)
        for key in ("model", "audio"):
            if key in overrides and isinstance(values.get(key), dict) and isinstance(overrides[key], dict):
                overrides[key] = {**values[key], **overrides[key]}
        values.update(overrides)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"unknown setting(s) {unknown} for {cls.__name__}; valid: {sorted(names)}")
        try:
            cfg = cls(**values)
        except TypeError as e:
            raise ConfigError(str(e)) from None
        return cfg.validate()

    def to_dict(self) -> dict:
        """Plain (JSON- and checkpoint-safe) copy of the settings."""
        d = dataclasses.asdict(self)
        d["betas"] = list(d["betas"])
        return d

    # -- validation ----------------------------------------------------------------------
    def validate(self):
        """Check and normalise every field; raise :class:`ConfigError` naming the first bad one."""
        self.data_dir = _path_str("data_dir", self.data_dir, required=True)
        self.out_dir = _path_str("out_dir", self.out_dir, required=True)
        if not isinstance(self.preset, str) or not self.preset:
            raise ConfigError(f"preset: expected a preset name, got {self.preset!r}")
        for name in ("model", "audio"):
            v = getattr(self, name)
            if v is None:
                setattr(self, name, {})
            elif not isinstance(v, dict) or not all(isinstance(k, str) for k in v):
                raise ConfigError(f"{name}: expected a dict of settings, got {v!r}")
        for name in ("segment_samples", "batch_size", "steps", "log_every", "ckpt_every", "keep",
                     "lr_half_life"):
            _int(name, getattr(self, name), 1)
        if self.warmup_steps is None:
            self.warmup_steps = min(self.MAX_WARMUP, self.steps // 10)
        for name in ("warmup_steps", "num_workers", "seed", "val_every", "sample_every"):
            _int(name, getattr(self, name), 0)
        if self.lr is None:
            self.lr = self.BASE_LR * math.sqrt(min(1.0, self.batch_size / self.BASE_BATCH))
        _float(self, "val_fraction", low=0.0, high=0.5)
        _float(self, "sample_seconds", low=0.0, low_open=True)
        _float(self, "lr", low=0.0, low_open=True)
        _float(self, "weight_decay", low=0.0)
        _float(self, "min_lr", low=0.0)
        _float(self, "clip", low=0.0)
        _float(self, "ema", low=0.0, high=1.0, high_open=True)
        betas = self.betas
        if not isinstance(betas, (list, tuple)) or len(betas) != 2:
            raise ConfigError(f"betas: expected two numbers in [0, 1), got {betas!r}")
        for b in betas:
            if isinstance(b, bool) or not isinstance(b, (int, float)) or not 0.0 <= b < 1.0:
                raise ConfigError(f"betas: expected two numbers in [0, 1), got {betas!r}")
        self.betas = (float(betas[0]), float(betas[1]))
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule: expected one of {SCHEDULES}, got {self.schedule!r}")
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend: expected one of {BACKENDS}, got {self.backend!r}")
        for name in ("bf16", "progress"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name}: expected true or false, got {getattr(self, name)!r}")
        if self.device is not None:
            try:
                torch.device(self.device)
            except (RuntimeError, TypeError):
                raise ConfigError(f"device: {self.device!r} is not a torch device (e.g. cpu, cuda, cuda:1)") from None
        if self.cache_dir is not None:
            self.cache_dir = _path_str("cache_dir", self.cache_dir)
        if self.resume is not None:
            self.resume = _path_str("resume", self.resume)
        if "backend" in self.model:
            raise ConfigError("model: set the backend with the 'backend' setting (--backend), not in 'model'")
        return self


@dataclass
class TeacherConfig(TrainConfig):
    """``clarinet train-teacher``: a :class:`clarinet.models.GaussianWaveNet` trained by maximum likelihood
    (:func:`clarinet.losses.teacher_loss`, log-scales floored at ``log_scale_min``)."""

    preset: str = "teacher"
    log_scale_min: float = -9.0

    def validate(self):
        super().validate()
        _float(self, "log_scale_min")
        return self


@dataclass
class StudentConfig(TrainConfig):
    """``clarinet train-student``: a :class:`clarinet.models.GaussianIAF` distilled from the teacher
    checkpoint ``teacher`` (its EMA weights when it has them) by :func:`clarinet.losses.distillation_loss`
    (``kl_weight``, ``stft_weight``, ``reg_weight``, ``log_scale_min``, ``kind`` = ``"reverse"`` or
    ``"forward"``, ``kl_reg_raw``: the regulariser on the raw log-scales, see
    :func:`clarinet.ops.gaussian_kl`). The student's audio settings are the teacher's."""

    preset: str = "student"
    teacher: str = ""
    kl_weight: float = 1.0
    stft_weight: float = 1.0
    reg_weight: float = 4.0
    log_scale_min: float = -7.0
    kind: str = "reverse"
    kl_reg_raw: bool = False

    def validate(self):
        super().validate()
        self.teacher = _path_str("teacher", self.teacher, required=True)
        for name in ("kl_weight", "stft_weight", "reg_weight"):
            _float(self, name, low=0.0)
        _float(self, "log_scale_min")
        if self.kl_weight == 0 and self.stft_weight == 0:
            raise ConfigError("kl_weight and stft_weight are both 0: nothing to train")
        from ..losses import KL_KINDS

        if self.kind not in KL_KINDS:
            raise ConfigError(f"kind: expected one of {KL_KINDS}, got {self.kind!r}")
        if not isinstance(self.kl_reg_raw, bool):
            raise ConfigError(f"kl_reg_raw: expected true or false, got {self.kl_reg_raw!r}")
        return self


@dataclass
class Text2WaveConfig(TrainConfig):
    """``clarinet train-text2wave``: a :class:`clarinet.models.TextToWave` trained jointly from scratch on
    an LJSpeech-layout folder by :func:`clarinet.losses.text2wave_loss` (weights ``mel_weight``,
    ``linear_weight``, ``done_weight``, ``vocoder_weight``; the vocoder's log-scales floored at
    ``log_scale_min``; ``attention_weight`` > 0 adds the guided-attention term with width
    ``attention_sigma``, not in the paper, which makes the alignment appear much sooner; 0 disables). ``batch_size`` counts utterances; ``segment_samples`` is the vocoder segment
    per utterance. ``audio`` replaces fields of the preset's audio settings (the model stores them).
    ``max_text_length`` (default: the model's) leaves longer utterances out of the data."""

    preset: str = "text2wave"
    segment_samples: int = 7200
    batch_size: int = 16
    BASE_LR = 5e-4
    BASE_BATCH = 16
    mel_weight: float = 1.0
    linear_weight: float = 1.0
    done_weight: float = 1.0
    vocoder_weight: float = 1.0
    log_scale_min: float = -9.0
    attention_weight: float = 1.0
    attention_sigma: float = 0.2
    max_text_length: Optional[int] = None

    def validate(self):
        super().validate()
        for name in ("mel_weight", "linear_weight", "done_weight", "vocoder_weight", "attention_weight"):
            _float(self, name, low=0.0)
        _float(self, "attention_sigma", low=0.0, low_open=True)
        _float(self, "log_scale_min")
        if self.max_text_length is not None:
            _int("max_text_length", self.max_text_length, 2)
        for key in ("audio", "vocabulary"):
            if key in self.model:
                raise ConfigError("model: set the audio with the 'audio' setting, not in 'model'" if key == "audio"
                                  else "model: the vocabulary is the default character vocabulary; it cannot be set")
        return self


# ----------------------------------------------------------------------------------------------
# field checks (each error names the field)

def _path_str(name, v, required=False) -> str:
    if isinstance(v, os.PathLike):
        v = os.fspath(v)
    if required and (v is None or v == ""):
        flag = {"out_dir": "--out", "data_dir": "DATA_DIR", "teacher": "--teacher"}.get(name, name)
        raise ConfigError(f"{name} ({flag}) is required")
    if not isinstance(v, str):
        raise ConfigError(f"{name}: expected a path, got {v!r}")
    return v


def _int(name, v, low):
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
        raise ConfigError(f"{name}: expected an integer >= {low}, got {v!r}")


def _float(cfg, name, low=None, high=None, low_open=False, high_open=False):
    v = getattr(cfg, name)
    ok = not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)
    if ok and low is not None:
        ok = v > low if low_open else v >= low
    if ok and high is not None:
        ok = v < high if high_open else v <= high
    if not ok:
        lo = "" if low is None else (f"> {low}" if low_open else f">= {low}")
        hi = "" if high is None else (f"< {high}" if high_open else f"<= {high}")
        rng = " and ".join(s for s in (lo, hi) if s)
        raise ConfigError(f"{name}: expected a finite number{' ' + rng if rng else ''}, got {v!r}")
    setattr(cfg, name, float(v))


def as_config(config, cls):
    """``config`` (a ``cls`` instance or a dict of its settings) as a validated ``cls``."""
    if isinstance(config, cls):
        return config.validate()
    if isinstance(config, dict):
        return cls.from_sources(**config)
    raise TypeError(f"expected a {cls.__name__} or a dict of its settings, got {type(config).__name__}")
