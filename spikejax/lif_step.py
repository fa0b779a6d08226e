"""One LIF step and one adjoint step: the leaf shared by the fused XLA path (`spikejax.neurons`) and the
Pallas kernels (`spikejax.lif_pallas`). Imports only jax.numpy, so neither of those imports the other.

Forward (s[t-1] = H(v[t-1] - threshold), the membrane before reset is the state):

  reset="subtract":  v[t] = beta*v[t-1] + I[t] - threshold*s[t-1]
  reset="zero":      v[t] = beta*v[t-1]*(1 - s[t-1]) + I[t]

Adjoint, a[t] = dL/dv[t] = dL/dI[t]:

  a[t] = gv[t] + sigma'(v[t]-threshold) * (gs[t] + c_s*a[t+1]) + c_v[t]*a[t+1]

with c_v = beta (subtract) or beta*(1 - s[t]) (zero), and c_s = -threshold (subtract) or -beta*v[t] (zero)
when the reset is differentiated, else 0.
"""
from __future__ import annotations


def membrane_step(v_prev, current, *, beta, threshold, reset):
    """v[t] from the previous pre-reset membrane v[t-1] and I[t], in the dtype of v_prev."""
    s_prev = (v_prev > threshold).astype(v_prev.dtype)
    if reset == "subtract":
        return beta * v_prev + current - threshold * s_prev
    return beta * v_prev * (1.0 - s_prev) + current


def adjoint_step(a_next, v, grad_spike, *, beta, threshold, reset, detach_reset, derivative,
                 grad_membrane=None):
    """a[t] from a[t+1], v[t] and the cotangents of s[t] (and of v[t] when given).
    `derivative`: the surrogate derivative as a function of v - threshold."""
    if reset == "subtract":
        carry_v, carry_s = beta, -threshold
    else:
        carry_v, carry_s = beta * (1.0 - (v > threshold).astype(v.dtype)), -beta * v
    through_spike = grad_spike if detach_reset else grad_spike + carry_s * a_next
    a = derivative(v - threshold) * through_spike
    if grad_membrane is not None:
        a = grad_membrane + a
    return a + carry_v * a_next
