"""Reading decisions, latency and energy off output spikes.

Output spikes are time-major [T, B, C]; counts up to step t are n_t = sum_{k<=t} s[k]. A sample whose
output is all silent has no prediction (-1) and counts as wrong; ties go to the lowest class index.

Latency, loss-agnostic (any loss's readout: predictions p[t, b] from every time prefix):
  stable_prediction_step   the earliest step from which a sample's prediction stays its final one
  steps_to_reach           the first step at which an accuracy-over-time curve reaches a level (latencies
                           of several models compared at one accuracy that all of them reach)
The confidence decision (`decide`, p_t = max_i n_ti / sum_j n_tj) is spike NLL's own readout: a secondary,
NLL-native measure (count-MSE's targets cap that ratio well below 1; one spike gives confidence 1).

Energy proxies (the paper's): spikes per sample, and synaptic operations (SynOps) per sample,
sum over neurons of spikes x fan-out (the number of synapses each spike drives). NeuroBench's definitions
(effective ACs/MACs, dense operations, activation sparsity) are `neurobench_ops` and `active_neurons`.

Readouts of the membrane and first-spike losses (end of the module): argmax of the prefix mean, maximum,
summed softmax or exponentially weighted sum of the output membrane, and the first output to fire.

This module imports only jax and numpy.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

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


def predictions_over_time(spikes):
    """The predicted class from the counts up to each step: [T, B, C] -> int [T, B]; -1 while all silent."""
    spikes = _check_output(spikes, "predictions_over_time")
    return _predict_from_counts(jnp.cumsum(jnp.asarray(spikes, jnp.float32), axis=0))


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


def stable_prediction_step(predictions):
    """The earliest step from which each sample's prediction stays equal to its final one.

    s_b = min {t : p[t', b] = p[T-1, b] for every t' >= t}, a step index in 0..T-1 (0-based, like every
    latency here). A sample with no final prediction (NO_PREDICTION: an all-silent output) never decides and
    gets T, as `decide` gives its undecided samples.

    Args:
      predictions: int [T, B], a loss's readout over time prefixes (e.g. `predictions_over_time`).

    Returns:
      int32 [B] in 0..T.
    """
    predictions = jnp.asarray(predictions)
    if predictions.ndim != 2:
        raise ValueError(f"stable_prediction_step: predictions must be [T, B], got shape {predictions.shape}")
    steps = predictions.shape[0]
    final = predictions[-1]
    after_change = jnp.arange(1, steps + 1, dtype=jnp.int32)[:, None]  # a change at t makes t + 1 the earliest
    stable = jnp.max(jnp.where(predictions != final[None, :], after_change, 0), axis=0)
    return jnp.where(final == NO_PREDICTION, steps, stable).astype(jnp.int32)


def steps_to_reach(curve, level: float) -> int | None:
    """The first step t with curve[t] >= level, None if the curve never reaches `level`.

    `curve` [T] is e.g. eval.json's `accuracy_over_time`; with `level` an accuracy that every compared model
    reaches (e.g. the lowest of their final accuracies), it gives their latencies at matched accuracy.
    """
    hits = np.flatnonzero(np.asarray(curve, np.float64) >= level)
    return int(hits[0]) if hits.size else None


def decide(spikes, threshold: float, *, min_spikes: float = 1.0):
    """Confidence-based early decision: the secondary, NLL-native latency (see the module docstring).

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


def _up_to(spikes, until):
    """spikes [T, B, ...] as float32, zero after step until[b] of each sample (all of it if `until` is None)."""
    spikes = jnp.asarray(spikes, jnp.float32)
    if until is None:
        return spikes
    until = jnp.asarray(until)
    if until.shape != spikes.shape[1:2]:
        raise ValueError(f"until must have shape [{spikes.shape[1]}] (one step per sample), got {until.shape}")
    keep = jnp.arange(spikes.shape[0])[:, None] <= until[None, :]  # [T, B]
    return spikes * keep.reshape(keep.shape + (1,) * (spikes.ndim - 2)).astype(jnp.float32)


def total_spikes(spikes, until=None):
    """Spikes per sample over all time and neurons: [T, B, ...] -> [B] float32. With `until` (int [B]), only
    the steps t <= until[b] count (energy up to a decision; until >= T - 1 counts every step)."""
    spikes = _up_to(spikes, until)
    return jnp.sum(spikes.reshape(spikes.shape[0], spikes.shape[1], -1), axis=(0, 2))


def synops(spikes, fan_out, until=None):
    """Synaptic operations per sample, sum_t sum_i s[t, b, i] * fan_out_i: [T, B, ...] -> [B] float32.

    `fan_out` is a number (every neuron drives that many synapses) or an array of the neuron shape. With
    `until` (int [B]), only the steps t <= until[b] count.
    """
    spikes = _up_to(spikes, until)
    per_neuron = spike_counts(spikes) * jnp.asarray(fan_out, jnp.float32)
    return jnp.sum(per_neuron.reshape(spikes.shape[1], -1), axis=-1)


def neurobench_ops(inputs, fan_out_nonzero, fan_out_all):
    """NeuroBench's synaptic operations of one connection layer (NeuroBench 2.3 `SynapticOperations`).

    NeuroBench applies the layer with every nonzero weight set to 1 (bias excluded) to its input with
    every nonzero value set to 1, and sums the outputs: per step and sample that is
    ops[t, b] = sum_i [x[t, b, i] != 0] * fan_out_nonzero[i], where fan_out_nonzero[i] is the number of
    nonzero weights input i drives (spikes x fan-out for a dense layer; for a convolution, padded border
    taps are not counted). The operations count as accumulates (ACs) when every input value of that step
    is in {-1, 0, 1} (spikes) and as multiply-accumulates (MACs) otherwise (e.g. after average pooling).
    NeuroBench decides this per step over its whole batch; here it is decided per step and sample.
    "Dense" is the same count with all inputs and weights set to 1.

    Args:
      inputs: the connection's input [T, B, *in_shape].
      fan_out_nonzero, fan_out_all: [*in_shape] (or broadcastable), per input position.

    Returns:
      (ACs [B], MACs [B], dense [B]), float32, summed over time.
    """
    x = jnp.asarray(inputs, jnp.float32)
    steps, batch = x.shape[:2]
    active = (x != 0).astype(jnp.float32)
    ops = jnp.sum((active * jnp.asarray(fan_out_nonzero, jnp.float32)).reshape(steps, batch, -1), axis=-1)
    binary = jnp.all(((x == 0) | (x == 1) | (x == -1)).reshape(steps, batch, -1), axis=-1)
    dense = steps * jnp.sum(jnp.broadcast_to(jnp.asarray(fan_out_all, jnp.float32), x.shape[2:]))
    return (jnp.sum(jnp.where(binary, ops, 0.0), axis=0), jnp.sum(jnp.where(binary, 0.0, ops), axis=0),
            jnp.full((batch,), dense, jnp.float32))


def active_neurons(spikes):
    """(nonzero activations [B], all activations [B]) of a spiking layer [T, B, ...]; NeuroBench's
    activation sparsity over layers is 1 - sum(nonzero) / sum(all)."""
    spikes = jnp.asarray(spikes)
    flat = spikes.reshape(spikes.shape[0], spikes.shape[1], -1)
    count = flat.shape[0] * flat.shape[2]
    return jnp.sum(flat != 0, axis=(0, 2)).astype(jnp.float32), jnp.full((flat.shape[1],), count, jnp.float32)


# ---------------------------------------------------------------------------------------------------------
# The readouts of the membrane and first-spike losses (`spikejax.losses`): the prediction from every time
# prefix [0, t], int [T, B]. Ties go to the lowest class index; while every class has the same value (e.g.
# a zero membrane before any input reached the output layer) there is no prediction (-1), as for an
# all-silent count.


def _predict_from_scores(scores):
    """argmax over the last axis of scores [T, B, C], NO_PREDICTION where every class scores the same."""
    tied = jnp.max(scores, axis=-1) == jnp.min(scores, axis=-1)
    return jnp.where(tied, NO_PREDICTION, jnp.argmax(scores, axis=-1))


def _membrane(membrane, name):
    return jnp.asarray(_check_output(membrane, name), jnp.float32)


def mean_membrane_predictions(membrane):
    """argmax_i of the prefix mean (1/(t+1)) sum_{k<=t} u[k, b, i]: [T, B, C] -> int [T, B] (the readout of
    `mean_membrane` and `tet`)."""
    return _predict_from_scores(jnp.cumsum(_membrane(membrane, "mean_membrane_predictions"), axis=0))


def max_membrane_predictions(membrane):
    """argmax_i of the prefix maximum max_{k<=t} u[k, b, i]: [T, B, C] -> int [T, B]."""
    return _predict_from_scores(jax.lax.cummax(_membrane(membrane, "max_membrane_predictions"), axis=0))


def summed_softmax_predictions(membrane):
    """argmax_i of the prefix sum of per-step softmaxes sum_{k<=t} softmax(u[k, b])_i: [T, B, C] -> int [T, B]."""
    u = _membrane(membrane, "summed_softmax_predictions")
    p = jnp.exp(u - jnp.max(u, axis=-1, keepdims=True))
    return _predict_from_scores(jnp.cumsum(p / jnp.sum(p, axis=-1, keepdims=True), axis=0))


def exp_membrane_predictions(membrane):
    """argmax_i of the prefix sum_{k<=t} exp(-k/T) u[k, b, i] (the weights of the whole sample's T, so the
    last prefix is `exp_membrane`'s logits times T): [T, B, C] -> int [T, B]."""
    u = _membrane(membrane, "exp_membrane_predictions")
    weights = jnp.exp(-jnp.arange(u.shape[0], dtype=jnp.float32) / u.shape[0])
    return _predict_from_scores(jnp.cumsum(weights[:, None, None] * u, axis=0))


def first_spike_predictions(spikes):
    """The output that fired first within [0, t]: [T, B, C] -> int [T, B]. -1 until some output has fired;
    outputs whose first spikes fall on the same step tie, and the tie goes to the lowest class index. Once
    made, the prediction never changes (a later spike of another output cannot be earlier)."""
    spikes = _check_output(spikes, "first_spike_predictions")
    steps = spikes.shape[0]
    fired = jnp.asarray(spikes, jnp.float32) > 0
    first = jnp.where(jnp.any(fired, axis=0), jnp.argmax(fired, axis=0), steps)  # [B, C], T: never
    earliest = jnp.min(first, axis=-1)  # [B]
    t = jnp.arange(steps)[:, None]
    return jnp.where(earliest[None, :] <= t, jnp.argmin(first, axis=-1)[None, :], NO_PREDICTION)
