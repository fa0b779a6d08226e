"""Config -> objects: the neuron, binning, model, loss, optimizer, initial train state and data splits.

Every function reads a (validated, see `spikejax.config.validate`) run config and returns one object;
`train` and `evaluate` both build through here, so a run and its evaluation cannot disagree.
"""
from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from spikejax import augment as augment_lib
from spikejax import config as config_lib
from spikejax import data as data_lib
from spikejax import losses, models, parallel
from spikejax.data import split as split_lib
from spikejax.data.device import unpack_spikes


def neuron(config) -> models.Neuron:
    n = config.model.neuron
    return models.Neuron(kind=n.kind, beta=float(n.beta), alpha=float(n.alpha), threshold=float(n.threshold),
                         reset=n.reset, surrogate=n.surrogate,
                         surrogate_params=tuple(sorted((k, float(v)) for k, v in dict(n.surrogate_params).items())),
                         detach_reset=bool(n.detach_reset), recompute_chunk=n.recompute_chunk,
                         implementation=n.implementation, learn_beta=bool(n.learn_beta),
                         learn_threshold=bool(n.learn_threshold), learn_alpha=bool(n.learn_alpha),
                         learn_shape=n.learn_shape)


def binning(config) -> data_lib.Binning:
    d = config.data
    return data_lib.Binning(time_bins=d.time_bins, bin_width_us=d.bin_width_us, downsample=d.downsample,
                            polarity=d.polarity, binarize=d.binarize)


def compute_dtype(name: str) -> str:
    """"auto" is bfloat16 on GPU/TPU (f32 parameters and membrane) and float32 on CPU, where bf16
    matmuls and convolutions are emulated and several times slower (BENCHMARKS.md)."""
    if name == "auto":
        return "bfloat16" if jax.default_backend() in ("gpu", "tpu") else "float32"
    return name


def frame_shape(config) -> tuple[int, ...]:
    """Per-step input shape of the config's dataset and binning, e.g. (2, 34, 34)."""
    return tuple(data_lib.frame_shape(data_lib.get_info(config.dataset).sensor_size, binning(config)))


def model(config, frame=None, num_classes=None) -> nnx.Module:
    """The config's model for time-major inputs [T, B, *frame] (default: the dataset's frame and classes), T =
    data.time_bins: an input of any other length raises a ValueError naming both."""
    m = config.model
    frame = frame_shape(config) if frame is None else tuple(frame)
    num_classes = data_lib.get_info(config.dataset).num_classes if num_classes is None else num_classes
    return models.build(m.name, frame, num_classes, neuron(config), seed=config.seed, hidden=tuple(m.hidden),
                        dtype=compute_dtype(m.dtype), init_scale=m.init_scale, bias=m.bias, delay=delay(config),
                        output=m.output, time_steps=int(config.data.time_bins))


def delayed(config) -> bool:
    """Whether the config's model has synaptic delays (reads `model.delay` and the training progress)."""
    return models.MODELS[config.model.name].delayed


def delay(config) -> models.Delay:
    """The delay settings (`model.delay`; read by delayed models such as "delay_mlp")."""
    d = config.model.delay
    return models.Delay(kernel_size=int(d.kernel_size), per=d.per, learn=bool(d.learn), init=d.init,
                        sigma_start=None if d.sigma_start is None else float(d.sigma_start),
                        sigma_end=float(d.sigma_end), anneal_fraction=float(d.anneal_fraction))


def loss(config) -> Callable:
    """(outputs {"spikes": [T, B, C], "membrane": ...}, labels [B], mask [B]) -> scalar: the configured loss with its
    parameters, on the output it reads (`spikejax.losses` registry)."""
    spec = losses.get(config.loss.name)
    params = config_lib.loss_parameters(config)
    return lambda outputs, labels, mask: spec.fn(outputs[spec.reads], labels, mask=mask, **params)


def reads(config) -> tuple[str, ...]:
    """What the configured loss reads of the model's output layer, e.g. ("spikes",) or ("membrane",): the
    `reads` of `apply_model` and of the train and eval steps (the membrane is computed only when read)."""
    return (losses.get(config.loss.name).reads,)


def gives(config) -> tuple[str, ...]:
    """What the config's output layer (`model.output`) can give a loss: ("spikes", "membrane") or ("membrane",)."""
    return models.OUTPUTS[config.model.output]


def readout(config) -> Callable:
    """outputs -> predictions int [T, B] from every time prefix: the configured loss's readout."""
    spec = losses.get(config.loss.name)
    return lambda outputs: spec.readout(outputs[spec.reads])


