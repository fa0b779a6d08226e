"""The loss comparison: a grid of configurations per loss, tuned on validation folds, one chosen per loss,
then trained with fresh seeds and tested once. Each stage is a set of programs (`spikejax.compare.program`:
replicas trained together, resumable).

  sweep_config = configs/sweep.py's get_config()          the grid, the seeds and the stages
  validate(sweep_config)
  result = compare_losses(config, sweep_config, workdir)  tune -> select -> (extend)* -> final (-> energy)

  tune   every configuration of the grid (per loss: learning rates x that loss's parameters) with
         `tune_seeds` seeds 1000 + k, k = 0, 1, ...; seed 1000 + k holds out validation fold k of the
         training split (`spikejax.data.split`: disjoint, stratified, the same on every machine) and trains
         on the rest, so selection reads tune_seeds x 10% of the training split (at a validation fraction of
         0.1); one program per fold (its replicas share that fold's data). Validation accuracy only: the test
         split is not touched. With `halving_fraction` (successive halving, as in ASHA/Hyperband) every
         program stops at that fraction of its steps, each loss's worse half of configurations (mean
         validation accuracy over the seeds at that step, `selection.halve`) is dropped, and the rest train on
         from that checkpoint to the full length.
  select per loss, the configuration with the highest mean final validation accuracy over its tuning seeds
         (`selection.select`); a configuration any of whose seeds diverged, or that halving dropped, is never
         selected; ties go to the first in grid order. A loss all of whose configurations diverged is
         reported as diverged and has no final stage.
  extend when a loss's choice lies on the edge of an axis (the learning rate or a tuned loss parameter,
         `selection.extend`), that axis is extended one step outward through the chosen point (a ratio on a
         log axis, within the parameter's bounds), only the new configurations are tuned (all tuning seeds,
         full length, no halving) and selection is redone, up to `max_extensions` rounds (`extend=False`:
         none). The selection records each label's moves ("extended") and the edges it could not pass
         ("at_bound").
  final  each selected configuration with `seeds` fresh seeds 0, 1, ... (disjoint from the tuning seeds, so
         the reported spread carries no selection bias), trained without fold 0 (the single run's hold-out,
         validated there) and evaluated once on the test split.
  energy with `energy_penalties` (weights w > 0): each selected configuration again with the final seeds
         (the first `energy_seeds` of them, when set), trained with loss + w * spike_rate_penalty of the
         hidden layers (w a per-replica hyperparameter, `replicas`; one program per weight unless
         max_replicas says otherwise), tested once: accuracy against hidden-layer SynOps per label, the final
         stage giving each label's point at the config's loss.rate_penalty (0 by default). The same seeds,
         so paired with the final stage; reported apart (`report`), not part of the hypothesis family.
A replica's seed sets its initial weights and its data order (as a single run's `seed` does): replicas of
equal seeds start from the same weights and see the same batches in the same order, so losses compare
paired, seed by seed, and the spread over seeds includes the data order.

Scale out: `replica_devices` k > 1 splits each program's replicas over k groups of devices, each group
data parallel over the other n/k (`spikejax.compare.program`), so a program too large for one device's
memory runs on several; the results are the same up to float32 summation order, and k may change on
resume. k = 1 (the default): every replica on every device.

Folders: tune/<fold>/<i> (and <i>-rest after a halving), tune/extend<r>/<fold>/<i>, final/<i>, energy/<i>. A rerun of
the same command reads finished programs, redoes the (deterministic) halving and extension decisions from
their results, and resumes the unfinished program.

Labels (the losses as reports name them) are the registry's comparison labels (`spikejax.losses.labels()`):
every registered loss, and variants such as nll_window (spike NLL over sliding windows); sweep.losses =
("all",) (`--sweep.losses=all`) compares every one (`labels`, `expanded`).
"""
from __future__ import annotations

import os

from spikejax import build, loop, losses
from spikejax import config as config_lib
from spikejax.compare import selection
from spikejax.compare.program import program_mesh, run_program
from spikejax.compare.selection import describe, select
from spikejax.errors import ConfigError, RunError
from spikejax.workdir import log

__all__ = ["ALL", "compare_losses", "configurations", "describe", "energy_rows", "energy_seeds", "expanded", "labels",
           "run_program", "select", "validate", "with_seeds"]

TUNE_SEED_OFFSET = 1000
ALL = "all"  # sweep.losses = ("all",) (--sweep.losses=all): every registered comparison label


