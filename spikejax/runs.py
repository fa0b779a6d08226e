"""A run's folder: restore its newest checkpoint as a record, read its config, evaluate it, and write its
report (eval.json and the plots), for the single run, `experiments.evaluate` and `experiments.export`.

  restore(config, workdir)                      the newest intact checkpoint -> RestoredRun
  saved_config(workdir)                         the config stored with it
  evaluation_config(workdir, data_dir=..., eval_batch_size=...)   the run's own config, evaluation settings applied
  evaluate_params(config, workdir, params, ...) test split (and validation) -> eval.json and the plots
  write_plots(config, folder, result, ...)      the run's PNGs (`spikejax.figures`)
  evaluate(config, workdir)                     the newest intact checkpoint of `workdir` -> eval.json
"""
from __future__ import annotations

import dataclasses
import os

import jax
import numpy as np
from flax import nnx

from spikejax import build, figures, parallel, plots
from spikejax import config as config_lib
from spikejax import data as data_lib
from spikejax.checkpoint import Checkpointer
from spikejax.errors import ConfigError, MissingDependencyError, NoCheckpointError
from spikejax.evaluate import delay_summary, evaluate_split, neuron_summary
from spikejax.workdir import atomic_write_json, log


def evaluate_params(config, workdir: str, params, *, mesh, graphdef, model, test_data: data_lib.CachedSplit,
                    validation: data_lib.CachedSplit | None = None, extra: dict | None = None) -> dict:
    """Evaluates `params` on every sample of `test_data` (and of `validation`, whose accuracy and loss go
    into the result's "validation") once; writes <workdir>/eval.json (atomically, with `extra` fields added)
    and the plots (`write_plots`; without matplotlib: a note) on process 0. Returns the eval dict."""
    kwargs = dict(mesh=mesh, graphdef=graphdef, model=model)
    kwargs.update(loss_fn=build.loss(config), readout_fn=build.readout(config), reads=build.reads(config),
                  eval_batch_size=config.eval_batch_size, facts=build.report_facts(config))
    result = {**evaluate_split(params, test_data, **kwargs), **(extra or {})}
    local = local_copy(params)
    merged = nnx.merge(graphdef, local)
    result["neuron"] = neuron_summary(config_lib.to_dict(config.model.neuron), merged)
    if build.delayed(config):  # a delayed model: the rounded network above, the interpolated beside it
        result["delays"] = delay_summary(merged, result, evaluate_split(params, test_data, **kwargs, progress=1.0))
    if validation is not None:
        held = evaluate_split(params, validation, **kwargs)
        result["validation"] = {"accuracy": held["accuracy"], "num_examples": held["num_examples"],
                                "loss": held["mean_loss"]}
    if jax.process_index() == 0:
        atomic_write_json(os.path.join(workdir, "eval.json"), result)
        try:
            if config.get("plots", True):  # --config.plots=False: none (experiments.plot draws them later)
                write_plots(config, workdir, result, graphdef=graphdef, params=local, split=test_data)
        except MissingDependencyError as error:  # a core install: eval.json is the result, the PNGs are extra
            log(f"plots skipped: {error}")
    held_out = result.get("validation")
    if held_out:
        log(f"validation accuracy {held_out['accuracy']:.4f} on {held_out['num_examples']} held-out training samples")
    log(f"test accuracy {result['accuracy']:.4f} on {result['num_examples']} examples; "
        f"95%-of-final at step {result['latency_steps']['accuracy_95pct_of_final']}, "
        f"spikes/sample {result['spikes_per_sample']['total']:.0f}, "
        f"SynOps/sample {result['synops_per_sample']['total']:.0f}; wrote {workdir}/eval.json")
    return result


def local_copy(params):
    """Host numpy copies of replicated `params` (each array's first local shard: replicated, any one will do)."""
    return jax.tree.map(lambda x: np.asarray(x.addressable_data(0)) if isinstance(x, jax.Array) else x, params)


def write_plots(config, folder: str, result: dict, *, graphdef, params, split: data_lib.CachedSplit | None,
                index: int = 0, workdir: str | None = None) -> list[str]:
    """The run's PNGs in `folder` (`figures.run_figures`): from `result` (its eval dict), the metrics.jsonl of
    `workdir` (default `folder`) and sample `index` of `split` through the model (`params`: host-local;
    `split` None: no raster or membrane plot). MissingDependencyError without matplotlib, before any work.
    Returns the paths written."""
    plots.require_matplotlib()
    activity = None if split is None else figures.sample_activity(config, graphdef, params, split, index)
    records = figures.read_jsonl(os.path.join(workdir or folder, "metrics.jsonl"))
    return figures.run_figures(folder, result, records=records, activity=activity,
                               split_name=getattr(split, "split", "test"))


