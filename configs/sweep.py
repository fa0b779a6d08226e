"""The loss comparison's grid, seeds and stages (spikejax.sweep), for experiments.compare_losses.

  python -m experiments.compare_losses                                   # this grid, digits_events
  python -m experiments.compare_losses --sweep=configs/sweep.py:quick    # the smoke setting (--quick)
  python -m experiments.compare_losses --sweep.seeds=10 --sweep.learning_rates=1e-3,3e-3

Tuning: every loss x learning rate x that loss's parameters, `tune_seeds` seeds each, chosen on validation
accuracy; final: the chosen configuration of each loss with `seeds` fresh seeds, tested once.
"""
import ml_collections
from ml_collections.config_dict import placeholder


def get_config(setting: str = "") -> ml_collections.ConfigDict:
    s = ml_collections.ConfigDict()
    s.losses = ("mse", "softmax", "nll", "nll_window")
    s.seeds = 5  # final stage: seeds 0 .. seeds-1
    s.tune_seeds = 2  # tuning stage: seeds 1000 .. 1000+tune_seeds-1
    s.epochs = 8  # both stages (None: the run config's); 8 keeps the default comparison under 15 min on 2 cores
    s.max_replicas = placeholder(int)  # None: each stage in one program; N: programs of at most N replicas
    s.learning_rates = (1e-3, 3e-3, 1e-2)
    s.mse_true_rates = (0.5, 0.8)  # count-MSE targets: true class rate x T spikes, the others false rate x T
    s.mse_false_rates = (0.05,)
    s.temperatures = (0.5, 2.0)
    s.min_counts = (0.5, 2.0)
    s.windows = (5, 10)
    if setting == "quick":  # about a minute on 2 CPU cores, for smoke runs; no statistics worth reading
        s.seeds, s.tune_seeds, s.epochs = 2, 1, 2
        s.learning_rates = (3e-3,)
        s.mse_true_rates, s.mse_false_rates = (0.2,), (0.02,)
        s.temperatures, s.min_counts, s.windows = (1.0,), (1.0,), (10,)
    elif setting:
        raise ValueError(f"unknown sweep setting {setting!r}; the one setting is 'quick'")
    return s
