"""The single run: validate, load, build, train (resuming from the workdir) on the shared loop, evaluate.

  train_and_evaluate(config, workdir, stop=None)   -> the eval dict (also <workdir>/eval.json)

The run, in order: validate the config, load both data splits and build the model (nothing is written
before these pass), lock the workdir, restore the newest intact checkpoint and refuse a conflicting config
or other training data (by content fingerprint),
then train (`spikejax.loop`) and evaluate (`spikejax.evaluate`). Failures are exceptions from
`spikejax.errors` (NonFiniteError, DiskFullError, Interrupted, ...); the library never exits the process and
installs no signal handler (pass a `loop.StopSignal`).
"""
from __future__ import annotations

import os

import jax
import ml_collections
from flax import nnx

from spikejax import build, loop, parallel, step
from spikejax import config as config_lib
from spikejax.checkpoint import check_resumable, check_same_data
from spikejax.runs import evaluate_params, run_record
from spikejax.workdir import atomic_write_json, log


def _report(plan: loop.Schedule, checkpoints: str, spiking: bool = True):
    """The single run's log line, each field named: step and epoch (of the run's last), the loss and the
    accuracy of the last train batch, and the output layer's firing rate (spikes per neuron per step; left
    out for an output layer that does not spike)."""
    def report(at, metrics, state, last_saved):
        values = step.checked_metrics(metrics, at, last_saved, checkpoints)
        rate = f", output rate {values['output_rate']:.3f} spikes/neuron/step" if spiking else ""
        return values, (f"step {at}/{plan.stop_at}, {loop.epoch_text(at, plan)}, loss {values['loss']:.4f}, "
                        f"train-batch accuracy {values['accuracy']:.3f}{rate}")

    return report


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *, stop: loop.StopSignal | None = None) -> dict:
    """Trains `config` in `workdir` (resuming from its newest intact checkpoint), then evaluates.

    Writes <workdir>/config.json, metrics.jsonl, tensorboard/, checkpoints/ and eval.json; returns the eval
    dict. `stop`: an entered `loop.StopSignal`; when it receives a signal the run saves a checkpoint and
    raises `Interrupted`.
    """
    config_lib.validate(config)
    workdir = os.path.abspath(os.path.expanduser(workdir))
    mesh = parallel.data_mesh()
    loop.check_batch_split(config.batch_size, mesh.size)
    (train_data, validation), test_data = build.training_splits(config), build.load_split(config, "test")
    plan = loop.schedule(batch_size=config.batch_size, epochs=config.epochs, max_steps=config.max_steps,
                         log_every=config.log_every, checkpoint_every=config.checkpoint_every_steps,
                         seed=config.seed, train_samples=len(train_data), devices=mesh.size)
    model = build.model(config, train_data.frame_shape, len(train_data.classes))
    graphdef, params = nnx.split(model)
    tx = build.optimizer(config, plan.total_steps)
    state = build.init_state(params, tx, mesh)
    # bit-packed splits travel packed (8x fewer bytes to assemble and copy) and are unpacked on the device
    step_fn = step.parallel_train_step(mesh, graphdef=graphdef, tx=tx, loss_fn=build.loss(config),
                                       readout_fn=build.readout(config), rate_penalty=config.loss.rate_penalty,
                                       target_rate=config.loss.target_rate,
                                       frame_shape=build.packed_frame_shape(train_data), total_steps=plan.total_steps,
                                       augment=build.augment(config), seed=config.seed, reads=build.reads(config))
    config_json = config_lib.to_dict(config)
    legacy = (build.legacy_state(config, params, plan.total_steps),
              lambda old: parallel.replicate(build.from_legacy_state(old, tx), mesh))
    defaults = {"data": {"epoch": 0, "position": 0}, "config": config_json, "train_seconds": 0.0,
                "data_fingerprint": train_data.fingerprint}

    def check_meta(saved):
        check_resumable(saved["config"], config_json)
        check_same_data(saved, train_data.fingerprint, train_data.path)

    with loop.Session(workdir, state, defaults, mesh=mesh, keep=config.keep_checkpoints, legacy=legacy,
                      check_meta=check_meta) as session:
        session.meta["config"] = config_json  # the resumable fields (epochs, ...) are today's
        if jax.process_index() == 0:  # for people; resuming reads the copy inside each checkpoint
            atomic_write_json(os.path.join(workdir, "config.json"), config_json)
        first = int(jax.device_get(session.state["step"]))
        held_out = f" ({len(validation)} more held out for validation)" if validation is not None else ""
        log(f"training {config.dataset} with loss={build.loss_label(config)} on {mesh.size} device(s) "
            f"({jax.process_count()} process(es), {jax.devices()[0].platform}): {len(train_data)} samples{held_out}, "
            f"batch {config.batch_size}, {plan.batches_per_epoch} steps/epoch, steps {first} -> {plan.stop_at}")
        report = _report(plan, session.checkpointer.directory, spiking="spikes" in build.gives(config))
        outcome = session.train(step_fn, train_data, plan, report=report, stop=stop)
        # meta["train_seconds"] was brought up to date by the save at the last step (or restored, on a rerun)
        return evaluate_params(config, workdir, outcome.state["params"], mesh=mesh, graphdef=graphdef, model=model,
                               test_data=test_data, validation=validation,
                               extra=run_record(outcome.step, outcome.meta))
