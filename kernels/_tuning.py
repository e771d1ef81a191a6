"""Autotuning support for the Triton kernels: pruning before compiling, size buckets, a tuning record.

Every autotuned kernel of ``clarinet.kernels`` is declared with :func:`autotune` instead of
``triton.autotune``. That adds three things to Triton's autotuner:

* **Pruning before compiling.** ``estimate=`` is ``estimate(config, args) -> bytes``, the shared memory
  one block of ``config`` needs (``args``: the launch's named arguments, constexprs included). Configs
  whose estimate exceeds the device's opt-in limit per block (:func:`max_shared_memory`, read at run
  time: 232,448 B on H100/H200) are dropped before anything is compiled, through Triton's
  ``prune_configs_by={"early_config_prune": ...}``. If none fits, the one with the smallest estimate
  is kept (so the launch fails with Triton's ``OutOfResources`` and a message, instead of an empty
  autotune list). ``registers=`` (optional) is ``registers(config, args) -> bool``: False drops a
  config known to spill kilobytes for these arguments (e.g. float32 "ieee" dots on big tiles).
  :func:`prune_configs` is that rule as a pure function (tests call it with an explicit limit).
* **Size buckets.** Kernels whose best config depends on a length take an extra integer argument
  (e.g. ``BT_BUCKET``, the bucket of batch x time) that the launcher fills with :func:`bucket`
  (next power of two, clamped) and that is named in ``key=`` instead of the length itself, so a
  new length retunes only when it falls into a new bucket. The argument is unused in the kernel
  body (a power of two >= 16 always gets the same specialisation, so it never causes a recompile).
* **A record of what tuning cost.** The first launch of each (kernel, key) is timed (wall clock of
  pruning + compiling every kept config + benchmarking them + the launch itself; nothing is
  synchronised beyond what the autotuner does) and stored. :func:`tuning_report` returns the records
  as a JSON-serialisable list of dicts, one per (kernel, key), in the order they happened::

      {"kernel": "wavenet_layer.fwd",        # the name given to autotune()
       "key": {"R": 128, ..., "dtypes": ["torch.float16", ...]},  # the autotune key, by name
       "configs": <int>,                     # configs declared for this kernel
       "kept": <int>,                        # configs left after pruning (benchmarked if > 1)
       "pruned": ["BLOCK_T: 128, ...", ...], # str() of each pruned config
       "best": {"kwargs": {...}, "num_warps": <int>, "num_stages": <int>},  # the config chosen
       "seconds": <float>,                   # wall time of that first launch (compile + tuning)
       "bench_seconds": <float> | None}      # Triton's own bench_time (None: nothing benchmarked)

  :func:`reset_tuning_report` clears it. Under the interpreter (one config per kernel) a record is
  still made, with ``kept`` 1 and ``bench_seconds`` None; the cost of the record is one dict lookup
  per launch.

For CPU-side checks of launch resources (no GPU needed): :func:`capture` records the launches a
launcher would make instead of running them, and :func:`compile_config` compiles one of them with
one config for a given target (default sm_90a) and returns shared memory, registers and the stack
(spill) bytes per thread that ptxas produced. The kernel module must have been imported without
``TRITON_INTERPRET=1`` for that (tests do it in a subprocess).
"""
from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import tempfile
import time

import triton

#: ``CLARINET_AUTOTUNE=0``: compile and run only the first config that survives pruning, benchmark
#: nothing. For correctness runs on a GPU (benchmarks/gpu_run.sh's test stages), where compiling every
#: config of every kernel for every shape would cost minutes (one float32 config takes 4 to 40 s).
ENV_AUTOTUNE = "CLARINET_AUTOTUNE"

#: Opt-in shared memory per block of H100/H200 (sm_90), the default limit of the CPU checks.
SM90_MAX_SHARED = 232_448

_RECORDS: list[dict] = []
_CAPTURE: list | None = None


def bucket(n: int, lo: int = 16, hi: int = 1 << 20) -> int:
    """``n`` rounded up to a power of two, clamped to ``[lo, hi]`` (an autotune key for a length)."""
    return min(max(triton.next_power_of_2(max(int(n), 1)), lo), hi)


@functools.lru_cache(maxsize=None)
def _device_shared(index: int) -> int:
    try:
        return int(triton.runtime.driver.active.utils.get_device_properties(index)["max_shared_mem"])
    except Exception:  # another Triton version / driver: torch knows it too
        import torch

        props = torch.cuda.get_device_properties(index)
        return int(getattr(props, "shared_memory_per_block_optin", 0) or props.shared_memory_per_block)


