"""Data augmentation of binned spike frames, on the device, inside the compiled train step.

  spec = Augment(time_shift=2, spike_drop=0.1, cutmix=0.5)            # `build.augment(config)` makes it
  frames, partner_labels, weight = apply(spec, frames, labels, seed=seed, step=step, axis_name="data")
  loss = mixed_loss(loss_fn, outputs, labels, partner_labels, weight, mask)

Frames are the unpacked inputs, time-major [T, b, *frame] with frame = (C,) for one-dimensional sensors
(cochleas: SHD, N-TIDIGITS18) or (P, H, W) for cameras; the dtype is kept. Per sample, in this order:

  time_shift     k bins: the whole sample moves by s ~ U{-k..k} steps, x'[t] = x[t - s], zero fill
  time_jitter    k bins: every spike moves on its own by d in {-k..k} steps (per-event jitter on binned
                 frames; d = floor(u (2k + 1) / 256) - k with u a uniform byte, so nearly uniform); spikes
                 landing in one bin combine by max (binary frames) or sum (counts, clipped)
  spatial_shift  k pixels, cameras only: x'[..., y, x] = x[..., y - dy, x - dx], (dy, dx) ~ U{-k..k}^2
  channel_shift  k channels, 1-D frames only: x'[t, c] = x[t, c - s], s ~ U{-k..k}
  spike_drop     p: every entry (time step, feature) is zeroed with probability round(256 p) / 256 (one
                 uniform byte per entry: 0.1 drops 26/256 = 10.2%)
  channel_drop   p, 1-D frames only: every channel is zeroed, at all steps, with probability p
  cutmix         p: with probability p the sample takes a block from its partner, the next sample of the
                 global batch (position g takes from (g + 1) mod B, as timm's mixup pairs a batch with its
                 flip): a time window of L = round(r T) steps ("time") or a box of round(H sqrt r) x
                 round(W sqrt r) pixels at all steps ("space"), r ~ U(0, 1) (CutMix's Beta(1, 1)). Its label
                 weight is the fraction it keeps, w = 1 - L / T or 1 - h w / (H W); the partner's label gets 1 - w.

Randomness: sample g (its position in the global batch) at optimizer step n of a run with seed s draws from
fold_in(fold_in(fold_in(PRNGKey(s), STREAM), n), g), and each transform from fold_in(that, its own index),
so a resumed run draws what an uninterrupted one drew, replicas with other seeds draw otherwise, and 1 or
N devices draw the same (the shard's offset is axis_index * local batch). Evaluation never calls this.
"""
from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

STREAM = 0xA06  # separates these draws from any other use of the run's seed
_INDEX = {"time_shift": 0, "time_jitter": 1, "spatial_shift": 2, "channel_shift": 3, "spike_drop": 4,
          "channel_drop": 5, "cutmix": 6}
CUTMIX_MODES = ("time", "space")


