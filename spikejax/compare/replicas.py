"""R models trained at once in one compiled step: `jax.vmap` over a leading replica axis of the train state,
inside the data-parallel `shard_map`.

Replicas differ in data, not in Python branches, so one program serves a whole grid:
  seed           initialisation (the state is built per seed, then stacked)
  learning_rate  the peak learning rate, held in each replica's optimizer state (opt_state.hyperparams,
                 `build.optimizer`), so the step is the single run's
  loss           the loss (an index into the program's `losses.Selection`) and its parameters, those
                 that differ between replicas as per-replica arrays (`losses.selection`); the model gives
                 every output the program's losses read (`reads`), each loss takes its own
  rate_penalty   the weight w of the hidden-layer spike-rate penalty (`step.train_step`): a Python number
                 when every replica has the same (0: not computed, the single run's program), else each
                 replica's own, traced (`rate_penalty(hyper)` says which)
A replica's seed also sets its data order: replicas of one seed see the same batches in the same order, so
losses compare paired, on the same data and the same initial weights, while other seeds see other orders
(the seed-to-seed spread includes the data order, as between single runs). With one seed in a program the
batch is shared; with several it comes stacked over their orders (`data_seeds`, `parallel_train_step(
stacked=True)`) and each replica takes its own. With data augmentation (`build.augment`) each replica
augments with its own seed, so equal seeds see equal inputs.

A replica that diverges (a non-finite loss, gradient or parameter) is frozen: it keeps its last finite
state from then on, and `state["frozen_at"][r]` records the step (-1 while it trains), so one bad learning
rate neither stops the sweep nor makes its checkpoint unsavable.

  selection, hyper = replicas.hyperparameters([{"seed": 0, "learning_rate": 1e-3, "loss": "nll", "window": 10},
                                               ...], base)
  tx = build.optimizer(base, total_steps)
  graphdef, state = replicas.init_state(base, hyper, tx, mesh)      # every state leaf [R, ...]
  step = replicas.parallel_train_step(mesh, graphdef=graphdef, tx=tx, selection=selection,
                                      rate_penalty=replicas.rate_penalty(hyper),
                                      stacked=len(replicas.data_seeds(hyper)) > 1)
  state, metrics = step(state, inputs, labels, mask, hyper)         # metrics [R]; batch [S, ...] if stacked
  sums = replicas.parallel_eval_step(mesh, graphdef=graphdef, fan_out=model.fan_out, selection=selection)(
      state["params"], inputs, labels, mask, hyper)                 # evaluate.eval_step's sums, each [R, ...]

One replica runs unmapped: a one-replica program is the single run's program. The sweep around it (grid,
per-epoch validation, selection, resume) is `spikejax.compare.sweep`.

On a replica mesh (`parallel.replica_mesh(k)`, ('replica', 'data') of k x n/k devices) the state and
`hyper` are split over 'replica' (P('replica') on the leading axis: R/k replicas per group), each group
steps its replicas data parallel over its n/k devices (gradients and metrics averaged over 'data' only:
replicas never mix), and the metrics and eval sums come back whole, [R], on every device. R must be a
multiple of k (a clear ValueError otherwise): `pad` repeats the last replica up to one, and `storage`
keeps that padding out of checkpoints. The same program on `parallel.data_mesh()` (every replica on every
device) gives the same values up to float32 summation order.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx
from jax.sharding import PartitionSpec as P

from spikejax import build, evaluate, losses, parallel, step

BASE_FIELDS = ("seed", "learning_rate", "loss", "rate_penalty")


def hyperparameters(replicas: list[dict], config) -> tuple[losses.Selection, dict[str, np.ndarray]]:
    """(the static loss selection, per-replica arrays [R]) from a list of overrides {"seed", "learning_rate",
    "loss", "rate_penalty", and parameters of that loss}; what a replica does not set comes from `config`
    (its seed, peak learning rate, loss name, loss.rate_penalty and that loss's parameters). The arrays:
    "seed", "learning_rate", "rate_penalty", "loss" (an index into selection.names) and "<loss>.<param>"
    for the parameters that differ between replicas (`losses.selection`)."""
    rows, base = [], {"seed": config.seed, "learning_rate": config.optimizer.learning_rate,
                      "rate_penalty": config.loss.rate_penalty}
    for overrides in replicas:
        row = {**base, "loss": config.loss.name, **overrides}
        spec = losses.get(row["loss"])
        if spec.reads not in build.gives(config):
            raise ValueError(f"replica overrides {overrides}: loss {spec.name!r} reads the output layer's "
                             f"{spec.reads}, and model.output = {config.model.output!r} gives "
                             f"{list(build.gives(config))} only")
        params = {k: v for k, v in row.items() if k not in BASE_FIELDS}
        problems = spec.problems({**dict(config.loss[spec.name]), **params})
        if problems:
            raise ValueError(f"replica overrides {overrides}: {problems[0]}; the fields are {list(BASE_FIELDS)} "
                             "and the loss's parameters")
        rows.append((row, spec.name, {**dict(config.loss[spec.name]), **params}))
    selection, arrays = losses.selection([(name, params) for _, name, params in rows])
    arrays["seed"] = np.asarray([row["seed"] for row, _, _ in rows], np.int32)
    arrays["learning_rate"] = np.asarray([row["learning_rate"] for row, _, _ in rows], np.float32)
    arrays["rate_penalty"] = np.asarray([row["rate_penalty"] for row, _, _ in rows], np.float32)
    arrays["data_order"] = np.searchsorted(np.unique(arrays["seed"]), arrays["seed"]).astype(np.int32)
    return selection, arrays


def rate_penalty(hyper: dict) -> float | None:
    """The spike-rate penalty's weight shared by every replica, as a Python float (a static part of the
    program: 0 leaves the penalty out), or None when the replicas' weights differ (each then reads its own,
    hyper["rate_penalty"], traced)."""
    weights = np.unique(np.asarray(hyper["rate_penalty"], np.float32))
    return float(weights[0]) if len(weights) == 1 else None


def data_seeds(hyper: dict) -> tuple[int, ...]:
    """The replicas' distinct seeds, ascending: the data orders their batches come in. Replica r trains on
    the order of its own seed, data_seeds(hyper)[hyper["data_order"][r]]: every replica of one seed sees the
    same batches (paired), replicas of other seeds other orders."""
    return tuple(int(s) for s in np.unique(hyper["seed"]))


def _seeded(config, seed: int) -> ml_collections.ConfigDict:
    copy = ml_collections.ConfigDict(config.to_dict())
    copy.seed = int(seed)
    return copy


def init_state(config, hyper: dict, tx: optax.GradientTransformation, mesh, frame=None, num_classes=None):
    """(graphdef, state) with every state leaf stacked over the replicas [R, ...], on `mesh` as
    `parallel.shard_replicas` puts it (replicated, or split over 'replica' on a replica mesh; ValueError
    unless R splits). Replica r's parameters are those `build.model` makes for seed hyper["seed"][r], and
    its peak learning rate (opt_state.hyperparams["learning_rate"], `build.optimizer`) is
    hyper["learning_rate"][r]."""
    parallel.check_replica_count(len(hyper["seed"]), mesh)
    params, graphdef = [], None
    for seed in hyper["seed"]:
        graphdef, p = nnx.split(build.model(_seeded(config, seed), frame, num_classes))
        params.append(p)
    stacked = jax.tree.map(lambda *leaves: np.stack([np.asarray(x) for x in leaves]), *params)
    opt_state = jax.vmap(tx.init)(stacked)
    opt_state.hyperparams["learning_rate"] = np.asarray(hyper["learning_rate"], np.float32)
    state = {"params": stacked, "opt_state": opt_state, "step": np.zeros(len(params), np.int32),
             "frozen_at": np.full(len(params), -1, np.int32)}
    return graphdef, parallel.shard_replicas(jax.device_get(state), mesh)


def pad(tree, multiple: int):
    """A host pytree with a leading replica axis [R, ...] -> [R', ...], R' the next multiple of `multiple`,
    the last replica repeated into the new rows (they train exactly as it does: its seed, data order,
    learning rate and loss). Unchanged when R is a multiple already."""
    count = len(jax.tree.leaves(tree)[0])
    extra = -count % multiple
    return jax.tree.map(lambda x: np.concatenate([np.asarray(x)] + [np.asarray(x)[-1:]] * extra), tree)


def storage(count: int, mesh):
    """(to_checkpoint, from_checkpoint) for a state of `count` replicas padded (`pad`) to split over the
    mesh's replica groups: the first `count` replicas, replicated on `mesh` (a checkpoint without the
    padding, loadable on any mesh), and back (the last replica repeated, split over 'replica'). None when
    `count` splits as it is: the state is saved as it lies (split over 'replica'), and orbax restores it
    onto any other layout."""
    groups = parallel.replica_groups(mesh)
    if count % groups == 0:
        return None
    extra = -count % groups
    unpad = jax.jit(lambda t: jax.tree.map(lambda x: x[:count], t), out_shardings=parallel.replicated(mesh))
    repad = jax.jit(lambda t: jax.tree.map(lambda x: jnp.concatenate([x] + [x[-1:]] * extra), t),
                    out_shardings=jax.sharding.NamedSharding(mesh, parallel.replica_spec(mesh)))
    return unpad, repad


def reads(selection: losses.Selection) -> tuple[str, ...]:
    """What the program's losses read, each once (the model computes the membrane only when one reads it)."""
    return tuple(dict.fromkeys(losses.get(name).reads for name in selection.names))


