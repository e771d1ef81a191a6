"""Test configuration.

Triton kernels run through the interpreter on machines without a GPU, so ``TRITON_INTERPRET`` must be
set before any kernel module is imported.

Markers and fixtures that decide where a test runs:

* ``gpu``: needs a CUDA GPU; skipped without one.
* ``cpu_only``: asserts what a machine without a GPU does or reports (Triton under the interpreter,
  the bench's "no GPU" rows); skipped on a GPU machine, where ``gpu`` tests cover the same paths.
* ``audio_io``: reads or writes audio files; skipped when soundfile or soxr is not installed (they
  are needed for audio files only). The ``sf`` fixture gives the soundfile module and skips the
  same way by itself (also when requested through another fixture).
* ``triton``: runs Triton kernels, on the GPU when there is one, else on CPU tensors through the
  interpreter; on a GPU machine such a test is also marked ``gpu``, so ``pytest -m gpu`` runs it.
  The ``triton_device`` fixture (``"cuda"`` on a GPU machine, else ``"cpu"``) implies it.

On a GPU machine, float32 references run in full float32: TF32 is disabled for the whole session
(cuDNN convolutions default to TF32, which would fail a correct kernel at float32 tolerances).
"""
import importlib
import os

import torch

HAS_GPU = torch.cuda.is_available()
if not HAS_GPU:
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

from clarinet._compat import tf32_disabled  # noqa: E402

DEVICE = "cuda" if HAS_GPU else "cpu"


def _importable(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


HAS_AUDIO_IO = _importable("soundfile") and _importable("soxr")


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU (skipped without one)")
    config.addinivalue_line("markers", "cpu_only: checks the behaviour of a machine without a GPU (skipped on one)")
    config.addinivalue_line("markers", "triton: runs Triton kernels (on the GPU when there is one; marked gpu there)")
    config.addinivalue_line("markers", "audio_io: reads or writes audio files (skipped without soundfile and soxr)")


def pytest_collection_modifyitems(config, items):
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    skip_cpu = pytest.mark.skip(reason="checks what a machine without a GPU does (the gpu tests cover this path)")
    skip_audio = pytest.mark.skip(reason="reads or writes audio files: needs soundfile and soxr "
                                         "(pip install soundfile soxr)")
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if ("triton_device" in fixtures or item.get_closest_marker("triton")) and HAS_GPU:
            item.add_marker(pytest.mark.gpu)
        if "gpu" in item.keywords and not HAS_GPU:
            item.add_marker(skip_gpu)
        if "cpu_only" in item.keywords and HAS_GPU:
            item.add_marker(skip_cpu)
        if "audio_io" in item.keywords and not HAS_AUDIO_IO:
            item.add_marker(skip_audio)


@pytest.fixture(scope="session", autouse=True)
def _float32_references_without_tf32():
    with tf32_disabled():
        yield


@pytest.fixture
def device():
    return DEVICE


@pytest.fixture
def triton_device():
    """Where Triton kernels run: the GPU when there is one, else the CPU through the interpreter."""
    return DEVICE


@pytest.fixture(scope="session")
def sf():
    """The soundfile module (tests that write or read audio files; skipped without soundfile or soxr)."""
    if not HAS_AUDIO_IO:
        pytest.skip("reads or writes audio files: needs soundfile and soxr (pip install soundfile soxr)")
    import soundfile

    return soundfile


@pytest.fixture(scope="module")
def one_thread():
    """Run a module on one intra-op thread: on the small shared CPU machines of CI, two OpenMP threads
    competing with other processes made tiny ops several times slower (measured: 2.8 s vs 9.8 s under
    load). Use with ``pytestmark = pytest.mark.usefixtures("one_thread")`` or as an argument."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
