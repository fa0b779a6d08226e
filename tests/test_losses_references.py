"""The issue-25 losses against independent references: snnTorch 1.0 and SpikingJelly 2.0 values and
autograd gradients (tests/data/loss_references.json, written by tests/data/make_loss_references.py with
torch), numpy float64 transcriptions of the formulas, finite-difference gradients in float64, bf16 input,
label checks and masks."""
import functools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spikejax import losses

with open(os.path.join(os.path.dirname(__file__), "data", "loss_references.json")) as f:
    REF = json.load(f)
LABELS = np.asarray(REF["labels"])
SPIKES, MEMBRANE, FIRING = (np.asarray(REF[k], np.float32) for k in ("spikes", "membrane", "firing"))
VALUES = REF["losses"]


def test_values_equal_snntorch_and_spikingjelly():
    np.testing.assert_allclose(losses.rate_cross_entropy(SPIKES, LABELS), VALUES["rate_ce"], rtol=1e-6)
    np.testing.assert_allclose(losses.max_membrane_cross_entropy(MEMBRANE, LABELS), VALUES["max_membrane"],
                               rtol=1e-6)
    # snnTorch ce_temporal_loss: CE(-t), no early term; every output of FIRING fires
    assert np.all(FIRING.max(axis=0) == 1)
    np.testing.assert_allclose(losses.first_spike_cross_entropy(FIRING, LABELS, early_weight=0.0),
                               VALUES["first_spike"], rtol=1e-6)
    np.testing.assert_allclose(losses.tet_cross_entropy(MEMBRANE, LABELS, mse_weight=0.0),
                               VALUES["tet_spikingjelly"], rtol=1e-6)


@pytest.mark.parametrize("key, fn", [
    ("max_membrane", losses.max_membrane_cross_entropy),
    ("tet_spikingjelly", functools.partial(losses.tet_cross_entropy, mse_weight=0.0)),
    ("tet_0.001_1", functools.partial(losses.tet_cross_entropy, mse_weight=1e-3, mse_target=1.0)),
    ("tet_0.3_0.5", functools.partial(losses.tet_cross_entropy, mse_weight=0.3, mse_target=0.5))])
def test_values_and_gradients_equal_torch_autograd_of_the_peers(key, fn):
    value, grad = jax.value_and_grad(fn)(jnp.asarray(MEMBRANE), LABELS)
    np.testing.assert_allclose(value, VALUES[key], rtol=1e-6)
    np.testing.assert_allclose(grad, np.asarray(VALUES[key + "_grad"]), rtol=1e-5, atol=1e-8)


# numpy float64 transcriptions of the table of issue 25


def _ce(logits, label):
    z = logits - logits.max()
    return np.log(np.exp(z).sum()) - z[label]


def _per_example(name, x, b, y, **params):
    steps = x.shape[0]
    u = x[:, b].astype(np.float64)
    if name == "mean_membrane":
        return _ce(u.mean(0), y)
    if name == "max_membrane":
        return _ce(u.max(0), y)
    if name == "summed_softmax":
        return _ce(sum(np.exp(u[t]) / np.exp(u[t]).sum() for t in range(steps)), y)
    if name == "exp_membrane":
        return _ce(sum(np.exp(-t / steps) * u[t] for t in range(steps)) / steps, y)
    if name == "tet":
        w, target = params["mse_weight"], params["mse_target"]
        return (1 - w) * np.mean([_ce(u[t], y) for t in range(steps)]) + w * np.mean((u - target) ** 2)
    if name == "rate_ce":
        return np.mean([_ce(u[t], y) for t in range(steps)])
    if name == "first_spike":
        times = np.array([next((t for t in range(steps) if u[t, i] > 0), steps) for i in range(u.shape[1])], float)
        early_time = params["early_time"] or steps
        return (_ce(-times / params["temperature"], y)
                + params["early_weight"] * (np.exp(times[y] / early_time) - 1))
    raise ValueError(name)


CASES = [("mean_membrane", {}), ("max_membrane", {}), ("summed_softmax", {}), ("exp_membrane", {}),
         ("tet", {"mse_weight": 0.2, "mse_target": -0.5}), ("rate_ce", {}),
         ("first_spike", {"temperature": 2.0, "early_weight": 0.3, "early_time": 4.0}),
         ("first_spike", {"temperature": 0.5, "early_weight": 1.0, "early_time": None})]


def _input(name):
    return SPIKES if losses.get(name).reads == "spikes" else MEMBRANE


@pytest.mark.parametrize("name, params", CASES)
def test_values_equal_numpy_transcriptions_with_and_without_mask(name, params):
    x = _input(name)  # SPIKES has silent outputs (t = T), a silent sample and silent steps
    fn = losses.get(name).fn
    per_example = np.array([_per_example(name, x, b, y, **params) for b, y in enumerate(LABELS)])
    np.testing.assert_allclose(fn(x, LABELS, **params), per_example.mean(), rtol=2e-6)
    mask = np.array([1, 0, 1, 1, 0, 1])
    np.testing.assert_allclose(fn(x, LABELS, mask=mask, **params), per_example[mask == 1].mean(), rtol=2e-6)


