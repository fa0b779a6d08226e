"""Loss-comparison sweeps: grids of replicas (`spikejax.compare.replicas`) trained together in one compiled program,
validated after every epoch, resumed exactly after a kill, and one configuration chosen per loss on
validation data only.

  sweep_config = configs/sweep.py's get_config()          the grid, the seeds and the stages
  validate(sweep_config)
  result = compare_losses(config, sweep_config, workdir)  tune -> select -> final; returns the records

The comparison runs in two stages, each a set of programs of at most `max_replicas` replicas:
  tune   every configuration of the grid (per loss: learning rates x that loss's parameters) with
         `tune_seeds` seeds 1000, 1001, ...; validation accuracy only, the test split is not touched.
  select per loss, the configuration with the highest mean final validation accuracy over its tuning seeds;
         a configuration any of whose seeds diverged is never selected; ties go to the first in grid order.
         A loss all of whose configurations diverged is reported as diverged and has no final stage.
  final  each selected configuration with `seeds` fresh seeds 0, 1, ... (disjoint from the tuning seeds, so
         the reported spread carries no selection bias), evaluated once on the test split.
A replica's seed sets its initial weights and its data order (as a single run's `seed` does): replicas of
equal seeds start from the same weights and see the same batches in the same order, so losses compare
paired, seed by seed, and the spread over seeds includes the data order.

A program lives in its own folder: checkpoints/ (the stacked train state; meta: the data-iterator state,
the validation curves so far, the training time) and, once done, result.json. A rerun of the same command
returns finished programs' results and resumes unfinished ones from their newest intact checkpoint; a
different config or grid in the same folder is refused, and so is a different length (epochs, max_steps:
unlike a single run, a sweep program may not be extended or shortened, finished or not, since the programs of
one comparison must train equally long).

Labels (the losses as reports name them) are the registry's comparison labels (`spikejax.losses.labels()`):
every registered loss, and variants such as nll_window (spike NLL over sliding windows).
"""
from __future__ import annotations

import functools
import json
import os

import jax
import numpy as np

from spikejax import build, evaluate, loop, losses, parallel
from spikejax import config as config_lib
from spikejax.checkpoint import check_resumable, check_same_data
from spikejax.compare import replicas
from spikejax.errors import ConfigError, ConfigMismatchError, RunError
from spikejax.workdir import atomic_write_json, log

TUNE_SEED_OFFSET = 1000


def _rules() -> dict:
    positive = config_lib.number(0.0, low_open=True)

    def values(rule):
        def check(v):
            ok = isinstance(v, (list, tuple)) and len(v) >= 1 and all(rule(x) is None for x in v)
            return None if ok else f"a non-empty tuple of values, each {rule(-1.0) or 'valid'}"
        return check

    def labels(v):
        known = losses.labels()
        ok = isinstance(v, (list, tuple)) and v and all(x in known for x in v) and len(set(v)) == len(v)
        return None if ok else f"a tuple of distinct names among {known}"

    return {"losses": labels, "seeds": config_lib.integer(1), "tune_seeds": config_lib.integer(1),
            "seed_offset": config_lib.integer(0, TUNE_SEED_OFFSET - 1),
            "epochs": config_lib.optional(config_lib.integer(1)),
            "max_replicas": config_lib.optional(config_lib.integer(1)),
            "learning_rates": values(positive), "grid": config_lib.mapping}


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
    for label in sweep.losses:
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


def _key(row: dict) -> str:
    return json.dumps({k: v for k, v in row.items() if k != "seed"}, sort_keys=True)


def describe(row: dict) -> str:
    """"lr=0.001 temperature=2" for a configuration row."""
    return " ".join(f"{'lr' if k == 'learning_rate' else k}={v:g}" if isinstance(v, (int, float)) else f"{k}={v}"
                    for k, v in row.items() if k not in ("label", "loss", "seed"))


