"""Reading decisions, latency and energy off output spikes.

Output spikes are time-major [T, B, C]; counts up to step t are n_t = sum_{k<=t} s[k]. A sample whose
output is all silent has no prediction (-1) and counts as wrong; ties go to the lowest class index.

Energy proxies (the paper's): spikes per sample, and synaptic operations (SynOps) per sample,
sum over neurons of spikes x fan-out (the number of synapses each spike drives).

This module imports only jax and numpy.
"""
from __future__ import annotations

import jax.numpy as jnp

NO_PREDICTION = -1


def _check_output(spikes, name):
    spikes = jnp.asarray(spikes)
    if spikes.ndim != 3:
        raise ValueError(f"{name}: spikes must be time-major [T, B, C], got shape {spikes.shape}")
    return spikes


def _predict_from_counts(counts):
    """argmax over the last axis, NO_PREDICTION where every count is zero."""
    silent = jnp.sum(counts, axis=-1) <= 0
    return jnp.where(silent, NO_PREDICTION, jnp.argmax(counts, axis=-1))


def spike_counts(spikes):
    """Spikes per neuron summed over time: [T, B, ...] -> [B, ...] float32."""
    return jnp.sum(jnp.asarray(spikes, jnp.float32), axis=0)


def predict(spikes):
    """Predicted class per sample, [T, B, C] -> int [B]; -1 for an all-silent output."""
    return _predict_from_counts(spike_counts(_check_output(spikes, "predict")))


def accuracy_over_time(spikes, labels, mask=None):
    """Accuracy when deciding from the counts up to each step: [T, B, C], [B] -> [T] float32.

    `mask` [B] (0/1) excludes padding examples.
    """
    spikes = _check_output(spikes, "accuracy_over_time")
    correct = correct_over_time(spikes, labels).astype(jnp.float32)  # [T, B]
    if mask is None:
        return jnp.mean(correct, axis=1)
    mask = jnp.asarray(mask, jnp.float32)
    return jnp.sum(correct * mask, axis=1) / jnp.maximum(jnp.sum(mask), 1.0)


def correct_over_time(spikes, labels):
    """Whether the decision from counts up to step t is right: [T, B, C], [B] -> bool [T, B]."""
    spikes = _check_output(spikes, "correct_over_time")
    labels = jnp.asarray(labels)
    if labels.shape != spikes.shape[1:2]:
        raise ValueError(f"labels must have shape [{spikes.shape[1]}], got {labels.shape}")
    cumulative = jnp.cumsum(jnp.asarray(spikes, jnp.float32), axis=0)
    return _predict_from_counts(cumulative) == labels[None, :]


def decide(spikes, threshold: float, *, min_spikes: float = 1.0):
    """Confidence-based early decision.

    At each step the spikemax probability of the leading class is p_t = max_i n_ti / sum_j n_tj. The
    decision time is the first t with p_t >= threshold and at least `min_spikes` output spikes so far;
    the decision is the leading class then. Undecided samples get time T and the prediction at T.

    Returns:
      (times int [B] in 0..T, predictions int [B]).
    """
    spikes = _check_output(spikes, "decide")
    steps = spikes.shape[0]
    cumulative = jnp.cumsum(jnp.asarray(spikes, jnp.float32), axis=0)  # [T, B, C]
    total = jnp.sum(cumulative, axis=-1)
    confidence = jnp.max(cumulative, axis=-1) / jnp.maximum(total, 1e-12)
    ready = (total >= min_spikes) & (confidence >= threshold)  # [T, B]
    times = jnp.where(jnp.any(ready, axis=0), jnp.argmax(ready, axis=0), steps)
    at = jnp.minimum(times, steps - 1)
    chosen = jnp.take_along_axis(cumulative, at[None, :, None], axis=0)[0]
    return times, _predict_from_counts(chosen)


def decision_time(spikes, threshold: float, *, min_spikes: float = 1.0):
    """First step at which the leading class's spikemax probability reaches `threshold`, else T: int [B]."""
    return decide(spikes, threshold, min_spikes=min_spikes)[0]


def total_spikes(spikes):
    """Spikes per sample over all time and neurons: [T, B, ...] -> [B] float32."""
    spikes = jnp.asarray(spikes, jnp.float32)
    return jnp.sum(spikes.reshape(spikes.shape[0], spikes.shape[1], -1), axis=(0, 2))


def synops(spikes, fan_out):
    """Synaptic operations per sample, sum_t sum_i s[t, b, i] * fan_out_i: [T, B, ...] -> [B] float32.

    `fan_out` is a number (every neuron drives that many synapses) or an array of the neuron shape.
    """
    spikes = jnp.asarray(spikes, jnp.float32)
    per_neuron = spike_counts(spikes) * jnp.asarray(fan_out, jnp.float32)
    return jnp.sum(per_neuron.reshape(spikes.shape[1], -1), axis=-1)
