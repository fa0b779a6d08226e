"""Evaluate the newest intact checkpoint of a run: accuracy, accuracy over time, latency, spikes, SynOps.

  python -m experiments.evaluate --workdir=runs/digits_events-nll

Writes <workdir>/eval.json, accuracy_over_time.png and latency_accuracy.png. The config is the run's own,
read from its checkpoint: flags that would change what was trained (--loss, --dataset, --epochs,
--config=FILE, --config.optimizer.learning_rate, ...) are refused (exit 2); the evaluation settings
--data_dir (or --config.data_dir) and --config.eval_batch_size are applied. The data is looked for in
--data_dir, else $SPIKEJAX_DATA_DIR, else where the run recorded it. A missing workdir is an error (exit 2)
and is never created.
"""
if __name__ == "__main__":  # before the imports below, which take seconds
    import experiments

    experiments.exit_on_stop_signal()

from absl import app  # noqa: E402

from experiments import common  # noqa: E402

_FROM_CHECKPOINT = "experiments.evaluate reads it from the run's checkpoint; drop it"
common.NOT_USED.update({
    "config": "experiments.evaluate reads the run's config from its checkpoint; drop it (evaluation settings: "
              "--data_dir, --config.eval_batch_size)",
    "batch_size": "experiments.evaluate reads the training batch size from the run's checkpoint; set the "
                  "evaluation batch with --config.eval_batch_size",
    **{name: _FROM_CHECKPOINT for name in ("dataset", "loss", "window", "epochs", "seed", "max_steps")}})
common.CONFIG_FIELDS_USED = ("data_dir", "eval_batch_size")

common.show_in_help("workdir", "data_dir", *common.MULTI_PROCESS_FLAGS)


def main(argv):
    if not common.FLAGS.workdir:
        raise app.UsageError("--workdir is required")
    common.initialize_distributed()
    from spikejax import runs

    overrides = common.config_overrides()
    config = runs.evaluation_config(common.FLAGS.workdir,
                                        data_dir=common.FLAGS.data_dir or overrides.get("data_dir"),
                                        eval_batch_size=overrides.get("eval_batch_size"))
    runs.evaluate(config, common.FLAGS.workdir)


if __name__ == "__main__":
    common.run(main)
