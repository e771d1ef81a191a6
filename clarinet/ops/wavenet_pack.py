"""What the incremental samplers (:mod:`clarinet.ops.wavenet_sample`) take of a Gaussian WaveNet.

- :class:`WaveNetWeights` (with one :class:`WaveNetLayerWeights` per residual layer): the documented
  description of a stack, its weight tensors and dilations, in :func:`clarinet.ops.wavenet_layer`'s
  shapes. A model hands it over through a ``wavenet_weights()`` method
  (:meth:`clarinet.models.GaussianWaveNet.wavenet_weights`); the ops never import the model classes.
- :func:`pack_wavenet`: a read-only float32 copy of those weights laid out for the C++ loop (and the
  GPU launchers' packing), built once and reused; it remembers which weights it came from and is
  refused once they change.
- :class:`SamplerState` / :func:`sampler_state`: where sampling sequences stand (streaming).
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Iterator, Optional, Sequence

import torch

__all__ = ["PackedWaveNet", "SamplerState", "WaveNetLayerWeights", "WaveNetWeights", "pack_wavenet",
           "sampler_state"]


def _load_cpp():
    try:
        from .. import _C
    except ImportError as e:  # pragma: no cover - the extension is always built by setup.py
        raise ImportError("wavenet_sample(backend='cpp') needs the compiled extension clarinet._C: "
                          "reinstall with `pip install -e .`") from e
    return _C


@dataclass(frozen=True, eq=False)
class WaveNetLayerWeights:
    """One causal residual layer, in :func:`clarinet.ops.wavenet_layer`'s shapes.

    ``w_dil (G, R, K)``, ``b_dil (G,)``, ``w_res (R, G/2)``, ``b_res (R,)``, ``w_skip (S, G/2)``,
    ``b_skip (S,)``, ``w_cond (G, C)``; ``dilation`` >= 1.
    """

    w_dil: torch.Tensor
    b_dil: torch.Tensor
    w_res: torch.Tensor
    b_res: torch.Tensor
    w_skip: torch.Tensor
    b_skip: torch.Tensor
    w_cond: torch.Tensor
    dilation: int

    def tensors(self) -> tuple:
        return (self.w_dil, self.b_dil, self.w_res, self.b_res, self.w_skip, self.b_skip, self.w_cond)


@dataclass(frozen=True, eq=False)
class WaveNetWeights:
    """A Gaussian WaveNet stack as the samplers see it (the teacher after its upsampler).

    ``w_in (R, 1)``, ``b_in (R,)``: the 1x1 input conv; ``layers``: the residual layers in order;
    the head ``relu(skips * sqrt(1/layers))`` -> ``w_out1 (S, S)``, ``b_out1 (S,)`` -> ReLU ->
    ``w_out2 (2, S)``, ``b_out2 (2,)`` (mean, log-scale); ``hop``: samples per conditioning frame
    (recorded in the pack's config). The tensors are the model's own parameters, not copies, so
    their version counters tell :func:`pack_wavenet` when the weights changed.
    """

    w_in: torch.Tensor
    b_in: torch.Tensor
    layers: Sequence[WaveNetLayerWeights]
    w_out1: torch.Tensor
    b_out1: torch.Tensor
    w_out2: torch.Tensor
    b_out2: torch.Tensor
    hop: int = 1

    def tensors(self) -> Iterator[torch.Tensor]:
        """Every weight tensor, in a fixed order."""
        yield from (self.w_in, self.b_in, self.w_out1, self.b_out1, self.w_out2, self.b_out2)
        for ly in self.layers:
            yield from ly.tensors()

    @property
    def dilations(self) -> tuple:
        return tuple(ly.dilation for ly in self.layers)

    @property
    def receptive_field(self) -> int:
        """Number of input samples output ``t`` can see (``t`` itself included)."""
        return 1 + (self.layers[0].w_dil.shape[-1] - 1) * sum(self.dilations)


def _weights_of(source) -> WaveNetWeights:
    """The description of ``source``: a :class:`WaveNetWeights` itself, or what its ``wavenet_weights()`` gives."""
    if isinstance(source, WaveNetWeights):
        return source
    get = getattr(source, "wavenet_weights", None)
    weights = get() if callable(get) else None
    if not isinstance(weights, WaveNetWeights):
        raise TypeError(f"model: expected a GaussianWaveNet (an object with a wavenet_weights() method) or a "
                        f"WaveNetWeights, got {type(source).__name__}")
    return weights


def _weights_version(weights: WaveNetWeights) -> tuple:
    """What identifies the current weights: each tensor's storage, version counter and shape.

    In-place updates (optimizer steps, ``copy_``, ``load_state_dict``, ``normal_``) bump the version
    counter; writes through ``.data`` do not, so call :func:`pack_wavenet` again after those.
    """
    return tuple((p.data_ptr(), p._version, tuple(p.shape), p.dtype) for p in weights.tensors())


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
    _source_ref: object = field(repr=False)  # () -> the model (or WaveNetWeights) packed, None once gone
    _cpp: dict = field(default_factory=dict, repr=False)
    _copies: dict = field(default_factory=dict, repr=False)

    @property
    def model(self):
        """The source model (or the :class:`WaveNetWeights` packed), or None if it no longer exists."""
        return self._source_ref()

    def weights(self) -> Optional[WaveNetWeights]:
        """The source's current weights (live tensors), or None if the model no longer exists."""
        source = self._source_ref()
        return None if source is None else _weights_of(source)

    def is_stale(self) -> bool:
        """True when the source model is gone or its weights changed since packing."""
        w = self.weights()
        return w is None or _weights_version(w) != self.version

    def check(self) -> WaveNetWeights:
        """The source's current weights; RuntimeError when the model is gone or its weights changed."""
        w = self.weights()
        if w is None:
            raise RuntimeError("packed: the model these weights were packed from no longer exists")
        if _weights_version(w) != self.version:
            raise RuntimeError("packed: the model's weights changed since pack_wavenet(); "
                               "call pack_wavenet(model) again")
        return w

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
        ``int8``: int8 weights (quantized here once, per output channel; see ``wavenet_sample``)."""
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

    ``model``: anything with a ``wavenet_weights()`` method returning a :class:`WaveNetWeights`
    (e.g. a :class:`clarinet.models.GaussianWaveNet`, held weakly: the pack is refused once the
    model is gone), or a :class:`WaveNetWeights` itself (held by the pack, never cached). With
    ``cache=True`` the pack of a model is kept beside it (weakly) and returned again while the weights
    are unchanged; after any in-place change of a parameter it is rebuilt.
    """
    stack = _weights_of(model)
    version = _weights_version(stack)
    cache = cache and model is not stack  # a cached description would keep itself alive through its pack
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
    config = dict(layers=len(stack.layers), dilations=stack.dilations, R=R, G=G, S=S, K=K, C=C,
                  hop=stack.hop, receptive_field=stack.receptive_field)
    # a model is held weakly (the pack must not keep it alive); a description passed by itself is held
    source_ref = (lambda: model) if model is stack else weakref.ref(model)
    packed = PackedWaveNet(config=config, tensors=tensors, version=version, _source_ref=source_ref)
    if cache:
        _CACHE[model] = packed
    return packed
