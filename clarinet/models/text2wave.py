"""ClariNet's text-to-wave model: encoder, attention decoder, bridge-net and Gaussian WaveNet vocoder.

- :class:`TextEncoder` (Deep Voice 3): character embedding -> fully connected -> non-causal
  convolution blocks with gated linear units and ``sqrt(0.5)``-scaled residuals -> fully connected
  back to the embedding size: the attention **keys**; the **values** are
  ``(keys + embedding) * sqrt(0.5)``.
- :class:`AttentionDecoder`: ``reduction_factor`` (r) mel frames per step. The input of step ``i`` is
  the last frame of step ``i - 1`` (zeros at step 0) through a fully connected pre-net; then
  ``decoder_layers`` x (causal convolution block, dot-product attention block). Sinusoidal positional
  encodings times ``position_weight`` are added to the projected queries (positions times
  ``query_position_rate``) and keys (times ``key_position_rate``), so an untrained model already
  attends along ``key_position_rate * j = query_position_rate * i`` (Deep Voice 3). That line is the
  data's diagonal only when ``key_position_rate / query_position_rate`` is the data's decoder steps
  per character (``train-text2wave`` measures it on the corpus), and it is sharp only when the
  encodings are strong enough: their dot product grows with ``position_weight**2`` and, with few
  dimensions, barely changes over tens of characters (measured on 45 characters, 32 dimensions,
  untrained: the most attended character held 6% of the attention at weight 1, 80% at weight 3; at
  256 dimensions, 19% at weight 1 and 63% at weight 2). Outputs per step:
  ``r`` log-mel frames, an end-of-utterance logit and the last hidden state. At inference the
  attention can be constrained to a window around the previously attended position (monotonic).
- :class:`BridgeNet`: the decoder hidden state of each step is projected to ``r`` frame-rate states,
  then non-causal convolution blocks; a fully connected layer predicts the log-linear spectrogram
  from those frame-rate states, another one gives the vocoder conditioning (``cond_channels`` per
  frame). The conditioning is brought to the sample rate by the vocoder's upsampler: two transposed
  2-D convolutions (strides ``upsample_strides``, filters twice their stride in time) each followed
  by softsign (:class:`BridgeUpsampler`).
- The vocoder is a :class:`~clarinet.models.GaussianWaveNet` whose upsampler is the bridge-net's
  :class:`BridgeUpsampler`, so its ``forward``, ``generate`` and :func:`clarinet.ops.pack_wavenet` /
  :func:`clarinet.ops.wavenet_sample` (the fast autoregressive samplers) work on the bridge-net's
  frame-rate conditioning unchanged. A :class:`~clarinet.models.GaussianIAF` with
  ``n_mels = cond_channels`` distilled from it is conditioned on the same frames.

The parts live in :mod:`clarinet.models.text2wave_blocks` (and are importable from here); this module
holds the presets and the model that joins them.

Training (:func:`clarinet.losses.text2wave_loss`) is joint: L1 on log-mel and log-linear frames,
binary cross-entropy on the end flag, and the vocoder's Gaussian likelihood on a random audio segment
per utterance, for which only the frames around the segment are upsampled.
"""
from __future__ import annotations

import math
import warnings
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .text2wave_blocks import (AttentionDecoder, BridgeNet, BridgeUpsampler, TextEncoder,  # noqa: F401 (re-exported)
                               positional_encoding)
from .wavenet import GaussianWaveNet, _PresetMixin, _positive_int, _strides, shift_right

__all__ = ["TextToWave", "TextEncoder", "AttentionDecoder", "BridgeNet", "BridgeUpsampler", "TEXT2WAVE_PRESETS",
           "alignment_score"]

