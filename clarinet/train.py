"""Training the vocoders (the Gaussian WaveNet teacher and the distilled Gaussian IAF student) and the
text-to-wave model.

One small trainer serves the three commands (``clarinet train-teacher``, ``clarinet train-student``,
``clarinet train-text2wave``):

- AdamW (``lr``, ``betas``, ``weight_decay``); learning rate: linear warm-up over ``warmup_steps``, then
  ``schedule`` = ``"exponential"`` (halved every ``lr_half_life`` steps, ClariNet's annealing),
  ``"cosine"`` (to ``min_lr`` at ``steps``) or ``"constant"``; never below ``min_lr`` after warm-up;
- gradient clipping by global norm (``clip``; 0 disables);
- optional exponential moving average of the parameters (``ema`` = decay; 0 disables), saved in every
  checkpoint; :func:`clarinet.checkpoint.load_model` and ``train-student --teacher`` use those weights;
- bf16 autocast on CUDA (``bf16``; ignored with a warning on the CPU);
- a log line (losses averaged over the interval and over processes, learning rate, gradient norm,
  throughput in audio samples/s and x real time) every ``log_every`` steps, through the
  ``clarinet.train`` logger, and the same record appended to ``<out_dir>/train-log.jsonl``;
- a tqdm progress bar (``progress``);
- checkpoints ``<out_dir>/step-000100.pt`` every ``ckpt_every`` steps and at the end, the newest ``keep``
  kept, each written atomically (:mod:`clarinet.checkpoint`);
- resume: from ``resume`` when given, else from the newest checkpoint in ``out_dir``; model, optimizer,
  schedule, EMA and data position are restored, so an interrupted run continues where its last
  checkpoint left it (and, on the same machine and settings, reproduces the uninterrupted run);
- determinism: ``seed`` fixes the initial weights, the data order (``DistributedSampler`` with the seed,
  epoch by epoch), the dataset's segment choice and the student's noise (drawn per step from a generator
  seeded with ``(seed, step, rank)``);
- DistributedDataParallel when launched by ``torchrun`` (``WORLD_SIZE > 1``): NCCL on GPUs, gloo on the
  CPU; each process reads its share of every epoch; only rank 0 writes checkpoints and logs.
  ``batch_size`` is per process.

``train-text2wave`` trains :class:`clarinet.models.TextToWave` (encoder, decoder, bridge-net, vocoder)
jointly from scratch on an LJSpeech-layout folder (:class:`clarinet.data.TextAudioDataset`): whole
utterances per batch, one random vocoder segment of ``segment_samples`` per utterance
(:func:`clarinet.losses.text2wave_loss`); the segments are drawn from a generator seeded with the
seed and the batch's utterance ids, so resuming draws the same segments.

The configuration is a dataclass per command (:class:`TeacherConfig`, :class:`StudentConfig`,
:class:`Text2WaveConfig`), built
from keywords, a JSON file, or both (:meth:`TrainConfig.from_sources`); invalid values raise
:class:`ConfigError` (a ``ValueError``) naming the field.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch

from . import checkpoint as ckpt_lib
from ._backend import BACKENDS

__all__ = [
    "ConfigError",
    "EMA",
    "StudentConfig",
    "TeacherConfig",
    "Text2WaveConfig",
    "TrainConfig",
    "TrainResult",
    "lr_factor",
    "train_student",
    "train_teacher",
    "train_text2wave",
]

logger = logging.getLogger("clarinet.train")

SCHEDULES = ("exponential", "cosine", "constant")
LOG_FILE = "train-log.jsonl"


class ConfigError(ValueError):
    """A training configuration or input that cannot be used (the message says which and why)."""


# ----------------------------------------------------------------------------------------------
# configuration

@dataclass
class TrainConfig:
    """Settings shared by both commands. ``batch_size`` is per process; ``segment_samples`` must be a
    multiple of the hop (300 at 24 kHz). ``model`` replaces preset values (constructor arguments of the
    model class); ``audio`` replaces :class:`clarinet.audio.AudioConfig` fields (teacher only: the student
    uses its teacher's)."""

    data_dir: str = ""
    out_dir: str = ""
    preset: str = ""
    model: dict = field(default_factory=dict)
    audio: dict = field(default_factory=dict)
    segment_samples: int = 7200
    batch_size: int = 8
    steps: int = 200_000
    lr: float = 1e-3
    betas: tuple = (0.9, 0.999)
    weight_decay: float = 0.0
    schedule: str = "exponential"
    warmup_steps: int = 1000
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
        for name in ("warmup_steps", "num_workers", "seed"):
            _int(name, getattr(self, name), 0)
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
        from .losses import KL_KINDS

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
    lr: float = 5e-4
    warmup_steps: int = 1000
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


# ----------------------------------------------------------------------------------------------
# pieces

def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Learning-rate multiplier for the update that follows ``step`` completed updates."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    t = step - cfg.warmup_steps
    if cfg.schedule == "exponential":
        f = 0.5 ** (t / cfg.lr_half_life)
    elif cfg.schedule == "cosine":
        span = max(1, cfg.steps - cfg.warmup_steps)
        p = min(1.0, t / span)
        floor = min(1.0, cfg.min_lr / cfg.lr)
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * p))
    else:
        f = 1.0
    return max(f, min(1.0, cfg.min_lr / cfg.lr))


