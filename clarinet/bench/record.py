"""The JSON record of a run: the machine and versions, the rows, the Triton tuning report."""
from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess

import torch

from .. import __version__


def environment(device: torch.device) -> dict:
    env = dict(
        clarinet=__version__, torch=torch.__version__, python=platform.python_version(),
        time=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        commit=_git_commit(), device_type=device.type,
    )
    try:
        import triton

        env["triton"] = triton.__version__
    except ImportError:
        env["triton"] = None
    if device.type == "cuda":
        env["device"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda
    else:
        env["device"] = _cpu_name()
        from .. import roofline

        env["roofline"] = roofline.measure()  # one core's peak float32 FMA and int8 vpdpbusd rates
    env.update(machine_load())  # threads, CPUs available, load average (on a GPU machine too)
    return env


def machine_load() -> dict:
    """``threads`` (intra-op threads now), ``cpus_available`` (this process's CPUs) and ``load_avg``
    (1, 5 and 15-minute load averages): a CPU timing means little without them."""
    from .._threads import available_cpus

    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        load = None
    return dict(threads=torch.get_num_threads(), cpus_available=available_cpus(), load_avg=load)


#: a case whose 20th-80th percentile range exceeds this fraction of its median is reported as noisy
WIDE_SPREAD = 0.25


def load_warning(load: dict) -> str | None:
    """A warning when the 1-minute load average leaves fewer free CPUs than the threads in use."""
    if not load.get("load_avg"):
        return None
    busy, cpus, threads = load["load_avg"][0], load["cpus_available"], load["threads"]
    if busy + threads <= cpus + 0.5:
        return None
    return (f"the machine is busy: load average {busy:.1f} on {cpus} CPUs with {threads} threads of ours; CPU "
            f"timings will be slow and noisy (run on an idle machine, or with --threads {max(1, int(cpus - busy))})")


def spread_warnings(rows, limit: float = WIDE_SPREAD) -> list[str]:
    """One line per timed row whose (p80 - p20) / median exceeds ``limit``."""
    out = []
    for r in rows:
        if r.get("status") == "ok" and r.get("median_ms"):
            spread = (r["p80_ms"] - r["p20_ms"]) / r["median_ms"]
            if spread > limit:
                out.append(f"{r['case']} {r['backend']}: spread {spread:.0%} of the median "
                           f"(p20 {r['p20_ms']:.3g} ms, p80 {r['p80_ms']:.3g} ms): not a stable timing")
    return out


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip() + f" ({os.cpu_count()} CPUs)"
    except OSError:
        pass
    return platform.processor() or "cpu"


def _git_commit() -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if out.returncode != 0:
        return "unknown"
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def tuning_report() -> list[dict]:
    """What Triton autotuning cost in this process, per kernel and key (``clarinet.kernels._tuning``):
    configs kept and pruned, the best one, seconds of compiling and benchmarking. Empty without Triton."""
    try:
        from clarinet.kernels._tuning import tuning_report as report
    except ImportError:
        return []
    return report()


def write_record(path: str, env: dict, rows: list[dict]) -> None:
    """The JSON record: ``environment``, ``results`` (one dict per case and backend) and ``tuning``
    (:func:`tuning_report`)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(dict(environment=env, results=rows, tuning=tuning_report()), f, indent=1)
