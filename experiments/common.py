"""Flags shared by the entry points, and config assembly from --config plus the short flags."""
from __future__ import annotations

import importlib

import ml_collections
from absl import flags
from ml_collections import config_flags

from spikejax.data import DATASETS
from spikejax.losses import LOSSES

config_flags.DEFINE_config_file(
    "config", None, "Config file, e.g. configs/dvs_gesture.py; override fields with --config.a.b=value. "
    "Default: configs/<dataset>.py.", lock_config=True)
flags.DEFINE_enum("dataset", None, sorted(DATASETS), "Dataset (default: the config's, digits_events).")
flags.DEFINE_enum("loss", None, sorted(LOSSES), "Loss (default: the config's, nll).")
flags.DEFINE_integer("window", None, "Sliding window in steps for --loss=nll (0: whole sample).")
flags.DEFINE_string("workdir", None, "Run directory (default: runs/<dataset>-<loss>); reused to resume.")
flags.DEFINE_string("data_dir", None, "Where datasets are downloaded and cached.")
flags.DEFINE_integer("epochs", None, "Training epochs.")
flags.DEFINE_integer("batch_size", None, "Global batch size (all devices and hosts together).")
flags.DEFINE_integer("seed", None, "Seed of the initialisation and data order.")
flags.DEFINE_integer("max_steps", None, "Stop after this many steps (smoke runs; 0: no limit).")
flags.DEFINE_string("coordinator_address", None, "Multi-process: host:port of process 0.")
flags.DEFINE_integer("num_processes", None, "Multi-process: number of processes.")
flags.DEFINE_integer("process_id", None, "Multi-process: this process's index.")
flags.DEFINE_bool("distributed", False, "Multi-process with auto-detection (TPU pods, Slurm, ...).")

FLAGS = flags.FLAGS


def quiet_logging() -> None:
    """Library INFO logs (orbax prints several lines per checkpoint) only with an explicit --verbosity."""
    from absl import logging

    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)


def initialize_distributed() -> None:
    from spikejax import parallel

    quiet_logging()

    parallel.initialize_distributed(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id,
                                    auto=FLAGS.distributed)


def dataset_config(name: str) -> ml_collections.ConfigDict:
    return importlib.import_module(f"configs.{name}").get_config()


def build_config() -> ml_collections.ConfigDict:
    """--config (or configs/<--dataset>.py), then the short flags on top."""
    config = FLAGS.config if FLAGS.config is not None else dataset_config(FLAGS.dataset or "digits_events")
    config = ml_collections.ConfigDict(config.to_dict())  # unlocked copy
    overrides = {"dataset": FLAGS.dataset, "data_dir": FLAGS.data_dir, "epochs": FLAGS.epochs,
                 "batch_size": FLAGS.batch_size, "seed": FLAGS.seed, "max_steps": FLAGS.max_steps}
    for key, value in overrides.items():
        if value is not None:
            config[key] = value
    if FLAGS.loss is not None:
        config.loss.name = FLAGS.loss
    if FLAGS.window is not None:
        config.loss.window = FLAGS.window
    if config.dataset not in DATASETS:
        raise ValueError(f"unknown dataset {config.dataset!r}; choose one of {sorted(DATASETS)}")
    return config


def default_workdir(config) -> str:
    suffix = f"-w{config.loss.window}" if config.loss.window else ""
    return f"runs/{config.dataset}-{config.loss.name}{suffix}"

