"""Output losses of spiking classifiers, and their registry.

Every loss takes the output layer's outputs [T, B, C] (floating, time-major; spikes or membrane, as the
loss declares) and integer labels [B], and returns the mean over the batch as a scalar float32. `mask` [B]
(optional, 0/1) averages over the real examples of a padded batch only. A tuple, list or dict (a model's
(spikes, layers) pair or its outputs dict) or an array of another rank is a ValueError naming the loss and
the expected shape ("spike_nll: expected spikes [T, B, C] (time-major), got shape (16, 10)"), raised at
trace time: shapes are static, so a jitted step pays nothing for it.

  count_mse, count_softmax, spike_nll     on spike counts (`spikejax.losses.counts`, the paper's three)
  rate_cross_entropy                      per-step CE on the spikes (`spikejax.losses.rates`)
  first_spike_cross_entropy               CE of negative first-spike times + early term (`.timing`)
  tet_cross_entropy                       per-step CE of the membrane + MSE regulariser (`.membrane`)
  mean_membrane_cross_entropy,            CE of the time-mean, max-over-time, summed per-step softmax
  max_membrane_cross_entropy,             and exponentially time-weighted membrane (`.membrane`)
  summed_softmax_cross_entropy,
  exp_weighted_membrane_cross_entropy
  spike_rate_penalty                      hidden-layer firing-rate regulariser

Registered names (`--loss`): mse, softmax, nll (+ variant nll_window), rate_ce, first_spike (reading
spikes); tet, mean_membrane, max_membrane, summed_softmax, exp_membrane (reading the output membrane). Each
predicts by its own readout (`spikejax.readout`): cumulative counts (the spike-count losses and rate_ce),
the first output to fire (first_spike), argmax of the prefix mean (tet, mean_membrane), maximum, summed
softmax or exp-weighted sum of the membrane.

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
# the registration order (names(), labels(), the sweep's grid and reports): spike losses, then membrane losses
from spikejax.losses import counts, rates, timing, membrane  # noqa: I001, F401
from spikejax.losses.counts import count_mse, count_softmax, spike_nll, spike_rate_penalty
from spikejax.losses.membrane import (
    exp_weighted_membrane_cross_entropy,
    max_membrane_cross_entropy,
    mean_membrane_cross_entropy,
    summed_softmax_cross_entropy,
    tet_cross_entropy,
)
from spikejax.losses.rates import rate_cross_entropy
from spikejax.losses.registry import (
    READS,
    Entry,
    Loss,
    Param,
    Selection,
    entry,
    finite,
    get,
    labels,
    names,
    nonnegative,
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
from spikejax.losses.timing import first_spike_cross_entropy, first_spike_times

__all__ = ["READS", "Entry", "Loss", "Param", "Selection", "count_mse", "count_softmax", "entry",
           "exp_weighted_membrane_cross_entropy", "finite", "first_spike_cross_entropy", "first_spike_times", "get",
           "labels", "max_membrane_cross_entropy", "mean_membrane_cross_entropy", "names", "nonnegative", "positive",
           "positive_int", "rate", "rate_cross_entropy", "register", "register_variant", "selected_loss",
           "selected_readout", "selection", "spike_nll", "spike_rate_penalty", "summed_softmax_cross_entropy",
           "tet_cross_entropy", "unregister"]


def get_loss(name: str):
    """The function of the loss registered as `name` (or an alias)."""
    return get(name).fn
