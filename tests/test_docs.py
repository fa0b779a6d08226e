"""The documentation site: `mkdocs build --strict` of mkdocs.yml, which executes the tutorials
(docs/hooks/site.py), and what the built pages hold. A broken link or cross-reference fails the build; a
tutorial cell that raises fails it too, naming the tutorial and line.

The site is built once per session, on the digits_events cache of `digits_data_dir` (the build costs about
the tutorials' training: seconds each on 2 cores).
"""
import importlib.util
import os
import re
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TUTORIALS = sorted(name[:-3] for name in os.listdir(os.path.join(ROOT, "docs", "tutorials")) if name.endswith(".py"))
INTEROP = ("torch", "snntorch", "norse")


def _load(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "docs", "hooks", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _mkdocs(site_dir, cwd=ROOT, **env):
    for module in ("mkdocs", "material", "mkdocstrings_handlers.python"):
        pytest.importorskip(module, reason='the docs build needs the docs extra: pip install -e ".[test]"')
    environment = dict(os.environ, NO_MKDOCS_2_WARNING="1", MPLBACKEND="Agg", **env)
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [cwd, os.environ.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site_dir)],
                          cwd=cwd, env=environment, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def site(digits_data_dir, tmp_path_factory):
    site_dir = tmp_path_factory.mktemp("site")
    result = _mkdocs(site_dir, SPIKEJAX_DATA_DIR=digits_data_dir)
    assert result.returncode == 0, result.stderr[-8000:]
    return site_dir


def _page(site_dir, uri):
    return open(os.path.join(site_dir, uri, "index.html"), encoding="utf-8").read()


def test_pages_keep_the_repository_layout_and_its_links(site):
    home = _page(site, "")
    assert "Three ways to use spikejax" in home
    assert 'href="docs/training/#synaptic-delays"' in home  # README.md's link to docs/training.md#...
    assert 'href="../../BENCHMARKS/' in _page(site, "docs/training")  # docs/training.md's ../BENCHMARKS.md
    for uri in ("RESULTS", "BENCHMARKS", "CHANGELOG", "docs/api", "docs/nir", "docs/datasets",
                "docs/development", "docs/concepts", "docs/extending", "docs/getting-started"):
        assert os.path.exists(os.path.join(site, uri, "index.html")), uri
    assert os.path.exists(os.path.join(site, "LICENSE")) and os.path.exists(os.path.join(site, "CITATION.cff"))
    assert not os.path.exists(os.path.join(site, "docs", "hooks"))
    # docs link a tutorial by its script in the repository, and the site by its page
    assert "(tutorials/first_snn.py)" in open(os.path.join(ROOT, "docs", "getting-started.md")).read()
    assert 'href="../tutorials/first_snn/"' in _page(site, "docs/getting-started")


def test_api_reference_is_generated_from_the_docstrings(site):
    core = _page(site, "docs/reference/core")
    for name in ("spikejax.neurons.lif", "spikejax.losses.spike_nll", "spikejax.readout.accuracy_over_time",
                 "spikejax.surrogate.spike", "spikejax.delays.delayed_dense"):
        assert f'id="{name}"' in core, name
    # the module docstring's indented equations are shown as a code block, line by line
    assert re.search(r'<code>reset="subtract":\s+v\[t\] = beta\*v\[t-1\] \+ I\[t\]', core)
    assert "or beta*(1 - s[t]) (zero)" in core  # a * in prose is not emphasis
    assert "Membrane decay per step" in core or "membrane decay per step" in core  # lif's Args, parsed
    for page, name in (("models", "spikejax.models.build"), ("nir", "spikejax.nir.to_nir"),
                       ("programs", "spikejax.train.train_and_evaluate"),
                       ("comparison", "spikejax.compare.stats.sign_flip"), ("data", "spikejax.data.load")):
        assert f'id="{name}"' in _page(site, f"docs/reference/{page}"), name


