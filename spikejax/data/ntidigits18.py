"""N-TIDIGITS18 through tonic 1.7's `tonic.datasets.NTIDIGITS18`: 64-channel cochlea spikes, single digits.

On disk: <data_dir>/NTIDIGITS18/n-tidigits.hdf5 with {split}_labels (sample ids "...-<digits>"),
{split}_addresses/<id> (channels) and {split}_timestamps/<id> (seconds). Only single-digit samples are
used (11 classes: o, 1-9, z). The subclass checks the md5 on download (tonic does not) and closes the
h5py handle after reading, so nothing unpicklable outlives loading.
"""
from __future__ import annotations

import os

from spikejax.data import download
from spikejax.data.events import check_events
from spikejax.errors import require

tonic = require("tonic", "datasets", "the ntidigits18 dataset")  # an extra: the core install has no tonic

ARCHIVE = download.Archive(tonic.datasets.NTIDIGITS18.base_url, "n-tidigits.hdf5",
                           tonic.datasets.NTIDIGITS18.file_md5)


class NTIDIGITS18(tonic.datasets.NTIDIGITS18):
    archive = ARCHIVE

    def download(self) -> None:
        download.fetch("ntidigits18", self.archive, self.location_on_system, extract=False)

    def close(self) -> None:
        self.data.close()


def _open(data_dir, split):
    path = os.path.join(data_dir, "NTIDIGITS18", ARCHIVE.filename)
    try:
        return NTIDIGITS18(data_dir, train=download.train_flag(split), single_digits=True), path
    except KeyError as error:
        raise ValueError(f"{path}: missing HDF5 key {error}; expected '{split}_labels', "
                         f"'{split}_addresses' and '{split}_timestamps'") from None


def samples(data_dir: str, split: str):
    """Yields (events, label) for every single-digit sample of the split, then closes the file."""
    dataset, path = _open(data_dir, split)
    try:
        for i in range(len(dataset)):
            origin = f"{path} sample {dataset._samples[i]!r}"
            try:
                events, label = dataset[i]
            except KeyError as error:
                raise ValueError(f"{origin}: missing HDF5 key {error} under '{split}_addresses' or "
                                 f"'{split}_timestamps'") from None
            check_events(events, dataset.sensor_size, origin)
            yield events, label
    finally:
        dataset.close()


def count(data_dir: str, split: str) -> int:
    dataset, _ = _open(data_dir, split)
    try:
        return len(dataset)
    finally:
        dataset.close()
