"""Replicas split over devices as well as data (`parallel.replica_mesh`: 'replica' x 'data') give what
replicas on every device give (`parallel.data_mesh`, 4 devices and 1), up to float32 summation order.

Four replicas (three losses, three learning rates, two seeds and so two stacked data orders, one replica
frozen by an infinite learning rate) on a 2 x 2 mesh, on the 1-D mesh of 4 devices and on 1 device. Each
train step starts every layout from the same state (the 1-device one's), so each step is compared on its
own: a spiking network is chaotic in float rounding, and independent trajectories drift apart once a
rounding-size difference flips a spike at the threshold (../shared/STYLE.md). The layouts compute the same
function of every sample; what differs is how the batch sums are grouped (over 16, 32 or 64 samples per
device, then across devices). Tolerances, u = 2^-24, B = 64 samples:
- metrics and eval sums: sums of B non-negative terms (losses, counts, times), so two orders differ by at
  most 2 (B - 1) u times the sum (Higham, Accuracy and Stability of Numerical Algorithms, eq. 4.4), plus a
  few roundings in the divisions by the counts: rtol 2 (B + 2) u.
- parameters (SGD, global-norm clip): a weight-gradient element sums n = T B rows of either sign; two
  orders differ by at most 2 (n - 1) u sum|rows|. sum|rows| is bounded by n times the leaf's largest
  gradient element (each row's contribution, divided by B, taken to be no larger than that element: the
  assumption of tests/test_replicas.py). The clip divides by the gradient norm, which moves by the same
  relative amount, so an update moves by at most 4 n u times the leaf's largest update U, plus 2 u |p| for
  rounding the new parameter: atol (4 n + 8) u U + 2 u max|p|. The gradient norm: rtol 2 (n + 2) u.
"""
import re

import jax
import numpy as np
import pytest

from configs import sweep as sweep_configs
from spikejax import build, data, parallel
from spikejax.compare import program, replicas, sweep
from spikejax.errors import ConfigError
from tests import devices
from tests.test_train import small_config

pytestmark = devices.needs(4)

U = 2.0**-24
BATCH = 64
GRID = [dict(seed=0, learning_rate=0.05, loss="nll"), dict(seed=1, learning_rate=0.1, loss="mse", true_rate=0.3),
        dict(seed=0, learning_rate=0.02, loss="softmax", temperature=2.0),
        dict(seed=1, learning_rate=float("inf"), loss="nll", min_count=0.5)]  # non-finite at once: frozen


def _config(data_dir):
    return small_config(data_dir, **{"optimizer.name": "sgd", "optimizer.momentum": 0.0,
                                     "optimizer.warmup_steps": 0, "optimizer.schedule": "constant"})


def _layouts():
    return {"1 device": parallel.data_mesh(jax.devices()[:1]), "1 x 4": parallel.data_mesh(),
            "2 x 2": parallel.replica_mesh(2)}


def _close(ours, reference, rtol):
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(reference)):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=0)


