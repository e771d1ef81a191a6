"""Incremental (autoregressive) sampling of a Gaussian WaveNet (:class:`~clarinet.models.GaussianWaveNet`).

- :func:`wavenet_sample`: the sampling loop over the upsampled conditioning ``h`` (free-running or
  teacher-forced) on a :class:`PackedWaveNet` (:func:`pack_wavenet`, :mod:`clarinet.ops.wavenet_pack`);
  ``backend="cpp"`` runs the whole loop in ``clarinet._C`` (no Python per sample, GIL released),
  ``"cuda"`` / ``"triton"`` on the GPU, ``"reference"`` the Python stepper below.
- :func:`wavenet_sample_ref`: the reference, one sample at a time in plain torch ops over the
  model's own weights (:class:`_StackStepper`), in the model's dtype.

Equivalent to ``GaussianWaveNet.generate`` / ``incremental_forward`` after the upsampler
(reference: :func:`wavenet_sample_ref`).
"""
from __future__ import annotations

import math
import os
from typing import Optional

import torch
import torch.nn.functional as F

from .wavenet_layer import SQRT_HALF
from .wavenet_pack import PackedWaveNet, SamplerState, WaveNetWeights, pack_wavenet, sampler_state

# PackedWaveNet, SamplerState, pack_wavenet, sampler_state live in .wavenet_pack; named here too, where
# they were first defined (``from clarinet.ops.wavenet_sample import pack_wavenet`` keeps working)
__all__ = ["PackedWaveNet", "SamplerState", "pack_wavenet", "sampler_state", "wavenet_sample", "wavenet_sample_ref"]

_BACKENDS = ("auto", "reference", "cpp", "cuda", "triton")
#: conditioning chunk per backend when ``chunk=None``. cpp: 64 steps keep the projected conditioning
#: (layers x chunk x G floats: 655 KB for teacher-small) in L2; at 1024 it was 10 MB and the loop
#: about 3-6% slower on a 2-core AMD EPYC (1 MiB L2 per core). The GPU samplers run a chunk per
#: launch, so theirs is long.
DEFAULT_CHUNK = {"reference": 1024, "cpp": 64, "cuda": 1024, "triton": 1024}
#: float types the GPU samplers take for ``h`` (the weights are cast to it; accumulation is float32)
GPU_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _check_state(packed, state, h) -> None:
    if state is None:
        return
    if not isinstance(state, SamplerState):
        raise TypeError(f"state: expected a SamplerState (from sampler_state), got {type(state).__name__}")
    b = state.buffers
    want = (h.shape[0], packed.state_size)
    if not isinstance(b, torch.Tensor) or tuple(b.shape) != want:
        raise ValueError(f"state: expected buffers of shape {want} (sampler_state(packed, {h.shape[0]})), got "
                         f"{tuple(b.shape) if isinstance(b, torch.Tensor) else type(b).__name__}")
    if b.dtype not in (torch.float32, h.dtype):
        raise TypeError(f"state: expected float32 buffers (or h's dtype {h.dtype}), got {b.dtype}")
    if b.device != h.device:
        raise ValueError(f"state: expected buffers on {h.device} (h's device), got {b.device}")
    if not b.is_contiguous():
        raise ValueError("state: expected contiguous buffers")
    if isinstance(state.step, bool) or not isinstance(state.step, int) or state.step < 0:
        raise ValueError(f"state: expected step an int >= 0, got {state.step!r}")


def _check_inputs(packed, h, noise, teacher_forcing, temperature, log_scale_min, chunk):
    if not isinstance(packed, PackedWaveNet):
        raise TypeError(f"packed: expected a PackedWaveNet (from pack_wavenet), got {type(packed).__name__}")
    if not isinstance(h, torch.Tensor):
        raise TypeError(f"h: expected a torch.Tensor, got {type(h).__name__}")
    if not h.dtype.is_floating_point:
        raise TypeError(f"h: expected a floating-point tensor, got {h.dtype}")
    if h.dim() != 3 or h.shape[1] != packed.config["C"]:
        raise ValueError(f"h: expected shape (B, {packed.config['C']}, T) (the upsampled conditioning), "
                         f"got {tuple(h.shape)}")
    B, _, T = h.shape
    for name, t in (("noise", noise), ("teacher_forcing", teacher_forcing)):
        if t is None:
            continue
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
        if t.dtype != h.dtype:
            raise TypeError(f"{name}: expected dtype {h.dtype} (h's), got {t.dtype}")
        if t.device != h.device:
            raise ValueError(f"{name}: expected device {h.device} (h's), got {t.device}")
        if tuple(t.shape) != (B, T):
            raise ValueError(f"{name}: expected shape ({B}, {T}), got {tuple(t.shape)}")
    if noise is not None and teacher_forcing is not None:
        raise ValueError("noise: not used with teacher_forcing (pass one of them)")
    if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1):
        raise ValueError(f"chunk: expected None or an int >= 1, got {chunk!r}")
    try:
        temperature, log_scale_min = float(temperature), float(log_scale_min)
    except (TypeError, ValueError):
        raise TypeError("temperature, log_scale_min: expected floats") from None
    return B, T, temperature, log_scale_min


