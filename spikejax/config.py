"""Run configs: validation of every field before any work, flattening, and reading older saved configs.

A run config is an `ml_collections.ConfigDict` (see `configs/default.py`) or the plain dict saved with a
checkpoint. `validate(config)` checks every field against `RULES` and raises a `ConfigError` whose one
line names the field, the value and what is allowed. A field with no rule, or a rule with no field, is
itself an error, so a new config field cannot skip validation.

Optional values are `None` (ml_collections placeholders in the config files), never 0 or "" sentinels:
`max_steps`, `loss.nll.window`, `model.neuron.recompute_chunk`, `data_dir` (None: $SPIKEJAX_DATA_DIR,
else ~/.cache/spikejax).

Loss parameters live in one block per registered loss (`loss.<loss>.<param>`), their rules and defaults
come from the registry (`spikejax.losses`); only the chosen loss's block affects a run.
"""
from __future__ import annotations

import json
import math
import numbers
from collections.abc import Callable
from typing import Any

from spikejax.errors import ConfigError

# ---------------------------------------------------------------------------------------------------------
# Rules: each returns None when the value is allowed, else a description of what is allowed.

Rule = Callable[[Any], "str | None"]


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def integer(low: int | None = None, high: int | None = None) -> Rule:
    text = "an integer" + (f" >= {low}" if low is not None else "") + (f" <= {high}" if high is not None else "")
    return lambda v: None if _is_int(v) and (low is None or v >= low) and (high is None or v <= high) else text


def number(low: float | None = None, high: float | None = None, *, low_open: bool = False,
           finite: bool = True) -> Rule:
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        parts.append(f"<= {high:g}")
    text = "a " + ("finite " if finite else "") + "number" + (" " + " and ".join(parts) if parts else "")

    def rule(v):
        if not _is_number(v) or math.isnan(v) or (finite and math.isinf(v)):
            return text
        if low is not None and (v <= low if low_open else v < low):
            return text
        if high is not None and v > high:
            return text
        return None

    return rule


def choice(options) -> Rule:
    options = tuple(options)
    return lambda v: None if isinstance(v, str) and v in options else f"one of {list(options)}"


def boolean(v):
    return None if isinstance(v, bool) else "true or false"


def optional(rule: Rule) -> Rule:
    return lambda v: None if v is None else (None if rule(v) is None else f"None or {rule(v)}")


def string(v):
    return None if isinstance(v, str) and v else "a non-empty string"


def int_sequence(min_length: int = 0) -> Rule:
    def rule(v):
        ok = isinstance(v, (list, tuple)) and len(v) >= min_length and all(_is_int(x) and x >= 1 for x in v)
        return None if ok else f"a tuple of at least {min_length} positive integers, e.g. (256,)"

    return rule


def fraction(v):
    return None if _is_number(v) and 0.0 <= v < 1.0 else "a number >= 0 and < 1"


def mapping(v):
    return None if isinstance(v, dict) else "a mapping of names to values"


