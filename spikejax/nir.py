"""NIR (the Neuromorphic Intermediate Representation, package `nir` 1.0.x) export and import.

  graph = to_nir(model, dt=1e-4)            a SpikingMLP / SpikingConvNet -> nir.NIRGraph
  nir.write("model.nir", graph)             the HDF5 file snnTorch, Norse, spyx, Sinabs, Rockpool, lava-dl read
  net = from_nir(graph_or_path, dt=1e-4)    any supported graph -> NIRNetwork
  out, layers = net(x)                      x [T, B, *input_type] -> output spikes [T, B, ...], and the spikes
                                            of the input and of every neuron node, like spikejax's models

NIR's neurons are continuous-time; its importers discretise them with forward Euler at a step dt:
  LIF      tau dv/dt = (v_leak - v) + r I        ->  v[t] = (1 - dt/tau) v[t-1] + (dt/tau) (v_leak + r I[t])
  CubaLIF  tau_syn di/dt = -i + w_in I            ->  i[t] = (1 - dt/tau_syn) i[t-1] + (dt/tau_syn) w_in I[t]
           tau_mem dv/dt = (v_leak - v) + r i     ->  v[t] = (1 - dt/tau_mem) v[t-1] + (dt/tau_mem) (v_leak + r i[t])
  IF       dv/dt = r I                            ->  v[t] = v[t-1] + dt r I[t]
  spike    s[t] = H(v[t] - v_threshold), then v is set to v_reset
spikejax's LIF (`neurons.lif`) is v[t] = beta v[t-1] + I[t] with s = H(v - threshold). Export therefore
writes, per spiking layer:
  LIF      tau = dt / (1 - beta), r = 1, v_leak = 0, v_threshold = threshold, v_reset = 0, and folds the
           gain tau/dt = 1/(1 - beta) into the weights and bias feeding it (Norse ignores r; this form is
           read the same everywhere). Not -dt/ln(beta): importers use Euler, not the exponential.
  CubaLIF  tau_syn = dt/(1 - alpha), w_in = tau_syn/dt, tau_mem = dt/(1 - beta), r = tau_mem/dt
  beta = 1 IF with r = 1/dt
and imports the inverse (beta = 1 - dt/tau, input gain dt r / tau, and dt v_leak / tau as a constant
current). NIR resets to v_reset: that is spikejax's `reset="zero"` only when v_reset = 0.

Learned neuron parameters (`model.neuron.learn_*`, per feature / conv channel or per layer) are written per
neuron: the node's arrays vary, and each neuron's gain is folded into its own row (output channel) of the
weights and bias. The recurrent model is not exported (NIR writes recurrence as a cycle).

Layout: NIR is channels-first and per sample. Export turns conv kernels HWIO -> OIHW, permutes the rows
of the dense kernel after the flatten from spikejax's (h, w, c) order to NIR's (c, h, w), and writes the
2x2 average pool as a SumPool2d with the 1/4 folded into the next layer (AvgPool2d is read by snnTorch
only). The MLP's input is declared flat (input_type [F]): feed it [T, B, F]. NIR's `Flatten(start_dim=0)`
means the first dimension of a sample; snnTorch, Norse and nirtorch import it as `torch.nn.Flatten(0)`,
which also flattens the batch: give those frameworks one sample at a time, or replace the module.

Refused, with the node named: a subtractive reset on export (NIR has none; train with
`model.neuron.reset="zero"`, or pass `approximate=True` to accept the mismatch), a v_reset other than 0, a
node type other than Input, Output, Affine, Linear, Conv2d, SumPool2d, AvgPool2d, Flatten, LIF, CubaLIF,
IF, a recurrent edge, and dt > tau (a decay outside [0, 1]).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from spikejax import neurons

SUPPORTED = ("Input", "Output", "Affine", "Linear", "Conv2d", "SumPool2d", "AvgPool2d", "Flatten", "LIF",
             "CubaLIF", "IF")
DEFAULT_DT = 1e-4  # snnTorch's importer assumes this step


class NIRError(ValueError):
    """A graph or model that spikejax cannot express in (or run from) NIR exactly."""


def _nir():
    try:
        import nir
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("spikejax.nir needs the `nir` package: pip install 'spikejax[nir]'") from None
    return nir


# ---------------------------------------------------------------------------------------------------------
# Export


def _neuron_values(neuron, spiking) -> dict:
    """{beta, threshold, alpha}: per-feature float32 arrays [features] or scalars, the learned ones read from
    the layer's `SpikingNeurons`."""
    values = {k: np.float64(getattr(neuron, k)) for k in ("beta", "threshold", "alpha")}
    values.update({k: _array(v).astype(np.float64) for k, v in spiking.values().items()})
    return values