@pytest.mark.slow  # about 17 s of CPU: three layouts' train steps and two layouts' eval steps compile
def test_replicas_split_over_devices_match_replicas_on_every_device(digits_data_dir):
    config = _config(digits_data_dir)
    selection, hyper = replicas.hyperparameters(GRID, config)
    assert replicas.data_seeds(hyper) == (0, 1)
    split, validation = build.training_splits(config)
    frame, shape, classes = build.packed_frame_shape(split), split.frame_shape, len(split.classes)
    walk = iter(data.SeededTrainIterator(split, BATCH, seeds=(0, 1), packed=True))
    batches = [next(walk) for _ in range(3)]  # [S = 2, T, B, ...]
    evaluation = next(iter(data.eval_batches(validation, BATCH, packed=True)))
    tx = build.optimizer(config, 100)
    fan_out = build.model(config, shape, classes).fan_out
    rows = config.data.time_bins * BATCH

    layouts, steps, evals, hypers, state = _layouts(), {}, {}, {}, None
    for name, mesh in layouts.items():
        graphdef, initial = replicas.init_state(config, hyper, tx, mesh, shape, classes)
        initial = parallel.to_host(initial)
        if state is None:
            state = initial
        jax.tree.map(np.testing.assert_array_equal, initial, state)  # the same models on every layout
        shared = dict(graphdef=graphdef, frame_shape=frame, selection=selection)
        steps[name] = replicas.parallel_train_step(mesh, tx=tx, stacked=True, **shared)
        evals[name] = replicas.parallel_eval_step(mesh, fan_out=fan_out, **shared)
        hypers[name] = parallel.shard_replicas(hyper, mesh)
    start = state

    for batch in batches:
        out = {}
        for name, mesh in layouts.items():
            new, metrics = steps[name](parallel.shard_replicas(state, mesh), *parallel.global_batch_arrays(mesh, batch),
                                       hypers[name])
            kernel = new["params"]["layers"][0]["kernel"][...]
            if name == "2 x 2":  # split over 'replica': two replicas on each device, the metrics whole
                assert kernel.sharding.spec == jax.sharding.PartitionSpec("replica")
                assert {s.data.shape[0] for s in kernel.addressable_shards} == {2}
            assert metrics["loss"].shape == (4,) and metrics["loss"].sharding.is_fully_replicated
            out[name] = parallel.to_host((new, metrics))
        reference, reference_metrics = out["1 device"]
        for name in ("1 x 4", "2 x 2"):
            new, metrics = out[name]
            _close({k: metrics[k] for k in ("loss", "accuracy", "output_rate")},
                   {k: reference_metrics[k] for k in ("loss", "accuracy", "output_rate")}, 2 * (BATCH + 2) * U)
            np.testing.assert_allclose(metrics["grad_norm"], reference_metrics["grad_norm"], rtol=2 * (rows + 2) * U)
            np.testing.assert_array_equal(metrics["params_finite"], [1, 1, 1, 0])
            np.testing.assert_array_equal(new["step"], reference["step"])
            np.testing.assert_array_equal(new["frozen_at"], [-1, -1, -1, 0])
            for p0, p1, ours in zip(*(jax.tree.leaves(t["params"]) for t in (state, reference, new))):
                for r in range(4):
                    update = np.max(np.abs(p1[r] - p0[r]))
                    np.testing.assert_allclose(ours[r], p1[r], rtol=0,
                                               atol=(4 * rows + 8) * U * update + 2 * U * np.max(np.abs(p1[r])))
        state = reference
    moved = jax.tree.map(lambda a, b: np.max(np.abs(a - b), axis=tuple(range(1, a.ndim))), state["params"],
                         start["params"])
    assert all(np.all(m[:3] > 0) and m[3] == 0 for m in jax.tree.leaves(moved))  # trained; the frozen one kept

    sums = {}  # the 1 x 4 layout's eval is data_mesh's as before (tests/test_sweep.py)
    for name, mesh in ((k, v) for k, v in layouts.items() if k != "1 x 4"):
        params = parallel.shard_replicas(state["params"], mesh)
        result = evals[name](params, *parallel.global_batch_arrays(mesh, evaluation), hypers[name])
        assert result["loss"].shape == (4,) and result["loss"].sharding.is_fully_replicated
        sums[name] = parallel.to_host(result)
    _close(sums["2 x 2"], sums["1 device"], 2 * (BATCH + 2) * U)


def test_a_replica_count_the_mesh_cannot_split_is_refused_naming_both(digits_data_dir):
    """3 replicas on 2 replica groups: init_state and the step (at trace time, before compiling) refuse
    them, naming R and the mesh; a replica_devices that does not divide the devices is refused too."""
    config = _config(digits_data_dir)
    selection, hyper = replicas.hyperparameters(GRID[:3], config)
    mesh = parallel.replica_mesh(2)
    assert dict(mesh.shape) == {"replica": 2, "data": 2}
    assert [d.id for d in mesh.devices[:, 0]] == [0, 1]  # a replica group: consecutive devices
    message = re.escape("3 replicas do not split over the 2 replica groups of the mesh {'replica': 2, 'data': 2}")
    tx = build.optimizer(config, 10)
    with pytest.raises(ValueError, match=message):
        replicas.init_state(config, hyper, tx, mesh)
    graphdef, state = replicas.init_state(config, hyper, tx, parallel.data_mesh())
    step = replicas.parallel_train_step(mesh, graphdef=graphdef, tx=tx, selection=selection)
    batch = (np.zeros((config.data.time_bins, 4, 2, 34, 34), np.float32), np.zeros(4, np.int32),
             np.ones(4, np.float32))
    with pytest.raises(ValueError, match=message):
        step(state, *batch, hyper)
    with pytest.raises(ValueError, match="replica_devices = 3: must be a positive divisor of the 4 devices"):
        parallel.replica_mesh(3)
    with pytest.raises(ConfigError, match="sweep field replica_devices = 3: must be a positive divisor"):
        program.program_mesh(3)
    grid = sweep_configs.get_config()
    grid.replica_devices = 0
    with pytest.raises(ConfigError, match="sweep field replica_devices = 0: must be an integer >= 1"):
        sweep.validate(grid)