def _rules() -> dict[str, Rule]:
    # the registries are imported here, not at module import, so `spikejax.config` stays cheap
    from spikejax import losses, neurons
    from spikejax.data import DATASETS
    from spikejax.models import MODELS, OUTPUTS
    from spikejax.models.delayed import DELAY_INITS, DELAY_SHAPES
    from spikejax.neurons import IMPLEMENTATIONS, RESETS
    from spikejax.surrogate import SURROGATES

    rate = number(0.0, 1.0)
    return {
        "dataset": choice(sorted(DATASETS)),
        "data_dir": optional(string),
        "seed": integer(0, 2**31 - 1),
        "data.time_bins": integer(1),
        "data.bin_width_us": integer(1),
        "data.downsample": integer(1),
        "data.polarity": boolean,
        "data.binarize": boolean,
        "data.options": mapping,
        "data.validation_fraction": fraction,
        "data.augment.time_shift": integer(0),
        "data.augment.time_jitter": integer(0),
        "data.augment.spatial_shift": integer(0),
        "data.augment.channel_shift": integer(0),
        "data.augment.spike_drop": number(0.0, 1.0),
        "data.augment.channel_drop": number(0.0, 1.0),
        "data.augment.cutmix": number(0.0, 1.0),
        "data.augment.cutmix_mode": choice(["time", "space"]),
        "model.name": choice(list(MODELS)),
        "model.hidden": int_sequence(),
        "model.dtype": choice(["auto", "float32", "bfloat16"]),
        "model.init_scale": number(0.0, low_open=True),
        "model.bias": boolean,
        "model.output": choice(list(OUTPUTS)),
        "model.neuron.kind": choice(neurons.kinds()),
        "model.neuron.beta": rate,
        "model.neuron.alpha": rate,
        "model.neuron.threshold": number(0.0, low_open=True),
        "model.neuron.reset": choice(RESETS),
        "model.neuron.surrogate": choice(sorted(SURROGATES)),
        "model.neuron.surrogate_params": mapping,
        "model.neuron.detach_reset": boolean,
        "model.neuron.recompute_chunk": optional(integer(1)),
        "model.neuron.implementation": choice(IMPLEMENTATIONS),
        "model.neuron.learn_beta": boolean,
        "model.neuron.learn_threshold": boolean,
        "model.neuron.learn_alpha": boolean,
        "model.neuron.learn_shape": choice(["neuron", "layer"]),
        "model.delay.kernel_size": integer(1),
        "model.delay.per": choice(list(DELAY_SHAPES)),
        "model.delay.learn": boolean,
        "model.delay.init": choice(list(DELAY_INITS)),
        "model.delay.sigma_start": optional(number(0.0, low_open=True)),
        "model.delay.sigma_end": number(0.0, low_open=True),
        "model.delay.anneal_fraction": number(0.0, 1.0, low_open=True),
        "loss.name": choice(losses.names(aliases=True)),
        **{f"loss.{name}.{p.name}": p.problem for name in losses.names() for p in losses.get(name).params},
        "loss.rate_penalty": number(0.0),
        "loss.target_rate": rate,
        "optimizer.name": choice(["adamw", "sgd"]),
        "optimizer.learning_rate": number(0.0, low_open=True),
        "optimizer.momentum": number(0.0, 1.0),
        "optimizer.schedule": choice(["cosine", "constant"]),
        "optimizer.warmup_steps": integer(0),
        "optimizer.grad_clip": number(0.0, low_open=True, finite=False),  # inf: no clipping
        "optimizer.weight_decay": number(0.0),
        "optimizer.neuron_learning_rate_scale": number(0.0, low_open=True),
        "optimizer.delay_learning_rate_scale": number(0.0, low_open=True),
        "batch_size": integer(1),
        "eval_batch_size": integer(1),
        "epochs": integer(1),
        "max_steps": optional(integer(1)),
        "log_every": integer(1),
        "checkpoint_every_steps": integer(1),
        "keep_checkpoints": integer(1),
        "plots": boolean,
    }


# Mapping-valued fields: their keys are checked by the dataset / surrogate they belong to.
MAPPING_FIELDS = ("data.options", "model.neuron.surrogate_params")


def to_dict(config) -> dict:
    """A plain, JSON-compatible dict (tuples become lists) of a ConfigDict or dict."""
    if hasattr(config, "to_json_best_effort"):
        return json.loads(config.to_json_best_effort())
    return json.loads(json.dumps(config))


