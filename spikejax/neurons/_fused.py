"""The "reference" and "fused" LIF implementations behind `spikejax.neurons.lif` (equations in the
package docstring; the per-step update and adjoint in `spikejax.neurons._step`)."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from spikejax import surrogate as surrogate_lib
from spikejax.neurons._step import (
    add_parameter_terms,
    adjoint_step,
    learned_names,
    membrane_step,
    parameter_values,
)


def _lif_reference(currents, beta, threshold, reset, name, frozen, detach_reset, state_dtype):
    params = dict(frozen)
    beta = jnp.asarray(beta, state_dtype)
    threshold = jnp.asarray(threshold, state_dtype)

    def step(carry, current):
        v_prev, s_prev = carry
        s_reset = jax.lax.stop_gradient(s_prev) if detach_reset else s_prev
        if reset == "subtract":
            v = beta * v_prev + current.astype(state_dtype) - threshold * s_reset
        else:
            v = beta * v_prev * (1.0 - s_reset) + current.astype(state_dtype)
        s = surrogate_lib.spike(v - threshold, name, **params)
        return (v, s), (s, v)

    shape = jnp.broadcast_shapes(currents.shape[1:], beta.shape, threshold.shape)
    zero = jnp.zeros_like(jnp.broadcast_to(currents[0], shape), state_dtype)  # keeps shard_map's varying axes
    init = (zero, zero)
    _, (spikes, membrane) = jax.lax.scan(step, init, currents)
    return spikes.astype(currents.dtype), membrane.astype(currents.dtype)


# ----------------------------------------------------------------------------------------------------------
# Fused implementation: one custom_vjp over the whole sequence.


@functools.cache
def _fused_lif(beta, threshold, reset, name, frozen, detach_reset, state_dtype_name, recompute_chunk):
    """f(currents, arrays) -> (spikes, membrane) with a custom VJP. `beta`/`threshold`: a float (a
    constant) or None (then arrays["beta"] / arrays["threshold"], of one step's shape currents.shape[1:],
    whose gradients the adjoint pass sums, see `spikejax.lif_step`)."""
    state_dtype = jnp.dtype(state_dtype_name)
    derivative = functools.partial(surrogate_lib.SURROGATES[name][0], **dict(frozen))
    learned = learned_names(beta, threshold)
    values = lambda arrays: parameter_values(beta, threshold, arrays, state_dtype)

    def integrate(currents, v0, params):
        """Forward recurrence from state v0 (before step 0): returns v [T, ...] in state_dtype."""

        def step(v_prev, current):
            v = membrane_step(v_prev, current.astype(state_dtype), reset=reset, **params)
            return v, v

        # v[-1] = 0 gives s[-1] = 0, matching the initial condition.
        return jax.lax.scan(step, v0, currents)

    def adjoint(membrane, grad_spikes, grad_membrane, carry, params):
        """Reverse-time adjoint over a span from carry (dL/dv after the span, parameter-gradient sums);
        returns (the carry before the span, dL/dI for the span)."""

        def step(carry, xs):
            a, sums = carry
            v, gs, gv = xs
            out = adjoint_step(a, v, gs.astype(state_dtype), reset=reset, detach_reset=detach_reset,
                               derivative=derivative, grad_membrane=gv.astype(state_dtype),
                               parameter_grads=bool(learned), **params)
            a_here, sums = add_parameter_terms(out, sums, learned)
            return (a_here, sums), a_here

        return jax.lax.scan(step, carry, (membrane, grad_spikes, grad_membrane), reverse=True)

    def outputs(currents, membrane, params):
        spikes = (membrane > params["threshold"]).astype(currents.dtype)
        return spikes, membrane.astype(currents.dtype)

    def start(currents):
        return jnp.zeros_like(currents[0], state_dtype)  # zeros_like keeps shard_map's varying axes

    def parameter_grads(sums, arrays):
        return {k: sums[k].astype(arrays[k].dtype) for k in learned}

    @jax.custom_vjp
    def fused(currents, arrays):
        params = values(arrays)
        _, membrane = integrate(currents, start(currents), params)
        return outputs(currents, membrane, params)

    def fused_fwd(currents, arrays):
        params = values(arrays)
        v0 = start(currents)
        if recompute_chunk is None:
            _, membrane = integrate(currents, v0, params)
            return outputs(currents, membrane, params), (membrane, arrays)
        chunks, steps = _chunked(currents, recompute_chunk)

        def chunk(v_prev, chunk_currents):
            v_last, membrane = integrate(chunk_currents, v_prev, params)
            return v_last, (v_prev, outputs(chunk_currents, membrane, params))

        _, (starts, (spikes, membrane)) = jax.lax.scan(chunk, v0, chunks)
        merge = lambda x: x.reshape((-1,) + x.shape[2:])[:steps]
        return (merge(spikes), merge(membrane)), ((currents, starts), arrays)

    def fused_bwd(residual, grads):
        residual, arrays = residual
        params = values(arrays)
        grad_spikes, grad_membrane = grads
        if recompute_chunk is None:
            membrane = residual
            zero = jnp.zeros_like(membrane[0])
            (_, sums), grad_currents = adjoint(membrane, grad_spikes, grad_membrane,
                                               (zero, {k: zero for k in learned}), params)
            return grad_currents.astype(grad_spikes.dtype), parameter_grads(sums, arrays)
        currents, starts = residual
        chunks, steps = _chunked(currents, recompute_chunk)
        gs_chunks, _ = _chunked(grad_spikes, recompute_chunk)
        gv_chunks, _ = _chunked(grad_membrane, recompute_chunk)

        def chunk(carry, xs):
            v_prev, chunk_currents, gs, gv = xs
            _, membrane = integrate(chunk_currents, v_prev, params)
            return adjoint(membrane, gs, gv, carry, params)

        zero = start(currents)
        (_, sums), grad_chunks = jax.lax.scan(chunk, (zero, {k: zero for k in learned}),
                                              (starts, chunks, gs_chunks, gv_chunks), reverse=True)
        grad_currents = grad_chunks.reshape((-1,) + grad_chunks.shape[2:])[:steps]
        return grad_currents.astype(currents.dtype), parameter_grads(sums, arrays)

    fused.defvjp(fused_fwd, fused_bwd)
    return fused


def _chunked(x, size):
    """[T, ...] -> ([ceil(T/size), size, ...] zero-padded at the end, T)."""
    steps = x.shape[0]
    num = -(-steps // size)
    pad = num * size - steps
    if pad:
        x = jnp.pad(x, [(0, pad)] + [(0, 0)] * (x.ndim - 1))
    return x.reshape((num, size) + x.shape[1:]), steps

