"""The loss comparison's report: per-loss statistics over seeds, paired differences, the paper's claims
judged, and the files (comparison.md, comparison.json, replicas.jsonl, plots).

  report = write(result, workdir)       result: spikejax.compare.sweep.compare_losses(...)

Metrics per replica, all on the test split (each a mean over the test samples):
  accuracy           final accuracy (decision from all T steps)
  latency_95         first step (0-based) at which accuracy over time reaches 95% of its final value
                     (T when the final accuracy is 0)
  decision_time      mean decision time (steps) at spikemax confidence 0.9 (`readout.decide`)
  decision_accuracy  accuracy of those decisions
  spikes             spikes per sample of the network's own layers (hidden and output; input excluded)
  synops_network     SynOps per sample driven by the network's spikes (hidden -> next layer ...)
  synops_input       SynOps per sample driven by the input spikes: fixed by the data, the same for every loss
                     up to the model's fan-out, so it is reported apart and never compared
Statistics (`spikejax.compare.stats`): mean, std (ddof=1) and Student-t 95% CI over the final seeds; paired
differences a - b per seed (same seed = same initial weights and batches) with a paired t-test. The paper's
claims (spikemax has higher accuracy, lower latency and fewer spikes/SynOps than count-MSE and
count-softmax) form one family of tests, Holm-adjusted; a claim is "supported" when its adjusted p < 0.05
in the claimed direction, "not supported" when significant the other way, else "not significant".
"""
from __future__ import annotations

import json
import os
import platform

import numpy as np

from spikejax import losses
from spikejax.compare import stats
from spikejax.compare.sweep import describe
from spikejax.errors import MissingDependencyError
from spikejax.files import atomic_write, atomic_write_json
from spikejax.workdir import log

METRICS = {  # name: (what it is, the direction the paper claims for spikemax against the other losses)
    "accuracy": ("test accuracy", "positive"),
    "latency_95": ("first step at 95% of the final accuracy", "negative"),
    "decision_time": ("mean decision time at confidence 0.9 (steps)", "negative"),
    "decision_accuracy": ("accuracy of the decisions at confidence 0.9", None),
    "spikes": ("spikes per sample, hidden + output layers", "negative"),
    "synops_network": ("SynOps per sample of the network's layers", "negative"),
    "synops_input": ("SynOps per sample of the input layer (fixed by the data)", None),
}
SPIKEMAX_LOSS = "nll"  # the paper's method: every label of this loss is compared with every other label


def title(label: str) -> str:
    """A comparison label as people read it ("spike NLL (sliding window)"), from the loss registry."""
    return losses.entry(label).title


def spikemax_labels(labels) -> list[str]:
    return [label for label in labels if losses.entry(label).loss == SPIKEMAX_LOSS]


def metrics(test: dict) -> dict[str, float]:
    """The compared metrics of one replica's test summary (`evaluate.summarize`)."""
    latency = test["latency_steps"]
    synops = test["synops_per_sample"]
    first = latency["accuracy_95pct_of_final"]
    return {"accuracy": test["accuracy"],
            "latency_95": float(test["time_bins"] if first is None else first),
            "decision_time": latency["decision"]["0.9"]["mean_time"],
            "decision_accuracy": latency["decision"]["0.9"]["accuracy"],
            "spikes": test["spikes_per_sample"]["total"],
            "synops_network": synops["total"] - synops["input"],
            "synops_input": synops["input"]}


def analyse(result: dict) -> dict:
    """comparison.json's content: per loss its selected config and the statistics of every metric over the
    seeds; the paired differences; the claims with raw and Holm-adjusted p-values."""
    labels = [label for label in result["sweep"]["losses"] if result["selection"][label]["row"] is not None]
    by_label: dict[str, dict[int, dict]] = {label: {} for label in labels}
    for record in result["final"]:
        by_label[record["row"]["label"]][record["row"]["seed"]] = metrics(record["test"])
    seeds = sorted(by_label[labels[0]])
    losses = {}
    for label in labels:
        values = {m: [by_label[label][s][m] for s in seeds] for m in METRICS}
        selection = result["selection"][label]
        losses[label] = {"selected": selection["row"], "tuning_validation_accuracy": selection["validation_mean"],
                         "final_validation_accuracy": stats.summary(
                             [r["validation"]["accuracy"] for r in result["final"] if r["row"]["label"] == label]),
                         "diverged_seeds": [r["row"]["seed"] for r in result["final"]
                                            if r["row"]["label"] == label and r["frozen_at"] is not None],
                         **{m: stats.summary(v) for m, v in values.items()}}
    paired = {}
    methods = spikemax_labels(labels)
    for a in methods:
        for b in labels:
            if b != a and not (b in methods and methods.index(b) < methods.index(a)):  # each pair once
                paired[f"{a} - {b}"] = {m: stats.paired([by_label[a][s][m] for s in seeds],
                                                        [by_label[b][s][m] for s in seeds]) for m in METRICS}
    claims = [{"pair": pair, "metric": m, "claim": METRICS[m][1]} for pair in paired
              for m in METRICS if METRICS[m][1] and pair.split(" - ")[1] not in methods]
    adjusted = stats.holm([paired[c["pair"]][c["metric"]]["p"] for c in claims])
    for claim, p in zip(claims, adjusted):
        difference = paired[claim["pair"]][claim["metric"]]
        claim.update(mean=difference["mean"], ci95=difference["ci95"], p=difference["p"], p_holm=p,
                     verdict=stats.verdict({**difference, "p_holm": p}, claim["claim"], p_key="p_holm"))
    unselected = [label for label in result["sweep"]["losses"] if label not in labels]
    return {"seeds": seeds, "losses": losses, "paired": paired, "claims": claims,
            "diverged": diverged(result), "every_configuration_diverged": unselected}