def max_shared_memory(device) -> int | None:
    """Opt-in shared memory per block of ``device`` (a CUDA device or tensor), None if not a GPU."""
    device = getattr(device, "device", device)
    if getattr(device, "type", None) != "cuda":
        return None
    import torch

    index = device.index if device.index is not None else torch.cuda.current_device()
    return _device_shared(index)


def prune_configs(configs, args: dict, estimate, limit: int | None, registers=None) -> list:
    """The configs that ``registers(config, args)`` (if given) accepts and whose estimated shared
    memory fits ``limit`` (not checked when ``limit`` or ``estimate`` is None); never empty: with none left, the
    smallest estimate among those ``registers`` accepts (or among all)."""
    pool = [c for c in configs if registers is None or registers(c, args)] or list(configs)
    if limit is None or estimate is None:
        return pool
    need = [estimate(c, args) for c in pool]
    kept = [c for c, n in zip(pool, need) if n <= limit]
    return kept or [min(zip(need, range(len(pool)), pool))[2]]


def _first_device(args: dict):
    for v in args.values():
        if hasattr(v, "device") and hasattr(v, "dtype"):
            return v.device
    return None


def _config_dict(c) -> dict:
    return {"kwargs": dict(c.kwargs), "num_warps": c.num_warps, "num_stages": c.num_stages}


def _jsonable(v):
    if isinstance(v, (bool, int, float, str)) or v is None:
        return v
    return str(v)


class TunedKernel:
    """A ``triton.autotune`` kernel that records its tuning (see the module docstring).

    Launched as usual (``kernel[grid](*args, **meta)``); ``configs``, ``cache`` and every other
    attribute of the wrapped ``Autotuner`` are reachable through it.
    """

    def __init__(self, name: str, fn, configs, key, estimate=None, registers=None, **autotune_kw):
        self.name = name
        self.estimate = estimate
        self.registers = registers
        self._last_prune: tuple[int, list] | None = None
        self._seen: set = set()
        prune = {"early_config_prune": self._prune}
        self.tuner = triton.autotune(configs=configs, key=key, prune_configs_by=prune, **autotune_kw)(fn)
        self.key_names = list(key)

    def __getattr__(self, name):
        return getattr(self.__dict__["tuner"], name)

    def _prune(self, configs, named_args, **kwargs):
        args = {**named_args, **kwargs}
        kept = prune_configs(configs, args, self.estimate, max_shared_memory(_first_device(args)), self.registers)
        if os.environ.get(ENV_AUTOTUNE, "1") == "0":
            kept = kept[:1]
        self._last_prune = (len(kept), [str(c) for c in configs if all(c is not k for k in kept)])
        return kept

    def _key(self, args, kwargs):
        named = dict(zip(self.tuner.arg_names, args), **kwargs)
        key = {k: named[k] for k in self.key_names if k in named}
        dtypes = tuple(str(v.dtype) for v in named.values() if hasattr(v, "dtype"))
        return key, dtypes

    def __getitem__(self, grid):
        return lambda *args, **kwargs: self.run(*args, grid=grid, **kwargs)

    def warmup(self, *args, grid, **kwargs):
        return self.tuner.warmup(*args, grid=grid, **kwargs)

    def run(self, *args, grid, **kwargs):
        if _CAPTURE is not None:
            _CAPTURE.append((self, args, kwargs, grid))
            return None
        key, dtypes = self._key(args, kwargs)
        seen = (tuple(key.items()), dtypes)
        if seen in self._seen:
            return self.tuner[grid](*args, **kwargs)
        self._last_prune = None
        self.tuner.bench_time = None
        t0 = time.perf_counter()
        ret = self.tuner[grid](*args, **kwargs)
        seconds = time.perf_counter() - t0
        self._seen.add(seen)
        kept, pruned = self._last_prune or (len(self.tuner.configs), [])
        best = getattr(self.tuner, "best_config", None)
        _RECORDS.append({
            "kernel": self.name,
            "key": {**{k: _jsonable(v) for k, v in key.items()}, "dtypes": list(dtypes)},
            "configs": len(self.tuner.configs),
            "kept": kept,
            "pruned": pruned,
            "best": _config_dict(best) if best is not None else None,
            "seconds": seconds,
            "bench_seconds": self.tuner.bench_time if kept > 1 else None,
        })
        return ret


