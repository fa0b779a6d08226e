"""NIR (the Neuromorphic Intermediate Representation, package `nir` 1.0.x) export and import.

  graph = to_nir(model, dt=1e-4)            a SpikingMLP / SpikingConvNet -> nir.NIRGraph
  write(graph, "model.nir")                 the HDF5 file snnTorch, Norse, spyx, Sinabs, Rockpool, lava-dl read,
                                            written to a temporary file and renamed; a symlink there is refused
  net = from_nir(graph_or_path, dt=1e-4)    any supported graph (checked first) -> NIRNetwork
  out, layers = net(x)                      x [T, B, *input_type] -> output spikes [T, B, ...], and the spikes
                                            of the input and of every neuron node, like spikejax's models

How each neuron node is read (and why). The NIR spec (neuromorphs/NIR `docs/source/primitives.md`,
`nir/ir/neuron.py`) gives continuous-time equations and leaves discretisation to the backends:
  LIF      tau dv/dt = (v_leak - v) + r I        ->  v[t] = (1 - dt/tau) v[t-1] + (dt/tau) (v_leak + r I[t])
  CubaLIF  tau_syn di/dt = -i + w_in I            ->  i[t] = (1 - dt/tau_syn) i[t-1] + (dt/tau_syn) w_in I[t]
           tau_mem dv/dt = (v_leak - v) + r i     ->  v[t] = (1 - dt/tau_mem) v[t-1] + (dt/tau_mem) (v_leak + r i[t])
  IF       dv/dt = r I                            ->  v[t] = v[t-1] + r I[t]          (dt unused)
  spike    s[t] = H(v[t] - v_threshold), then v is set to v_reset
LIF and CubaLIF are forward Euler at step dt, as snnTorch, Norse and spyx import them (checked spike-exact
in tests/test_nir_interop.py). IF is read per step, with no dt, because that is how the hardware world
writes and reads it: Sinabs exports its IAF (v += I per step) as IF with r = 1 and imports IF as IAF with
r and dt ignored (sinabs/nir.py); Norse imports IF as IAFCell, whose step is v += I with dt "unused"
(norse/torch/functional/iaf.py; it warns when r != 1 and ignores r); snnTorch imports IF as Leaky with
beta = 1 since its 2026 fix (pull request #452, issue #416; beta was 0.9, then 0) and accepts r = 1 only.
Reading IF through dt (v += dt r I) makes those graphs silent: the NIR paper's `cnn_sinabs.nir` (r = 1)
then fires no spike at dt = 1e-4. spikejax keeps r as a per-step input gain, which is the common reading
for r = 1, the only value the others accept. (Sinabs resets its IAF by subtracting the threshold and
clips v at -v_threshold; spikejax, like Norse, applies NIR's v_reset = 0.)

spikejax's LIF (`neurons.lif`) is v[t] = beta v[t-1] + I[t] with s = H(v - threshold). Export therefore
writes, per spiking layer:
  LIF      tau = dt / (1 - beta), r = 1, v_leak = 0, v_threshold = threshold, v_reset = 0, and folds the
           gain tau/dt = 1/(1 - beta) into the weights and bias feeding it (Norse ignores r; this form is
           read the same everywhere). Not -dt/ln(beta): importers use Euler, not the exponential.
  CubaLIF  tau_syn = dt/(1 - alpha), w_in = tau_syn/dt, tau_mem = dt/(1 - beta), r = tau_mem/dt
  beta = 1 IF with r = 1 (v[t] = v[t-1] + I[t] exactly, whatever dt)
and imports the inverse (beta = 1 - dt/tau, input gain dt r / tau, and dt v_leak / tau as a constant
current; IF: beta = 1, input gain r). NIR resets to v_reset: that is spikejax's `reset="zero"` only when
v_reset = 0. A neuron kind exports as its registered `nir_node` (`spikejax.neurons.register_kind`); a
kind without one is refused by name.

Learned neuron parameters (`model.neuron.learn_*`, per feature / conv channel or per layer) are written per
neuron: the node's arrays vary, and each neuron's gain is folded into its own row (output channel) of the
weights and bias. The recurrent model is not exported (NIR writes recurrence as a cycle).

Layout: NIR is channels-first and per sample. Export turns conv kernels HWIO -> OIHW, permutes the rows
of the dense kernel after the flatten from spikejax's (h, w, c) order to NIR's (c, h, w), and writes the
2x2 average pool as a SumPool2d with the 1/4 folded into the next layer (AvgPool2d is read by snnTorch
only). The MLP's input is declared flat (input_type [F]): feed it [T, B, F]. NIR's `Flatten(start_dim=0)`
means the first dimension of a sample; snnTorch, Norse and nirtorch import it as `torch.nn.Flatten(0)`,
which also flattens the batch: give those frameworks one sample at a time, or replace the module.

Import checks every node before anything runs, and refuses with a `NIRError` naming the node (and the
field): a node type other than Input, Output, Affine, Linear, Conv2d, SumPool2d, AvgPool2d, Flatten, LIF,
CubaLIF, IF (the message lists them); a missing or non-numeric field; a non-finite value anywhere; tau,
tau_syn, tau_mem <= 0 or shorter than dt (a decay outside [0, 1]); a threshold <= 0; a v_reset other than
0; strides, kernel sizes, dilations, groups that are not integers >= 1; parameter arrays whose shapes
disagree with each other or with the node's declared shape; a recurrent edge. A graph holding more than
`max_parameters` numbers (default 100 million) is refused before it is read: for a file the HDF5 dataset
shapes are summed without reading them (a file may declare a 45 GiB array in a few kB), so a graph you
trust that is larger needs `from_nir(path, max_parameters=...)`. Export refuses a subtractive reset (NIR has
none; train with `model.neuron.reset="zero"`, or pass `approximate=True` to accept the mismatch).
"""
from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from spikejax import neurons
from spikejax.errors import UsageError

