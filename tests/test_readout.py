"""Readouts against plain numpy loops."""
import jax.numpy as jnp
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


def _numpy_conv_same(x, kernel):
    """Stride-1 SAME convolution by loops: x [H, W, Ci], kernel [kh, kw, Ci, Co] -> [H, W, Co]."""
    kh, kw, _, co = kernel.shape
    padded = np.pad(x, (((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2), (0, 0)))
    out = np.zeros(x.shape[:2] + (co,))
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            out[i, j] = np.tensordot(padded[i:i + kh, j:j + kw], kernel, axes=3)
    return out


def test_neurobench_operations_match_binarised_layers_applied_in_numpy():
    """NeuroBench's count: the layer with nonzero weights set to 1 (bias excluded) applied to the input with
    nonzero values set to 1, summed; ACs when a step's inputs are all in {-1, 0, 1}, MACs otherwise. The
    conv net's connections (after its average pools) against that computed with numpy loops."""
    from spikejax import models

    neuron = models.Neuron(beta=0.9, threshold=1.0)
    model = models.build("conv", (2, 8, 8), 3, neuron, seed=0, hidden=(16,), init_scale=6.0)
    model.convs[0].kernel[...] = model.convs[0].kernel[...].at[0, 0].set(0.0)  # some zero weights
    x = (np.random.default_rng(0).random((6, 2, 2, 8, 8)) < 0.3).astype(np.float32)
    _, layers = model(jnp.asarray(x), return_layers=True)
    connections = model.connections(layers)
    kernels = [np.asarray(c.kernel[...]) for c in model.convs] + [np.asarray(model.dense.kernel[...]),
                                                                  np.asarray(model.out.kernel[...])]
    for (inputs, fan_nonzero, fan_all), kernel in zip(connections, kernels):
        ac, mac, dense = (np.asarray(v) for v in readout.neurobench_ops(inputs, fan_nonzero, fan_all))
        inputs = np.asarray(inputs)
        for b in range(2):
            ops = {"ac": 0.0, "mac": 0.0}
            for t in range(6):
                u = (inputs[t, b] != 0).astype(np.float64)
                k = (kernel != 0).astype(np.float64)
                count = _numpy_conv_same(u, k).sum() if kernel.ndim == 4 else (u @ k).sum()
                ops["ac" if np.all(np.isin(inputs[t, b], (-1, 0, 1))) else "mac"] += count
            ones = np.ones(inputs.shape[2:])
            all_ones = np.ones(kernel.shape)
            full = (_numpy_conv_same(ones, all_ones) if kernel.ndim == 4 else ones @ all_ones).sum()
            assert ac[b] == pytest.approx(ops["ac"]) and mac[b] == pytest.approx(ops["mac"])
            assert dense[b] == pytest.approx(6 * full)
    assert np.asarray(readout.neurobench_ops(connections[1][0], *connections[1][1:])[1]).sum() > 0  # pooled: MACs
    active, total = readout.active_neurons(jnp.asarray(x))
    np.testing.assert_array_equal(np.asarray(active), x.reshape(6, 2, -1).sum(axis=(0, 2)))
    assert np.all(np.asarray(total) == 6 * 2 * 8 * 8)


def test_neurobench_acs_of_an_mlp_are_its_synops():
    """With no zero weight and binary inputs, NeuroBench's effective ACs are spikes x fan-out (SynOps)."""
    from spikejax import models

    model = models.build("mlp", (40,), 5, models.Neuron(beta=0.9), seed=0, hidden=(12,), init_scale=6.0)
    x = (np.random.default_rng(1).random((7, 3, 40)) < 0.3).astype(np.float32)
    _, layers = model(jnp.asarray(x), return_layers=True)
    acs = sum(np.asarray(readout.neurobench_ops(*c)[0]) for c in model.connections(layers))
    synops = sum(np.asarray(readout.synops(h, f)) for h, f in zip(layers, model.fan_out))
    np.testing.assert_allclose(acs, synops)
    assert acs.sum() > 0
