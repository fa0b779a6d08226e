"""The Flax NNX spiking networks (mlp, conv, rnn), computed layer by layer over the whole sequence.

Each layer applies one dense/conv to all T*B rows at once, then runs the LIF recurrence over T with
`spikejax.neurons`; a dense layer with LIF neurons is one `neurons.dense_lif` (which walks time in chunks
on CPU when the layer's [T, B, N] arrays are large).

Inputs are time-major [T, B, *frame] (0/1 spikes, any dtype). `model.outputs(x, reads)` returns
({"spikes": [T, B, C], "membrane": [T, B, C]}: what the output layer gives of `reads`, see
`neuron.output_layer`; [spikes of every layer, input first]) so that readouts can count spikes and
synaptic operations per layer; `model(x)` is (output spikes, layers) of a spiking output. The output
layer is the model's neuron (`output="spiking"`) or a non-spiking leaky integrator ("integrator"),
whose entry in the layers is zeros. Use functionally: `graphdef, params = nnx.split(model)`, then
`nnx.merge(graphdef, params).outputs(x, reads)` inside a jitted step.

Architectures (in the spirit of the SLAYER networks the paper built on):
  mlp   dense hidden... -> C          NMNIST 2312-512-10, N-TIDIGITS18 64-256-256-11, digits_events,
                                      timing_events 32-128-10
  conv  conv 16c5 -> pool2 -> conv 32c3 -> pool2 -> dense 512 -> C       DVS Gesture at 32x32x2
  rnn   recurrent hidden... -> C (neurons.recurrent_lif)                  SHD 700-256-20
"""
from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from spikejax import neurons
from spikejax.models.neuron import Neuron, SpikingNeurons, output_layer, output_neuron

READ_SPIKES = ("spikes",)


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


def spikes_of(model, x, **kwargs):
    """`model(x)`: (output spikes [T, B, C], layers) of `model.outputs(x, ("spikes",))`."""
    outputs, layers = model.outputs(x, READ_SPIKES, **kwargs)
    return outputs["spikes"], layers


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
    last one's `output`: "spiking" or "integrator")."""

    def __init__(self, in_features: int, hidden: Sequence[int], num_classes: int, neuron: Neuron, *,
                 rngs: nnx.Rngs, dtype=jnp.float32, init_scale: float = 1.0, bias: bool = True,
                 output: str = "spiking"):
        sizes = [in_features, *hidden, num_classes]
        init = _kernel_init(init_scale)
        self.layers = nnx.List([nnx.Linear(a, b, use_bias=bias, dtype=dtype, param_dtype=jnp.float32, rngs=rngs,
                                           kernel_init=init) for a, b in zip(sizes[:-1], sizes[1:])])
        self.spiking = _spiking_layers(neuron, sizes[1:], output)
        self.neuron, self.dtype, self.output = neuron, dtype, output
        self.fan_out = tuple(sizes[1:]) + (0,)  # synapses driven by one spike of each spiking layer

    def __call__(self, x):
        return spikes_of(self, x)

    def outputs(self, x, reads=READ_SPIKES):
        x = x.reshape(x.shape[:2] + (-1,)).astype(self.dtype)
        spikes = [x]
        for layer, spiking in zip(self.layers[:-1], self.spiking[:-1]):
            x = _dense_spiking(layer, spiking, x)
            spikes.append(x)
        outputs, last = _dense_output(self.layers[-1], self.spiking[-1], x, self.output, reads)
        return outputs, spikes + [last]

    def connections(self, spikes):
        """Each dense layer's (input [T, B, F_in], nonzero fan-out [F_in], all fan-out) from the spikes
        __call__ returns; for `readout.neurobench_ops`."""
        return [dense_connection(x, layer.kernel[...]) for layer, x in zip(self.layers, spikes[:-1])]


class SpikingConvNet(nnx.Module):
    """conv 16c5 -> pool2 -> conv 32c3 -> pool2 -> dense 512 -> num_classes, LIF after every conv/dense.

    Input [T, B, P, H, W] (channels first, as the data pipeline stores it), computed in NHWC.
    """

    def __init__(self, frame_shape: Sequence[int], num_classes: int, neuron: Neuron, *, rngs: nnx.Rngs,
                 channels: Sequence[int] = (16, 32), kernels: Sequence[int] = (5, 3), hidden: int = 512,
                 dtype=jnp.float32, init_scale: float = 1.0, bias: bool = True, output: str = "spiking"):
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
        self.spiking = _spiking_layers(neuron, (*channels, hidden, num_classes), output)
        self.neuron, self.dtype, self.output = neuron, dtype, output
        # a spike entering conv i drives k*k*out synapses (after a 2x2 average pool it reaches the next
        # conv through one pooled unit, so the same count holds); a dense input spike drives `hidden`
        fan = [kernels[0] ** 2 * channels[0]]
        fan += [kernels[i + 1] ** 2 * channels[i + 1] for i in range(len(channels) - 1)]
        fan += [hidden, num_classes, 0]
        self.fan_out = tuple(fan)

    def __call__(self, x):
        return spikes_of(self, x)

    def outputs(self, x, reads=READ_SPIKES):
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
        dense = ((self.dense, flat), (self.out, spikes[-2]))
        return out + [dense_connection(x, layer.kernel[...]) for layer, x in dense]


class SpikingRNN(nnx.Module):
    """Recurrent spiking network: in_features -> recurrent hidden... -> num_classes.

    Each hidden layer is `neurons.recurrent_lif`: I[t] = x[t] W_in + b + s[t-1] W_rec (W_in from the layer
    below as one matmul over all T*B rows, only W_rec inside the time loop); the output layer is dense with
    a plain `Neuron` or the integrator (`output`). LIF neurons only (kind="lif"). W_rec is initialised
    with `recurrent_scale` (variance scaling over fan-in, like the other kernels with `init_scale`)."""

    def __init__(self, in_features: int, hidden: Sequence[int], num_classes: int, neuron: Neuron, *,
                 rngs: nnx.Rngs, dtype=jnp.float32, init_scale: float = 1.0, bias: bool = True,
                 recurrent_scale: float = 1.0, output: str = "spiking"):
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
        # a hidden spike drives the next layer and, one step later, its own layer through W_rec
        self.fan_out = (hidden[0], *(n + m for n, m in zip(hidden, (*hidden[1:], num_classes))), 0)

    def __call__(self, x):
        return spikes_of(self, x)

    def outputs(self, x, reads=READ_SPIKES):
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