def _loss_fns(hyper, selection):
    """(loss_fn, readout_fn) of this replica: its loss, chosen and parametrised by its `hyper` entries."""
    def loss_fn(outputs, labels, mask):
        return losses.selected_loss(selection, hyper, outputs, labels, mask=mask)

    def readout_fn(outputs):
        return losses.selected_readout(selection, hyper["loss"], outputs)

    return loss_fn, readout_fn


def train_step(state, inputs, labels, mask, hyper, *, graphdef, tx, selection, rate_penalty=0.0, target_rate=0.02,
               axis_name=None, frame_shape=None, total_steps=None, augment=None, stacked=False):
    """`step.train_step` for every replica on the same (shard of a) batch, vmapped: `state` and `hyper`
    leaves have a leading replica axis; returns (new state, metrics, each [R]). `selection`: the losses
    the replicas use (`hyperparameters` gives it). `rate_penalty`: the spike-rate penalty's weight, one
    number for every replica, or None: each replica's own, hyper["rate_penalty"] (`rate_penalty(hyper)`
    gives the one that fits `hyper`). `augment` (`build.augment`): each replica augments
    with its own seed, hyper["seed"], so equal seeds see equal inputs (paired) and other seeds other
    ones; the batch is then unpacked per replica. A replica whose step
    gives a non-finite loss, gradient norm or parameter keeps its previous state, now and at every later
    step, and its `frozen_at` becomes this step."""

    def one(state, hyper):
        inner = {k: v for k, v in state.items() if k != "frozen_at"}
        loss_fn, readout_fn = _loss_fns(hyper, selection)
        batch = (inputs, labels, mask)
        if stacked:  # [S, ...] over data orders: this replica's own (`data_seeds`)
            batch = tuple(x[hyper["data_order"]] for x in batch)
        weight = hyper["rate_penalty"] if rate_penalty is None else rate_penalty
        new, metrics = step.train_step(inner, *batch, graphdef=graphdef, tx=tx, loss_fn=loss_fn,
                                       readout_fn=readout_fn, rate_penalty=weight, target_rate=target_rate,
                                       axis_name=axis_name, frame_shape=frame_shape, total_steps=total_steps,
                                       augment=augment, seed=hyper["seed"], reads=reads(selection))
        ok = (metrics["params_finite"] > 0) & jnp.isfinite(metrics["loss"]) & jnp.isfinite(metrics["grad_norm"])
        frozen = state["frozen_at"] >= 0
        keep = frozen | ~ok
        new = jax.tree.map(lambda n, o: jnp.where(keep, o, n), new, inner)
        new["frozen_at"] = jnp.where(~frozen & ~ok, inner["step"], state["frozen_at"])
        return new, metrics

    return _over_replicas(one, state, hyper)


