"""DVS Gesture through tonic 1.7's `tonic.datasets.DVSGesture`: 128x128x2, 11 gesture classes.

On disk: <data_dir>/DVSGesture/ibmGesture{Train,Test}/userNN_<lighting>/<label>.npy, each an [N, 4] array of
(x, y, p, t in ms). The subclass sorts tonic's file list (tonic does not, so order would differ between
machines), accepts any extracted copy and downloads through `download.fetch`. tonic's figshare URL is
currently behind a web-application firewall (tonic issues #329/#330): see README, 'Datasets'.
"""
from __future__ import annotations

import os

import numpy as np

from spikejax.data import download
from spikejax.data.events import check_events
from spikejax.errors import DataError, require

tonic = require("tonic", "datasets", "the dvs_gesture dataset")  # an extra: the core install has no tonic

ARCHIVES = {
    "train": download.Archive(tonic.datasets.DVSGesture.train_url, "ibmGestureTrain.tar.gz",
                              tonic.datasets.DVSGesture.train_md5),
    "test": download.Archive(tonic.datasets.DVSGesture.test_url, "ibmGestureTest.tar.gz",
                             tonic.datasets.DVSGesture.test_md5),
}


class DVSGesture(tonic.datasets.DVSGesture):
    archives = ARCHIVES

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        order = sorted(range(len(self.data)), key=lambda i: self.data[i])
        for field in ("data", "targets", "users", "lighting"):
            values = getattr(self, field)
            setattr(self, field, [values[i] for i in order])

    def _check_exists(self) -> bool:
        return download.has_files(os.path.join(self.location_on_system, self.folder_name), ".npy")

    def download(self) -> None:
        download.fetch("dvs_gesture", self.archives["train" if self.train else "test"],
                       self.location_on_system, extract=True)


REMEDY = "replace it with the archive's copy (delete the split's folder and rerun to extract it again)"


def _read(path: str) -> np.ndarray:
    """The [N, 4] (x, y, p, t_ms) array of one file; a DataError naming it for a truncated, pickled or
    non-numpy file or another shape."""
    try:
        raw = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise DataError(f"{path}: not a readable numeric .npy file ({type(error).__name__}: {error}); {REMEDY}") \
            from None
    if raw.ndim != 2 or raw.shape[1] != 4 or raw.dtype.kind not in "iuf":
        raise DataError(f"{path}: expected an [N, 4] array of (x, y, p, t_ms) events, got shape {raw.shape} of "
                        f"{raw.dtype}; {REMEDY}")
    return np.asarray(raw)


def samples(data_dir: str, split: str):
    """Yields (events, label) for every file of the split, in sorted path order."""
    dataset = DVSGesture(data_dir, train=download.train_flag(split))
    for i, path in enumerate(dataset.data):
        raw = _read(path)
        if not 0 <= dataset.targets[i] < len(dataset.classes):
            raise DataError(f"{path}: label {dataset.targets[i]} outside 0..{len(dataset.classes) - 1}")
        events = np.zeros(len(raw), dataset.dtype)  # as tonic's __getitem__: t from ms to us
        events["x"], events["y"], events["p"], events["t"] = raw[:, 0], raw[:, 1], raw[:, 2], raw[:, 3] * 1000
        check_events(events, dataset.sensor_size, path)
        yield events, dataset.targets[i]


def sources(data_dir: str, split: str) -> list[str]:
    """The files the split is read from (downloading them when missing)."""
    return list(DVSGesture(data_dir, train=download.train_flag(split)).data)


def count(data_dir: str, split: str) -> int:
    return len(DVSGesture(data_dir, train=download.train_flag(split)).data)