def _gpu_reason(backend: str, packed: PackedWaveNet, h: torch.Tensor) -> Optional[str]:
    """Why the GPU sampler ``backend`` cannot take this model and ``h``, or None when it can.

    Beyond device and dtype, a launcher module may define ``wavenet_sample_unsupported(packed, h)``
    (e.g. the persistent CUDA kernel when the model's weights do not fit on chip on this GPU).
    """
    from .._backend import load, unsupported_reason

    if h.dtype not in GPU_DTYPES:
        return f"h: backend {backend!r} takes float32, float16 or bfloat16, got {h.dtype}"
    reason = unsupported_reason(backend, "wavenet_sample", h.device, h.dtype, needs_grad=False)
    if reason is None:
        check = getattr(load(backend, "wavenet_sample"), "wavenet_sample_unsupported", None)
        reason = check(packed, h) if check is not None else None
    return reason


def resolve_backend(packed: PackedWaveNet, h: torch.Tensor, backend: str) -> str:
    """The sampler backend that runs ``h``: ``backend``, or for ``"auto"`` the ``CLARINET_BACKEND``
    environment variable when it names a sampler backend, else the fastest one for ``h``'s device
    and dtype (see :func:`wavenet_sample`)."""
    if backend not in _BACKENDS:
        raise ValueError(f"backend: expected one of {_BACKENDS}, got {backend!r}")
    if backend == "auto":
        env = os.environ.get("CLARINET_BACKEND", "auto")
        backend = env if env in _BACKENDS else "auto"  # a backend of the other ops: not one of ours
    return _pick_auto(packed, h) if backend == "auto" else backend


def _pick_auto(packed: PackedWaveNet, h: torch.Tensor) -> str:
    if h.device.type == "cpu":
        return "cpp" if h.dtype in (torch.float32, torch.float16) else "reference"
    if h.device.type == "cuda":
        for candidate in ("cuda", "triton"):
            if _gpu_reason(candidate, packed, h) is None:
                return candidate
    return "reference"


