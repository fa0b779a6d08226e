"""A convolution whose replica axis stays R convolutions: `conv_general_dilated`, a drop-in for
`jax.lax.conv_general_dilated` (nnx.Conv's `conv_general_dilated` argument) that computes the same values.

Why: the replica sweep (`spikejax.compare.replicas`) vmaps the whole train step over R models. jax's
batching rule for a convolution whose input and kernel are both batched folds the replicas into the
channels and calls one grouped convolution (feature_group_count = R), and so do the convolutions of its
gradient. XLA runs grouped convolutions far slower than the same work as R plain ones: on CPU the
DVS Gesture network's second conv (16 -> 32 channels, 3x3) at R = 4 took about 20x as long grouped as in R
convolutions (`python -m benchmarks.conv_replicas`). Here, under vmap:

  input and kernel batched     y[r] = conv(x[r], k[r]) for r < R, R plain convolutions (unrolled)
  only the kernel batched      jax's rule: one convolution with the replicas folded into the output
                               channels (a plain, dense convolution; the replicas share the input)
  only the input batched       jax's rule: the replicas folded into the batch

and the same for the two convolutions of the gradient (input gradient, kernel gradient), through a
custom VJP whose backward is batched by the same rule (with a shared input, the kernel gradient keeps
jax's folded form, a plain convolution, and the input gradient, which the train step never uses for the
data, is R plain convolutions, which XLA removes as dead code). Unbatched, every function here is exactly
`jax.lax.conv_general_dilated` and its autodiff: a single run's program is unchanged, bit for bit.
`replica_form="blockdiag"` replaces the R convolutions by one dense convolution with a block-diagonal
kernel (see `conv_general_dilated`).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.custom_batching import custom_vmap


def _freeze(value):
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


FORMS = ("loop", "blockdiag")


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count=1, batch_group_count=1, precision=None,
                         preferred_element_type=None, out_sharding=None, *, replica_form: str = "loop"):
    """`jax.lax.conv_general_dilated(lhs, rhs, ...)`, the same values and gradients; under `jax.vmap` over
    both operands, R plain convolutions instead of one grouped one (module docstring).

    replica_form: "loop" (R convolutions) or "blockdiag": the replicas folded into the channels and ONE
    dense convolution with the block-diagonal kernel [.., R*C, R*O] (R times the flops; on an H200 the DVS
    Gesture conv2's value and gradient at R=8 took 6.1 ms this way against 9.2 ms as R convolutions, on CPU
    3x longer: BENCHMARKS.md; not yet measured in a whole training step). Only for ungrouped convolutions
    (feature_group_count = batch_group_count = 1); "loop" otherwise."""
    if replica_form not in FORMS:
        raise ValueError(f"replica_form must be one of {FORMS}, got {replica_form!r}")
    static = dict(window_strides=_freeze(window_strides), padding=_freeze(padding),
                  lhs_dilation=_freeze(lhs_dilation), rhs_dilation=_freeze(rhs_dilation),
                  dimension_numbers=dimension_numbers, feature_group_count=feature_group_count,
                  batch_group_count=batch_group_count, precision=precision,
                  preferred_element_type=preferred_element_type)
    if out_sharding is not None:
        static["out_sharding"] = out_sharding
    if feature_group_count != 1 or batch_group_count != 1:
        replica_form = "loop"
    return _op(tuple(sorted(static.items(), key=lambda kv: kv[0])), replica_form)(lhs, rhs)


def _looped(f, axis_size, in_batched, *args):
    """f over the batch: one call per member when two or more operands are batched (each member's own
    slice; unbatched operands shared), else jax's own batching rule of f."""
    if sum(in_batched) >= 2:
        members = [f(*(a[i] if b else a for a, b in zip(args, in_batched))) for i in range(axis_size)]
        return jax.tree.map(lambda *xs: jnp.stack(xs), *members)
    return jax.vmap(f, in_axes=tuple(0 if b else None for b in in_batched))(*args)