def autotune(name: str, configs, key, estimate=None, registers=None, **autotune_kw):
    """``triton.autotune`` with pruning by ``estimate`` / ``registers`` and a tuning record (module
    docstring)."""
    return lambda fn: TunedKernel(name, fn, configs, key, estimate, registers, **autotune_kw)


def tuning_report() -> list[dict]:
    """One JSON-serialisable dict per (kernel, autotune key) tuned in this process (module docstring)."""
    return [dict(r, key=dict(r["key"]), pruned=list(r["pruned"])) for r in _RECORDS]


def reset_tuning_report() -> None:
    """Forget the records (kernels already tuned are not tuned again, and so not recorded again)."""
    _RECORDS.clear()


# ----------------------------------------------------------------------------------------------
# CPU-side resource checks
# ----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def capture():
    """Record ``(kernel, args, kwargs, grid)`` of every autotuned launch inside the block instead of
    running it (outputs stay unwritten). For :func:`compile_config`."""
    global _CAPTURE
    outer, _CAPTURE = _CAPTURE, []
    try:
        yield _CAPTURE
    finally:
        _CAPTURE = outer


def _cuobjdump() -> str:
    try:
        return triton.knobs.nvidia.cuobjdump.path
    except Exception:
        from triton.backends.nvidia.compiler import get_ptxas

        try:
            ptxas = get_ptxas(90).path
        except TypeError:
            ptxas = get_ptxas().path
        return os.path.join(os.path.dirname(ptxas), "cuobjdump")


def _resource_usage(cubin: bytes) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        out = subprocess.run([_cuobjdump(), "-res-usage", f.name], capture_output=True, text=True,
                             check=True).stdout
    line = [x for x in out.splitlines() if "REG:" in x][-1]
    fields = dict(item.split(":", 1) for item in line.split() if ":" in item)
    return {"regs": int(fields["REG"]), "stack": int(fields["STACK"]), "local": int(fields["LOCAL"])}


def compile_unsupported() -> str | None:
    """Why :func:`compile_config` cannot work with the installed Triton, or None."""
    try:
        from triton.backends.compiler import GPUTarget  # noqa: F401
        from triton.backends.nvidia.compiler import get_ptxas  # noqa: F401
        from triton.compiler.compiler import ASTSource, make_backend  # noqa: F401
        from triton.runtime.jit import JITFunction, create_function_from_signature  # noqa: F401
    except ImportError as e:
        return f"this Triton ({triton.__version__}) lacks what compile_config uses: {e}"
    if not hasattr(JITFunction, "_pack_args"):
        return f"this Triton ({triton.__version__}) has no JITFunction._pack_args"
    if not os.path.exists(_cuobjdump()):
        return f"no cuobjdump at {_cuobjdump()}"
    return None


def compile_config(kernel: TunedKernel, args, kwargs, config, arch: int = 90, warp_size: int = 32) -> dict:
    """Compile one captured launch with ``config`` for ``cuda:<arch>`` (no GPU needed).

    The specialisation is the one a real launch of these arguments gets (Triton's own binder: tensor
    alignment, integers divisible by 16 or equal to 1). Returns ``{"shared": dynamic shared bytes,
    "regs": registers per thread, "stack": stack frame bytes per thread (spills), "local": local
    bytes, "seconds": compile time}``.
    """
    from triton.backends.compiler import GPUTarget
    from triton.compiler.compiler import ASTSource, make_backend
    from triton.runtime.jit import JITFunction, create_function_from_signature

    target = GPUTarget("cuda", arch, warp_size)
    backend = make_backend(target)
    fn, meta = kernel.tuner.fn, dict(kwargs, **config.all_kwargs())
    while not isinstance(fn, JITFunction):  # apply heuristics as Heuristics.run does
        values = getattr(fn, "values", {})
        for name, heur in values.items():
            meta[name] = heur({**dict(zip(fn.arg_names, args)), **meta})
        fn = fn.fn
    binder = create_function_from_signature(fn.signature, fn.params, backend)
    bound, spec, opts = binder(*args, **meta)
    options, signature, constexprs, attrs = fn._pack_args(backend, meta, bound, spec, opts)
    t0 = time.perf_counter()
    compiled = triton.compile(ASTSource(fn, signature, constexprs, attrs), target=target, options=options.__dict__)
    seconds = time.perf_counter() - t0
    return {"shared": int(compiled.metadata.shared), **_resource_usage(compiled.asm["cubin"]), "seconds": seconds}
