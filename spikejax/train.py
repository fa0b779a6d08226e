"""Training and evaluation: pure steps, data parallel over a 'data' mesh axis, exact resume.

  train_and_evaluate(config, workdir)   trains (resuming from workdir), then evaluates -> eval.json
  evaluate(config, workdir)             evaluates the latest checkpoint -> eval.json

The train state is a dict {params, opt_state, step, rng}, replicated on every device and donated to the
step. The step runs under `jax.shard_map`: each device computes the loss of its share of the batch and
the gradients and metrics are averaged with `lax.pmean` over 'data'.
"""
from __future__ import annotations

import functools
import json
import math
import os
import signal
import sys
import time
from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx
from jax.sharding import PartitionSpec as P

from spikejax import data as data_lib
from spikejax import losses, models, parallel, readout
from spikejax.checkpoint import Checkpointer

DECISION_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
# Config fields that may change when a run resumes; any other difference is refused.
RESUMABLE_FIELDS = ("epochs", "max_steps", "log_every", "checkpoint_every_steps", "keep_checkpoints", "data_dir",
                    "eval_batch_size", "workdir",
                    # same function, another way of computing it:
                    "model.neuron.implementation", "model.neuron.checkpoint_every")


class NonFiniteLossError(RuntimeError):
    pass


class ConfigMismatchError(ValueError):
    pass


def log(message: str) -> None:
    if jax.process_index() == 0:
        print(message, flush=True)


# ---------------------------------------------------------------------------------------------------------
# Pieces built from the config.


def neuron_from_config(config) -> models.Neuron:
    n = config.model.neuron
    return models.Neuron(kind=n.kind, beta=float(n.beta), alpha=float(n.alpha), threshold=float(n.threshold),
                         reset=n.reset, surrogate=n.surrogate,
                         surrogate_params=tuple(sorted((k, float(v)) for k, v in dict(n.surrogate_params).items())),
                         detach_reset=bool(n.detach_reset), checkpoint_every=n.checkpoint_every or None,
                         implementation=n.get("implementation", "auto"))


def binning_from_config(config) -> data_lib.Binning:
    d = config.data
    return data_lib.Binning(time_bins=d.time_bins, bin_width_us=d.bin_width_us, downsample=d.downsample,
                            polarity=d.polarity, binarize=d.binarize)


def compute_dtype(name: str) -> str:
    """"auto" is bfloat16 on GPU/TPU (f32 parameters and membrane) and float32 on CPU, where bf16
    matmuls and convolutions are emulated and several times slower (BENCHMARKS.md)."""
    if name == "auto":
        return "bfloat16" if jax.default_backend() in ("gpu", "tpu") else "float32"
    return name


def build_model(config, frame_shape, num_classes):
    m = config.model
    return models.build(m.name, frame_shape, num_classes, neuron_from_config(config), seed=config.seed,
                        hidden=tuple(m.hidden), dtype=compute_dtype(m.dtype), init_scale=m.init_scale)


def loss_from_config(config) -> Callable:
    """(spikes [T, B, C], labels [B], mask [B]) -> scalar, the configured loss with its parameters."""
    c = config.loss
    fn = losses.get_loss(c.name)
    if fn is losses.count_mse:
        kwargs = dict(true_rate=c.true_rate, false_rate=c.false_rate)
    elif fn is losses.count_softmax:
        kwargs = dict(temperature=c.temperature)
    else:
        kwargs = dict(window=c.window or None, min_count=c.min_count)
    return functools.partial(fn, **kwargs)


