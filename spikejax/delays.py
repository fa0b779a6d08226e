"""Synaptic delays: dense layers whose synapses deliver each input spike some steps late.

  y_j[t] = sum_i W_ij x_i[t - d_ij]          (x_i[t] = 0 for t < 0)

x [T, B, I] time-major, W [I, O], y [T, B, O]; delays d in steps, per synapse [I, O] or per input channel
[I] (d_ij = d_i: a delayed copy of each input channel, then one dense layer: cheaper, fewer parameters).

Training (DCLS, Hammouamri, Khalfaoui-Hassani and Masquelier, ICLR 2024): each delay is a real position
d in [0, D-1] of a temporal kernel of D taps, spread over the taps by a normalised Gaussian of width sigma,

  k_ij[tau] = g_ij[tau] / (sum_tau' g_ij[tau'] + 1e-7 m_ij),   g_ij[tau] = exp(-(tau - d_ij)^2 / (2 sigma^2))
  y_j[t] = sum_i sum_tau W_ij k_ij[tau] x_i[t - tau],      tau = 0 .. D-1

which is differentiable in W and d (a causal convolution over time with a [D, I, O] kernel). sigma is
annealed towards 0 during training (`annealed_sigma`); after training the delays round to integer steps
(`rounded`) and inference shifts exactly (`sigma=None`). Positions outside [0, D-1] are clipped there
(their gradient is then 0, like DCLS's clamp after each update).

Here m_ij = max_tau g_ij[tau] = g_ij[round(d_ij)]. DCLS's normaliser is sum g + 1e-7; taken relative to the
largest tap (computed as exp of the exponent minus its maximum), the same function to float32 rounding
wherever g's largest tap is not tiny (DCLS keeps sigma >= 0.27, where m >= 0.18), and as sigma -> 0 the
layer tends to the exact one at every delay off a half-integer (with DCLS's absolute 1e-7, a delay 0.3
from a tap at sigma = 0.05 has m = 1.5e-8 < 1e-7 and delivers 13% of its input).

  delayed_dense(x, w, d, kernel_size=D, sigma=s)     the interpolated layer (training)
  delayed_dense(x, w, d, kernel_size=D)              exact integer shifts of round(clip(d)) (inference)
  delay_line(x, d)                                   per-channel exact shifts alone: [T, B, I] -> [T, B, I]
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

EPSILON = 1e-7  # in the Gaussian's normaliser, as DCLS


def _check(x, weight, delays, kernel_size):
    if x.ndim != 3:
        raise ValueError(f"x must be time-major [T, B, I], got shape {x.shape}")
    if weight.ndim != 2 or weight.shape[0] != x.shape[2]:
        raise ValueError(f"weight must be [I, O] with I = {x.shape[2]} (x's last axis), got shape {weight.shape}")
    if delays.shape not in ((weight.shape[0],), tuple(weight.shape)):
        raise ValueError(f"delays must be per synapse {tuple(weight.shape)} or per input channel "
                         f"({weight.shape[0]},), got shape {delays.shape}")
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, (int, np.integer)) or kernel_size < 1:
        raise ValueError(f"kernel_size must be a positive int (taps 0 .. kernel_size-1), got {kernel_size!r}")


def _real_dtype(*arrays):
    """float32, or float64 where an argument is float64 (x64 enabled)."""
    return jnp.result_type(jnp.float32, *(a.dtype for a in arrays))


def clipped(delays, kernel_size: int):
    """Delays clipped to the kernel, [0, kernel_size - 1] (float32; float64 for float64 delays)."""
    delays = jnp.asarray(delays)
    return jnp.clip(delays.astype(_real_dtype(delays)), 0.0, float(kernel_size - 1))


def rounded(delays, kernel_size: int):
    """The integer delays inference uses: round(clip(d)) (half to even), int32 of the delays' shape."""
    return jnp.round(clipped(delays, kernel_size)).astype(jnp.int32)


