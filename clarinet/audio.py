"""Audio features and files for the vocoders.

Features (all torch, differentiable, any device):

- :class:`AudioConfig`: sample rate, STFT and mel settings (ClariNet's defaults: 24 kHz, FFT 2048,
  Hann window 1200, hop 300, 80 mel bands).
- :func:`mel_filterbank`: Slaney-scale triangular filters with Slaney area normalisation (the
  formulas of librosa's ``filters.mel(htk=False, norm="slaney")``, computed here with torch).
- :func:`stft`, :func:`stft_magnitude`: centred STFT with reflect padding.
- :func:`log_mel`: log-mel spectrogram with exactly ``T // hop_length`` frames (see its docstring
  for the frame/sample alignment the vocoders rely on).
- :func:`stft_loss`: ClariNet's spectrogram frame loss (mean squared magnitude difference).

Files: :func:`load_audio` (soundfile; mono mixdown; soxr resampling) and :func:`save_audio`
(16-bit PCM wav, written atomically). ``soundfile`` and ``soxr`` are imported on first use, so the
feature functions import with torch alone.
"""
from __future__ import annotations

import functools
import importlib
import math
import os
import tempfile
from dataclasses import dataclass
from typing import Optional, Union

import numpy as np
import torch

__all__ = [
    "AudioConfig",
    "mel_filterbank",
    "stft",
    "stft_magnitude",
    "log_mel",
    "stft_loss",
    "load_audio",
    "save_audio",
    "hz_to_mel",
    "mel_to_hz",
]

PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class AudioConfig:
    """Audio and feature settings.

    Attributes:
        sample_rate: samples per second (Hz).
        n_fft: FFT size; the spectrum has ``n_fft // 2 + 1`` bins.
        win_length: Hann window length in samples (zero-padded on both sides to ``n_fft``).
        hop_length: samples between frames; one mel frame per ``hop_length`` samples.
        n_mels: number of mel bands.
        fmin: lowest mel filter edge (Hz).
        fmax: highest mel filter edge (Hz); ``None`` means ``sample_rate / 2``.
        log_floor: magnitudes are clamped to at least this before the log in :func:`log_mel`.

    The config is hashable (frozen) and its ``repr`` names every field, so it can key caches.
    """

    sample_rate: int = 24000
    n_fft: int = 2048
    win_length: int = 1200
    hop_length: int = 300
    n_mels: int = 80
    fmin: float = 0.0
    fmax: Optional[float] = None
    log_floor: float = 1e-5

    def __post_init__(self) -> None:
        for name in ("sample_rate", "n_fft", "win_length", "hop_length", "n_mels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"AudioConfig.{name} must be a positive integer, got {value!r}")
        if not (self.log_floor > 0 and math.isfinite(self.log_floor)):
            raise ValueError(f"AudioConfig.log_floor must be positive and finite, got {self.log_floor!r}")
        if self.win_length > self.n_fft:
            raise ValueError(
                f"AudioConfig.win_length ({self.win_length}) must be <= n_fft ({self.n_fft})")
        nyquist = self.sample_rate / 2
        if not (math.isfinite(self.fmin) and self.fmin >= 0):
            raise ValueError(f"AudioConfig.fmin must be >= 0, got {self.fmin!r}")
        if self.fmax is not None and not (0 < self.fmax <= nyquist):
            raise ValueError(
                f"AudioConfig.fmax ({self.fmax!r}) must be in (0, sample_rate/2 = {nyquist}]")
        if not self.fmin < self.max_frequency:
            raise ValueError(
                f"AudioConfig.fmin ({self.fmin!r}) must be < fmax ({self.max_frequency!r})")

    @property
    def max_frequency(self) -> float:
        """``fmax`` with ``None`` resolved to ``sample_rate / 2``."""
        return float(self.sample_rate) / 2 if self.fmax is None else float(self.fmax)

    @property
    def n_freqs(self) -> int:
        """Number of STFT bins, ``n_fft // 2 + 1``."""
        return self.n_fft // 2 + 1


# ----------------------------------------------------------------------------------------------
# Mel scale (Slaney): linear below 1 kHz (200/3 Hz per mel), logarithmic above (27 mels per
# factor 6.4 in frequency). Same formulas as librosa.hz_to_mel(htk=False).
_F_SP = 200.0 / 3.0
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP  # 15
_LOGSTEP = math.log(6.4) / 27.0


def hz_to_mel(freq: torch.Tensor) -> torch.Tensor:
    """Slaney mel of ``freq`` (Hz), elementwise."""
    freq = torch.as_tensor(freq, dtype=torch.float64)
    linear = freq / _F_SP
    log = _MIN_LOG_MEL + torch.log(torch.clamp(freq, min=_MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP
    return torch.where(freq >= _MIN_LOG_HZ, log, linear)


def mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`hz_to_mel`, elementwise."""
    mel = torch.as_tensor(mel, dtype=torch.float64)
    linear = mel * _F_SP
    log = _MIN_LOG_HZ * torch.exp(_LOGSTEP * (mel - _MIN_LOG_MEL))
    return torch.where(mel >= _MIN_LOG_MEL, log, linear)


@functools.lru_cache(maxsize=16)
def _mel_filterbank_cached(cfg: AudioConfig) -> torch.Tensor:
    n_freqs = cfg.n_freqs
    # bin k is at k * sample_rate / n_fft (also right for odd n_fft, where the last bin < Nyquist)
    fft_freqs = torch.arange(n_freqs, dtype=torch.float64) * (cfg.sample_rate / cfg.n_fft)
    mel_edges = torch.linspace(
        float(hz_to_mel(torch.tensor(cfg.fmin))), float(hz_to_mel(torch.tensor(cfg.max_frequency))),
        cfg.n_mels + 2, dtype=torch.float64)
    hz_edges = mel_to_hz(mel_edges)                      # (n_mels + 2,)
    widths = torch.diff(hz_edges)                        # (n_mels + 1,)
    ramps = hz_edges[:, None] - fft_freqs[None, :]       # (n_mels + 2, n_freqs)
    lower = -ramps[:-2] / widths[:-1, None]              # rising edge of filter i
    upper = ramps[2:] / widths[1:, None]                 # falling edge of filter i
    weights = torch.clamp(torch.minimum(lower, upper), min=0.0)
    # Slaney normalisation: each triangle has unit area in Hz (2 / bandwidth).
    weights = weights * (2.0 / (hz_edges[2:] - hz_edges[:-2]))[:, None]
    return weights.to(torch.float32)


def mel_filterbank(cfg: AudioConfig = AudioConfig()) -> torch.Tensor:
    """Mel filterbank, float32 tensor of shape ``(n_mels, n_fft // 2 + 1)`` on the CPU.

    ``n_mels + 2`` edges equally spaced on the Slaney mel scale between ``fmin`` and ``fmax``;
    filter ``i`` rises linearly (in Hz) from edge ``i`` to edge ``i + 1`` and falls to edge
    ``i + 2``, scaled by ``2 / (edge[i+2] - edge[i])`` (Slaney area normalisation). Computed in
    float64. Equivalent to ``librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax)`` (defaults
    ``htk=False, norm="slaney"``). A fresh tensor is returned on each call.
    """
    return _mel_filterbank_cached(cfg).clone()


# ----------------------------------------------------------------------------------------------
def _as_signal(x: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() not in (1, 2):
        raise ValueError(f"{name} must have shape (T,) or (B, T), got {tuple(x.shape)}")
    if not x.dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
    if x.dtype not in (torch.float32, torch.float64):
        x = x.float()  # torch.stft has no half-precision CPU kernel; compute in float32
    return x


def stft(x: torch.Tensor, cfg: AudioConfig = AudioConfig()) -> torch.Tensor:
    """Centred STFT of ``x`` (``(T,)`` or ``(B, T)``): complex ``(..., n_fft // 2 + 1, 1 + T // hop)``.

    Periodic Hann window of ``win_length`` zero-padded (centred) to ``n_fft``; ``center=True`` with
    reflect padding of ``n_fft // 2`` on each side, so frame ``j`` is centred on sample
    ``j * hop_length``. Reflect padding needs ``T > n_fft // 2``. Equivalent to
    ``torch.stft(x, n_fft, hop_length, win_length, torch.hann_window(win_length), center=True,
    pad_mode="reflect", return_complex=True)``.
    """
    x = _as_signal(x, "x")
    if x.shape[-1] <= cfg.n_fft // 2:
        raise ValueError(
            f"x has {x.shape[-1]} samples; the centred STFT's reflect padding needs more than "
            f"n_fft // 2 = {cfg.n_fft // 2}")
    window = torch.hann_window(cfg.win_length, periodic=True, dtype=x.dtype, device=x.device)
    return torch.stft(x, n_fft=cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.win_length,
                      window=window, center=True, pad_mode="reflect", normalized=False,
                      onesided=True, return_complex=True)


def stft_magnitude(x: torch.Tensor, cfg: AudioConfig = AudioConfig()) -> torch.Tensor:
    """``|stft(x, cfg)|``: real ``(..., n_fft // 2 + 1, 1 + T // hop)``, differentiable."""
    return stft(x, cfg).abs()


def log_mel(x: torch.Tensor, cfg: AudioConfig = AudioConfig()) -> torch.Tensor:
    """Log-mel spectrogram of ``x`` (``(T,)`` or ``(B, T)``): ``(..., n_mels, T // hop_length)``.

    ``log(clamp(mel_filterbank @ |stft(x)|, min=log_floor))`` (natural log, magnitude not power).

    Alignment: frame ``j`` is centred on sample ``j * hop_length``. The centred STFT yields
    ``1 + T // hop_length`` frames; the trailing one is dropped so there are exactly
    ``T // hop_length`` frames, and frame ``j`` conditions samples
    ``[j * hop_length, (j + 1) * hop_length)`` once the vocoder upsamples frames by
    ``hop_length``. For ``T`` a multiple of ``hop_length`` this is exactly ``T`` samples; otherwise
    the last ``T % hop_length`` samples have no frame of their own.
    """
    mag = stft_magnitude(x, cfg)
    n_frames = x.shape[-1] // cfg.hop_length
    mag = mag[..., :n_frames]
    fb = _mel_filterbank_cached(cfg).to(device=mag.device, dtype=mag.dtype)
    mel = torch.matmul(fb, mag)
    return torch.log(torch.clamp(mel, min=cfg.log_floor))


def stft_loss(x: torch.Tensor, y: torch.Tensor, cfg: AudioConfig = AudioConfig()) -> torch.Tensor:
    """ClariNet's spectrogram frame loss: mean of ``(|STFT(x)| - |STFT(y)|)**2``.

    ``x`` and ``y``: same shape, ``(T,)`` or ``(B, T)``. The mean runs over batch, frequency bins
    and all ``1 + T // hop`` frames of :func:`stft`. Returns a 0-D tensor, differentiable in both
    inputs (``|z|`` has gradient 0 at ``z = 0``, never NaN).
    """
    x = _as_signal(x, "x")
    y = _as_signal(y, "y")
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    return torch.mean((stft_magnitude(x, cfg) - stft_magnitude(y, cfg)) ** 2)


# ----------------------------------------------------------------------------------------------
def _optional(name: str, purpose: str):
    """Import the optional package ``name`` (soundfile, soxr): only audio files need them."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ImportError(f"{purpose} needs the package {name!r}, which is not installed: "
                          f"pip install {name}") from exc


def load_audio(path: PathLike, sample_rate: int) -> torch.Tensor:
    """Read an audio file as a float32 ``(T,)`` tensor in [-1, 1] at ``sample_rate``.

    Any format soundfile reads. Multi-channel files are mixed down to mono by averaging the
    channels. A file at another rate is resampled with ``soxr.resample(..., quality="HQ")``
    (output length ``round(T * sample_rate / file_rate)``).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is empty (0 bytes or 0 samples) or soundfile cannot read it (the
            message names the path and gives soundfile's message).
    """
    path = os.fspath(path)
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer, got {sample_rate!r}")
    sf = _optional("soundfile", "reading audio files")
    if not os.path.exists(path):
        raise FileNotFoundError(f"audio file not found: {path}")
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        raise ValueError(f"audio file is empty (0 bytes): {path}")
    try:
        data, file_rate = sf.read(path, dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError) as exc:
        raise ValueError(f"cannot read audio file {path}: {exc}") from exc
    if data.shape[0] == 0:
        raise ValueError(f"audio file has no samples: {path}")
    mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    if file_rate != sample_rate:
        soxr = _optional("soxr", f"resampling {path} from {file_rate} Hz to {sample_rate} Hz")
        mono = soxr.resample(mono, file_rate, sample_rate, quality="HQ")
    return torch.from_numpy(np.ascontiguousarray(mono, dtype=np.float32))


def save_audio(path: PathLike, x: torch.Tensor, sample_rate: int) -> None:
    """Write ``x`` (``(T,)``, values in [-1, 1]) as a mono 16-bit PCM wav file, atomically.

    Values outside [-1, 1] are clipped. The data go to a temporary file in the same folder, which
    then replaces ``path`` (``os.replace``), so a reader never sees a half-written file.
    """
    sf = _optional("soundfile", "writing audio files")
    path = os.fspath(path)
    if isinstance(x, torch.Tensor):
        data = x.detach().to("cpu", torch.float32).numpy()
    else:
        data = np.asarray(x, dtype=np.float32)
    if data.ndim != 1:
        raise ValueError(f"x must have shape (T,), got {tuple(data.shape)}")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer, got {sample_rate!r}")
    data = np.clip(data, -1.0, 1.0)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".wav")
    os.close(fd)
    try:
        sf.write(tmp, data, int(sample_rate), subtype="PCM_16", format="WAV")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
