"""Plot any finished workdir again: a single run or a comparison.

  python -m experiments.plot --workdir=runs/digits_events-nll            # PNGs into the workdir
  python -m experiments.plot --workdir=runs/compare-quick --out=figures  # or into --out

A run (it holds eval.json): accuracy_over_time.png, latency_accuracy.png, training_curves.png, and, from
test sample --index through the newest checkpoint, spike_raster.png and membrane_traces.png (the data is
looked for in --data_dir, else $SPIKEJAX_DATA_DIR, else where the run recorded it). A comparison (it holds
comparison.json): accuracy_over_time.png, latency_accuracy.png and training_curves.png over seeds
(spikejax.replot, spikejax.figures). A missing folder, or a run or comparison that has not finished, is an
error (exit 2) that says what to run first. Needs the `plots` extra (matplotlib).
"""
if __name__ == "__main__":  # before the imports below, which take seconds
    import experiments

    experiments.exit_on_stop_signal()

from absl import flags  # noqa: E402

from experiments import common  # noqa: E402

_NOT_A_RUN = "experiments.plot draws a finished workdir's files; drop it"
common.NOT_USED.update({
    **{name: _NOT_A_RUN for name in ("config", "dataset", "loss", "window", "epochs", "batch_size", "seed",
                                     "max_steps")},
    **{name: "experiments.plot runs in one process; drop it"
       for name in ("coordinator_address", "num_processes", "process_id", "distributed")}})
common.show_in_help("workdir", "data_dir")

flags.DEFINE_string("out", None, "Folder for the PNGs (default: the workdir).")
flags.DEFINE_integer("index", 0, "A run's test sample drawn in the spike raster and membrane plot.")


def main(argv):
    from absl import app

    if not common.FLAGS.workdir:
        raise app.UsageError("--workdir is required: the finished run or comparison to plot")
    from spikejax import replot

    written = replot.plot_workdir(common.FLAGS.workdir, common.FLAGS.out, data_dir=common.FLAGS.data_dir,
                                  index=common.FLAGS.index)
    print(f"wrote {len(written)} plots: " + ", ".join(written), flush=True)


if __name__ == "__main__":
    common.run(main)
