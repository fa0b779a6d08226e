"""Models: output shapes and dtypes, parameter counts from the layer sizes, the registry by name."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from spikejax import models


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
    out, layers = model(x)
    assert out.shape == (6, 3, 4) and out.dtype == jnp.dtype(dtype)
    assert set(np.unique(np.asarray(out, np.float32))) <= {0.0, 1.0}
    assert layers[0].shape[:2] == (6, 3) and len(layers) == len(model.fan_out)
    assert math.prod(layers[0].shape[2:]) == math.prod(frame)


def test_unknown_model_names_the_choices():
    with pytest.raises(ValueError, match=r"unknown model 'lstm'; choose one of \['mlp', 'conv', 'rnn', 'delay_mlp'\]"):
        models.build("lstm", (4,), 2, models.Neuron(), seed=0)
    with pytest.raises(ValueError, match="unknown neuron kind 'if'"):
        models.Neuron(kind="if")
