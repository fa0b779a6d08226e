"""What the cache's integrity check costs at open: CRC-32 throughput over a file in the page cache, and a
whole `data.load` of the digits_events train split (size + CRC-32 of every file, label range).

  python -m benchmarks.cache_verify               # 1 GiB file; NMNIST's train cache is about 1.7 GB
  python -m benchmarks.cache_verify --gib=0.25
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

from spikejax import data
from spikejax.data.cache import file_crc32


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    size = int(args.gib * 2**30)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "blob.bin")
        np.random.default_rng(0).integers(0, 255, size, dtype=np.uint8).tofile(path)
        file_crc32(path)  # into the page cache
        for _ in range(args.reps):
            start = time.perf_counter()
            file_crc32(path)
            seconds = time.perf_counter() - start
            print(f"CRC-32 of {args.gib:g} GiB from the page cache: {seconds:.2f} s, {args.gib / seconds:.2f} GiB/s")
    data.load("digits_events", "train")  # built on first use
    for _ in range(args.reps):
        start = time.perf_counter()
        split = data.load("digits_events", "train")
        print(f"data.load digits_events train ({os.path.getsize(os.path.join(split.path, 'spikes.npy')) / 2**20:.1f} "
              f"MiB, verified): {1e3 * (time.perf_counter() - start):.1f} ms")


if __name__ == "__main__":
    main()
