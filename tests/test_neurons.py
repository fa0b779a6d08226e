"""LIF neurons against a plain numpy loop (forward) and an explicit reverse loop (gradients)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spikejax import neurons, surrogate
from tests import devices
from tests.reference import lif_adjoint_numpy, lif_numpy


def _currents(seed=0, shape=(40, 3, 5), scale=0.6, offset=0.25):
    rng = np.random.default_rng(seed)
    return (offset + scale * rng.standard_normal(shape)).astype(np.float32)


@pytest.mark.parametrize("implementation", ["fused", "reference"])
@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_forward_matches_numpy_loop(implementation, reset):
    currents = _currents()
    spikes, membrane = neurons.lif(currents, beta=0.85, threshold=0.9, reset=reset,
                                   implementation=implementation, return_membrane=True)
    ref_spikes, ref_membrane = lif_numpy(currents, beta=0.85, threshold=0.9, reset=reset)
    assert 0.05 < ref_spikes.mean() < 0.6  # the test exercises real spiking
    np.testing.assert_array_equal(spikes, ref_spikes)
    np.testing.assert_allclose(membrane, ref_membrane, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("implementation", ["fused", "reference"])
@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("detach_reset", [True, False])
@pytest.mark.parametrize("name", ["fast_sigmoid", "exponential"])
def test_gradient_matches_explicit_adjoint(implementation, reset, detach_reset, name):
    currents = _currents(1)
    weights = np.random.default_rng(2).standard_normal(currents.shape).astype(np.float32)
    loss = lambda c: jnp.sum(weights * neurons.lif(c, beta=0.8, threshold=1.0, reset=reset, surrogate=name,
                                                   detach_reset=detach_reset, implementation=implementation))
    grad = jax.grad(loss)(jnp.asarray(currents))
    ref = lif_adjoint_numpy(currents, weights, beta=0.8, threshold=1.0, reset=reset, detach_reset=detach_reset,
                            surrogate_derivative=lambda x: np.asarray(surrogate.surrogate_derivative(x, name),
                                                                      np.float64))
    np.testing.assert_allclose(grad, ref, rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("detach_reset", [True, False])
@pytest.mark.parametrize("recompute_chunk", [1, 7, 40, 64])
def test_checkpointed_matches_plain(reset, detach_reset, recompute_chunk):
    currents = jnp.asarray(_currents(3))
    weights = jnp.asarray(np.random.default_rng(4).standard_normal(currents.shape), jnp.float32)

    def run(every, implementation="fused"):
        def loss(c):
            s, v = neurons.lif(c, beta=0.9, reset=reset, detach_reset=detach_reset, return_membrane=True,
                               implementation=implementation, recompute_chunk=every)
            return jnp.sum(weights * s) + 0.1 * jnp.sum(jnp.sin(v)), s
        return jax.grad(loss, has_aux=True)(currents)

    grad, spikes = run(recompute_chunk)
    grad_ref, spikes_ref = run(None, "reference")
    np.testing.assert_array_equal(spikes, spikes_ref)
    np.testing.assert_allclose(grad, grad_ref, rtol=1e-5, atol=1e-6)


def test_bfloat16_in_out_and_gradients():
    currents = jnp.asarray(_currents(5), jnp.bfloat16)
    for implementation in ["fused", "reference"]:
        out, vjp = jax.vjp(lambda c: neurons.lif(c, beta=0.9, implementation=implementation), currents)
        (grad,) = vjp(jnp.ones_like(out))
        assert out.dtype == jnp.bfloat16 and grad.dtype == jnp.bfloat16
        ref, _ = lif_numpy(np.asarray(currents, np.float32), beta=0.9)
        np.testing.assert_array_equal(np.asarray(out, np.float32), ref)


def test_jit_vmap_grad_compose():
    currents = jnp.asarray(_currents(6, shape=(4, 30, 8)))  # vmapped over the leading axis
    f = lambda c: jnp.sum(neurons.lif(c, beta=0.9) * jnp.arange(8.0))
    batched = jax.jit(jax.vmap(jax.grad(f)))(currents)
    for i in range(4):
        np.testing.assert_allclose(batched[i], jax.grad(f)(currents[i]), rtol=1e-6)


# Learnable (array) parameters: every implementation against the autodiff reference. "chunked" is the fused
# path with recompute_chunk; "pallas" runs in interpret mode here.
LEARN_CASES = {"fused": dict(implementation="fused"), "chunked": dict(implementation="fused", recompute_chunk=7),
               "pallas": dict(implementation="pallas")}


def _parameter_grads(currents, weights, beta, threshold, **kwargs):
    def loss(c, b, th):
        return jnp.sum(weights * neurons.lif(c, beta=b, threshold=th, **kwargs).astype(jnp.float32))
    return jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(currents, beta, threshold)


# the interpreted Pallas kernels are slow: the zero reset, not detached (every term of the adjoint); the
# subtractive reset runs in the bf16 / per-layer test below
@pytest.mark.parametrize("case,reset,detach_reset", [
    (case, reset, detach) for case in sorted(LEARN_CASES) for reset in ("subtract", "zero")
    for detach in (True, False) if case != "pallas" or (reset, detach) == ("zero", False)])
def test_learnable_parameter_gradients_match_autodiff(case, reset, detach_reset):
    currents = jnp.asarray(_currents(7, shape=(40, 3, 5)))
    weights = jnp.asarray(np.random.default_rng(8).standard_normal(currents.shape), jnp.float32)
    rng = np.random.default_rng(9)
    beta = jnp.asarray(rng.uniform(0.7, 0.95, (5,)), jnp.float32)  # per neuron
    threshold = jnp.asarray(rng.uniform(0.8, 1.2, (3, 1)), jnp.float32)  # broadcast over the last axis
    kwargs = dict(reset=reset, detach_reset=detach_reset, surrogate="arctan")
    got = _parameter_grads(currents, weights, beta, threshold, **kwargs, **LEARN_CASES[case])
    ref = _parameter_grads(currents, weights, beta, threshold, **kwargs, implementation="reference")
    for g, r in zip(got, ref):
        assert g.shape == r.shape and g.dtype == r.dtype
        assert np.abs(r).max() > 1e-2  # the gradient is not trivially zero
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-5)
    spikes = neurons.lif(currents, beta=beta, threshold=threshold, **kwargs, **LEARN_CASES[case])
    ref_spikes, _ = lif_numpy(currents, beta=np.asarray(beta, np.float64), threshold=np.asarray(threshold, np.float64),
                              reset=reset)
    assert 0.05 < ref_spikes.mean() < 0.6
    np.testing.assert_array_equal(spikes, ref_spikes)


@pytest.mark.parametrize("case", sorted(LEARN_CASES))
def test_learnable_parameters_bfloat16_and_per_layer(case):
    currents = jnp.asarray(_currents(10, shape=(24, 4, 6)), jnp.bfloat16)
    weights = jnp.asarray(np.random.default_rng(11).standard_normal(currents.shape), jnp.float32)
    beta, threshold = jnp.float32(0.85), jnp.asarray(np.linspace(0.8, 1.2, 6), jnp.float32)  # per layer, per neuron
    got = _parameter_grads(currents, weights, beta, threshold, **LEARN_CASES[case])
    ref = _parameter_grads(currents, weights, beta, threshold, implementation="reference")
    assert got[0].dtype == jnp.bfloat16 and got[1].shape == () and got[2].shape == (6,)
    for g, r in zip(got, ref):
        np.testing.assert_allclose(np.asarray(g, np.float32), np.asarray(r, np.float32), rtol=2e-3, atol=1e-3)


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_learnable_parameter_gradients_match_finite_differences(reset):
    """A loss on the membrane only, with a detached reset: while no spike flips the function is smooth in
    beta and threshold, and the adjoint's sums are its exact derivative. Central differences of the float64
    numpy loop."""
    currents = _currents(12, shape=(30, 2, 4))
    weights = np.random.default_rng(13).standard_normal(currents.shape)
    beta, threshold = np.array([0.75, 0.8, 0.85, 0.9]), np.array([0.9, 1.0, 1.1, 1.2])

    def loss(b, th):
        spikes, v = lif_numpy(currents, beta=b, threshold=th, reset=reset)
        return np.sum(weights * v), spikes

    def grad(b, th):
        def f(b, th):
            _, v = neurons.lif(jnp.asarray(currents), beta=b, threshold=th, reset=reset, implementation="fused",
                               return_membrane=True)
            return jnp.sum(jnp.asarray(weights, jnp.float32) * v)
        return jax.grad(f, argnums=(0, 1))(jnp.asarray(b, jnp.float32), jnp.asarray(th, jnp.float32))

    got_beta, got_threshold = grad(beta, threshold)
    eps = 1e-6
    for i in range(4):
        for got, which in ((got_beta, 0), (got_threshold, 1)):
            step = np.zeros(4)
            step[i] = eps
            args_plus = (beta + step, threshold) if which == 0 else (beta, threshold + step)
            args_minus = (beta - step, threshold) if which == 0 else (beta, threshold - step)
            (up, s_up), (down, s_down) = loss(*args_plus), loss(*args_minus)
            np.testing.assert_array_equal(s_up, s_down)  # no spike flipped: the difference is a derivative
            np.testing.assert_allclose(got[i], (up - down) / (2 * eps), rtol=1e-4, atol=1e-4)
    assert np.abs(got_threshold).max() > 0.1 if reset == "subtract" else np.all(got_threshold == 0)


def test_cuba_lif_learnable_alpha_matches_reference():
    currents = jnp.asarray(_currents(14, shape=(30, 2, 4)))
    alpha, beta = jnp.asarray([0.5, 0.6, 0.7, 0.8]), jnp.asarray([0.8, 0.85, 0.9, 0.95])
    weights = jnp.asarray(np.random.default_rng(15).standard_normal(currents.shape), jnp.float32)
    grads = {impl: jax.grad(lambda a, b: jnp.sum(weights * neurons.cuba_lif(currents, alpha=a, beta=b,
                                                                            implementation=impl)),
                            argnums=(0, 1))(alpha, beta) for impl in ("fused", "reference")}
    for g, r in zip(grads["fused"], grads["reference"]):
        assert np.abs(r).max() > 1e-2
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-5)


def test_parameter_arrays_must_fit_one_step():
    currents = jnp.zeros((4, 3, 5))
    with pytest.raises(ValueError, match=r"beta must be .* broadcastable to one step"):
        neurons.lif(currents, beta=jnp.full((4,), 0.9))
    with pytest.raises(ValueError, match="threshold must be"):
        neurons.lif(currents, beta=0.9, threshold=jnp.ones((2, 3, 5)))
    with pytest.raises(ValueError, match="alpha must be"):
        neurons.cuba_lif(currents, alpha=jnp.ones((5,), jnp.int32), beta=0.9)


def test_cuba_lif_matches_numpy_loop():
    currents = _currents(8)
    synaptic = np.zeros_like(currents, np.float64)
    i = 0.0
    for t in range(currents.shape[0]):
        i = 0.6 * i + currents[t]
        synaptic[t] = i
    ref, _ = lif_numpy(synaptic, beta=0.9, threshold=1.5)
    out = neurons.cuba_lif(currents, alpha=0.6, beta=0.9, threshold=1.5)
    np.testing.assert_array_equal(out, ref)
    grad = jax.grad(lambda c: jnp.sum(neurons.cuba_lif(c, alpha=0.6, beta=0.9)))(jnp.asarray(currents))
    assert grad.shape == currents.shape and np.all(np.isfinite(grad))


def test_input_errors_name_the_problem():
    with pytest.raises(ValueError, match="reset"):
        neurons.lif(jnp.zeros((3, 2)), beta=0.9, reset="hard")
    with pytest.raises(ValueError, match="beta"):
        neurons.lif(jnp.zeros((3, 2)), beta=1.5)
    with pytest.raises(ValueError, match="floating"):
        neurons.lif(jnp.zeros((3, 2), jnp.int32), beta=0.9)
    with pytest.raises(ValueError, match="time-major"):
        neurons.lif(jnp.float32(1.0), beta=0.9)
    with pytest.raises(ValueError, match="recompute_chunk"):
        neurons.lif(jnp.zeros((3, 2)), beta=0.9, recompute_chunk=0)


# "pallas" is absent: Pallas' CPU interpreter cannot run inside shard_map (see spikejax.neurons._pallas._out_struct);
# benchmarks/gpu_check.py runs that case on a GPU.
@devices.needs(2)
@pytest.mark.parametrize("implementation,recompute_chunk", [("fused", None), ("fused", 8), ("reference", None)])
def test_lif_inside_shard_map_matches_unsharded(implementation, recompute_chunk):
    from jax.sharding import PartitionSpec as P

    mesh = jax.sharding.Mesh(np.array(jax.devices()[:2]), ("data",))
    currents = jnp.asarray(_currents(9, shape=(20, 4, 6)))
    kwargs = dict(beta=0.9, implementation=implementation, recompute_chunk=recompute_chunk)
    loss = lambda c: jnp.sum(neurons.lif(c, **kwargs) * jnp.arange(6.0))
    grad = jax.jit(jax.shard_map(jax.grad(loss), mesh=mesh, in_specs=P(None, "data"),
                                 out_specs=P(None, "data")))(currents)
    np.testing.assert_allclose(grad, jax.grad(loss)(currents), rtol=1e-6)


# The Pallas kernels run in interpret mode here (no GPU); the same kernel code is compiled by Triton on GPU.
@pytest.mark.parametrize("reset,detach_reset,name,shape", [
    ("subtract", True, "fast_sigmoid", (40, 3, 5)),   # 2 full 16-step chunks + 8; 15 neurons padded to 32
    ("zero", False, "exponential", (16, 2, 300)),     # exactly one chunk; 600 neurons padded to 1024
    ("subtract", False, "arctan", (5, 4, 128)),       # shorter than one chunk; 4 blocks of 128
    ("zero", True, "triangle", (33, 1024)),           # 2 blocks of 512
])
def test_pallas_matches_numpy_loop_and_adjoint(reset, detach_reset, name, shape):
    currents = _currents(10, shape=shape)
    weights = np.random.default_rng(11).standard_normal(shape).astype(np.float32)
    kwargs = dict(beta=0.8, threshold=1.0, reset=reset, surrogate=name, detach_reset=detach_reset)
    spikes, vjp = jax.vjp(lambda c: neurons.lif(c, implementation="pallas", **kwargs), jnp.asarray(currents))
    ref_spikes, _ = lif_numpy(currents, beta=0.8, threshold=1.0, reset=reset)
    assert 0.05 < ref_spikes.mean() < 0.6
    np.testing.assert_array_equal(spikes, ref_spikes)
    (grad,) = vjp(jnp.asarray(weights))
    ref = lif_adjoint_numpy(currents, weights, beta=0.8, threshold=1.0, reset=reset, detach_reset=detach_reset,
                            surrogate_derivative=lambda x: np.asarray(surrogate.surrogate_derivative(x, name),
                                                                      np.float64))
    np.testing.assert_allclose(grad, ref, rtol=2e-4, atol=2e-5)


def test_pallas_bfloat16_and_jit_vmap():
    currents = jnp.asarray(_currents(12, shape=(3, 20, 2, 8)), jnp.bfloat16)
    f = lambda c: jnp.sum(neurons.lif(c, beta=0.9, implementation=impl).astype(jnp.float32) * jnp.arange(8.0))
    impl = "pallas"
    out, grad = jax.jit(jax.vmap(jax.value_and_grad(f)))(currents)
    assert grad.dtype == jnp.bfloat16
    impl = "fused"
    ref_out, ref_grad = jax.vmap(jax.value_and_grad(f))(currents)
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_array_equal(np.asarray(grad, np.float32), np.asarray(ref_grad, np.float32))


def test_pallas_refuses_what_it_does_not_compute():
    currents = jnp.asarray(_currents(13, shape=(4, 2)))
    for kwargs in [dict(return_membrane=True), dict(recompute_chunk=2), dict(state_dtype=jnp.bfloat16)]:
        with pytest.raises(ValueError, match="pallas"):
            neurons.lif(currents, beta=0.9, implementation="pallas", **kwargs)