def labels(sweep) -> list[str]:
    """The compared labels: sweep.losses, ("all",) standing for every registered label (`losses.labels()`,
    registration order: the spike losses, then the membrane losses)."""
    names = [sweep.losses] if isinstance(sweep.losses, str) else list(sweep.losses)
    return losses.labels() if names == [ALL] else names


def expanded(sweep):
    """A copy of `sweep` whose `losses` names every compared label (`labels`): what the stages and the
    report read."""
    import ml_collections

    return ml_collections.ConfigDict({**sweep.to_dict(), "losses": tuple(labels(sweep))})


def _rules() -> dict:
    def values(rule):
        def check(v):
            ok = isinstance(v, (list, tuple)) and len(v) >= 1 and all(rule(x) is None for x in v)
            return None if ok else f"a non-empty tuple of values, each {rule(-1.0) or 'valid'}"
        return check

    def label_names(v):
        known = losses.labels()
        names = [v] if isinstance(v, str) else v
        ok = isinstance(names, (list, tuple)) and names and len(set(names)) == len(names)
        unknown = [x for x in names if x not in known] if ok else []
        if ok and (list(names) == [ALL] or not unknown):
            return None
        return (f"{ALL!r} (every label) or a tuple of distinct names among {known} (the registered comparison "
                "labels; a loss of your own joins with --import)" + (f"; unknown: {unknown}" if unknown else ""))

    def penalties(v):
        ok = isinstance(v, (list, tuple)) and len(set(v)) == len(v) and all(
            config_lib.number(0.0, low_open=True)(x) is None for x in v)
        return None if ok else "a tuple (empty: none) of distinct numbers > 0, the spike-rate penalty's weights"

    def boolean(v):
        return None if isinstance(v, bool) else "True or False"

    def fraction(v):
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 <= v < 1.0
        return None if ok else "a number >= 0 and < 1 (0 or None: no halving)"

    return {"losses": label_names, "seeds": config_lib.integer(1), "tune_seeds": config_lib.integer(1),
            "seed_offset": config_lib.integer(0, TUNE_SEED_OFFSET - 1),
            "epochs": config_lib.optional(config_lib.integer(1)),
            "max_replicas": config_lib.optional(config_lib.integer(1)), "replica_devices": config_lib.integer(1),
            "learning_rates": values(config_lib.number(0.0, 1.0, low_open=True)), "grid": config_lib.mapping,
            "extend": boolean, "max_extensions": config_lib.integer(0),
            "halving_fraction": config_lib.optional(fraction), "smoke": boolean, "energy_penalties": penalties,
            "energy_seeds": config_lib.optional(config_lib.integer(1))}


def validate(sweep) -> None:
    """ConfigError naming the first sweep field that is unknown, missing or invalid; the grid of each
    compared label is checked against its loss's parameters (`spikejax.losses`)."""
    values, rules = config_lib.to_dict(sweep), _rules()
    for name in sorted(set(values) ^ set(rules)):
        raise ConfigError(f"sweep field {name!r} is " + ("unknown" if name in values else "missing"))
    for name, rule in rules.items():
        problem = rule(values[name])
        if problem:
            raise ConfigError(f"sweep field {name} = {values[name]!r}: must be {problem}")
    if values["seed_offset"] + values["seeds"] > TUNE_SEED_OFFSET:
        raise ConfigError(f"sweep fields seed_offset = {values['seed_offset']} and seeds = {values['seeds']}: the "
                          f"final seeds must stay below the tuning seeds ({TUNE_SEED_OFFSET} on)")
    if values["energy_seeds"] is not None and values["energy_seeds"] > values["seeds"]:
        raise ConfigError(f"sweep field energy_seeds = {values['energy_seeds']}: the energy stage reuses the first "
                          f"final seeds; must be <= seeds ({values['seeds']})")
    for label, axes in values["grid"].items():
        if label not in losses.labels():
            raise ConfigError(f"sweep field grid.{label}: no comparison label {label!r}; labels: {losses.labels()}")
        spec = losses.get(losses.entry(label).loss)
        if not isinstance(axes, dict):
            raise ConfigError(f"sweep field grid.{label} = {axes!r}: must be a mapping of parameter -> values")
        for name, grid in axes.items():
            allowed = [p.name for p in spec.params]
            if name not in allowed:
                raise ConfigError(f"sweep field grid.{label}.{name}: loss {spec.name!r} has no parameter {name!r}; "
                                  f"its parameters: {allowed}")
            param = spec.param(name)
            bad = [v for v in grid if param.problem(v)] if isinstance(grid, (list, tuple)) and grid else [grid]
            if bad:
                raise ConfigError(f"sweep field grid.{label}.{name} = {grid!r}: must be a non-empty tuple of values, "
                                  f"each {param.problem(bad[0]) or 'valid'}")


