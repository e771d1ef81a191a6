"""Backend selection: explicit argument > ``CLARINET_BACKEND`` > "auto".

"auto" picks the fastest backend that supports the inputs' device and dtype
(and autograd, when gradients are needed). It never launches a GPU kernel on a
CPU tensor and never picks the Triton interpreter. The preference order on a
GPU (cuda, then triton, then reference) is the design's expectation; it has not
yet been measured on a GPU and will follow the recorded benchmarks when it has.
"""
from __future__ import annotations

import importlib
import os
from types import ModuleType

import torch

BACKENDS = ("auto", "reference", "triton", "cuda")
ENV_BACKEND = "CLARINET_BACKEND"
FAST_DTYPES = (torch.float32, torch.float16, torch.bfloat16)

# import results, filled lazily: name -> module or the ImportError message
_MODULES: dict[str, object] = {}

_HOW_TO_GET = {
    "triton": "install Triton (`pip install triton`); on a machine without a GPU set TRITON_INTERPRET=1 "
    "before importing clarinet to run Triton kernels through the interpreter",
    "cuda": "build the CUDA extension: reinstall clarinet with nvcc on PATH (or CUDA_HOME set) and "
    "without CLARINET_BUILD_CUDA=0",
}


def _module_name(backend: str, op: str) -> str:
    return f"clarinet.kernels.{op}" if backend == "triton" else "clarinet._cuda_ops"


def load(backend: str, op: str) -> ModuleType:
    """The module holding ``<op>_fwd`` / ``<op>_bwd`` launchers for a backend."""
    name = _module_name(backend, op)
    mod = _MODULES.get(name)
    if mod is None:
        try:
            mod = importlib.import_module(name)
        except ImportError as exc:  # missing optional backend
            mod = f"{type(exc).__name__}: {exc}"
        _MODULES[name] = mod
    if isinstance(mod, str):
        raise RuntimeError(f"backend={backend!r} is not available ({mod}); to get it, {_HOW_TO_GET[backend]}")
    return mod


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def unsupported_reason(backend: str, op: str, device: torch.device, dtype: torch.dtype, needs_grad: bool) -> str | None:
    """Why ``backend`` cannot run ``op`` on these inputs, or None if it can."""
    if backend == "reference":
        return None
    if dtype not in FAST_DTYPES:
        return f"backend={backend!r} supports float32, float16 and bfloat16 inputs, got {dtype}"
    if backend == "triton":
        if device.type == "cpu":
            if not _interpreting():
                return ("backend='triton' got CPU tensors; Triton runs on CPU tensors only through its interpreter "
                        "(set TRITON_INTERPRET=1 before importing clarinet), or move the tensors to a GPU")
            if dtype == torch.bfloat16:
                return "backend='triton' on CPU (Triton interpreter) has no bfloat16; use float32/float16 or a GPU"
        elif device.type != "cuda":
            return f"backend='triton' needs CUDA tensors, got device {device}"
    elif backend == "cuda":
        if device.type != "cuda":
            return f"backend='cuda' needs CUDA tensors, got device {device}"
        if needs_grad and op == "wavenet_layer":
            return ("backend='cuda' has only the inference forward of wavenet_layer; use backend='triton' "
                    "(or run under torch.no_grad())")
    try:
        mod = load(backend, op)
    except RuntimeError as exc:
        return str(exc)
    if not any(hasattr(mod, f"{op}{suffix}") for suffix in ("_fwd", "_run")):
        return f"backend={backend!r} has no {op} kernel"
    return None


# Under torch.compile the choice is made once, eagerly, at trace time (it
# imports modules and reads the environment) and becomes a constant of the graph.
@torch.compiler.assume_constant_result
def resolve(op: str, backend: str, device: torch.device, dtype: torch.dtype, needs_grad: bool) -> str:
    """Turn the ``backend=`` argument into a concrete backend name, or raise."""
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        env = os.environ.get(ENV_BACKEND, "auto") or "auto"
        if env not in BACKENDS:
            raise ValueError(f"environment variable {ENV_BACKEND}: expected one of {BACKENDS}, got {env!r}")
        backend = env
    if backend == "auto":
        if device.type != "cuda":
            return "reference"
        for candidate in ("cuda", "triton"):
            if unsupported_reason(candidate, op, device, dtype, needs_grad) is None:
                return candidate
        return "reference"
    reason = unsupported_reason(backend, op, device, dtype, needs_grad)
    if reason is not None:
        raise ValueError(reason)
    return backend