@dataclasses.dataclass(frozen=True)
class Augment:
    """Which augmentations run and how strongly (module docstring); every field 0 is none. Hashable: it
    is a static argument of the jitted step. `binary`: the frames are 0/1 spikes (data.binarize)."""
    time_shift: int = 0
    time_jitter: int = 0
    spatial_shift: int = 0
    channel_shift: int = 0
    spike_drop: float = 0.0
    channel_drop: float = 0.0
    cutmix: float = 0.0
    cutmix_mode: str = "time"
    binary: bool = True

    def __post_init__(self):
        for name in ("time_shift", "time_jitter", "spatial_shift", "channel_shift"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise ValueError(f"Augment.{name} must be an int >= 0, got {getattr(self, name)!r}")
        for name in ("spike_drop", "channel_drop", "cutmix"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"Augment.{name} must be a probability in [0, 1], got {getattr(self, name)!r}")

    @property
    def active(self) -> bool:
        return any((self.time_shift, self.time_jitter, self.spatial_shift, self.channel_shift, self.spike_drop,
                    self.channel_drop, self.cutmix))

    def check(self, frame: tuple[int, ...]) -> None:
        """ValueError naming the field when the spec does not fit frames [T, *frame]."""
        camera = len(frame) == 3
        if self.spatial_shift and not camera:
            raise ValueError(f"spatial_shift needs camera frames (P, H, W), got frames {frame}")
        if (self.channel_shift or self.channel_drop) and camera:
            raise ValueError(f"channel_shift and channel_drop need 1-D frames (C,), got frames {frame}")
        if self.cutmix and self.cutmix_mode == "space" and not camera:
            raise ValueError(f"cutmix_mode 'space' needs camera frames (P, H, W), got frames {frame}")
        if self.cutmix_mode not in CUTMIX_MODES:
            raise ValueError(f"cutmix_mode must be one of {list(CUTMIX_MODES)}, got {self.cutmix_mode!r}")


def sample_key(seed, step, position) -> jax.Array:
    """The key of the sample at global batch `position` in optimizer step `step` of a run seeded `seed`."""
    base = jax.random.fold_in(jax.random.PRNGKey(seed), STREAM)
    return jax.random.fold_in(jax.random.fold_in(base, step), position)


def draw(spec: Augment, key, shape: tuple[int, ...]) -> dict:
    """One sample's random parameters for frames of `shape` [T, *frame] (the drawn ones only):
    time_shift, channel_shift: int; spatial_shift: int [2] (dy, dx); time_jitter: int [T, *frame];
    spike_keep: bool [T, *frame]; channel_keep: bool [C]; cutmix: bool, with cut_start / cut_size int [2]
    ((t, t) for time: start and length; (y0, x0) and (h, w) for space)."""
    keys = {name: jax.random.fold_in(key, index) for name, index in _INDEX.items()}
    out = {}
    shift = lambda k, size, n=(): jax.random.randint(k, n, -size, size + 1)
    if spec.time_shift:
        out["time_shift"] = shift(keys["time_shift"], spec.time_shift)
    if spec.time_jitter:
        span = 2 * spec.time_jitter + 1
        out["time_jitter"] = (_bytes(keys["time_jitter"], shape) * span) // 256 - spec.time_jitter
    if spec.spatial_shift:
        out["spatial_shift"] = shift(keys["spatial_shift"], spec.spatial_shift, (2,))
    if spec.channel_shift:
        out["channel_shift"] = shift(keys["channel_shift"], spec.channel_shift)
    if spec.spike_drop:
        out["spike_keep"] = _bytes(keys["spike_drop"], shape) >= round(256 * spec.spike_drop)
    if spec.channel_drop:
        out["channel_keep"] = jax.random.bernoulli(keys["channel_drop"], 1.0 - spec.channel_drop, shape[-1:])
    if spec.cutmix:
        k_apply, k_ratio, k_start = jax.random.split(keys["cutmix"], 3)
        out["cutmix"] = jax.random.bernoulli(k_apply, spec.cutmix)
        ratio = jax.random.uniform(k_ratio)
        if spec.cutmix_mode == "time":
            full = jnp.asarray(shape[:1])
            size = jnp.round(ratio * full).astype(jnp.int32)
        else:
            full = jnp.asarray(shape[-2:])
            size = jnp.round(jnp.sqrt(ratio) * full).astype(jnp.int32)
        out["cut_size"] = size
        out["cut_start"] = jax.random.randint(k_start, size.shape, 0, full - size + 1)
    return out


def _bytes(key, shape) -> jax.Array:
    """Uniform integers in [0, 256), int32 of `shape`: four from each 32-bit word of threefry (a quarter of
    the hashing of one draw per entry, which dominated the step's cost on CPU)."""
    count = math.prod(shape)
    words = jax.random.bits(key, (-(-count // 4),), jnp.uint32)
    parts = (words[:, None] >> jnp.asarray([0, 8, 16, 24], jnp.uint32)) & jnp.uint32(255)
    return parts.reshape(-1)[:count].reshape(shape).astype(jnp.int32)


def _shift_axis(x, offset, axis: int, limit: int):
    """x shifted by a traced `offset` (|offset| <= limit) along `axis`: out[i] = x[i - offset], zero fill."""
    pad = [(0, 0)] * x.ndim
    pad[axis] = (limit, limit)
    padded = jnp.pad(x, pad)
    return jax.lax.dynamic_slice_in_dim(padded, limit - offset, x.shape[axis], axis)


def _shift_static(x, offset: int, axis: int = 0):
    """x shifted by a Python int along `axis`, zero fill."""
    if offset == 0:
        return x
    pad = [(0, 0)] * x.ndim
    pad[axis] = (offset, 0) if offset > 0 else (0, -offset)
    padded = jnp.pad(x, pad)
    start = 0 if offset > 0 else -offset
    return jax.lax.slice_in_dim(padded, start, start + x.shape[axis], axis=axis)


def _jitter(spec: Augment, x, offsets):
    """Every entry of x [T, ...] moved by its own offset in time (zero fill), collisions by max or sum."""
    moved = [_shift_static(jnp.where(offsets == d, x, jnp.zeros_like(x)), d)
             for d in range(-spec.time_jitter, spec.time_jitter + 1)]
    if spec.binary:
        return jnp.max(jnp.stack(moved), axis=0)
    total = jnp.sum(jnp.stack(moved).astype(jnp.float32), axis=0)
    if jnp.issubdtype(x.dtype, jnp.integer):
        total = jnp.minimum(total, jnp.iinfo(x.dtype).max)
    return total.astype(x.dtype)


def transform(spec: Augment, x, params: dict):
    """The per-sample transforms (all but cutmix) of one sample x [T, *frame] with drawn `params`."""
    zero = jnp.zeros((), x.dtype)
    if spec.time_shift:
        x = _shift_axis(x, params["time_shift"], 0, spec.time_shift)
    if spec.time_jitter:
        x = _jitter(spec, x, params["time_jitter"])
    if spec.spatial_shift:
        dy, dx = params["spatial_shift"][0], params["spatial_shift"][1]
        x = _shift_axis(_shift_axis(x, dy, x.ndim - 2, spec.spatial_shift), dx, x.ndim - 1, spec.spatial_shift)
    if spec.channel_shift:
        x = _shift_axis(x, params["channel_shift"], x.ndim - 1, spec.channel_shift)
    if spec.spike_drop:
        x = jnp.where(params["spike_keep"], x, zero)
    if spec.channel_drop:
        x = jnp.where(params["channel_keep"], x, zero)
    return x


def cut_mask(spec: Augment, params: dict, shape: tuple[int, ...]):
    """(the block a sample takes from its partner, bool broadcastable to [T, *frame], its own label
    weight, float32 scalar): w = 1 - block fraction when cutmix applies, else 1 and an empty block."""
    start, size = params["cut_start"], params["cut_size"]
    if spec.cutmix_mode == "time":
        t = jnp.arange(shape[0])
        block = (t >= start[0]) & (t < start[0] + size[0])
        block = block.reshape((shape[0],) + (1,) * (len(shape) - 1))
        kept = (shape[0] - size[0]) / shape[0]
    else:
        y = jnp.arange(shape[-2])[:, None]
        x = jnp.arange(shape[-1])[None, :]
        block = (y >= start[0]) & (y < start[0] + size[0]) & (x >= start[1]) & (x < start[1] + size[1])
        area = shape[-2] * shape[-1]
        kept = (area - size[0] * size[1]) / area
    applied = params["cutmix"]
    weight = jnp.where(applied, jnp.clip(kept.astype(jnp.float32), 0.0, 1.0), 1.0)
    return block & applied, weight


def _next_in_global_batch(x, axis: int, axis_name):
    """x's entries rolled by one along `axis` over the global batch: position g gets position g + 1 (mod B);
    with `axis_name`, the last entry of each shard comes from the first of the next shard (ppermute)."""
    rolled = jnp.roll(x, -1, axis=axis)
    if axis_name is None:
        return rolled
    n = jax.lax.axis_size(axis_name)
    if n == 1:
        return rolled
    first = jax.lax.slice_in_dim(x, 0, 1, axis=axis)
    received = jax.lax.ppermute(first, axis_name, [(d, (d - 1) % n) for d in range(n)])
    last = x.shape[axis] - 1
    return jax.lax.dynamic_update_slice_in_dim(rolled, received, last, axis)


def batch_parameters(spec: Augment, shape: tuple[int, ...], *, seed, step, offset=0) -> dict:
    """Drawn parameters of a batch of frames `shape` [T, b, *frame] whose first sample sits at global
    position `offset`: every leaf gains a leading axis [b]."""
    positions = offset + jnp.arange(shape[1])
    keys = jax.vmap(lambda p: sample_key(seed, step, p))(positions)
    sample = (shape[0],) + tuple(shape[2:])
    return jax.vmap(lambda k: draw(spec, k, sample))(keys)


def apply(spec: Augment, frames, labels, *, seed, step, axis_name=None):
    """Augmented frames [T, b, *frame], the partners' labels [b] and the own-label weights [b] (float32;
    all ones and the labels themselves without cutmix). `seed`, `step`: ints or traced int scalars; under
    shard_map over `axis_name` the shard's samples sit at global positions axis_index * b + i (the draws
    are `batch_parameters`)."""
    spec.check(tuple(frames.shape[2:]))
    b = frames.shape[1]
    offset = 0 if axis_name is None else jax.lax.axis_index(axis_name) * b
    params = batch_parameters(spec, frames.shape, seed=seed, step=step, offset=offset)
    sample_shape = (frames.shape[0],) + tuple(frames.shape[2:])
    frames = jax.vmap(lambda x, p: transform(spec, x, p), in_axes=(1, 0), out_axes=1)(frames, params)
    if not spec.cutmix:
        return frames, labels, jnp.ones((b,), jnp.float32)
    partner = _next_in_global_batch(frames, 1, axis_name)
    partner_labels = _next_in_global_batch(labels, 0, axis_name)
    block, weight = jax.vmap(lambda p: cut_mask(spec, p, sample_shape))(params)
    # [b, T, 1...] -> [T, b, 1...]; space: [b, H, W] -> [1, b, 1, H, W] (every step and polarity)
    block = jnp.moveaxis(block, 0, 1) if spec.cutmix_mode == "time" else block[None, :, None]
    return jnp.where(block, partner, frames), partner_labels, weight


def mixed_loss(loss_fn, outputs, labels, partner_labels, weight, mask):
    """sum_b mask_b (w_b L(y_b) + (1 - w_b) L(y'_b)) / sum_b mask_b for a `loss_fn(outputs, labels, mask)`
    that is a mask-weighted batch mean (every registered loss: losses._common.batch_mean), so any loss
    trains on CutMix's soft labels unchanged. Each part's mean is turned back into its weighted sum."""
    mask = mask.astype(jnp.float32)
    own, other = mask * weight, mask * (1.0 - weight)
    total = (loss_fn(outputs, labels, own) * jnp.maximum(jnp.sum(own), 1.0)
             + loss_fn(outputs, partner_labels, other) * jnp.maximum(jnp.sum(other), 1.0))
    return total / jnp.maximum(jnp.sum(mask), 1.0)