def _taps_last(delays, kernel_size: int, sigma, reverse: bool = False):
    """gaussian_taps with the taps on the last axis, [*delays.shape, kernel_size]; `reverse`: tap D-1 first
    (the order a convolution's kernel reads them). The reduction over the minor axis and the kernel in this
    layout made the per-synapse step 15% faster on CPU than [D, I, O] (benchmarks/delays.py)."""
    d = clipped(delays, kernel_size)
    start, stop, step = (kernel_size - 1, -1, -1) if reverse else (0, kernel_size, 1)
    taps = jnp.arange(start, stop, step, dtype=d.dtype)
    nearest = jax.lax.stop_gradient(jnp.round(d))[..., None]  # the largest tap: exponent 0 there, < 0 elsewhere
    scale = 0.5 / jnp.square(jnp.asarray(sigma, d.dtype))
    e = jnp.exp((nearest - taps) * (nearest + taps - 2 * d[..., None]) * scale)
    return e / (jnp.sum(e, axis=-1, keepdims=True) + EPSILON)


def gaussian_taps(delays, kernel_size: int, sigma):
    """k[tau, ...] = g[tau] / (sum_tau g + 1e-7 max_tau g), g[tau] = exp(-(tau - clip(d))^2 / (2 sigma^2)):
    [kernel_size, *delays.shape], float32 (float64 for float64 delays). sigma > 0 (a float or a traced
    scalar). Computed as e = g / max g = exp(((r - tau)(r + tau - 2d)) / (2 sigma^2)), r = round(clip(d))."""
    return jnp.moveaxis(_taps_last(delays, kernel_size, sigma), -1, 0)


def one_hot_taps(delays, kernel_size: int):
    """k[tau, ...] = 1 where tau = round(clip(d)), else 0: [kernel_size, *delays.shape], float32."""
    taps = jnp.arange(kernel_size).reshape((kernel_size,) + (1,) * jnp.ndim(delays))
    return (taps == rounded(delays, kernel_size)).astype(jnp.float32)


def _causal_conv(x, kernel):
    """y[t] = sum_tau x[t - tau] @ kernel[..., D - 1 - tau]: x [T, B, I], kernel [I, O, D] with its taps in
    reverse order (tap D - 1 first) -> [T, B, O]."""
    return jax.lax.conv_general_dilated(
        x, kernel.astype(x.dtype), window_strides=(1,), padding=[(kernel.shape[-1] - 1, 0)],
        dimension_numbers=("WNC", "IOW", "WNC"))


def _padded(x, before: int, after: int = 0):
    """x with `before` zero steps in front and `after` behind, along time."""
    zeros = lambda n: jnp.zeros((n,) + x.shape[1:], x.dtype)  # noqa: E731
    return jnp.concatenate([zeros(before), x, zeros(after)])


@jax.custom_vjp
def _shift_sum(x, taps):
    """sum_tau taps[tau, i] x[t - tau, b, i]: x [T, B, I], taps [D, I] -> [T, B, I] (x's dtype). D shifted
    multiply-adds, which XLA fuses; on CPU 5x faster than the depthwise convolution it replaced. Its own
    backward: autodiff's kept the D shifted copies of x (227 MiB at SHD sizes, 39 MiB with this one)."""
    steps, kernel_size = x.shape[0], taps.shape[0]
    padded, taps = _padded(x, kernel_size - 1), taps.astype(x.dtype)
    out = taps[0] * x
    for tau in range(1, kernel_size):
        out = out + taps[tau] * padded[kernel_size - 1 - tau: kernel_size - 1 - tau + steps]
    return out


def _shift_sum_forward(x, taps):
    return _shift_sum(x, taps), (x, taps)


