"""How many host devices the test process has: 4 by default, SPIKEJAX_TEST_DEVICES=N to run the suite with
N (1 shakes out tests that depend on the data-parallel reduction order). Tests that need more skip."""
import os

import pytest

COUNT = int(os.environ.get("SPIKEJAX_TEST_DEVICES", "4"))


def needs(count: int):
    return pytest.mark.skipif(COUNT < count, reason=f"needs {count} host devices (SPIKEJAX_TEST_DEVICES={COUNT})")