class EMA:
    """Exponential moving average of a model's floating-point parameters.

    ``shadow = d * shadow + (1 - d) * param`` after every update, with ``d = min(decay, (1 + n) / (10 + n))``
    at update ``n`` (the usual warm-up, so that short runs are not dominated by the initial weights).
    The averages are kept in float32. ``state_dict()`` is checkpoint-safe.
    """

    def __init__(self, model: torch.nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must be in (0, 1), got {decay}")
        self.decay = float(decay)
        self.num_updates = 0
        self._params = {n: p for n, p in model.named_parameters() if p.dtype.is_floating_point}
        self.shadow = {n: p.detach().clone().float() for n, p in self._params.items()}

    @torch.no_grad()
    def update(self) -> None:
        d = min(self.decay, (1.0 + self.num_updates) / (10.0 + self.num_updates))
        self.num_updates += 1
        names = list(self._params)
        shadows = [self.shadow[n] for n in names]
        params = [self._params[n].detach().float() for n in names]
        torch._foreach_lerp_(shadows, params, 1.0 - d)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "num_updates": self.num_updates, "shadow": dict(self.shadow)}

    def load_state_dict(self, state: dict) -> None:
        missing = set(self.shadow) - set(state["shadow"])
        extra = set(state["shadow"]) - set(self.shadow)
        if missing or extra:
            raise ValueError(f"EMA state does not match the model: missing {sorted(missing)[:5]}, "
                             f"unexpected {sorted(extra)[:5]}")
        self.num_updates = int(state["num_updates"])
        for n, t in state["shadow"].items():
            self.shadow[n].copy_(t)


@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self):
        if self.world > 1:
            torch.distributed.barrier()

    def all_mean(self, t: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            torch.distributed.all_reduce(t)
            t = t / self.world
        return t

    def close(self):
        if self.owns_group and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _setup_distributed(device: Optional[str]) -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"device: {device!r} asked for, but no CUDA GPU is available")
        return _Dist(device=dev)
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    want = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if want.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device: {device!r} asked for, but no CUDA GPU is available")
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    else:
        dev = want
    owns = False
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
        owns = True
    return _Dist(rank=rank, world=world, local_rank=local, device=dev, owns_group=owns)


class _DDP(torch.nn.parallel.DistributedDataParallel):
    """DistributedDataParallel that exposes the model's ``backend`` (the losses read it)."""

    @property
    def backend(self):
        return self.module.backend


class _IndexSampler(torch.utils.data.Sampler):
    def __init__(self, indices):
        self.indices = list(indices)

    def __iter__(self):
        return iter(self.indices)

    def __len__(self):
        return len(self.indices)


class _Batches:
    """Per-process batches, epoch after epoch, starting at any global step (for resuming)."""

    def __init__(self, dataset, cfg: TrainConfig, dist: _Dist, collate=None):
        from torch.utils.data import DistributedSampler

        if collate is None:
            from .data import collate

        self.dataset, self.cfg, self.dist, self.collate = dataset, cfg, dist, collate
        self.sampler = DistributedSampler(dataset, num_replicas=dist.world, rank=dist.rank, shuffle=True,
                                          seed=cfg.seed, drop_last=False)
        self.per_epoch = math.ceil(len(self.sampler) / cfg.batch_size)

    def position(self, step: int) -> tuple[int, int]:
        return divmod(step, self.per_epoch)

    def iterate(self, start_step: int):
        from torch.utils.data import DataLoader

        epoch, skip = self.position(start_step)
        while True:
            self.sampler.set_epoch(epoch)
            indices = list(self.sampler)[skip * self.cfg.batch_size:]
            # set_epoch restarts the segment draws: the segments then depend on (seed, index, epoch)
            # only, the same whether or not the run was resumed (and in worker copies alike)
            if hasattr(self.dataset, "set_epoch"):
                self.dataset.set_epoch(epoch)
            loader = DataLoader(self.dataset, batch_size=self.cfg.batch_size, sampler=_IndexSampler(indices),
                                num_workers=self.cfg.num_workers, collate_fn=self.collate,
                                pin_memory=self.dist.device.type == "cuda", drop_last=False)
            yield from loader
            epoch, skip = epoch + 1, 0


