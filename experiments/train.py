"""Train a spiking classifier with a spike-based loss, then evaluate it.

  python -m experiments.train                                   # digits_events, spikemax NLL, offline
  python -m experiments.train --dataset=dvs_gesture --loss=nll --data_dir=/data
  python -m experiments.train --dataset=nmnist --config.optimizer.learning_rate=3e-4

Rerunning with the same --workdir resumes from its newest intact checkpoint. SIGTERM/SIGINT save a
checkpoint and exit with 128 + the signal number; elsewhere (start-up, data loading, compilation,
evaluation) they exit at once with one line (130 / 143). This file is intentionally short: the logic lives
in `spikejax.train`, which can be imported and tested.
"""
if __name__ == "__main__":  # before the imports below, which take seconds
    import experiments

    experiments.exit_on_stop_signal()

from experiments import common  # noqa: E402

common.show_in_help(*common.RUN_FLAGS, *common.MULTI_PROCESS_FLAGS)


def main(argv):
    common.initialize_distributed()
    from spikejax import loop, train

    config = common.build_config()
    with loop.StopSignal() as stop:
        train.train_and_evaluate(config, common.FLAGS.workdir or common.default_workdir(config), stop=stop)


if __name__ == "__main__":
    common.run(main)
