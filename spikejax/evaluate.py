"""Evaluation: a pure eval step over padded batches and its summary (reading and reporting a run's
folder is `spikejax.runs`).

  eval_step(params, inputs, labels, mask, ...)    masked sums over a (shard of a) batch
  sum_over_split(fn, split, eval_batch_size, ...) a parallel eval step's sums over every sample of a split
  evaluate_split(params, split, ...)              every sample of a split once -> the summary dict
  summarize(totals, facts)                        the sums -> the eval.json dict

Below the programs, these take the values they use, never the run config.

Sums first, then one division at the end, so padding (mask 0) counts nowhere and the result does not
depend on the batch size or the number of devices. Every measure is a masked sum over samples:
- latency, primary and loss-agnostic: each sample's stable-prediction step (`readout.stable_prediction_step`
  of the loss's readout), its mean over samples and over correctly classified ones; accuracy over time (the
  latency at a matched accuracy is `readout.steps_to_reach` on it). Secondary, NLL-native: the confidence
  decision (`readout.decide`) at each of DECISION_THRESHOLDS.
- energy: spikes and SynOps per layer (the input layer, fixed by the data, apart from the network's layers),
  and the network's spikes and SynOps up to each sample's stable-prediction step (inclusive). A
  non-spiking output layer (`model.output="integrator"`) counts zero spikes (its layer keeps its place),
  so losses on it compare on their hidden layers; the confidence decision and dead outputs are then None.
- diagnostics (DIAGNOSTICS): recall per class, output neurons that never fire on the split, and each
  layer's firing rate (spikes per neuron per step).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import PartitionSpec as P

from spikejax import build, parallel, readout
from spikejax import data as data_lib

DECISION_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


def eval_step(params, inputs, labels, mask, *, graphdef, loss_fn, readout_fn, fan_out, axis_name=None,
              frame_shape=None, progress=None, reads=("spikes",)):
    """Sums over a (shard of a) padded batch: correct decisions over time (the loss's readout), the
    stable-prediction step (`readout.stable_prediction_step`) and the network's spikes and SynOps up to it,
    decision times and accuracy at each confidence threshold, spikes and SynOps per layer, neuron-steps per
    layer (for firing rates), examples and correct final decisions per class, spikes per output neuron, and
    the loss. Padding (mask 0) counts nowhere. With `axis_name`, the sums are psum'd over that mesh axis.
    `progress` None: the deployed model (a delayed model's integer delays); 1.0: as at the end of training
    (its delays interpolated at the final width). `reads`: what the losses read (`build.reads`). An output
    layer that does not spike (an integrator) counts zero spikes in the per-layer sums, and the sums that
    need output spikes (spikes per output neuron, the NLL-native confidence decisions) are left out."""
    outputs, layers = build.apply_model(graphdef, params, inputs, frame_shape, progress, reads)
    out = outputs.get("spikes")  # None: the output layer does not spike
    weights = mask.astype(jnp.float32)
    examples = jnp.sum(weights)
    model = nnx.merge(graphdef, params)
    ops = [readout.neurobench_ops(*c) for c in model.connections(layers)]
    # NeuroBench's activation sparsity is over spiking neurons: a non-spiking output layer is left out
    activity = [readout.active_neurons(h) for h in (layers[1:] if out is not None else layers[1:-1])]
    predictions = readout_fn(outputs)  # [T, B]
    correct = predictions == labels[None, :]
    stable = readout.stable_prediction_step(predictions)  # [B] in 0..T
    per_class = jax.nn.one_hot(labels, layers[-1].shape[-1], dtype=jnp.float32) * weights[:, None]  # [B, C]
    network = list(zip(layers[1:], fan_out[1:]))
    sums = {
        "neurobench": jnp.stack([jnp.sum(sum(o[k] for o in ops) * weights) for k in range(3)]
                                + [jnp.sum(sum(a[k] for a in activity) * weights) for k in range(2)]),
        "examples": examples,
        "loss": loss_fn(outputs, labels, mask) * examples,
        "correct_over_time": jnp.sum(correct * weights, axis=1),
        "spikes": jnp.stack([jnp.sum(readout.total_spikes(h) * weights) for h in layers]),
        "synops": jnp.stack([jnp.sum(readout.synops(h, f) * weights) for h, f in zip(layers, fan_out)]),
        "neuron_steps": jnp.stack([examples * float(np.prod(h.shape[:1] + h.shape[2:])) for h in layers]),
        "stable_time": jnp.sum(stable * weights),
        "stable_time_correct": jnp.sum(stable * correct[-1] * weights),
        "spikes_to_decision": jnp.stack([jnp.sum(readout.total_spikes(h, stable) * weights) for h, _ in network]),
        "synops_to_decision": jnp.stack([jnp.sum(readout.synops(h, f, stable) * weights) for h, f in network]),
        "class_examples": jnp.sum(per_class, axis=0),
        "class_correct": jnp.sum(per_class * correct[-1][:, None], axis=0),
    }
    if out is not None:
        sums["output_spikes"] = jnp.sum(readout.spike_counts(out) * weights[:, None], axis=0)  # [C]
        times, decided = [], []
        for threshold in DECISION_THRESHOLDS:
            t, prediction = readout.decide(out, threshold)
            times.append(jnp.sum(t * weights))
            decided.append(jnp.sum((prediction == labels) * weights))
        sums["decision_time"], sums["decision_correct"] = jnp.stack(times), jnp.stack(decided)
    if axis_name is not None:
        sums = jax.lax.psum(sums, axis_name)
    return sums


def parallel_eval_step(mesh, **kwargs):
    """jit(shard_map(eval_step)) over `mesh`: parameters replicated, the batch split over 'data'."""
    step = functools.partial(eval_step, axis_name=parallel.DATA_AXIS, **kwargs)
    batch = (P(None, parallel.DATA_AXIS), P(parallel.DATA_AXIS), P(parallel.DATA_AXIS))
    return jax.jit(jax.shard_map(step, mesh=mesh, in_specs=(P(),) + batch, out_specs=P()))


def sum_over_split(fn, split: data_lib.CachedSplit, eval_batch_size: int, *, mesh, args=(), extra=()) -> dict:
    """The sums `fn(*args, inputs, labels, mask, *extra)` (a parallel eval step) added over every sample of
    `split` once, in padded batches of about `eval_batch_size` (a multiple of the mesh's 'data' devices)."""
    devices = parallel.data_devices(mesh)
    eval_batch = max(devices, eval_batch_size - eval_batch_size % devices)
    batches = data_lib.eval_batches(split, eval_batch, process_index=jax.process_index(),
                                    process_count=jax.process_count(), packed=split.packed)
    totals = None
    for batch in data_lib.prefetch(batches):
        sums = jax.device_get(fn(*args, *parallel.global_batch_arrays(mesh, batch), *extra))
        totals = sums if totals is None else jax.tree.map(np.add, totals, sums)
    return totals


def evaluate_split(params, split: data_lib.CachedSplit, *, mesh, graphdef, model, loss_fn, readout_fn,
                   eval_batch_size: int, facts: dict, progress=None, reads=("spikes",)) -> dict:
    """The summary (see `summarize`) of `params` on every sample of `split`, each counted once; `loss_fn`,
    `readout_fn`, `reads`: `build.loss`, `build.readout`, `build.reads`; `facts`: `build.report_facts`;
    `progress`: see `eval_step`."""
    fn = parallel_eval_step(mesh, graphdef=graphdef, loss_fn=loss_fn, readout_fn=readout_fn, fan_out=model.fan_out,
                            frame_shape=build.packed_frame_shape(split), progress=progress, reads=tuple(reads))
    return summarize(sum_over_split(fn, split, eval_batch_size, mesh=mesh, args=(params,)), facts)


def summarize(totals: dict, facts: dict) -> dict:
    """Turns eval_step sums into the eval.json dict; `facts` ({dataset, loss, time_bins, bin_width_us},
    `build.report_facts`) are copied in. Every figure is a sum over the split's samples divided once here
    (see docs/training.md, "Evaluation", for each field)."""
    n = float(totals["examples"])
    over_time = (np.asarray(totals["correct_over_time"]) / n).tolist()
    final = over_time[-1]
    right = float(totals["correct_over_time"][-1])

    def first_reaching(fraction):
        return readout.steps_to_reach(over_time, fraction * final) if final > 0 else None

    layer_names = ["input"] + [f"layer{i}" for i in range(1, len(totals["spikes"]) - 1)] + ["output"]
    spikes = dict(zip(layer_names, (np.asarray(totals["spikes"]) / n).tolist()))
    synops = dict(zip(layer_names, (np.asarray(totals["synops"]) / n).tolist()))
    network = lambda per_layer: float(sum(v for k, v in per_layer.items() if k != "input"))
    to_decision = {name: dict(zip(layer_names[1:], (np.asarray(totals[key]) / n).tolist()))
                   for name, key in (("spikes", "spikes_to_decision"), ("synops", "synops_to_decision"))}
    classes, class_correct = np.asarray(totals["class_examples"]), np.asarray(totals["class_correct"])
    spiking = "output_spikes" in totals  # False: a non-spiking (integrator) output layer
    silent = np.flatnonzero(np.asarray(totals["output_spikes"]) == 0) if spiking else None
    rates = np.asarray(totals["spikes"]) / np.asarray(totals["neuron_steps"])  # spikes per neuron per step
    return {
        "dataset": facts["dataset"],
        "loss": facts["loss"],
        "accuracy": final,
        "num_examples": int(n),
        "mean_loss": float(totals["loss"]) / n,  # over the evaluated split's samples
        "time_bins": facts["time_bins"],
        "bin_width_us": facts["bin_width_us"],
        "accuracy_over_time": over_time,
        "latency_steps": {
            "stable_prediction": {"mean": float(totals["stable_time"]) / n,
                                  "mean_correct": float(totals["stable_time_correct"]) / right if right else None},
            "accuracy_95pct_of_final": first_reaching(0.95),
            "accuracy_99pct_of_final": first_reaching(0.99),
            "decision": {f"{th:g}": {"mean_time": float(t) / n, "accuracy": float(c) / n}
                         for th, t, c in zip(DECISION_THRESHOLDS, totals["decision_time"], totals["decision_correct"])}
            if spiking else None,  # None: no output spikes to decide on (an integrator output layer)
            "decision_is": "secondary, NLL-native: first step with max_i n_i / sum_j n_j >= threshold",
        },
        # "total": spikes of the network (input events listed apart); SynOps of every layer, input included
        "spikes_per_sample": {**spikes, "network": network(spikes), "total": network(spikes)},
        "synops_per_sample": {**synops, "network": network(synops), "total": float(sum(synops.values()))},
        "energy_to_decision": {f"{name}_per_sample": {**values, "network": network(values)}
                               for name, values in to_decision.items()},
        "per_class_recall": [float(c) / float(e) if e else None for c, e in zip(class_correct, classes)],
        "dead_outputs": {"count": int(silent.size), "neurons": silent.tolist()} if spiking else None,
        "firing_rate": dict(zip(layer_names, rates.tolist())),
        "neurobench": neurobench_summary(totals["neurobench"], n),
    }


DIAGNOSTICS = ("per_class_recall", "dead_outputs", "firing_rate")


def delay_summary(model, test: dict, interpolated: dict) -> dict:
    """What eval.json says of a delayed model: the deployed (rounded, integer-step) network is the result;
    `interpolated` (its delays Gaussian-interpolated at the final training width) beside it, and each
    layer's rounded delays (mean, max, fraction nonzero, in steps)."""
    from spikejax import delays

    layers = []
    for layer in model.layers:
        d = np.asarray(delays.rounded(layer.delay[...], model.delay.kernel_size))
        layers.append({"shape": list(d.shape), "mean_steps": float(d.mean()), "max_steps": int(d.max()),
                       "nonzero_fraction": float(np.mean(d != 0))})
    return {"evaluated": "rounded to integer steps (the deployed network; the top-level accuracy)",
            "kernel_size": model.delay.kernel_size, "per": model.delay.per, "learned": model.delay.learn,
            "interpolated": {"sigma": model.delay.sigma_end if model.delay.learn else None,
                             "accuracy": interpolated["accuracy"], "mean_loss": interpolated["mean_loss"]},
            "rounded_minus_interpolated_accuracy": test["accuracy"] - interpolated["accuracy"],
            "layers": layers}


def neuron_summary(neuron_config: dict, model) -> dict:
    """eval.json's "neuron": the run's neuron config (model.neuron, with its learn_* fields) and, per spiking
    layer (layer1, ..., output), mean / std / min / max of every learned parameter's value."""
    learned = {}
    spiking = list(model.spiking)
    names = [f"layer{i}" for i in range(1, len(spiking))] + ["output"]
    for name, layer in zip(names, spiking):
        values = {k: np.asarray(v, np.float64) for k, v in layer.values().items()}
        if values:
            learned[name] = {k: {"mean": float(v.mean()), "std": float(v.std()), "min": float(v.min()),
                                 "max": float(v.max()), "size": int(v.size)} for k, v in values.items()}
    return {"config": neuron_config, "learned": learned}


def neurobench_summary(sums, examples: float) -> dict:
    """NeuroBench 2.3's workload figures per sample (see `readout.neurobench_ops`): effective ACs and
    MACs, the dense-equivalent operation count, and activation sparsity over the spiking layers."""
    ac, mac, dense, active, neurons = (float(v) for v in np.asarray(sums))
    return {"effective_acs": ac / examples, "effective_macs": mac / examples, "dense": dense / examples,
            "activation_sparsity": 1.0 - active / neurons if neurons else 0.0}
