"""comparison.json is the one source of the report: every verdict, p-value, interval and effect size is
recomputed here from the file alone with independent code (scipy's permutation_test and wilcoxon, numpy's
bootstrap draw, a vectorised Holm), and comparison.md is render(comparison.json)."""
import json
import os

import numpy as np
import pytest
from scipy import stats as scipy_stats

from spikejax.compare import render as render_lib
from spikejax.compare import report

N_TEST, SEEDS = 360, list(range(10))
LABELS = ("mse", "softmax", "nll", "nll_window")


def _summary(correct, first_step, decision_time, hidden_spikes, dead=0):
    accuracy = correct / N_TEST
    reached = 0 if first_step is None else first_step  # accuracy over time: a ramp to the final value
    curve = [accuracy * min(1.0, (t + 1) / (reached + 1)) for t in range(30)]
    return {"accuracy": accuracy, "time_bins": 30, "accuracy_over_time": curve,
            "latency_steps": {"accuracy_95pct_of_final": first_step,
                              "decision": {"0.9": {"mean_time": decision_time, "accuracy": accuracy}},
                              "stable_prediction": {"mean": decision_time + 1.0, "mean_correct": decision_time}},
            "spikes_per_sample": {"total": hidden_spikes + 30.0},
            "synops_per_sample": {"input": 1_083_277.0, "total": 1_083_277.0 + hidden_spikes * 10},
            "energy_to_decision": {"synops_per_sample": {"network": hidden_spikes * 5}},
            "dead_outputs": {"count": dead, "neurons": list(range(dead))}}


def _result():
    """Ten seeds of four losses. Accuracies are whole test samples (ties and zero differences on purpose:
    nll and nll_window share five seeds' counts, mse ties nll on one seed); latencies are whole steps;
    one final replica of softmax diverged at step 40."""
    rng = np.random.default_rng(5)
    correct = {"mse": [350, 300, 344, 290, 352, 333, 310, 349, 348, 320],
               "softmax": [300, 310, 305, 280, 335, 290, 300, 320, 310, 330],
               "nll": [345, 342, 344, 348, 350, 346, 344, 347, 349, 343],
               "nll_window": [345, 340, 344, 349, 350, 341, 344, 347, 345, 346]}
    first = {"mse": [7, 6, 9, None, 8, 7, 6, 5, 8, 6], "softmax": [9, 10, 8, 9, 11, 10, 9, 8, 12, 9],
             "nll": [5, 6, 5, 4, 6, 5, 5, 6, 4, 5], "nll_window": [5, 5, 6, 4, 5, 6, 5, 5, 4, 6]}
    final = []
    for label in LABELS:
        for i, seed in enumerate(SEEDS):
            spikes = float(rng.normal({"mse": 1080, "softmax": 1070}.get(label, 1500), 60))
            final.append({"row": {"label": label, "loss": label.split("_")[0], "learning_rate": 1e-3, "seed": seed},
                          "frozen_at": 40 if (label, seed) == ("softmax", 3) else None,
                          "validation": {"accuracy": 0.8, "loss": 1.0},
                          "test": _summary(correct[label][i], first[label][i], float(rng.uniform(2, 15)), spikes,
                                           dead=2 if (label, seed) == ("mse", 3) else 0),
                          "train_seconds": 1.0})
    config = {"dataset": "digits_events", "epochs": 8, "batch_size": 64, "seed": 0, "optimizer": {"name": "adamw"},
              "data": {"time_bins": 30, "bin_width_us": 10000, "validation_fraction": 0.1},
              "model": {"name": "mlp", "hidden": [256]}}
    selection = {label: {"row": {"label": label, "loss": label.split("_")[0], "learning_rate": 1e-3},
                         "validation_mean": 0.8, "candidates": []} for label in LABELS}
    return {"config": config, "sweep": {"losses": list(LABELS), "tune_seeds": 1}, "grid": [], "tune": [],
            "final": final, "train_seconds": {"tune": 1.0, "final": 2.0}, "selection": selection}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    folder = tmp_path_factory.mktemp("comparison")
    report.write(_result(), str(folder))
    return folder, json.load(open(folder / "comparison.json"))


def test_the_markdown_is_render_of_the_json(written):
    folder, document = written
    text = (folder / "comparison.md").read_text()
    assert text == render_lib.render(document)
    assert "**not significant**" in text and "2/2^10" in text and "It does not span datasets" in text
    assert "- final: softmax lr=0.001: diverged (seed 3 at step 40); its last finite state is tested" in text
    assert document["losses"]["mse"]["dead_output_seeds"] == [3] and "| 1 of 10 |" in text