def diverged(result: dict) -> list[dict]:
    """Every replica that diverged (was frozen), tuning and final: {"stage", "label", "config" (the row
    without the seed), "seed", "step"}, in run order."""
    return [{"stage": stage, "label": r["row"]["label"], "config": {k: v for k, v in r["row"].items() if k != "seed"},
             "seed": r["row"]["seed"], "step": r["frozen_at"]}
            for stage in ("tune", "final") for r in result[stage] if r["frozen_at"] is not None]


def diverged_lines(analysis: dict) -> list[str]:
    """comparison.md's list of diverged configurations: one line per configuration, its seeds and steps."""
    groups: dict[str, list[dict]] = {}
    for d in analysis["diverged"]:
        groups.setdefault(json.dumps([d["stage"], d["config"]], sort_keys=True), []).append(d)
    lines = []
    for items in groups.values():
        first = items[0]
        at = ", ".join(f"seed {d['seed']} at step {d['step']}" for d in items)
        lines.append(f"- {first['stage']}: {first['label']} {describe(first['config'])}: diverged ({at}); never "
                     "selected")
    for label in analysis["every_configuration_diverged"]:
        lines.append(f"- **{label}: every configuration diverged in tuning**; nothing was selected, so it has no "
                     "final stage and no row in the table")
    return lines or ["None: every replica stayed finite."]


def _cell(s: dict, digits: int) -> str:
    if s["std"] is None:
        return f"{s['mean']:.{digits}f}"
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"


def table(analysis: dict) -> str:
    """The per-loss table: mean ± std over the seeds (accuracy with its 95% CI)."""
    lines = ["| loss | selected (validation acc.) | test accuracy (95% CI) | 95% of final at step | "
             "decision @0.9: steps / accuracy | spikes/sample | SynOps/sample: network / input |",
             "|---|---|---|---:|---:|---:|---:|"]
    for label, r in analysis["losses"].items():
        ci = r["accuracy"]["ci95"]
        accuracy = _cell(r["accuracy"], 4) + (f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "")
        lines.append(f"| {label} | {describe(r['selected'])} ({r['tuning_validation_accuracy']:.4f}) | {accuracy} | "
                     f"{_cell(r['latency_95'], 1)} | {_cell(r['decision_time'], 2)} / "
                     f"{_cell(r['decision_accuracy'], 4)} | {_cell(r['spikes'], 0)} | "
                     f"{_cell(r['synops_network'], 0)} / {_cell(r['synops_input'], 0)} |")
    return "\n".join(lines)


def _number(x, digits=4) -> str:
    if x is None:
        return "n/a"
    return f"{x:.2e}" if x != 0 and abs(x) < 10 ** -digits else f"{x:.{digits}f}"


def paired_table(analysis: dict) -> str:
    lines = ["| difference | metric | mean | 95% CI | p (paired t) |", "|---|---|---:|---:|---:|"]
    for pair, per_metric in analysis["paired"].items():
        for m, d in per_metric.items():
            if m == "synops_input":
                continue
            ci = "n/a" if d["ci95"] is None else f"{d['ci95'][0]:+.4g} to {d['ci95'][1]:+.4g}"
            lines.append(f"| {pair} | {m} | {d['mean']:+.4g} | {ci} | {_number(d['p'])} |")
    return "\n".join(lines)


def claim_sentences(analysis: dict) -> list[str]:
    out = []
    for c in analysis["claims"]:
        a, b = c["pair"].split(" - ")
        direction = "higher" if c["claim"] == "positive" else "lower"
        ci = "" if c["ci95"] is None else f", 95% CI {c['ci95'][0]:+.4g} to {c['ci95'][1]:+.4g}"
        out.append(f"- {title(a)} has {direction} {METRICS[c['metric']][0]} than {title(b)}: **{c['verdict']}** "
                   f"(difference {c['mean']:+.4g}{ci}; p = {_number(c['p'])}, Holm-adjusted {_number(c['p_holm'])}).")
    return out


