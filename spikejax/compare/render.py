"""comparison.md from comparison.json's content alone: `render(document) -> str`.

`document` is the parsed JSON (`spikejax.compare.report.write` writes the file, then renders what it wrote),
so nothing in the markdown comes from anywhere else and `render(json.load(open("comparison.json")))` equals
comparison.md (tests/test_comparison_json.py). No jax, no registry: formatting only.
"""
from __future__ import annotations

import json

MEASURES = ("accuracy", "latency_stable", "latency_matched", "latency_95", "decision_time", "decision_accuracy",
            "spikes", "synops_network", "synops_to_decision", "synops_input", "dead_outputs")


def _n(x, digits: int = 4) -> str:
    if x is None:
        return "n/a"
    return f"{x:.2e}" if x != 0 and abs(x) < 10 ** -digits else f"{x:.{digits}f}"


def _g(x) -> str:
    return "n/a" if x is None else f"{x:+.4g}"


def _interval(ci) -> str:
    return "n/a" if ci is None else f"[{ci[0]:.4g}, {ci[1]:.4g}]"


def _distribution(s: dict, digits: int) -> str:
    return f"{s['median']:.{digits}f} [{s['q1']:.{digits}f}, {s['q3']:.{digits}f}]"


def table(document: dict) -> str:
    """Per loss: median [q1, q3] over the seeds of each measure, and the mean accuracy with its bootstrap CI
    (a smoke run: the mean alone)."""
    smoke = document.get("smoke", False)
    lines = ["| loss | selected (tuning validation acc.) | test accuracy: median [IQR] | "
             + ("mean | " if smoke else "mean [bootstrap 95% CI] | ")
             + "latency: stable prediction / at matched accuracy (steps) | decision @0.9 (NLL's readout): steps / "
             "accuracy | spikes/sample | SynOps/sample: network / to decision / input | seeds with dead outputs |",
             "|---|---|---|---|---:|---:|---:|---:|---:|"]
    for label, r in document["losses"].items():
        m = r["measures"]
        ci = "" if smoke else f" {_interval(m['accuracy']['bootstrap_ci'])}"
        lines.append(f"| {label} | {r['selected_description']} ({r['tuning_validation_accuracy']:.4f}) | "
                     f"{_distribution(m['accuracy'], 4)} | {m['accuracy']['mean']:.4f}{ci} | "
                     f"{_distribution(m['latency_stable'], 1)} / "
                     f"{_distribution(m['latency_matched'], 1)} | "
                     f"{_distribution(m['decision_time'], 2)} / {_distribution(m['decision_accuracy'], 4)} | "
                     f"{_distribution(m['spikes'], 0)} | {_distribution(m['synops_network'], 0)} / "
                     f"{_distribution(m['synops_to_decision'], 0)} / {m['synops_input']['median']:.0f} | "
                     f"{len(r['dead_output_seeds'])} of {len(document['seeds'])} |")
    return "\n".join(lines)


def per_seed_table(document: dict) -> str:
    seeds = [str(s) for s in document["seeds"]]
    lines = ["| loss | measure | " + " | ".join(f"seed {s}" for s in seeds) + " |",
             "|---|---|" + "---:|" * len(seeds)]
    for label, r in document["losses"].items():
        for m in MEASURES:
            if m in r["measures"]:
                lines.append(f"| {label} | {m} | " + " | ".join(f"{r['measures'][m]['values'][s]:.5g}"
                                                                for s in seeds) + " |")
    return "\n".join(lines)


def claim_lines(document: dict) -> list[str]:
    losses, out = document["losses"], []
    for h in document["hypotheses"]:
        direction = "higher" if h["direction"] == "positive" else "lower"
        e, w = h["effect"], h["wilcoxon"]
        per_seed = ", ".join(f"{d:+.4g}" for d in h["differences"].values())
        out.append(
            f"- {losses[h['a']]['title']} has {direction} {h['claim']} ({h['measure']}) than "
            f"{losses[h['b']]['title']}: **{h['verdict']}** ({h['test']}: {h['statistic_name']} "
            f"{h['statistic']:+.4g}, p = {_n(h['p'])}, Holm-adjusted {_n(h['p_holm'])}). Differences a - b by "
            f"seed: {per_seed}; mean {_g(e['mean'])} (bootstrap 95% CI {_interval(h['bootstrap_ci'])}), median "
            f"{_g(e['median'])}, d_z {_g(e['d_z'])}, a > b on a fraction {e['superiority']:.2f} of the seeds "
            f"(ties half); Wilcoxon W+ = {w['w_plus']:g}, W- = {w['w_minus']:g} over {w['n_nonzero']} non-zero, "
            f"p = {_n(w['p'])}; paired t p = {_n(h['t']['p'])}.")
    return out or ["No hypothesis: no pair of a spikemax label and another loss was compared."]


