"""Datasets by name -> binned, cached, time-major splits.

  load("digits_events", "train", data_dir="~/.cache/spikejax")        # embedded, offline
  load("dvs_gesture", "test", data_dir="/data", binning=Binning(300, 5000, downsample=4))

Names: "digits_events" (embedded NMNIST stand-in), "timing_events" (embedded, the class in spike timing
only), "nmnist", "dvs_gesture", "ntidigits18", "shd". Real datasets
are downloaded into <data_dir>/<TonicClassName>/ when missing (see README, 'Datasets'); binned tensors
are cached in <data_dir>/cache/, keyed by the binning, the options and the source files' identity (size and
content hash), so a replaced file is read afresh.
"""
from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Callable

from spikejax.data import digits_events, timing_events
from spikejax.data.cache import CachedSplit, load_or_build
from spikejax.data.events import Binning, frame_shape
from spikejax.data.pipeline import Batch, SeededTrainIterator, TrainIterator, eval_batches, prefetch

FALLBACK_DATA_DIR = "~/.cache/spikejax"


def default_data_dir() -> str:
    """$SPIKEJAX_DATA_DIR if set (read at each call, not at import), else ~/.cache/spikejax."""
    return os.environ.get("SPIKEJAX_DATA_DIR") or FALLBACK_DATA_DIR


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    sensor_size: tuple[int, int, int]  # tonic's (W, H, P)
    classes: tuple[str, ...]
    default_binning: Binning
    samples: Callable  # (data_dir, split, **options) -> iterator of (events, label)
    count: Callable | None = None  # (data_dir, split) -> number of samples, for progress output
    options: tuple[str, ...] = ()  # source options accepted by `samples`
    sources: Callable | None = None  # (data_dir, split) -> the files read (downloaded when missing); cache key

    @property
    def num_classes(self) -> int:
        return len(self.classes)


# SHD's labels: 0-9 the English digits zero-nine, 10-19 the German null-neun (the files' extra/keys)
SHD_CLASSES = tuple(f"english {d}" for d in range(10)) + tuple(f"german {d}" for d in range(10))


def _digits_samples(data_dir, split, *, seed: int = 0):
    del data_dir
    return digits_events.samples(split, seed=seed)


def _timing_samples(data_dir, split, *, seed: int = 0):
    del data_dir
    return timing_events.samples(split, seed=seed)


def _registry() -> dict[str, DatasetInfo]:
    # tonic (the `datasets` extra) is imported on first use: the embedded datasets need only numpy, scipy and
    # scikit-learn (timing_events only numpy), and without tonic the others raise
    # errors.MissingDependencyError naming the extra.
    def tonic_entry(name):
        module = lambda: importlib.import_module(f"spikejax.data.{name}")
        samples = lambda data_dir, split, **options: module().samples(os.path.expanduser(data_dir), split, **options)
        count = lambda data_dir, split: module().count(os.path.expanduser(data_dir), split)
        sources = lambda data_dir, split: module().sources(os.path.expanduser(data_dir), split)
        return samples, count, sources

    nmnist, nmnist_count, nmnist_sources = tonic_entry("nmnist")
    dvs, dvs_count, dvs_sources = tonic_entry("dvs_gesture")
    tidigits, tidigits_count, tidigits_sources = tonic_entry("ntidigits18")
    shd, shd_count, shd_sources = tonic_entry("shd")
    return {
        "digits_events": DatasetInfo(digits_events.SENSOR_SIZE, tuple(digits_events.CLASSES),
                                     Binning(time_bins=30, bin_width_us=10_000), _digits_samples,
                                     lambda d, s: len(digits_events.split_indices(s)), ("seed",)),
        "timing_events": DatasetInfo(timing_events.SENSOR_SIZE, tuple(timing_events.CLASSES),
                                     Binning(time_bins=80, bin_width_us=1_000, polarity=False), _timing_samples,
                                     lambda d, s: len(timing_events.split_indices(s)), ("seed",)),
        "nmnist": DatasetInfo((34, 34, 2), tuple(str(d) for d in range(10)),
                              Binning(time_bins=100, bin_width_us=3_000), nmnist, nmnist_count,
                              ("first_saccade_only",), nmnist_sources),
        "dvs_gesture": DatasetInfo((128, 128, 2), (
            "hand clapping", "right hand wave", "left hand wave", "right arm cw", "right arm ccw",
            "left arm cw", "left arm ccw", "arm roll", "air drums", "air guitar", "other gestures"),
            Binning(time_bins=300, bin_width_us=5_000, downsample=4), dvs, dvs_count, sources=dvs_sources),
        "ntidigits18": DatasetInfo((64, 1, 1), ("o", "1", "2", "3", "4", "5", "6", "7", "8", "9", "z"),
                                   Binning(time_bins=250, bin_width_us=5_000, polarity=False), tidigits,
                                   tidigits_count, sources=tidigits_sources),
        "shd": DatasetInfo((700, 1, 1), SHD_CLASSES, Binning(time_bins=100, bin_width_us=10_000, polarity=False),
                           shd, shd_count, sources=shd_sources),
    }


DATASETS: dict[str, DatasetInfo] = _registry()


def get_info(name: str) -> DatasetInfo:
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}") from None


def load(name: str, split: str, *, data_dir: str | None = None, binning: Binning | None = None,
         cache_dir: str | None = None, **options) -> CachedSplit:
    """The binned split of dataset `name`, from the cache or built (and downloaded) on first use.
    `data_dir` None: `default_data_dir()`."""
    info = get_info(name)
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    unknown = set(options) - set(info.options)
    if unknown:
        raise ValueError(f"dataset {name!r} takes options {list(info.options)}, got {sorted(unknown)}")
    binning = binning or info.default_binning
    data_dir = os.path.expanduser(data_dir or default_data_dir())
    return load_or_build(
        name=name, split=split, cache_dir=cache_dir or os.path.join(data_dir, "cache"),
        sensor_size=info.sensor_size, binning=binning, classes=list(info.classes),
        source_options=dict(sorted(options.items())),
        samples=lambda: info.samples(data_dir, split, **options),
        num_samples=(lambda: info.count(data_dir, split)) if info.count else None,
        sources=(lambda: info.sources(data_dir, split)) if info.sources else None)


__all__ = ["Batch", "Binning", "CachedSplit", "DATASETS", "DatasetInfo", "SeededTrainIterator", "TrainIterator",
           "default_data_dir", "eval_batches", "frame_shape", "get_info", "load", "prefetch"]
