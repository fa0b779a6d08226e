"""Test set-up, before jax is imported: four host devices for the data-parallel tests
(SPIKEJAX_TEST_DEVICES=N for N, see tests/devices.py), and one persistent compilation cache for the
session.

The cache: the suite compiles the same programs many times over (the default training step in every
command-line test, each in its own process), and on 2 cores compilation is most of its time. JAX's own
persistent cache (JAX_COMPILATION_CACHE_DIR, read by jax itself and inherited by every process a test
starts) keeps each compiled executable under a key of its program, shapes, flags and jax version, so a
process that compiles a program an earlier one compiled loads it instead. A cached executable is the one
the compiler produced, so results are those of a fresh compile. The folder is new for each session (a
temporary one), unless JAX_COMPILATION_CACHE_DIR is set already; a size limit turns on jax's file lock, so
processes that write the same entry at once (pytest-xdist workers, a test's two processes) take turns.
"""
import atexit
import os
import shutil
import tempfile

from tests.devices import COUNT

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + f" --xla_force_host_platform_device_count={COUNT}").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="spikejax-test-jax-cache-")
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
    os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(8 << 30))

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def digits_data_dir(tmp_path_factory):
    """A data_dir whose digits_events cache (default binning) is built once per test session."""
    from spikejax import data

    root = str(tmp_path_factory.mktemp("digits_data"))
    data.load("digits_events", "train", data_dir=root)
    data.load("digits_events", "test", data_dir=root)
    return root
