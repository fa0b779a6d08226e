"""Do learned delays pay off where timing carries the class? The same network on timing_events with learned
delays, with no delays and with fixed random delays, over paired seeds.

  python -m benchmarks.delays_payoff --seeds=8 --out=benchmarks/results/delays_payoff
  python -m benchmarks.delays_payoff --seeds=8 --hidden=32 --out=benchmarks/results/delays_payoff_h32

Variants of configs/timing_events_delay.py (dense 32-hidden-10, per-synapse delays of 0-24 steps of 2 ms):
  learned   delays learned with the weights (DCLS scheme), evaluated rounded to integer steps
  none      kernel_size 1: every delay 0 (the same network without delays)
  fixed     learn False: the initial uniform random delays, rounded, never trained
A seed gives the same initial weights and the same data order in every variant (the delays are drawn in
every case), and each variant trains its seeds together as replicas of one program
(`spikejax.compare.sweep.run_program`, each replica on its own seed's data order). Nothing is tuned here:
every variant runs the config's hyperparameters; the test split is read once per replica at the end.

Statistics (`spikejax.compare.stats`): per variant the mean, sample std and t interval over seeds; for
learned - none and learned - fixed the paired differences with the exact sign-flip p-value (distribution-
free; its floor is 2/2^n) and the paired t-test, Holm-adjusted over the two comparisons. Writes
<out>/payoff.json and prints a markdown table for BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import time

VARIANTS = {
    "learned": {},
    "none": {"model.delay.kernel_size": 1, "model.delay.learn": False, "model.delay.init": "zero"},
    "fixed": {"model.delay.learn": False},
}


def _config(overrides: dict, hidden: int, epochs: int | None):
    from configs import timing_events_delay

    c = timing_events_delay.get_config()
    c.model.hidden = (hidden,)
    if epochs:
        c.epochs = epochs
    c.update_from_flattened_dict(overrides)  # dotted names, e.g. {"model.delay.learn": False}
    return c


def run(seeds: int, hidden: int, out: str, epochs: int | None = None) -> dict:
    from spikejax.compare import stats, sweep

    results = {}
    for name, overrides in VARIANTS.items():
        config = _config(overrides, hidden, epochs)
        rows = [{"label": f"{name}-seed{s}", "loss": config.loss.name, "seed": s,
                 "learning_rate": config.optimizer.learning_rate} for s in range(seeds)]
        start = time.perf_counter()
        records = sweep.run_program(config, rows, os.path.join(out, name), test=True, title=name)
        results[name] = {"test": [r["test"]["accuracy"] for r in records],
                         "validation": [r["validation"]["accuracy"] for r in records],
                         "seconds": time.perf_counter() - start}
    comparisons = {}
    for other in ("none", "fixed"):
        difference = stats.paired(results["learned"]["test"], results[other]["test"])
        difference["sign_flip_p"] = stats.sign_flip(
            [a - b for a, b in zip(results["learned"]["test"], results[other]["test"])])
        comparisons[f"learned - {other}"] = difference
    for key, adjusted in zip(("sign_flip_p", "p"), (stats.holm([c["sign_flip_p"] for c in comparisons.values()]),
                                                    stats.holm([c["p"] for c in comparisons.values()]))):
        for c, value in zip(comparisons.values(), adjusted):
            c[f"{key}_holm"] = value
    for c in comparisons.values():
        c["verdict"] = stats.verdict(c, "positive", p_key="sign_flip_p_holm")
    report = {"seeds": seeds, "hidden": hidden, "epochs": _config({}, hidden, epochs).epochs,
              "variants": {k: {**v, "summary": stats.summary(v["test"])} for k, v in results.items()},
              "comparisons": comparisons}
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "payoff.json"), "w") as f:
        json.dump(report, f, indent=1)
    return report


def table(report: dict) -> str:
    lines = [f"hidden {report['hidden']}, {report['seeds']} seeds, {report['epochs']} epochs", "",
             "| variant | test accuracy, mean +- std (95% t interval) | per seed |", "|---|---|---|"]
    for name, v in report["variants"].items():
        s = v["summary"]
        low, high = s["ci95"] or (s["mean"], s["mean"])
        lines.append(f"| {name} | {s['mean']:.3f} +- {s['std'] or 0:.3f} ({low:.3f}-{high:.3f}) | "
                     + " ".join(f"{a:.3f}" for a in v["test"]) + " |")
    lines += ["", "| difference | mean | sign-flip p (Holm) | paired t p (Holm) | verdict |", "|---|---|---|---|---|"]
    for name, c in report["comparisons"].items():
        lines.append(f"| {name} | {c['mean']:+.3f} | {c['sign_flip_p']:.4f} ({c['sign_flip_p_holm']:.4f}) | "
                     f"{c['p'] if c['p'] is None else format(c['p'], '.4f')} "
                     f"({c['p_holm'] if c['p_holm'] is None else format(c['p_holm'], '.4f')}) | {c['verdict']} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=None, help="default: the config's")
    parser.add_argument("--out", default="benchmarks/results/delays_payoff")
    args = parser.parse_args()
    print(table(run(args.seeds, args.hidden, args.out, args.epochs)))


if __name__ == "__main__":
    main()
