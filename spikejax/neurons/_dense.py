"""The "chunked" implementation of `spikejax.neurons.dense_lif`: a dense layer and its LIF neurons walked
through time in chunks of K steps, one `custom_vjp` over the layer (equations of the step and the adjoint
in `spikejax.neurons._step`).

Forward, chunk by chunk (carry: the membrane before the chunk):

  I_c = x_c W + b                  [K*B, D] @ [D, N] in the input dtype, the rows of K steps
  v_c = the LIF membrane over the chunk, s_c = H(v_c - threshold)

Backward, chunks in reverse (carry: a[t+1] and the sums of dW, db and the parameter gradients):

  a_c = the adjoint over the chunk (from v_c, kept, or recomputed from the chunk's start state)
  dW += x_c^T a_c,   db += sum of a_c over the chunk's rows,   dx_c = a_c W^T

A chunk's currents and their gradient are consumed while they are in cache and no [T, B, N] array of
either exists: the step's temporaries are the kept membrane (4 bytes per neuron-step; with `recompute`
only one state per chunk, at the cost of the forward GEMM again in the backward), the spikes and dx.
dW and db are float32 sums over the chunks (of each chunk's GEMM), a different order from one GEMM over
all T*B rows; the spikes, dx and the parameter gradients are the same arithmetic as the unchunked layer.
"""
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

STATE = jnp.float32


def _chunks_forward(body, carry, steps, chunk):
    """carry = body(carry, t0, size) for the chunks [0, K), [K, 2K), ... and the last, shorter one (size is
    static). The chunks are sliced out of and written into whole [T, ...] arrays in the loop, so no padded
    or stacked copy of an input or output exists."""
    full, tail = divmod(steps, chunk)
    if full:
        carry = jax.lax.fori_loop(0, full, lambda c, carry: body(carry, c * chunk, chunk), carry)
    if tail:
        carry = body(carry, full * chunk, tail)
    return carry


def _chunks_reverse(body, carry, steps, chunk):
    """As `_chunks_forward`, the last chunk first."""
    full, tail = divmod(steps, chunk)
    if tail:
        carry = body(carry, full * chunk, tail)
    if full:
        carry = jax.lax.fori_loop(0, full, lambda i, carry: body(carry, (full - 1 - i) * chunk, chunk), carry)
    return carry


def _slice(x, t0, size):
    return jax.lax.dynamic_slice_in_dim(x, t0, size, axis=0)


def _put(buffer, update, t0):
    return jax.lax.dynamic_update_slice_in_dim(buffer, update.astype(buffer.dtype), t0, axis=0)


@functools.cache
def make_dense_lif(beta, threshold, reset, name, frozen, detach_reset, chunk, recompute):
    """f(x [T, B, D], w [D, N], b [N] or None, arrays) -> spikes [T, B, N] in x's dtype, with a custom VJP.
    `beta`/`threshold`: a float (a constant) or None (then arrays["beta"] / arrays["threshold"], of one
    step's shape [B, N]); w and b already in x's dtype. `chunk`: K steps per chunk."""
    derivative = functools.partial(surrogate_lib.SURROGATES[name][0], **dict(frozen))
    learned = learned_names(beta, threshold)
    values = lambda arrays: parameter_values(beta, threshold, arrays, STATE)

    def currents(x_c, w, b):
        steps, batch, features = x_c.shape
        out = x_c.reshape(steps * batch, features) @ w
        if b is not None:
            out = out + b
        return out.reshape(steps, batch, -1)

    def integrate(i_c, v0, params):
        def step(v_prev, current):
            v = membrane_step(v_prev, current.astype(STATE), reset=reset, **params)
            return v, v

        return jax.lax.scan(step, v0, i_c)

    def adjoint(membrane, grad_spikes, carry, params):
        def step(carry, xs):
            a, sums = carry
            v, gs = xs
            out = adjoint_step(a, v, gs.astype(STATE), reset=reset, detach_reset=detach_reset,
                               derivative=derivative, parameter_grads=bool(learned), **params)
            a_here, sums = add_parameter_terms(out, sums, learned)
            return (a_here, sums), a_here

        return jax.lax.scan(step, carry, (membrane, grad_spikes), reverse=True)

    def start(x, w):
        # [B, N] zeros that vary with x's batch under shard_map, as the carry and the cotangents must
        return jnp.zeros_like(x[0, :, :1], STATE) + jnp.zeros(w.shape[1:], STATE)

    def forward(x, w, b, arrays):
        params = values(arrays)
        steps = x.shape[0]
        v0 = start(x, w)
        varying = jnp.zeros_like(x[0, 0, 0], STATE)  # varies with x under shard_map, as the buffers must
        spikes = jnp.zeros(x.shape[:2] + w.shape[1:], x.dtype) + varying.astype(x.dtype)
        # kept for the backward: the membrane, or (recompute) the state before each chunk
        kept = jnp.zeros(((-(-steps // chunk)) if recompute else steps,) + v0.shape, STATE) + varying

        def body(carry, t0, size):
            v_prev, spikes, kept = carry
            v_last, membrane = integrate(currents(_slice(x, t0, size), w, b), v_prev, params)
            spikes = _put(spikes, membrane > params["threshold"], t0)
            kept = _put(kept, v_prev[None], t0 // chunk) if recompute else _put(kept, membrane, t0)
            return v_last, spikes, kept

        _, spikes, kept = _chunks_forward(body, (v0, spikes, kept), steps, chunk)
        return spikes, kept

    @jax.custom_vjp
    def dense_lif(x, w, b, arrays):
        return forward(x, w, b, arrays)[0]

    def dense_lif_fwd(x, w, b, arrays):
        spikes, kept = forward(x, w, b, arrays)
        return spikes, (x, w, b, kept, arrays)

    def dense_lif_bwd(residual, grad_spikes):
        x, w, b, kept, arrays = residual
        params = values(arrays)
        rows = lambda y: y.reshape((-1, y.shape[-1]))

        def body(carry, t0, size):
            a_next, sums, dw, db, dx = carry
            x_c = _slice(x, t0, size)
            if recompute:
                membrane = integrate(currents(x_c, w, b), jax.lax.dynamic_index_in_dim(kept, t0 // chunk, 0, False),
                                     params)[1]
            else:
                membrane = _slice(kept, t0, size)
            (a_next, sums), a_c = adjoint(membrane, _slice(grad_spikes, t0, size), (a_next, sums), params)
            a_c = a_c.astype(x.dtype)
            dw = dw + jax.lax.dot_general(rows(x_c), rows(a_c), (((0,), (0,)), ((), ())),
                                          preferred_element_type=STATE)
            if db is not None:
                db = db + jnp.sum(a_c, axis=(0, 1), dtype=STATE)
            dx = _put(dx, jax.lax.dot_general(a_c, w, (((2,), (1,)), ((), ()))), t0)
            return a_next, sums, dw, db, dx

        zero = start(x, w)
        carry = (zero, {k: zero for k in learned}, jnp.zeros_like(w, STATE),
                 None if b is None else jnp.zeros_like(b, STATE), jnp.zeros_like(x))
        _, sums, dw, db, dx = _chunks_reverse(body, carry, x.shape[0], chunk)
        grads = {k: sums[k].astype(arrays[k].dtype) for k in learned}
        return dx, dw.astype(w.dtype), None if b is None else db.astype(b.dtype), grads

    dense_lif.defvjp(dense_lif_fwd, dense_lif_bwd)
    return dense_lif
