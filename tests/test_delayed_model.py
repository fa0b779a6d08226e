"""The delayed network (model "delay_mlp") against a numpy network, its optimizer treatment of delays,
the fixed-delay baseline, and a run that resumes exactly and reports rounded beside interpolated."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from spikejax import build, models, runs, train
from tests.reference import lif_numpy
from tests.test_train import small_config


def _model(delay, seed=0, sizes=(6, 5, 3)):
    return models.build("delay_mlp", (sizes[0],), sizes[-1], models.Neuron(beta=0.8), seed=seed,
                        hidden=sizes[1:-1], init_scale=8.0, delay=delay)


def test_integer_delays_give_the_numpy_network():
    """Evaluated (no progress), every layer is I[t] = sum_i W_ij x_i[t - round(d_ij)] + b_j then LIF."""
    model = _model(models.Delay(kernel_size=4))
    steps, batch = 20, 3
    x = (np.random.default_rng(1).random((steps, batch, 6)) < 0.4).astype(np.float32)
    out, layers = model(jnp.asarray(x), return_layers=True)
    inputs = x.astype(np.float64)
    closest = np.inf
    for k, layer in enumerate(model.layers):
        w, b = (np.asarray(layer.kernel[...], np.float64), np.asarray(layer.bias[...], np.float64))
        d = np.round(np.clip(np.asarray(layer.delay[...], np.float64), 0, 3)).astype(int)
        currents = np.tile(b, (steps, batch, 1))
        for i in range(w.shape[0]):
            for j in range(w.shape[1]):
                currents[d[i, j]:, :, j] += w[i, j] * inputs[:steps - d[i, j], :, i]
        spikes, membrane = lif_numpy(currents, beta=0.8)
        closest = min(closest, float(np.min(np.abs(membrane - 1.0))))
        np.testing.assert_array_equal(np.asarray(layers[k + 1]), spikes)
        inputs = spikes
    assert closest > 1e-4  # no membrane within float32 rounding of the threshold: equality is meaningful
    assert 0 < np.asarray(out).sum() < out.size  # the test network fires, and not always


def test_delay_kernel_size_takes_any_integer_and_refuses_the_rest():
    """A numpy integer (as from an array's shape) is a kernel size like an int, stored as an int; a bool, a
    float or a size below 1 is refused, naming the field."""
    delay = models.Delay(kernel_size=np.int64(5))
    assert delay == models.Delay(kernel_size=5) and type(delay.kernel_size) is int
    assert _model(models.Delay(kernel_size=np.int32(4))).layers[0].delay[...].shape == (6, 5)
    for bad in (True, 5.0, 0, np.int64(0), "5"):
        with pytest.raises(ValueError, match="delay kernel_size must be a positive int"):
            models.Delay(kernel_size=bad)


def test_delay_updates_are_scaled_by_their_factor_and_never_decayed():
    """SGD at a constant rate: a weight moves by -lr (g + wd p); a delay by -lr * scale * g."""
    config = small_config("/unused", **{"model.name": "delay_mlp", "optimizer.name": "sgd", "optimizer.momentum": 0.0,
                                        "optimizer.weight_decay": 0.1, "optimizer.schedule": "constant",
                                        "optimizer.warmup_steps": 0, "optimizer.grad_clip": float("inf"),
                                        "optimizer.learning_rate": 0.01, "optimizer.delay_learning_rate_scale": 150.0})
    _, params = nnx.split(_model(models.Delay(kernel_size=4)))
    grads = jax.tree.map(lambda p: jnp.full_like(p, 0.5), params)
    tx = build.optimizer(config, total_steps=10)
    updates, _ = tx.update(grads, tx.init(params), params)
    layer = updates["layers"][0]
    p = params["layers"][0]
    np.testing.assert_allclose(layer["delay"][...], -0.01 * 150.0 * 0.5, rtol=1e-6)
    np.testing.assert_allclose(layer["kernel"][...], -0.01 * (0.5 + 0.1 * p["kernel"][...]), rtol=1e-5, atol=1e-8)


def test_fixed_delays_get_no_gradient_and_shift_exactly_in_training():
    model = _model(models.Delay(kernel_size=4, learn=False))
    x = (jax.random.uniform(jax.random.key(2), (15, 2, 6)) < 0.4).astype(jnp.float32)
    graphdef, params = nnx.split(model)
    np.testing.assert_array_equal(model(x, progress=0.3), model(x))
    grads = jax.grad(lambda p: jnp.sum(nnx.merge(graphdef, p)(x, progress=0.3)))(params)
    assert all(float(jnp.abs(layer["delay"][...]).sum()) == 0.0 for layer in grads["layers"].values())
    learned = _model(models.Delay(kernel_size=4))
    graphdef, params = nnx.split(learned)
    hidden = lambda p: nnx.merge(graphdef, p)(x, progress=0.3, return_layers=True)[1][1]
    grads = jax.grad(lambda p: jnp.sum(hidden(p)))(params)
    assert float(jnp.abs(grads["layers"][0]["delay"][...]).sum()) > 0  # learnable ones do get one


def test_a_delayed_run_resumes_exactly_and_reports_rounded_and_interpolated(digits_data_dir, tmp_path):
    settings = {"model.name": "delay_mlp", "model.delay.kernel_size": 3, "model.hidden": (16,)}
    straight, resumed = str(tmp_path / "straight"), str(tmp_path / "resumed")
    train.train_and_evaluate(small_config(digits_data_dir, max_steps=6, **settings), straight)
    train.train_and_evaluate(small_config(digits_data_dir, max_steps=3, **settings), resumed)
    train.train_and_evaluate(small_config(digits_data_dir, max_steps=6, **settings), resumed)
    config = small_config(digits_data_dir, max_steps=6, **settings)
    a, b = (jax.device_get(runs.restore(config, w).state["params"]) for w in (straight, resumed))
    jax.tree.map(np.testing.assert_array_equal, a, b)
    assert not np.array_equal(a["layers"][0]["delay"], build.model(config, (2, 34, 34), 10).layers[0].delay[...])
    report = json.load(open(os.path.join(straight, "eval.json")))
    delays = report["delays"]
    assert delays["interpolated"]["sigma"] == 0.23 and 0.0 <= delays["interpolated"]["accuracy"] <= 1.0
    assert delays["rounded_minus_interpolated_accuracy"] == report["accuracy"] - delays["interpolated"]["accuracy"]
    assert delays["layers"][0]["shape"] == [2 * 34 * 34, 16] and delays["layers"][0]["max_steps"] <= 2




def test_a_comparison_program_trains_delayed_replicas(digits_data_dir, tmp_path):
    """The comparison's replicas run the delayed model through the same step (each replica's annealed width
    from its own step count): two losses on one seed train, their delays move, and both are tested."""
    from spikejax import parallel
    from spikejax.checkpoint import Checkpointer
    from spikejax.compare import replicas, sweep

    config = small_config(digits_data_dir, max_steps=2, **{"model.name": "delay_mlp", "model.delay.kernel_size": 3,
                                                           "model.hidden": (8,)})
    rows = [{"label": name, "loss": name, "learning_rate": 1e-3, "seed": 0} for name in ("nll", "mse")]
    records = sweep.run_program(config, rows, str(tmp_path / "program"), test=True)
    assert all(0.0 <= r["test"]["accuracy"] <= 1.0 and r["frozen_at"] is None for r in records)
    split, _ = build.training_splits(config)
    selection, hyper = replicas.hyperparameters([{k: v for k, v in r.items() if k != "label"} for r in rows], config)
    tx = build.optimizer(config, len(split) // config.batch_size * config.epochs)
    _, template = replicas.init_state(config, hyper, tx, parallel.data_mesh(), split.frame_shape, len(split.classes))
    initial = np.asarray(jax.device_get(template["params"]["layers"][0]["delay"][...]))
    with Checkpointer(str(tmp_path / "program" / "checkpoints"), create=False) as checkpointer:
        trained = checkpointer.restore_latest(template).state["params"]["layers"][0]["delay"][...]
    moved = np.abs(np.asarray(jax.device_get(trained)) - initial).max(axis=(1, 2))
    assert (moved > 0).all()  # both replicas' delays were trained
