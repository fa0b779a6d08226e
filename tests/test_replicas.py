"""Replicas: the loss chosen by data equals the named losses, and one vmapped step of R replicas equals R
separate single-model steps.

Only the first update is compared tightly. A spiking network is chaotic in float rounding: a different
reduction order (vmapped against single, as between 1 and 4 devices) moves a membrane at the threshold by
one rounding unit, flips a spike, and the runs drift apart within 2-3 steps (../shared/STYLE.md); whole
runs are compared statistically, not bit for bit."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from spikejax import build, losses, parallel
from spikejax import step as step_lib
from spikejax.compare import replicas
from tests.test_train import small_config


def _spikes(seed, shape=(12, 6, 5), rate=0.3):
    return (np.random.default_rng(seed).random(shape) < rate).astype(np.float32)


ROWS = [("mse", dict(true_rate=0.3, false_rate=0.05)), ("softmax", dict(temperature=2.5)),
        ("nll", dict(window=None, min_count=0.5)), ("nll", dict(window=4, min_count=1.0)),
        ("nll", dict(window=12, min_count=1.0))]


def test_selected_loss_equals_the_named_loss_and_its_gradient():
    """Replicas of five (loss, parameters) rows in one program: under vmap each replica's loss and gradient
    equal the named loss called directly with its parameters (window 12 = T: the longest window)."""
    spikes, labels = jnp.asarray(_spikes(0)), jnp.array([0, 3, 1, 4, 2, 2])
    mask = jnp.array([1.0, 1.0, 0.0, 1.0, 1.0, 1.0])
    selection, arrays = losses.selection(ROWS)
    assert selection.names == ("mse", "softmax", "nll")
    assert dict(selection.static[1]) == {"temperature": 2.5} and selection.traced[2] == ("window", "min_count")
    assert arrays["nll.window"].tolist() == [0, 0, 0, 4, 12]  # None is 0; other losses' rows hold the first value

    def one(values, s):
        return losses.selected_loss(selection, values, {"spikes": s}, labels, mask=mask)

    values = jax.tree.map(jnp.asarray, arrays)
    by_data = jax.jit(jax.vmap(one, in_axes=(0, None)))(values, spikes)
    grads = jax.jit(jax.vmap(jax.grad(one, argnums=1), in_axes=(0, None)))(values, spikes)
    for r, (name, params) in enumerate(ROWS):
        named = lambda s, name=name, params=params: losses.get(name).fn(s, labels, mask=mask, **params)
        np.testing.assert_allclose(by_data[r], named(spikes), rtol=1e-6)
        np.testing.assert_allclose(grads[r], jax.grad(named)(spikes), rtol=1e-5, atol=1e-8)


def test_selection_passes_shared_parameters_as_python_values():
    selection, arrays = losses.selection([("nll", dict(window=None, min_count=1.0))] * 3)
    assert selection.traced == ((),) and set(arrays) == {"loss"}  # nothing varies: no windowed NLL computed
    assert dict(selection.static[0]) == {"window": None, "min_count": 1.0}


def _adam_moments(opt_state) -> tuple:
    """(mu, nu) of the AdamW state inside an optax chain's state."""
    found = [s for s in jax.tree.leaves(opt_state, is_leaf=lambda x: isinstance(x, optax.ScaleByAdamState))
             if isinstance(s, optax.ScaleByAdamState)]
    assert len(found) == 1
    return found[0].mu, found[0].nu


