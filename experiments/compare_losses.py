"""The paper's comparison: one model per loss from the same seed and config, then a table and a plot.

  python -m experiments.compare_losses --dataset=digits_events --epochs=1

Trains mse, softmax, nll and nll with a sliding window (--window, default T/3) into <workdir>/<loss>/,
then writes <workdir>/comparison.md and <workdir>/accuracy_over_time.png (every loss overlaid) and
latency_accuracy.png. Rerunning resumes unfinished runs and re-evaluates finished ones; the wall time in
the table is each run's training time as recorded in its checkpoints, also on a rerun.
"""
import os

import ml_collections
from absl import app

from experiments import common


def table(results: dict[str, dict]) -> str:
    lines = ["| loss | accuracy | 95% of final at step | 99% at step | decision @0.9: time / acc | "
             "spikes/sample | SynOps/sample | training wall s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        lat = r["latency_steps"]
        d = lat["decision"]["0.9"]
        wall = "n/a" if r.get("train_seconds") is None else f"{r['train_seconds']:.0f}"
        lines.append(f"| {name} | {r['accuracy']:.4f} | {lat['accuracy_95pct_of_final']} | "
                     f"{lat['accuracy_99pct_of_final']} | {d['mean_time']:.1f} / {d['accuracy']:.4f} | "
                     f"{r['spikes_per_sample']['total']:.0f} | {r['synops_per_sample']['total']:.0f} | {wall} |")
    return "\n".join(lines)


def main(argv):
    if common.FLAGS.loss is not None:
        raise app.UsageError("compare_losses trains every loss (mse, softmax, nll, windowed nll); drop --loss")
    common.initialize_distributed()
    import jax

    from spikejax import loop, plots, train

    base = common.build_config()
    window = common.FLAGS.window or max(1, base.data.time_bins // 3)
    workdir = common.FLAGS.workdir or f"runs/compare-{base.dataset}"
    runs = {"mse": ("mse", None), "softmax": ("softmax", None), "nll": ("nll", None),
            f"nll_window{window}": ("nll", window)}
    results = {}
    with loop.StopSignal() as stop:
        for label, (loss, w) in runs.items():
            config = ml_collections.ConfigDict(base.to_dict())
            config.loss.name, config.loss.window = loss, w
            results[label] = train.train_and_evaluate(config, os.path.join(workdir, label), stop=stop)
    if jax.process_index() == 0:
        header = (f"# Loss comparison on {base.dataset}\n\nSame seed ({base.seed}) and config for every loss; "
                  f"{base.epochs} epoch(s), T={base.data.time_bins} steps of {base.data.bin_width_us} us, "
                  f"{results['nll']['num_examples']} test samples. Latency: first step at which accuracy "
                  f"over time reaches 95%/99% of its final value; decision @0.9: mean step at which the "
                  f"leading class's spike share reaches 0.9, and the accuracy of those decisions.\n\n")
        with open(os.path.join(workdir, "comparison.md"), "w") as f:
            f.write(header + table(results) + "\n")
        plots.accuracy_over_time(results, os.path.join(workdir, "accuracy_over_time.png"))
        plots.latency_tradeoff(results, os.path.join(workdir, "latency_accuracy.png"))
        print(table(results))
        print(f"wrote {workdir}/comparison.md")


if __name__ == "__main__":
    common.run(main)
