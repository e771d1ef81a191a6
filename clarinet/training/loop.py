"""The training loop every command shares (:func:`run`), which knows nothing of any recipe.

A recipe (teacher, student, text-to-wave) hands :func:`run` a :class:`Recipe`: the model class, the
dataset and collate, the loss, and what to store beside the weights. The loop does the rest: the
process group, the output folder, building the model from the configuration, resuming, AdamW with
its schedule and EMA, bf16 autocast, DistributedDataParallel, gradient clipping, the interval log
(logger ``clarinet.train``, ``<out_dir>/train-log.jsonl``, progress bar) and checkpoint rotation.
"""
from __future__ import annotations

import inspect
import json
import logging
import math
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

import torch

from .. import checkpoint as ckpt_lib
from .config import ConfigError, TrainConfig
from .distributed import DDP, Batches, Dist, setup_distributed
from .inputs import check_model_audio
from .optim import EMA, make_optimizer, restore_optimizer
from .watch import StopSignals, TrainingInterrupted, split_dataset, validation_loss

if TYPE_CHECKING:
    from ..audio import AudioConfig

__all__ = ["LOG_FILE", "Recipe", "TrainResult", "run"]

logger = logging.getLogger("clarinet.train")

LOG_FILE = "train-log.jsonl"


@dataclass
class Recipe:
    """What one command brings to :func:`run`.

    ``command``: its name (log lines, progress bar, checkpoints); ``model_cls``: built from the
    configuration's ``preset`` and ``model`` (:meth:`from_preset`), with ``model_args`` over them;
    ``audio``: the :class:`~clarinet.audio.AudioConfig` (real-time factor; checked against the model,
    its ``n_mels`` too when ``mel_conditioned``); ``make_dataset() -> dataset`` and ``collate(items)
    -> dict`` (None: :func:`clarinet.data.collate`); ``loss(model, batch, step, dist) -> dict`` of 0-D
    tensors with ``"loss"`` among them, ``batch`` being the collated dict on the device;
    ``samples(batch) -> int``: the audio samples it holds (throughput); ``extra``: stored in every
    checkpoint; ``setup_model(model, dist)``: called once the model is built (e.g. to move a teacher);
    ``dataset_model_args(dataset) -> dict``: constructor arguments measured on the corpus (over
    ``model_args``, under the configuration's ``model``); ``sample(model, dataset, index, stem,
    seconds) -> list of paths``: writes a generated sample of item ``index`` (``--sample-every``).
    """

    command: str
    model_cls: type
    audio: "AudioConfig"
    make_dataset: Callable
    loss: Callable
    samples: Callable
    extra: dict = field(default_factory=dict)
    collate: Optional[Callable] = None
    model_args: dict = field(default_factory=dict)
    mel_conditioned: bool = True
    setup_model: Optional[Callable] = None
    dataset_model_args: Optional[Callable] = None
    sample: Optional[Callable] = None


@dataclass
class TrainResult:
    """What a training call returns: the final step, the last checkpoint written (rank 0; None elsewhere),
    the logged records, the trained model (unwrapped; raw weights) and its EMA (or None)."""

    step: int
    checkpoint: Optional[Path]
    history: list
    model: torch.nn.Module
    ema: Optional[EMA]


def run(cfg: TrainConfig, recipe: Recipe) -> TrainResult:
    """Train ``recipe``'s model under ``cfg`` in this process (one of ``WORLD_SIZE`` under torchrun)."""
    dist = setup_distributed(cfg.device)
    try:
        return _Run(cfg, recipe, dist).train()
    finally:
        dist.close()


# ----------------------------------------------------------------------------------------------
# building and resuming

def build_model(cls, cfg: TrainConfig, model_args: Optional[dict] = None):
    """``cls.from_preset(cfg.preset, **cfg.model, **model_args)``, seeded with ``cfg.seed``; ConfigError
    for an unknown preset or argument, or values the model refuses."""
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


def _resume_path(cfg: TrainConfig) -> Optional[Path]:
    if cfg.resume is not None:
        p = Path(cfg.resume)
        if not p.is_file():
            raise ConfigError(f"resume: checkpoint {cfg.resume!r} does not exist")
        return p
    return ckpt_lib.latest_checkpoint(cfg.out_dir)


