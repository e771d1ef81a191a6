"""The serving bench row: a batch of utterances of mixed lengths against generating them one by one.

One zero-padded batch through ``GaussianWaveNet.generate(frame_lengths=...)`` (finished rows leave
the batch; the C++ loop also stops each row at its end and hands rows to threads longest first)
against the same utterances generated one at a time, after checking that each row of the batch
equals its utterance alone (same noise); and, as a cost baseline, the padded batch without
``frame_lengths`` (every row run to the longest). Used by ``clarinet bench`` when it runs
``ar_sampling``.
"""
from __future__ import annotations

import torch

from ..testing import mismatch
from .cases import SAMPLE_RATE, _model_weights
from .run import _profiled, time_fn

#: utterance lengths in seconds per bench size: 1-10 s on a GPU ("full"), shorter on the CPU
MIXED_SECONDS = {"full": (1, 2, 3, 4, 5, 6, 7, 8, 9, 10), "small": (0.1, 0.2, 0.3, 0.4), "tiny": (0.0125, 0.025)}


def mixed_length_rows(preset: str, size: str, device: torch.device, backends, min_time: float = 0.5,
                      profile_dir: str | None = None) -> list[dict]:
    """Two rows (``batch`` and ``one by one``) of ``preset``'s teacher at the ``size``'s lengths on the
    fastest sampler backend for ``device`` (``auto``), when it is one of ``backends``; else one
    skipped row. ``profile_dir``: a torch.profiler trace of each, as for the other cases."""
    from ..models import GaussianWaveNet
    from ..ops.wavenet_sample import pack_wavenet, resolve_backend

    torch.manual_seed(0)
    model = GaussianWaveNet.from_preset(preset).to(device).eval()
    hop = model.hop_length
    frames = [max(1, round(s * SAMPLE_RATE / hop)) for s in MIXED_SECONDS[size]]
    g = torch.Generator().manual_seed(0)
    mel = torch.randn(len(frames), model.n_mels, max(frames), generator=g).to(device)
    noise = torch.randn(len(frames), max(frames) * hop, generator=g).to(device)
    lengths = torch.tensor(frames)
    backend = resolve_backend(pack_wavenet(model), mel, "auto")
    shape = dict(B=len(frames), seconds="+".join(f"{s:g}" for s in MIXED_SECONDS[size]), preset=preset)
    base = dict(case=f"ar_mixed_lengths[{preset},B={len(frames)},float32]", op="ar_mixed_lengths", config=preset,
                mode="fwd", dtype="float32", shape=shape)
    if backend not in backends:
        return [dict(base, backend=backend, status="skipped", reason=f"the fastest sampler here is {backend!r}, "
                                                                       "not among --backends")]

    def batch():
        return model.generate(mel, noise, frame_lengths=lengths, progress=False, backend=backend)

    def padded():  # the cost baseline: every row run to the longest (no frame_lengths; not checked)
        return model.generate(mel, noise, progress=False, backend=backend)

    def one_by_one():
        return [model.generate(mel[b:b + 1, :, :f], noise[b:b + 1, :f * hop], progress=False, backend=backend)
                for b, f in enumerate(frames)]

    together, alone = batch(), one_by_one()
    for b, f in enumerate(frames):
        why = mismatch(together[b:b + 1, :f * hop], alone[b], torch.float32)
        if why is not None:
            return [dict(base, backend=backend, status="wrong", reason=f"row {b} against its utterance alone: {why}")]
    total = sum(frames) * hop
    fps = 2.0 * _model_weights(model)
    rows = []
    for how, fn in (("batch", batch), ("one by one", one_by_one), ("padded, no frame_lengths", padded)):
        t = time_fn(fn, device, min_time)
        t.update(_profiled(fn, profile_dir, base["case"], f"{backend} ({how})", device))
        rate = total / (t["median_ms"] * 1e-3)
        note = f"{how}: {len(frames)} utterances of {shape['seconds']} s"
        if backend == "cpp":
            note += f", {torch.get_num_threads()} threads"
        rows.append(dict(base, backend=f"{backend} ({how})", status="ok", **t, gflops=fps * rate * 1e-9, gbps=0.0,
                         samples_per_s=rate, x_real_time=rate / SAMPLE_RATE, flops=fps * total, bytes=0.0,
                         note=note))
    rows[0]["note"] += (f"; {rows[1]['median_ms'] / rows[0]['median_ms']:.2f}x the speed of one by one, "
                        f"{rows[2]['median_ms'] / rows[0]['median_ms']:.2f}x of the padded batch")
    rows[2]["note"] += " (cost baseline: every row to the longest, its tail not cut, so not checked)"
    return rows