def _neuron_node(neuron, values: dict, shape: tuple[int, ...], dt: float):
    """(the NIR node of a spikejax `models.Neuron` over `shape` (features first: [F] or [C, H, W]) with
    parameter `values` (scalars or per-feature [F]), the gain [F] to fold into its input weights). The time
    constants are computed in float64 and stored as float32; the gain is float32, so that the folded weights
    are the float32 products W * gain, as importers would form them."""
    nir = _nir()

    def full(v):
        v = np.asarray(v, np.float32)
        return np.broadcast_to(v.reshape(v.shape + (1,) * (len(shape) - 1)) if v.ndim else v, shape).copy()

    features = shape[0]
    beta, threshold, alpha = (np.asarray(values[k], np.float64) for k in ("beta", "threshold", "alpha"))
    ones = np.ones(features, np.float32)
    if neuron.kind == "cuba_lif":
        if np.any(alpha >= 1.0) or np.any(beta >= 1.0):
            raise NIRError(f"CubaLIF with alpha = {alpha.max()}, beta = {beta.max()}: NIR's CubaLIF needs finite "
                           "time constants (alpha, beta < 1)")
        tau_syn, tau_mem = dt / (1.0 - alpha), dt / (1.0 - beta)
        return nir.CubaLIF(tau_syn=full(tau_syn), tau_mem=full(tau_mem), r=full(tau_mem / dt), v_leak=full(0.0),
                           v_threshold=full(threshold), v_reset=full(0.0), w_in=full(tau_syn / dt)), ones
    if np.all(beta >= 1.0):
        return nir.IF(r=full(1.0 / dt), v_threshold=full(threshold), v_reset=full(0.0)), ones
    if np.any(beta >= 1.0):
        raise NIRError("a layer whose learned beta reaches 1 in some neurons and not in others has no NIR node "
                       "(LIF needs beta < 1, IF beta = 1)")
    tau = dt / (1.0 - beta)
    return nir.LIF(tau=full(tau), r=full(1.0), v_leak=full(0.0), v_threshold=full(threshold),
                   v_reset=full(0.0)), np.broadcast_to(tau / dt, (features,)).astype(np.float32)


def _array(x) -> np.ndarray:
    """A flax Variable's (or an array's) value as float32 numpy."""
    value = x.get_value() if hasattr(x, "get_value") else getattr(x, "value", x)
    return np.asarray(jax.device_get(value), np.float32)


def to_nir(model, *, dt: float = DEFAULT_DT, approximate: bool = False):
    """The NIR graph of a spikejax SpikingMLP or SpikingConvNet (see the module docstring for the mapping).

    `approximate=True` exports a subtractive-reset model with NIR's reset to 0, which other frameworks
    then run differently (10-15% of spikes differed when measured); without it that model is refused."""
    from spikejax import models

    nir = _nir()
    if not dt > 0:
        raise NIRError(f"dt must be > 0, got {dt}")
    neuron = model.neuron
    if neuron.reset != "zero" and not approximate:
        raise NIRError("NIR has no subtractive reset (its neurons reset to v_reset); this model uses "
                       f"reset={neuron.reset!r}. Train with model.neuron.reset='zero' to export exactly, or pass "
                       "approximate=True to export it with a reset to 0 anyway")
    nodes, edges = {}, []

    def add(name, node, previous):
        nodes[name] = node
        edges.append((previous, name))
        return name

    if isinstance(model, models.SpikingMLP):
        kernels = [_array(layer.kernel) for layer in model.layers]
        nodes["input"] = nir.Input(input_type=np.array([kernels[0].shape[0]]))
        previous = "input"
        for i, (layer, spiking) in enumerate(zip(model.layers, model.spiking)):
            kernel, bias = kernels[i], _array(layer.bias) if layer.bias is not None else None
            node, gain = _neuron_node(neuron, _neuron_values(neuron, spiking), (kernel.shape[1],), dt)
            previous = add(f"linear{i}", _dense(kernel.T * gain[:, None], None if bias is None else bias * gain),
                           previous)
            previous = add(f"{type(node).__name__.lower()}{i}", node, previous)
        output = kernels[-1].shape[1]
    elif isinstance(model, models.SpikingConvNet):
        previous, output = _conv_graph(model, neuron, dt, nodes, edges, add)
    elif isinstance(model, models.SpikingRNN):
        raise NIRError("to_nir does not export the recurrent model yet (SpikingRNN: NIR writes recurrence as a "
                       "cycle through a Linear node, and spikejax's importer runs feed-forward graphs only)")
    else:
        raise NIRError(f"to_nir exports SpikingMLP and SpikingConvNet models, got {type(model).__name__}")
    add("output", nir.Output(output_type=np.array([output])), previous)
    return nir.NIRGraph(nodes=nodes, edges=edges)


