"""The README's Python examples run as written, and its first code block holds exactly the two set-up
commands CI uses."""
import os
import re

import pytest

README = open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")).read()
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)


def test_readme_opens_with_install_and_test_commands():
    first = re.search(r"```bash\n(.*?)```", README, re.S).group(1).strip().splitlines()
    assert first == ['pip install -e ".[test]"', "python -m pytest -q tests"]


@pytest.fixture
def registry_restored():
    """A README block may register a loss: the registry is put back as it was afterwards."""
    from spikejax.losses import registry

    saved = [dict(table) for table in (registry._LOSSES, registry._ALIASES, registry._ENTRIES)]
    yield
    for table, copy in zip((registry._LOSSES, registry._ALIASES, registry._ENTRIES), saved):
        table.clear()
        table.update(copy)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_python_examples_run(index, registry_restored):
    exec(compile(BLOCKS[index], f"README.md python block {index}", "exec"), {})
