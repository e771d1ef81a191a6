"""``clarinet train-student``: a :class:`clarinet.models.GaussianIAF` distilled from a frozen teacher
checkpoint by :func:`clarinet.losses.distillation_loss`, one noise draw per step.

Two teachers: a :class:`~clarinet.models.GaussianWaveNet` (the student trains on the teacher's audio
corpus and mel frames), or a :class:`~clarinet.models.TextToWave`, whose vocoder is then the teacher
and whose bridge-net output (teacher-forced on an LJSpeech-layout corpus's text and mel) conditions
both. Either way the teacher's EMA weights are used when it has them, and the student's audio settings
are the teacher's.
"""
from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import torch

from .. import checkpoint as ckpt_lib
from .config import ConfigError, StudentConfig, as_config
from .inputs import (TextCollate, audio_config, audio_dataset, audio_samples, check_model_audio, check_teacher_audio,
                     text_dataset, text_samples)
from .loop import Recipe, TrainResult, run
from .watch import vocoder_sample

__all__ = ["load_teacher", "train_student"]


def load_teacher(path, *, backend: str = "auto", device="cpu"):
    """The frozen teacher for distillation: EMA weights when the checkpoint has them, eval mode, no gradients.

    Returns ``(teacher, checkpoint_dict_without_weights)``. Raises :class:`ConfigError` for a missing,
    corrupt or wrong-kind checkpoint.
    """
    from ..models import GaussianWaveNet

    try:
        ckpt = ckpt_lib.load_checkpoint(path)
        ckpt_lib.check_kind(ckpt, GaussianWaveNet, f"--teacher {str(path)!r}")
    except FileNotFoundError as e:
        raise ConfigError(f"teacher: {e}") from None
    except ValueError as e:
        raise ConfigError(f"teacher: {e}") from None
    teacher = ckpt_lib.model_from_checkpoint(ckpt, ema=True, source=f"teacher {str(path)!r}", backend=backend)
    teacher.to(device).eval().requires_grad_(False)
    return teacher, ckpt_lib.checkpoint_info(ckpt)


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
    cfg = as_config(config, StudentConfig)
    if not Path(cfg.teacher).exists():
        raise ConfigError(f"teacher: checkpoint {cfg.teacher!r} does not exist")
    try:
        ckpt = ckpt_lib.load_checkpoint(cfg.teacher)
    except (FileNotFoundError, ValueError) as e:
        raise ConfigError(f"teacher: {e}") from None
    if ckpt["kind"] not in ("GaussianWaveNet", "TextToWave"):
        raise ConfigError(f"teacher: {cfg.teacher!r}: expected a GaussianWaveNet (train-teacher) or TextToWave "
                          f"(train-text2wave) checkpoint, found a {ckpt['kind']} checkpoint")
    recipe = _text2wave_student(cfg, ckpt) if ckpt["kind"] == "TextToWave" else None
    del ckpt  # the weights are in the models now
    return run(cfg, recipe or _vocoder_student(cfg))


def _distill(cfg: StudentConfig, student, teacher, audio, cond, step, dist, audio_cfg):
    """The distillation loss with this step's noise, drawn from a generator seeded with (seed, step, rank)."""
    from .. import losses

    g = torch.Generator(device=audio.device)
    g.manual_seed((cfg.seed * 1_000_003 + step) * 4099 + dist.rank)
    noise = torch.randn(audio.shape, generator=g, device=audio.device, dtype=audio.dtype)
    return losses.distillation_loss(student, teacher, audio, cond, kl_weight=cfg.kl_weight,
                                    stft_weight=cfg.stft_weight, reg_weight=cfg.reg_weight,
                                    log_scale_min=cfg.log_scale_min, kind=cfg.kind, noise=noise,
                                    audio_config=audio_cfg, kl_reg_raw=cfg.kl_reg_raw)


def _teacher_record(cfg: StudentConfig, info: dict, **kind) -> dict:
    """What the student's checkpoints record of the teacher (``extra["teacher"]``)."""
    return {"path": os.path.abspath(cfg.teacher), **kind, "step": int(info["step"]), "config": info["config"],
            "used_ema": info["used_ema"]}


