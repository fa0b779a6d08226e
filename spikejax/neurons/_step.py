"""One LIF step and one adjoint step: the leaf shared by the fused XLA path (`spikejax.neurons`) and the
Pallas kernels (`spikejax.lif_pallas`). Imports only jax.numpy, so neither of those imports the other.

Forward (s[t-1] = H(v[t-1] - threshold), the membrane before reset is the state):

  reset="subtract":  v[t] = beta*v[t-1] + I[t] - threshold*s[t-1]
  reset="zero":      v[t] = beta*v[t-1]*(1 - s[t-1]) + I[t]

Adjoint, a[t] = dL/dv[t] = dL/dI[t], and b[t] = the cotangent reaching s[t] through the surrogate:

  b[t] = gs[t] + c_s*a[t+1]          (c_s*a[t+1] only when the reset is differentiated)
  a[t] = gv[t] + sigma'(v[t]-threshold) * b[t] + c_v[t]*a[t+1]

with c_v = beta (subtract) or beta*(1 - s[t]) (zero), and c_s = -threshold (subtract) or -beta*v[t] (zero).

Parameter gradients, summed over t (a[T] = 0) and kept per element of one step: the callers broadcast
array parameters to one step's shape before their custom_vjp, so autodiff of that broadcast reduces these
sums to a per-neuron [N] or per-layer [] parameter. beta and threshold enter v[t+1] and s[t]:

  dL/dbeta      = sum_t a[t+1] * v[t]                  (subtract)
                  sum_t a[t+1] * v[t]*(1 - s[t])       (zero)
  dL/dthreshold = sum_t -sigma'(v[t]-threshold) * b[t]  -  s[t]*a[t+1] (subtract only; the reset term
                  -threshold*s[t] carries this part whether or not the reset is detached)
"""
from __future__ import annotations

PARAMETERS = ("beta", "threshold")  # the LIF parameters that may be arrays (learned)


def learned_names(beta, threshold) -> tuple[str, ...]:
    """The parameters given as None (arrays, learned) rather than as numbers, in PARAMETERS order."""
    return tuple(k for k, v in zip(PARAMETERS, (beta, threshold)) if v is None)


def parameter_values(beta, threshold, arrays, dtype) -> dict:
    """{beta, threshold}: the numbers, and for each one given as None its array from `arrays`, as `dtype`."""
    out = dict(zip(PARAMETERS, (beta, threshold)))
    out.update({k: arrays[k].astype(dtype) for k in learned_names(beta, threshold)})
    return out


def add_parameter_terms(out, sums: dict, learned: tuple[str, ...]):
    """`adjoint_step`'s output -> (a[t], the running parameter-gradient sums plus this step's terms)."""
    if not learned:
        return out, sums
    terms = dict(zip(PARAMETERS, out[1:]))
    return out[0], {k: sums[k] + terms[k] for k in learned}


def membrane_step(v_prev, current, *, beta, threshold, reset, spiked_prev=None):
    """v[t] from the previous pre-reset membrane v[t-1] and I[t], in the dtype of v_prev. `spiked_prev`:
    s[t-1] when the caller kept it (else v[t-1] > threshold)."""
    s_prev = (v_prev > threshold).astype(v_prev.dtype) if spiked_prev is None else spiked_prev
    if reset == "subtract":
        return beta * v_prev + current - threshold * s_prev
    return beta * v_prev * (1.0 - s_prev) + current


def adjoint_step(a_next, v, grad_spike, *, beta, threshold, reset, detach_reset, derivative,
                 grad_membrane=None, parameter_grads=False, spiked=None):
    """a[t] from a[t+1], v[t] and the cotangents of s[t] (and of v[t] when given).
    `derivative`: the surrogate derivative as a function of v - threshold. `spiked`: s[t] when the caller
    kept it (else v > threshold).

    With `parameter_grads`, returns (a[t], step t's term of dL/dbeta, step t's term of dL/dthreshold),
    elementwise in v's shape (the caller sums them over time and over broadcast axes)."""
    spiked = (v > threshold).astype(v.dtype) if spiked is None else spiked
    if reset == "subtract":
        carry_v, carry_s = beta, -threshold
    else:
        carry_v, carry_s = beta * (1.0 - spiked), -beta * v
    through_spike = grad_spike if detach_reset else grad_spike + carry_s * a_next
    slope = derivative(v - threshold)
    a = slope * through_spike
    if grad_membrane is not None:
        a = grad_membrane + a
    a = a + carry_v * a_next
    if not parameter_grads:
        return a
    if reset == "subtract":
        d_beta = a_next * v
        d_threshold = -slope * through_spike - spiked * a_next
    else:
        d_beta = a_next * v * (1.0 - spiked)
        d_threshold = -slope * through_spike
    return a, d_beta, d_threshold