def statistics_lines(document: dict) -> list[str]:
    s, n = document["statistics"], len(document["seeds"])
    family = "; ".join(f"{f['claim']}: {f['measure']} ({'higher' if f['direction'] == 'positive' else 'lower'}, "
                       f"{f['test']})" for f in s["family"])
    b = s["bootstrap"]
    return [
        f"Primary statistics are distribution-free. Each claim is one two-sided exact test of the paired "
        f"differences a - b over the {n} seeds (same seed: same initial weights and batches): "
        + "; ".join(f"{k}: {v}" for k, v in s["tests"].items()) + ".",
        f"Ties: {s['tie_rule']}.",
        f"Bootstrap: the {b['method']} method (not BCa), {b['resamples']} resamples of the seeds, seed "
        f"{b['seed']}, {b['level']:.0%} intervals of the mean: {b['draw']}; {b['interval']}.",
        f"The family ({s['family_size']} hypotheses, {s['multiple_comparisons']}): {s['family_pairs']}; claims: "
        f"{family}. It does " + ("" if s["family_spans_datasets"] else "not ") + "span datasets (this run: "
        f"{', '.join(s['datasets'])}). Verdicts at alpha = {s['alpha']}; \"not significant\" means the data "
        "cannot tell.",
        f"With {n} seeds the smallest p an exact test can give is 2/2^{n} = {_n(s['smallest_p'])} (larger when "
        f"differences are zero), so the smallest Holm-adjusted p is {_n(s['smallest_p_holm'])}"
        + (": nothing in this family can be significant" if s["smallest_p_holm"] >= s["alpha"] else "")
        + f". A family of {s['family_size']} needs at least {s['seeds_needed']} seeds. "
        f"{s['t_based'][0].upper() + s['t_based'][1:]} (below).",
    ]


