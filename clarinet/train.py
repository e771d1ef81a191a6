"""The trainer under its first name: the same API as :mod:`clarinet.training` (configuration, the shared
loop, and the teacher, student and text-to-wave recipes live there, one module each)."""
from .training import *  # noqa: F403
from .training import __all__  # noqa: F401
