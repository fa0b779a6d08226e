"""Downloads and extraction, with errors that say how to finish by hand.

A user's file is never deleted. An archive already in place (put there by hand or by an earlier run) whose
md5 is wrong is moved aside to `<name>.bad-md5-<actual>` and refused, with both checksums; nothing is
downloaded over it. A download goes to `<name>.partial` and is renamed only when its md5 matches; an
archive is extracted into a temporary folder beside it and moved into place only when complete. On a full
disk the partial file or folder is removed and a DiskFullError names the path and the bytes it needed.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
import zlib

from spikejax.errors import DataError, DiskFullError, is_disk_full


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


def file_md5(path: str, chunk: int = 1 << 24) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def disk_full(path: str, needed: int | None, what: str) -> DiskFullError:
    """The DiskFullError for writing `what` to `path` (needed: bytes, None when unknown)."""
    size = f"{needed / 2**20:.1f} MiB" if needed is not None else "an unknown amount"
    try:
        free = f"; {shutil.disk_usage(os.path.dirname(path) or '.').free / 2**20:.1f} MiB free there"
    except OSError:
        free = ""
    return DiskFullError(f"no space left on the device writing {what} to {path}: it needs {size}{free}; "
                         "the partial file was removed. Free space (or choose another --data_dir) and rerun.")


def fetch(dataset: str, archive: Archive, directory: str, *, extract: bool) -> None:
    """Makes `directory/archive.filename` a verified copy of `archive` (downloading it when absent) and,
    with `extract`, extracts it into `directory`. Progress goes to stdout."""
    path = os.path.join(directory, archive.filename)
    os.makedirs(directory, exist_ok=True)
    if os.path.exists(path):
        actual = file_md5(path)
        if actual != archive.md5:
            aside = f"{path}.bad-md5-{actual}"
            os.replace(path, aside)
            raise DatasetDownloadError(
                f"{dataset}: {path}, which was already there (placed by hand or left by an earlier run), has md5 "
                f"{actual}, expected {archive.md5}: it is incomplete or another file. It was not deleted but moved "
                f"to {aside}. Put a complete copy of {archive.url} at {path}, or rerun to download it.")
    else:
        _download(dataset, archive, path)
    if extract:
        _extract(dataset, archive, path, directory)


def _download(dataset: str, archive: Archive, path: str) -> None:
    partial = path + ".partial"
    needed = None
    print(f"Downloading {archive.url} to {path}", flush=True)
    try:
        with urllib.request.urlopen(archive.url, timeout=60) as response, open(partial, "wb") as out:
            needed = int(response.headers.get("Content-Length") or 0) or None
            done, shown = 0, 0
            while block := response.read(1 << 20):
                out.write(block)
                done += len(block)
                if done - shown >= 1 << 26:
                    shown = done
                    print(f"  {done / 2**20:.0f}{f'/{needed / 2**20:.0f}' if needed else ''} MiB", flush=True)
    except Exception as error:
        _remove(partial)
        if is_disk_full(error):
            raise disk_full(path, needed, f"the {dataset} archive") from None
        raise DatasetDownloadError(
            f"{dataset}: could not download {archive.url} ({type(error).__name__}: {error}). "
            + manual_instructions(dataset, archive, os.path.dirname(path))) from None
    actual = file_md5(partial)
    if actual != archive.md5:
        _remove(partial)  # our own download, not a user's file
        raise DatasetDownloadError(
            f"{dataset}: the download of {archive.url} has md5 {actual}, expected {archive.md5} (a changed or "
            "truncated file on the server, or a proxy's page); it was removed. "
            + manual_instructions(dataset, archive, os.path.dirname(path)))
    os.replace(partial, path)


def _members_size(path: str) -> int | None:
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                return sum(info.file_size for info in z.infolist())
        with tarfile.open(path) as t:
            return sum(member.size for member in t.getmembers())
    except (OSError, tarfile.TarError, zipfile.BadZipFile, EOFError):
        return None


def _extract(dataset: str, archive: Archive, path: str, directory: str) -> None:
    """Extracts into a temporary folder in `directory`, then moves every file into place."""
    tmp = tempfile.mkdtemp(prefix=f".extract-{archive.filename}-", dir=directory)
    try:
        try:
            if zipfile.is_zipfile(path):
                with zipfile.ZipFile(path) as z:
                    z.extractall(tmp)
            else:
                with tarfile.open(path) as t:
                    t.extractall(tmp, filter="data")
        except Exception as error:
            if is_disk_full(error):
                raise disk_full(directory, _members_size(path), f"the extracted {archive.filename}") from None
            raise DatasetDownloadError(
                f"{dataset}: {path} has the expected md5 but cannot be extracted ({type(error).__name__}: "
                f"{error}); delete it and rerun to download it again.") from None
        for root, _, files in os.walk(tmp):
            target = os.path.join(directory, os.path.relpath(root, tmp))
            os.makedirs(target, exist_ok=True)
            for name in files:
                os.replace(os.path.join(root, name), os.path.join(target, name))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def gunzip(source: str, target: str) -> None:
    """Decompresses the gzip file `source` (the user's, kept) to `target` through `target.partial`."""
    import gzip

    partial = target + ".partial"
    try:
        with gzip.open(source, "rb") as f, open(partial, "wb") as out:
            shutil.copyfileobj(f, out, 1 << 20)
    except Exception as error:
        _remove(partial)
        if is_disk_full(error):
            raise disk_full(target, None, f"the decompressed {os.path.basename(source)}") from None
        if isinstance(error, (OSError, EOFError, ValueError, zlib.error)):
            raise DataError(f"{source} is not a complete gzip file ({type(error).__name__}: {error}); replace it "
                            "with a complete copy (it was not changed).") from None
        raise
    os.replace(partial, target)
    print(f"decompressed {source} to {target}", file=sys.stderr, flush=True)
