"""DelayedMLP -> NIR: each layer's rounded delays written as NIR Delay nodes (the layout is in the package
docstring, "Delays").

Per input channel (d [I]):   source -> Delay [I] (d_i dt) -> Affine [O, I] -> neuron
Per synapse (d [I, O]):      one branch per delay value tau that occurs in the layer, all into the neuron:
                             source -> Delay [I] (every entry tau dt) -> Linear [O, I] holding W_ij where
                             d_ij = tau and 0 elsewhere; the first branch is an Affine carrying the bias.
A delay (or a branch) of 0 steps is written without a Delay node, so a layer whose delays are all 0 is
exactly the SpikingMLP's Affine -> neuron.
"""
from __future__ import annotations

import jax
import numpy as np

from spikejax import delays as delays_lib
from spikejax.nir._common import NIRError, _nir
from spikejax.nir._export import _array, _dense, _neuron_node, _neuron_values, _output


def _steps(layer, kernel_size: int) -> np.ndarray:
    """The integer delays the evaluated model shifts by (`delays.rounded`), int64 [I] or [I, O]."""
    return np.asarray(jax.device_get(delays_lib.rounded(_array(layer.delay), kernel_size)), np.int64)


def _branches(steps: np.ndarray, weight: np.ndarray):
    """[(delay in steps [I], weight [O, I])]: one pair per channel layout, one per distinct delay value of
    a per-synapse layout (weight [O, I] is kernel.T with the neuron gain folded in)."""
    if steps.ndim == 1:
        return [(steps, weight)]
    return [(np.full(steps.shape[0], tau), np.where(steps.T == tau, weight, np.float32(0.0)))
            for tau in np.unique(steps)]


def delayed_graph(model, neuron, dt: float, nodes: dict, edges: list, max_parameters: int):
    """Writes a DelayedMLP's nodes and edges (Input included) into `nodes`/`edges`; returns (the last
    neuron node's name, its size). NIRError before anything large is built when a per-synapse expansion
    would hold more than `max_parameters` numbers (what `from_nir` reads without being asked)."""
    nir = _nir()
    kernel_size = model.delay.kernel_size
    kernels = [_array(layer.kernel) for layer in model.layers]
    nodes["input"] = nir.Input(input_type=np.array([kernels[0].shape[0]]))
    previous, total = "input", 0
    for k, (layer, spiking) in enumerate(zip(model.layers, model.spiking)):
        kernel = kernels[k]
        inputs, outputs = kernel.shape
        steps = _steps(layer, kernel_size)
        values = len(np.unique(steps)) if steps.ndim == 2 else 1
        total += values * (inputs * outputs + inputs) + 5 * outputs  # weights, delays, bias and neuron fields
        if total > max_parameters:
            raise NIRError(
                f"layer {k}: its per-synapse delays take {values} distinct values, written as {values} branches of "
                f"Delay [{inputs}] + Linear [{outputs}, {inputs}] ({values * (inputs * outputs + inputs):,} numbers); "
                f"the graph would hold {total:,} numbers so far, more than max_parameters = {max_parameters:,}. "
                "Train with model.delay.per='channel', or pass to_nir(..., max_parameters=...) and read the file "
                "with from_nir(..., max_parameters=...)")
        node, gain = _neuron_node(neuron, _neuron_values(neuron, spiking), (outputs,), dt,
                                  _output(model) if k == len(kernels) - 1 else "spiking")
        bias = _array(layer.bias) * gain if layer.bias is not None else None
        neuron_name = f"{type(node).__name__.lower()}{k}"
        branches = _branches(steps, kernel.T * gain[:, None])
        for b, (delay, weight) in enumerate(branches):
            suffix = "" if steps.ndim == 1 else f"_d{int(delay[0])}"
            source = previous
            if np.any(delay):
                source = f"delay{k}{suffix}"
                nodes[source] = nir.Delay(delay=delay.astype(np.float64) * dt)  # seconds
                edges.append((previous, source))
            linear = f"linear{k}{suffix}"
            nodes[linear] = _dense(weight, bias if b == 0 else None)
            edges.extend([(source, linear), (linear, neuron_name)])
        nodes[neuron_name] = node
        previous = neuron_name
    return previous, kernels[-1].shape[1]
