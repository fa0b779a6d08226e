"""neurons.dense_lif: the chunked layer against one GEMM over all T*B rows followed by neurons.lif, and
against the float64 numpy adjoint.

Tolerances from the arithmetic: the chunked dW and db are float32 sums of the same T*B products
x[r, i] a[r, j] (resp. a[r, j]) as the unchunked GEMM's, in another order. Any order of a float32 sum of
m terms is within (m - 1) u sum|terms| of the exact sum (u = 2^-24, to first order), so two orders differ
by at most 2 (m - 1) u sum|terms|, with sum|terms| = |x|^T |a| (resp. sum |a|) computed in float64. The
spikes, dx and the parameter gradients are the same arithmetic in both: equal.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spikejax import neurons, surrogate
from tests.reference import lif_adjoint_numpy

U = 2.0 ** -24
T, B, D, N = 41, 3, 12, 10  # T prime: chunks of 7 leave a shorter last one


def _layer(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, D)).astype(np.float32)
    w = (1.6 * rng.standard_normal((D, N)) / np.sqrt(D)).astype(np.float32)
    b = (0.2 + 0.1 * rng.standard_normal(N)).astype(np.float32)
    weights = rng.standard_normal((T, B, N)).astype(np.float32)  # the loss: sum(weights * spikes)
    return x, w, b, weights


def _grads(implementation, weights, *, learn, bias=True, **kwargs):
    def loss(x, w, b, beta, threshold):
        spikes = neurons.dense_lif(x, w, b if bias else None, beta=beta if learn else 0.85,
                                   threshold=threshold if learn else 0.9, implementation=implementation, **kwargs)
        return jnp.sum(weights * spikes), spikes

    return jax.jit(jax.grad(loss, argnums=(0, 1, 2, 3, 4), has_aux=True))


def _currents_gradient(x, w, b, weights, *, learn, reset, detach_reset):
    """a = dL/dI of the unchunked layer, where I = x W + b (float32, as the chunked layer folds it)."""
    currents = (x.reshape(T * B, D) @ w + b).reshape(T, B, N)
    beta, threshold = (jnp.full((N,), 0.85), jnp.full((N,), 0.9)) if learn else (0.85, 0.9)
    f = lambda c: jnp.sum(weights * neurons.lif(c, beta=beta, threshold=threshold, reset=reset,
                                                detach_reset=detach_reset, implementation="fused"))
    return np.asarray(jax.jit(jax.grad(f))(currents), np.float64)


@pytest.mark.parametrize("reset,detach_reset", [("subtract", True), ("zero", False)])
@pytest.mark.parametrize("learn", [False, True])
@pytest.mark.parametrize("chunking", [dict(time_chunk=1), dict(time_chunk=7), dict(recompute_chunk=5)])
def test_chunked_matches_one_gemm_then_lif(reset, detach_reset, learn, chunking):
    x, w, b, weights = _layer()
    args = (x, w, b, np.full((N,), 0.85, np.float32), np.full((N,), 0.9, np.float32))
    kwargs = dict(reset=reset, detach_reset=detach_reset)
    grads, spikes = _grads("chunked", weights, learn=learn, **chunking, **kwargs)(*args)
    ref_grads, ref_spikes = _grads("fused", weights, learn=learn, **kwargs)(*args)
    assert 0.05 < float(jnp.mean(ref_spikes)) < 0.6  # real spiking, in every chunk
    np.testing.assert_array_equal(spikes, ref_spikes)
    (dx, dw, db, dbeta, dthreshold), (rdx, rdw, rdb, rdbeta, rdthreshold) = grads, ref_grads
    np.testing.assert_array_equal(dx, rdx)
    np.testing.assert_array_equal(dbeta, rdbeta)
    np.testing.assert_array_equal(dthreshold, rdthreshold)
    a = _currents_gradient(x, w, b, weights, learn=learn, **kwargs)
    rows = T * B
    bound_w = 2 * (rows - 1) * U * (np.abs(x.reshape(rows, D)).T.astype(np.float64) @ np.abs(a.reshape(rows, N)))
    bound_b = 2 * (rows - 1) * U * np.abs(a).sum((0, 1))
    assert np.all(np.abs(np.asarray(dw, np.float64) - np.asarray(rdw, np.float64)) <= bound_w)
    assert np.all(np.abs(np.asarray(db, np.float64) - np.asarray(rdb, np.float64)) <= bound_b)
    assert float(np.abs(rdw).max()) > 0.1  # the bound is not met by all-zero gradients


def test_one_chunk_is_the_unchunked_arithmetic():
    """time_chunk >= T: one chunk, one GEMM over all rows for dW: bit-identical to GEMM-then-lif."""
    x, w, b, weights = _layer(1)
    args = (x, w, b, np.full((N,), 0.85, np.float32), np.full((N,), 0.9, np.float32))
    for learn in (False, True):
        grads, spikes = _grads("chunked", weights, learn=learn, time_chunk=T)(*args)
        ref_grads, ref_spikes = _grads("fused", weights, learn=learn)(*args)
        np.testing.assert_array_equal(spikes, ref_spikes)
        for g, r in zip(grads, ref_grads):
            np.testing.assert_array_equal(g, r)


def test_against_numpy_adjoint_without_bias():
    """dW = x^T a with a from the float64 reverse loop of tests.reference, over the same float32 currents."""
    x, w, b, weights = _layer(2)
    grads, _ = _grads("chunked", weights, learn=False, bias=False, time_chunk=6)(x, w, b, 0.0, 0.0)
    currents = np.asarray((x.reshape(T * B, D) @ w).reshape(T, B, N), np.float64)
    a = lif_adjoint_numpy(currents, weights, beta=0.85, threshold=0.9, reset="subtract", detach_reset=True,
                          surrogate_derivative=lambda v: np.asarray(surrogate.surrogate_derivative(v, "fast_sigmoid"),
                                                                    np.float64))
    np.testing.assert_allclose(grads[1], x.reshape(T * B, D).T.astype(np.float64) @ a.reshape(T * B, N),
                               rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(grads[0], a @ w.T.astype(np.float64), rtol=2e-4, atol=2e-5)


def test_bfloat16_and_recompute_memory():
    x, w, b, _ = _layer(3)
    xb = jnp.asarray(x, jnp.bfloat16)
    out, vjp = jax.vjp(lambda x, w, b: neurons.dense_lif(x, w, b, beta=0.9, implementation="chunked"), xb,
                       jnp.asarray(w), jnp.asarray(b))
    dx, dw, db = vjp(jnp.ones_like(out))
    assert out.dtype == jnp.bfloat16 and dx.dtype == jnp.bfloat16 and dw.dtype == jnp.float32 == db.dtype
    shapes = (jax.ShapeDtypeStruct((400, 8, 64), jnp.float32), jax.ShapeDtypeStruct((64, 64), jnp.float32))

    def temp(**kwargs):
        f = jax.grad(lambda x, w: jnp.sum(neurons.dense_lif(x, w, beta=0.9, implementation="chunked", **kwargs)),
                     argnums=1)
        return jax.jit(f).lower(*shapes).compile().memory_analysis().temp_size_in_bytes

    assert temp(recompute_chunk=20) < temp(time_chunk=20) - 400 * 8 * 64 * 4 // 2  # no kept membrane


def test_shard_map_data_parallel():
    """Under shard_map over a data axis, the gradients of the replicated W and b are the single-device ones."""
    if jax.device_count() < 2:
        pytest.skip("needs host devices (tests/conftest.py)")
    from jax.sharding import Mesh
    from jax.sharding import PartitionSpec as P

    x, w, b, weights = _layer(4)
    x, weights = x[:, :2], weights[:, :2]
    mesh = Mesh(np.array(jax.devices()[:2]), ("data",))

    def loss(w, b, x, weights):
        return jnp.sum(weights * neurons.dense_lif(x, w, b, beta=jnp.full((N,), 0.85), implementation="chunked",
                                                   time_chunk=7))

    def local(w, b, x, weights):  # W and b are replicated: their gradients come back summed over the devices
        return jax.grad(loss, argnums=(0, 1))(w, b, x, weights)

    sharded = jax.jit(jax.shard_map(local, mesh=mesh, in_specs=(P(), P(), P(None, "data"), P(None, "data")),
                                    out_specs=P()))(w, b, x, weights)
    single = jax.jit(jax.grad(loss, argnums=(0, 1)))(w, b, x, weights)
    for s, r in zip(sharded, single):
        np.testing.assert_allclose(s, r, rtol=1e-5, atol=1e-6)


def test_argument_errors():
    x, w, b, _ = _layer()
    with pytest.raises(ValueError, match="kernel must be"):
        neurons.dense_lif(x, w[1:], b, beta=0.9)
    with pytest.raises(ValueError, match="bias must be"):
        neurons.dense_lif(x, w, b[1:], beta=0.9)
    with pytest.raises(ValueError, match="time_chunk applies"):
        neurons.dense_lif(x, w, b, beta=0.9, implementation="fused", time_chunk=4)
    with pytest.raises(ValueError, match="time_chunk must be"):
        neurons.dense_lif(x, w, b, beta=0.9, time_chunk=0)
