"""The LIF recurrence as two Pallas kernels (forward, backward) that each run the whole time loop.

`neurons.lif(..., implementation="pallas")` calls this module; it computes the same function as the
"fused" implementation (equations and adjoint in `spikejax.neurons._step`), spike for spike.

Why a kernel: under XLA every `lax.scan` step is a loop iteration with its own kernel launches, which on a
GPU costs microseconds per step whatever the layer's size (3 layers x 300 steps x forward and backward in
the DVS Gesture network). Here one program owns a block of neurons and walks all T steps with the membrane
in registers, so the layer is two launches and one pass over memory each way.

Layout: the trailing dimensions are flattened, currents [T, M]. The grid runs over blocks of `block`
neurons. Time is walked in chunks of `chunk` steps, unrolled so that a chunk's loads are in flight
together.

Memory: the forward keeps, besides the input currents, one f32 membrane state per neuron per chunk
(4/chunk bytes per neuron-step); the backward recomputes each chunk's membrane from that state and the
currents, then runs the chunk's adjoint in reverse, writing dL/dI over the spike cotangent.

Learnable (array) beta / threshold enter as one [1, M] row each (broadcast to every neuron of the flattened
step); the backward kernel sums their per-neuron gradients in registers across the time loop and writes one
[1, M] row each; autodiff of the caller's broadcast reduces them to the parameters' shapes.

Off GPU the kernels run in Pallas' interpret mode (slow; for tests of the lowering-independent logic).
"""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from spikejax import surrogate as surrogate_lib
from spikejax.neurons import _step as lif_step

CHUNK = 16  # time steps per unrolled chunk (and per stored membrane state)
MAX_BLOCK = 512  # neurons per program
ELEMENTS_PER_THREAD = 4  # sets the warps per program: block / (32 * this)


