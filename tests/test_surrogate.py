"""Surrogate spikes: Heaviside forward; backward against finite differences of each surrogate's
antiderivative (written here independently, in numpy float64)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spikejax import surrogate

# Antiderivatives F with F' = the documented surrogate derivative.
ANTIDERIVATIVES = {
    "fast_sigmoid": (lambda x, slope: x / (1 + slope * np.abs(x)), {"slope": 5.0}),
    "arctan": (lambda x, alpha: np.arctan(np.pi / 2 * alpha * x) / np.pi, {"alpha": 3.0}),
    "triangle": (lambda x, width: np.sign(x) * np.where(np.abs(x) < width,
                 np.abs(x) / width - x**2 / (2 * width**2), 0.5), {"width": 0.8}),
    "boxcar": (lambda x, width: np.clip(x / width, -0.5, 0.5), {"width": 1.5}),
    "exponential": (lambda x, scale, tau: scale * tau * np.sign(x) * (1 - np.exp(-np.abs(x) / tau)),
                    {"scale": 2.0, "tau": 0.5}),
}

POINTS = np.array([-2.3, -0.9, -0.31, -0.05, 0.07, 0.33, 0.61, 1.7])  # away from every kink


def test_forward_is_heaviside_with_h0_zero():
    x = jnp.array([-1.0, -0.0, 0.0, 1e-7, 2.0])
    np.testing.assert_array_equal(surrogate.spike(x), [0, 0, 0, 1, 1])


@pytest.mark.parametrize("name", sorted(ANTIDERIVATIVES))
def test_backward_matches_finite_differences(name):
    antiderivative, params = ANTIDERIVATIVES[name]
    grad = jax.grad(lambda x: jnp.sum(surrogate.spike(x, name, **params)))(jnp.asarray(POINTS, jnp.float32))
    h = 1e-6
    fd = (antiderivative(POINTS + h, **params) - antiderivative(POINTS - h, **params)) / (2 * h)
    np.testing.assert_allclose(grad, fd, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", sorted(surrogate.SURROGATES))
def test_bf16_in_bf16_out_and_gradient(name):
    x = jnp.linspace(-1, 1, 7, dtype=jnp.bfloat16)
    y, vjp = jax.vjp(lambda z: surrogate.spike(z, name), x)
    (g,) = vjp(jnp.ones_like(y))
    assert y.dtype == jnp.bfloat16 and g.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(g, np.float32),
                               surrogate.surrogate_derivative(x, name), rtol=1e-2)


def test_default_parameters_and_jit():
    x = jnp.asarray(POINTS, jnp.float32)
    g = jax.jit(jax.grad(lambda z: jnp.sum(surrogate.spike(z))))(x)
    np.testing.assert_allclose(g, 1 / (1 + 25 * np.abs(POINTS)) ** 2, rtol=1e-6)


def test_bad_names_and_parameters():
    with pytest.raises(ValueError, match="unknown surrogate 'sigmoidd'"):
        surrogate.spike(jnp.zeros(2), "sigmoidd")
    with pytest.raises(ValueError, match="unknown"):
        surrogate.spike(jnp.zeros(2), "arctan", slope=2.0)
    with pytest.raises(ValueError, match="positive"):
        surrogate.spike(jnp.zeros(2), "boxcar", width=0.0)
    with pytest.raises(ValueError, match="floating"):
        surrogate.spike(jnp.zeros(2, jnp.int32))
