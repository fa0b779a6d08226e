"""Robust selection without training: the validation folds of the tuning seeds, successive halving's cut, the
edge extension of a grid, and the sweep fields that switch them."""
import hashlib

import ml_collections
import numpy as np
import pytest

from configs import default
from configs import sweep as sweep_configs
from spikejax.compare import selection, sweep
from spikejax.data import split
from spikejax.errors import ConfigError


def test_folds_follow_the_hash_rule_on_a_tiny_example():
    """Class 0 = samples 0-3, class 1 = samples 4-8, fraction 0.25 (4 folds). The BLAKE2b digests of
    "spikejax-validation/0/<i>" begin 6a69, 939f, 6868, dc47 | c5a8, adaf, 4e9a, 61b1, 4ffc, so class 0 in hash
    order is 2, 0, 1, 3 (fold bounds round(k * 0.25 * 4) = 0, 1, 2, 3, 4) and class 1 is 6, 8, 7, 5, 4 (bounds
    round(k * 1.25) = 0, 1, 2 (2.5 rounds to even), 4, 5)."""
    assert [hashlib.blake2b(f"spikejax-validation/0/{i}".encode(), digest_size=8).hexdigest()[:4]
            for i in range(9)] == ["6a69", "939f", "6868", "dc47", "c5a8", "adaf", "4e9a", "61b1", "4ffc"]
    labels = [0, 0, 0, 0, 1, 1, 1, 1, 1]
    assert split.fold_count(0.25) == 4 and split.fold_count(0.1) == 10 and split.fold_count(0.3) == 3
    expected = [[2, 6], [0, 8], [1, 5, 7], [3, 4]]
    for fold, held in enumerate(expected):
        kept, out = split.holdout(labels, 0.25, fold=fold)
        assert out.tolist() == held, fold
        assert sorted(kept.tolist() + out.tolist()) == list(range(9))
    with pytest.raises(ValueError, match="folds 0 .. 3"):
        split.holdout(labels, 0.25, fold=4)


def test_folds_are_disjoint_cover_the_split_are_stratified_and_fold_0_is_the_single_runs_hold_out():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, size=1437)
    folds = [split.holdout(labels, 0.1, fold=k)[1] for k in range(10)]
    assert sum(len(f) for f in folds) == len(labels) == len(np.unique(np.concatenate(folds)))  # disjoint, cover
    for fold in folds:  # stratified: each class within one sample of 10% of its size
        for c in range(10):
            n = int(np.sum(labels == c))
            assert abs(int(np.sum(labels[fold] == c)) - n / 10) <= 1
    # fold 0 is the hold-out as it always was: the first round(0.1 n_c) of each class's hash order
    old = []
    for c in range(10):
        members = np.flatnonzero(labels == c).tolist()
        old += sorted(members, key=lambda i: split._rank(i, 0))[:round(0.1 * len(members))]
    assert folds[0].tolist() == sorted(old)
    # a class of one sample keeps it for training in every fold
    assert all(0 not in split.holdout([0, 1, 1, 1, 1], 0.5, fold=k)[1] for k in range(2))


def _record(label, lr, seed, accuracy, frozen_at=None, **params):
    return {"row": {"label": label, "loss": label, "learning_rate": lr, **params, "seed": seed},
            "frozen_at": frozen_at, "validation": {"accuracy": accuracy, "loss": 1.0}}


def test_halving_keeps_the_better_half_per_loss_and_ties_and_drops_the_diverged():
    records = [_record("mse", lr, s, acc) for lr, accs in ((1e-3, (0.5, 0.7)), (3e-3, (0.9, 0.2)), (1e-2, (0.8, 0.8)),
                                                            (3e-2, (0.1, 0.1))) for s, acc in enumerate(accs)]
    # nll: 3 configurations, ceil(3/2) = 2 kept; the second and third tie at 0.6, so both stay
    records += [_record("nll", 1e-3, 0, 0.9), _record("nll", 3e-3, 0, 0.6), _record("nll", 1e-2, 0, 0.6)]
    records += [_record("softmax", 1e-3, 0, 0.99, frozen_at=3), _record("softmax", 3e-3, 0, 0.2)]
    cut = selection.halve(records)
    # means 0.6, 0.55, 0.8, 0.1: 0.8 and 0.6 kept (in grid order)
    assert [r["learning_rate"] for r in cut["mse"]["kept"]] == [1e-3, 1e-2]
    assert [d["row"]["learning_rate"] for d in cut["mse"]["dropped"]] == [3e-3, 3e-2]
    assert [r["learning_rate"] for r in cut["nll"]["kept"]] == [1e-3, 3e-3, 1e-2]
    assert [r["learning_rate"] for r in cut["softmax"]["kept"]] == [3e-3]  # the diverged one goes, whatever its mean
    assert cut["softmax"]["dropped"][0]["diverged"]
    # a configuration halving dropped is never selected, though its (early) mean is the best
    dropped = [{**r, "dropped_at": 3} for r in records
               if r["row"]["label"] == "mse" and r["row"]["learning_rate"] == 3e-3]
    rest = [_record("mse", 1e-3, s, 0.4) for s in range(2)]
    chosen = selection.select(dropped + rest)
    assert chosen["mse"]["row"]["learning_rate"] == 1e-3 and chosen["mse"]["candidates"][0]["dropped_at"] == 3


