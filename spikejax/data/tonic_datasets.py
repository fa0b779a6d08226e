"""NMNIST, DVS Gesture and N-TIDIGITS18 read through tonic 1.7's dataset classes.

Each `*_samples(data_dir, split, ...)` yields (events, label) after checking every sample, and raises a
ValueError naming the file for truncated, corrupt, mis-shaped, empty or incomplete data. The tonic
subclasses below only change what tonic gets wrong for us:

* existence checks accept any extracted copy (tonic wants e.g. >= 10,000 files, which fixtures and
  partial copies lack) and downloads go through `download.fetch` (md5 checked, clear errors);
* DVSGesture's file list is sorted, so sample order is the same on every machine;
* N-TIDIGITS18's h5py handle is closed after reading, so nothing unpicklable outlives loading, and
  its md5 is checked on download.
"""
from __future__ import annotations

import os

import numpy as np
import tonic

from spikejax.data import download
from spikejax.data.events import check_events

# URLs and checksums as tonic 1.7 publishes them; tests point these at a local server.
NMNIST_ARCHIVES = {
    "train": download.Archive(tonic.datasets.NMNIST.train_url, "train.zip", tonic.datasets.NMNIST.train_md5),
    "test": download.Archive(tonic.datasets.NMNIST.test_url, "test.zip", tonic.datasets.NMNIST.test_md5),
}
DVS_GESTURE_ARCHIVES = {
    "train": download.Archive(tonic.datasets.DVSGesture.train_url, "ibmGestureTrain.tar.gz",
                              tonic.datasets.DVSGesture.train_md5),
    "test": download.Archive(tonic.datasets.DVSGesture.test_url, "ibmGestureTest.tar.gz",
                             tonic.datasets.DVSGesture.test_md5),
}
NTIDIGITS_ARCHIVE = download.Archive(tonic.datasets.NTIDIGITS18.base_url, "n-tidigits.hdf5",
                                     tonic.datasets.NTIDIGITS18.file_md5)


def _has_files(folder: str, suffix: str) -> bool:
    for _, _, files in os.walk(folder):
        if any(f.endswith(suffix) for f in files):
            return True
    return False


def _split_flag(split: str) -> bool:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return split == "train"


class NMNIST(tonic.datasets.NMNIST):  # keeps tonic's class name, hence its folder <data_dir>/NMNIST
    archives = NMNIST_ARCHIVES

    def _check_exists(self) -> bool:
        return _has_files(os.path.join(self.location_on_system, self.folder_name), ".bin")

    def download(self) -> None:
        download.fetch("nmnist", self.archives["train" if self.train else "test"], self.location_on_system,
                       extract=True)


class DVSGesture(tonic.datasets.DVSGesture):
    archives = DVS_GESTURE_ARCHIVES

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        order = sorted(range(len(self.data)), key=lambda i: self.data[i])
        for field in ("data", "targets", "users", "lighting"):
            values = getattr(self, field)
            setattr(self, field, [values[i] for i in order])

    def _check_exists(self) -> bool:
        return _has_files(os.path.join(self.location_on_system, self.folder_name), ".npy")

    def download(self) -> None:
        download.fetch("dvs_gesture", self.archives["train" if self.train else "test"],
                       self.location_on_system, extract=True)


class NTIDIGITS18(tonic.datasets.NTIDIGITS18):
    archive = NTIDIGITS_ARCHIVE

    def download(self) -> None:
        download.fetch("ntidigits18", self.archive, self.location_on_system, extract=False)

    def close(self) -> None:
        self.data.close()


def nmnist_samples(data_dir: str, split: str, *, first_saccade_only: bool = False):
    dataset = NMNIST(data_dir, train=_split_flag(split), first_saccade_only=first_saccade_only)
    for i, path in enumerate(dataset.data):
        size = os.path.getsize(path)
        if size % 5:
            raise ValueError(f"{path}: truncated N-MNIST file ({size} bytes is not a whole number of "
                             "40-bit events)")
        events, label = dataset[i]
        check_events(events, dataset.sensor_size, path)
        yield events, label


def _nmnist_count(data_dir, split):
    return len(NMNIST(data_dir, train=_split_flag(split)).data)


def dvs_gesture_samples(data_dir: str, split: str):
    dataset = DVSGesture(data_dir, train=_split_flag(split))
    for i, path in enumerate(dataset.data):
        raw = np.load(path, mmap_mode="r")
        if raw.ndim != 2 or raw.shape[1] != 4:
            raise ValueError(f"{path}: expected an [N, 4] array of (x, y, p, t_ms) events, got shape "
                             f"{raw.shape}")
        if not 0 <= dataset.targets[i] < len(dataset.classes):
            raise ValueError(f"{path}: label {dataset.targets[i]} outside 0..{len(dataset.classes) - 1}")
        events, label = dataset[i]
        check_events(events, dataset.sensor_size, path)
        yield events, label


def _dvs_gesture_count(data_dir, split):
    return len(DVSGesture(data_dir, train=_split_flag(split)).data)


def _open_ntidigits(data_dir, split):
    path = os.path.join(data_dir, "NTIDIGITS18", NTIDIGITS_ARCHIVE.filename)
    try:
        return NTIDIGITS18(data_dir, train=_split_flag(split), single_digits=True), path
    except KeyError as error:
        raise ValueError(f"{path}: missing HDF5 key {error}; expected '{split}_labels', "
                         f"'{split}_addresses' and '{split}_timestamps'") from None


def ntidigits18_samples(data_dir: str, split: str):
    dataset, path = _open_ntidigits(data_dir, split)
    try:
        for i in range(len(dataset)):
            sample_id = dataset._samples[i]
            origin = f"{path} sample {sample_id!r}"
            try:
                events, label = dataset[i]
            except KeyError as error:
                raise ValueError(f"{origin}: missing HDF5 key {error} under '{split}_addresses' or "
                                 f"'{split}_timestamps'") from None
            check_events(events, dataset.sensor_size, origin)
            yield events, label
    finally:
        dataset.close()


def _ntidigits_count(data_dir, split):
    dataset, _ = _open_ntidigits(data_dir, split)
    try:
        return len(dataset)
    finally:
        dataset.close()