def flatten(tree: dict, prefix: str = "") -> dict:
    """{"a": {"b": 1}} -> {"a.b": 1}; the mapping-valued fields stay whole."""
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and name not in MAPPING_FIELDS:
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def validate(config) -> None:
    """Raises ConfigError (one line: field, value, what is allowed) for the first field that is invalid,
    unknown or missing; also checks dataset options and surrogate parameters by name."""
    values = flatten(to_dict(config))
    rules = _rules()
    for name in sorted(set(values) - set(rules)):
        raise ConfigError(f"config field {name!r} is unknown (value {values[name]!r})")
    for name in sorted(set(rules) - set(values)):
        raise ConfigError(f"config field {name!r} is missing")
    for name, rule in rules.items():
        problem = rule(values[name])
        if problem:
            raise ConfigError(f"config field {name} = {values[name]!r}: must be {problem}")
    from spikejax.data import get_info
    from spikejax.surrogate import resolve

    allowed = get_info(values["dataset"]).options
    unknown = sorted(set(values["data.options"]) - set(allowed))
    if unknown:
        raise ConfigError(f"config field data.options has {unknown}: dataset {values['dataset']!r} takes "
                          f"options {list(allowed)}")
    try:
        resolve(values["model.neuron.surrogate"], values["model.neuron.surrogate_params"])
    except ValueError as error:
        raise ConfigError(f"config field model.neuron.surrogate_params: {error}") from None
    _validate_loss(values)
    _validate_augment(values, get_info(values["dataset"]).sensor_size)
    from spikejax.neurons import get_kind

    if values["model.neuron.learn_alpha"] and "alpha" not in get_kind(values["model.neuron.kind"]).parameters:
        raise ConfigError(f"config field model.neuron.learn_alpha = True: needs a model.neuron.kind with a synaptic "
                          f"decay alpha, e.g. 'cuba_lif' (kind {values['model.neuron.kind']!r} has none)")
    margin = 2.0 ** -24  # models.MARGIN: learnable values are kept this far inside their range in float32
    for name in ("beta", "alpha"):
        value = values[f"model.neuron.{name}"]
        if values[f"model.neuron.learn_{name}"] and not margin < value < 1.0 - margin:
            raise ConfigError(f"config field model.neuron.{name} = {value!r}: a learnable {name} (sigmoid of a "
                              "parameter) must start inside (0, 1) (in float32: 2^-24 < value < 1 - 2^-24)")
    if values["model.neuron.learn_threshold"] and not values["model.neuron.threshold"] > margin:
        raise ConfigError(f"config field model.neuron.threshold = {values['model.neuron.threshold']!r}: a learnable "
                          "threshold (softplus of a parameter) must start above 2^-24")
    from spikejax.models import MODELS

    problem = MODELS[values["model.name"]].check(tuple(values["model.hidden"]), values["model.neuron.kind"])
    if problem:
        raise ConfigError(f"config field {problem}")


def _validate_augment(values: dict, sensor_size) -> None:
    """The augmentations against the dataset's frames: spatial ones need a camera (P, H, W), channel ones a
    one-dimensional sensor (C,), and no shift may reach across the whole frame or sample."""
    from spikejax.data import Binning, frame_shape

    frame = frame_shape(sensor_size, Binning(time_bins=values["data.time_bins"], bin_width_us=1,
                                             downsample=values["data.downsample"], polarity=values["data.polarity"]))
    camera = len(frame) == 3
    a = {k.rsplit(".", 1)[1]: v for k, v in values.items() if k.startswith("data.augment.")}
    kind = f"dataset {values['dataset']!r} has {'camera' if camera else '1-D'} frames {tuple(frame)}"
    wrong = [(name, a[name], "needs camera frames (P, H, W)") for name in ("spatial_shift",) if a[name] and not camera]
    wrong += [(name, a[name], "needs 1-D frames (C,)") for name in ("channel_shift", "channel_drop")
              if a[name] and camera]
    if a["cutmix"] and a["cutmix_mode"] == "space" and not camera:
        wrong.append(("cutmix_mode", "space", "'space' needs camera frames (P, H, W); use 'time'"))
    limits = {"time_shift": values["data.time_bins"], "time_jitter": values["data.time_bins"],
              "spatial_shift": min(frame[-2:]), "channel_shift": frame[-1]}
    wrong += [(name, a[name], f"must be < {limit} (the frames' extent)") for name, limit in limits.items()
              if a[name] >= limit]
    for name, value, what in wrong:
        raise ConfigError(f"config field data.augment.{name} = {value!r}: {what}; {kind}")


def _validate_loss(values: dict) -> None:
    """The chosen loss's cross-parameter rule, and what it reads against what the models give."""
    from spikejax import losses

    spec = losses.get(values["loss.name"])
    problems = spec.problems({p.name: values[f"loss.{spec.name}.{p.name}"] for p in spec.params}, bounds=values)
    if problems:
        raise ConfigError(f"config fields loss.{spec.name}.*: {problems[0]}")
    from spikejax.models import OUTPUTS

    output = values["model.output"]
    if spec.reads not in OUTPUTS[output]:
        raise ConfigError(f"config fields loss.name = {values['loss.name']!r} and model.output = {output!r}: the "
                          f"loss reads the output layer's {spec.reads}, and an {output} output layer gives "
                          f"{' and '.join(OUTPUTS[output])} only; use model.output = 'spiking' or a loss that reads "
                          f"{' or '.join(OUTPUTS[output])}")