def configurations(sweep, config) -> list[dict]:
    """The grid, in a fixed order: one dict per configuration, {"label", "loss", "learning_rate", and the
    label's fixed and tuned parameters}. Combinations the loss's constraint refuses (count-MSE: false rate
    < true rate) are dropped; ConfigError when a label keeps none."""
    out = []
    for label in labels(sweep):
        entry = losses.entry(label)
        spec = losses.get(entry.loss)
        combos = [dict(entry.fixed)]
        for name, values in dict(sweep.grid.get(label, {})).items():
            combos = [{**c, name: v} for c in combos for v in values]
        base, bounds = dict(config.loss[spec.name]), config_lib.flatten(config_lib.to_dict(config))
        for name, values in dict(sweep.grid.get(label, {})).items():  # a bound is an error, not a filter
            limit = spec.param(name).at_most
            if limit and any(v is not None and v > bounds[limit] for v in values):
                raise ConfigError(f"sweep field grid.{label}.{name} = {tuple(values)!r}: each must be <= {limit} "
                                  f"({bounds[limit]!r})")
        kept = [c for c in combos if not spec.problems({**base, **c}, bounds)]
        if not kept:
            raise ConfigError(f"sweep field grid.{label}: no combination is allowed: "
                              f"{spec.problems({**base, **combos[0]}, bounds)[0]}")
        for learning_rate in sweep.learning_rates:
            for combo in kept:
                out.append({"label": label, "loss": spec.name, "learning_rate": float(learning_rate), **combo})
    return out


def with_seeds(rows: list[dict], seeds) -> list[dict]:
    """Every row once per seed (seeds inner), as the replica rows of a program."""
    return [{**row, "seed": int(seed)} for row in rows for seed in seeds]


def _programs(rows: list[dict], max_replicas: int | None) -> list[list[dict]]:
    size = max_replicas or len(rows)
    return [rows[i:i + size] for i in range(0, len(rows), size)]


def stage_config(config, sweep):
    """The run config of every replica: `config` with the sweep's epochs (when set)."""
    import ml_collections

    copy = ml_collections.ConfigDict(config.to_dict())
    if sweep.epochs is not None:
        copy.epochs = sweep.epochs
    return copy


def final_seeds(sweep) -> range:
    """The final stage's seeds: seed_offset, ..., seed_offset + seeds - 1 (a second, disjoint seed set with
    --sweep.seed_offset; its tuning seeds move on too, see `compare_losses`)."""
    return range(sweep.seed_offset, sweep.seed_offset + sweep.seeds)


def tuning_seeds(sweep) -> list[int]:
    """The tuning seeds, start + k for k < tune_seeds, start = TUNE_SEED_OFFSET + seed_offset * tune_seeds (a
    second seed set tunes anew too); the k-th holds out validation fold k."""
    start = TUNE_SEED_OFFSET + sweep.seed_offset * sweep.tune_seeds
    return list(range(start, start + sweep.tune_seeds))


def _tune(config, sweep, grid: list[dict], folder: str, *, stop, halving: float | None, name: str):
    """Tunes the configurations `grid` with every tuning seed, one seed (its own validation fold) per
    program, in <folder>/<fold>/<i>; with `halving` (a fraction of the steps) every program first stops
    there, the worse half of each label's configurations (`selection.halve`, over all seeds) is dropped, and
    the rest continue in <folder>/<fold>/<i>-rest. Returns (records (the dropped ones with "dropped_at",
    their validation at that step), training seconds, the halving record or None)."""
    records, seconds, early = [], 0.0, {}
    for fold, seed in enumerate(tuning_seeds(sweep)):
        programs = _programs(with_seeds(grid, [seed]), sweep.max_replicas)
        for i, rows in enumerate(programs):
            path = os.path.join(folder, str(fold), str(i))
            out = run_program(config, rows, path, test=False, stop=stop, fold=fold, stop_fraction=halving,
                              title=f"{name} fold {fold} {i + 1}/{len(programs)}",
                              replica_devices=sweep.replica_devices)
            seconds += out[0]["train_seconds"]
            early[path] = (fold, rows, out)
    if halving is None:
        return [r for _, _, out in early.values() for r in out], seconds, None
    cut = selection.halve([r for _, _, out in early.values() for r in out])
    kept = {selection.key(row) for entry in cut.values() for row in entry["kept"]}
    step = {}
    for path, (fold, rows, out) in early.items():
        indices = [j for j, row in enumerate(rows) if selection.key(row) in kept]
        records += [{**r, "dropped_at": r["validation"]["step"]} for j, r in enumerate(out) if j not in indices]
        step[str(fold)] = out[0]["validation"]["step"]
        if indices:
            rest = run_program(config, [rows[j] for j in indices], path + "-rest", test=False, stop=stop, fold=fold,
                               start={"folder": path, "rows": rows, "indices": indices},
                               title=f"{name} fold {fold} {os.path.basename(path)} continued",
                               replica_devices=sweep.replica_devices)
            records += rest
            seconds += rest[0]["train_seconds"]
    for label, entry in cut.items():
        log(f"halving {label}: kept {len(entry['kept'])}, dropped {len(entry['dropped'])} at step(s) "
            f"{sorted(set(step.values()))}: " + "; ".join(describe(d["row"]) for d in entry["dropped"]))
    return records, seconds, {"fraction": halving, "step": step, "labels": cut}


