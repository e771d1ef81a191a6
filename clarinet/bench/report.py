"""The tables (markdown) and the PNG of generation rates made from a run's rows."""
from __future__ import annotations

import os

from .cases import SAMPLE_RATE, SAMPLING_PRESETS


def _ref_key(r: dict) -> tuple:
    """Rows compared with the same reference row: a generation case's reference runs in float32 only,
    so every dtype of (op, model, batch) is compared with it; other cases by name."""
    if r["op"] in SAMPLING_PRESETS:
        return (r["op"], r["config"], r["shape"]["B"])
    return (r["case"],)


def markdown_table(rows: list[dict]) -> str:
    """Markdown table: one line per (case, backend) that ran, speed-up against eager."""
    eager = {_ref_key(r): r["samples_per_s"] for r in rows if r["backend"] == "reference" and r["status"] == "ok"}
    lines = ["| case | shape | backend | median ms (p20-p80) | GFLOP/s | GB/s | samples/s | vs eager |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        if r["status"] != "ok":
            continue
        shape = ",".join(f"{k}={v}" for k, v in r["shape"].items())
        speedup = f"{r['samples_per_s'] / eager[_ref_key(r)]:.2f}x" if _ref_key(r) in eager else "-"
        gbps = f"{r['gbps']:.2f}" if r["bytes"] else "-"
        rate = f"{r['samples_per_s']:.3g}"
        if "x_real_time" in r:
            rate += f" ({r['x_real_time']:.3g}x real time{'; ' + r['note'] if r['note'] else ''})"
        lines.append(f"| {r['case']} | {shape} | {r['backend']} | {r['median_ms']:.3f} "
                     f"({r['p20_ms']:.3f}-{r['p80_ms']:.3f}) | {r['gflops']:.1f} | {gbps} | {rate} | {speedup} |")
    return "\n".join(lines)


def headline(rows: list[dict]) -> str:
    """The real-time-factor headline: per generation preset, the fastest backend at batch 1."""
    best: dict = {}
    for r in rows:
        if r["status"] == "ok" and r["op"] in SAMPLING_PRESETS and r["shape"]["B"] == 1:
            key = (r["op"], r["config"])
            if key not in best or r["x_real_time"] > best[key]["x_real_time"]:
                best[key] = r
    if not best:
        return ""
    lines = [f"| generation, batch 1 | best backend | dtype | x real time ({SAMPLE_RATE // 1000} kHz) | samples/s |",
             "| --- | --- | --- | --- | --- |"]
    for (op, config), r in sorted(best.items()):
        kind = "autoregressive" if op == "ar_sampling" else "parallel (IAF)"
        lines.append(f"| {config} ({kind}) | {r['backend']} | {r['dtype']} | {r['x_real_time']:.3g} | "
                     f"{r['samples_per_s']:.3g} |")
    return "\n".join(lines)


def rtf_table(rows: list[dict]) -> str:
    """Markdown table of the generation rows: samples/s, x real time per stream, ratio to the reference."""
    ok = [r for r in rows if r["status"] == "ok" and r["op"] in SAMPLING_PRESETS]
    if not ok:
        return ""
    ref = {_ref_key(r): r["samples_per_s"] for r in ok if r["backend"] == "reference"}
    lines = [f"| generation | batch | samples | backend | dtype | samples/s | x real time (per stream, {SAMPLE_RATE // 1000} kHz)"
             " | vs reference |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in sorted(ok, key=lambda r: (r["op"], r["config"], r["shape"]["B"], r["backend"] != "reference",
                                       r["backend"], r["dtype"])):
        vs = f"{r['samples_per_s'] / ref[_ref_key(r)]:.1f}x" if _ref_key(r) in ref else "-"
        note = f" ({r['note']})" if r.get("note") else ""
        if r.get("core_fraction") is not None:
            note += f" ({100 * r['core_fraction']:.0f}% of core peak)"
        lines.append(f"| {r['op']} {r['config']} | {r['shape']['B']} | {r['shape']['T']} | {r['backend']}{note} | "
                     f"{r['dtype']} | {r['samples_per_s']:.3g} | {r['x_real_time']:.3g} | {vs} |")
    return "\n".join(lines)


def plot_sampling(rows: list[dict], path: str, title: str = "") -> str | None:
    """PNG of samples/s against batch size, one line per (model, backend); None when written,
    else why not (no generation rows, or matplotlib missing: ``pip install clarinet[plot]``)."""
    ok = [r for r in rows if r["status"] == "ok" and r["op"] in SAMPLING_PRESETS]
    if not ok:
        return "no generation rows to plot"
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install 'clarinet[plot]')"
    ops = sorted({r["op"] for r in ok})
    fig, axes = plt.subplots(1, len(ops), figsize=(6.5 * len(ops), 4.5), squeeze=False)
    for ax, op in zip(axes[0], ops):
        lines: dict = {}
        for r in ok:
            if r["op"] == op:
                lines.setdefault((r["config"], r["backend"], r["dtype"]), []).append((r["shape"]["B"], r["samples_per_s"]))
        for (config, backend, dtype), pts in sorted(lines.items()):
            pts.sort()
            ax.plot([b for b, _ in pts], [v for _, v in pts], marker="o", label=f"{config} {backend} {dtype}")
        ax.axhline(SAMPLE_RATE, color="gray", linestyle="--", linewidth=1, label="real time, one stream")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch (utterances)")
        ax.set_ylabel("samples/s (all streams)")
        ax.set_title(op)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None
