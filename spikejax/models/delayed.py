"""A dense spiking network with learnable synaptic delays (`spikejax.delays`), the DCLS recipe:

  I_j[t] = sum_i W_ij x_i[t - d_ij] + b_j,   then the layer's neurons,   for every layer (output included)

Delays are in steps, per synapse ([I, O]) or per input channel ([I]), held as float `nnx.Param`s named
`delay` beside each layer's `kernel` and `bias`. In training (`progress` in [0, 1] given) each is a
Gaussian-interpolated position in a kernel of `kernel_size` taps whose width anneals from `sigma_start`
to `sigma_end` over the first `anneal_fraction` of the steps (`delays.annealed_sigma`); without
`progress` (evaluation, export, deployment) the delays round to integers and shift exactly. With
`learn=False` they stay at their initial values and always shift exactly (the fixed-random-delays
baseline).
"""
from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from spikejax import delays as delays_lib
from spikejax.models.networks import (
    DEFAULT_INIT_SCALE,
    READ_SPIKES,
    _kernel_init,
    _spiking_layers,
    check_input,
    dense_connection,
    spikes_of,
)
from spikejax.models.neuron import Neuron, output_layer

DELAY_SHAPES = ("synapse", "channel")
DELAY_INITS = ("uniform", "zero")


@dataclasses.dataclass(frozen=True)
class Delay:
    """Delay settings of a `DelayedMLP` (config block `model.delay`)."""

    kernel_size: int = 25  # D taps: delays 0 .. D-1 steps
    per: str = "synapse"  # "synapse": d [I, O]; "channel": d [I] (one delay per input channel of a layer)
    learn: bool = True  # False: fixed at the initial delays, exact shifts in training too
    init: str = "uniform"  # "uniform" over [0, D-1] (DCLS), or "zero"
    sigma_start: float | None = None  # None: D / 3 (DCLS: max_delay // 3)
    sigma_end: float = 0.23  # DCLS's final width (the taps are then one-hot to within 1e-4)
    anneal_fraction: float = 0.5  # sigma reaches sigma_end after this fraction of the steps (DCLS: half)

    def __post_init__(self):
        size = self.kernel_size
        if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
            raise ValueError(f"delay kernel_size must be a positive int, got {size!r}")
        object.__setattr__(self, "kernel_size", int(size))  # a numpy integer (from an array's shape) as an int
        if self.per not in DELAY_SHAPES:
            raise ValueError(f"delay per must be one of {DELAY_SHAPES}, got {self.per!r}")
        if self.init not in DELAY_INITS:
            raise ValueError(f"delay init must be one of {DELAY_INITS}, got {self.init!r}")
        if not (self.start > 0 and self.sigma_end > 0 and 0 < self.anneal_fraction <= 1):
            raise ValueError(f"delay sigma_start and sigma_end must be > 0 and anneal_fraction in (0, 1], got "
                             f"{self.sigma_start}, {self.sigma_end}, {self.anneal_fraction}")

    @property
    def start(self) -> float:
        return float(self.kernel_size) / 3.0 if self.sigma_start is None else float(self.sigma_start)

    def sigma(self, progress):
        """The training width at `progress` (None: exact shifts, for evaluation and deployment)."""
        if progress is None or not self.learn:
            return None
        return delays_lib.annealed_sigma(progress, self.start, self.sigma_end, self.anneal_fraction)


class DelayedDense(nnx.Module):
    """y = delayed_dense(x, kernel, delay) + bias over [T, B, I] -> [T, B, O]."""

    def __init__(self, in_features: int, out_features: int, delay: Delay, *, rngs: nnx.Rngs, kernel_init,
                 use_bias: bool = True, dtype=jnp.float32):
        self.kernel = nnx.Param(kernel_init(rngs.params(), (in_features, out_features), jnp.float32))
        self.bias = nnx.Param(jnp.zeros((out_features,), jnp.float32)) if use_bias else None
        shape = (in_features, out_features) if delay.per == "synapse" else (in_features,)
        # drawn whatever the init, so that a seed gives the same weights with every delay setting (paired runs)
        start = jax.random.uniform(rngs.params(), shape, jnp.float32, 0.0, float(delay.kernel_size - 1))
        self.delay = nnx.Param(start if delay.init == "uniform" else jnp.zeros(shape, jnp.float32))
        self.settings, self.dtype = delay, dtype

    def __call__(self, x, sigma=None):
        d = self.delay[...]
        if not self.settings.learn:
            d = jax.lax.stop_gradient(d)
        y = delays_lib.delayed_dense(x.astype(self.dtype), self.kernel[...], d,
                                     kernel_size=self.settings.kernel_size, sigma=sigma)
        return y if self.bias is None else y + self.bias[...].astype(y.dtype)


class DelayedMLP(nnx.Module):
    """in_features -> hidden... -> num_classes, every connection a `DelayedDense`, a `Neuron` after each
    (the last one's `output`: "spiking" or "integrator", see `neuron.output_layer`).
    `outputs(x, reads, progress=None)`: x [T, B, ...] (time-major) -> ({"spikes", "membrane"} of the output
    layer, the spikes of every layer); `__call__(x, progress=None)`: output spikes [T, B, C], with the spikes
    of every layer (`(spikes, layers)`) when `return_layers=True`. `time_steps`: the T every input must have
    (None: any)."""

    takes_progress = True  # build.apply_model passes the training progress (step / total steps)

    def __init__(self, in_features: int, hidden: Sequence[int], num_classes: int, neuron: Neuron, *,
                 rngs: nnx.Rngs, delay: Delay = Delay(), dtype=jnp.float32,
                 init_scale: float = DEFAULT_INIT_SCALE, bias: bool = True, output: str = "spiking",
                 time_steps: int | None = None):
        sizes = [in_features, *hidden, num_classes]
        init = _kernel_init(init_scale)
        self.layers = nnx.List([DelayedDense(a, b, delay, rngs=rngs, kernel_init=init, use_bias=bias, dtype=dtype)
                                for a, b in zip(sizes[:-1], sizes[1:])])
        self.spiking = _spiking_layers(neuron, sizes[1:], output)
        self.neuron, self.delay, self.dtype, self.output = neuron, delay, dtype, output
        self.in_features, self.time_steps = in_features, time_steps
        self.fan_out = tuple(sizes[1:]) + (0,)

    def __call__(self, x, progress=None, *, return_layers: bool = False):
        return spikes_of(self, x, return_layers, progress=progress)

    def outputs(self, x, reads=READ_SPIKES, progress=None):
        x = check_input(x, self.in_features, self.time_steps, f"[{self.in_features}]")
        sigma = self.delay.sigma(progress)
        x = x.reshape(x.shape[:2] + (-1,)).astype(self.dtype)
        spikes = [x]
        for layer, spiking in zip(self.layers[:-1], self.spiking[:-1]):
            x = spiking(layer(x, sigma))
            spikes.append(x)
        outputs, last = output_layer(self.spiking[-1], self.layers[-1](x, sigma), self.output, reads)
        return outputs, spikes + [last]

    def connections(self, spikes):
        """Each layer's (input [T, B, F_in], nonzero fan-out [F_in], all fan-out), for
        `readout.neurobench_ops` (a delay moves a synaptic operation in time, it adds none)."""
        return [dense_connection(x, layer.kernel[...]) for layer, x in zip(self.layers, spikes[:-1])]


__all__ = ["DELAY_INITS", "DELAY_SHAPES", "Delay", "DelayedDense", "DelayedMLP"]
