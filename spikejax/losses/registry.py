"""The output losses by name: what each reads, how it predicts, its hyperparameters, and the labels the
comparison gives it. Config validation, the builders, the replicas, the sweep grid and the reports read
these entries; nothing else names a loss or its parameters.

  @register("my_loss", params=(Param("margin", 1.0, check=positive, grid=(0.5, 1.0, 2.0)),))
  def my_loss(spikes, labels, *, margin=1.0, mask=None): ...      # [T, B, C], [B] -> scalar

  register_variant("nll_window", of="nll", grid={"window": (10, 20, 30)}, title="spike NLL (sliding window)")

A loss is a function (outputs [T, B, C], labels int [B], *, mask=None, **params) -> scalar float32 batch mean.
`reads` names the model output it takes: "spikes" (the output layer's spikes) or "membrane" (its membrane
potential). `readout` maps those outputs to a prediction from every time prefix, int [T, B] (-1: none);
the default is the argmax of cumulative spike counts. A parameter may arrive traced (one compiled program
trains replicas with different values), so a loss checks parameter values only when they are concrete;
`Param.check` validates them where they are chosen (configs, grids).

Every registered loss is also a label of the comparison (its own grid: the parameters whose `Param.grid`
is non-empty); `register_variant` adds further labels of the same loss with other fixed values or grids.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np

from spikejax import readout as readout_lib

READS = ("spikes", "membrane")
# config fields of `loss` that are not losses: a loss may not take these names
RESERVED = ("name", "rate_penalty", "target_rate")

Check = Callable[[Any], "str | None"]


def any_value(value) -> str | None:
    return None


def positive(value) -> str | None:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    return None if ok else "a finite number > 0"


def nonnegative(value) -> str | None:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
    return None if ok else "a finite number >= 0"


def finite(value) -> str | None:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    return None if ok else "a finite number"


def rate(value) -> str | None:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and 0.0 <= value <= 1.0
    return None if ok else "a number >= 0 and <= 1"


def positive_int(value) -> str | None:
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1
    return None if ok else "an integer >= 1"


@dataclasses.dataclass(frozen=True)
class Param:
    """A loss hyperparameter. `check(value)` returns None when allowed, else what is allowed; `grid`: the
    default values the comparison tunes over (empty: not tuned, the config's value is used; the sweep extends
    it outward when its choice lies on an edge: by the ratio of the edge's two values when `log_scale`, else
    by their difference); `optional`:
    None is allowed (0 stands for it in a replica's array, so 0 itself must not be allowed); `integer`: its
    replica array is int32; `at_most`: a run-config field that bounds it (e.g. "data.time_bins", T)."""
    name: str
    default: Any
    check: Check = any_value
    grid: tuple = ()
    optional: bool = False
    integer: bool = False
    doc: str = ""
    at_most: str | None = None
    log_scale: bool = False

    def problem(self, value) -> str | None:
        if value is None:
            return None if self.optional else self.check(value) or "a value"
        problem = self.check(value)
        return None if problem is None else ("None or " if self.optional else "") + problem

    def encode(self, value) -> float | int:
        """The value in a replica array: None -> 0."""
        if value is None:
            return 0
        return int(value) if self.integer else float(value)


@dataclasses.dataclass(frozen=True)
class Loss:
    """A registered loss (see the module docstring)."""
    name: str
    fn: Callable
    reads: str = "spikes"
    readout: Callable = readout_lib.predictions_over_time
    params: tuple[Param, ...] = ()
    title: str = ""
    aliases: tuple[str, ...] = ()
    constraint: Callable[[dict], str | None] | None = None

    def defaults(self) -> dict:
        return {p.name: p.default for p in self.params}

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise ValueError(f"loss {self.name!r} has no parameter {name!r}; its parameters: "
                         f"{[p.name for p in self.params]}")

    def problems(self, values: Mapping, bounds: Mapping | None = None) -> list[str]:
        """What is wrong with a full parameter dict, one line per problem (empty when it is allowed);
        `bounds`: the flattened run config, for the parameters declared `at_most` one of its fields."""
        out = [f"loss {self.name!r} has no parameter {k!r} (its parameters: {[p.name for p in self.params]})"
               for k in values if k not in {p.name for p in self.params}]
        for p in self.params:
            if p.name not in values:
                out.append(f"loss {self.name!r}: parameter {p.name!r} is missing")
                continue
            problem = p.problem(values[p.name])
            if problem:
                out.append(f"loss {self.name!r}: {p.name} = {values[p.name]!r} must be {problem}")
            elif p.at_most and bounds and p.at_most in bounds and values[p.name] is not None \
                    and values[p.name] > bounds[p.at_most]:
                out.append(f"loss {self.name!r}: {p.name} = {values[p.name]!r} must be <= {p.at_most} "
                           f"({bounds[p.at_most]!r})")
        if not out and self.constraint is not None:
            problem = self.constraint(dict(values))
            if problem:
                out.append(f"loss {self.name!r}: {problem}")
        return out

    def label(self, values: Mapping) -> str:
        """The name, with the parameters that differ from their defaults: "nll(window=10)"."""
        changed = [f"{p.name}={values[p.name]:g}" if isinstance(values[p.name], float) else
                   f"{p.name}={values[p.name]}" for p in self.params
                   if p.name in values and values[p.name] != p.default]
        return self.name + (f"({', '.join(changed)})" if changed else "")


@dataclasses.dataclass(frozen=True)
class Entry:
    """A label of the comparison: a loss with some parameters fixed and others tuned over `grid`."""
    label: str
    loss: str
    fixed: Mapping = dataclasses.field(default_factory=dict)
    grid: Mapping = dataclasses.field(default_factory=dict)
    title: str = ""


_LOSSES: dict[str, Loss] = {}
_ALIASES: dict[str, str] = {}
_ENTRIES: dict[str, Entry] = {}


def _check_name(name: str, what: str) -> None:
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"{what} name must be an identifier (letters, digits, _), got {name!r}")
    if name in RESERVED:
        raise ValueError(f"{what} name {name!r} is taken by the config field loss.{name}; choose another")
    if name in _LOSSES or name in _ALIASES or name in _ENTRIES:
        raise ValueError(f"{what} name {name!r} is already registered; choose another (or `unregister` it first)")


def register(name: str, *, reads: str = "spikes", readout: Callable | None = None,
             params: tuple[Param, ...] = (), title: str = "", aliases: tuple[str, ...] = (),
             constraint: Callable[[dict], str | None] | None = None):
    """Decorator: registers `fn` as the loss `name` (and the comparison label `name`); returns fn unchanged.

    reads: "spikes" or "membrane"; readout: outputs [T, B, C] -> predictions int [T, B] from every prefix
    (default: argmax of cumulative counts); params: its hyperparameters; constraint: params dict -> None or
    what is wrong across parameters (e.g. "false_rate must be < true_rate")."""
    _check_name(name, "loss")
    for alias in aliases:
        _check_name(alias, "loss alias")
    if reads not in READS:
        raise ValueError(f"loss {name!r}: reads must be one of {list(READS)}, got {reads!r}")
    names = [p.name for p in params]
    if len(set(names)) != len(names):
        raise ValueError(f"loss {name!r}: parameter names repeat: {names}")
    for p in params:
        if not p.name.isidentifier():
            raise ValueError(f"loss {name!r}: parameter name must be an identifier, got {p.name!r}")
        for value in (p.default, *p.grid):
            problem = p.problem(value)
            if problem:
                raise ValueError(f"loss {name!r}: parameter {p.name} value {value!r} (default or grid) must be "
                                 f"{problem}")

    def decorate(fn):
        spec = Loss(name, fn, reads, readout or readout_lib.predictions_over_time, tuple(params),
                    title or name, tuple(aliases), constraint)
        _LOSSES[name] = spec
        for alias in aliases:
            _ALIASES[alias] = name
        _ENTRIES[name] = Entry(name, name, {}, {p.name: tuple(p.grid) for p in params if p.grid}, spec.title)
        return fn

    return decorate


def register_variant(label: str, *, of: str, fixed: Mapping | None = None, grid: Mapping | None = None,
                     title: str = "") -> Entry:
    """A further comparison label of the loss `of`: `fixed` parameter values, and `grid` (parameter ->
    values) replacing the loss's own grid. Validated against the loss's parameters now."""
    spec = get(of)
    _check_name(label, "comparison label")
    fixed, grid = dict(fixed or {}), {k: tuple(v) for k, v in (grid or {}).items()}
    for name, value in list(fixed.items()) + [(k, v) for k, values in grid.items() for v in values]:
        problem = spec.param(name).problem(value)
        if problem:
            raise ValueError(f"variant {label!r} of {of!r}: {name} = {value!r} must be {problem}")
    entry = Entry(label, spec.name, fixed, grid, title or label)
    _ENTRIES[label] = entry
    return entry


def unregister(name: str) -> None:
    """Removes a loss (with its aliases and every comparison label of it) or a single variant label."""
    if name in _LOSSES:
        spec = _LOSSES.pop(name)
        for alias in spec.aliases:
            _ALIASES.pop(alias, None)
        for label in [k for k, e in _ENTRIES.items() if e.loss == name]:
            del _ENTRIES[label]
    elif name in _ENTRIES:
        del _ENTRIES[name]
    else:
        raise ValueError(f"{name!r} is not registered")


def get(name: str) -> Loss:
    """The loss registered as `name` (or an alias of it); a ValueError lists the choices otherwise."""
    spec = _LOSSES.get(_ALIASES.get(name, name))
    if spec is None:
        raise ValueError(f"unknown loss {name!r}; choose one of {names(aliases=True)}")
    return spec


def names(*, aliases: bool = False) -> list[str]:
    """The registered losses' names in registration order (with their aliases, sorted after them)."""
    return list(_LOSSES) + (sorted(_ALIASES) if aliases else [])


def entry(label: str) -> Entry:
    """The comparison label `label`; a ValueError lists the labels otherwise."""
    if label not in _ENTRIES:
        raise ValueError(f"unknown comparison label {label!r}; choose among {labels()}")
    return _ENTRIES[label]


def labels() -> list[str]:
    """Every comparison label (each loss's own and the variants) in registration order."""
    return list(_ENTRIES)


# ---------------------------------------------------------------------------------------------------------
# One program, several losses: replicas whose loss and parameters are data.


@dataclasses.dataclass(frozen=True)
class Selection:
    """The static part of a replica program's losses: `names[k]` is the loss of index k; per loss, the
    parameters shared by all its replicas (`static`, passed as Python values) and those that vary
    (`traced`, read from the per-replica arrays "<loss>.<param>")."""
    names: tuple[str, ...]
    static: tuple[tuple[tuple[str, Any], ...], ...]
    traced: tuple[tuple[str, ...], ...]


def selection(rows: list[tuple[str, Mapping]]) -> tuple[Selection, dict[str, np.ndarray]]:
    """rows: per replica (loss name, its full parameter dict). Returns the static Selection and the
    per-replica arrays {"loss": int32 [R] index into Selection.names, "<loss>.<param>": [R]} of the
    parameters that vary; a replica's entry for another loss's parameter holds that loss's first value."""
    canonical = [(get(name).name, dict(params)) for name, params in rows]
    order = list(dict.fromkeys(name for name, _ in canonical))
    static, traced, arrays = [], [], {"loss": np.asarray([order.index(n) for n, _ in canonical], np.int32)}
    for name in order:
        spec = get(name)
        mine = [params for n, params in canonical if n == name]
        fixed, varying = [], []
        for p in spec.params:
            values = [params[p.name] for params in mine]
            if all(v == values[0] for v in values):
                fixed.append((p.name, values[0]))
                continue
            varying.append(p.name)
            first = mine[0][p.name]
            column = [p.encode(params[p.name] if n == name else first) for n, params in canonical]
            arrays[f"{name}.{p.name}"] = np.asarray(column, np.int32 if p.integer else np.float32)
        static.append(tuple(fixed))
        traced.append(tuple(varying))
    return Selection(tuple(order), tuple(static), tuple(traced)), arrays


def _choose(index, candidates):
    if len(candidates) == 1:
        return candidates[0]
    return jnp.select([index == k for k in range(len(candidates) - 1)], candidates[:-1], candidates[-1])


def selected_loss(sel: Selection, values: Mapping, outputs: Mapping, labels, *, mask=None):
    """The loss of replica index values["loss"] (traced under vmap) with its parameters: every loss of
    `sel` is computed on outputs[its reads] and the replica's own is selected (cheap beside the network)."""
    candidates = []
    for name, fixed, varying in zip(sel.names, sel.static, sel.traced):
        spec = get(name)
        params = {**dict(fixed), **{k: values[f"{name}.{k}"] for k in varying}}
        candidates.append(spec.fn(outputs[spec.reads], labels, mask=mask, **params))
    return _choose(values["loss"], candidates)


def selected_readout(sel: Selection, index, outputs: Mapping):
    """The predictions over time, int [T, B], of replica index `index`'s loss (computed once when all the
    losses of `sel` share one readout and one output)."""
    specs = [get(name) for name in sel.names]
    distinct = list(dict.fromkeys((s.readout, s.reads) for s in specs))
    computed = {key: key[0](outputs[key[1]]) for key in distinct}
    return _choose(index, [computed[(s.readout, s.reads)] for s in specs])