def wavenet_sample(packed: PackedWaveNet, h: torch.Tensor, noise: Optional[torch.Tensor] = None, *,
                   teacher_forcing: Optional[torch.Tensor] = None, temperature: float = 1.0,
                   log_scale_min: float = -9.0, backend: str = "auto", chunk: Optional[int] = None,
                   progress: bool = False, num_threads: Optional[int] = None, state: Optional[SamplerState] = None,
                   weight_dtype: Optional[torch.dtype] = None):
    """Autoregressive sampling from the upsampled conditioning ``h`` ``(B, C, T)``.

    Free-running (``teacher_forcing=None``): returns ``x`` ``(B, T)`` with
    ``x_t = mean_t + exp(max(log_scale_t, log_scale_min)) * temperature * noise_t``, step ``t`` fed
    ``x_{t-1}`` (0 at ``t = 0``); ``noise`` ``(B, T)`` defaults to ``torch.randn``. The floor
    (default -9, the teacher's training floor) keeps a collapsed scale from producing a noiseless,
    stuck sample.
    Teacher-forced (``teacher_forcing`` = audio ``(B, T)``): step ``t`` is fed ``audio[:, t-1]``;
    returns ``(mean, log_scale)``, each ``(B, T)``, equal to the model's ``forward``.

    ``backend``:

    - ``"cpp"``: CPU tensors, float32 or float16 ``h`` (float16: the weights rounded to float16 and
      the per-step matrices streamed as float16, half the bytes per sample; accumulation float32);
      the loop in C++, batch elements on up to ``num_threads`` threads (default
      ``torch.get_num_threads()``).
    - ``"cuda"``: CUDA tensors, float32/float16/bfloat16 ``h`` (the weights are used in ``h``'s
      dtype, accumulation is float32); a persistent kernel runs a whole chunk of steps per launch.
    - ``"triton"``: CUDA tensors (or CPU under ``TRITON_INTERPRET=1``), same dtypes.
    - ``"reference"``: the Python stepper (needs the packed model alive, and ``h`` in its dtype).
    - ``"auto"``: ``cpp`` for float32/float16 CPU inputs; on a GPU ``cuda``, else ``triton``; else the reference.

    ``weight_dtype`` selects the packed weights: ``None`` uses them in ``h``'s dtype (above);
    ``torch.int8`` (``cpp`` only; ``h`` float32 or float16) runs the int8 sampler: the per-step
    matrices, the conditioning projection and the first output 1x1 quantized once (per output
    channel, symmetric, built on first use and cached in ``packed``), activations quantized per step
    and layer with a dynamic scale (max-abs / 127; the ReLU'd skip sum max / 255), int32 sums on
    AVX-512 VNNI / AVX-VNNI ``vpdpbusd`` or a portable loop with the same bits
    (``packed.cpp(int8=True).int8_isa()`` names the level). Biases, the input conv and the last 1x1
    stay float32. Accuracy, teacher-forced against float32 on trained-like and trained weights
    (tested; :data:`clarinet._quant.INT8_BOUND`): the mean within 0.25 of the predicted scale
    ``exp(log_scale)`` RMS (1.0 max) and the log-scale within 0.02 RMS (0.08 max) per step.

    ``state`` (streaming): a :class:`SamplerState` (from :func:`sampler_state`) to start from instead
    of silence at step 0; it is updated in place, so calls over consecutive spans of the conditioning
    continue one sequence and give the samples one call over the whole span gives (every backend;
    float32 buffers, except the reference, which also takes the model's dtype).

    The GPU backends return float32 outputs whatever ``h``'s dtype. ``chunk``: steps whose
    conditioning projection is computed at once (and, on the GPU backends, run per launch); ``None``
    picks the backend's default (:data:`DEFAULT_CHUNK`); memory ``layers * chunk * G`` values per batch
    element. ``progress`` applies to the reference backend only.

    Equivalent to :func:`wavenet_sample_ref` (``GaussianWaveNet.generate`` after the upsampler).
    """
    B, T, temperature, log_scale_min = _check_inputs(packed, h, noise, teacher_forcing, temperature,
                                                     log_scale_min, chunk)
    packed.check()
    _check_state(packed, state, h)
    backend = resolve_backend(packed, h, backend)
    if chunk is None:
        chunk = DEFAULT_CHUNK[backend]
    forced = teacher_forcing is not None
    if noise is None and not forced:
        noise = torch.randn(B, T, dtype=h.dtype, device=h.device)
    if weight_dtype is not None:
        _check_weight_dtype(weight_dtype, backend)
    if backend == "reference":
        return wavenet_sample_ref(packed, h, noise, teacher_forcing=teacher_forcing, temperature=temperature,
                                  log_scale_min=log_scale_min, chunk=chunk, progress=progress, state=state)
    src = teacher_forcing if forced else noise
    if backend in ("cuda", "triton"):
        if state is not None and state.buffers.dtype != torch.float32:
            raise TypeError(f"state: backend {backend!r} needs float32 buffers, got {state.buffers.dtype}")
        reason = _gpu_reason(backend, packed, h)
        if reason is not None:
            raise ValueError(reason)
        from .._backend import load

        x, mean, log_scale = (torch.empty(B, T, dtype=torch.float32, device=h.device) for _ in range(3))
        if B and T:
            # contract of both launchers: fill x, mean, log_scale (float32, (B, T), contiguous)
            load(backend, "wavenet_sample").wavenet_sample_run(
                packed, h, src, forced, x, mean, log_scale, temperature, log_scale_min, int(chunk),
                state=None if state is None else state.buffers, step0=0 if state is None else state.step)
        if state is not None:
            state.step += T
        return (mean, log_scale) if forced else x
    if h.device.type != "cpu":
        raise ValueError(f"h: backend 'cpp' needs CPU tensors, got device {h.device}")
    if h.dtype not in (torch.float32, torch.float16):
        raise TypeError(f"h: backend 'cpp' takes float32 or float16, got {h.dtype} (use backend='reference')")
    if state is not None and state.buffers.dtype != torch.float32:
        raise TypeError(f"state: backend 'cpp' needs float32 buffers, got {state.buffers.dtype}")
    if num_threads is None:
        num_threads = torch.get_num_threads()
    x = torch.empty(B, T, dtype=torch.float32)
    mean = torch.empty(B, T, dtype=torch.float32)
    log_scale = torch.empty(B, T, dtype=torch.float32)
    if B and T:
        half = h.dtype == torch.float16
        if half:  # the values are exact in float32; the C++ loop reads float32 data
            h, src = h.float(), src.float()
        int8 = weight_dtype == torch.int8
        sampler = packed.cpp(half and not int8, int8=int8)
        sampler.run(h.detach().numpy(), None if forced else src.detach().numpy(),
                    src.detach().numpy() if forced else None, x.numpy(), mean.numpy(), log_scale.numpy(),
                    temperature, log_scale_min, int(chunk), int(num_threads),
                    state=None if state is None else state.buffers.numpy(),
                    step0=0 if state is None else state.step)
    if state is not None:
        state.step += T
    return (mean, log_scale) if forced else x


