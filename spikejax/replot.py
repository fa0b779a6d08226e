"""The plots of any finished workdir, drawn again from its files (`python -m experiments.plot`).

  written = plot_workdir(workdir, out=None, data_dir=None, index=0)    -> the PNG paths

A finished single run holds eval.json: its plots come from eval.json, metrics.jsonl and, for the spike raster
and the membrane traces, test sample `index` through the newest intact checkpoint (the data is looked for
as `experiments.evaluate` looks for it: `data_dir`, else $SPIKEJAX_DATA_DIR, else where the run recorded it).
A finished comparison holds comparison.json: its plots come from replicas.jsonl's final replicas. Anything
else is a UsageError that says what the folder holds and what to run first; nothing is written then.
"""
from __future__ import annotations

import json
import os

from spikejax import build, figures, plots, runs
from spikejax.errors import DataError, MissingDependencyError, NoCheckpointError, UsageError
from spikejax.workdir import log


def kind(workdir: str) -> str:
    """"run" (eval.json) or "comparison" (comparison.json); UsageError for a missing folder, an unfinished
    run or comparison (naming the command that finishes it), or a folder that is neither."""
    if not os.path.isdir(workdir):
        raise UsageError(f"{workdir}: no such folder; give the --workdir of a finished run or comparison")
    has = lambda name: os.path.exists(os.path.join(workdir, name))
    if has("comparison.json"):
        return "comparison"
    if has("eval.json"):
        return "run"
    if has("tune") or has("final"):
        raise UsageError(f"{workdir} holds a comparison that has not finished (no comparison.json yet); rerun its "
                         "experiments.compare_losses command to finish it, then plot")
    if has("checkpoints"):
        raise UsageError(f"{workdir} holds a run that has not finished (no eval.json yet); rerun its "
                         f"experiments.train command to finish it, or `python -m experiments.evaluate "
                         f"--workdir={workdir}` to evaluate its newest checkpoint, then plot")
    raise UsageError(f"{workdir} is not a spikejax workdir: it holds neither eval.json (a run) nor comparison.json "
                     "(a comparison)")


def plot_workdir(workdir: str, out: str | None = None, *, data_dir: str | None = None, index: int = 0) -> list[str]:
    """Writes the plots of the finished run or comparison in `workdir` (`figures.run_figures` /
    `figures.comparison_figures`) into `out` (default: `workdir`; created if missing); returns their paths.
    MissingDependencyError without matplotlib; UsageError (see `kind`) before anything is written."""
    workdir = os.path.abspath(os.path.expanduser(workdir))
    what = kind(workdir)
    plots.require_matplotlib()
    out = os.path.abspath(os.path.expanduser(out or workdir))
    os.makedirs(out, exist_ok=True)
    if what == "comparison":
        return _comparison(workdir, out)
    return _run(workdir, out, data_dir, index)


def _comparison(workdir: str, out: str) -> list[str]:
    with open(os.path.join(workdir, "comparison.json")) as f:
        document = json.load(f)
    final = [r for r in figures.read_jsonl(os.path.join(workdir, "replicas.jsonl")) if r.get("stage") == "final"]
    if not final:
        raise UsageError(f"{workdir}/replicas.jsonl holds no final replicas; rerun the comparison's command to "
                         "write its report again")
    return figures.comparison_figures(out, final, smoke=bool(document.get("smoke")), energy=document.get("energy"))


def _run(workdir: str, out: str, data_dir: str | None, index: int) -> list[str]:
    with open(os.path.join(workdir, "eval.json")) as f:
        result = json.load(f)
    config = graphdef = params = split = None
    try:
        config = runs.evaluation_config(workdir, data_dir=data_dir)
        run = runs.restore(config, workdir)
        graphdef = run.graphdef
        params = runs.local_copy(run.state["params"])
        split = build.load_split(config, "test")
    except (NoCheckpointError, DataError, MissingDependencyError) as error:
        log(f"no spike raster or membrane plot: {error}")
        split = None
    if split is not None and not 0 <= index < len(split):
        raise UsageError(f"--index={index}: the test split has samples 0..{len(split) - 1}")
    return runs.write_plots(config, out, result, graphdef=graphdef, params=params, split=split, index=index,
                            workdir=workdir)
