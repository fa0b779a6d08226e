"""The issue-25 losses in the registry and in use: their readouts against numpy loops (tie and no-prediction
rules), the first-spike loss through a real LIF layer, and one replica program mixing spike and membrane
losses with traced parameters."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spikejax import losses, neurons, readout

NEW = ("rate_ce", "first_spike", "tet", "mean_membrane", "max_membrane", "summed_softmax", "exp_membrane")


def test_the_new_losses_are_registered_with_what_they_read_their_readouts_and_grids():
    assert losses.names()[:10] == ["mse", "softmax", "nll", *NEW]
    assert losses.labels()[4:11] == list(NEW)
    expected = {"rate_ce": ("spikes", readout.predictions_over_time),
                "first_spike": ("spikes", readout.first_spike_predictions),
                "tet": ("membrane", readout.mean_membrane_predictions),
                "mean_membrane": ("membrane", readout.mean_membrane_predictions),
                "max_membrane": ("membrane", readout.max_membrane_predictions),
                "summed_softmax": ("membrane", readout.summed_softmax_predictions),
                "exp_membrane": ("membrane", readout.exp_membrane_predictions)}
    for name, (reads, readout_fn) in expected.items():
        spec = losses.get(name)
        assert (spec.reads, spec.readout) == (reads, readout_fn) and spec.title != name
    assert dict(losses.entry("first_spike").grid) == {"temperature": (1.0, 3.0, 10.0), "early_weight": (0.0, 0.1, 1.0)}
    assert dict(losses.entry("tet").grid) == {"mse_weight": (0.0, 1e-3, 1e-2)}
    assert losses.get("first_spike").defaults() == {"temperature": 1.0, "early_weight": 0.1, "early_time": None}
    assert losses.get("tet").problems({"mse_weight": 1.5, "mse_target": 1.0}) == [
        "loss 'tet': mse_weight = 1.5 must be a number >= 0 and <= 1"]
    assert losses.get("first_spike").problems({"temperature": 1.0, "early_weight": -0.1, "early_time": 0}) == [
        "loss 'first_spike': early_weight = -0.1 must be a finite number >= 0",
        "loss 'first_spike': early_time = 0 must be None or a finite number > 0"]


def test_the_configs_and_the_sweep_grid_read_them_from_the_registry():
    from configs import default, sweep
    from spikejax import config as config_lib

    config = default.get_config()
    assert config.loss.first_spike.early_time is None and config.loss.tet.mse_weight == 1e-3
    assert "rate_ce" in config.loss and len(config.loss.rate_ce) == 0
    config.loss.name = "first_spike"
    config.loss.first_spike.temperature = 3.0
    assert config_lib.loss_label(config) == "first_spike(temperature=3)"
    grid = sweep.default_grid()
    assert grid.first_spike.temperature == (1.0, 3.0, 10.0) and grid.tet.mse_weight == (0.0, 1e-3, 1e-2)
    assert len(grid.rate_ce) == 0 and len(grid.max_membrane) == 0
    assert sweep.default_grid(quick=True).first_spike.to_dict() == {"temperature": (1.0,), "early_weight": (0.1,)}


def _first_argmax(scores):
    """numpy: argmax with ties to the lowest index, -1 when every class is equal; scores [T, B, C]."""
    out = np.full(scores.shape[:2], -1)
    for t, b in np.ndindex(out.shape):
        row = scores[t, b]
        if row.max() != row.min():
            out[t, b] = int(np.flatnonzero(row == row.max())[0])
    return out


def test_membrane_readouts_equal_numpy_loops_over_prefixes():
    rng = np.random.default_rng(0)
    u = rng.normal(size=(7, 4, 3)).astype(np.float32)
    u[:2, 0] = 0.0  # no input yet: every class equal, no prediction
    u[:, 1, :2] = u[:, 1, :1]  # classes 0 and 1 tie throughout: the lower index
    steps = u.shape[0]
    prefix = {"mean": [u[:t + 1].mean(0) for t in range(steps)], "max": [u[:t + 1].max(0) for t in range(steps)],
              "softmax": [sum(np.exp(u[k]) / np.exp(u[k]).sum(-1, keepdims=True) for k in range(t + 1))
                          for t in range(steps)],
              "exp": [sum(np.exp(-k / steps) * u[k] for k in range(t + 1)) for t in range(steps)]}
    readouts = {"mean": readout.mean_membrane_predictions, "max": readout.max_membrane_predictions,
                "softmax": readout.summed_softmax_predictions, "exp": readout.exp_membrane_predictions}
    for key, fn in readouts.items():
        got = np.asarray(fn(jnp.asarray(u)))
        np.testing.assert_array_equal(got, _first_argmax(np.stack(prefix[key])), err_msg=key)
        assert got.dtype.kind == "i" and np.all(got[:2, 0] == -1) and np.all(got[:, 1] != 1)
    # the last prefix is the loss's own prediction: argmax of its logits
    logits = jnp.sum(jnp.exp(-jnp.arange(steps) / steps)[:, None, None] * u, axis=0) / steps
    np.testing.assert_array_equal(readout.exp_membrane_predictions(u)[-1, 2:], jnp.argmax(logits, -1)[2:])


def test_first_spike_readout_rules():
    s = np.zeros((6, 4, 3), np.float32)
    s[2, 0, 1] = s[4, 0, 0] = 1  # output 1 first: -1 before step 2, 1 from then on (a later spike changes nothing)
    s[3, 1, 2] = s[3, 1, 0] = 1  # a tie at step 3: the lower index, 0
    s[5, 2, 2] = 1
    # sample 3 never fires: -1 throughout
    got = np.asarray(readout.first_spike_predictions(s))
    np.testing.assert_array_equal(got.T, [[-1, -1, 1, 1, 1, 1], [-1, -1, -1, 0, 0, 0], [-1] * 5 + [2], [-1] * 6])


def test_first_spike_gradient_through_lif_pulls_the_true_class_earlier_and_pushes_an_early_wrong_one_later():
    steps, classes, label = 12, 3, 0
    currents = np.full((steps, 1, classes), 0.3, np.float32)
    currents[:, 0, 1] = 0.6  # a wrong class that fires early (step 1)
    currents[:, 0, 2] = 0.05  # a silent wrong class

    def spikes_of(i):
        return neurons.lif(i, beta=0.9, threshold=1.0, surrogate="fast_sigmoid")

    s = np.asarray(spikes_of(jnp.asarray(currents)))
    times = np.asarray(losses.first_spike_times(s))[0]
    assert times[1] < times[label] < steps and times[2] == steps

    def loss(i):
        return losses.first_spike_cross_entropy(spikes_of(i), np.array([label]), temperature=2.0)

    grad = np.asarray(jax.grad(loss)(jnp.asarray(currents)))[:, 0]
    assert np.all(grad[:int(times[label]) + 1, label] < 0)  # more current before its first spike: earlier
    assert np.all(grad[:int(times[1]) + 1, 1] > 0)  # less current to the early wrong class: later
    # descending the gradient moves the true class's first spike earlier and the wrong class's later
    moved, gradient = jnp.asarray(currents), jax.jit(jax.grad(loss))
    for _ in range(20):
        moved = moved - 0.2 * gradient(moved)
    after = np.asarray(losses.first_spike_times(spikes_of(moved)))[0]
    assert after[label] < times[label] and after[1] > times[1] and float(loss(moved)) < float(loss(currents))


def test_one_replica_program_mixes_spike_and_membrane_losses_each_reading_its_own_output():
    rng = np.random.default_rng(3)
    spikes = jnp.asarray((rng.random((8, 5, 4)) < 0.3).astype(np.float32))
    membrane = jnp.asarray(rng.normal(size=(8, 5, 4)).astype(np.float32))
    labels = jnp.asarray([0, 3, 1, 2, 2])
    outputs = {"spikes": spikes, "membrane": membrane}
    rows = [("first_spike", {"temperature": 1.0, "early_weight": 0.1, "early_time": None}),
            ("tet", {"mse_weight": 1e-3, "mse_target": 1.0}),
            ("first_spike", {"temperature": 3.0, "early_weight": 0.1, "early_time": 5.0}),
            ("max_membrane", {}), ("tet", {"mse_weight": 0.1, "mse_target": 1.0}), ("spikemax", {"window": 3,
                                                                                             "min_count": 1.0})]
    selection, arrays = losses.selection(rows)
    assert selection.names == ("first_spike", "tet", "max_membrane", "nll")
    assert set(arrays) == {"loss", "first_spike.temperature", "first_spike.early_time", "tet.mse_weight"}
    np.testing.assert_array_equal(arrays["first_spike.early_time"], [0, 0, 5, 0, 0, 0])  # None -> 0

    def one(values):
        return (losses.selected_loss(selection, values, outputs, labels),
                losses.selected_readout(selection, values["loss"], outputs))

    values, predictions = jax.jit(jax.vmap(one))({k: jnp.asarray(v) for k, v in arrays.items()})
    for r, (name, params) in enumerate(rows):
        spec = losses.get(name)
        np.testing.assert_allclose(values[r], spec.fn(outputs[spec.reads], labels, **params), rtol=1e-6)
        np.testing.assert_array_equal(predictions[r], spec.readout(outputs[spec.reads]))
    # only the losses the replicas use are computed: a spike-only program needs no membrane at all
    selection, arrays = losses.selection([("rate_ce", {}), rows[0]])
    got = jax.vmap(lambda v: losses.selected_loss(selection, v, {"spikes": spikes}, labels))(
        {k: jnp.asarray(v) for k, v in arrays.items()})
    np.testing.assert_allclose(got[0], losses.rate_cross_entropy(spikes, labels), rtol=1e-6)
    with pytest.raises(KeyError, match="membrane"):
        losses.selected_loss(losses.selection([("tet", rows[1][1])])[0], {"loss": 0}, {"spikes": spikes}, labels)
