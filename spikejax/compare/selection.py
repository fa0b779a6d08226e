"""Choosing one configuration per loss from tuning records, as pure functions of the records (no training):

  select(records)                  per label, the best mean final validation accuracy over the tuning seeds
  halve(records)                   successive halving: per label, the better half at the halving step
  extend(row, tuned, axes, allowed)  the next points outward along every axis whose choice lies on an edge

A record is run_program's: {"row": {"label", "loss", "learning_rate", loss parameters, "seed"}, "frozen_at",
"validation": {"accuracy", "loss", ...}} and, for a configuration halving dropped, "dropped_at" (its step).
"""
from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable

import numpy as np


def key(row: dict) -> str:
    """A configuration's identity: its row without the seed."""
    return json.dumps({k: v for k, v in row.items() if k != "seed"}, sort_keys=True)


def describe(row: dict) -> str:
    """"lr=0.001 temperature=2" for a configuration row."""
    return " ".join(f"{'lr' if k == 'learning_rate' else k}={v:g}" if isinstance(v, (int, float)) else f"{k}={v}"
                    for k, v in row.items() if k not in ("label", "loss", "seed"))


def _groups(records: list[dict]) -> dict[str, dict]:
    """Per configuration (in first-seen order): {"row", "values", "diverged", "diverged_at": {seed: step},
    "dropped_at", "validation_mean"}; a seed frozen or with a non-finite validation accuracy or loss marks
    its configuration diverged."""
    groups: dict[str, dict] = {}
    for record in records:
        group = groups.setdefault(key(record["row"]), {
            "row": {k: v for k, v in record["row"].items() if k != "seed"}, "values": [], "diverged": False,
            "diverged_at": {}, "dropped_at": None})
        group["values"].append(record["validation"]["accuracy"])
        finite = all(np.isfinite(record["validation"].get(k, 0.0)) for k in ("accuracy", "loss"))
        if record["frozen_at"] is not None or not finite:
            group["diverged"] = True
            group["diverged_at"][str(record["row"].get("seed"))] = record["frozen_at"]
        if record.get("dropped_at") is not None:
            group["dropped_at"] = record["dropped_at"]
    for group in groups.values():
        group["validation_mean"] = float(np.mean(group["values"]))
    return groups


def select(records: list[dict]) -> dict[str, dict]:
    """Per label, the configuration with the highest mean final validation accuracy over its seeds; one any
    of whose seeds diverged (was frozen) or has a non-finite validation accuracy or loss is never selected
    (it counts as diverged; "diverged_at" holds None for a seed that was not frozen), nor one that halving
    dropped ("dropped_at": its validation is from the halving step); ties to the first in grid order. A label
    none of whose configurations is eligible has "row" and "validation_mean" None: it is reported as
    diverged, not compared. {label: {"row", "validation_mean", "candidates": [{"row", "validation_mean",
    "values", "diverged", "diverged_at": {seed: step}, "dropped_at"}]}}."""
    chosen: dict[str, dict] = {}
    for group in _groups(records).values():
        chosen.setdefault(group["row"]["label"], {"candidates": []})["candidates"].append(group)
    for entry in chosen.values():
        eligible = [c for c in entry["candidates"] if not c["diverged"] and c["dropped_at"] is None]
        best = max(eligible, key=lambda c: c["validation_mean"]) if eligible else None  # max keeps the first
        entry.update(row=best and best["row"], validation_mean=best and best["validation_mean"])
    return chosen


def halve(records: list[dict]) -> dict[str, dict]:
    """Successive halving's cut, per label over the records at the halving step: configurations ranked by
    mean validation accuracy over their seeds, the best ceil(n/2) kept, and any tied with the last kept kept
    too (a tie is not "clearly worse"); a diverged configuration is always dropped. {label: {"kept": [row],
    "dropped": [{"row", "validation_mean", "diverged"}]}}, rows without the seed, in grid order."""
    by_label: dict[str, list[dict]] = {}
    for group in _groups(records).values():
        by_label.setdefault(group["row"]["label"], []).append(group)
    out = {}
    for label, groups in by_label.items():
        scores = [-math.inf if g["diverged"] else g["validation_mean"] for g in groups]
        bar = sorted(scores, reverse=True)[math.ceil(len(groups) / 2) - 1]
        keep = [score >= bar and score > -math.inf for score in scores]
        out[label] = {"kept": [g["row"] for g, k in zip(groups, keep) if k],
                      "dropped": [{"row": g["row"], "validation_mean": g["validation_mean"], "diverged": g["diverged"]}
                                  for g, k in zip(groups, keep) if not k]}
    return out


@dataclasses.dataclass(frozen=True)
class Axis:
    """A tuned axis: a row field, stepped geometrically (`log_scale`) or arithmetically, rounded when
    `integer`."""
    name: str
    log_scale: bool = False
    integer: bool = False


def _outward(value, neighbour, axis: Axis):
    if axis.log_scale:
        return value * (value / neighbour)
    return value + (value - neighbour)


def _toward(value, target, axis: Axis):
    """Half the step from value to target (geometric mean on a log axis)."""
    if axis.log_scale:
        return math.sqrt(value * target)
    return (value + target) / 2


def extend(row: dict, tuned: list[dict], axes: list[Axis], allowed: Callable[[dict], bool],
           shrink: int = 3) -> tuple[list[dict], list[dict]]:
    """The edge extension of one label's chosen configuration `row` among its tuned rows `tuned` (without
    seeds): for each axis with at least two tuned values (along the line through `row`) whose chosen value
    is the lowest or highest, the next point one step outward: the step from the edge's neighbour to the
    edge, repeated (a ratio on a log axis, a difference otherwise), halved up to `shrink` times while
    `allowed(new row)` refuses it (a parameter's check, bound or the loss's constraint); none allowed, or
    only points tuned already: the axis is at its bound. Returns (new rows, moves: [{"axis", "from", "to",
    "direction"} or {"axis", "at": value, "direction", "at_bound": True}])."""
    new_rows, moves = [], []
    seen = {key(t) for t in tuned}
    for axis in axes:
        others = {k: v for k, v in row.items() if k != axis.name}
        values = sorted({t[axis.name] for t in tuned if t.get(axis.name) is not None
                         and {k: v for k, v in t.items() if k != axis.name} == others})
        value = row.get(axis.name)
        if len(values) < 2 or value is None or values[0] < value < values[-1]:
            continue
        direction, neighbour = ("down", values[1]) if value == values[0] else ("up", values[-2])
        candidate = _outward(value, neighbour, axis)
        for _ in range(shrink + 1):
            point = round(candidate) if axis.integer else float(candidate)
            proposal = {**row, axis.name: point}
            if point != value and key(proposal) not in seen and allowed(proposal):
                new_rows.append(proposal)
                seen.add(key(proposal))
                moves.append({"axis": axis.name, "from": value, "to": point, "direction": direction})
                break
            candidate = _toward(value, candidate, axis)
        else:
            moves.append({"axis": axis.name, "at": value, "direction": direction, "at_bound": True})
    return new_rows, moves
