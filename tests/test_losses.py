"""Losses against numpy formulas and closed-form gradients."""
import functools
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spikejax import losses
from tests.reference import spike_nll_numpy


def _spikes(seed=0, shape=(12, 4, 5), rate=0.3):
    return (np.random.default_rng(seed).random(shape) < rate).astype(np.float32)


LABELS = np.array([0, 3, 1, 4])


def test_count_mse_value_and_closed_form_gradient():
    s = _spikes()
    steps, batch, classes = s.shape
    rates = s.sum(0) / steps
    target = np.full((batch, classes), 0.03)
    target[np.arange(batch), LABELS] = 0.2
    loss, grad = jax.value_and_grad(losses.count_mse)(jnp.asarray(s), LABELS)
    np.testing.assert_allclose(loss, 0.5 * ((rates - target) ** 2).sum(1).mean(), rtol=1e-6)
    np.testing.assert_allclose(grad, np.broadcast_to((rates - target) / steps / batch, s.shape), rtol=1e-5)


def test_count_softmax_value_and_closed_form_gradient():
    s = _spikes(1)
    n = s.sum(0) / 2.0
    p = np.exp(n - n.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    y = np.eye(5)[LABELS]
    loss, grad = jax.value_and_grad(lambda x: losses.count_softmax(x, LABELS, temperature=2.0))(jnp.asarray(s))
    np.testing.assert_allclose(loss, -np.log(p[np.arange(4), LABELS]).mean(), rtol=1e-6)
    np.testing.assert_allclose(grad, np.broadcast_to((p - y) / 2.0 / 4, s.shape), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("window", [None, 1, 3, 12])
def test_spike_nll_matches_loops_including_silent_true_class(window):
    s = _spikes(2)
    s[:, 1, LABELS[1]] = 0.0  # a silent true class
    s[:, 2, :] = 0.0  # an all-silent sample
    loss, grad = jax.value_and_grad(lambda x: losses.spike_nll(x, LABELS, window=window))(jnp.asarray(s))
    ref_loss, ref_grad = spike_nll_numpy(s, LABELS, window=window)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-5, atol=1e-7)
    assert np.isfinite(loss)
    assert np.all(np.asarray(grad)[:, 1, LABELS[1]] < 0)  # descending the loss makes the silent class fire


def test_spike_nll_gradient_is_exact_p_minus_y_over_n():
    s = _spikes(3)
    n = np.maximum(s.sum(0), 1.0)
    p = n / n.sum(1, keepdims=True)
    y = np.eye(5)[LABELS]
    grad = jax.grad(losses.spike_nll)(jnp.asarray(s), LABELS)
    np.testing.assert_allclose(grad[0], (p - y) / n / 4, rtol=1e-5)


def test_mask_averages_real_examples_only():
    s = _spikes(4)
    mask = np.array([1, 0, 1, 1])
    keep = mask.astype(bool)
    for fn in [losses.count_mse, losses.count_softmax, losses.spike_nll]:
        np.testing.assert_allclose(fn(s, LABELS, mask=mask), fn(s[:, keep], LABELS[keep]), rtol=1e-6)


def test_bf16_spikes_give_bf16_gradients():
    s = jnp.asarray(_spikes(5), jnp.bfloat16)
    for name in ["mse", "softmax", "nll"]:
        g = jax.grad(lambda x: losses.get(name).fn(x, LABELS))(s)
        assert g.dtype == jnp.bfloat16


def test_shape_and_value_errors():
    s = jnp.asarray(_spikes())
    with pytest.raises(ValueError, match=r"labels must have shape \[B\] = \[4\]"):
        losses.spike_nll(s, LABELS[:3])
    with pytest.raises(ValueError, match="labels must have shape"):
        losses.count_mse(s, LABELS[:, None])
    with pytest.raises(ValueError, match="time-major"):
        losses.count_softmax(s[0], LABELS)
    with pytest.raises(ValueError, match="integer"):
        losses.spike_nll(s, LABELS.astype(np.float32))
    with pytest.raises(ValueError, match="window"):
        losses.spike_nll(s, LABELS, window=0)
    with pytest.raises(ValueError, match="mask"):
        losses.spike_nll(s, LABELS, mask=np.ones(5))
    with pytest.raises(ValueError, match="window 13 is longer than the 12 time steps"):
        losses.spike_nll(s, LABELS, window=13)
    with pytest.raises(ValueError, match=r"spike_nll: expected spikes \[T, B, C\] \(time-major, one array\), got a "
                                         r"tuple of 2"):
        losses.spike_nll((s, [s]), LABELS)
    with pytest.raises(ValueError, match="unknown loss 'nl'"):
        losses.get("nl")


def test_errors_raise_under_jit_at_trace_time():
    with pytest.raises(ValueError, match="labels"):
        jax.jit(losses.spike_nll)(jnp.zeros((5, 4, 3)), jnp.zeros((2,), jnp.int32))


# every public loss by name, and the two helpers on spikes
PUBLIC = [(name, losses.get(name).fn, losses.get(name).reads) for name in losses.names()]


def _bad_inputs(s):
    """What a first user passes by mistake: a model's (spikes, layers) pair, a list, its outputs dict, one
    sample [T, C], a batch of frames [T, B, H, W]."""
    return {"tuple": (s, [s]), "list": [s, s], "dict": {"spikes": s}, "rank 2": s[:, 0], "rank 4": s[..., None]}


@pytest.mark.parametrize("name,fn,reads", PUBLIC, ids=[p[0] for p in PUBLIC])
def test_every_loss_refuses_a_tuple_or_a_wrong_rank_naming_the_expected_shape(name, fn, reads):
    s = jnp.asarray(_spikes())
    for what, bad in _bad_inputs(s).items():
        with pytest.raises(ValueError, match=rf"expected {reads} \[T, B, C\] \(time-major") as raised:
            fn(bad, LABELS)
        assert fn.__name__ in str(raised.value), what
        # at trace time under jit: the compiled step never sees a bad shape
        if what.startswith("rank"):
            with pytest.raises(ValueError, match=r"\[T, B, C\]"):
                jax.jit(lambda x: fn(x, LABELS))(bad)
    assert np.isfinite(float(fn(s, LABELS)))


def test_the_spike_helpers_refuse_a_tuple_naming_the_expected_shape():
    s = jnp.asarray(_spikes())
    with pytest.raises(ValueError, match=r"first_spike_times: expected spikes \[T, B, C\].*got a tuple"):
        losses.first_spike_times((s, [s]))
    with pytest.raises(ValueError, match=r"first_spike_times: expected spikes \[T, B, C\].*got shape \(12, 5\)"):
        losses.first_spike_times(s[:, 0])
    # a list of hidden layers' spikes of one shape would otherwise stack into a silent [L, T, B, N]
    with pytest.raises(ValueError, match=r"spike_rate_penalty: expected spikes \[T, B, \.\.\.\].*got a list of 2"):
        losses.spike_rate_penalty([s, s])
    with pytest.raises(ValueError, match=r"spike_rate_penalty: expected spikes \[T, B, \.\.\.\].*got shape \(12,\)"):
        losses.spike_rate_penalty(s[:, 0, 0])


def test_a_traced_window_longer_than_t_is_nan_never_the_whole_sample_value():
    """Under jit a window cannot be inspected: W > T would equal the whole-sample loss (every window then
    holds all counts so far); NaN says it is wrong, W <= T equals the concrete call."""
    s = jnp.asarray(_spikes())
    traced = jax.jit(lambda x, w: losses.spike_nll(x, LABELS, window=w))
    assert np.isnan(float(traced(s, 13)))
    np.testing.assert_allclose(float(traced(s, 12)), float(losses.spike_nll(s, LABELS, window=12)), rtol=1e-6)
    np.testing.assert_allclose(float(traced(s, 5)), float(losses.spike_nll(s, LABELS, window=5)), rtol=1e-6)


def test_rate_penalty_closed_form():
    h = _spikes(6, shape=(10, 3, 2, 4))
    rates = h.mean(0).reshape(3, -1)
    np.testing.assert_allclose(losses.spike_rate_penalty(h, target_rate=0.1),
                               ((rates - 0.1) ** 2).mean(), rtol=1e-6)


def test_import_pulls_in_only_jax_and_numpy():
    code = ("import sys, spikejax.losses, spikejax.readout, spikejax.neurons; "
            "bad = [m for m in ('flax', 'tonic', 'absl', 'orbax', 'optax', 'ml_collections', 'torch') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("loss", [losses.count_mse, losses.count_softmax, losses.spike_nll,
                                  functools.partial(losses.spike_nll, window=3)])
def test_labels_outside_the_classes_are_refused_or_nan_never_a_wrong_number(loss):
    spikes = (jax.random.uniform(jax.random.key(0), (6, 4, 5)) < 0.4).astype(jnp.float32)
    for bad in (-1, 5):
        labels = jnp.array([0, bad, 2, 3])
        with pytest.raises(ValueError, match=rf"labels must lie in \[0, 5\), got \[{bad}\] at batch positions \[1\]"):
            loss(spikes, labels)
        # under jit the labels cannot be inspected: the loss is NaN (a finite wrong value would train silently)
        assert np.isnan(float(jax.jit(loss)(spikes, labels)))
        # a padding example (mask 0) is neither checked nor counted
        mask = jnp.array([1.0, 0.0, 1.0, 1.0])
        good = jnp.array([0, 0, 2, 3])
        expected = float(loss(spikes, good, mask=mask))
        assert float(loss(spikes, labels, mask=mask)) == pytest.approx(expected)
        assert float(jax.jit(loss)(spikes, labels, mask=mask)) == pytest.approx(expected)
