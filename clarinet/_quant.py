"""Accuracy of the int8 C++ sampler (``wavenet_sample(..., weight_dtype=torch.int8)``) against float32.

The error that matters for sampling is the error of the predicted Gaussian in units of its own
scale: ``(mean_int8 - mean) / exp(log_scale)`` (a shift of the sample by that many standard
deviations) and ``log_scale_int8 - log_scale`` (a relative change of the scale), measured
teacher-forced (both runs fed the same audio), so errors do not compound through the samples.

:func:`trained_like_` gives random weights the statistics of a trained teacher (the test and the
bench measure on it): heavier-tailed weights, non-zero biases, and an output head whose mean has the
amplitude of normalised speech with a log-scale near ``log_scale`` (about -3.5: the scale a teacher
reaches on voiced speech; in silence both the scale and the mean shrink).
"""
from __future__ import annotations

import torch

__all__ = ["INT8_BOUND", "int8_error", "teacher_forced_error", "trained_like_", "within_bound"]

#: Bounds on the teacher-forced int8 error (see :func:`int8_error`), checked by
#: tests/test_wavenet_sample_int8.py on :func:`trained_like_` teacher-small and teacher (log-scale
#: about -3.5, mean amplitude about 0.1) and on a small teacher trained there (200 Adam steps on
#: chirps, log-scale about -2.5). Measured (2400 / 1200 steps of the float32 model's own audio / the
#: training audio): teacher-small mean error 0.15 scales RMS, 0.68 max, log-scale 0.0011 RMS, 0.004
#: max; teacher 0.12 / 0.43, 0.0010 / 0.0037; the trained one 0.077 / 0.19, 0.006 / 0.016.
#: The mean's error is about 0.5-1 % of its amplitude (int8 steps through 20 residual layers), so in
#: units of the scale it grows as the scale shrinks; most of it comes from the per-step products
#: (the dilated conv and the residual/skip 1x1): keeping the conditioning projection and the output
#: 1x1 in float32 took teacher's 0.14 only to 0.10. The noise recovered from free-running int8 audio
#: under the float32 forward correlates 0.990-0.995 with the noise that drove it.
INT8_BOUND = {"mean_rms": 0.25, "mean_max": 1.0, "log_scale_rms": 0.02, "log_scale_max": 0.08}


def int8_error(mean: torch.Tensor, log_scale: torch.Tensor, mean_ref: torch.Tensor,
               log_scale_ref: torch.Tensor) -> dict:
    """RMS and max over all steps of ``(mean - mean_ref) / exp(log_scale_ref)`` and of
    ``log_scale - log_scale_ref`` (float64)."""
    dm = ((mean.double() - mean_ref.double()) / log_scale_ref.double().exp()).abs()
    dl = (log_scale.double() - log_scale_ref.double()).abs()
    return {"mean_rms": dm.pow(2).mean().sqrt().item(), "mean_max": dm.max().item(),
            "log_scale_rms": dl.pow(2).mean().sqrt().item(), "log_scale_max": dl.max().item()}


def within_bound(err: dict, bound: dict = INT8_BOUND) -> str | None:
    """None when every entry of ``err`` is within ``bound``, else which is not."""
    bad = [f"{k} {err[k]:.3g} > {v:.3g}" for k, v in bound.items() if not err[k] <= v]
    return "; ".join(bad) if bad else None


@torch.no_grad()
def teacher_forced_error(packed, h: torch.Tensor, audio: torch.Tensor, ref=None) -> dict:
    """:func:`int8_error` of the int8 cpp sampler against the float32 one on ``h``, ``audio``
    (``ref``: the float32 ``(mean, log_scale)`` when already computed)."""
    from .ops.wavenet_sample import wavenet_sample

    if ref is None:
        ref = wavenet_sample(packed, h, teacher_forcing=audio, backend="cpp")
    got = wavenet_sample(packed, h, teacher_forcing=audio, backend="cpp", weight_dtype=torch.int8)
    return int8_error(*got, *ref)


@torch.no_grad()
def trained_like_(model, seed: int = 0, log_scale: float = -3.5, amplitude: float = 0.1):
    """Give a ``GaussianWaveNet`` trained-like weights, in place; returns the model.

    Every weight matrix gets heavy-tailed noise (Student t, 3 degrees of freedom, 0.3 of its
    standard deviation: trained weights have outliers, which is what per-channel int8 scales must
    survive); biases are drawn with standard deviation 0.1; the mean row of the last 1x1 is scaled
    so that the mean has standard deviation ``amplitude`` on random conditioning, and its
    log-scale row by 0.3 with the bias moved so that the log-scale centres on ``log_scale``.
    """
    g = torch.Generator().manual_seed(seed)
    t3 = torch.distributions.StudentT(3.0)
    torch.manual_seed(seed)
    for name, p in model.wavenet.named_parameters():
        if p.dim() > 1:
            p.add_(t3.sample(p.shape).to(p) * (0.3 * p.std()))
        else:
            p.copy_(torch.randn(p.shape, generator=g).to(p) * 0.1)
    s = model.wavenet
    mel = torch.randn(1, model.n_mels, 8, generator=g).to(s.w_out2)
    x = torch.randn(1, 8 * model.hop_length, generator=g).to(s.w_out2) * amplitude
    mean, ls = model(x, mel)
    s.w_out2[0].mul_(amplitude / mean.std().clamp_min(1e-12))
    s.b_out2[0].zero_()
    s.w_out2[1].mul_(0.3)
    mean, ls = model(x, mel)
    s.b_out2[1].add_(log_scale - ls.mean())
    return model