AXES = [selection.Axis("learning_rate", log_scale=True), selection.Axis("true_rate"),
        selection.Axis("window", integer=True)]


def _rows(lrs=(3e-4, 1e-3, 3e-3), rates=(0.2, 0.5, 0.8), windows=(5, 10, 20)):
    return [{"label": "x", "loss": "x", "learning_rate": lr, "true_rate": r, "window": w}
            for lr in lrs for r in rates for w in windows]


def _allowed(row):  # a rate in [0, 1], a window <= T = 30, lr in (0, 1]
    return 0 <= row["true_rate"] <= 1 and 1 <= row["window"] <= 30 and 0 < row["learning_rate"] <= 1


def test_an_interior_choice_is_not_extended():
    chosen = {"label": "x", "loss": "x", "learning_rate": 1e-3, "true_rate": 0.5, "window": 10}
    assert selection.extend(chosen, _rows(), AXES, _allowed) == ([], [])


def test_edge_choices_extend_each_axis_one_step_outward_within_its_bounds():
    chosen = {"label": "x", "loss": "x", "learning_rate": 3e-4, "true_rate": 0.8, "window": 20}
    rows, moves = selection.extend(chosen, _rows(), AXES, _allowed)
    by_axis = {m["axis"]: m for m in moves}
    # lr: geometric, the edge's own ratio (1e-3 / 3e-4) once more, downward
    assert by_axis["learning_rate"]["direction"] == "down"
    assert by_axis["learning_rate"]["to"] == pytest.approx(3e-4 * 3e-4 / 1e-3)
    # true_rate: 0.8 + 0.3 = 1.1 is no rate; half the step, 0.95, is
    assert by_axis["true_rate"]["direction"] == "up" and by_axis["true_rate"]["to"] == pytest.approx(0.95)
    # window: 20 + 10 = 30 = T, allowed; an integer
    assert by_axis["window"]["to"] == 30 and isinstance(by_axis["window"]["to"], int)
    # each new point changes one axis through the chosen configuration
    assert len(rows) == 3 and all(sum(r[k] != chosen[k] for k in chosen) == 1 for r in rows)
    # at the bound: nothing beyond a window of 30 or a rate of 1 is allowed
    chosen = {**chosen, "true_rate": 1.0, "window": 30, "learning_rate": 1e-3}
    rows, moves = selection.extend(chosen, _rows(rates=(0.5, 1.0), windows=(20, 30)), AXES, _allowed)
    assert rows == [] and {m["axis"] for m in moves} == {"true_rate", "window"}
    assert all(m["at_bound"] for m in moves)
    # an axis of one value is fixed, not tuned: never extended
    chosen = {"label": "x", "loss": "x", "learning_rate": 1e-3, "true_rate": 0.5, "window": 10}
    assert selection.extend(chosen, _rows(lrs=(1e-3,), rates=(0.5,), windows=(10,)), AXES, _allowed) == ([], [])


def test_the_sweep_extends_a_loss_parameter_within_its_registry_bounds():
    """sweep's axes and bounds read the registry and the run config: count-MSE's true_rate at 0.8 moves to
    0.95 (1.1 is no rate); nll_window's window at 20 moves to 30 (T = 30)."""
    s = sweep_configs.get_config()
    s.grid.mse.true_rate, s.grid.nll_window.window = (0.2, 0.5, 0.8), (5, 10, 20)  # grids with room to move
    config = default.get_config()
    grid = sweep.configurations(s, config)
    mse = [g for g in grid if g["label"] == "mse"]
    chosen = {**mse[-1]}  # lr 3e-3, true_rate 0.8: two edges
    rows, moves = selection.extend(chosen, mse, sweep._axes("mse", grid), sweep._allowed(config))
    assert {m["axis"]: m["to"] for m in moves} == {"learning_rate": pytest.approx(9e-3),
                                                   "true_rate": pytest.approx(0.95)}
    window = [g for g in grid if g["label"] == "nll_window"]
    chosen = [g for g in window if g["window"] == 20 and g["learning_rate"] == 1e-3][0]
    rows, moves = selection.extend(chosen, window, sweep._axes("nll_window", grid), sweep._allowed(config))
    assert [(m["axis"], m["to"]) for m in moves] == [("window", 30)]
    rows, moves = selection.extend(rows[0], window + rows, sweep._axes("nll_window", grid), sweep._allowed(config))
    assert moves == [{"axis": "window", "at": 30, "direction": "up", "at_bound": True}]


