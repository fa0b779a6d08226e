# %% [markdown]
# # Running and reading the loss comparison
#
# `python -m experiments.compare_losses` runs the paper's comparison: every loss tuned over its own grid on
# validation folds of the training split, the chosen configuration of each retrained with fresh seeds and
# tested once, and paired, distribution-free statistics over the seeds (the protocol is in the
# [README](../../README.md#3-the-comparison)). The full run takes about half an hour on 2 CPU cores; here
# it runs at the smallest budget there is, so that the files it writes can be read. **Its numbers mean
# nothing**: 2 seeds, 2 losses and a few training steps.
#
# Run from the repository's root (`experiments/` and `configs/` live in the checkout).

# %%
import json
import os
import subprocess
import sys
import tempfile

import matplotlib.pyplot as plt
import numpy as np

workdir = os.path.join(tempfile.mkdtemp(), "compare-tiny")
command = [sys.executable, "-m", "experiments.compare_losses", "--quick", "--max_steps=3",
           "--config.model.hidden=(16,)", "--sweep.losses=('nll','mse')", f"--workdir={workdir}"]
print("$ python -m experiments.compare_losses", " ".join(command[3:]))
result = subprocess.run(command, capture_output=True, text=True)
assert result.returncode == 0, result.stderr[-3000:]
print("\n".join(result.stdout.strip().splitlines()[-2:]))
print(sorted(os.listdir(workdir)))

# %% [markdown]
# `--quick` is `configs/sweep.py:quick`: one tuning seed, one configuration per loss (learning rate 3e-3,
# each loss parameter at its default), no successive halving or grid extension, 2 final seeds. The full
# protocol is the command without `--quick`; `--sweep.losses` chooses the losses (every registered loss and
# variant is a label: `nll_window` is spike NLL over sliding windows), `--sweep.seeds` the final seeds.
#
# ## What it wrote
#
# - `comparison.md`: the report, rendered from `comparison.json` alone (`spikejax.compare.render`).
# - `comparison.json`: every figure of the report, the config, the sweep, the selection and the machine.
# - `replicas.jsonl`: one record per trained replica (tuning and final), with its full evaluation.
# - `tune/`, `final/`: the programs' checkpoints; rerunning the same command resumes a killed comparison.
# - `accuracy_over_time.png`, `latency_accuracy.png`: the plots of the final stage.
#
# ## Which configuration each loss kept

# %%
report = json.load(open(os.path.join(workdir, "comparison.json")))
for label, entry in report["losses"].items():
    print(f"{label:4s} {entry['title']:26s} kept {entry['selected_description']:40s} "
          f"(mean tuning validation accuracy {entry['tuning_validation_accuracy']:.3f})")

# %% [markdown]
# ## The measures, per seed
#
# Each loss's `measures` hold one value per final seed (`values`), with the median and quartiles, the mean
# and a seeded percentile-bootstrap interval. A seed gives every loss the same initial weights and the same
# batches, so losses are compared seed by seed.

# %%
seeds = [str(s) for s in report["seeds"]]
for measure in ("accuracy", "latency_stable", "spikes", "synops_network"):
    print(measure)
    for label, entry in report["losses"].items():
        m = entry["measures"][measure]
        per_seed = ", ".join(f"{m['values'][s]:.4g}" for s in seeds)
        print(f"  {label:4s} seeds [{per_seed}]  median {m['median']:.4g}  "
              f"bootstrap 95% CI [{m['bootstrap_ci'][0]:.4g}, {m['bootstrap_ci'][1]:.4g}]")

# %% [markdown]
# ## The claims and their verdicts
#
# The family of hypotheses is declared before the run (`spikejax.compare.report.FAMILY`): spike NLL against
# each other loss, on accuracy, latency and energy. Each is tested on the paired differences with an exact
# sign-flip test, and the p-values are corrected together (Holm). With n paired seeds a sign-flip test
# cannot go below p = 2 / 2^n: here n = 2, so nothing can be significant, and the report says how many seeds
# a claim would need (`seeds_needed`).

# %%
for h in report["hypotheses"]:
    print(f"{h['a']} vs {h['b']} on {h['claim']:10s} mean difference {h['effect']['mean']:+.4g}  "
          f"p = {h['sign_flip_p']:.3g}, Holm {h['p_holm']:.3g}: {h['verdict']}")
statistics = report["statistics"]
print(f"smallest possible p with {len(seeds)} seeds: {statistics['smallest_p']}; "
      f"seeds needed for this family: {statistics['seeds_needed']}")

# %% [markdown]
# ## Accuracy over time, from the replicas
#
# Every final replica's record in `replicas.jsonl` holds its test evaluation, the same as a single run's
# `eval.json`: here the accuracy when deciding at each step, per seed.

# %%
records = [json.loads(line) for line in open(os.path.join(workdir, "replicas.jsonl"))]
fig, ax = plt.subplots(figsize=(6, 3))
for label in report["losses"]:
    curves = np.array([r["test"]["accuracy_over_time"] for r in records
                       if r["stage"] == "final" and r["label"] == label])
    steps = np.arange(1, curves.shape[1] + 1)
    line, = ax.plot(steps, curves.mean(axis=0), label=f"{label} (mean of {len(curves)} seeds)")
    ax.fill_between(steps, curves.min(axis=0), curves.max(axis=0), color=line.get_color(), alpha=0.2)
ax.set(xlabel="decision at step", ylabel="test accuracy", ylim=(0, 1))
ax.legend()
plt.show()

# %% [markdown]
# The report itself starts like this:

# %%
print("\n".join(open(os.path.join(workdir, "comparison.md")).read().splitlines()[:3]))

# %% [markdown]
# ## Reading a full comparison, reproduced on a second seed set
#
# A verdict holds only if a second, disjoint seed set reaches it too: rerun with
# `--sweep.seed_offset=100 --reproduce=<first workdir>/comparison.json`, and the report marks each claim
# reproduced, not significant in both, or not reproduced. The repository keeps such a pair for the default
# command on `digits_events` (10 seeds each, the full protocol), and the same code reads it: seed set B's
# `comparison.json` carries the verdicts of both sets.

# %%
full = json.load(open(os.path.join("results", "comparison", "digits_events-b", "comparison.json")))
reproduction = full["reproduction"]
print(f"seed set B: seeds {full['seeds'][0]}-{full['seeds'][-1]}; seed set A: seeds "
      f"{reproduction['other_seeds'][0]}-{reproduction['other_seeds'][-1]}; {reproduction['counts']}")
print(f"rule: {reproduction['rule']}")
for h in reproduction["hypotheses"]:
    this, other = h["this"], h["other"]
    print(f"{h['a'] + ' vs ' + h['b'] + ' on ' + h['claim']:30s} {h['status']:15s} B: {this['verdict']} "
          f"(Holm p {this['p_holm']:.3g}); A: {other['verdict']} (Holm p {other['p_holm']:.3g})")

# %% [markdown]
# What the committed runs found, on both embedded tasks and with every loss: [RESULTS.md](../../RESULTS.md).
