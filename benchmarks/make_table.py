"""Regenerate the README's results table from the recorded runs in benchmarks/results/.

Usage: python benchmarks/make_table.py [--check]
With --check, exit 1 when the README's table differs from what the records give.
"""
from __future__ import annotations

import glob
import json
import os
import sys

from clarinet.bench import markdown_table, rtf_table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
START, END = "<!-- results-table:start -->", "<!-- results-table:end -->"


def table() -> str:
    paths = sorted(glob.glob(os.path.join(ROOT, "benchmarks", "results", "*.json")))
    if not paths:
        return "No recorded runs yet."
    lines = []
    for path in paths:
        with open(path) as f:
            rec = json.load(f)
        env = rec["environment"]
        rows = rec["results"]
        lines += [
            f"**{os.path.basename(path)}**: {env['device']}; torch {env['torch']}, triton {env.get('triton')}, "
            f"CUDA {env.get('cuda') or '-'}; clarinet {env['clarinet']} at {env['commit'][:12]}; {env['time']}",
            "",
        ]
        roof = env.get("roofline")
        if roof:  # one core's measured peaks (clarinet.roofline): the sampler rows' "% of core peak"
            reads = ", ".join(f"{int(k) >> 10} KiB buffer {v / 1e9:.0f} GB/s"
                              for k, v in roof.get("read_bytes_per_s", {}).items())
            lines += [f"Roofline, one core: float32 FMA ({roof['fma_isa']}) {roof['fma_macs_per_s'] / 1e9:.0f} G "
                      f"multiply-adds/s, int8 vpdpbusd ({roof['vnni_isa']}) {roof['vnni_macs_per_s'] / 1e9:.0f} G "
                      f"multiply-adds/s; reads {reads}.", ""]
        rtf = rtf_table(rows)
        if rtf:
            lines += ["Generation (real-time factors):", "", rtf, ""]
        png = os.path.splitext(path)[0] + ".png"
        if os.path.exists(png):
            rel = os.path.relpath(png, ROOT)
            lines += [f"![samples/s against batch size]({rel})", ""]
        lines += ["All cases:", "", markdown_table(rows)]
        skipped = sorted({f"{r['backend']} ({r['reason']})" for r in rows if r["status"] == "skipped"})
        if skipped:
            lines += ["", "Not run: " + "; ".join(skipped) + "."]
        lines.append("")
    return "\n".join(lines).rstrip()


def render(readme: str) -> str:
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{table()}\n{END}{tail}"


def main(argv) -> int:
    path = os.path.join(ROOT, "README.md")
    with open(path) as f:
        readme = f.read()
    new = render(readme)
    if "--check" in argv:
        if new != readme:
            print("README.md's results table is out of date: run python benchmarks/make_table.py")
            return 1
        return 0
    with open(path, "w") as f:
        f.write(new)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
