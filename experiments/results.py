"""RESULTS.md's comparison section from the committed comparison runs (spikejax.compare.results).

  python -m experiments.results                       # rewrite RESULTS.md's generated section
  python -m experiments.results --print               # print it instead
  python -m experiments.results --results_dir=results/all-losses-12   # the section of another folder of runs

Reads <results_dir>/<task>-a/comparison.json and <task>-b/comparison.json (seed sets A and B of each task; B
run with --reproduce naming A's file) and replaces the part of RESULTS.md between its two "generated"
markers (for another --results_dir, the markers that name it); nothing else in RESULTS.md changes.
tests/test_results.py checks the committed sections against the committed files.
"""
if __name__ == "__main__":  # before the imports below, which take seconds
    import experiments

    experiments.exit_on_stop_signal()

from absl import flags  # noqa: E402

from experiments import common  # noqa: E402

_NOT_A_RUN = "experiments.results formats committed comparison.json files; drop it"
common.NOT_USED.update({
    **{name: _NOT_A_RUN for name in ("config", "dataset", "loss", "window", "epochs", "batch_size", "seed",
                                     "max_steps", "workdir", "data_dir")},
    **{name: "experiments.results runs in one process; drop it"
       for name in ("coordinator_address", "num_processes", "process_id", "distributed")}})

flags.DEFINE_string("results_dir", "results/comparison", "Folder of <task>-a/ and <task>-b/ comparison runs.")
flags.DEFINE_string("results_md", "RESULTS.md", "The file whose generated section is rewritten.")
flags.DEFINE_bool("print", False, "Print the section instead of writing it into --results_md.")


def main(argv):
    from spikejax import files
    from spikejax.compare import results

    folder = common.FLAGS.results_dir.rstrip("/")
    generated = results.section(results.load_pairs(folder), folder=folder)
    if common.FLAGS["print"].value:
        print(generated)
        return
    with open(common.FLAGS.results_md, encoding="utf-8") as f:
        text = f.read()
    updated = results.replace_section(text, generated, folder)
    files.atomic_write(common.FLAGS.results_md, lambda f: f.write(updated))
    print(f"wrote {common.FLAGS.results_md}'s generated section from {folder} "
          f"({'changed' if updated != text else 'unchanged'})", flush=True)


if __name__ == "__main__":
    common.run(main)
