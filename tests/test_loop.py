"""The one training loop: a single run and a one-replica comparison program run the same loop and the
same step, so they end with the same parameters, bit for bit; its progress lines name their fields and
time the steps without the first (compiling) one."""
import json
import os

import jax
import numpy as np
import pytest

from spikejax import build, loop, parallel, runs, train
from spikejax.checkpoint import Checkpointer
from spikejax.compare import program, replicas, sweep
from spikejax.metric_writer import Progress, duration
from tests.test_train import small_config


def _lines(text, prefix=""):
    return [line for line in text.splitlines() if line.startswith(prefix)]


def test_a_single_run_and_a_one_replica_program_end_with_the_same_parameters(digits_data_dir, tmp_path, capsys):
    config = small_config(digits_data_dir, max_steps=7, checkpoint_every_steps=3)
    train.train_and_evaluate(config, str(tmp_path / "single"))
    single = runs.restore(config, str(tmp_path / "single"))
    printed = capsys.readouterr().out.splitlines()
    compiling = printed.index("compiling the train step (the first step; samples/s and the ETA leave it out) ...")
    compiled = next(i for i, line in enumerate(printed) if line.startswith("compiled; the first step took "))
    first = next(i for i, line in enumerate(printed) if line.startswith("step 1/7, "))
    assert compiling < compiled < first
    assert printed[first].endswith("s, compiling): samples/s and ETA from the next log step")
    assert printed[first + 1].startswith("step 2/7, epoch 0.10/0.35, loss ")
    assert " train-batch accuracy " in printed[first + 1] and " spikes/neuron/step, " in printed[first + 1]
    assert " samples/s, ETA " in printed[first + 1]
    records = [json.loads(line) for line in open(tmp_path / "single" / "metrics.jsonl")]
    assert "samples_per_second" not in records[0] and all(r["samples_per_second"] > 0 for r in records[1:])

    row = {"label": "nll", "loss": "nll", "learning_rate": config.optimizer.learning_rate, "seed": config.seed}
    folder = str(tmp_path / "program")
    sweep.run_program(config, [row], folder, test=False)
    printed = capsys.readouterr().out
    assert "sweep: compiling the train step" in printed and "sweep: compiled; the first step took" in printed
    assert "sweep: step 2/7, epoch 0.10/0.35, loss median " in printed
    selection, hyper = replicas.hyperparameters([{k: v for k, v in row.items() if k != "label"}], config)
    split, _ = build.training_splits(config)
    tx = build.optimizer(config, len(split) // config.batch_size * config.epochs)
    _, template = replicas.init_state(config, hyper, tx, parallel.data_mesh(), split.frame_shape,
                                      len(split.classes))
    with Checkpointer(os.path.join(folder, "checkpoints"), create=False) as checkpointer:
        program = checkpointer.restore_latest(template)
    assert program.step == single.step == 7
    mine = jax.tree.map(lambda x: np.asarray(x)[0], jax.device_get(program.state["params"]))
    theirs = jax.tree.map(np.asarray, jax.device_get(single.state["params"]))
    jax.tree.map(np.testing.assert_array_equal, mine, theirs)
    lr = [np.asarray(s.hyperparams["learning_rate"]) for s in (program.state["opt_state"], single.state["opt_state"])]
    assert lr[0].tolist() == [np.float32(config.optimizer.learning_rate)] and lr[1] == lr[0][0]


def test_a_checkpoint_of_the_0_1_state_layout_resumes_exactly(digits_data_dir, tmp_path):
    """spikejax 0.1 saved {params, opt_state (the optimizer chain without injected hyperparameters), step,
    rng} and no state layout in the meta. Such a checkpoint (written here from a step-3 state) resumes to
    the same step-6 parameters as an uninterrupted run, and evaluate reads it."""
    import orbax.checkpoint as ocp

    straight, old = str(tmp_path / "straight"), str(tmp_path / "old")
    train.train_and_evaluate(small_config(digits_data_dir, max_steps=6, checkpoint_every_steps=3), straight)
    train.train_and_evaluate(small_config(digits_data_dir, max_steps=3), old)
    with Checkpointer(os.path.join(old, "checkpoints"), create=False) as checkpointer:
        step = checkpointer.latest_step()
        meta = {k: v for k, v in checkpointer.restore_meta(step).items() if k != "state_layout"}
        config = small_config(digits_data_dir, max_steps=3)
        run = runs.restore(config, old)
        state = jax.device_get(run.state)
        legacy = {"params": state["params"], "opt_state": state["opt_state"].inner_state, "step": state["step"],
                  "rng": np.asarray(jax.random.PRNGKey(0))}
        checkpointer.manager.delete(step)
        checkpointer.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(legacy),
                                                                meta=ocp.args.JsonSave(meta)), force=True)
        checkpointer.manager.wait_until_finished()
    assert runs.restore(config, old).step == 3
    train.train_and_evaluate(small_config(digits_data_dir, max_steps=6, checkpoint_every_steps=3), old)
    a, b = (runs.restore(config, w).state["params"] for w in (straight, old))
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(a), jax.device_get(b))


