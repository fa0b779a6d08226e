"""Checks of an imported graph before anything runs or allocates: node types, fields, shapes, sizes."""
from __future__ import annotations

import math
import os

import numpy as np

from spikejax.nir._common import _FILE_FIELDS, FIELDS, NEURON_TYPES, SUPPORTED, NIRError


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


MAX_DELAY_STEPS = 2 ** 30  # delay_line's step arithmetic is int32


def delay_steps(delay, dt: float, name: str) -> np.ndarray:
    """A Delay node's delays (seconds) as whole steps of dt, int32 of the delay's shape; NIRError naming the
    node unless every delay is >= 0 and within float rounding (1e-6 relative) of a whole number of steps."""
    seconds = np.asarray(delay, np.float64)
    where = f"node {name!r} (Delay) field 'delay'"
    if np.any(seconds < 0):
        raise NIRError(f"{where} = {seconds.min():g} s: a delay must be >= 0")
    steps = seconds / dt
    whole = np.round(steps)
    off = np.abs(steps - whole) > 1e-6 * np.maximum(whole, 1.0)
    if np.any(off):
        index = tuple(int(i) for i in np.argwhere(off)[0])
        raise NIRError(f"{where} holds {seconds[index]:g} s at index {index}, {steps[index]:.6g} steps of dt = {dt:g} "
                       "s: spikejax delays by whole steps only; import with the dt the graph was made for")
    if np.any(whole >= MAX_DELAY_STEPS):
        raise NIRError(f"{where} = {seconds.max():g} s is {whole.max():.0f} steps of dt = {dt:g} s, more than "
                       f"{MAX_DELAY_STEPS:,}")
    return whole.astype(np.int32)


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
    elif rule == "delay":
        delay_steps(a, dt, name)
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
    """Numbers in a node field, read from its shape: numpy arrays, and the torch tensors that snnTorch's and
    Norse's exporters leave in a graph built in memory (np.size would call a tensor's own `size` method)."""
    return int(np.prod(np.shape(value))) if value is not None and not isinstance(value, str) else 0


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