def test_latency_at_matched_accuracy_is_read_from_each_curve_at_one_level(written):
    """The level is 95% of the lowest final accuracy of the final replicas that did not diverge (softmax seed 3
    did); each replica's latency_matched is the first step its curve reaches it, checked by a plain loop."""
    _, document = written
    result = _result()
    finals = [r["test"]["accuracy"] for r in result["final"] if r["frozen_at"] is None]
    level = 0.95 * min(finals)
    assert document["matched_accuracy_level"] == level
    for r in result["final"]:
        curve = r["test"]["accuracy_over_time"]
        expected = next((t for t, a in enumerate(curve) if a >= level), 30)
        got = document["losses"][r["row"]["label"]]["measures"]["latency_matched"]["values"][str(r["row"]["seed"])]
        assert got == expected


def _snap(a, b):
    scale = max(np.max(np.abs(a)), np.max(np.abs(b)))
    return np.round(a - b, 12 - int(np.floor(np.log10(scale)))) if scale else a - b


def _holm(p):
    p = np.asarray(p, float)
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate((len(p) - np.arange(len(p))) * p[order]))
    out = np.empty_like(p)
    out[order] = adjusted
    return out


def test_every_verdict_and_p_value_recomputes_from_the_file_alone(written):
    _, document = written
    s, seeds = document["statistics"], [str(x) for x in document["seeds"]]
    family = [(f["measure"], f["direction"], f["test"]) for f in s["family"]]
    spikemax = [k for k, v in document["losses"].items() if v["loss"] == "nll"]
    others = [k for k in document["losses"] if k not in spikemax]
    expected = [(a, b, *f) for a in spikemax for b in others for f in family]
    hypotheses = document["hypotheses"]
    assert [(h["a"], h["b"], h["measure"], h["direction"], h["test"]) for h in hypotheses] == expected
    assert s["family_size"] == len(hypotheses) == 12 and s["family_spans_datasets"] is False
    assert s["smallest_p"] == 2 / 2 ** 10 and s["seeds_needed"] == 9
    raw = []
    for h in hypotheses:
        a = np.array([document["losses"][h["a"]]["measures"][h["measure"]]["values"][k] for k in seeds])
        b = np.array([document["losses"][h["b"]]["measures"][h["measure"]]["values"][k] for k in seeds])
        d = _snap(a, b)
        assert [h["differences"][k] for k in seeds] == d.tolist()
        flip = scipy_stats.permutation_test((d,), np.sum, permutation_type="samples", n_resamples=np.inf,
                                            alternative="two-sided").pvalue
        assert h["sign_flip_p"] == pytest.approx(min(1.0, flip), abs=1e-12)
        nonzero = d[d != 0]
        signed_rank = 1.0 if nonzero.size == 0 else scipy_stats.wilcoxon(
            nonzero, method=scipy_stats.PermutationMethod(n_resamples=np.inf)).pvalue
        assert h["wilcoxon"]["p"] == pytest.approx(signed_rank, abs=1e-12)
        assert h["p"] == (h["sign_flip_p"] if h["test"] == "sign_flip" else h["wilcoxon"]["p"])
        raw.append(h["p"])
        rng = np.random.default_rng(s["bootstrap"]["seed"])
        means = d[rng.integers(0, d.size, (s["bootstrap"]["resamples"], d.size))].mean(axis=1)
        assert h["bootstrap_ci"] == pytest.approx(np.quantile(means, [0.025, 0.975]).tolist(), rel=1e-12, abs=1e-12)
        assert h["effect"]["mean"] == pytest.approx(d.mean()) and h["effect"]["median"] == pytest.approx(np.median(d))
        assert h["effect"]["superiority"] == pytest.approx(np.mean(np.sign(d) / 2 + 0.5))
        assert h["t"]["p"] == pytest.approx(scipy_stats.ttest_rel(a, b).pvalue)
    for h, adjusted in zip(hypotheses, _holm(raw)):
        assert h["p_holm"] == pytest.approx(adjusted, abs=1e-12)
        observed = np.sign(sum(h["differences"].values()))   # the sign-flip test's direction: sum of d
        claimed = 1 if h["direction"] == "positive" else -1
        significant = adjusted < s["alpha"] and observed != 0
        assert h["verdict"] == ("not significant" if not significant else "supported" if observed == claimed
                                else "significant in the opposite direction")
    verdicts = {(h["a"], h["b"], h["measure"]): h["verdict"] for h in hypotheses}
    # 10/10 seeds ahead: p = 2/2^10, at most 12 x that after Holm
    assert verdicts[("nll", "softmax", "accuracy")] == "supported"
    assert verdicts[("nll", "softmax", "synops_network")] == "significant in the opposite direction"
    assert verdicts[("nll", "mse", "accuracy")] == "not significant"  # differences -5, 42, 0, 58, -2, ...