def select(records: list[dict]) -> dict[str, dict]:
    """Per label, the configuration with the highest mean final validation accuracy over its seeds; one any
    of whose seeds diverged (was frozen) or has a non-finite validation accuracy or loss is never selected
    (it counts as diverged; "diverged_at" holds None for a seed that was not frozen) (ties to the first in
    grid order). A label all of whose
    configurations diverged has "row" and "validation_mean" None: it is reported as diverged, not compared.
    {label: {"row", "validation_mean", "candidates": [{"row", "validation_mean", "values", "diverged",
    "diverged_at": {seed: step}}]}}."""
    groups: dict[str, dict] = {}
    for record in records:
        group = groups.setdefault(_key(record["row"]), {"row": {k: v for k, v in record["row"].items()
                                                                if k != "seed"}, "values": [], "diverged": False,
                                                        "diverged_at": {}})
        group["values"].append(record["validation"]["accuracy"])
        finite = all(np.isfinite(record["validation"].get(k, 0.0)) for k in ("accuracy", "loss"))
        if record["frozen_at"] is not None or not finite:
            group["diverged"] = True
            group["diverged_at"][str(record["row"].get("seed"))] = record["frozen_at"]
    chosen: dict[str, dict] = {}
    for group in groups.values():
        group["validation_mean"] = float(np.mean(group["values"]))
        entry = chosen.setdefault(group["row"]["label"], {"candidates": []})
        entry["candidates"].append(group)
    for entry in chosen.values():
        eligible = [c for c in entry["candidates"] if not c["diverged"]]
        best = max(eligible, key=lambda c: c["validation_mean"]) if eligible else None  # max keeps the first
        entry.update(row=best and best["row"], validation_mean=best and best["validation_mean"])
    return chosen


def _replica_overrides(row: dict) -> dict:
    return {k: v for k, v in row.items() if k != "label"}


def run_program(config, rows: list[dict], folder: str, *, test: bool, stop: loop.StopSignal | None = None,
                title: str = "sweep") -> list[dict]:
    """Trains the replicas `rows` (each {"label", "seed", "loss", "learning_rate", loss parameters}) of
    `config` together in `folder` on the shared loop, resuming from its newest intact checkpoint; validation
    after every epoch, the test split at the end when `test`. Returns one record per row: {"row",
    "frozen_at", "validation_curve": [{"step", "epoch", "accuracy", "loss"}], "validation": {"accuracy", "loss",
    "step" and, at the last epoch, evaluate.DIAGNOSTICS}, "test": eval summary or None,
    "train_seconds"}, also written to <folder>/result.json."""
    config_lib.validate(config)
    folder = os.path.abspath(os.path.expanduser(folder))
    identity = {"config": config_lib.to_dict(config), "rows": json.loads(json.dumps(rows)), "test": test}
    done_path = os.path.join(folder, "result.json")
    if os.path.exists(done_path):
        with open(done_path) as f:
            done = json.load(f)
        _check_identity(done["identity"], identity, folder)
        log(f"{title}: finished earlier, results read from {done_path}")
        return done["records"]

    mesh = parallel.data_mesh()
    loop.check_batch_split(config.batch_size, mesh.size)
    train_data, validation = build.training_splits(config)
    if validation is None:
        raise ConfigError("config field data.validation_fraction = 0.0: a sweep selects on validation data; "
                          "must be > 0")
    test_data = build.load_split(config, "test") if test else None
    selection, hyper = replicas.hyperparameters([_replica_overrides(r) for r in rows], config)
    # each replica walks the data in the order of its own seed (one order shared, or several stacked)
    orders = replicas.data_seeds(hyper)
    plan = loop.schedule(batch_size=config.batch_size, epochs=config.epochs, max_steps=config.max_steps,
                         log_every=config.log_every, checkpoint_every=config.checkpoint_every_steps,
                         seed=orders[0], train_samples=len(train_data), devices=mesh.size,
                         data_seeds=orders if len(orders) > 1 else None)
    frame, classes = train_data.frame_shape, len(train_data.classes)
    tx = build.optimizer(config, plan.total_steps)
    graphdef, state = replicas.init_state(config, hyper, tx, mesh, frame, classes)
    model = build.model(config, frame, classes)
    shared = dict(graphdef=graphdef, frame_shape=build.packed_frame_shape(train_data), selection=selection)
    hyper_device = parallel.replicate(hyper, mesh)
    program_step = replicas.parallel_train_step(mesh, tx=tx, rate_penalty=config.loss.rate_penalty,
                                                stacked=plan.data_seeds is not None,
                                                target_rate=config.loss.target_rate, total_steps=plan.total_steps,
                                                augment=build.augment(config), **shared)
    eval_fn = replicas.parallel_eval_step(mesh, fan_out=model.fan_out, **shared)
    facts = replicas.report_facts(config, rows)  # each replica's summary names its own loss

    def evaluate_on(split, params):
        totals = evaluate.sum_over_split(eval_fn, split, config.eval_batch_size, mesh=mesh, args=(params,),
                                         extra=(hyper_device,))
        return replicas.summaries(totals, facts, len(rows))

    def on_epoch(at, state, meta):
        summaries = evaluate_on(validation, state["params"])
        _log_validation(title, at, rows, summaries)
        return {**meta, "curve": meta["curve"] + [{"step": at, "epoch": at / plan.batches_per_epoch,
                                                   "accuracy": [s["accuracy"] for s in summaries],
                                                   "loss": [s["mean_loss"] for s in summaries]}],
                "diagnostics": [{k: s[k] for k in evaluate.DIAGNOSTICS} for s in summaries]}

    defaults = {"data": {"epoch": 0, "position": 0}, "identity": identity, "curve": [], "diagnostics": None,
                "train_seconds": 0.0, "data_fingerprint": train_data.fingerprint}

    def check_meta(saved):
        _check_identity(saved["identity"], identity, folder)
        check_same_data(saved, train_data.fingerprint, train_data.path)

    with loop.Session(folder, state, defaults, mesh=mesh, keep=config.keep_checkpoints, title=title,
                      check_meta=check_meta) as session:
        first = int(np.asarray(jax.device_get(session.state["step"]))[0])
        log(f"{title}: {len(rows)} replicas in one program on {mesh.size} device(s), {len(train_data)} training "
            f"samples ({len(validation)} held out), batch {config.batch_size}, steps {first} -> {plan.stop_at}")
        outcome = session.train(lambda state, *batch: program_step(state, *batch, hyper_device), train_data, plan,
                                report=functools.partial(_report, plan), stop=stop, on_epoch=on_epoch,
                                samples_per_step=config.batch_size * len(rows))
        tested = evaluate_on(test_data, outcome.state["params"]) if test else [None] * len(rows)
        frozen = np.asarray(jax.device_get(outcome.state["frozen_at"]))
        records = [_record(r, row, outcome.meta, tested[r], int(frozen[r])) for r, row in enumerate(rows)]
        if jax.process_index() == 0:
            atomic_write_json(done_path, {"identity": identity, "records": records})
        return records


