"""The outputs a loss reads: every model gives its output layer's membrane on request (the LIF's, before
reset) or ends in a non-spiking leaky integrator; both checked against numpy loops on the layer's
currents, gradients reach the weights through the membrane, and a membrane loss defined here trains,
evaluates and resumes through the single run and, beside a spike loss, as replicas of one program."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from spikejax import build, errors, losses, models, train
from spikejax import config as config_lib
from spikejax.compare import replicas, sweep
from tests.reference import lif_numpy
from tests.test_train import small_config

BETA = 0.8


def _inputs(shape=(12, 4, 6), rate=0.4, seed=0):
    return jnp.asarray((np.random.RandomState(seed).rand(*shape) < rate).astype(np.float32))


def _model(name="mlp", output="spiking", frame=(6,), hidden=(5,), classes=3, **neuron):
    neuron = models.Neuron(beta=BETA, **neuron)
    return models.build(name, frame, classes, neuron, seed=0, hidden=hidden, init_scale=6.0, output=output,
                        delay=models.Delay(kernel_size=3))


def _output_currents(model, layers):
    """The output layer's currents [T, B, C] (float64) from the spikes entering it."""
    layer = model.out if hasattr(model, "out") else model.layers[-1]
    kernel = np.asarray(layer.kernel[...], np.float64)
    bias = 0.0 if layer.bias is None else np.asarray(layer.bias[...], np.float64)
    return np.asarray(layers[-2], np.float64) @ kernel + bias


def _integrator_numpy(currents, beta):
    u, out = np.zeros(currents.shape[1:]), np.zeros_like(currents)
    for t in range(currents.shape[0]):
        u = beta * u + currents[t]
        out[t] = u
    return out


@pytest.mark.parametrize("name", ["mlp", "rnn", "conv"])
def test_the_spiking_output_membrane_is_the_lif_loop_on_the_layers_currents(name):
    frame = (2, 8, 8) if name == "conv" else (6,)
    model = _model(name, frame=frame, hidden=(7,), reset="subtract")
    x = _inputs((10, 3) + frame)
    outputs, layers = model.outputs(x, ("membrane",))
    spikes, membrane = lif_numpy(_output_currents(model, layers), beta=BETA, threshold=1.0)
    np.testing.assert_allclose(outputs["membrane"], membrane, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(outputs["spikes"], spikes)
    assert np.any(membrane > 1.0) and np.all(np.asarray(outputs["membrane"])[spikes > 0] > 1.0)  # before reset
    # the spikes-only path (the fused dense op) gives the same spikes and layers, and no membrane
    alone, alone_layers = model.outputs(x)
    assert set(alone) == {"spikes"}
    np.testing.assert_array_equal(alone["spikes"], outputs["spikes"])
    np.testing.assert_array_equal(model(x), outputs["spikes"])
    for a, b in zip(alone_layers, layers):
        np.testing.assert_array_equal(a, b)


def test_the_delayed_models_membrane_is_its_spikes_threshold():
    model = _model("delay_mlp", hidden=(7,))
    x = _inputs()
    outputs, layers = model.outputs(x, ("spikes", "membrane"), progress=0.3)
    np.testing.assert_array_equal(outputs["spikes"], (np.asarray(outputs["membrane"]) > 1.0).astype(np.float32))
    np.testing.assert_array_equal(model(x, progress=0.3), outputs["spikes"])
    np.testing.assert_array_equal(layers[-1], outputs["spikes"])


@pytest.mark.parametrize("name", ["mlp", "rnn", "conv", "delay_mlp"])
def test_the_integrator_output_is_a_leaky_sum_with_no_threshold_and_no_reset(name):
    frame = (2, 8, 8) if name == "conv" else (6,)
    model = _model(name, output="integrator", frame=frame, hidden=(7,))
    x = _inputs((10, 3) + frame)
    outputs, layers = model.outputs(x, ("membrane",))
    assert set(outputs) == {"membrane"}
    np.testing.assert_array_equal(layers[-1], np.zeros((10, 3, 3)))  # it keeps its place, with no spikes
    assert len(layers) == len(model.fan_out)
    if name != "delay_mlp":  # (its currents come through the delays)
        expected = _integrator_numpy(_output_currents(model, layers), BETA)
        np.testing.assert_allclose(outputs["membrane"], expected, rtol=1e-5, atol=1e-5)
        assert np.max(expected) > 1.0  # past the threshold, never reset
    with pytest.raises(ValueError, match="output='integrator'"):
        model.outputs(x, ("spikes",))
    with pytest.raises(ValueError, match="output='integrator'"):
        model(x)


def test_the_integrator_learns_beta_only():
    model = _model(output="integrator", learn_beta=True, learn_threshold=True)
    assert model.spiking[-1].neuron.learned == ("beta",) and model.spiking[0].neuron.learned == ("beta", "threshold")


@pytest.mark.parametrize("output", ["spiking", "integrator"])
def test_gradients_reach_every_weight_through_the_membrane(output):
    """L = sum(G * u) for fixed G: d L / d W_out = sum_t h[t]^T a[t], a the adjoint of the output neuron
    (the integrator: G filtered backwards by beta; the LIF with a detached reset: the same, as no
    threshold term reaches the membrane); the hidden weights get gradients through the surrogate."""
    model = _model(output=output, hidden=(7,))
    x = _inputs()
    graphdef, params = nnx.split(model)
    weight = jnp.asarray(np.random.RandomState(1).randn(12, 4, 3), jnp.float32)

    def loss(p):
        outputs, _ = nnx.merge(graphdef, p).outputs(x, ("membrane",))
        return jnp.sum(weight * outputs["membrane"])

    grads = jax.grad(loss)(params)
    _, layers = model.outputs(x, ("membrane",))
    adjoint = _integrator_numpy(np.asarray(weight, np.float64)[::-1], BETA)[::-1]
    expected = np.einsum("tbi,tbo->io", np.asarray(layers[-2], np.float64), adjoint)
    np.testing.assert_allclose(grads["layers"][1]["kernel"][...], expected, rtol=1e-4, atol=1e-4)
    assert np.any(np.asarray(grads["layers"][0]["kernel"][...]) != 0)


def _mean_membrane_ce(membrane, labels, *, mask=None):
    logits = jnp.mean(membrane.astype(jnp.float32), axis=0)
    per_example = -jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], axis=1)[:, 0]
    weights = jnp.ones_like(per_example) if mask is None else mask.astype(jnp.float32)
    return jnp.sum(per_example * weights) / jnp.maximum(jnp.sum(weights), 1.0)


