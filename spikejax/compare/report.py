"""The loss comparison's report: per-loss distributions over seeds, the paper's claims tested as one declared
family of hypotheses, failures listed, and the files (comparison.json, comparison.md, replicas.jsonl, plots).

  report = write(result, workdir)       result: spikejax.compare.sweep.compare_losses(...)

comparison.json is the one source: `analyse` computes it, and comparison.md is `render.render` of its JSON
content alone, so every figure and verdict of the markdown can be recomputed from the file
(tests/test_comparison_json.py does that with scipy and numpy).

Measures per replica, all on the test split (each a mean over the test samples):
  accuracy           final accuracy (decision from all T steps)
  latency_95         first step (0-based) at which accuracy over time reaches 95% of its final value
                     (T when the final accuracy is 0)
  decision_time      mean decision time (steps) at spikemax confidence 0.9 (`readout.decide`; NLL's own
                     readout, so secondary)
  decision_accuracy  accuracy of those decisions
  spikes             spikes per sample of the network's own layers (hidden and output; input excluded)
  synops_network     SynOps per sample driven by the network's spikes (hidden -> next layer ...)
  synops_input       SynOps per sample driven by the input spikes: fixed by the data, the same for every loss
                     up to the model's fan-out, so it is reported apart and never compared
  latency_stable     mean over samples of the step from which the prediction stays at its final value
                     (`readout.stable_prediction_step`; T for a sample whose output never fires): loss-agnostic
  latency_matched    first step at which accuracy over time reaches the matched level, 95% of the lowest final
                     accuracy among the final replicas that did not diverge (a level every model reaches, so
                     latencies compare at equal accuracy; T if never)
  synops_to_decision SynOps per sample of the network's layers up to each sample's stable-prediction step
  dead_outputs       output neurons that never fire on the test split

The hypotheses (`FAMILY`, the one place that names the measure of each claim): for every pair (a spikemax
label, a label of another loss), the paper's three claims, each a two-sided exact test of the paired per-seed
differences a - b with a claimed direction; the family (3 x pairs) is Holm-adjusted together, and a claim
is "supported" when its adjusted p < ALPHA in the claimed direction, "significant in the opposite
direction" when significant the other way, else "not significant". Pairs of two spikemax labels and the
other measures are described (distributions, bootstrap CIs, t-tests as secondary columns), not tested.
The family spans one dataset: a comparison run is one dataset. Tests, tie rules and the bootstrap:
`spikejax.compare.stats`.

Matched energy (`energy`, with sweep.energy_penalties): per label, test accuracy and hidden-layer SynOps
(synops_network) at each weight of the spike-rate penalty, over the final seeds, and the figure
accuracy_synops.png; described only, outside the family.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import platform

from spikejax import figures, losses
from spikejax.compare import stats
from spikejax.compare.render import render, table
from spikejax.compare.selection import describe
from spikejax.errors import MissingDependencyError
from spikejax.files import atomic_write, atomic_write_json
from spikejax.workdir import log

METRICS = {  # name: what it is, with its unit
    "accuracy": "test accuracy (fraction of the test samples)",
    "latency_95": "latency: first step at 95% of the final accuracy (steps)",
    "decision_time": "mean decision time at confidence 0.9 (steps; NLL's own readout)",
    "decision_accuracy": "accuracy of the decisions at confidence 0.9",
    "spikes": "spikes per sample, hidden + output layers",
    "synops_network": "energy: SynOps per sample of the network's own layers (input layer apart)",
    "synops_input": "SynOps per sample of the input layer (fixed by the data)",
    "latency_stable": "latency: mean step from which each sample's prediction stays final (steps; any loss)",
    "latency_matched": "latency at matched accuracy: first step at the common level (steps)",
    "synops_to_decision": "energy up to the decision: network SynOps per sample until the stable prediction",
    "dead_outputs": "output neurons that never fire on the test split",
}
MATCHED_FRACTION = 0.95  # the matched level: this fraction of the lowest final accuracy of the final replicas
SPIKEMAX_LOSS = "nll"  # the paper's method: every label of this loss is compared with every other label


@dataclasses.dataclass(frozen=True)
class Hypothesis:
    """One claim of the paper for each (spikemax label, other label) pair: `measure` (a METRICS name) is
    "positive" (spikemax higher) or "negative" (spikemax lower) by `test` ("sign_flip" or "wilcoxon")."""
    claim: str
    measure: str
    direction: str
    test: str = "sign_flip"


# The declared family. One measure per claim: switching the latency or energy measure is one line here.
# Latency: latency_stable (each sample's own prediction, read the same way for every loss), not decision_time,
# which thresholds NLL's own confidence n_i / sum n_j (count-MSE's targets cap it, so it favours NLL), nor
# latency_95 (relative to each model's own final accuracy; latency_matched compares at one level).
# Energy: synops_network, not spikes: on these models the two are one quantity (SynOps = each hidden spike
# times its fan-out) and testing both padded the family; SynOps is the energy proxy (NeuroBench's) and
# leaves out output spikes, which drive no synapse.
FAMILY = (
    Hypothesis("accuracy", measure="accuracy", direction="positive"),
    Hypothesis("latency", measure="latency_stable", direction="negative"),
    Hypothesis("energy", measure="synops_network", direction="negative"),
)
TEST_NAMES = {"sign_flip": "exact paired sign-flip (permutation) test of the mean difference",
              "wilcoxon": "exact Wilcoxon signed-rank test (zeros dropped, midranks)"}


def title(label: str) -> str:
    """A comparison label as people read it ("spike NLL (sliding window)"), from the loss registry."""
    return losses.entry(label).title


def spikemax_labels(labels) -> list[str]:
    return [label for label in labels if losses.entry(label).loss == SPIKEMAX_LOSS]


def family_size(labels) -> int:
    """The number of hypotheses a comparison of `labels` tests: every claim of FAMILY for every pair (a
    spikemax label, a label of another loss)."""
    methods = spikemax_labels(labels)
    return len(FAMILY) * len(methods) * len([b for b in labels if b not in methods])


def seeds_warning(labels, seeds: int) -> str | None:
    """A sentence when `seeds` paired seeds cannot make any hypothesis of the comparison of `labels`
    significant after Holm (the smallest exact p, 2 / 2^seeds, times the family's size is >= ALPHA), else None."""
    family = family_size(labels)
    if family == 0 or seeds >= stats.seeds_needed(family):
        return None
    return (f"{seeds} final seeds cannot make any of the {family} hypotheses of this comparison significant: "
            f"the smallest p-value an exact paired test gives with {seeds} pairs is "
            f"{stats.smallest_p(seeds):.2g}, and Holm over {family} needs it below {stats.ALPHA / family:.2g}; "
            f"--sweep.seeds={stats.seeds_needed(family)} or more can. The run goes on: its distributions are "
            f"still described, every verdict will read 'not significant'")


def matched_level(records: list[dict]) -> float:
    """MATCHED_FRACTION of the lowest final test accuracy among `records` (final replicas) that did not
    diverge (all of them if every one did)."""
    kept = [r for r in records if r["frozen_at"] is None] or records
    return MATCHED_FRACTION * min(r["test"]["accuracy"] for r in kept)


def metrics(test: dict, level: float | None = None) -> dict[str, float]:
    """The compared measures of one replica's test summary (`evaluate.summarize`); `level`: the matched
    accuracy level (`matched_level`; None: latency_matched is T)."""
    from spikejax.readout import steps_to_reach

    latency = test["latency_steps"]
    synops = test["synops_per_sample"]
    first = latency["accuracy_95pct_of_final"]
    matched = None if level is None else steps_to_reach(test["accuracy_over_time"], level)
    return {"accuracy": test["accuracy"],
            "latency_95": float(test["time_bins"] if first is None else first),
            # NaN where the output layer does not spike (an integrator: no NLL-native decision, no dead outputs)
            "decision_time": latency["decision"]["0.9"]["mean_time"] if latency["decision"] else math.nan,
            "decision_accuracy": latency["decision"]["0.9"]["accuracy"] if latency["decision"] else math.nan,
            "spikes": test["spikes_per_sample"]["total"],
            "synops_network": synops["total"] - synops["input"],
            "synops_input": synops["input"],
            "latency_stable": latency["stable_prediction"]["mean"],
            "latency_matched": float(test["time_bins"] if matched is None else matched),
            "synops_to_decision": test["energy_to_decision"]["synops_per_sample"]["network"],
            "dead_outputs": float(test["dead_outputs"]["count"]) if test["dead_outputs"] else math.nan}


def _by_seed(seeds, values) -> dict[str, float]:
    return {str(s): float(v) for s, v in zip(seeds, values)}


def hypothesis_record(a: str, b: str, hypothesis: Hypothesis, seeds, a_values, b_values) -> dict:
    """One hypothesis's record (before Holm): the differences a - b by seed, both exact tests, the primary
    one's statistic, p and observed direction, the bootstrap CI of the mean difference and effect sizes."""
    d = stats.differences(a_values, b_values)
    w = stats.wilcoxon(d)
    tests = {"sign_flip": {"statistic_name": "sum of differences", "statistic": float(d.sum()),
                           "p": stats.sign_flip(d), "observed": float(d.sum())},
             "wilcoxon": {"statistic_name": "W+", "statistic": w["w_plus"], "p": w["p"],
                          "observed": w["w_plus"] - w["w_minus"]}}
    primary = tests[hypothesis.test]
    t = stats.paired(a_values, b_values)
    return {"a": a, "b": b, "claim": hypothesis.claim, "measure": hypothesis.measure,
            "direction": hypothesis.direction, "test": hypothesis.test, "statistic_name": primary["statistic_name"],
            "statistic": primary["statistic"], "p": primary["p"],
            "observed_direction": "none" if primary["observed"] == 0 else (
                "positive" if primary["observed"] > 0 else "negative"),
            "differences": _by_seed(seeds, d), "bootstrap_ci": stats.bootstrap_ci(d),
            "effect": stats.effect_sizes(d), "sign_flip_p": tests["sign_flip"]["p"],
            "wilcoxon": {"w_plus": w["w_plus"], "w_minus": w["w_minus"], "n_nonzero": w["n_nonzero"], "p": w["p"]},
            "t": {"t": t["t"], "p": t["p"], "ci95": t["ci95"]}, "smallest_p": stats.smallest_p(len(d))}


def analyse(result: dict) -> dict:
    """comparison.json's statistics: per loss its selection and per measure the per-seed values (keyed by
    seed) with their distribution; the paired differences of every pair (descriptive); the declared family
    of hypotheses with raw and Holm-adjusted p-values and verdicts; the failures."""
    labels = [label for label in result["sweep"]["losses"] if result["selection"][label]["row"] is not None]
    by_label: dict[str, dict[int, dict]] = {label: {} for label in labels}
    level = matched_level([r for r in result["final"] if r["row"]["label"] in by_label])
    for record in result["final"]:
        by_label[record["row"]["label"]][record["row"]["seed"]] = metrics(record["test"], level)
    seeds = sorted(by_label[labels[0]])
    values = {label: {m: [by_label[label][s][m] for s in seeds] for m in METRICS} for label in labels}
    out_losses = {}
    for label in labels:
        selection = result["selection"][label]
        final = {r["row"]["seed"]: r for r in result["final"] if r["row"]["label"] == label}
        out_losses[label] = {
            "title": title(label), "loss": losses.entry(label).loss, "selected": selection["row"],
            "selected_description": describe(selection["row"]),
            "tuning_validation_accuracy": selection["validation_mean"],
            "final_validation_accuracy": _by_seed(seeds, [final[s]["validation"]["accuracy"] for s in seeds]),
            "diverged_seeds": [s for s in seeds if final[s]["frozen_at"] is not None],
            # seeds with output neurons that never fire: what makes a bimodal accuracy distribution
            "dead_output_seeds": [s for s in seeds if by_label[label][s]["dead_outputs"] > 0],
            "measures": {m: {"values": _by_seed(seeds, v), **stats.describe(v)} for m, v in values[label].items()}}
    methods = spikemax_labels(labels)
    pairs = [(a, b) for i, a in enumerate(methods) for b in labels if b != a and b not in methods[:i + 1]]
    differences = {}
    for a, b in pairs:
        per_measure = {}
        for m in METRICS:
            if m == "synops_input":
                continue
            d = stats.differences(values[a][m], values[b][m])
            t = stats.paired(values[a][m], values[b][m])
            per_measure[m] = {"values": _by_seed(seeds, d), **stats.describe(d), "effect": stats.effect_sizes(d),
                              "sign_flip_p": stats.sign_flip(d), "wilcoxon_p": stats.wilcoxon(d)["p"],
                              "t": t["t"], "t_p": t["p"]}
        differences[f"{a} - {b}"] = {"a": a, "b": b, "measures": per_measure}
    hypotheses = [hypothesis_record(a, b, h, seeds, values[a][h.measure], values[b][h.measure])
                  for a, b in pairs if b not in methods for h in FAMILY]
    for h, adjusted in zip(hypotheses, stats.holm([h["p"] for h in hypotheses])):
        h["p_holm"] = adjusted
        h["verdict"] = stats.judge(adjusted, {"positive": 1, "negative": -1, "none": 0}[h["observed_direction"]],
                                   h["direction"])
    family = len(hypotheses)
    return {"seeds": seeds, "matched_accuracy_level": level, "losses": out_losses, "differences": differences,
            "hypotheses": hypotheses,
            "statistics": statistics(result, len(seeds), family),
            "diverged": diverged(result), "every_configuration_diverged": [
                label for label in result["sweep"]["losses"] if label not in labels]}


ENERGY_MEASURES = ("accuracy", "synops_network")  # per label and penalty weight: test accuracy, hidden-layer SynOps


def energy(result: dict) -> dict | None:
    """comparison.json's "energy" (None without an energy stage): per label, one point per spike-rate penalty
    weight w, ascending: the final stage's replicas at the config's loss.rate_penalty (those of the energy
    stage's seeds) and the energy stage's at each weight of sweep.energy_penalties, each {"rate_penalty",
    "seeds", "diverged_seeds", and per ENERGY_MEASURES {"values" by seed, the distribution
    (stats.describe)}}. The same seeds at every weight (paired), reported apart: no hypothesis is tested on
    these points."""
    if not result.get("energy"):
        return None
    base = float(result["config"]["loss"]["rate_penalty"])
    paired = {r["row"]["seed"] for r in result["energy"]}  # the final stage's point on the energy stage's seeds
    groups: dict[str, dict[float, list[dict]]] = {}
    for record in [r for r in result["final"] if r["row"]["seed"] in paired] + result["energy"]:
        row = record["row"]
        groups.setdefault(row["label"], {}).setdefault(float(row.get("rate_penalty", base)), []).append(record)
    out = {}
    for label, by_weight in groups.items():
        points = []
        for weight in sorted(by_weight):
            records = sorted(by_weight[weight], key=lambda r: r["row"]["seed"])
            seeds = [r["row"]["seed"] for r in records]
            values = [metrics(r["test"]) for r in records]
            points.append({"rate_penalty": weight, "seeds": seeds,
                           "diverged_seeds": [r["row"]["seed"] for r in records if r["frozen_at"] is not None],
                           **{m: {"values": _by_seed(seeds, [v[m] for v in values]),
                                  **stats.describe([v[m] for v in values])} for m in ENERGY_MEASURES}})
        out[label] = points
    return {"measures": {m: METRICS[m] for m in ENERGY_MEASURES},
            "target_rate": result["config"]["loss"]["target_rate"],
            "penalty": "w * sum over the hidden layers of mean_b mean_i (r_bi - target_rate)^2, r in spikes per step "
                       "(losses.spike_rate_penalty), added to each label's own loss; the selected configuration "
                       "is retrained at each w with the final seeds (paired), the final stage's run being w = "
                       f"{base:g}", "losses": out}


def statistics(result: dict, n: int, family: int) -> dict:
    """What comparison.json declares about its tests: the family, the tests, tie rules, bootstrap and the
    smallest p-values n seeds allow."""
    return {"alpha": stats.ALPHA, "family": [dataclasses.asdict(h) for h in FAMILY], "family_size": family,
            "family_pairs": "every (spikemax label, label of another loss) pair, each with every claim of the family",
            "family_spans_datasets": False, "datasets": [result["config"]["dataset"]],
            "tests": TEST_NAMES, "multiple_comparisons": "Holm step-down over the whole family",
            "tie_rule": "differences a - b are rounded to 12 significant digits of the largest |value| of the pair's "
                        "measure, np.round(d, 12 - floor(log10 s)) (equal differences and zeros become exact); the "
                        "sign-flip test keeps zeros, which change nothing (p as without them); Wilcoxon drops "
                        "zeros and gives equal |differences| their mean rank, its p exact given those ties",
            "bootstrap": stats.BOOTSTRAP, "t_based": "secondary: Student-t intervals and paired t-tests",
            "smallest_p": stats.smallest_p(n), "smallest_p_holm": min(1.0, family * stats.smallest_p(n)),
            "seeds_needed": stats.seeds_needed(max(family, 1))}


def diverged(result: dict) -> list[dict]:
    """Every replica that diverged (was frozen), tuning and final: {"stage", "label", "config" (the row
    without the seed), "seed", "step"}, in run order."""
    return [{"stage": stage, "label": r["row"]["label"], "config": {k: v for k, v in r["row"].items() if k != "seed"},
             "seed": r["row"]["seed"], "step": r["frozen_at"]}
            for stage in ("tune", "final") for r in result[stage] if r["frozen_at"] is not None]


def machine() -> dict:
    import jax

    return {"platform": jax.devices()[0].platform, "device": jax.devices()[0].device_kind,
            "devices": jax.device_count(), "processes": jax.process_count(), "cpu_count": os.cpu_count(),
            "python": platform.python_version(), "jax": jax.__version__}


def replica_line(stage: str, record: dict) -> dict:
    """replicas.jsonl's record of one replica: its label, loss, parameters, learning rate, the spike-rate
    penalty's weight (energy stage only) and seeds (its seed
    sets both the initialisation and the data order, `replicas.data_seeds`), then the run's record
    (frozen_at, validation curve, validation and test summaries, training time)."""
    row = record["row"]
    parameters = {k: v for k, v in row.items() if k not in ("label", "loss", "learning_rate", "seed", "rate_penalty")}
    return {"stage": stage, "label": row["label"], "loss": row["loss"], "parameters": parameters,
            "learning_rate": row["learning_rate"], "seed": row["seed"],
            **({"rate_penalty": row["rate_penalty"]} if "rate_penalty" in row else {}),
            "seeds": {"init": row["seed"], "data_order": row["seed"]}, "config": row,
            **{k: v for k, v in record.items() if k != "row"}}


SMOKE_NOTE = ("a smoke run (--quick, configs/sweep.py:quick: few seeds, one configuration per loss, few epochs): it "
              "shows that the comparison runs end to end, and its numbers are no result. comparison.md shows no "
              "confidence intervals, tests or verdicts for it; the statistics in this file are computed all the "
              "same, for checking the pipeline, and are not to be read")


def smoke_fields(sweep: dict) -> dict:
    """comparison.json's "smoke" (whether the sweep was the --quick smoke setting, `sweep.smoke`) and, for a
    smoke run, "smoke_note" (what that means for the report)."""
    smoke = bool(sweep.get("smoke", False))
    return {"smoke": smoke, **({"smoke_note": SMOKE_NOTE} if smoke else {})}


def write(result: dict, workdir: str, reproduce: str | None = None) -> dict:
    """Writes comparison.json, comparison.md (render of that JSON), replicas.jsonl and the plots
    (`figures.comparison_figures`, with an energy stage also accuracy_synops.png; without matplotlib: a note)
    into `workdir`; returns {"analysis" (the JSON content), "table", "plots": whether the plots were written}.
    `reproduce`: another run's comparison.json on a disjoint seed set; comparison.json then holds
    "reproduction" (`spikejax.compare.reproduce.compare`)."""
    document = json.loads(json.dumps({
        **analyse(result), "config": result["config"], "sweep": result["sweep"], "grid": result["grid"],
        "selection_rule": "highest mean final validation accuracy over the tuning seeds (seed k validated on its "
                          "own fold k of the training split); configurations with a diverged seed (frozen, or a "
                          "non-finite validation result) or dropped by successive halving are never selected; ties "
                          "to the first in grid order; a choice on a grid edge extends that axis outward (see "
                          "selection[label].extended / at_bound); a loss all of whose configurations diverged is "
                          "listed in every_configuration_diverged, not compared",
        "selection": {label: {k: s.get(k) for k in ("row", "validation_mean", "extended", "at_bound",
                                                                  "on_edge")}
                      for label, s in result["selection"].items()},
        "halving": result.get("halving"),
        "candidates": {label: s["candidates"] for label, s in result["selection"].items()},
        "energy": energy(result), "train_seconds": result["train_seconds"], "machine": machine(),
        **smoke_fields(result["sweep"])}))
    if reproduce is not None:
        from spikejax.compare import reproduce as reproduce_lib

        document["reproduction"] = reproduce_lib.compare(document, reproduce_lib.load(reproduce), reproduce)
    atomic_write_json(os.path.join(workdir, "comparison.json"), document)
    lines = [json.dumps(replica_line(stage, record)) + "\n"
             for stage in ("tune", "final", "energy") for record in result.get(stage, [])]
    atomic_write(os.path.join(workdir, "replicas.jsonl"), lambda f: f.writelines(lines))
    text = render(document)
    atomic_write(os.path.join(workdir, "comparison.md"), lambda f: f.write(text))
    plotted = False  # --config.plots=False: no PNGs (experiments.plot draws them later)
    if result["config"].get("plots", True):
        try:
            figures.comparison_figures(workdir, result["final"], smoke=document["smoke"], energy=document["energy"])
            plotted = True
        except MissingDependencyError as error:  # a core install: the report stands without the PNGs
            log(f"plots skipped: {error}")
    return {"analysis": document, "table": table(document), "plots": plotted}
