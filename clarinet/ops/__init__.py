"""clarinet.ops: the public, autograd- and torch.compile-ready ops.

Each op has a reference (``<op>_ref``, plain PyTorch) in the same module.
"""
from .gaussian_kl import gaussian_kl, gaussian_kl_ref
from .gaussian_nll import gaussian_nll, gaussian_nll_ref
from .iaf_flow_head import iaf_flow_head, iaf_flow_head_ref
from .wavenet_layer import wavenet_layer, wavenet_layer_ref
from .wavenet_pack import PackedWaveNet, SamplerState, WaveNetLayerWeights, WaveNetWeights, pack_wavenet, sampler_state
from .wavenet_sample import wavenet_sample, wavenet_sample_ref

__all__ = [
    "gaussian_kl",
    "gaussian_kl_ref",
    "gaussian_nll",
    "gaussian_nll_ref",
    "iaf_flow_head",
    "iaf_flow_head_ref",
    "wavenet_layer",
    "wavenet_layer_ref",
    "PackedWaveNet",
    "SamplerState",
    "WaveNetLayerWeights",
    "WaveNetWeights",
    "pack_wavenet",
    "sampler_state",
    "wavenet_sample",
    "wavenet_sample_ref",
]
