"""Mel spectrograms (or the log-mel of a recording) to audio with a trained vocoder: ``clarinet vocode``.

A vocoder checkpoint is a :class:`~clarinet.models.GaussianWaveNet` teacher (``train-teacher``; samples
one at a time with :func:`clarinet.ops.wavenet_sample`) or a :class:`~clarinet.models.GaussianIAF`
student (``train-student``; all samples in parallel). The checkpoint records the audio settings it was
trained with (``extra["audio"]``), so the log-mel of a wav file is computed exactly as in training.
In Python::

    from clarinet.checkpoint import load_model
    from clarinet.vocode import audio_config_of, input_mel
    teacher = load_model("run/step-010000.pt", "GaussianWaveNet")   # EMA weights, eval mode
    cfg = audio_config_of("run/step-010000.pt")
    mel = input_mel("speech.wav", cfg)                               # (n_mels, frames)
    audio = teacher.generate(mel[None], progress=True)[0]            # (frames * hop,)

A TextToWave checkpoint's vocoder is conditioned on the bridge-net, not on mel frames: use
``clarinet synthesize`` for it (and for a student distilled from it).
"""
from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import Optional

import torch

__all__ = ["VOCODER_KINDS", "audio_config_of", "input_mel", "load_vocoder", "vocode"]

VOCODER_KINDS = ("GaussianWaveNet", "GaussianIAF")
MEL_SUFFIXES = (".pt", ".pth", ".npy")
BACKEND_CHOICES = ("auto", "reference", "cpp", "cuda", "triton")  # clarinet.ops.wavenet_sample's
SAMPLE_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "int8": torch.int8}


def audio_config_of(ckpt):
    """The :class:`clarinet.audio.AudioConfig` a vocoder checkpoint (a path or a loaded dict) was
    trained with: its ``extra["audio"]``, else the defaults (24 kHz, hop 300, 80 bands)."""
    from . import checkpoint as ck
    from .audio import AudioConfig

    if not isinstance(ckpt, dict):
        ckpt = ck.load_checkpoint(ckpt)
    audio = (ckpt.get("extra") or {}).get("audio")
    if not audio:
        return AudioConfig()
    names = {f.name for f in dataclasses.fields(AudioConfig)}
    return AudioConfig(**{k: v for k, v in audio.items() if k in names})


def load_vocoder(path, *, device="cpu", backend: str = "auto"):
    """``(model, audio_config, info)`` for a teacher or student checkpoint (EMA weights, eval mode).

    ``info``: ``kind``, ``step`` and ``mel_conditioned`` (False for a student distilled from a
    TextToWave model: it is conditioned on the bridge-net's states, not on log-mel frames).
    ValueError for another kind of checkpoint (a TextToWave one points to ``clarinet synthesize``).
    """
    from . import checkpoint as ck

    ckpt = ck.load_checkpoint(path, map_location="cpu")
    kind = ckpt["kind"]
    if kind == "TextToWave":
        raise ValueError(f"{str(path)!r} is a TextToWave checkpoint: its vocoder is conditioned on the "
                         "bridge-net, not on mel frames; make audio from text with `clarinet synthesize`")
    if kind not in VOCODER_KINDS:
        raise ValueError(f"{str(path)!r}: expected a GaussianWaveNet (train-teacher) or GaussianIAF "
                         f"(train-student) checkpoint, found a {kind} checkpoint")
    model = ck.load_model(path, kind, map_location=device, backend=backend)
    teacher = (ckpt.get("extra") or {}).get("teacher") or {}
    info = {"kind": kind, "step": int(ckpt["step"]), "mel_conditioned": teacher.get("kind") != "TextToWave"}
    return model, audio_config_of(ckpt), info


