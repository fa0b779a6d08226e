"""Writes tests/data/loss_references.json: output losses of snnTorch 1.0 and SpikingJelly 2.0 (and TET's
own `TET_loss`, transcribed below) on fixed random inputs, which tests/test_losses_references.py compares
spikejax's losses against without needing torch.

Run with a Python that has torch, snntorch and spikingjelly (not spikejax's environment):

  pip install torch snntorch==1.0.0 spikingjelly==2.0.0
  python tests/data/make_loss_references.py

The peers' conventions, read from their source (snntorch/functional/loss.py, spikingjelly/activation_based/
functional/loss.py):
- snnTorch `ce_rate_loss()`: spk_out time-major [T, B, C]; log_softmax over C at each step, NLLLoss with
  reduction 'mean' (batch mean) per step, summed over steps, divided by T.
- snnTorch `ce_max_membrane_loss()`: mem_out [T, B, C]; torch.max over dim 0 (time), then log_softmax and
  the batch-mean NLL.
- snnTorch `ce_temporal_loss()` (inverse='negate'): spk_rec [T, B, C]; `SpikeTime.FirstSpike` gives the
  0-based first spike step, T - 1 for an output that never fires (spikejax gives T: so the inputs here fire
  every output); CrossEntropyLoss (batch mean) of -times. No temperature and no early term.
- SpikingJelly `temporal_efficient_training_cross_entropy(x_seq, target)`: x_seq [T, N, C] (time-major),
  F.cross_entropy over [N, C, T] with the target repeated over T: the mean over N and T of each step's CE.
  It is TET's first term only (no MSE).
- TET (Deng et al. 2022, github.com/Gus-Lab/temporal_efficient_training, `TET_loss`): batch-major there,
  outputs [B, T, C]; (1 - lamb) * (1/T) sum_t CrossEntropy(outputs[:, t], labels) + lamb *
  MSELoss(outputs, full(means)) (the mean over B, T and C). Transcribed as `tet_loss` below.
"""
import json
import os
from importlib.metadata import version

import numpy as np
import snntorch.functional as SF
import torch
import torch.nn.functional as F
from spikingjelly.activation_based.functional.loss import temporal_efficient_training_cross_entropy

HERE = os.path.dirname(os.path.abspath(__file__))


def tet_loss(outputs_btc, labels, means, lamb):
    """TET's `TET_loss` with criterion = CrossEntropyLoss(), outputs [B, T, C] as in its repository."""
    steps = outputs_btc.size(1)
    per_step = sum(F.cross_entropy(outputs_btc[:, t, ...], labels) for t in range(steps)) / steps
    mse = F.mse_loss(outputs_btc, torch.zeros_like(outputs_btc).fill_(means)) if lamb != 0 else 0.0
    return (1 - lamb) * per_step + lamb * mse


def value_and_grad(fn, x):
    x = torch.tensor(x, dtype=torch.float32, requires_grad=True)
    loss = fn(x)
    loss.backward()
    return float(loss.detach()), x.grad.numpy().astype(np.float64).tolist()


def main():
    rng = np.random.default_rng(2025)
    steps, batch, classes = 10, 6, 5
    labels = rng.integers(0, classes, batch)
    targets = torch.tensor(labels, dtype=torch.long)
    spikes = (rng.random((steps, batch, classes)) < 0.3).astype(np.float32)
    spikes[:, 2] = 0.0  # an all-silent sample
    spikes[:4, 3] = 0.0  # silent steps
    membrane = rng.normal(0.5, 1.0, (steps, batch, classes)).astype(np.float32)
    # every output fires (snnTorch's silent time is T - 1, spikejax's T), at distinct and tied first steps
    firing = (rng.random((steps, batch, classes)) < 0.25).astype(np.float32)
    first = rng.integers(0, steps, (batch, classes))
    firing[first, np.arange(batch)[:, None], np.arange(classes)] = 1.0
    firing[:, 0, :2] = 0.0
    firing[3:, 0, :2] = 1.0  # outputs 0 and 1 of sample 0 first fire together, at step 3

    out = {"versions": {name: version(name) for name in ("torch", "snntorch", "spikingjelly")},
           "labels": labels.tolist(), "spikes": spikes.tolist(), "membrane": membrane.tolist(),
           "firing": firing.tolist(), "losses": {}}
    losses = out["losses"]
    losses["rate_ce"] = float(SF.ce_rate_loss()(torch.tensor(spikes), targets))
    losses["max_membrane"], losses["max_membrane_grad"] = value_and_grad(
        lambda x: SF.ce_max_membrane_loss()(x, targets), membrane)
    losses["first_spike"] = float(SF.ce_temporal_loss()(torch.tensor(firing), targets))
    losses["tet_spikingjelly"], losses["tet_spikingjelly_grad"] = value_and_grad(
        lambda x: temporal_efficient_training_cross_entropy(x, targets), membrane)
    for lamb, means in ((1e-3, 1.0), (0.3, 0.5)):
        value, grad = value_and_grad(lambda x: tet_loss(x.transpose(0, 1), targets, means, lamb), membrane)
        losses[f"tet_{lamb:g}_{means:g}"], losses[f"tet_{lamb:g}_{means:g}_grad"] = value, grad
    with open(os.path.join(HERE, "loss_references.json"), "w") as f:
        json.dump(out, f)
    print({k: v for k, v in losses.items() if not k.endswith("grad")})


if __name__ == "__main__":
    main()