def _prefix_mean_argmax(membrane):
    return jnp.argmax(jnp.cumsum(membrane.astype(jnp.float32), axis=0), axis=-1).astype(jnp.int32)


@pytest.fixture
def toy_membrane_loss():
    losses.register("toy_mean_membrane", reads="membrane", readout=_prefix_mean_argmax)(_mean_membrane_ce)
    yield "toy_mean_membrane"
    losses.unregister("toy_mean_membrane")


def test_the_config_pairs_each_loss_with_an_output_layer_that_gives_what_it_reads(toy_membrane_loss):
    from configs import default

    config = default.get_config()
    config.loss.name = toy_membrane_loss  # the default model, no other flag
    config_lib.validate(config)
    assert build.reads(config) == ("membrane",)
    config.model.output = "integrator"
    config_lib.validate(config)
    for name in ("nll", "mse", "softmax"):
        config.loss.name = name
        with pytest.raises(errors.ConfigError, match=f"loss.name = '{name}' and model.output = 'integrator'"):
            config_lib.validate(config)


@pytest.mark.parametrize("output", ["spiking", "integrator"])
def test_a_membrane_loss_trains_evaluates_and_resumes(digits_data_dir, tmp_path, toy_membrane_loss, output, capfd):
    workdir = str(tmp_path / "run")
    config = lambda steps: small_config(digits_data_dir, max_steps=steps,
                                        **{"loss.name": toy_membrane_loss, "model.output": output})
    first = train.train_and_evaluate(config(3), workdir)
    result = train.train_and_evaluate(config(6), workdir)
    assert "resumed from" in capfd.readouterr().out
    assert json.load(open(f"{workdir}/eval.json"))["accuracy"] == result["accuracy"]
    assert result["loss"] == toy_membrane_loss and np.isfinite(result["mean_loss"])
    assert result["accuracy"] > 0.1 and first["mean_loss"] != result["mean_loss"]
    assert result["spikes_per_sample"]["layer1"] > 0  # the hidden layer is counted either way
    if output == "integrator":
        assert result["spikes_per_sample"]["output"] == 0.0 and result["synops_per_sample"]["output"] == 0.0
        assert result["latency_steps"]["decision"] is None and result["dead_outputs"] is None
        hidden = 32 * result["time_bins"]  # neuron-steps of the hidden layer, the only spiking one
        active = 1.0 - result["neurobench"]["activation_sparsity"]
        assert active == pytest.approx(result["spikes_per_sample"]["layer1"] / hidden, rel=1e-6)
    else:
        assert set(result["latency_steps"]["decision"]) and result["dead_outputs"]["count"] >= 0


def test_replicas_of_a_spike_loss_and_a_membrane_loss_train_in_one_program(digits_data_dir, tmp_path,
                                                                           toy_membrane_loss):
    config = small_config(digits_data_dir, max_steps=4)
    rows = [{"label": "nll", "loss": "nll", "learning_rate": 1e-3, "seed": 0},
            {"label": toy_membrane_loss, "loss": toy_membrane_loss, "learning_rate": 1e-3, "seed": 0}]
    selection, _ = replicas.hyperparameters([{"loss": r["loss"]} for r in rows], config)
    assert replicas.reads(selection) == ("spikes", "membrane")
    records = sweep.run_program(config, rows, str(tmp_path / "program"), test=True)
    assert [r["test"]["loss"] for r in records] == ["nll", toy_membrane_loss]
    assert all(r["frozen_at"] is None and np.isfinite(r["test"]["mean_loss"]) for r in records)
    assert records[0]["test"]["mean_loss"] != records[1]["test"]["mean_loss"]
    config.model.output = "integrator"
    with pytest.raises(ValueError, match="model.output = 'integrator'"):
        replicas.hyperparameters([{"loss": "nll"}, {"loss": toy_membrane_loss}], config)


def test_an_integrator_output_exports_as_a_nir_leaky_integrator():
    pytest.importorskip("nir")
    from spikejax import nir as snir

    model = _model(output="integrator", reset="zero")
    dt = 1e-3
    graph = snir.to_nir(model, dt=dt)
    node = graph.nodes["li1"]
    assert type(node).__name__ == "LI" and type(graph.nodes["lif0"]).__name__ == "LIF"
    np.testing.assert_allclose(node.tau, dt / (1 - BETA), rtol=1e-6)
    np.testing.assert_array_equal(node.r, 1.0)
    np.testing.assert_array_equal(node.v_leak, 0.0)
    # forward Euler at dt: u[t] = (1 - dt/tau) u[t-1] + (dt/tau) r (W' x + b'), with the gain tau/dt in W', b'
    kernel = np.asarray(model.layers[1].kernel[...])
    np.testing.assert_allclose(graph.nodes["linear1"].weight * (dt / node.tau[:, None]), kernel.T, rtol=1e-5)
