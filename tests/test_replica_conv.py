"""spikejax.models.replica_conv: the same values and gradients as jax.lax.conv_general_dilated, unbatched
(bit for bit) and under vmap over replicas (to float32 rounding), and no grouped convolution in the
vmapped program, which is what it is for."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spikejax.models import replica_conv

DIMS = ("NHWC", "HWIO", "NHWC")
U = 2.0 ** -24  # float32 unit roundoff


def lax_conv(x, k):
    return jax.lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=DIMS)


def our_conv(x, k, form="loop"):
    return replica_conv.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=DIMS, replica_form=form)


def _operands(replicas=3, rows=4, size=6, c=3, o=5, kk=3, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.random((replicas, rows, size, size, c)) < 0.3).astype(np.float32)
    k = rng.standard_normal((replicas, kk, kk, c, o)).astype(np.float32)
    g = rng.standard_normal((replicas, rows, size, size, o)).astype(np.float32)
    return jnp.asarray(x), jnp.asarray(k), jnp.asarray(g)


def _loss(conv):
    return lambda x, k, g: jnp.sum(conv(x, k) * g)


def _bound(x, k, g):
    """|error| of a float32 sum of m products, in another order, <= 2 m u sum|terms| (per element; here
    the largest such bound over the outputs and gradients, each a sum of at most 9*C*rows*H*W terms)."""
    terms = jnp.max(jnp.abs(x)) * jnp.max(jnp.abs(k)) * jnp.max(jnp.abs(g))
    m = x.size + k.size  # generous count of the terms of any output or gradient element
    return float(2 * m * U * m * terms)


def test_unbatched_is_lax_bit_for_bit():
    x, k, g = (a[0] for a in _operands())
    np.testing.assert_array_equal(jax.jit(our_conv)(x, k), jax.jit(lax_conv)(x, k))
    ours = jax.jit(jax.grad(_loss(our_conv), argnums=(0, 1)))(x, k, g)
    theirs = jax.jit(jax.grad(_loss(lax_conv), argnums=(0, 1)))(x, k, g)
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("form", replica_conv.FORMS)
@pytest.mark.parametrize("in_axes", [(0, 0, 0), (None, 0, 0)], ids=["own inputs", "shared input"])
def test_vmapped_values_and_gradients_equal_per_replica_lax(in_axes, form):
    x, k, g = _operands()
    if in_axes[0] is None:
        x = x[0]
    conv = functools.partial(our_conv, form=form)
    ours = jax.jit(jax.vmap(jax.value_and_grad(_loss(conv), argnums=(0, 1)), in_axes=in_axes))(x, k, g)
    outputs = jax.jit(jax.vmap(conv, in_axes=in_axes[:2]))(x, k)
    for r in range(len(k)):
        xr = x if in_axes[0] is None else x[r]
        value, (gx, gk) = jax.value_and_grad(_loss(lax_conv), argnums=(0, 1))(xr, k[r], g[r])
        bound = _bound(xr, k[r], g[r])
        np.testing.assert_allclose(outputs[r], lax_conv(xr, k[r]), rtol=0, atol=bound)
        np.testing.assert_allclose(ours[0][r], value, rtol=0, atol=bound * g[r].size)
        np.testing.assert_allclose(ours[1][0][r], gx, rtol=0, atol=bound)
        np.testing.assert_allclose(ours[1][1][r], gk, rtol=0, atol=bound)


def _convolutions(jaxpr):
    found = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "conv_general_dilated":
            found.append((eqn.params["feature_group_count"], eqn.params["batch_group_count"]))
        for sub in jax.core.subjaxprs(eqn) if hasattr(jax.core, "subjaxprs") else _subjaxprs(eqn):
            found += _convolutions(sub)
    return found


def _subjaxprs(eqn):
    for value in eqn.params.values():
        for item in value if isinstance(value, (tuple, list)) else (value,):
            if hasattr(item, "jaxpr") and hasattr(item.jaxpr, "eqns"):
                yield item.jaxpr
            elif hasattr(item, "eqns"):
                yield item


@pytest.mark.parametrize("form", replica_conv.FORMS)
@pytest.mark.parametrize("in_axes", [(0, 0, 0), (None, 0, 0)], ids=["own inputs", "shared input"])
def test_vmapped_training_program_has_no_grouped_convolution(in_axes, form):
    """The point of the module: vmapping the value and gradient over replicas leaves only plain
    convolutions (feature_group_count = batch_group_count = 1) in the program; lax's own rule does not.
    "loop" has R of each (forward, input and kernel gradient), "blockdiag" one of each (and the forward
    traced again inside its backward, dead code)."""
    x, k, g = _operands(replicas=4)
    if in_axes[0] is None:
        x = x[0]
    step = lambda conv: jax.vmap(jax.value_and_grad(_loss(conv), argnums=(0, 1)), in_axes=in_axes)
    ours = _convolutions(jax.make_jaxpr(step(functools.partial(our_conv, form=form)))(x, k, g).jaxpr)
    if in_axes[0] == 0:
        assert (len(ours) <= 4) if form == "blockdiag" else (len(ours) >= 3 * 4), ours
    theirs = _convolutions(jax.make_jaxpr(step(lax_conv))(x, k, g).jaxpr)
    assert ours and all(groups == (1, 1) for groups in ours), ours
    if in_axes[0] == 0:
        assert any(groups != (1, 1) for groups in theirs), theirs  # what the module avoids


@pytest.mark.parametrize("shared_input", [True, False], ids=["one seed: shared batch", "seeds: own batches"])
def test_conv_net_replicas_train_with_plain_convolutions_only(shared_input):
    """The conv net vmapped over 3 replicas' parameters, value and gradient of a loss of its output spikes
    (as the replica sweep's step takes them): every convolution in the program is plain. (The values are
    the op's, tested above against lax per replica; whole spiking networks are compared statistically, as
    tests/test_replicas.py says why.)"""
    from flax import nnx

    from spikejax.models import Neuron, SpikingConvNet

    def make(seed):
        return SpikingConvNet((2, 8, 8), 3, Neuron(), rngs=nnx.Rngs(seed), channels=(4, 6), hidden=8)

    graphdef, _ = nnx.split(make(0))
    params = jax.tree.map(lambda *p: jnp.stack(p), *[nnx.split(make(s))[1] for s in range(3)])
    rng = np.random.default_rng(1)
    x = jnp.asarray((rng.random((3, 5, 2, 2, 8, 8)) < 0.3).astype(np.float32))  # [R, T, B, P, H, W]
    if shared_input:
        x = x[0]

    def loss(p, x):
        return jnp.sum(nnx.merge(graphdef, p)(x) * jnp.arange(3.0))

    step = jax.vmap(jax.value_and_grad(loss), in_axes=(0, None if shared_input else 0))
    convs = _convolutions(jax.make_jaxpr(step)(params, x).jaxpr)
    assert len(convs) >= 3 * 2 and all(groups == (1, 1) for groups in convs), convs
    values, grads = jax.jit(step)(params, x)
    assert values.shape == (3,) and all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))


def test_blockdiag_follows_any_dimension_numbers():
    """NCHW input with an OIHW kernel and a strided, dilated convolution: the block-diagonal form folds the
    replicas into whichever axes hold the features; values and gradients equal per-replica lax."""
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.standard_normal((3, 2, 4, 9, 7)), jnp.float32)   # [R, N, C, H, W]
    k = jnp.asarray(rng.standard_normal((3, 5, 4, 3, 2)), jnp.float32)   # [R, O, I, kh, kw]
    kwargs = dict(window_strides=(2, 1), padding=((1, 1), (0, 1)), rhs_dilation=(1, 2),
                  dimension_numbers=("NCHW", "OIHW", "NCHW"))
    lax = lambda x, k: jax.lax.conv_general_dilated(x, k, **kwargs)
    ours = lambda x, k: replica_conv.conv_general_dilated(x, k, **kwargs, replica_form="blockdiag")
    value = lambda conv: lambda x, k: jnp.sum(jnp.sin(conv(x, k)))
    got = jax.jit(jax.vmap(jax.value_and_grad(value(ours), argnums=(0, 1))))(x, k)
    for r in range(3):
        want = jax.value_and_grad(value(lax), argnums=(0, 1))(x[r], k[r])
        bound = _bound(x[r], k[r], jnp.ones(()))
        for a, b in zip(jax.tree.leaves((got[0][r], got[1][0][r], got[1][1][r])), jax.tree.leaves(want)):
            np.testing.assert_allclose(a, b, rtol=0, atol=bound * 10)


def test_replica_form_is_checked():
    with pytest.raises(ValueError, match="replica_form must be one of"):
        our_conv(jnp.zeros((1, 4, 4, 3)), jnp.zeros((3, 3, 3, 5)), form="grouped")