#: Presets. ``text2wave``: paper-like sizes at 24 kHz (hop 300 = 15 x 20). ``text2wave-tiny``: a toy
#: model at 4 kHz (hop 50 = 5 x 10) for tests and quick experiments. Key rates: decoder steps per
#: character of English read at about 13-15 characters/s (Deep Voice 3's 1.385 at 80 frames/s and r = 4;
#: 2.0 at 80 frames/s and r = 3, measured 1.97 on espeak-ng speech); train-text2wave replaces them by
#: the corpus's own unless ``key_position_rate`` is given. Position weights: see the module docstring.
TEXT2WAVE_PRESETS = {
    "text2wave": dict(
        audio=dict(sample_rate=24000, n_fft=2048, win_length=1200, hop_length=300, n_mels=80),
        max_text_length=512, embedding_dim=256, encoder_layers=7, encoder_channels=256, encoder_kernel=5,
        reduction_factor=4, prenet_channels=256, decoder_layers=4, decoder_channels=256, decoder_kernel=5,
        query_position_rate=1.0, key_position_rate=1.385, position_weight=2.0, bridge_layers=4, bridge_channels=256,
        bridge_kernel=5, cond_channels=80, upsample_strides=(15, 20), vocoder_layers=20, vocoder_cycle=10,
        vocoder_residual_channels=64, vocoder_gate_channels=128, vocoder_skip_channels=128,
        vocoder_kernel_size=2, dropout=0.05, attention_window=(1, 3), max_frames=2000),
    "text2wave-tiny": dict(
        audio=dict(sample_rate=4000, n_fft=256, win_length=200, hop_length=50, n_mels=20),
        max_text_length=128, embedding_dim=32, encoder_layers=2, encoder_channels=32, encoder_kernel=3,
        reduction_factor=3, prenet_channels=32, decoder_layers=2, decoder_channels=32, decoder_kernel=3,
        query_position_rate=1.0, key_position_rate=2.0, position_weight=3.0, bridge_layers=2, bridge_channels=32,
        bridge_kernel=3, cond_channels=16, upsample_strides=(5, 10), vocoder_layers=4, vocoder_cycle=4,
        vocoder_residual_channels=8, vocoder_gate_channels=16, vocoder_skip_channels=8,
        vocoder_kernel_size=2, dropout=0.0, attention_window=(1, 3), max_frames=400),
}


def _lengths_mask(lengths: Optional[torch.Tensor], B: int, T: int, device) -> torch.Tensor:
    if lengths is None:
        return torch.ones(B, T, dtype=torch.bool, device=device)
    return torch.arange(T, device=device)[None, :] < lengths.to(device)[:, None]


def alignment_score(alignment: torch.Tensor, text_length: int, *, band: float = 0.2,
                    slack: int = 1, min_weight: float = 0.0) -> float:
    """Fraction of decoder steps whose most attended character is monotone and near the diagonal.

    ``alignment`` ``(S, N)`` (steps x characters; only the first ``text_length`` characters count).
    Step ``i`` scores when its argmax ``j_i`` is not behind ``j_{i-1} - slack`` and lies within
    ``band * text_length`` (at least 1) of the straight line from character 0 at step 0 to the last
    character at the last step, and (``min_weight``) gets at least that much attention: a focused,
    not a blurred, alignment. 1.0 for a clean diagonal alignment.
    """
    S = alignment.shape[0]
    if S == 0 or text_length < 1:
        return 0.0
    peak, j = alignment[:, :text_length].max(dim=1)
    j = j.float()
    line = torch.linspace(0, text_length - 1, S, device=alignment.device)
    near = (j - line).abs() <= max(1.0, band * text_length)
    mono = torch.ones_like(near)
    mono[1:] = j[1:] >= j[:-1] - slack
    return float((near & mono & (peak >= min_weight)).float().mean())


# ----------------------------------------------------------------------------------------------

def _is_batch(text) -> bool:
    """A list/tuple of texts (strings or id sequences), as opposed to one utterance's ids."""
    return isinstance(text, (list, tuple)) and (not text or all(
        isinstance(t, (str, list, tuple, torch.Tensor)) for t in text))