# The fields each supported node type needs and what each must hold: "finite" (real numbers), "time" (finite,
# > 0, >= dt), "threshold" (finite, > 0), "reset" (finite; 0 is checked apart), "count" (integers >= 1),
# "padding" (integers >= 0, or "same"/"valid"), "index" (integers), "shape" (integers >= 1).
FIELDS = {
    "Input": {}, "Output": {},
    "Affine": {"weight": "finite", "bias": "finite"},
    "Linear": {"weight": "finite"},
    "Conv2d": {"weight": "finite", "bias": "finite", "stride": "count", "padding": "padding",
               "dilation": "count", "groups": "count"},
    "SumPool2d": {"kernel_size": "count", "stride": "count", "padding": "padding"},
    "AvgPool2d": {"kernel_size": "count", "stride": "count", "padding": "padding"},
    "Flatten": {"start_dim": "index", "end_dim": "index"},
    "LIF": {"tau": "time", "r": "finite", "v_leak": "finite", "v_threshold": "threshold", "v_reset": "reset"},
    "CubaLIF": {"tau_syn": "time", "tau_mem": "time", "r": "finite", "w_in": "finite", "v_leak": "finite",
                "v_threshold": "threshold", "v_reset": "reset"},
    "IF": {"r": "finite", "v_threshold": "threshold", "v_reset": "reset"},
}
SUPPORTED = tuple(FIELDS)
NEURON_TYPES = ("LIF", "CubaLIF", "IF")
# Fields a .nir file stores per node (nir.read fills v_reset when absent); Input/Output store "shape".
_FILE_FIELDS = {kind: tuple(f for f in fields if f != "v_reset") for kind, fields in FIELDS.items()}
_FILE_FIELDS.update(Input=("shape",), Output=("shape",))
DEFAULT_DT = 1e-4  # snnTorch's importer assumes this step
DEFAULT_MAX_PARAMETERS = 100_000_000  # numbers in a graph (400 MB as float32) from_nir reads without being asked


class NIRError(UsageError):
    """A graph or model that spikejax cannot express in (or run from) NIR exactly, or a malformed graph; the
    message names the node and field. A ValueError; the commands exit with status 2 on it."""


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