def differences_table(document: dict) -> str:
    lines = ["| difference | measure | median [IQR] | mean [bootstrap 95% CI] | sign-flip p | Wilcoxon p | "
             "t-based 95% CI | paired t p |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for pair, entry in document["differences"].items():
        for m, d in entry["measures"].items():
            lines.append(f"| {pair} | {m} | {d['median']:+.4g} [{d['q1']:+.4g}, {d['q3']:+.4g}] | {d['mean']:+.4g} "
                         f"{_interval(d['bootstrap_ci'])} | {_n(d['sign_flip_p'])} | {_n(d['wilcoxon_p'])} | "
                         f"{_interval(d['ci95'])} | {_n(d['t_p'])} |")
    return "\n".join(lines)


def diverged_lines(document: dict) -> list[str]:
    """One line per diverged configuration, its seeds and steps; the losses with nothing selected."""
    groups: dict[str, list[dict]] = {}
    for d in document["diverged"]:
        groups.setdefault(json.dumps([d["stage"], d["config"]], sort_keys=True), []).append(d)
    lines = []
    for items in groups.values():
        first = items[0]
        config = " ".join(f"{'lr' if k == 'learning_rate' else k}={v:g}" if isinstance(v, (int, float)) else
                          f"{k}={v}" for k, v in first["config"].items() if k not in ("label", "loss"))
        at = ", ".join(f"seed {d['seed']} at step {d['step']}" for d in items)
        kept = "never selected" if first["stage"] == "tune" else "its last finite state is tested"
        lines.append(f"- {first['stage']}: {first['label']} {config}: diverged ({at}); {kept}")
    for label in document["every_configuration_diverged"]:
        lines.append(f"- **{label}: every configuration diverged in tuning**; nothing was selected, so it has no "
                     "final stage and no row in the table")
    return lines or ["None: every replica stayed finite."]


def reproduction_lines(document: dict) -> list[str]:
    """The "Reproduction on a second seed set" section, when comparison.json holds one (--reproduce)."""
    if "reproduction" not in document:
        return []
    from spikejax.compare.reproduce import lines

    return ["## Reproduction on a second seed set", "", *lines(document["reproduction"]), ""]


def selection_text(document: dict) -> str:
    """The successive halving and the edge extensions, in words (comparison.json's "halving" and "selection")."""
    halving, parts = document.get("halving"), []
    if halving:
        dropped = {label: len(entry["dropped"]) for label, entry in halving["labels"].items()}
        parts.append(f"Successive halving: at step(s) {sorted(set(halving['step'].values()))} "
                     f"({halving['fraction']:g} of the steps) each loss kept its better half and dropped "
                     + ", ".join(f"{n} of {label}" for label, n in dropped.items()) + ".")
    for label, entry in document.get("selection", {}).items():
        for move in entry.get("extended") or []:
            parts.append(f"{label}: {move['axis']} extended {move['direction']} from {move['from']:g} to "
                         f"{move['to']:g} (round {move['round']}).")
        for move in entry.get("at_bound") or []:
            edge = "lower" if move["direction"] == "down" else "upper"
            parts.append(f"{label}: {move['axis']} = {move['at']:g} lies on the grid's {edge} edge and could not be "
                         "extended (a bound).")
        if entry.get("on_edge"):
            parts.append(f"{label}: the choice still lies on a grid edge of {', '.join(entry['on_edge'])} (extension "
                         "off or out of rounds): the optimum may lie beyond the grid.")
    return " ".join(parts) or "No choice lay on a grid edge; nothing was halved."


def smoke_lines(document: dict) -> list[str]:
    """A smoke run's banner (comparison.json's "smoke"), else nothing."""
    if not document.get("smoke"):
        return []
    return [f"**Smoke run, not a result.** This is {document['smoke_note']}.", ""]


def inference_lines(document: dict) -> list[str]:
    """The claims, the reproduction and the paired differences: tests, p-values and intervals, which a
    smoke run does not show."""
    if document.get("smoke"):
        compared = ", ".join(f"{label} ({entry['title']})" for label, entry in document["losses"].items())
        return ["## The paper's claims", "",
                f"Not tested: a smoke run has too few seeds and epochs for confidence intervals, tests or "
                f"verdicts. Run the comparison without --quick for them. Losses run: {compared}.", ""]
    return ["## The paper's claims", "", *statistics_lines(document), "", *claim_lines(document), "",
            *reproduction_lines(document)]
def energy_lines(document: dict) -> list[str]:
    """The "Accuracy at matched energy" section, when comparison.json holds an energy stage."""
    block = document.get("energy")
    if not block:
        return []
    lines = ["| loss | rate penalty w | test accuracy: median [IQR] | mean | hidden-layer SynOps/sample: median "
             "[IQR] | mean | diverged seeds |", "|---|---:|---:|---:|---:|---:|---:|"]
    for label, points in block["losses"].items():
        for p in points:
            a, e = p["accuracy"], p["synops_network"]
            lines.append(f"| {label} | {p['rate_penalty']:g} | {_distribution(a, 4)} | {a['mean']:.4f} | "
                         f"{_distribution(e, 0)} | {e['mean']:.0f} | {len(p['diverged_seeds'])} of {len(p['seeds'])} |")
    return ["## Accuracy at matched energy", "",
            f"Each loss's selected configuration trained again with the same seeds at each weight w of the "
            f"hidden-layer spike-rate penalty ({block['penalty']}; target rate {block['target_rate']:g} spikes per "
            "step), so that losses compare at equal hidden-layer SynOps, not only at their own operating points "
            "(figure: accuracy_synops.png). Descriptive: these runs are not part of the family of hypotheses.", "",
            *lines, ""]


def render(document: dict) -> str:
    """comparison.md from comparison.json's parsed content; a smoke run (its "smoke") without confidence
    intervals, tests or verdicts."""
    config, sweep, host, seconds = document["config"], document["sweep"], document["machine"], document["train_seconds"]
    data, model = config["data"], config["model"]
    smoke = document.get("smoke", False)
    differences = [] if smoke else ["## Paired differences (per seed, a - b; descriptive, not part of the family)",
                                    "", differences_table(document), ""]
    return "\n".join([
        f"# Loss comparison on {config['dataset']}" + (": smoke run (--quick), not a result" if smoke else ""), "",
        *smoke_lines(document),
        f"{len(document['seeds'])} seeds per loss ({document['seeds']}), {config['epochs']} epochs, batch "
        f"{config['batch_size']}, T = {data['time_bins']} steps of {data['bin_width_us']} us, model "
        f"{model['name']} {tuple(model['hidden'])}, optimizer {config['optimizer']['name']}.", "",
        f"Selection: {len(document['grid'])} configurations (every loss x learning rate x that loss's parameters) "
        f"were trained with {sweep['tune_seeds']} tuning seed(s) each, seed k holding out its own validation fold "
        f"k ({data['validation_fraction']:.0%} of the training split, stratified, disjoint between seeds); per "
        "loss, the one with the best mean final validation accuracy over the seeds was kept. "
        f"{selection_text(document)} The test split was used once, for the kept configurations, with fresh "
        "seeds (validated on fold 0). "
        "Seed s gives every loss the same initial weights and the same batches (its data order); other seeds "
        "other weights and orders. Each cell: median [first quartile, third quartile] over the seeds; per-seed "
        "values below. Latency at matched accuracy: the first step at which accuracy over time reaches "
        f"{document['matched_accuracy_level']:.4f} (95% of the lowest final accuracy of the non-diverged final "
        "replicas). Dead outputs: output neurons that never fire on the test split.", "",
        table(document), "",
        "## Diverged replicas", "",
        "A replica whose loss, gradients or parameters became non-finite was frozen at that step (its last finite "
        "state kept); a configuration with a diverged seed, or a non-finite validation result, is never "
        "selected.", "", *diverged_lines(document), "",
        *inference_lines(document),
        *energy_lines(document),
        "## Per-seed values", "", per_seed_table(document), "",
        *differences,
        f"Training time (from the checkpoints): tuning {seconds['tune']:.0f} s, final {seconds['final']:.0f} s"
        + (f", energy {seconds['energy']:.0f} s" if "energy" in seconds else "") + " on "
        f"{host['devices']} {host['device']} device(s) ({host['platform']}, {host['cpu_count']} CPU cores, jax "
        f"{host['jax']}).", ""])
