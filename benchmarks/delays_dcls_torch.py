"""The PyTorch reference of the delayed layer, DCLS's `Dcls1d(version="gauss")`, timed at the sizes of
benchmarks/delays.py (issue 21, item 4 (d)). Runs in its own venv (torch + dcls), not spikejax's:

  python3 -m venv /work/venv-dcls && /work/venv-dcls/bin/pip install torch dcls numpy
  /work/venv-dcls/bin/python benchmarks/delays_dcls_torch.py --threads 2

Per synapse, as SNN-delays (Hammouamri et al.) uses it: Dcls1d(I, O, kernel_count=1, dilated_kernel_size=D,
bias=False, version="gauss") on x [B, I, T] left-padded with D - 1 zeros, positions P [1, O, I, 1] learnable,
SIG fixed at D/2 - 0.27 (DCLS adds 0.27: sigma = D/2, as in benchmarks/delays.py). Timed: forward, loss =
sum(y * c), backward to W and P; and the same with a plain Conv1d(I, O, D) weight (the conv floor), and
inference (no_grad forward). DCLS has no per-channel form; SNN-delays' layer is per synapse.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from DCLS.construct.modules import Dcls1d


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--T", type=int, default=100)
    parser.add_argument("--B", type=int, default=32)
    parser.add_argument("--I", type=int, default=700)
    parser.add_argument("--O", type=int, default=256)
    parser.add_argument("--D", type=int, default=25)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((args.T, args.B, args.I), dtype=np.float32))
    c = torch.from_numpy(rng.standard_normal((args.T, args.B, args.O), dtype=np.float32))
    x_padded = F.pad(x.permute(1, 2, 0), (args.D - 1, 0))  # [B, I, T + D - 1]: causal
    c_bot = c.permute(1, 2, 0).contiguous()  # [B, O, T]
    layer = Dcls1d(args.I, args.O, kernel_count=1, dilated_kernel_size=args.D, bias=False, version="gauss")
    with torch.no_grad():
        layer.P.uniform_(-(args.D // 2), args.D // 2)  # DCLS's positions are centred: tap = P + D // 2
        layer.SIG.fill_(args.D / 2 - 0.27)
    layer.SIG.requires_grad_(False)
    conv = torch.nn.Conv1d(args.I, args.O, args.D, bias=False)

    def train(module):
        module.zero_grad(set_to_none=True)
        loss = (module(x_padded) * c_bot).sum()
        loss.backward()
        return float(loss.detach())

    def infer(module):
        with torch.no_grad():
            return module(x_padded)

    calls = {"dcls synapse (train)": lambda: train(layer), "conv (train)": lambda: train(conv),
             "dcls synapse (inference)": lambda: infer(layer), "conv (inference)": lambda: infer(conv)}
    for _ in range(args.warmup):
        for call in calls.values():
            call()
    times = {name: [] for name in calls}
    faults = {name: [] for name in calls}
    for _ in range(args.reps):
        for name, call in calls.items():
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
            faults[name].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               "?")
    print(f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({args.threads} threads), "
          f"T={args.T} B={args.B} I={args.I} O={args.O} D={args.D}; median of {args.reps} rounds after "
          f"{args.warmup}; load {os.getloadavg()[0]:.1f}")
    print("| variant | ms per call, median (min-max) | x conv of the same kind | faults per call |")
    print("|---|---:|---:|---:|")
    for name in calls:
        ms = [t * 1e3 for t in times[name]]
        floor = "conv (train)" if "train" in name else "conv (inference)"
        ratio = statistics.median(a / b for a, b in zip(times[name], times[floor]))
        print(f"| {name} | {statistics.median(ms):.1f} ({min(ms):.1f}-{max(ms):.1f}) | {ratio:.2f} | "
              f"{statistics.median(faults[name]):.0f} |")


if __name__ == "__main__":
    main()
