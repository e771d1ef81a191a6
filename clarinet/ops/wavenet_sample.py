"""Incremental (autoregressive) sampling of a :class:`~clarinet.models.GaussianWaveNet`, CPU C++ backend.

- :func:`pack_wavenet`: a read-only float32 copy of the teacher's stack weights laid out for the C++
  loop, built once and reused; it remembers which weights it came from and is refused once they change.
- :func:`wavenet_sample`: the sampling loop over the upsampled conditioning ``h`` (free-running or
  teacher-forced); ``backend="cpp"`` runs the whole loop in ``clarinet._C`` (no Python per sample,
  GIL released), ``backend="reference"`` the Python stepper of :mod:`clarinet.models.wavenet`.

Equivalent to ``GaussianWaveNet.generate`` / ``incremental_forward`` after the upsampler
(reference: :func:`wavenet_sample_ref`).
"""
from __future__ import annotations

import os
import weakref
from dataclasses import dataclass, field
from typing import Optional

import torch

__all__ = ["PackedWaveNet", "SamplerState", "pack_wavenet", "sampler_state", "wavenet_sample", "wavenet_sample_ref"]

_BACKENDS = ("auto", "reference", "cpp", "cuda", "triton")
#: conditioning chunk per backend when ``chunk=None``. cpp: 64 steps keep the projected conditioning
#: (layers x chunk x G floats: 655 KB for teacher-small) in L2; at 1024 it was 10 MB and the loop
#: about 3-6% slower on a 2-core AMD EPYC (1 MiB L2 per core). The GPU samplers run a chunk per
#: launch, so theirs is long.
DEFAULT_CHUNK = {"reference": 1024, "cpp": 64, "cuda": 1024, "triton": 1024}
#: float types the GPU samplers take for ``h`` (the weights are cast to it; accumulation is float32)
GPU_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _load_cpp():
    try:
        from .. import _C
    except ImportError as e:  # pragma: no cover - the extension is always built by setup.py
        raise ImportError("wavenet_sample(backend='cpp') needs the compiled extension clarinet._C: "
                          "reinstall with `pip install -e .`") from e
    return _C


def _weights_version(stack) -> tuple:
    """What identifies the current weights: each parameter's storage, version counter and shape.

    In-place updates (optimizer steps, ``copy_``, ``load_state_dict``, ``normal_``) bump the version
    counter; writes through ``.data`` do not, so call :func:`pack_wavenet` again after those.
    """
    return tuple((p.data_ptr(), p._version, tuple(p.shape), p.dtype) for p in stack.parameters())


@dataclass(eq=False)
class PackedWaveNet:
    """Packed float32 weights of a ``GaussianWaveNet``'s stack (read-only; see :func:`pack_wavenet`).

    ``tensors``: the packed layout, per layer ``w_dil (K*R, G)`` with ``[k*R + r, g] = w_dil[g, r, k]``,
    ``b_dil (G,)``, ``w_cond (C, G)`` (transposed), ``w_rs (G/2, R+S)`` (residual and skip fused,
    transposed), ``b_rs (R+S,)``; the head ``w_in (R,)``, ``b_in``, ``w_out1 (S, S)`` and
    ``w_out2 (S, 2)`` transposed, their biases. ``config``: layers, dilations, R, G, S, K, C, hop.
    """

    config: dict
    tensors: dict
    version: tuple
    _model_ref: object = field(repr=False)
    _cpp: dict = field(default_factory=dict, repr=False)
    _copies: dict = field(default_factory=dict, repr=False)

    @property
    def model(self):
        """The source model, or None if it no longer exists."""
        return self._model_ref()

    def is_stale(self) -> bool:
        """True when the source model is gone or its weights changed since packing."""
        m = self._model_ref()
        return m is None or _weights_version(m.wavenet) != self.version

    def check(self) -> None:
        m = self._model_ref()
        if m is None:
            raise RuntimeError("packed: the model these weights were packed from no longer exists")
        if _weights_version(m.wavenet) != self.version:
            raise RuntimeError("packed: the model's weights changed since pack_wavenet(); "
                               "call pack_wavenet(model) again")

    def on(self, device, dtype=torch.float32) -> dict:
        """The packed tensors on ``device`` in ``dtype`` (copied once per device and dtype, then cached)."""
        device = torch.device(device)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        key = (str(device), dtype)
        hit = self._copies.get(key)
        if hit is None:
            hit = {k: v.to(device=device, dtype=dtype).contiguous() for k, v in self.tensors.items()}
            self._copies[key] = hit
        return hit

    def cpp(self, half: bool = False, int8: bool = False):
        """The C++ sampler over these weights (built once per mode); ``half``: float16 weights;
        ``int8``: int8 weights (quantized here once, per output channel; see :func:`wavenet_sample`)."""
        key = "int8" if int8 else half
        if key not in self._cpp:
            _C = _load_cpp()
            c, t = self.config, self.tensors
            layers = [tuple(t[f"layers.{i}.{n}"].numpy() for n in ("w_dil", "b_dil", "w_cond", "w_rs", "b_rs"))
                      for i in range(c["layers"])]
            self._cpp[key] = _C.WaveNetSampler(c["R"], c["G"], c["S"], c["K"], c["C"], list(c["dilations"]),
                                               t["w_in"].numpy(), t["b_in"].numpy(), layers, t["w_out1"].numpy(),
                                               t["b_out1"].numpy(), t["w_out2"].numpy(), t["b_out2"].numpy(),
                                               half_weights=bool(half) and not int8, int8_weights=int8)
        return self._cpp[key]


    @property
    def state_size(self) -> int:
        """Floats of one sequence's carried state: ``1 + sum over layers of (K-1) * d * R``."""
        c = self.config
        return 1 + sum((c["K"] - 1) * d * c["R"] for d in c["dilations"])


