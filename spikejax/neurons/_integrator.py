"""The non-spiking leaky integrator, a model's readout layer when `output="integrator"` (`spikejax.models`)."""
from __future__ import annotations

import numbers
from typing import Any

import jax
import jax.numpy as jnp


def leaky_integrator(currents: jax.Array, *, beta: float | jax.Array, state_dtype: Any = jnp.float32) -> jax.Array:
    """A non-spiking leaky integrator over time (the readout layer of the SHD and delays literature):

      u[t] = beta*u[t-1] + I[t],   u[-1] = 0       (no threshold, no reset, no spikes)

    Args:
      currents: input currents I [T, ...], floating.
      beta: decay per step in [0, 1]: a Python float, or a floating array broadcastable to I[0]
        (learnable; its gradient comes from autodiff of the scan).
      state_dtype: dtype in which u is integrated (float32 by default, also for bf16 input).

    Returns:
      the membrane u [T, ...] in the dtype of `currents` (the LIF's v with the threshold at infinity).
    """
    currents = jnp.asarray(currents)
    if currents.ndim < 1 or not jnp.issubdtype(currents.dtype, jnp.floating):
        raise ValueError(f"currents must be floating point [T, ...], got {currents.dtype}{currents.shape}")
    state_dtype = jnp.dtype(state_dtype)
    if isinstance(beta, numbers.Real) and not isinstance(beta, bool):
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must lie in [0, 1], got {beta}")
        decay = beta
    else:
        shape = jnp.shape(beta)
        try:
            fits = jnp.broadcast_shapes(shape, currents.shape[1:]) == currents.shape[1:]
        except ValueError:
            fits = False
        if not fits or not jnp.issubdtype(jnp.result_type(beta), jnp.floating):
            raise ValueError(f"beta must be a Python number or a floating array broadcastable to one step of the "
                             f"currents {currents.shape[1:]}, got {jnp.result_type(beta)}{shape}")
        decay = jnp.asarray(beta).astype(state_dtype)

    def step(u_prev, current):
        u = decay * u_prev + current.astype(state_dtype)
        return u, u

    _, membrane = jax.lax.scan(step, jnp.zeros_like(currents[0], state_dtype), currents)
    return membrane.astype(currents.dtype)
