"""The loss comparison's cost by stage, projected without running it: the replica-steps of each stage, counted
from the sweep config as `spikejax.compare.sweep` would run it, times the replica-steps per second of
programs of the stages' real shapes, each timed for a few dozen steps.

  python -m benchmarks.compare_cost --sweep.losses=all --sweep.energy_penalties='(0.1,1.0,10.0)'
  python -m benchmarks.compare_cost --config=configs/timing_events.py --sweep.losses=all --steps=20
  python -m benchmarks.compare_cost --sweep.losses=all --baseline      # + the tuning program, every replica nll

Counted (per tuning fold, `sweep.tune_seeds` folds): the grid's R configurations to the halving rung
(round(halving_fraction x S) of the S steps), then per label ceil(n/2) of its n configurations (no ties
assumed) to S; extension rounds: --extension_points per label and round, at most one per tuned axis (an
assumption: how many choices land on grid edges is known only after tuning; the default is the 4-loss run
in BENCHMARKS.md: 8 then 2 points for 4 labels); final: labels x seeds x S; energy: labels x
len(energy_penalties) x energy seeds x S. Evaluation (validation on the fold after every epoch, the test
split once in the final and energy stages) is timed separately in replica-samples per second.

Timed: one tuning program (R replicas, one seed: one shared batch) and one final-stage program (labels x
seeds replicas, batches stacked over the seeds), which is also the shape of each energy program (one per
weight; `sweep.max_replicas` caps both). Each: compile (first call), then --steps
calls on real batches, in wall seconds and in the process's CPU seconds (all its threads: on a loaded,
shared machine CPU seconds / cores estimates an idle machine, every core busy). --baseline times the
tuning shape again with every replica training nll (one loss, spikes only): what computing every label's
loss and the membrane costs. The machine's load average is printed: on a shared machine the wall rates are what that
load allowed.
"""
from __future__ import annotations

import math
import os
import resource
import time

from absl import app, flags
from ml_collections import config_flags

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
config_flags.DEFINE_config_file("config", os.path.join(_REPO, "configs", "digits_events.py"), "The run config.")
config_flags.DEFINE_config_file("sweep", os.path.join(_REPO, "configs", "sweep.py"), "The sweep config.")
flags.DEFINE_integer("steps", 30, "Timed steps per program (after the compiling call).")
flags.DEFINE_list("extension_points", ["2", "0.5"], "Assumed new points per label in each extension round.")
flags.DEFINE_bool("baseline", False, "Also time the tuning shape with every replica training nll.")
FLAGS = flags.FLAGS


def _timed_program(config, rows, split, held_out, steps):
    """(compile seconds, wall seconds per step, process CPU seconds per step, eval replica-samples per wall
    second and per CPU second) of one program of `rows`."""
    import jax
    import jax.numpy as jnp

    from spikejax import build, data, evaluate, parallel
    from spikejax.compare import replicas

    mesh = parallel.data_mesh()
    selection, hyper = replicas.hyperparameters([{k: v for k, v in r.items() if k != "label"} for r in rows],
                                                config)
    orders = replicas.data_seeds(hyper)
    stacked = len(orders) > 1
    tx = build.optimizer(config, 1000)
    graphdef, state = replicas.init_state(config, hyper, tx, mesh, split.frame_shape, len(split.classes))
    frame = build.packed_frame_shape(split)
    step = replicas.parallel_train_step(mesh, graphdef=graphdef, tx=tx, frame_shape=frame, selection=selection,
                                        rate_penalty=replicas.rate_penalty(hyper), stacked=stacked,
                                        target_rate=config.loss.target_rate, total_steps=1000,
                                        augment=build.augment(config))
    walk = (data.SeededTrainIterator(split, config.batch_size, seeds=orders, packed=True) if stacked
            else data.TrainIterator(split, config.batch_size, seed=orders[0], packed=True))
    batches = iter(walk)
    hyper_device = jax.tree.map(jnp.asarray, hyper)
    start = time.perf_counter()
    state, metrics = step(state, *parallel.global_batch_arrays(mesh, next(batches)), hyper_device)
    jax.block_until_ready(metrics)
    compile_seconds = time.perf_counter() - start
    arrays = [parallel.global_batch_arrays(mesh, next(batches)) for _ in range(min(steps, 8))]
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(steps):
        state, metrics = step(state, *arrays[i % len(arrays)], hyper_device)
    jax.block_until_ready(metrics)
    per_step, cpu_per_step = (time.perf_counter() - start) / steps, (time.process_time() - cpu) / steps
    model = build.model(config, split.frame_shape, len(split.classes))
    eval_fn = replicas.parallel_eval_step(mesh, graphdef=graphdef, fan_out=model.fan_out, frame_shape=frame,
                                          selection=selection)
    evaluate_once = lambda: evaluate.sum_over_split(eval_fn, held_out, config.eval_batch_size, mesh=mesh,
                                                    args=(state["params"],), extra=(parallel.replicate(hyper, mesh),))
    evaluate_once()  # compiles
    start, cpu = time.perf_counter(), time.process_time()
    evaluate_once()
    eval_rate = len(rows) * len(held_out) / (time.perf_counter() - start)
    eval_cpu_rate = len(rows) * len(held_out) / (time.process_time() - cpu)
    return compile_seconds, per_step, cpu_per_step, eval_rate, eval_cpu_rate


