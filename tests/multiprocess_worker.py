"""One process of the two-process test: python -m tests.multiprocess_worker PORT PROCESS_ID DATA_DIR WORKDIR."""
import os
import sys

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
os.environ["JAX_PLATFORMS"] = "cpu"

from spikejax import parallel  # noqa: E402


def main():
    port, process_id, data_dir, workdir = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    parallel.initialize_distributed(f"127.0.0.1:{port}", 2, process_id)
    import jax

    from spikejax import train
    from tests.test_train import small_config

    assert jax.device_count() == 4 and jax.local_device_count() == 2, jax.devices()
    train.train_and_evaluate(small_config(data_dir), workdir)


if __name__ == "__main__":
    main()