def _dense(weight: np.ndarray, bias: np.ndarray | None):
    nir = _nir()
    weight = weight.astype(np.float32)
    return nir.Linear(weight=weight) if bias is None else nir.Affine(weight=weight, bias=bias.astype(np.float32))


def _conv_graph(model, neuron, dt, nodes, edges, add):
    nir = _nir()
    channels, height, width = model.frame_shape
    nodes["input"] = nir.Input(input_type=np.array([channels, height, width]))
    previous, scale = "input", 1.0
    for i, (conv, spiking) in enumerate(zip(model.convs, model.spiking)):
        kernel = _array(conv.kernel)  # [kh, kw, in, out]
        bias = _array(conv.bias) if conv.bias is not None else np.zeros(kernel.shape[-1], np.float32)
        out = kernel.shape[-1]
        node, gain = _neuron_node(neuron, _neuron_values(neuron, spiking), (out, height, width), dt)
        weight = (np.transpose(kernel, (3, 2, 0, 1)) * (gain * scale)[:, None, None, None]).astype(np.float32)  # OIHW
        pad = ((kernel.shape[0] - 1) // 2, (kernel.shape[1] - 1) // 2)
        bias = (bias * gain).astype(np.float32)
        previous = add(f"conv{i}", nir.Conv2d(input_shape=(height, width), weight=weight, stride=(1, 1),
                                              padding=pad, dilation=(1, 1), groups=1, bias=bias), previous)
        previous = add(f"{type(node).__name__.lower()}{i}", node, previous)
        previous = add(f"pool{i}", nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                                                 padding=np.array([0, 0])), previous)
        scale = 0.25  # the average pool's 1/4, folded into the next layer
        channels, height, width = out, height // 2, width // 2
    previous = add("flatten", nir.Flatten(input_type={"input": np.array([channels, height, width])}, start_dim=0,
                                          end_dim=-1), previous)
    dense = _array(model.dense.kernel)  # rows in spikejax's (h, w, c) order
    dense = dense.reshape(height, width, channels, -1).transpose(2, 0, 1, 3).reshape(channels * height * width, -1)
    spiking = model.spiking[len(model.convs):]
    for i, (kernel, layer) in enumerate(((dense * scale, model.dense), (_array(model.out.kernel), model.out))):
        bias = _array(layer.bias) if layer.bias is not None else None
        node, gain = _neuron_node(neuron, _neuron_values(neuron, spiking[i]), (kernel.shape[1],), dt)
        previous = add(f"linear{i}", _dense(kernel.T * gain[:, None], None if bias is None else bias * gain),
                       previous)
        previous = add(f"{type(node).__name__.lower()}{len(model.convs) + i}", node, previous)
    return previous, kernel.shape[1]


# ---------------------------------------------------------------------------------------------------------
# Import


