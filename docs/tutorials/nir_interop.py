# %% [markdown]
# # Exporting to NIR, and running the model in snnTorch and Norse
#
# NIR (the Neuromorphic Intermediate Representation) is the graph format that snnTorch, Norse, spyx, Sinabs,
# Rockpool and lava-dl read and write, and through which models reach neuromorphic chips. This page trains
# a small spikejax network, exports it with `spikejax.nir.to_nir`, runs the file in snnTorch and in Norse,
# and compares their output spikes with spikejax's, spike for spike. Then the other way: a network built in
# snnTorch, exported by snnTorch, runs in spikejax.
#
# It needs torch, snnTorch and Norse, the pinned `interop` extra: `pip install -e ".[test,interop]"`
# ([nir.md](../nir.md) says what is exact, what is refused, and the other frameworks' quirks).

# %%
# requires: torch, snntorch, norse (pip install -e ".[test,interop]")
import contextlib
import io
import os
import tempfile

import jax.numpy as jnp
import matplotlib.pyplot as plt
import nir
import norse.torch as norse
import numpy as np
import optax
import snntorch
import torch
from flax import nnx
from snntorch import utils as snntorch_utils
from snntorch.import_nir import import_from_nir

from spikejax import data, models
from spikejax import nir as spikejax_nir
from spikejax.losses import spike_nll

print(f"torch {torch.__version__}, snnTorch {snntorch.__version__}, NIR {nir.__version__}")

# %% [markdown]
# ## A model that exports exactly
#
# NIR's LIF neuron resets to zero and has no subtractive reset, so the model is trained with
# `reset="zero"`; `to_nir` refuses spikejax's default subtractive reset by name (or, with
# `approximate=True`, exports it anyway, and the spikes then differ). The training is a few steps on
# `digits_events`, as in [your first SNN](first_snn.md).

# %%
train, test = data.load("digits_events", "train"), data.load("digits_events", "test")
model = models.build("mlp", train.frame_shape, len(train.classes), models.Neuron(reset="zero"), seed=0,
                     hidden=(64,), init_scale=6.0)
optimizer = nnx.Optimizer(model, optax.adam(3e-3), wrt=nnx.Param)


def batch(split, indices):
    indices = np.sort(indices)
    return np.moveaxis(split.dense(indices), 1, 0).astype(np.float32), split.labels[indices]


@nnx.jit
def train_step(model, optimizer, x, y):
    loss, grads = nnx.value_and_grad(lambda m: spike_nll(m.outputs(x)[0]["spikes"], y))(model)
    optimizer.update(model, grads)
    return loss


rng = np.random.default_rng(0)
for _ in range(40):
    x, y = batch(train, rng.choice(len(train), 64, replace=False))
    loss = train_step(model, optimizer, jnp.asarray(x), jnp.asarray(y))
print(f"spike NLL after 40 steps: {float(loss):.3f}")

# %% [markdown]
# ## Export
#
# `to_nir(model, dt)` writes each LIF layer as tau = dt / (1 - beta), r = 1, v_leak = 0, v_reset = 0, with
# the gain 1 / (1 - beta) folded into the weights and bias, so every importer that discretises NIR's
# continuous-time neuron with forward Euler (beta = 1 - dt / tau) gets spikejax's neuron back. dt (seconds)
# is stored in the graph's metadata; snnTorch's importer assumes 1e-4.

# %%
dt = 1e-4
path = os.path.join(tempfile.mkdtemp(), "model.nir")
nir.write(path, spikejax_nir.to_nir(model, dt=dt))
graph = nir.read(path)
for name, node in graph.nodes.items():
    print(f"{name:8s} {type(node).__name__}")
print("edges:", graph.edges)

# %% [markdown]
# ## Run it in snnTorch and Norse
#
# Both step through time one `[B, features]` input at a time. NIR's `Flatten(start_dim=0)` means the first
# axis of a sample, but snnTorch and Norse build `torch.nn.Flatten(0)`, which would flatten the batch too;
# their Flatten modules are set to start at dimension 1 (a quirk of theirs, [nir.md](../nir.md)).