def optimizer_from_config(config, total_steps: int) -> optax.GradientTransformation:
    o = config.optimizer
    warmup = min(o.warmup_steps, max(total_steps - 1, 0))
    if o.schedule == "cosine":
        lr = optax.warmup_cosine_decay_schedule(0.0, o.learning_rate, warmup, max(total_steps, warmup + 1))
    elif o.schedule == "constant":
        lr = optax.join_schedules([optax.linear_schedule(0.0, o.learning_rate, warmup),
                                   optax.constant_schedule(o.learning_rate)], [warmup])
    else:
        raise ValueError(f"unknown optimizer.schedule {o.schedule!r}; choose 'cosine' or 'constant'")
    if o.name == "adamw":
        update = optax.adamw(lr, weight_decay=o.weight_decay)
    elif o.name == "sgd":
        update = optax.chain(optax.add_decayed_weights(o.weight_decay), optax.sgd(lr, momentum=o.momentum or None))
    else:
        raise ValueError(f"unknown optimizer.name {o.name!r}; choose 'adamw' or 'sgd'")
    return optax.chain(optax.clip_by_global_norm(o.grad_clip) if o.grad_clip else optax.identity(), update)


def init_state(params, tx: optax.GradientTransformation, mesh, seed: int = 0) -> dict:
    """The train state {params, opt_state, step, rng}, replicated on every device of `mesh`."""
    state = {"params": params, "opt_state": tx.init(params), "step": jnp.zeros((), jnp.int32),
             "rng": jax.random.PRNGKey(seed)}
    return parallel.replicate(state, mesh)


# ---------------------------------------------------------------------------------------------------------
# Pure steps.


def unpack_spikes(packed: jax.Array, frame_shape) -> jax.Array:
    """uint8 [..., ceil(F/8)] bits in np.packbits order -> uint8 [..., *frame_shape], F = prod(frame_shape)."""
    features = math.prod(frame_shape)
    bits = (packed[..., None] >> jnp.arange(7, -1, -1, dtype=jnp.uint8)) & jnp.uint8(1)
    bits = bits.reshape(packed.shape[:-1] + (packed.shape[-1] * 8,))[..., :features]
    return bits.reshape(packed.shape[:-1] + tuple(frame_shape))


def _apply(graphdef, params, inputs, frame_shape=None):
    if frame_shape is not None:  # bit-packed batch (data pipeline packed=True)
        inputs = unpack_spikes(inputs, frame_shape)
    return nnx.merge(graphdef, params)(inputs)


def train_step(state, inputs, labels, mask, *, graphdef, tx, loss_fn, rate_penalty=0.0, target_rate=0.02,
               axis_name=None, frame_shape=None):
    """One optimizer step on a (shard of a) batch. inputs [T, b, ...], labels [b], mask [b]; with
    `frame_shape`, inputs are bit-packed uint8 [T, b, ceil(F/8)] and are unpacked on the device.

    Returns (new state, metrics {loss, accuracy, output_rate}); with `axis_name`, gradients and metrics
    are averaged over that mesh axis.
    """

    def objective(params):
        out, layers = _apply(graphdef, params, inputs, frame_shape)
        loss = loss_fn(out, labels, mask=mask)
        if rate_penalty:
            loss = loss + rate_penalty * sum(losses.spike_rate_penalty(h, target_rate=target_rate, mask=mask)
                                             for h in layers[1:-1])
        return loss, out

    (loss, out), grads = jax.value_and_grad(objective, has_aux=True)(state["params"])
    correct = (readout.predict(out) == labels).astype(jnp.float32)
    metrics = {"loss": loss, "accuracy": jnp.sum(correct * mask) / jnp.maximum(jnp.sum(mask), 1.0),
               "output_rate": jnp.mean(out.astype(jnp.float32))}
    if axis_name is not None:
        grads = jax.lax.pmean(grads, axis_name)
        metrics = jax.lax.pmean(metrics, axis_name)
    updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
    new_state = {"params": optax.apply_updates(state["params"], updates), "opt_state": opt_state,
                 "step": state["step"] + 1, "rng": jax.random.fold_in(state["rng"], state["step"])}
    return new_state, metrics