def _neuron_node(neuron, values: dict, shape: tuple[int, ...], dt: float):
    """(the NIR node of a spikejax `models.Neuron` over `shape` (features first: [F] or [C, H, W]) with
    parameter `values` (scalars or per-feature [F]), the gain [F] to fold into its input weights). The time
    constants are computed in float64 and stored as float32; the gain is float32, so that the folded weights
    are the float32 products W * gain, as importers would form them. NIRError for a kind not in
    NODE_WRITERS."""
    make = _node_maker(neuron.kind)

    def full(v):
        v = np.asarray(v, np.float32)
        return np.broadcast_to(v.reshape(v.shape + (1,) * (len(shape) - 1)) if v.ndim else v, shape).copy()

    beta, threshold, alpha = (np.asarray(values[k], np.float64) for k in ("beta", "threshold", "alpha"))
    return make(beta, threshold, alpha, full, dt, shape[0])


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
    """1 - dt/tau [float64], the Euler decay; NIRError naming the node when some tau < dt (negative decay)."""
    tau = np.asarray(tau, np.float64)
    if np.any(tau < dt):
        raise NIRError(f"node {name!r}: {field} = {tau.min():g} is shorter than dt = {dt:g}, so the Euler decay "
                       f"1 - dt/{field} is negative; import with a smaller dt")
    return 1.0 - dt / tau


def _unsupported(name: str, kind) -> NIRError:
    return NIRError(f"node {name!r} has type {kind}, which spikejax cannot run (supported: {', '.join(SUPPORTED)})")


def _check_field(name: str, kind: str, field: str, rule: str, value, dt: float) -> None:
    """NIRError naming node `name` and `field` unless `value` obeys `rule` (see FIELDS)."""
    where = f"node {name!r} ({kind}) field {field!r}"
    if value is None:
        raise NIRError(f"{where} is missing")
    if rule == "padding" and isinstance(value, str):
        if value.lower() not in ("same", "valid"):
            raise NIRError(f"{where} is {value!r}; expected 'same', 'valid' or integers")
        return
    a = np.asarray(value)
    if a.dtype.kind not in "biuf" or a.size == 0:
        raise NIRError(f"{where} must hold numbers, got {str(value)[:60]!r} (dtype {a.dtype}, shape {a.shape})")
    bad = ~np.isfinite(a)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise NIRError(f"{where} holds {int(bad.sum())} non-finite value(s) (first: {a[index]} at index {index}); "
                       "neurons built from it would never fire")
    if rule == "time":
        if np.any(a <= 0):
            raise NIRError(f"{where} = {a.min():g}: a time constant must be > 0")
        if np.any(a < dt):
            raise NIRError(f"{where} = {a.min():g} is shorter than dt = {dt:g}, so the Euler decay 1 - dt/{field} "
                           "is negative; import with a smaller dt")
    elif rule == "threshold" and np.any(a <= 0):
        raise NIRError(f"{where} = {a.min():g}: a threshold must be > 0")
    elif rule == "reset" and np.any(a != 0):
        raise NIRError(f"node {name!r} resets to v_reset = {a[a != 0].ravel()[0]:g}; spikejax's reset='zero' "
                       "resets to 0 only")
    elif rule in ("count", "padding", "index", "shape"):
        low = {"count": 1, "shape": 1, "padding": 0, "index": -(2 ** 31)}[rule]
        if np.any(a != np.round(a)) or np.any(a < low) or np.any(a >= 2 ** 31):
            raise NIRError(f"{where} = {a.tolist()}: expected integers >= {low}" if rule != "index" else
                           f"{where} = {a.tolist()}: expected an integer")


def _declared(node, side: str = "input"):
    """The node's declared input (or output) shape as a tuple, None when it declares none."""
    types = getattr(node, f"{side}_type", None)
    shape = types.get(side) if isinstance(types, dict) else None
    if shape is None or np.size(shape) == 0:
        return None
    shape = np.asarray(shape)
    return tuple(int(v) for v in shape.ravel()) if shape.dtype.kind in "iuf" and np.all(np.isfinite(shape)) else shape


