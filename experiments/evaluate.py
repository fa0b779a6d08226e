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
    import os

    from spikejax import train
    from spikejax.checkpoint import Checkpointer

    checkpointer = Checkpointer(os.path.join(os.path.abspath(common.FLAGS.workdir), "checkpoints"))
    step = checkpointer.latest_step()
    if step is None:
        raise app.UsageError(f"no checkpoint in {common.FLAGS.workdir}/checkpoints")
    config = common.ml_collections.ConfigDict(checkpointer.restore_meta(step)["config"])
    checkpointer.close()
    if common.FLAGS.data_dir:
        config.data_dir = common.FLAGS.data_dir
    train.evaluate(config, common.FLAGS.workdir)


if __name__ == "__main__":
    app.run(main)
