"""Losses on the output layer's membrane potential u [T, B, C] (floating, time-major; a spiking layer's
membrane or a non-spiking leaky integrator's), labels int [B], CE(z) = -log softmax(z)[label]. Per example,
then the (masked) batch mean; in float32 for bf16/f16/f32 input (float64 for float64):

  tet             (1 - mse_weight) (1/T) sum_t CE(u[t]) + mse_weight * mean_{t,c} (u[t,c] - mse_target)^2
                  Deng, Li, Zhang, Gu, "Temporal efficient training of spiking neural network via gradient
                  re-weighting", ICLR 2022 (their `TET_loss`; SpikingJelly's
                  `temporal_efficient_training_cross_entropy` is its first term, mse_weight = 0)
  mean_membrane   CE(mean_t u[t])       the direct-training baseline (DCLS delays code, loss='mean')
  max_membrane    CE(max_t u[t])        SpyTorch, snnTorch `ce_max_membrane_loss`, the SHD literature
  summed_softmax  CE(sum_t softmax(u[t]))   Yin, Corradi, Bohte 2021; sparch; DCLS's default loss='sum'
  exp_membrane    CE((1/T) sum_t exp(-t/T) u[t]), t = 0..T-1   "loss shaping", Nowotny, Turner, Knight 2025

Readouts (`spikejax.readout`, prediction from every prefix [0, t]; ties to the lowest class index, -1 while
all classes are equal): argmax of the prefix mean (tet, mean_membrane), the prefix maximum, the prefix sum
of softmaxes and the prefix exp-weighted sum.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from spikejax import readout as readout_lib
from spikejax.losses._common import batch_mean, check_outputs, compute_dtype, cross_entropy, nan_if_invalid
from spikejax.losses.registry import Param, finite, rate, register


def _checked(membrane, labels, mask, name):
    membrane, labels, mask = check_outputs(membrane, labels, mask, name, what="membrane")
    return membrane.astype(compute_dtype(membrane)), labels, mask


def _mean(per_example, labels, mask, classes):
    return batch_mean(nan_if_invalid(per_example, labels, classes), mask)


@register("tet", reads="membrane", readout=readout_lib.mean_membrane_predictions, title="TET (per-step CE + MSE)",
          params=(Param("mse_weight", 1e-3, rate, grid=(0.0, 1e-3, 1e-2),
                        doc="lambda: weight of the MSE regulariser; 1 - lambda weighs the per-step CE"),
                  Param("mse_target", 1.0, finite, doc="phi: the constant the MSE pulls every membrane value to")))
def tet_cross_entropy(membrane, labels, *, mse_weight: float = 1e-3, mse_target: float = 1.0, mask=None):
    """Temporal efficient training: (1 - mse_weight) (1/T) sum_t CE(u[t]) + mse_weight * mean_{t,c}
    (u[t,c] - mse_target)^2 per example (module docstring), batch mean. membrane [T, B, C], labels [B].

    Equals TET's `TET_loss(outputs, labels, CrossEntropyLoss(), means=mse_target, lamb=mse_weight)` (its
    MSE is the mean over T, B and C, which is this per-example mean averaged over the batch) and, with
    mse_weight = 0, SpikingJelly's `temporal_efficient_training_cross_entropy` ([T, N, C], mean over T and N).
    """
    u, labels, mask = _checked(membrane, labels, mask, "tet_cross_entropy")
    per_step = jnp.mean(cross_entropy(u, labels), axis=0)  # [B]
    mse = jnp.mean((u - mse_target) ** 2, axis=(0, 2))  # [B]
    return _mean((1.0 - mse_weight) * per_step + mse_weight * mse, labels, mask, u.shape[2])


@register("mean_membrane", reads="membrane", readout=readout_lib.mean_membrane_predictions,
          title="CE(mean_t u)")
def mean_membrane_cross_entropy(membrane, labels, *, mask=None):
    """CE((1/T) sum_t u[t]) per example, batch mean. membrane [T, B, C], labels [B] -> scalar float32."""
    u, labels, mask = _checked(membrane, labels, mask, "mean_membrane_cross_entropy")
    return _mean(cross_entropy(jnp.mean(u, axis=0), labels), labels, mask, u.shape[2])


@register("max_membrane", reads="membrane", readout=readout_lib.max_membrane_predictions, title="CE(max_t u)")
def max_membrane_cross_entropy(membrane, labels, *, mask=None):
    """CE(max_t u[t]) per example, batch mean. membrane [T, B, C], labels [B] -> scalar float32.

    Equals snnTorch 1.0 `functional.ce_max_membrane_loss()` (torch.max over dim 0 of [T, B, C], then the
    batch-mean cross-entropy). The gradient reaches each output's membrane at its maximum step only.
    """
    u, labels, mask = _checked(membrane, labels, mask, "max_membrane_cross_entropy")
    return _mean(cross_entropy(jnp.max(u, axis=0), labels), labels, mask, u.shape[2])


@register("summed_softmax", reads="membrane", readout=readout_lib.summed_softmax_predictions,
          title="CE(sum_t softmax(u))")
def summed_softmax_cross_entropy(membrane, labels, *, mask=None):
    """CE(sum_t softmax(u[t])) per example: the per-step probabilities summed over time ([0, T] each) are the
    logits of one cross-entropy. membrane [T, B, C], labels [B] -> scalar float32."""
    u, labels, mask = _checked(membrane, labels, mask, "summed_softmax_cross_entropy")
    logits = jnp.sum(jax.nn.softmax(u, axis=-1), axis=0)
    return _mean(cross_entropy(logits, labels), labels, mask, u.shape[2])


@register("exp_membrane", reads="membrane", readout=readout_lib.exp_membrane_predictions,
          title="CE(exp-weighted mean u)")
def exp_weighted_membrane_cross_entropy(membrane, labels, *, mask=None):
    """CE((1/T) sum_t exp(-t/T) u[t]) per example, t = 0..T-1: early steps weigh up to e times more than the
    last. membrane [T, B, C], labels [B] -> scalar float32."""
    u, labels, mask = _checked(membrane, labels, mask, "exp_weighted_membrane_cross_entropy")
    steps = u.shape[0]
    weights = jnp.exp(-jnp.arange(steps, dtype=u.dtype) / steps)
    logits = jnp.sum(weights[:, None, None] * u, axis=0) / steps
    return _mean(cross_entropy(logits, labels), labels, mask, u.shape[2])
