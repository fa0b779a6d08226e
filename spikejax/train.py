"""Training: a pure train step, data parallel over a 'data' mesh axis, and the run that resumes exactly.

  train_step(state, inputs, labels, mask, ...)     one optimizer step (pure)
  parallel_train_step(mesh, ...)                   jit(shard_map(train_step)), state donated
  train_and_evaluate(config, workdir, stop=None)   validates, trains (resuming from workdir), evaluates

The train state is a dict {params, opt_state, step, rng}, replicated on every device and donated to the
step. The step runs under `jax.shard_map`: each device computes the loss of its share of the batch, and
the gradients and metrics are averaged with `lax.pmean` over 'data'.

The run, in order: validate the config, load both data splits and build the model (nothing is written
before these pass), lock the workdir, restore the newest intact checkpoint and refuse a conflicting config,
then train. Failures are exceptions from `spikejax.errors` (NonFiniteError, DiskFullError, Interrupted,
...); the library never exits the process and installs no signal handler (pass a `loop.StopSignal`).
"""
from __future__ import annotations

import contextlib
import functools
import math
import os
import time

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import nnx
from jax.sharding import PartitionSpec as P

from spikejax import build, losses, parallel
from spikejax import config as config_lib
from spikejax import data as data_lib
from spikejax.checkpoint import Checkpointer, check_resumable, finite
from spikejax.errors import ConfigError, Interrupted, NonFiniteError, WorkdirLockedError
from spikejax.evaluate import apply_model, evaluate_params, run_record
from spikejax.loop import MetricWriter, Progress, StopSignal, WorkdirLock, atomic_write_json, log, stop_now


def train_step(state, inputs, labels, mask, *, graphdef, tx, loss_fn, readout_fn, rate_penalty=0.0,
               target_rate=0.02, axis_name=None, frame_shape=None, update_scale=None):
    """One optimizer step on a (shard of a) batch. inputs [T, b, ...], labels [b], mask [b]; with
    `frame_shape`, inputs are bit-packed uint8 [T, b, ceil(F/8)] and are unpacked on the device.
    `loss_fn(outputs, labels, mask)` and `readout_fn(outputs)` (predictions [T, b]) take the model's
    outputs {"spikes": [T, b, C]} (`build.loss`, `build.readout`).
    `update_scale` (a scalar, may be traced) multiplies the optimizer's updates: a per-replica learning
    rate over an optimizer built with peak rate 1 (spikejax.replicas).

    Returns (new state, metrics {loss, accuracy, output_rate, grad_norm, params_finite}); with
    `axis_name`, gradients and metrics are averaged over that mesh axis. `params_finite` is 1.0 when every
    new parameter is finite: a NaN network never fires, so its loss alone can look finite.
    """

    def objective(params):
        out, layers = apply_model(graphdef, params, inputs, frame_shape)
        loss = loss_fn({"spikes": out}, labels, mask)
        if rate_penalty:
            loss = loss + rate_penalty * sum(losses.spike_rate_penalty(h, target_rate=target_rate, mask=mask)
                                             for h in layers[1:-1])
        return loss, out

    params = state["params"]
    if axis_name is not None:
        params = parallel.varying(params, axis_name)  # per-device gradients, averaged by the pmean below
    (loss, out), grads = jax.value_and_grad(objective, has_aux=True)(params)
    correct = (readout_fn({"spikes": out})[-1] == labels).astype(jnp.float32)
    metrics = {"loss": loss, "accuracy": jnp.sum(correct * mask) / jnp.maximum(jnp.sum(mask), 1.0),
               "output_rate": jnp.mean(out.astype(jnp.float32))}
    if axis_name is not None:
        grads = jax.lax.pmean(grads, axis_name)
        metrics = jax.lax.pmean(metrics, axis_name)
    updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
    if update_scale is not None:
        updates = jax.tree.map(lambda u: u * jnp.asarray(update_scale, u.dtype), updates)
    params = optax.apply_updates(state["params"], updates)
    metrics["grad_norm"] = jnp.sqrt(sum(jnp.sum(jnp.square(g.astype(jnp.float32))) for g in jax.tree.leaves(grads)))
    metrics["params_finite"] = finite(params).astype(jnp.float32)
    new_state = {"params": params, "opt_state": opt_state, "step": state["step"] + 1,
                 "rng": jax.random.fold_in(state["rng"], state["step"])}
    return new_state, metrics