def _assert_first_adamw_update(before, after, moments, learning_rate, weight_decay):
    """p1 = p0 - lr (mu_hat / (sqrt(nu_hat) + eps) + wd p0) at step 1 (mu_hat = mu / (1 - b1), nu_hat =
    nu / (1 - b2)), recomputed in float64 from the program's own float32 moments. optax forms the bias
    corrections 1 - b in float32 (1 - float32(0.999) is 1.3e-5 away from 0.001), so they are taken as it
    takes them; the rest is a handful of float32 operations, which 8 units of rounding (u = 2^-24) of
    |p0| + lr bound."""
    b1, b2 = (float(np.float32(1) - np.float32(b)) for b in (0.9, 0.999))
    eps, u = 1e-8, 2.0**-24
    mu, nu = moments
    for p0, p1, m, v in zip(*(jax.tree.leaves(t) for t in (before, after, mu, nu))):
        p0, p1, m, v = (np.asarray(x, np.float64) for x in (p0, p1, m, v))
        expected = p0 - learning_rate * (m / b1 / (np.sqrt(v / b2) + eps) + weight_decay * p0)
        np.testing.assert_allclose(p1, expected, rtol=0, atol=8 * u * (np.max(np.abs(p0)) + learning_rate))


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_r_replica_step_equals_r_single_steps(digits_data_dir, optimizer):
    """SGD: every parameter equal to float rounding. AdamW divides each update by sqrt(v), so a gradient
    element that is rounding noise (the vmapped and the single program sum in different orders) becomes an
    update of up to +-lr; how many such elements there are depends on the CPU's vector width and thread
    count. So AdamW is compared where it is smooth: the first and second moments (mu = (1 - b1) g, nu =
    (1 - b2) g^2) across the two programs, and each program's parameters against the AdamW formula applied
    to its own moments and learning rate.

    Tolerance of the moments, from the arithmetic: a weight gradient element is a float32 sum over the n =
    T * B rows of the batch, and reordering such a sum moves it by at most (n - 1) u sum|terms| (u = 2^-24;
    Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., eq. 4.4). The terms of every element of
    a leaf are bounded by the leaf's largest gradient, so |g_vmapped - g_single| <= n u max|g|, and
    |nu_vmapped - nu_single| <= 2 n u max|nu| (nu is quadratic in g)."""
    from flax import nnx

    from spikejax import data

    fixed = {"optimizer.warmup_steps": 0, "optimizer.schedule": "constant", "optimizer.name": optimizer,
             "optimizer.momentum": 0.0}
    config = small_config(digits_data_dir, **fixed)
    grid = [dict(seed=0, learning_rate=1e-3, loss="nll"), dict(seed=1, learning_rate=3e-3, loss="mse", true_rate=0.3),
            dict(seed=0, learning_rate=1e-3, loss="softmax", temperature=2.0),
            dict(seed=2, learning_rate=5e-4, loss="nll", window=10, min_count=0.5)]
    selection, hyper = replicas.hyperparameters(grid, config)
    mesh = parallel.data_mesh()
    split = data.load("digits_events", "train", data_dir=digits_data_dir)
    batch = parallel.global_batch_arrays(mesh, next(iter(data.TrainIterator(split, 64, seed=1, packed=True))))
    frame = build.packed_frame_shape(split)
    rows = config.data.time_bins * config.batch_size  # terms of each weight-gradient sum

    tx = build.optimizer(config, 100)
    graphdef, state = replicas.init_state(config, hyper, tx, mesh)
    initial = jax.tree.map(np.asarray, jax.device_get(state["params"]))
    first = jax.tree.map(lambda x: x[0], initial)
    third = jax.tree.map(lambda x: x[2], initial)
    jax.tree.map(np.testing.assert_array_equal, first, third)  # same seed, same initial weights
    assert selection.names == ("nll", "mse", "softmax") and selection.traced[0] == ("window", "min_count")
    step = replicas.parallel_train_step(mesh, graphdef=graphdef, tx=tx, frame_shape=frame, selection=selection)
    state, metrics = step(state, *batch, jax.tree.map(jnp.asarray, hyper))
    assert metrics["loss"].shape == (4,)

    for r, overrides in enumerate(grid):
        single = small_config(digits_data_dir, seed=overrides["seed"], **{
            **fixed, "optimizer.learning_rate": overrides["learning_rate"], "loss.name": overrides["loss"],
            **{f"loss.{overrides['loss']}.{k}": v for k, v in overrides.items()
               if k not in ("seed", "learning_rate", "loss")}})
        model = build.model(single)
        graphdef_one, params = nnx.split(model)
        tx_one = build.optimizer(single, 100)
        state_one = build.init_state(params, tx_one, mesh)
        initial_one = jax.tree.map(np.asarray, jax.device_get(state_one["params"]))
        step_one = step_lib.parallel_train_step(mesh, graphdef=graphdef_one, tx=tx_one, loss_fn=build.loss(single),
                                             readout_fn=build.readout(single), frame_shape=frame)
        state_one, metrics_one = step_one(state_one, *batch)
        np.testing.assert_allclose(metrics["loss"][r], metrics_one["loss"], rtol=1e-6)
        mine = jax.tree.map(lambda x: np.asarray(x[r]), state["params"])
        theirs = jax.tree.map(np.asarray, state_one["params"])
        if optimizer == "sgd":
            jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-8), mine, theirs)
        else:
            u = 2.0**-24
            moments = jax.tree.map(lambda x: np.asarray(x[r]), _adam_moments(state["opt_state"]))
            moments_one = jax.tree.map(np.asarray, _adam_moments(state_one["opt_state"]))
            for scale, ours, reference in ((1, moments[0], moments_one[0]), (2, moments[1], moments_one[1])):
                for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(reference)):
                    np.testing.assert_allclose(a, b, rtol=0, atol=scale * rows * u * np.max(np.abs(b)))
            wd = config.optimizer.weight_decay
            initial_r = jax.tree.map(lambda x: x[r], initial)
            _assert_first_adamw_update(initial_r, mine, moments, overrides["learning_rate"], wd)
            _assert_first_adamw_update(initial_one, theirs, moments_one, overrides["learning_rate"], wd)
        moved = max(float(np.max(np.abs(a - b))) for a, b in zip(jax.tree.leaves(mine), jax.tree.leaves(first)))
        assert moved > 0  # the step really changed the replica (no zero learning rate at step 0)


