"""Neuron kinds by name: the function that runs one, the parameters it takes, and the NIR node it exports
as. Config validation, the models and NIR export read these entries.

  register_kind("lif", lif, parameters=("beta", "threshold"), nir_node="LIF")
  get_kind("lif").function(currents, beta=0.9, threshold=1.0, ...)   # [T, ...] -> spikes [T, ...]

A kind's function takes currents [T, ...] and its `parameters` (numbers or arrays broadcastable to one
step), plus the options every LIF takes (reset, surrogate, surrogate_params, detach_reset,
recompute_chunk, implementation). `nir_node` names the NIR node type `spikejax.nir` writes for it (None:
not exportable; export refuses it by name).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable


@dataclasses.dataclass(frozen=True)
class NeuronKind:
    name: str
    function: Callable
    parameters: tuple[str, ...]
    nir_node: str | None = None
    title: str = ""
    dense: Callable | None = None


_KINDS: dict[str, NeuronKind] = {}


def register_kind(name: str, function: Callable, *, parameters: tuple[str, ...], nir_node: str | None = None,
                  title: str = "", dense: Callable | None = None) -> NeuronKind:
    """Registers a neuron kind; ValueError if the name is taken. `dense`: an op running a dense layer and
    these neurons as one ((x [T, B, F], kernel [F, N], bias [N] or None, **parameters, **options) ->
    spikes [T, B, N]); None: the models apply the layer over all T*B rows, then `function`."""
    if name in _KINDS:
        raise ValueError(f"neuron kind {name!r} is already registered")
    kind = NeuronKind(name, function, tuple(parameters), nir_node, title or name, dense)
    _KINDS[name] = kind
    return kind


def get_kind(name: str) -> NeuronKind:
    """The kind registered as `name`; a ValueError lists the kinds otherwise."""
    if name not in _KINDS:
        raise ValueError(f"unknown neuron kind {name!r}; choose one of {kinds()}")
    return _KINDS[name]


def kinds() -> list[str]:
    """The registered kinds' names, in registration order."""
    return list(_KINDS)
