# %% [markdown]
# # Spike NLL inside your own Flax model
#
# spikejax's neurons and losses are pure JAX functions on time-major arrays, so they go into any model. Here
# a Flax NNX module of our own, with a learnable decay per hidden neuron, is trained on the embedded
# `digits_events` with the sliding-window spike NLL, then judged the way spikejax's evaluation judges:
# accuracy over time, a confidence-based decision time, spikes and synaptic operations.
#
# Only `spikejax.neurons`, `spikejax.losses` and `spikejax.readout` are used on the model's side; they import
# nothing but jax and numpy.

# %%
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from flax import nnx

from spikejax import data, readout
from spikejax.losses import count_mse, spike_nll
from spikejax.neurons import lif

# %% [markdown]
# ## The model
#
# `nnx.Linear` acts on the last axis, so one matmul covers all T x B rows of `[T, B, F]`. The hidden decay
# is beta = sigmoid(w), one per neuron, kept in (0, 1) by the parametrisation; `lif` returns gradients for
# an array `beta` on its fast path. The output layer keeps a fixed beta.

# %%
class SpikingNet(nnx.Module):
    def __init__(self, inputs: int, hidden: int, classes: int, rngs: nnx.Rngs):
        init = nnx.initializers.variance_scaling(6.0, "fan_in", "truncated_normal")
        self.hidden = nnx.Linear(inputs, hidden, kernel_init=init, rngs=rngs)
        self.out = nnx.Linear(hidden, classes, kernel_init=init, rngs=rngs)
        self.beta_raw = nnx.Param(jnp.full((hidden,), 2.2))  # sigmoid(2.2) = 0.90

    def __call__(self, x):  # x: [T, B, F] spikes
        h = lif(self.hidden(x), beta=jax.nn.sigmoid(self.beta_raw[...]))  # [T, B, hidden]
        return lif(self.out(h), beta=0.9), h  # output spikes [T, B, classes], hidden spikes


train, test = data.load("digits_events", "train"), data.load("digits_events", "test")


def batch(split, indices):
    """Flattened float32 spikes [T, B, 2312] and labels [B]."""
    indices = np.sort(indices)
    x = np.moveaxis(split.dense(indices), 1, 0).reshape(split.time_bins, len(indices), -1)
    return jnp.asarray(x, jnp.float32), jnp.asarray(split.labels[indices])


model = SpikingNet(train.num_features, 64, len(train.classes), nnx.Rngs(0))

# %% [markdown]
# ## Training with the sliding-window spike NLL
#
# `spike_nll(spikes, labels, window=W)` takes the counts over every window of W steps (t-W+1..t) instead of
# the whole sample, and averages the loss over all T steps: the network is asked to be right at every moment,
# not only at the end. Any other registered loss takes the same arguments; `count_mse` is logged beside it.

# %%
optimizer = nnx.Optimizer(model, optax.adam(3e-3), wrt=nnx.Param)


@nnx.jit
def train_step(model, optimizer, x, y):
    def loss_fn(model):
        spikes, _ = model(x)
        return spike_nll(spikes, y, window=10), spikes

    (loss, spikes), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)
    optimizer.update(model, grads)
    return loss, count_mse(spikes, y)


rng = np.random.default_rng(1)
for step in range(60):
    loss, mse = train_step(model, optimizer, *batch(train, rng.choice(len(train), 64, replace=False)))
    if step % 20 == 0 or step == 59:
        print(f"step {step:3d}  windowed spike NLL {float(loss):.3f}  (count-MSE {float(mse):.4f})")

# %% [markdown]
# ## Judging it as spikejax's evaluation does
#
# - `accuracy_over_time`: the accuracy of deciding from the counts up to each step.
# - `decide(spikes, threshold)`: the first step at which the leading class holds `threshold` of the output
#   spikes (its spikemax probability), and the class then: spike NLL's own early decision.
# - `total_spikes` and `synops` (spikes times the synapses each spike drives): the paper's energy proxy.

# %%
x, y = batch(test, np.arange(len(test)))
spikes, hidden = nnx.jit(lambda model, x: model(x))(model, x)
over_time = np.asarray(readout.accuracy_over_time(spikes, y))
times, decisions = readout.decide(spikes, threshold=0.9)
decided = np.asarray(times) < spikes.shape[0]
print(f"final accuracy {over_time[-1]:.3f}; decided at 0.9 confidence: {decided.mean():.0%} of samples, "
      f"at step {float(np.mean(np.asarray(times)[decided])):.1f} on average, "
      f"accuracy {float(np.mean(np.asarray(decisions) == np.asarray(y))):.3f}")
hidden_synops = readout.synops(hidden, fan_out=len(train.classes))  # each hidden spike drives 10 synapses
print(f"per sample: {float(readout.total_spikes(hidden).mean()):.0f} hidden and "
      f"{float(readout.total_spikes(spikes).mean()):.1f} output spikes, "
      f"{float(hidden_synops.mean()):.0f} SynOps from the hidden layer")
assert over_time[-1] > 0.5

beta = np.asarray(jax.nn.sigmoid(model.beta_raw[...]))
fig, axes = plt.subplots(1, 2, figsize=(10, 2.8))
axes[0].plot(np.arange(1, len(over_time) + 1), over_time)
axes[0].set(xlabel="decision at step", ylabel="test accuracy", ylim=(0, 1))
axes[1].hist(beta, bins=20)
axes[1].axvline(float(jax.nn.sigmoid(2.2)), color="grey", ls="--", label="initial")
axes[1].set(xlabel="learned hidden beta", ylabel="neurons")
axes[1].legend()
plt.show()

# %% [markdown]
# The same network in the training program, with checkpoints, resumption, several devices and the full
# evaluation, is `python -m experiments.train --config.model.neuron.learn_beta=True`; the library's own
# modules are `spikejax.models` (the [API reference](../reference/models.md)).
