"""RESULTS.md's comparison section is what `python -m experiments.results` makes of the committed runs
(results/comparison/<task>-a and -b), and each task's second seed set was reproduced against the first seed
set that is committed beside it."""
import copy
import json
import os
import subprocess
import sys

import pytest

from spikejax.compare import results
from spikejax.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FOLDER = os.path.join(ROOT, "results", "comparison")
TASKS = ("digits_events", "timing_events")
# every folder of committed seed-set pairs that RESULTS.md has a generated section for, with its tasks
SECTIONS = {"results/comparison": TASKS, "results/all-losses-12": TASKS}


def _read(folder, task, which):
    with open(os.path.join(ROOT, folder, f"{task}-{which}", "comparison.json")) as f:
        return json.load(f)


@pytest.mark.parametrize("folder", SECTIONS)
def test_results_md_holds_the_section_generated_from_the_committed_runs(folder):
    pairs = results.load_pairs(os.path.join(ROOT, folder))
    assert set(pairs) == set(SECTIONS[folder])
    text = open(os.path.join(ROOT, "RESULTS.md"), encoding="utf-8").read()
    begin, end = results.markers(folder)
    start, stop = text.index(begin), text.index(end) + len(end)
    assert text[start:stop] == results.section(pairs, folder=folder)


@pytest.mark.parametrize("folder,task", [(f, t) for f, tasks in SECTIONS.items() for t in tasks])
def test_each_second_seed_set_was_reproduced_against_the_committed_first(folder, task):
    """B's reproduction block recomputed from the two committed documents: the same hypotheses, verdicts and
    statuses, and disjoint final seeds of the same protocol."""
    a, b = _read(folder, task, "a"), _read(folder, task, "b")
    assert not set(a["seeds"]) & set(b["seeds"])
    assert a["config"]["dataset"] == b["config"]["dataset"] == task
    theirs = {(h["a"], h["b"], h["claim"], h["measure"]): h for h in a["hypotheses"]}
    rows = b["reproduction"]["hypotheses"]
    assert len(rows) == len(b["hypotheses"]) == len(a["hypotheses"])
    for row, mine in zip(rows, b["hypotheses"]):
        other = theirs[(row["a"], row["b"], row["claim"], row["measure"])]
        assert row["other"]["verdict"] == other["verdict"] and row["other"]["p_holm"] == other["p_holm"]
        assert row["this"]["verdict"] == mine["verdict"]
        significant = [h["verdict"] != "not significant" for h in (mine, other)]
        same = mine["observed_direction"] == other["observed_direction"]
        expected = ("reproduced" if all(significant) and same else
                    "agrees, not significant" if not any(significant) else "not reproduced")
        assert row["status"] == expected
    assert b["reproduction"]["protocol_differences"] == []


def test_a_task_without_its_reproduction_or_with_shared_seeds_is_refused(tmp_path):
    a, b = _read("results/comparison", "timing_events", "a"), _read("results/comparison", "timing_events", "b")

    def write(task_b):
        for which, doc in (("a", a), ("b", task_b)):
            os.makedirs(tmp_path / f"t-{which}", exist_ok=True)
            (tmp_path / f"t-{which}" / "comparison.json").write_text(json.dumps(doc))

    no_reproduction = copy.deepcopy(b)
    del no_reproduction["reproduction"]
    write(no_reproduction)
    with pytest.raises(ConfigError, match="holds no reproduction of t-a"):
        results.load_pairs(str(tmp_path))
    shared = copy.deepcopy(b)
    shared["seeds"] = a["seeds"]
    write(shared)
    with pytest.raises(ConfigError, match="overlap"):
        results.load_pairs(str(tmp_path))
    os.remove(tmp_path / "t-b" / "comparison.json")
    with pytest.raises(ConfigError, match="t has no seed set b"):
        results.load_pairs(str(tmp_path))


def test_the_command_rewrites_only_the_generated_section(tmp_path):
    page = tmp_path / "RESULTS.md"
    page.write_text(f"# Results\n\nbefore\n\n{results.BEGIN}\nold\n{results.END}\n\nafter\n")
    run = subprocess.run([sys.executable, "-m", "experiments.results", f"--results_dir={FOLDER}",
                          f"--results_md={page}"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    text = page.read_text()
    assert text.startswith("# Results\n\nbefore\n\n") and text.endswith("\n\nafter\n") and "\nold\n" not in text
    assert results.section(results.load_pairs(FOLDER), folder=FOLDER) in text
    page.write_text("# Results without markers\n")
    run = subprocess.run([sys.executable, "-m", "experiments.results", f"--results_dir={FOLDER}",
                          f"--results_md={page}"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "no generated section" in run.stderr
    assert page.read_text() == "# Results without markers\n"


def test_each_folder_has_its_own_markers_and_rewrites_only_its_section():
    """RESULTS.md can hold one generated section per folder of runs: the default folder's markers are the
    plain ones, any other folder's name it, and rewriting one section leaves the other as it was."""
    other = "results/all-losses-12"
    assert results.markers("results/comparison") == (results.BEGIN, results.END)
    assert results.markers(os.path.abspath("results/comparison/")) == (results.BEGIN, results.END)
    begin, end = results.markers(other)
    assert begin != results.BEGIN and f"--results_dir={other}:" in begin and f"--results_dir={other}:" in end
    page = f"{results.BEGIN}\ndefault\n{results.END}\n\n{begin}\nold\n{end}\n"
    updated = results.replace_section(page, f"{begin}\nnew\n{end}", other)
    assert updated == f"{results.BEGIN}\ndefault\n{results.END}\n\n{begin}\nnew\n{end}\n"
    with pytest.raises(ConfigError, match="no generated section for results/elsewhere"):
        results.replace_section(page, "x", "results/elsewhere")