def _check_weight_dtype(weight_dtype, backend: str) -> None:
    if weight_dtype not in (torch.int8,):
        raise TypeError(f"weight_dtype: expected None or torch.int8, got {weight_dtype!r}")
    if backend != "cpp":
        raise ValueError(f"weight_dtype=torch.int8: backend {backend!r} has no int8 weight path "
                         "(only backend='cpp' on CPU tensors has one)")


@torch.no_grad()
def wavenet_sample_ref(packed: PackedWaveNet, h: torch.Tensor, noise: Optional[torch.Tensor] = None, *,
                       teacher_forcing: Optional[torch.Tensor] = None, temperature: float = 1.0,
                       log_scale_min: float = -9.0, chunk: Optional[int] = None, progress: bool = False,
                       state: Optional[SamplerState] = None):
    """The reference: the Python incremental stepper over the packed model's own weights (same arguments).

    Runs in the model's dtype and on its device (``h`` must match them); ``state`` may hold float32
    or the model's dtype.
    """
    B, T, temperature, log_scale_min = _check_inputs(packed, h, noise, teacher_forcing, temperature,
                                                     log_scale_min, chunk)
    weights = packed.check()
    _check_state(packed, state, h)
    if chunk is None:
        chunk = DEFAULT_CHUNK["reference"]
    p = weights.w_in
    if h.dtype != p.dtype or h.device != p.device:
        raise TypeError(f"h: the reference backend needs the model's dtype and device ({p.dtype}, {p.device}), "
                        f"got ({h.dtype}, {h.device})")
    forced = teacher_forcing is not None
    if noise is None and not forced:
        noise = torch.randn(B, T, dtype=h.dtype, device=h.device)
    out, mean, log_scale = incremental_sample(weights, h, teacher_forcing, noise, temperature, progress,
                                              log_scale_min, chunk, None if state is None else state.buffers,
                                              0 if state is None else state.step)
    if state is not None:
        state.step += T
    return (mean, log_scale) if forced else out


# ----------------------------------------------------------------------------------------------
# the reference stepper