def test_padding_repeats_the_last_replica_and_never_reaches_a_checkpoint():
    """`pad` fills up to a multiple with copies of the last replica; `storage` saves the first R replicas
    (replicated: loadable on any mesh) and puts them back padded and split over 'replica'."""
    tree = {"a": np.arange(3.0), "b": np.arange(6).reshape(3, 2)}
    padded = replicas.pad(tree, 2)
    np.testing.assert_array_equal(padded["a"], [0.0, 1.0, 2.0, 2.0])
    np.testing.assert_array_equal(padded["b"], [[0, 1], [2, 3], [4, 5], [4, 5]])
    assert replicas.pad(tree, 3)["a"].shape == (3,) and replicas.pad(tree, 4)["a"].shape == (4,)
    mesh = parallel.replica_mesh(2)
    assert replicas.storage(4, mesh) is None and replicas.storage(3, parallel.data_mesh()) is None
    to_checkpoint, from_checkpoint = replicas.storage(3, mesh)
    placed = parallel.shard_replicas(padded, mesh)
    saved = to_checkpoint(placed)
    assert saved["a"].shape == (3,) and saved["a"].sharding.is_fully_replicated
    jax.tree.map(np.testing.assert_array_equal, parallel.to_host(saved), tree)
    back = from_checkpoint(saved)
    assert back["b"].sharding.spec == jax.sharding.PartitionSpec("replica")
    jax.tree.map(np.testing.assert_array_equal, parallel.to_host(back), padded)


@pytest.mark.slow  # about 20 s of CPU: three programs compile their train and eval steps
def test_a_padded_program_resumes_exactly_and_its_checkpoint_loads_on_one_device(digits_data_dir, tmp_path):
    """3 replicas on 2 replica groups (padded with a copy of the last): a program stopped after step 1 and
    rerun reports exactly what the uninterrupted program reports; its checkpoint holds the 3 replicas
    only and restores onto a 1-device layout."""
    from spikejax import loop
    from spikejax.checkpoint import Checkpointer
    from spikejax.errors import Interrupted

    config = small_config(digits_data_dir, max_steps=2, checkpoint_every_steps=1)
    rows = [{"label": "nll", "loss": "nll", "learning_rate": 1e-3, "seed": 0},
            {"label": "mse", "loss": "mse", "learning_rate": 3e-3, "seed": 1},
            {"label": "nll", "loss": "nll", "learning_rate": 3e-3, "seed": 1}]
    whole = program.run_program(config, rows, str(tmp_path / "whole"), test=False, replica_devices=2)
    stop = loop.StopSignal()
    stop.received = "SIGTERM"  # as if a signal had come during step 1
    with pytest.raises(Interrupted, match="at step 1"):
        program.run_program(config, rows, str(tmp_path / "stopped"), test=False, stop=stop, replica_devices=2)

    selection, hyper = replicas.hyperparameters([{k: v for k, v in r.items() if k != "label"} for r in rows], config)
    split, _ = build.training_splits(config)
    tx = build.optimizer(config, 2)
    one = parallel.data_mesh(jax.devices()[:1])
    _, template = replicas.init_state(config, hyper, tx, one, split.frame_shape, len(split.classes))
    with Checkpointer(str(tmp_path / "stopped" / "checkpoints"), create=False) as checkpointer:
        restored = checkpointer.restore_latest(template)
    assert restored.step == 1 and parallel.to_host(restored.state["step"]).tolist() == [1, 1, 1]
    assert restored.state["params"]["layers"][0]["kernel"][...].sharding.device_set == {jax.devices()[0]}

    resumed = program.run_program(config, rows, str(tmp_path / "stopped"), test=False, replica_devices=2)
    drop = lambda records: [{k: v for k, v in r.items() if k != "train_seconds"} for r in records]
    assert drop(resumed) == drop(whole) and len(whole) == 3