def _axes(label: str, grid: list[dict]) -> list[selection.Axis]:
    """The tuned axes of a label: the learning rate (log scale) and its loss's parameters in the grid."""
    spec = losses.get(losses.entry(label).loss)
    names = sorted({k for row in grid if row["label"] == label for k in row} - {"label", "loss", "learning_rate"})
    return [selection.Axis("learning_rate", log_scale=True)] + [
        selection.Axis(n, log_scale=spec.param(n).log_scale, integer=spec.param(n).integer) for n in names]


def _allowed(config):
    bounds = config_lib.flatten(config_lib.to_dict(config))

    def allowed(row: dict) -> bool:
        spec = losses.get(row["loss"])
        params = {k: v for k, v in row.items() if k not in ("label", "loss", "learning_rate", "seed")}
        return 0.0 < row["learning_rate"] <= 1.0 and not spec.problems({**dict(config.loss[spec.name]), **params},
                                                                         bounds)
    return allowed


def compare_losses(config, sweep, workdir: str, *, stop: loop.StopSignal | None = None) -> dict:
    """tune -> select -> (extend -> select)* -> final (see the module docstring) in `workdir`/tune and final.
    Returns {"config", "sweep", "grid", "tune": records, "selection": select(...) with each label's
    "extended" moves, "at_bound" (edges no step passes) and "on_edge" (axes still on an edge), "halving",
    "final": records, "train_seconds": {"tune", "final"}}; with sweep.energy_penalties also "energy":
    records (each row with its "rate_penalty") and train_seconds["energy"]. sweep.losses may be ("all",)."""
    validate(sweep)
    sweep = expanded(sweep)
    program_mesh(sweep.replica_devices)  # a replica_devices that does not fit the devices: refused before training
    config = stage_config(config, sweep)
    config_lib.validate(config)
    folds = build.validation_folds(config)
    if sweep.tune_seeds > folds:
        raise ConfigError(f"sweep field tune_seeds = {sweep.tune_seeds}: each tuning seed holds out its own validation "
                          f"fold, and data.validation_fraction = {config.data.validation_fraction} has {folds}; "
                          "must be <= that")
    grid = configurations(sweep, config)
    tune, tune_seconds, halving = _tune(config, sweep, grid, os.path.join(workdir, "tune"), stop=stop,
                                        halving=sweep.halving_fraction or None, name="tune")
    chosen = select(tune)
    extended: dict[str, list[dict]] = {label: [] for label in sweep.losses}
    for round_ in range(1, sweep.max_extensions + 1 if sweep.extend else 1):
        tuned = [{k: v for k, v in r["row"].items() if k != "seed"} for r in tune]
        new_rows = []
        for label in sweep.losses:
            if chosen[label]["row"] is None:
                continue
            rows, moves = selection.extend(chosen[label]["row"], [t for t in tuned if t["label"] == label],
                                           _axes(label, grid), _allowed(config))
            new_rows += rows
            extended[label] += [{**m, "round": round_} for m in moves]
        if not new_rows:
            break
        log(f"extension {round_}: {len(new_rows)} configuration(s) beyond a grid edge: "
            + "; ".join(f"{r['label']} {describe(r)}" for r in new_rows))
        records, seconds, _ = _tune(config, sweep, new_rows, os.path.join(workdir, "tune", f"extend{round_}"),
                                    stop=stop, halving=None, name=f"extend {round_}")
        tune, tune_seconds = tune + records, tune_seconds + seconds
        chosen = select(tune)
    tuned = [{k: v for k, v in r["row"].items() if k != "seed"} for r in tune]
    for label in sweep.losses:
        _, edges = selection.extend(chosen[label]["row"], [t for t in tuned if t["label"] == label],
                                    _axes(label, grid), _allowed(config)) if chosen[label]["row"] else (None, [])
        chosen[label]["extended"] = [m for m in extended[label] if not m.get("at_bound")]
        chosen[label]["at_bound"] = [m for m in edges if m.get("at_bound")]  # on an edge no step can pass
        chosen[label]["on_edge"] = [m["axis"] for m in edges if not m.get("at_bound")]  # extensions ran out
        if chosen[label]["on_edge"]:
            log(f"{label}: the choice still lies on the grid edge of {chosen[label]['on_edge']} (extension "
                + ("off" if not sweep.extend else f"stopped after {sweep.max_extensions} round(s)") + ")")
        if chosen[label]["row"] is None:
            log(f"nothing selected for {label}: every configuration diverged in tuning; it is reported as diverged "
                "and left out of the final stage")
            continue
        log(f"selected for {label}: {describe(chosen[label]['row'])} (mean validation accuracy "
            f"{chosen[label]['validation_mean']:.4f} over {sweep.tune_seeds} tuning seed(s), one fold each)")
    selected = [label for label in sweep.losses if chosen[label]["row"] is not None]
    if not selected:
        raise RunError(f"every configuration of every loss diverged in tuning (see {workdir}/tune/*/result.json); "
                       "lower --sweep.learning_rates and rerun with a new --workdir")
    final_rows = with_seeds([chosen[label]["row"] for label in selected], final_seeds(sweep))
    final: list[dict] = []
    final_seconds = 0.0
    programs = _programs(final_rows, sweep.max_replicas)
    for i, rows in enumerate(programs):
        records = run_program(config, rows, os.path.join(workdir, "final", str(i)), test=True, stop=stop,
                              title=f"final {i + 1}/{len(programs)}", replica_devices=sweep.replica_devices)
        final, final_seconds = final + records, final_seconds + records[0]["train_seconds"]
    result = {"config": config_lib.to_dict(config), "sweep": config_lib.to_dict(sweep), "grid": grid, "tune": tune,
              "selection": chosen, "halving": halving, "final": final,
              "train_seconds": {"tune": tune_seconds, "final": final_seconds}}
    if sweep.energy_penalties:
        result["energy"], result["train_seconds"]["energy"] = _energy(
            config, sweep, [chosen[label]["row"] for label in selected], os.path.join(workdir, "energy"), stop=stop)
    return result


