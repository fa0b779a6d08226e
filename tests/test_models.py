"""Models: output shapes and dtypes, parameter counts from the layer sizes, the registry by name."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from spikejax import build, losses, models


def _count(model) -> int:
    _, params = nnx.split(model, nnx.Param)
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))


@pytest.mark.parametrize("name,frame,hidden,expected", [
    # dense 2312-32-10: weights and biases
    ("mlp", (2, 34, 34), (32,), 2312 * 32 + 32 + 32 * 10 + 10),
    # recurrent 64-16(rec)-5: W_in, W_rec, bias, then the dense readout
    ("rnn", (64,), (16,), 64 * 16 + 16 * 16 + 16 + 16 * 5 + 5),
])
def test_parameter_counts_follow_the_layer_sizes(name, frame, hidden, expected):
    model = models.build(name, frame, 10 if name == "mlp" else 5, models.Neuron(), seed=0, hidden=hidden)
    assert _count(model) == expected


def test_conv_parameter_count():
    # conv 2->16 (5x5), 16->32 (3x3), two 2x2 pools (16x16 -> 4x4), dense 512-64, 64-11
    model = models.build("conv", (2, 16, 16), 11, models.Neuron(), seed=0, hidden=(64,))
    convs = 16 * 2 * 25 + 16 + 32 * 16 * 9 + 32
    dense = 32 * 4 * 4 * 64 + 64 + 64 * 11 + 11
    assert _count(model) == convs + dense


@pytest.mark.parametrize("name,frame", [("mlp", (2, 8, 8)), ("conv", (2, 8, 8)), ("rnn", (2, 8, 8))])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_outputs_are_time_major_spikes_in_the_compute_dtype(name, frame, dtype):
    model = models.build(name, frame, 4, models.Neuron(), seed=0, hidden=(8,), dtype=dtype)
    x = (jax.random.uniform(jax.random.key(0), (6, 3) + frame) < 0.3).astype(jnp.float32)
    out = model(x)  # the output spikes alone, what every spike loss takes
    assert isinstance(out, jax.Array) and out.shape == (6, 3, 4) and out.dtype == jnp.dtype(dtype)
    assert set(np.unique(np.asarray(out, np.float32))) <= {0.0, 1.0}
    same, layers = model(x, return_layers=True)
    np.testing.assert_array_equal(same, out)
    np.testing.assert_array_equal(layers[-1], out)
    assert layers[0].shape[:2] == (6, 3) and len(layers) == len(model.fan_out)
    assert math.prod(layers[0].shape[2:]) == math.prod(frame)


@pytest.mark.parametrize("name", list(models.MODELS))
def test_a_model_call_goes_straight_into_every_spike_loss(name):
    """`loss(model(x), labels)`, the first thing a user writes; the (spikes, layers) pair is refused by
    name, with the shape the loss expects."""
    frame = (2, 8, 8) if name == "conv" else (10,)
    model = models.build(name, frame, 4, models.Neuron(), seed=0, hidden=(8,), delay=models.Delay(kernel_size=3))
    x = (jax.random.uniform(jax.random.key(1), (7, 3) + frame) < 0.3).astype(jnp.float32)
    labels = jnp.array([0, 3, 1])
    pair = model(x, return_layers=True)
    assert np.isfinite(float(losses.spike_nll(pair[0], labels)))
    with pytest.raises(ValueError, match=r"spike_nll: expected spikes \[T, B, C\].*got a tuple of 2"):
        losses.spike_nll(pair, labels)


@pytest.mark.parametrize("name", list(models.MODELS))
def test_a_model_built_for_t_steps_refuses_another_t_naming_both(name):
    frame = (2, 8, 8) if name == "conv" else (10,)
    model = models.build(name, frame, 4, models.Neuron(), seed=0, hidden=(8,), time_steps=7,
                         delay=models.Delay(kernel_size=3))
    x = jnp.zeros((7, 3) + frame)
    assert model(x).shape == (7, 3, 4)
    with pytest.raises(ValueError, match=r"T = 6 steps \(axis 0 of shape \(6, 3, .*time_steps = 7 \(data.time_bins\)"):
        model(x[:6])
    # batch-major [B, T, ...] with B != T: named as such (with B == T it cannot be told apart)
    with pytest.raises(ValueError, match=r"T = 3 steps.*time_steps = 7.*batch-major \[B, T, \.\.\.\]\? transpose"):
        model(jnp.swapaxes(x, 0, 1))
    with pytest.raises(ValueError, match="T = 6 steps"):  # under jit too, at trace time
        jax.jit(lambda v: model(v))(x[:6])
    with pytest.raises(ValueError, match=r"time_steps must be a positive int or None, got 0"):
        models.build(name, frame, 4, models.Neuron(), seed=0, hidden=(8,), time_steps=0)


@pytest.mark.parametrize("name", list(models.MODELS))
def test_a_frame_of_the_wrong_size_or_a_tuple_is_refused_naming_the_frame(name):
    frame = (2, 8, 8) if name == "conv" else (10,)
    model = models.build(name, frame, 4, models.Neuron(), seed=0, hidden=(8,), delay=models.Delay(kernel_size=3))
    expected = r"\[2, 8, 8\]" if name == "conv" else r"\[10\]"
    with pytest.raises(ValueError, match=rf"time-major \[T, B, .*frame {expected}.*got shape \(5, 3, 11\)"):
        model(jnp.zeros((5, 3, 11)))
    with pytest.raises(ValueError, match=r"time-major \[T, B, \*frame\].*got shape \(5,\)"):
        model(jnp.zeros((5,)))
    with pytest.raises(ValueError, match=r"one time-major array \[T, B, \*frame\].*got a tuple"):
        model((jnp.zeros((5, 3) + frame),))


def test_the_config_model_checks_t_against_data_time_bins():
    import configs

    config = configs.for_dataset("timing_events")
    model = build.model(config)
    assert model.time_steps == config.data.time_bins == 80
    assert model(jnp.zeros((80, 2, 32))).shape == (80, 2, 10)
    with pytest.raises(ValueError, match=r"T = 40 steps.*time_steps = 80 \(data.time_bins\)"):
        model(jnp.zeros((40, 2, 32)))


def test_unknown_model_names_the_choices():
    with pytest.raises(ValueError, match=r"unknown model 'lstm'; choose one of \['mlp', 'conv', 'rnn', 'delay_mlp'\]"):
        models.build("lstm", (4,), 2, models.Neuron(), seed=0)
    with pytest.raises(ValueError, match="unknown neuron kind 'if'"):
        models.Neuron(kind="if")
