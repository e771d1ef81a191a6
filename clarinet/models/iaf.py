"""The Gaussian inverse autoregressive flow (ClariNet's student).

Each flow ``i`` is a causal :class:`~clarinet.models.wavenet.WaveNetStack` over the previous flow's
output shifted right by one sample; it gives a shift ``mu_i`` and a log-scale ``s_i`` per sample and
maps ``z -> z * exp(s_i) + mu_i``. Because ``mu_i[t]`` and ``s_i[t]`` depend only on ``z[:, :t]``, the
output given the noise's past is Gaussian, with (the paper's Algorithm 1, in log-scale)::

    mean_q = mean_q * exp(s_i) + mu_i,   log_scale_q = log_scale_q + s_i   (start 0, 0 for z ~ N(0, 1))

so ``x == mean_q + exp(log_scale_q) * z``. All samples are generated in parallel over time.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn as nn

from ..profiling import named_range
from .wavenet import (
    ConditionUpsampler,
    WaveNetStack,
    _PresetMixin,
    _positive_int,
    _strides,
    check_audio_and_mel,
    generation_frames,
    generation_noise,
    ragged_conditioning,
    shift_right,
)

__all__ = ["GaussianIAF", "STUDENT_PRESETS"]

#: Presets: the reference configurations of the README ("Benchmarks").
STUDENT_PRESETS = {
    "student": dict(flows=6, layers_per_flow=10, cycle=10, residual_channels=64, gate_channels=128,
                    skip_channels=64, kernel_size=3, n_mels=80, upsample_strides=(15, 20)),
}

#: Initial scale of each flow's last 1x1 weights (relative to fan-in scaling): flows start near identity.
OUTPUT_INIT_SCALE = 1e-2


class GaussianIAF(_PresetMixin, nn.Module):
    """ClariNet's student: ``flows`` Gaussian IAF flows, each a ``layers_per_flow``-layer causal WaveNet.

    ``forward(z, mel) -> (x, mean_q, log_scale_q)``, all ``(B, T)``: ``z`` is the noise, ``mel``
    ``(B, n_mels, T / hop)``; ``mean_q[:, t]``, ``log_scale_q[:, t]`` depend on ``z[:, :t]`` only and
    ``x = mean_q + exp(log_scale_q) * z``. ``generate(mel)`` draws ``z`` and returns ``x``.

    Conditioning: one :class:`~clarinet.models.wavenet.ConditionUpsampler` shared by all flows. The
    mel is the same for every flow and each layer of each flow already has its own ``w_cond``
    projection of it, so per-flow upsamplers would add parameters of little use (the upsampler has
    2 x 3 x 2*stride weights) while costing ``flows`` times the upsampling compute and
    ``flows`` times the ``(B, n_mels, T)`` activation memory kept for the backward.

    Each flow's last 1x1 starts at ``OUTPUT_INIT_SCALE`` (1e-2) of the fan-in scale, so
    ``mu_i, s_i`` start near 0 and the untrained student is close to ``x = z``.
    """

    PRESETS = STUDENT_PRESETS

    def __init__(self, flows: int = 6, layers_per_flow: int = 10, cycle: int = 10, residual_channels: int = 64,
                 gate_channels: int = 128, skip_channels: int = 64, kernel_size: int = 3, n_mels: int = 80,
                 upsample_strides: Sequence[int] = (15, 20), backend: str = "auto"):
        super().__init__()
        upsample_strides = _strides("upsample_strides", upsample_strides)
        self.config = dict(flows=flows, layers_per_flow=layers_per_flow, cycle=cycle,
                           residual_channels=residual_channels, gate_channels=gate_channels,
                           skip_channels=skip_channels, kernel_size=kernel_size, n_mels=n_mels,
                           upsample_strides=upsample_strides, backend=backend)
        _positive_int("flows", flows)
        self.n_mels = _positive_int("n_mels", n_mels)
        self.upsampler = ConditionUpsampler(n_mels, upsample_strides)
        self.flows = nn.ModuleList(
            WaveNetStack(1, 2, layers_per_flow, cycle, residual_channels, gate_channels, skip_channels,
                         kernel_size, n_mels, backend=backend, output_init_scale=OUTPUT_INIT_SCALE)
            for _ in range(flows))

    @property
    def receptive_field(self) -> int:
        """Past noise samples ``mean_q[:, t]`` can see (each flow adds its stack's reach plus the shift)."""
        return sum(f.receptive_field for f in self.flows)

    def flow_step(self, i: int, z: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Flow ``i``'s ``(mu_i, s_i)``, each ``(B, T)``, from its input ``z`` ``(B, T)`` and upsampled ``h``."""
        y = self.flows[i](shift_right(z)[:, None], h)
        return y[:, 0], y[:, 1]

    def forward(self, z: torch.Tensor, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        check_audio_and_mel(self, z, mel, self.n_mels, self.hop_length, x_name="z")
        h = self.upsampler(mel)
        x = z
        mean_q = torch.zeros_like(z)
        log_scale_q = torch.zeros_like(z)
        for i in range(len(self.flows)):
            mu, s = self.flow_step(i, x, h)
            scale = torch.exp(s)
            x = x * scale + mu
            mean_q = mean_q * scale + mu
            log_scale_q = log_scale_q + s
        return x, mean_q, log_scale_q

    @torch.no_grad()
    def generate(self, mel: torch.Tensor, noise: Optional[torch.Tensor] = None,
                 temperature: float = 1.0, chunk: Optional[int] = None, frame_lengths=None) -> torch.Tensor:
        """Audio ``(B, frames * hop)`` from ``z = temperature * noise`` (``noise`` ~ N(0, 1) if not given), in parallel.

        Each flow is its stack's fused residual layers (:func:`clarinet.ops.wavenet_layer`) and then
        one fused head-and-composition kernel (:func:`clarinet.ops.iaf_flow_head`: ReLU, 1x1, ReLU,
        1x1 and ``z * exp(s) + mu`` in one pass). 16-bit inference: convert the model and the mel
        (``model.half()`` / ``.bfloat16()``); products accumulate in float32.

        ``chunk``: generate ``chunk`` samples at a time, flow by flow, so that activation memory is
        bounded by the chunk (plus each flow's receptive field) instead of the utterance. Each chunk
        is computed with its flow's full left context and the mel frames around it, so the result
        equals the unchunked one (up to floating-point rounding).

        ``frame_lengths`` (None or ``(B,)`` integers): frames of each row of a zero-padded ``mel``
        batch. Each row is conditioned on its own frames only and the flows are causal, so row ``b``'s
        first ``frame_lengths[b] * hop`` samples equal generating that row alone with the same noise
        (up to float rounding); the rest of the row is zero (computed, then zeroed: the parallel
        flows have no per-row early exit).
        """
        noise = generation_noise(self, mel, noise)
        frames = generation_frames(self, mel, frame_lengths)
        z = noise * float(temperature)
        T = z.shape[-1]
        if frames is None:
            return self._generate(z, chunk, lambda a, e: self._conditioning(mel, a, e))
        rows = torch.arange(z.shape[0])
        x = self._generate(z, chunk, lambda a, e: ragged_conditioning(self.upsampler, mel, frames, rows, a, e))
        pad = torch.arange(T, device=x.device)[None, :] >= (frames * self.hop_length).to(x.device)[:, None]
        return x.masked_fill_(pad, 0.0)

    def _generate(self, z: torch.Tensor, chunk: Optional[int], conditioning) -> torch.Tensor:
        """The flows over ``z``, ``conditioning(start, end)`` giving the upsampled ``h`` of samples ``[start, end)``."""
        T = z.shape[-1]
        if chunk is None or chunk >= T:
            h = conditioning(0, T)
            for i in range(len(self.flows)):
                z = self._flow_sample(i, z, h)
            return z
        chunk = _positive_int("chunk", chunk)
        x = z
        for i, flow in enumerate(self.flows):
            out = torch.empty_like(x)
            for s in range(0, T, chunk):
                e = min(s + chunk, T)
                a = max(0, s - flow.receptive_field)  # outputs >= s see no padding before a
                with named_range("clarinet.iaf.chunk"):
                    out[:, s:e] = self._flow_sample(i, x[:, a:e], conditioning(a, e))[:, s - a:]
            x = out
        return x

    def _flow_sample(self, i: int, z: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """Flow ``i`` applied to ``z`` ``(B, T)``: ``z * exp(s_i) + mu_i`` (the fused head)."""
        from ..ops import iaf_flow_head

        flow = self.flows[i]
        with named_range("clarinet.iaf.flow"):
            skips = flow.skips(shift_right(z)[:, None], h)
            return iaf_flow_head(skips, flow.w_out1, flow.b_out1, flow.w_out2, flow.b_out2, z,
                             skip_scale=flow.skip_scale, backend=flow.backend)

    def _conditioning(self, mel: torch.Tensor, start: int, end: int) -> torch.Tensor:
        """The upsampled conditioning of samples ``[start, end)`` (see ``ConditionUpsampler.forward_range``)."""
        return self.upsampler.forward_range(mel, start, end)