def eval_step(params, inputs, labels, mask, *, graphdef, loss_fn, fan_out, axis_name=None, frame_shape=None):
    """Sums over a (shard of a) padded batch: correct decisions over time, decision times and accuracy
    at each confidence threshold, spikes and SynOps per layer, and the loss. Padding (mask 0) counts
    nowhere. `frame_shape`: as for `train_step`."""
    out, layers = _apply(graphdef, params, inputs, frame_shape)
    weights = mask.astype(jnp.float32)
    sums = {
        "examples": jnp.sum(weights),
        "loss": loss_fn(out, labels, mask=mask) * jnp.sum(weights),
        "correct_over_time": jnp.sum(readout.correct_over_time(out, labels) * weights, axis=1),
        "spikes": jnp.stack([jnp.sum(readout.total_spikes(h) * weights) for h in layers]),
        "synops": jnp.stack([jnp.sum(readout.synops(h, f) * weights) for h, f in zip(layers, fan_out)]),
    }
    times, correct = [], []
    for threshold in DECISION_THRESHOLDS:
        t, prediction = readout.decide(out, threshold)
        times.append(jnp.sum(t * weights))
        correct.append(jnp.sum((prediction == labels) * weights))
    sums["decision_time"], sums["decision_correct"] = jnp.stack(times), jnp.stack(correct)
    if axis_name is not None:
        sums = jax.lax.psum(sums, axis_name)
    return sums


def parallel_train_step(mesh, **kwargs):
    """jit(shard_map(train_step)) over `mesh`; the state (argument 0) is replicated and donated."""
    step = functools.partial(train_step, axis_name=parallel.DATA_AXIS, **kwargs)
    batch = (P(None, parallel.DATA_AXIS), P(parallel.DATA_AXIS), P(parallel.DATA_AXIS))
    sharded = jax.shard_map(step, mesh=mesh, in_specs=(P(),) + batch, out_specs=(P(), P()))
    return jax.jit(sharded, donate_argnums=0)


def parallel_eval_step(mesh, **kwargs):
    step = functools.partial(eval_step, axis_name=parallel.DATA_AXIS, **kwargs)
    batch = (P(None, parallel.DATA_AXIS), P(parallel.DATA_AXIS), P(parallel.DATA_AXIS))
    return jax.jit(jax.shard_map(step, mesh=mesh, in_specs=(P(),) + batch, out_specs=P()))


# ---------------------------------------------------------------------------------------------------------
# The run.


def _config_dict(config) -> dict:
    return json.loads(config.to_json_best_effort()) if hasattr(config, "to_json_best_effort") else dict(config)


def _flatten(tree, prefix=""):
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def check_resumable(saved: dict, current: dict) -> None:
    """Raises ConfigMismatchError listing every field (outside RESUMABLE_FIELDS) that differs."""
    a, b = _flatten(saved), _flatten(current)
    diffs = [f"  {k}: checkpoint {a.get(k)!r} != now {b.get(k)!r}" for k in sorted(set(a) | set(b))
             if k not in RESUMABLE_FIELDS and k.split(".")[0] not in RESUMABLE_FIELDS and a.get(k) != b.get(k)]
    if diffs:
        raise ConfigMismatchError(
            "the workdir holds a checkpoint of a run with a different config; refusing to mix them:\n"
            + "\n".join(diffs) + "\nUse a new --workdir, or rerun with the checkpoint's settings.")


class _Writers:
    """metrics.jsonl plus TensorBoard event files (tensorboardX: no TensorFlow); process 0 only."""

    def __init__(self, workdir):
        self.enabled = jax.process_index() == 0
        if self.enabled:
            from tensorboardX import SummaryWriter

            self.jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a")
            self.tensorboard = SummaryWriter(os.path.join(workdir, "tensorboard"))

    def write(self, step, metrics: dict, prefix="train"):
        if not self.enabled:
            return
        self.jsonl.write(json.dumps({"step": int(step), **{k: float(v) for k, v in metrics.items()}}) + "\n")
        self.jsonl.flush()
        for key, value in metrics.items():
            self.tensorboard.add_scalar(f"{prefix}/{key}", float(value), int(step))

    def close(self):
        if self.enabled:
            self.jsonl.close()
            self.tensorboard.close()