def energy_seeds(sweep) -> list[int]:
    """The energy stage's seeds: the first `energy_seeds` final seeds (all of them when None)."""
    return list(final_seeds(sweep))[:sweep.energy_seeds or sweep.seeds]


def energy_rows(chosen: list[dict], penalties, seeds) -> list[dict]:
    """The energy stage's replica rows: each chosen configuration at each spike-rate penalty weight (its
    "rate_penalty"), with every final seed; weight-major (a weight's rows are the final stage's rows), seeds
    inner (as `with_seeds`)."""
    return with_seeds([{**row, "rate_penalty": float(w)} for w in penalties for row in chosen], seeds)


def _energy(config, sweep, chosen: list[dict], folder: str, *, stop) -> tuple[list[dict], float]:
    """The selected configurations `chosen` retrained with the final seeds (`energy_seeds`; the same initial
    weights and data orders as the final stage: paired) at each weight of sweep.energy_penalties, tested once, in
    <folder>/<i>: programs of at most max_replicas replicas, by default of the final stage's size (one
    program per weight: the final stage's memory; all weights in one program took 16.6 GiB for 11 labels
    x 3 weights x 10 seeds on digits_events, and ran slower per replica-step). Returns (records, training
    seconds)."""
    seeds = energy_seeds(sweep)
    rows = energy_rows(chosen, sweep.energy_penalties, seeds)
    log(f"energy: {len(chosen)} selected configuration(s) x spike-rate penalty {tuple(sweep.energy_penalties)} x "
        f"{len(seeds)} seed(s)")
    records, seconds = [], 0.0
    programs = _programs(rows, sweep.max_replicas or len(chosen) * len(seeds))
    for i, program in enumerate(programs):
        out = run_program(config, program, os.path.join(folder, str(i)), test=True, stop=stop,
                          title=f"energy {i + 1}/{len(programs)}")
        records, seconds = records + out, seconds + out[0]["train_seconds"]
    return records, seconds
