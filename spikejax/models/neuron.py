"""A layer's spiking neurons: the `Neuron` settings and `SpikingNeurons`, which holds the learnable neuron
parameters (beta, threshold, alpha) unconstrained and maps them into range."""
from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from spikejax import neurons

LEARN_SHAPES = ("neuron", "layer")
# The output layers a model can end in, and what each gives (the outputs a loss may read, `losses.READS`):
#   spiking     the model's neuron (LIF): spikes, and its membrane v (before reset) when asked
#   integrator  a non-spiking leaky integrator u[t] = beta u[t-1] + I[t] (`neurons.leaky_integrator`, the
#               neuron's beta, whatever its kind): membrane only
OUTPUTS = {"spiking": ("spikes", "membrane"), "integrator": ("membrane",)}


@dataclasses.dataclass(frozen=True)
class Neuron:
    """A spiking nonlinearity over time: [T, ...] currents -> [T, ...] spikes (see `neurons.lif`).

    `learn_beta` / `learn_threshold` / `learn_alpha` make those parameters trainable in every layer (held
    by `SpikingNeurons`), one per neuron (`learn_shape="neuron"`: per feature of a dense layer, per channel
    of a conv layer, shared over positions like its bias) or one per layer ("layer"); beta, threshold and
    alpha are then their initial values."""

    kind: str = "lif"  # a registered neuron kind (spikejax.neurons.kinds()): "lif" or "cuba_lif"
    beta: float = 0.9
    alpha: float = 0.8  # synaptic decay, cuba_lif only
    threshold: float = 1.0
    reset: str = "subtract"
    surrogate: str = "fast_sigmoid"
    surrogate_params: tuple[tuple[str, float], ...] = ()
    detach_reset: bool = True
    recompute_chunk: int | None = None  # fused LIF: keep one state per this many steps (neurons.lif recompute_chunk)
    implementation: str = "auto"  # see neurons.lif
    learn_beta: bool = False
    learn_threshold: bool = False
    learn_alpha: bool = False  # cuba_lif only
    learn_shape: str = "neuron"  # "neuron" or "layer"

    def __post_init__(self):
        kind = neurons.get_kind(self.kind)  # ValueError naming the kinds
        if self.learn_shape not in LEARN_SHAPES:
            raise ValueError(f"learn_shape must be one of {LEARN_SHAPES}, got {self.learn_shape!r}")
        if self.learn_alpha and "alpha" not in kind.parameters:
            raise ValueError(f"learn_alpha needs a kind with a synaptic decay alpha (e.g. 'cuba_lif'); "
                             f"{self.kind!r} takes {kind.parameters}")
        for name in self.learned:
            if message := learnable_range_error(name, float(getattr(self, name))):
                raise ValueError(message)

    @property
    def learned(self) -> tuple[str, ...]:
        """The names of the learnable parameters, e.g. ("beta", "threshold")."""
        return tuple(k for k in ("beta", "threshold", "alpha") if getattr(self, f"learn_{k}"))

    def __call__(self, currents, *, return_membrane: bool = False, **values):
        """`values`: beta / threshold / alpha arrays that replace the fixed numbers (see SpikingNeurons);
        `return_membrane`: (spikes, membrane) (the kind's function must take it; lif and cuba_lif do)."""
        get = lambda k: values.get(k, getattr(self, k))
        kwargs = dict(beta=get("beta"), threshold=get("threshold"), reset=self.reset, surrogate=self.surrogate,
                      surrogate_params=dict(self.surrogate_params), detach_reset=self.detach_reset,
                      recompute_chunk=self.recompute_chunk, implementation=self.implementation)
        if return_membrane and self.implementation == "pallas":  # the kernels give spikes only
            kwargs["implementation"] = "fused"
        kind = neurons.get_kind(self.kind)
        extra = {k: get(k) for k in kind.parameters if k not in kwargs}
        if return_membrane:
            extra["return_membrane"] = True
        return kind.function(currents, **extra, **kwargs)


def raw_name(name: str) -> str:
    """The nnx.Param attribute of SpikingNeurons that holds learnable parameter `name` unconstrained."""
    return f"{name}_raw"


RAW_NAMES = tuple(raw_name(k) for k in ("beta", "threshold", "alpha"))

# Parametrisations that keep the learnable parameters in range by construction, for any finite or infinite raw
# value, in float32: value = forward(raw), raw = inverse(value) (float64, so forward(inverse(v)) is v to float32
# rounding). MARGIN = 2^-24 is the float32 spacing just below 1: MARGIN + (1 - 2 MARGIN) * s lies in
# [2^-24, 1 - 2^-24] for s = sigmoid(raw) in [0, 1], and every one of those sums is exact or rounds inside it.
# A checkpoint written under the plain sigmoid / softplus forms reads the same to within 2^-24 (absolute).
MARGIN = 2.0 ** -24


def _unit_interval(raw):
    """(0, 1): MARGIN + (1 - 2 MARGIN) * sigmoid(raw), in [2^-24, 1 - 2^-24] in float32."""
    raw = jnp.asarray(raw, jnp.float32)
    return jnp.float32(MARGIN) + jnp.float32(1.0 - 2.0 * MARGIN) * jax.nn.sigmoid(raw)


def _unit_interval_inverse(value: float) -> float:
    s = (value - MARGIN) / (1.0 - 2.0 * MARGIN)
    return math.log(s / (1.0 - s))


