"""Per-step cross-entropy on the output spikes (snnTorch's `ce_rate_loss`). Spikes s are [T, B, C]
(floating, time-major), labels int [B], CE(z) = -log softmax(z)[label]:

  rate_ce    (1/T) sum_t CE(s[t])            per example, then the (masked) batch mean

Each step's spikes (0/1) are the logits of that step, so every step asks the true output to fire and the
others not to. It predicts like the count losses: argmax of cumulative counts (-1 while all silent).
"""
from __future__ import annotations

import jax.numpy as jnp

from spikejax.losses._common import batch_mean, check_outputs, cross_entropy, nan_if_invalid
from spikejax.losses.registry import register


@register("rate_ce", title="per-step CE on spikes")
def rate_cross_entropy(spikes, labels, *, mask=None):
    """(1/T) sum_t -log softmax(s[t])[label], batch mean. spikes [T, B, C], labels int [B] -> scalar float32.

    Equals snnTorch 1.0 `functional.ce_rate_loss()` (reduction 'mean': the batch mean of each step's
    cross-entropy, summed over the T steps and divided by T; time-major [T, B, C] there too).
    """
    spikes, labels, mask = check_outputs(spikes, labels, mask, "rate_cross_entropy")
    per_example = jnp.mean(cross_entropy(spikes, labels), axis=0)  # [T, B] -> [B]
    return batch_mean(nan_if_invalid(per_example, labels, spikes.shape[2]), mask)
