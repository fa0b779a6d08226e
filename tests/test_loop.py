"""The one training loop: a single run and a one-replica comparison program run the same loop and the
same step, so they end with the same parameters, bit for bit."""
import os

import jax
import numpy as np

from spikejax import build, parallel, runs, train
from spikejax.checkpoint import Checkpointer
from spikejax.compare import replicas, sweep
from tests.test_train import small_config


def test_a_single_run_and_a_one_replica_program_end_with_the_same_parameters(digits_data_dir, tmp_path):
    config = small_config(digits_data_dir, max_steps=7, checkpoint_every_steps=3)
    train.train_and_evaluate(config, str(tmp_path / "single"))
    single = runs.restore(config, str(tmp_path / "single"))

    row = {"label": "nll", "loss": "nll", "learning_rate": config.optimizer.learning_rate, "seed": config.seed}
    folder = str(tmp_path / "program")
    sweep.run_program(config, [row], folder, test=False)
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
