"""Running a case: the callables per backend, why a backend cannot run here, the check against
the float32 reference, timing, and the generation (sampling) cases."""
from __future__ import annotations

import statistics
import time
from functools import partial
from typing import Callable

import torch

from .. import _backend
from ..ops import (gaussian_kl, gaussian_kl_ref, gaussian_nll, gaussian_nll_ref, iaf_flow_head, iaf_flow_head_ref,
                   wavenet_layer, wavenet_layer_ref)
from ..testing import mismatch
from .cases import REFERENCE_SAMPLES, SAMPLE_RATE, SAMPLING_PRESETS, STEP_PRESETS, Case, _model_weights, make_inputs


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
    from ..losses import distillation_loss, teacher_loss
    from ..models import GaussianIAF, GaussianWaveNet

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
    from ..models import GaussianIAF, GaussianWaveNet
    from ..ops.wavenet_sample import pack_wavenet, wavenet_sample

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
    from ..ops.wavenet_sample import wavenet_sample

    dtype = _run_dtype(setup["dtype"], backend)
    if "packed" not in setup:  # IAF
        why = mismatch(_iaf_generator(setup, backend)(), setup["ref"], dtype)
        return None if why is None else f"audio: {why}"
    short = setup["short"]
    dtype, weights = _int8_split(dtype)
    got = wavenet_sample(setup["packed"], setup["h"][..., :short].to(dtype), teacher_forcing=setup["forced"].to(dtype),
                         backend=backend, weight_dtype=weights)
    if weights is not None:  # int8: the documented error bound, not a float tolerance
        from .._quant import INT8_BOUND, int8_error, within_bound

        why = within_bound(int8_error(*got, *setup["ref"]), INT8_BOUND)
        return None if why is None else f"teacher-forced int8 error: {why}"
    for name, o, r in zip(("mean", "log_scale"), got, setup["ref"]):
        why = mismatch(o, r, dtype)
        if why is not None:
            return f"teacher-forced {name}: {why}"
    return None


def sampling_fn(setup: dict, backend: str, n: int) -> Callable:
    """Generation of the first ``n`` samples (AR: free-running) on ``backend``."""
    from ..ops.wavenet_sample import wavenet_sample

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
    from .. import roofline

    c = config  # the packed model's (PackedWaveNet.config)
    counts = roofline.sampler_counts(c["R"], c["G"], c["S"], c["C"], c["K"], c["layers"], case.dtype)
    out = dict(macs_per_sample=counts["macs"], weight_bytes_per_sample=counts["weight_bytes"])
    if backend == "cpp":
        threads = min(case.shape["B"], torch.get_num_threads())
        out["core_fraction"] = roofline.core_fraction(rate * counts["macs"], case.dtype, roofline.measure(), threads)
    return out


def _run_sampling_case(case: Case, backends, device: torch.device, min_time: float,
                       profile_dir: str | None = None) -> list[dict]:
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
        fn = sampling_fn(setup, backend, n)
        t = time_fn(fn, device, min_time)
        t.update(_profiled(fn, profile_dir, case.name, backend, device))
        rate = B * n / (t["median_ms"] * 1e-3)
        fps = setup["flops_per_sample"]
        note = f"timed over {n} samples, rate extrapolated" if n < T else ""
        if backend == "cpp" and B > 1:
            note = f"{min(B, torch.get_num_threads())} threads"
        extra = _roofline_fields(case, backend, rate, setup["packed"].config) if case.op == "ar_sampling" else {}
        rows.append(dict(row, status="ok", **t, gflops=fps * rate * 1e-9, gbps=0.0, samples_per_s=rate,
                         x_real_time=rate / (B * SAMPLE_RATE), flops=fps * B * n, bytes=0.0, note=note, **extra))
    return rows


def _profiled(fn: Callable, profile_dir: str | None, case: str, backend: str, device) -> dict:
    """With ``profile_dir``: one more call of ``fn`` under torch.profiler, written as a Chrome trace
    (``{"trace": path}``); else nothing."""
    if profile_dir is None:
        return {}
    from ..profiling import trace, trace_path

    return dict(trace=trace(fn, trace_path(profile_dir, case, backend), device, label=f"clarinet.bench {case} {backend}"))


def run_case(case: Case, backends, device: torch.device, min_time: float = 0.5,
             profile_dir: str | None = None) -> list[dict]:
    """Rows of ``case`` per backend; ``profile_dir``: also a torch.profiler trace per timed backend."""
    if case.op in SAMPLING_PRESETS:
        return _run_sampling_case(case, backends, device, min_time, profile_dir)
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
        t.update(_profiled(fn, profile_dir, case.name, backend, device))
        sec = t["median_ms"] * 1e-3
        samples = case.shape["B"] * case.shape["T"]
        rows.append(dict(row, status="ok", **t, gflops=case.flops / sec * 1e-9, gbps=case.bytes / sec * 1e-9,
                         samples_per_s=samples / sec, flops=case.flops, bytes=case.bytes))
    return rows
