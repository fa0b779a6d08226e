"""The Flax NNX spiking networks (mlp, conv, rnn), computed layer by layer over the whole sequence.

Each layer applies one dense/conv to all T*B rows at once, then runs the LIF recurrence over T with
`spikejax.neurons`; a dense layer with LIF neurons is one `neurons.dense_lif` (which walks time in chunks
on CPU when the layer's [T, B, N] arrays are large).

Inputs are time-major [T, B, *frame] (0/1 spikes, any dtype): time first. A batch-major [B, T, ...] array
cannot be told apart when B == T; a model built with `time_steps=T` (as `build.model` does from
data.time_bins) refuses any other length of axis 0, and every model refuses a frame of the wrong size.

  model(x)                              output spikes [T, B, C] (a spiking output layer)
  model(x, return_layers=True)          (output spikes, [spikes of every layer, input first])
  model.outputs(x, reads)               ({"spikes": [T, B, C], "membrane": [T, B, C]}: what the output
                                        layer gives of `reads`, see `neuron.output_layer`; the layers)

The layers let readouts count spikes and synaptic operations per layer. The output layer is the model's
neuron (`output="spiking"`) or a non-spiking leaky integrator ("integrator", membrane only: `model(x)`
raises, read `outputs(x, ("membrane",))`), whose entry in the layers is zeros. Use functionally:
`graphdef, params = nnx.split(model)`, then `nnx.merge(graphdef, params).outputs(x, reads)` inside a
jitted step.

Architectures (in the spirit of the SLAYER networks the paper built on):
  mlp   dense hidden... -> C          NMNIST 2312-512-10, N-TIDIGITS18 64-256-256-11, digits_events,
                                      timing_events 32-128-10
  conv  conv 16c5 -> pool2 -> conv 32c3 -> pool2 -> dense 512 -> C       DVS Gesture at 32x32x2
  rnn   recurrent hidden... -> C (neurons.recurrent_lif)                  SHD 700-256-20
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from spikejax import neurons
from spikejax.models import replica_conv
from spikejax.models.neuron import Neuron, SpikingNeurons, output_layer, output_neuron

READ_SPIKES = ("spikes",)
# variance scale of the fan-in initialisation of every kernel (`nnx.initializers.variance_scaling(scale,
# "fan_in", "truncated_normal")`: weights of variance scale / fan_in). Event inputs are sparse (1-13% of the
# (step, feature) cells active in the configured binnings): at 1.0 no configured network's output layer fired
# on its dataset's input, at 6.0 every one does (tests/test_default_firing.py)
DEFAULT_INIT_SCALE = 6.0


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


def _dense_output(layer: nnx.Linear, spiking: SpikingNeurons, x, output: str, reads):
    """The output layer (dense, then `output_layer`): spikes only by the fused dense op, as every hidden layer;
    with the membrane or an integrator, the layer over all T*B rows, then the neurons."""
    if output == "spiking" and "membrane" not in reads:
        spikes = _dense_spiking(layer, spiking, x)
        return {"spikes": spikes}, spikes
    return output_layer(spiking, _time_distributed(layer, x), output, reads)


def spikes_of(model, x, return_layers: bool = False, **kwargs):
    """`model(x)`: the output spikes [T, B, C] of `model.outputs(x, ("spikes",))`, with the spikes of every
    layer (`(spikes, layers)`) when `return_layers`."""
    outputs, layers = model.outputs(x, READ_SPIKES, **kwargs)
    return (outputs["spikes"], layers) if return_layers else outputs["spikes"]


def check_input(x, frame_size: int, time_steps: int | None, frame: str):
    """x as an array [T, B, *frame] with prod(frame) = `frame_size` and, when `time_steps` is set, T =
    `time_steps`; ValueError naming the expected and the given shape otherwise (at trace time: shapes are
    static, so it costs the compiled step nothing). `frame`: the expected frame in words, e.g. "[2, 34, 34]"."""
    if isinstance(x, (tuple, list, dict)):
        raise ValueError(f"model input must be one time-major array [T, B, *frame] = [T, B, {frame[1:-1]}], "
                         f"got a {type(x).__name__}")
    x = jnp.asarray(x)
    if x.ndim < 3 or math.prod(x.shape[2:]) != frame_size:
        raise ValueError(f"model input must be time-major [T, B, *frame] with frame {frame} ({frame_size} "
                         f"features per step), got shape {tuple(x.shape)}")
    if time_steps is not None and x.shape[0] != time_steps:
        hint = (f"; axis 1 has {time_steps}: is it batch-major [B, T, ...]? transpose it, e.g. "
                "jnp.swapaxes(x, 0, 1)" if x.shape[1] == time_steps else "")
        raise ValueError(f"model input has T = {x.shape[0]} steps (axis 0 of shape {tuple(x.shape)}), but the "
                         f"model was built for time_steps = {time_steps} (data.time_bins); inputs are time-major "
                         f"[T, B, ...]{hint}")
    return x


def _spiking_layers(neuron: Neuron, sizes, output: str):
    """One SpikingNeurons per layer of `sizes` (the last is the output layer, `output_neuron`)."""
    return nnx.List([SpikingNeurons(neuron, n) for n in sizes[:-1]]
                    + [SpikingNeurons(output_neuron(neuron, output), sizes[-1])])


def dense_connection(x, kernel):
    """One dense connection for `readout.neurobench_ops`: (its input spikes x [T, B, F_in], the nonzero
    fan-out of each input [F_in], the full fan-out F_out) for a kernel [F_in, F_out]."""
    return x, jnp.sum(kernel != 0, axis=1), kernel.shape[1]


def _kernel_init(scale):
    return nnx.initializers.variance_scaling(scale, "fan_in", "truncated_normal")


class SpikingMLP(nnx.Module):
    """Dense spiking network: in_features -> hidden... -> num_classes, a `Neuron` after every layer (the
    last one's `output`: "spiking" or "integrator"). x [T, B, *frame] (prod(frame) = in_features) ->
    `model(x)` output spikes [T, B, num_classes]; `time_steps`: the T every input must have (None: any)."""

    def __init__(self, in_features: int, hidden: Sequence[int], num_classes: int, neuron: Neuron, *,
                 rngs: nnx.Rngs, dtype=jnp.float32, init_scale: float = DEFAULT_INIT_SCALE, bias: bool = True,
                 output: str = "spiking", time_steps: int | None = None):
        sizes = [in_features, *hidden, num_classes]
        init = _kernel_init(init_scale)
        self.layers = nnx.List([nnx.Linear(a, b, use_bias=bias, dtype=dtype, param_dtype=jnp.float32, rngs=rngs,
                                           kernel_init=init) for a, b in zip(sizes[:-1], sizes[1:])])
        self.spiking = _spiking_layers(neuron, sizes[1:], output)
        self.neuron, self.dtype, self.output = neuron, dtype, output
        self.in_features, self.time_steps = in_features, time_steps
        self.fan_out = tuple(sizes[1:]) + (0,)  # synapses driven by one spike of each spiking layer

    def __call__(self, x, *, return_layers: bool = False):
        return spikes_of(self, x, return_layers)

    def outputs(self, x, reads=READ_SPIKES):
        x = check_input(x, self.in_features, self.time_steps, f"[{self.in_features}]")
        x = x.reshape(x.shape[:2] + (-1,)).astype(self.dtype)
        spikes = [x]
        for layer, spiking in zip(self.layers[:-1], self.spiking[:-1]):
            x = _dense_spiking(layer, spiking, x)
            spikes.append(x)
        outputs, last = _dense_output(self.layers[-1], self.spiking[-1], x, self.output, reads)
        return outputs, spikes + [last]

    def connections(self, spikes):
        """Each dense layer's (input [T, B, F_in], nonzero fan-out [F_in], all fan-out) from the layers
        `outputs` returns; for `readout.neurobench_ops`."""
        return [dense_connection(x, layer.kernel[...]) for layer, x in zip(self.layers, spikes[:-1])]


class SpikingConvNet(nnx.Module):
    """conv 16c5 -> pool2 -> conv 32c3 -> pool2 -> dense 512 -> num_classes, LIF after every conv/dense.

    Input [T, B, P, H, W] (time-major, channels first, as the data pipeline stores it), computed in NHWC;
    `model(x)` output spikes [T, B, num_classes]; `time_steps`: the T every input must have (None: any).
    """

    def __init__(self, frame_shape: Sequence[int], num_classes: int, neuron: Neuron, *, rngs: nnx.Rngs,
                 channels: Sequence[int] = (16, 32), kernels: Sequence[int] = (5, 3), hidden: int = 512,
                 dtype=jnp.float32, init_scale: float = DEFAULT_INIT_SCALE, bias: bool = True,
                 output: str = "spiking", time_steps: int | None = None):
        in_channels, height, width = frame_shape
        self.frame_shape = tuple(int(n) for n in frame_shape)
        init = _kernel_init(init_scale)
        convs, c = [], in_channels
        for out, k in zip(channels, kernels):
            # replica_conv: lax's convolution, but R plain ones (not one grouped) when the replica sweep
            # vmaps this model over replicas
            convs.append(nnx.Conv(c, out, (k, k), padding="SAME", use_bias=bias, dtype=dtype,
                                  param_dtype=jnp.float32, kernel_init=init, rngs=rngs,
                                  conv_general_dilated=replica_conv.conv_general_dilated))
            c = out
            height, width = height // 2, width // 2
        self.convs = nnx.List(convs)
        flat = c * height * width
        self.dense = nnx.Linear(flat, hidden, use_bias=bias, dtype=dtype, param_dtype=jnp.float32, kernel_init=init,
                                rngs=rngs)
        self.out = nnx.Linear(hidden, num_classes, use_bias=bias, dtype=dtype, param_dtype=jnp.float32,
                              kernel_init=init, rngs=rngs)
        self.spiking = _spiking_layers(neuron, (*channels, hidden, num_classes), output)
        self.neuron, self.dtype, self.output, self.time_steps = neuron, dtype, output, time_steps
        # a spike entering conv i drives k*k*out synapses (after a 2x2 average pool it reaches the next
        # conv through one pooled unit, so the same count holds); a dense input spike drives `hidden`
        fan = [kernels[0] ** 2 * channels[0]]
        fan += [kernels[i + 1] ** 2 * channels[i + 1] for i in range(len(channels) - 1)]
        fan += [hidden, num_classes, 0]
        self.fan_out = tuple(fan)

    def __call__(self, x, *, return_layers: bool = False):
        return spikes_of(self, x, return_layers)

    def outputs(self, x, reads=READ_SPIKES):
        x = check_input(x, math.prod(self.frame_shape), self.time_steps, str(list(self.frame_shape)))
        if tuple(x.shape[2:]) != self.frame_shape:
            raise ValueError(f"model input must be time-major [T, B, P, H, W] with frame {list(self.frame_shape)}, "
                             f"got shape {tuple(x.shape)}")
        x = jnp.moveaxis(x, 2, -1).astype(self.dtype)  # [T, B, H, W, P]
        spikes = [x]
        for conv, spiking in zip(self.convs, self.spiking):
            x = spiking(_time_distributed(conv, x))
            spikes.append(x)
            x = _time_distributed(lambda y: nnx.avg_pool(y, (2, 2), strides=(2, 2)), x)
        x = _dense_spiking(self.dense, self.spiking[len(self.convs)], x.reshape(x.shape[:2] + (-1,)))
        spikes.append(x)
        outputs, last = _dense_output(self.out, self.spiking[-1], x, self.output, reads)
        return outputs, spikes + [last]

    def connections(self, spikes):
        """Each conv and dense layer's (input [T, B, ...] as the layer sees it, i.e. after the average pool,
        nonzero fan-out, all fan-out), from the layers `outputs` returns; for `readout.neurobench_ops`. A conv
        input's fan-out counts the output positions and channels it reaches, padded border taps excluded."""
        pool = lambda y: _time_distributed(lambda z: nnx.avg_pool(z, (2, 2), strides=(2, 2)), y)
        inputs = [spikes[0]] + [pool(s) for s in spikes[1:len(self.convs)]]
        out = []
        for conv, x in zip(self.convs, inputs):
            kernel = conv.kernel[...]
            out.append((x, _conv_fan_out(kernel != 0, x.shape[2:]), _conv_fan_out(jnp.ones_like(kernel), x.shape[2:])))
        flat = pool(spikes[len(self.convs)])
        flat = flat.reshape(flat.shape[:2] + (-1,))
        dense = ((self.dense, flat), (self.out, spikes[-2]))
        return out + [dense_connection(x, layer.kernel[...]) for layer, x in dense]


