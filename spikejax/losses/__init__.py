"""Output losses of spiking classifiers, and their registry.

Every loss takes the output layer's outputs [T, B, C] (floating, time-major; spikes or membrane, as the
loss declares) and integer labels [B], and returns the mean over the batch as a scalar float32. `mask` [B]
(optional, 0/1) averages over the real examples of a padded batch only.

  count_mse, count_softmax, spike_nll     on spike counts (`spikejax.losses.counts`, the paper's three)
  spike_rate_penalty                      hidden-layer firing-rate regulariser

Labels must lie in [0, C). Concrete (non-traced) labels outside it raise a ValueError naming them; under
jit, where they cannot be inspected, such an example's loss is NaN, never a finite wrong value (one_hot and
take_along_axis do not check ranges: label -1 would silently read class C-1). Examples with mask 0 are
not checked and count nowhere.

The registry (`spikejax.losses.registry`): `register` a loss of your own with its parameters and it
trains (`--loss=NAME`) and compares (`--sweep.losses`) like the built-in ones:

  from spikejax import losses

  @losses.register("margin", params=(losses.Param("margin", 1.0, check=losses.positive, grid=(0.5, 1.0)),))
  def margin_loss(spikes, labels, *, margin=1.0, mask=None): ...

This package imports only jax and numpy.
"""
from spikejax.losses.counts import count_mse, count_softmax, spike_nll, spike_rate_penalty
from spikejax.losses.registry import (
    READS,
    Entry,
    Loss,
    Param,
    Selection,
    entry,
    get,
    labels,
    names,
    positive,
    positive_int,
    rate,
    register,
    register_variant,
    selected_loss,
    selected_readout,
    selection,
    unregister,
)

__all__ = ["READS", "Entry", "Loss", "Param", "Selection", "count_mse", "count_softmax", "entry", "get", "labels",
           "names", "positive", "positive_int", "rate", "register", "register_variant", "selected_loss",
           "selected_readout", "selection", "spike_nll", "spike_rate_penalty", "unregister"]


def get_loss(name: str):
    """The function of the loss registered as `name` (or an alias)."""
    return get(name).fn
