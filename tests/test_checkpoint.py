"""Checkpoints: a checkpoint whose parameters or optimizer state hold NaN is never the one restored (the
newest finite one is, and the skip is said), and the restore record of a workdir."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from spikejax import build, parallel, runs, train
from spikejax.checkpoint import STATE_LAYOUT, Checkpointer
from spikejax.errors import NoCheckpointError
from tests.test_train import small_config


def test_a_non_finite_checkpoint_is_skipped_for_the_newest_finite_one(digits_data_dir, tmp_path, capsys):
    config = small_config(digits_data_dir, max_steps=3)
    workdir = str(tmp_path / "run")
    train.train_and_evaluate(config, workdir)
    good = runs.restore(config, workdir)
    assert isinstance(good, runs.RestoredRun) and good.step == 3 and good.meta["state_layout"] == STATE_LAYOUT
    # a later checkpoint written behind save()'s back, with NaN in the Adam moments only (the parameters
    # are finite, so a check of the parameters alone would take it)
    state = jax.device_get(good.state)
    poisoned = jax.tree.map(lambda x: np.full_like(x, np.nan) if x.dtype == np.float32 and x.ndim == 2 else x,
                            state["opt_state"].inner_state)
    bad = {**state, "opt_state": state["opt_state"]._replace(inner_state=poisoned)}
    with Checkpointer(os.path.join(workdir, "checkpoints"), create=False) as checkpointer:
        checkpointer.manager.save(4, args=ocp.args.Composite(state=ocp.args.StandardSave(bad),
                                                             meta=ocp.args.JsonSave({**good.meta})), force=True)
        checkpointer.manager.wait_until_finished()
        assert checkpointer.latest_step() == 4
    capsys.readouterr()
    restored = runs.restore(config, workdir)
    assert restored.step == 3
    assert "checkpoints/4 holds NaN or inf" in capsys.readouterr().err
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(restored.state["params"]), state["params"])


def test_init_state_holds_params_optimizer_state_and_step_only(digits_data_dir):
    config = small_config(digits_data_dir)
    from flax import nnx

    _, params = nnx.split(build.model(config))
    tx = build.optimizer(config, 10)
    state = build.init_state(params, tx, parallel.data_mesh())
    assert set(state) == {"params", "opt_state", "step"}
    assert float(state["opt_state"].hyperparams["learning_rate"]) == np.float32(config.optimizer.learning_rate)
    assert state["step"].dtype == jnp.int32


def test_checkpoints_that_all_fail_alike_are_not_called_damaged(tmp_path):
    """Two intact checkpoints restored onto a template with one more parameter, or with a wider one (a model
    changed since they were written): both fail with the same cause (orbax's structure mismatch; the shape
    check, since orbax restores the saved shape silently), and the refusal says that this may not be damage
    instead of telling the user to move them away."""
    directory = str(tmp_path / "checkpoints")
    state = {"params": {"w": np.zeros(3, np.float32)}, "opt_state": {"m": np.zeros(3, np.float32)}}
    with Checkpointer(directory) as checkpointer:
        for step in (1, 2):
            checkpointer.save(step, state, {"state_layout": STATE_LAYOUT})
    more = {**state, "params": {**state["params"], "b": np.zeros(3, np.float32)}}
    wider = {**state, "params": {"w": np.zeros(4, np.float32)}}  # orbax alone would restore shape 3 silently
    with Checkpointer(directory, create=False) as checkpointer:
        causes = ((more, "Structure mismatch"), (wider, r"\['params'\]\['w'\] was saved with shape \(3,\)"))
        for template, cause in causes:
            alike = rf"every one \(steps \[1, 2\]\) failed alike .*{cause}.*may not be damage"
            with pytest.raises(NoCheckpointError, match=alike):
                checkpointer.restore_latest(template)
        # the same checkpoints restore onto the template they were written with
        assert checkpointer.restore_latest(state).step == 2
    assert sorted(os.listdir(directory)) == ["1", "2"]  # nothing moved or deleted
