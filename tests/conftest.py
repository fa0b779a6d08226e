"""Test set-up: four host devices for the data-parallel tests (SPIKEJAX_TEST_DEVICES=N for N, see
tests/devices.py); set before jax is imported."""
import os

from tests.devices import COUNT

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + f" --xla_force_host_platform_device_count={COUNT}").strip()
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