def augment(config) -> augment_lib.Augment | None:
    """The training inputs' augmentation (`spikejax.augment`) of config.data.augment, or None when every
    augmentation is off (the step then runs exactly as without one)."""
    a = config.data.augment
    spec = augment_lib.Augment(time_shift=a.time_shift, time_jitter=a.time_jitter, spatial_shift=a.spatial_shift,
                               channel_shift=a.channel_shift, spike_drop=float(a.spike_drop),
                               channel_drop=float(a.channel_drop), cutmix=float(a.cutmix),
                               cutmix_mode=a.cutmix_mode, binary=bool(config.data.binarize))
    return spec if spec.active else None


def report_facts(config) -> dict:
    """What eval.json repeats of the run: dataset, loss label, time bins and their width (us)."""
    return {"dataset": config.dataset, "loss": loss_label(config), "time_bins": config.data.time_bins,
            "bin_width_us": config.data.bin_width_us}


def loss_label(config) -> str:
    """The loss's name as reports show it, e.g. "nll(window=10)"."""
    return config_lib.loss_label(config)


def _names(path) -> set:
    """The keys of a parameter's tree path (a flax Variable adds a trailing `.value` key, so any key may be
    the parameter's name)."""
    return {getattr(key, "key", getattr(key, "name", None)) for key in path}


def _is_neuron_parameter(path) -> bool:
    """Whether a parameter's tree path names a learnable neuron parameter (`models.RAW_NAMES`)."""
    return bool(_names(path) & set(models.RAW_NAMES))


def _is_delay(path) -> bool:
    """Whether a parameter's tree path names a synaptic delay (a delayed model's `delay`)."""
    return "delay" in _names(path)


def _scale_updates(neuron_factor: float, delay_factor: float) -> optax.GradientTransformation:
    """Multiplies the updates of the learnable neuron parameters by `neuron_factor` and those of the delays
    by `delay_factor` (stateless)."""
    def factor(path):
        return neuron_factor if _is_neuron_parameter(path) else delay_factor if _is_delay(path) else 1.0

    def scaled(path, u):
        f = factor(path)
        return u if f == 1.0 else u * f

    def update(updates, state, params=None):
        del params
        return jax.tree_util.tree_map_with_path(scaled, updates), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def _schedule_shape(o, total_steps: int):
    """The learning-rate schedule with peak 1 (a function of the step count)."""
    warmup = min(o.warmup_steps, max(total_steps - 1, 0))
    if o.schedule == "cosine":
        return optax.warmup_cosine_decay_schedule(0.0, 1.0, warmup, max(total_steps, warmup + 1))
    return optax.join_schedules([optax.linear_schedule(0.0, 1.0, warmup), optax.constant_schedule(1.0)], [warmup])


def _chain(config, learning_rate, total_steps: int) -> optax.GradientTransformation:
    """Global-norm clip, then AdamW or SGD (+ decayed weights) at learning_rate x the schedule's shape."""
    o, n = config.optimizer, config.model.neuron
    shape = _schedule_shape(o, total_steps)
    lr = lambda count: learning_rate * shape(count)  # = peak * shape exactly (shape's peak is 1.0)
    learned = n.learn_beta or n.learn_threshold or n.learn_alpha
    has_delays = delayed(config)
    mask = None
    if learned or has_delays:  # weight decay never pulls neuron parameters or delays
        mask = lambda params: jax.tree_util.tree_map_with_path(
            lambda path, _: not (_is_neuron_parameter(path) or _is_delay(path)), params)
    if o.name == "adamw":
        update = optax.adamw(lr, weight_decay=o.weight_decay, mask=mask)
    else:
        update = optax.chain(optax.add_decayed_weights(o.weight_decay, mask=mask),
                             optax.sgd(lr, momentum=o.momentum or None))
    parts = [optax.clip_by_global_norm(o.grad_clip), update]
    neuron_scale = o.neuron_learning_rate_scale if learned else 1.0
    delay_scale = o.delay_learning_rate_scale if has_delays else 1.0
    if neuron_scale != 1.0 or delay_scale != 1.0:
        parts.append(_scale_updates(neuron_scale, delay_scale))
    return optax.chain(*parts)


