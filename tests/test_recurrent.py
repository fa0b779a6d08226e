"""The recurrent LIF layer: spikes against a numpy loop, every gradient against autodiff of a lax.scan, and
what the fused layer keeps for its backward (the spikes as int8 beside its own inputs)."""
import contextlib
import io
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.ad_checkpoint import print_saved_residuals

from spikejax import neurons
from tests.reference import recurrent_lif_numpy

T, B, D, N = 30, 3, 8, 6


def _layer(seed=0, bias=True):
    rng = np.random.default_rng(seed)
    x = (rng.random((T, B, D)) < 0.3).astype(np.float32)
    w_in = rng.normal(0.25, 0.6, (D, N)).astype(np.float32)
    w_rec = rng.normal(0.0, 0.5, (N, N)).astype(np.float32)
    b = rng.normal(0.0, 0.1, N).astype(np.float32) if bias else None
    return x, w_in, w_rec, b


@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("implementation", ["fused", "reference"])
def test_spikes_match_numpy_loop(reset, implementation):
    x, w_in, w_rec, b = _layer(1)
    spikes = neurons.recurrent_lif(x, w_in, w_rec, b, beta=0.85, threshold=1.0, reset=reset,
                                   implementation=implementation)
    ref = recurrent_lif_numpy(x, w_in, w_rec, b, beta=0.85, threshold=1.0, reset=reset)
    assert 0.05 < ref.mean() < 0.6
    np.testing.assert_array_equal(spikes, ref)
    # the recurrence matters: without W_rec the spikes differ
    assert np.any(recurrent_lif_numpy(x, w_in, 0 * w_rec, b, beta=0.85, reset=reset) != ref)


@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("detach_reset", [True, False])
@pytest.mark.parametrize("learned", [False, True])
def test_gradients_match_autodiff(reset, detach_reset, learned):
    x, w_in, w_rec, b = _layer(2)
    weights = jnp.asarray(np.random.default_rng(3).standard_normal((T, B, N)), jnp.float32)
    rng = np.random.default_rng(4)
    beta = jnp.asarray(rng.uniform(0.7, 0.95, N), jnp.float32) if learned else 0.85
    threshold = jnp.asarray(rng.uniform(0.8, 1.2, ()), jnp.float32) if learned else 1.0

    def grads(implementation):
        def loss(x, w_in, w_rec, b, beta, threshold):
            s = neurons.recurrent_lif(x, w_in, w_rec, b, beta=beta, threshold=threshold, reset=reset,
                                      detach_reset=detach_reset, surrogate="arctan", implementation=implementation)
            return jnp.sum(weights * s)
        argnums = (0, 1, 2, 3, 4, 5) if learned else (0, 1, 2, 3)
        return jax.jit(jax.grad(loss, argnums=argnums), static_argnums=() if learned else (4, 5))(
            x, w_in, w_rec, b, beta, threshold)

    got, ref = grads("fused"), grads("reference")
    for g, r in zip(got, ref):
        assert g.shape == r.shape and g.dtype == r.dtype
        assert np.abs(r).max() > 1e-2
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-4 * np.abs(r).max())


def test_bfloat16_inputs_and_no_bias():
    x, w_in, w_rec, _ = _layer(5, bias=False)
    xb = jnp.asarray(x, jnp.bfloat16)
    loss = lambda impl: lambda x, w: jnp.sum(neurons.recurrent_lif(x, w, w_rec, beta=0.9, implementation=impl)
                                             .astype(jnp.float32) * jnp.arange(N))
    (gx, gw), (rx, rw) = (jax.grad(loss(i), argnums=(0, 1))(xb, w_in) for i in ("fused", "reference"))
    assert gx.dtype == jnp.bfloat16 and gw.dtype == jnp.float32
    out = neurons.recurrent_lif(xb, w_in, w_rec, beta=0.9)
    assert out.dtype == jnp.bfloat16
    rounded = lambda w: np.asarray(jnp.asarray(w, jnp.bfloat16), np.float32)  # the weights as the matmuls see them
    np.testing.assert_array_equal(np.asarray(out, np.float32),
                                  recurrent_lif_numpy(x, rounded(w_in), rounded(w_rec), None, beta=0.9))
    np.testing.assert_allclose(np.asarray(gx, np.float32), np.asarray(rx, np.float32), rtol=2e-2, atol=2e-2)
    np.testing.assert_allclose(gw, rw, rtol=2e-2, atol=2e-2 * np.abs(rw).max())