def main(argv):
    del argv
    import ml_collections

    from spikejax import build, loop
    from spikejax.compare import sweep as sweep_lib

    config, sweep = FLAGS.config, FLAGS.sweep
    sweep_lib.validate(sweep)
    sweep = sweep_lib.expanded(sweep)
    config = sweep_lib.stage_config(config, sweep)
    labels = list(sweep.losses)
    grid = sweep_lib.configurations(sweep, config)
    train, validation = build.training_splits(config, 0)
    test = build.load_split(config, "test")
    plan = loop.schedule(batch_size=config.batch_size, epochs=config.epochs, max_steps=config.max_steps,
                         log_every=10, checkpoint_every=10**6, seed=0, train_samples=len(train), devices=1)
    steps = plan.stop_at
    folds = sweep.tune_seeds
    per_label = {label: sum(1 for g in grid if g["label"] == label) for label in labels}
    stages = []  # (name, replica-steps, validation replica-samples, test replica-samples, programs)
    validations = config.epochs * len(validation)
    programs = lambda replicas: math.ceil(replicas / (sweep.max_replicas or replicas))  # sweep._programs' count
    if sweep.halving_fraction:
        rung = max(1, int(round(sweep.halving_fraction * steps)))
        kept = sum(math.ceil(n / 2) for n in per_label.values())
        stages.append((f"tune, first rung ({len(grid)} x {rung} steps x {folds} folds)", folds * len(grid) * rung,
                       folds * len(grid) * validations * rung / steps, 0, folds * programs(len(grid))))
        stages.append((f"tune, continued ({kept} kept x {steps - rung} steps x {folds} folds)",
                       folds * kept * (steps - rung), folds * kept * validations * (steps - rung) / steps, 0,
                       folds * programs(len(grid))))
    else:
        stages.append((f"tune ({len(grid)} x {steps} steps x {folds} folds)", folds * len(grid) * steps,
                       folds * len(grid) * validations, 0, folds * programs(len(grid))))
    rounds = [float(x) for x in FLAGS.extension_points][:sweep.max_extensions if sweep.extend else 0]
    axes = {label: 1 + sum(1 for values in dict(sweep.grid.get(label, {})).values() if len(values) > 1)
            for label in labels}  # the learning rate and each tuned parameter: at most one new point each
    for r, points in enumerate(rounds, 1):
        n = sum(min(points, axes[label]) for label in labels)
        stages.append((f"extension round {r} (assumed {n:g} points x {folds} seeds x {steps} steps)",
                       n * folds * steps, n * folds * validations, 0, folds))
    final = len(labels) * sweep.seeds
    stages.append((f"final ({len(labels)} labels x {sweep.seeds} seeds x {steps} steps)", final * steps,
                   final * validations, final * len(test), programs(final)))
    if sweep.energy_penalties:
        seeds = len(sweep_lib.energy_seeds(sweep))
        energy = len(labels) * seeds * len(sweep.energy_penalties)
        stages.append((f"energy ({len(labels)} labels x {len(sweep.energy_penalties)} weights x {seeds} "
                       f"seeds x {steps} steps)", energy * steps, energy * validations, energy * len(test),
                       len(sweep.energy_penalties) * programs(len(labels) * seeds)))

    print(f"{config.dataset}: {len(train)} training samples ({len(validation)} held out), batch "
          f"{config.batch_size}, {steps} steps per run; labels {labels}; {len(grid)} configurations "
          f"({per_label}); load average {os.getloadavg()}")
    tune_rows = sweep_lib.with_seeds(grid, [sweep_lib.tuning_seeds(sweep)[0]])
    chosen = [next(g for g in grid if g["label"] == label) for label in labels]
    final_rows = sweep_lib.with_seeds(chosen, sweep_lib.final_seeds(sweep))
    shapes = {"tune": tune_rows, "final": final_rows}
    if FLAGS.baseline:
        only_nll = lambda rows: [{"label": "nll", "loss": "nll", "learning_rate": r["learning_rate"], "seed": r["seed"]}
                                 for r in rows]
        shapes["tune (every replica nll)"] = only_nll(tune_rows)
    rates = {}
    for name, rows in shapes.items():
        compile_seconds, per_step, cpu_per_step, eval_rate, eval_cpu_rate = _timed_program(
            ml_collections.ConfigDict(config.to_dict()), rows, train, validation, FLAGS.steps)
        rates[name] = (len(rows) / per_step, eval_rate, compile_seconds, len(rows) / cpu_per_step, eval_cpu_rate)
        print(f"{name}: {len(rows)} replicas, compile {compile_seconds:.1f} s, {per_step * 1e3:.0f} ms per step = "
              f"{len(rows) / per_step:.1f} replica-steps/s (process CPU {cpu_per_step * 1e3:.0f} ms per step: "
              f"{len(rows) / cpu_per_step:.1f} replica-steps per CPU second); evaluation {eval_rate:.0f} "
              f"replica-samples/s (load average {os.getloadavg()[0]:.1f}); peak RSS so far "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.1f} GiB")
    cores = os.cpu_count()
    print(f"\nProjected: wall at the measured rates (this load), and idle = process CPU seconds / {cores} cores "
          "(every core busy); compiling at the measured compile time per program.\n")
    print("| stage | programs | replica-steps | training s (wall / idle) | evaluation s (wall / idle) | compiling s | "
          "minutes (wall / idle) |\n|---|---:|---:|---:|---:|---:|---:|")
    total = [0.0, 0.0]
    for name, replica_steps, validated, tested, programs in stages:
        key = "tune" if name.startswith(("tune", "extension")) else "final"
        train_rate, eval_rate, compile_seconds, train_cpu_rate, eval_cpu_rate = rates[key]
        wall = (replica_steps / train_rate, (validated + tested) / eval_rate)
        idle = (replica_steps / train_cpu_rate / cores, (validated + tested) / eval_cpu_rate / cores)
        compiling = programs * compile_seconds  # each program compiles its step once (its shape's measured time)
        total = [total[0] + sum(wall) + compiling, total[1] + sum(idle) + compiling]
        minutes = ((sum(wall) + compiling) / 60, (sum(idle) + compiling) / 60)
        print(f"| {name} | {programs} | {replica_steps:,.0f} | {wall[0]:,.0f} / {idle[0]:,.0f} | {wall[1]:,.0f} / "
              f"{idle[1]:,.0f} | {compiling:,.0f} | {minutes[0]:.1f} / {minutes[1]:.1f} |")
    print(f"| **total** (data loading and start-up not included) | | | | | | **{total[0] / 60:.1f} / "
          f"{total[1] / 60:.1f}** |")

if __name__ == "__main__":
    app.run(main)
