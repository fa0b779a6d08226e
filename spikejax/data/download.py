"""Downloads through tonic's download utilities, with errors that say how to finish by hand."""
from __future__ import annotations

import dataclasses
import os

from spikejax.errors import DataError


def has_files(folder: str, suffix: str) -> bool:
    """Whether any file under `folder` ends with `suffix` (an extracted copy is present)."""
    for _, _, files in os.walk(folder):
        if any(f.endswith(suffix) for f in files):
            return True
    return False


def train_flag(split: str) -> bool:
    """tonic's `train=` argument for a split name."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return split == "train"


class DatasetDownloadError(DataError):
    """A dataset archive could not be fetched or verified."""


@dataclasses.dataclass(frozen=True)
class Archive:
    url: str
    filename: str
    md5: str


def manual_instructions(dataset: str, archive: Archive, directory: str) -> str:
    return (f"Download {archive.url} by hand and save it as {os.path.join(directory, archive.filename)} "
            f"(expected md5 {archive.md5}); spikejax then verifies, extracts and uses it. "
            f"See README.md, 'Datasets', for {dataset}.")


def fetch(dataset: str, archive: Archive, directory: str, *, extract: bool) -> None:
    """Downloads `archive` into `directory` (progress on stdout), checks its md5, and extracts it.

    A file already present with the right md5 is used as is. On any failure the partial or corrupt file
    is removed and a DatasetDownloadError names the URL, archive, md5 and where to put it by hand.
    """
    from tonic import download_utils

    path = os.path.join(directory, archive.filename)
    os.makedirs(directory, exist_ok=True)
    try:
        if extract:
            download_utils.download_and_extract_archive(archive.url, directory, filename=archive.filename,
                                                        md5=archive.md5)
        else:
            download_utils.download_url(archive.url, directory, filename=archive.filename, md5=archive.md5)
    except Exception as error:  # network, HTTP, md5 or archive errors alike
        if os.path.exists(path) and not download_utils.check_integrity(path, archive.md5):
            os.remove(path)
        raise DatasetDownloadError(
            f"{dataset}: could not download or verify {archive.url} ({type(error).__name__}: {error}). "
            + manual_instructions(dataset, archive, directory)) from error