def _residuals(fn, *args):
    """[(dtype, shape, where from)] of what autodiff keeps for fn's backward (jax's own printout)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        print_saved_residuals(fn, *args)
    found = []
    for line in out.getvalue().splitlines():
        match = re.match(r"(\w+)\[([\d,]*)\] (.*)", line)
        if match:
            shape = tuple(int(n) for n in match.group(2).split(",") if n)
            found.append((match.group(1), shape, match.group(3)))
    assert found, out.getvalue()
    return found


def test_fused_layer_keeps_only_int8_spikes_besides_its_inputs():
    x, w_in, w_rec, b = _layer(6)
    per_step = {"i8": 1, "bf16": 2, "f32": 4}

    def kept(implementation):
        fn = lambda *a: jnp.sum(neurons.recurrent_lif(*a, beta=0.9, implementation=implementation))
        return [(dtype, shape) for dtype, shape, where in _residuals(fn, x, w_in, w_rec, b)
                if "argument" not in where and shape[:1] == (T,)]

    assert kept("fused") == [("i8", (T, B, N))]  # 1 byte per neuron-step
    autodiff = sum(per_step[dtype] * np.prod(shape) for dtype, shape in kept("reference"))
    assert autodiff >= 8 * T * B * N  # autodiff of the scan keeps at least two f32 copies per step


def test_bad_shapes_are_refused_by_name():
    x, w_in, w_rec, b = _layer(7)
    with pytest.raises(ValueError, match="w_rec must be"):
        neurons.recurrent_lif(x, w_in, w_rec[:, :3], b, beta=0.9)
    with pytest.raises(ValueError, match="w_in must be"):
        neurons.recurrent_lif(x, w_in[:3], w_rec, b, beta=0.9)
    with pytest.raises(ValueError, match=r"inputs must be floating \[T, B, D\]"):
        neurons.recurrent_lif(x[0], w_in, w_rec, b, beta=0.9)
    with pytest.raises(ValueError, match="no Pallas kernel"):
        neurons.recurrent_lif(x, w_in, w_rec, b, beta=0.9, implementation="pallas")
    with pytest.raises(ValueError, match="beta must be"):
        neurons.recurrent_lif(x, w_in, w_rec, b, beta=jnp.ones(N + 1))


def test_spiking_rnn_model_matches_numpy_and_counts_its_recurrent_synapses():
    from spikejax import models, readout
    from tests.reference import lif_numpy

    neuron = models.Neuron(beta=0.9, threshold=1.0)
    model = models.build("rnn", (2, 5), 4, neuron, seed=0, hidden=(12, 7), init_scale=4.0)
    x = (np.random.default_rng(8).random((T, B, 2, 5)) < 0.3).astype(np.float32)
    out, layers = model(jnp.asarray(x), return_layers=True)
    kernel = lambda layer: np.asarray(layer.kernel[...], np.float64)
    h = x.reshape(T, B, -1)
    for i, (layer, recurrent) in enumerate(zip(model.layers, model.recurrent)):
        h = recurrent_lif_numpy(h, kernel(layer), kernel(recurrent), np.asarray(layer.bias[...]), beta=0.9)
        np.testing.assert_array_equal(layers[i + 1], h)
        assert 0 < h.mean() < 0.9
    ref, _ = lif_numpy(h @ kernel(model.out) + np.asarray(model.out.bias[...]), beta=0.9)
    np.testing.assert_array_equal(out, ref)
    # NeuroBench ACs: W_rec of layer 1 is driven by its spikes of the step before (the last step drives none)
    connections = model.connections(layers)
    assert len(connections) == 5  # W_in, W_rec per hidden layer, and the output layer
    acs, _, _ = readout.neurobench_ops(*connections[1])
    np.testing.assert_allclose(acs, np.asarray(layers[1])[:-1].sum(axis=(0, 2)) * 12)
    assert model.fan_out == (12, 12 + 7, 7 + 4, 0)