def test_distributions_are_the_per_seed_values_keyed_by_seed(written):
    _, document = written
    for label, entry in document["losses"].items():
        for name, m in entry["measures"].items():
            x = np.array(list(m["values"].values()))
            assert list(m["values"]) == [str(s) for s in SEEDS]
            q1, median, q3 = np.percentile(x, [25, 50, 75])
            assert (m["median"], m["q1"], m["q3"]) == pytest.approx((median, q1, q3)), (label, name)
    assert document["losses"]["mse"]["measures"]["latency_95"]["values"]["3"] == 30.0  # never reached: T
    assert document["losses"]["softmax"]["diverged_seeds"] == [3]


def test_the_family_is_declared_in_one_place(monkeypatch):
    """Switching the latency claim's measure is one entry of report.FAMILY."""
    family = (report.FAMILY[0], report.Hypothesis("latency", measure="decision_time", direction="negative"),
              report.FAMILY[2])
    monkeypatch.setattr(report, "FAMILY", family)
    analysis = report.analyse(_result())
    assert {h["measure"] for h in analysis["hypotheses"]} == {"accuracy", "decision_time", "synops_network"}
    assert [f["measure"] for f in analysis["statistics"]["family"]] == ["accuracy", "decision_time", "synops_network"]


def test_replicas_jsonl_records_carry_their_loss_parameters_and_seeds(tmp_path):
    result = _result()
    result["tune"] = [{"row": {"label": "mse", "loss": "mse", "learning_rate": 3e-3, "true_rate": 0.8, "seed": 1000},
                       "frozen_at": None, "validation": {"accuracy": 0.7, "loss": 1.0}, "validation_curve": [],
                       "test": None, "train_seconds": 1.0}]
    report.write(result, str(tmp_path))
    lines = [json.loads(line) for line in open(tmp_path / "replicas.jsonl")]
    assert len(lines) == 1 + len(LABELS) * len(SEEDS)
    assert {k: lines[0][k] for k in ("stage", "label", "loss", "parameters", "learning_rate", "seeds")} == {
        "stage": "tune", "label": "mse", "loss": "mse", "parameters": {"true_rate": 0.8}, "learning_rate": 3e-3,
        "seeds": {"init": 1000, "data_order": 1000}}
    assert {(line["label"], line["loss"]) for line in lines[1:]} == {(label, label.split("_")[0]) for label in LABELS}


def test_a_smoke_run_is_recorded_and_its_markdown_shows_no_intervals_tests_or_verdicts(tmp_path, written):
    """The --quick setting (sweep.smoke): comparison.json says so; comparison.md, still render(comparison.json),
    shows the distributions and per-seed values but no bootstrap CI, p-value, Holm adjustment or verdict."""
    _, full = written
    assert full["smoke"] is False and "smoke_note" not in full
    result = _result()
    result["sweep"]["smoke"] = True
    report.write(result, str(tmp_path))
    document = json.load(open(tmp_path / "comparison.json"))
    text = (tmp_path / "comparison.md").read_text()
    assert document["smoke"] is True and "--quick" in document["smoke_note"]
    assert text == render_lib.render(document)
    assert text.startswith("# Loss comparison on digits_events: smoke run (--quick), not a result")
    assert "**Smoke run, not a result.**" in text and "## Per-seed values" in text
    assert "Losses run: " + ", ".join(f"{k} ({v['title']})" for k, v in document["losses"].items()) in text
    for inference in ("bootstrap", "CI", "p =", "Holm", "supported", "not significant", "Wilcoxon",
                      "Paired differences"):
        assert inference not in text, inference
    header = render_lib.table(document).splitlines()[0]
    assert "| mean |" in header and "CI" not in header
    assert "bootstrap 95% CI" in render_lib.table(full)