def _positive(raw):
    """> 0: softplus(raw) + MARGIN (softplus(-inf) = 0 would otherwise give a threshold of 0)."""
    return jax.nn.softplus(jnp.asarray(raw, jnp.float32)) + jnp.float32(MARGIN)


def _positive_inverse(value: float) -> float:
    x = value - MARGIN
    return x + math.log(-math.expm1(-x))  # log(exp(x) - 1), stable


PARAMETRISATION = {
    "beta": (_unit_interval, _unit_interval_inverse),
    "alpha": (_unit_interval, _unit_interval_inverse),
    "threshold": (_positive, _positive_inverse),
}


def _order(x) -> int:
    """float32 -> int, monotone (adjacent floats are adjacent ints)."""
    bits = int(np.asarray(x, np.float32).view(np.int32))
    return bits if bits >= 0 else -(bits & 0x7FFFFFFF)


def _unorder(n: int) -> np.float32:
    return np.asarray(n if n >= 0 else (-n) | 0x80000000, np.uint32).view(np.float32)[()]


def initial_raw(name: str, value: float) -> np.float32:
    """The float32 raw value whose forward is float32(`value`) where one exists, else the nearest: a
    bisection over float32 raw values around the float64 inverse (the forward is nondecreasing)."""
    forward, inverse = PARAMETRISATION[name]
    target, start = float(np.float32(value)), float(inverse(value))
    low, high = _order(start - 1.0 - abs(start) / 8), _order(start + 1.0 + abs(start) / 8)
    at = lambda n: float(forward(_unorder(n)))
    while high - low > 1:  # invariant: at(low) < target <= at(high), as far as the forward is monotone
        middle = (low + high) // 2
        low, high = (middle, high) if at(middle) < target else (low, middle)
    return _unorder(min((low, high), key=lambda n: abs(at(n) - target)))


def learnable_range_error(name: str, value: float) -> str | None:
    """Why `value` cannot start learnable parameter `name` (None if it can): beta and alpha in
    (2^-24, 1 - 2^-24), the threshold above 2^-24."""
    if name == "threshold":
        return None if value > MARGIN else f"a learnable threshold must start above 2^-24, got {value}"
    if MARGIN < value < 1.0 - MARGIN:
        return None
    return f"a learnable {name} must start inside (0, 1) (in float32: 2^-24 < {name} < 1 - 2^-24), got {value}"


class SpikingNeurons(nnx.Module):
    """One layer's neurons: `neuron` over currents [T, B, ..., features], holding its learnable parameters as
    unconstrained `nnx.Param`s `beta_raw`, `threshold_raw`, `alpha_raw` of shape [features] or []:

      beta = m + (1 - 2m) sigmoid(beta_raw),  alpha likewise,  threshold = softplus(threshold_raw) + m

    with m = MARGIN = 2^-24, so that in float32 beta and alpha stay strictly inside (0, 1) and the threshold
    above 0 whatever the raw values (+-inf included),

    initialised so that they start at the neuron's numbers. With nothing learnable it holds no state (the
    model's parameters are then only its weights and biases)."""

    def __init__(self, neuron: Neuron, features: int):
        self.neuron = neuron
        shape = (features,) if neuron.learn_shape == "neuron" else ()
        for name in neuron.learned:
            raw = initial_raw(name, float(getattr(neuron, name)))
            setattr(self, raw_name(name), nnx.Param(jnp.full(shape, raw, jnp.float32)))

    def values(self) -> dict:
        """{name: the parameter's value array} for the learnable parameters (f32, [features] or [])."""
        return {name: PARAMETRISATION[name][0](getattr(self, raw_name(name))[...]) for name in self.neuron.learned}

    def __call__(self, currents):
        return self.neuron(currents, **self.values())


def check_output(output: str, reads) -> None:
    """ValueError unless the output layer `output` ("spiking" or "integrator") gives everything in `reads`."""
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {list(OUTPUTS)}, got {output!r}")
    missing = [r for r in reads if r not in OUTPUTS[output]]
    if missing:
        raise ValueError(f"a model with output={output!r} gives {list(OUTPUTS[output])}, not {missing}: read "
                         "'membrane', or use output='spiking'")


def output_neuron(neuron: Neuron, output: str) -> Neuron:
    """The output layer's Neuron settings: an integrator learns only beta (it has no threshold or alpha)."""
    check_output(output, ())
    if output == "integrator":
        return dataclasses.replace(neuron, learn_threshold=False, learn_alpha=False)
    return neuron


def output_layer(spiking: SpikingNeurons, currents, output: str, reads):
    """The output layer's neurons on currents [T, B, C]: (outputs {"spikes": [T, B, C] (a spiking output),
    "membrane": [T, B, C] (when read, or an integrator)}, the layer's spikes for the per-layer counts: an
    integrator's are zeros, so that layer indices, fan-outs and reports keep their places)."""
    check_output(output, reads)
    if output == "integrator":
        beta = spiking.values().get("beta", spiking.neuron.beta)
        membrane = neurons.leaky_integrator(currents, beta=beta)
        return {"membrane": membrane}, jnp.zeros_like(membrane)
    if "membrane" in reads:
        spikes, membrane = spiking.neuron(currents, return_membrane=True, **spiking.values())
        return {"spikes": spikes, "membrane": membrane}, spikes
    spikes = spiking(currents)
    return {"spikes": spikes}, spikes

