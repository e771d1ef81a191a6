"""clarinet.models: the vocoders (Gaussian WaveNet teacher, Gaussian IAF student).

- :class:`GaussianWaveNet`: the autoregressive teacher (``forward``: parallel teacher forcing;
  ``generate``: the reference incremental sampler). Presets ``"teacher"``, ``"teacher-small"``.
- :class:`GaussianIAF`: the parallel student. Preset ``"student"``.
- :class:`WaveNetStack`, :class:`ConditionUpsampler`: the shared building blocks.
"""
from .iaf import GaussianIAF
from .wavenet import ConditionUpsampler, GaussianWaveNet, WaveNetLayer, WaveNetStack

__all__ = ["ConditionUpsampler", "GaussianIAF", "GaussianWaveNet", "WaveNetLayer", "WaveNetStack"]