@pytest.mark.parametrize("name", TUTORIALS)
def test_tutorials_are_executed_into_their_pages(site, name):
    source = open(os.path.join(ROOT, "docs", "tutorials", f"{name}.py"), encoding="utf-8").read()
    notebook = _load("notebook")
    missing = [m for m in notebook.requirements(source) if importlib.util.find_spec(m) is None]
    page = _page(site, f"docs/tutorials/{name}")
    assert os.path.exists(os.path.join(site, "docs", "tutorials", f"{name}.py"))  # the script, published
    if missing:
        assert "Not executed in this build" in page
        pytest.skip(f"tutorial {name} needs {', '.join(missing)} (the interop extra): shown without outputs")
    figures = re.findall(r'<img alt="output of the cell above" src="([^"]+)"', page)
    assert figures, f"{name}: no figure on the page"
    for src in figures:
        assert os.path.getsize(os.path.join(site, "docs", "tutorials", name, src)) > 1000, src
    code_cells = [c for c in notebook.cells(source) if c.kind == "code"]
    assert page.count('<div class="highlight">') > len(code_cells)  # the code, and printed output


def test_first_tutorial_prints_what_its_checks_compare(site):
    page = _page(site, "docs/tutorials/first_snn")
    assert "first spike at step 3 (closed form: 3)" in page
    accuracy = float(re.search(r"test accuracy (\d\.\d+) on 360 samples", page).group(1))
    assert accuracy > 0.5  # chance is 0.1; the tutorial asserts the same


def test_a_broken_link_fails_the_strict_build(tmp_path):
    """The same mkdocs.yml on a copy of the pages with one link to a page that does not exist."""
    for name in ("mkdocs.yml", "README.md", "RESULTS.md", "BENCHMARKS.md", "CHANGELOG.md", "LICENSE",
                 "CITATION.cff"):
        shutil.copy(os.path.join(ROOT, name), tmp_path / name)
    shutil.copytree(os.path.join(ROOT, "docs"), tmp_path / "docs")
    os.symlink(os.path.join(ROOT, "spikejax"), tmp_path / "spikejax")
    with open(tmp_path / "docs" / "concepts.md", "a", encoding="utf-8") as f:
        f.write("\nSee [the missing page](no_such_page.md).\n")
    result = _mkdocs(tmp_path / "site", cwd=str(tmp_path), SPIKEJAX_DOCS_EXECUTE="0")
    assert result.returncode != 0
    assert "no_such_page.md" in result.stderr and "docs/concepts.md" in result.stderr, result.stderr[-3000:]


def test_percent_cells_and_requirements_are_parsed():
    notebook = _load("notebook")
    text = ("# header line\n# %% [markdown]\n# # Title\n#\n# Some *text*.\n\n# %%\n# requires: torch, norse.torch "
            "(pip install x)\nx = 1\n\n# %%\nprint(x + 1)\n")
    cells = notebook.cells(text)
    assert [(c.kind, c.line) for c in cells] == [("markdown", 3), ("code", 8), ("code", 12)]
    assert cells[0].source == "# Title\n\nSome *text*."
    assert notebook.requirements(text) == ["torch", "norse.torch"]
    page = notebook.render(text, [{"stdout": "", "figures": []}, {"stdout": "", "figures": []},
                                  {"stdout": "2\n", "figures": ["cell2_0.png"]}], "t_files")
    assert page.endswith("```python\nprint(x + 1)\n```\n\n```text\n2\n```\n\n"
                         "![output of the cell above](t_files/cell2_0.png)\n")


def test_a_failing_cell_names_the_tutorial_and_its_line(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("# %% [markdown]\n# # Broken\n\n# %%\nprint('before')\n\n# %%\nx = 1\nraise ValueError('boom')\n")
    result = subprocess.run([sys.executable, os.path.join(ROOT, "docs", "hooks", "notebook.py"), str(path),
                             str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "the cell at line 8 raised" in result.stderr and "ValueError: boom" in result.stderr
    assert f'File "{path}", line 9' in result.stderr  # the traceback points into the script


def test_docstring_blocks_are_fenced_outside_google_sections():
    pytest.importorskip("griffe", reason='the docstring hook needs the docs extra: pip install -e ".[test]"')
    fence = _load("docstrings").fence_indented_blocks
    text = ("Intro:\n\n  v[t] = beta*v[t-1] + I[t]\n  s[t] = H(v[t])\n\nArgs:\n  x: input.\n  **kw: more.\n\n"
            "Text with a[i][j], beta*v and `b[i][j]*c`.\n* a list item")
    assert fence(text) == ("Intro:\n\n```text\nv[t] = beta*v[t-1] + I[t]\ns[t] = H(v[t])\n```\n\nArgs:\n"
                           "  x: input.\n  **kw: more.\n\nText with a[i]\\[j], beta\\*v and `b[i][j]*c`.\n"
                           "* a list item")
