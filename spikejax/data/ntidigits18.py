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
from spikejax.errors import DataError, require

tonic = require("tonic", "datasets", "the ntidigits18 dataset")  # an extra: the core install has no tonic

ARCHIVE = download.Archive(tonic.datasets.NTIDIGITS18.base_url, "n-tidigits.hdf5",
                           tonic.datasets.NTIDIGITS18.file_md5)


class NTIDIGITS18(tonic.datasets.NTIDIGITS18):
    archive = ARCHIVE

    def download(self) -> None:
        download.fetch("ntidigits18", self.archive, self.location_on_system, extract=False)

    def close(self) -> None:
        self.data.close()


REMEDY = "replace it with a complete copy (delete it and rerun to download it again)"


def _open(data_dir, split):
    """The dataset (downloading when missing) after checking that {split}_labels, {split}_addresses and
    {split}_timestamps hold the same number of samples and every single-digit id names a known class."""
    path = os.path.join(data_dir, "NTIDIGITS18", ARCHIVE.filename)
    try:
        dataset = NTIDIGITS18(data_dir, train=download.train_flag(split), single_digits=True)
    except KeyError as error:
        raise DataError(f"{path}: missing HDF5 key {error}; expected '{split}_labels', "
                        f"'{split}_addresses' and '{split}_timestamps'; {REMEDY}") from None
    except OSError as error:  # h5py: not an HDF5 file, truncated, ...
        raise DataError(f"{path}: not a readable HDF5 file ({error}); {REMEDY}") from None
    try:
        counts = {key: len(dataset.data[f"{split}_{key}"]) for key in ("labels", "addresses", "timestamps")}
    except KeyError as error:
        dataset.close()
        raise DataError(f"{path}: missing HDF5 key {error}; expected '{split}_addresses' and "
                        f"'{split}_timestamps'; {REMEDY}") from None
    unknown = [s for s in dataset._samples if s.split("-")[-1] not in dataset.class_map]
    if len(set(counts.values())) > 1 or unknown:
        dataset.close()
        if unknown:
            raise DataError(f"{path}: {len(unknown)} {split} sample ids end in no digit class "
                            f"{sorted(dataset.class_map)}: {unknown[:5]}; {REMEDY}")
        raise DataError(f"{path}: {counts['labels']} {split}_labels for {counts['addresses']} {split}_addresses "
                        f"and {counts['timestamps']} {split}_timestamps; each sample needs one of each: {REMEDY}")
    return dataset, path


def samples(data_dir: str, split: str):
    """Yields (events, label) for every single-digit sample of the split, then closes the file."""
    dataset, path = _open(data_dir, split)
    try:
        for i in range(len(dataset)):
            sample_id = dataset._samples[i]
            origin = f"{path} sample {sample_id!r}"
            try:
                lengths = [len(dataset.data[f"{split}_{key}"][sample_id]) for key in ("addresses", "timestamps")]
                if lengths[0] != lengths[1]:
                    raise DataError(f"{origin}: {lengths[0]} addresses for {lengths[1]} timestamps; {REMEDY}")
                events, label = dataset[i]
            except KeyError as error:
                raise DataError(f"{origin}: missing HDF5 key {error} under '{split}_addresses' or "
                                f"'{split}_timestamps'; {REMEDY}") from None
            except OSError as error:
                raise DataError(f"{origin}: cannot read it ({error}); {REMEDY}") from None
            check_events(events, dataset.sensor_size, origin)
            yield events, label
    finally:
        dataset.close()


def sources(data_dir: str, split: str) -> list[str]:
    """The files the split is read from (downloading them when missing)."""
    dataset, path = _open(data_dir, split)
    dataset.close()
    return [path]


def count(data_dir: str, split: str) -> int:
    dataset, _ = _open(data_dir, split)
    try:
        return len(dataset)
    finally:
        dataset.close()
