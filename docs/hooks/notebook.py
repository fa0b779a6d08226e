"""Percent-format tutorials (jupytext's `# %%` cells) parsed, executed cell by cell and rendered as Markdown.

A tutorial is a plain Python script: `python docs/tutorials/first_snn.py` runs it, and jupytext (or an
editor that knows `# %%` cells) opens it as a notebook. Cells:

  # %% [markdown]          a Markdown cell: every line starts with "# " (or is a bare "#")
  # %%                     a code cell, up to the next marker

`execute(path, out_dir)` runs the code cells in order in one namespace, from the current directory, with
matplotlib on Agg; after each cell it keeps what the cell printed and saves every open figure as
`<out_dir>/cell<i>_<k>.png` (then closes it). It writes `<out_dir>/outputs.json`: [{"stdout", "figures",
"cpu_seconds"}] per cell (this process's CPU time: what to trim when a tutorial grows slow).
`render(path, outputs, figure_folder)` gives the page: Markdown cells as they are, code in ```python
blocks, printed output in ```text blocks, figures as images.

  python docs/hooks/notebook.py docs/tutorials/first_snn.py /tmp/out     # execute, as the site build does
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import re
import sys
import time
import traceback
import warnings

MARKER = re.compile(r"^# %%(.*)$")


@dataclasses.dataclass
class Cell:
    kind: str  # "markdown" or "code"
    source: str
    line: int  # 1-based line of the cell's first line in the file


def cells(text: str) -> list[Cell]:
    """The cells of a percent-format script; lines before the first marker (a header) are dropped."""
    found, kind, start, lines = [], None, 0, []

    def close():
        if kind is None:
            return
        body = "\n".join(lines).strip("\n")
        if kind == "markdown":
            body = "\n".join(re.sub(r"^# ?", "", line) if line.startswith("#") else line
                             for line in body.splitlines())
        if body.strip():
            found.append(Cell(kind, body, start))

    for number, line in enumerate(text.splitlines(), start=1):
        match = MARKER.match(line)
        if match:
            close()
            kind, start, lines = ("markdown" if "[markdown]" in match.group(1) else "code"), number + 1, []
        else:
            lines.append(line)
    close()
    return found


def requirements(text: str) -> list[str]:
    """Modules a tutorial needs beyond the `test` extra, from a line `# requires: a, b.c (how to install)`."""
    match = re.search(r"^# requires: ([^(\n]+)", text, re.M)
    return [name.strip() for name in match.group(1).split(",") if name.strip()] if match else []


class CellError(RuntimeError):
    """A code cell raised: names the tutorial, the cell's line and the traceback."""


def execute(path: str, out_dir: str) -> list[dict]:
    """Runs the code cells of `path`; returns (and writes to out_dir/outputs.json) each cell's outputs."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # a tutorial without figures needs no matplotlib
        plt = None
    os.makedirs(out_dir, exist_ok=True)
    text = open(path, encoding="utf-8").read()
    namespace = {"__name__": "__main__", "__file__": os.path.abspath(path)}
    outputs = []
    for index, cell in enumerate(cells(text)):
        if cell.kind != "code":
            outputs.append({"stdout": "", "figures": []})
            continue
        buffer, started = io.StringIO(), time.process_time()
        code = compile("\n" * (cell.line - 1) + cell.source, path, "exec")  # tracebacks give the file's lines
        try:
            with contextlib.redirect_stdout(buffer), warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*non-interactive.*")  # plt.show() on Agg
                exec(code, namespace)
        except Exception as error:
            raise CellError(f"{path}, the cell at line {cell.line} raised:\n{traceback.format_exc()}\n"
                            f"its output up to there:\n{buffer.getvalue()}") from error
        figures = []
        if plt is not None:
            for k, number in enumerate(plt.get_fignums()):
                name = f"cell{index}_{k}.png"
                plt.figure(number).savefig(os.path.join(out_dir, name), format="png", dpi=90,
                                           bbox_inches="tight")
                figures.append(name)
            plt.close("all")
        outputs.append({"stdout": buffer.getvalue(), "figures": figures,
                        "cpu_seconds": round(time.process_time() - started, 2)})
    with open(os.path.join(out_dir, "outputs.json"), "w", encoding="utf-8") as f:
        json.dump(outputs, f)
    return outputs


def render(text: str, outputs: list[dict] | None, figure_folder: str, note: str = "") -> str:
    """The Markdown page of a tutorial's source `text`; outputs None: code only. `note` goes after the title."""
    parts = []
    for index, cell in enumerate(cells(text)):
        if cell.kind == "markdown":
            parts.append(cell.source)
            if index == 0 and note:
                parts.append(note)
            continue
        parts.append(f"```python\n{cell.source}\n```")
        produced = outputs[index] if outputs else {"stdout": "", "figures": []}
        if produced["stdout"].strip():
            parts.append(f"```text\n{produced['stdout'].rstrip()}\n```")
        parts.extend(f"![output of the cell above]({figure_folder}/{name})" for name in produced["figures"])
    return "\n\n".join(parts) + "\n"


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python docs/hooks/notebook.py TUTORIAL.py OUT_DIR")
    sys.path.insert(0, os.getcwd())
    try:
        execute(sys.argv[1], sys.argv[2])
    except CellError as error:
        sys.exit(str(error))
