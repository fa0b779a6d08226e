"""The one training loop: a single run and a one-replica comparison program run the same loop and the
same step, so they end with the same parameters, bit for bit."""
import os

import jax
import numpy as np

from spikejax import build, evaluate, parallel, train
from spikejax.checkpoint import Checkpointer
from spikejax.compare import replicas, sweep
from tests.test_train import small_config


def test_a_single_run_and_a_one_replica_program_end_with_the_same_parameters(digits_data_dir, tmp_path):
    config = small_config(digits_data_dir, max_steps=7, checkpoint_every_steps=3)
    train.train_and_evaluate(config, str(tmp_path / "single"))
    single = evaluate.restore(config, str(tmp_path / "single"))

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