def test_hyperparameters_name_unknown_fields(digits_data_dir):
    with pytest.raises(ValueError, match="has no parameter 'lr'"):
        replicas.hyperparameters([dict(lr=1.0)], small_config(digits_data_dir))
    with pytest.raises(ValueError, match="temperature = -1"):
        replicas.hyperparameters([dict(loss="softmax", temperature=-1.0)], small_config(digits_data_dir))
    selection, hyper = replicas.hyperparameters([dict(loss="spikemax", window=None), dict(loss="count_mse")],
                                                small_config(digits_data_dir))
    assert hyper["loss"].tolist() == [0, 1] and selection.names == ("nll", "mse")
    assert selection.traced == ((), ()) and hyper["seed"].tolist() == [0, 0]



def test_replicas_of_other_seeds_walk_other_data_orders(digits_data_dir, tmp_path):
    """Stacked batches are TrainIterator's batches per seed; in the stacked step replica r trains on the
    order of its own seed and on nothing else: with both orders' slots holding batch b the step equals the
    unstacked step on b bit for bit (same vmapped program, the slot gather copies values), and with the
    seed-5 slot holding another batch b' only the seed-5 replica changes, to exactly the unstacked step on
    b'. A program of two seeds runs end to end through the loop (stacked)."""
    from spikejax import data as data_lib
    from spikejax.compare import sweep

    config = small_config(digits_data_dir, max_steps=3, checkpoint_every_steps=2)
    split, _ = build.training_splits(config)
    stacked = next(iter(data_lib.SeededTrainIterator(split, 64, seeds=(3, 5))))
    for k, seed in enumerate((3, 5)):
        single = next(iter(data_lib.TrainIterator(split, 64, seed=seed)))
        np.testing.assert_array_equal(stacked.inputs[k], single.inputs)
        np.testing.assert_array_equal(stacked.labels[k], single.labels)
    assert not np.array_equal(stacked.labels[0], stacked.labels[1])

    grid = [dict(seed=5, loss="nll"), dict(seed=3, loss="mse"), dict(seed=3, loss="nll")]
    selection, hyper = replicas.hyperparameters(grid, config)
    assert replicas.data_seeds(hyper) == (3, 5) and hyper["data_order"].tolist() == [1, 0, 0]
    mesh = parallel.data_mesh()
    walk = data_lib.TrainIterator(split, 64, seed=1, packed=True)
    b, b2 = next(walk), next(walk)
    frame = build.packed_frame_shape(split)
    tx = build.optimizer(config, 100)
    graphdef, state0 = replicas.init_state(config, hyper, tx, mesh)
    kwargs = dict(graphdef=graphdef, tx=tx, frame_shape=frame, selection=selection)
    plain = replicas.parallel_train_step(mesh, **kwargs)
    two = replicas.parallel_train_step(mesh, stacked=True, **kwargs)
    hyper_device = jax.tree.map(jnp.asarray, hyper)
    fresh = lambda: jax.tree.map(jnp.copy, state0)  # the steps donate their state
    params = lambda step_fn, batch: jax.device_get(step_fn(fresh(), *parallel.global_batch_arrays(mesh, batch),
                                                           hyper_device)[0]["params"])
    stack = lambda first, second: data_lib.Batch(np.stack([first.inputs, second.inputs]),
                                                 np.stack([first.labels, second.labels]),
                                                 np.stack([first.mask, second.mask]), {})
    on_b, on_b2 = params(plain, b), params(plain, b2)
    jax.tree.map(np.testing.assert_array_equal, params(two, stack(b, b)), on_b)
    mixed = params(two, stack(b, b2))  # slot 0: seed 3's order, slot 1: seed 5's
    pick = lambda tree, r: jax.tree.map(lambda x: np.asarray(x)[r], tree)
    jax.tree.map(np.testing.assert_array_equal, pick(mixed, 0), pick(on_b2, 0))
    for r in (1, 2):
        jax.tree.map(np.testing.assert_array_equal, pick(mixed, r), pick(on_b, r))

    rows = [{"label": "nll", "loss": "nll", "learning_rate": 1e-3, "seed": s} for s in (3, 5)]
    records = sweep.run_program(config, rows, str(tmp_path / "program"), test=False)
    assert [r["row"]["seed"] for r in records] == [3, 5]


