"""The loss-comparison sweep: its grid, the selection on validation data, a diverging replica frozen, the
replicas' evaluation against single-model evaluation, the report's statistics, and a killed sweep resumed
to the same result."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest
from flax import nnx

from configs import default
from configs import sweep as sweep_configs
from spikejax import build, evaluate, parallel
from spikejax.compare import replicas, sweep
from spikejax.compare import report as comparison
from spikejax.errors import ConfigError
from tests.test_train import REPO, _finish, _start, small_config


def test_grid_covers_every_loss_parameter_and_keeps_mse_targets_ordered():
    s = sweep_configs.get_config()
    s.learning_rates = (1e-3, 1e-2)
    s.grid.mse.true_rate, s.grid.mse.false_rate = (0.05, 0.5), (0.02, 0.1)
    grid = sweep.configurations(s, default.get_config())
    mse = [(g["true_rate"], g["false_rate"]) for g in grid if g["label"] == "mse"]
    assert sorted(set(mse)) == [(0.05, 0.02), (0.5, 0.02), (0.5, 0.1)]  # (0.05, 0.1) has false >= true
    assert len(mse) == 3 * 2
    assert {g["temperature"] for g in grid if g["label"] == "softmax"} == set(s.grid.softmax.temperature)
    assert {g["window"] for g in grid if g["label"] == "nll_window"} == set(s.grid.nll_window.window)
    assert all(g["loss"] == "nll" and "window" not in g for g in grid if g["label"] == "nll")
    assert len(grid) == 6 + 2 * (len(s.grid.softmax.temperature) + len(s.grid.nll.min_count)
                                 + len(s.grid.nll_window.window))
    s.grid.mse.true_rate = (0.01,)
    with pytest.raises(ConfigError, match="grid.mse: no combination is allowed: loss 'mse': false_rate"):
        sweep.configurations(s, default.get_config())
    s.grid.mse.true_rate = (0.5,)
    s.grid.nll_window.window = (5, 31)
    with pytest.raises(ConfigError, match=r"grid.nll_window.window = \(5, 31\): each must be <= data.time_bins"):
        sweep.configurations(s, default.get_config())
    s.grid.softmax.temperature = (0.0,)
    with pytest.raises(ConfigError, match=r"grid.softmax.temperature = \[0.0\]: must be a non-empty tuple"):
        sweep.validate(s)
    rows = sweep.with_seeds(grid[:2], [7, 8])
    assert [(r["seed"], r["learning_rate"]) for r in rows] == [(7, 1e-3), (8, 1e-3), (7, grid[1]["learning_rate"]),
                                                               (8, grid[1]["learning_rate"])]


@pytest.mark.parametrize("field,value,message", [
    ("losses", ("mse", "nll_windowed"), "distinct names"), ("seeds", 0, "integer >= 1"),
    ("learning_rates", (), "non-empty"), ("grid.nll_window.window", (0,), "integer >= 1"),
    ("grid.nll.temperature", (1.0,), "loss 'nll' has no parameter 'temperature'")])
def test_sweep_fields_are_checked(field, value, message):
    s = sweep_configs.get_config()
    *path, last = field.split(".")
    node = s
    for part in path:
        node = node[part]
    if last in node:
        node[last] = value
    else:
        node.unlock()[last] = value
    with pytest.raises(ConfigError, match=message):
        sweep.validate(s)
    with pytest.raises(ValueError, match="quick"):
        sweep_configs.get_config("fast")


def _record(label, lr, seed, accuracy, frozen_at=None):
    return {"row": {"label": label, "loss": label, "learning_rate": lr, "seed": seed}, "frozen_at": frozen_at,
            "validation": {"accuracy": accuracy}}


def test_selection_uses_mean_validation_accuracy_skips_diverged_configs_and_breaks_ties_in_grid_order():
    records = [_record("mse", 1e-3, 0, 0.50), _record("mse", 1e-3, 1, 0.70),   # mean 0.60
               _record("mse", 1e-2, 0, 0.90), _record("mse", 1e-2, 1, 0.20),   # mean 0.55 (best single seed)
               _record("nll", 1e-3, 0, 0.80), _record("nll", 1e-3, 1, 0.80),   # mean 0.80, first
               _record("nll", 1e-2, 0, 0.90), _record("nll", 1e-2, 1, 0.70),   # mean 0.80, later
               _record("nll", 3e-2, 0, 0.99), _record("nll", 3e-2, 1, 0.99, frozen_at=5)]  # diverged
    chosen = sweep.select(records)
    assert chosen["mse"]["row"]["learning_rate"] == 1e-3 and chosen["mse"]["validation_mean"] == pytest.approx(0.6)
    assert chosen["nll"]["row"]["learning_rate"] == 1e-3 and "seed" not in chosen["nll"]["row"]
    assert [c["diverged"] for c in chosen["nll"]["candidates"]] == [False, False, True]


def test_a_non_finite_validation_result_is_never_selected():
    """A configuration whose validation loss or accuracy is NaN or infinite (not frozen: a NaN network can
    pass the training step's checks) counts as diverged, even first in grid order or with the best mean."""
    records = [_record("mse", 1e-3, 0, float("nan")), _record("mse", 1e-2, 0, 0.40),
               _record("nll", 1e-3, 0, 0.95), _record("nll", 1e-2, 0, 0.60)]
    records[2]["validation"]["loss"] = float("inf")
    chosen = sweep.select(records)
    assert chosen["mse"]["row"]["learning_rate"] == 1e-2 and chosen["nll"]["row"]["learning_rate"] == 1e-2
    assert [c["diverged"] for c in chosen["nll"]["candidates"]] == [True, False]
    assert chosen["nll"]["candidates"][0]["diverged_at"] == {"0": None}
    only = sweep.select(records[:1])
    assert only["mse"]["row"] is None and only["mse"]["validation_mean"] is None


def test_a_diverging_replica_is_frozen_and_the_sweep_goes_on(digits_data_dir, tmp_path):
    """A learning rate of 1e38 blows up its replica within a few steps; the sweep finishes, its checkpoints
    hold only finite values, and the record names the step."""
    config = small_config(digits_data_dir, max_steps=6)
    rows = [{"label": "mse", "loss": "mse", "learning_rate": 1e-3, "seed": 0, "true_rate": 0.3},
            {"label": "nll", "loss": "nll", "learning_rate": 1e38, "seed": 0}]
    records = sweep.run_program(config, rows, str(tmp_path / "program"), test=True)
    assert records[0]["frozen_at"] is None and records[1]["frozen_at"] is not None
    assert [r["test"]["loss"] for r in records] == ["mse(true_rate=0.3)", "nll"]  # each its own loss
    assert 0 <= records[1]["frozen_at"] < 6
    assert [c["step"] for c in records[0]["validation_curve"]] == [6]
    assert np.isfinite(records[1]["validation"]["loss"])
    for record in records:  # the diagnostics of the last validation, per replica
        assert set(evaluate.DIAGNOSTICS) <= set(record["validation"]), record["validation"]
        dead = record["validation"]["dead_outputs"]
        assert dead["count"] == len(dead["neurons"]) and len(record["validation"]["per_class_recall"]) == 10
    assert json.load(open(tmp_path / "program" / "result.json"))["records"] == records
    # the rerun reads the finished program; a different grid in the same folder is refused
    assert sweep.run_program(config, rows, str(tmp_path / "program"), test=True) == records
    with pytest.raises(Exception, match="other replicas"):
        sweep.run_program(config, rows[:1], str(tmp_path / "program"), test=True)


def test_replica_evaluation_equals_single_model_evaluation(digits_data_dir):
    """Three replicas (two seeds, three losses) evaluated in one vmapped program against each model
    evaluated on its own by evaluate.evaluate_split."""
    from spikejax import data

    config = small_config(digits_data_dir, **{"loss.softmax.temperature": 2.0})
    rows = [dict(seed=0, loss="nll"), dict(seed=1, loss="softmax", temperature=2.0),
            dict(seed=0, loss="mse", true_rate=0.3)]
    selection, hyper = replicas.hyperparameters(rows, config)
    mesh = parallel.data_mesh()
    split = data.load("digits_events", "test", data_dir=digits_data_dir)
    graphdef, state = replicas.init_state(config, hyper, build.optimizer(config, 10), mesh)
    model = build.model(config)
    fn = replicas.parallel_eval_step(mesh, graphdef=graphdef, fan_out=model.fan_out,
                                     frame_shape=build.packed_frame_shape(split), selection=selection)
    totals = evaluate.sum_over_split(fn, split, config.eval_batch_size, mesh=mesh, args=(state["params"],),
                                     extra=(parallel.replicate(hyper, mesh),))
    mine = replicas.summaries(totals, replicas.report_facts(config, rows), len(rows))
    for r, row in enumerate(rows):
        single = small_config(digits_data_dir, seed=row["seed"], **{"loss.name": row["loss"], **{
            f"loss.{row['loss']}.{k}": v for k, v in row.items() if k not in ("seed", "loss")}})
        single_model = build.model(single)
        _, params = nnx.split(single_model)
        theirs = evaluate.evaluate_split(parallel.replicate(params, mesh), split, mesh=mesh, graphdef=graphdef,
                                         model=single_model, loss_fn=build.loss(single),
                                         readout_fn=build.readout(single), eval_batch_size=single.eval_batch_size,
                                         facts=build.report_facts(single))
        assert mine[r]["loss"] == theirs["loss"]  # its own loss and parameters, not the config's loss
        assert abs(mine[r]["accuracy"] - theirs["accuracy"]) <= 1 / 360  # one flipped spike at most
        assert mine[r]["mean_loss"] == pytest.approx(theirs["mean_loss"], rel=1e-3)
        assert mine[r]["spikes_per_sample"]["total"] == pytest.approx(theirs["spikes_per_sample"]["total"], rel=1e-3)
        # the new measures flow through the replicas' sums (equal up to a flipped spike)
        assert mine[r]["dead_outputs"] == theirs["dead_outputs"]
        assert mine[r]["per_class_recall"] == pytest.approx(theirs["per_class_recall"], abs=1 / 30)
        assert mine[r]["firing_rate"] == pytest.approx(theirs["firing_rate"], rel=1e-3)
        for key in ("mean", "mean_correct"):
            assert (mine[r]["latency_steps"]["stable_prediction"][key]
                    == pytest.approx(theirs["latency_steps"]["stable_prediction"][key], abs=0.1))
        assert (mine[r]["energy_to_decision"]["synops_per_sample"]["network"]
                == pytest.approx(theirs["energy_to_decision"]["synops_per_sample"]["network"], rel=1e-2))


def _test_summary(accuracy, spikes, first_step, decision_time):
    """A test summary whose stable-prediction latency equals the confidence decision time (for the hand count)."""
    return {"accuracy": accuracy, "time_bins": 30, "accuracy_over_time": [accuracy] * 30,
            "latency_steps": {"accuracy_95pct_of_final": first_step,
                              "decision": {"0.9": {"mean_time": decision_time, "accuracy": accuracy}},
                              "stable_prediction": {"mean": decision_time, "mean_correct": decision_time}},
            "spikes_per_sample": {"total": spikes},
            "synops_per_sample": {"input": 1000.0, "total": 1000.0 + spikes * 10},
            "energy_to_decision": {"synops_per_sample": {"network": spikes * 5}},
            "dead_outputs": {"count": 0, "neurons": []}}


def test_report_statistics_by_hand(tmp_path):
    """Three seeds: nll beats mse on accuracy by 0.10, 0.12, 0.14 (mean 0.12; sign-flip: only +++ and ---
    reach |sum| 0.36, p = 2/8; paired t = 0.12 / (0.02 / sqrt 3) = 10.39, p = 0.0091, secondary); the SynOps
    differ by -100, +100, 0 (sum 0: p = 1); the stable-prediction latencies by -6, -4.5, -5.5 (p = 2/8). With 3
    seeds and a family of 3 nothing can be significant."""
    mse = [(0.80, 500.0, 10, 12.0), (0.70, 520.0, None, 11.0), (0.75, 510.0, 9, 12.5)]
    nll = [(0.90, 490.0, 4, 6.0), (0.82, 530.0, 5, 6.5), (0.89, 510.0, 3, 7.0)]
    final = [{"row": {"label": label, "seed": s, "learning_rate": 1e-3, "loss": label}, "frozen_at": None,
              "validation": {"accuracy": 0.5}, "test": _test_summary(*values[s]), "train_seconds": 1.0}
             for label, values in (("mse", mse), ("nll", nll)) for s in range(3)]
    result = {"config": small_config("/nowhere", plots=True).to_dict(), "sweep": {"losses": ["mse", "nll"],
                                                                                 "tune_seeds": 1},
              "grid": [], "tune": [], "final": final, "train_seconds": {"tune": 1.0, "final": 2.0},
              "selection": {k: {"row": {"label": k, "learning_rate": 1e-3}, "validation_mean": 0.5,
                                "candidates": []} for k in ("mse", "nll")}}
    result["config"]["model"]["hidden"] = list(result["config"]["model"]["hidden"])
    report = comparison.write(result, str(tmp_path))
    paired = report["analysis"]["differences"]["nll - mse"]["measures"]
    assert paired["accuracy"]["mean"] == pytest.approx(0.12)
    assert paired["accuracy"]["t"] == pytest.approx(0.12 / (0.02 / np.sqrt(3)))
    assert paired["accuracy"]["t_p"] == pytest.approx(0.00913, abs=2e-4)
    assert paired["accuracy"]["sign_flip_p"] == 0.25 and paired["accuracy"]["wilcoxon_p"] == 0.25
    assert paired["synops_network"]["values"] == {"0": -100.0, "1": 100.0, "2": 0.0}
    assert paired["latency_95"]["values"] == {"0": 4 - 10, "1": 5 - 30, "2": 3 - 9}  # never reaching 95%: T = 30
    assert paired["latency_stable"]["values"] == {"0": -6.0, "1": -4.5, "2": -5.5}
    claims = {c["measure"]: c for c in report["analysis"]["hypotheses"]}
    assert set(claims) == {"accuracy", "latency_stable", "synops_network"}
    assert claims["synops_network"]["p"] == 1.0 and claims["accuracy"]["p"] == 0.25
    assert claims["latency_stable"]["p"] == 0.25
    assert claims["accuracy"]["p_holm"] == pytest.approx(0.75)      # 0.25, 0.25, 1.0 -> x3, x2, x1 -> max
    assert {c["verdict"] for c in claims.values()} == {"not significant"}
    assert report["analysis"]["statistics"]["smallest_p_holm"] == 0.75
    losses = json.load(open(tmp_path / "comparison.json"))["losses"]
    assert losses["nll"]["measures"]["accuracy"]["values"] == {"0": 0.90, "1": 0.82, "2": 0.89}
    lines = [json.loads(line) for line in open(tmp_path / "replicas.jsonl")]
    assert len(lines) == 6 and {line["stage"] for line in lines} == {"final"}
    text = open(tmp_path / "comparison.md").read()
    assert "**not significant**" in text and "| nll |" in text
    assert "nothing in this family can be significant" in text
    assert os.path.getsize(tmp_path / "accuracy_over_time.png") > 1000


def _compare(workdir, data_dir, *extra):
    return [sys.executable, "-m", "experiments.compare_losses", "--quick", f"--workdir={workdir}",
            f"--data_dir={data_dir}", "--config.model.hidden=(32,)", "--config.plots=False", "--max_steps=6",
            "--config.log_every=1",
            "--config.checkpoint_every_steps=2", "--sweep.losses=('mse','nll')", *extra]


# successive halving with two tuning seeds (two folds, one program each) and two learning rates: every program
# stops at step 3, each loss drops one of its two configurations, the other continues from there to step 6
HALVING = ("--sweep.halving_fraction=0.5", "--sweep.tune_seeds=2", "--sweep.learning_rates=(1e-3,3e-3)")


def _killed_at(command, marker):
    """`command` started, SIGKILLed once `marker` (a checkpoint folder) exists; returns its stdout so far."""
    out = tempfile.TemporaryFile("w+")
    process = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.DEVNULL, text=True)
    deadline = time.time() + 300
    while not os.path.isdir(marker) and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    out.seek(0)
    return out.read()


