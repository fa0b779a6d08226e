"""Host binning throughput: one DVS-Gesture-sized sample (300k events over 6 s, 128x128x2) to
[T=300, 2x32x32] with `spikejax.data.events.bin_events`.

  python -m benchmarks.binning
"""
import time

import numpy as np

from spikejax.data.events import Binning, bin_events


def main(events=300_000, reps=20):
    rng = np.random.default_rng(0)
    sample = np.zeros(events, [("x", np.int16), ("y", np.int16), ("p", bool), ("t", np.int64)])
    sample["x"], sample["y"] = rng.integers(0, 128, events), rng.integers(0, 128, events)
    sample["p"], sample["t"] = rng.integers(0, 2, events), np.sort(rng.integers(0, 6_000_000, events))
    binning = Binning(time_bins=300, bin_width_us=5_000, downsample=4)
    bin_events(sample, (128, 128, 2), binning)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        bin_events(sample, (128, 128, 2), binning)
        times.append(time.perf_counter() - start)
    median = float(np.median(times))
    print(f"bin_events, {events} events -> [300, 2x32x32]: {median * 1e3:.1f} ms per sample, "
          f"{events / median / 1e6:.0f} M events/s (median of {reps})")


if __name__ == "__main__":
    main()
