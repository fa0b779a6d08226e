"""Spike-based classification losses (Shrestha, Zhu, Sun, "Spikemax", IJCNN 2022).

Every loss takes output spikes [T, B, C] (floating, time-major) and integer labels [B], and returns the
mean over the batch as a scalar float32. `mask` [B] (optional, 0/1) averages over the real examples of a
padded batch only. With n = sum over time of the spikes ([B, C]):

  count_mse      0.5 * mean_b sum_i (n_bi/T - rhat_bi)^2,  rhat = true_rate (label) / false_rate (others)
  count_softmax  mean_b -log softmax(n_b / temperature)[label_b]
  spike_nll      mean_b -log p_b,label,  p_bi = m_bi / sum_j m_bj,  m = max(n, min_count)  ("spikemax")

Labels must lie in [0, C). Concrete (non-traced) labels outside it raise a ValueError naming them; under
jit, where they cannot be inspected, such an example's loss is NaN, never a finite wrong value (one_hot and
take_along_axis do not check ranges: label -1 would silently read class C-1). Examples with mask 0 are
not checked and count nowhere.

In `spike_nll` the clamp passes the gradient straight through, so dloss/dn_bi = (p_bi - y_bi) / m_bi / B
exactly, also for a silent true class (which is then pushed to fire). With `window=W` the counts are
taken over the sliding window t-W+1..t (the first W-1 windows are shorter: causal zero padding) and the
loss is averaged over b and all T steps.

This module imports only jax and numpy.
"""
from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np


def _check(spikes, labels, mask, name):
    spikes, labels = jnp.asarray(spikes), jnp.asarray(labels)
    if spikes.ndim != 3:
        raise ValueError(f"{name}: spikes must be time-major [T, B, C], got shape {spikes.shape}")
    if not jnp.issubdtype(spikes.dtype, jnp.floating):
        raise ValueError(f"{name}: spikes must be floating point, got dtype {spikes.dtype}")
    if labels.ndim != 1 or labels.shape[0] != spikes.shape[1]:
        raise ValueError(
            f"{name}: labels must have shape [B] = [{spikes.shape[1]}] to match spikes {spikes.shape}, "
            f"got {labels.shape}")
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise ValueError(f"{name}: labels must be integer class indices, got dtype {labels.dtype}")
    if mask is not None:
        mask = jnp.asarray(mask)
        if mask.shape != labels.shape:
            raise ValueError(f"{name}: mask must have shape {labels.shape}, got {mask.shape}")
    _check_label_range(labels, mask, spikes.shape[2], name)
    return spikes, labels, mask


def _concrete(x):
    """x as a numpy array, or None when it is traced (inside jit/grad/vmap)."""
    try:
        return np.asarray(x)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None


def _check_label_range(labels, mask, num_classes, name):
    labels = _concrete(labels)
    if labels is None:
        return
    mask = None if mask is None else _concrete(mask)
    counted = np.ones(labels.shape, bool) if mask is None else mask != 0
    bad = counted & ((labels < 0) | (labels >= num_classes))
    if np.any(bad):
        raise ValueError(f"{name}: labels must lie in [0, {num_classes}), got {sorted(set(labels[bad].tolist()))} "
                         f"at batch positions {np.flatnonzero(bad)[:10].tolist()}")


def _nan_if_invalid(per_example, labels, num_classes):
    """per_example [B] with NaN where labels[b] is outside [0, num_classes) (the traced case)."""
    valid = (labels >= 0) & (labels < num_classes)
    return jnp.where(valid, per_example, jnp.nan)


def _batch_mean(per_example, mask):
    per_example = per_example.astype(jnp.float32)
    if mask is None:
        return jnp.mean(per_example)
    mask = mask.astype(jnp.float32)
    # where, not a product: a padding example (mask 0) with a NaN loss must not make the sum NaN
    return jnp.sum(jnp.where(mask != 0, per_example * mask, 0.0)) / jnp.maximum(jnp.sum(mask), 1.0)


def _counts(spikes):
    return jnp.sum(spikes.astype(jnp.float32), axis=0)  # [B, C]


def count_mse(spikes, labels, *, true_rate: float = 0.2, false_rate: float = 0.03, mask=None):
    """Spike-count mean-squared error against target rates (spikes per step). Returns a scalar."""
    spikes, labels, mask = _check(spikes, labels, mask, "count_mse")
    return _batch_mean(_nan_if_invalid(_mse_per_example(spikes, labels, true_rate, false_rate), labels,
                                       spikes.shape[2]), mask)


def _mse_per_example(spikes, labels, true_rate, false_rate):
    rates = _counts(spikes) / spikes.shape[0]
    onehot = jax.nn.one_hot(labels, spikes.shape[2], dtype=jnp.float32)
    target = false_rate + (true_rate - false_rate) * onehot
    return 0.5 * jnp.sum((rates - target) ** 2, axis=-1)


def count_softmax(spikes, labels, *, temperature: float = 1.0, mask=None):
    """Cross-entropy of softmax(counts / temperature). Returns a scalar."""
    spikes, labels, mask = _check(spikes, labels, mask, "count_softmax")
    if not temperature > 0:
        raise ValueError(f"count_softmax: temperature must be > 0, got {temperature}")
    per_example = _softmax_per_example(spikes, labels, temperature)
    return _batch_mean(_nan_if_invalid(per_example, labels, spikes.shape[2]), mask)


def _softmax_per_example(spikes, labels, temperature):
    logp = jax.nn.log_softmax(_counts(spikes) / temperature, axis=-1)
    return -jnp.take_along_axis(logp, labels[:, None], axis=-1)[:, 0]