@dataclass(eq=False)
class SamplerState:
    """Where ``B`` sampling sequences stand, so that :func:`wavenet_sample` can continue them.

    ``buffers`` ``(B, packed.state_size)`` float32: per sequence the input to feed at the next step
    (the last sample) followed by every layer's ring of past layer inputs ``((K-1)*d, R)``, slot
    ``step % ((K-1)*d)``; ``step``: how many steps the sequences have run. Made by
    :func:`sampler_state`; :func:`wavenet_sample` reads and updates it in place.
    """

    buffers: torch.Tensor
    step: int = 0


def sampler_state(packed: "PackedWaveNet", batch: int, device="cpu", dtype=torch.float32) -> SamplerState:
    """A fresh state (silence before step 0) for ``batch`` sequences of ``packed``'s model on ``device``.

    ``dtype``: float32 (every backend), or the model's dtype for the reference backend (e.g. float64).
    """
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 0:
        raise ValueError(f"batch: expected an int >= 0, got {batch!r}")
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"dtype: expected a floating-point torch.dtype, got {dtype!r}")
    return SamplerState(torch.zeros(batch, packed.state_size, dtype=dtype, device=device))


_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def pack_wavenet(model, *, cache: bool = True) -> PackedWaveNet:
    """Pack a ``GaussianWaveNet``'s stack weights (float32, contiguous) for :func:`wavenet_sample`.

    With ``cache=True`` the pack is kept beside the model (weakly) and returned again while the
    weights are unchanged; after any in-place change of a parameter it is rebuilt.
    """
    from ..models.wavenet import GaussianWaveNet

    if not isinstance(model, GaussianWaveNet):
        raise TypeError(f"model: expected a GaussianWaveNet, got {type(model).__name__}")
    stack = model.wavenet
    version = _weights_version(stack)
    if cache:
        hit = _CACHE.get(model)
        if hit is not None and hit.version == version:
            return hit
    if stack.w_in.shape[1] != 1 or stack.w_out2.shape[0] != 2:
        raise ValueError("model: expected a stack with 1 input and 2 output channels (mean, log-scale)")
    with torch.no_grad():
        f = lambda p: p.detach().to(device="cpu", dtype=torch.float32).contiguous()  # noqa: E731
        first = stack.layers[0]
        G, R, K = first.w_dil.shape
        S, C = first.w_skip.shape[0], first.w_cond.shape[1]
        tensors = {"w_in": f(stack.w_in[:, 0]), "b_in": f(stack.b_in),
                   "w_out1": f(stack.w_out1.t()), "b_out1": f(stack.b_out1),
                   "w_out2": f(stack.w_out2.t()), "b_out2": f(stack.b_out2)}
        for i, ly in enumerate(stack.layers):
            tensors[f"layers.{i}.w_dil"] = f(ly.w_dil.permute(2, 1, 0).reshape(K * R, G))
            tensors[f"layers.{i}.b_dil"] = f(ly.b_dil)
            tensors[f"layers.{i}.w_cond"] = f(ly.w_cond.t())
            tensors[f"layers.{i}.w_rs"] = f(torch.cat([ly.w_res, ly.w_skip]).t())
            tensors[f"layers.{i}.b_rs"] = f(torch.cat([ly.b_res, ly.b_skip]))
        for name, v in tensors.items():
            v.requires_grad_(False)
            if not torch.isfinite(v).all():
                raise ValueError(f"model: weight {name} has non-finite values (nan or inf); refusing to pack")
    config = dict(layers=len(stack.layers), dilations=tuple(stack.dilations), R=R, G=G, S=S, K=K, C=C,
                  hop=model.hop_length, receptive_field=stack.receptive_field)
    packed = PackedWaveNet(config=config, tensors=tensors, version=version, _model_ref=weakref.ref(model))
    if cache:
        _CACHE[model] = packed
    return packed


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
    """The reference: the Python incremental stepper of ``GaussianWaveNet`` over ``h`` (same arguments)."""
    from ..models.wavenet import incremental_sample

    B, T, temperature, log_scale_min = _check_inputs(packed, h, noise, teacher_forcing, temperature,
                                                     log_scale_min, chunk)
    packed.check()
    _check_state(packed, state, h)
    if chunk is None:
        chunk = DEFAULT_CHUNK["reference"]
    model = packed.model
    p = model.wavenet.w_in
    if h.dtype != p.dtype or h.device != p.device:
        raise TypeError(f"h: the reference backend needs the model's dtype and device ({p.dtype}, {p.device}), "
                        f"got ({h.dtype}, {h.device})")
    forced = teacher_forcing is not None
    if noise is None and not forced:
        noise = torch.randn(B, T, dtype=h.dtype, device=h.device)
    out, mean, log_scale = incremental_sample(model.wavenet, h, teacher_forcing, noise, temperature, progress,
                                              log_scale_min, chunk, None if state is None else state.buffers,
                                              0 if state is None else state.step)
    if state is not None:
        state.step += T
    return (mean, log_scale) if forced else out