@dataclass
class TrainResult:
    """What a training call returns: the final step, the last checkpoint written (rank 0; None elsewhere),
    the logged records, the trained model (unwrapped; raw weights) and its EMA (or None)."""

    step: int
    checkpoint: Optional[Path]
    history: list
    model: torch.nn.Module
    ema: Optional[EMA]


# ----------------------------------------------------------------------------------------------
# setup helpers

def _audio_config(overrides: dict):
    from .audio import AudioConfig

    names = {f.name for f in dataclasses.fields(AudioConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ConfigError(f"audio: unknown setting(s) {unknown}; valid: {sorted(names)}")
    try:
        return AudioConfig(**overrides)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"audio: {e}") from None


def _dataset(cfg: TrainConfig, audio_cfg):
    from .data import AudioDataset

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


def _build_model(cls, cfg: TrainConfig, model_args: Optional[dict] = None):
    import inspect

    valid = sorted(p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "backend"))
    unknown = sorted(set(cfg.model) - set(valid))
    if unknown:
        raise ConfigError(f"model: unknown {cls.__name__} argument(s) {unknown}; valid: {valid}")
    presets = sorted(getattr(cls, "PRESETS", {}))
    if cfg.preset not in presets:
        raise ConfigError(f"preset: unknown {cls.__name__} preset {cfg.preset!r}; presets: {presets}")
    model_args = {**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg.model.items()}, **(model_args or {})}
    torch.manual_seed(cfg.seed)
    try:
        return cls.from_preset(cfg.preset, **model_args, backend=cfg.backend)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"model: {e}") from None


def _comparable(config: dict) -> dict:
    out = {}
    for k, v in config.items():
        if k == "backend":
            continue
        out[k] = list(v) if isinstance(v, tuple) else v
    return out


def _check_model_audio(model, audio_cfg, what: str, mel_conditioned: bool = True):
    n_mels = model.config.get("n_mels")
    if mel_conditioned and n_mels is not None and n_mels != audio_cfg.n_mels:
        raise ConfigError(f"{what} has n_mels={n_mels} but the audio settings give {audio_cfg.n_mels} mel bands")
    hop = getattr(model, "hop_length", None)
    if hop is not None and hop != audio_cfg.hop_length:
        raise ConfigError(f"{what} upsamples by {hop} (upsample_strides {model.config.get('upsample_strides')}) "
                          f"but the audio hop length is {audio_cfg.hop_length}")


def _resolve_resume(cfg: TrainConfig) -> Optional[Path]:
    if cfg.resume is not None:
        p = Path(cfg.resume)
        if not p.is_file():
            raise ConfigError(f"resume: checkpoint {cfg.resume!r} does not exist")
        return p
    return ckpt_lib.latest_checkpoint(cfg.out_dir)


class _JsonlLog:
    def __init__(self, path: Path):
        self.path = path

    def write(self, record: dict):
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


# ----------------------------------------------------------------------------------------------
# the loop

def _run(cfg: TrainConfig, *, command: str, model_cls, make_loss, audio_cfg, extra: dict,
         setup_model=None, make_dataset=None, collate=None, model_args=None, mel_conditioned=True) -> TrainResult:
    """Common loop. ``make_loss(model, audio, mel, step, dist) -> dict(loss=, ...)`` (0-D tensors).

    With ``make_dataset(cfg, audio_cfg) -> dataset`` and ``collate(items) -> dict`` (the text-to-wave
    data) the batch is a dict moved to the device whole and the call is
    ``make_loss(model, batch, step, dist)``; throughput counts the batch's ``audio_lengths``.
    ``model_args``: constructor arguments set by the command (over the config's ``model``).
    ``mel_conditioned``: the model's ``n_mels`` must match the audio's mel bands (False for a student
    conditioned on a text-to-wave model's bridge-net).
    """
    dist = _setup_distributed(cfg.device)
    try:
        return _run_inner(cfg, dist, command=command, model_cls=model_cls, make_loss=make_loss,
                          audio_cfg=audio_cfg, extra=extra, setup_model=setup_model, make_dataset=make_dataset,
                          collate=collate, model_args=model_args, mel_conditioned=mel_conditioned)
    finally:
        dist.close()