def optimizer(config, total_steps: int) -> optax.GradientTransformation:
    """Global-norm clip, then AdamW or SGD (+ decayed weights) on the schedule, with the peak learning rate
    as a hyperparameter in the optimizer state (`optax.inject_hyperparams`: opt_state.hyperparams
    ["learning_rate"]; replicas each hold their own). With learnable neuron parameters (model.neuron.
    learn_*), weight decay skips them (it would pull beta and alpha to 0.5 and the threshold to log 2) and
    `optimizer.neuron_learning_rate_scale` multiplies their updates; a delayed model's delays (in steps) are
    never decayed either and `optimizer.delay_learning_rate_scale` multiplies their updates (DCLS trains
    positions at 150x the weights' learning rate)."""
    make = lambda learning_rate: _chain(config, learning_rate, total_steps)
    return optax.inject_hyperparams(make)(learning_rate=float(config.optimizer.learning_rate))


def legacy_state(config, params, total_steps: int = 1) -> dict:
    """A train state in the layout spikejax 0.1 saved ({params, opt_state of the chain without injected
    hyperparameters, step, rng}), the template to restore such a checkpoint with."""
    tx = _chain(config, float(config.optimizer.learning_rate), total_steps)
    return {"params": params, "opt_state": tx.init(params), "step": jnp.zeros((), jnp.int32),
            "rng": jax.random.PRNGKey(0)}


def from_legacy_state(legacy: dict, tx: optax.GradientTransformation) -> dict:
    """The state of today's layout holding a 0.1 checkpoint's values: its chain state becomes the injected
    optimizer's inner state (the same transformations, so training continues exactly)."""
    fresh = tx.init(legacy["params"])
    return {"params": legacy["params"], "opt_state": fresh._replace(inner_state=legacy["opt_state"]),
            "step": legacy["step"]}


def init_state(params, tx: optax.GradientTransformation, mesh) -> dict:
    """The train state {params, opt_state, step}, replicated on every device of `mesh`."""
    state = {"params": params, "opt_state": tx.init(params), "step": jnp.zeros((), jnp.int32)}
    return parallel.replicate(state, mesh)


def load_split(config, split: str) -> data_lib.CachedSplit:
    """The config's dataset split, binned and cached as the config says."""
    return data_lib.load(config.dataset, split, data_dir=config.data_dir, binning=binning(config),
                         **dict(config.data.options))


def training_splits(config, fold: int = 0) -> tuple[data_lib.CachedSplit, data_lib.CachedSplit | None]:
    """(the part of the training split that trains, the validation hold-out or None when
    data.validation_fraction is 0); `fold`: which disjoint hold-out of that fraction (0: the single
    run's; the sweep's tuning seeds each hold out their own); see `spikejax.data.split`."""
    full = load_split(config, "train")
    kept, held = split_lib.holdout(full.labels, config.data.validation_fraction, fold=fold)
    if not len(held):
        return full, None
    return full.subset(kept), full.subset(held)


def validation_folds(config) -> int:
    """How many disjoint validation folds data.validation_fraction gives (`training_splits`' folds)."""
    return split_lib.fold_count(config.data.validation_fraction)


def packed_frame_shape(split: data_lib.CachedSplit) -> tuple[int, ...] | None:
    """`frame_shape` for the train / eval steps: the split's frame when its batches travel bit-packed
    (TrainIterator / eval_batches with packed=split.packed), else None."""
    return tuple(split.frame_shape) if split.packed else None


def apply_model(graphdef, params, inputs, frame_shape=None, progress=None, reads=("spikes",)):
    """The model's (outputs, per-layer spikes) for inputs [T, b, ...]: outputs {"spikes": [T, b, C] (a
    spiking output layer), "membrane": [T, b, C] (when in `reads`, or an integrator output)}, see
    `models`; `reads`: what the losses read (`reads`), a ValueError naming the output layer when it cannot
    give it. With `frame_shape`, inputs are bit-packed uint8 [T, b, ceil(F/8)] and are unpacked on the
    device first. `progress` (training: step / total steps, a scalar in [0, 1]) reaches models that read it
    (`models.takes_progress`: a delayed model's annealed delay width); None (evaluation) gives their
    deployed form (integer delays). A model of your own without `outputs` gives spikes only, through
    `model(x, return_layers=True)` -> (output spikes, layers), as spikejax's models answer it."""
    if frame_shape is not None:
        inputs = unpack_spikes(inputs, frame_shape)
    model = nnx.merge(graphdef, params)
    extra = {"progress": progress} if models.takes_progress(model) else {}
    if not hasattr(model, "outputs"):
        if set(reads) - {"spikes"}:
            raise ValueError(f"the model {type(model).__name__} has no `outputs` method, so it gives output spikes "
                             f"only; the loss reads {tuple(reads)}")
        out, layers = model(inputs, return_layers=True, **extra)
        return {"spikes": out}, layers
    return model.outputs(inputs, tuple(reads), **extra)