def test_progress_leaves_the_compiling_first_step_out_of_samples_per_second_and_the_eta():
    """A fake clock: the first step (compilation) takes 50 s, then steps take 0.5 s, then 0.25 s. samples/s
    is each window's steps x 64 / its seconds; the ETA is the steps left x the mean step time since the
    first step finished (with the compilation counted it would be 90 x 54.5 / 10 = 490 s at step 20)."""
    now = [100.0]
    progress = Progress(110, 64, clock=lambda: now[0])  # from step 10 to 110
    now[0] += 50.0
    progress.compiled(11)
    assert progress.compile_seconds == 50.0
    assert progress.timing(11) == (None, "first step (50.0 s, compiling): samples/s and ETA from the next log step")
    now[0] += 9 * 0.5  # steps 12 .. 20
    assert progress.timing(20) == (9 * 64 / 4.5, "128 samples/s, ETA 45 s")  # 90 steps x 0.5 s
    now[0] += 10 * 0.25  # steps 21 .. 30
    rate, text = progress.timing(30)
    assert rate == 10 * 64 / 2.5 and text == f"256 samples/s, ETA {round(80 * 7.0 / 19)} s"
    assert [duration(s) for s in (0.4, 59.4, 60, 605, 3725)] == ["0 s", "59 s", "1 min 00 s", "10 min 05 s",
                                                                  "1 h 02 min"]


def _plan():
    return loop.Schedule(batch_size=64, batches_per_epoch=20, stop_at=160, total_steps=160, log_every=10,
                         checkpoint_every=100, seed=0)


def test_the_progress_lines_name_every_field():
    metrics = {"loss": np.float32(0.913), "accuracy": np.float32(0.75), "output_rate": np.float32(0.031),
               "grad_norm": np.float32(1.0), "params_finite": np.float32(1.0)}
    values, line = train._report(_plan(), "/nowhere")(40, metrics, None, None)
    assert line == ("step 40/160, epoch 2.00/8.00, loss 0.9130, train-batch accuracy 0.750, output rate 0.031 "
                    "spikes/neuron/step")
    assert values["accuracy"] == 0.75
    _, line = train._report(_plan(), "/nowhere", spiking=False)(40, metrics, None, None)
    assert line == "step 40/160, epoch 2.00/8.00, loss 0.9130, train-batch accuracy 0.750"  # an integrator output
    stacked = {"loss": np.array([0.5, np.nan, 0.7], np.float32), "accuracy": np.array([0.5, 0.625, 0.875]),
               "output_rate": np.array([0.01, 0.02, 0.05])}
    values, line = program._report(_plan(), 3, 30, stacked, {"frozen_at": np.array([-1, 3, -1])}, None)
    assert line == ("step 30/160, epoch 1.50/8.00, loss median 0.6000, train-batch accuracy median 0.625 (min 0.500, "
                    "max 0.875), output rate median 0.020 spikes/neuron/step, diverged 1 of 3 replicas")
    assert values == {"loss_median": pytest.approx(0.6), "accuracy_median": 0.625, "output_rate_median": 0.02,
                      "diverged": 1}