class SpikingRNN(nnx.Module):
    """Recurrent spiking network: in_features -> recurrent hidden... -> num_classes.

    Each hidden layer is `neurons.recurrent_lif`: I[t] = x[t] W_in + b + s[t-1] W_rec (W_in from the layer
    below as one matmul over all T*B rows, only W_rec inside the time loop); the output layer is dense with
    a plain `Neuron` or the integrator (`output`). LIF neurons only (kind="lif"). W_rec is initialised
    with `recurrent_scale` (variance scaling over fan-in, like the other kernels with `init_scale`).
    x [T, B, *frame] (time-major, prod(frame) = in_features) -> `model(x)` output spikes [T, B, num_classes];
    `time_steps`: the T every input must have (None: any)."""

    def __init__(self, in_features: int, hidden: Sequence[int], num_classes: int, neuron: Neuron, *,
                 rngs: nnx.Rngs, dtype=jnp.float32, init_scale: float = DEFAULT_INIT_SCALE, bias: bool = True,
                 recurrent_scale: float = 1.0, output: str = "spiking", time_steps: int | None = None):
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
        self.spiking = _spiking_layers(neuron, (*hidden, num_classes), output)
        self.neuron, self.dtype, self.output = neuron, dtype, output
        self.in_features, self.time_steps = in_features, time_steps
        # a hidden spike drives the next layer and, one step later, its own layer through W_rec
        self.fan_out = (hidden[0], *(n + m for n, m in zip(hidden, (*hidden[1:], num_classes))), 0)

    def __call__(self, x, *, return_layers: bool = False):
        return spikes_of(self, x, return_layers)

    def outputs(self, x, reads=READ_SPIKES):
        x = check_input(x, self.in_features, self.time_steps, f"[{self.in_features}]")
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
        outputs, last = _dense_output(self.out, self.spiking[-1], x, self.output, reads)
        return outputs, spikes + [last]

    def connections(self, spikes):
        """(input [T, B, F], nonzero fan-out [F], all fan-out) of every connection, for
        `readout.neurobench_ops`: each layer's W_in, its W_rec (driven by the spikes of the step before),
        and the output layer."""
        out = []
        for layer, recurrent, x, s in zip(self.layers, self.recurrent, spikes[:-2], spikes[1:-1]):
            out.append(dense_connection(x, layer.kernel[...]))
            out.append(dense_connection(jnp.concatenate([jnp.zeros_like(s[:1]), s[:-1]]), recurrent.kernel[...]))
        return out + [dense_connection(spikes[-2], self.out.kernel[...])]


def _conv_fan_out(kernel, frame):
    """[H, W, C_in]: how many (output position, output channel) taps of a stride-1 SAME convolution with
    `kernel` [kh, kw, C_in, C_out] each input position feeds (zero kernel entries excluded): the gradient of
    the sum of the outputs with respect to an all-ones input."""
    def total(u):
        y = jax.lax.conv_general_dilated(u, kernel.astype(jnp.float32), (1, 1), "SAME",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return jnp.sum(y)

    return jax.grad(total)(jnp.ones((1,) + tuple(frame), jnp.float32))[0]