def _run_inner(cfg, dist: _Dist, *, command, model_cls, make_loss, audio_cfg, extra, setup_model,
               make_dataset=None, collate=None, model_args=None, mel_conditioned=True):
    from tqdm.auto import tqdm

    device = dist.device
    out = Path(cfg.out_dir)
    if dist.main:
        out.mkdir(parents=True, exist_ok=True)
        ckpt_lib.remove_temp_files(out)
    dataset = _dataset(cfg, audio_cfg) if make_dataset is None else make_dataset(cfg, audio_cfg)
    model = _build_model(model_cls, cfg, model_args)
    _check_model_audio(model, audio_cfg, f"the {model_cls.__name__} model", mel_conditioned)
    if setup_model is not None:
        setup_model(model, dist)

    resume_path = _resolve_resume(cfg)
    dist.barrier()  # every rank has chosen its checkpoint before rank 0 may write a newer one
    state = None
    if resume_path is not None:
        try:
            state = ckpt_lib.load_checkpoint(resume_path)
            ckpt_lib.check_kind(state, model_cls, repr(str(resume_path)))
        except (FileNotFoundError, ValueError) as e:
            raise ConfigError(f"resume: {e}") from None
        if _comparable(state["config"]) != _comparable(model.config):
            raise ConfigError(
                f"resume: {str(resume_path)!r} holds a {state['kind']} with config {_comparable(state['config'])}, "
                f"but this run builds {_comparable(model.config)}; use another output folder or the same "
                "model settings")
        model.load_state_dict(state["model"])

    model.to(device)
    ema = EMA(model, cfg.ema) if cfg.ema > 0 else None
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, cfg))
    start = 0
    if state is not None:
        if state.get("optimizer") is not None:
            optimizer.load_state_dict(state["optimizer"])
        elif dist.main:
            logger.warning("%s has no optimizer state: AdamW starts afresh", resume_path)
        if state.get("scheduler") is not None:
            scheduler.load_state_dict(state["scheduler"])
        if ema is not None and state.get("ema"):
            ema.load_state_dict(state["ema"])
        start = int(state["step"])
        # this run's settings (e.g. a changed --lr) win over the saved ones
        for g, wd in zip(optimizer.param_groups, (cfg.weight_decay, 0.0)):
            g.update(betas=cfg.betas, weight_decay=wd, initial_lr=cfg.lr, lr=cfg.lr * lr_factor(start, cfg))
        scheduler.base_lrs = [cfg.lr for _ in optimizer.param_groups]
        if dist.main:
            logger.info("resuming from %s (step %d)", resume_path, start)
    del state

    train_model = model
    if dist.world > 1:
        kwargs = {"device_ids": [device.index]} if device.type == "cuda" else {}
        # static_graph: the last residual layer's residual projection feeds nothing (no gradient)
        train_model = _DDP(model, static_graph=True, **kwargs)

    use_bf16 = cfg.bf16 and device.type == "cuda"
    if cfg.bf16 and not use_bf16 and dist.main:
        warnings.warn("bf16 autocast is only used on CUDA devices; training in float32", RuntimeWarning,
                      stacklevel=3)

    batches = _Batches(dataset, cfg, dist, collate)
    whole_batch = make_dataset is not None
    log = _JsonlLog(out / LOG_FILE) if dist.main else None
    extra = {**extra, "command": command, "train_config": cfg.to_dict(), "world_size": dist.world}
    history: list = []
    last_ckpt: Optional[Path] = None

    def save(step: int) -> Optional[Path]:
        if not dist.main:
            return None
        epoch, batch = batches.position(step)
        path = ckpt_lib.save_checkpoint(out / ckpt_lib.checkpoint_name(step), model=model, optimizer=optimizer,
                                        scheduler=scheduler, ema=ema, step=step,
                                        extra={**extra, "data_position": {"epoch": epoch, "batch": batch}})
        ckpt_lib.prune_checkpoints(out, cfg.keep)
        return path

    if dist.main:
        n_params = sum(p.numel() for p in model.parameters())
        logger.info("%s: %s (%.2fM parameters, backend %s) on %s x%d, %d utterances, batch %d x %d samples per "
                    "process, steps %d..%d", command, model_cls.__name__, n_params / 1e6, cfg.backend, device,
                    dist.world, len(dataset), cfg.batch_size, cfg.segment_samples, start, cfg.steps)
    if start >= cfg.steps:
        if dist.main:
            logger.info("nothing to do: the checkpoint is at step %d >= steps %d", start, cfg.steps)
        return TrainResult(start, resume_path, history, model, ema)

    model.train()
    bar = tqdm(total=cfg.steps, initial=start, disable=not (cfg.progress and dist.main), unit="step",
               desc=command, file=sys.stderr, dynamic_ncols=True)
    sums: Optional[dict] = None
    grad_sum = torch.zeros((), device=device)
    n_in_interval, samples_in_interval = 0, 0
    t0 = time.perf_counter()
    step = start
    try:
        for batch in batches.iterate(start):
            if whole_batch:
                batch = {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v
                         for k, v in batch.items()}
                n_samples = int(batch["audio_lengths"].sum())
                args = (batch,)
            else:
                audio = batch["audio"].to(device, non_blocking=True)
                mel = batch["mel"].to(device, non_blocking=True)
                n_samples = audio.numel()
                args = (audio, mel)
            try:
                with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_bf16):
                    terms = make_loss(train_model, *args, step, dist)
            except (TypeError, RuntimeError) as e:
                if use_bf16 and step == start:
                    raise ConfigError(f"bf16: the first step failed under bf16 autocast ({type(e).__name__}: {e}); "
                                      "the model's ops may not support mixed precision; train without --bf16") from e
                raise
            loss = terms["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            params = [p for p in model.parameters() if p.grad is not None]
            if cfg.clip > 0:
                gnorm = torch.nn.utils.clip_grad_norm_(params, cfg.clip)
            else:
                gnorm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params]))
            optimizer.step()
            scheduler.step()
            if ema is not None:
                ema.update()
            step += 1
            bar.update(1)

            detached = {k: v.detach().float() for k, v in terms.items()}
            sums = detached if sums is None else {k: sums[k] + detached[k] for k in sums}
            grad_sum += gnorm.detach().float()
            n_in_interval += 1
            samples_in_interval += n_samples

            if step % cfg.log_every == 0 or step == cfg.steps:
                keys = ["loss"] + sorted(k for k in sums if k != "loss")
                packed = torch.stack([sums[k] for k in keys] + [grad_sum]) / n_in_interval
                packed = dist.all_mean(packed).tolist()
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                elapsed = time.perf_counter() - t0
                sps = samples_in_interval * dist.world / max(elapsed, 1e-9)
                record = {"step": step, **dict(zip(keys, packed[:-1])), "grad_norm": packed[-1],
                          "lr": optimizer.param_groups[0]["lr"], "samples_per_s": sps,
                          "x_real_time": sps / audio_cfg.sample_rate}
                if not all(math.isfinite(v) for v in packed):
                    raise FloatingPointError(f"{command}: non-finite loss or gradient norm in steps "
                                             f"{step - n_in_interval + 1}..{step}: {record}")
                history.append(record)
                if dist.main:
                    log.write(record)
                    terms_txt = " ".join(f"{k} {record[k]:.4f}" for k in keys)
                    logger.info("step %d/%d %s grad_norm %.3g lr %.3g %.0f samples/s (%.3gx real time)",
                                step, cfg.steps, terms_txt, record["grad_norm"], record["lr"], sps,
                                record["x_real_time"])
                    bar.set_postfix(loss=f"{record['loss']:.4f}")
                sums, n_in_interval, samples_in_interval = None, 0, 0
                grad_sum = torch.zeros((), device=device)
                t0 = time.perf_counter()

            if step % cfg.ckpt_every == 0 or step == cfg.steps:
                p = save(step)
                if p is not None:
                    last_ckpt = p
                    logger.info("wrote %s", p)
            if step >= cfg.steps:
                break
    finally:
        bar.close()
    dist.barrier()
    return TrainResult(step, last_ckpt, history, model, ema)


