"""Writes a trained run as a NIR graph, for neuromorphic hardware and other SNN frameworks.

  python -m experiments.export --workdir=runs/digits_events-nll-zero            # -> <workdir>/model.nir
  python -m experiments.export --workdir=W --dt=1e-3 --approximate                # a subtractive-reset model

Reads the newest intact checkpoint of --workdir and the config stored with it; see spikejax.nir for the
mapping and what is refused. Train with configs/digits_events_nir.py (reset to zero) to export exactly; a
delay_mlp run (e.g. configs/timing_events_delay.py) is written with its rounded delays as NIR Delay nodes.
The file's metadata holds --dt, which spikejax.nir.from_nir reads back.

The file is written under a temporary name beside it and renamed (spikejax.nir.write), with SIGINT and
SIGTERM held off meanwhile, so it is whole or absent. Exit codes (experiments/common.py): 2 with one line
for what cannot be exported or written (a model NIR cannot express, an --out whose folder is missing, a
folder, or a symlink, which is never followed); 130 / 143 with one line when SIGINT (Ctrl-C) / SIGTERM
stops it, leaving the previous file, if any, as it was.
"""
import os
import signal

_written = None  # the path once the file is in place


def _stop(signum, frame):
    """SIGINT/SIGTERM -> one line and exit 128 + n at once. Nothing needs cleaning: the file is written with
    these signals blocked (a stop waits for the write to finish), so it is whole or absent. (Raising SystemExit
    here instead was once swallowed, "SystemExit: 130" printed and the export went on to exit 0: a handler's
    exception is lost where it lands in a __del__ or a callback.)"""
    done = f"{_written} was written" if _written else "no file was written"
    print(f"stopped by {signal.Signals(signum).name}; {done}", flush=True)
    os._exit(128 + signum)


if __name__ == "__main__":  # before the imports below, which take seconds
    for _signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(_signal, _stop)

from absl import flags  # noqa: E402

from experiments import common  # noqa: E402

_FROM_CHECKPOINT = "experiments.export reads the run's config from its checkpoint; drop it"
common.NOT_USED.update({
    "data_dir": "experiments.export reads no data; drop it",
    **{name: _FROM_CHECKPOINT for name in ("config", "dataset", "loss", "window", "epochs", "batch_size", "seed",
                                           "max_steps")},
    **{name: "experiments.export runs in one process; drop it"
       for name in ("coordinator_address", "num_processes", "process_id", "distributed")}})
common.show_in_help("workdir")

flags.DEFINE_float("dt", 1e-4, "NIR time step in seconds (importers discretise with it; snnTorch assumes 1e-4).")
flags.DEFINE_bool("approximate", False, "Export a subtractive-reset model with NIR's reset to zero (other "
                  "frameworks will then produce different spikes).")
flags.DEFINE_string("out", None, "Output file (default: <workdir>/model.nir).")


def _check_out(path: str) -> None:
    """app.UsageError (one line, exit 2) for an output path that cannot take the file, before any work."""
    from absl import app

    folder = os.path.dirname(os.path.abspath(path))
    if os.path.islink(path):
        raise app.UsageError(f"--out={path} is a symlink (to {os.readlink(path)}); export does not write through "
                             "links: remove it or choose another --out")
    if os.path.isdir(path):
        raise app.UsageError(f"--out={path} is a folder; give the path of the .nir file to write")
    if not os.path.isdir(folder):
        raise app.UsageError(f"--out={path}: the folder {folder} does not exist; create it or choose another --out")
    if not os.access(folder, os.W_OK):
        raise app.UsageError(f"--out={path}: the folder {folder} is not writable")


def main(argv):
    from absl import app

    if common.FLAGS.workdir is None:
        raise app.UsageError("--workdir is required: the run to export")
    path = common.FLAGS.out or os.path.join(common.FLAGS.workdir, "model.nir")
    _check_out(path)
    from flax import nnx

    from spikejax import nir as spikejax_nir
    from spikejax import runs

    config = runs.saved_config(common.FLAGS.workdir)
    run = runs.restore(config, common.FLAGS.workdir)
    state, step, graphdef = run.state, run.step, run.graphdef
    model = nnx.merge(graphdef, state["params"])
    graph = spikejax_nir.to_nir(model, dt=common.FLAGS.dt, approximate=common.FLAGS.approximate)
    global _written
    stops = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stops)  # a stop arriving now waits for the file to be in place
    try:
        spikejax_nir.write(graph, path)
        _written = path
    except OSError as error:
        if common.is_disk_full(error):
            raise
        raise app.UsageError(f"cannot write {path}: {error.strerror or error}") from None
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stops)
    print(f"wrote {path}: checkpoint step {step}, {len(graph.nodes)} nodes, dt {common.FLAGS.dt:g} s", flush=True)


if __name__ == "__main__":
    common.run(main)
