"""Flax NNX spiking networks, computed layer by layer over the whole sequence.

Each layer applies one dense/conv to all T*B rows at once, then runs the LIF recurrence over T with
`spikejax.neurons`; a dense layer with LIF neurons is one `neurons.dense_lif` (which walks time in chunks
on CPU when the layer's [T, B, N] arrays are large).

Inputs are time-major [T, B, *frame] (0/1 spikes, any dtype); a model returns
(output spikes [T, B, C], [spikes of every spiking layer, input first]) so that readouts can count
spikes and synaptic operations per layer. Use functionally: `graphdef, params = nnx.split(model)`,
then `nnx.merge(graphdef, params)(x)` inside a jitted step.

Architectures (in the spirit of the SLAYER networks the paper built on):
  mlp   dense hidden... -> C          NMNIST 2312-512-10, N-TIDIGITS18 64-256-256-11, digits_events,
                                      timing_events 32-128-10
  conv  conv 16c5 -> pool2 -> conv 32c3 -> pool2 -> dense 512 -> C       DVS Gesture at 32x32x2
  rnn   recurrent hidden... -> C (neurons.recurrent_lif)                  SHD 700-256-20
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from spikejax import neurons

LEARN_SHAPES = ("neuron", "layer")


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

    def __call__(self, currents, **values):
        """`values`: beta / threshold / alpha arrays that replace the fixed numbers (see SpikingNeurons)."""
        get = lambda k: values.get(k, getattr(self, k))
        kwargs = dict(beta=get("beta"), threshold=get("threshold"), reset=self.reset, surrogate=self.surrogate,
                      surrogate_params=dict(self.surrogate_params), detach_reset=self.detach_reset,
                      recompute_chunk=self.recompute_chunk, implementation=self.implementation)
        kind = neurons.get_kind(self.kind)
        extra = {k: get(k) for k in kind.parameters if k not in kwargs}
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


def _time_distributed(layer, x):
    """Applies `layer` to [T, B, ...] as one call over T*B rows."""
    steps, batch = x.shape[:2]
    y = layer(x.reshape((steps * batch,) + x.shape[2:]))
    return y.reshape((steps, batch) + y.shape[1:])


def _dense_spiking(layer: nnx.Linear, spiking: SpikingNeurons, x):
    """`layer` then `spiking` over [T, B, F]: the neuron kind's registered `dense` op (LIF: `neurons.dense_lif`,
    which owns the GEMM and, on CPU at long T, walks time in chunks; as one chunk, the same arithmetic as the
    layer over all T*B rows then the neuron, while the layer's [T, B, N] arrays are small), else the layer
    over all T*B rows, then the neuron."""
    neuron = spiking.neuron
    kind = neurons.get_kind(neuron.kind)
    if kind.dense is None:
        return spiking(_time_distributed(layer, x))
    values = spiking.values()
    params = {k: values.get(k, getattr(neuron, k)) for k in kind.parameters}
    x = x if layer.dtype is None else x.astype(layer.dtype)
    return kind.dense(x, layer.kernel[...], None if layer.bias is None else layer.bias[...], **params,
                      reset=neuron.reset, surrogate=neuron.surrogate, surrogate_params=dict(neuron.surrogate_params),
                      detach_reset=neuron.detach_reset, implementation=neuron.implementation,
                      recompute_chunk=neuron.recompute_chunk)


def _kernel_init(scale):
    return nnx.initializers.variance_scaling(scale, "fan_in", "truncated_normal")


class SpikingMLP(nnx.Module):
    """Dense spiking network: in_features -> hidden... -> num_classes, a `Neuron` after every layer."""

    def __init__(self, in_features: int, hidden: Sequence[int], num_classes: int, neuron: Neuron, *,
                 rngs: nnx.Rngs, dtype=jnp.float32, init_scale: float = 1.0, bias: bool = True):
        sizes = [in_features, *hidden, num_classes]
        init = _kernel_init(init_scale)
        self.layers = nnx.List([nnx.Linear(a, b, use_bias=bias, dtype=dtype, param_dtype=jnp.float32, rngs=rngs,
                                           kernel_init=init) for a, b in zip(sizes[:-1], sizes[1:])])
        self.spiking = nnx.List([SpikingNeurons(neuron, n) for n in sizes[1:]])
        self.neuron, self.dtype = neuron, dtype
        self.fan_out = tuple(sizes[1:]) + (0,)  # synapses driven by one spike of each spiking layer

    def __call__(self, x):
        x = x.reshape(x.shape[:2] + (-1,)).astype(self.dtype)
        spikes = [x]
        for layer, spiking in zip(self.layers, self.spiking):
            x = _dense_spiking(layer, spiking, x)
            spikes.append(x)
        return x, spikes

    def connections(self, spikes):
        """Each dense layer's (input [T, B, F_in], nonzero fan-out [F_in], all fan-out) from the spikes
        __call__ returns; for `readout.neurobench_ops`."""
        out = []
        for layer, x in zip(self.layers, spikes[:-1]):
            kernel = layer.kernel[...]
            out.append((x, jnp.sum(kernel != 0, axis=1), kernel.shape[1]))
        return out


class SpikingConvNet(nnx.Module):
    """conv 16c5 -> pool2 -> conv 32c3 -> pool2 -> dense 512 -> num_classes, LIF after every conv/dense.

    Input [T, B, P, H, W] (channels first, as the data pipeline stores it), computed in NHWC.
    """

    def __init__(self, frame_shape: Sequence[int], num_classes: int, neuron: Neuron, *, rngs: nnx.Rngs,
                 channels: Sequence[int] = (16, 32), kernels: Sequence[int] = (5, 3), hidden: int = 512,
                 dtype=jnp.float32, init_scale: float = 1.0, bias: bool = True):
        in_channels, height, width = frame_shape
        self.frame_shape = tuple(int(n) for n in frame_shape)
        init = _kernel_init(init_scale)
        convs, c = [], in_channels
        for out, k in zip(channels, kernels):
            convs.append(nnx.Conv(c, out, (k, k), padding="SAME", use_bias=bias, dtype=dtype,
                                  param_dtype=jnp.float32, kernel_init=init, rngs=rngs))
            c = out
            height, width = height // 2, width // 2
        self.convs = nnx.List(convs)
        flat = c * height * width
        self.dense = nnx.Linear(flat, hidden, use_bias=bias, dtype=dtype, param_dtype=jnp.float32, kernel_init=init,
                                rngs=rngs)
        self.out = nnx.Linear(hidden, num_classes, use_bias=bias, dtype=dtype, param_dtype=jnp.float32,
                              kernel_init=init, rngs=rngs)
        self.spiking = nnx.List([SpikingNeurons(neuron, n) for n in (*channels, hidden, num_classes)])
        self.neuron, self.dtype = neuron, dtype
        # a spike entering conv i drives k*k*out synapses (after a 2x2 average pool it reaches the next
        # conv through one pooled unit, so the same count holds); a dense input spike drives `hidden`
        fan = [kernels[0] ** 2 * channels[0]]
        fan += [kernels[i + 1] ** 2 * channels[i + 1] for i in range(len(channels) - 1)]
        fan += [hidden, num_classes, 0]
        self.fan_out = tuple(fan)

    def __call__(self, x):
        x = jnp.moveaxis(x, 2, -1).astype(self.dtype)  # [T, B, H, W, P]
        spikes = [x]
        for conv, spiking in zip(self.convs, self.spiking):
            x = spiking(_time_distributed(conv, x))
            spikes.append(x)
            x = _time_distributed(lambda y: nnx.avg_pool(y, (2, 2), strides=(2, 2)), x)
        x = x.reshape(x.shape[:2] + (-1,))
        for layer, spiking in zip((self.dense, self.out), self.spiking[len(self.convs):]):
            x = _dense_spiking(layer, spiking, x)
            spikes.append(x)
        return x, spikes

    def connections(self, spikes):
        """Each conv and dense layer's (input [T, B, ...] as the layer sees it, i.e. after the average pool,
        nonzero fan-out, all fan-out), from the spikes __call__ returns; for `readout.neurobench_ops`. A conv
        input's fan-out counts the output positions and channels it reaches, padded border taps excluded."""
        pool = lambda y: _time_distributed(lambda z: nnx.avg_pool(z, (2, 2), strides=(2, 2)), y)
        inputs = [spikes[0]] + [pool(s) for s in spikes[1:len(self.convs)]]
        out = []
        for conv, x in zip(self.convs, inputs):
            kernel = conv.kernel[...]
            out.append((x, _conv_fan_out(kernel != 0, x.shape[2:]), _conv_fan_out(jnp.ones_like(kernel), x.shape[2:])))
        flat = pool(spikes[len(self.convs)])
        flat = flat.reshape(flat.shape[:2] + (-1,))
        for layer, x in ((self.dense, flat), (self.out, spikes[-2])):
            kernel = layer.kernel[...]
            out.append((x, jnp.sum(kernel != 0, axis=1), kernel.shape[1]))
        return out