def _over_replicas(fn, tree, hyper):
    """jax.vmap(fn)(tree, hyper); one replica runs unmapped (the same program as a single run)."""
    if np.shape(hyper["seed"])[0] == 1:
        first = lambda t: jax.tree.map(lambda x: x[0], t)
        return jax.tree.map(lambda x: x[None], fn(first(tree), first(hyper)))
    return jax.vmap(fn)(tree, hyper)


def eval_step(params, inputs, labels, mask, hyper, *, graphdef, selection, fan_out, axis_name=None,
              frame_shape=None):
    """`evaluate.eval_step` for every replica (params and hyper leaves [R, ...]) on the same batch; each
    replica's loss is its own. Returns the sums with a leading replica axis."""

    def one(params, hyper):
        loss_fn, readout_fn = _loss_fns(hyper, selection)
        return evaluate.eval_step(params, inputs, labels, mask, graphdef=graphdef, loss_fn=loss_fn,
                                  readout_fn=readout_fn, fan_out=fan_out, axis_name=axis_name,
                                  frame_shape=frame_shape, reads=reads(selection))

    return _over_replicas(one, params, hyper)


def _over_mesh(step, mesh, batch, out_state: bool, **jit_kwargs):
    """jit(shard_map(step)) with arguments (state or params, *batch, hyper): state and hyper as
    `parallel.replica_spec` (replicated, or split over 'replica'), the batch as `batch`; the state (when
    `out_state`) leaves as it came, the metrics or sums replicated, [R] whole on every device. ValueError,
    at trace time, unless R splits over the replica groups."""
    spread = parallel.replica_spec(mesh)
    out_specs = (spread, spread) if out_state else spread
    sharded = jax.shard_map(step, mesh=mesh, in_specs=(spread,) + batch + (spread,), out_specs=out_specs)

    def run(state, *args):
        parallel.check_replica_count(np.shape(args[-1]["seed"])[0], mesh)
        return sharded(state, *args)

    whole = parallel.replicated(mesh)
    out_shardings = (jax.sharding.NamedSharding(mesh, spread), whole) if out_state else whole
    return jax.jit(run, out_shardings=out_shardings, **jit_kwargs)