# ----------------------------------------------------------------------------------------------
# the two commands

def _as_config(config, cls):
    if isinstance(config, cls):
        return config.validate()
    if isinstance(config, dict):
        return cls.from_sources(**config)
    raise TypeError(f"expected a {cls.__name__} or a dict of its settings, got {type(config).__name__}")


def train_teacher(config) -> TrainResult:
    """Train a :class:`clarinet.models.GaussianWaveNet` by maximum likelihood (see the module docstring).

    ``config``: a :class:`TeacherConfig` or a dict of its fields. Returns a :class:`TrainResult`.
    """
    from . import losses
    from .models import GaussianWaveNet

    cfg = _as_config(config, TeacherConfig)
    audio_cfg = _audio_config(cfg.audio)

    def make_loss(model, audio, mel, step, dist):
        loss = losses.teacher_loss(model, audio, mel, log_scale_min=cfg.log_scale_min)
        return loss if isinstance(loss, dict) else {"loss": loss}

    return _run(cfg, command="train-teacher", model_cls=GaussianWaveNet, make_loss=make_loss, audio_cfg=audio_cfg,
                extra={"audio": dataclasses.asdict(audio_cfg)})


def load_teacher(path, *, backend: str = "auto", device="cpu"):
    """The frozen teacher for distillation: EMA weights when the checkpoint has them, eval mode, no gradients.

    Returns ``(teacher, checkpoint_dict_without_weights)``. Raises :class:`ConfigError` for a missing,
    corrupt or wrong-kind checkpoint.
    """
    from .models import GaussianWaveNet

    try:
        ckpt = ckpt_lib.load_checkpoint(path)
        ckpt_lib.check_kind(ckpt, GaussianWaveNet, f"--teacher {str(path)!r}")
    except FileNotFoundError as e:
        raise ConfigError(f"teacher: {e}") from None
    except ValueError as e:
        raise ConfigError(f"teacher: {e}") from None
    teacher = GaussianWaveNet(**{**ckpt["config"], "backend": backend})
    teacher.load_state_dict(ckpt_lib.model_state(ckpt, ema=True))
    teacher.to(device).eval().requires_grad_(False)
    info = {k: v for k, v in ckpt.items() if k not in ("model", "ema", "optimizer", "scheduler")}
    info["used_ema"] = bool((ckpt.get("ema") or {}).get("shadow"))
    return teacher, info