def parallel_train_step(mesh, **kwargs):
    """jit(shard_map(train_step)) over `mesh`; the state (argument 0) is replicated and donated."""
    step = functools.partial(train_step, axis_name=parallel.DATA_AXIS, **kwargs)
    batch = (P(None, parallel.DATA_AXIS), P(parallel.DATA_AXIS), P(parallel.DATA_AXIS))
    sharded = jax.shard_map(step, mesh=mesh, in_specs=(P(),) + batch, out_specs=(P(), P()))
    return jax.jit(sharded, donate_argnums=0)


def checked_metrics(metrics: dict, step: int, last_saved: int | None, checkpoints: str) -> dict:
    """The step's metrics as floats; NonFiniteError if the loss, the gradient norm or any parameter is
    not finite."""
    values = {k: float(v) for k, v in jax.device_get(metrics).items()}
    params_ok = values.pop("params_finite") == 1.0
    if not params_ok or not all(math.isfinite(v) for v in values.values()):
        what = "parameters" if not params_ok else ", ".join(k for k, v in values.items() if not math.isfinite(v))
        raise NonFiniteError(
            f"non-finite {what} at step {step} (loss {values['loss']:.4g}, gradient norm "
            f"{values['grad_norm']:.4g}); training stopped, "
            + (f"the last good checkpoint (step {last_saved}) is kept" if last_saved is not None else
               "nothing was saved") + f" in {checkpoints}. Lower optimizer.learning_rate or check the inputs.")
    return values


def check_batch_split(config, mesh) -> None:
    """ConfigError unless the global batch splits evenly over the mesh's devices (checked before any data work)."""
    if config.batch_size % mesh.size:
        raise ConfigError(f"config field batch_size = {config.batch_size}: must be divisible by the {mesh.size} "
                          "devices")


def checked_step_count(config, train_data) -> tuple[int, int]:
    """(batches per epoch, the step training stops at: epochs x batches, or max_steps if sooner); ConfigError
    when the batch exceeds the training samples."""
    if config.batch_size > len(train_data):
        raise ConfigError(f"config field batch_size = {config.batch_size}: must be <= the {len(train_data)} "
                          "training samples")
    batches_per_epoch = len(train_data) // config.batch_size
    total_steps = config.epochs * batches_per_epoch
    return batches_per_epoch, min(total_steps, config.max_steps or total_steps)


