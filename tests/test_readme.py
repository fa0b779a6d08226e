"""The documents' Python examples run as written: every ```python block of README.md, RESULTS.md and
docs/*.md, each on its own, as a script (`__name__ == "__main__"`). README.md's first code block holds
exactly the two set-up commands CI uses (.ci/run reads them)."""
import glob
import importlib.util
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = sorted(os.path.relpath(path, ROOT) for path in glob.glob(os.path.join(ROOT, "docs", "*.md")))
DOCUMENTS = ["README.md", "RESULTS.md", *DOCS]
README = open(os.path.join(ROOT, "README.md")).read()


def python_blocks():
    for document in DOCUMENTS:
        text = open(os.path.join(ROOT, document)).read()
        for index, block in enumerate(re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)):
            yield pytest.param(document, block, id=f"{document}:{index}")


def test_readme_opens_with_install_and_test_commands():
    first = re.search(r"```bash\n(.*?)```", README, re.S).group(1).strip().splitlines()
    assert first == ['pip install -e ".[test]"', "python -m pytest -q -n 2 --dist loadfile tests"]


def test_every_document_is_read():
    assert {"README.md", "RESULTS.md", os.path.join("docs", "api.md")} <= set(DOCUMENTS)


@pytest.fixture
def registry_restored():
    """A block may register a loss or a neuron kind: the registries are put back as they were afterwards."""
    from spikejax.losses import registry
    from spikejax.neurons import registry as neuron_registry

    tables = (registry._LOSSES, registry._ALIASES, registry._ENTRIES, neuron_registry._KINDS)
    saved = [dict(table) for table in tables]
    yield
    for table, copy in zip(tables, saved):
        table.clear()
        table.update(copy)


@pytest.mark.parametrize("document, block", list(python_blocks()))
def test_python_examples_run(document, block, registry_restored):
    # a block that needs more than the `test` extra says so in a first line `# requires: a, b (how)`, as the
    # tutorials do; it runs where those are installed (the interop tests' environment) and is skipped elsewhere
    needs = re.match(r"# requires: ([^(\n]+)", block)
    names = [name.strip() for name in needs.group(1).split(",")] if needs else []
    missing = [name for name in names if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(f"{document}'s block needs {', '.join(missing)}, not installed (the interop extra)")
    exec(compile(block, f"{document} python block", "exec"), {"__name__": "__main__"})
