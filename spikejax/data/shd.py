"""SHD (Spiking Heidelberg Digits) through tonic 1.7's `tonic.datasets.SHD`: spoken digits 0-9 in English
and German (20 classes) as spikes of 700 cochlea channels.

On disk: <data_dir>/SHD/shd_{train,test}.h5, one HDF5 file per split (the layout the authors publish):

  spikes/times[i]   vlen float16, spike times of sample i in seconds
  spikes/units[i]   vlen uint16, the channel (0-699) of each spike
  labels[i]         uint16, 0-19 (names in extra/keys)
  extra/speaker[i], extra/keys, extra/meta_info/{gender, age, body_height}

Downloads fetch tonic's archive shd_{split}.h5.zip (md5 checked, extracted). The authors' own
shd_{split}.h5.gz, or an already extracted shd_{split}.h5, placed in <data_dir>/SHD/ by hand, is used as
is (the .gz is decompressed first; it has no published md5 here). The subclass fixes two things of tonic's:
it wants the .zip present even when the .h5 is, and it counts any .h5 in the folder as this split's.
Samples are read here with one h5py handle (tonic opens the file for every sample), after checking that
labels, spikes/times and spikes/units have one entry per sample and the labels are whole numbers in 0-19;
anything else is a DataError naming the file.
"""
from __future__ import annotations

import os

import numpy as np

from spikejax.data import download
from spikejax.data.events import check_events
from spikejax.errors import DataError, require

tonic = require("tonic", "datasets", "the shd dataset")  # an extra: the core install has no tonic

# URLs and checksums as tonic publishes them; tests point these at a local server.
ARCHIVES = {
    "train": download.Archive(tonic.datasets.SHD.base_url + tonic.datasets.SHD.train_zip,
                              tonic.datasets.SHD.train_zip, tonic.datasets.SHD.train_md5),
    "test": download.Archive(tonic.datasets.SHD.base_url + tonic.datasets.SHD.test_zip,
                             tonic.datasets.SHD.test_zip, tonic.datasets.SHD.test_md5),
}
NUM_CLASSES = 20  # names: spikejax.data.SHD_CLASSES


class SHD(tonic.datasets.SHD):
    archives = ARCHIVES

    def _check_exists(self) -> bool:
        return os.path.isfile(os.path.join(self.location_on_system, self.data_filename))

    def download(self) -> None:
        path = os.path.join(self.location_on_system, self.data_filename)
        if os.path.isfile(path + ".gz"):  # the authors' own compressed file, placed by hand
            download.gunzip(path + ".gz", path)
            return
        split = "train" if self.filename == tonic.datasets.SHD.train_zip else "test"
        download.fetch("shd", self.archives[split], self.location_on_system, extract=True)


REMEDY = "replace it with a complete copy (delete it and rerun to download it again)"


def _open(data_dir: str, split: str) -> tuple[SHD, str]:
    """tonic's dataset (downloading when missing) and the split's .h5 path."""
    path = os.path.join(data_dir, "SHD", f"shd_{split}.h5")
    try:
        dataset = SHD(data_dir, train=download.train_flag(split))
    except KeyError as error:
        raise DataError(f"{path}: missing HDF5 key {error}; expected 'extra/keys' and 'extra/speaker'; {REMEDY}") \
            from None
    except OSError as error:  # h5py: not an HDF5 file, truncated, ...
        raise DataError(f"{path}: not a readable HDF5 file ({error}); {REMEDY}") from None
    return dataset, path


def _checked_labels(file, path: str) -> np.ndarray:
    """The labels as int64 after checking that spikes/times, spikes/units and labels hold one entry per
    sample and that every label is a whole number in 0-19."""
    try:
        counts = {key: len(file[key]) for key in ("spikes/times", "spikes/units", "labels")}
        labels = np.asarray(file["labels"][()])
    except KeyError as error:
        raise DataError(f"{path}: missing HDF5 key {error}; expected 'spikes/times', 'spikes/units' and "
                        f"'labels'; {REMEDY}") from None
    if len(set(counts.values())) > 1:
        raise DataError(f"{path}: {counts['labels']} labels for {counts['spikes/times']} samples (spikes/times) "
                        f"and {counts['spikes/units']} (spikes/units); each sample needs one label: {REMEDY}")
    if labels.dtype.kind not in "iuf" or labels.ndim != 1:
        raise DataError(f"{path}: labels must be a 1-d integer array, got {labels.dtype} of shape {labels.shape}; "
                        f"{REMEDY}")
    if labels.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(labels) | (labels != np.round(labels)))
        if len(bad):
            raise DataError(f"{path}: labels must be whole numbers; samples {bad[:5].tolist()} have labels "
                            f"{labels[bad[:5]].tolist()}{' ...' if len(bad) > 5 else ''}; {REMEDY}")
    labels = labels.astype(np.int64)
    outside = np.flatnonzero((labels < 0) | (labels >= NUM_CLASSES))
    if len(outside):
        i = int(outside[0])
        raise DataError(f"{path} sample {i}: label {labels[i]} is outside 0-{NUM_CLASSES - 1}; {REMEDY}")
    return labels


def samples(data_dir: str, split: str):
    """Yields (events, label) for every sample of the split in file order; events (t [us], x = channel, p = 1)
    read as tonic reads them (float16 seconds widened to float64, times 1e6, truncated to integer us)."""
    import h5py

    dataset, path = _open(data_dir, split)
    with h5py.File(path, "r") as file:
        labels = _checked_labels(file, path)
        times, units = file["spikes/times"], file["spikes/units"]
        for i in range(len(labels)):
            try:
                t, x = np.asarray(times[i]), np.asarray(units[i])
            except OSError as error:
                raise DataError(f"{path} sample {i}: cannot read it ({error}); {REMEDY}") from None
            if t.shape != x.shape or t.ndim != 1:
                raise DataError(f"{path} sample {i}: {t.size} spike times for {x.size} channels; {REMEDY}")
            events = np.zeros(len(t), dataset.dtype)
            events["t"], events["x"], events["p"] = t.astype(np.float64) * 1e6, x, 1
            check_events(events, dataset.sensor_size, f"{path} sample {i}")
            yield events, int(labels[i])


def sources(data_dir: str, split: str) -> list[str]:
    """The files the split is read from (downloading them when missing)."""
    return [_open(data_dir, split)[1]]


def count(data_dir: str, split: str) -> int:
    import h5py

    _, path = _open(data_dir, split)
    with h5py.File(path, "r") as file:
        return len(_checked_labels(file, path))
