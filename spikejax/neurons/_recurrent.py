"""The recurrent LIF layer as one `custom_vjp` over the whole sequence (called by `neurons.recurrent_lif`).

Forward, for inputs x [T, B, D], W_in [D, N], W_rec [N, N], bias b [N], s[-1] = 0:

  I[t] = x[t] W_in + b + s[t-1] W_rec          (x W_in + b: one matmul over all T*B rows, before the loop)
  v[t], s[t]: the LIF step of `spikejax.neurons._step` driven by I[t] (reset "subtract" or "zero")

Only the recurrent product s[t-1] W_rec is inside the time loop.

Residuals: the spikes as int8 (1 byte per neuron-step) next to the layer's own inputs (x and the weights,
which the caller holds anyway). The backward recomputes the rest from them:

  I = x W_in + b + s_prev W_rec                (two matmuls over all T*B rows; s_prev = s shifted by one)
  v[t] = beta v[t-1] + I[t] - threshold s[t-1]  (or the zero reset; elementwise, with the kept spikes)

then runs the reverse-time adjoint of `lif_step` with the recurrent path added to the spike cotangent
(never detached: it is a connection, not the reset),

  dL/ds[t] = gs[t] + a[t+1] W_rec^T   (+ the reset path when detach_reset is False)
  a[t] = dL/dI[t]                     (one [B, N] x [N, N] matmul per step)

and finishes with matmuls over all T*B rows:

  dL/dW_in = x^T a,  dL/db = sum a,  dL/dx = a W_in^T,  dL/dW_rec = s_prev^T a

plus dL/dbeta, dL/dthreshold (sums in `lif_step`) when they are arrays. The recomputed v can differ from
the forward's in the last float bit (the recurrent product is one matmul instead of T); that moves the
surrogate slopes by rounding only: the spikes and resets are the kept ones.

Matmuls run in the inputs' dtype with float32 accumulation; the membrane is float32.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from spikejax import surrogate as surrogate_lib
from spikejax.neurons import _step as lif_step


def _dot(a, b):
    """a [..., K] @ b [K, M] in a's dtype, accumulated in float32."""
    return jnp.matmul(a, b.astype(a.dtype), preferred_element_type=jnp.float32)


def _driven(x, w_in, bias):
    """x W_in + b over all T*B rows, float32 [T, B, N]."""
    current = _dot(x, w_in)
    return current if bias is None else current + bias.astype(jnp.float32)


