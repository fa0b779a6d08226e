"""Verdicts that survive a second seed set: two comparison.json documents of the same protocol on disjoint
seeds (a second run with `--sweep.seed_offset`, on this machine or another), hypothesis by hypothesis.

  python -m experiments.compare_losses --workdir=runs/cmp-a
  python -m experiments.compare_losses --workdir=runs/cmp-b --sweep.seed_offset=100 \
      --reproduce=runs/cmp-a/comparison.json          # runs/cmp-b/comparison.md gains a "Reproduction" section

A hypothesis (same pair, claim and measure) is
  "reproduced"                   significant in both runs, in the same observed direction (the only finding)
  "agrees, not significant"      not significant in either run (nothing found, consistently)
  "not reproduced"               anything else: significant in one run only, or in opposite directions
at the declared level, each run Holm-adjusted over its own family. Seed sets that overlap are refused: the
runs would not be independent. The protocols (run config and sweep, apart from the seeds) must match, or
the comparison says where they differ.
"""
from __future__ import annotations

import json

from spikejax.errors import ConfigError

SEED_FIELDS = ("seed_offset", "seeds", "tune_seeds")


def _key(h: dict) -> tuple:
    return h["a"], h["b"], h["claim"], h["measure"]


def _significant(h: dict) -> bool:
    return h["verdict"] != "not significant"


def status(this: dict, other: dict | None) -> str:
    """How hypothesis `this` fares in the other run (`other`: the same hypothesis there, or None)."""
    if other is None:
        return "not in the other run"
    if not _significant(this) and not _significant(other):
        return "agrees, not significant"
    if _significant(this) and _significant(other) and this["observed_direction"] == other["observed_direction"]:
        return "reproduced"
    return "not reproduced"


def protocol_differences(this: dict, other: dict) -> list[str]:
    """The run-config and sweep fields (seed fields aside) whose values differ between the two documents."""
    out = []
    for part in ("config", "sweep"):
        a, b = this.get(part, {}), other.get(part, {})
        for name in sorted(set(a) | set(b)):
            if name in SEED_FIELDS or (part == "config" and name == "seed"):
                continue
            if a.get(name) != b.get(name):
                out.append(f"{part}.{name}: {a.get(name)!r} here, {b.get(name)!r} there")
    return out


def load(path: str) -> dict:
    """Another run's comparison.json; ConfigError naming the file when it cannot be read as one."""
    try:
        with open(path) as f:
            other = json.load(f)
        list(other["seeds"]), list(other["hypotheses"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"--reproduce={path}: not a readable comparison.json ({error})") from None
    return other


def check_disjoint(seeds, other: dict, other_path: str) -> None:
    """ConfigError when this run's final `seeds` overlap the other run's (they would not be independent)."""
    seeds = list(seeds)
    shared = sorted(set(seeds) & set(other["seeds"]))
    if shared:
        raise ConfigError(f"--reproduce={other_path}: its final seeds {other['seeds']} overlap this run's "
                          f"{seeds} (shared: {shared}); a reproduction needs a disjoint seed set, e.g. "
                          f"--sweep.seed_offset={max(seeds + list(other['seeds'])) + 1}")


def compare(this: dict, other: dict, other_path: str) -> dict:
    """The "reproduction" block of comparison.json: this run's hypotheses against the other run's. ConfigError
    when the final seed sets overlap (`check_disjoint`)."""
    check_disjoint(this["seeds"], other, other_path)
    theirs = {_key(h): h for h in other["hypotheses"]}
    rows = []
    for h in this["hypotheses"]:
        o = theirs.get(_key(h))
        rows.append({"a": h["a"], "b": h["b"], "claim": h["claim"], "measure": h["measure"],
                     "direction": h["direction"], "this": {"verdict": h["verdict"], "p_holm": h["p_holm"],
                                                           "observed_direction": h["observed_direction"]},
                     "other": None if o is None else {"verdict": o["verdict"], "p_holm": o["p_holm"],
                                                      "observed_direction": o["observed_direction"]},
                     "status": status(h, o)})
    counts = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return {"other": other_path, "other_seeds": other["seeds"], "other_machine": other.get("machine"),
            "protocol_differences": protocol_differences(this, other), "hypotheses": rows, "counts": counts,
            "rule": "reproduced: significant in both runs (each Holm-adjusted over its own family) in the same "
                    "observed direction; agrees, not significant: significant in neither; not reproduced: "
                    "anything else"}


def lines(block: dict) -> list[str]:
    """The markdown of a "reproduction" block."""
    out = [f"Against {block['other']} (final seeds {block['other_seeds']}). Rule: {block['rule']}.", ""]
    if block["protocol_differences"]:
        out += ["The protocols differ: " + "; ".join(block["protocol_differences"]) + ".", ""]
    out += ["| a | b | claim (measure) | here | there | status |", "|---|---|---|---|---|---|"]
    for r in block["hypotheses"]:
        there = "n/a" if r["other"] is None else f"{r['other']['verdict']} (Holm p {r['other']['p_holm']:.4g})"
        out.append(f"| {r['a']} | {r['b']} | {r['claim']} ({r['measure']}) | {r['this']['verdict']} (Holm p "
                   f"{r['this']['p_holm']:.4g}) | {there} | **{r['status']}** |")
    out += ["", "Counts: " + ", ".join(f"{k}: {v}" for k, v in sorted(block["counts"].items())) + "."]
    return out
