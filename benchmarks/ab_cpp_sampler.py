"""Side-by-side (interleaved A B C A B C ...) timing of the C++ AR sampler's weight dtypes, one thread.

Usage: OMP_NUM_THREADS=1 python benchmarks/ab_cpp_sampler.py [--presets teacher-small teacher]
       [--samples 24000] [--rounds 5] [--isa auto]
Prints samples/s (median over rounds), x real time at 24 kHz, the fraction of the core's peak
multiply-add rate, the rate at which one core could merely read each sample's weights from a buffer
inside / beyond L2 (clarinet.roofline), and the machine load before and after.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from clarinet import roofline
from clarinet.models import GaussianWaveNet
from clarinet.ops.wavenet_sample import pack_wavenet

DTYPES = (torch.float32, torch.float16, torch.int8)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--presets", nargs="+", default=["teacher-small", "teacher"])
    ap.add_argument("--samples", type=int, default=24000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--isa", default="auto")
    args = ap.parse_args()
    torch.set_num_threads(1)
    roof = roofline.measure()
    print(f"load {os.getloadavg()}; roofline {roof}")
    for preset in args.presets:
        torch.manual_seed(0)
        m = GaussianWaveNet.from_preset(preset).eval()
        p = pack_wavenet(m)
        T = args.samples
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            h = m.upsampler(torch.randn(1, m.n_mels, T // m.hop_length, generator=g)).contiguous()
        noise = torch.randn(1, T, generator=g)
        samplers = {dt: p.cpp(dt == torch.float16, int8=dt == torch.int8) for dt in DTYPES}
        outs = [torch.empty(1, T) for _ in range(3)]
        times = {dt: [] for dt in DTYPES}
        for _ in range(args.rounds + 1):  # the first round warms up
            for dt, s in samplers.items():
                t0 = time.perf_counter()
                s.run(h.numpy(), noise.numpy(), None, *(o.numpy() for o in outs), 1.0, -9.0, 64, 1, isa=args.isa)
                times[dt].append(time.perf_counter() - t0)
        c = p.config
        rate = {dt: T / statistics.median(v[1:]) for dt, v in times.items()}
        for dt in DTYPES:
            n = roofline.sampler_counts(c["R"], c["G"], c["S"], c["C"], c["K"], c["layers"], dt)
            frac = roofline.core_fraction(rate[dt] * n["macs"], dt, roof)
            bound = ", ".join(f"{int(k) >> 10} KiB reads {v / n['weight_bytes']:.0f}"
                              for k, v in roof["read_bytes_per_s"].items())
            print(f"{preset:14s} {str(dt).replace('torch.', ''):8s} {rate[dt]:9.0f} samples/s  "
                  f"{rate[dt] / 24000:5.2f}x real time  {rate[dt] / rate[torch.float16]:4.2f}x float16  "
                  f"{n['macs'] / 1e3:.0f}k MACs {n['weight_bytes'] / 1e6:.2f} MB/sample  "
                  f"{100 * frac:4.1f}% of core peak; weight-stream bound ({bound}) samples/s"
                  + (f"  ({samplers[dt].int8_isa(args.isa)})" if dt == torch.int8 else ""))
    print(f"load {os.getloadavg()}")


if __name__ == "__main__":
    main()