def _load_resume(path: Path, model: torch.nn.Module) -> dict:
    """The checkpoint to resume from, its model weights loaded into ``model`` (which must be the same model)."""
    try:
        state = ckpt_lib.load_checkpoint(path)
        ckpt_lib.check_kind(state, type(model), repr(str(path)))
    except (FileNotFoundError, ValueError) as e:
        raise ConfigError(f"resume: {e}") from None
    if _comparable(state["config"]) != _comparable(model.config):
        raise ConfigError(
            f"resume: {str(path)!r} holds a {state['kind']} with config {_comparable(state['config'])}, "
            f"but this run builds {_comparable(model.config)}; use another output folder or the same "
            "model settings")
    model.load_state_dict(state["model"])
    return state


# ----------------------------------------------------------------------------------------------
# logging

class _JsonlLog:
    def __init__(self, path: Path):
        self.path = path

    def write(self, record: dict):
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


class _Interval:
    """Loss terms, gradient norms and audio samples summed over the steps since the last log line."""

    def __init__(self, device: torch.device):
        self.device = device
        self.reset()

    def reset(self) -> None:
        self.sums: Optional[dict] = None
        self.grad_sum = torch.zeros((), device=self.device)
        self.steps, self.samples = 0, 0
        self.t0 = time.perf_counter()

    def add(self, terms: dict, gnorm: torch.Tensor, samples: int) -> None:
        detached = {k: v.detach().float() for k, v in terms.items()}
        self.sums = detached if self.sums is None else {k: self.sums[k] + detached[k] for k in self.sums}
        self.grad_sum += gnorm.detach().float()
        self.steps += 1
        self.samples += samples

    def record(self, step: int, dist: Dist, lr: float, sample_rate: int, command: str) -> tuple[dict, list]:
        """The interval's log record (averaged over its steps and the processes) and its loss keys;
        FloatingPointError when a loss or the gradient norm is not finite."""
        keys = ["loss"] + sorted(k for k in self.sums if k != "loss")
        packed = torch.stack([self.sums[k] for k in keys] + [self.grad_sum]) / self.steps
        packed = dist.all_mean(packed).tolist()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        elapsed = time.perf_counter() - self.t0
        sps = self.samples * dist.world / max(elapsed, 1e-9)
        record = {"step": step, **dict(zip(keys, packed[:-1])), "grad_norm": packed[-1],
                  "lr": lr, "samples_per_s": sps, "x_real_time": sps / sample_rate}
        if not all(math.isfinite(v) for v in packed):
            raise FloatingPointError(f"{command}: non-finite loss or gradient norm in steps "
                                     f"{step - self.steps + 1}..{step}: {record}")
        return record, keys


# ----------------------------------------------------------------------------------------------
# the loop

