"""Benchmark cases: the reference configurations, shapes, FLOP and byte counts, and their inputs."""
from __future__ import annotations

import dataclasses

import torch



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
    from ..models.wavenet import WaveNetStack

    return sum(p.numel() for m in model.modules() if isinstance(m, WaveNetStack) for p in m.parameters()
               if p.dim() > 1)


def _step_case(op: str, preset: str, B: int, T: int) -> Case:
    from ..models import GaussianIAF, GaussianWaveNet

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


#: ``clarinet bench --quick`` times the AR presets over this many samples (0.25 s) instead of 1 s: the
#: rate is the loop's steady state either way, and the run stays well under a minute on a 2-core CPU
QUICK_AR_SAMPLES = 6000


def headline_cases(dtype: torch.dtype, size: str, configs=tuple(CONFIGS), quick: bool = False) -> list[Case]:
    """The generation cases of the headline: batch 1 of every sampling preset, in every dtype the
    generation cases have; ``quick``: the AR cases over :data:`QUICK_AR_SAMPLES` samples."""
    out = [c for c in cases(ops=tuple(SAMPLING_PRESETS), configs=configs, modes=("fwd",), dtype=dtype, size=size)
           if c.shape["B"] == 1]
    if quick:
        out = [dataclasses.replace(c, shape=dict(c.shape, T=min(c.shape["T"], QUICK_AR_SAMPLES)))
               if c.op == "ar_sampling" else c for c in out]
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
