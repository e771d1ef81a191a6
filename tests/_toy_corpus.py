"""A tiny deterministic text+audio corpus in the LJSpeech layout, for data and convergence tests.

Every character is its own sine tone (a distinct frequency per character, constant amplitude,
``frames_per_char * hop_length`` samples with short raised-cosine fades), a space is silence of the
same length, so utterance ``text`` has exactly ``len(text) * frames_per_char`` mel frames and
character ``k`` occupies frames ``[k * frames_per_char, (k + 1) * frames_per_char)``: a model that
learns the task learns a diagonal alignment.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Union

import numpy as np

from clarinet.audio import AudioConfig, save_audio

__all__ = ["write_toy_corpus", "toy_audio_config", "char_frequencies"]


def char_frequencies(chars: str, sample_rate: int) -> dict:
    """The tone of each character: equally spaced from 0.05 to 0.4 times the sample rate
    (200 .. 1600 Hz at 4 kHz), in the order of ``chars``."""
    lo, hi = 0.05 * sample_rate, 0.4 * sample_rate
    n = len(chars)
    return {c: (lo + (hi - lo) * i / (n - 1) if n > 1 else lo) for i, c in enumerate(chars)}


def toy_audio_config(sample_rate: int = 4000, hop_length: int = 50, n_mels: int = 20) -> AudioConfig:
    """An :class:`AudioConfig` that suits the toy corpus (FFT 256, window 4 hops or 200 samples,
    whichever is smaller; needs utterances longer than 128 samples)."""
    return AudioConfig(sample_rate=sample_rate, n_fft=256, win_length=min(256, 4 * hop_length),
                       hop_length=hop_length, n_mels=n_mels)


def write_toy_corpus(root: Union[str, os.PathLike], *, n_utterances: int = 24,
                     sample_rate: int = 4000, hop_length: int = 50, chars: str = "abcdefgh",
                     frames_per_char: int = 3, min_chars: int = 2, max_chars: int = 6,
                     seed: int = 0) -> Path:
    """Write ``root/metadata.csv`` and ``root/wavs/TOY-0001.wav`` ... and return ``root``.

    Utterance texts are random strings of ``min_chars`` to ``max_chars`` symbols drawn from
    ``chars`` (numpy ``default_rng(seed)``); with probability 1/4 a symbol after the first and
    before the last is a space (never two in a row), so texts never start or end with a space.
    Each metadata row is ``id|text|text``. Audio: 16-bit PCM (``clarinet.audio.save_audio``),
    amplitude 0.5, ``len(text) * frames_per_char * hop_length`` samples. The same arguments
    always write the same files.
    """
    if not chars or len(set(chars)) != len(chars) or " " in chars or "|" in chars:
        raise ValueError(f"chars must be distinct non-space characters, got {chars!r}")
    if not 1 <= min_chars <= max_chars:
        raise ValueError(f"need 1 <= min_chars <= max_chars, got {min_chars}, {max_chars}")
    if n_utterances < 1 or frames_per_char < 1 or hop_length < 1:
        raise ValueError("n_utterances, frames_per_char and hop_length must be positive")
    root = Path(root)
    (root / "wavs").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    freqs = char_frequencies(chars, sample_rate)
    n = frames_per_char * hop_length
    fade = max(1, min(n // 8, int(0.005 * sample_rate)))
    envelope = np.ones(n)
    ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(fade) + 0.5) / fade)
    envelope[:fade] = ramp
    envelope[-fade:] = ramp[::-1]
    t = np.arange(n) / sample_rate
    tones = {c: 0.5 * envelope * np.sin(2 * math.pi * f * t) for c, f in freqs.items()}
    tones[" "] = np.zeros(n)

    rows = []
    for u in range(n_utterances):
        length = int(rng.integers(min_chars, max_chars + 1))
        text = []
        for k in range(length):
            if 0 < k < length - 1 and text[-1] != " " and rng.random() < 0.25:
                text.append(" ")
            else:
                text.append(chars[int(rng.integers(len(chars)))])
        text = "".join(text)
        utt_id = f"TOY-{u + 1:04d}"
        audio = np.concatenate([tones[c] for c in text]).astype(np.float32)
        save_audio(root / "wavs" / f"{utt_id}.wav", audio, sample_rate)
        rows.append(f"{utt_id}|{text}|{text}")
    (root / "metadata.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root