class _Run:
    """One training run: :meth:`train` sets it up (resuming when a checkpoint says so) and loops."""

    def __init__(self, cfg: TrainConfig, recipe: Recipe, dist: Dist):
        self.cfg, self.recipe, self.dist = cfg, recipe, dist
        self.out = Path(cfg.out_dir)
        self.history: list = []

    # -- setup ------------------------------------------------------------------------------
    def _setup(self) -> None:
        cfg, recipe, dist = self.cfg, self.recipe, self.dist
        if dist.main:
            self.out.mkdir(parents=True, exist_ok=True)
            ckpt_lib.remove_temp_files(self.out)
        corpus = recipe.make_dataset()
        model_args = dict(recipe.model_args)
        if recipe.dataset_model_args is not None:
            measured = {k: v for k, v in recipe.dataset_model_args(corpus).items() if k not in cfg.model}
            if measured and dist.main:
                logger.info("%s: measured on the corpus: %s", recipe.command, measured)
            model_args.update(measured)
        self.dataset, self.val_dataset = split_dataset(corpus, cfg.val_fraction, cfg.seed)
        model = self.model = build_model(recipe.model_cls, cfg, model_args)
        check_model_audio(model, recipe.audio, f"the {recipe.model_cls.__name__} model", recipe.mel_conditioned)
        if recipe.setup_model is not None:
            recipe.setup_model(model, dist)

        self.resume_path = _resume_path(cfg)
        dist.barrier()  # every rank has chosen its checkpoint before rank 0 may write a newer one
        state = None if self.resume_path is None else _load_resume(self.resume_path, model)
        model.to(dist.device)
        self.ema = EMA(model, cfg.ema) if cfg.ema > 0 else None
        self.optimizer, self.scheduler = make_optimizer(cfg, model)
        self.start = 0 if state is None else self._restore(state)
        del state

        self.train_model = model
        if dist.world > 1:
            device = dist.device
            kwargs = {"device_ids": [device.index]} if device.type == "cuda" else {}
            # static_graph: the last residual layer's residual projection feeds nothing (no gradient)
            self.train_model = DDP(model, static_graph=True, **kwargs)
        self.use_bf16 = cfg.bf16 and dist.device.type == "cuda"
        if cfg.bf16 and not self.use_bf16 and dist.main:
            warnings.warn("bf16 autocast is only used on CUDA devices; training in float32", RuntimeWarning,
                          stacklevel=4)
        self.batches = Batches(self.dataset, cfg, dist, recipe.collate)
        self.log = _JsonlLog(self.out / LOG_FILE) if dist.main else None
        self.extra = {**recipe.extra, "command": recipe.command, "train_config": cfg.to_dict(),
                      "world_size": dist.world}
        if self.val_dataset is not None:
            self.extra["held_out"] = list(self.val_dataset.indices)

    def _restore(self, state: dict) -> int:
        """Optimizer, schedule and EMA from the resumed checkpoint; returns its step."""
        start = int(state["step"])
        if not restore_optimizer(self.cfg, self.optimizer, self.scheduler, state, start) and self.dist.main:
            logger.warning("%s has no optimizer state: AdamW starts afresh", self.resume_path)
        if self.ema is not None and state.get("ema"):
            self.ema.load_state_dict(state["ema"])
        if self.dist.main:
            logger.info("resuming from %s (step %d)", self.resume_path, start)
        return start

    # -- one step ----------------------------------------------------------------------------
    def _step(self, batch: dict, step: int) -> tuple[dict, torch.Tensor]:
        """Forward, backward, clip, update; returns the loss terms and the gradient norm (before clipping)."""
        cfg, model = self.cfg, self.model
        try:
            with torch.autocast(device_type=self.dist.device.type, dtype=torch.bfloat16, enabled=self.use_bf16):
                terms = self.recipe.loss(self.train_model, batch, step, self.dist)
        except (TypeError, RuntimeError) as e:
            if self.use_bf16 and step == self.start:
                raise ConfigError(f"bf16: the first step failed under bf16 autocast ({type(e).__name__}: {e}); "
                                  "the model's ops may not support mixed precision; train without --bf16") from e
            raise
        self.optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        params = [p for p in model.parameters() if p.grad is not None]
        if cfg.clip > 0:
            gnorm = torch.nn.utils.clip_grad_norm_(params, cfg.clip)
        else:
            gnorm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params]))
        self.optimizer.step()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update()
        return terms, gnorm

    def _save(self, step: int) -> Optional[Path]:
        if not self.dist.main:
            return None
        epoch, batch = self.batches.position(step)
        return ckpt_lib.save_step_checkpoint(
            self.out, step, keep=self.cfg.keep, model=self.model, optimizer=self.optimizer,
            scheduler=self.scheduler, ema=self.ema,
            extra={**self.extra, "data_position": {"epoch": epoch, "batch": batch}})

    def _agreed_signal(self, signum: int) -> int:
        """The stop signal any process has received (every rank stops after the same step), else 0."""
        if self.dist.world == 1:
            return signum
        t = torch.tensor([float(signum)], device=self.dist.device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return int(t.item())

    def _validate(self, step: int) -> None:
        """The held-out loss (rank 0; every rank holds the same weights), logged and appended to the log."""
        if not self.dist.main:
            return
        terms = validation_loss(self.model, self.val_dataset, self.recipe.collate, self.recipe.loss,
                                batch_size=self.cfg.batch_size, step=step, dist=self.dist, device=self.dist.device)
        record = {"step": step, "split": "validation", **{f"val_{k}": v for k, v in terms.items()}}
        self.history.append(record)
        self.log.write(record)
        keys = ["loss"] + sorted(k for k in terms if k != "loss")
        logger.info("step %d/%d validation (%d held out) %s", step, self.cfg.steps, len(self.val_dataset),
                    " ".join(f"{k} {terms[k]:.4f}" for k in keys))

    def _sample(self, step: int) -> None:
        """A generated sample of the first held-out item (else the first training item), rank 0."""
        if not self.dist.main or self.recipe.sample is None:
            return
        source = self.val_dataset if self.val_dataset is not None else self.dataset
        base, index = (source.dataset, source.indices[0]) if hasattr(source, "indices") else (source, 0)
        stem = self.out / "samples" / f"step-{step:06d}"
        try:
            written = self.recipe.sample(self.model, base, index, stem, self.cfg.sample_seconds)
        except (RuntimeError, ValueError, ImportError, OSError) as e:  # a sample must never stop the run
            logger.warning("step %d: no sample (%s: %s)", step, type(e).__name__, e)
            return
        finally:
            self.model.train()
        logger.info("step %d: sample %s", step, " ".join(str(p) for p in written))

    def _log(self, interval: _Interval, step: int, bar) -> None:
        record, keys = interval.record(step, self.dist, self.optimizer.param_groups[0]["lr"],
                                       self.recipe.audio.sample_rate, self.recipe.command)
        self.history.append(record)
        if self.dist.main:
            self.log.write(record)
            terms_txt = " ".join(f"{k} {record[k]:.4f}" for k in keys)
            logger.info("step %d/%d %s grad_norm %.3g lr %.3g %.0f samples/s (%.3gx real time)",
                        step, self.cfg.steps, terms_txt, record["grad_norm"], record["lr"],
                        record["samples_per_s"], record["x_real_time"])
            bar.set_postfix(loss=f"{record['loss']:.4f}")
        interval.reset()

    # -- the loop ----------------------------------------------------------------------------
    def train(self) -> TrainResult:
        from tqdm.auto import tqdm

        self._setup()
        cfg, dist, start = self.cfg, self.dist, self.start
        if dist.main:
            n_params = sum(p.numel() for p in self.model.parameters())
            logger.info("%s: %s (%.2fM parameters, backend %s) on %s x%d, %d utterances, batch %d x %d samples "
                        "per process, steps %d..%d", self.recipe.command, self.recipe.model_cls.__name__,
                        n_params / 1e6, cfg.backend, dist.device, dist.world, len(self.dataset), cfg.batch_size,
                        cfg.segment_samples, start, cfg.steps)
        if start >= cfg.steps:
            if dist.main:
                logger.info("nothing to do: the checkpoint is at step %d >= steps %d", start, cfg.steps)
            return TrainResult(start, self.resume_path, self.history, self.model, self.ema)

        self.model.train()
        bar = tqdm(total=cfg.steps, initial=start, disable=not (cfg.progress and dist.main), unit="step",
                   desc=self.recipe.command, file=sys.stderr, dynamic_ncols=True)
        last_ckpt: Optional[Path] = None
        interval = _Interval(dist.device)
        step = start
        val_every = cfg.val_every or cfg.ckpt_every
        try:
            with StopSignals() as stop:
                for batch in self.batches.iterate(start):
                    batch = {k: v.to(dist.device, non_blocking=True) if isinstance(v, torch.Tensor) else v
                             for k, v in batch.items()}
                    terms, gnorm = self._step(batch, step)
                    step += 1
                    bar.update(1)
                    interval.add(terms, gnorm, self.recipe.samples(batch))
                    signum = self._agreed_signal(stop.signum)
                    if step % cfg.log_every == 0 or step == cfg.steps or (signum and interval.steps):
                        self._log(interval, step, bar)
                    if self.val_dataset is not None and (step % val_every == 0 or step == cfg.steps):
                        self._validate(step)
                    if cfg.sample_every and (step % cfg.sample_every == 0 or step == cfg.steps):
                        self._sample(step)
                    if step % cfg.ckpt_every == 0 or step == cfg.steps or signum:
                        p = self._save(step)
                        if p is not None:
                            last_ckpt = p
                            logger.info("wrote %s", p)
                    if signum:
                        dist.barrier()
                        raise TrainingInterrupted(step, last_ckpt if dist.main else None, signum)
                    if step >= cfg.steps:
                        break
        finally:
            bar.close()
        dist.barrier()
        return TrainResult(step, last_ckpt, self.history, self.model, self.ema)