def parallel_train_step(mesh, *, stacked: bool = False, **kwargs):
    """jit(shard_map(vmap over replicas of the step)); state and hyperparameters replicated (split over
    'replica' on a replica mesh), the state donated, the batch split over 'data'; metrics [R] replicated.
    `stacked`: the batch comes stacked over data orders, inputs [S, T, B, ...], labels and mask [S, B]
    (`data.SeededTrainIterator` over `data_seeds(hyper)`), whole in every replica group."""
    step = functools.partial(train_step, axis_name=parallel.DATA_AXIS, stacked=stacked, **kwargs)
    lead = (None,) if stacked else ()
    batch = (P(*lead, None, parallel.DATA_AXIS), P(*lead, parallel.DATA_AXIS), P(*lead, parallel.DATA_AXIS))
    return _over_mesh(step, mesh, batch, out_state=True, donate_argnums=0)


def parallel_eval_step(mesh, **kwargs):
    """jit(shard_map(vmap over replicas of the eval step)): params and hyperparameters replicated (split over
    'replica' on a replica mesh), the batch split over 'data'; the sums [R, ...] replicated."""
    step = functools.partial(eval_step, axis_name=parallel.DATA_AXIS, **kwargs)
    batch = (P(None, parallel.DATA_AXIS), P(parallel.DATA_AXIS), P(parallel.DATA_AXIS))
    return _over_mesh(step, mesh, batch, out_state=False)


def report_facts(config, replicas: list[dict]) -> list[dict]:
    """`build.report_facts` per replica, its "loss" the replica's own loss label ("mse(true_rate=0.8)":
    its loss with its parameters, those it does not set from `config`), as a single run of it would name it."""
    base, out = build.report_facts(config), []
    for overrides in replicas:
        spec = losses.get(overrides.get("loss", config.loss.name))
        params = {k: v for k, v in overrides.items() if k not in BASE_FIELDS + ("label",)}
        out.append({**base, "loss": spec.label({**dict(config.loss[spec.name]), **params})})
    return out


def summaries(totals: dict, facts: dict | list[dict], count: int) -> list[dict]:
    """`evaluate.summarize` per replica of stacked eval sums (each leaf [R, ...], R = count); `facts`: one
    dict per replica (`report_facts`), or one for all."""
    facts = facts if isinstance(facts, list) else [facts] * count
    return [evaluate.summarize(jax.tree.map(lambda x: np.asarray(x)[r], totals), facts[r]) for r in range(count)]
