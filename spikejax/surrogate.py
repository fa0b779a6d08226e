"""Spike nonlinearity with surrogate gradients.

`spike(x)` is the Heaviside step H(x) = 1 where x > 0 else 0 (so H(0) = 0) in the forward pass and a smooth
surrogate derivative in the backward pass (a `jax.custom_vjp`). x is the membrane potential minus the
threshold, in units of the threshold's voltage.

Surrogate derivatives dS/dx, selectable by name (`SURROGATES`), each with its scale parameter:

  fast_sigmoid  (SuperSpike)  1 / (1 + slope*|x|)^2                       slope=25
  arctan                      (alpha/2) / (1 + (pi/2 * alpha * x)^2)     alpha=2
  triangle                    max(0, 1 - |x|/width) / width               width=1
  boxcar                      1[|x| < width/2] / width                    width=1
  exponential (SLAYER-style)  scale * exp(-|x| / tau)                     scale=1, tau=1

The backward is computed in float32 and returned in the primal's dtype (bf16 in, bf16 gradient).
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

DerivativeFn = Callable[..., jax.Array]


def _fast_sigmoid(x, *, slope):
    return 1.0 / (1.0 + slope * jnp.abs(x)) ** 2


def _arctan(x, *, alpha):
    return (alpha / 2.0) / (1.0 + (math.pi / 2.0 * alpha * x) ** 2)


def _triangle(x, *, width):
    return jnp.maximum(0.0, 1.0 - jnp.abs(x) / width) / width


def _boxcar(x, *, width):
    return (jnp.abs(x) < width / 2.0).astype(x.dtype) / width


def _exponential(x, *, scale, tau):
    return scale * jnp.exp(-jnp.abs(x) / tau)


# name -> (derivative function, default parameters)
SURROGATES: dict[str, tuple[DerivativeFn, dict[str, float]]] = {
    "fast_sigmoid": (_fast_sigmoid, {"slope": 25.0}),
    "arctan": (_arctan, {"alpha": 2.0}),
    "triangle": (_triangle, {"width": 1.0}),
    "boxcar": (_boxcar, {"width": 1.0}),
    "exponential": (_exponential, {"scale": 1.0, "tau": 1.0}),
}


def resolve(surrogate: str, params: dict | None = None) -> tuple[str, tuple[tuple[str, float], ...]]:
    """Validates a surrogate name and parameters; returns (name, sorted (key, float) pairs).

    The result is hashable, so it can key caches and be a static argument.
    """
    if surrogate not in SURROGATES:
        raise ValueError(f"unknown surrogate {surrogate!r}; choose one of {sorted(SURROGATES)}")
    _, defaults = SURROGATES[surrogate]
    params = dict(params or {})
    unknown = set(params) - set(defaults)
    if unknown:
        raise ValueError(
            f"surrogate {surrogate!r} takes parameters {sorted(defaults)}, got unknown {sorted(unknown)}")
    merged = {**defaults, **params}
    for key, value in merged.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
            raise ValueError(f"surrogate parameter {key}={value!r} must be a positive Python number")
    return surrogate, tuple(sorted((k, float(v)) for k, v in merged.items()))


def surrogate_derivative(x: jax.Array, surrogate: str = "fast_sigmoid", **params) -> jax.Array:
    """dS/dx of the named surrogate at x, computed in float32 (same shape as x)."""
    name, frozen = resolve(surrogate, params)
    fn, _ = SURROGATES[name]
    return fn(jnp.asarray(x, jnp.float32), **dict(frozen))


@functools.cache
def _spike_fn(name: str, frozen: tuple[tuple[str, float], ...]) -> Callable[[jax.Array], jax.Array]:
    derivative, _ = SURROGATES[name]
    kwargs = dict(frozen)

    @jax.custom_vjp
    def spike_fn(x):
        return (x > 0).astype(x.dtype)

    def forward(x):
        return spike_fn(x), x

    def backward(x, g):
        d = derivative(x.astype(jnp.float32), **kwargs)
        return ((g.astype(jnp.float32) * d).astype(x.dtype),)

    spike_fn.defvjp(forward, backward)
    return spike_fn


def spike(x: jax.Array, surrogate: str = "fast_sigmoid", **params) -> jax.Array:
    """Heaviside step of x (H(0) = 0) in x's dtype, with the named surrogate derivative as its gradient.

    Args:
      x: membrane potential minus threshold, any shape, floating dtype.
      surrogate: a key of `SURROGATES`.
      **params: that surrogate's scale parameters (Python floats), e.g. `slope=10.0`.
    """
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"spike: x must be floating point, got dtype {x.dtype}")
    return _spike_fn(*resolve(surrogate, params))(x)