def _vocoder_student(cfg: StudentConfig) -> Recipe:
    """Distillation from a :class:`~clarinet.models.GaussianWaveNet` checkpoint, on its audio corpus."""
    from ..audio import AudioConfig
    from ..models import GaussianIAF

    teacher, info = load_teacher(cfg.teacher, backend=cfg.backend)
    teacher_audio = ((info.get("extra") or {}).get("audio")) or dataclasses.asdict(AudioConfig())
    check_teacher_audio(cfg, teacher_audio)
    audio_cfg = audio_config(dict(teacher_audio))
    check_model_audio(teacher, audio_cfg, f"the teacher {cfg.teacher!r}")

    def setup_model(student, dist):
        if student.config.get("n_mels") != teacher.config.get("n_mels"):
            raise ConfigError(f"the student has n_mels={student.config.get('n_mels')} but the teacher "
                              f"{teacher.config.get('n_mels')}")
        teacher.to(dist.device)

    def loss(student, batch, step, dist):
        return _distill(cfg, student, teacher, batch["audio"], batch["mel"], step, dist, audio_cfg)

    def sample(student, dataset, index, stem, seconds):
        p = next(student.parameters())
        return vocoder_sample(lambda mel: student.generate(mel.to(p)), dataset, index, stem, seconds, audio_cfg,
                              "student")

    extra = {"audio": dict(teacher_audio), "teacher": _teacher_record(cfg, info)}
    return Recipe(command="train-student", model_cls=GaussianIAF, audio=audio_cfg,
                  make_dataset=lambda: audio_dataset(cfg, audio_cfg), loss=loss, samples=audio_samples,
                  extra=extra, setup_model=setup_model, sample=sample)


def _text2wave_student(cfg: StudentConfig, ckpt: dict) -> Recipe:
    """Distillation from a :class:`~clarinet.models.TextToWave` checkpoint (see :func:`train_student`)."""
    import torch.nn.functional as F

    from ..models import GaussianIAF

    t2w = ckpt_lib.model_from_checkpoint(ckpt, ema=True, source=f"teacher {cfg.teacher!r}", backend=cfg.backend)
    t2w.eval().requires_grad_(False)
    info = ckpt_lib.checkpoint_info(ckpt)
    audio_cfg = t2w.audio_config
    teacher_audio = dataclasses.asdict(audio_cfg)
    check_teacher_audio(cfg, teacher_audio)
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

    def setup_model(student, dist):
        t2w.to(dist.device)

    def loss(student, batch, step, dist):
        with torch.no_grad():
            cond = t2w(batch["text"], batch["mel"], text_lengths=batch["text_lengths"],
                       mel_lengths=batch["mel_lengths"])["cond"]
            segs = []
            for b in range(cond.shape[0]):
                c = cond[b, :, int(batch["segment_start"][b]):][:, :seg_frames]
                segs.append(F.pad(c, (0, seg_frames - c.shape[-1])))
            cond = torch.stack(segs)
        return _distill(cfg, student, t2w.vocoder, batch["segment_audio"], cond, step, dist, audio_cfg)

    def sample(student, dataset, index, stem, seconds):
        from ..audio import log_mel
        from .watch import frames_for, write_sample

        item = dataset[index]
        r = t2w.reduction_factor
        frames = min(item["mel"].shape[1], frames_for(seconds, audio_cfg.sample_rate, hop))
        mel = item["mel"][None, :, : -(-frames // r) * r]
        mel = F.pad(mel, (0, (-mel.shape[-1]) % r), value=math.log(audio_cfg.log_floor))
        p = next(student.parameters())
        with torch.no_grad():
            cond = t2w(item["text"][None].to(p.device), mel.to(p))["cond"][..., :frames]
            x = student.generate(cond)[0].float().cpu()
        panels = [(f"log-mel of {item['id']}", item["mel"][:, :frames]), ("log-mel of the student's audio",
                                                                            log_mel(x, audio_cfg))]
        return write_sample(stem, x, audio_cfg.sample_rate, hop, panels=panels)

    extra = {"audio": teacher_audio, "teacher": _teacher_record(cfg, info, kind="TextToWave")}
    return Recipe(command="train-student", model_cls=GaussianIAF, audio=audio_cfg, sample=sample,
                  make_dataset=lambda: text_dataset(cfg, audio_cfg, vocab=t2w.vocab,
                                                    max_text_length=t2w.max_text_length),
                  collate=TextCollate(seg_frames, t2w.reduction_factor, math.log(audio_cfg.log_floor), cfg.seed),
                  loss=loss, samples=text_samples, extra=extra, model_args=model_args, mel_conditioned=False)
