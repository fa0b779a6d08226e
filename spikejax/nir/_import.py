"""NIR graphs -> runnable spikejax networks (NIRNetwork), discretised with forward Euler."""
from __future__ import annotations

import math
import os
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from spikejax import delays, neurons
from spikejax.nir._checks import _check_graph, _decay, _declared, _padding, _pair, _scan_file, delay_steps
from spikejax.nir._common import DEFAULT_DT, DEFAULT_MAX_PARAMETERS, NIRError, _nir


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




def _scalar_or_array(x: np.ndarray):
    """A Python float when every element is equal (spikejax's fast paths), else the float32 array."""
    x = np.asarray(x, np.float32)
    return float(x.ravel()[0]) if x.size and np.all(x == x.ravel()[0]) else jnp.asarray(x)


class NIRNetwork:
    """A NIR graph, runnable on time-major input, like spikejax's models: `out = net(x)` with x
    [T, B, *input_type] is the Output node's value [T, B, ...]; `out, layers = net(x, return_layers=True)` adds
    the input and each neuron node's spikes, in order.
    `fan_out` is None (NIR graphs need not be chains). A pure function of x: jit it freely. The graph is
    checked first (see the module docstring): NIRError naming the node and field."""

    def __init__(self, graph, dt: float, max_parameters: int = DEFAULT_MAX_PARAMETERS):
        self.graph, self.dt = graph, float(dt)
        nodes = dict(graph.nodes)
        _check_graph(nodes, graph.edges, self.dt, max_parameters)
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

    def __call__(self, x, *, return_layers: bool = False):
        x = jnp.asarray(x)
        declared = _declared(self.nodes[self.input_name])
        if isinstance(declared, tuple) and tuple(x.shape[2:]) != declared:
            raise NIRError(f"input of shape {list(x.shape)}; this graph takes [T, B, {', '.join(map(str, declared))}] "
                           f"(its Input node {self.input_name!r} declares {list(declared)})")
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
        out = values[self.output_name]
        return (out, layers) if return_layers else out

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
        if kind == "Delay":  # y[t] = x[t - delay/dt] per channel, 0 before the start
            steps = delay_steps(node.delay, self.dt, name)
            try:
                steps = np.broadcast_to(steps, x.shape[2:])
            except ValueError:
                raise NIRError(f"node {name!r} (Delay): delays of shape {list(steps.shape)} do not fit its input of "
                               f"shape {list(x.shape[2:])}") from None
            flat = x.reshape(x.shape[:2] + (-1,))
            return delays.delay_line(flat, jnp.asarray(steps.ravel())).reshape(x.shape)
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
            beta, current = 1.0, x32 * jnp.asarray(np.asarray(node.r, np.float32))  # v += r I, dt unused
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


def _graph_dt(graph, dt: float | None) -> float:
    """`dt` when given, else the graph's metadata "dt" (spikejax's export writes it), else DEFAULT_DT."""
    if dt is None:
        metadata = getattr(graph, "metadata", None) or {}
        dt = metadata.get("dt", DEFAULT_DT)
        where = "the graph's metadata 'dt'"
    else:
        where = "dt"
    try:
        dt = float(np.asarray(dt))
    except (TypeError, ValueError):
        raise NIRError(f"{where} must be a number of seconds, got {str(dt)[:60]!r}") from None
    if not (dt > 0 and math.isfinite(dt)):
        raise NIRError(f"{where} must be finite and > 0, got {dt}")
    return dt


def from_nir(graph_or_path, *, dt: float | None = None, max_parameters: int = DEFAULT_MAX_PARAMETERS) -> NIRNetwork:
    """A runnable spikejax network from a nir.NIRGraph or a .nir file (see the module docstring). `dt` in
    seconds; None reads it from the graph's metadata {"dt": ...} (spikejax's export writes it), and 1e-4
    (DEFAULT_DT) where there is none. Every node is checked first; a graph of more than `max_parameters`
    numbers is refused before it is read (raise the limit for a large graph you trust). NIRError names the
    file, node and field."""
    nir = _nir()
    if dt is not None:
        dt = _graph_dt(None, dt)
    if isinstance(graph_or_path, (str, os.PathLike)):
        path = os.fspath(graph_or_path)
        _scan_file(path, max_parameters)
        try:
            graph = nir.read(path)
        except (AssertionError, AttributeError, IndexError, KeyError, OverflowError, TypeError, ValueError) as error:
            raise NIRError(f"{path}: nir.read could not build the graph ({type(error).__name__}: {error})") from error
        try:
            return NIRNetwork(graph, _graph_dt(graph, dt), max_parameters)
        except NIRError as error:
            raise NIRError(f"{path}: {error}") from None
    return NIRNetwork(graph_or_path, _graph_dt(graph_or_path, dt), max_parameters)