def _order(nodes: dict, edges: Sequence[tuple[str, str]]) -> list[str]:
    """Topological order of the graph's nodes; NIRError naming a node on a cycle (a recurrent edge)."""
    incoming = {name: [] for name in nodes}
    for source, target in edges:
        for end in (source, target):
            if end not in nodes:
                raise NIRError(f"edge ({source!r}, {target!r}) names {end!r}, which is not a node of the graph")
        incoming[target].append(source)
    order, state = [], {}

    def visit(name, path):
        if state.get(name) == "done":
            return
        if state.get(name) == "active":
            raise NIRError(f"node {name!r} is on a recurrent edge ({' -> '.join(path + [name])}); spikejax runs "
                           "feed-forward NIR graphs only")
        state[name] = "active"
        for source in incoming[name]:
            visit(source, path + [name])
        state[name] = "done"
        order.append(name)

    for name in nodes:
        visit(name, [])
    return order


def _pair(value, name: str) -> tuple[int, int]:
    v = np.atleast_1d(np.asarray(value)).astype(int).tolist()
    if len(v) == 1:
        v = v * 2
    if len(v) != 2:
        raise NIRError(f"node {name!r}: expected one or two values, got {value!r}")
    return int(v[0]), int(v[1])


def _padding(value, name: str, kernel: tuple[int, int], dilation: tuple[int, int]):
    if isinstance(value, str):
        if value.lower() == "valid":
            return [(0, 0), (0, 0)]
        if value.lower() == "same":
            return [((k - 1) * d // 2, (k - 1) * d - (k - 1) * d // 2) for k, d in zip(kernel, dilation)]
        raise NIRError(f"node {name!r}: unknown padding {value!r}")
    p = _pair(value, name)
    return [(p[0], p[0]), (p[1], p[1])]


def _decay(tau, dt: float, name: str, field: str) -> np.ndarray:
    tau = np.asarray(tau, np.float64)
    if np.any(tau < dt):
        raise NIRError(f"node {name!r}: {field} = {tau.min():g} is shorter than dt = {dt:g}, so the Euler decay "
                       f"1 - dt/{field} is negative; import with a smaller dt")
    return 1.0 - dt / tau


def _scalar_or_array(x: np.ndarray):
    """A Python float when every element is equal (spikejax's fast paths), else the float32 array."""
    x = np.asarray(x, np.float32)
    return float(x.ravel()[0]) if x.size and np.all(x == x.ravel()[0]) else jnp.asarray(x)


class NIRNetwork:
    """A NIR graph, runnable on time-major input: `out, layers = net(x)` with x [T, B, *input_type]; out is
    the Output node's value [T, B, ...]; layers are the input and each neuron node's spikes, in order.
    `fan_out` is None (NIR graphs need not be chains). A pure function of x: jit it freely."""

    def __init__(self, graph, dt: float):
        self.graph, self.dt = graph, float(dt)
        nodes = dict(graph.nodes)
        for name, node in nodes.items():
            kind = type(node).__name__
            if kind not in SUPPORTED:
                raise NIRError(f"node {name!r} has type {kind}, which spikejax cannot run (supported: "
                               f"{', '.join(SUPPORTED)})")
            for field in ("tau", "tau_mem", "tau_syn"):
                if kind in ("LIF", "CubaLIF") and hasattr(node, field):
                    _decay(getattr(node, field), dt, name, field)
            v_reset = getattr(node, "v_reset", None)
            if v_reset is not None and np.any(np.asarray(v_reset) != 0):
                raise NIRError(f"node {name!r} resets to v_reset = {np.asarray(v_reset).ravel()[0]:g}; spikejax's "
                               "reset='zero' resets to 0 only")
        self.order = _order(nodes, graph.edges)
        self.nodes = nodes
        self.inputs = {name: [s for s, t in graph.edges if t == name] for name in nodes}
        inputs = [n for n in self.order if type(nodes[n]).__name__ == "Input"]
        outputs = [n for n in self.order if type(nodes[n]).__name__ == "Output"]
        if len(inputs) != 1 or len(outputs) != 1:
            raise NIRError(f"spikejax runs graphs with one Input and one Output node, got inputs {inputs} and "
                           f"outputs {outputs}")
        self.input_name, self.output_name = inputs[0], outputs[0]
        for name in self.order:
            if name != self.input_name and not self.inputs[name]:
                raise NIRError(f"node {name!r} has no incoming edge")
        self.fan_out = None

    def __call__(self, x):
        x = jnp.asarray(x)
        values, layers = {}, [x]
        for name in self.order:
            node = self.nodes[name]
            if name == self.input_name:
                values[name] = x
                continue
            sources = self.inputs[name]
            value = values[sources[0]]
            for source in sources[1:]:
                value = value + values[source]
            values[name] = self._apply(name, node, value)
            if type(node).__name__ in ("LIF", "CubaLIF", "IF"):
                layers.append(values[name])
        return values[self.output_name], layers

    def _apply(self, name, node, x):
        kind = type(node).__name__
        steps, batch = x.shape[:2]
        rows = lambda y: y.reshape((steps * batch,) + y.shape[2:])
        back = lambda y: y.reshape((steps, batch) + y.shape[1:])
        if kind == "Output":
            return x
        if kind in ("Affine", "Linear"):
            y = jnp.einsum("tb...i,oi->tb...o", x, jnp.asarray(node.weight, x.dtype))
            return y + jnp.asarray(node.bias, x.dtype) if kind == "Affine" else y
        if kind == "Conv2d":
            weight = jnp.asarray(node.weight, x.dtype)
            kernel, dilation = tuple(weight.shape[2:]), _pair(node.dilation, name)
            y = jax.lax.conv_general_dilated(
                rows(x), weight, window_strides=_pair(node.stride, name),
                padding=_padding(node.padding, name, kernel, dilation), rhs_dilation=dilation,
                dimension_numbers=("NCHW", "OIHW", "NCHW"), feature_group_count=int(node.groups))
            return back(y + jnp.asarray(node.bias, x.dtype).reshape(-1, 1, 1))
        if kind in ("SumPool2d", "AvgPool2d"):
            kernel, stride = _pair(node.kernel_size, name), _pair(node.stride, name)
            pad = _padding(node.padding, name, kernel, (1, 1))
            y = jax.lax.reduce_window(rows(x), 0.0, jax.lax.add, (1, 1) + kernel, (1, 1) + stride,
                                      [(0, 0), (0, 0)] + pad)
            return back(y / math.prod(kernel) if kind == "AvgPool2d" else y)
        if kind == "Flatten":
            start, end = int(node.start_dim), int(node.end_dim)
            sample = x.shape[2:]
            end = end % len(sample)
            return x.reshape(x.shape[:2] + sample[:start] + (-1,) + sample[end + 1:])
        return self._neuron(name, node, x)

    def _neuron(self, name, node, x):
        kind, dt = type(node).__name__, self.dt
        threshold = _scalar_or_array(node.v_threshold)
        x32 = x.astype(jnp.float32)
        if kind == "IF":
            beta, current = 1.0, x32 * jnp.asarray(dt * np.asarray(node.r, np.float32))
        else:
            tau = node.tau_mem if kind == "CubaLIF" else node.tau
            beta = _scalar_or_array(_decay(tau, dt, name, "tau_mem" if kind == "CubaLIF" else "tau"))
            tau = np.asarray(tau, np.float64)
            gain = jnp.asarray(dt * np.asarray(node.r, np.float64) / tau, jnp.float32)
            leak = jnp.asarray(dt * np.asarray(node.v_leak, np.float64) / tau, jnp.float32)
            if kind == "CubaLIF":
                tau_syn = np.asarray(node.tau_syn, np.float64)
                alpha = jnp.asarray(_decay(tau_syn, dt, name, "tau_syn"), jnp.float32)
                w_in = jnp.asarray(dt * np.asarray(node.w_in, np.float64) / tau_syn, jnp.float32)
                x32 = jax.lax.scan(lambda i, c: (alpha * i + w_in * c,) * 2, jnp.zeros_like(x32[0]), x32)[1]
            current = x32 * gain + leak
        spikes = neurons.lif(current, beta=beta, threshold=threshold, reset="zero")
        return spikes.astype(x.dtype)


def from_nir(graph_or_path, *, dt: float = DEFAULT_DT) -> NIRNetwork:
    """A runnable spikejax network from a nir.NIRGraph or a .nir file (see the module docstring)."""
    nir = _nir()
    graph = nir.read(graph_or_path) if isinstance(graph_or_path, str) else graph_or_path
    if not dt > 0:
        raise NIRError(f"dt must be > 0, got {dt}")
    return NIRNetwork(graph, dt)
