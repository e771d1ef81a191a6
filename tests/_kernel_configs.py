"""Compile the autotune configs of the fused WaveNet layer kernels for sm_90a, without a GPU.

Run as a script (``python tests/_kernel_configs.py MODE``, MODE ``fast`` or ``all``) in a process
WITHOUT ``TRITON_INTERPRET=1`` (the kernels must be real ``JITFunction`` objects, and the GPU config
lists must be the ones declared): prints one JSON object per captured launch::

    {"preset", "dtype", "prec", "kernel", "launch": "M=.. N=.. NT=.." or "",
     "configs": [{"config": str, "estimate": bytes, "registers_ok": bool, "kept": bool,
                  "compiled": {"shared", "regs", "stack", "local", "seconds"} or null}]}

Launches are captured from the real launchers (``wavenet_layer_fwd`` / ``wavenet_layer_bwd``) on CPU
tensors of the preset's shape, so every specialisation (unit strides, strides divisible by 16,
constexprs) is the one a GPU launch of contiguous inputs gets. ``fast`` compiles, per launch, the
kept config with the largest estimate and the pruned config with the smallest (where the estimate
decides); ``all`` compiles every config the register rule keeps. Configs pruned by the register rule
(float32 "ieee" tiles known to spill kilobytes, 20 to 77 s of compile each) are never compiled.
"""
from __future__ import annotations

import json
import os
import sys

LIMIT = 232_448  # H100 / H200 opt-in shared memory per block
B, T, DILATION = 2, 4096, 4
DTYPES = {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}


def presets() -> dict:
    from clarinet.models.iaf import STUDENT_PRESETS
    from clarinet.models.wavenet import TEACHER_PRESETS

    out = {}
    for name, p in (("teacher", TEACHER_PRESETS["teacher"]), ("student", STUDENT_PRESETS["student"])):
        out[name] = dict(R=p["residual_channels"], G=p["gate_channels"], S=p["skip_channels"], C=p["n_mels"],
                         K=p["kernel_size"])
    return out


def launches(preset: dict, dtype, prec: str) -> list:
    """``(kernel, args, kwargs, launch label)`` of one forward + backward, one per distinct launch."""
    import torch

    from clarinet.kernels import _tuning
    from clarinet.kernels import wavenet_layer as W

    R, G, S, C, K = (preset[k] for k in "RGSCK")
    mk = lambda *shape: torch.empty(*shape, dtype=dtype)  # noqa: E731
    inputs = (mk(B, R, T), mk(G, R, K), mk(G), mk(R, G // 2), mk(R), mk(S, G // 2), mk(S), mk(B, C, T), mk(G, C))
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = prec == "tf32"
    try:
        with _tuning.capture() as calls:
            W.wavenet_layer_fwd(*inputs, DILATION, True)
            W.wavenet_layer_bwd(mk(B, R, T), mk(B, S, T), *inputs, DILATION, True)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old
    out, seen = [], set()
    for kern, args, kwargs, _grid in calls:
        named = dict(zip(kern.tuner.arg_names, args))
        label = ""
        if kern.name == "wavenet_layer.wgrad":
            label = f"M={named['M']} N={named['N']} NT={named['NT']} bias={named['pbias_ptr'] is not None}"
        if (kern.name, label) not in seen:
            seen.add((kern.name, label))
            out.append((kern, args, kwargs, label))
    return out


def _plan(mode: str) -> list:
    import torch

    from clarinet.kernels import _tuning

    jobs, wgrad_done = [], set()
    for pname, preset in presets().items():
        for dname, prec in (("fp16", "tf32"), ("bf16", "tf32"), ("fp32", "tf32"), ("fp32", "ieee")):
            if mode == "fast" and (dname == "bf16" or prec == "ieee"):
                # bf16: the same allocations as float16 (measured); "ieee": its kept configs are far
                # below the limit and cost 5 to 40 s of compile each. The exhaustive run covers both.
                continue
            for kern, args, kwargs, label in launches(preset, getattr(torch, DTYPES[dname]), prec):
                named = {**dict(zip(kern.tuner.arg_names, args)), **kwargs}
                configs = kern.tuner.configs
                kept = _tuning.prune_configs(configs, named, kern.estimate, LIMIT, kern.registers)
                rows = []
                for c in configs:
                    rows.append({"config": str(c), "estimate": kern.estimate(c, named),
                                 "registers_ok": kern.registers is None or kern.registers(c, named),
                                 "kept": any(c is k for k in kept), "compiled": None, "_cfg": c})
                ok = [r for r in rows if r["registers_ok"]]
                if mode == "all":
                    todo = ok
                else:
                    k = [r for r in ok if r["kept"]]
                    p = [r for r in ok if not r["kept"]]
                    todo = ([max(k, key=lambda r: r["estimate"])] if k else []) + \
                           ([min(p, key=lambda r: r["estimate"])] if p else [])
                    if kern.name == "wavenet_layer.wgrad":
                        if (pname, dname, prec) in wgrad_done:
                            todo = []  # the weight-gradient configs fit with room to spare: one launch is enough
                        wgrad_done.add((pname, dname, prec))
                jobs.append({"preset": pname, "dtype": dname, "prec": prec, "kernel": kern.name, "launch": label,
                             "configs": rows, "_todo": todo, "_kern": kern, "_args": args, "_kwargs": kwargs})
    return jobs


def _compile(item):
    i, j = item
    job, row = _JOBS[i], _JOBS[i]["configs"][j]
    from clarinet.kernels import _tuning

    return i, j, _tuning.compile_config(job["_kern"], job["_args"], job["_kwargs"], row["_cfg"])


_JOBS: list = []


def main(mode: str) -> None:
    import multiprocessing as mp

    from clarinet.kernels import _tuning

    global _JOBS
    why = _tuning.compile_unsupported()
    if why:
        print(json.dumps({"skip": why}))
        return
    _JOBS = _plan(mode)
    work = [(i, j) for i, job in enumerate(_JOBS) for j, row in enumerate(job["configs"])
            if any(row is r for r in job["_todo"])]
    n = max(1, min(len(work), int(os.environ.get("CLARINET_COMPILE_PROCS", os.cpu_count() or 1))))
    with mp.get_context("fork").Pool(n) as pool:
        for i, j, res in pool.imap_unordered(_compile, work):
            _JOBS[i]["configs"][j]["compiled"] = res
    for job in _JOBS:
        out = {k: v for k, v in job.items() if not k.startswith("_")}
        out["configs"] = [{k: v for k, v in row.items() if not k.startswith("_")} for row in job["configs"]]
        print(json.dumps(out))


if __name__ == "__main__":
    if os.environ.get("TRITON_INTERPRET") == "1":
        sys.exit("run without TRITON_INTERPRET=1")
    os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    main(sys.argv[1] if len(sys.argv) > 1 else "fast")
