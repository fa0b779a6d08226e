"""The loss comparison's grid, seeds and stages (spikejax.sweep), for experiments.compare_losses.

  python -m experiments.compare_losses                                   # this grid, digits_events
  python -m experiments.compare_losses --sweep=configs/sweep.py:quick    # the smoke setting (--quick)
  python -m experiments.compare_losses --sweep.seeds=20 --sweep.learning_rates='(1e-3,3e-3)'
  python -m experiments.compare_losses --sweep.grid.softmax.temperature='(0.25,0.5,1.0,2.0)'
  python -m experiments.compare_losses --sweep.halving_fraction=0 --sweep.extend=False   # the plain grid
  python -m experiments.compare_losses --sweep.max_replicas=64 --sweep.replica_devices=4 # a program's replicas
                                                               # split over 4 groups of devices (a pod)
  python -m experiments.compare_losses --sweep.losses=all --sweep.seeds=12   # every registered loss and variant
  python -m experiments.compare_losses --sweep.losses=all --sweep.seeds=12 --sweep.energy_penalties='(0.1,1.0,10.0)'
  (12 seeds: with all 11 labels the family has 54 hypotheses, which 10 seeds cannot pass; see
  spikejax.compare.report.seeds_warning)

Tuning: every loss x learning rate x that loss's grid, `tune_seeds` seeds each (seed k validated on fold k
of the training split), the worse half per loss dropped at `halving_fraction` of the steps, a choice on a
grid edge extended outward (`extend`, `max_extensions`), chosen on mean validation accuracy; final: the
chosen configuration of each loss with `seeds` fresh seeds, tested once; energy (`energy_penalties`): the
chosen configurations again, same seeds, at each weight of the hidden-layer spike-rate penalty, reported
apart (accuracy against hidden-layer SynOps). `losses` names comparison labels, or is `all` (every one):
every registered loss is one, and variants add more (nll_window: spike NLL over sliding windows);
`grid.<label>.<param>` starts at the registry's default grid (`spikejax.losses`).

Devices: every program (at most `max_replicas` replicas) runs data parallel over all n devices; with
`replica_devices` k > 1 its replicas are split over k groups of n/k devices each (a 2-D mesh, replica x
data: k must divide n, and with several hosts each host's device count), for sweeps larger than one
device's memory. A program whose replica count is not a multiple of k is padded with copies of its last
replica (compute only; never reported or checkpointed). Results match k = 1 up to float32 summation order.

`smoke` (set by the quick setting) marks a smoke run: its report shows no confidence intervals, tests or
verdicts.
"""
import ml_collections
from ml_collections.config_dict import placeholder

from spikejax import losses


def default_grid(quick: bool = False) -> ml_collections.ConfigDict:
    """{label: {param: values}} of every comparison label, from the registry; `quick` keeps one value per
    axis (the parameter's default when the grid holds it, else the grid's middle value)."""
    grid = ml_collections.ConfigDict()
    for label in losses.labels():
        entry = losses.entry(label)
        spec = losses.get(entry.loss)
        axes = ml_collections.ConfigDict()
        for name, values in entry.grid.items():
            default = spec.param(name).default
            one = default if default in values else values[len(values) // 2]
            axes[name] = (one,) if quick else tuple(values)
        grid[label] = axes
    return grid


def get_config(setting: str = "") -> ml_collections.ConfigDict:
    s = ml_collections.ConfigDict()
    s.losses = ("mse", "softmax", "nll", "nll_window")
    s.seeds = 10  # final stage: seeds 0 .. seeds-1 (10 paired seeds: a sign-flip test can reach p = 2/2^10)
    s.tune_seeds = 3  # tuning stage: seeds 1000 + k, each holding out validation fold k (<= 1/validation_fraction)
    # a second, disjoint seed set (final seeds seed_offset .. seed_offset+seeds-1, tuning seeds moved on too);
    # with --reproduce=<first run>/comparison.json the report marks which verdicts both seed sets reach
    s.seed_offset = 0
    s.epochs = 8  # both stages (None: the run config's)
    s.max_replicas = placeholder(int)  # None: one program per tuning fold and one final; N: at most N replicas each
    s.replica_devices = 1  # k: a program's replicas split over k groups of devices (k divides the device count)
    s.learning_rates = (3e-4, 1e-3, 3e-3)
    s.grid = default_grid()
    s.extend = True  # a choice on a grid edge extends that axis one step outward (then tuned, only the new points)
    s.max_extensions = 1  # rounds of extension at most
    s.halving_fraction = placeholder(float)  # None or 0 (on the command line): no halving
    s.halving_fraction = 0.25  # successive halving: after this fraction of the steps drop each loss's worse half
    s.smoke = False  # True: a smoke run; comparison.json records it and comparison.md shows no CIs, tests or verdicts
    # matched energy: each selected configuration also trained, with the final seeds, at each of these weights w
    # of the hidden-layer spike-rate penalty, mean (rate - loss.target_rate)^2 (() : no such runs). For digits_events
    # use (0.1, 1.0, 10.0): at w = 0 hidden rates are 0.13-0.19 spikes/step, a penalty of (0.17 - 0.02)^2 ~ 0.02
    # against losses ~ 0.2, so w = 0.1 nudges, 1 weighs ~10% of the loss and 10 reaches the target rate (one
    # seed, 8 epochs: nll's hidden SynOps 14.7k -> 9.5k, 3.8k, 1.4k; mse 9.7k -> 7.1k, 3.5k, 1.6k; tet 11.0k -> 10.5k,
    # 8.8k, 5.6k); at the target (0.02) the penalty stops pulling, so larger weights add nothing
    s.energy_penalties = ()
    s.energy_seeds = placeholder(int)  # None: every final seed; N: the first N final seeds (paired; a cheaper stage)
    if setting == "quick":  # about a minute on 2 CPU cores, for smoke runs; no statistics worth reading
        s.smoke = True
        s.seeds, s.tune_seeds, s.epochs = 2, 1, 2
        s.learning_rates = (3e-3,)
        s.grid = default_grid(quick=True)
        s.extend, s.halving_fraction = False, None
    elif setting:
        raise ValueError(f"unknown sweep setting {setting!r}; the one setting is 'quick'")
    return s
