"""The paper's comparison, tuned on validation data and reported over seeds with paired statistics.

  python -m experiments.compare_losses                         # digits_events, configs/sweep.py's grid
  python -m experiments.compare_losses --quick                 # smoke run, about a minute; no CIs or verdicts
  python -m experiments.compare_losses --seeds=10 --sweep.learning_rates='(1e-3,3e-3)' --workdir=runs/cmp
  python -m experiments.compare_losses --workdir=runs/cmp2 --sweep.seed_offset=100 \
      --reproduce=runs/cmp/comparison.json                      # a second seed set: which verdicts hold
  python -m experiments.compare_losses --sweep.losses=all --sweep.seeds=12 --sweep.energy_penalties='(0.1,1.0,10.0)'
                                                                # every loss, and at matched energy

Tunes every loss (mse, softmax, nll, nll_window; --sweep.losses=all: every registered label) over its grid
with --sweep.tune_seeds seeds, each on its own validation fold of the training split (successive halving at
--sweep.halving_fraction of the steps; a choice on a grid edge extends that axis, --sweep.extend /
--sweep.max_extensions), trains each loss's chosen configuration with --seeds fresh seeds, tests it once
(and again at each spike-rate penalty weight of --sweep.energy_penalties: accuracy against hidden-layer
SynOps), and writes <workdir>/comparison.md, comparison.json, replicas.jsonl and the plots
(spikejax.compare.sweep, spikejax.compare.report). The replicas of a stage train together in one compiled
program. Rerunning the same command resumes a killed sweep.

Flags it does not use are refused (exit 2): --loss and --window (the grid names the losses and windows),
and --epochs or --config.epochs while the sweep sets its own (--sweep.epochs).
"""
if __name__ == "__main__":  # before the imports below, which take seconds
    import experiments

    experiments.exit_on_stop_signal()

import sys  # noqa: E402

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from experiments import common  # noqa: E402

common.show_in_help(*(name for name in common.RUN_FLAGS if name not in ("loss", "window")),
                    *common.MULTI_PROCESS_FLAGS)

config_flags.DEFINE_config_file("sweep", None, "The grid and seeds (default configs/sweep.py; "
                                "configs/sweep.py:quick with --quick); override fields with --sweep.a=value.",
                                lock_config=True)
flags.DEFINE_integer("seeds", None, "Seeds per loss in the final stage (default: the sweep config's, 10).")
flags.DEFINE_bool("quick", False, "The smoke setting, configs/sweep.py:quick: about a minute on 2 CPU cores.")
flags.DEFINE_string("reproduce", None, "Another run's comparison.json on a disjoint seed set (run this one with "
                    "--sweep.seed_offset): the report marks which verdicts both seed sets reach.")


def _default_sweep(argv):
    quick = any(arg in ("--quick", "--quick=true", "--quick=True") for arg in argv)
    return common.config_path("sweep") + (":quick" if quick else "")


common.CONFIG_FILE_DEFAULTS["sweep"] = _default_sweep


def sweep_config():
    import ml_collections

    sweep = ml_collections.ConfigDict(common.FLAGS.sweep.to_dict())
    if common.FLAGS.quick and common.flag_value(sys.argv[1:], "sweep") is not None:
        raise app.UsageError("--quick means --sweep=configs/sweep.py:quick; give one of the two")
    if common.FLAGS.seeds is not None:
        sweep.seeds = common.FLAGS.seeds
    return sweep


common.NOT_USED.update({
    "loss": "compare_losses trains every loss over its grid; drop it (choose the losses with --sweep.losses)",
    "window": "compare_losses trains every loss over its grid; drop it (the windows: "
              "--sweep.grid.nll_window.window)"})


def _check_epochs(grid) -> None:
    """--epochs / --config.epochs are the run config's; the sweep's own epochs, when set, replace them."""
    given = "--epochs" if common.FLAGS["epochs"].present else (
        "--config.epochs" if "epochs" in common.config_overrides() else None)
    if given and grid.epochs is not None:
        raise app.UsageError(f"{given} is not used here: the sweep's epochs ({grid.epochs}) apply to both stages; "
                             f"use --sweep.epochs={common.FLAGS.epochs or common.config_overrides()['epochs']} instead")


def _check_reproduce(path, seeds):
    """--reproduce's file, checked before any training: a readable comparison.json whose final seeds are
    disjoint from this run's (ConfigError, exit 2, otherwise; `spikejax.compare.reproduce`). None without
    the flag."""
    if path is None:
        return None
    from spikejax.compare import reproduce

    reproduce.check_disjoint(seeds, reproduce.load(path), path)
    return path


def main(argv):
    common.initialize_distributed()
    import jax

    from spikejax import loop
    from spikejax.compare import report as comparison
    from spikejax.compare import sweep

    config, grid = common.build_config(), sweep_config()
    _check_epochs(grid)
    sweep.validate(grid)
    other = _check_reproduce(common.FLAGS.reproduce, list(sweep.final_seeds(grid)))
    warning = None if grid.smoke else comparison.seeds_warning(sweep.expanded(grid).losses, grid.seeds)
    if warning and jax.process_index() == 0:
        print(f"warning: {warning}", flush=True)
    workdir = common.FLAGS.workdir or f"runs/compare-{config.dataset}"
    with loop.StopSignal() as stop:
        result = sweep.compare_losses(config, grid, workdir, stop=stop)
    if jax.process_index() == 0:
        report = comparison.write(result, workdir, reproduce=other)
        print(report["table"])
        if report["analysis"]["smoke"]:
            print("smoke run (--quick): it shows that the comparison runs end to end; its numbers are no result, "
                  "and comparison.md shows no confidence intervals, tests or verdicts")
        plots = " and the plots" if report["plots"] else ""
        print(f"wrote {workdir}/comparison.md, comparison.json, replicas.jsonl{plots}")


if __name__ == "__main__":
    common.run(main)