def test_a_replicas_own_rate_penalty_equals_a_single_run_with_that_penalty(digits_data_dir):
    """Two replicas of one seed and loss at spike-rate penalty weights 0 and 2 (traced, one program) against
    two single-model steps given each weight as the plain Python number: after one SGD step every parameter
    equal to float rounding (the tolerance of the SGD case above), and the penalty moved the weighted
    replica by far more than that. A program whose replicas share one weight gets it as a
    Python number (0: the penalty is not in the program, the single run's step)."""
    from flax import nnx

    from spikejax import data

    fixed = {"optimizer.warmup_steps": 0, "optimizer.schedule": "constant", "optimizer.name": "sgd",
             "optimizer.momentum": 0.0, "optimizer.learning_rate": 1e-2, "loss.target_rate": 0.02}
    config = small_config(digits_data_dir, **fixed)
    weights = (0.0, 2.0)
    grid = [dict(seed=0, loss="nll", rate_penalty=w) for w in weights]
    selection, hyper = replicas.hyperparameters(grid, config)
    assert replicas.rate_penalty(hyper) is None and hyper["rate_penalty"].tolist() == pytest.approx(list(weights))
    assert replicas.rate_penalty(replicas.hyperparameters([dict(seed=0), dict(seed=1)], config)[1]) == 0.0
    assert replicas.rate_penalty(replicas.hyperparameters([dict(rate_penalty=0.5)] * 2, config)[1]) == 0.5
    mesh = parallel.data_mesh()
    split = data.load("digits_events", "train", data_dir=digits_data_dir)
    batch = parallel.global_batch_arrays(mesh, next(iter(data.TrainIterator(split, 64, seed=1, packed=True))))
    frame = build.packed_frame_shape(split)
    tx = build.optimizer(config, 100)
    graphdef, state = replicas.init_state(config, hyper, tx, mesh)
    step = replicas.parallel_train_step(mesh, graphdef=graphdef, tx=tx, frame_shape=frame, selection=selection,
                                        rate_penalty=None, target_rate=config.loss.target_rate)
    state, metrics = step(state, *batch, jax.tree.map(jnp.asarray, hyper))
    ours = [jax.tree.map(lambda x: np.asarray(x[r]), state["params"]) for r in range(len(weights))]
    for r, weight in enumerate(weights):
        single = small_config(digits_data_dir, **fixed, **{"loss.rate_penalty": weight})
        graphdef_one, params = nnx.split(build.model(single))
        tx_one = build.optimizer(single, 100)
        step_one = step_lib.parallel_train_step(mesh, graphdef=graphdef_one, tx=tx_one, loss_fn=build.loss(single),
                                                readout_fn=build.readout(single), frame_shape=frame,
                                                rate_penalty=single.loss.rate_penalty,
                                                target_rate=single.loss.target_rate)
        state_one, metrics_one = step_one(build.init_state(params, tx_one, mesh), *batch)
        np.testing.assert_allclose(metrics["loss"][r], metrics_one["loss"], rtol=1e-6)
        theirs = jax.tree.map(np.asarray, state_one["params"])
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-8), ours[r], theirs)
    assert metrics["loss"][1] > metrics["loss"][0]  # the penalty is in the objective
    beyond = max(float(np.max(np.abs(a - b) / (1e-8 + 1e-5 * np.abs(b))))  # and in the gradient: moved by far
                 for a, b in zip(jax.tree.leaves(ours[1]), jax.tree.leaves(ours[0])))  # more than the tolerance
    assert beyond > 100, beyond
