"""Losses on output spike counts (Shrestha, Zhu, Sun, "Spikemax", IJCNN 2022), and the hidden-layer rate
penalty. Output spikes s are [T, B, C] (floating, time-major), labels int [B]; n = sum_t s ([B, C]):

  count_mse      0.5 * mean_b sum_i (n_bi/T - rhat_bi)^2,  rhat = true_rate (label) / false_rate (others)
  count_softmax  mean_b -log softmax(n_b / temperature)[label_b]
  spike_nll      mean_b -log p_b,label,  p_bi = m_bi / sum_j m_bj,  m = max(n, min_count)  ("spikemax")

In `spike_nll` the clamp passes the gradient straight through, so dloss/dn_bi = (p_bi - y_bi) / m_bi / B
exactly, also for a silent true class (which is then pushed to fire). With `window=W` the counts are
taken over the sliding window t-W+1..t (the first W-1 windows are shorter: causal zero padding) and the
loss is averaged over b and all T steps. A window longer than T is refused (a ValueError naming both); a
traced one (replicas), which cannot be inspected, gives NaN instead of the whole-sample value it would
silently equal.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from spikejax.losses._common import batch_mean, check_array, check_outputs, check_positive, concrete, nan_if_invalid
from spikejax.losses.registry import Param, positive, positive_int, rate, register, register_variant


def _counts(spikes):
    return jnp.sum(spikes.astype(jnp.float32), axis=0)  # [B, C]


def _mse_constraint(params):
    if not params["false_rate"] < params["true_rate"]:
        return f"false_rate {params['false_rate']!r} must be < true_rate {params['true_rate']!r}"
    return None


@register("mse", title="count-MSE", aliases=("count_mse",), constraint=_mse_constraint, params=(
    Param("true_rate", 0.2, rate, grid=(0.5, 0.8, 0.95), doc="target spikes per step of the true class"),
    Param("false_rate", 0.03, rate, grid=(0.03,),
          doc="target spikes per step of the other classes (one value: not tuned)")))
def count_mse(spikes, labels, *, true_rate: float = 0.2, false_rate: float = 0.03, mask=None):
    """Spike-count mean-squared error against target rates (spikes per step), 0.5 sum_i (n_i/T - rhat_i)^2
    per example. spikes [T, B, C], labels [B] -> scalar."""
    spikes, labels, mask = check_outputs(spikes, labels, mask, "count_mse")
    rates = _counts(spikes) / spikes.shape[0]
    onehot = jax.nn.one_hot(labels, spikes.shape[2], dtype=jnp.float32)
    target = false_rate + (true_rate - false_rate) * onehot
    per_example = 0.5 * jnp.sum((rates - target) ** 2, axis=-1)
    return batch_mean(nan_if_invalid(per_example, labels, spikes.shape[2]), mask)


@register("softmax", title="count-softmax", aliases=("count_softmax",), params=(
    Param("temperature", 1.0, positive, grid=(2.0, 4.0, 8.0), log_scale=True,
          doc="counts are divided by it before the softmax"),))
def count_softmax(spikes, labels, *, temperature: float = 1.0, mask=None):
    """Cross-entropy of softmax(counts / temperature). spikes [T, B, C], labels [B] -> scalar."""
    spikes, labels, mask = check_outputs(spikes, labels, mask, "count_softmax")
    check_positive("count_softmax", "temperature", temperature)
    logp = jax.nn.log_softmax(_counts(spikes) / temperature, axis=-1)
    per_example = -jnp.take_along_axis(logp, labels[:, None], axis=-1)[:, 0]
    return batch_mean(nan_if_invalid(per_example, labels, spikes.shape[2]), mask)


def _clamp_straight_through(counts, min_count):
    """max(counts, min_count) in the forward, identity in the backward."""
    return counts + jax.lax.stop_gradient(jnp.maximum(counts, min_count) - counts)


def _spikemax_nll(counts, labels, min_count):
    """-log(m_label / sum m) over the last axis of counts [..., C]; labels broadcast to counts[..., 0]."""
    m = _clamp_straight_through(counts, min_count)
    picked = jnp.take_along_axis(m, labels[..., None], axis=-1)[..., 0]
    return jnp.log(jnp.sum(m, axis=-1)) - jnp.log(picked)


def _windowed_nll_per_example(spikes, labels, window, min_count):
    """Mean over t of the spikemax NLL of the counts in steps t-W+1..t; `window` may be traced."""
    cumulative = jnp.cumsum(spikes.astype(jnp.float32), axis=0)  # [T, B, C]; exact for integer counts
    steps = jnp.arange(spikes.shape[0])
    earlier = jnp.take(cumulative, jnp.maximum(steps - window, 0), axis=0)  # counts up to t-W
    windowed = cumulative - jnp.where((steps >= window)[:, None, None], earlier, 0.0)
    per_step = _spikemax_nll(windowed, jnp.broadcast_to(labels, windowed.shape[:2]), min_count)  # [T, B]
    return jnp.mean(per_step, axis=0)


@register("nll", title="spike NLL (whole sample)", aliases=("spike_nll", "spikemax"), params=(
    Param("window", None, positive_int, optional=True, integer=True, at_most="data.time_bins",
          doc="None: counts over the whole sample; W: sliding windows of W steps (at most T)"),
    Param("min_count", 1.0, positive, grid=(0.25, 0.5, 1.0), log_scale=True,
          doc="lower clamp of the counts, straight-through")))
def spike_nll(spikes, labels, *, window: int | None = None, min_count: float = 1.0, mask=None):
    """Spikemax negative log-likelihood of spike-count probabilities (module docstring). Returns a scalar.

    Args:
      spikes: output spikes [T, B, C].
      labels: int [B].
      window: None for whole-sample counts, or W in [1, T] for sliding-window counts of W steps (W > T: a
        ValueError). A traced int (replicas) selects per value: 0 means the whole sample, W > T gives NaN.
      min_count: lower clamp of the counts (> 0), straight-through in the gradient.
      mask: optional [B] weights of real (1) and padding (0) examples.
    """
    spikes, labels, mask = check_outputs(spikes, labels, mask, "spike_nll")
    check_positive("spike_nll", "min_count", min_count)
    steps = spikes.shape[0]
    if window is None:
        per_example = _spikemax_nll(_counts(spikes), labels, min_count)
    elif concrete(window) is None:  # traced: 0 is the whole sample
        whole = _spikemax_nll(_counts(spikes), labels, min_count)
        windowed = _windowed_nll_per_example(spikes, labels, jnp.maximum(window, 1), min_count)
        per_example = jnp.where(window > steps, jnp.nan, jnp.where(window > 0, windowed, whole))
    else:
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"spike_nll: window must be a positive int or None, got {window!r}")
        if window > steps:
            raise ValueError(f"spike_nll: window {window} is longer than the {steps} time steps of spikes "
                             f"{spikes.shape}; use window=None for whole-sample counts")
        per_example = _windowed_nll_per_example(spikes, labels, window, min_count)
    return batch_mean(nan_if_invalid(per_example, labels, spikes.shape[2]), mask)


register_variant("nll_window", of="nll", grid={"window": (10, 20, 30)}, title="spike NLL (sliding window)")


def spike_rate_penalty(spikes, *, target_rate: float = 0.02, mask=None):
    """Hidden-layer firing-rate regulariser: mean_b mean_i (rate_bi - target_rate)^2 with rate in
    spikes per step, for spikes [T, B, ...]. Add `weight * spike_rate_penalty(h)` to a loss."""
    spikes = check_array(spikes, "spike_rate_penalty", "spikes", "[T, B, ...]", rank=None)
    rates = jnp.mean(spikes.astype(jnp.float32), axis=0).reshape(spikes.shape[1], -1)
    per_example = jnp.mean((rates - target_rate) ** 2, axis=-1)
    return batch_mean(per_example, None if mask is None else jnp.asarray(mask))
