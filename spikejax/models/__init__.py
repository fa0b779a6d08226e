"""Spiking networks by name (Flax NNX), for inputs [T, B, *frame] (time-major, 0/1 spikes).

  build("mlp", frame_shape, num_classes, Neuron(), seed=0, hidden=(256,))

Inputs are time-major [T, B, *frame]: time first (a batch-major [B, T, ...] array cannot be told apart when
B == T; `time_steps=T` makes a model refuse any other T, and `build.model` sets it from data.time_bins).

  spikes = model(x)                               output spikes [T, B, C], what a spike loss takes
  spikes, layers = model(x, return_layers=True)   and [spikes of every layer, input first]
  outputs, layers = model.outputs(x, reads)       outputs: what the output layer gives of `reads`

Readouts count spikes and synaptic operations per layer from the layers, and `connections(layers)` gives
NeuroBench's counts; outputs holds "spikes" [T, B, C] and "membrane" [T, B, C] as read (what a loss
reads, `losses.READS`). The output layer (`output`, `OUTPUTS`) is "spiking" (the model's neuron: spikes,
and its membrane, before reset, when read) or "integrator" (a non-spiking leaky integrator
u[t] = beta u[t-1] + I[t]: membrane only, so `model(x)` raises; its entry in the layers is zeros).
Kernels start from variance scaling over the fan-in with `init_scale` (default `DEFAULT_INIT_SCALE` = 6.0,
the configs' value: the output layer fires on every configured dataset's input). Use functionally:
`graphdef, params = nnx.split(model)`, then `nnx.merge(graphdef, params).outputs(x, reads)` inside a
jitted step (`build.apply_model`).

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
from spikejax.models.networks import DEFAULT_INIT_SCALE, SpikingConvNet, SpikingMLP, SpikingRNN
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
    output=, time_steps=)`
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
          hidden: Sequence[int] = (), dtype="float32", init_scale: float = DEFAULT_INIT_SCALE, bias: bool = True,
          delay: Delay | None = None, output: str = "spiking", time_steps: int | None = None) -> nnx.Module:
    """A model by name (`MODELS`: "mlp", "conv", "rnn" or "delay_mlp") for time-major inputs
    [T, B, *frame_shape]; `bias=False` leaves out every bias (some neuromorphic chips have none); `delay`: the
    delay settings of a delayed model (default `Delay()`), ignored by the others; `output`: the output layer
    (`OUTPUTS`); `time_steps`: the T every input must have, a ValueError naming both otherwise (None: any)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {list(MODELS)}")
    if output not in OUTPUTS:
        raise ValueError(f"unknown output {output!r}; choose one of {list(OUTPUTS)}")
    if time_steps is not None and (isinstance(time_steps, bool) or not isinstance(time_steps, int) or time_steps < 1):
        raise ValueError(f"time_steps must be a positive int or None, got {time_steps!r}")
    entry = MODELS[name]
    extra = {"delay": delay} if entry.delayed else {}
    return entry.make(frame_shape, num_classes, neuron, rngs=nnx.Rngs(seed), hidden=tuple(hidden),
                      dtype=jnp.dtype(dtype), init_scale=init_scale, bias=bias, output=output, time_steps=time_steps,
                      **extra)


def takes_progress(model) -> bool:
    """Whether `model(x, progress=...)` reads the training progress (a delayed model's annealed width)."""
    return bool(getattr(model, "takes_progress", False))


__all__ = ["DEFAULT_INIT_SCALE", "LEARN_SHAPES", "MARGIN", "MODELS", "OUTPUTS", "PARAMETRISATION", "RAW_NAMES",
           "Delay", "DelayedMLP", "ModelEntry", "Neuron", "SpikingConvNet", "SpikingMLP", "SpikingNeurons",
           "SpikingRNN", "build", "initial_raw", "learnable_range_error", "raw_name", "takes_progress"]
