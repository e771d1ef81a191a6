"""The tolerance table and comparison helpers (they live in clarinet.testing)."""
from clarinet.testing import RTOL, assert_close, rel_err  # noqa: F401
