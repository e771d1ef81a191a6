"""The parts of :class:`clarinet.models.TextToWave` (described in :mod:`clarinet.models.text2wave`): the
Deep Voice 3 text encoder and attention decoder with their convolution and attention blocks, and
the bridge-net with its softsign upsampler."""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .wavenet import ConditionUpsampler

__all__ = ["AttentionBlock", "AttentionDecoder", "BridgeNet", "BridgeUpsampler", "ConvBlock", "TextEncoder",
           "positional_encoding"]

SQRT_HALF = math.sqrt(0.5)


def positional_encoding(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal encodings ``(len(positions), dim)``: ``sin(p / 10000**(2k/dim))`` in even columns,
    ``cos`` in odd ones (positions may be fractional: they already carry their rate)."""
    k = torch.arange(0, dim, 2, device=positions.device, dtype=torch.float32)
    freq = torch.exp(-math.log(10000.0) * k / dim)
    angles = positions.float()[:, None] * freq[None, :]
    pe = torch.zeros(len(positions), dim, device=positions.device)
    pe[:, 0::2] = torch.sin(angles)
    pe[:, 1::2] = torch.cos(angles[:, : dim // 2])
    return pe


class ConvBlock(nn.Module):
    """``(B, C, T) -> (B, C, T)``: dropout, 1-D convolution to ``2C`` channels, GLU, residual scaled by
    ``sqrt(0.5)``. ``causal``: left padding only (output ``t`` sees inputs ``<= t``); otherwise centred.
    ``mask`` ``(B, 1, T)``: positions to zero after the block (padding stays zero, as at inference)."""

    def __init__(self, channels: int, kernel_size: int, causal: bool, dropout: float):
        super().__init__()
        self.causal, self.dropout, self.kernel_size = causal, dropout, kernel_size
        self.conv = nn.Conv1d(channels, 2 * channels, kernel_size)
        with torch.no_grad():  # Deep Voice 3: keep the activations' variance through the GLU
            self.conv.weight.normal_(0.0, math.sqrt(4.0 * (1.0 - dropout) / (kernel_size * channels)))
            self.conv.bias.zero_()

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        y = F.dropout(x, self.dropout, self.training)
        pad = self.kernel_size - 1
        y = F.pad(y, (pad, 0) if self.causal else (pad // 2, pad - pad // 2))
        out = (x + F.glu(self.conv(y), dim=1)) * SQRT_HALF
        return out if mask is None else out * mask


class TextEncoder(nn.Module):
    """``text`` ``(B, N)`` ids -> ``keys, values`` ``(B, N, embedding_dim)`` (padding positions zero)."""

    def __init__(self, n_vocab: int, embedding_dim: int, channels: int, layers: int, kernel_size: int,
                 dropout: float, pad_id: int = 0):
        super().__init__()
        self.embedding = nn.Embedding(n_vocab, embedding_dim, padding_idx=pad_id)
        with torch.no_grad():
            self.embedding.weight.normal_(0.0, 0.3)
            self.embedding.weight[pad_id].zero_()
        self.fc_in = nn.Linear(embedding_dim, channels)
        self.blocks = nn.ModuleList(ConvBlock(channels, kernel_size, False, dropout) for _ in range(layers))
        self.fc_out = nn.Linear(channels, embedding_dim)

    def forward(self, text: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = mask[:, None, :].float()                   # (B, 1, N)
        emb = self.embedding(text) * m.transpose(1, 2)  # (B, N, E)
        x = self.fc_in(emb).transpose(1, 2) * m       # (B, C, N)
        for block in self.blocks:
            x = block(x, m)
        keys = self.fc_out(x.transpose(1, 2)) * m.transpose(1, 2)
        values = (keys + emb) * SQRT_HALF
        return keys, values


class AttentionBlock(nn.Module):
    """Dot-product attention of decoder states ``(B, C, S)`` over encoder keys/values ``(B, N, E)``."""

    def __init__(self, channels: int, dim: int, dropout: float):
        super().__init__()
        self.dropout = dropout
        self.query = nn.Linear(channels, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, channels)
        if channels == dim:  # Deep Voice 3: equal query and key projections at the start
            with torch.no_grad():
                self.key.weight.copy_(self.query.weight)
                self.key.bias.copy_(self.query.bias)

    def forward(self, x, keys, values, query_pe, key_pe, mask):
        """``mask`` ``(B, S or 1, N)`` bool, True where attending is allowed. Returns ``(x, attn (B, S, N))``."""
        xt = x.transpose(1, 2)                                  # (B, S, C)
        q = self.query(xt) + query_pe
        k = self.key(keys) + key_pe
        scores = torch.matmul(q, k.transpose(1, 2)) / math.sqrt(q.shape[-1])
        scores = scores.float().masked_fill(~mask, float("-inf"))
        attn = torch.softmax(scores, dim=-1)
        ctx = torch.matmul(F.dropout(attn, self.dropout, self.training).to(values.dtype), self.value(values))
        y = self.out(ctx).transpose(1, 2)
        return (x + y) * SQRT_HALF, attn


class AttentionDecoder(nn.Module):
    """Causal attention decoder, ``r`` frames per step (see the module docstring)."""

    def __init__(self, n_mels: int, r: int, embedding_dim: int, prenet_channels: int, channels: int, layers: int,
                 kernel_size: int, dropout: float, query_position_rate: float, key_position_rate: float,
                 position_weight: float = 1.0):
        super().__init__()
        self.n_mels, self.r, self.dropout = n_mels, r, dropout
        self.query_position_rate, self.key_position_rate = query_position_rate, key_position_rate
        self.position_weight = position_weight
        self.prenet = nn.ModuleList([nn.Linear(n_mels, prenet_channels), nn.Linear(prenet_channels, channels)])
        self.convs = nn.ModuleList(ConvBlock(channels, kernel_size, True, dropout) for _ in range(layers))
        self.attentions = nn.ModuleList(AttentionBlock(channels, embedding_dim, dropout) for _ in range(layers))
        self.fc_mel = nn.Linear(channels, r * n_mels)
        self.fc_done = nn.Linear(channels, 1)

    @property
    def receptive_field(self) -> int:
        """Steps the output of step ``i`` depends on (``i`` included) through the convolutions."""
        return 1 + sum(c.kernel_size - 1 for c in self.convs)

    def inputs_from_mel(self, mel: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: ``(B, n_mels, S*r) -> (B, n_mels, S)``, the last frame of the previous step."""
        prev = mel[:, :, self.r - 1:: self.r][:, :, :-1]
        return F.pad(prev, (1, 0))

    def forward(self, inputs: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor,
                start: int = 0):
        """``inputs`` ``(B, n_mels, S)`` (steps ``start .. start+S-1``), ``mask`` ``(B, S or 1, N)`` bool.

        Returns ``hidden (B, C, S)``, ``mel (B, n_mels, S*r)``, ``done_logits (B, S)``, and the
        attention weights of every layer, a list of ``(B, S, N)``.
        """
        B, _, S = inputs.shape
        N, E = keys.shape[1], keys.shape[2]
        x = F.dropout(inputs.transpose(1, 2), self.dropout, self.training)
        for i, fc in enumerate(self.prenet):
            x = F.dropout(torch.relu(fc(x)), self.dropout, self.training) if i == 0 else torch.relu(fc(x))
        x = x.transpose(1, 2)  # (B, C, S)
        dev = inputs.device
        w = self.position_weight
        query_pe = (w * positional_encoding(torch.arange(start, start + S, device=dev) * self.query_position_rate,
                                            E)).to(keys.dtype)
        key_pe = (w * positional_encoding(torch.arange(N, device=dev) * self.key_position_rate, E)).to(keys.dtype)
        attns = []
        for conv, att in zip(self.convs, self.attentions):
            x = conv(x)
            x, a = att(x, keys, values, query_pe, key_pe, mask)
            attns.append(a)
        xt = x.transpose(1, 2)
        mel = self.fc_mel(xt).reshape(B, S * self.r, self.n_mels).transpose(1, 2)
        done = self.fc_done(xt)[..., 0]
        return x, mel, done, attns


class BridgeUpsampler(ConditionUpsampler):
    """The bridge-net's upsampler: :class:`~clarinet.models.wavenet.ConditionUpsampler`'s transposed 2-D
    convolutions (same geometry, initialisation and frame/sample alignment), softsign after each."""

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        if mel.dim() != 3 or mel.shape[1] != self.n_mels:
            raise ValueError(f"conditioning: expected shape (B, {self.n_mels}, frames), got {tuple(mel.shape)}")
        if mel.shape[-1] == 0:
            return mel.new_zeros(mel.shape[0], self.n_mels, 0)
        y = mel.unsqueeze(1)
        for s, conv in zip(self.strides, self.convs):
            frames = y.shape[-1]
            y = torch.cat([y, y[..., -1:]], dim=-1)  # repeat the last column: full coverage at the end
            y = F.softsign(conv(y)[..., s: s + frames * s])
        return y.squeeze(1)

    def forward_window(self, frames: torch.Tensor, start: int, end: int) -> torch.Tensor:
        """``forward(frames)[..., start:end]`` from the frames around those samples only (two frames of
        margin each side, more than any frame's reach), so the work scales with ``end - start``."""
        hop = self.hop_length
        f0 = max(0, start // hop - 2)
        f1 = min(frames.shape[-1], -(-end // hop) + 2)
        return self(frames[..., f0:f1])[..., start - f0 * hop:end - f0 * hop]


class BridgeNet(nn.Module):
    """Decoder hidden states ``(B, D, S)`` -> frame-rate states ``(B, C, S*r)``, log-linear spectrogram
    ``(B, n_freqs, S*r)`` and vocoder conditioning ``(B, cond_channels, S*r)``."""

    def __init__(self, decoder_channels: int, r: int, channels: int, layers: int, kernel_size: int,
                 n_freqs: int, cond_channels: int, dropout: float):
        super().__init__()
        self.r, self.channels = r, channels
        self.fc_in = nn.Linear(decoder_channels, r * channels)
        self.blocks = nn.ModuleList(ConvBlock(channels, kernel_size, False, dropout) for _ in range(layers))
        self.fc_linear = nn.Linear(channels, n_freqs)
        self.fc_cond = nn.Linear(channels, cond_channels)

    def forward(self, hidden: torch.Tensor, frame_mask: Optional[torch.Tensor] = None):
        B, _, S = hidden.shape
        x = self.fc_in(hidden.transpose(1, 2)).reshape(B, S * self.r, self.channels).transpose(1, 2)
        m = None if frame_mask is None else frame_mask[:, None, :].to(x.dtype)
        if m is not None:
            x = x * m
        for block in self.blocks:
            x = block(x, m)
        xt = x.transpose(1, 2)
        return x, self.fc_linear(xt).transpose(1, 2), self.fc_cond(xt).transpose(1, 2)
