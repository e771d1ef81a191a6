"""Op benchmarks shared by ``clarinet bench`` and the pytest-benchmark suites.

A case is (op, configuration, pass, dtype, shape). For each backend the case
first checks the backend's outputs (and, for "fwd+bwd", every gradient)
against the float32 reference on the same inputs, and only then times it.
Backends: "reference" (PyTorch eager), "compile" (torch.compile of the
reference), "triton", "cuda".
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform
import statistics
import subprocess
import time
from functools import partial
from typing import Callable

import torch

from . import __version__, _backend
from .ops import (
    gaussian_kl,
    gaussian_kl_ref,
    gaussian_nll,
    gaussian_nll_ref,
    iaf_flow_head,
    iaf_flow_head_ref,
    wavenet_layer,
    wavenet_layer_ref,
)
from .testing import mismatch

BENCH_BACKENDS = ("reference", "compile", "triton", "cuda", "cpp")
# training steps of the vocoders: loss forward + backward to every trainable parameter (no optimizer
# update), at the reference configurations (README, "Benchmarks"); the student's step includes the frozen `teacher`
STEP_PRESETS = {"teacher_step": ("teacher", "teacher-small"), "student_step": ("student",)}
# generation, real-time factors: autoregressive sampling of the teacher (free-running) and parallel
# sampling of the student (GaussianIAF.generate)
SAMPLING_PRESETS = {"ar_sampling": ("teacher-small", "teacher"), "iaf_sampling": ("student",)}
# per op and size: (samples at batch 1, (batch, samples) of the batch sweep). Batch 1 is one second
# of audio for AR (ten seconds for the IAF on a GPU, the length its target is stated for); the sweep uses shorter
# stretches so large batches stay affordable.
SAMPLING_SIZES = {
    "ar_sampling": {"full": (24000, ((4, 4800), (16, 4800), (64, 4800), (128, 2400))),
                    "small": (24000, ((2, 2400), (4, 2400))),
                    "tiny": (300, ((2, 300),))},
    "iaf_sampling": {"full": (240000, ((4, 24000), (16, 24000), (64, 24000))),
                     "small": (4800, ((2, 2400), (4, 2400))),
                     "tiny": (300, ((2, 300),))},
}
REFERENCE_SAMPLES = 1200  # the eager AR reference is slow: timed over this stretch, rate extrapolated
SAMPLE_RATE = 24000
OPS = ("wavenet_layer", "gaussian_nll", "gaussian_kl", "iaf_flow_head", *STEP_PRESETS, *SAMPLING_PRESETS)
PASSES = ("fwd", "fwd+bwd")

# layer shapes of the reference configurations (README, "Benchmarks"); C = 80 mel bands
CONFIGS = {
    "teacher": dict(R=128, G=256, S=128, C=80, K=2),
    "teacher-small": dict(R=64, G=128, S=128, C=80, K=2),
    "student": dict(R=64, G=128, S=64, C=80, K=3),
}
# (batch, samples): "full" is a training batch (8 x 1 s at 24 kHz); the
# smaller sizes keep CPU runs and CI smoke runs short
SIZES = {"full": (8, 24000), "small": (2, 4800), "tiny": (1, 96)}
# the same for the training steps (whole mel frames of 300 samples; the STFT loss needs > 1024)
STEP_SIZES = {"full": (8, 24000), "small": (1, 2400), "tiny": (1, 1500)}
DILATION = 8
LAYER_CONFIGS = ("teacher", "student")  # the layer cases (teacher-small differs from teacher only in width)


@dataclasses.dataclass
class Case:
    op: str
    config: str
    mode: str
    dtype: torch.dtype
    shape: dict
    flops: float  # floating-point operations of one call (multiply-add = 2)
    bytes: float  # fewest bytes a call must move to and from memory

    @property
    def name(self) -> str:
        dtype = str(self.dtype).replace("torch.", "")
        if self.op in SAMPLING_PRESETS:
            return f"{self.op}[{self.config},B={self.shape['B']},{dtype}]"
        return f"{self.op}[{self.config},{self.mode},{dtype}]"


def _layer_case(config: str, mode: str, dtype: torch.dtype, B: int, T: int, item: int) -> Case:
    c = CONFIGS[config]
    R, G, S, C, K = c["R"], c["G"], c["S"], c["C"], c["K"]
    shape = dict(B=B, T=T, R=R, G=G, S=S, C=C, K=K, dilation=DILATION)
    macs = G * R * K + G * C + (R + S) * G // 2  # per sample
    weights = (macs + G + R + S) * item
    io = B * T * (R + C + R + S) * item  # read x and h, write out and skip
    if mode == "fwd":
        return Case("wavenet_layer", config, mode, dtype, shape, 2.0 * B * T * macs, io + weights)
    # backward: recompute (1x), activation and input gradients (1x), weight gradients (1x);
    # it reads x, h, both upstream gradients and writes dx, dh
    bwd_io = B * T * (R + C + R + S + R + C) * item
    return Case("wavenet_layer", config, mode, dtype, shape, 8.0 * B * T * macs, io + bwd_io + 3 * weights)


def _loss_case(op: str, mode: str, dtype: torch.dtype, B: int, T: int, item: int) -> Case:
    n_in = 3 if op == "gaussian_nll" else 4
    n = B * T
    if mode == "fwd":  # read every input once
        return Case(op, "loss", mode, dtype, dict(B=B, T=T), 12.0 * n, n_in * n * item)
    # forward reads the inputs; backward reads them again and writes one gradient each
    return Case(op, "loss", mode, dtype, dict(B=B, T=T), 36.0 * n, 3 * n_in * n * item)


def _head_case(dtype: torch.dtype, B: int, T: int, item: int) -> Case:
    """The student's flow head + composition (inference): S x S and 2 x S products per sample."""
    S = CONFIGS["student"]["S"]
    flops = 2.0 * B * T * (S * S + 2 * S)
    return Case("iaf_flow_head", "student", "fwd", dtype, dict(B=B, T=T, S=S), flops,
                B * T * (S + 2) * item + (S * S + 3 * S + 2) * item)  # skips and z in, z out; weights