def _shift_sum_backward(residuals, grad):
    """dL/dx[s] = sum_tau taps[tau] g[s + tau] (x's dtype); dL/dtaps[tau, i] = sum_{t,b} g[t] x[t - tau],
    one fused reduction per tau in a loop, accumulated in the taps' dtype."""
    x, taps = residuals
    steps, kernel_size = x.shape[0], taps.shape[0]
    padded = _padded(x, kernel_size - 1)

    def tap(tau, acc):
        piece = jax.lax.dynamic_slice_in_dim(padded, kernel_size - 1 - tau, steps)
        return acc.at[tau].set(jnp.sum(grad * piece, axis=(0, 1), dtype=taps.dtype))

    grad_taps = jax.lax.fori_loop(0, kernel_size, tap, jnp.zeros_like(taps))
    ahead, taps_x = _padded(grad, 0, kernel_size - 1), taps.astype(x.dtype)
    grad_x = taps_x[0] * grad
    for tau in range(1, kernel_size):
        grad_x = grad_x + taps_x[tau] * ahead[tau: tau + steps]
    return grad_x.astype(x.dtype), grad_taps


_shift_sum.defvjp(_shift_sum_forward, _shift_sum_backward)


def delayed_dense(x, weight, delays, *, kernel_size: int, sigma=None):
    """y[t, b, j] = sum_i sum_tau W_ij k_ij[tau] x[t - tau, b, i] (module docstring).

    x [T, B, I] (any float dtype; the result has it), weight [I, O], delays [I, O] or [I] in steps.
    `sigma` a positive float or traced scalar: the Gaussian-interpolated delays (training); None: the exact
    shifts of `rounded(delays)` (what deploys). No bias: add it to the result."""
    x, weight, delays = jnp.asarray(x), jnp.asarray(weight), jnp.asarray(delays)
    _check(x, weight, delays, kernel_size)
    if isinstance(sigma, (int, float)) and not sigma > 0:
        raise ValueError(f"sigma must be > 0 (or None for exact integer shifts), got {sigma!r}")
    if delays.ndim == 1:  # per input channel: delay each channel, then one GEMM
        if sigma is None:
            shifted = delay_line(x, rounded(delays, kernel_size))
        else:
            shifted = _shift_sum(x, gaussian_taps(delays, kernel_size, sigma))
        return jnp.einsum("tbi,io->tbo", shifted, weight.astype(x.dtype))
    if sigma is None:  # one-hot taps, tap D - 1 first
        taps = (jnp.arange(kernel_size - 1, -1, -1) == rounded(delays, kernel_size)[..., None]).astype(jnp.float32)
    else:
        taps = _taps_last(delays, kernel_size, sigma, reverse=True)
    return _causal_conv(x, taps * weight.astype(_real_dtype(weight, taps))[..., None])


def delay_line(x, delays):
    """x[t - d_i, b, i] (0 before the start): exact per-channel shifts by integer delays [I], as a ring buffer
    of max(d) + 1 steps would give them. x [T, B, I] -> [T, B, I]."""
    x, delays = jnp.asarray(x), jnp.asarray(delays)
    if x.ndim != 3 or delays.shape != (x.shape[2],):
        raise ValueError(f"delay_line takes x [T, B, I] and integer delays [I], got {x.shape} and {delays.shape}")
    steps = x.shape[0]
    source = jnp.arange(steps)[:, None] - delays[None, :].astype(jnp.int32)  # [T, I]
    gathered = jnp.take_along_axis(x, jnp.clip(source, 0, steps - 1)[:, None, :], axis=0)
    return jnp.where((source >= 0)[:, None, :], gathered, jnp.zeros((), x.dtype))


def annealed_sigma(progress, sigma_start: float, sigma_end: float, anneal_fraction: float):
    """DCLS's exponential schedule: sigma_start (sigma_end / sigma_start)^min(progress / anneal_fraction, 1),
    for `progress` = step / total steps in [0, 1]; sigma_end from there on."""
    if not (sigma_start > 0 and sigma_end > 0 and 0 < anneal_fraction <= 1):
        raise ValueError(f"need sigma_start > 0, sigma_end > 0 and 0 < anneal_fraction <= 1, got "
                         f"{sigma_start}, {sigma_end}, {anneal_fraction}")
    fraction = jnp.clip(jnp.asarray(progress, jnp.float32) / anneal_fraction, 0.0, 1.0)
    return sigma_start * jnp.exp(fraction * math.log(sigma_end / sigma_start))


__all__ = ["annealed_sigma", "clipped", "delay_line", "delayed_dense", "gaussian_taps", "one_hot_taps", "rounded"]
