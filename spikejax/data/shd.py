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
"""
from __future__ import annotations

import gzip
import os
import shutil

from spikejax.data import download
from spikejax.data.events import check_events
from spikejax.errors import require

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
            with gzip.open(path + ".gz", "rb") as source, open(path + ".partial", "wb") as target:
                shutil.copyfileobj(source, target)
            os.replace(path + ".partial", path)
            return
        split = "train" if self.filename == tonic.datasets.SHD.train_zip else "test"
        download.fetch("shd", self.archives[split], self.location_on_system, extract=True)


def _open(data_dir: str, split: str) -> tuple[SHD, str]:
    path = os.path.join(data_dir, "SHD", f"shd_{split}.h5")
    try:
        dataset = SHD(data_dir, train=download.train_flag(split))
    except KeyError as error:
        raise ValueError(f"{path}: missing HDF5 key {error}; expected 'extra/keys' and 'extra/speaker'") from None
    except OSError as error:  # h5py: not an HDF5 file, truncated, ...
        raise ValueError(f"{path}: not a readable HDF5 file ({error})") from None
    return dataset, path


def samples(data_dir: str, split: str):
    """Yields (events, label) for every sample of the split in file order; events (t [us], x = channel, p = 1)."""
    dataset, path = _open(data_dir, split)
    for i in range(len(dataset)):
        try:
            events, label = dataset[i]
        except (KeyError, OSError) as error:
            raise ValueError(f"{path} sample {i}: cannot read it ({type(error).__name__}: {error}); expected "
                             "'spikes/times', 'spikes/units' and 'labels'") from None
        check_events(events, dataset.sensor_size, f"{path} sample {i}")
        if not 0 <= int(label) < NUM_CLASSES:
            raise ValueError(f"{path} sample {i}: label {int(label)} is outside 0-{NUM_CLASSES - 1}")
        yield events, int(label)


def count(data_dir: str, split: str) -> int:
    dataset, path = _open(data_dir, split)
    try:
        return len(dataset)
    except KeyError as error:
        raise ValueError(f"{path}: missing HDF5 key {error}; expected 'labels'") from None
