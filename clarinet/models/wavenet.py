"""The Gaussian autoregressive WaveNet (ClariNet's teacher) and its building blocks.

- :class:`ConditionUpsampler`: log-mel frames -> sample-rate conditioning (two transposed 2-D convs).
- :class:`WaveNetStack`: 1x1 input conv, a stack of fused residual layers (every layer is one
  :func:`clarinet.ops.wavenet_layer` call), summed skips, ReLU-1x1-ReLU-1x1 head. Shared by the
  teacher and by each flow of the student (:mod:`clarinet.models.iaf`).
- :class:`GaussianWaveNet`: the teacher. ``forward`` (parallel over time, teacher forcing) gives the
  mean and log-scale of one Gaussian per sample; ``generate`` samples one sample at a time through
  :func:`clarinet.ops.wavenet_sample` (whose reference, :func:`clarinet.ops.wavenet_sample_ref`, is
  the plain torch stepper), over the stack's :meth:`GaussianWaveNet.wavenet_weights`.
"""
from __future__ import annotations

import math
from typing import Callable, Iterator, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..ops import wavenet_layer
from ..ops.wavenet_pack import WaveNetLayerWeights, WaveNetWeights

__all__ = ["ConditionUpsampler", "WaveNetLayer", "WaveNetStack", "GaussianWaveNet", "TEACHER_PRESETS"]

#: Presets: the reference configurations of the README ("Benchmarks"; the names benchmarks use).
TEACHER_PRESETS = {
    "teacher": dict(layers=20, cycle=10, residual_channels=128, gate_channels=256, skip_channels=128,
                    kernel_size=2, n_mels=80, upsample_strides=(15, 20)),
    "teacher-small": dict(layers=20, cycle=10, residual_channels=64, gate_channels=128, skip_channels=128,
                          kernel_size=2, n_mels=80, upsample_strides=(15, 20)),
}


# ----------------------------------------------------------------------------------------------
# argument checks (each error names the argument)

def _positive_int(name: str, v) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{name}: expected an int >= 1, got {v!r}")
    return v


def _strides(name: str, v) -> tuple[int, ...]:
    try:
        strides = tuple(v)
    except TypeError:
        raise ValueError(f"{name}: expected a sequence of ints >= 1, got {v!r}") from None
    if not strides:
        raise ValueError(f"{name}: expected at least one stride, got {v!r}")
    for s in strides:
        _positive_int(name, s)
    return strides


def _float_tensor(name: str, t, ndim: int) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
    if not t.dtype.is_floating_point:
        raise TypeError(f"{name}: expected a floating-point tensor, got {t.dtype}")
    if t.dim() != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D tensor, got shape {tuple(t.shape)}")
    return t


def _check_like_params(name: str, t: torch.Tensor, module: nn.Module) -> None:
    p = next(module.parameters())
    if t.dtype != p.dtype:
        raise TypeError(f"{name}: expected dtype {p.dtype} (the model's parameters), got {t.dtype}; "
                        f"convert the input or the model (model.to({t.dtype}))")
    if t.device != p.device:
        raise ValueError(f"{name}: expected device {p.device} (the model's parameters), got {t.device}")


def check_audio_and_mel(module: nn.Module, x: torch.Tensor, mel: torch.Tensor, n_mels: int, hop: int,
                        x_name: str = "x") -> tuple[int, int]:
    """``x`` (B, T) and ``mel`` (B, n_mels, T / hop) agree with each other and the model; returns (B, T)."""
    _float_tensor(x_name, x, 2)
    check_mel(module, mel, n_mels)
    B, T = x.shape
    if mel.shape[0] != B:
        raise ValueError(f"mel: batch size {mel.shape[0]} does not match {x_name}'s {B}")
    if mel.shape[2] * hop != T:
        raise ValueError(f"mel: {mel.shape[2]} frames x hop {hop} = {mel.shape[2] * hop} samples, "
                         f"but {x_name} has T = {T} (need T = frames * hop)")
    _check_like_params(x_name, x, module)
    return B, T


def check_mel(module: nn.Module, mel: torch.Tensor, n_mels: int) -> None:
    _float_tensor("mel", mel, 3)
    if mel.shape[1] != n_mels:
        raise ValueError(f"mel: expected {n_mels} mel bands (shape (B, {n_mels}, frames)), got shape {tuple(mel.shape)}")
    _check_like_params("mel", mel, module)