@dataclasses.dataclass
class RestoredRun:
    """A workdir's newest intact checkpoint: its train state and step, its meta (data-iterator state,
    config, training time), and the mesh, graphdef and model it was restored for."""
    state: dict
    step: int
    meta: dict
    mesh: object
    graphdef: object
    model: object


def restore(config, workdir: str) -> RestoredRun:
    """The newest intact checkpoint of `workdir` (an older state layout is converted); never creates
    anything. Raises NoCheckpointError when there is none."""
    directory = os.path.join(os.path.abspath(os.path.expanduser(workdir)), "checkpoints")
    mesh = parallel.data_mesh()
    model = build.model(config)
    graphdef, params = nnx.split(model)
    tx = build.optimizer(config, 1)
    template = build.init_state(params, tx, mesh)
    legacy = (build.legacy_state(config, params), lambda old: build.from_legacy_state(old, tx))
    with Checkpointer(directory, create=False) as checkpointer:
        restored = checkpointer.restore_latest(template, legacy=legacy)
    if restored is None:
        raise NoCheckpointError(f"no checkpoint in {directory}; train first")
    return RestoredRun(restored.state, restored.step, restored.meta, mesh, graphdef, model)


def saved_config(workdir: str):
    """The config stored with the newest intact checkpoint in `workdir` (an ml_collections.ConfigDict in
    today's field names)."""
    import ml_collections

    directory = os.path.join(os.path.abspath(os.path.expanduser(workdir)), "checkpoints")
    with Checkpointer(directory, create=False) as checkpointer:
        for step in reversed(checkpointer.all_steps()):
            try:
                return ml_collections.ConfigDict(config_lib.upgrade(checkpointer.restore_meta(step)["config"]))
            except Exception:  # a damaged meta item: restore_latest reports it by name later
                continue
        writing = checkpointer.being_written()
    if writing:
        raise NoCheckpointError(f"no complete checkpoint in {directory} yet (step {writing[0]} is being written); "
                                "wait for the training run to save one, then rerun")
    raise NoCheckpointError(f"no checkpoint in {directory}; train first")


EVALUATION_FIELDS = ("data_dir", "eval_batch_size")  # what an evaluation may set; the rest is the run's


def evaluation_config(workdir: str, **settings):
    """The run's own config (`saved_config`) with the evaluation-only `settings` (EVALUATION_FIELDS; None:
    not given) applied. The data directory: the one given, else $SPIKEJAX_DATA_DIR when set, else the one
    recorded with the checkpoint (else the default): where the data is now wins over where it was."""
    unknown = sorted(set(settings) - set(EVALUATION_FIELDS))
    if unknown:
        raise ConfigError(f"{unknown[0]} is not an evaluation setting; evaluation may set {list(EVALUATION_FIELDS)} "
                          "and reads the rest from the run's checkpoint")
    config = saved_config(workdir)
    for key, value in settings.items():
        if value is not None:
            config[key] = value
    if settings.get("data_dir") is None and os.environ.get("SPIKEJAX_DATA_DIR"):
        config.data_dir = None  # data.default_data_dir() reads $SPIKEJAX_DATA_DIR
    return config


def evaluate(config, workdir: str) -> dict:
    """Evaluates the newest intact checkpoint in `workdir` -> eval.json (and the plots)."""
    config_lib.validate(config)
    workdir = os.path.abspath(os.path.expanduser(workdir))
    run = restore(config, workdir)  # before any data work
    test_data = build.load_split(config, "test")
    _, validation = build.training_splits(config)
    log(f"evaluating checkpoint step {run.step} from {workdir}")
    return evaluate_params(config, workdir, run.state["params"], mesh=run.mesh, graphdef=run.graphdef,
                           model=run.model, test_data=test_data, validation=validation,
                           extra=run_record(run.step, run.meta))


def run_record(step: int, meta: dict) -> dict:
    """The training facts eval.json carries beside the test metrics."""
    seconds = meta.get("train_seconds")
    return {"step": int(step), "train_seconds": None if seconds is None else float(seconds)}
