"""clarinet: ClariNet speech synthesis with hand-written Triton and CUDA kernels.

Importing clarinet needs neither a GPU, Triton nor the compiled extensions:
backends are loaded the first time an op asks for one.
"""
__version__ = "0.1.0"

from . import ops  # noqa: E402,F401
from .ops import gaussian_kl, gaussian_nll, wavenet_layer  # noqa: E402,F401