def train_student(config) -> TrainResult:
    """Distil a :class:`clarinet.models.GaussianIAF` from a trained teacher checkpoint (``config.teacher``): a
    :class:`~clarinet.models.GaussianWaveNet`, or a :class:`~clarinet.models.TextToWave` whose vocoder is
    then the teacher and whose bridge-net output (teacher-forced on the corpus's text and mel) conditions
    both (the student's ``n_mels`` = the model's ``cond_channels``, set automatically; the data is then an
    LJSpeech-layout folder).

    The teacher is loaded with its EMA weights when present, frozen (eval mode, ``requires_grad=False``)
    and never modified; the student is trained on :func:`clarinet.losses.distillation_loss` with one
    noise draw per step. ``config``: a :class:`StudentConfig` or a dict. Returns a :class:`TrainResult`.
    """
    from . import losses
    from .audio import AudioConfig
    from .models import GaussianIAF

    cfg = _as_config(config, StudentConfig)
    if not Path(cfg.teacher).exists():
        raise ConfigError(f"teacher: checkpoint {cfg.teacher!r} does not exist")
    try:
        kind = ckpt_lib.load_checkpoint(cfg.teacher)["kind"]
    except (FileNotFoundError, ValueError) as e:
        raise ConfigError(f"teacher: {e}") from None
    if kind == "TextToWave":
        return _train_student_text2wave(cfg)
    teacher, info = load_teacher(cfg.teacher, backend=cfg.backend)
    teacher_audio = ((info.get("extra") or {}).get("audio")) or dataclasses.asdict(AudioConfig())
    if cfg.audio:
        conflicts = {k: (v, teacher_audio.get(k)) for k, v in cfg.audio.items() if teacher_audio.get(k) != v}
        if conflicts:
            raise ConfigError(f"audio: the student must use its teacher's audio settings; (given, teacher's): "
                              f"{conflicts}")
    audio_cfg = _audio_config(dict(teacher_audio))
    _check_model_audio(teacher, audio_cfg, f"the teacher {cfg.teacher!r}")

    def setup_model(student, dist):
        if student.config.get("n_mels") != teacher.config.get("n_mels"):
            raise ConfigError(f"the student has n_mels={student.config.get('n_mels')} but the teacher "
                              f"{teacher.config.get('n_mels')}")
        teacher.to(dist.device)

    def make_loss(student, audio, mel, step, dist):
        g = torch.Generator(device=audio.device)
        g.manual_seed((cfg.seed * 1_000_003 + step) * 4099 + dist.rank)
        noise = torch.randn(audio.shape, generator=g, device=audio.device, dtype=audio.dtype)
        return losses.distillation_loss(student, teacher, audio, mel, kl_weight=cfg.kl_weight,
                                        stft_weight=cfg.stft_weight, reg_weight=cfg.reg_weight,
                                        log_scale_min=cfg.log_scale_min, kind=cfg.kind, noise=noise,
                                        audio_config=audio_cfg, kl_reg_raw=cfg.kl_reg_raw)

    extra = {"audio": dict(teacher_audio),
             "teacher": {"path": os.path.abspath(cfg.teacher), "step": int(info["step"]),
                         "config": info["config"], "used_ema": info["used_ema"]}}
    return _run(cfg, command="train-student", model_cls=GaussianIAF, make_loss=make_loss, audio_cfg=audio_cfg,
                extra=extra, setup_model=setup_model)


