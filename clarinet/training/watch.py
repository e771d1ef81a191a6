"""Watching a run: the held-out split (:func:`split_dataset`), its validation loss (:func:`validation_loss`),
the audio and spectrogram samples the recipes write (:func:`write_sample`), and stopping on SIGINT /
SIGTERM at the end of a step (:class:`StopSignals`, :class:`TrainingInterrupted`)."""
from __future__ import annotations

import math
import signal
import threading
from pathlib import Path
from typing import Optional

import torch

__all__ = ["StopSignals", "Subset", "TrainingInterrupted", "split_dataset", "validation_loss", "write_sample"]


class TrainingInterrupted(KeyboardInterrupt):
    """A run stopped by SIGINT or SIGTERM after finishing its step and writing a checkpoint.

    ``step``: the last completed step; ``checkpoint``: the file written (None on ranks other than 0);
    ``signum``: the signal. The CLI exits with ``128 + signum`` (130 for Ctrl-C, 143 for SIGTERM)."""

    def __init__(self, step: int, checkpoint: Optional[Path], signum: int):
        self.step, self.checkpoint, self.signum = step, checkpoint, signum
        name = signal.Signals(signum).name
        super().__init__(f"training stopped by {name} after step {step}"
                         + (f"; checkpoint {checkpoint}" if checkpoint is not None else ""))


class StopSignals:
    """Context manager: while active, SIGINT and SIGTERM only set :attr:`signum` (a second Ctrl-C
    raises KeyboardInterrupt at once, for a run stuck inside a step). Handlers are installed only in
    the main thread (Python delivers signals there) and restored on exit."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signum = 0
        self._old: dict = {}

    def _handle(self, signum, frame):
        if self.signum and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)
        self._old.clear()
        return False


class Subset(torch.utils.data.Dataset):
    """Items ``indices`` of ``dataset``; ``set_epoch`` is passed on (the segment draws depend on it)."""

    def __init__(self, dataset, indices):
        self.dataset, self.indices = dataset, list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i):
        return self.dataset[self.indices[i]]

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)


def split_dataset(dataset, fraction: float, seed: int):
    """``(train, held_out)``: ``round(fraction * len)`` items (at least 1 when ``fraction > 0``, and at
    least one left to train on) chosen by a permutation seeded with ``seed``; ``held_out`` is None when
    ``fraction`` is 0. Both keep the dataset's order."""
    n = len(dataset)
    if fraction <= 0:
        return dataset, None
    k = min(n - 1, max(1, round(fraction * n)))
    if k < 1:
        from .config import ConfigError

        raise ConfigError(f"val_fraction: a corpus of {n} item(s) leaves nothing to hold out")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    held = sorted(perm[:k])
    keep = sorted(perm[k:])
    return Subset(dataset, keep), Subset(dataset, held)


@torch.no_grad()
def validation_loss(model, dataset, collate, loss, *, batch_size: int, step: int, dist, device) -> dict:
    """The recipe's loss terms averaged over ``dataset`` (weighted by batch size), the model in eval
    mode and without gradients; the segment draws restart at epoch 0 each time, so successive
    validations see the same segments."""
    from torch.utils.data import DataLoader

    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(0)
    if collate is None:
        from ..data import collate
    was_training = model.training
    model.eval()
    sums: dict = {}
    n = 0
    try:
        for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate):
            batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
            b = next(v.shape[0] for v in batch.values() if isinstance(v, torch.Tensor))
            for k, v in loss(model, batch, step, dist).items():
                sums[k] = sums.get(k, 0.0) + float(v) * b
            n += b
    finally:
        model.train(was_training)
    return {k: v / max(n, 1) for k, v in sums.items()}


def write_sample(stem: Path, audio: torch.Tensor, sample_rate: int, hop: int, panels=None, details=None,
                 title: str = "") -> list[Path]:
    """``stem.wav`` (16-bit) and, when matplotlib is installed, ``stem.png``: the spectrogram panels
    ``[(title, (bands, frames))]`` or a text-to-wave ``details`` dict (alignment and spectrograms).
    Returns the files written."""
    from ..audio import save_audio
    from ..plotting import have_matplotlib, spectrograms_png, synthesis_png

    stem.parent.mkdir(parents=True, exist_ok=True)
    written = [stem.with_suffix(".wav")]
    save_audio(written[0], audio.detach().float().cpu(), sample_rate)
    if have_matplotlib():
        png = stem.with_suffix(".png")
        if details is not None:
            synthesis_png(png, details, sample_rate, hop, title)
        else:
            spectrograms_png(png, panels, frame_ms=hop / sample_rate * 1000)
        written.append(png)
    return written


def frames_for(seconds: float, sample_rate: int, hop: int) -> int:
    """Mel frames in ``seconds`` of audio (at least 1)."""
    return max(1, int(math.floor(seconds * sample_rate / hop)))


def vocoder_sample(generate, dataset, index: int, stem: Path, seconds: float, audio_cfg, what: str) -> list[Path]:
    """A vocoder's sample: the first ``seconds`` of item ``index``'s audio file, its log-mel, and
    ``generate(mel (1, n_mels, F)) -> (1, F * hop)``; the PNG shows the real and the generated log-mel."""
    from ..audio import load_audio, log_mel

    frames = frames_for(seconds, audio_cfg.sample_rate, audio_cfg.hop_length)
    audio = load_audio(dataset.path(index), audio_cfg.sample_rate)[: frames * audio_cfg.hop_length]
    mel = log_mel(audio, audio_cfg)
    with torch.no_grad():
        x = generate(mel[None])[0].float().cpu()
    panels = [(f"log-mel of {Path(dataset.path(index)).name}", mel), (f"log-mel of the {what}'s audio", log_mel(x, audio_cfg))]
    return write_sample(stem, x, audio_cfg.sample_rate, audio_cfg.hop_length, panels=panels)