def test_the_defaults_and_the_new_sweep_fields():
    s = sweep_configs.get_config()
    assert s.seeds >= 10 and s.tune_seeds >= 3 and min(s.learning_rates) == 3e-4
    assert s.extend and s.max_extensions == 1 and s.halving_fraction == 0.25 and s.smoke is False
    for label, axes in s.grid.items():
        for name, values in axes.items():
            assert len(values) >= 3 or name == "false_rate", (label, name, values)
    quick = sweep_configs.get_config("quick")
    assert not quick.extend and quick.halving_fraction is None and quick.smoke is True  # a smoke run: no CIs
    for field, value, message in (("extend", 1, "True or False"), ("smoke", "yes", "True or False"),
                                  ("max_extensions", -1, "integer >= 0"),
                                  ("halving_fraction", 1.0, ">= 0 and < 1"), ("learning_rates", (2.0,), "<= 1")):
        bad = ml_collections.ConfigDict({**sweep_configs.get_config().to_dict(), field: value})
        with pytest.raises(ConfigError, match=f"sweep field {field}.*{message}"):
            sweep.validate(bad)
    s.tune_seeds = 11  # a validation fraction of 0.1 has 10 disjoint folds
    with pytest.raises(ConfigError, match="tune_seeds = 11: each tuning seed holds out its own validation fold"):
        sweep.compare_losses(default.get_config(), s, "/nonexistent")


def test_losses_all_compares_every_registered_label_in_one_program_and_unknown_labels_are_named():
    """--sweep.losses=all (the flag parses it as ("all",)) validates and stands for every comparison label of
    the registry, spike and membrane losses alike; their grid trains in one replica program on the default
    model (spiking output: the membrane losses read its membrane). A label not registered is refused with
    the known ones listed; "all" beside other labels is no label."""
    import os

    from absl import flags
    from ml_collections import config_flags

    from spikejax import losses
    from spikejax.compare import replicas

    path = os.path.join(os.path.dirname(__file__), "..", "configs", "sweep.py")
    argv = ["compare_losses", f"--sweep={path}", "--sweep.losses=all", "--sweep.energy_penalties=(0.1,1.0)"]
    values = flags.FlagValues()
    config_flags.DEFINE_config_file("sweep", None, flag_values=values, sys_argv=argv)
    values(argv)
    s = values.sweep
    assert tuple(s.losses) == ("all",) and tuple(s.energy_penalties) == (0.1, 1.0)
    sweep.validate(s)
    assert sweep.labels(s) == losses.labels() == list(sweep.expanded(s).losses)
    assert {"mse", "softmax", "nll", "nll_window", "first_spike", "tet", "max_membrane", "exp_membrane"} <= set(
        sweep.labels(s))
    config = default.get_config()
    grid = sweep.configurations(s, config)
    assert [g["label"] for g in grid if g is grid[0] or g["label"] != grid[grid.index(g) - 1]["label"]] == \
        losses.labels()  # every label, in registry order, each as one block
    selection, hyper = replicas.hyperparameters([{k: v for k, v in g.items() if k != "label"} for g in grid], config)
    assert set(selection.names) == set(losses.names()) and set(replicas.reads(selection)) == {"spikes", "membrane"}
    assert hyper["loss"].shape == (len(grid),) and replicas.rate_penalty(hyper) == 0.0
    for bad, message in ((("mse", "nll_windowed"), r"unknown: \['nll_windowed'\]"),
                         (("all", "mse"), r"unknown: \['all'\]"), (("nll", "nll"), "--import")):
        s.losses = bad
        with pytest.raises(ConfigError, match=r"sweep field losses = .*'all' \(every label\) or a tuple of distinct "
                                              rf"names among \['mse', 'softmax'.*{message}"):
            sweep.validate(s)
    s.losses, s.energy_penalties = ("nll",), (0.0,)
    with pytest.raises(ConfigError, match=r"energy_penalties = \[0.0\]: must be a tuple .* numbers > 0"):
        sweep.validate(s)
    s.energy_penalties, s.seeds, s.energy_seeds, s.seed_offset = (1.0,), 4, 5, 10
    with pytest.raises(ConfigError, match=r"energy_seeds = 5: .* must be <= seeds \(4\)"):
        sweep.validate(s)
    s.energy_seeds = 2
    sweep.validate(s)
    assert sweep.energy_seeds(s) == [10, 11]  # the first final seeds
    assert [(r["rate_penalty"], r["label"], r["seed"]) for r in sweep.energy_rows(
        [{"label": "a"}, {"label": "b"}], (0.5, 2.0), [10, 11])] == [
        (0.5, "a", 10), (0.5, "a", 11), (0.5, "b", 10), (0.5, "b", 11),
        (2.0, "a", 10), (2.0, "a", 11), (2.0, "b", 10), (2.0, "b", 11)]  # weight-major: a program per weight