class _StopSignal:
    """Turns SIGTERM/SIGINT into a flag the loop checks after each step (save, then exit)."""

    def __init__(self):
        self.received = None
        self.previous = {}

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self.previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame):
        self.received = signal.Signals(signum).name

    def agreed(self):
        """Multi-process: the signal name if any process received one. A collective, so every process
        calls it at the same steps (every log_every steps); a checkpoint save is a collective too."""
        from jax.experimental import multihost_utils

        flags = multihost_utils.process_allgather(np.int32(self.received is not None))
        return (self.received or "SIGTERM") if np.any(flags) else None

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def load_split(config, split: str) -> data_lib.CachedSplit:
    """The config's dataset split, binned and cached as the config says."""
    return data_lib.load(config.dataset, split, data_dir=config.data_dir, binning=binning_from_config(config),
                         **dict(config.data.options))


def packed_frame_shape(split: data_lib.CachedSplit) -> tuple[int, ...] | None:
    """`frame_shape` for train_step / eval_step: the split's frame when its batches travel bit-packed
    (TrainIterator / eval_batches with packed=split.packed), else None."""
    return tuple(split.frame_shape) if split.packed else None


def _setup(config):
    mesh = parallel.data_mesh()
    info = data_lib.get_info(config.dataset)
    model = build_model(config, tuple(data_lib.frame_shape(info.sensor_size, binning_from_config(config))),
                        info.num_classes)
    graphdef, params = nnx.split(model)
    return mesh, model, graphdef, params


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Trains `config` in `workdir` (resuming from its latest checkpoint), then evaluates.

    Writes <workdir>/metrics.jsonl, tensorboard/, checkpoints/ and eval.json; returns the eval dict.
    """
    workdir = os.path.abspath(os.path.expanduser(workdir))
    os.makedirs(workdir, exist_ok=True)
    config_json = _config_dict(config)
    if jax.process_index() == 0:  # for people; resuming reads the copy inside each checkpoint
        with open(os.path.join(workdir, "config.json"), "w") as f:
            json.dump(config_json, f, indent=1)
    mesh, model, graphdef, params = _setup(config)
    if config.batch_size % mesh.size:
        raise ValueError(f"batch_size {config.batch_size} must be divisible by the {mesh.size} devices")
    train_data = load_split(config, "train")
    batches_per_epoch = len(train_data) // config.batch_size
    total_steps = config.epochs * batches_per_epoch
    stop_at = min(total_steps, config.max_steps) if config.max_steps else total_steps
    tx = optimizer_from_config(config, total_steps)
    state = init_state(params, tx, mesh, config.seed)

    checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"), max_to_keep=config.keep_checkpoints)
    iterator_state = None
    latest = checkpointer.latest_step()
    if latest is not None:
        meta = checkpointer.restore_meta(latest)
        check_resumable(meta["config"], config_json)
        state = checkpointer.restore_state(latest, state)
        iterator_state = meta["data"]
        log(f"resumed from {workdir}/checkpoints at step {latest} (epoch {iterator_state['epoch']}, "
            f"batch {iterator_state['position']})")

    # bit-packed splits travel packed (8x fewer bytes to assemble and copy) and are unpacked on the device
    step_fn = parallel_train_step(mesh, graphdef=graphdef, tx=tx, loss_fn=loss_from_config(config),
                                  rate_penalty=config.loss.rate_penalty, target_rate=config.loss.target_rate,
                                  frame_shape=packed_frame_shape(train_data))
    iterator = data_lib.TrainIterator(train_data, config.batch_size, seed=config.seed, packed=train_data.packed,
                                      process_index=jax.process_index(), process_count=jax.process_count(),
                                      state=iterator_state)
    step = int(jax.device_get(state["step"]))
    log(f"training {config.dataset} with loss={config.loss.name} on {mesh.size} device(s) "
        f"({jax.process_count()} process(es), {jax.devices()[0].platform}): {len(train_data)} samples, "
        f"batch {config.batch_size}, {batches_per_epoch} steps/epoch, steps {step} -> {stop_at}")
    writers = _Writers(workdir)
    last_saved = latest
    # the iterator state after the last batch the model consumed (the prefetch thread runs ahead)
    consumed = iterator_state or iterator.state
    meta = lambda: {"data": consumed, "config": config_json}

    def check_finite(values: dict) -> dict:
        values = {k: float(v) for k, v in jax.device_get(values).items()}
        if not all(math.isfinite(v) for v in values.values()):
            raise NonFiniteLossError(
                f"non-finite training metrics at step {step}: {values}. Training stopped; the last good "
                f"checkpoint (step {last_saved}) is kept in {workdir}/checkpoints. Lower the learning rate "
                "or check the inputs.")
        return values

    def save(reason):
        nonlocal last_saved
        if last_saved == step:
            return
        if metrics is not None:
            check_finite(metrics)  # never replace the last good checkpoint with a non-finite state
        checkpointer.save(step, state, meta())
        last_saved = step
        log(f"saved checkpoint at step {step} ({reason})")

    metrics = None
    try:
        with _StopSignal() as stop:
            window_start, window_steps = time.time(), 0
            run_start, run_first_step = time.time(), step
            for batch in data_lib.prefetch(iterator) if step < stop_at else ():
                state, metrics = step_fn(state, *parallel.global_batch_arrays(mesh, batch))
                step += 1
                consumed = batch.next_state
                window_steps += 1
                last = step >= stop_at
                if step % config.log_every == 0 or last or stop.received:
                    metrics = check_finite(metrics)
                    elapsed = time.time() - window_start
                    rate = window_steps * config.batch_size / max(elapsed, 1e-9)
                    eta = (stop_at - step) * (time.time() - run_start) / max(step - run_first_step, 1)
                    writers.write(step, {**metrics, "samples_per_second": rate})
                    log(f"step {step}/{stop_at} epoch {step / batches_per_epoch:.2f} loss {metrics['loss']:.4f} "
                        f"acc {metrics['accuracy']:.3f} rate {metrics['output_rate']:.3f} "
                        f"{rate:.0f} samples/s ETA {eta:.0f} s")
                    window_start, window_steps = time.time(), 0
                if jax.process_count() > 1:  # every process must take part in the save: agree first
                    stopping = stop.agreed() if step % config.log_every == 0 or last else None
                else:
                    stopping = stop.received
                if stopping:
                    save(f"received {stopping}")
                    log(f"stopped by {stopping}; rerun the same command to resume")
                    sys.exit(128 + getattr(signal, stopping))
                if config.checkpoint_every_steps and step % config.checkpoint_every_steps == 0:
                    save("periodic")
                if last:
                    break
            save("end of training")
    finally:
        writers.close()
    result = evaluate_state(config, workdir, state["params"], mesh=mesh, graphdef=graphdef, model=model,
                            test_data=load_split(config, "test"))
    checkpointer.close()
    return result


def saved_config(workdir: str) -> ml_collections.ConfigDict:
    """The config stored with the latest checkpoint in `workdir`."""
    workdir = os.path.abspath(os.path.expanduser(workdir))
    checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"))
    step = checkpointer.latest_step()
    if step is None:
        raise FileNotFoundError(f"no checkpoint in {workdir}/checkpoints; train first")
    config = ml_collections.ConfigDict(checkpointer.restore_meta(step)["config"])
    checkpointer.close()
    return config


def restore(config: ml_collections.ConfigDict, workdir: str, step: int | None = None):
    """(train state at `step` (default: latest), step, mesh, graphdef, model) from <workdir>/checkpoints."""
    workdir = os.path.abspath(os.path.expanduser(workdir))
    checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"))
    step = checkpointer.latest_step() if step is None else step
    if step is None:
        raise FileNotFoundError(f"no checkpoint in {workdir}/checkpoints; train first")
    mesh, model, graphdef, params = _setup(config)
    tx = optimizer_from_config(config, 1)
    state = checkpointer.restore_state(step, init_state(params, tx, mesh))
    checkpointer.close()
    return state, step, mesh, graphdef, model


def evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Evaluates the latest checkpoint in `workdir` -> eval.json."""
    state, step, mesh, graphdef, model = restore(config, workdir)
    log(f"evaluating checkpoint step {step} from {workdir}")
    return evaluate_state(config, os.path.abspath(os.path.expanduser(workdir)), state["params"], mesh=mesh,
                          graphdef=graphdef, model=model, test_data=load_split(config, "test"))