def _blockdiag(conv, dimension_numbers, lhs, rhs):
    """conv(lhs[r], rhs[r]) for every r of lhs [R, ...] and rhs [R, ...] as one convolution: the replicas
    folded into the input and output features (replica-major), the kernel block-diagonal over them."""
    count = lhs.shape[0]
    numbers = jax.lax.conv_dimension_numbers(lhs.shape[1:], rhs.shape[1:], dimension_numbers)
    feature_in, kernel_out, kernel_in = numbers.lhs_spec[1], numbers.rhs_spec[0], numbers.rhs_spec[1]
    feature_out = numbers.out_spec[1]

    def fold(x, axis):  # [R, ...] -> R merged into `axis` of the unbatched layout, replica-major
        x = jnp.moveaxis(x, 0, axis)
        return x.reshape(x.shape[:axis] + (count * x.shape[axis + 1],) + x.shape[axis + 2:])

    # kernel [R, ...] with out features O at kernel_out and in features I at kernel_in -> [.., R*O, .., R*I, ..]
    kernel = jnp.moveaxis(rhs, (0, 1 + kernel_out, 1 + kernel_in), (0, 1, 2))   # [R, O, I, *rest]
    eye = jnp.eye(count, dtype=rhs.dtype)
    full = jnp.einsum("rs,roi...->rosi...", eye, kernel)                         # [R, O, R, I, *rest]
    full = full.reshape((count * kernel.shape[1], count * kernel.shape[2]) + kernel.shape[3:])
    full = jnp.moveaxis(full, (0, 1), (kernel_out, kernel_in))
    out = conv(fold(lhs, feature_in), full)
    out = out.reshape(out.shape[:feature_out] + (count, out.shape[feature_out] // count) + out.shape[feature_out + 1:])
    return jnp.moveaxis(out, feature_out, 0)


@functools.cache
def _op(static: tuple, replica_form: str = "loop"):
    conv = functools.partial(jax.lax.conv_general_dilated, **dict(static))
    blockdiag = functools.partial(_blockdiag, conv, dict(static)["dimension_numbers"])

    @custom_vmap
    def forward(lhs, rhs):
        return conv(lhs, rhs)

    @forward.def_vmap
    def _forward_rule(axis_size, in_batched, lhs, rhs):
        if replica_form == "blockdiag" and all(in_batched):
            return blockdiag(lhs, rhs), True
        return _looped(conv, axis_size, in_batched, lhs, rhs), True

    def gradients(lhs, rhs, cotangent):
        return jax.vjp(conv, lhs, rhs)[1](cotangent)

    @custom_vmap
    def backward(lhs, rhs, cotangent):
        return gradients(lhs, rhs, cotangent)

    @backward.def_vmap
    def _backward_rule(axis_size, in_batched, lhs, rhs, cotangent):
        lhs_batched, rhs_batched, cotangent_batched = in_batched
        if replica_form == "blockdiag" and all(in_batched):
            return jax.vjp(blockdiag, lhs, rhs)[1](cotangent), (True, True)
        if not lhs_batched and rhs_batched and cotangent_batched:
            # a shared input: the kernel gradient as jax batches it (the replicas folded into the output
            # channels of one plain convolution), the input gradient one replica at a time
            grad_rhs = jax.vmap(lambda r, g: jax.vjp(lambda r: conv(lhs, r), r)[1](g)[0])(rhs, cotangent)
            grad_lhs = _looped(lambda r, g: jax.vjp(lambda x: conv(x, r), lhs)[1](g)[0], axis_size,
                               (True, True), rhs, cotangent)
            return (grad_lhs, grad_rhs), (True, True)
        return _looped(gradients, axis_size, in_batched, lhs, rhs, cotangent), (True, True)

    @jax.custom_vjp
    def op(lhs, rhs):
        return forward(lhs, rhs)

    def op_fwd(lhs, rhs):
        return forward(lhs, rhs), (lhs, rhs)

    def op_bwd(residual, cotangent):
        return backward(*residual, cotangent)

    op.defvjp(op_fwd, op_bwd)
    return op
