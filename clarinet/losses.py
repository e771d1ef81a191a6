"""Training losses: the teacher's likelihood, ClariNet's distillation loss and the text-to-wave loss.

Every likelihood goes through :func:`clarinet.ops.gaussian_nll` and every KL through
:func:`clarinet.ops.gaussian_kl`, with the models' ``backend``.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch.func import functional_call

from .ops import gaussian_kl, gaussian_nll

__all__ = ["teacher_loss", "distillation_loss", "text2wave_loss", "guided_attention_loss", "KL_KINDS"]

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
                      audio_config=None, kl_reg_raw: bool = False) -> dict:
    """ClariNet's distillation loss for one noise draw.

    ``z`` = ``noise`` (or ``torch.randn_like(audio)``); the student gives
    ``x, mean_q, log_scale_q = student(z, mel)``; the frozen teacher, fed ``x``, gives
    ``mean_p, log_scale_p = teacher(x, mel)``. Then

    - ``kind="reverse"`` (the paper): ``kl = gaussian_kl(mean_q, log_scale_q, mean_p, log_scale_p)``,
      the closed-form per-sample KL(q || p) with both log-scales floored at ``log_scale_min`` plus
      ``reg_weight * (log_scale_p - log_scale_q)**2``, averaged over samples;
    - ``kind="forward"``: the same op with the roles swapped, KL(p || q) (+ the same symmetric
      regulariser); ``kl_reg_raw``: the regulariser on the raw log-scales instead of the floored
      ones (``gaussian_kl(reg_raw=True)``, the peers' reading; the default is the floored one);
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
                         reg_weight=reg_weight, backend=backend, reg_raw=kl_reg_raw)
    else:
        kl = gaussian_kl(mean_p, log_scale_p, mean_q, log_scale_q, log_scale_min=log_scale_min,
                         reg_weight=reg_weight, backend=backend, reg_raw=kl_reg_raw)
    if stft_weight:
        from .audio import AudioConfig, stft_loss

        stft = stft_loss(x, audio, audio_config if audio_config is not None else AudioConfig())
    else:
        stft = kl.new_zeros(())
    loss = kl_weight * kl + stft_weight * stft
    return dict(loss=loss, kl=kl, stft=stft)


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over the positions where ``mask`` (broadcastable to ``x``) is true."""
    mask = mask.to(x.dtype).expand_as(x)
    return (x * mask).sum() / mask.sum().clamp(min=1.0)


def guided_attention_loss(alignments, text_lengths: torch.Tensor, step_lengths: torch.Tensor,
                          sigma: float = 0.2) -> torch.Tensor:
    """Attention mass away from the diagonal (Tachibana et al., 2017, "guided attention").

    ``alignments``: a list of ``(B, S, N)`` attention weights (one per layer); step ``i`` of
    utterance ``b`` attending to character ``j`` costs ``1 - exp(-(j/N_b - i/S_b)**2 / (2 sigma**2))``
    (``N_b = text_lengths[b]``, ``S_b = step_lengths[b]``); the cost is summed over the characters
    (the expected cost of one step's attention, in [0, 1]) and averaged over the valid steps and the
    layers. 0-D tensor.
    """
    a0 = alignments[0]
    B, S, N = a0.shape
    dev = a0.device
    i = torch.arange(S, device=dev, dtype=torch.float32)[None, :, None] / step_lengths[:, None, None].float()
    j = torch.arange(N, device=dev, dtype=torch.float32)[None, None, :] / text_lengths[:, None, None].float()
    w = 1.0 - torch.exp(-((j - i) ** 2) / (2.0 * sigma ** 2))
    valid = ((torch.arange(S, device=dev)[None, :, None] < step_lengths[:, None, None])
             & (torch.arange(N, device=dev)[None, None, :] < text_lengths[:, None, None]))
    steps = (torch.arange(S, device=dev)[None, :] < step_lengths[:, None]).sum().clamp(min=1)
    return sum(((a.float() * w) * valid).sum() for a in alignments) / (steps * len(alignments))


def text2wave_loss(model, batch: dict, *, audio_config, mel_weight: float = 1.0, linear_weight: float = 1.0,
                   done_weight: float = 1.0, vocoder_weight: float = 1.0, log_scale_min: float = -9.0,
                   attention_weight: float = 0.0, attention_sigma: float = 0.2) -> dict:
    """The joint loss of :class:`clarinet.models.TextToWave` on one batch of
    :func:`clarinet.data.collate_text_audio`.

    ``batch``: ``text (B, N)``, ``text_lengths``, ``mel (B, n_mels, F)`` (``F`` a multiple of the
    reduction factor r), ``mel_lengths``, ``audio (B, F * hop)``, ``audio_lengths``, ``segment_start
    (B,)`` and ``segment_audio (B, L)``. Terms (each a 0-D tensor):

    - ``mel``: L1 between predicted and target log-mel frames, over each utterance's frames;
    - ``linear``: L1 between the predicted log-linear spectrogram and ``log(max(|stft(audio)|,
      log_floor))`` (``audio_config``'s STFT, ``F`` frames), over each utterance's frames;
    - ``done``: binary cross-entropy of the end flag of every decoder step (target 1 from the step
      holding the utterance's last frame on, so padding steps also learn "done");
    - ``nll``: the vocoder's Gaussian negative log-likelihood per sample
      (:func:`clarinet.ops.gaussian_nll` with the model's backend, log-scales floored at
      ``log_scale_min``) over the segment samples that lie inside their utterance;
    - ``attention`` (only when ``attention_weight > 0``): :func:`guided_attention_loss` with
      ``attention_sigma``, an addition to the paper's recipe that makes the alignment appear in far
      fewer steps.

    ``loss = mel_weight * mel + linear_weight * linear + done_weight * done + vocoder_weight * nll
    (+ attention_weight * attention)``. Returns ``dict(loss=, mel=, linear=, done=, nll=[, attention=])``.
    """
    from .audio import stft_magnitude

    core = getattr(model, "module", model)  # DistributedDataParallel
    r = core.reduction_factor
    text, mel = batch["text"], batch["mel"]
    mel_lengths = batch["mel_lengths"]
    out = model(text, mel, text_lengths=batch["text_lengths"], mel_lengths=mel_lengths,
                segment_audio=batch["segment_audio"], segment_start=batch["segment_start"])
    B, _, F = mel.shape
    frame_mask = (torch.arange(F, device=mel.device)[None, :] < mel_lengths[:, None])[:, None, :]
    mel_l1 = _masked_mean((out["mel"].float() - mel.float()).abs(), frame_mask)
    with torch.no_grad():
        mag = stft_magnitude(batch["audio"].float(), audio_config)[..., :F]
        target_linear = torch.log(torch.clamp(mag, min=audio_config.log_floor))
    linear_l1 = _masked_mean((out["linear"].float() - target_linear).abs(), frame_mask)
    steps = out["done_logits"].shape[1]
    done_target = ((torch.arange(steps, device=mel.device)[None, :] + 1) * r >= mel_lengths[:, None]).float()
    done = torch.nn.functional.binary_cross_entropy_with_logits(out["done_logits"].float(), done_target)
    seg = batch["segment_audio"]
    hop = core.hop_length
    pos = batch["segment_start"][:, None] * hop + torch.arange(seg.shape[1], device=seg.device)[None, :]
    sample_mask = pos < batch["audio_lengths"][:, None]
    per_sample = gaussian_nll(seg.float(), out["mean"].float(), out["log_scale"].float(),
                              log_scale_min=log_scale_min, reduction="none", backend=getattr(model, "backend", "auto"))
    nll = _masked_mean(per_sample, sample_mask)
    loss = mel_weight * mel_l1 + linear_weight * linear_l1 + done_weight * done + vocoder_weight * nll
    terms = dict(mel=mel_l1, linear=linear_l1, done=done, nll=nll)
    if attention_weight > 0:
        step_lengths = (mel_lengths + r - 1) // r
        terms["attention"] = guided_attention_loss(out["alignments"], batch["text_lengths"], step_lengths,
                                                   attention_sigma)
        loss = loss + attention_weight * terms["attention"]
    return dict(loss=loss, **terms)