def test_the_plot_command_redraws_a_finished_comparison_from_its_files(tmp_path, monkeypatch):
    """replicas.jsonl's final replicas, with their validation curves, give the band plots and the training
    curves: per loss, the mean over its ten seeds of the validation accuracy after each epoch (recomputed
    here from the records), with a ± 1 std band; a smoke run says so in the titles."""
    from spikejax import plots, replot

    result = _result()
    result["sweep"]["smoke"] = True
    for r in result["final"]:
        r["validation_curve"] = [{"step": 10 * e, "epoch": e, "accuracy": r["test"]["accuracy"] * e / 3,
                                  "loss": 3.0 / e} for e in (1, 2, 3)]
    report.write(result, str(tmp_path))
    drawn = {}

    def keeping(name):
        draw = getattr(plots, name)

        def keep(*args, **kwargs):
            drawn[name] = draw(*args, **kwargs)
            return drawn[name]
        return keep

    for name in ("training_curves", "bands_over_time"):
        monkeypatch.setattr(plots, name, keeping(name))
    written = replot.plot_workdir(str(tmp_path), str(tmp_path / "figures"))
    assert [os.path.basename(p) for p in written] == ["accuracy_over_time.png", "latency_accuracy.png",
                                                      "training_curves.png"]
    assert all(open(p, "rb").read(8) == b"\x89PNG\r\n\x1a\n" for p in written)
    curves = drawn["training_curves"]
    assert "smoke run" in curves.get_suptitle() and "smoke run" in drawn["bands_over_time"].axes[0].get_title()
    accuracy_ax = curves.axes[1]
    for label in LABELS:
        finals = np.array([r["test"]["accuracy"] for r in result["final"] if r["row"]["label"] == label])
        name = f"{label}: validation accuracy (10 seeds)"
        line = next(ln for ln in accuracy_ax.get_lines() if ln.get_label() == name)
        np.testing.assert_array_equal(line.get_xdata(), [10, 20, 30])
        np.testing.assert_allclose(line.get_ydata(), [finals.mean() * e / 3 for e in (1, 2, 3)], rtol=1e-12)


def test_the_energy_stage_is_reported_per_label_and_weight_apart_from_the_family(tmp_path):
    """Energy records (each final configuration again at rate penalty weights 0.5 and 5, same seeds): per
    label one point per weight, ascending, the final stage's at w = 0; each point's per-seed accuracy and
    hidden-layer SynOps (the summary's total minus input: 10 per hidden spike here) and their quartiles
    recomputed with numpy; the family of hypotheses is the one without them; the table, the figure and
    replicas.jsonl carry them. With fewer energy seeds the w = 0 point keeps those seeds (paired)."""
    result = _result()
    result["config"]["loss"] = {"rate_penalty": 0.0, "target_rate": 0.02}
    finals = list(result["final"])
    for weight in (0.5, 5.0):
        for i, record in enumerate(finals):
            correct, hidden = 300 - int(10 * weight) - i, 1000.0 / (1 + weight) + 7 * i
            result.setdefault("energy", []).append(
                {**record, "row": {**record["row"], "rate_penalty": weight}, "frozen_at": None,
                 "test": _summary(correct, 5, 6.0, hidden)})
    report.write(result, str(tmp_path))
    document = json.load(open(tmp_path / "comparison.json"))
    block = document["energy"]
    assert list(block["losses"]) == list(LABELS) and block["target_rate"] == 0.02
    for label, points in block["losses"].items():
        assert [p["rate_penalty"] for p in points] == [0.0, 0.5, 5.0]
        assert all(p["seeds"] == SEEDS for p in points)
        for p in points:
            records = [r for r in result["final" if p["rate_penalty"] == 0 else "energy"]
                       if r["row"]["label"] == label and r["row"].get("rate_penalty", 0.0) == p["rate_penalty"]]
            accuracy = np.array([r["test"]["accuracy"] for r in records])
            synops = np.array([r["test"]["synops_per_sample"]["total"] - 1_083_277.0 for r in records])
            for name, x in (("accuracy", accuracy), ("synops_network", synops)):
                assert list(p[name]["values"].values()) == pytest.approx(x.tolist(), rel=1e-12)
                q1, median, q3 = np.percentile(x, [25, 50, 75])
                assert (p[name]["q1"], p[name]["median"], p[name]["q3"]) == pytest.approx((q1, median, q3))
        assert points[0]["diverged_seeds"] == ([3] if label == "softmax" else [])
    without = report.analyse(_result())
    assert document["hypotheses"] == json.loads(json.dumps(without["hypotheses"]))  # not in the family
    text = (tmp_path / "comparison.md").read_text()
    assert text == render_lib.render(document) and "## Accuracy at matched energy" in text
    assert "| nll | 5 | " in text and "| softmax | 0 | " in text and "| 1 of 10 |" in text
    assert os.path.getsize(tmp_path / "accuracy_synops.png") > 1000
    lines = [json.loads(line) for line in open(tmp_path / "replicas.jsonl")]
    energy = [line for line in lines if line["stage"] == "energy"]
    assert len(energy) == 2 * len(finals) and {line["rate_penalty"] for line in energy} == {0.5, 5.0}
    assert all("rate_penalty" not in line["parameters"] for line in energy)
    # an energy stage on the first 5 seeds (--sweep.energy_seeds=5): the final stage's point on those seeds only
    result["energy"] = [r for r in result["energy"] if r["row"]["seed"] < 5]
    few = report.energy(result)["losses"]["nll"]
    assert [p["seeds"] for p in few] == [SEEDS[:5]] * 3
    assert list(few[0]["accuracy"]["values"].values()) == [r["test"]["accuracy"] for r in finals
                                                          if r["row"]["label"] == "nll" and r["row"]["seed"] < 5]
