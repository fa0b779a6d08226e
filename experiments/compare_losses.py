"""The paper's comparison, tuned on validation data and reported over seeds with paired statistics.

  python -m experiments.compare_losses                         # digits_events, configs/sweep.py's grid
  python -m experiments.compare_losses --quick                 # smoke run, about a minute
  python -m experiments.compare_losses --seeds=10 --sweep.learning_rates='(1e-3,3e-3)' --workdir=runs/cmp

Tunes every loss (mse, softmax, nll, nll_window) over its grid on the validation hold-out, trains each
loss's chosen configuration with --seeds fresh seeds, tests it once, and writes <workdir>/comparison.md,
comparison.json, replicas.jsonl and the plots (spikejax.compare.sweep, spikejax.compare.report). The replicas of a
stage train together in one compiled program. Rerunning the same command resumes a killed sweep.
"""
import sys

from absl import app, flags
from ml_collections import config_flags

from experiments import common

common.show_in_help(*(name for name in common.RUN_FLAGS if name not in ("loss", "window")),
                    *common.MULTI_PROCESS_FLAGS)

config_flags.DEFINE_config_file("sweep", None, "The grid and seeds (default configs/sweep.py; "
                                "configs/sweep.py:quick with --quick); override fields with --sweep.a=value.",
                                lock_config=True)
flags.DEFINE_integer("seeds", None, "Seeds per loss in the final stage (default: the sweep config's, 5).")
flags.DEFINE_bool("quick", False, "The smoke setting, configs/sweep.py:quick: about a minute on 2 CPU cores.")


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


def main(argv):
    if common.FLAGS.loss is not None or common.FLAGS.window is not None:
        raise app.UsageError("compare_losses trains every loss over its grid; drop --loss/--window (choose the "
                             "losses with --sweep.losses, the windows with --sweep.windows)")
    common.initialize_distributed()
    import jax

    from spikejax import loop
    from spikejax.compare import report as comparison
    from spikejax.compare import sweep

    config, grid = common.build_config(), sweep_config()
    sweep.validate(grid)
    workdir = common.FLAGS.workdir or f"runs/compare-{config.dataset}"
    with loop.StopSignal() as stop:
        result = sweep.compare_losses(config, grid, workdir, stop=stop)
    if jax.process_index() == 0:
        report = comparison.write(result, workdir)
        print(report["table"])
        plots = " and the plots" if report["plots"] else ""
        print(f"wrote {workdir}/comparison.md, comparison.json, replicas.jsonl{plots}")


if __name__ == "__main__":
    common.run(main)