def _check_shapes(name: str, kind: str, node) -> None:
    """NIRError unless the node's arrays agree with each other and with its declared input shape."""
    declared = _declared(node)
    if declared is not None and (not isinstance(declared, tuple) or min(declared) < 1):
        raise NIRError(f"node {name!r} ({kind}) declares the input shape {np.asarray(declared).tolist()}; expected "
                       "integers >= 1")
    shapes = {f: np.shape(getattr(node, f)) for f, rule in FIELDS[kind].items() if rule != "padding"}
    if kind in NEURON_TYPES:
        try:
            common = np.broadcast_shapes(*shapes.values(), *([declared] if declared else []))
        except ValueError:
            common = None
        if common is None or (declared is not None and common != declared):
            raise NIRError(f"node {name!r} ({kind}): parameter shapes {shapes} do not fit each other"
                           + (f" and the declared shape {list(declared)}" if declared else ""))
    elif kind in ("Affine", "Linear", "Conv2d"):
        weight = shapes["weight"]
        if len(weight) != (4 if kind == "Conv2d" else 2):
            raise NIRError(f"node {name!r} ({kind}) field 'weight' has shape {weight}; expected "
                           + ("[out, in/groups, kh, kw]" if kind == "Conv2d" else "[out, in]"))
        if "bias" in shapes and shapes["bias"] not in ((), (1,), (weight[0],)):
            raise NIRError(f"node {name!r} ({kind}) field 'bias' has shape {shapes['bias']}; expected "
                           f"[{weight[0]}] (one per output)")
        inputs = weight[1] * (int(np.asarray(node.groups)) if kind == "Conv2d" else 1)
        if kind == "Conv2d" and weight[0] % int(np.asarray(node.groups)):
            raise NIRError(f"node {name!r} (Conv2d): {weight[0]} output channels are not divisible by groups = "
                           f"{int(np.asarray(node.groups))}")
        axis = 0 if kind == "Conv2d" else -1
        if declared is not None and declared[axis] != inputs:
            raise NIRError(f"node {name!r} ({kind}) declares inputs of shape {list(declared)}, but its weight "
                           f"{weight} takes {inputs} input {'channels' if kind == 'Conv2d' else 'features'}")


def _size(value) -> int:
    return int(np.size(value)) if value is not None and not isinstance(value, str) else 0


def _check_graph(nodes: dict, edges, dt: float, max_parameters: int) -> None:
    """Types, then the size guard, then every field and shape (see the module docstring), before any
    array is copied."""
    for name, node in nodes.items():
        if type(node).__name__ not in FIELDS:
            raise _unsupported(name, type(node).__name__)
    total = {name: sum(_size(getattr(node, f, None)) for f in FIELDS[type(node).__name__])
             for name, node in nodes.items()}
    if sum(total.values()) > max_parameters:
        largest = max(total, key=total.get)
        raise NIRError(f"the graph holds {sum(total.values()):,} parameters (node {largest!r}: {total[largest]:,}), "
                       f"more than max_parameters = {max_parameters:,}; if you trust it, raise the limit: "
                       f"from_nir(..., max_parameters={sum(total.values())})")
    for name, node in nodes.items():
        kind = type(node).__name__
        for field, rule in FIELDS[kind].items():
            _check_field(name, kind, field, rule, getattr(node, field, None), dt)
        declared = _declared(node) if kind == "Input" else None
        if isinstance(declared, tuple) and math.prod(declared) > max_parameters:
            raise NIRError(f"node {name!r} (Input) declares samples of shape {list(declared)} "
                           f"({math.prod(declared):,} numbers each), more than max_parameters = {max_parameters:,}")
        _check_shapes(name, kind, node)
    for source, target in edges:
        if source in nodes and target in nodes:
            out, into = _declared(nodes[source], "output"), _declared(nodes[target])
            if isinstance(out, tuple) and isinstance(into, tuple) and out != into:
                raise NIRError(f"edge ({source!r}, {target!r}): node {source!r} declares outputs of shape "
                               f"{list(out)}, node {target!r} inputs of shape {list(into)}")


