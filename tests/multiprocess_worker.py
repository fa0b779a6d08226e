"""One process of the two-process tests:

  python -m tests.multiprocess_worker PORT PROCESS_ID DATA_DIR WORKDIR [long]

"long" trains two epochs (40 steps) instead of 6 steps, for the signal test.
"""
import os
import sys

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
os.environ["JAX_PLATFORMS"] = "cpu"

from spikejax import errors, parallel  # noqa: E402


def main():
    port, process_id, data_dir, workdir = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    parallel.initialize_distributed(f"127.0.0.1:{port}", 2, process_id)
    import jax

    from spikejax import loop, train
    from tests.test_train import small_config

    assert jax.device_count() == 4 and jax.local_device_count() == 2, jax.devices()
    overrides = dict(epochs=2, max_steps=None, checkpoint_every_steps=1000) if sys.argv[5:] == ["long"] else {}
    with loop.StopSignal() as stop:
        try:
            train.train_and_evaluate(small_config(data_dir, **overrides), workdir, stop=stop)
        except errors.Interrupted as interrupted:
            print(interrupted, flush=True)
            sys.exit(interrupted.exit_code)


if __name__ == "__main__":
    main()