def _record(r: int, row: dict, meta: dict, tested: dict | None, frozen_at: int) -> dict:
    curve = [{"step": c["step"], "epoch": c["epoch"], "accuracy": c["accuracy"][r], "loss": c["loss"][r]}
             for c in meta["curve"]]
    final = curve[-1]
    diagnostics = meta["diagnostics"][r] if meta.get("diagnostics") else {}  # evaluate.DIAGNOSTICS, last epoch
    return {"row": row, "frozen_at": None if frozen_at < 0 else frozen_at, "validation_curve": curve,
            "validation": {"accuracy": final["accuracy"], "loss": final["loss"], "step": final["step"],
                           **diagnostics},
            "test": tested, "train_seconds": meta["train_seconds"]}


# The fields a sweep program may not change even to resume (a single run may): how long it trains. Every
# program of a comparison trains equally long, and a finished program's results stand for its own length only.
LENGTH_FIELDS = ("epochs", "max_steps")


def _check_identity(saved: dict, current: dict, folder: str) -> None:
    """ConfigMismatchError unless the program in `folder` is this one: the same replicas and stage, a config
    that `check_resumable` accepts, and the same LENGTH_FIELDS (named with both values)."""
    for field in LENGTH_FIELDS:
        before, now = saved["config"].get(field), current["config"].get(field)
        if before != now:
            flag = "--sweep.epochs" if field == "epochs" else "--config.max_steps"
            raise ConfigMismatchError(f"{folder} holds a sweep program trained with {field} = {before!r}, now "
                                      f"{field} = {now!r}; a comparison's programs all train equally long: rerun "
                                      f"with {flag}={before}, or use a new --workdir")
    check_resumable(saved["config"], current["config"])
    if saved["rows"] != current["rows"] or saved.get("test") != current["test"]:
        raise ConfigMismatchError(f"{folder} holds a sweep program with other replicas (a different grid, seeds or "
                                  "stage); use a new --workdir, or rerun with the same sweep settings")