@functools.cache
def make_recurrent_lif(beta, threshold, reset: str, name: str, frozen: tuple, detach_reset: bool,
                       has_bias: bool):
    """f(x, w_in, w_rec, bias, arrays) -> spikes [T, B, N] in x's dtype, with a custom VJP. `beta` and
    `threshold` are floats (constants) or None (then in `arrays`, of shape [B, N])."""
    derivative = functools.partial(surrogate_lib.SURROGATES[name][0], **dict(frozen))
    learned = lif_step.learned_names(beta, threshold)
    values = lambda arrays: lif_step.parameter_values(beta, threshold, arrays, jnp.float32)

    def forward(x, w_in, w_rec, bias, arrays):
        params = values(arrays)
        driven = _driven(x, w_in, bias if has_bias else None)

        def step(v_prev, current):
            s_prev = (v_prev > params["threshold"]).astype(x.dtype)
            v = lif_step.membrane_step(v_prev, current + _dot(s_prev, w_rec), reset=reset, **params)
            return v, (v > params["threshold"]).astype(jnp.int8)

        v0 = jnp.zeros_like(driven[0])  # v[-1] = 0: s[-1] = 0; zeros_like keeps shard_map's varying axes
        _, spikes = jax.lax.scan(step, v0, driven)
        return spikes

    @jax.custom_vjp
    def recurrent(x, w_in, w_rec, bias, arrays):
        return forward(x, w_in, w_rec, bias, arrays).astype(x.dtype)

    def recurrent_fwd(x, w_in, w_rec, bias, arrays):
        spikes = forward(x, w_in, w_rec, bias, arrays)
        return spikes.astype(x.dtype), (x, w_in, w_rec, bias, arrays, spikes)

    def recurrent_bwd(residual, grad_spikes):
        x, w_in, w_rec, bias, arrays, spikes = residual
        params = values(arrays)
        s = spikes.astype(jnp.float32)
        s_prev = jnp.concatenate([jnp.zeros_like(s[:1]), s[:-1]])
        currents = _driven(x, w_in, bias if has_bias else None) + _dot(s_prev.astype(x.dtype), w_rec)

        def integrate(v_prev, xs):
            current, spiked_prev = xs
            v = lif_step.membrane_step(v_prev, current, reset=reset, spiked_prev=spiked_prev, **params)
            return v, v

        _, membrane = jax.lax.scan(integrate, jnp.zeros_like(currents[0]), (currents, s_prev))
        w_rec_t = w_rec.astype(jnp.float32).T

        def adjoint(carry, xs):
            a_next, sums = carry
            v, spiked, gs = xs
            through_recurrence = gs.astype(jnp.float32) + jnp.matmul(a_next, w_rec_t)
            out = lif_step.adjoint_step(a_next, v, through_recurrence, reset=reset, detach_reset=detach_reset,
                                        derivative=derivative, parameter_grads=bool(learned), spiked=spiked,
                                        **params)
            a, sums = lif_step.add_parameter_terms(out, sums, learned)
            return (a, sums), a

        zero = jnp.zeros_like(membrane[0])
        (_, sums), grad_currents = jax.lax.scan(adjoint, (zero, {k: zero for k in learned}),
                                                (membrane, s, grad_spikes), reverse=True)
        rows = lambda y: y.reshape((-1, y.shape[-1]))
        grad_w_in = jnp.matmul(rows(x).T, rows(grad_currents.astype(x.dtype)), preferred_element_type=jnp.float32)
        grad_w_rec = jnp.matmul(rows(s_prev).T, rows(grad_currents), preferred_element_type=jnp.float32)
        grad_x = _dot(grad_currents.astype(x.dtype), w_in.T)
        grad_bias = jnp.sum(grad_currents, axis=(0, 1)).astype(bias.dtype) if has_bias else None
        grad_arrays = {k: sums[k].astype(arrays[k].dtype) for k in learned}
        return (grad_x.astype(x.dtype), grad_w_in.astype(w_in.dtype), grad_w_rec.astype(w_rec.dtype), grad_bias,
                grad_arrays)

    recurrent.defvjp(recurrent_fwd, recurrent_bwd)
    return recurrent


def recurrent_lif_reference(x, w_in, w_rec, bias, *, beta, threshold, reset, name, frozen, detach_reset):
    """The same layer as a `lax.scan` over the step, differentiated by plain autodiff (the reference)."""
    params = dict(frozen)
    beta = jnp.asarray(beta, jnp.float32)
    threshold = jnp.asarray(threshold, jnp.float32)
    driven = _driven(x, w_in, bias)

    def step(carry, current):
        v_prev, s_prev = carry
        s_reset = jax.lax.stop_gradient(s_prev) if detach_reset else s_prev
        current = current + _dot(s_prev.astype(x.dtype), w_rec)
        if reset == "subtract":
            v = beta * v_prev + current - threshold * s_reset
        else:
            v = beta * v_prev * (1.0 - s_reset) + current
        s = surrogate_lib.spike(v - threshold, name, **params)
        return (v, s), s

    zero = jnp.zeros_like(jnp.broadcast_to(driven[0], jnp.broadcast_shapes(driven.shape[1:], beta.shape,
                                                                           threshold.shape)))
    _, spikes = jax.lax.scan(step, (zero, zero), driven)
    return spikes.astype(x.dtype)