def _clamp_straight_through(counts, min_count):
    """max(counts, min_count) in the forward, identity in the backward."""
    return counts + jax.lax.stop_gradient(jnp.maximum(counts, min_count) - counts)


def _spikemax_nll(counts, labels, min_count):
    """-log(m_label / sum m) over the last axis of counts [..., C]; labels broadcast to counts[..., 0]."""
    m = _clamp_straight_through(counts, min_count)
    picked = jnp.take_along_axis(m, labels[..., None], axis=-1)[..., 0]
    return jnp.log(jnp.sum(m, axis=-1)) - jnp.log(picked)


def spike_nll(spikes, labels, *, window: int | None = None, min_count: float = 1.0, mask=None):
    """Spikemax negative log-likelihood of spike-count probabilities (module docstring). Returns a scalar.

    Args:
      spikes: output spikes [T, B, C].
      labels: int [B].
      window: None for whole-sample counts, or W >= 1 for sliding-window counts.
      min_count: lower clamp of the counts (> 0), straight-through in the gradient.
      mask: optional [B] weights of real (1) and padding (0) examples.
    """
    spikes, labels, mask = _check(spikes, labels, mask, "spike_nll")
    if not min_count > 0:
        raise ValueError(f"spike_nll: min_count must be > 0, got {min_count}")
    if window is None:
        per_example = _spikemax_nll(_counts(spikes), labels, min_count)
        return _batch_mean(_nan_if_invalid(per_example, labels, spikes.shape[2]), mask)
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"spike_nll: window must be a positive int or None, got {window!r}")
    per_example = _windowed_nll_per_example(spikes, labels, window, min_count)
    return _batch_mean(_nan_if_invalid(per_example, labels, spikes.shape[2]), mask)


def _windowed_nll_per_example(spikes, labels, window, min_count):
    """Mean over t of the spikemax NLL of the counts in steps t-W+1..t; `window` may be traced."""
    cumulative = jnp.cumsum(spikes.astype(jnp.float32), axis=0)  # [T, B, C]; exact for integer counts
    steps = jnp.arange(spikes.shape[0])
    earlier = jnp.take(cumulative, jnp.maximum(steps - window, 0), axis=0)  # counts up to t-W
    windowed = cumulative - jnp.where((steps >= window)[:, None, None], earlier, 0.0)
    per_step = _spikemax_nll(windowed, jnp.broadcast_to(labels, windowed.shape[:2]), min_count)  # [T, B]
    return jnp.mean(per_step, axis=0)


# The losses by number, for `spike_loss`'s `kind`.
LOSS_KINDS = ("mse", "softmax", "nll")


def spike_loss(spikes, labels, *, kind, true_rate=0.2, false_rate=0.03, temperature=1.0, min_count=1.0, window=0,
               mask=None, kinds=(0, 1, 2), windowed=True):
    """Any of the three losses, with the choice and every parameter as (possibly traced) data.

    kind: 0 count_mse, 1 count_softmax, 2 spike_nll (LOSS_KINDS); window: 0 for whole-sample counts, W >= 1
    for a sliding window (spike_nll only). The losses in the static `kinds` (and the windowed NLL if
    `windowed`) are computed and `kind`'s is selected, so one compiled program serves replicas with
    different losses under `jax.vmap` (spikejax.replicas); narrowing `kinds`/`windowed` to what the
    replicas use skips the rest. Equal to the named losses for the same parameters. The parameters are not
    range-checked here (they may be traced): validate them where they are chosen.
    """
    spikes, labels, mask = _check(spikes, labels, mask, "spike_loss")
    candidates = {}
    if 0 in kinds:
        candidates[0] = _mse_per_example(spikes, labels, true_rate, false_rate)
    if 1 in kinds:
        candidates[1] = _softmax_per_example(spikes, labels, temperature)
    if 2 in kinds:
        nll = _spikemax_nll(_counts(spikes), labels, min_count)
        if windowed:
            nll = jnp.where(window > 0, _windowed_nll_per_example(spikes, labels, jnp.maximum(window, 1), min_count),
                            nll)
        candidates[2] = nll
    if not candidates:
        raise ValueError(f"spike_loss: kinds must name at least one of {list(range(len(LOSS_KINDS)))}, got {kinds}")
    *others, (_, last) = sorted(candidates.items())
    per_example = jnp.select([kind == k for k, _ in others], [v for _, v in others], last) if others else last
    return _batch_mean(_nan_if_invalid(per_example, labels, spikes.shape[2]), mask)


def spike_rate_penalty(spikes, *, target_rate: float = 0.02, mask=None):
    """Hidden-layer firing-rate regulariser: mean_b mean_i (rate_bi - target_rate)^2 with rate in
    spikes per step, for spikes [T, B, ...]. Add `weight * spike_rate_penalty(h)` to a loss."""
    spikes = jnp.asarray(spikes)
    if spikes.ndim < 2:
        raise ValueError(f"spike_rate_penalty: spikes must be [T, B, ...], got shape {spikes.shape}")
    rates = jnp.mean(spikes.astype(jnp.float32), axis=0).reshape(spikes.shape[1], -1)
    per_example = jnp.mean((rates - target_rate) ** 2, axis=-1)
    return _batch_mean(per_example, None if mask is None else jnp.asarray(mask))


LossFn = Callable[..., jax.Array]

LOSSES: dict[str, LossFn] = {
    "mse": count_mse,
    "softmax": count_softmax,
    "nll": spike_nll,
    # aliases
    "count_mse": count_mse,
    "count_softmax": count_softmax,
    "spike_nll": spike_nll,
    "spikemax": spike_nll,
}


def get_loss(name: str) -> LossFn:
    """The loss registered under `name`; a ValueError lists the choices otherwise."""
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; choose one of {sorted(LOSSES)}") from None
