"""Writes a trained run as a NIR graph, for neuromorphic hardware and other SNN frameworks.

  python -m experiments.export --workdir=runs/digits_events-nll-zero            # -> <workdir>/model.nir
  python -m experiments.export --workdir=W --dt=1e-3 --approximate                # a subtractive-reset model

Reads the newest intact checkpoint of --workdir and the config stored with it; see spikejax.nir for the
mapping and what is refused. Train with configs/digits_events_nir.py (reset to zero) to export exactly.
"""
import os

from absl import flags

from experiments import common

flags.DEFINE_float("dt", 1e-4, "NIR time step in seconds (importers discretise with it; snnTorch assumes 1e-4).")
flags.DEFINE_bool("approximate", False, "Export a subtractive-reset model with NIR's reset to zero (other "
                  "frameworks will then produce different spikes).")
flags.DEFINE_string("out", None, "Output file (default: <workdir>/model.nir).")


def main(argv):
    from absl import app

    if common.FLAGS.workdir is None:
        raise app.UsageError("--workdir is required: the run to export")
    import nir
    from flax import nnx

    from spikejax import evaluate
    from spikejax import nir as spikejax_nir

    config = evaluate.saved_config(common.FLAGS.workdir)
    state, step, _, _, graphdef, _ = evaluate.restore(config, common.FLAGS.workdir)
    model = nnx.merge(graphdef, state["params"])
    try:
        graph = spikejax_nir.to_nir(model, dt=common.FLAGS.dt, approximate=common.FLAGS.approximate)
    except spikejax_nir.NIRError as error:
        raise app.UsageError(str(error)) from None
    path = common.FLAGS.out or os.path.join(common.FLAGS.workdir, "model.nir")
    nir.write(path, graph)
    print(f"wrote {path}: checkpoint step {step}, {len(graph.nodes)} nodes, dt {common.FLAGS.dt:g} s")


if __name__ == "__main__":
    common.run(main)