@pytest.mark.slow
def test_a_killed_sweep_resumes_to_the_same_result(digits_data_dir, tmp_path):
    """SIGKILL in the middle of a continued tuning program (successive halving), then, resumed, SIGKILL again
    in the middle of the final stage (after its step-2 checkpoint); the same command then reads the finished
    programs, resumes the killed one, and reports exactly what an uninterrupted sweep reports (the halving
    recorded). The uninterrupted sweep is given a relative --workdir (its programs continue from checkpoints
    found through it, which orbax takes only as absolute paths)."""
    whole, killed = str(tmp_path / "whole"), str(tmp_path / "killed")
    command = _compare(killed, digits_data_dir, *HALVING)
    # the uninterrupted sweep runs beside the killed one (both are mostly start-up and compilation)
    uninterrupted = _start(_compare("whole", digits_data_dir, *HALVING)[2:], cwd=str(tmp_path))
    _killed_at(command, os.path.join(killed, "tune/0/0-rest/checkpoints/4"))
    assert not os.path.exists(os.path.join(killed, "tune/0/0-rest/result.json"))  # killed before the end
    second = _killed_at(command, os.path.join(killed, "final/0/checkpoints/2"))
    assert "tune fold 0 0 continued: resumed from" in second
    assert not os.path.exists(os.path.join(killed, "final/0/result.json"))
    out = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "tune fold 0 1/1: finished earlier" in out.stdout and "final 1/1: resumed from" in out.stdout
    out = _finish(uninterrupted)
    assert out.returncode == 0, out.stderr[-3000:]
    a, b = (json.load(open(os.path.join(w, "comparison.json"))) for w in (whole, killed))
    for label in a["losses"]:
        for metric in comparison.METRICS:
            assert a["losses"][label]["measures"][metric]["values"] == \
                b["losses"][label]["measures"][metric]["values"], (label, metric)
    assert a["hypotheses"] == b["hypotheses"] and a["selection"] == b["selection"] and a["halving"] == b["halving"]
    assert a["smoke"] is True and a["sweep"]["smoke"] is True  # --quick: a smoke run, reported without CIs
    text = open(os.path.join(killed, "comparison.md")).read()
    assert "smoke run (--quick), not a result" in text and "bootstrap" not in text and "Holm" not in text
    assert "smoke run (--quick)" in out.stdout
    assert {label: len(entry["dropped"]) for label, entry in a["halving"]["labels"].items()} == {"mse": 1, "nll": 1}
    assert a["halving"]["step"] == {"0": 3, "1": 3}
    dropped = [json.loads(line) for line in open(os.path.join(whole, "replicas.jsonl"))]
    dropped = [r for r in dropped if r.get("dropped_at") is not None]
    assert len(dropped) == 4 and all(r["validation"]["step"] == 3 for r in dropped)  # 2 configs x 2 seeds
