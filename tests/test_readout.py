"""Readouts against plain numpy loops."""
import numpy as np
import pytest

from spikejax import readout


def _spikes(seed=0, shape=(15, 6, 4), rate=0.2):
    s = (np.random.default_rng(seed).random(shape) < rate).astype(np.float32)
    s[:, 0] = 0.0  # an all-silent sample
    return s


LABELS = np.array([0, 1, 2, 3, 0, 1])


def _numpy_predict(counts):
    return -1 if counts.sum() == 0 else int(np.argmax(counts))


def test_predict_and_accuracy_over_time():
    s = _spikes()
    np.testing.assert_array_equal(readout.predict(s), [_numpy_predict(s[:, b].sum(0)) for b in range(6)])
    expected = [np.mean([_numpy_predict(s[: t + 1, b].sum(0)) == LABELS[b] for b in range(6)])
                for t in range(15)]
    np.testing.assert_allclose(readout.accuracy_over_time(s, LABELS), expected, rtol=1e-6)
    mask = np.array([1, 1, 1, 0, 0, 1])
    masked = [np.mean([_numpy_predict(s[: t + 1, b].sum(0)) == LABELS[b] for b in range(6) if mask[b]])
              for t in range(15)]
    np.testing.assert_allclose(readout.accuracy_over_time(s, LABELS, mask), masked, rtol=1e-6)
    assert readout.predict(s)[0] == -1  # silent counts as no prediction, hence wrong


@pytest.mark.parametrize("threshold", [0.5, 0.7, 0.9])
def test_decision_time_matches_loop(threshold):
    s = _spikes(1, rate=0.3)
    times, preds = readout.decide(s, threshold)
    for b in range(s.shape[1]):
        t_ref, pred_ref = s.shape[0], _numpy_predict(s[:, b].sum(0))
        for t in range(s.shape[0]):
            n = s[: t + 1, b].sum(0)
            if n.sum() >= 1 and n.max() / n.sum() >= threshold:
                t_ref, pred_ref = t, _numpy_predict(n)
                break
        assert times[b] == t_ref and preds[b] == pred_ref
    np.testing.assert_array_equal(readout.decision_time(s, threshold), times)


def test_spike_counts_and_synops():
    s = _spikes(2, shape=(7, 3, 2, 5))
    fan_out = np.arange(10).reshape(2, 5)
    np.testing.assert_allclose(readout.spike_counts(s), s.sum(0))
    np.testing.assert_allclose(readout.total_spikes(s), [s[:, b].sum() for b in range(3)])
    expected = [sum(s[t, b, i, j] * fan_out[i, j] for t in range(7) for i in range(2) for j in range(5))
                for b in range(3)]
    np.testing.assert_allclose(readout.synops(s, fan_out), expected)
    np.testing.assert_allclose(readout.synops(s, 3), [3 * s[:, b].sum() for b in range(3)])


def test_rank_error():
    with pytest.raises(ValueError, match="time-major"):
        readout.predict(np.zeros((3, 4)))
