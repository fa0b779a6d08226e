"""Train a spiking classifier with a spike-based loss, then evaluate it.

  python -m experiments.train                                   # digits_events, spikemax NLL, offline
  python -m experiments.train --dataset=dvs_gesture --loss=nll --data_dir=/data
  python -m experiments.train --config=configs/nmnist.py --config.optimizer.learning_rate=3e-4

Rerunning with the same --workdir resumes from its latest checkpoint.
"""
from absl import app

from experiments import common


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    common.initialize_distributed()
    from spikejax import train

    config = common.build_config()
    train.train_and_evaluate(config, common.FLAGS.workdir or common.default_workdir(config))


if __name__ == "__main__":
    app.run(main)