# %%
SAMPLES = 64
x, y = batch(test, np.arange(SAMPLES))  # [T, B, 2, 34, 34]
ours = np.asarray(model.outputs(jnp.asarray(x))[0]["spikes"])  # [T, B, 10]
flat = x.reshape(x.shape[0], SAMPLES, -1)  # the graph's input is the flattened frame


def run_torch(module, x, stateful):
    for sub in module.modules():
        if isinstance(sub, torch.nn.Flatten):
            sub.start_dim = 1
    out, state = [], None
    with torch.no_grad():
        for t in range(x.shape[0]):
            if stateful:  # Norse: (output, state)
                y_t, state = module(torch.tensor(x[t]), state)
            else:  # snnTorch keeps its state inside
                y_t = module(torch.tensor(x[t]))
                y_t = y_t[0] if isinstance(y_t, tuple) else y_t
            out.append(y_t.numpy())
    return np.stack(out)


with contextlib.redirect_stdout(io.StringIO()):  # snnTorch prints a warning per layer about its input gain
    in_snntorch = import_from_nir(graph)
snntorch_utils.reset(in_snntorch)
theirs = {"snnTorch": run_torch(in_snntorch, flat, stateful=False),
          "Norse": run_torch(norse.from_nir(graph, dt=dt), flat, stateful=True)}
for name, spikes in theirs.items():
    print(f"{name}: {int(np.sum(spikes != ours))} of {int(ours.sum())} output spikes differ from spikejax's")
assert all(np.array_equal(spikes, ours) for spikes in theirs.values())

fig, axes = plt.subplots(1, 3, figsize=(12, 2.8), sharey=True)
for ax, (name, spikes) in zip(axes, [("spikejax", ours), *theirs.items()]):
    steps, neurons = np.nonzero(spikes[:, 0])
    ax.scatter(steps, neurons, s=8, c="k")
    ax.set(title=f"{name}: output spikes, sample 0", xlabel="time step", xlim=(-1, x.shape[0]), ylim=(-0.5, 9.5))
axes[0].set_ylabel("output neuron")
plt.show()

# %% [markdown]
# ## The other way: a snnTorch network in spikejax
#
# `from_nir(graph)` runs a NIR graph in spikejax at the dt of its metadata, here one that snnTorch exported
# (Linear + Leaky with a zero reset): `NIRNetwork(x)` gives the output spikes [T, B, C], time-major
# (`NIRNetwork(x, return_layers=True)`: with every layer's spikes too).

# %%
from snntorch.export_nir import export_to_nir  # noqa: E402

torch.manual_seed(0)
leaky = lambda n, beta: snntorch.Leaky(beta=torch.full((n,), beta), threshold=torch.ones(n),
                                       reset_mechanism="zero", reset_delay=False, init_hidden=True)
net = torch.nn.Sequential(torch.nn.Linear(20, 16), leaky(16, 0.9), torch.nn.Linear(16, 5), leaky(5, 0.8))
for layer in (net[0], net[2]):
    layer.weight.data *= 3
with contextlib.redirect_stdout(io.StringIO()):
    exported = export_to_nir(net, torch.zeros(1, 20), ignore_dims=[0])
drive = (np.random.default_rng(0).random((25, 8, 20)) < 0.3).astype(np.float32)  # [T, B, 20]
snntorch_utils.reset(net)
with torch.no_grad():
    reference = np.stack([net(torch.tensor(drive[t])).numpy() for t in range(len(drive))])
in_spikejax = np.asarray(spikejax_nir.from_nir(exported, dt=dt)(jnp.asarray(drive)))
print(f"snnTorch {int(reference.sum())} spikes, spikejax {int(in_spikejax.sum())}, "
      f"{int(np.sum(reference != in_spikejax))} differ")
assert reference.sum() > 0 and np.array_equal(in_spikejax, reference)