def generation_noise(module, mel: torch.Tensor, noise: Optional[torch.Tensor]) -> torch.Tensor:
    """The checked ``(B, frames * hop)`` noise for generating from ``mel``; N(0, 1) draws when None."""
    check_mel(module, mel, module.n_mels)
    B, T = mel.shape[0], mel.shape[2] * module.hop_length
    if noise is None:
        return torch.randn(B, T, dtype=mel.dtype, device=mel.device)
    _float_tensor("noise", noise, 2)
    if tuple(noise.shape) != (B, T):
        raise ValueError(f"noise: expected shape ({B}, {T}) (batch, frames * hop), got {tuple(noise.shape)}")
    _check_like_params("noise", noise, module)
    return noise


def shift_right(x: torch.Tensor) -> torch.Tensor:
    """``(B, T) -> (B, T)``: ``out[:, t] = x[:, t-1]``, ``out[:, 0] = 0`` (so output t sees only x_<t)."""
    return F.pad(x, (1, 0))[..., : x.shape[-1]]


# ----------------------------------------------------------------------------------------------

class ConditionUpsampler(nn.Module):
    """Log-mel frames ``(B, n_mels, F)`` -> conditioning at the sample rate ``(B, n_mels, F * prod(strides))``.

    The frames are a 1-channel image ``(B, 1, n_mels, F)``. Each stage is a transposed 2-D convolution
    with kernel ``(3, 2 * stride)`` (3 bands, twice the stride in time), stride ``(1, stride)`` and
    band padding 1, followed by leaky ReLU (slope 0.4). Input column ``j``'s filter covers output
    columns ``[(j - 1) * stride, (j + 1) * stride)``, centred on ``j * stride``; the output keeps
    exactly columns ``[0, F * stride)``. The columns after the last input column's centre would be
    half covered, so each stage first repeats its last input column once (its contribution to the
    kept columns is the missing right-hand neighbour's). With the default strides (15, 20) frame ``j``
    reaches samples ``[300 j - 320, 300 j + 300)`` (clipped to ``[0, T)``), centred on
    ``300 j - 10.5`` (each even-length filter is centred half a column early), i.e. near the sample
    ``300 j`` on which :func:`clarinet.audio.log_mel` centres frame ``j``'s STFT window.

    Initialisation: linear interpolation in time (a triangular filter whose overlapping copies sum
    to 1) and the identity across bands, bias 0, so a constant positive mel gives the same constant
    at every sample; training moves it from there.
    """

    def __init__(self, n_mels: int = 80, strides: Sequence[int] = (15, 20)):
        super().__init__()
        self.n_mels = _positive_int("n_mels", n_mels)
        self.strides = _strides("strides", strides)
        self.convs = nn.ModuleList(
            nn.ConvTranspose2d(1, 1, kernel_size=(3, 2 * s), stride=(1, s), padding=(1, 0)) for s in self.strides)
        self.reset_parameters()

    @property
    def hop_length(self) -> int:
        return math.prod(self.strides)

    def reset_parameters(self) -> None:
        with torch.no_grad():
            for s, conv in zip(self.strides, self.convs):
                k = torch.arange(2 * s, dtype=torch.float64)
                tri = 1.0 - (k - (s - 0.5)).abs() / s  # tri[k] + tri[k + s] == 1 for k < s
                w = torch.zeros(3, 2 * s, dtype=torch.float64)
                w[1] = tri
                conv.weight.copy_(w[None, None])
                conv.bias.zero_()

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        _float_tensor("mel", mel, 3)
        if mel.shape[1] != self.n_mels:
            raise ValueError(f"mel: expected {self.n_mels} mel bands, got shape {tuple(mel.shape)}")
        if mel.shape[-1] == 0:  # no frames: no samples (the transposed conv refuses an empty width)
            return mel.new_zeros(mel.shape[0], self.n_mels, 0)
        y = mel.unsqueeze(1)
        for s, conv in zip(self.strides, self.convs):
            frames = y.shape[-1]
            y = torch.cat([y, y[..., -1:]], dim=-1)  # repeat the last column: full coverage at the end
            y = conv(y)[..., s: s + frames * s]
            y = F.leaky_relu(y, 0.4)
        return y.squeeze(1)

    def forward_range(self, mel: torch.Tensor, start: int, end: int) -> torch.Tensor:
        """``forward(mel)[..., start:end]``, computed from the frames around those samples only.

        Frame ``j`` reaches less than one frame of samples on each side of ``hop * j`` (above), so
        two frames of margin on each side make the slice equal the full upsampling's while the work
        and memory scale with ``end - start``, not the utterance (long-form and streaming generation).
        """
        hop = self.hop_length
        f0 = max(0, start // hop - 2)
        f1 = min(mel.shape[-1], -(-end // hop) + 2)
        h = self(mel[..., f0:f1])
        return h[..., start - f0 * hop:end - f0 * hop]


class WaveNetLayer(nn.Module):
    """Parameters of one fused residual layer, in exactly :func:`clarinet.ops.wavenet_layer`'s shapes.

    ``w_dil (G, R, K)``, ``b_dil (G,)``, ``w_res (R, G/2)``, ``b_res (R,)``, ``w_skip (S, G/2)``,
    ``b_skip (S,)``, ``w_cond (G, C)``. Weights are normal with fan-in scaling (std 1/sqrt(fan_in)),
    biases zero.
    """

    def __init__(self, residual_channels: int, gate_channels: int, skip_channels: int, kernel_size: int,
                 cond_channels: int, dilation: int):
        super().__init__()
        R, G, S, K, C = residual_channels, gate_channels, skip_channels, kernel_size, cond_channels
        self.dilation = dilation
        self.w_dil = nn.Parameter(torch.empty(G, R, K))
        self.b_dil = nn.Parameter(torch.empty(G))
        self.w_res = nn.Parameter(torch.empty(R, G // 2))
        self.b_res = nn.Parameter(torch.empty(R))
        self.w_skip = nn.Parameter(torch.empty(S, G // 2))
        self.b_skip = nn.Parameter(torch.empty(S))
        self.w_cond = nn.Parameter(torch.empty(G, C))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        G, R, K = self.w_dil.shape
        with torch.no_grad():
            self.w_dil.normal_(0.0, (R * K) ** -0.5)
            self.w_res.normal_(0.0, (G // 2) ** -0.5)
            self.w_skip.normal_(0.0, (G // 2) ** -0.5)
            self.w_cond.normal_(0.0, self.w_cond.shape[1] ** -0.5)
            for b in (self.b_dil, self.b_res, self.b_skip):
                b.zero_()

    def extra_repr(self) -> str:
        G, R, K = self.w_dil.shape
        return f"R={R}, G={G}, S={self.w_skip.shape[0]}, K={K}, C={self.w_cond.shape[1]}, dilation={self.dilation}"

    def forward(self, x: torch.Tensor, h: torch.Tensor, backend: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
        return wavenet_layer(x, self.w_dil, self.b_dil, self.w_res, self.b_res, self.w_skip, self.b_skip,
                             dilation=self.dilation, h=h, w_cond=self.w_cond, causal=True, backend=backend)


def _pointwise(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """1x1 convolution ``(B, I, T) -> (B, O, T)`` with ``w (O, I)``, ``b (O,)`` (also for T = 0)."""
    return torch.einsum("oi,bit->bot", w, x) + b[:, None]


class WaveNetStack(nn.Module):
    """A causal WaveNet: ``(B, in_channels, T)``, conditioning ``(B, C, T)`` -> ``(B, out_channels, T)``.

    1x1 input conv -> ``layers`` residual layers with dilations ``1, 2, ..., 2**(cycle-1)`` repeated ->
    sum of the skips times ``sqrt(1/layers)`` -> ReLU -> 1x1 (S->S) -> ReLU -> 1x1 (S->out).
    Output ``t`` depends on inputs ``<= t`` only (shift the input to make it strictly causal).
    ``output_init_scale`` scales the last 1x1's initial weights (the IAF uses a small value so that
    its flows start near the identity).
    """

    def __init__(self, in_channels: int, out_channels: int, layers: int, cycle: int, residual_channels: int,
                 gate_channels: int, skip_channels: int, kernel_size: int, cond_channels: int,
                 backend: str = "auto", output_init_scale: float = 1.0):
        super().__init__()
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels), ("layers", layers),
                        ("cycle", cycle), ("residual_channels", residual_channels),
                        ("gate_channels", gate_channels), ("skip_channels", skip_channels),
                        ("kernel_size", kernel_size), ("cond_channels", cond_channels)):
            _positive_int(name, v)
        if gate_channels % 2:
            raise ValueError(f"gate_channels: expected an even number (tanh and sigmoid halves), got {gate_channels}")
        R, S = residual_channels, skip_channels
        self.backend = backend
        self.output_init_scale = float(output_init_scale)
        self.w_in = nn.Parameter(torch.empty(R, in_channels))
        self.b_in = nn.Parameter(torch.empty(R))
        self.layers = nn.ModuleList(
            WaveNetLayer(R, gate_channels, S, kernel_size, cond_channels, 2 ** (i % cycle)) for i in range(layers))
        self.w_out1 = nn.Parameter(torch.empty(S, S))
        self.b_out1 = nn.Parameter(torch.empty(S))
        self.w_out2 = nn.Parameter(torch.empty(out_channels, S))
        self.b_out2 = nn.Parameter(torch.empty(out_channels))
        self.reset_parameters(layers_too=False)

    def reset_parameters(self, layers_too: bool = True) -> None:
        S = self.w_out1.shape[0]
        with torch.no_grad():
            self.w_in.normal_(0.0, self.w_in.shape[1] ** -0.5)
            self.w_out1.normal_(0.0, S ** -0.5)
            self.w_out2.normal_(0.0, self.output_init_scale * S ** -0.5)
            for b in (self.b_in, self.b_out1, self.b_out2):
                b.zero_()
        if layers_too:
            for layer in self.layers:
                layer.reset_parameters()

    def weights(self, hop: int = 1) -> WaveNetWeights:
        """This stack as :mod:`clarinet.ops` takes it: its own parameters (not copies) and dilations;
        ``hop``: samples per conditioning frame (see :meth:`GaussianWaveNet.wavenet_weights`)."""
        layers = tuple(WaveNetLayerWeights(ly.w_dil, ly.b_dil, ly.w_res, ly.b_res, ly.w_skip, ly.b_skip, ly.w_cond,
                                           ly.dilation) for ly in self.layers)
        return WaveNetWeights(self.w_in, self.b_in, layers, self.w_out1, self.b_out1, self.w_out2, self.b_out2,
                              hop=hop)

    @property
    def dilations(self) -> list[int]:
        return [layer.dilation for layer in self.layers]

    @property
    def receptive_field(self) -> int:
        """Number of input samples output ``t`` can see (``t`` itself included)."""
        K = self.layers[0].w_dil.shape[-1]
        return 1 + (K - 1) * sum(self.dilations)

    @property
    def skip_scale(self) -> float:
        """The summed skips are scaled by ``sqrt(1 / layers)`` before the head."""
        return math.sqrt(1.0 / len(self.layers))

    def skips(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """The summed skip outputs ``(B, S, T)`` (the head's input, before ``skip_scale``)."""
        x = _pointwise(x, self.w_in, self.b_in)
        skips = None
        for layer in self.layers:
            x, skip = layer(x, h, self.backend)
            skips = skip if skips is None else skips + skip
        return skips

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.skips(x, h) * self.skip_scale)
        y = torch.relu(_pointwise(y, self.w_out1, self.b_out1))
        return _pointwise(y, self.w_out2, self.b_out2)


def incremental_sample(stack: WaveNetStack, h: torch.Tensor, audio: Optional[torch.Tensor],
                       noise: Optional[torch.Tensor], temperature: float, progress: bool, log_scale_min: float,
                       chunk: int, state: Optional[torch.Tensor] = None,
                       step0: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`clarinet.ops.wavenet_sample.incremental_sample` (the reference loop; same arguments) over a
    :class:`WaveNetStack`: kept under its old name, where it was first defined."""
    from ..ops.wavenet_sample import incremental_sample as loop

    return loop(stack.weights(), h, audio, noise, temperature, progress, log_scale_min, chunk, state, step0)


class _PresetMixin:
    PRESETS: dict = {}

    @classmethod
    def from_preset(cls, name: str, **overrides):
        """Build a preset (the README's reference configurations); keyword ``overrides`` replace preset values."""
        if name not in cls.PRESETS:
            raise ValueError(f"name: unknown preset {name!r}; presets: {sorted(cls.PRESETS)}")
        return cls(**{**cls.PRESETS[name], **overrides})

    @classmethod
    def from_config(cls, config: dict):
        """Rebuild a model from its ``.config`` (e.g. stored in a checkpoint)."""
        return cls(**config)

    @property
    def backend(self) -> str:
        return self.config["backend"]

    @backend.setter
    def backend(self, value: str) -> None:
        self.config["backend"] = value
        for m in self.modules():
            if isinstance(m, WaveNetStack):
                m.backend = value

    @property
    def hop_length(self) -> int:
        return self.upsampler.hop_length


class GaussianWaveNet(_PresetMixin, nn.Module):
    """ClariNet's teacher: an autoregressive WaveNet with a single-Gaussian output per sample.

    ``forward(x, mel) -> (mean, log_scale)``: ``x`` ``(B, T)`` audio, ``mel`` ``(B, n_mels, T / hop)``
    log-mel frames (``hop = prod(upsample_strides)``, 300 by default); outputs ``(B, T)``. The stack's
    input is ``x`` shifted right by one sample (zero first), so ``mean[:, t]`` and ``log_scale[:, t]``
    depend on ``x[:, :t]`` only and model ``x[:, t]``. Train with
    :func:`clarinet.losses.teacher_loss`.

    Every residual layer is one :func:`clarinet.ops.wavenet_layer` call with the model's ``backend``
    (``"auto"``, ``"reference"``, ``"triton"``, ``"cuda"``; settable: ``model.backend = "triton"``).
    ``config`` holds the constructor's arguments (``GaussianWaveNet(**model.config)`` rebuilds it).
    Presets: :meth:`from_preset` ``("teacher", "teacher-small")``.
    """

    PRESETS = TEACHER_PRESETS

    def __init__(self, layers: int = 20, cycle: int = 10, residual_channels: int = 128, gate_channels: int = 256,
                 skip_channels: int = 128, kernel_size: int = 2, n_mels: int = 80,
                 upsample_strides: Sequence[int] = (15, 20), backend: str = "auto"):
        super().__init__()
        upsample_strides = _strides("upsample_strides", upsample_strides)
        self.config = dict(layers=layers, cycle=cycle, residual_channels=residual_channels,
                           gate_channels=gate_channels, skip_channels=skip_channels, kernel_size=kernel_size,
                           n_mels=n_mels, upsample_strides=upsample_strides, backend=backend)
        self.n_mels = _positive_int("n_mels", n_mels)
        self.upsampler = ConditionUpsampler(n_mels, upsample_strides)
        self.wavenet = WaveNetStack(1, 2, layers, cycle, residual_channels, gate_channels, skip_channels,
                                    kernel_size, n_mels, backend=backend)

    @property
    def receptive_field(self) -> int:
        """Past samples ``mean[:, t]`` can see: ``x[:, t - receptive_field : t]``."""
        return self.wavenet.receptive_field

    def forward(self, x: torch.Tensor, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_audio_and_mel(self, x, mel, self.n_mels, self.hop_length)
        h = self.upsampler(mel)
        y = self.wavenet(shift_right(x)[:, None], h)
        return y[:, 0], y[:, 1]

    # -- incremental sampling -----------------------------------------------------------------
    def wavenet_weights(self) -> WaveNetWeights:
        """The stack as :mod:`clarinet.ops` takes it (:func:`~clarinet.ops.pack_wavenet`, the samplers):
        its own parameters (not copies), dilations and hop."""
        return self.wavenet.weights(hop=self.hop_length)

    @torch.no_grad()
    def generate(self, mel: torch.Tensor, noise: Optional[torch.Tensor] = None, temperature: float = 1.0,
                 progress: bool = True, *, log_scale_min: float = -9.0, chunk: Optional[int] = None,
                 backend: str = "auto", span: int = 8192,
                 callback: Optional[Callable[[torch.Tensor], None]] = None,
                 sample_dtype: Optional[torch.dtype] = None) -> torch.Tensor:
        """Sample audio ``(B, T = frames * hop)`` one sample at a time.

        ``x_t = mean_t + exp(max(log_scale_t, log_scale_min)) * temperature * noise_t`` with
        ``(mean_t, log_scale_t)`` computed from the samples drawn so far; ``noise`` ``(B, T)``
        defaults to ``torch.randn`` (from the global generator). ``log_scale_min`` (default -9, the
        teacher's training floor) keeps a collapsed scale from freezing the sample.

        ``backend`` (see :func:`clarinet.ops.wavenet_sample`): ``"reference"`` (the Python sampler),
        ``"cpp"`` (the C++ loop; float32 CPU), ``"cuda"`` / ``"triton"`` (GPU samplers), ``"auto"``
        (``cpp`` for float32 CPU inputs, ``cuda`` then ``triton`` on a GPU, else the reference;
        ``CLARINET_BACKEND`` overrides it). Every backend gives the same samples up to float rounding.

        The audio is produced ``span`` samples at a time (:meth:`generate_stream`): the mel is
        upsampled per span and the sampler's state carried over, so memory is bounded by the span,
        not the utterance (60 s of audio never holds 60 s of conditioning); ``callback(piece)``
        (``(B, n)``) is called with each span as it is ready. ``chunk``: steps whose conditioning
        projection is computed at once (None: the backend's default). ``progress``: a tqdm bar in samples. ``sample_dtype``: the
        dtype the sampler runs in (default the model's): the conditioning and noise are rounded to it
        and the backend uses its weights in it, e.g. ``torch.float16`` for the C++ sampler's float16
        weights (half the bytes per sample) or the GPU samplers' 16-bit paths; outputs are float32.
        ``torch.int8``: the C++ sampler's int8 weights (``wavenet_sample(weight_dtype=torch.int8)``;
        conditioning and noise stay float32; other backends raise).
        """
        pieces = []
        for piece in self.generate_stream(mel, noise, temperature, progress=progress, log_scale_min=log_scale_min,
                                          chunk=chunk, backend=backend, span=span, sample_dtype=sample_dtype):
            if callback is not None:
                callback(piece)
            pieces.append(piece)
        if not pieces:
            return mel.new_zeros(mel.shape[0], 0)
        return pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=1)

    @torch.no_grad()
    def generate_stream(self, mel: torch.Tensor, noise: Optional[torch.Tensor] = None, temperature: float = 1.0,
                        *, progress: bool = False, log_scale_min: float = -9.0, chunk: Optional[int] = None,
                        backend: str = "auto", span: int = 8192,
                        sample_dtype: Optional[torch.dtype] = None) -> Iterator[torch.Tensor]:
        """:meth:`generate` as an iterator of ``(B, n)`` pieces (``n <= span``), each yielded as soon as
        it is sampled, so a caller can play or write audio while the rest is generated. The pieces
        concatenate to exactly what :meth:`generate` returns for the same noise.
        """
        from tqdm.auto import tqdm

        from ..ops.wavenet_sample import pack_wavenet, resolve_backend, sampler_state, wavenet_sample

        noise = generation_noise(self, mel, noise)
        temperature = float(temperature)
        if chunk is not None:
            _positive_int("chunk", chunk)
        _positive_int("span", span)
        B, T = noise.shape
        int8 = sample_dtype == torch.int8  # int8 weights, float32 inputs
        if sample_dtype is not None and not int8 and not (isinstance(sample_dtype, torch.dtype)
                                                          and sample_dtype.is_floating_point):
            raise TypeError(f"sample_dtype: expected a floating-point torch.dtype or torch.int8, got {sample_dtype!r}")
        run_dtype = torch.float32 if int8 else sample_dtype or mel.dtype
        packed = pack_wavenet(self)
        backend = resolve_backend(packed, mel.new_empty(B, self.n_mels, 0, dtype=run_dtype), backend)
        state_dtype = mel.dtype if backend == "reference" else torch.float32
        state = sampler_state(packed, B, mel.device, state_dtype)
        with tqdm(total=T, disable=not progress, desc="generate", unit="sample", unit_scale=True,
                  leave=False) as bar:
            for a in range(0, T, span):
                e = min(a + span, T)
                h = self.upsampler.forward_range(mel, a, e).to(run_dtype)
                x = wavenet_sample(packed, h, noise[:, a:e].to(run_dtype), temperature=temperature,
                                   log_scale_min=log_scale_min, backend=backend, chunk=chunk, state=state,
                                   weight_dtype=torch.int8 if int8 else None)
                bar.update(e - a)
                yield x

    @torch.no_grad()
    def incremental_forward(self, x: torch.Tensor, mel: torch.Tensor, progress: bool = False, *,
                            chunk: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced run of the incremental sampler: ``(mean, log_scale)``, each ``(B, T)``.

        Step ``t`` is fed ``x[:, t-1]`` instead of a sample, so the result equals :meth:`forward`
        (up to float rounding); it checks the sampler's bookkeeping.
        """
        check_audio_and_mel(self, x, mel, self.n_mels, self.hop_length)
        _positive_int("chunk", chunk)
        from ..ops.wavenet_sample import pack_wavenet, wavenet_sample_ref

        return wavenet_sample_ref(pack_wavenet(self), self.upsampler(mel), teacher_forcing=x, chunk=chunk,
                                  progress=progress)
