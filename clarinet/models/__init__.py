"""clarinet.models: the vocoders (Gaussian WaveNet teacher, Gaussian IAF student) and text-to-wave.

- :class:`GaussianWaveNet`: the autoregressive teacher (``forward``: parallel teacher forcing;
  ``generate``: the reference incremental sampler). Presets ``"teacher"``, ``"teacher-small"``.
- :class:`GaussianIAF`: the parallel student. Preset ``"student"``.
- :class:`TextToWave`: encoder, attention decoder, bridge-net and Gaussian WaveNet vocoder trained
  jointly from text (``infer``, ``synthesize``). Presets ``"text2wave"``, ``"text2wave-tiny"``.
- :class:`WaveNetStack`, :class:`ConditionUpsampler`: the shared building blocks.
"""
from .iaf import GaussianIAF
from .text2wave import TextToWave
from .wavenet import ConditionUpsampler, GaussianWaveNet, WaveNetLayer, WaveNetStack

__all__ = ["ConditionUpsampler", "GaussianIAF", "GaussianWaveNet", "TextToWave", "WaveNetLayer", "WaveNetStack"]
