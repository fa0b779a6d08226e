"""Leaky integrate-and-fire neurons as pure functions over time-major input, and the registry of neuron
kinds (`register_kind`, `get_kind`, `kinds`: name -> function, parameters, NIR node).

All functions take input currents `I` of shape [T, ...] (time first; any trailing batch/feature shape) and
return spikes of the same shape and dtype. Time steps are dimensionless; `beta = exp(-dt/tau_mem)`.

`lif` equations (snnTorch `Leaky` defaults), with v[-1] = s[-1] = 0 and H the Heaviside step (H(0) = 0):

  reset="subtract":  v[t] = beta*v[t-1] + I[t] - threshold*s[t-1]
  reset="zero":      v[t] = beta*v[t-1]*(1 - s[t-1]) + I[t]
                     s[t] = H(v[t] - threshold)

The reset term carries no gradient unless `detach_reset=False`. The backward of H is a surrogate
derivative from `spikejax.surrogate`.

`beta` and `threshold` are Python numbers (compiled in as constants) or arrays broadcastable to one step
I[0] (learnable, per neuron [N] or per layer []); every implementation returns their gradients (the sums
in `spikejax.neurons._step`'s docstring), so a learnable neuron keeps the fast path.

Three implementations compute the same function:

* "reference": `lax.scan` over a step written with `surrogate.spike`; plain autodiff.
* "fused" (the default off GPU): one `custom_vjp` over the whole sequence.
  The forward scan keeps only the membrane v[T, ...] as residual (spikes are recomputed as v > threshold);
  the backward is a single reverse-time scan of the closed-form adjoint
      a[t] = dL/dv[t] = gv[t] + sigma'(v[t]-thr) * (gs[t] + c_s*a[t+1]) + c_v[t]*a[t+1],   dL/dI[t] = a[t]
  with c_v = beta (subtract) or beta*(1 - s[t]) (zero), and c_s = -threshold (subtract) or -beta*v[t]
  (zero) when the reset is differentiated, else 0, which also sums the parameter gradients when beta or
  threshold is an array. With `recompute_chunk=K` it instead keeps the input currents and one membrane
  state per K steps, and recomputes each chunk's membrane in the backward (memory ~ T/K instead of T
  membrane copies beyond the input).
* "pallas": the fused algorithm as two Pallas kernels (`spikejax.neurons._pallas`) that each walk the whole
  time loop with the membrane in registers, keeping the input currents and one f32 state per 16 steps.
  The default on GPU (where XLA's scan pays a launch per step); off GPU it runs in Pallas' interpret
  mode, which is slow and meant for tests. Spikes only (no `return_membrane`), float32 state.

`implementation="auto"` picks "pallas" on GPU and "fused" elsewhere; "fused" whenever `return_membrane`,
a non-f32 `state_dtype` or `recompute_chunk` is asked for.

The membrane is integrated in `state_dtype` (float32 by default, also for bf16 input); spikes and input
gradients are returned in the input dtype.

`dense_lif(x, W, b, ...)` is `lif(x @ W + b, ...)` as one op that owns the GEMM: off GPU, at long T, it
walks time in chunks ("chunked", `spikejax.neurons._dense`), so that neither the GEMM's [T, B, N] output nor
its gradient exists and the step's temporaries stay near two [T, B, N] arrays (spikes, kept membrane)
instead of four, which keeps them below glibc's mmap threshold, where every call would otherwise map fresh
pages and fault on each one, up to twice the T.

`leaky_integrator(I, beta=...)` is the non-spiking readout u[t] = beta*u[t-1] + I[t] (no threshold, no
reset): a model's output layer when `output="integrator"` (`spikejax.models`).
"""
from __future__ import annotations

import math
import numbers
from typing import Any

import jax
import jax.numpy as jnp

from spikejax import surrogate as surrogate_lib
from spikejax.neurons._fused import _fused_lif, _lif_reference
from spikejax.neurons._integrator import leaky_integrator
from spikejax.neurons._step import PARAMETERS
from spikejax.neurons.registry import NeuronKind, get_kind, kinds, register_kind

