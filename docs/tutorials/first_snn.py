# %% [markdown]
# # Your first SNN with spike NLL
#
# A leaky integrate-and-fire (LIF) neuron on its own, then a small spiking network trained on the embedded
# `digits_events` dataset with spikemax's spike-count NLL, and what it does: spike rasters, the output
# layer's membrane, and accuracy when deciding early. Everything runs offline on a CPU in seconds.
#
# Arrays are time-major, `[T, B, ...]`, and a time step is one bin of the dataset (10 ms here).

# %%
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from flax import nnx

from spikejax import data, models, readout
from spikejax.losses import spike_nll
from spikejax.neurons import lif

# %% [markdown]
# ## One neuron
#
# `lif` integrates input currents `I` [T, ...] as v[t] = beta v[t-1] + I[t] - threshold s[t-1] and fires
# s[t] = 1 when v[t] > threshold (the subtractive reset removes one threshold after each spike). Under a
# constant current I the membrane climbs as v[t] = I (1 - beta^(t+1)) / (1 - beta), so the first spike comes
# at the first t where that exceeds the threshold: with I = 0.3, beta = 0.9 and threshold 1, at t = 3
# (v = 0.3, 0.57, 0.813, 1.032).

# %%
beta, current, steps = 0.9, 0.3, 40
spikes, membrane = lif(jnp.full((steps, 1), current), beta=beta, threshold=1.0, return_membrane=True)
spikes, membrane = np.asarray(spikes[:, 0]), np.asarray(membrane[:, 0])
t = np.arange(steps)
closed_form = current * (1 - beta ** (t + 1)) / (1 - beta)
first = int(np.argmax(closed_form > 1.0))
print(f"first spike at step {int(np.argmax(spikes))} (closed form: {first}); "
      f"{int(spikes.sum())} spikes in {steps} steps")
assert int(np.argmax(spikes)) == first
np.testing.assert_allclose(membrane[: first + 1], closed_form[: first + 1], rtol=1e-6)

fig, ax = plt.subplots(figsize=(7, 2.5))
ax.plot(t, membrane, label="membrane v[t]")
ax.axhline(1.0, color="grey", ls="--", label="threshold")
ax.vlines(t[spikes > 0], 1.05, 1.25, color="k", label="spikes")
ax.set_xlabel("time step")
ax.legend(loc="lower right")
plt.show()

# %% [markdown]
# ## The data
#
# `digits_events` is scikit-learn's 8x8 digits seen by a simulated event camera moving along NMNIST's three
# saccades: 34x34 pixels, ON and OFF polarities, 30 steps of 10 ms. It ships with spikejax; the first load
# simulates it (about 15 s) and caches it under `$SPIKEJAX_DATA_DIR` (default `~/.cache/spikejax`).

# %%
train = data.load("digits_events", "train")
test = data.load("digits_events", "test")
print(f"{len(train)} training and {len(test)} test samples, {train.time_bins} steps of {train.frame_shape}, "
      f"classes {train.classes}")


def batch(split, indices):
    """Samples as float32 spikes [T, B, 2, 34, 34] and their labels [B]."""
    x = np.moveaxis(split.dense(np.sort(indices)), 1, 0).astype(np.float32)
    return jnp.asarray(x), jnp.asarray(split.labels[np.sort(indices)])


x, y = batch(test, np.arange(4))
events = np.asarray(x[:, 0]).reshape(x.shape[0], -1)  # one sample's input, [T, 2*34*34]
fig, axes = plt.subplots(1, 2, figsize=(9, 2.5))
steps_, pixels = np.nonzero(events)
axes[0].scatter(steps_, pixels, s=1, c="k")
axes[0].set(xlabel="time step", ylabel="input (polarity, y, x)", title=f"input raster, label {int(y[0])}")
axes[1].imshow(np.asarray(x[:, 0]).sum(axis=(0, 1)), cmap="gray")
axes[1].set(title="events summed over time")
axes[1].axis("off")
plt.show()

# %% [markdown]
# ## A spiking network, trained with spike NLL
#
# `models.build("mlp", ...)` makes a dense network 2312-64-10 with LIF neurons after every layer (a Flax NNX
# module). Spikemax reads the output layer's spike counts n_i over the sample as class probabilities
# p_i = n_i / sum_j n_j and minimises -log p_label: that is `spike_nll`. A silent true class has its count
# clamped to 1 in the forward pass, with the gradient passed straight through, so it is pushed to fire.
#
# `model.outputs(x, reads)` gives the output layer's spikes (and its membrane, when asked) and every layer's
# spikes; the training step reads the spikes only.

# %%
model = models.build("mlp", train.frame_shape, len(train.classes), models.Neuron(), seed=0, hidden=(64,),
                     init_scale=6.0)
optimizer = nnx.Optimizer(model, optax.adam(3e-3), wrt=nnx.Param)


@nnx.jit
def train_step(model, optimizer, x, y):
    def loss_fn(model):
        outputs, _ = model.outputs(x, reads=("spikes",))
        return spike_nll(outputs["spikes"], y)

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return loss


rng = np.random.default_rng(0)
for step in range(60):
    loss = train_step(model, optimizer, *batch(train, rng.choice(len(train), 64, replace=False)))
    if step % 20 == 0 or step == 59:
        print(f"step {step:3d}  spike NLL {float(loss):.3f}")

# %% [markdown]
# ## What it learned
#
# `readout.predict` takes the class with the most output spikes; `readout.accuracy_over_time` the accuracy
# when the decision is made from the counts up to each step, which is how early the network can answer.

# %%
x, y = batch(test, np.arange(len(test)))
outputs, layers = nnx.jit(lambda model, x: model.outputs(x, reads=("spikes", "membrane")))(model, x)
accuracy = float(jnp.mean(readout.predict(outputs["spikes"]) == y))
over_time = np.asarray(readout.accuracy_over_time(outputs["spikes"], y))
print(f"test accuracy {accuracy:.3f} on {len(test)} samples (chance 0.1); "
      f"{float(readout.total_spikes(outputs['spikes']).mean()):.1f} output spikes per sample")
assert accuracy > 0.5

fig, ax = plt.subplots(figsize=(6, 2.5))
ax.plot(np.arange(1, len(over_time) + 1), over_time)
ax.set(xlabel="decision at step", ylabel="test accuracy", ylim=(0, 1))
plt.show()

# %% [markdown]
# One test sample: the hidden and output layers' spikes, and the output neurons' membrane. The output
# neuron of the true class fires most; the others stay below the threshold most of the time.

# %%
sample = 0
hidden, out = np.asarray(layers[1][:, sample]), np.asarray(outputs["spikes"][:, sample])
v = np.asarray(outputs["membrane"][:, sample])
fig, axes = plt.subplots(1, 3, figsize=(12, 3))
for ax, spikes_, title in ((axes[0], hidden, "hidden layer"), (axes[1], out, "output layer")):
    steps_, neurons = np.nonzero(spikes_)
    ax.scatter(steps_, neurons, s=4, c="k")
    ax.set(xlabel="time step", ylabel="neuron", title=f"{title} spikes", xlim=(-1, len(v)),
           ylim=(-0.5, spikes_.shape[1] - 0.5))
for c in range(v.shape[1]):
    axes[2].plot(v[:, c], lw=2.5 if c == int(y[sample]) else 0.8,
                 label=f"class {c}" if c == int(y[sample]) else None)
axes[2].axhline(1.0, color="grey", ls="--")
axes[2].set(xlabel="time step", title=f"output membrane (label {int(y[sample])})")
axes[2].legend()
plt.show()