def input_mel(path, audio_config) -> torch.Tensor:
    """The ``(n_mels, frames)`` float32 log-mel of ``path``: a saved tensor (``.pt``/``.pth`` through
    ``torch.load(weights_only=True)``, ``.npy`` through numpy; shape ``(n_mels, F)`` or ``(1, n_mels,
    F)``) or an audio file, whose :func:`clarinet.audio.log_mel` under ``audio_config`` is computed
    (the file is resampled to ``audio_config.sample_rate`` when needed)."""
    from .audio import load_audio, log_mel

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"input {str(p)!r} does not exist" if not p.exists() else f"input {str(p)!r} is not a file")
    if p.suffix.lower() in MEL_SUFFIXES:
        try:
            if p.suffix.lower() == ".npy":
                import numpy as np

                mel = torch.from_numpy(np.load(p, allow_pickle=False))
            else:
                mel = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unreadable file is the user's input error
            raise ValueError(f"input {str(p)!r}: cannot read a tensor ({type(e).__name__}: {e})") from None
        if not isinstance(mel, torch.Tensor):
            raise ValueError(f"input {str(p)!r}: expected a saved tensor, found a {type(mel).__name__}")
        if mel.dim() == 3 and mel.shape[0] == 1:
            mel = mel[0]
        if mel.dim() != 2 or not mel.is_floating_point():
            raise ValueError(f"input {str(p)!r}: expected a floating-point (n_mels, frames) tensor, got "
                             f"{tuple(mel.shape)} {mel.dtype}")
        return mel.float()
    return log_mel(load_audio(p, audio_config.sample_rate), audio_config)


def vocode(model, mel: torch.Tensor, *, backend: str = "auto", sample_dtype: Optional[torch.dtype] = None,
           temperature: float = 1.0, seed: Optional[int] = 0, progress: bool = False) -> torch.Tensor:
    """Audio ``(frames * hop,)`` float32 from ``mel`` ``(n_mels, frames)`` with a teacher
    (:meth:`GaussianWaveNet.generate`, ``backend`` and ``sample_dtype`` passed on) or a student
    (:meth:`GaussianIAF.generate`, run in ``sample_dtype`` when given). ``seed``: the noise is drawn
    from a generator with this seed (None: the global one)."""
    from .models import GaussianIAF, GaussianWaveNet

    if mel.dim() != 2 or mel.shape[0] != model.n_mels:
        raise ValueError(f"mel: expected ({model.n_mels}, frames) for this vocoder, got {tuple(mel.shape)}")
    p = next(model.parameters())
    mel = mel.to(p.device, p.dtype)[None]
    T = mel.shape[-1] * model.hop_length
    g = None if seed is None else torch.Generator(device=p.device).manual_seed(int(seed))
    noise = torch.randn(1, T, generator=g, device=p.device, dtype=p.dtype)
    with torch.no_grad():
        if isinstance(model, GaussianWaveNet):
            x = model.generate(mel, noise=noise, temperature=temperature, progress=progress, backend=backend,
                               sample_dtype=sample_dtype)
        elif isinstance(model, GaussianIAF):
            if sample_dtype == torch.int8:
                raise ValueError("sample_dtype=torch.int8: only a GaussianWaveNet teacher on the cpp sampler has "
                                 "int8 weights; a GaussianIAF student runs in float32, float16 or bfloat16")
            if sample_dtype is not None and sample_dtype != p.dtype:
                model = model.to(sample_dtype)
                mel, noise = mel.to(sample_dtype), noise.to(sample_dtype)
            x = model.generate(mel, noise=noise, temperature=temperature)
        else:
            raise TypeError(f"model: expected a GaussianWaveNet or GaussianIAF, got {type(model).__name__}")
    return x[0].float().cpu()


# ----------------------------------------------------------------------------------------------
# the command

