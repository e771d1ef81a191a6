"""The number of intra-op CPU threads the commands use (``--threads``), and how busy the machine is.

PyTorch starts one intra-op thread per core. On a machine whose cores are already busy those threads
wait for each other: measured on a 2-core machine at load average 8-10 (README, "Threads"), one
thread trained the small teacher at 3.5-3.9k samples/s against 0.43-0.66k with two, and the student
generated 7.3-7.5k samples/s against 0.84-1.05k. So the
default, ``"auto"``, takes only the cores that are free: ``min(torch's default, CPUs available to
this process - 1-minute load average)``, at least 1, and leaves the count alone when
``OMP_NUM_THREADS`` is set (the user, or torchrun, chose).
"""
from __future__ import annotations

import math
import os
from typing import Union

import torch

__all__ = ["available_cpus", "busy_cpus", "resolve_threads", "set_threads"]


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask; ``os.cpu_count()`` where there is none)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def busy_cpus() -> float:
    """The 1-minute load average (runnable processes), 0.0 where the OS has none."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return 0.0


def resolve_threads(value: Union[int, str, None] = "auto") -> int:
    """The thread count for ``value``: an int >= 1 as given; ``"auto"`` / None as the module docstring
    says. ValueError for anything else."""
    if value is None or value == "auto":
        if os.environ.get("OMP_NUM_THREADS"):
            return torch.get_num_threads()
        free = available_cpus() - busy_cpus()
        return max(1, min(torch.get_num_threads(), int(math.floor(free + 0.5))))
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"threads: expected 'auto' or an integer >= 1, got {value!r}")
    return value


def set_threads(value: Union[int, str, None] = "auto") -> int:
    """``torch.set_num_threads(resolve_threads(value))``; returns the count."""
    n = resolve_threads(value)
    if n != torch.get_num_threads():
        torch.set_num_threads(n)
    return n
