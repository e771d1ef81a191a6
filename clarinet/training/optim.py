"""The optimiser side of training: AdamW with its parameter groups, the learning-rate schedule
(:func:`lr_factor`) and the exponential moving average of the weights (:class:`EMA`)."""
from __future__ import annotations

import math

import torch

from .config import TrainConfig

__all__ = ["EMA", "lr_factor", "make_optimizer", "restore_optimizer"]


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



def make_optimizer(cfg: TrainConfig, model: torch.nn.Module):
    """AdamW (weight decay on the matrices only, not on vectors) and its warm-up-then-decay schedule."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, cfg))
    return optimizer, scheduler


def restore_optimizer(cfg: TrainConfig, optimizer, scheduler, state: dict, start: int) -> bool:
    """Load a checkpoint's optimizer and scheduler state (those it has; returns whether the optimizer's
    was there), then put this run's settings over the saved ones (e.g. a changed ``--lr``)."""
    has_optimizer = state.get("optimizer") is not None
    if has_optimizer:
        optimizer.load_state_dict(state["optimizer"])
    if state.get("scheduler") is not None:
        scheduler.load_state_dict(state["scheduler"])
    for g, wd in zip(optimizer.param_groups, (cfg.weight_decay, 0.0)):
        g.update(betas=cfg.betas, weight_decay=wd, initial_lr=cfg.lr, lr=cfg.lr * lr_factor(start, cfg))
    scheduler.base_lrs = [cfg.lr for _ in optimizer.param_groups]
    return has_optimizer
