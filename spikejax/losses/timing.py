"""Cross-entropy of first-spike times with an early-spike term (Goeltz et al., "Fast and energy-efficient
neuromorphic deep learning with first-spike times", Nature Machine Intelligence 2021, eq. 3 and the
fastAndDeep code; Wunderlich and Pehle, "Event-based backpropagation can compute exact gradients for spiking
neural networks", Scientific Reports 2021, the Yin-Yang loss). Spikes s are [T, B, C], labels int [B]:

  first_spike   CE(-t / temperature) + early_weight * (exp(t_y / early_time) - 1)   per example

with t_i the first step (0-based) at which output i fires, T if it never fires, and t_y the true output's.
With early_weight = 0 and temperature 1 it is snnTorch's `ce_temporal_loss` wherever every output fires
(snnTorch gives a silent output T - 1, not T). It predicts by the first output to fire
(`spikejax.readout.first_spike_predictions`: -1 until some output fired, ties to the lowest index).
"""
from __future__ import annotations

import jax.numpy as jnp

from spikejax import readout as readout_lib
from spikejax.losses._common import (
    batch_mean,
    check_array,
    check_outputs,
    check_positive,
    compute_dtype,
    concrete,
    cross_entropy,
    nan_if_invalid,
)
from spikejax.losses.registry import Param, nonnegative, positive, register

# exp(x) for x beyond this is continued linearly (finite loss and gradient for any early_time; float32
# overflows at x = 88.7); exp(50) = 5e21 is already far beyond any useful loss value
_EXPONENT_LIMIT = 50.0


def first_spike_times(spikes):
    """t_i = sum_t prod_{k<=t} (1 - s[k, i]): [T, B, C] (0/1 values) -> [B, C], float32 (float64 for float64).

    For 0/1 spikes the product is 1 exactly while output i has not fired, so the sum counts the steps before
    its first spike: its first step (0-based), T if it never fires. It is a polynomial in the spikes, so it
    passes gradients on to them and through the surrogate into the network (an argmax would pass none):
    dt_i/ds[k, i] = -(t_i - k) for k before the first spike, the amount the first spike would move if output i
    fired at step k; at the first spike it is minus the steps until the next spike (or T); later, 0.
    """
    spikes = check_array(spikes, "first_spike_times")
    survival = jnp.cumprod(1.0 - spikes.astype(compute_dtype(spikes)), axis=0)  # [T, B, C]: 1 while silent
    return jnp.sum(survival, axis=0)


def _expm1_limited(x):
    """exp(x) - 1 (expm1: exact near 0, where t_y = 0 gives 0), continued as a tangent line beyond
    _EXPONENT_LIMIT so neither the value nor the gradient overflows."""
    top = jnp.expm1(_EXPONENT_LIMIT)
    inside = jnp.expm1(jnp.minimum(x, _EXPONENT_LIMIT))
    return jnp.where(x > _EXPONENT_LIMIT, top + (top + 1.0) * (x - _EXPONENT_LIMIT), inside)


@register("first_spike", title="first-spike CE (+ early term)", readout=readout_lib.first_spike_predictions,
          params=(
              Param("temperature", 1.0, positive, grid=(1.0, 3.0, 10.0),
                    doc="steps: the negative first-spike times are divided by it before the softmax"),
              Param("early_weight", 0.1, nonnegative, grid=(0.0, 0.1, 1.0),
                    doc="weight of the early-spike term early_weight * (exp(t_y / early_time) - 1)"),
              Param("early_time", None, positive, optional=True,
                    doc="steps: the early term's time scale; None: T, the sample's length")))
def first_spike_cross_entropy(spikes, labels, *, temperature: float = 1.0, early_weight: float = 0.1,
                              early_time: float | None = None, mask=None):
    """CE(-t / temperature) + early_weight * (exp(t_y / early_time) - 1) per example (module docstring),
    batch mean. Returns a scalar float32.

    Args:
      spikes: output spikes [T, B, C] (0/1, any floating dtype; the times are computed in
        float32, float64 for float64).
      labels: int [B].
      temperature: > 0, in steps.
      early_weight: >= 0; 0 drops the early term.
      early_time: > 0, in steps, or None for T. A traced value (replicas) of 0 stands for None.
      mask: optional [B] weights of real (1) and padding (0) examples.

    The times t_i are `first_spike_times` (differentiable, equal to the definition for 0/1 spikes). The early
    term is computed in float32 as expm1 of t_y / early_time, continued linearly beyond an exponent of 50, so
    a short early_time on a long sample gives a large but finite loss and gradient, never inf or NaN.
    """
    spikes, labels, mask = check_outputs(spikes, labels, mask, "first_spike_cross_entropy")
    check_positive("first_spike_cross_entropy", "temperature", temperature)
    check_positive("first_spike_cross_entropy", "early_weight", early_weight, strict=False)
    steps, classes = spikes.shape[0], spikes.shape[2]
    if early_time is None:
        early_time = float(steps)
    elif concrete(early_time) is None:  # traced: 0 stands for None
        early_time = jnp.where(early_time > 0, early_time, float(steps))
    else:
        check_positive("first_spike_cross_entropy", "early_time", early_time)
    times = first_spike_times(spikes)  # [B, C]
    per_example = cross_entropy(-times / temperature, labels)
    true_time = jnp.take_along_axis(times, jnp.clip(labels, 0, classes - 1)[:, None], axis=1)[:, 0]
    per_example = per_example + early_weight * _expm1_limited(true_time / early_time)
    return batch_mean(nan_if_invalid(per_example, labels, classes), mask)

