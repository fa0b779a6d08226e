"""Evaluate the newest intact checkpoint of a run: accuracy, accuracy over time, latency, spikes, SynOps.

  python -m experiments.evaluate --workdir=runs/digits_events-nll

Writes <workdir>/eval.json, accuracy_over_time.png and latency_accuracy.png. The config is read from
the checkpoint; --data_dir may point at another copy of the data. A missing workdir is an error (exit 2)
and is never created.
"""
from absl import app

from experiments import common

common.show_in_help("workdir", "data_dir", *common.MULTI_PROCESS_FLAGS)


def main(argv):
    if not common.FLAGS.workdir:
        raise app.UsageError("--workdir is required")
    common.initialize_distributed()
    from spikejax import evaluate

    config = evaluate.saved_config(common.FLAGS.workdir)
    if common.FLAGS.data_dir:
        config.data_dir = common.FLAGS.data_dir
    evaluate.evaluate(config, common.FLAGS.workdir)


if __name__ == "__main__":
    common.run(main)
