"""spikejax models -> NIR graphs (the mapping is in the package docstring), and atomic .nir writes."""
from __future__ import annotations

import os
import tempfile

import jax
import numpy as np

from spikejax import neurons
from spikejax.nir._common import DEFAULT_DT, DEFAULT_MAX_PARAMETERS, NIRError, _nir

# ---------------------------------------------------------------------------------------------------------
# Export


def _neuron_values(neuron, spiking) -> dict:
    """{beta, threshold, alpha}: per-feature float32 arrays [features] or scalars, the learned ones read from
    the layer's `SpikingNeurons`."""
    values = {k: np.float64(getattr(neuron, k)) for k in ("beta", "threshold", "alpha")}
    values.update({k: _array(v).astype(np.float64) for k, v in spiking.values().items()})
    return values


def _lif_node(beta, threshold, alpha, full, dt, features):
    """LIF, or IF where every beta is 1: v[t] = beta v[t-1] + I[t] (see the module docstring)."""
    nir = _nir()
    if np.all(beta >= 1.0):
        return nir.IF(r=full(1.0), v_threshold=full(threshold), v_reset=full(0.0)), np.ones(features, np.float32)
    if np.any(beta >= 1.0):
        raise NIRError("a layer whose learned beta reaches 1 in some neurons and not in others has no NIR node "
                       "(LIF needs beta < 1, IF beta = 1)")
    tau = dt / (1.0 - beta)
    return nir.LIF(tau=full(tau), r=full(1.0), v_leak=full(0.0), v_threshold=full(threshold),
                   v_reset=full(0.0)), np.broadcast_to(tau / dt, (features,)).astype(np.float32)


def _cuba_lif_node(beta, threshold, alpha, full, dt, features):
    """CubaLIF: i[t] = alpha i[t-1] + I[t], v[t] = beta v[t-1] + i[t]; no folded gain."""
    nir = _nir()
    if np.any(alpha >= 1.0) or np.any(beta >= 1.0):
        raise NIRError(f"CubaLIF with alpha = {alpha.max()}, beta = {beta.max()}: NIR's CubaLIF needs finite "
                       "time constants (alpha, beta < 1)")
    tau_syn, tau_mem = dt / (1.0 - alpha), dt / (1.0 - beta)
    return nir.CubaLIF(tau_syn=full(tau_syn), tau_mem=full(tau_mem), r=full(tau_mem / dt), v_leak=full(0.0),
                       v_threshold=full(threshold), v_reset=full(0.0),
                       w_in=full(tau_syn / dt)), np.ones(features, np.float32)


def _li_node(beta, full, dt, features):
    """A non-spiking integrator output layer, u[t] = beta u[t-1] + I[t]: LI (tau = dt / (1 - beta), r = 1,
    v_leak = 0, the gain tau/dt folded into its weights, as for LIF), or I (r = 1) where every beta is 1."""
    nir = _nir()
    if np.all(beta >= 1.0):
        return nir.I(r=full(1.0)), np.ones(features, np.float32)
    if np.any(beta >= 1.0):
        raise NIRError("an integrator whose learned beta reaches 1 in some neurons and not in others has no NIR "
                       "node (LI needs beta < 1, I beta = 1)")
    tau = dt / (1.0 - beta)
    return nir.LI(tau=full(tau), r=full(1.0), v_leak=full(0.0)), np.broadcast_to(tau / dt, (features,)).astype(
        np.float32)


# NIR node type -> the function writing it; a neuron kind exports as its registered `nir_node`
# (`spikejax.neurons.get_kind(kind).nir_node`); a kind without one, or with a node not here, is refused.
NODE_WRITERS = {"LIF": _lif_node, "CubaLIF": _cuba_lif_node}


def _node_maker(kind: str):
    registered = neurons.kinds()
    node = neurons.get_kind(kind).nir_node if kind in registered else None
    if node not in NODE_WRITERS:
        mapped = [k for k in registered if neurons.get_kind(k).nir_node in NODE_WRITERS]
        raise NIRError(f"neuron kind {kind!r} has no NIR mapping (mapped kinds: {', '.join(mapped)}); register it "
                       "with a nir_node spikejax.nir writes (spikejax.neurons.register_kind) to export it")
    return NODE_WRITERS[node]


