"""The plots of a run and of a comparison, from what each holds: which PNGs, drawn from which records
(`spikejax.plots` draws them).

  sample_activity(config, graphdef, params, split, index)   one sample through the model -> SampleActivity
  run_figures(folder, result, config=, records=, activity=)  a single run's PNGs -> their paths
  comparison_figures(folder, final, smoke=, energy=)         a comparison's PNGs -> their paths
  read_jsonl(path)                                           metrics.jsonl / replicas.jsonl -> records

A single run: accuracy_over_time.png, latency_accuracy.png (a spiking output layer only), training_curves.png
(metrics.jsonl's loss and train-batch accuracy, the validation accuracy and loss of eval.json at the last
step), spike_raster.png and membrane_traces.png (one test sample: input, hidden and output spikes; the output
membrane with its threshold). A comparison: accuracy_over_time.png and latency_accuracy.png over seeds, and
training_curves.png (each replica's validation accuracy and loss after every epoch, mean ± 1 std over the
seeds of each loss), and with an energy stage accuracy_synops.png (accuracy against hidden-layer SynOps
per spike-rate penalty weight). A smoke comparison (`--quick`) says so in every title.
"""
from __future__ import annotations

import dataclasses
import json
import os

import jax
import numpy as np
from flax import nnx

from spikejax import build, plots


@dataclasses.dataclass
class SampleActivity:
    """One sample through a model: `layers` [(name, spikes [T, N])] from the input to the output (an
    integrator output layer, which does not spike, left out); the output `membrane` [T, C] (before reset),
    its `spikes` [T, C] (None for an integrator) and `threshold` (a number, one per neuron [C], or None);
    the sample's `index`, `label`, `prediction` (from all T steps, -1 when the output is silent) and the
    `classes`' names."""
    layers: list
    membrane: np.ndarray
    spikes: np.ndarray | None
    threshold: object
    index: int
    label: int
    prediction: int
    classes: list


def sample_activity(config, graphdef, params, split, index: int = 0) -> SampleActivity:
    """Sample `index` of `split` through the model `graphdef` with (host-local, unsharded) `params`, in its
    deployed form (a delayed model's integer delays), reading everything its output layer gives."""
    gives = build.gives(config)
    inputs = np.moveaxis(split.dense([index]), 0, 1)  # [T, 1, *frame]
    apply = jax.jit(lambda p, x: build.apply_model(graphdef, p, x, reads=gives))
    outputs, layers = jax.device_get(apply(params, inputs))
    spiking = "spikes" in outputs
    names = ["input"] + [f"hidden layer {i}" for i in range(1, len(layers) - 1)] + ["output"]
    shown = [(name, np.asarray(h)[:, 0]) for name, h in zip(names, layers)][:len(layers) if spiking else -1]
    output = nnx.merge(graphdef, params).spiking[-1]
    threshold = None
    if spiking:
        threshold = np.asarray(output.values().get("threshold", output.neuron.threshold), np.float64)
        threshold = float(threshold) if threshold.ndim == 0 else threshold
    predictions = np.asarray(build.readout(config)(outputs))  # [T, 1]
    return SampleActivity(shown, np.asarray(outputs["membrane"])[:, 0],
                          np.asarray(outputs["spikes"])[:, 0] if spiking else None, threshold, int(index),
                          int(split.labels[index]), int(predictions[-1, 0]), [str(c) for c in split.classes])


def read_jsonl(path: str) -> list[dict]:
    """The complete JSON lines of `path` (a torn last line is skipped); [] when there is no file."""
    if not os.path.exists(path):
        return []
    records = []
    with open(path) as f:
        for line in f:
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
    return records


def _path(folder: str, name: str) -> str:
    return os.path.join(folder, name)