def _block_size(neurons: int) -> tuple[int, int]:
    """(block, padded number of neurons): the largest power of two <= MAX_BLOCK that divides `neurons`
    if it is >= 128, else pad to a multiple of min(MAX_BLOCK, next power of two)."""
    block = MAX_BLOCK
    while block >= 128:
        if neurons % block == 0:
            return block, neurons
        block //= 2
    block = min(MAX_BLOCK, max(32, 1 << (neurons - 1).bit_length()))
    return block, -(-neurons // block) * block


def _interpret() -> bool:
    return jax.default_backend() != "gpu"


def _compiler_params(block: int):
    if _interpret():
        return None
    from jax.experimental.pallas import triton as plgpu

    return plgpu.CompilerParams(num_warps=max(1, min(8, block // (32 * ELEMENTS_PER_THREAD))), num_stages=1)


def _out_struct(like, shape, dtype):
    """ShapeDtypeStruct that varies over the same shard_map mesh axes as `like` (the field is `vma` in
    jax 0.7, `manual_axis_type` later; Pallas needs it under shard_map's check_vma).

    Pallas' interpreter (jax <= 0.10) cannot carry a varying input through its grid loop, so interpret
    mode fails inside shard_map; compiled kernels do not have this limitation."""
    aval = jax.typeof(like)
    for field in ("manual_axis_type", "vma"):
        if hasattr(aval, field):
            try:
                return jax.ShapeDtypeStruct(shape, dtype, **{field: getattr(aval, field)})
            except TypeError:
                continue
    return jax.ShapeDtypeStruct(shape, dtype)


@functools.cache
def make_lif(beta: float | None, threshold: float | None, reset: str, name: str, frozen: tuple,
             detach_reset: bool, chunk: int | None = None):
    """Returns f(currents [T, ...], arrays) -> spikes [T, ...] (currents' dtype) with a custom VJP, both
    Pallas. `beta`/`threshold` are floats (compiled in) or None: then arrays["beta"] / arrays["threshold"]
    (of one step's shape, currents.shape[1:]) are kernel inputs, and the backward kernel also sums their gradients
    per neuron (`spikejax.neurons._step`) in registers over the time loop."""
    from jax.experimental import pallas as pl

    derivative = functools.partial(surrogate_lib.SURROGATES[name][0], **dict(frozen))
    chunk = chunk or CHUNK
    learned = lif_step.learned_names(beta, threshold)
    padding = {"beta": 0.0, "threshold": 1.0}  # padded neurons: no input, never fire

    def parameters(param_refs):
        """{beta, threshold}: the constants, and the learned ones loaded for this block of neurons."""
        loaded = {k: ref[0] for k, ref in zip(learned, param_refs)}
        return lif_step.parameter_values(beta, threshold, loaded, jnp.float32)

    def spans(steps):
        """(number of full chunks, length of the trailing partial chunk), both static."""
        full = steps // chunk
        return full, steps - full * chunk

    def forward_kernel(x_ref, *refs):
        param_refs, (s_ref, state_ref) = refs[:len(learned)], refs[len(learned):]
        params = parameters(param_refs)
        step = functools.partial(lif_step.membrane_step, reset=reset, **params)
        steps = x_ref.shape[0]
        full, rest = spans(steps)

        def run(c, v, length):
            state_ref[c] = v
            currents = [x_ref[c * chunk + j].astype(jnp.float32) for j in range(length)]
            for j in range(length):
                v = step(v, currents[j])
                s_ref[c * chunk + j] = (v > params["threshold"]).astype(s_ref.dtype)
            return v

        v = jnp.zeros(x_ref.shape[1:], jnp.float32)
        v = jax.lax.fori_loop(0, full, lambda c, v: run(c, v, chunk), v)
        if rest:
            run(full, v, rest)

    def backward_kernel(x_ref, state_ref, gs_ref, *refs):
        n = len(learned)
        param_refs, gx_ref, grad_refs = refs[:n], refs[n], refs[n + 1:]
        params = parameters(param_refs)
        step = functools.partial(lif_step.membrane_step, reset=reset, **params)
        adjoint = functools.partial(lif_step.adjoint_step, reset=reset, detach_reset=detach_reset,
                                    derivative=derivative, parameter_grads=bool(learned), **params)
        steps = x_ref.shape[0]
        full, rest = spans(steps)

        def run(c, carry, length):
            a, sums = carry
            v = state_ref[c]
            currents = [x_ref[c * chunk + j].astype(jnp.float32) for j in range(length)]
            membrane = []
            for j in range(length):
                v = step(v, currents[j])
                membrane.append(v)
            grads = [gs_ref[c * chunk + j].astype(jnp.float32) for j in range(length)]
            for j in reversed(range(length)):
                a, sums = lif_step.add_parameter_terms(adjoint(a, membrane[j], grads[j]), sums, learned)
                gx_ref[c * chunk + j] = a.astype(gx_ref.dtype)
            return a, sums

        zero = jnp.zeros(x_ref.shape[1:], jnp.float32)
        carry = (zero, {k: zero for k in learned})
        if rest:
            carry = run(full, carry, rest)
        _, sums = jax.lax.fori_loop(0, full, lambda i, carry: run(full - 1 - i, carry, chunk), carry)
        for k, ref in zip(learned, grad_refs):
            ref[0] = sums[k]

    def call(kernel, inputs, outputs, aliases=None):
        steps, neurons = inputs[0].shape
        block, _ = _block_size(neurons)
        spec = lambda rows: pl.BlockSpec((rows, block), lambda i: (0, i))
        return pl.pallas_call(
            kernel, grid=(neurons // block,),
            in_specs=[spec(a.shape[0]) for a in inputs], out_specs=[spec(o.shape[0]) for o in outputs],
            out_shape=outputs, interpret=_interpret(),
            compiler_params=_compiler_params(block), name=kernel.__name__, input_output_aliases=aliases or {},
        )(*inputs)

    def flat(x, pad_value=0.0):
        steps, neurons = x.shape[0], x[0].size
        _, padded = _block_size(neurons)
        x = x.reshape(steps, neurons)
        if padded == neurons:
            return x
        return jnp.pad(x, ((0, 0), (0, padded - neurons)), constant_values=pad_value)

    def flat_parameters(arrays):
        """The learned parameters (one step's shape each) as [1, padded M] f32 rows."""
        return [flat(arrays[k].astype(jnp.float32)[None], padding[k]) for k in learned]

    def forward(currents, arrays):
        x = flat(currents)
        steps, neurons = x.shape
        chunks = -(-steps // chunk)
        params = flat_parameters(arrays)
        spikes, state = call(forward_kernel, [x, *params], [_out_struct(x, x.shape, x.dtype),
                                                             _out_struct(x, (chunks, neurons), jnp.float32)])
        return spikes, (x, state, params, arrays)

    @jax.custom_vjp
    def lif(currents, arrays):
        spikes, _ = forward(currents, arrays)
        return _unflatten(spikes, currents.shape)

    def lif_fwd(currents, arrays):
        spikes, residual = forward(currents, arrays)
        return _unflatten(spikes, currents.shape), residual

    def lif_bwd(residual, grad_spikes):
        x, state, params, arrays = residual
        gs = flat(grad_spikes.astype(x.dtype))
        rows = [_out_struct(gs, (1, x.shape[1]), jnp.float32) for _ in learned]
        # dL/dI overwrites the spike cotangent in place (each element is read before it is written, by the
        # same thread): one [T, M] buffer less at the backward's peak
        gx, *sums = call(backward_kernel, [x, state, gs, *params], [_out_struct(gs, x.shape, x.dtype), *rows],
                         aliases={2: 0})
        step_shape = grad_spikes.shape[1:]
        grads = {k: _unflatten(total, (1,) + step_shape)[0].astype(arrays[k].dtype) for k, total in zip(learned, sums)}
        return _unflatten(gx, grad_spikes.shape), grads

    lif.defvjp(lif_fwd, lif_bwd)
    return lif


def _unflatten(y, shape):
    """[T, padded M] -> shape ([T, ...]), dropping the padding."""
    return y[:, :math.prod(shape[1:])].reshape(shape)