class TextToWave(_PresetMixin, nn.Module):
    """ClariNet's text-to-wave model (see the module docstring for the parts).

    ``forward(text, mel, text_lengths=, mel_lengths=, segment_audio=, segment_start=)`` is the
    teacher-forced training pass (dict of outputs; see :meth:`forward`); :meth:`infer` decodes text
    autoregressively into spectrograms and the vocoder conditioning; :meth:`synthesize` makes audio.

    ``vocabulary``: a :meth:`clarinet.text.Vocabulary.config` dict (default: the default
    vocabulary); ``audio``: :class:`clarinet.audio.AudioConfig` fields (the model's sample rate, hop,
    mel bands and FFT size; ``prod(upsample_strides)`` must equal the hop). Both are part of
    ``config``, so a checkpoint holds all that synthesis needs. Presets: ``"text2wave"``,
    ``"text2wave-tiny"``.
    """

    PRESETS = TEXT2WAVE_PRESETS

    def __init__(self, vocabulary: Optional[dict] = None, audio: Optional[dict] = None, max_text_length: int = 512,
                 embedding_dim: int = 256, encoder_layers: int = 7, encoder_channels: int = 256,
                 encoder_kernel: int = 5, reduction_factor: int = 4, prenet_channels: int = 256,
                 decoder_layers: int = 4, decoder_channels: int = 256, decoder_kernel: int = 5,
                 query_position_rate: float = 1.0, key_position_rate: float = 1.385, position_weight: float = 1.0,
                 bridge_layers: int = 4,
                 bridge_channels: int = 256, bridge_kernel: int = 5, cond_channels: int = 80,
                 upsample_strides: Sequence[int] = (15, 20), vocoder_layers: int = 20, vocoder_cycle: int = 10,
                 vocoder_residual_channels: int = 64, vocoder_gate_channels: int = 128,
                 vocoder_skip_channels: int = 128, vocoder_kernel_size: int = 2, dropout: float = 0.05,
                 attention_window: Sequence[int] = (1, 3), max_frames: int = 2000, backend: str = "auto"):
        super().__init__()
        from ..audio import AudioConfig
        from ..text import Vocabulary, default_vocabulary

        vocab = default_vocabulary() if vocabulary is None else Vocabulary.from_config(vocabulary)
        try:
            audio_cfg = AudioConfig(**(audio or {}))
        except TypeError as e:
            raise ValueError(f"audio: {e}") from None
        upsample_strides = _strides("upsample_strides", upsample_strides)
        if math.prod(upsample_strides) != audio_cfg.hop_length:
            raise ValueError(f"upsample_strides: {upsample_strides} multiply to {math.prod(upsample_strides)}, "
                             f"but the audio hop length is {audio_cfg.hop_length}")
        for name, v in (("max_text_length", max_text_length), ("embedding_dim", embedding_dim),
                        ("encoder_layers", encoder_layers), ("encoder_channels", encoder_channels),
                        ("encoder_kernel", encoder_kernel), ("reduction_factor", reduction_factor),
                        ("prenet_channels", prenet_channels), ("decoder_layers", decoder_layers),
                        ("decoder_channels", decoder_channels), ("decoder_kernel", decoder_kernel),
                        ("bridge_layers", bridge_layers), ("bridge_channels", bridge_channels),
                        ("bridge_kernel", bridge_kernel), ("cond_channels", cond_channels),
                        ("max_frames", max_frames)):
            _positive_int(name, v)
        if embedding_dim % 2:
            raise ValueError(f"embedding_dim: expected an even number (sin/cos positional encodings), got {embedding_dim}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout: expected a number in [0, 1), got {dropout!r}")
        window = tuple(int(w) for w in attention_window)
        if len(window) != 2 or min(window) < 0 or sum(window) < 1:
            raise ValueError(f"attention_window: expected (back, ahead) ints >= 0, got {attention_window!r}")
        for name, v in (("query_position_rate", query_position_rate), ("key_position_rate", key_position_rate),
                        ("position_weight", position_weight)):
            if not (isinstance(v, (int, float)) and v > 0 and math.isfinite(v)):
                raise ValueError(f"{name}: expected a positive number, got {v!r}")
        import dataclasses

        self.config = dict(
            vocabulary=vocab.config(), audio=dataclasses.asdict(audio_cfg), max_text_length=max_text_length,
            embedding_dim=embedding_dim, encoder_layers=encoder_layers, encoder_channels=encoder_channels,
            encoder_kernel=encoder_kernel, reduction_factor=reduction_factor, prenet_channels=prenet_channels,
            decoder_layers=decoder_layers, decoder_channels=decoder_channels, decoder_kernel=decoder_kernel,
            query_position_rate=float(query_position_rate), key_position_rate=float(key_position_rate),
            position_weight=float(position_weight),
            bridge_layers=bridge_layers, bridge_channels=bridge_channels, bridge_kernel=bridge_kernel,
            cond_channels=cond_channels, upsample_strides=upsample_strides, vocoder_layers=vocoder_layers,
            vocoder_cycle=vocoder_cycle, vocoder_residual_channels=vocoder_residual_channels,
            vocoder_gate_channels=vocoder_gate_channels, vocoder_skip_channels=vocoder_skip_channels,
            vocoder_kernel_size=vocoder_kernel_size, dropout=float(dropout), attention_window=window,
            max_frames=max_frames, backend=backend)
        self.vocab = vocab
        self.audio_config = audio_cfg
        self.n_mels = audio_cfg.n_mels
        self.reduction_factor = reduction_factor
        self.max_text_length = max_text_length
        self.encoder = TextEncoder(len(vocab), embedding_dim, encoder_channels, encoder_layers, encoder_kernel,
                                   dropout, pad_id=vocab.pad_id)
        self.decoder = AttentionDecoder(self.n_mels, reduction_factor, embedding_dim, prenet_channels,
                                        decoder_channels, decoder_layers, decoder_kernel, dropout,
                                        float(query_position_rate), float(key_position_rate), float(position_weight))
        self.bridge = BridgeNet(decoder_channels, reduction_factor, bridge_channels, bridge_layers, bridge_kernel,
                                audio_cfg.n_freqs, cond_channels, dropout)
        self.vocoder = GaussianWaveNet(layers=vocoder_layers, cycle=vocoder_cycle,
                                       residual_channels=vocoder_residual_channels,
                                       gate_channels=vocoder_gate_channels, skip_channels=vocoder_skip_channels,
                                       kernel_size=vocoder_kernel_size, n_mels=cond_channels,
                                       upsample_strides=upsample_strides, backend=backend)
        # the bridge-net's transposed convolutions are the vocoder's upsampler (softsign instead of leaky ReLU)
        self.vocoder.upsampler = BridgeUpsampler(cond_channels, upsample_strides)

    # -- properties ----------------------------------------------------------------------
    @property
    def hop_length(self) -> int:
        return self.vocoder.hop_length

    @property
    def sample_rate(self) -> int:
        return self.audio_config.sample_rate

    @property
    def cond_channels(self) -> int:
        return self.config["cond_channels"]

    # -- training pass -------------------------------------------------------------------
    def forward(self, text: torch.Tensor, mel: torch.Tensor, text_lengths: Optional[torch.Tensor] = None,
                mel_lengths: Optional[torch.Tensor] = None, segment_audio: Optional[torch.Tensor] = None,
                segment_start: Optional[torch.Tensor] = None) -> dict:
        """Teacher-forced pass over a batch.

        ``text`` ``(B, N)`` ids (padded with the vocabulary's pad id), ``mel`` ``(B, n_mels, F)`` target
        log-mel frames with ``F`` a multiple of ``reduction_factor``; ``text_lengths``, ``mel_lengths``
        ``(B,)`` (default: full). With ``segment_audio`` ``(B, L)`` (``L`` a multiple of the hop) and
        ``segment_start`` ``(B,)`` (first frame of each segment), the vocoder runs on the segments,
        conditioned on the bridge-net output upsampled from the frames around each segment only.

        Returns a dict: ``mel`` ``(B, n_mels, F)``, ``done_logits`` ``(B, F/r)``, ``linear``
        ``(B, n_freqs, F)``, ``cond`` ``(B, cond_channels, F)``, ``alignments`` (one ``(B, F/r, N)``
        per attention layer) and, with segments, ``mean`` and ``log_scale`` ``(B, L)``.
        """
        if text.dim() != 2 or text.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"text: expected (B, N) integer ids, got {tuple(text.shape)} {text.dtype}")
        if mel.dim() != 3 or mel.shape[1] != self.n_mels or mel.shape[0] != text.shape[0]:
            raise ValueError(f"mel: expected shape ({text.shape[0]}, {self.n_mels}, frames), got {tuple(mel.shape)}")
        B, N = text.shape
        Fr = mel.shape[2]
        r = self.reduction_factor
        if Fr % r:
            raise ValueError(f"mel: {Fr} frames is not a multiple of the reduction factor {r} "
                             f"(pad the frames, e.g. collate with pad_frames_to={r})")
        text_mask = _lengths_mask(text_lengths, B, N, text.device)
        keys, values = self.encoder(text.long(), text_mask)
        inputs = self.decoder.inputs_from_mel(mel)
        hidden, mel_out, done, attns = self.decoder(inputs, keys, values, text_mask[:, None, :])
        frame_mask = _lengths_mask(mel_lengths, B, Fr, mel.device)
        _, linear, cond = self.bridge(hidden, frame_mask)
        out = dict(mel=mel_out, done_logits=done, linear=linear, cond=cond, alignments=attns)
        if segment_audio is not None:
            if segment_start is None:
                raise ValueError("segment_start: needed with segment_audio")
            out["mean"], out["log_scale"] = self.vocoder_segments(cond, segment_audio, segment_start, mel_lengths)
        return out

    def vocoder_segments(self, cond: torch.Tensor, audio: torch.Tensor, start: torch.Tensor,
                         lengths: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The vocoder's ``(mean, log_scale)`` ``(B, L)`` of audio segments ``(B, L)`` starting at frames
        ``start`` ``(B,)``: each segment's conditioning is the upsampling of its own utterance's frames
        (the first ``lengths[b]``) around the segment, equal to that slice of the whole utterance's;
        samples past the utterance's last frame get zero conditioning."""
        B, L = audio.shape
        hop = self.hop_length
        if L % hop:
            raise ValueError(f"segment_audio: {L} samples is not a multiple of the hop length {hop}")
        up = self.vocoder.upsampler
        hs = []
        for b in range(B):
            n = int(lengths[b]) if lengths is not None else cond.shape[-1]
            s = int(start[b]) * hop
            e = min(s + L, n * hop)
            h = up.forward_window(cond[b:b + 1, :, :n], s, e) if e > s else cond.new_zeros(1, cond.shape[1], 0)
            hs.append(F.pad(h, (0, L - h.shape[-1])))
        h = torch.cat(hs)
        y = self.vocoder.wavenet(shift_right(audio)[:, None], h)
        return y[:, 0], y[:, 1]

    # -- inference -----------------------------------------------------------------------
    def text_ids(self, text) -> torch.Tensor:
        """``text`` (a string, or a sequence/tensor of ids) -> ``(N,)`` ids on the model's device.

        Strings go through the model's vocabulary (normalised; unknown characters dropped with a
        warning; end-of-utterance appended). ValueError for empty text or text longer than
        ``max_text_length`` symbols.
        """
        from ..text import text_to_ids

        dev = next(self.parameters()).device
        if isinstance(text, str):
            ids = text_to_ids(text, self.vocab, max_length=self.max_text_length)
        else:
            ids = torch.as_tensor(text, dtype=torch.long)
            if ids.dim() != 1 or ids.numel() == 0:
                raise ValueError(f"text: expected a non-empty 1-D sequence of ids, got shape {tuple(ids.shape)}")
            if ids.numel() > self.max_text_length:
                raise ValueError(f"text: {ids.numel()} symbols, more than this model's limit of "
                                 f"{self.max_text_length}; split the text into shorter utterances")
            if int(ids.min()) < 0 or int(ids.max()) >= len(self.vocab):
                raise ValueError(f"text: ids must be in [0, {len(self.vocab)}), got [{int(ids.min())}, {int(ids.max())}]")
        return ids.to(dev)

    @torch.no_grad()
    def infer(self, text, *, max_frames: Optional[int] = None, monotonic: bool = True,
              done_threshold: float = 0.5, progress: bool = False) -> dict:
        """Decode one utterance autoregressively (eval mode is used whatever the model's mode).

        ``text``: a string or ``(N,)`` ids. Decoding stops after the first step whose end probability
        exceeds ``done_threshold``, or at ``max_frames`` (default ``config["max_frames"]``; a warning
        says the end was not reached). ``monotonic``: each step's attention is limited to the
        ``attention_window`` = (back, ahead) characters around the previous step's most attended one.

        Returns a dict: ``mel`` ``(n_mels, F)``, ``linear`` ``(n_freqs, F)``, ``alignment`` ``(S, N)``
        (attention averaged over layers), ``hidden`` ``(cond_channels, F)`` (the vocoder's
        frame-rate conditioning), ``done`` ``(S,)`` end probabilities; ``F = S * r``.
        """
        from tqdm.auto import tqdm

        ids = self.text_ids(text)
        max_frames = self.config["max_frames"] if max_frames is None else _positive_int("max_frames", max_frames)
        was_training = self.training
        self.eval()
        try:
            r = self.reduction_factor
            max_steps = max(1, -(-max_frames // r))
            N = ids.numel()
            keys, values = self.encoder(ids[None], torch.ones(1, N, dtype=torch.bool, device=ids.device))
            back, ahead = self.config["attention_window"]
            rf = self.decoder.receptive_field
            dev, dtype = keys.device, keys.dtype
            inputs = torch.zeros(1, self.n_mels, max_steps, device=dev, dtype=dtype)
            masks = torch.ones(1, max_steps, N, dtype=torch.bool, device=dev)
            hiddens, mels, dones, aligns = [], [], [], []
            last = 0
            bar = tqdm(total=max_steps, disable=not progress, desc="decode", unit="step", leave=False)
            finished = False
            for i in range(max_steps):
                if monotonic:
                    masks[0, i] = False
                    masks[0, i, max(0, last - back): min(N, last + ahead + 1)] = True
                s0 = max(0, i - rf + 1)
                h, m, d, att = self.decoder(inputs[:, :, s0:i + 1], keys, values, masks[:, s0:i + 1], start=s0)
                hiddens.append(h[:, :, -1:])
                mels.append(m[:, :, -r:])
                p = torch.sigmoid(d[0, -1])
                dones.append(p)
                a = torch.stack([x[0, -1] for x in att]).mean(0)
                aligns.append(a)
                last = int(a.argmax())
                bar.update(1)
                if float(p) > done_threshold:
                    finished = True
                    break
                if i + 1 < max_steps:
                    inputs[:, :, i + 1] = m[:, :, -1]
            bar.close()
            if not finished:
                warnings.warn(f"infer: no end of utterance within max_frames={max_frames} frames; the audio is "
                              "cut there (raise max_frames if the text is long)", RuntimeWarning,
                              stacklevel=3)  # the caller of infer, past torch.no_grad's wrapper
            hidden = torch.cat(hiddens, dim=2)
            mel = torch.cat(mels, dim=2)
            _, linear, cond = self.bridge(hidden)
            return dict(mel=mel[0], linear=linear[0], alignment=torch.stack(aligns), hidden=cond[0],
                        done=torch.stack(dones))
        finally:
            self.train(was_training)

    @torch.no_grad()
    def synthesize(self, text, *, vocoder=None, max_frames: Optional[int] = None, temperature: float = 1.0,
                   backend: str = "auto", progress: bool = True, noise: Optional[torch.Tensor] = None,
                   return_details: bool = False, batch_size: Optional[int] = None):
        """Text to audio: ``(audio float32 (T,), sample_rate)`` (with ``return_details``, a third item:
        the :meth:`infer` dict).

        ``text`` a list of texts (strings or id sequences): ``(list of audio (T_i,), sample_rate)`` (and
        a list of :meth:`infer` dicts). The decoder runs per utterance (its stop and attention window
        are per utterance, and its F/r steps cost little next to the vocoder's F*hop samples); the
        vocoder runs ``batch_size`` utterances at a time (default: all) as one zero-padded batch with
        ``frame_lengths`` (:meth:`GaussianWaveNet.generate`), longest first so that the rows of a
        batch end together; each wave equals that utterance generated alone with the same noise.
        ``noise``: None or a list of ``(T_i,)``.

        ``vocoder``: None for the model's own autoregressive WaveNet (sampled by
        :func:`clarinet.ops.wavenet_sample` with ``backend``; ``"auto"`` = the C++ sampler for float32
        CPU models), or a :class:`~clarinet.models.GaussianIAF` distilled from it (``n_mels`` =
        ``cond_channels``, the same hop), which generates all samples in parallel. ``temperature``
        scales the noise. ``noise`` ``(T,)`` optional (``T = frames * hop``).
        """
        if _is_batch(text):
            return self._synthesize_batch(text, vocoder=vocoder, max_frames=max_frames, temperature=temperature,
                                          backend=backend, progress=progress, noise=noise,
                                          return_details=return_details, batch_size=batch_size)
        self._check_vocoder(vocoder)
        out = self.infer(text, max_frames=max_frames, progress=progress)
        cond = out["hidden"][None]
        T = cond.shape[-1] * self.hop_length
        if noise is not None:
            noise = noise.reshape(1, T).to(cond)
        audio = self._vocode(cond, noise, None, vocoder, temperature, backend, progress)[0].float().cpu()
        if return_details:
            return audio, self.sample_rate, out
        return audio, self.sample_rate

    def _check_vocoder(self, vocoder) -> None:
        if vocoder is not None:
            from .iaf import GaussianIAF

            if not isinstance(vocoder, GaussianIAF):
                raise TypeError(f"vocoder: expected None or a GaussianIAF, got {type(vocoder).__name__}")
            if vocoder.n_mels != self.cond_channels or vocoder.hop_length != self.hop_length:
                raise ValueError(f"vocoder: a GaussianIAF with n_mels={vocoder.n_mels}, hop {vocoder.hop_length} "
                                 f"cannot be conditioned on this model's bridge-net output ({self.cond_channels} "
                                 f"channels, hop {self.hop_length}); distil it from this model")

    def _vocode(self, cond, noise, frame_lengths, vocoder, temperature, backend, progress):
        """The vocoder (the model's AR WaveNet, or the IAF ``vocoder``) over ``cond`` ``(B, C, F)``: ``(B, F * hop)``."""
        if vocoder is None:
            return self.vocoder.generate(cond, noise=noise, temperature=temperature, progress=progress,
                                         backend=backend, frame_lengths=frame_lengths)
        p = next(vocoder.parameters())
        return vocoder.generate(cond.to(p), noise=None if noise is None else noise.to(p), temperature=temperature,
                                frame_lengths=frame_lengths)

    def _synthesize_batch(self, texts, *, vocoder, max_frames, temperature, backend, progress, noise,
                          return_details, batch_size):
        if not texts:
            raise ValueError("text: expected at least one text in the list")
        if batch_size is not None:
            _positive_int("batch_size", batch_size)
        if noise is not None and (not isinstance(noise, (list, tuple)) or len(noise) != len(texts)):
            raise ValueError(f"noise: expected None or a list of {len(texts)} tensors (one per text)")
        self._check_vocoder(vocoder)
        for t in texts:
            self.text_ids(t)  # every text checked before the first is decoded
        details = [self.infer(t, max_frames=max_frames, progress=progress) for t in texts]
        order = sorted(range(len(texts)), key=lambda i: -details[i]["hidden"].shape[-1])
        step = batch_size or len(texts)
        hop = self.hop_length
        waves = [None] * len(texts)
        for s in range(0, len(order), step):
            idx = order[s:s + step]
            conds = [details[i]["hidden"] for i in idx]
            frames = [c.shape[-1] for c in conds]
            cond = conds[0].new_zeros(len(idx), conds[0].shape[0], max(frames))
            for j, c in enumerate(conds):
                cond[j, :, :c.shape[-1]] = c
            z = None
            if noise is not None:
                z = cond.new_zeros(len(idx), max(frames) * hop)
                for j, i in enumerate(idx):
                    if noise[i].numel() != frames[j] * hop:
                        raise ValueError(f"noise[{i}]: expected {frames[j] * hop} values (frames x hop of text {i}), "
                                         f"got {noise[i].numel()}")
                    z[j, :frames[j] * hop] = noise[i].reshape(-1).to(cond)
            x = self._vocode(cond, z, torch.tensor(frames), vocoder, temperature, backend, progress)
            for j, i in enumerate(idx):
                waves[i] = x[j, :frames[j] * hop].float().cpu()
        if return_details:
            return waves, self.sample_rate, details
        return waves, self.sample_rate