@contextlib.contextmanager
def lock_workdir(workdir: str):
    """Process 0 holds the workdir's lock for the block; with several processes all of them learn whether
    it succeeded."""
    lock, error = WorkdirLock(workdir), None
    if jax.process_index() == 0:
        try:
            lock.acquire()
        except WorkdirLockedError as caught:
            error = caught
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        if not multihost_utils.broadcast_one_to_all(jnp.int32(error is None)):
            raise error or WorkdirLockedError(f"workdir {workdir} is in use by another run (seen by process 0)")
    elif error is not None:
        raise error
    if lock.stale_owner:
        log(f"took over the lock of {workdir} from {lock.stale_owner}, which is no longer running")
    try:
        yield lock
    finally:
        lock.release()


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *, stop: StopSignal | None = None) -> dict:
    """Trains `config` in `workdir` (resuming from its newest intact checkpoint), then evaluates.

    Writes <workdir>/config.json, metrics.jsonl, tensorboard/, checkpoints/ and eval.json; returns the eval
    dict. `stop`: an entered `loop.StopSignal`; when it receives a signal the run saves a checkpoint and
    raises `Interrupted`.
    """
    config_lib.validate(config)
    workdir = os.path.abspath(os.path.expanduser(workdir))
    mesh = parallel.data_mesh()
    check_batch_split(config, mesh)
    (train_data, validation), test_data = build.training_splits(config), build.load_split(config, "test")
    batches_per_epoch, stop_at = checked_step_count(config, train_data)
    total_steps = config.epochs * batches_per_epoch
    model = build.model(config, train_data.frame_shape, len(train_data.classes))
    graphdef, params = nnx.split(model)
    tx = build.optimizer(config, total_steps)
    state = build.init_state(params, tx, mesh, config.seed)
    # bit-packed splits travel packed (8x fewer bytes to assemble and copy) and are unpacked on the device
    step_fn = parallel_train_step(mesh, graphdef=graphdef, tx=tx, loss_fn=build.loss(config),
                                  readout_fn=build.readout(config),
                                  rate_penalty=config.loss.rate_penalty, target_rate=config.loss.target_rate,
                                  frame_shape=build.packed_frame_shape(train_data))
    config_json = config_lib.to_dict(config)
    checkpoints = os.path.join(workdir, "checkpoints")

    with lock_workdir(workdir), Checkpointer(checkpoints, max_to_keep=config.keep_checkpoints) as checkpointer:
        restored = checkpointer.restore_latest(state, set_aside_damaged=True,
                                               check_meta=lambda saved: check_resumable(saved["config"], config_json))
        meta = {"data": {"epoch": 0, "position": 0}, "config": config_json, "train_seconds": 0.0}
        if restored is not None:
            state, meta = restored.state, {**meta, **restored.meta, "config": config_json}
            log(f"resumed from {checkpoints} at step {restored.step} (epoch {meta['data']['epoch']}, "
                f"batch {meta['data']['position']})")
        if jax.process_index() == 0:  # for people; resuming reads the copy inside each checkpoint
            atomic_write_json(os.path.join(workdir, "config.json"), config_json)
        step = int(jax.device_get(state["step"]))
        last_saved = restored.step if restored is not None else None
        iterator = data_lib.TrainIterator(train_data, config.batch_size, seed=config.seed, packed=train_data.packed,
                                          process_index=jax.process_index(), process_count=jax.process_count(),
                                          state=meta["data"])
        held_out = f" ({len(validation)} more held out for validation)" if validation is not None else ""
        log(f"training {config.dataset} with loss={build.loss_label(config)} on {mesh.size} device(s) "
            f"({jax.process_count()} process(es), {jax.devices()[0].platform}): {len(train_data)} samples{held_out}, "
            f"batch {config.batch_size}, {batches_per_epoch} steps/epoch, steps {step} -> {stop_at}")
        progress = Progress(step, stop_at, config.batch_size)
        seconds_before, started = meta["train_seconds"], time.time()
        with MetricWriter(workdir, resume_step=last_saved) as writer:
            for batch in data_lib.prefetch(iterator) if step < stop_at else ():
                state, metrics = step_fn(state, *parallel.global_batch_arrays(mesh, batch))
                step += 1
                progress.step()
                # the iterator state after the last batch the model consumed (the prefetch thread runs ahead)
                meta = {**meta, "data": batch.next_state}
                last = step >= stop_at
                log_now = step % config.log_every == 0 or last
                if log_now or (stop is not None and stop.received):
                    values = checked_metrics(metrics, step, last_saved, checkpoints)
                    rate, eta = progress.report(step)
                    writer.write(step, {**values, "samples_per_second": rate})
                    log(f"step {step}/{stop_at} epoch {step / batches_per_epoch:.2f} loss {values['loss']:.4f} "
                        f"acc {values['accuracy']:.3f} rate {values['output_rate']:.3f} {rate:.0f} samples/s "
                        f"ETA {eta:.0f} s")
                stopping = stop_now(stop, sync_point=log_now)
                if stopping or last or step % config.checkpoint_every_steps == 0:
                    meta["train_seconds"] = seconds_before + time.time() - started
                    checkpointer.save(step, state, meta)
                    last_saved = step
                    reason = f"received {stopping}" if stopping else "end of training" if last else "periodic"
                    log(f"saved checkpoint at step {step} ({reason})")
                if stopping:
                    raise Interrupted(stopping, step)
                if last:
                    break
        # meta["train_seconds"] was brought up to date by the save at the last step (or restored, on a rerun)
        return evaluate_params(config, workdir, state["params"], mesh=mesh, graphdef=graphdef, model=model,
                               test_data=test_data, validation=validation, extra=run_record(step, meta))