def add_parser(sub) -> None:
    """``clarinet vocode`` (registered by :func:`clarinet.cli.build_parser`)."""
    v = sub.add_parser("vocode", help="mel spectrogram or wav to audio with a teacher or student checkpoint",
                       description="Turn a log-mel spectrogram into audio with a trained vocoder: a GaussianWaveNet "
                                   "teacher (train-teacher; autoregressive, one sample at a time) or a GaussianIAF "
                                   "student (train-student; parallel). INPUT is an audio file (its log-mel is "
                                   "computed with the checkpoint's audio settings: copy synthesis) or a saved "
                                   "(n_mels, frames) tensor (.pt via torch.save, or .npy). The EMA weights are used "
                                   "when the checkpoint has them.")
    v.add_argument("input", metavar="INPUT", help="audio file (.wav ...) or mel tensor (.pt, .pth, .npy)")
    v.add_argument("--checkpoint", required=True, metavar="CKPT", help="GaussianWaveNet or GaussianIAF checkpoint")
    v.add_argument("-o", "--out", required=True, metavar="OUT.wav", help="16-bit wav to write")
    v.add_argument("--backend", choices=BACKEND_CHOICES, default="auto",
                   help="teacher: the autoregressive sampler (auto = cpp for float32 on the CPU, else cuda or triton "
                        "on a GPU); student: the ops' backend (not cpp) (default auto)")
    v.add_argument("--sample-dtype", choices=list(SAMPLE_DTYPES),
                   help="dtype generation runs in (default: the checkpoint's, float32); float16 halves the bytes "
                        "per sample of the C++ and GPU samplers; int8: the C++ sampler's int8 weights (teacher only)")
    v.add_argument("--temperature", type=float, default=1.0, help="noise scale (default 1)")
    v.add_argument("--seed", type=int, default=0, help="seed of the noise (default 0)")
    v.add_argument("--device", help="cpu, cuda ... (default cuda when available)")
    v.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    v.set_defaults(func=main)


def main(args) -> int:
    """Run ``clarinet vocode`` with parsed ``args``; returns the exit status (2 for a bad input)."""
    import time

    from .audio import save_audio

    def fail(msg) -> int:
        print(f"clarinet vocode: error: {msg}", file=sys.stderr)
        return 2

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    try:
        # the model's ops backend; cpp exists only as the teacher's sampler, given to generate below
        model, audio_cfg, info = load_vocoder(args.checkpoint, device=device,
                                              backend="auto" if args.backend == "cpp" else args.backend)
    except (FileNotFoundError, ValueError) as e:
        return fail(f"--checkpoint: {e}")
    if args.backend == "cpp" and info["kind"] != "GaussianWaveNet":
        return fail("--backend cpp: the C++ backend is the teacher's autoregressive sampler; a student runs on "
                    "auto, reference, triton or cuda")
    is_tensor = Path(args.input).suffix.lower() in MEL_SUFFIXES
    if not is_tensor and not info["mel_conditioned"]:
        return fail(f"--checkpoint: {args.checkpoint!r} is a student of a TextToWave model, conditioned on its "
                    "bridge-net rather than on log-mel frames: vocode a saved conditioning tensor, or use "
                    "`clarinet synthesize --student`")
    if not is_tensor and (audio_cfg.n_mels != model.n_mels or audio_cfg.hop_length != model.hop_length):
        return fail(f"--checkpoint: the model takes {model.n_mels} bands at hop {model.hop_length}, but its recorded "
                    f"audio settings give {audio_cfg.n_mels} bands at hop {audio_cfg.hop_length}")
    try:
        mel = input_mel(args.input, audio_cfg)
    except (FileNotFoundError, ValueError, ImportError) as e:
        return fail(f"INPUT: {e}")
    if mel.shape[0] != model.n_mels:
        return fail(f"INPUT: {args.input!r} has {mel.shape[0]} mel bands, the vocoder takes {model.n_mels}")
    if mel.shape[1] == 0:
        return fail(f"INPUT: {args.input!r} has no frames")
    sample_dtype = SAMPLE_DTYPES[args.sample_dtype] if args.sample_dtype else None
    t0 = time.perf_counter()
    try:
        audio = vocode(model, mel, backend=args.backend, sample_dtype=sample_dtype, temperature=args.temperature,
                       seed=args.seed, progress=args.progress)
    except (RuntimeError, ValueError, TypeError) as e:
        return fail(f"generation failed ({type(e).__name__}: {e})")
    seconds = time.perf_counter() - t0
    out = Path(args.out)
    if out.parent and not out.parent.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
    save_audio(os.fspath(out), audio, audio_cfg.sample_rate)
    dur = audio.numel() / audio_cfg.sample_rate
    print(f"wrote {out} ({dur:.2f} s at {audio_cfg.sample_rate} Hz from {mel.shape[1]} frames; {info['kind']} "
          f"step {info['step']}; {dur / max(seconds, 1e-9):.3g}x real time)")
    return 0