def evaluate_state(config, workdir, params, *, mesh, graphdef, model, test_data) -> dict:
    fn = parallel_eval_step(mesh, graphdef=graphdef, loss_fn=loss_from_config(config), fan_out=model.fan_out,
                            frame_shape=packed_frame_shape(test_data))
    eval_batch = max(mesh.size, config.eval_batch_size - config.eval_batch_size % mesh.size)
    totals = None
    for batch in data_lib.prefetch(data_lib.eval_batches(test_data, eval_batch, process_index=jax.process_index(),
                                                         process_count=jax.process_count(),
                                                         packed=test_data.packed)):
        sums = fn(params, *parallel.global_batch_arrays(mesh, batch))
        sums = jax.device_get(sums)
        totals = sums if totals is None else jax.tree.map(np.add, totals, sums)
    result = summarize(totals, config, binning_from_config(config))
    if jax.process_index() == 0:
        with open(os.path.join(workdir, "eval.json"), "w") as f:
            json.dump(result, f, indent=1)
        from spikejax import plots

        plots.accuracy_over_time({config.loss.name: result}, os.path.join(workdir, "accuracy_over_time.png"))
        plots.latency_tradeoff({config.loss.name: result}, os.path.join(workdir, "latency_accuracy.png"))
    log(f"test accuracy {result['accuracy']:.4f} on {result['num_examples']} examples; "
        f"95%-of-final at step {result['latency_steps']['accuracy_95pct_of_final']}, "
        f"spikes/sample {result['spikes_per_sample']['total']:.0f}, SynOps/sample {result['synops_per_sample']['total']:.0f}"
        f"; wrote {workdir}/eval.json")
    return result


