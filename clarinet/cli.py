"""The ``clarinet`` command line (``clarinet bench`` / ``python -m clarinet bench``)."""
from __future__ import annotations

import argparse
import sys

import torch

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _bench(args) -> int:
    from tqdm import tqdm

    from . import bench

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    size = args.size or ("full" if device.type == "cuda" else "small")
    dtype = DTYPES[args.dtype or ("float16" if device.type == "cuda" else "float32")]
    if dtype == torch.bfloat16 and device.type == "cpu" and "triton" in args.backends:
        print("note: Triton has no bfloat16 on the CPU", file=sys.stderr)
    cases = bench.cases(ops=args.ops, configs=args.configs, modes=args.modes, dtype=dtype, size=size)
    env = bench.environment(device)
    print(f"clarinet bench on {env['device']} (torch {env['torch']}, triton {env['triton']}), "
          f"{len(cases)} cases, size {size} {bench.SIZES[size]}, {dtype}", file=sys.stderr)
    rows = []
    for case in tqdm(cases, desc="bench", unit="case", file=sys.stderr, disable=args.quiet):
        rows += bench.run_case(case, args.backends, device, min_time=args.min_time)
    bench.write_record(args.out, env, rows)
    print(bench.markdown_table(rows))
    skipped = {(r["backend"], r["reason"]) for r in rows if r["status"] == "skipped"}
    for backend, reason in sorted(skipped):
        print(f"not run: {backend}: {reason}")
    bad = [r for r in rows if r["status"] in ("wrong", "error")]
    for r in bad:
        print(f"FAILED: {r['case']} {r['backend']}: {r['status']}: {r['reason']}")
    print(f"wrote {args.out}")
    return 1 if bad else 0


def build_parser() -> argparse.ArgumentParser:
    from . import bench

    p = argparse.ArgumentParser(prog="clarinet", description="ClariNet kernels and models")
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("bench", help="benchmark the ops on this machine (checks each backend against the reference first)")
    b.add_argument("--ops", nargs="+", choices=bench.OPS, default=list(bench.OPS))
    b.add_argument("--configs", nargs="+", choices=list(bench.CONFIGS), default=list(bench.CONFIGS),
                   help="wavenet_layer configurations (shared/PERF.md names)")
    b.add_argument("--modes", nargs="+", choices=bench.PASSES, default=list(bench.PASSES))
    b.add_argument("--backends", nargs="+", choices=bench.BENCH_BACKENDS, default=list(bench.BENCH_BACKENDS),
                   help="compile = torch.compile of the reference")
    b.add_argument("--dtype", choices=list(DTYPES), help="default: float16 on a GPU, float32 on the CPU")
    b.add_argument("--size", choices=list(bench.SIZES), help="(batch, samples); default: full on a GPU, small on the CPU")
    b.add_argument("--device", help="default: cuda when available, else cpu")
    b.add_argument("--min-time", type=float, default=0.5, help="CPU: seconds to spend timing each case (default 0.5)")
    b.add_argument("--out", default="clarinet-bench.json", help="JSON record to write (default clarinet-bench.json)")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    b.set_defaults(func=_bench)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
