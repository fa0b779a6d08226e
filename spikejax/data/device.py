"""Decoding bit-packed batches on the device (the one module of `spikejax.data` that uses jax).

`TrainIterator`/`eval_batches(packed=True)` hand over the cache's stored bits, uint8 [..., ceil(F/8)] in
np.packbits (big-endian) order over the flattened frame of F features: 8x fewer bytes to assemble on the
host and to copy to the device. `unpack_spikes` runs inside the jitted step.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def unpack_spikes(packed: jax.Array, frame_shape) -> jax.Array:
    """uint8 [..., ceil(F/8)] bits in np.packbits order -> uint8 [..., *frame_shape], F = prod(frame_shape)."""
    features = math.prod(frame_shape)
    bits = (packed[..., None] >> jnp.arange(7, -1, -1, dtype=jnp.uint8)) & jnp.uint8(1)
    bits = bits.reshape(packed.shape[:-1] + (packed.shape[-1] * 8,))[..., :features]
    return bits.reshape(packed.shape[:-1] + tuple(frame_shape))
