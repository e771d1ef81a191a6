"""Training losses: the teacher's likelihood and ClariNet's distillation loss.

Every likelihood goes through :func:`clarinet.ops.gaussian_nll` and every KL through
:func:`clarinet.ops.gaussian_kl`, with the models' ``backend``.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch.func import functional_call

from .ops import gaussian_kl, gaussian_nll

__all__ = ["teacher_loss", "distillation_loss", "KL_KINDS"]

KL_KINDS = ("reverse", "forward")


def teacher_loss(model, audio: torch.Tensor, mel: torch.Tensor, log_scale_min: float = -9.0) -> torch.Tensor:
    """Mean Gaussian negative log-likelihood (nats per sample) of ``audio`` ``(B, T)`` under ``model``.

    ``model(audio, mel) -> (mean, log_scale)`` (teacher forcing, e.g.
    :class:`clarinet.models.GaussianWaveNet`); log-scales are floored at ``log_scale_min``.
    Computed by :func:`clarinet.ops.gaussian_nll` with ``model.backend``. Returns a 0-D tensor.
    """
    mean, log_scale = model(audio, mel)
    return gaussian_nll(audio, mean, log_scale, log_scale_min=log_scale_min, reduction="mean",
                        backend=getattr(model, "backend", "auto"))


def frozen_call(module: torch.nn.Module, *args):
    """``module(*args)`` with every parameter detached: gradients reach ``args`` through the module,
    never its parameters. The module itself is not modified (``torch.func.functional_call``), so this
    is safe while other code uses or trains it."""
    params = {name: p.detach() for name, p in module.named_parameters()}
    return functional_call(module, params, args, strict=False)


def distillation_loss(student, teacher, audio: torch.Tensor, mel: torch.Tensor, *, kl_weight: float = 1.0,
                      stft_weight: float = 1.0, reg_weight: float = 4.0, log_scale_min: float = -7.0,
                      kind: str = "reverse", noise: Optional[torch.Tensor] = None,
                      audio_config=None) -> dict:
    """ClariNet's distillation loss for one noise draw.

    ``z`` = ``noise`` (or ``torch.randn_like(audio)``); the student gives
    ``x, mean_q, log_scale_q = student(z, mel)``; the frozen teacher, fed ``x``, gives
    ``mean_p, log_scale_p = teacher(x, mel)``. Then

    - ``kind="reverse"`` (the paper): ``kl = gaussian_kl(mean_q, log_scale_q, mean_p, log_scale_p)``,
      the closed-form per-sample KL(q || p) with both log-scales floored at ``log_scale_min`` plus
      ``reg_weight * (log_scale_p - log_scale_q)**2``, averaged over samples;
    - ``kind="forward"``: the same op with the roles swapped, KL(p || q) (+ the same symmetric
      regulariser);
    - ``stft = stft_loss(x, audio, audio_config)`` (mean squared STFT-magnitude difference;
      ``audio_config`` defaults to :class:`clarinet.audio.AudioConfig` ()); skipped (0) when
      ``stft_weight == 0``.

    ``loss = kl_weight * kl + stft_weight * stft``. Gradients flow through the teacher to ``x`` and on
    to the student, but the teacher's parameters get none (and the teacher object is not modified).
    Returns ``dict(loss=, kl=, stft=)`` of 0-D tensors.
    """
    if kind not in KL_KINDS:
        raise ValueError(f"kind: expected one of {KL_KINDS}, got {kind!r}")
    if noise is None:
        noise = torch.randn_like(audio)
    elif noise.shape != audio.shape:
        raise ValueError(f"noise: expected the shape of audio {tuple(audio.shape)}, got {tuple(noise.shape)}")
    x, mean_q, log_scale_q = student(noise, mel)
    mean_p, log_scale_p = frozen_call(teacher, x, mel)
    backend = getattr(student, "backend", "auto")
    if kind == "reverse":
        kl = gaussian_kl(mean_q, log_scale_q, mean_p, log_scale_p, log_scale_min=log_scale_min,
                         reg_weight=reg_weight, backend=backend)
    else:
        kl = gaussian_kl(mean_p, log_scale_p, mean_q, log_scale_q, log_scale_min=log_scale_min,
                         reg_weight=reg_weight, backend=backend)
    if stft_weight:
        from .audio import AudioConfig, stft_loss

        stft = stft_loss(x, audio, audio_config if audio_config is not None else AudioConfig())
    else:
        stft = kl.new_zeros(())
    loss = kl_weight * kl + stft_weight * stft
    return dict(loss=loss, kl=kl, stft=stft)
