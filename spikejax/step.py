"""The pure training step, data parallel over a 'data' mesh axis; shared by a single run and by the
comparison's replicas (which vmap it).

  train_step(state, inputs, labels, mask, ...)     one optimizer step (pure)
  parallel_train_step(mesh, ...)                   jit(shard_map(train_step)), state donated
  checked_metrics(metrics, step, ...)              the metrics as floats; NonFiniteError if any is not finite

The train state is a dict {params, opt_state, step}, replicated on every device and donated to the step.
Under `jax.shard_map` each device computes the loss of its share of the batch, and the gradients and
metrics are averaged with `lax.pmean` over 'data'. Hyperparameters that vary between runs (the peak
learning rate) live in the optimizer state (`build.optimizer`, optax.inject_hyperparams), so the step knows
nothing of sweeps.
"""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import optax
from jax.sharding import PartitionSpec as P

from spikejax import augment as augment_lib
from spikejax import build, losses, parallel
from spikejax.checkpoint import finite
from spikejax.errors import NonFiniteError


def train_step(state, inputs, labels, mask, *, graphdef, tx, loss_fn, readout_fn, rate_penalty=0.0,
               target_rate=0.02, axis_name=None, frame_shape=None, total_steps=None, augment=None, seed=0,
               reads=("spikes",)):
    """One optimizer step on a (shard of a) batch. inputs [T, b, ...], labels [b], mask [b]; with
    `frame_shape`, inputs are bit-packed uint8 [T, b, ceil(F/8)] and are unpacked on the device.
    `loss_fn(outputs, labels, mask)` and `readout_fn(outputs)` (predictions [T, b]) take the model's
    outputs {"spikes": [T, b, C], "membrane": [T, b, C]} (`build.loss`, `build.readout`), which hold what
    `reads` names (`build.reads`: what the losses read; the membrane is computed only when read).
    `total_steps`: the run's length, from which models that read the training progress (a delayed model's
    annealed delay width) get step / total_steps. `rate_penalty` w adds w * sum over the hidden layers of
    `losses.spike_rate_penalty(h, target_rate)` to the loss: a Python number (0: not computed at all) or a
    traced scalar (a replica's own weight, `spikejax.compare.replicas`; computed even where it is 0).

    `augment` (an active `spikejax.augment.Augment`, `build.augment`): the unpacked inputs are augmented
    with draws keyed by (`seed`, state["step"], global sample position), and with CutMix the loss mixes the
    own and the partner's labels per example (`augment.mixed_loss`); accuracy counts the own labels.

    Returns (new state, metrics {loss, accuracy, output_rate (0 for an integrator output layer, which does
    not spike), grad_norm, params_finite}); with
    `axis_name`, gradients and metrics are averaged over that mesh axis. `params_finite` is 1.0 when every
    new parameter is finite: a NaN network never fires, so its loss alone can look finite.
    """
    progress = None if total_steps is None else jnp.minimum(state["step"] / max(total_steps, 1), 1.0)
    mix = None
    if augment is not None and augment.active:
        if frame_shape is not None:
            inputs, frame_shape = build.unpack_spikes(inputs, frame_shape), None
        inputs, partner_labels, weight = augment_lib.apply(augment, inputs, labels, seed=seed, step=state["step"],
                                                           axis_name=axis_name)
        mix = (partner_labels, weight) if augment.cutmix else None

    def objective(params):
        outputs, layers = build.apply_model(graphdef, params, inputs, frame_shape, progress, reads)
        if mix is None:
            loss = loss_fn(outputs, labels, mask)
        else:
            loss = augment_lib.mixed_loss(loss_fn, outputs, labels, *mix, mask)
        if isinstance(rate_penalty, jax.Array) or rate_penalty:  # traced (per replica), or a nonzero number
            loss = loss + rate_penalty * sum(losses.spike_rate_penalty(h, target_rate=target_rate, mask=mask)
                                             for h in layers[1:-1])
        return loss, (outputs, layers[-1])

    params = state["params"]
    if axis_name is not None:
        params = parallel.varying(params, axis_name)  # per-device gradients, averaged by the pmean below
    (loss, (outputs, out)), grads = jax.value_and_grad(objective, has_aux=True)(params)
    correct = (readout_fn(outputs)[-1] == labels).astype(jnp.float32)
    metrics = {"loss": loss, "accuracy": jnp.sum(correct * mask) / jnp.maximum(jnp.sum(mask), 1.0),
               "output_rate": jnp.mean(out.astype(jnp.float32))}
    if axis_name is not None:
        grads = jax.lax.pmean(grads, axis_name)
        metrics = jax.lax.pmean(metrics, axis_name)
    updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    metrics["grad_norm"] = jnp.sqrt(sum(jnp.sum(jnp.square(g.astype(jnp.float32))) for g in jax.tree.leaves(grads)))
    metrics["params_finite"] = finite(params).astype(jnp.float32)
    new_state = {"params": params, "opt_state": opt_state, "step": state["step"] + 1}
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