def _model_weights(model) -> int:
    """Weights of the model's WaveNet stacks: each is one multiply-add per sample in the forward."""
    from .models.wavenet import WaveNetStack

    return sum(p.numel() for m in model.modules() if isinstance(m, WaveNetStack) for p in m.parameters()
               if p.dim() > 1)


def _step_case(op: str, preset: str, B: int, T: int) -> Case:
    from .models import GaussianIAF, GaussianWaveNet

    teacher = _model_weights(GaussianWaveNet.from_preset("teacher" if op == "student_step" else preset))
    if op == "teacher_step":  # forward 2, backward 4 FLOPs per weight and sample
        flops = 6.0 * B * T * teacher
    else:  # student forward + backward, frozen teacher forward + backward to its input
        flops = 6.0 * B * T * _model_weights(GaussianIAF.from_preset(preset)) + 4.0 * B * T * teacher
    return Case(op, preset, "fwd+bwd", torch.float32, dict(B=B, T=T, preset=preset), flops, 0.0)


def cases(ops=OPS, configs=tuple(CONFIGS), modes=PASSES, dtype=torch.float16, size="full") -> list[Case]:
    B, T = SIZES[size]
    item = torch.empty((), dtype=dtype).element_size()
    out = []
    for op in ops:
        for mode in modes:
            if op in SAMPLING_PRESETS:
                if mode == "fwd":
                    # float32 and one 16-bit type (16-bit weights: half the bytes per generated sample)
                    T1, sweep = SAMPLING_SIZES[op][size]
                    low = dtype if dtype != torch.float32 else torch.float16
                    int8 = (torch.int8,) if op == "ar_sampling" else ()  # the cpp sampler's int8 weights
                    out += [Case(op, p, "fwd", dt, dict(B=b, T=t, preset=p), 0.0, 0.0)
                            for dt in (torch.float32, low, *int8)
                            for p in SAMPLING_PRESETS[op] if p in configs for b, t in ((1, T1), *sweep)]
            elif op in STEP_PRESETS:  # float32 training steps (a 16-bit model would need its own recipe)
                if mode == "fwd+bwd":
                    out += [_step_case(op, preset, *STEP_SIZES[size]) for preset in STEP_PRESETS[op] if preset in configs]
            elif op == "iaf_flow_head":
                if mode == "fwd" and "student" in configs:
                    out.append(_head_case(dtype, B, T, item))
            elif op == "wavenet_layer":
                out += [_layer_case(config, mode, dtype, B, T, item) for config in configs if config in LAYER_CONFIGS]
            else:  # the losses have no configuration
                out.append(_loss_case(op, mode, dtype, B, T, item))
    return out