MEMBRANE_CASES = [(n, p) for n, p in CASES if losses.get(n).reads == "membrane"]


@pytest.mark.parametrize("name, params", MEMBRANE_CASES)
def test_membrane_gradients_equal_central_differences_in_float64(name, params):
    fn = losses.get(name).fn
    with jax.enable_x64(True):
        u = np.random.default_rng(1).normal(0.0, 1.0, (5, 3, 4))
        labels = np.array([2, 0, 3])
        loss = jax.jit(lambda x: fn(x, labels, **params))
        grad = np.asarray(jax.grad(loss)(jnp.asarray(u)))
        assert grad.dtype == np.float64
        h, numeric = 1e-6, np.zeros_like(u)
        for index in np.ndindex(u.shape):
            step = np.zeros_like(u)
            step[index] = h
            numeric[index] = (float(loss(u + step)) - float(loss(u - step))) / (2 * h)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name, params", CASES)
def test_bf16_input_gives_a_float32_loss_and_bf16_gradients(name, params):
    fn = losses.get(name).fn
    x32 = np.asarray(jnp.asarray(_input(name), jnp.bfloat16).astype(jnp.float32))  # exact in bf16
    value, grad = jax.value_and_grad(lambda x: fn(x, LABELS, **params))(jnp.asarray(x32, jnp.bfloat16))
    assert value.dtype == jnp.float32 and grad.dtype == jnp.bfloat16
    np.testing.assert_allclose(value, fn(x32, LABELS, **params), rtol=1e-6)


@pytest.mark.parametrize("name", ["rate_ce", "first_spike", "tet", "mean_membrane", "max_membrane",
                                  "summed_softmax", "exp_membrane"])
def test_labels_outside_the_classes_are_refused_or_nan_never_a_wrong_number(name):
    fn, x = losses.get(name).fn, jnp.asarray(_input(name)[:, :4])
    for bad in (-1, 5):
        labels = jnp.array([0, bad, 2, 3])
        with pytest.raises(ValueError, match=rf"labels must lie in \[0, 5\), got \[{bad}\] at batch positions \[1\]"):
            fn(x, labels)
        assert np.isnan(float(jax.jit(fn)(x, labels)))
        mask = jnp.array([1.0, 0.0, 1.0, 1.0])
        expected = float(fn(x, jnp.array([0, 0, 2, 3]), mask=mask))
        assert float(jax.jit(fn)(x, labels, mask=mask)) == pytest.approx(expected)
        assert np.isfinite(np.asarray(jax.grad(lambda v: jax.jit(fn)(v, labels, mask=mask))(x))).all()
    with pytest.raises(ValueError, match="time-major"):
        fn(x[0], LABELS[:4])


def test_first_spike_parameters_are_checked_and_the_early_term_never_overflows():
    with pytest.raises(ValueError, match="temperature must be > 0"):
        losses.first_spike_cross_entropy(SPIKES, LABELS, temperature=0.0)
    with pytest.raises(ValueError, match="early_weight must be >= 0"):
        losses.first_spike_cross_entropy(SPIKES, LABELS, early_weight=-1.0)
    with pytest.raises(ValueError, match="early_time must be > 0"):
        losses.first_spike_cross_entropy(SPIKES, LABELS, early_time=0.0)
    silent = np.zeros((100, 2, 3), np.float32)  # t_y = T = 100, early_time 1: exp(100) overflows float32
    value, grad = jax.value_and_grad(lambda s: losses.first_spike_cross_entropy(
        s, np.array([0, 1]), early_time=1.0))(jnp.asarray(silent))
    assert np.isfinite(float(value)) and float(value) > 1e21 and np.isfinite(np.asarray(grad)).all()
    # a traced early_time of 0 stands for None (T), as the replicas encode it
    expected = losses.first_spike_cross_entropy(SPIKES, LABELS, early_time=None)
    np.testing.assert_allclose(jax.jit(lambda e: losses.first_spike_cross_entropy(SPIKES, LABELS, early_time=e))(
        jnp.float32(0.0)), expected, rtol=1e-6)


def test_first_spike_times_equal_the_definition_with_the_closed_form_gradient():
    times, vjp = jax.vjp(losses.first_spike_times, jnp.asarray(SPIKES))
    steps = SPIKES.shape[0]
    fired = SPIKES > 0
    first = np.where(fired.any(0), fired.argmax(0), steps)
    np.testing.assert_array_equal(times, first)
    # dt_i/ds[k, i] = -(t_i - k) before the first spike; at it, minus the steps to the next spike (or T); 0 after
    (grad,) = vjp(jnp.ones_like(times))
    expected = np.zeros_like(SPIKES)
    for b, i in np.ndindex(first.shape):
        t = first[b, i]
        expected[:t, b, i] = -(t - np.arange(t))
        if t < steps:
            later = np.flatnonzero(fired[t + 1:, b, i])
            expected[t, b, i] = -(later[0] + 1 if later.size else steps - t)
    np.testing.assert_array_equal(grad, expected)