# ----------------------------------------------------------------------------------------------
# text to wave

def _text2wave_audio(cfg: Text2WaveConfig):
    """The audio settings: the preset's (a :class:`~clarinet.models.TextToWave` preset names them), then
    ``cfg.audio``."""
    from .models.text2wave import TEXT2WAVE_PRESETS

    if cfg.preset not in TEXT2WAVE_PRESETS:
        raise ConfigError(f"preset: unknown TextToWave preset {cfg.preset!r}; presets: {sorted(TEXT2WAVE_PRESETS)}")
    return _audio_config({**TEXT2WAVE_PRESETS[cfg.preset].get("audio", {}), **cfg.audio})


class _TextCollate:
    """``collate_text_audio`` with segments drawn from a generator seeded by the run's seed and the batch's
    utterance ids (so a resumed run draws the same segments for the same batches); picklable for workers."""

    def __init__(self, segment_frames: int, pad_frames_to: int, mel_pad_value: float, seed: int):
        self.segment_frames, self.pad_frames_to = segment_frames, pad_frames_to
        self.mel_pad_value, self.seed = mel_pad_value, seed

    def __call__(self, items):
        import zlib

        from .data import collate_text_audio

        key = zlib.crc32("\n".join(str(it["id"]) for it in items).encode())
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + key)
        return collate_text_audio(items, segment_frames=self.segment_frames, pad_frames_to=self.pad_frames_to,
                                  generator=g, mel_pad_value=self.mel_pad_value)


