"""Test set-up: four host devices for the data-parallel tests; set before jax is imported."""
import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def digits_data_dir(tmp_path_factory):
    """A data_dir whose digits_events cache (default binning) is built once per test session."""
    from spikejax import data

    root = str(tmp_path_factory.mktemp("digits_data"))
    data.load("digits_events", "train", data_dir=root)
    data.load("digits_events", "test", data_dir=root)
    return root
