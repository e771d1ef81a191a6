"""Test configuration.

Triton kernels run through the interpreter on machines without a GPU, so
``TRITON_INTERPRET`` must be set before any kernel module is imported.
"""
import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

HAS_GPU = torch.cuda.is_available()
DEVICE = "cuda" if HAS_GPU else "cpu"


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU (skipped without one)")


def pytest_collection_modifyitems(config, items):
    if HAS_GPU:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def device():
    return DEVICE


@pytest.fixture(scope="module")
def one_thread():
    """Run a module on one intra-op thread: on the small shared CPU machines of CI, two OpenMP threads
    competing with other processes made tiny ops several times slower (measured: 2.8 s vs 9.8 s under
    load). Use with ``pytestmark = pytest.mark.usefixtures("one_thread")`` or as an argument."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
