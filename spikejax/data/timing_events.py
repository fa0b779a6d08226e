"""timing_events: an embedded temporal task where only the timing of spikes carries the class.

32 input channels (sensor_size (32, 1, 1), one polarity, like a cochlea) in 4 groups of 8: group g is
channels 8g..8g+7. A sample is one 80 ms window (80 steps of 1 ms at the default binning) holding a
sequence of 4 volleys, one per group, so every sample uses every group exactly once, and background noise.

Each of the 10 classes is a fixed ORDER of the 4 groups and 3 INTERVALS between consecutive volleys, each
interval one of 4, 8, 12, 16 or 20 ms (`class_patterns()`: drawn once from a fixed seed, all 10 (order,
intervals) pairs distinct and the sequence at most 52 ms long). A sample of class c is made as follows, in
integer microseconds:

- onset ~ uniform [0, 20) ms, the same for the whole sample (a random global start);
- volley k of the class's sequence is centred at onset + (sum of the first k intervals);
- every channel of the volley's group fires one spike with probability 0.85 (else none: channel-count noise
  that does not depend on the class), at the centre plus Gaussian jitter of sd 1 ms;
- background noise: each channel fires Poisson spikes at 10 Hz uniformly over the whole 80 ms window
  (0.8 per channel, ~26 per sample, the same distribution in every class);
- spikes are clipped into [0, 80 ms).

Every channel thus fires (motif) Bernoulli(0.85) + (noise) Poisson(0.8) spikes in every class: the
per-channel event counts have one distribution whatever the class, so a readout of counts alone is at
chance, 1/10. Which group fires when relative to the others is the class: a network must compare spike
times across channels that lie up to 20 ms apart. A neuron with a synaptic delay equal to an interval turns
it into a coincidence; a feedforward LIF network without delays must bridge the gap with its membrane
(beta 0.9 per 1 ms step forgets in ~10 ms), which works for short intervals and poorly for long ones.

Binning (spikejax.data.events) starts each sample at its first event, a noise spike or the first volley,
so the sequence's start within the tensor varies too. Every event falls within the 80 steps.

Deterministic: sample n of the (fixed) index list is drawn from numpy's generator seeded by (seed, n), so
samples do not depend on the order or the chunks they are made in. The split is fixed and does not depend
on the seed: 2,000 samples, label n % 10, the first 400 (40 per class) the test split, the other 1,600
(160 per class) the training split.
"""
from __future__ import annotations

import itertools

import numpy as np

NUM_CHANNELS = 32
NUM_GROUPS = 4
GROUP_SIZE = NUM_CHANNELS // NUM_GROUPS
SENSOR_SIZE = (NUM_CHANNELS, 1, 1)
NUM_CLASSES = 10
CLASSES = [f"pattern {c}" for c in range(NUM_CLASSES)]
DTYPE = np.dtype([("x", np.int16), ("t", np.int64), ("p", np.int8)])
MS = 1000  # microseconds
WINDOW_US = 80 * MS
ONSET_MAX_US = 20 * MS
INTERVALS_MS = (4, 8, 12, 16, 20)
MAX_SEQUENCE_MS = 52
FIRE_PROBABILITY = 0.85
JITTER_US = 1 * MS
NOISE_HZ = 10.0
NUM_SAMPLES = 2000
NUM_TEST = 400
_CLASS_SEED = 20260  # the classes' patterns: fixed, whatever the sample seed


def class_patterns() -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """The 10 classes as (order of the 4 groups, 3 intervals in ms), the same on every machine."""
    rng = np.random.default_rng(_CLASS_SEED)
    orders = list(itertools.permutations(range(NUM_GROUPS)))
    patterns: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
    while len(patterns) < NUM_CLASSES:
        order = orders[rng.integers(len(orders))]
        intervals = tuple(int(i) for i in rng.choice(INTERVALS_MS, NUM_GROUPS - 1))
        if sum(intervals) <= MAX_SEQUENCE_MS and (order, intervals) not in patterns:
            patterns.append((tuple(int(g) for g in order), intervals))
    return patterns


def split_indices(split: str) -> np.ndarray:
    """Sample indices of the fixed split ("train" or "test"); sample n has label n % 10."""
    if split == "train":
        return np.arange(NUM_TEST, NUM_SAMPLES)
    if split == "test":
        return np.arange(NUM_TEST)
    raise ValueError(f"timing_events split must be 'train' or 'test', got {split!r}")


def simulate(index: int, label: int, seed: int = 0, patterns=None) -> np.ndarray:
    """One sample's events (structured array x, t [us], p = 0), sorted by time."""
    order, intervals = (patterns or class_patterns())[label]
    rng = np.random.default_rng([seed, index])
    onset = rng.integers(0, ONSET_MAX_US)
    centres = onset + MS * np.concatenate([[0], np.cumsum(intervals)])
    channels, times = [], []
    for group, centre in zip(order, centres):
        fire = rng.random(GROUP_SIZE) < FIRE_PROBABILITY
        channels.append(group * GROUP_SIZE + np.flatnonzero(fire))
        times.append(np.rint(centre + JITTER_US * rng.standard_normal(int(fire.sum()))))
    noise = rng.poisson(NOISE_HZ * WINDOW_US / 1e6 * NUM_CHANNELS)
    channels.append(rng.integers(0, NUM_CHANNELS, noise))
    times.append(rng.integers(0, WINDOW_US, noise))
    x, t = np.concatenate(channels), np.clip(np.concatenate(times).astype(np.int64), 0, WINDOW_US - 1)
    events = np.zeros(len(x), DTYPE)
    events["x"], events["t"] = x, t
    return events[np.argsort(t, kind="stable")]


def samples(split: str, seed: int = 0):
    """Yields (events, label) for the split."""
    patterns = class_patterns()
    for index in split_indices(split):
        label = int(index % NUM_CLASSES)
        yield simulate(int(index), label, seed, patterns), label