def train_text2wave(config) -> TrainResult:
    """Train a :class:`clarinet.models.TextToWave` from scratch, all parts jointly (see the module docstring).

    ``config``: a :class:`Text2WaveConfig` or a dict of its fields. The checkpoints hold the model's
    vocabulary and audio settings (in its config), so :meth:`TextToWave.synthesize` needs nothing else.
    Returns a :class:`TrainResult`.
    """
    from . import losses
    from .models import TextToWave
    from .models.text2wave import TEXT2WAVE_PRESETS
    from .text import default_vocabulary

    cfg = _as_config(config, Text2WaveConfig)
    audio_cfg = _text2wave_audio(cfg)
    vocab = default_vocabulary()
    preset = TEXT2WAVE_PRESETS[cfg.preset]
    r = int(cfg.model.get("reduction_factor", preset.get("reduction_factor", 1)))
    max_text = cfg.max_text_length or int(cfg.model.get("max_text_length", preset.get("max_text_length", 512)))
    if cfg.segment_samples % audio_cfg.hop_length:
        raise ConfigError(f"segment_samples: {cfg.segment_samples} is not a multiple of the hop length "
                          f"({audio_cfg.hop_length})")

    def make_dataset(cfg, audio_cfg):
        from .data import TextAudioDataset

        root = Path(cfg.data_dir)
        if not root.is_dir():
            raise ConfigError(f"data folder {str(root)!r} does not exist or is not a folder")
        try:
            return TextAudioDataset(root, cfg=audio_cfg, vocab=vocab, max_text_length=max_text,
                                    cache_dir=cfg.cache_dir)
        except (FileNotFoundError, ValueError) as e:
            raise ConfigError(f"data folder {str(root)!r}: {e}") from None

    collate = _TextCollate(cfg.segment_samples // audio_cfg.hop_length, r, math.log(audio_cfg.log_floor), cfg.seed)

    def make_loss(model, batch, step, dist):
        return losses.text2wave_loss(model, batch, audio_config=audio_cfg, mel_weight=cfg.mel_weight,
                                     linear_weight=cfg.linear_weight, done_weight=cfg.done_weight,
                                     vocoder_weight=cfg.vocoder_weight, log_scale_min=cfg.log_scale_min,
                                     attention_weight=cfg.attention_weight, attention_sigma=cfg.attention_sigma)

    return _run(cfg, command="train-text2wave", model_cls=TextToWave, make_loss=make_loss, audio_cfg=audio_cfg,
                extra={"audio": dataclasses.asdict(audio_cfg)}, make_dataset=make_dataset, collate=collate,
                model_args={"audio": dataclasses.asdict(audio_cfg), "vocabulary": vocab.config()})


def _train_student_text2wave(cfg: StudentConfig) -> TrainResult:
    """Distillation from a :class:`~clarinet.models.TextToWave` checkpoint (see :func:`train_student`)."""
    import torch.nn.functional as F

    from . import losses
    from .models import GaussianIAF, TextToWave

    ckpt = ckpt_lib.load_checkpoint(cfg.teacher)
    t2w = TextToWave(**{**ckpt["config"], "backend": cfg.backend})
    t2w.load_state_dict(ckpt_lib.model_state(ckpt, ema=True))
    t2w.eval().requires_grad_(False)
    audio_cfg = t2w.audio_config
    teacher_audio = dataclasses.asdict(audio_cfg)
    if cfg.audio:
        conflicts = {k: (v, teacher_audio.get(k)) for k, v in cfg.audio.items() if teacher_audio.get(k) != v}
        if conflicts:
            raise ConfigError(f"audio: the student must use its teacher's audio settings; (given, teacher's): "
                              f"{conflicts}")
    model_args = {"n_mels": t2w.cond_channels, "upsample_strides": tuple(t2w.config["upsample_strides"])}
    for k, v in model_args.items():
        given = cfg.model.get(k)
        if given is not None and (tuple(given) if isinstance(given, list) else given) != v:
            raise ConfigError(f"model: {k}={given!r}, but a student of the text-to-wave model {cfg.teacher!r} is "
                              f"conditioned on its bridge-net output ({k}={v!r})")
    hop = t2w.hop_length
    if cfg.segment_samples % hop:
        raise ConfigError(f"segment_samples: {cfg.segment_samples} is not a multiple of the hop length ({hop})")
    seg_frames = cfg.segment_samples // hop

    def make_dataset(cfg, audio_cfg):
        from .data import TextAudioDataset

        root = Path(cfg.data_dir)
        if not root.is_dir():
            raise ConfigError(f"data folder {str(root)!r} does not exist or is not a folder")
        try:
            return TextAudioDataset(root, cfg=audio_cfg, vocab=t2w.vocab, max_text_length=t2w.max_text_length,
                                    cache_dir=cfg.cache_dir)
        except (FileNotFoundError, ValueError) as e:
            raise ConfigError(f"data folder {str(root)!r}: {e}") from None

    collate = _TextCollate(seg_frames, t2w.reduction_factor, math.log(audio_cfg.log_floor), cfg.seed)

    def setup_model(student, dist):
        t2w.to(dist.device)

    def make_loss(student, batch, step, dist):
        with torch.no_grad():
            cond = t2w(batch["text"], batch["mel"], text_lengths=batch["text_lengths"],
                       mel_lengths=batch["mel_lengths"])["cond"]
            segs = []
            for b in range(cond.shape[0]):
                c = cond[b, :, int(batch["segment_start"][b]):][:, :seg_frames]
                segs.append(F.pad(c, (0, seg_frames - c.shape[-1])))
            cond = torch.stack(segs)
        audio = batch["segment_audio"]
        g = torch.Generator(device=audio.device)
        g.manual_seed((cfg.seed * 1_000_003 + step) * 4099 + dist.rank)
        noise = torch.randn(audio.shape, generator=g, device=audio.device, dtype=audio.dtype)
        return losses.distillation_loss(student, t2w.vocoder, audio, cond, kl_weight=cfg.kl_weight,
                                        stft_weight=cfg.stft_weight, reg_weight=cfg.reg_weight,
                                        log_scale_min=cfg.log_scale_min, kind=cfg.kind, noise=noise,
                                        audio_config=audio_cfg, kl_reg_raw=cfg.kl_reg_raw)

    used_ema = bool((ckpt.get("ema") or {}).get("shadow"))
    extra = {"audio": teacher_audio,
             "teacher": {"path": os.path.abspath(cfg.teacher), "kind": "TextToWave", "step": int(ckpt["step"]),
                         "config": ckpt["config"], "used_ema": used_ema}}
    del ckpt
    return _run(cfg, command="train-student", model_cls=GaussianIAF, make_loss=make_loss, audio_cfg=audio_cfg,
                extra=extra, setup_model=setup_model, make_dataset=make_dataset, collate=collate,
                model_args=model_args, mel_conditioned=False)
