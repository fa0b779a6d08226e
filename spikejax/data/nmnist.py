"""NMNIST through tonic 1.7's `tonic.datasets.NMNIST`: 34x34x2 saccade recordings of MNIST, 10 classes.

On disk: <data_dir>/NMNIST/{Train,Test}/<digit>/<id>.bin, 40-bit events (x, y, polarity, 23-bit us).
`samples()` checks every file and raises a DataError naming it for truncated, out-of-range or empty data.
The subclass keeps tonic's class name (hence its folder); it accepts any extracted copy (tonic wants
>= 10,000 files) and downloads through `download.fetch` (md5 checked, clear errors).
"""
from __future__ import annotations

import os

from spikejax.data import download
from spikejax.data.events import check_events
from spikejax.errors import DataError, require

tonic = require("tonic", "datasets", "the nmnist dataset")  # an extra: the core install has no tonic

# URLs and checksums as tonic publishes them; tests point these at a local server.
ARCHIVES = {
    "train": download.Archive(tonic.datasets.NMNIST.train_url, "train.zip", tonic.datasets.NMNIST.train_md5),
    "test": download.Archive(tonic.datasets.NMNIST.test_url, "test.zip", tonic.datasets.NMNIST.test_md5),
}


class NMNIST(tonic.datasets.NMNIST):
    archives = ARCHIVES

    def _check_exists(self) -> bool:
        return download.has_files(os.path.join(self.location_on_system, self.folder_name), ".bin")

    def download(self) -> None:
        download.fetch("nmnist", self.archives["train" if self.train else "test"], self.location_on_system,
                       extract=True)


def samples(data_dir: str, split: str, *, first_saccade_only: bool = False):
    """Yields (events, label) for every file of the split, in sorted path order."""
    dataset = NMNIST(data_dir, train=download.train_flag(split), first_saccade_only=first_saccade_only)
    for i, path in enumerate(dataset.data):
        size = os.path.getsize(path)
        if size % 5:
            raise DataError(f"{path}: truncated N-MNIST file ({size} bytes is not a whole number of 40-bit "
                            "events); replace it with the archive's copy (delete the folder and rerun to download it)")
        events, label = dataset[i]
        check_events(events, dataset.sensor_size, path)
        yield events, label


def count(data_dir: str, split: str) -> int:
    return len(NMNIST(data_dir, train=download.train_flag(split)).data)


def sources(data_dir: str, split: str) -> list[str]:
    """The files the split is read from (downloading them when missing)."""
    return list(NMNIST(data_dir, train=download.train_flag(split)).data)
