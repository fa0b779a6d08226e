"""Learnable neuron parameters stay in range by construction (issue 20): beta and alpha strictly inside (0, 1),
the threshold above 0, in float32, whatever the raw value or the learning-rate scale."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from spikejax import build, models, parallel
from spikejax import step as step_lib
from tests.test_train import small_config

RAW = [1e4, -1e4, 1e30, -1e30, 0.0, 17.0, -17.0, 40.0, -120.0]


@pytest.mark.parametrize("name", ["beta", "alpha", "threshold"])
def test_any_raw_value_gives_a_valid_parameter_and_finite_gradients(name):
    forward = models.PARAMETRISATION[name][0]
    raw = jnp.asarray(RAW, jnp.float32)
    value = np.asarray(forward(raw))
    assert value.dtype == np.float32
    if name == "threshold":
        assert np.all(value > 0) and np.all(np.isfinite(value))
    else:
        assert np.all(value > 0) and np.all(value < 1), value
    grads = np.asarray(jax.vmap(jax.grad(forward))(raw))
    assert np.all(np.isfinite(grads)) and np.all(grads >= 0)


@pytest.mark.parametrize("name,values", [("beta", [0.5, 0.8, 0.9, 0.95, 0.99, 0.999]),
                                         ("alpha", [0.3, 0.7, 0.85]),
                                         ("threshold", [0.25, 0.5, 1.0, 1.5, 3.0, 10.0])])
def test_initial_values_are_the_configured_ones(name, values):
    forward = models.PARAMETRISATION[name][0]
    for value in values:
        got = np.float32(forward(models.initial_raw(name, value)))
        # within one float32 spacing of the configured value (the raw grid cannot always hit it exactly)
        assert abs(float(got) - float(np.float32(value))) <= np.spacing(np.float32(value)), (value, got)


def test_raw_values_of_old_checkpoints_keep_their_meaning():
    """A raw value saved under the plain sigmoid / softplus forms reads the same to within 2^-24 (float64
    reference)."""
    raw = np.linspace(-30, 30, 601)
    sigmoid = 1 / (1 + np.exp(-raw))
    softplus = np.log1p(np.exp(raw))
    beta = np.asarray(models.PARAMETRISATION["beta"][0](raw), np.float64)
    threshold = np.asarray(models.PARAMETRISATION["threshold"][0](raw), np.float64)
    tolerance = 2.0 ** -24 + np.spacing(np.float32(1.0))
    assert np.max(np.abs(beta - sigmoid)) <= tolerance
    assert np.max(np.abs(threshold - softplus) / np.maximum(softplus, 1.0)) <= tolerance


def test_values_outside_the_float32_range_are_refused_at_construction():
    with pytest.raises(ValueError, match="2\\^-24 < beta"):
        models.Neuron(beta=1.0 - 1e-9, learn_beta=True)
    with pytest.raises(ValueError, match="threshold must start above"):
        models.Neuron(threshold=1e-9, learn_threshold=True)
    models.Neuron(beta=1.0 - 1e-9)  # a fixed beta is not parametrised


def test_a_huge_neuron_learning_rate_scale_keeps_parameters_in_range(digits_data_dir):
    """neuron_learning_rate_scale=1e6: Adam moves each raw value by about lr * 1e6 = 1e3 per step, which
    drove the plain sigmoid to exactly 0 or 1 and softplus to 0."""
    from spikejax import data

    config = small_config(digits_data_dir, **{"model.neuron.kind": "cuba_lif", "model.neuron.learn_beta": True,
                                              "model.neuron.learn_threshold": True, "model.neuron.learn_alpha": True,
                                              "optimizer.neuron_learning_rate_scale": 1e6,
                                              "optimizer.warmup_steps": 0, "optimizer.schedule": "constant"})
    split = data.load("digits_events", "train", data_dir=digits_data_dir)
    mesh = parallel.data_mesh(jax.devices()[:1])
    model = build.model(config, (2, 34, 34), 10)
    graphdef, params = nnx.split(model)
    tx = build.optimizer(config, 20)
    state = build.init_state(params, tx, mesh)
    step = step_lib.parallel_train_step(mesh, graphdef=graphdef, tx=tx, loss_fn=build.loss(config),
                                        readout_fn=build.readout(config))
    for position in range(3):
        batch = next(iter(data.TrainIterator(split, 64, seed=1, state={"epoch": 0, "position": position})))
        state, metrics = step(state, *parallel.global_batch_arrays(mesh, batch))
        assert math.isfinite(float(metrics["loss"]))
    nnx.update(model, jax.device_get(state["params"]))
    moved = 0.0
    for layer in model.spiking:
        for name, value in layer.values().items():
            value = np.asarray(value)
            raw = np.asarray(getattr(layer, models.raw_name(name))[...])
            moved = max(moved, float(np.max(np.abs(raw))))
            assert np.all(np.isfinite(raw))
            if name == "threshold":
                assert np.all(value > 0), (name, value.min())
            else:
                assert np.all((value > 0) & (value < 1)), (name, value.min(), value.max())
    assert moved > 100  # the raw values really went where the plain forms saturate
