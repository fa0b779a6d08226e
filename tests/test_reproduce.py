"""A second seed set: which verdicts both runs reach (spikejax.compare.reproduce), from two comparison.json
documents, and the command's refusal of an overlapping seed set before any training."""
import json
import os
import subprocess
import sys

import pytest

from spikejax.compare import report
from spikejax.errors import ConfigError
from tests.test_comparison_json import _result

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _shifted(offset, flip=()):
    """_result() on seeds offset.. (the same per-seed values), with the labels in `flip` at accuracy 0.99 on
    every seed, above nll's (0.95-0.97), so that their accuracy verdicts against nll turn around."""
    result = _result()
    for record in result["final"]:
        record["row"]["seed"] += offset
        if record["row"]["label"] in flip:
            record["test"]["accuracy"] = 0.99
    return result


def test_each_hypothesis_is_marked_by_both_runs_verdicts(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    a = report.write(_shifted(0), str(first))["analysis"]
    b = report.write(_shifted(10, flip=("softmax",)), str(second),
                     reproduce=str(first / "comparison.json"))["analysis"]
    block = json.load(open(second / "comparison.json"))["reproduction"]
    assert block["other_seeds"] == list(range(10)) and b["seeds"] == list(range(10, 20))
    there = {(h["a"], h["b"], h["claim"]): h for h in a["hypotheses"]}
    for row, h in zip(block["hypotheses"], b["hypotheses"]):
        o = there[(h["a"], h["b"], h["claim"])]
        significant = (h["verdict"] != "not significant", o["verdict"] != "not significant")
        if significant == (False, False):
            expected = "agrees, not significant"
        elif significant == (True, True) and h["observed_direction"] == o["observed_direction"]:
            expected = "reproduced"
        else:
            expected = "not reproduced"
        assert row["status"] == expected, (row, h["verdict"], o["verdict"])
    statuses = {(r["a"], r["b"], r["claim"]): r["status"] for r in block["hypotheses"]}
    # the same per-seed values on other seeds: nll's accuracy lead over softmax (10/10 seeds) reproduces in
    # a; in b softmax leads on every seed: significant in the opposite direction there
    assert there[("nll", "softmax", "accuracy")]["verdict"] == "supported"
    assert statuses[("nll", "softmax", "accuracy")] == "not reproduced"
    assert statuses[("nll", "mse", "accuracy")] == "agrees, not significant"
    assert sum(block["counts"].values()) == len(b["hypotheses"]) == 12
    text = open(second / "comparison.md").read()
    assert "## Reproduction on a second seed set" in text and "**not reproduced**" in text


def test_a_run_on_the_same_seeds_is_no_reproduction(tmp_path):
    report.write(_shifted(0), str(tmp_path))
    with pytest.raises(ConfigError, match=r"overlap .* --sweep.seed_offset=15"):
        report.write(_shifted(5), str(tmp_path / "again"), reproduce=str(tmp_path / "comparison.json"))


def test_the_command_refuses_an_overlapping_seed_set_before_training(tmp_path):
    other = tmp_path / "comparison.json"
    other.write_text(json.dumps({"seeds": [0, 1, 2], "hypotheses": []}))
    out = subprocess.run([sys.executable, "-m", "experiments.compare_losses", "--quick",
                          f"--workdir={tmp_path / 'run'}", f"--reproduce={other}"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "overlap this run's [0, 1]" in out.stderr and "--sweep.seed_offset=3" in out.stderr
    assert not os.path.exists(tmp_path / "run")  # nothing trained, nothing written