def run_figures(folder: str, result: dict, *, records: list[dict], activity: SampleActivity | None = None,
                split_name: str = "test") -> list[str]:
    """A single run's PNGs in `folder` from its eval dict `result` (eval.json), its metrics.jsonl `records`
    and one sample's `activity` (None: no raster or membrane plot). Returns the paths written."""
    label, dataset = result.get("loss", "run"), result.get("dataset", "")
    head = f"{dataset}, loss {label}" if dataset else f"loss {label}"
    width = result.get("bin_width_us")
    written = [_path(folder, "accuracy_over_time.png")]
    plots.accuracy_over_time({label: result}, written[-1], title=f"{head}: test accuracy when deciding after t steps "
                             f"({result['num_examples']} samples)")
    if result["latency_steps"]["decision"]:  # None: no output spikes (an integrator output layer)
        written.append(_path(folder, "latency_accuracy.png"))
        plots.latency_tradeoff({label: result}, written[-1],
                               title=f"{head}: latency-accuracy trade-off (points: confidence threshold)")
    curves = [r for r in records if "loss" in r or "accuracy" in r]
    held_out = result.get("validation")
    if held_out and result.get("step") is not None:
        curves = curves + [{"step": result["step"], "validation_accuracy": held_out["accuracy"],
                            "validation_loss": held_out.get("loss")}]
    if curves:
        written.append(_path(folder, "training_curves.png"))
        plots.training_curves({label: [curves]}, written[-1], title=f"{head}: training curves (validation: "
                              f"{held_out['num_examples'] if held_out else 'no'} held-out samples, at the end)")
    if activity is not None:
        a = activity
        decided = a.classes[a.prediction] if a.prediction >= 0 else "none (silent output)"
        sample = f"{split_name} sample {a.index}, class {a.classes[a.label]}, predicted {decided}"
        written.append(_path(folder, "spike_raster.png"))
        plots.spike_raster(a.layers, written[-1], title=f"{head}: spikes of {sample}", bin_width_us=width,
                           output_names=a.classes if a.spikes is not None else None)
        written.append(_path(folder, "membrane_traces.png"))
        kind = "" if a.spikes is not None else " (integrator output: no threshold, no spikes)"
        plots.membrane_traces(a.membrane, written[-1], title=f"{head}: output membrane of {sample}{kind}",
                              threshold=a.threshold, bin_width_us=width, names=a.classes, highlight=a.label,
                              spikes=a.spikes)
    return written


SMOKE_NOTE = " [smoke run (--quick): not a result]"


def comparison_figures(folder: str, final: list[dict], *, smoke: bool = False, energy: dict | None = None) -> list[str]:
    """A comparison's PNGs in `folder` from its final replicas' records (replicas.jsonl's "final" lines or
    the comparison's `final` records: {"label" or "row": {"label", "seed"}, "test", "validation_curve"}),
    and with `energy` (comparison.json's "energy" block) accuracy_synops.png. Returns the paths written."""
    curves, tradeoff, validation = {}, {}, {}
    width = steps = None
    for record in final:
        label = record["label"] if "label" in record else record["row"]["label"]
        test = record["test"]
        width, steps = test.get("bin_width_us"), test.get("time_bins")
        curves.setdefault(label, []).append(test["accuracy_over_time"])
        validation.setdefault(label, []).append(
            [{"step": c["step"], "validation_accuracy": c["accuracy"], "validation_loss": c["loss"]}
             for c in record.get("validation_curve") or []])
        decision = test["latency_steps"]["decision"]
        if decision:  # no output spikes (an integrator output layer): no confidence decision to plot
            tradeoff.setdefault(label, []).append([[decision[t]["mean_time"], decision[t]["accuracy"]]
                                                   for t in sorted(decision, key=float)])
    note = SMOKE_NOTE if smoke else ""
    written = [_path(folder, "accuracy_over_time.png"), _path(folder, "latency_accuracy.png")]
    plots.bands_over_time({k: np.asarray(v) for k, v in curves.items()}, written[0], bin_width_us=width,
                          title="Test accuracy when deciding after t steps, over seeds" + note)
    plots.latency_tradeoff_bands({k: np.asarray(v) for k, v in tradeoff.items()}, written[1], time_bins=steps,
                                 bin_width_us=width,
                                 title="Latency-accuracy trade-off over seeds (points: confidence threshold)" + note)
    if any(any(run) for runs in validation.values() for run in runs):
        written.append(_path(folder, "training_curves.png"))
        plots.training_curves(validation, written[-1],
                              title="Validation after every epoch, final stage (fold 0)" + note)
    if energy:
        written.append(_path(folder, "accuracy_synops.png"))
        plots.accuracy_against_synops(energy_points(energy), written[-1],
                                      title="Accuracy at matched energy (points: spike-rate penalty weight w)" + note)
    return written


def energy_points(block: dict) -> dict[str, dict[float, np.ndarray]]:
    """{label: {w: [seeds, 2] (hidden-layer SynOps, accuracy) per seed}} from comparison.json's "energy"."""
    return {label: {p["rate_penalty"]: np.asarray([[p["synops_network"]["values"][str(s)],
                                                    p["accuracy"]["values"][str(s)]] for s in p["seeds"]])
                    for p in points}
            for label, points in block["losses"].items()}