def _scan_file(path: str, max_parameters: int) -> None:
    """Checks a .nir file's node types, fields and total size from its HDF5 metadata alone (no array is
    read), so that nir.read never meets an unknown node or allocates a declared giant array."""
    import errno

    import h5py

    if not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, "no such NIR file", path)
    try:
        f = h5py.File(path, "r")
    except OSError as error:
        raise NIRError(f"{path} is not a NIR file (HDF5 could not open it: {error})") from None
    with f:
        nodes = f.get("node/nodes")
        if not isinstance(nodes, h5py.Group):
            raise NIRError(f"{path} holds no NIR graph (no node/nodes group)")
        for name, group in nodes.items():
            kind = group["type"][()] if isinstance(group, h5py.Group) and "type" in group else None
            kind = kind.decode("utf8", "replace") if isinstance(kind, bytes) else kind
            if kind not in FIELDS:
                raise NIRError(f"{path}: {_unsupported(name, kind)}")
            for field in _FILE_FIELDS[kind]:
                if field not in group:
                    raise NIRError(f"{path}: node {name!r} ({kind}) has no field {field!r}")
                dtype = getattr(group[field], "dtype", None)
                if field != "padding" and (dtype is None or dtype.kind not in "biuf"):
                    raise NIRError(f"{path}: node {name!r} ({kind}) field {field!r} must hold numbers, got "
                                   f"{dtype or 'a group'}")
        sizes = {}
        f.visititems(lambda key, item: sizes.__setitem__(key, (item.size, item.shape))
                     if isinstance(item, h5py.Dataset) and item.dtype.kind in "biuf" else None)
    total = sum(size for size, _ in sizes.values())
    if total > max_parameters:
        largest = max(sizes, key=lambda k: sizes[k][0])
        raise NIRError(f"{path} holds {total:,} numbers (the largest, {largest}, has shape {sizes[largest][1]}), "
                       f"more than max_parameters = {max_parameters:,}; if you trust the file, raise the limit: "
                       f"from_nir(path, max_parameters={total})")


def _scalar_or_array(x: np.ndarray):
    """A Python float when every element is equal (spikejax's fast paths), else the float32 array."""
    x = np.asarray(x, np.float32)
    return float(x.ravel()[0]) if x.size and np.all(x == x.ravel()[0]) else jnp.asarray(x)


class NIRNetwork:
    """A NIR graph, runnable on time-major input: `out, layers = net(x)` with x [T, B, *input_type]; out is
    the Output node's value [T, B, ...]; layers are the input and each neuron node's spikes, in order.
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

    def __call__(self, x):
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


def from_nir(graph_or_path, *, dt: float = DEFAULT_DT, max_parameters: int = DEFAULT_MAX_PARAMETERS) -> NIRNetwork:
    """A runnable spikejax network from a nir.NIRGraph or a .nir file (see the module docstring). Every node
    is checked first; a graph of more than `max_parameters` numbers is refused before it is read (raise
    the limit for a large graph you trust). NIRError names the file, node and field."""
    nir = _nir()
    if not (dt > 0 and math.isfinite(dt)):
        raise NIRError(f"dt must be finite and > 0, got {dt}")
    if isinstance(graph_or_path, (str, os.PathLike)):
        path = os.fspath(graph_or_path)
        _scan_file(path, max_parameters)
        try:
            graph = nir.read(path)
        except (AssertionError, AttributeError, IndexError, KeyError, OverflowError, TypeError, ValueError) as error:
            raise NIRError(f"{path}: nir.read could not build the graph ({type(error).__name__}: {error})") from error
        try:
            return NIRNetwork(graph, dt, max_parameters)
        except NIRError as error:
            raise NIRError(f"{path}: {error}") from None
    return NIRNetwork(graph_or_path, dt, max_parameters)
