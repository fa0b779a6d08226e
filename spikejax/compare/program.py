"""One program of the comparison: R replicas (`spikejax.compare.replicas`) trained together in one compiled
step on the shared loop, validated after every epoch on their validation fold, tested once when asked, and
resumed exactly after a kill.

  records = run_program(config, rows, folder, test=False, fold=0)

A program lives in its own folder: checkpoints/ (the stacked train state; meta: the data-iterator state,
the validation curves so far, the training time) and, once done, result.json. A rerun of the same command
returns finished programs' results and resumes unfinished ones from their newest intact checkpoint; a
different config, grid, fold or stage in the same folder is refused, and so is a different length (epochs,
max_steps: unlike a single run, a sweep program may not be extended or shortened, finished or not, since the
programs of one comparison must train equally long). Successive halving splits a program in two: the first
stops at a fraction of its steps (`stop_fraction`), the second continues some of its replicas from that
checkpoint (`start`) to the end.

`replica_devices` k > 1 splits the replicas over k groups of devices (`parallel.replica_mesh`), each
group data parallel over n/k devices; a program of R replicas, R not a multiple of k, is padded with
copies of its last replica (`replicas.pad`), which cost compute but are never reported or saved. The
checkpoints hold the R replicas whatever k is, so a program may resume under another k (or device count).
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os

import jax
import numpy as np

from spikejax import build, evaluate, loop, parallel
from spikejax import config as config_lib
from spikejax.checkpoint import Checkpointer, check_resumable, check_same_data
from spikejax.compare import replicas
from spikejax.compare.selection import describe
from spikejax.errors import ConfigError, ConfigMismatchError, RunError
from spikejax.workdir import atomic_write_json, log


def _replica_overrides(row: dict) -> dict:
    return {k: v for k, v in row.items() if k != "label"}


def program_mesh(replica_devices: int = 1):
    """The programs' mesh: `parallel.data_mesh()` for replica_devices = 1 (every replica on every device),
    else `parallel.replica_mesh(replica_devices)`; ConfigError naming the sweep field when it does not fit
    the devices."""
    if replica_devices == 1:
        return parallel.data_mesh()
    try:
        return parallel.replica_mesh(replica_devices)
    except ValueError as error:
        raise ConfigError(f"sweep field {error}") from None


def run_program(config, rows: list[dict], folder: str, *, test: bool, stop: loop.StopSignal | None = None,
                title: str = "sweep", fold: int = 0, stop_fraction: float | None = None,
                start: dict | None = None, replica_devices: int = 1) -> list[dict]:
    """Trains the replicas `rows` (each {"label", "seed", "loss", "learning_rate", loss parameters}) of
    `config` together in `folder` on the shared loop, resuming from its newest intact checkpoint; validation
    after every epoch, the test split at the end when `test`. `fold`: the validation fold held out of the
    training split (`spikejax.data.split`). `stop_fraction`: stop (and save) at that fraction of the steps,
    the learning-rate schedule still the whole run's (successive halving's first rung). `start`: {"folder",
    "rows", "indices"}: begin, unless resuming, from the newest checkpoint of that program (of replicas
    "rows") with its replicas "indices" (rows == [start rows[i] for i in indices]): its state, data position
    and validation curves (successive halving's continuation). `replica_devices`: see the module docstring;
    it changes no result beyond float32 summation order. Returns one record per row: {"row",
    "frozen_at", "validation_curve": [{"step", "epoch", "accuracy", "loss"}], "validation": {"accuracy", "loss",
    "step" and, at the last epoch, evaluate.DIAGNOSTICS}, "test": eval summary or None,
    "train_seconds"}, also written to <folder>/result.json."""
    config_lib.validate(config)
    folder = os.path.abspath(os.path.expanduser(folder))
    identity = {"config": config_lib.to_dict(config), "rows": json.loads(json.dumps(rows)), "test": test, "fold": fold,
                "stop_fraction": stop_fraction, "start": start and {"rows": json.loads(json.dumps(start["rows"])),
                                                                    "indices": list(start["indices"])}}
    done_path = os.path.join(folder, "result.json")
    if os.path.exists(done_path):
        with open(done_path) as f:
            done = json.load(f)
        _check_identity(done["identity"], identity, folder)
        log(f"{title}: finished earlier, results read from {done_path}")
        return done["records"]

    mesh = program_mesh(replica_devices)
    loop.check_batch_split(config.batch_size, parallel.data_devices(mesh))
    train_data, validation = build.training_splits(config, fold)
    if validation is None:
        raise ConfigError("config field data.validation_fraction = 0.0: a sweep selects on validation data; "
                          "must be > 0")
    test_data = build.load_split(config, "test") if test else None
    selection, hyper = replicas.hyperparameters([_replica_overrides(r) for r in rows], config)
    # each replica walks the data in the order of its own seed (one order shared, or several stacked)
    orders = replicas.data_seeds(hyper)
    plan = loop.schedule(batch_size=config.batch_size, epochs=config.epochs, max_steps=config.max_steps,
                         log_every=config.log_every, checkpoint_every=config.checkpoint_every_steps,
                         seed=orders[0], train_samples=len(train_data), devices=parallel.data_devices(mesh),
                         data_seeds=orders if len(orders) > 1 else None)
    if stop_fraction is not None:
        plan = dataclasses.replace(plan, stop_at=max(1, int(round(stop_fraction * plan.stop_at))))
    frame, classes = train_data.frame_shape, len(train_data.classes)
    tx = build.optimizer(config, plan.total_steps)
    count, padded = len(rows), replicas.pad(hyper, parallel.replica_groups(mesh))  # [R'] >= [R]: see pad
    graphdef, state = replicas.init_state(config, padded, tx, mesh, frame, classes)
    model = build.model(config, frame, classes)
    shared = dict(graphdef=graphdef, frame_shape=build.packed_frame_shape(train_data), selection=selection)
    hyper_device = parallel.shard_replicas(padded, mesh)
    program_step = replicas.parallel_train_step(mesh, tx=tx, rate_penalty=replicas.rate_penalty(hyper),
                                                stacked=plan.data_seeds is not None,
                                                target_rate=config.loss.target_rate, total_steps=plan.total_steps,
                                                augment=build.augment(config), **shared)
    eval_fn = replicas.parallel_eval_step(mesh, fan_out=model.fan_out, **shared)
    facts = replicas.report_facts(config, rows)  # each replica's summary names its own loss

    def evaluate_on(split, params):
        totals = evaluate.sum_over_split(eval_fn, split, config.eval_batch_size, mesh=mesh, args=(params,),
                                         extra=(hyper_device,))
        return replicas.summaries(totals, facts, count)  # the padding (rows count on) left out

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
                      check_meta=check_meta, stored=replicas.storage(count, mesh)) as session:
        if start is not None and session.resumed_step is None:
            flat = parallel.data_mesh()  # the parent's checkpoint holds its replicas unpadded
            _inherit(session, start, defaults, lambda h: replicas.init_state(config, h, tx, flat, frame, classes)[1],
                     config, mesh)
        first = int(parallel.to_host(session.state["step"])[0])
        groups = parallel.replica_groups(mesh)
        layout = (f"{groups} groups of {parallel.data_devices(mesh)} device(s)"
                  + (f", padded with {len(padded['seed']) - count} copies of the last replica"
                     if len(padded["seed"]) > count else "")) if groups > 1 else f"{mesh.size} device(s)"
        log(f"{title}: {count} replicas in one program on {layout}, {len(train_data)} training "
            f"samples ({len(validation)} held out), batch {config.batch_size}, steps {first} -> {plan.stop_at}")
        outcome = session.train(lambda state, *batch: program_step(state, *batch, hyper_device), train_data, plan,
                                report=functools.partial(_report, plan, count), stop=stop, on_epoch=on_epoch,
                                samples_per_step=config.batch_size * count)
        tested = evaluate_on(test_data, outcome.state["params"]) if test else [None] * count
        frozen = parallel.to_host(outcome.state["frozen_at"])
        records = [_record(r, row, outcome.meta, tested[r], int(frozen[r])) for r, row in enumerate(rows)]
        if jax.process_index() == 0:
            atomic_write_json(done_path, {"identity": identity, "records": records})
        return records


def _inherit(session, start: dict, defaults: dict, init, config, mesh) -> None:
    """Sets `session`'s state and meta to replicas start["indices"] of the newest intact checkpoint in
    start["folder"] (a program of replicas start["rows"]): parameters, optimizer state, steps, frozen_at,
    the data position and the validation curves; the training time starts from 0 (the parent counts its own)."""
    _, hyper = replicas.hyperparameters([_replica_overrides(r) for r in start["rows"]], config)
    directory = os.path.join(start["folder"], "checkpoints")
    with Checkpointer(directory, create=False) as checkpointer:
        restored = checkpointer.restore_latest(init(hyper))
    if restored is None:
        raise RunError(f"{directory}: no checkpoint to continue from; rerun the same command to retrain it")
    pick = np.asarray(start["indices"], np.int64)
    state = jax.tree.map(lambda x: np.asarray(x)[pick], jax.device_get(restored.state))
    session.state = parallel.shard_replicas(replicas.pad(state, parallel.replica_groups(mesh)), mesh)
    curve = [{**c, "accuracy": [c["accuracy"][i] for i in pick], "loss": [c["loss"][i] for i in pick]}
             for c in restored.meta["curve"]]
    session.meta = {**defaults, "data": restored.meta["data"], "curve": curve}
    log(f"continuing {len(pick)} of the {len(start['rows'])} replicas of {start['folder']} from step {restored.step}")


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
    other = any(saved.get(k) != current[k] for k in ("rows", "test", "fold", "stop_fraction", "start"))
    if other:
        raise ConfigMismatchError(f"{folder} holds a sweep program with other replicas (a different grid, seeds or "
                                  "stage); use a new --workdir, or rerun with the same sweep settings")


def _report(plan, count, at, metrics, state, last_saved):
    """The replicas' log line and metrics.jsonl values over the first `count` replicas (not the padding): the
    loss median over the finite replicas, the train-batch accuracy and output firing rate medians over all,
    and how many diverged (frozen) so far."""
    del last_saved
    values = {k: np.asarray(v)[:count] for k, v in jax.device_get(metrics).items()}
    diverged = int(np.sum(parallel.to_host(state["frozen_at"])[:count] >= 0))
    finite = values["loss"][np.isfinite(values["loss"])]
    loss = float(np.median(finite)) if finite.size else float("nan")
    accuracy, rate = values["accuracy"], float(np.median(values["output_rate"]))
    line = (f"step {at}/{plan.stop_at}, {loop.epoch_text(at, plan)}, loss median {loss:.4f}, train-batch accuracy "
            f"median {np.median(accuracy):.3f} (min {np.min(accuracy):.3f}, max {np.max(accuracy):.3f}), output "
            f"rate median {rate:.3f} spikes/neuron/step, diverged {diverged} of {len(accuracy)} replicas")
    return {"loss_median": loss, "accuracy_median": float(np.median(accuracy)), "output_rate_median": rate,
            "diverged": diverged}, line


def _log_validation(title, step, rows, summaries) -> None:
    accuracy = np.asarray([s["accuracy"] for s in summaries])
    best = int(np.argmax(accuracy))
    log(f"{title}: validation at step {step}: median {np.median(accuracy):.4f}, best {accuracy[best]:.4f} "
        f"({rows[best]['label']} {describe(rows[best])} seed {rows[best]['seed']})")