class SpikingRNN(nnx.Module):
    """Recurrent spiking network: in_features -> recurrent hidden... -> num_classes.

    Each hidden layer is `neurons.recurrent_lif`: I[t] = x[t] W_in + b + s[t-1] W_rec (W_in from the layer
    below as one matmul over all T*B rows, only W_rec inside the time loop); the output layer is dense with
    a plain `Neuron` (its spike counts feed the losses). LIF neurons only (kind="lif"). W_rec is initialised
    with `recurrent_scale` (variance scaling over fan-in, like the other kernels with `init_scale`)."""

    def __init__(self, in_features: int, hidden: Sequence[int], num_classes: int, neuron: Neuron, *,
                 rngs: nnx.Rngs, dtype=jnp.float32, init_scale: float = 1.0, bias: bool = True,
                 recurrent_scale: float = 1.0):
        if neuron.kind != "lif":
            raise ValueError(f"the recurrent model's neurons are LIF (kind='lif'), got kind={neuron.kind!r}")
        if not hidden:
            raise ValueError("the recurrent model needs at least one hidden layer, e.g. hidden=(128,)")
        init = _kernel_init(init_scale)
        linear = lambda a, b, use_bias, kernel_init: nnx.Linear(a, b, use_bias=use_bias, dtype=dtype, rngs=rngs,
                                                              param_dtype=jnp.float32, kernel_init=kernel_init)
        sizes = [in_features, *hidden]
        self.layers = nnx.List([linear(a, b, bias, init) for a, b in zip(sizes[:-1], sizes[1:])])
        self.recurrent = nnx.List([linear(n, n, False, _kernel_init(recurrent_scale)) for n in hidden])
        self.out = linear(hidden[-1], num_classes, bias, init)
        self.spiking = nnx.List([SpikingNeurons(neuron, n) for n in (*hidden, num_classes)])
        self.neuron, self.dtype = neuron, dtype
        # a hidden spike drives the next layer and, one step later, its own layer through W_rec
        self.fan_out = (hidden[0], *(n + m for n, m in zip(hidden, (*hidden[1:], num_classes))), 0)

    def __call__(self, x):
        x = x.reshape(x.shape[:2] + (-1,)).astype(self.dtype)
        spikes = [x]
        implementation = "reference" if self.neuron.implementation == "reference" else "auto"
        for layer, recurrent, spiking in zip(self.layers, self.recurrent, self.spiking):
            values = spiking.values()
            x = neurons.recurrent_lif(
                x, layer.kernel[...], recurrent.kernel[...], None if layer.bias is None else layer.bias[...],
                beta=values.get("beta", self.neuron.beta), threshold=values.get("threshold", self.neuron.threshold),
                reset=self.neuron.reset, surrogate=self.neuron.surrogate,
                surrogate_params=dict(self.neuron.surrogate_params), detach_reset=self.neuron.detach_reset,
                implementation=implementation)
            spikes.append(x)
        x = _dense_spiking(self.out, self.spiking[-1], x)
        spikes.append(x)
        return x, spikes

    def connections(self, spikes):
        """(input [T, B, F], nonzero fan-out [F], all fan-out) of every connection, for
        `readout.neurobench_ops`: each layer's W_in, its W_rec (driven by the spikes of the step before),
        and the output layer."""
        out = []
        for layer, recurrent, x, s in zip(self.layers, self.recurrent, spikes[:-2], spikes[1:-1]):
            for kernel, source in ((layer.kernel[...], x),
                                   (recurrent.kernel[...], jnp.concatenate([jnp.zeros_like(s[:1]), s[:-1]]))):
                out.append((source, jnp.sum(kernel != 0, axis=1), kernel.shape[1]))
        kernel = self.out.kernel[...]
        out.append((spikes[-2], jnp.sum(kernel != 0, axis=1), kernel.shape[1]))
        return out