def _neuron_node(neuron, values: dict, shape: tuple[int, ...], dt: float, output: str = "spiking"):
    """(the NIR node of a spikejax `models.Neuron` over `shape` (features first: [F] or [C, H, W]) with
    parameter `values` (scalars or per-feature [F]), the gain [F] to fold into its input weights). The time
    constants are computed in float64 and stored as float32; the gain is float32, so that the folded weights
    are the float32 products W * gain, as importers would form them. NIRError for a kind not in
    NODE_WRITERS. `output="integrator"`: the model's non-spiking output layer, as LI (`_li_node`)."""
    make = _node_maker(neuron.kind) if output == "spiking" else lambda beta, threshold, alpha, *rest: _li_node(
        beta, *rest)

    def full(v):
        v = np.asarray(v, np.float32)
        return np.broadcast_to(v.reshape(v.shape + (1,) * (len(shape) - 1)) if v.ndim else v, shape).copy()

    beta, threshold, alpha = (np.asarray(values[k], np.float64) for k in ("beta", "threshold", "alpha"))
    return make(beta, threshold, alpha, full, dt, shape[0])


def _output(model) -> str:
    """The model's output layer, "spiking" or "integrator" (`spikejax.models.OUTPUTS`)."""
    return getattr(model, "output", "spiking")


def _array(x) -> np.ndarray:
    """A flax Variable's (or an array's) value as float32 numpy."""
    value = x.get_value() if hasattr(x, "get_value") else getattr(x, "value", x)
    return np.asarray(jax.device_get(value), np.float32)


def to_nir(model, *, dt: float = DEFAULT_DT, approximate: bool = False,
           max_parameters: int = DEFAULT_MAX_PARAMETERS):
    """The NIR graph of a spikejax SpikingMLP, SpikingConvNet or DelayedMLP (see the package docstring for
    the mapping), with `dt` (seconds) in its metadata as {"dt": dt}.

    `approximate=True` exports a subtractive-reset model with NIR's reset to 0, which other frameworks
    then run differently (10-15% of spikes differed when measured); without it that model is refused.
    A DelayedMLP is written with its rounded delays (what it evaluates with) as Delay nodes; one whose
    per-synapse expansion would hold more than `max_parameters` numbers is refused before it is built. A
    non-spiking integrator output layer (`output="integrator"`) is written as NIR's LI node (I where beta =
    1); `from_nir` does not read LI back (it runs spiking graphs)."""
    from spikejax import models
    from spikejax.nir import _delays

    nir = _nir()
    if not dt > 0:
        raise NIRError(f"dt must be > 0, got {dt}")
    neuron = model.neuron
    _node_maker(neuron.kind)
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
            node, gain = _neuron_node(neuron, _neuron_values(neuron, spiking), (kernel.shape[1],), dt,
                                      _output(model) if i == len(kernels) - 1 else "spiking")
            previous = add(f"linear{i}", _dense(kernel.T * gain[:, None], None if bias is None else bias * gain),
                           previous)
            previous = add(f"{type(node).__name__.lower()}{i}", node, previous)
        output = kernels[-1].shape[1]
    elif isinstance(model, models.SpikingConvNet):
        previous, output = _conv_graph(model, neuron, dt, nodes, edges, add)
    elif isinstance(model, models.DelayedMLP):
        previous, output = _delays.delayed_graph(model, neuron, dt, nodes, edges, max_parameters)
    elif isinstance(model, models.SpikingRNN):
        raise NIRError("to_nir does not export the recurrent model yet (SpikingRNN: NIR writes recurrence as a "
                       "cycle through a Linear node, and spikejax's importer runs feed-forward graphs only)")
    else:
        raise NIRError(f"to_nir exports SpikingMLP, SpikingConvNet and DelayedMLP models, got {type(model).__name__}")
    add("output", nir.Output(output_type=np.array([output])), previous)
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"dt": float(dt)})


def write(graph, path: str | os.PathLike) -> None:
    """nir.write(path, graph), atomically: the file is written beside `path` under a temporary name, synced
    and renamed over it, so `path` holds the old file or the new one, never part of one (an interrupt or an
    error removes the temporary file). A symlink at `path` is refused (NIRError naming it), never followed;
    so is a `path` that is a folder or whose folder does not exist."""
    nir = _nir()
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.islink(path):
        raise NIRError(f"{path} is a symlink (to {os.readlink(path)}); spikejax does not write through links: "
                       "remove it or choose another path")
    if os.path.isdir(path):
        raise NIRError(f"{path} is a folder; give the path of the .nir file to write")
    if not os.path.isdir(folder):
        raise NIRError(f"cannot write {path}: the folder {folder} does not exist")
    handle, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    os.close(handle)
    try:
        nir.write(tmp, graph)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)  # replaces a link created meanwhile itself, not its target
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


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
        node, gain = _neuron_node(neuron, _neuron_values(neuron, spiking[i]), (kernel.shape[1],), dt,
                                  _output(model) if i == 1 else "spiking")
        previous = add(f"linear{i}", _dense(kernel.T * gain[:, None], None if bias is None else bias * gain),
                       previous)
        previous = add(f"{type(node).__name__.lower()}{len(model.convs) + i}", node, previous)
    return previous, kernel.shape[1]


# ---------------------------------------------------------------------------------------------------------
# Import
