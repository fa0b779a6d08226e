"""mkdocs hook: the site mirrors the repository's own layout, and the tutorials are executed into pages.

- The pages keep the paths they have in the checkout: docs/*.md under `docs/`, and README.md (the home
  page), RESULTS.md, BENCHMARKS.md, CHANGELOG.md, LICENSE and CITATION.cff from the repository's root. So
  every relative link that works on the repository (`docs/training.md`, `../BENCHMARKS.md#...`) resolves in
  the site too, and `mkdocs build --strict` fails on one that does not.
- Each percent-format tutorial `docs/tutorials/NAME.py` becomes the page `docs/tutorials/NAME.md`: it is
  executed from the repository's root in a fresh Python process (`docs/hooks/notebook.py`), and its
  printed output and figures are shown under each cell. A cell that raises fails the build, naming the
  tutorial and line. A tutorial whose `# requires:` modules are not installed is shown without outputs,
  with a note saying so. The script itself is published beside its page.

The documents link a tutorial by its script, `tutorials/NAME.py`, which is what exists in the repository; on
the site such a link leads to the tutorial's page instead.

SPIKEJAX_DOCS_EXECUTE=0 renders the tutorials without running them (quick edits of the text).
"""
from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import notebook  # noqa: E402

log = logging.getLogger("mkdocs.hooks.spikejax")
ROOT_FILES = ("README.md", "RESULTS.md", "BENCHMARKS.md", "CHANGELOG.md", "LICENSE", "CITATION.cff")
TUTORIALS = "tutorials"
TUTORIAL_LINK = re.compile(r"(\]\((?:[^)\s]*/)?tutorials/[\w-]+)\.py(#[^)\s]*)?\)")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


_RUNS: list[str] = []  # the tutorials' output folders, removed once the site is written


def _execute(root: str, path: str, out_dir: str) -> list[dict]:
    scratch = os.path.join(out_dir, "tmp")  # what the tutorial writes to temporary folders goes here too
    os.makedirs(scratch)
    env = dict(os.environ, MPLBACKEND="Agg", TMPDIR=scratch,
               PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    runner = os.path.join(os.path.dirname(os.path.abspath(__file__)), "notebook.py")
    started = time.monotonic()
    result = subprocess.run([sys.executable, runner, path, out_dir], cwd=root, env=env, capture_output=True,
                            text=True)
    if result.returncode != 0:
        raise PluginError(f"tutorial {os.path.relpath(path, root)} failed:\n{result.stderr[-6000:]}")
    log.info(f"executed {os.path.relpath(path, root)} in {time.monotonic() - started:.1f} s")
    return json.load(open(os.path.join(out_dir, "outputs.json"), encoding="utf-8"))


def _tutorial_files(config, root: str, path: str, src_uri: str) -> list[File]:
    """The page (and its figures) of the tutorial at `path`, published at `src_uri` (…/NAME.py)."""
    text = open(path, encoding="utf-8").read()
    name = os.path.splitext(os.path.basename(path))[0]
    page_uri = src_uri[:-3] + ".md"
    script = f"[`{os.path.basename(path)}`]({os.path.basename(path)})"
    missing = [m for m in notebook.requirements(text) if not _installed(m)]
    if missing:
        outputs, note = None, (f'!!! note "Not executed in this build"\n    It needs {", ".join(missing)}, '
                               f"which are not installed here: install the `interop` extra and run the "
                               f"script {script} from the repository's root.")
    elif os.environ.get("SPIKEJAX_DOCS_EXECUTE", "1") == "0":
        outputs, note = None, '!!! note "Outputs not shown"\n    Built with SPIKEJAX_DOCS_EXECUTE=0.'
    else:
        out_dir = tempfile.mkdtemp(prefix=f"spikejax-docs-{name}-")
        _RUNS.append(out_dir)
        outputs, note = _execute(root, path, out_dir), ""
    note = "\n\n".join(filter(None, [note, f"Run it yourself from the repository's root: `python "
                                           f"docs/{TUTORIALS}/{os.path.basename(path)}`, or open {script} "
                                           f"as a notebook with jupytext."]))
    made = [File.generated(config, page_uri, content=notebook.render(text, outputs, f"{name}_files", note))]
    for cell in outputs or []:
        for figure in cell["figures"]:
            made.append(File.generated(config, f"{os.path.dirname(src_uri)}/{name}_files/{figure}",
                                       abs_src_path=os.path.join(out_dir, figure)))
    return made


def on_files(files: Files, config) -> Files:
    docs_dir = os.path.abspath(config["docs_dir"])
    root = os.path.dirname(os.path.abspath(config["config_file_path"]))
    prefix = os.path.relpath(docs_dir, root).replace(os.sep, "/")
    rerooted = Files([])
    for f in files:
        if f.abs_src_path and os.path.abspath(f.abs_src_path).startswith(docs_dir + os.sep):
            src_uri = f"{prefix}/{f.src_uri}"
            rerooted.append(File.generated(config, src_uri, abs_src_path=f.abs_src_path, inclusion=f.inclusion))
            if f.src_uri.startswith(f"{TUTORIALS}/") and f.src_uri.endswith(".py"):
                for made in _tutorial_files(config, root, f.abs_src_path, src_uri):
                    rerooted.append(made)
        else:
            rerooted.append(f)  # the theme's assets
    for name in ROOT_FILES:
        rerooted.append(File.generated(config, name, abs_src_path=os.path.join(root, name)))
    return rerooted


def on_page_markdown(markdown: str, page, config, files) -> str:
    """Links to a tutorial's script (`](…tutorials/NAME.py)`) lead to its page (`NAME.md`) on the site."""
    return TUTORIAL_LINK.sub(lambda m: f"{m.group(1)}.md{m.group(2) or ''})", markdown)


def on_post_build(config) -> None:
    """The tutorials' figures are in the site now: their output folders (and temporary files) go."""
    while _RUNS:
        shutil.rmtree(_RUNS.pop(), ignore_errors=True)