def summarize(totals: dict, config, binning) -> dict:
    """Turns eval_step sums into the eval.json dict."""
    n = float(totals["examples"])
    over_time = (np.asarray(totals["correct_over_time"]) / n).tolist()
    final = over_time[-1]

    def first_reaching(fraction):
        hits = [t for t, a in enumerate(over_time) if a >= fraction * final and final > 0]
        return hits[0] if hits else None

    layer_names = ["input"] + [f"layer{i}" for i in range(1, len(totals["spikes"]) - 1)] + ["output"]
    spikes = dict(zip(layer_names, (np.asarray(totals["spikes"]) / n).tolist()))
    synops = dict(zip(layer_names, (np.asarray(totals["synops"]) / n).tolist()))
    return {
        "dataset": config.dataset,
        "loss": config.loss.name + (f"(window={config.loss.window})" if config.loss.name in ("nll", "spike_nll",
                                                                                        "spikemax") and config.loss.window else ""),
        "accuracy": final,
        "num_examples": int(n),
        "test_loss": float(totals["loss"]) / n,
        "time_bins": binning.time_bins,
        "bin_width_us": binning.bin_width_us,
        "accuracy_over_time": over_time,
        "latency_steps": {
            "accuracy_95pct_of_final": first_reaching(0.95),
            "accuracy_99pct_of_final": first_reaching(0.99),
            "decision": {f"{th:g}": {"mean_time": float(t) / n, "accuracy": float(c) / n}
                         for th, t, c in zip(DECISION_THRESHOLDS, totals["decision_time"], totals["decision_correct"])},
        },
        "spikes_per_sample": {**spikes, "total": float(sum(v for k, v in spikes.items() if k != "input"))},
        "synops_per_sample": {**synops, "total": float(sum(synops.values()))},
    }