__all__ = ["IMPLEMENTATIONS", "RESETS", "NeuronKind", "cuba_lif", "dense_lif", "get_kind", "kinds",
           "leaky_integrator", "lif", "recurrent_lif", "register_kind"]

RESETS = ("subtract", "zero")
IMPLEMENTATIONS = ("auto", "fused", "pallas", "reference")


def _is_static_number(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _check_parameter_array(name, value, step_shape):
    """A non-number parameter must be a floating array broadcastable to one step, `step_shape`."""
    if _is_static_number(value):
        return
    shape = jnp.shape(value)
    try:
        fits = jnp.broadcast_shapes(shape, step_shape) == tuple(step_shape)
    except ValueError:
        fits = False
    if not fits or not jnp.issubdtype(jnp.result_type(value), jnp.floating):
        raise ValueError(f"{name} must be a Python number or a floating array broadcastable to one step of "
                         f"the currents {tuple(step_shape)}, got {jnp.result_type(value)}{shape}")


def _check_parameters(parameters: dict, step_shape, reset: str):
    """beta / threshold: numbers in range or arrays that fit one step; a known reset."""
    if reset not in RESETS:
        raise ValueError(f"reset must be one of {RESETS}, got {reset!r}")
    for name, value in parameters.items():
        _check_parameter_array(name, value, step_shape)
    beta, threshold = parameters["beta"], parameters["threshold"]
    if _is_static_number(beta) and not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must lie in [0, 1], got {beta}")
    if _is_static_number(threshold) and not threshold > 0.0:
        raise ValueError(f"threshold must be > 0, got {threshold}")


def _check_inputs(currents, parameters, reset, implementation, recompute_chunk):
    currents = jnp.asarray(currents)
    if currents.ndim < 1:
        raise ValueError(f"currents must be time-major [T, ...], got a scalar of shape {currents.shape}")
    if not jnp.issubdtype(currents.dtype, jnp.floating):
        raise ValueError(f"currents must be floating point, got dtype {currents.dtype}")
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}, got {implementation!r}")
    _check_parameters(parameters, currents.shape[1:], reset)
    if recompute_chunk is not None and (not isinstance(recompute_chunk, int) or recompute_chunk < 1):
        raise ValueError(f"recompute_chunk must be a positive int or None, got {recompute_chunk!r}")
    return currents


def _split(parameters: dict) -> tuple[tuple, dict]:
    """({name: value} -> (static values as (float or None, ...) in PARAMETERS order, {name: array} of the
    rest); the statics become compile-time constants, the arrays inputs with gradients."""
    static = tuple(float(parameters[k]) if _is_static_number(parameters[k]) else None for k in PARAMETERS)
    arrays = {k: jnp.asarray(parameters[k]) for k, v in zip(PARAMETERS, static) if v is None}
    return static, arrays


