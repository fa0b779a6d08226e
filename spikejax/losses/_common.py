"""Shared checks of the losses: shapes and dtypes at trace time, label ranges when concrete, the masked
batch mean. A loss of the registry is built from these, so every loss refuses bad input the same way."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def concrete(x):
    """x as a numpy array, or None when it is traced (inside jit/grad/vmap)."""
    try:
        return np.asarray(x)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None


def check_array(x, name: str, what: str = "spikes", expected: str = "[T, B, C]", rank: int | None = 3):
    """x as one array of `rank` dimensions (None: at least 2); a ValueError naming `name`, `what` and the
    `expected` shape otherwise, e.g. "spike_nll: expected spikes [T, B, C] (time-major), got a tuple of 2
    items". A tuple, list or dict is refused by kind before numpy could stack it. At trace time (shapes are
    static), so it costs the compiled step nothing."""
    if isinstance(x, dict):
        raise ValueError(f"{name}: expected {what} {expected} (time-major, one array), got a dict with keys "
                         f"{list(x)} (a model's outputs? pass outputs[{what!r}])")
    if isinstance(x, (tuple, list)):
        raise ValueError(f"{name}: expected {what} {expected} (time-major, one array), got a {type(x).__name__} "
                         f"of {len(x)} items (a model's (spikes, layers) pair? call the model without "
                         "return_layers, or pass the first item)")
    x = jnp.asarray(x)
    if (x.ndim != rank) if rank is not None else (x.ndim < 2):
        raise ValueError(f"{name}: expected {what} {expected} (time-major), got shape {tuple(x.shape)}")
    return x


def check_outputs(outputs, labels, mask, name: str, what: str = "spikes"):
    """(outputs [T, B, C] floating, labels int [B], mask [B] or None) as arrays; ValueError naming the
    argument and the expected shape otherwise (`check_array`). Concrete labels outside [0, C) at counted
    positions are refused by value."""
    outputs, labels = check_array(outputs, name, what), jnp.asarray(labels)
    if not jnp.issubdtype(outputs.dtype, jnp.floating):
        raise ValueError(f"{name}: {what} must be floating point, got dtype {outputs.dtype}")
    if labels.ndim != 1 or labels.shape[0] != outputs.shape[1]:
        raise ValueError(
            f"{name}: labels must have shape [B] = [{outputs.shape[1]}] to match {what} {outputs.shape}, "
            f"got {labels.shape}")
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise ValueError(f"{name}: labels must be integer class indices, got dtype {labels.dtype}")
    if mask is not None:
        mask = jnp.asarray(mask)
        if mask.shape != labels.shape:
            raise ValueError(f"{name}: mask must have shape {labels.shape}, got {mask.shape}")
    _check_label_range(labels, mask, outputs.shape[2], name)
    return outputs, labels, mask


def _check_label_range(labels, mask, num_classes, name):
    labels = concrete(labels)
    if labels is None:
        return
    mask = None if mask is None else concrete(mask)
    counted = np.ones(labels.shape, bool) if mask is None else mask != 0
    bad = counted & ((labels < 0) | (labels >= num_classes))
    if np.any(bad):
        raise ValueError(f"{name}: labels must lie in [0, {num_classes}), got {sorted(set(labels[bad].tolist()))} "
                         f"at batch positions {np.flatnonzero(bad)[:10].tolist()}")


def nan_if_invalid(per_example, labels, num_classes):
    """per_example [B] with NaN where labels[b] is outside [0, num_classes) (the traced case)."""
    valid = (labels >= 0) & (labels < num_classes)
    return jnp.where(valid, per_example, jnp.nan)


def compute_dtype(x):
    """float32 for bf16/f16/f32 inputs (the losses' arithmetic), float64 for float64 ones (tests under x64)."""
    return jnp.promote_types(x.dtype, jnp.float32)


def cross_entropy(logits, labels):
    """-log softmax(logits)[..., label] over the last axis, in at least float32: logits [..., B, C], labels int [B]
    (broadcast over the leading axes) -> [..., B]. An out-of-range label reads no class (fill: NaN);
    `nan_if_invalid` makes that NaN explicit."""
    logp = jax.nn.log_softmax(logits.astype(compute_dtype(logits)), axis=-1)
    index = jnp.broadcast_to(labels, logp.shape[:-1])[..., None]
    return -jnp.take_along_axis(logp, index, axis=-1, mode="fill", fill_value=jnp.nan)[..., 0]


def batch_mean(per_example, mask):
    """Mean over the batch of per_example [B] (float32, float64 for float64), over the examples with mask != 0
    when given."""
    per_example = per_example.astype(compute_dtype(per_example))
    if mask is None:
        return jnp.mean(per_example)
    mask = mask.astype(jnp.float32)
    # where, not a product: a padding example (mask 0) with a NaN loss must not make the sum NaN
    return jnp.sum(jnp.where(mask != 0, per_example * mask, 0.0)) / jnp.maximum(jnp.sum(mask), 1.0)


def check_positive(name: str, parameter: str, value, *, strict: bool = True) -> None:
    """ValueError unless a concrete `value` is > 0 (>= 0 with strict=False); a traced one is checked where
    it was chosen."""
    v = concrete(value)
    if v is not None and not np.all(v > 0 if strict else v >= 0):
        raise ValueError(f"{name}: {parameter} must be {'>' if strict else '>='} 0, got {value}")