def loss_parameters(config) -> dict:
    """The chosen loss's parameters {name: value} from a run config (ConfigDict or dict)."""
    from spikejax import losses

    spec = losses.get(config["loss"]["name"])
    return {p.name: config["loss"][spec.name][p.name] for p in spec.params}


def loss_label(config) -> str:
    """The chosen loss as reports name it: "nll", "nll(window=10)" (parameters that differ from their
    defaults)."""
    from spikejax import losses

    return losses.get(config["loss"]["name"]).label(loss_parameters(config))


def inactive_loss_fields(flat: dict) -> set[str]:
    """The flattened fields of the losses a run does not use (their parameters do not affect it)."""
    from spikejax import losses

    active = losses.get(flat["loss.name"]).name if "loss.name" in flat else None
    blocks = {f"loss.{name}." for name in losses.names() if name != active}
    return {k for k in flat if any(k.startswith(b) for b in blocks)}


# Fields renamed, or given None where older versions (0.1.0) stored a 0 sentinel: {old: (new, upgrade)}.
_RENAMED = {"model.neuron.checkpoint_every": ("model.neuron.recompute_chunk", lambda v: v or None)}
_ZERO_MEANT_NONE = ("max_steps",)
# Fields added since 0.1.0, with the value that reproduces what an older run did.
_ADDED = {"data.validation_fraction": 0.0, "model.bias": True, "model.output": "spiking",
          "model.neuron.learn_beta": False, "model.neuron.learn_threshold": False, "model.neuron.learn_alpha": False,
          "model.neuron.learn_shape": "neuron", "optimizer.neuron_learning_rate_scale": 1.0,
          "optimizer.delay_learning_rate_scale": 150.0, "model.delay.kernel_size": 25, "model.delay.per": "synapse",
          "model.delay.learn": True, "model.delay.init": "uniform", "model.delay.sigma_start": None,
          "model.delay.sigma_end": 0.23, "model.delay.anneal_fraction": 0.5,
          **{f"data.augment.{name}": 0 for name in ("time_shift", "time_jitter", "spatial_shift", "channel_shift")},
          **{f"data.augment.{name}": 0.0 for name in ("spike_drop", "channel_drop", "cutmix")},
          "data.augment.cutmix_mode": "time", "plots": True}


def upgrade(saved: dict) -> dict:
    """A config saved by an older spikejax, in today's field names and placeholders (a copy)."""
    flat = flatten(json.loads(json.dumps(saved)))
    for old, (new, convert) in _RENAMED.items():
        if old in flat:
            flat[new] = convert(flat.pop(old))
    for name in _ZERO_MEANT_NONE:
        if flat.get(name) == 0:
            flat[name] = None
    for name, value in _ADDED.items():
        flat.setdefault(name, value)
    _upgrade_loss_fields(flat)
    return unflatten(flat)


def _upgrade_loss_fields(flat: dict) -> None:
    """Loss parameters as saved before the registry (flat `loss.<param>`, 0 for a None window) move into
    every registered loss that has a parameter of that name (`loss.<loss>.<param>`); a registered loss
    missing from the saved config gets its defaults (it did not exist then, so the run did not use it)."""
    from spikejax import losses

    old = {k.split(".", 1)[1]: flat.pop(k) for k in list(flat)
           if k.count(".") == 1 and k.startswith("loss.") and k.split(".", 1)[1] not in losses.registry.RESERVED}
    for name in losses.names():
        for p in losses.get(name).params:
            value = old.get(p.name, p.default)
            if p.optional and value == 0:
                value = None
            flat.setdefault(f"loss.{name}.{p.name}", value)


def unflatten(flat: dict) -> dict:
    tree: dict = {}
    for name, value in flat.items():
        *path, last = name.split(".")
        node = tree
        for part in path:
            node = node.setdefault(part, {})
        node[last] = value
    return tree