def lif(
    currents: jax.Array,
    *,
    beta: float | jax.Array,
    threshold: float | jax.Array = 1.0,
    reset: str = "subtract",
    surrogate: str = "fast_sigmoid",
    surrogate_params: dict | None = None,
    detach_reset: bool = True,
    return_membrane: bool = False,
    state_dtype: Any = jnp.float32,
    implementation: str = "auto",
    recompute_chunk: int | None = None,
):
    """Leaky integrate-and-fire layer over time (equations in the module docstring).

    Args:
      currents: input currents I, [T, ...], floating dtype (float32 or bfloat16).
      beta: membrane decay per step, in [0, 1]; a Python float (a compile-time constant), or a floating
        array broadcastable to I[0], e.g. [N] per neuron or [] per layer (learnable: every implementation
        returns its gradient; keep it in range by a parametrisation such as beta = sigmoid(w), as
        `spikejax.models.SpikingNeurons` does; an array is not range-checked).
      threshold: firing threshold (> 0), same forms as beta.
      reset: "subtract" or "zero".
      surrogate, surrogate_params: surrogate derivative by name and its parameters.
      detach_reset: if True (default) the reset term carries no gradient.
      return_membrane: also return the membrane potential v [T, ...]: v[t] of the equations, before the
        reset of a spike at t (which acts at t+1), so a step that fires shows v[t] > threshold.
      state_dtype: dtype in which v is integrated.
      implementation: "auto" (see the module docstring), "fused", "pallas" or "reference".
      recompute_chunk: fused only: keep one membrane state per this many steps and recompute in the
        backward (lower memory for long T).

    Returns:
      spikes [T, ...] in the dtype of `currents` (0/1 values), or (spikes, membrane) if return_membrane.
    """
    parameters = {"beta": beta, "threshold": threshold}
    currents = _check_inputs(currents, parameters, reset, implementation, recompute_chunk)
    name, frozen = surrogate_lib.resolve(surrogate, surrogate_params)
    static, arrays = _split(parameters)
    # broadcast to one step as a sum with zeros_like(I[0]): under shard_map this makes them vary over the
    # same mesh axes as the currents, as a custom_vjp's cotangents must (autodiff then psums them back)
    arrays = {k: v + jnp.zeros_like(currents[0], v.dtype) for k, v in arrays.items()}
    kernel_ok = not return_membrane and jnp.dtype(state_dtype) == jnp.float32 and recompute_chunk is None
    if implementation == "pallas" and not kernel_ok:
        raise ValueError("implementation='pallas' returns spikes only, integrates in float32 and chunks "
                         "time itself: drop return_membrane, state_dtype and recompute_chunk, or use 'fused'")
    if implementation == "auto" and kernel_ok and jax.default_backend() == "gpu":
        implementation = "pallas"
    if implementation == "pallas":
        from spikejax.neurons import _pallas as lif_pallas  # imported on use: it needs jax.experimental.pallas

        return lif_pallas.make_lif(*static, reset, name, frozen, bool(detach_reset))(currents, arrays)
    if implementation == "reference":
        if recompute_chunk is not None:
            raise ValueError("recompute_chunk applies to the fused implementation only")
        spikes, membrane = _lif_reference(currents, beta, threshold, reset, name, frozen, detach_reset,
                                          jnp.dtype(state_dtype))
    else:
        fn = _fused_lif(*static, reset, name, frozen, bool(detach_reset), jnp.dtype(state_dtype).name,
                        recompute_chunk)
        spikes, membrane = fn(currents, arrays)
    return (spikes, membrane) if return_membrane else spikes


WHOLE_BYTES = 16 << 20  # dense_lif: one chunk while four float32 [T, B, N] arrays take at most this much
CHUNK_ROWS = 256  # otherwise at least this many GEMM rows K*B per chunk ...
CHUNK_FLOPS = 1 << 25  # ... and this many forward + weight-gradient GEMM flops, 4 K B D N


