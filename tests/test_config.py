"""Run configs: every field has a rule that refuses a bad value, the registries' fields (losses, neuron
kinds, models) are read from the registries, and configs saved by older versions read in today's names."""
import re

import pytest

from spikejax import config as config_lib
from spikejax import data, errors


def test_every_config_field_has_a_rule_and_each_rule_refuses_a_bad_value():
    from configs import default, for_dataset

    for name in data.DATASETS:
        config_lib.validate(for_dataset(name))
    rules = config_lib._rules()
    fields = set(config_lib.flatten(config_lib.to_dict(default.get_config())))
    assert fields == set(rules)
    bad = {"dataset": "mnist", "data_dir": "", "seed": -1, "data.time_bins": 0, "data.bin_width_us": 2.5,
           "data.downsample": 0, "data.validation_fraction": 1.0, "data.polarity": 1, "data.binarize": "yes",
           "model.bias": "no", "model.output": "spike",
           "data.options": 3, "model.name": "lstm",
           "model.hidden": (0,), "model.dtype": "float16", "model.init_scale": 0.0, "model.neuron.kind": "if",
           "model.neuron.beta": -0.1, "model.neuron.alpha": 1.01, "model.neuron.threshold": 0.0,
           "model.neuron.reset": "none", "model.neuron.surrogate": "relu", "model.neuron.surrogate_params": [1],
           "model.neuron.detach_reset": 0, "model.neuron.recompute_chunk": 0, "model.neuron.implementation": "cuda",
           "model.neuron.learn_beta": 1, "model.neuron.learn_threshold": "yes", "model.neuron.learn_alpha": None,
           "model.neuron.learn_shape": "channel", "optimizer.neuron_learning_rate_scale": 0.0,
           "model.delay.kernel_size": 0, "model.delay.per": "neuron", "model.delay.learn": "no",
           "model.delay.init": "normal", "model.delay.sigma_start": 0.0, "model.delay.sigma_end": -1.0,
           "model.delay.anneal_fraction": 0.0, "optimizer.delay_learning_rate_scale": 0.0,
           "loss.name": "ce", "loss.nll.window": 0, "loss.nll.min_count": 0.0, "loss.mse.true_rate": 2.0,
           "loss.mse.false_rate": -1.0, "loss.softmax.temperature": float("nan"), "loss.rate_penalty": -1.0,
           "loss.first_spike.temperature": 0.0, "loss.first_spike.early_weight": -0.1,
           "loss.first_spike.early_time": 0.0, "loss.tet.mse_weight": 1.5, "loss.tet.mse_target": float("inf"),
           "loss.target_rate": 1.5,
           "optimizer.name": "adam", "optimizer.learning_rate": float("inf"), "optimizer.momentum": 1.5,
           "optimizer.schedule": "linear", "optimizer.warmup_steps": -1, "optimizer.grad_clip": 0.0,
           "optimizer.weight_decay": -0.1, "batch_size": True, "eval_batch_size": 0, "epochs": 0, "max_steps": 0,
           "log_every": 0, "checkpoint_every_steps": 0, "keep_checkpoints": 0, "plots": "no",
           "data.augment.time_shift": -1, "data.augment.time_jitter": 1.5, "data.augment.spatial_shift": "2",
           "data.augment.channel_shift": -2, "data.augment.spike_drop": 1.1, "data.augment.channel_drop": -0.1,
           "data.augment.cutmix": float("nan"), "data.augment.cutmix_mode": "box"}
    assert set(bad) == set(rules)
    for field, value in bad.items():
        config = default.get_config()
        flat = config_lib.flatten(config_lib.to_dict(config))
        flat[field] = value
        with pytest.raises(errors.ConfigError, match=re.escape(f"config field {field}")):
            config_lib.validate(config_lib.unflatten(flat))
    config = default.get_config()
    config.data.options = {"first_saccade_only": True}  # an NMNIST option on digits_events
    with pytest.raises(errors.ConfigError, match="takes options"):
        config_lib.validate(config)


def test_older_saved_configs_are_read_in_todays_names():
    from configs import default

    saved = config_lib.to_dict(default.get_config())
    saved["model"]["neuron"]["checkpoint_every"] = saved["model"]["neuron"].pop("recompute_chunk") or 0
    # loss parameters were flat fields before the registry, with 0 for "no window"
    for name in ("mse", "softmax", "nll"):
        saved["loss"].update(saved["loss"].pop(name))
    saved["loss"]["window"], saved["loss"]["temperature"], saved["max_steps"] = 0, 2.5, 0
    del saved["data"]["validation_fraction"]  # added after 0.1.0, whose runs trained on the whole split
    del saved["model"]["output"]  # added with membrane losses; every older run had a spiking output layer
    upgraded = config_lib.upgrade(saved)
    assert upgraded["data"]["validation_fraction"] == 0.0 and upgraded["model"]["output"] == "spiking"
    neuron = upgraded["model"]["neuron"]
    assert neuron["recompute_chunk"] is None and "checkpoint_every" not in neuron
    assert upgraded["loss"]["nll"]["window"] is None and upgraded["max_steps"] is None
    assert upgraded["loss"]["softmax"]["temperature"] == 2.5 and "temperature" not in upgraded["loss"]
    config_lib.validate(upgraded)


def test_a_loss_parameter_block_exists_per_registered_loss_and_only_the_chosen_one_matters():
    from configs import default
    from spikejax import losses

    config = default.get_config()
    assert set(losses.names()) <= set(config.loss)
    assert config_lib.loss_parameters(config) == {"window": None, "min_count": 1.0}
    config.loss.name = "softmax"
    config.loss.softmax.temperature = 2.0
    assert config_lib.loss_label(config) == "softmax(temperature=2)"
    flat = config_lib.flatten(config_lib.to_dict(config))
    assert config_lib.inactive_loss_fields(flat) >= {"loss.nll.window", "loss.mse.true_rate"}
    assert not any(k.startswith("loss.softmax.") for k in config_lib.inactive_loss_fields(flat))
    config.loss.name, config.loss.nll.window = "nll", 31
    with pytest.raises(errors.ConfigError, match=r"window = 31 must be <= data.time_bins \(30\)"):
        config_lib.validate(config)
    config.data.time_bins = 31
    config_lib.validate(config)
    config.loss.name = "mse"
    config.loss.mse.true_rate, config.loss.mse.false_rate = 0.1, 0.2
    with pytest.raises(errors.ConfigError, match="false_rate 0.2 must be < true_rate 0.1"):
        config_lib.validate(config)


def test_model_and_neuron_fields_come_from_their_registries():
    from configs import default

    config = default.get_config()
    config.model.name, config.model.hidden = "conv", (64, 64)
    with pytest.raises(errors.ConfigError, match="the conv model takes one dense width"):
        config_lib.validate(config)
    config.model.name, config.model.hidden, config.model.neuron.kind = "rnn", (32,), "cuba_lif"
    with pytest.raises(errors.ConfigError, match="needs model.neuron.kind = 'lif'"):
        config_lib.validate(config)
    config.model.name, config.model.neuron.learn_alpha = "mlp", True
    config_lib.validate(config)  # cuba_lif has an alpha
    config.model.neuron.kind = "lif"
    with pytest.raises(errors.ConfigError, match="kind 'lif' has none"):
        config_lib.validate(config)