def machine() -> dict:
    import jax

    return {"platform": jax.devices()[0].platform, "device": jax.devices()[0].device_kind,
            "devices": jax.device_count(), "processes": jax.process_count(), "cpu_count": os.cpu_count(),
            "python": platform.python_version(), "jax": jax.__version__}


def markdown(result: dict, analysis: dict, host: dict) -> str:
    config, sweep = result["config"], result["sweep"]
    seconds = result["train_seconds"]
    return "\n".join([
        f"# Loss comparison on {config['dataset']}", "",
        f"{len(analysis['seeds'])} seeds per loss ({analysis['seeds']}), {config['epochs']} epochs, batch "
        f"{config['batch_size']}, T = {config['data']['time_bins']} steps of {config['data']['bin_width_us']} us, "
        f"model {config['model']['name']} {tuple(config['model']['hidden'])}, optimizer {config['optimizer']['name']}.",
        "",
        f"Selection: {len(result['grid'])} configurations (every loss x learning rate x that loss's parameters) "
        f"were trained with {sweep['tune_seeds']} tuning seed(s) each; per loss, the one with the best mean final "
        "accuracy on the validation hold-out "
        f"({config['data']['validation_fraction']:.0%} of the training split, stratified) was kept. The "
        "test split was used once, for the kept configurations, with fresh seeds. Each row: mean ± std over "
        "the seeds. Every loss sees the same batches, and seed s gives every loss the same initial weights.",
        "", table(analysis), "",
        "## Diverged configurations", "",
        "A replica whose loss, gradients or parameters became non-finite was frozen at that step (its last finite "
        "state kept); a configuration with a diverged seed is never selected.", "",
        *diverged_lines(analysis), "",
        "## The paper's claims",
        "",
        "One family of paired t-tests over the seeds (spikemax minus the other loss, per seed), Holm-adjusted; "
        "\"not significant\" means the data cannot tell at alpha = 0.05.", "",
        *claim_sentences(analysis), "",
        "## Paired differences (per seed, a - b)", "", paired_table(analysis), "",
        f"Training time (from the checkpoints): tuning {seconds['tune']:.0f} s, final {seconds['final']:.0f} s on "
        f"{host['devices']} {host['device']} device(s) ({host['platform']}, {host['cpu_count']} CPU cores, jax "
        f"{host['jax']}).", ""])


def write(result: dict, workdir: str) -> dict:
    """Writes comparison.md, comparison.json, replicas.jsonl and the two band plots (without matplotlib: a
    note) into `workdir`; returns {"analysis", "table", "plots": whether the plots were written}."""
    from spikejax import plots

    analysis = analyse(result)
    host = machine()
    atomic_write_json(os.path.join(workdir, "comparison.json"), {
        **analysis, "config": result["config"], "sweep": result["sweep"], "grid": result["grid"],
        "selection_rule": "highest mean final validation accuracy over the tuning seeds; configurations with a "
                          "diverged seed are never selected; ties to the first in grid order; a loss all of whose "
                          "configurations diverged is listed in every_configuration_diverged, not compared",
        "candidates": {label: s["candidates"] for label, s in result["selection"].items()},
        "train_seconds": result["train_seconds"], "machine": host})
    lines = [json.dumps({"stage": stage, "label": record["row"]["label"], "seed": record["row"]["seed"],
                         "config": record["row"], **{k: v for k, v in record.items() if k != "row"}}) + "\n"
             for stage in ("tune", "final") for record in result[stage]]
    atomic_write(os.path.join(workdir, "replicas.jsonl"), lambda f: f.writelines(lines))
    text = markdown(result, analysis, host)
    atomic_write(os.path.join(workdir, "comparison.md"), lambda f: f.write(text))
    curves, tradeoff = {}, {}
    for record in result["final"]:
        label, test = record["row"]["label"], record["test"]
        curves.setdefault(label, []).append(test["accuracy_over_time"])
        decision = test["latency_steps"]["decision"]
        tradeoff.setdefault(label, []).append([[decision[t]["mean_time"], decision[t]["accuracy"]]
                                               for t in sorted(decision, key=float)])
    try:
        plots.bands_over_time({k: np.asarray(v) for k, v in curves.items()},
                              os.path.join(workdir, "accuracy_over_time.png"))
        plots.latency_tradeoff_bands({k: np.asarray(v) for k, v in tradeoff.items()},
                                     os.path.join(workdir, "latency_accuracy.png"))
        plotted = True
    except MissingDependencyError as error:  # a core install: the report stands without the PNGs
        log(f"plots skipped: {error}")
        plotted = False
    return {"analysis": analysis, "table": table(analysis), "plots": plotted}