def default_time_chunk(steps: int, batch: int, features: int, neurons: int) -> int:
    """dense_lif's default K. T (one chunk: the unchunked layer) while the unchunked step's temporaries,
    about four float32 [T, B, N] arrays, stay within WHOLE_BYTES, well below glibc's 32 MiB mmap threshold;
    else max(CHUNK_ROWS / B, CHUNK_FLOPS / (4 B D N)) steps, enough work per chunk to hide the loop's cost,
    moved to the divisor of T nearest to it within a factor 2 where there is one (no shorter last chunk).
    Measured in `benchmarks.shapes`."""
    if 16 * steps * batch * neurons <= WHOLE_BYTES:
        return steps
    target = max(-(-CHUNK_ROWS // batch), -(-CHUNK_FLOPS // (4 * batch * features * neurons)), 1)
    if target >= steps:
        return steps
    divisors = [k for k in range(max(1, target // 2), min(steps, 2 * target) + 1) if steps % k == 0]
    return min(divisors, key=lambda k: abs(math.log(k / target)), default=target)


def dense_lif(
    inputs: jax.Array,
    kernel: jax.Array,
    bias: jax.Array | None = None,
    *,
    beta: float | jax.Array,
    threshold: float | jax.Array = 1.0,
    reset: str = "subtract",
    surrogate: str = "fast_sigmoid",
    surrogate_params: dict | None = None,
    detach_reset: bool = True,
    implementation: str = "auto",
    time_chunk: int | None = None,
    recompute_chunk: int | None = None,
):
    """A dense layer and its LIF neurons over time: I[t] = x[t] W + b, then `lif` (equations in the module
    docstring), as one op that owns the GEMM.

    What `lif(x @ W + b)` computes, without its cost at long T on CPU: there the GEMM's [T, B, N] output,
    the membrane, the spikes and the gradient of the currents are all temporaries of the step, and once
    XLA's one allocation for them is larger than glibc's mmap threshold (32 MiB at most) every call maps
    it afresh and faults on every page. The "chunked" implementation walks time in chunks of K steps:
    each chunk's GEMM output is consumed by the neuron while it is in cache, and in the backward each
    chunk's current gradient is folded into dW, db and dx at once, so no [T, B, N] array of currents or of
    their gradient exists (algorithm in `spikejax.neurons._dense`).

    Args:
      inputs: x [T, B, D], floating; the GEMMs run in this dtype (kernel and bias are cast to it, as
        `flax.nnx.Linear(dtype=...)` does), the membrane in float32.
      kernel: W [D, N]. bias: b [N] or None.
      beta, threshold, reset, surrogate, surrogate_params, detach_reset: as for `lif` (arrays broadcastable
        to [B, N] are learnable, e.g. [N]).
      implementation: "auto" ("chunked" off GPU; on GPU one GEMM over all T*B rows, then `lif`'s Pallas
        kernels), "chunked", or one of `lif`'s ("fused", "pallas", "reference"): one GEMM, then `lif`.
      time_chunk: chunked: K, the steps per chunk (default `default_time_chunk`: the whole sequence while
        the layer is small, else at least 256 GEMM rows per chunk). K >= T: one GEMM over all T*B rows,
        then `lif` (the unchunked layer, bit for bit).
      recompute_chunk: keep one membrane state per this many steps and recompute in the backward. Chunked:
        the chunk's currents (its GEMM) and membrane are recomputed, so the step keeps nothing of size
        [T, B, N] but the spikes, for one more GEMM; it sets K. Otherwise passed to `lif`.

    Returns:
      spikes [T, B, N] in the dtype of `inputs`. dW and db of the chunked implementation are float32 sums
      of per-chunk GEMMs: equal to the unchunked layer's to float32 rounding of a sum over T*B rows in
      another order; its spikes, dx and parameter gradients are the unchunked layer's.
    """
    inputs = jnp.asarray(inputs)
    if inputs.ndim != 3 or not jnp.issubdtype(inputs.dtype, jnp.floating):
        raise ValueError(f"inputs must be floating [T, B, D], got {inputs.dtype}{inputs.shape}")
    steps, batch, features = inputs.shape
    if jnp.ndim(kernel) != 2 or jnp.shape(kernel)[0] != features:
        raise ValueError(f"kernel must be [D={features}, N], got shape {jnp.shape(kernel)}")
    neurons = jnp.shape(kernel)[1]
    if bias is not None and jnp.shape(bias) != (neurons,):
        raise ValueError(f"bias must be [N] = ({neurons},) or None, got shape {jnp.shape(bias)}")
    if implementation not in IMPLEMENTATIONS + ("chunked",):
        raise ValueError(f"implementation must be one of {IMPLEMENTATIONS + ('chunked',)}, got {implementation!r}")
    for label, value in (("time_chunk", time_chunk), ("recompute_chunk", recompute_chunk)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ValueError(f"{label} must be a positive int or None, got {value!r}")
    parameters = {"beta": beta, "threshold": threshold}
    _check_parameters(parameters, (batch, neurons), reset)
    dtype = inputs.dtype
    kernel = jnp.asarray(kernel).astype(dtype)
    bias = None if bias is None else jnp.asarray(bias).astype(dtype)
    if implementation != "chunked" and time_chunk is not None:
        raise ValueError(f"time_chunk applies to the chunked implementation only, got {implementation!r}")
    if recompute_chunk is not None and time_chunk not in (None, recompute_chunk):
        raise ValueError(f"the chunked implementation recomputes whole chunks: recompute_chunk "
                         f"({recompute_chunk}) sets time_chunk ({time_chunk}); give one of them")
    chunk = recompute_chunk or time_chunk or default_time_chunk(steps, batch, features, neurons)
    if implementation == "auto":
        implementation = "auto" if jax.default_backend() == "gpu" else "chunked"
    if implementation == "chunked" and chunk >= steps and recompute_chunk is None:
        implementation = "fused"  # one chunk: the unchunked layer itself
    if implementation != "chunked":
        currents = (inputs.reshape(steps * batch, features) @ kernel).reshape(steps, batch, neurons)
        if bias is not None:
            currents = currents + bias
        return lif(currents, beta=beta, threshold=threshold, reset=reset, surrogate=surrogate,
                   surrogate_params=surrogate_params, detach_reset=detach_reset, implementation=implementation,
                   recompute_chunk=recompute_chunk)
    from spikejax.neurons import _dense

    name, frozen = surrogate_lib.resolve(surrogate, surrogate_params)
    static, arrays = _split(parameters)
    like = jnp.zeros_like(inputs[0, :, :1], jnp.float32)  # [B, 1]: varies with the batch under shard_map
    arrays = {k: jnp.broadcast_to(v + like.astype(v.dtype), (batch, neurons)) for k, v in arrays.items()}
    # W and b vary with the batch too, as the sums over chunks that give their gradients must (autodiff of
    # this sum then psums those gradients back under shard_map, as for the arrays above)
    kernel = kernel + like[:1].astype(dtype)
    bias = None if bias is None else bias + like[0].astype(dtype)
    fn = _dense.make_dense_lif(*static, reset, name, frozen, bool(detach_reset), min(chunk, steps),
                               recompute_chunk is not None)
    return fn(inputs, kernel, bias, arrays)


def cuba_lif(
    currents: jax.Array,
    *,
    alpha: float | jax.Array,
    beta: float | jax.Array,
    return_membrane: bool = False,
    state_dtype: Any = jnp.float32,
    **lif_kwargs,
):
    """Current-based LIF: a synaptic current filter followed by `lif`.

      i[t] = alpha*i[t-1] + I[t],  i[-1] = 0;   then v, s as in `lif`, driven by i[t].

    Args:
      currents: input currents I [T, ...].
      alpha: synaptic decay per step in [0, 1]: a Python float, or an array broadcastable to I[0]
        (learnable; its gradient is the autodiff of this linear filter, a reverse scan as cheap as the
        forward, while the LIF part keeps its fused or Pallas adjoint).
      beta, return_membrane, state_dtype, **lif_kwargs: as for `lif`.

    Returns:
      spikes [T, ...] in the dtype of `currents`, or (spikes, membrane).
    """
    currents = jnp.asarray(currents)
    if currents.ndim < 1 or not jnp.issubdtype(currents.dtype, jnp.floating):
        raise ValueError(f"currents must be floating point [T, ...], got {currents.dtype}{currents.shape}")
    state_dtype = jnp.dtype(state_dtype)
    _check_parameter_array("alpha", alpha, currents.shape[1:])
    if not _is_static_number(alpha):
        alpha = jnp.asarray(alpha).astype(state_dtype)
    elif not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")

    def step(i_prev, current):
        i = alpha * i_prev + current.astype(state_dtype)
        return i, i

    _, synaptic = jax.lax.scan(step, jnp.zeros_like(currents[0], state_dtype), currents)
    out = lif(synaptic, beta=beta, return_membrane=True, state_dtype=state_dtype, **lif_kwargs)
    spikes, membrane = out
    spikes = spikes.astype(currents.dtype)
    return (spikes, membrane.astype(currents.dtype)) if return_membrane else spikes


def recurrent_lif(
    inputs: jax.Array,
    w_in: jax.Array,
    w_rec: jax.Array,
    bias: jax.Array | None = None,
    *,
    beta: float | jax.Array,
    threshold: float | jax.Array = 1.0,
    reset: str = "subtract",
    surrogate: str = "fast_sigmoid",
    surrogate_params: dict | None = None,
    detach_reset: bool = True,
    implementation: str = "auto",
):
    """Recurrent LIF layer: I[t] = x[t] W_in + b + s[t-1] W_rec, then the LIF step as in `lif`.

    The input product is one matmul over all T*B rows; only s[t-1] W_rec is inside the time loop. The
    "fused" implementation (what "auto" picks on every backend) is one `custom_vjp` whose residuals are the
    spikes (int8) beside the layer's inputs; its reverse-time backward recomputes the currents and membrane
    from them (equations in `spikejax.neurons._recurrent`). "reference" differentiates a `lax.scan` by autodiff.

    Args:
      inputs: x [T, B, D], floating (spikes or currents); matmuls run in this dtype, accumulated in f32.
      w_in: [D, N]. w_rec: [N, N] (row: presynaptic neuron). bias: [N] or None.
      beta, threshold: Python numbers or arrays broadcastable to [B, N] (learnable, e.g. [N]); as in `lif`.
      reset, surrogate, surrogate_params, detach_reset: as in `lif`. The recurrent path is never detached.
      implementation: "auto", "fused" or "reference".

    Returns:
      spikes [T, B, N] in the dtype of `inputs`.
    """
    inputs = jnp.asarray(inputs)
    if inputs.ndim != 3 or not jnp.issubdtype(inputs.dtype, jnp.floating):
        raise ValueError(f"inputs must be floating [T, B, D], got {inputs.dtype}{inputs.shape}")
    features = inputs.shape[-1]
    if jnp.ndim(w_in) != 2 or jnp.shape(w_in)[0] != features:
        raise ValueError(f"w_in must be [D={features}, N], got shape {jnp.shape(w_in)}")
    neurons = jnp.shape(w_in)[1]
    if jnp.shape(w_rec) != (neurons, neurons):
        raise ValueError(f"w_rec must be [N, N] = {(neurons, neurons)}, got shape {jnp.shape(w_rec)}")
    if bias is not None and jnp.shape(bias) != (neurons,):
        raise ValueError(f"bias must be [N] = ({neurons},) or None, got shape {jnp.shape(bias)}")
    if implementation not in ("auto", "fused", "reference"):
        raise ValueError(f"recurrent_lif's implementation must be 'auto', 'fused' or 'reference', got "
                         f"{implementation!r} (there is no Pallas kernel for the recurrent layer)")
    parameters = {"beta": beta, "threshold": threshold}
    _check_parameters(parameters, (inputs.shape[1], neurons), reset)
    name, frozen = surrogate_lib.resolve(surrogate, surrogate_params)
    from spikejax.neurons import _recurrent as lif_recurrent  # the layer's custom_vjp

    if implementation == "reference":
        return lif_recurrent.recurrent_lif_reference(inputs, w_in, w_rec, bias, beta=beta, threshold=threshold,
                                                     reset=reset, name=name, frozen=frozen,
                                                     detach_reset=detach_reset)
    static, arrays = _split(parameters)
    like = jnp.zeros_like(inputs[0, :, :1], jnp.float32)  # [B, 1]: varies with the batch under shard_map
    step = (inputs.shape[1], neurons)
    arrays = {k: jnp.broadcast_to(v + like.astype(v.dtype), step) for k, v in arrays.items()}
    fn = lif_recurrent.make_recurrent_lif(*static, reset, name, frozen, bool(detach_reset), bias is not None)
    return fn(inputs, w_in, w_rec, bias, arrays)


# ----------------------------------------------------------------------------------------------------------
# Reference implementation: plain autodiff through lax.scan.


register_kind("lif", lif, parameters=("beta", "threshold"), nir_node="LIF", title="leaky integrate-and-fire",
              dense=dense_lif)
register_kind("cuba_lif", cuba_lif, parameters=("alpha", "beta", "threshold"), nir_node="CubaLIF",
              title="current-based LIF (a synaptic current filter before the membrane)")
