"""Evaluate the latest checkpoint of a run: accuracy, accuracy over time, latency, spikes and SynOps.

  python -m experiments.evaluate --workdir=runs/digits_events-nll

Writes <workdir>/eval.json, accuracy_over_time.png and latency_accuracy.png. The config is read from
the checkpoint; --data_dir may point at another copy of the data.
"""
from absl import app

from experiments import common


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not common.FLAGS.workdir:
        raise app.UsageError("--workdir is required")
    common.initialize_distributed()
    from spikejax import train

    try:
        config = train.saved_config(common.FLAGS.workdir)
    except FileNotFoundError as error:
        raise app.UsageError(str(error)) from None
    if common.FLAGS.data_dir:
        config.data_dir = common.FLAGS.data_dir
    train.evaluate(config, common.FLAGS.workdir)


if __name__ == "__main__":
    app.run(main)