def _report(plan, at, metrics, state, last_saved):
    """The replicas' log line and metrics.jsonl values: medians over the finite replicas, and how many
    diverged (frozen) so far."""
    del last_saved
    values = {k: np.asarray(v) for k, v in jax.device_get(metrics).items()}
    diverged = int(np.sum(np.asarray(jax.device_get(state["frozen_at"])) >= 0))
    finite = values["loss"][np.isfinite(values["loss"])]
    loss = float(np.median(finite)) if finite.size else float("nan")
    accuracy = values["accuracy"]
    line = (f"step {at}/{plan.stop_at} epoch {at / plan.batches_per_epoch:.2f} train-batch accuracy median "
            f"{np.median(accuracy):.3f} (min {np.min(accuracy):.3f}, max {np.max(accuracy):.3f}) loss median "
            f"{loss:.4f} diverged {diverged}")
    return {"loss_median": loss, "accuracy_median": float(np.median(accuracy)), "diverged": diverged}, line


def _log_validation(title, step, rows, summaries) -> None:
    accuracy = np.asarray([s["accuracy"] for s in summaries])
    best = int(np.argmax(accuracy))
    log(f"{title}: validation at step {step}: median {np.median(accuracy):.4f}, best {accuracy[best]:.4f} "
        f"({rows[best]['label']} {describe(rows[best])} seed {rows[best]['seed']})")


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


def compare_losses(config, sweep, workdir: str, *, stop: loop.StopSignal | None = None) -> dict:
    """tune -> select -> final (see the module docstring) in `workdir`/tune/<i> and final/<i>. Returns
    {"tune": records, "selection": select(...), "final": records, "train_seconds": {"tune", "final"}}."""
    validate(sweep)
    config = stage_config(config, sweep)
    config_lib.validate(config)
    grid = configurations(sweep, config)
    tune_start = TUNE_SEED_OFFSET + sweep.seed_offset * sweep.tune_seeds  # a second seed set tunes anew too
    tune_rows = with_seeds(grid, range(tune_start, tune_start + sweep.tune_seeds))
    tune: list[dict] = []
    programs = _programs(tune_rows, sweep.max_replicas)
    for i, rows in enumerate(programs):
        tune += run_program(config, rows, os.path.join(workdir, "tune", str(i)), test=False, stop=stop,
                            title=f"tune {i + 1}/{len(programs)}")
    selection = select(tune)
    for label in sweep.losses:
        if selection[label]["row"] is None:
            log(f"nothing selected for {label}: every configuration diverged in tuning; it is reported as diverged "
                "and left out of the final stage")
            continue
        log(f"selected for {label}: {describe(selection[label]['row'])} (mean validation accuracy "
            f"{selection[label]['validation_mean']:.4f} over {sweep.tune_seeds} tuning seed(s))")
    selected = [label for label in sweep.losses if selection[label]["row"] is not None]
    if not selected:
        raise RunError(f"every configuration of every loss diverged in tuning (see {workdir}/tune/*/result.json); "
                       "lower --sweep.learning_rates and rerun with a new --workdir")
    final_rows = with_seeds([selection[label]["row"] for label in selected], final_seeds(sweep))
    final: list[dict] = []
    programs = _programs(final_rows, sweep.max_replicas)
    for i, rows in enumerate(programs):
        final += run_program(config, rows, os.path.join(workdir, "final", str(i)), test=True, stop=stop,
                             title=f"final {i + 1}/{len(programs)}")
    seconds = {stage: _program_seconds(records, sweep.max_replicas) for stage, records in
               (("tune", tune), ("final", final))}
    return {"config": config_lib.to_dict(config), "sweep": config_lib.to_dict(sweep), "grid": grid, "tune": tune,
            "selection": selection, "final": final, "train_seconds": seconds}


def _program_seconds(records: list[dict], max_replicas: int | None) -> float:
    """The summed training time of the programs (every record of a program carries the same time)."""
    return float(sum(program[0]["train_seconds"] for program in _programs(records, max_replicas)))