class _StackStepper:
    """One-sample-at-a-time evaluation of a stack given by its :class:`WaveNetWeights` (the reference).

    Each layer keeps a ring buffer ``(B, (K-1)*d, R)`` of its last ``(K-1)*d`` inputs; tap ``k`` of
    step ``t`` reads the input of step ``t - (K-1-k)*d``, the ring slot ``(t - (K-1-k)*d) % L``. Work
    per sample: a few small matrix products per layer, no recomputation over the past. The
    conditioning projections ``w_cond @ h + b_dil`` are computed for a chunk of steps at a time
    (one batched product instead of one per step, memory bounded by the chunk).
    """

    def __init__(self, stack: WaveNetWeights, batch: int):
        self.stack = stack
        p = stack.w_in
        self.n_layers = len(stack.layers)
        self.layers = []
        for layer in stack.layers:
            G, R, K = layer.w_dil.shape
            d = layer.dilation
            L = (K - 1) * d
            self.layers.append(dict(
                d=d, K=K, R=R, G2=G // 2, L=L,
                w_dil=layer.w_dil.detach().permute(2, 1, 0).reshape(K * R, G),   # [k*R + r, g] = w_dil[g, r, k]
                w_cond=layer.w_cond.detach(), b_dil=layer.b_dil.detach(),
                w_rs=torch.cat([layer.w_res, layer.w_skip]).detach().t().contiguous(),   # (G/2, R + S)
                b_rs=torch.cat([layer.b_res, layer.b_skip]).detach(),
                buf=p.new_zeros(batch, L, R) if L else None,
            ))
        self.skip_scale = math.sqrt(1.0 / self.n_layers)
        self.cond = None

    def _rings(self, flat: torch.Tensor):
        """Views of ``flat`` ``(B, sum(L*R))`` as each layer's ``(B, L, R)`` ring (layers with L > 0)."""
        o = 0
        for ly in self.layers:
            if ly["L"]:
                n = ly["L"] * ly["R"]
                yield ly, flat[:, o:o + n].view(-1, ly["L"], ly["R"])
                o += n

    def load_state(self, flat: torch.Tensor) -> None:
        for ly, ring in self._rings(flat):
            ly["buf"].copy_(ring)

    def save_state(self, flat: torch.Tensor) -> None:
        for ly, ring in self._rings(flat):
            ring.copy_(ly["buf"])

    def condition(self, h_chunk: torch.Tensor) -> None:
        """Project the conditioning ``(B, C, n)`` of the next ``n`` steps for every layer: ``(n, B, G)``."""
        self.cond = [torch.einsum("gc,bcn->nbg", ly["w_cond"], h_chunk) + ly["b_dil"] for ly in self.layers]

    def step(self, inp: torch.Tensor, t: int, i: int) -> torch.Tensor:
        """Input ``(B, in_channels)`` at step ``t`` (row ``i`` of the current conditioning chunk) -> ``(B, out)``."""
        s = self.stack
        x = F.linear(inp, s.w_in, s.b_in)
        skips = None
        for ly, cond in zip(self.layers, self.cond):
            K, L, d, R = ly["K"], ly["L"], ly["d"], ly["R"]
            if L:
                buf = ly["buf"]
                taps = [buf[:, (t - (K - 1 - k) * d) % L] for k in range(K - 1)] + [x]
                xcat = torch.cat(taps, dim=1)
            else:
                xcat = x
            a = torch.addmm(cond[i], xcat, ly["w_dil"])
            G2 = ly["G2"]
            z = torch.tanh(a[:, :G2]) * torch.sigmoid(a[:, G2:])
            rs = torch.addmm(ly["b_rs"], z, ly["w_rs"])
            if L:
                buf[:, t % L] = x  # the slot tap 0 just read (input of step t - L) now holds step t's
            x = (x + rs[:, :R]) * SQRT_HALF
            skips = rs[:, R:] if skips is None else skips + rs[:, R:]
        y = torch.relu(skips * self.skip_scale)
        y = torch.relu(F.linear(y, s.w_out1, s.b_out1))
        return F.linear(y, s.w_out2, s.b_out2)


def incremental_sample(stack: WaveNetWeights, h: torch.Tensor, audio: Optional[torch.Tensor],
                       noise: Optional[torch.Tensor], temperature: float, progress: bool, log_scale_min: float,
                       chunk: int, state: Optional[torch.Tensor] = None,
                       step0: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The reference sampling loop (under :func:`wavenet_sample_ref`, which checks the arguments) over
    the upsampled conditioning ``h`` ``(B, C, T)``, in the dtype of ``stack``'s weights.

    Free-running (``audio`` None): ``x_t = mean_t + exp(max(log_scale_t, log_scale_min)) *
    temperature * noise_t``; teacher-forced: ``x_t = audio_t``. Step ``t`` is fed ``x_{t-1}`` (0 at
    ``t = 0``). Returns ``(x, mean, log_scale)``, each ``(B, T)``.

    ``state``: None (start from silence at step 0), or a float32 ``(B, 1 + sum(L_l * R))`` tensor
    ``[input fed at the next step, ring of layer 0 (L_0, R), ...]`` (``L_l = (K-1) * d_l``) left by
    a previous call for steps ``< step0``; it is read at the start and rewritten at the end, so calls
    over consecutive spans of ``h`` continue one sequence (the layout of the C++ sampler's state).
    """
    from tqdm.auto import tqdm

    B, T = h.shape[0], h.shape[2]
    stepper = _StackStepper(stack, B)
    out, mean, log_scale = h.new_zeros(B, T), h.new_zeros(B, T), h.new_zeros(B, T)
    prev = h.new_zeros(B, 1)
    if state is not None:
        prev.copy_(state[:, :1])
        stepper.load_state(state[:, 1:])
    c0 = 0
    for i in tqdm(range(T), disable=not progress, desc="generate", unit="sample", leave=False):
        if i % chunk == 0:
            c0 = i
            stepper.condition(h[:, :, i: i + chunk])
        t = step0 + i
        y = stepper.step(prev, t, i - c0)
        m, s = y[:, 0], y[:, 1]
        mean[:, i] = m
        log_scale[:, i] = s
        if audio is None:
            xt = m + torch.exp(torch.clamp(s, min=log_scale_min)) * (temperature * noise[:, i])
        else:
            xt = audio[:, i]
        out[:, i] = xt
        prev = xt[:, None]
    if state is not None and T:
        state[:, :1].copy_(prev)
        stepper.save_state(state[:, 1:])
    return out, mean, log_scale
