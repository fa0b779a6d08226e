"""timing_events: deterministic, a fixed split, per-channel counts that say nothing of the class, and a class
that a time-resolved readout and a trained spiking network both find.

Bounds are in binomial standard deviations of a test-set accuracy at chance, sqrt(p (1 - p) / n) with
p = 1/10 and n = 400 test samples (0.015), so they hold on any machine: a classifier that sees nothing of
the class scores chance +- 4 sd, and 6 or more sd above chance is not luck.
"""
import math

import numpy as np
import pytest

from spikejax import data
from spikejax.data import timing_events

CHANCE = 1 / timing_events.NUM_CLASSES
SIGMA = math.sqrt(CHANCE * (1 - CHANCE) / timing_events.NUM_TEST)


@pytest.fixture(scope="module")
def timing_data_dir(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("timing_data"))
    data.load("timing_events", "train", data_dir=root)
    data.load("timing_events", "test", data_dir=root)
    return root


def _arrays(root, split):
    loaded = data.load("timing_events", split, data_dir=root)
    return loaded.dense(np.arange(len(loaded))).astype(np.float32), np.asarray(loaded.labels)  # [N, T, C], [N]


def test_samples_are_deterministic_and_the_split_is_fixed():
    first = list(timing_events.samples("test", seed=3))
    again = list(timing_events.samples("test", seed=3))
    other = list(timing_events.samples("test", seed=4))
    assert len(first) == timing_events.NUM_TEST
    for (a, label_a), (b, label_b) in zip(first, again):
        assert label_a == label_b and np.array_equal(a, b)
    # another seed draws other events for the same samples and labels
    assert [label for _, label in first] == [label for _, label in other]
    assert not all(np.array_equal(a, b) for (a, _), (b, _) in zip(first, other))
    train, test = timing_events.split_indices("train"), timing_events.split_indices("test")
    assert not set(train) & set(test) and len(train) + len(test) == timing_events.NUM_SAMPLES
    for indices in (train, test):
        assert np.all(np.bincount(indices % 10, minlength=10) == len(indices) // 10)  # balanced
    # a sample is drawn from (seed, index) alone: the same whichever split list or order made it
    events, label = first[7]
    assert label == 7 and np.array_equal(events, timing_events.simulate(7, 7, seed=3))


def test_every_class_uses_every_group_once_and_every_event_fits_the_default_tensor():
    patterns = timing_events.class_patterns()
    assert len(set(patterns)) == timing_events.NUM_CLASSES
    for order, intervals in patterns:
        assert sorted(order) == list(range(timing_events.NUM_GROUPS))  # equal counts: one volley per group
        assert set(intervals) <= set(timing_events.INTERVALS_MS)
    binning = data.get_info("timing_events").default_binning
    for events, _ in timing_events.samples("train"):
        assert events.dtype == timing_events.DTYPE and np.all(np.diff(events["t"]) >= 0)
        assert 0 <= events["x"].min() and events["x"].max() < timing_events.NUM_CHANNELS
        # binning starts at the first event and drops nothing after time_bins steps
        assert events["t"].max() - events["t"].min() < binning.time_bins * binning.bin_width_us


def test_per_channel_counts_are_at_chance_and_a_time_resolved_readout_is_not(timing_data_dir):
    from sklearn.linear_model import LogisticRegression

    (x_train, y_train), (x_test, y_test) = (_arrays(timing_data_dir, s) for s in ("train", "test"))
    assert x_train.shape[1:] == (80, timing_events.NUM_CHANNELS) and len(y_test) == timing_events.NUM_TEST
    counts = LogisticRegression(max_iter=2000).fit(x_train.sum(1), y_train)
    count_accuracy = counts.score(x_test.sum(1), y_test)
    assert count_accuracy < CHANCE + 4 * SIGMA, count_accuracy
    # the same linear readout on the binned input with time kept (in 4-step bins, [T/4 * C] features): timing
    # alone carries the class
    timed = lambda x: x.reshape(len(x), -1, 4, x.shape[-1]).sum(2).reshape(len(x), -1)
    readout = LogisticRegression(max_iter=2000, C=0.03).fit(timed(x_train), y_train)
    time_accuracy = readout.score(timed(x_test), y_test)
    assert time_accuracy > CHANCE + 20 * SIGMA, time_accuracy


def test_a_trained_spiking_network_is_far_above_chance(timing_data_dir, tmp_path):
    from configs import timing_events as timing_config
    from spikejax import train

    config = timing_config.get_config()
    config.data_dir = timing_data_dir
    config.epochs = 8  # ~0.4 (the config's 60 epochs: ~0.63), in ~13 s on 2 cores
    config.checkpoint_every_steps = 10_000
    config.log_every = 100
    result = train.train_and_evaluate(config, str(tmp_path / "run"))
    assert result["accuracy"] > CHANCE + 6 * SIGMA, result["accuracy"]