def make_inputs(case: Case, device) -> dict:
    g = torch.Generator().manual_seed(0)

    def rnd(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g) * scale).to(device=device, dtype=case.dtype)

    s = case.shape
    if case.op in STEP_PRESETS:
        B, T = s["B"], s["T"]
        return dict(audio=rnd(B, T, scale=0.3), mel=rnd(B, 80, T // 300), noise=rnd(B, T))
    if case.op == "wavenet_layer":
        B, T, R, G, S, C, K = (s[k] for k in "B T R G S C K".split())
        return dict(
            x=rnd(B, R, T), w_dil=rnd(G, R, K, scale=(R * K) ** -0.5), b_dil=rnd(G, scale=0.1),
            w_res=rnd(R, G // 2, scale=(G // 2) ** -0.5), b_res=rnd(R, scale=0.1),
            w_skip=rnd(S, G // 2, scale=(G // 2) ** -0.5), b_skip=rnd(S, scale=0.1),
            h=rnd(B, C, T), w_cond=rnd(G, C, scale=C**-0.5),
        )
    if case.op == "iaf_flow_head":
        B, T, S = s["B"], s["T"], s["S"]
        return dict(skips=rnd(B, S, T, scale=2.0), w_out1=rnd(S, S, scale=S ** -0.5), b_out1=rnd(S, scale=0.1),
                    w_out2=rnd(2, S, scale=0.3 * S ** -0.5), b_out2=rnd(2, scale=0.1), z=rnd(B, T))
    B, T = s["B"], s["T"]
    n = 3 if case.op == "gaussian_nll" else 4
    return {f"in{i}": rnd(B, T) for i in range(n)}


def _call(case: Case, backend: str) -> Callable:
    """fn(**inputs) -> tuple of output tensors, for one backend."""
    if case.op == "wavenet_layer":
        d = case.shape["dilation"]
        if backend in ("reference", "compile"):
            f = partial(wavenet_layer_ref, dilation=d)
        else:
            f = partial(wavenet_layer, dilation=d, backend=backend)

        def layer(x, w_dil, b_dil, w_res, b_res, w_skip, b_skip, h, w_cond):
            return f(x, w_dil, b_dil, w_res, b_res, w_skip, b_skip, h=h, w_cond=w_cond)

        fn = layer
    elif case.op == "iaf_flow_head":
        f = iaf_flow_head_ref if backend in ("reference", "compile") else partial(iaf_flow_head, backend=backend)

        def head(**ins):
            return (f(*ins.values(), skip_scale=0.3),)

        fn = head
    else:
        ref = gaussian_nll_ref if case.op == "gaussian_nll" else gaussian_kl_ref
        fast = gaussian_nll if case.op == "gaussian_nll" else gaussian_kl
        f = ref if backend in ("reference", "compile") else partial(fast, backend=backend)

        def loss(**ins):
            return (f(*ins.values()),)

        fn = loss
    if backend == "compile":
        fn = torch.compile(fn)
    return fn


def _step_runner(case: Case, backend: str, inputs: dict) -> Callable[[], tuple]:
    """One training step's loss and the gradients of every trainable parameter."""
    from .losses import distillation_loss, teacher_loss
    from .models import GaussianIAF, GaussianWaveNet

    device = inputs["audio"].device
    model_backend = "reference" if backend in ("reference", "compile") else backend
    torch.manual_seed(0)  # the same weights for every backend
    if case.op == "teacher_step":
        model = GaussianWaveNet.from_preset(case.config, backend=model_backend).to(device)

        def loss_fn(audio, mel, noise):
            return teacher_loss(model, audio, mel)
    else:
        teacher = GaussianWaveNet.from_preset("teacher", backend=model_backend).to(device).eval()
        model = GaussianIAF.from_preset(case.config, backend=model_backend).to(device)

        def loss_fn(audio, mel, noise):
            return distillation_loss(model, teacher, audio, mel, noise=noise)["loss"]
    params = [p for p in model.parameters() if p.requires_grad]
    if backend == "compile":
        loss_fn = torch.compile(loss_fn)

    def run():
        loss = loss_fn(**inputs)
        # the last layer's residual output feeds nothing: its weights get zero gradients
        return (loss.detach(),) + torch.autograd.grad(loss, params, allow_unused=True, materialize_grads=True)
    return run


def runner(case: Case, backend: str, inputs: dict) -> Callable[[], tuple]:
    """A no-argument callable doing one timed iteration; returns outputs (+ gradients)."""
    if case.op in STEP_PRESETS:
        return _step_runner(case, backend, inputs)
    fn = _call(case, backend)
    if case.mode == "fwd":
        def run():
            with torch.no_grad():
                return tuple(fn(**inputs))
        return run
    leaves = {k: v.detach().requires_grad_() for k, v in inputs.items()}
    g = torch.Generator().manual_seed(1)

    def run():
        outs = fn(**leaves)
        if not hasattr(run, "grads"):
            run.grads = [torch.randn(o.shape, generator=g).to(o) for o in outs]
        grads = torch.autograd.grad(outs, list(leaves.values()), run.grads)
        return tuple(outs) + tuple(grads)
    return run


def unavailable(backend: str, case: Case, device: torch.device) -> str | None:
    """Why ``backend`` cannot be benchmarked here, or None."""
    if case.op in SAMPLING_PRESETS:
        if backend == "reference":
            return None if case.dtype == torch.float32 else "the reference runs in float32 (see the float32 case)"
        if case.op == "iaf_sampling":
            if backend == "cpp":
                return "iaf_sampling has no cpp backend (the student runs in parallel on the layer kernels)"
            if backend == "compile":
                # compiling the 60-layer student takes about a minute per batch size on these CPUs
                return None if device.type == "cuda" else "torch.compile of the student is benchmarked on a GPU only"
        elif backend == "compile":
            return "ar_sampling has no compile backend (one step per sample: nothing for torch.compile to fuse)"
        elif case.dtype == torch.int8 and backend != "cpp":
            return f"backend {backend!r} has no int8 weight path (int8: the cpp sampler)"
        elif backend == "cpp":
            if device.type != "cpu":
                return "the cpp sampler runs on CPU tensors"
            if case.dtype in (torch.float32, torch.float16, torch.int8):
                return None
            return f"the cpp sampler takes float32 or float16, not {case.dtype}"
        if device.type != "cuda":
            if backend == "triton":
                return "no GPU: Triton would run through its CPU interpreter, whose timings mean nothing"
            return "no GPU"
        # the student's generation needs every op it runs: the layers and the fused flow head
        ops = ("wavenet_layer", "iaf_flow_head") if case.op == "iaf_sampling" else ("wavenet_sample",)
        for op in ops:
            why = _backend.unsupported_reason(backend, op, device, case.dtype, needs_grad=False)
            if why is not None:
                return why
        return None
    if backend == "cpp":
        return f"{case.op} has no cpp backend"
    if backend in ("reference", "compile"):
        return None
    if device.type != "cuda":
        if backend == "triton":
            return "no GPU: Triton would run through its CPU interpreter, whose timings mean nothing"
        return "no GPU"
    needs_grad = case.mode == "fwd+bwd"
    return _backend.unsupported_reason(backend, case.op, device, case.dtype, needs_grad)


def time_fn(fn: Callable, device: torch.device, min_time: float = 0.5) -> dict:
    """Median and 20th/80th percentiles in milliseconds."""
    if device.type == "cuda":
        import triton.testing

        med, p20, p80 = triton.testing.do_bench(fn, quantiles=[0.5, 0.2, 0.8])
        return dict(median_ms=med, p20_ms=p20, p80_ms=p80, timer="triton.testing.do_bench")
    fn()  # warm-up
    times = []
    start = time.perf_counter()
    while len(times) < 3 or (time.perf_counter() - start < min_time and len(times) < 50):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    q = statistics.quantiles(times, n=10, method="inclusive") if len(times) > 1 else [times[0]] * 9
    return dict(median_ms=statistics.median(times), p20_ms=q[1], p80_ms=q[7], timer=f"perf_counter x{len(times)}")


def check(case: Case, backend: str, inputs: dict, fn: Callable, ref_out: tuple) -> str | None:
    """None when every output and gradient of ``fn`` matches the reference's."""
    outs = fn()
    for i, (o, r) in enumerate(zip(outs, ref_out)):
        why = mismatch(o, r, case.dtype)
        if why is not None:
            return f"output {i}: {why}"
    return None


def sampling_setup(case: Case, device: torch.device) -> dict:
    """Model, conditioning, noise, and the float32 reference's outputs to check every backend against.

    AR (``ar_sampling``): the packed teacher, its upsampled ``h``, and the reference's teacher-forced
    mean and log-scale over a short stretch (free-running samples diverge chaotically with rounding,
    so teacher forcing is the exact check). IAF (``iaf_sampling``): the student's generated audio.
    """
    from .models import GaussianIAF, GaussianWaveNet
    from .ops.wavenet_sample import pack_wavenet, wavenet_sample

    B, T = case.shape["B"], case.shape["T"]
    torch.manual_seed(0)
    cls = GaussianIAF if case.op == "iaf_sampling" else GaussianWaveNet
    model = cls.from_preset(case.config).to(device).eval()
    g = torch.Generator().manual_seed(0)
    mel = torch.randn(B, model.n_mels, T // model.hop_length, generator=g).to(device)
    noise = torch.randn(B, T, generator=g).to(device)
    setup = dict(model=model, mel=mel, noise=noise, dtype=case.dtype, flops_per_sample=2.0 * _model_weights(model))
    if case.op == "iaf_sampling":
        model.backend = "reference"
        with torch.no_grad():
            setup["ref"] = model.generate(mel, noise)
        return setup
    with torch.no_grad():
        h = model.upsampler(mel)
    packed = pack_wavenet(model)
    short = min(T, REFERENCE_SAMPLES)
    forced = torch.randn(B, short, generator=g).to(device) * 0.3
    ref = wavenet_sample(packed, h[..., :short], teacher_forcing=forced, backend="reference")
    return dict(setup, packed=packed, h=h, forced=forced, ref=ref, short=short)


def _run_dtype(dtype: torch.dtype, backend: str) -> torch.dtype:
    """The dtype a generation backend runs a case of ``dtype`` in: the references in float32."""
    return torch.float32 if backend in ("reference", "compile") else dtype


def _iaf_generator(setup: dict, backend: str) -> Callable:
    """The student's generation on ``backend`` in the case's dtype (``compile``: torch.compile of the reference)."""
    import copy

    dtype = _run_dtype(setup["dtype"], backend)
    model = copy.deepcopy(setup["model"]).to(dtype)
    model.backend = "reference" if backend in ("reference", "compile") else backend
    mel, noise = setup["mel"].to(dtype), setup["noise"].to(dtype)
    if backend == "compile":
        compiled = torch.compile(model)

        def run():
            with torch.no_grad():
                return compiled(noise, mel)[0]
        return run

    def run():
        with torch.no_grad():
            return model.generate(mel, noise)
    return run


def sampling_check(setup: dict, backend: str) -> str | None:
    """None when ``backend`` matches the float32 reference (AR: teacher-forced mean and log-scale)."""
    from .ops.wavenet_sample import wavenet_sample

    dtype = _run_dtype(setup["dtype"], backend)
    if "packed" not in setup:  # IAF
        why = mismatch(_iaf_generator(setup, backend)(), setup["ref"], dtype)
        return None if why is None else f"audio: {why}"
    short = setup["short"]
    dtype, weights = _int8_split(dtype)
    got = wavenet_sample(setup["packed"], setup["h"][..., :short].to(dtype), teacher_forcing=setup["forced"].to(dtype),
                         backend=backend, weight_dtype=weights)
    if weights is not None:  # int8: the documented error bound, not a float tolerance
        from ._quant import INT8_BOUND, int8_error, within_bound

        why = within_bound(int8_error(*got, *setup["ref"]), INT8_BOUND)
        return None if why is None else f"teacher-forced int8 error: {why}"
    for name, o, r in zip(("mean", "log_scale"), got, setup["ref"]):
        why = mismatch(o, r, dtype)
        if why is not None:
            return f"teacher-forced {name}: {why}"
    return None


def sampling_fn(setup: dict, backend: str, n: int) -> Callable:
    """Generation of the first ``n`` samples (AR: free-running) on ``backend``."""
    from .ops.wavenet_sample import wavenet_sample

    if "packed" not in setup:
        return _iaf_generator(setup, backend)
    dtype, weights = _int8_split(_run_dtype(setup["dtype"], backend))
    packed, h, noise = setup["packed"], setup["h"][..., :n].to(dtype), setup["noise"][:, :n].to(dtype)
    return lambda: wavenet_sample(packed, h, noise, backend=backend, weight_dtype=weights)


def _int8_split(dtype: torch.dtype) -> tuple:
    """(dtype of h and noise, weight_dtype) of a generation case: int8 weights take float32 inputs."""
    return (torch.float32, torch.int8) if dtype == torch.int8 else (dtype, None)


def _roofline_fields(case: Case, backend: str, rate: float, config: dict) -> dict:
    """The counts per sample (clarinet.roofline) and, for the cpp sampler, the fraction of the
    core's peak multiply-add rate it reaches (int8: vpdpbusd; float: float32 FMA)."""
    from . import roofline

    c = config  # the packed model's (PackedWaveNet.config)
    counts = roofline.sampler_counts(c["R"], c["G"], c["S"], c["C"], c["K"], c["layers"], case.dtype)
    out = dict(macs_per_sample=counts["macs"], weight_bytes_per_sample=counts["weight_bytes"])
    if backend == "cpp":
        threads = min(case.shape["B"], torch.get_num_threads())
        out["core_fraction"] = roofline.core_fraction(rate * counts["macs"], case.dtype, roofline.measure(), threads)
    return out


def _run_sampling_case(case: Case, backends, device: torch.device, min_time: float) -> list[dict]:
    """Generation rate per backend, after a check against the float32 reference.

    The AR reference (eager, one sample at a time) is timed over ``REFERENCE_SAMPLES`` samples and
    its rate extrapolated; the other backends generate all ``T`` samples.
    """
    B, T = case.shape["B"], case.shape["T"]
    setup = sampling_setup(case, device)
    rows = []
    for backend in backends:
        slow = backend == "reference" and case.op == "ar_sampling"
        n = setup["short"] if slow else T
        row = dict(case=case.name, op=case.op, config=case.config, mode=case.mode,
                   dtype=str(_run_dtype(case.dtype, backend)).replace("torch.", ""), shape=dict(case.shape, T=n), backend=backend)
        why = unavailable(backend, case, device)
        if why is not None:
            rows.append(dict(row, status="skipped", reason=why))
            continue
        try:
            wrong = sampling_check(setup, backend)
        except Exception as exc:  # reported, not fatal to the run
            rows.append(dict(row, status="error", reason=f"{type(exc).__name__}: {exc}"))
            continue
        if wrong is not None:
            rows.append(dict(row, status="wrong", reason=wrong))
            continue
        t = time_fn(sampling_fn(setup, backend, n), device, min_time)
        rate = B * n / (t["median_ms"] * 1e-3)
        fps = setup["flops_per_sample"]
        note = f"timed over {n} samples, rate extrapolated" if n < T else ""
        if backend == "cpp" and B > 1:
            note = f"{min(B, torch.get_num_threads())} threads"
        extra = _roofline_fields(case, backend, rate, setup["packed"].config) if case.op == "ar_sampling" else {}
        rows.append(dict(row, status="ok", **t, gflops=fps * rate * 1e-9, gbps=0.0, samples_per_s=rate,
                         x_real_time=rate / (B * SAMPLE_RATE), flops=fps * B * n, bytes=0.0, note=note, **extra))
    return rows


def run_case(case: Case, backends, device: torch.device, min_time: float = 0.5) -> list[dict]:
    if case.op in SAMPLING_PRESETS:
        return _run_sampling_case(case, backends, device, min_time)
    inputs = make_inputs(case, device)
    ref_fn = runner(case, "reference", {k: v.float() for k, v in inputs.items()})
    ref_out = ref_fn()
    rows = []
    for backend in backends:
        row = dict(case=case.name, op=case.op, config=case.config, mode=case.mode,
                   dtype=str(case.dtype).replace("torch.", ""), shape=case.shape, backend=backend)
        why = unavailable(backend, case, device)
        if why is not None:
            rows.append(dict(row, status="skipped", reason=why))
            continue
        try:
            fn = runner(case, backend, inputs)
            wrong = check(case, backend, inputs, fn, ref_out)
        except Exception as exc:  # a backend that fails here is reported, not fatal to the run
            rows.append(dict(row, status="error", reason=f"{type(exc).__name__}: {exc}"))
            continue
        if wrong is not None:
            rows.append(dict(row, status="wrong", reason=wrong))
            continue
        t = time_fn(fn, device, min_time)
        sec = t["median_ms"] * 1e-3
        samples = case.shape["B"] * case.shape["T"]
        rows.append(dict(row, status="ok", **t, gflops=case.flops / sec * 1e-9, gbps=case.bytes / sec * 1e-9,
                         samples_per_s=samples / sec, flops=case.flops, bytes=case.bytes))
    return rows


def environment(device: torch.device) -> dict:
    env = dict(
        clarinet=__version__, torch=torch.__version__, python=platform.python_version(),
        time=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        commit=_git_commit(), device_type=device.type,
    )
    try:
        import triton

        env["triton"] = triton.__version__
    except ImportError:
        env["triton"] = None
    if device.type == "cuda":
        env["device"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda
    else:
        env["device"] = _cpu_name()
        from . import roofline

        env["roofline"] = roofline.measure()  # one core's peak float32 FMA and int8 vpdpbusd rates
    env.update(machine_load())  # threads, CPUs available, load average (on a GPU machine too)
    return env


def machine_load() -> dict:
    """``threads`` (intra-op threads now), ``cpus_available`` (this process's CPUs) and ``load_avg``
    (1, 5 and 15-minute load averages): a CPU timing means little without them."""
    from ._threads import available_cpus

    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        load = None
    return dict(threads=torch.get_num_threads(), cpus_available=available_cpus(), load_avg=load)


#: a case whose 20th-80th percentile range exceeds this fraction of its median is reported as noisy
WIDE_SPREAD = 0.25


def load_warning(load: dict) -> str | None:
    """A warning when the 1-minute load average leaves fewer free CPUs than the threads in use."""
    if not load.get("load_avg"):
        return None
    busy, cpus, threads = load["load_avg"][0], load["cpus_available"], load["threads"]
    if busy + threads <= cpus + 0.5:
        return None
    return (f"the machine is busy: load average {busy:.1f} on {cpus} CPUs with {threads} threads of ours; CPU "
            f"timings will be slow and noisy (run on an idle machine, or with --threads {max(1, int(cpus - busy))})")


def spread_warnings(rows, limit: float = WIDE_SPREAD) -> list[str]:
    """One line per timed row whose (p80 - p20) / median exceeds ``limit``."""
    out = []
    for r in rows:
        if r.get("status") == "ok" and r.get("median_ms"):
            spread = (r["p80_ms"] - r["p20_ms"]) / r["median_ms"]
            if spread > limit:
                out.append(f"{r['case']} {r['backend']}: spread {spread:.0%} of the median "
                           f"(p20 {r['p20_ms']:.3g} ms, p80 {r['p80_ms']:.3g} ms): not a stable timing")
    return out


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip() + f" ({os.cpu_count()} CPUs)"
    except OSError:
        pass
    return platform.processor() or "cpu"


def _git_commit() -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if out.returncode != 0:
        return "unknown"
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def tuning_report() -> list[dict]:
    """What Triton autotuning cost in this process, per kernel and key (``clarinet.kernels._tuning``):
    configs kept and pruned, the best one, seconds of compiling and benchmarking. Empty without Triton."""
    try:
        from clarinet.kernels._tuning import tuning_report as report
    except ImportError:
        return []
    return report()


def write_record(path: str, env: dict, rows: list[dict]) -> None:
    """The JSON record: ``environment``, ``results`` (one dict per case and backend) and ``tuning``
    (:func:`tuning_report`)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(dict(environment=env, results=rows, tuning=tuning_report()), f, indent=1)


def _ref_key(r: dict) -> tuple:
    """Rows compared with the same reference row: a generation case's reference runs in float32 only,
    so every dtype of (op, model, batch) is compared with it; other cases by name."""
    if r["op"] in SAMPLING_PRESETS:
        return (r["op"], r["config"], r["shape"]["B"])
    return (r["case"],)


def markdown_table(rows: list[dict]) -> str:
    """Markdown table: one line per (case, backend) that ran, speed-up against eager."""
    eager = {_ref_key(r): r["samples_per_s"] for r in rows if r["backend"] == "reference" and r["status"] == "ok"}
    lines = ["| case | shape | backend | median ms (p20-p80) | GFLOP/s | GB/s | samples/s | vs eager |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        if r["status"] != "ok":
            continue
        shape = ",".join(f"{k}={v}" for k, v in r["shape"].items())
        speedup = f"{r['samples_per_s'] / eager[_ref_key(r)]:.2f}x" if _ref_key(r) in eager else "-"
        gbps = f"{r['gbps']:.2f}" if r["bytes"] else "-"
        rate = f"{r['samples_per_s']:.3g}"
        if "x_real_time" in r:
            rate += f" ({r['x_real_time']:.3g}x real time{'; ' + r['note'] if r['note'] else ''})"
        lines.append(f"| {r['case']} | {shape} | {r['backend']} | {r['median_ms']:.3f} "
                     f"({r['p20_ms']:.3f}-{r['p80_ms']:.3f}) | {r['gflops']:.1f} | {gbps} | {rate} | {speedup} |")
    return "\n".join(lines)


def rtf_table(rows: list[dict]) -> str:
    """Markdown table of the generation rows: samples/s, x real time per stream, ratio to the reference."""
    ok = [r for r in rows if r["status"] == "ok" and r["op"] in SAMPLING_PRESETS]
    if not ok:
        return ""
    ref = {_ref_key(r): r["samples_per_s"] for r in ok if r["backend"] == "reference"}
    lines = [f"| generation | batch | samples | backend | dtype | samples/s | x real time (per stream, {SAMPLE_RATE // 1000} kHz)"
             " | vs reference |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in sorted(ok, key=lambda r: (r["op"], r["config"], r["shape"]["B"], r["backend"] != "reference",
                                       r["backend"], r["dtype"])):
        vs = f"{r['samples_per_s'] / ref[_ref_key(r)]:.1f}x" if _ref_key(r) in ref else "-"
        note = f" ({r['note']})" if r.get("note") else ""
        if r.get("core_fraction") is not None:
            note += f" ({100 * r['core_fraction']:.0f}% of core peak)"
        lines.append(f"| {r['op']} {r['config']} | {r['shape']['B']} | {r['shape']['T']} | {r['backend']}{note} | "
                     f"{r['dtype']} | {r['samples_per_s']:.3g} | {r['x_real_time']:.3g} | {vs} |")
    return "\n".join(lines)


def plot_sampling(rows: list[dict], path: str, title: str = "") -> str | None:
    """PNG of samples/s against batch size, one line per (model, backend); None when written,
    else why not (no generation rows, or matplotlib missing: ``pip install clarinet[plot]``)."""
    ok = [r for r in rows if r["status"] == "ok" and r["op"] in SAMPLING_PRESETS]
    if not ok:
        return "no generation rows to plot"
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install 'clarinet[plot]')"
    ops = sorted({r["op"] for r in ok})
    fig, axes = plt.subplots(1, len(ops), figsize=(6.5 * len(ops), 4.5), squeeze=False)
    for ax, op in zip(axes[0], ops):
        lines: dict = {}
        for r in ok:
            if r["op"] == op:
                lines.setdefault((r["config"], r["backend"], r["dtype"]), []).append((r["shape"]["B"], r["samples_per_s"]))
        for (config, backend, dtype), pts in sorted(lines.items()):
            pts.sort()
            ax.plot([b for b, _ in pts], [v for _, v in pts], marker="o", label=f"{config} {backend} {dtype}")
        ax.axhline(SAMPLE_RATE, color="gray", linestyle="--", linewidth=1, label="real time, one stream")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch (utterances)")
        ax.set_ylabel("samples/s (all streams)")
        ax.set_title(op)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None
