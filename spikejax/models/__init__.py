"""Spiking networks by name (Flax NNX), for inputs [T, B, *frame] (time-major, 0/1 spikes).

  build("mlp", frame_shape, num_classes, Neuron(), seed=0, hidden=(256,))

`model.outputs(x, reads)` returns (outputs, [spikes of every layer, input first]) so that readouts can
count spikes and synaptic operations per layer, and `connections(spikes)` for NeuroBench's counts;
outputs holds what the output layer gives of `reads` ("spikes" [T, B, C], "membrane" [T, B, C]: what a
loss reads, `losses.READS`). The output layer (`output`, `OUTPUTS`) is "spiking" (the model's neuron:
spikes, and its membrane, before reset, when read) or "integrator" (a non-spiking leaky integrator
u[t] = beta u[t-1] + I[t]: membrane only; its entry in the layers is zeros). `model(x)` is (output spikes,
layers), as before outputs existed. Use functionally: `graphdef, params = nnx.split(model)`, then
`nnx.merge(graphdef, params).outputs(x, reads)` inside a jitted step (`build.apply_model`).

  mlp        dense hidden... -> C            (networks.SpikingMLP)
  conv       conv 16-32, avg pool, dense -> C (networks.SpikingConvNet)
  rnn        recurrent hidden... -> C        (networks.SpikingRNN)
  delay_mlp  dense hidden... -> C with learnable synaptic delays (delayed.DelayedMLP, spikejax.delays)

Modules: `neuron` (Neuron settings, learnable neuron parameters), `networks` (mlp, conv, rnn), `delayed`
(the delayed network); this file is the registry.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import jax.numpy as jnp
from flax import nnx

from spikejax.models.delayed import Delay, DelayedMLP
from spikejax.models.networks import SpikingConvNet, SpikingMLP, SpikingRNN
from spikejax.models.neuron import (
    LEARN_SHAPES,
    MARGIN,
    OUTPUTS,
    PARAMETRISATION,
    RAW_NAMES,
    Neuron,
    SpikingNeurons,
    initial_raw,
    learnable_range_error,
    raw_name,
)


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """A model by name: `make(frame_shape, num_classes, neuron, rngs=, hidden=, dtype=, init_scale=, bias=,
    output=)`
    and `check(hidden, neuron_kind)` -> None or what the config must change (read by config validation)."""
    name: str
    make: Callable
    check: Callable[[tuple, str], str | None]
    doc: str = ""
    delayed: bool = False  # takes `delay=` (a `Delay`) and, called, `progress=` (see delayed.DelayedMLP)


def _mlp(frame_shape, num_classes, neuron, *, hidden, **kwargs):
    return SpikingMLP(math.prod(frame_shape), hidden, num_classes, neuron, **kwargs)


def _conv(frame_shape, num_classes, neuron, *, hidden, **kwargs):
    if len(frame_shape) != 3:
        raise ValueError(f"model 'conv' needs [P, H, W] frames, got frame shape {tuple(frame_shape)}")
    return SpikingConvNet(frame_shape, num_classes, neuron, **kwargs, **({"hidden": hidden[0]} if hidden else {}))


def _rnn(frame_shape, num_classes, neuron, *, hidden, **kwargs):
    return SpikingRNN(math.prod(frame_shape), hidden, num_classes, neuron, **kwargs)


def _delay_mlp(frame_shape, num_classes, neuron, *, hidden, delay=None, **kwargs):
    return DelayedMLP(math.prod(frame_shape), hidden, num_classes, neuron, delay=delay or Delay(), **kwargs)


MODELS = {
    "mlp": ModelEntry("mlp", _mlp, lambda hidden, kind: None, "dense F-hidden...-C"),
    "conv": ModelEntry("conv", _conv, lambda hidden, kind: None if len(hidden) == 1 else
                       f"model.hidden = {tuple(hidden)!r}: the conv model takes one dense width, e.g. (512,)",
                       "conv 16-32, avg pool, dense hidden-C"),
    "rnn": ModelEntry("rnn", _rnn, lambda hidden, kind: None if kind == "lif" and hidden else
                      f"model.name = 'rnn' needs model.neuron.kind = 'lif' (got {kind!r}) and at least one hidden "
                      f"layer (got {tuple(hidden)!r})", "recurrent hidden...-C"),
    "delay_mlp": ModelEntry("delay_mlp", _delay_mlp, lambda hidden, kind: None,
                            "dense F-hidden...-C, learnable synaptic delays (model.delay)", delayed=True),
}


def build(name: str, frame_shape: Sequence[int], num_classes: int, neuron: Neuron, *, seed: int,
          hidden: Sequence[int] = (), dtype="float32", init_scale: float = 1.0, bias: bool = True,
          delay: Delay | None = None, output: str = "spiking") -> nnx.Module:
    """A model by name (`MODELS`: "mlp", "conv", "rnn" or "delay_mlp") for inputs [T, B, *frame_shape];
    `bias=False` leaves out every bias (some neuromorphic chips have none); `delay`: the delay settings of a
    delayed model (default `Delay()`), ignored by the others; `output`: the output layer (`OUTPUTS`)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {list(MODELS)}")
    if output not in OUTPUTS:
        raise ValueError(f"unknown output {output!r}; choose one of {list(OUTPUTS)}")
    entry = MODELS[name]
    extra = {"delay": delay} if entry.delayed else {}
    return entry.make(frame_shape, num_classes, neuron, rngs=nnx.Rngs(seed), hidden=tuple(hidden),
                      dtype=jnp.dtype(dtype), init_scale=init_scale, bias=bias, output=output, **extra)


def takes_progress(model) -> bool:
    """Whether `model(x, progress=...)` reads the training progress (a delayed model's annealed width)."""
    return bool(getattr(model, "takes_progress", False))


__all__ = ["LEARN_SHAPES", "MARGIN", "MODELS", "OUTPUTS", "PARAMETRISATION", "RAW_NAMES", "Delay", "DelayedMLP",
           "ModelEntry", "Neuron", "SpikingConvNet", "SpikingMLP", "SpikingNeurons", "SpikingRNN", "build",
           "initial_raw", "learnable_range_error", "raw_name", "takes_progress"]