def _conv_fan_out(kernel, frame):
    """[H, W, C_in]: how many (output position, output channel) taps of a stride-1 SAME convolution with
    `kernel` [kh, kw, C_in, C_out] each input position feeds (zero kernel entries excluded): the gradient of
    the sum of the outputs with respect to an all-ones input."""
    def total(u):
        y = jax.lax.conv_general_dilated(u, kernel.astype(jnp.float32), (1, 1), "SAME",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return jnp.sum(y)

    return jax.grad(total)(jnp.ones((1,) + tuple(frame), jnp.float32))[0]


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """A model by name: `make(frame_shape, num_classes, neuron, rngs=, hidden=, dtype=, init_scale=, bias=)`
    and `check(hidden, neuron_kind)` -> None or what the config must change (read by config validation)."""
    name: str
    make: Callable
    check: Callable[[tuple, str], str | None]
    doc: str = ""


def _mlp(frame_shape, num_classes, neuron, *, hidden, **kwargs):
    return SpikingMLP(math.prod(frame_shape), hidden, num_classes, neuron, **kwargs)


def _conv(frame_shape, num_classes, neuron, *, hidden, **kwargs):
    if len(frame_shape) != 3:
        raise ValueError(f"model 'conv' needs [P, H, W] frames, got frame shape {tuple(frame_shape)}")
    return SpikingConvNet(frame_shape, num_classes, neuron, **kwargs, **({"hidden": hidden[0]} if hidden else {}))


def _rnn(frame_shape, num_classes, neuron, *, hidden, **kwargs):
    return SpikingRNN(math.prod(frame_shape), hidden, num_classes, neuron, **kwargs)


MODELS = {
    "mlp": ModelEntry("mlp", _mlp, lambda hidden, kind: None, "dense F-hidden...-C"),
    "conv": ModelEntry("conv", _conv, lambda hidden, kind: None if len(hidden) == 1 else
                       f"model.hidden = {tuple(hidden)!r}: the conv model takes one dense width, e.g. (512,)",
                       "conv 16-32, avg pool, dense hidden-C"),
    "rnn": ModelEntry("rnn", _rnn, lambda hidden, kind: None if kind == "lif" and hidden else
                      f"model.name = 'rnn' needs model.neuron.kind = 'lif' (got {kind!r}) and at least one hidden "
                      f"layer (got {tuple(hidden)!r})", "recurrent hidden...-C"),
}


def build(name: str, frame_shape: Sequence[int], num_classes: int, neuron: Neuron, *, seed: int,
          hidden: Sequence[int] = (), dtype="float32", init_scale: float = 1.0, bias: bool = True) -> nnx.Module:
    """A model by name (`MODELS`: "mlp", "conv" or "rnn") for inputs [T, B, *frame_shape]; `bias=False` leaves
    out every bias (some neuromorphic chips have none)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {list(MODELS)}")
    return MODELS[name].make(frame_shape, num_classes, neuron, rngs=nnx.Rngs(seed), hidden=tuple(hidden),
                             dtype=jnp.dtype(dtype), init_scale=init_scale, bias=bias)


__all__ = ["MODELS", "ModelEntry", "Neuron", "SpikingNeurons", "SpikingMLP", "SpikingConvNet", "SpikingRNN", "build"]
